//! Shared test harness: a server and (optionally) a processor over a temporary data
//! directory with the demo consortium, plus record builders and raw socket helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bibgate_gateway::{Config, ProcessorConfig};
use bibgate_inbox::{ResultDelivery, ResultDoc, Services};
use bibgate_store::{BlobStore, Store};
use bibgate_store_local::{FolderBlobStore, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use bibgate_test_support::*;

/// A running server (and processor) over a temporary data directory.
pub struct Harness {
    pub addr: SocketAddr,
    pub addr_text: String,
    pub services: Services,
    pub store: Arc<SqliteStore>,
    pub blobs: Arc<FolderBlobStore>,
    pub dir: tempfile::TempDir,
    server_stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    processor_stop: Option<oneshot::Sender<()>>,
    processor: Option<JoinHandle<()>>,
}

/// Test defaults: production values except shorter waits.
pub fn config() -> Config {
    Config {
        reply_deadline: Duration::from_secs(20),
        ..Config::default()
    }
}

/// Processor test defaults.
pub fn processor_config() -> ProcessorConfig {
    ProcessorConfig {
        poll_interval: Duration::from_millis(20),
        drop_interval: Duration::from_millis(50),
        drop_settle: Duration::from_millis(100),
        workers: 4,
        ..ProcessorConfig::default()
    }
}

impl Harness {
    /// Server and processor, delivering results through the store, as `bibgate serve`
    /// does on the embedded backend.
    pub async fn start(config: Config) -> Harness {
        Harness::start_with(config, ResultDelivery::Store).await
    }

    /// Server and processor, delivering results through `delivery`.
    pub async fn start_with(config: Config, delivery: ResultDelivery) -> Harness {
        let mut harness = Harness::start_without_processor_with(config, delivery).await;
        harness.start_processor(processor_config());
        harness
    }

    /// Server only (results through the store): exports stay in the inbox.
    pub async fn start_without_processor(config: Config) -> Harness {
        Harness::start_without_processor_with(config, ResultDelivery::Store).await
    }

    /// Server only, results through `delivery`: exports stay in the inbox.
    pub async fn start_without_processor_with(config: Config, delivery: ResultDelivery) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("bibgate.sqlite")).unwrap());
        init_demo(&*store);
        let blobs = Arc::new(FolderBlobStore::new(dir.path().join("blobs")).unwrap());
        // As `bibgate serve` wires it: logon locks shared through the data directory.
        let services = Services::new(store.clone(), blobs.clone())
            .with_delivery(delivery)
            .with_logon_locks(Arc::new(bibgate_store::BlobLogonLocks::new(blobs.clone())));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(bibgate_gateway::run(
            listener,
            async move {
                let _ = rx.await;
            },
            services.clone(),
            config,
        ));
        Harness {
            addr,
            addr_text: addr.to_string(),
            services,
            store,
            blobs,
            dir,
            server_stop: Some(tx),
            server: Some(server),
            processor_stop: None,
            processor: None,
        }
    }

    /// Starts the processor.
    pub fn start_processor(&mut self, config: ProcessorConfig) {
        let (tx, rx) = oneshot::channel::<()>();
        self.processor = Some(bibgate_gateway::spawn_processor(
            self.services.clone(),
            config,
            async move {
                let _ = rx.await;
            },
        ));
        self.processor_stop = Some(tx);
    }

    /// Stops the server and then the processor, waiting for both.
    pub async fn stop(mut self) {
        if let Some(tx) = self.server_stop.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(15), server)
                .await
                .expect("server stops")
                .unwrap();
        }
        if let Some(tx) = self.processor_stop.take() {
            let _ = tx.send(());
        }
        if let Some(processor) = self.processor.take() {
            tokio::time::timeout(Duration::from_secs(15), processor)
                .await
                .expect("processor stops")
                .unwrap();
        }
    }

    /// Sends a record with the demo password through the library client.
    pub async fn send(&self, logon: &str, record: &[u8]) -> String {
        bibgate_gateway::send(
            &self.addr_text,
            logon,
            PASSWORD,
            record,
            bibgate_gateway::LengthEncoding::Byte,
            Duration::from_secs(30),
        )
        .await
        .unwrap()
    }

    /// The delivered result of an export (its result document, or its stored result when
    /// the store is the delivery), waiting up to 10 s for it.
    pub async fn result_doc(&self, export_id: &str) -> ResultDoc {
        for _ in 0..500 {
            match self.services.delivery {
                ResultDelivery::Documents => {
                    if let Some(bytes) = self
                        .blobs
                        .get(&bibgate_inbox::layout::result_key(export_id))
                        .unwrap()
                    {
                        return ResultDoc::from_json(&bytes).unwrap();
                    }
                }
                ResultDelivery::Store => {
                    if let Some(result) = self.store.result(export_id).unwrap() {
                        return ResultDoc::from_result(&result);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no result for {export_id}");
    }

    pub fn count(&self, zone: &str) -> u64 {
        self.store.count_records(zone).unwrap()
    }
}

/// A single-byte-length field.
pub fn field(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, 0x40 + u8::try_from(value.len()).unwrap()];
    out.extend_from_slice(value);
    out
}

/// The desktop client's request: `A` and `P` with single-byte lengths, then the record.
pub fn desktop_request(logon: &str, password: &str, record: &[u8]) -> Vec<u8> {
    let mut out = field(b'A', logon.as_bytes());
    out.extend(field(b'P', password.as_bytes()));
    out.extend_from_slice(record);
    out
}

/// Reads until a NUL (included) or the end of the stream; panics after `limit`.
pub async fn read_reply(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            out.extend_from_slice(&buf[..n]);
            if out.contains(&0) {
                return;
            }
        }
    })
    .await
    .expect("a reply in time");
    out
}

