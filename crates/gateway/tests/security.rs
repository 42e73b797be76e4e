//! Issue 7 §5 through the socket: logon id lock-out, password rotation without a restart,
//! the TLS listener, and what the logs at the default level never contain.
//!
//! The log tests install one global tracing subscriber (INFO, the level `bibgate serve`
//! uses by default) that writes into a buffer shared by every test of this binary; each
//! test looks for its own secrets, which are unique to it.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bibgate_gateway::{Config, Listeners, LogonBackoff, LogonLockout, TlsClient, TlsServer};
use bibgate_store::{BlobStore, Store};
use common::*;

/// Everything logged at INFO and above by this test binary.
fn logs() -> String {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buffer
    });
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn send_with(harness: &Harness, logon: &str, password: &str, record: &[u8]) -> String {
    text(&exchange(harness.addr, &desktop_request(logon, password, record)).await)
}

fn is_success(reply: &str) -> bool {
    reply.starts_with(SUCCESS)
}

/// A logon id is locked after repeated failures: even the right password then gets the
/// ordinary logon-failed reply, other logon ids are not affected, the lock is logged at
/// warn with the logon id only, and it expires.
#[tokio::test]
async fn a_logon_id_is_locked_after_repeated_failures_and_unlocked_after_the_period() {
    logs();
    let harness = Harness::start(Config {
        logon_lockout: LogonLockout {
            threshold: 3,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(2),
            ..LogonLockout::default()
        },
        // Only the lock-out is under test: no per-address delays.
        logon_backoff: LogonBackoff {
            threshold: 1_000,
            ..LogonBackoff::default()
        },
        ..config()
    })
    .await;
    let wrong = "wrong-Lockout-pw-5150";
    // A success caches the logon; the cache must not bypass a lock later.
    assert!(is_success(
        &send_with(&harness, BETA, PASSWORD, &record_bytes(5001, "Lock 1.")).await
    ));
    // Two failures and a success: the success clears the count.
    for _ in 0..2 {
        let reply = send_with(&harness, BETA, wrong, &record_bytes(5002, "Lock 2.")).await;
        assert_eq!(refusal(&reply), LOGON_FAILED);
    }
    assert!(is_success(
        &send_with(&harness, BETA, PASSWORD, &record_bytes(5003, "Lock 3.")).await
    ));
    for _ in 0..2 {
        let reply = send_with(&harness, BETA, wrong, &record_bytes(5002, "Lock 2.")).await;
        assert_eq!(refusal(&reply), LOGON_FAILED);
    }
    assert!(
        is_success(&send_with(&harness, BETA, PASSWORD, &record_bytes(5004, "Lock 4.")).await),
        "two failures after a success do not lock"
    );
    // Three failures in a row lock the logon id.
    for _ in 0..3 {
        let reply = send_with(&harness, BETA, wrong, &record_bytes(5002, "Lock 2.")).await;
        assert_eq!(refusal(&reply), LOGON_FAILED);
    }
    let locked_at = std::time::Instant::now();
    let received = format!("received/{BETA}/");
    let before = (harness.count(BETA), harness.blobs.list(&received).unwrap());
    let reply = send_with(&harness, BETA, PASSWORD, &record_bytes(5005, "Lock 5.")).await;
    assert_eq!(
        refusal(&reply),
        LOGON_FAILED,
        "the right password is refused while locked"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        (harness.count(BETA), harness.blobs.list(&received).unwrap()),
        before,
        "nothing received or imported while locked"
    );
    // Another logon id (same client address) is not locked.
    assert!(is_success(
        &send_with(&harness, ALPHA, PASSWORD, &record_bytes(5006, "Lock 6.")).await
    ));
    // The lock expires.
    tokio::time::sleep(Duration::from_millis(2_100).saturating_sub(locked_at.elapsed())).await;
    assert!(is_success(
        &send_with(&harness, BETA, PASSWORD, &record_bytes(5005, "Lock 5.")).await
    ));
    harness.stop().await;
    let logs = logs();
    let warning = logs
        .lines()
        .find(|line| line.contains("logon id locked"))
        .expect("the lock is logged");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains(BETA), "{warning}");
    assert!(!logs.contains(wrong), "the wrong password is never logged");
}

