//! The accept loop and the per-connection handler (mini-redis style).
//!
//! [`run`] takes a bound listener and a shutdown future ([`run_listeners`]: a plain and/or a
//! TLS listener). A semaphore caps the connections (both listeners together) and
//! [`Slots`] the connections per source address; when the semaphore has no permit left, the
//! connections that had their reply are closed first (see [`Config`], "Limits"). On
//! shutdown a broadcast tells every handler to finish, and an mpsc channel whose senders
//! the handlers hold (a drop guard) tells `run` when the last one is gone. The handler is
//! generic over the stream, so a TLS connection is served by the same code once its
//! handshake is done.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bibgate_connexion::{Parse, ProtocolError, RequestParser, encode_reply, http_ok_response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::{Config, ONE_RECORD_SUFFIX};
use crate::handler::Shared;
use crate::slots::{Queued, Refusal, Slot, Slots};
use crate::tls::TlsServer;
use bibgate_inbox::Services;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// How long writing a reply may take (it is small; a client that reads nothing still has
/// room for it in its socket buffer).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves Connexion Gateway Export connections on `listener` until `shutdown` completes,
/// then stops accepting and lets in-flight connections finish (at most
/// [`Config::shutdown_timeout`]).
pub async fn run(listener: TcpListener, shutdown: impl Future, services: Services, config: Config) {
    run_listeners(
        Listeners {
            plain: Some(listener),
            tls: None,
        },
        shutdown,
        services,
        config,
    )
    .await;
}

/// The sockets one server accepts connections on.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain TCP (what the Connexion client speaks).
    pub plain: Option<TcpListener>,
    /// TLS: each connection is handshaken with the certificate first (within
    /// [`Config::idle_timeout`]), then served like a plain one. A client that does not
    /// speak TLS gets no reply and is closed.
    pub tls: Option<(TcpListener, TlsServer)>,
}

/// Like [`run`], on a plain and/or a TLS listener (one connection limit, one shutdown).
pub async fn run_listeners(
    listeners: Listeners,
    shutdown: impl Future,
    services: Services,
    config: Config,
) {
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel::<()>(1);
    let shutdown_timeout = config.shutdown_timeout;
    let mut server = Listener {
        limit: Arc::new(Semaphore::new(config.max_connections.max(1))),
        slots: Slots::new(config.max_connections_per_address, config.max_connections),
        shared: Arc::new(Shared::new(services, config)),
        plain: listeners.plain,
        tls: listeners.tls,
        notify_shutdown,
        shutdown_complete_tx,
    };
    if let Some(addr) = server.plain.as_ref().and_then(|l| l.local_addr().ok()) {
        info!(%addr, "connexion gateway listening");
    }
    if let Some(addr) = server.tls.as_ref().and_then(|(l, _)| l.local_addr().ok()) {
        info!(%addr, "connexion gateway listening (tls)");
    }
    if server.plain.is_none() && server.tls.is_none() {
        warn!("connexion gateway has no listener");
    }
    tokio::select! {
        () = server.accept_loop() => {}
        _ = shutdown => info!("shutting down: no new connections"),
    }
    let Listener {
        plain,
        tls,
        notify_shutdown,
        shutdown_complete_tx,
        ..
    } = server;
    drop(plain);
    drop(tls);
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
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, TlsServer)>,
    limit: Arc<Semaphore>,
    slots: Arc<Slots>,
    shared: Arc<Shared>,
    notify_shutdown: broadcast::Sender<()>,
    shutdown_complete_tx: mpsc::Sender<()>,
}

