//! Shared test harness: a server and (optionally) a processor over a temporary data
//! directory with the demo consortium, plus record builders and raw socket helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bibgate_gateway::{Config, ProcessorConfig};
use bibgate_inbox::{ResultDelivery, ResultDoc, Services};
use bibgate_marc::{Leader, Record};
use bibgate_store::{
    BlobStore, Commit, Expectation, ImportResult, IndexKey, Institution, MmsId, Outcome, Store,
    StoredRecord, TargetZone, ZoneKind,
};
use bibgate_store_local::{FolderBlobStore, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The demo network zone.
pub const NETWORK: &str = "01DEMO_NETWORK";
/// The main demo institution.
pub const ALPHA: &str = "01DEMO_ALPHA";
/// The second demo institution.
pub const BETA: &str = "01DEMO_BETA";
/// An institution with two Connexion profiles.
pub const GAMMA: &str = "01DEMO_GAMMA";
/// An institution whose code does not start with a digit (for decimal length encoding).
pub const DECIMAL: &str = "XDEMO_DECIMAL";
/// The password of every demo profile.
pub const PASSWORD: &str = "demo-Pa55word";

pub const SUCCESS: &str = "The record has been processed successfully.";
pub const LOGON_FAILED: &str = "Logon Failed--the Logon ID and/or password is/are not valid";

/// The password hash, computed once per test binary with cheap argon2 parameters (the
/// verifier reads the parameters from the hash).
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| cheap_hash(PASSWORD))
}

/// An argon2id hash of `password` with cheap parameters (the verifier reads them from the
/// hash).
pub fn cheap_hash(password: &str) -> String {
    let params = Params::new(64, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(
            password.as_bytes(),
            &SaltString::from_b64("YmliZ2F0ZXRlc3RzYWx0").unwrap(),
        )
        .unwrap()
        .to_string()
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Creates the demo consortium like `bibgate init`, plus GAMMA (two profiles) and DECIMAL.
pub fn init_demo(store: &dyn Store) {
    store
        .put_institution(&Institution {
            code: NETWORK.into(),
            name: "Demo network".into(),
            kind: ZoneKind::Network,
            network: None,
            numeric_code: 1,
        })
        .unwrap();
    for (i, code) in [ALPHA, BETA, GAMMA, DECIMAL].iter().enumerate() {
        store
            .put_institution(&Institution {
                code: (*code).into(),
                name: format!("Demo {code}"),
                kind: ZoneKind::Institution,
                network: Some(NETWORK.into()),
                numeric_code: 5001 + i as u16,
            })
            .unwrap();
        let profile =
            bibgate_import::default_profile(code, password_hash().into(), TargetZone::Institution);
        store.put_profile(&profile).unwrap();
        if *code == GAMMA {
            let mut second = profile.clone();
            second.id = format!("{code}-connexion-2");
            store.put_profile(&second).unwrap();
        }
    }
}

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
        let services = Services::new(store.clone(), blobs.clone()).with_delivery(delivery);
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

/// A Connexion-like record: 001/003 OCLC, optional 005, 008, 035 $a (OCoLC)N, 245.
pub fn oclc_record(number: u64, encoding_level: u8, version: Option<&str>, title: &str) -> Record {
    let mut leader = Leader::DEFAULT;
    leader.0[17] = encoding_level;
    let mut record = Record {
        leader,
        fields: Vec::new(),
    };
    record.push_control("001", format!("ocm{number:08}"));
    record.push_control("003", "OCoLC");
    if let Some(version) = version {
        record.push_control("005", version);
    }
    record.push_control("008", "240101s2024    ilu           000 0 eng d");
    record.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
    record.push_data("245", b'1', b'0', &[(b'a', title)]);
    record
}

/// ISO 2709 bytes of a record.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::new();
    bibgate_marc::iso2709::write_record(record, &mut bytes).unwrap();
    bytes
}

/// A full-level record with a 005, as bytes.
pub fn record_bytes(number: u64, title: &str) -> Vec<u8> {
    encode(&oclc_record(number, b' ', Some("20240101120000.0"), title))
}

/// A MARC-8 record whose 500 field is about 5,000 bytes on the wire and 10,005 bytes in
/// UTF-8 (`æ` is one byte in MARC-8, two in UTF-8): it cannot be converted to MARCXML.
pub fn too_long_field_record(number: u64) -> Vec<u8> {
    let mut record = oclc_record(number, b' ', None, "A record with a long note.");
    let filler = "x".repeat(5_000);
    record.push_data("500", b' ', b' ', &[(b'a', &filler)]);
    let mut bytes = encode(&record);
    let start = bytes
        .windows(filler.len())
        .position(|w| w == filler.as_bytes())
        .unwrap();
    for byte in &mut bytes[start..start + filler.len()] {
        *byte = 0xB5;
    }
    bytes[9] = b' ';
    bytes
}

/// Adds a record to a zone directly through the Store port (to set up states the import
/// cannot reach, like two records sharing an OCLC number).
pub fn seed(store: &dyn Store, zone: &str, record: &Record, keys: &[(u64, bool)]) -> MmsId {
    let mms_id = store.allocate_mms_id(zone).unwrap();
    let mut record = record.clone();
    record
        .fields
        .retain(|f| !f.tag().is("001") && !f.tag().is("003"));
    let mut stored_record = Record {
        leader: record.leader,
        fields: Vec::new(),
    };
    stored_record.push_control("001", mms_id.0.clone());
    stored_record.fields.extend(record.fields);
    let result = ImportResult {
        export_id: format!("seed-{}", mms_id.0),
        batch_id: None,
        index: None,
        institution: zone.into(),
        zone: zone.into(),
        outcome: Outcome::Added,
        host_message: SUCCESS.into(),
        reason_code: "ADDED".into(),
        mms_id: Some(mms_id.clone()),
        oclc_numbers: keys.iter().map(|(n, _)| *n).collect(),
        raw_key: String::new(),
        raw_offset: 0,
        raw_len: 0,
        received_unix: 0,
        decided_unix: 0,
        trace: Vec::new(),
        policy: None,
    };
    store
        .commit(&Commit::Add {
            expect: Expectation::default(),
            record: StoredRecord {
                zone: zone.into(),
                mms_id: mms_id.clone(),
                marc: encode(&stored_record),
                revision: 1,
                originating_version: None,
                brief_level: 10,
                linked_to_community_zone: false,
                created_unix: 0,
                updated_unix: 0,
                keys: keys
                    .iter()
                    .map(|(number, active)| IndexKey {
                        number: *number,
                        active: *active,
                    })
                    .collect(),
            },
            result,
        })
        .unwrap();
    mms_id
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