/// What the server does within `wait`: `Some(bytes)` if it closed (bytes sent before the
/// close), `None` if the connection is still open with nothing more sent.
pub async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    match outcome {
        Ok(()) => Some(out),
        Err(_) => {
            assert!(
                out.is_empty(),
                "unexpected bytes {:?}",
                out.escape_ascii().to_string()
            );
            None
        }
    }
}

/// Connects, writes `bytes`, and reads one reply.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_reply(&mut stream, Duration::from_secs(30)).await
}

/// The reply text without its NUL; asserts it ends with exactly one NUL.
pub fn text(reply: &[u8]) -> String {
    assert_eq!(
        reply.last(),
        Some(&0),
        "reply {:?} must end with NUL",
        reply.escape_ascii().to_string()
    );
    assert_eq!(reply.iter().filter(|&&b| b == 0).count(), 1);
    String::from_utf8(reply[..reply.len() - 1].to_vec()).unwrap()
}

/// The MMS ID at the end of a success message.
pub fn mms_of(text: &str) -> String {
    text.rsplit("MMS ID: ")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A refused logon's reply text without its export line, which it must have (issue 16:
/// the export id is in every reply that is not a success; a refusal's id does not name the
/// institution), or, past the budget of stored refusals of one address, the line saying it
/// was not recorded.
pub fn refusal(text: &str) -> String {
    let not_recorded = format!("\n{}", bibgate_gateway::REFUSAL_NOT_RECORDED);
    if let Some(head) = text.strip_suffix(&not_recorded) {
        return head.to_string();
    }
    let Some((head, export_id)) = text.split_once("\nExport ID: ") else {
        panic!("no export id in {text:?}");
    };
    assert!(export_id.starts_with("logon-"), "{text:?}");
    assert!(!export_id.contains(char::is_whitespace), "{text:?}");
    head.to_string()
}

/// A failed import's reply text without its export line, which it must have (issue 16).
pub fn failure(text: &str) -> String {
    let Some((head, export_id)) = text.split_once("\nExport ID: ") else {
        panic!("no export id in {text:?}");
    };
    assert!(
        !export_id.is_empty() && !export_id.contains(char::is_whitespace),
        "{text:?}"
    );
    head.to_string()
}
