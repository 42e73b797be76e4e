//! The accept loop and the per-connection handler (mini-redis style).
//!
//! [`run`] takes a bound listener and a shutdown future. A semaphore caps the connections;
//! on shutdown a broadcast tells every handler to finish, and an mpsc channel whose senders
//! the handlers hold (a drop guard) tells `run` when the last one is gone.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bibgate_connexion::{Parse, ProtocolError, RequestParser, encode_reply, http_ok_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::{Config, ONE_RECORD_SUFFIX};
use crate::handler::Shared;
use crate::services::Services;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// How long writing a reply may take (it is small; a client that reads nothing still has
/// room for it in its socket buffer).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves Connexion Gateway Export connections on `listener` until `shutdown` completes,
/// then stops accepting and lets in-flight connections finish (at most
/// [`Config::shutdown_timeout`]).
pub async fn run(listener: TcpListener, shutdown: impl Future, services: Services, config: Config) {
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel::<()>(1);
    let shutdown_timeout = config.shutdown_timeout;
    let mut server = Listener {
        limit: Arc::new(Semaphore::new(config.max_connections.max(1))),
        shared: Arc::new(Shared::new(services, config)),
        listener,
        notify_shutdown,
        shutdown_complete_tx,
    };
    if let Ok(addr) = server.listener.local_addr() {
        info!(%addr, "connexion gateway listening");
    }
    tokio::select! {
        () = server.accept_loop() => {}
        _ = shutdown => info!("shutting down: no new connections"),
    }
    let Listener {
        listener,
        notify_shutdown,
        shutdown_complete_tx,
        ..
    } = server;
    drop(listener);
    drop(notify_shutdown);
    drop(shutdown_complete_tx);
    if tokio::time::timeout(shutdown_timeout, shutdown_complete_rx.recv())
        .await
        .is_err()
    {
        warn!("shutdown timeout: some connections were still open");
    } else {
        info!("all connections closed");
    }
}

struct Listener {
    listener: TcpListener,
    limit: Arc<Semaphore>,
    shared: Arc<Shared>,
    notify_shutdown: broadcast::Sender<()>,
    shutdown_complete_tx: mpsc::Sender<()>,
}

impl Listener {
    async fn accept_loop(&mut self) {
        loop {
            let Ok(permit) = self.limit.clone().acquire_owned().await else {
                error!("connection limit semaphore closed");
                return;
            };
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Typically out of file descriptors: wait a little instead of spinning.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let mut handler = Handler {
                stream,
                peer,
                shared: self.shared.clone(),
                shutdown: Shutdown::new(self.notify_shutdown.subscribe()),
                _shutdown_complete: self.shutdown_complete_tx.clone(),
            };
            tokio::spawn(async move {
                handler.run().await;
                drop(permit);
            });
        }
    }
}

/// Listens for the server's shutdown signal.
struct Shutdown {
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    fn new(notify: broadcast::Receiver<()>) -> Shutdown {
        Shutdown {
            is_shutdown: false,
            notify,
        }
    }

    /// Completes when the shutdown signal arrives (or at once when it did already).
    async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first request.
    Request,
    /// A reply was sent at `since`; waiting for the client to close. With `accept_more`,
    /// bytes that arrive are parsed as a next request; otherwise they are discarded.
    Replied { since: Instant, accept_more: bool },
}

/// Serves one connection.
struct Handler {
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    /// Dropped with the handler: tells [`run`] this connection is finished.
    _shutdown_complete: mpsc::Sender<()>,
}

