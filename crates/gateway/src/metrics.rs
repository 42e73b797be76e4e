//! The metrics and health endpoint of `bibgate serve --metrics ADDR:PORT`: a minimal
//! HTTP/1.1 server (one request per connection, `GET` only) with two paths.
//!
//! - `/metrics`: the process's counters ([`bibgate_inbox::metrics`]) in the Prometheus text
//!   format, with gauges read at scrape time: the inbox and drop-folder backlogs (keys
//!   listed in the blob store), and on Linux the process's resident memory and threads.
//! - `/health`: `200` when every [`Probe`] passes (the caller gives the store's; the blob
//!   store's, a write and delete of a probe blob, is built in), else `503`; one line per
//!   probe either way.
//!
//! A request must arrive within 5 s and in 8 KiB; at most 4 are answered at once.

use std::sync::Arc;
use std::time::Duration;

use bibgate_inbox::layout::{DROP, INBOX, parse_inbox_key};
use bibgate_store::BlobStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::processor::drop_candidate;

/// A health check: `Err` says what is wrong.
pub type Probe = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// What the endpoint reads.
#[derive(Clone)]
pub struct MetricsSources {
    /// The blob store: backlogs, and its health probe.
    pub blobs: Arc<dyn BlobStore>,
    /// Further health checks by name (e.g. `store`).
    pub probes: Vec<(&'static str, Probe)>,
}

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
const CONCURRENT: usize = 4;

/// Serves `/metrics` and `/health` on `listener` until `stop` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    sources: MetricsSources,
    stop: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                debug!(%error, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Busy: close at once rather than queue scrapes.
            continue;
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &sources).await {
                debug!(%error, "metrics: request failed");
            }
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, sources: &MetricsSources) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(REQUEST_DEADLINE, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            request.extend_from_slice(&buf[..n]);
            if request.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if request.len() > MAX_REQUEST {
                return Ok(false);
            }
        }
    })
    .await;
    if !matches!(complete, Ok(Ok(true))) {
        return respond(&mut stream, "400 Bad Request", "bad request\n").await;
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next());
    if method != Some(b"GET".as_slice()) {
        return respond(&mut stream, "405 Method Not Allowed", "GET only\n").await;
    }
    let path = target
        .map(|t| t.split(|&b| b == b'?').next().unwrap_or_default())
        .unwrap_or_default();
    match path {
        b"/metrics" => {
            let sources = sources.clone();
            let body = tokio::task::spawn_blocking(move || render(&sources))
                .await
                .unwrap_or_else(|error| format!("# metrics failed: {error}\n"));
            respond(&mut stream, "200 OK", &body).await
        }
        b"/health" => {
            let sources = sources.clone();
            let (healthy, body) = tokio::task::spawn_blocking(move || health(&sources))
                .await
                .unwrap_or_else(|error| (false, format!("health check failed: {error}\n")));
            let status = if healthy {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            respond(&mut stream, status, &body).await
        }
        _ => respond(&mut stream, "404 Not Found", "/metrics or /health\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// How many keys under `prefix` are waiting: those `waiting` accepts.
fn backlog(blobs: &dyn BlobStore, prefix: &str, waiting: fn(&str) -> bool) -> Option<f64> {
    match blobs.list(prefix) {
        Ok(keys) => Some(keys.iter().filter(|key| waiting(key)).count() as f64),
        Err(error) => {
            warn!(%error, prefix, "metrics: could not list a backlog");
            None
        }
    }
}

/// `VmRSS` (bytes) and `Threads` of this process, on Linux.
fn process_status() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    (field("VmRSS:").map(|kib| kib * 1024.0), field("Threads:"))
}

fn render(sources: &MetricsSources) -> String {
    let blobs = &*sources.blobs;
    let (rss, threads) = process_status();
    let gauges = [
        (
            "bibgate_inbox_backlog",
            "Connexion exports in the inbox, waiting for the processor.",
            backlog(blobs, INBOX, |key| parse_inbox_key(key).is_some()),
        ),
        (
            "bibgate_drop_backlog",
            "Files in the drop folders, waiting to be imported.",
            backlog(blobs, DROP, |key| drop_candidate(key).is_some()),
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory of the process.",
            rss,
        ),
        ("process_threads", "Threads of the process.", threads),
    ];
    let present: Vec<(&str, &str, f64)> = gauges
        .iter()
        .filter_map(|(name, help, value)| value.map(|value| (*name, *help, value)))
        .collect();
    bibgate_inbox::metrics::global().render(&present)
}

/// The key of the blob store's health probe.
const PROBE_KEY: &str = "health/probe";

fn health(sources: &MetricsSources) -> (bool, String) {
    let blobs = sources.blobs.clone();
    let blob_probe: Probe = Arc::new(move || {
        let stamp = bibgate_inbox::now_unix().to_string();
        blobs
            .put(PROBE_KEY, stamp.as_bytes())
            .and_then(|()| blobs.delete(PROBE_KEY).map(|_| ()))
            .map_err(|error| error.to_string())
    });
    let mut healthy = true;
    let mut body = String::new();
    for (name, probe) in sources.probes.iter().chain([&("blobs", blob_probe)]) {
        match probe() {
            Ok(()) => body.push_str(&format!("{name}: writable\n")),
            Err(error) => {
                healthy = false;
                body.push_str(&format!("{name}: NOT writable: {error}\n"));
            }
        }
    }
    (healthy, body)
}
