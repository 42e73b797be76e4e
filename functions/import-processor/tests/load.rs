//! Concurrency and load on the AWS backend (issue 7 §3): the Connexion shim over S3 and
//! DynamoDB on moto, the handler fed by moto's real SQS messages from pollers running
//! beside it (four, standing in for concurrent Lambda invocations). The same scenarios as
//! the embedded `crates/gateway/tests/load.rs`, with the same driver (included from
//! `crates/gateway/examples/load/driver.rs`): 100 clients exporting one new record at the
//! same moment, and a mixed load of exports and drop files.
//!
//! moto is slow (one Python process), so the mixed load is short and light by default:
//! `BIBGATE_AWS_LOAD_SECONDS` (30) sets its duration. Its latency is printed but not held
//! to a bound: moto's `TransactWriteItems` deep-copies the whole table on every call
//! (`moto/dynamodb/models/__init__.py`), so on moto every commit gets slower as the table
//! grows, which says nothing about DynamoDB; correctness and the RSS bound are asserted.
//! The shim polls S3 for results at most every 2 s (not 250 ms): 100 waiting clients
//! polling at 4/s would take most of moto's capacity, and the handler runs in this
//! process, so its result signal answers the shim as soon as the result is stored.
//! Fails, never skips, without moto (`scripts/test.sh` starts it). The tests of this file
//! run one at a time.

mod common;

use bibgate_test_support::load as driver;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bibgate_import_processor::{Processor, Settings};
use bibgate_inbox::Services;
use bibgate_store::{BlobStore, ImportResult, MmsId, Outcome, Store};
use bibgate_store_aws::testing::{self, Queue};
use bibgate_store_aws::{DynamoStore, S3BlobStore};
use common::{ALPHA, PASSWORD, Shim, acknowledge, init_demo, sqs_event, take_test_event};
use tokio::sync::Mutex;

/// One test at a time: they share moto, and the mixed load measures the whole process.
static SERIAL: Mutex<()> = Mutex::const_new(());

const CLIENTS: usize = 100;
/// Pollers handing messages to the handler at once.
const POLLERS: usize = 4;
/// The longest wait for one reply (moto under 100 clients is slow).
const LIMIT: Duration = Duration::from_secs(180);

/// Table, bucket and queue on moto, the handler and its pollers, and the shim.
struct Stack {
    store: Arc<DynamoStore>,
    blobs: Arc<S3BlobStore>,
    services: Services,
    addr: String,
    stop_pollers: Arc<AtomicBool>,
    pollers: Vec<std::thread::JoinHandle<()>>,
    /// Messages the handler returned as failed (delivered again after the visibility
    /// timeout). Transient failures are part of the design (E5); on moto they come from its
    /// HTTP 500s ("dictionary changed size during iteration" when a write lands while
    /// `TransactWriteItems` deep-copies the table) once the SDK's retries are spent.
    failed: Arc<AtomicUsize>,
    shim: Shim,
}

/// Like `common::Loop`, with a visibility timeout of 60 s (longer than a handler call
/// here, so that a message is not delivered to a second poller while the first works on
/// it, and short enough for a failed message to come back within a reply's wait).
fn aws() -> (
    Arc<DynamoStore>,
    Arc<S3BlobStore>,
    Arc<Queue>,
    Services,
    Processor,
) {
    let context = testing::context();
    let blobs = Arc::new(testing::fresh_bucket(&context));
    let store = Arc::new(testing::fresh_store(&context).with_marc_bucket((*blobs).clone()));
    init_demo(&*store);
    let queue = Arc::new(Queue::create(&context, 60));
    testing::notify_queue(&blobs, &queue, &["inbox/", "drop/"]);
    take_test_event(&queue);
    let services = Services::new(store.clone(), blobs.clone());
    let processor = Processor::new(
        services.clone(),
        Settings {
            reserve: Duration::ZERO,
            ..Settings::new(blobs.bucket())
        },
    );
    (store, blobs, queue, services, processor)
}

impl Stack {
    async fn start() -> Stack {
        let (store, blobs, queue, services, processor) =
            tokio::task::spawn_blocking(aws).await.unwrap();
        let stop_pollers = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let pollers = (0..POLLERS)
            .map(|_| {
                let (queue, processor, stop, failed) = (
                    queue.clone(),
                    processor.clone(),
                    stop_pollers.clone(),
                    failed.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let messages = queue.receive(10, 1);
                        if !messages.is_empty() {
                            let response = processor
                                .handle(&sqs_event(&messages), &|| Duration::from_secs(900));
                            failed.fetch_add(response.batch_item_failures.len(), Ordering::Relaxed);
                            acknowledge(&queue, &messages, &response);
                        }
                    }
                })
            })
            .collect();
        let shim = Shim::start(
            services.clone(),
            bibgate_gateway::Config {
                reply_deadline: LIMIT,
                result_poll_max: Duration::from_secs(2),
                // The clients stand for libraries of their own but share one loopback
                // address, and exports on moto take seconds: let them all in at once.
                max_connections_per_address: CLIENTS,
                ..bibgate_gateway::Config::default()
            },
        )
        .await;
        Stack {
            store,
            blobs,
            services,
            addr: shim.addr.clone(),
            stop_pollers,
            pollers,
            failed,
            shim,
        }
    }

    /// Stops the shim and the pollers.
    async fn stop(self) {
        eprintln!(
            "handler: {} messages failed and were delivered again",
            self.failed.load(Ordering::Relaxed)
        );
        self.shim.stop(Duration::from_secs(20)).await;
        self.stop_pollers.store(true, Ordering::Relaxed);
        let pollers = self.pollers;
        tokio::task::spawn_blocking(move || {
            for poller in pollers {
                poller.join().expect("a poller panicked");
            }
        })
        .await
        .unwrap();
    }

    /// Runs blocking storage calls off the runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&DynamoStore, &S3BlobStore) -> T + Send + 'static,
    ) -> T {
        let (store, blobs) = (self.store.clone(), self.blobs.clone());
        tokio::task::spawn_blocking(move || f(&store, &blobs))
            .await
            .unwrap()
    }

    /// Waits (up to 60 s) until the inbox is empty, then returns the stored results of the
    /// exports kept under `received/<ALPHA>/`.
    async fn results_once_done(&self) -> Vec<ImportResult> {
        self.blocking(|store, blobs| {
            let started = Instant::now();
            while !blobs.list("inbox/").unwrap().is_empty() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the inbox did not empty"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            blobs
                .list(&format!("received/{ALPHA}/"))
                .unwrap()
                .iter()
                .map(|key| {
                    let export_id = key.rsplit('/').next().unwrap().trim_end_matches(".mrc");
                    store
                        .result(export_id)
                        .unwrap()
                        .unwrap_or_else(|| panic!("no stored result for {export_id}"))
                })
                .collect()
        })
        .await
    }
}

