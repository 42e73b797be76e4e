//! Round-trip latency of the gateway: an in-process server and processor over a temporary
//! data directory (SQLite and blob folder on disk, fsync on), real Connexion requests over
//! loopback.
//!
//! ```text
//! cargo run --release -p bibgate-gateway --example latency -- [exports-per-client] [--data-dir DIR] [--clean] [--documents]
//! ```
//!
//! Prints p50, p99 and max for 1, 10 and 50 concurrent clients sending back to back
//! (closed loop: saturation), and for 50 clients each exporting every 500 ms (open loop).
//! Each export is a distinct new record on its own connection, as the Connexion client
//! does. Results are delivered through the store, as `bibgate serve` does on the embedded
//! backend; `--documents` writes and polls result documents instead (the Lambda function's
//! delivery, and the embedded one before), the baseline to compare with. `WORKERS=n` sets
//! the processor's workers.
//!
//! Every line ends with the disk's own flush latency during that phase, measured by a probe
//! in the same run (a small file created and fsynced every 20 ms): the baseline that tells a
//! slow phase of the gateway from a phase during which the disk stalled.
//!
//! Each run's data goes to a new folder inside DIR (default: `bibgate-latency` in the
//! system's temporary folder), which is kept, like a server's data directory, and printed;
//! `--clean` deletes it at the end instead. Deleting is not the default because on ext4
//! without a journal (this project's test machines) creating files stays slow for a minute
//! or more after many files near them were deleted (the inode allocator skips recently
//! deleted inodes), so a run right after another one's clean-up measures that clean-up, not
//! the gateway. Delete old run folders when no run is due for a few minutes.

// Records (about 560 bytes, a full-level record with an OCLC number) come from the load
// driver.
use bibgate_test_support::load as driver;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bibgate_gateway::{Config, LengthEncoding, ProcessorConfig};
use bibgate_inbox::{ResultDelivery, Services};
use bibgate_store::Store;
use bibgate_store_local::{FolderBlobStore, SqliteStore};

/// The allocator `bibgate serve` ships with (see the workspace manifest), so that the numbers
/// are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const INSTITUTION: &str = "01BENCH_ALPHA";
const PASSWORD: &str = "bench-password";

async fn export(addr: &str, number: u64) -> Duration {
    let bytes = driver::record(number, "Latency benchmark.");
    let started = Instant::now();
    let reply = bibgate_gateway::send(
        addr,
        INSTITUTION,
        PASSWORD,
        &bytes,
        LengthEncoding::Byte,
        Duration::from_secs(30),
    )
    .await
    .expect("a reply");
    let elapsed = started.elapsed();
    assert!(
        reply.starts_with("The record has been processed successfully."),
        "{reply}"
    );
    elapsed
}

