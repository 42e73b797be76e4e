//! A mixed load on the embedded backend: export clients and drop-folder batch files against
//! an in-process shim and processor (production settings) over a temporary data directory
//! (SQLite and blob folder on disk, fsync on), over loopback; prints p50/p99 per interval
//! and RSS over time, then checks the outcome (see `driver.rs`).
//!
//! ```text
//! cargo run --release -p bibgate-gateway --example load -- --seconds 300
//! ```
//!
//! Options: `--seconds N` (300), `--clients N` (8), `--think-ms N` (20), `--drop-every N`
//! seconds (5), `--drop-records N` (200), `--interval N` seconds (a tenth of the run).
//! Warnings of the shim and the processor go to stderr (`RUST_LOG` changes the level).
//! Exits 1 when a check fails.

/// The allocator `bibgate serve` ships with (see the workspace manifest), so that the RSS
/// and latencies printed are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bibgate_test_support::load as driver;
use std::sync::Arc;
use std::time::Duration;

use bibgate_gateway::{Config, ProcessorConfig};
use bibgate_inbox::{ResultDelivery, Services};
use bibgate_store::Store;
use bibgate_store_local::{FolderBlobStore, SqliteStore};

const INSTITUTION: &str = "01LOAD_ALPHA";
const PASSWORD: &str = "load-password";

fn option(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let seconds = option("--seconds", 300);
    let load = driver::Load {
        duration: Duration::from_secs(seconds),
        clients: usize::try_from(option("--clients", 8)).unwrap_or(8),
        think: Duration::from_millis(option("--think-ms", 20)),
        drop_every: Duration::from_secs(option("--drop-every", 5)),
        drop_records: usize::try_from(option("--drop-records", 200)).unwrap_or(200),
        institution: INSTITUTION.into(),
        password: PASSWORD.into(),
        reply_timeout: Duration::from_secs(30),
        settle_timeout: Duration::from_secs(60),
        interval: Duration::from_secs(option("--interval", (seconds / 10).max(1))),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("bibgate.sqlite")).expect("store"));
    bibgate_test_support::seed_institution(&*store, INSTITUTION, 7002, PASSWORD);
    let blobs = Arc::new(FolderBlobStore::new(dir.path().join("blobs")).expect("blobs"));
    // Results through the store, as `bibgate serve` delivers them on the embedded backend.
    let services = Services::new(store.clone(), blobs).with_delivery(ResultDelivery::Store);
    bibgate_inbox::ensure_drop_folders(&services).expect("drop folders");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop_processor, processor_stopped) = tokio::sync::oneshot::channel::<()>();
    let processor = bibgate_gateway::spawn_processor(
        services.clone(),
        ProcessorConfig::default(),
        async move {
            let _ = processor_stopped.await;
        },
    );
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bibgate_gateway::run(
        listener,
        async move {
            let _ = server_stopped.await;
        },
        services.clone(),
        Config::default(),
    ));
    println!(
        "mixed load for {seconds} s: {} clients (think {} ms), a drop file of {} records every {} s",
        load.clients,
        load.think.as_millis(),
        load.drop_records,
        load.drop_every.as_secs()
    );
    let report = driver::run(load, &addr, &services).await;
    println!("{}", report.table());
    let _ = stop_server.send(());
    let _ = server.await;
    let _ = stop_processor.send(());
    let _ = processor.await;
    let checked = services.clone();
    let (report, mut problems) = tokio::task::spawn_blocking(move || {
        let problems = report.verify(&checked, INSTITUTION);
        (report, problems)
    })
    .await
    .expect("verify");
    problems.extend(report.flatness(3.0, Duration::from_millis(50)));
    println!(
        "records: {} in the zone; {} distinct OCLC numbers imported with a success reply or report line, {} more exports answered \"pending\"",
        store.count_records(INSTITUTION).expect("count"),
        report.distinct_numbers(),
        report.pending.len()
    );
    if problems.is_empty() {
        println!("all checks passed");
    } else {
        for problem in &problems {
            println!("FAILED: {problem}");
        }
        std::process::exit(1);
    }
}