/// Two shims on one store (two tasks of the service): a lock imposed by failures on one
/// holds on the other, and `profile unlock` (the shared locks' `unlock`) lifts it on both
/// within the locks' cache time, long before the lock would have ended.
#[tokio::test]
async fn a_lock_holds_on_every_shim_and_unlock_lifts_it_everywhere() {
    logs();
    let config = Config {
        logon_lockout: LogonLockout {
            threshold: 3,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(3_600),
            ..LogonLockout::default()
        },
        logon_backoff: LogonBackoff {
            threshold: 1_000,
            ..LogonBackoff::default()
        },
        ..config()
    };
    let harness = Harness::start(config.clone()).await;
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other.local_addr().unwrap();
    let (stop_other, stopped) = tokio::sync::oneshot::channel::<()>();
    let other_server = tokio::spawn(bibgate_gateway::run(
        other,
        async move {
            let _ = stopped.await;
        },
        harness.services.clone(),
        config,
    ));
    let send_to = |addr, password: &'static str, number| async move {
        text(
            &exchange(
                addr,
                &desktop_request(BETA, password, &record_bytes(number, "Shared.")),
            )
            .await,
        )
    };
    let wrong = "wrong-Shared-pw-7731";
    for _ in 0..3 {
        assert_eq!(
            refusal(&send_to(harness.addr, wrong, 7001).await),
            LOGON_FAILED
        );
    }
    assert_eq!(
        refusal(&send_to(other_addr, PASSWORD, 7002).await),
        LOGON_FAILED,
        "the other shim refuses the right password: the lock is shared"
    );
    let locks = bibgate_store::BlobLogonLocks::new(harness.blobs.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    use bibgate_store::LogonLocks;
    let held = locks.locks(BETA, now).unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].address.as_deref(), Some("127.0.0.1"));
    assert_eq!(locks.unlock(BETA, now).unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(is_success(&send_to(other_addr, PASSWORD, 7003).await));
    assert!(
        is_success(&send_to(harness.addr, PASSWORD, 7004).await),
        "the shim that imposed the lock forgets it once it is lifted"
    );
    // Counting starts again: three failures lock again, on the other shim at once and on
    // this one once its cache of the locks (read a moment ago, empty) is read again.
    for _ in 0..3 {
        assert_eq!(
            refusal(&send_to(other_addr, wrong, 7005).await),
            LOGON_FAILED
        );
    }
    assert_eq!(
        refusal(&send_to(other_addr, PASSWORD, 7006).await),
        LOGON_FAILED
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        refusal(&send_to(harness.addr, PASSWORD, 7006).await),
        LOGON_FAILED
    );
    let _ = stop_other.send(());
    other_server.await.unwrap();
    harness.stop().await;
}