impl Listener {
    async fn accept_loop(&mut self) {
        let mut spare = None;
        loop {
            let permit = match spare.take() {
                Some(permit) => permit,
                None => match permit(&self.limit, &self.slots).await {
                    Some(permit) => permit,
                    None => return,
                },
            };
            let (accepted, tls) = tokio::select! {
                accepted = accept(self.plain.as_ref()) => (accepted, None),
                accepted = accept(self.tls.as_ref().map(|(listener, _)| listener)) => {
                    (accepted, self.tls.as_ref().map(|(_, tls)| tls.clone()))
                }
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Typically out of file descriptors: wait a little instead of spinning.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let admitted = match self.slots.admit(peer.ip()) {
                Some(slot) => Admitted::Now(slot, permit),
                None => match self.slots.queue(peer.ip()) {
                    Ok(queued) => {
                        // A waiting connection holds no permit of the budget until it has
                        // its slot.
                        spare = Some(permit);
                        Admitted::Queued(queued)
                    }
                    Err(refusal) => {
                        let limit = self.shared.config.max_connections_per_address;
                        if refusal == Refusal::First {
                            warn!(address = %peer.ip(), limit, "connection limit per address reached, with as many waiting as allowed; further connections from it are closed at once");
                        } else {
                            debug!(%peer, "connection limit per address reached; closing");
                        }
                        drop(stream);
                        spare = Some(permit);
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                peer,
                shared: self.shared.clone(),
                limit: self.limit.clone(),
                slots: self.slots.clone(),
                shutdown: Shutdown::new(self.notify_shutdown.subscribe()),
                shutdown_complete: self.shutdown_complete_tx.clone(),
            };
            tokio::spawn(connection.serve(stream, tls, admitted));
        }
    }
}

/// Whether a connection has its slot (and its permit of the budget).
enum Admitted {
    /// Admitted at once.
    Now(Slot, OwnedSemaphorePermit),
    /// Waiting for a slot of its address ([`Config::address_wait`] at most).
    Queued(Queued),
}

/// An accepted connection, before its handler.
struct Connection {
    peer: SocketAddr,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    slots: Arc<Slots>,
    shutdown: Shutdown,
    shutdown_complete: mpsc::Sender<()>,
}

/// A permit of the connection budget. When none is left, the connections that had their
/// reply make room (see [`Slots::short`]) while this waits.
async fn permit(limit: &Arc<Semaphore>, slots: &Slots) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = limit.clone().try_acquire_owned() {
        return Some(permit);
    }
    debug!("connection budget spent; closing connections that had their reply first");
    slots.short();
    let permit = limit.clone().acquire_owned().await.ok();
    slots.not_short();
    if permit.is_none() {
        error!("connection limit semaphore closed");
    }
    permit
}

impl Connection {
    /// Waits for a slot if needed, does the TLS handshake if any, and serves the connection.
    async fn serve(mut self, stream: TcpStream, tls: Option<TlsServer>, admitted: Admitted) {
        let peer = self.peer;
        let (slot, _permit) = match admitted {
            Admitted::Now(slot, permit) => (slot, permit),
            Admitted::Queued(queued) => {
                let until = Instant::now() + self.shared.config.address_wait;
                let (limit, slots) = (self.limit.clone(), self.slots.clone());
                let waited = tokio::select! {
                    () = self.shutdown.recv() => None,
                    got = async {
                        let slot = slots.wait(queued, until).await?;
                        Some((slot, permit(&limit, &slots).await?))
                    } => got,
                };
                match waited {
                    Some(admitted) => admitted,
                    None => {
                        debug!(%peer, "no connection slot of its address came free; closing");
                        return;
                    }
                }
            }
        };
        let Some(tls) = tls else {
            self.handler(stream, slot).run().await;
            return;
        };
        let timeout = self.shared.config.idle_timeout;
        let handshake = tokio::select! {
            () = self.shutdown.recv() => None,
            done = tokio::time::timeout(timeout, tls.acceptor.accept(stream)) => Some(done),
        };
        match handshake {
            Some(Ok(Ok(stream))) => self.handler(stream, slot).run().await,
            Some(Ok(Err(error))) => {
                info!(%peer, %error, "tls handshake failed; closing");
            }
            Some(Err(_elapsed)) => {
                info!(%peer, "tls handshake timed out; closing");
            }
            None => debug!(%peer, "closing a tls handshake for shutdown"),
        }
    }

    fn handler<S>(self, stream: S, slot: Slot) -> Handler<S> {
        Handler {
            stream,
            peer: self.peer,
            shared: self.shared,
            shutdown: self.shutdown,
            slot,
            _shutdown_complete: self.shutdown_complete,
        }
    }
}

/// Accepts on `listener`; never completes without one.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
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

/// The bytes of a request within its current progress window.
#[derive(Clone, Copy, Debug)]
struct Progress {
    since: Instant,
    bytes: usize,
}

impl Progress {
    fn new(since: Instant) -> Progress {
        Progress { since, bytes: 0 }
    }
}

/// Serves one connection (plain TCP or TLS).
struct Handler<S> {
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    /// Its place among the connections of its address (freed when the handler is dropped).
    slot: Slot,
    /// Dropped with the handler: tells [`run`] this connection is finished.
    _shutdown_complete: mpsc::Sender<()>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Handler<S> {
    async fn run(&mut self) {
        debug!(peer = %self.peer, "connection accepted");
        let config = self.shared.config.clone();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut parser =
            RequestParser::with_max_bytes(config.max_request_bytes).with_digit_splits();
        let mut phase = Phase::Request;
        let mut request_started = Instant::now();
        let mut last_read = request_started;
        let mut progress = Progress::new(request_started);
        loop {
            let partial = parser.has_partial_request();
            let waiting = matches!(phase, Phase::Replied { .. }) && !partial;
            let (deadline, stalled) = match phase {
                Phase::Replied { since, .. } if !partial => (since + config.grace, None),
                _ => {
                    let stalled = (request_started + config.request_deadline)
                        .min(last_read + config.idle_timeout);
                    let window_end = progress.since + config.progress_window;
                    (stalled.min(window_end), Some(stalled))
                }
            };
            let read = tokio::select! {
                () = self.shutdown.recv() => {
                    debug!(peer = %self.peer, "closing for shutdown");
                    return;
                }
                () = self.slot.evicted(), if waiting => {
                    debug!(peer = %self.peer, "closing a connection that had its reply, to make room");
                    return;
                }
                read = tokio::time::timeout_at(deadline, self.stream.read(&mut buf)) => read,
            };
            let n = match read {
                Err(_elapsed) => {
                    // The end of a progress window of a request that brought enough in it:
                    // the next window starts.
                    if let Some(stalled) = stalled
                        && deadline < stalled
                        && progress.bytes >= config.progress_bytes
                    {
                        progress = Progress::new(deadline);
                        continue;
                    }
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
                Phase::Replied { .. } if !partial => {
                    request_started = now;
                    progress = Progress::new(now);
                    self.slot.busy();
                }
                _ => {}
            }
            progress.bytes = progress.bytes.saturating_add(n);
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
                        let Some(next) = self.after_reply(false).await else {
                            return;
                        };
                        phase = next;
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
                        let Some(next) = self.after_reply(false).await else {
                            return;
                        };
                        phase = next;
                        break;
                    }
                    Parse::Error(error) => {
                        info!(peer = %self.peer, code = error.code(), "unreadable request");
                        let text =
                            format!("Import Failed - the request could not be read: {error}.");
                        if self.reply(&text).await.is_err() {
                            return;
                        }
                        let Some(next) = self.after_reply(false).await else {
                            return;
                        };
                        phase = next;
                        break;
                    }
                    Parse::Ambiguous(requests) => {
                        // Several readings of decimal length digits: the one whose logon id
                        // names a profile is the request.
                        event = self.shared.pick(requests).await;
                    }
                    Parse::Complete(request) => {
                        let extra = parser.check_one_record().is_err();
                        let asked = Instant::now();
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
                        bibgate_inbox::metrics::global().replied(answer.status, asked.elapsed());
                        // A fresh parser drops whatever else came in the same read.
                        parser = RequestParser::with_max_bytes(config.max_request_bytes)
                            .with_digit_splits();
                        let Some(next) = self.after_reply(true).await else {
                            return;
                        };
                        phase = next;
                        break;
                    }
                }
            }
        }
    }

    /// The phase after a reply: waiting for the client to close (or, with `accept_more`, to
    /// send a further request). `None` when the connection budget is spent: the connection
    /// is closed at once instead, after its reply.
    async fn after_reply(&mut self, accept_more: bool) -> Option<Phase> {
        if self.slot.replied() {
            return Some(Phase::Replied {
                since: Instant::now(),
                accept_more,
            });
        }
        debug!(peer = %self.peer, "connection budget spent; closing after the reply");
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.stream.shutdown()).await;
        None
    }

    /// The idle timeout, the request deadline or the minimum progress passed.
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