/// 100 clients send the same bytes at once: one export (the shim's retry window gives the
/// 99 others the first export's id), one add, every reply the same; nothing merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_clients_send_the_same_new_record_at_once() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start().await;
    let number = 7_000_001;
    let record = common::record_bytes(number, "Popular.");
    let started = Instant::now();
    let replies =
        driver::simultaneous(&stack.addr, ALPHA, PASSWORD, vec![record; CLIENTS], LIMIT).await;
    let took = started.elapsed();
    let mms = driver::one_mms_id(replies);
    let results = stack.results_once_done().await;
    assert_eq!(results.len(), 1, "one export: {results:?}");
    assert_eq!(results[0].outcome, Outcome::Added);
    let checked = mms.clone();
    stack
        .blocking(move |store, blobs| {
            driver::only_record(store, ALPHA, number, &checked);
            assert_eq!(blobs.list("results/").unwrap().len(), 1);
            let stored = store.record(ALPHA, &MmsId(checked)).unwrap().unwrap();
            assert_eq!(stored.revision, 1, "nothing merged into it");
        })
        .await;
    eprintln!("100 identical exports answered in {took:?}");
    stack.stop().await;
}

/// 100 clients send copies of one new record at once, each a little different: 100
/// exports, one add and 99 merges into it from concurrent handler invocations, every
/// reply naming the same MMS ID, no merge lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_clients_send_copies_of_one_new_record_at_once() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start().await;
    let number = 7_000_002;
    let records: Vec<Vec<u8>> = (0..CLIENTS)
        .map(|i| driver::record(number, &format!("Copy of client {i}.")))
        .collect();
    let started = Instant::now();
    let replies = driver::simultaneous(&stack.addr, ALPHA, PASSWORD, records, LIMIT).await;
    let took = started.elapsed();
    let mms = driver::one_mms_id(replies);
    let results = stack.results_once_done().await;
    assert_eq!(results.len(), CLIENTS);
    driver::one_add_then_merges(&results, &mms);
    stack
        .blocking(move |store, _| {
            driver::only_record(store, ALPHA, number, &mms);
            let stored = store.record(ALPHA, &MmsId(mms.clone())).unwrap().unwrap();
            assert_eq!(stored.revision, CLIENTS as u64, "no merge was lost");
            assert_eq!(
                store.versions(ALPHA, &MmsId(mms)).unwrap().len(),
                CLIENTS - 1
            );
        })
        .await;
    eprintln!("100 copies answered in {took:?}");
    stack.stop().await;
}

/// Exports and drop files together for `BIBGATE_AWS_LOAD_SECONDS` (30 s): no error, every
/// reply and report right, the record count equal to the distinct OCLC numbers, peak RSS
/// flat (the driver's bound; latency is printed, see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_load_of_exports_and_drop_files() {
    let _serial = SERIAL.lock().await;
    let duration = driver::Load::seconds_from_env("BIBGATE_AWS_LOAD_SECONDS", 30);
    let stack = Stack::start().await;
    let load = driver::Load {
        duration,
        clients: 3,
        think: Duration::from_millis(200),
        drop_every: Duration::from_secs(10),
        drop_records: 20,
        institution: ALPHA.into(),
        password: PASSWORD.into(),
        reply_timeout: LIMIT,
        settle_timeout: Duration::from_secs(180),
        interval: Duration::from_secs((duration.as_secs() / 6).max(5)),
    };
    let (report, mut problems) =
        driver::run_and_verify(load, &stack.addr, &stack.services, Duration::from_secs(300)).await;
    problems.extend(report.rss_flatness());
    // Printed, not asserted (see the module docs).
    println!(
        "latency bound (3× the first third's p99 + 50 ms), not asserted on moto: {:?}",
        report.latency_flatness(3.0, Duration::from_millis(50))
    );
    let count = stack
        .blocking(|store, _| store.count_records(ALPHA).unwrap())
        .await;
    println!(
        "records: {count} in {ALPHA}, {} distinct OCLC numbers imported",
        report.distinct_numbers()
    );
    driver::assert_passed(&report, &problems);
    stack.stop().await;
}