/// A password rotation on a running shim: the new password works at once, the previous one
/// until its expiry (not longer, even though it was cached), and the server never restarts.
#[tokio::test]
async fn a_rotated_password_is_accepted_with_the_previous_one_until_it_expires() {
    let harness = Harness::start(config()).await;
    let new_password = "new-Rotation-pw-8086";
    // The old password is verified and cached.
    assert!(is_success(
        &send_with(&harness, ALPHA, PASSWORD, &record_bytes(6001, "Rotate 1.")).await
    ));
    assert!(is_success(
        &send_with(&harness, ALPHA, PASSWORD, &record_bytes(6002, "Rotate 2.")).await
    ));
    assert_eq!(
        refusal(
            &send_with(
                &harness,
                ALPHA,
                new_password,
                &record_bytes(6003, "Rotate 3.")
            )
            .await
        ),
        LOGON_FAILED
    );
    // Rotate while the server runs, keeping the old password for 5 seconds.
    let mut profile = bibgate_import::connexion_profile(&*harness.store, ALPHA).unwrap();
    let rotated_at = now_unix();
    bibgate_import::auth::rotate(&mut profile, cheap_hash(new_password), 5, rotated_at);
    harness.store.put_profile(&profile).unwrap();
    let expires = rotated_at + 5;
    // During the grace period both are accepted.
    assert!(is_success(
        &send_with(
            &harness,
            ALPHA,
            new_password,
            &record_bytes(6004, "Rotate 4.")
        )
        .await
    ));
    assert!(is_success(
        &send_with(&harness, ALPHA, PASSWORD, &record_bytes(6005, "Rotate 5.")).await
    ));
    assert!(is_success(
        &send_with(
            &harness,
            ALPHA,
            new_password,
            &record_bytes(6006, "Rotate 6.")
        )
        .await
    ));
    assert!(is_success(
        &send_with(&harness, ALPHA, PASSWORD, &record_bytes(6007, "Rotate 7.")).await
    ));
    assert!(now_unix() < expires, "the grace period checks ran in time");
    // After the expiry only the new one is.
    while now_unix() < expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        refusal(&send_with(&harness, ALPHA, PASSWORD, &record_bytes(6008, "Rotate 8.")).await),
        LOGON_FAILED
    );
    assert!(is_success(
        &send_with(
            &harness,
            ALPHA,
            new_password,
            &record_bytes(6009, "Rotate 9.")
        )
        .await
    ));
    assert_eq!(
        refusal(&send_with(&harness, ALPHA, PASSWORD, &record_bytes(6010, "Rotate 10.")).await),
        LOGON_FAILED
    );
    // The same server (same address, never stopped) answered every request.
    assert_eq!(harness.count(ALPHA), 7);
    harness.stop().await;
}

/// Issue 18 item 8: after `profile set ID logon-id X`, X logs on to the profile's
/// institution (even while the institution code's logon was cached) and the institution
/// code no longer does.
#[tokio::test]
async fn a_changed_logon_id_logs_on_and_the_institution_code_no_longer_does() {
    let harness = Harness::start(config()).await;
    assert!(is_success(
        &send_with(
            &harness,
            ALPHA,
            PASSWORD,
            &record_bytes(6201, "Logon id 1.")
        )
        .await
    ));
    let mut profile = bibgate_import::connexion_profile(&*harness.store, ALPHA).unwrap();
    profile.logon_id = "ALPHA-CATALOGUING".into();
    harness.store.put_profile(&profile).unwrap();
    let reply = send_with(
        &harness,
        "ALPHA-CATALOGUING",
        PASSWORD,
        &record_bytes(6202, "Logon id 2."),
    )
    .await;
    assert!(is_success(&reply), "{reply}");
    assert_eq!(
        refusal(
            &send_with(
                &harness,
                ALPHA,
                PASSWORD,
                &record_bytes(6203, "Logon id 3.")
            )
            .await
        ),
        LOGON_FAILED
    );
    assert_eq!(
        refusal(
            &send_with(
                &harness,
                "ALPHA-CATALOGUING",
                "wrong",
                &record_bytes(6204, "Logon id 4.")
            )
            .await
        ),
        LOGON_FAILED
    );
    assert_eq!(harness.count(ALPHA), 2);
    harness.stop().await;
}

/// A rotation with no grace period ends the old password at once, cached or not.
#[tokio::test]
async fn a_rotation_without_grace_refuses_the_old_password_at_once() {
    let harness = Harness::start(config()).await;
    let new_password = "new-NoGrace-pw-6502";
    assert!(is_success(
        &send_with(
            &harness,
            ALPHA,
            PASSWORD,
            &record_bytes(6101, "No grace 1.")
        )
        .await
    ));
    let mut profile = bibgate_import::connexion_profile(&*harness.store, ALPHA).unwrap();
    bibgate_import::auth::rotate(&mut profile, cheap_hash(new_password), 0, now_unix());
    harness.store.put_profile(&profile).unwrap();
    assert_eq!(
        refusal(
            &send_with(
                &harness,
                ALPHA,
                PASSWORD,
                &record_bytes(6102, "No grace 2.")
            )
            .await
        ),
        LOGON_FAILED
    );
    assert!(is_success(
        &send_with(
            &harness,
            ALPHA,
            new_password,
            &record_bytes(6103, "No grace 3.")
        )
        .await
    ));
    harness.stop().await;
}