/// The disk's own flush latency, measured beside the gateway in the same run (the baseline
/// for the round trips): a thread creates a small file and fsyncs it every 20 ms in a folder
/// of its own. An export waits for flushes (its inbox file, the batch's commit), so a flush
/// stall holds every export in flight; a phase whose probe saw one is told apart by it.
struct DiskProbe {
    samples: Arc<Mutex<Vec<(Instant, Duration)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiskProbe {
    fn start(dir: std::path::PathBuf) -> DiskProbe {
        std::fs::create_dir_all(&dir).expect("probe folder");
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let mut file =
                        std::fs::File::create_new(dir.join(format!("{n}"))).expect("probe file");
                    file.write_all(&[b'x'; 300]).expect("probe write");
                    file.sync_all().expect("probe fsync");
                    samples
                        .lock()
                        .expect("probe samples")
                        .push((started, started.elapsed()));
                    n += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        DiskProbe {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The median and the longest flush that started at or after `since`.
    fn since(&self, since: Instant) -> (Duration, Duration) {
        let mut flushes: Vec<Duration> = self
            .samples
            .lock()
            .expect("probe samples")
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, took)| *took)
            .collect();
        flushes.sort();
        match (flushes.get(flushes.len() / 2), flushes.last()) {
            (Some(median), Some(max)) => (*median, *max),
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }
}

impl Drop for DiskProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn report(label: &str, mut samples: Vec<Duration>, started: Instant, probe: &DiskProbe) {
    let wall = started.elapsed();
    let (flush_median, flush_max) = probe.since(started);
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: {} exports in {:.2} s ({:.0}/s): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         [disk probe flush: median {:.1} ms, max {:.1} ms]",
        samples.len(),
        wall.as_secs_f64(),
        samples.len() as f64 / wall.as_secs_f64(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(samples[samples.len() - 1]),
        ms(flush_median),
        ms(flush_max),
    );
}

#[tokio::main]
async fn main() {
    let mut per_client: u64 = 10;
    let mut parent = std::env::temp_dir().join("bibgate-latency");
    let mut clean = false;
    let mut delivery = ResultDelivery::Store;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--documents" => delivery = ResultDelivery::Documents,
            "--clean" => clean = true,
            "--data-dir" => parent = args.next().expect("--data-dir DIR").into(),
            _ => per_client = arg.parse().expect("exports per client: a number"),
        }
    }
    std::fs::create_dir_all(&parent).expect("data dir parent");
    let dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&parent)
        .expect("data dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("bibgate.sqlite")).expect("store"));
    bibgate_test_support::seed_institution(&*store, INSTITUTION, 7001, PASSWORD);
    let blobs = Arc::new(FolderBlobStore::new(dir.path().join("blobs")).expect("blobs"));
    let services = Services::new(store.clone(), blobs).with_delivery(delivery);
    println!("results delivered through {delivery:?}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let processor = bibgate_gateway::spawn_processor(
        services.clone(),
        ProcessorConfig {
            workers: std::env::var("WORKERS")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or(ProcessorConfig::default().workers),
            ..ProcessorConfig::default()
        },
        std::future::pending(),
    );
    let server = tokio::spawn(bibgate_gateway::run(
        listener,
        async move {
            let _ = stopped.await;
        },
        services,
        Config::default(),
    ));

    // Warm-up: the first logon pays the argon2 check; later ones hit the logon cache.
    let warm = export(&addr, 1).await;
    println!(
        "first export (argon2 logon check): {:.1} ms",
        warm.as_secs_f64() * 1000.0
    );

    let probe = DiskProbe::start(dir.path().join("disk-probe"));

    let mut next = 1_000u64;
    let n = per_client * 5;
    let started = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..n {
        next += 1;
        samples.push(export(&addr, next).await);
    }
    report("1 client", samples, started, &probe);

    for clients in [10u64, 50] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for client in 0..clients {
            let addr = addr.clone();
            let base = next + client * per_client;
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                for i in 0..per_client {
                    samples.push(export(&addr, base + i).await);
                }
                samples
            }));
        }
        next += clients * per_client;
        let mut samples = Vec::new();
        for task in tasks {
            samples.extend(task.await.expect("client"));
        }
        report(&format!("{clients} clients"), samples, started, &probe);
    }
    // Open loop: 50 cataloguers each exporting one record every 500 ms (100 exports/s),
    // instead of each sending the next export the moment the previous reply arrived.
    let clients = 50u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let addr = addr.clone();
        let base = next + client * per_client;
        tasks.push(tokio::spawn(async move {
            // Spread the clients over the period.
            tokio::time::sleep(Duration::from_millis(client * 10)).await;
            let mut ticker = tokio::time::interval(Duration::from_millis(500));
            let mut samples = Vec::new();
            for i in 0..per_client {
                ticker.tick().await;
                samples.push(export(&addr, base + i).await);
            }
            samples
        }));
    }
    next += clients * per_client;
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("client"));
    }
    report(
        "50 clients, one export every 500 ms each",
        samples,
        started,
        &probe,
    );
    let _ = next;
    println!(
        "records stored: {}",
        store.count_records(INSTITUTION).expect("count")
    );
    let _ = stop.send(());
    let _ = server.await;
    processor.abort();
    drop(probe);
    if !clean {
        println!("data kept in {}", dir.keep().display());
    }
}