impl Handler {
    async fn run(&mut self) {
        debug!(peer = %self.peer, "connection accepted");
        let config = self.shared.config.clone();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut parser = RequestParser::with_max_bytes(config.max_request_bytes);
        let mut phase = Phase::Request;
        let mut request_started = Instant::now();
        let mut last_read = request_started;
        loop {
            let partial = parser.has_partial_request();
            let deadline = match phase {
                Phase::Replied { since, .. } if !partial => since + config.grace,
                _ => {
                    (request_started + config.request_deadline).min(last_read + config.idle_timeout)
                }
            };
            let read = tokio::select! {
                () = self.shutdown.recv() => {
                    debug!(peer = %self.peer, "closing for shutdown");
                    return;
                }
                read = tokio::time::timeout_at(deadline, self.stream.read(&mut buf)) => read,
            };
            let n = match read {
                Err(_elapsed) => {
                    self.timed_out(&parser, phase).await;
                    return;
                }
                Ok(Err(err)) => {
                    debug!(peer = %self.peer, error = %err, "read failed");
                    return;
                }
                Ok(Ok(0)) => {
                    if partial {
                        info!(peer = %self.peer, "client closed the connection with an incomplete request; nothing imported");
                    } else {
                        debug!(peer = %self.peer, "client closed the connection");
                    }
                    return;
                }
                Ok(Ok(n)) => n,
            };
            let now = Instant::now();
            last_read = now;
            match phase {
                Phase::Replied {
                    accept_more: false, ..
                } => continue,
                Phase::Replied { .. } if !partial => request_started = now,
                _ => {}
            }
            let mut event = parser.feed(&buf[..n]);
            loop {
                let replied = matches!(phase, Phase::Replied { .. });
                match event {
                    Parse::NeedMore => break,
                    Parse::Nul if replied => {
                        // A NUL after the reply ("notify host before disconnect"): nothing to answer.
                        event = parser.poll();
                    }
                    Parse::Nul => {
                        info!(peer = %self.peer, "request ended with nul before any record; nothing imported");
                        if self
                            .reply("Import Failed - no record was received: the request ended before a record.")
                            .await
                            .is_err()
                        {
                            return;
                        }
                        phase = Phase::Replied {
                            since: Instant::now(),
                            accept_more: false,
                        };
                        break;
                    }
                    Parse::Http(probe) => {
                        if replied {
                            return;
                        }
                        debug!(peer = %self.peer, path = %probe.path, "http probe");
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
                            let _ = self.stream.write_all(http_ok_response()).await;
                            let _ = self.stream.shutdown().await;
                        })
                        .await;
                        return;
                    }
                    Parse::Error(error @ ProtocolError::TooLarge { .. }) => {
                        warn!(peer = %self.peer, %error, "request too large; closing without a reply");
                        return;
                    }
                    Parse::Error(error) if replied => {
                        debug!(peer = %self.peer, %error, "unreadable bytes after a reply; discarding");
                        phase = Phase::Replied {
                            since: Instant::now(),
                            accept_more: false,
                        };
                        break;
                    }
                    Parse::Error(error) => {
                        info!(peer = %self.peer, code = error.code(), "unreadable request");
                        let text =
                            format!("Import Failed - the request could not be read: {error}.");
                        if self.reply(&text).await.is_err() {
                            return;
                        }
                        phase = Phase::Replied {
                            since: Instant::now(),
                            accept_more: false,
                        };
                        break;
                    }
                    Parse::Complete(request) => {
                        let extra = parser.check_one_record().is_err();
                        let mut answer = self.shared.answer(self.peer.ip(), request).await;
                        if extra {
                            info!(peer = %self.peer, "more than one record in one read; extra data ignored");
                            answer.text.push_str(ONE_RECORD_SUFFIX);
                        }
                        debug!(
                            peer = %self.peer,
                            status = answer.status,
                            export_id = answer.export_id.as_deref().unwrap_or(""),
                            institution = answer.institution.as_deref().unwrap_or(""),
                            "replying"
                        );
                        if self.reply(&answer.text).await.is_err() {
                            return;
                        }
                        // A fresh parser drops whatever else came in the same read.
                        parser = RequestParser::with_max_bytes(config.max_request_bytes);
                        phase = Phase::Replied {
                            since: Instant::now(),
                            accept_more: true,
                        };
                        break;
                    }
                }
            }
        }
    }

    /// The idle timeout or request deadline passed.
    async fn timed_out(&mut self, parser: &RequestParser, phase: Phase) {
        match (phase, parser.incomplete()) {
            (Phase::Request, Some(incomplete)) => {
                info!(peer = %self.peer, "request stalled; replying and closing");
                let text = format!("Import Failed - {incomplete}; the request timed out.");
                if self.reply(&text).await.is_ok() {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, self.stream.shutdown()).await;
                }
            }
            (Phase::Request, None) => {
                debug!(peer = %self.peer, "no request received; closing");
            }
            (Phase::Replied { .. }, _) => {
                debug!(peer = %self.peer, "client did not close after the reply; closing");
            }
        }
    }

    /// Writes `text` and one NUL.
    async fn reply(&mut self, text: &str) -> Result<(), ()> {
        let bytes = encode_reply(text);
        match tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                debug!(peer = %self.peer, error = %err, "could not write the reply; the client has gone");
                Err(())
            }
            Err(_) => {
                debug!(peer = %self.peer, "writing the reply timed out");
                Err(())
            }
        }
    }
}