/// At the default level, an import through the shim logs what happened (export id,
/// institution, outcome) but neither the password nor the record's content; a refused logon
/// does not log its password either.
#[tokio::test]
async fn the_default_logs_hold_no_password_and_no_record_content() {
    logs();
    let harness = Harness::start(config()).await;
    let title = "Quokka-Zanzibar-Log-Title-4711";
    let wrong = "wrong-Log-pw-1984";
    let record = record_bytes(7001, title);
    let reply = send_with(&harness, ALPHA, PASSWORD, &record).await;
    assert!(is_success(&reply), "{reply}");
    let mms = mms_of(&reply);
    assert_eq!(
        refusal(&send_with(&harness, ALPHA, wrong, &record_bytes(7002, title)).await),
        LOGON_FAILED
    );
    harness.stop().await;
    let logs = logs();
    assert!(logs.contains("export received"), "the capture works");
    assert!(logs.contains(&mms), "the outcome is logged");
    assert!(!logs.contains(PASSWORD), "no password in the logs");
    assert!(!logs.contains(wrong), "no refused password in the logs");
    assert!(!logs.contains(title), "no record content in the logs");
    assert!(!logs.contains("(OCoLC)7001"), "no record field in the logs");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A server with a plain and a TLS listener (and the processor) over a temporary data
/// directory with the demo consortium.
struct TlsHarness {
    plain: std::net::SocketAddr,
    tls: std::net::SocketAddr,
    store: Arc<bibgate_store_local::SqliteStore>,
    _dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    processor: tokio::task::JoinHandle<()>,
    stop_processor: tokio::sync::oneshot::Sender<()>,
}

impl TlsHarness {
    async fn start() -> TlsHarness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            bibgate_store_local::SqliteStore::open(&dir.path().join("db.sqlite")).unwrap(),
        );
        init_demo(&*store);
        let blobs =
            Arc::new(bibgate_store_local::FolderBlobStore::new(dir.path().join("blobs")).unwrap());
        let services = bibgate_inbox::Services::new(store.clone(), blobs)
            .with_delivery(bibgate_inbox::ResultDelivery::Store);
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
        let server_tls =
            TlsServer::from_pem_files(&fixture("cert.pem"), &fixture("key.pem")).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(bibgate_gateway::run_listeners(
            Listeners {
                plain: Some(plain),
                tls: Some((tls, server_tls)),
            },
            async move {
                let _ = stopped.await;
            },
            services.clone(),
            Config {
                idle_timeout: Duration::from_secs(2),
                ..config()
            },
        ));
        let (stop_processor, processor_stopped) = tokio::sync::oneshot::channel::<()>();
        let processor =
            bibgate_gateway::spawn_processor(services, processor_config(), async move {
                let _ = processor_stopped.await;
            });
        TlsHarness {
            plain: plain_addr,
            tls: tls_addr,
            store,
            _dir: dir,
            stop,
            server,
            processor,
            stop_processor,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), self.server)
            .await
            .unwrap()
            .unwrap();
        let _ = self.stop_processor.send(());
        tokio::time::timeout(Duration::from_secs(15), self.processor)
            .await
            .unwrap()
            .unwrap();
    }
}

async fn send_tls(
    addr: std::net::SocketAddr,
    tls: &TlsClient,
    record: &[u8],
) -> Result<String, bibgate_gateway::Error> {
    bibgate_gateway::send_tls(
        &addr.to_string(),
        tls,
        ALPHA,
        PASSWORD,
        record,
        bibgate_gateway::LengthEncoding::Byte,
        Duration::from_secs(30),
    )
    .await
}

/// An export over TLS gets its host message; the plain listener of the same server keeps
/// working; a client that does not speak TLS on the TLS port gets no host message and
/// nothing is imported; a client expecting another server name refuses the certificate.
#[tokio::test]
async fn an_export_over_tls_gets_the_host_message() {
    let harness = TlsHarness::start().await;
    let client = TlsClient::new("localhost", Some(&fixture("ca.pem"))).unwrap();
    let reply = send_tls(harness.tls, &client, &record_bytes(8001, "Over TLS."))
        .await
        .unwrap();
    assert!(is_success(&reply), "{reply}");
    assert_eq!(harness.store.count_records(ALPHA).unwrap(), 1);
    // By IP address too (the certificate names 127.0.0.1).
    let by_ip = TlsClient::new("127.0.0.1", Some(&fixture("ca.pem"))).unwrap();
    let reply = send_tls(harness.tls, &by_ip, &record_bytes(8002, "Over TLS by IP."))
        .await
        .unwrap();
    assert!(is_success(&reply), "{reply}");
    // The plain listener of the same server.
    let reply = text(
        &exchange(
            harness.plain,
            &desktop_request(ALPHA, PASSWORD, &record_bytes(8003, "Plain.")),
        )
        .await,
    );
    assert!(is_success(&reply), "{reply}");
    assert_eq!(harness.store.count_records(ALPHA).unwrap(), 3);

    // Plain text on the TLS port: no host message, closed, nothing imported.
    let mut stream = tokio::net::TcpStream::connect(harness.tls).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(&desktop_request(
            ALPHA,
            PASSWORD,
            &record_bytes(8004, "Plain on TLS."),
        ))
        .await
        .unwrap();
    let answer = closed_within(&mut stream, Duration::from_secs(10))
        .await
        .expect("the server closes a connection that does not speak TLS");
    let shown = String::from_utf8_lossy(&answer);
    assert!(!shown.contains(SUCCESS), "{shown:?}");
    assert!(!shown.contains("Logon"), "{shown:?}");
    assert!(!shown.contains("Import"), "{shown:?}");
    // At most a TLS alert record (content type 21), never protocol text.
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    // A silent client on the TLS port is closed after the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(harness.tls).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(10))
            .await
            .is_some()
    );

    // Another server name: the client refuses the certificate.
    let wrong_name = TlsClient::new("bibgate.example.org", Some(&fixture("ca.pem"))).unwrap();
    let error = send_tls(harness.tls, &wrong_name, &record_bytes(8005, "Wrong name."))
        .await
        .unwrap_err();
    assert!(
        matches!(error, bibgate_gateway::Error::Connect { .. }),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.store.count_records(ALPHA).unwrap(), 3);
    harness.stop().await;
}

/// Bad TLS files are errors naming the file, never panics, and never quote key material.
#[test]
fn bad_tls_files_are_reported() {
    let key_text = std::fs::read_to_string(fixture("key.pem")).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    for (cert, key) in [
        (fixture("key.pem"), fixture("key.pem")),
        (fixture("cert.pem"), fixture("cert.pem")),
        (fixture("missing.pem"), fixture("key.pem")),
        (fixture("cert.pem"), fixture("README.md")),
        (fixture("README.md"), fixture("key.pem")),
    ] {
        let error = TlsServer::from_pem_files(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(!error.contains(key_body), "{error}");
        assert!(
            error.contains(".pem") || error.contains("README"),
            "{error}"
        );
    }
    // The CA is not this server's certificate: its key does not fit.
    assert!(TlsServer::from_pem_files(&fixture("ca.pem"), &fixture("key.pem")).is_err());
    assert!(TlsClient::new("localhost", Some(&fixture("missing.pem"))).is_err());
    assert!(TlsClient::new("not a name!", Some(&fixture("ca.pem"))).is_err());
}
