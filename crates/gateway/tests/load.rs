//! Concurrency and load on the embedded backend (issue 7 §3), through the socket: 100
//! clients exporting one new record at the same moment, and a mixed load of exports and
//! drop-folder batch files with latency and RSS over time (the driver is shared with
//! `examples/load`, which runs the long version).
//!
//! `BIBGATE_LOAD_SECONDS` sets the mixed load's duration (20 s by default, for CI; 300 s
//! for the long run). The tests of this file run one at a time (RSS is the process's).

mod common;

use bibgate_test_support::load as driver;
use std::time::Duration;

use bibgate_gateway::{Config, ProcessorConfig};
use bibgate_store::{BlobStore, ImportResult, MmsId, Outcome, Store};
use common::*;
use tokio::sync::Mutex;

/// One test at a time: the mixed load measures the whole process.
static SERIAL: Mutex<()> = Mutex::const_new(());

const CLIENTS: usize = 100;
const LIMIT: Duration = Duration::from_secs(30);

/// The stored results of the exports kept under `received/<institution>/`.
fn stored_results(harness: &Harness, institution: &str) -> Vec<ImportResult> {
    let mut results = Vec::new();
    for key in harness
        .blobs
        .list(&format!("received/{institution}/"))
        .unwrap()
    {
        let export_id = key
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".mrc")
            .to_string();
        results.push(
            harness
                .store
                .result(&export_id)
                .unwrap()
                .unwrap_or_else(|| panic!("no stored result for {export_id}")),
        );
    }
    results
}

/// Waits (up to 10 s) until the inbox is empty.
async fn inbox_empties(harness: &Harness) {
    for _ in 0..500 {
        if harness.blobs.list("inbox/").unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the inbox did not empty within 10 s");
}

/// 100 clients send the same bytes at once. The design gives one export: the retry
/// window maps the same bytes from the same institution to the first export's id, so the
/// record is imported once (one add) and the other 99 clients wait for and get that
/// export's result; nothing merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_clients_send_the_same_new_record_at_once() {
    let _serial = SERIAL.lock().await;
    let harness = Harness::start(Config::default()).await;
    let number = 7_000_001;
    let record = record_bytes(number, "Popular.");
    let replies = driver::simultaneous(
        &harness.addr_text,
        ALPHA,
        PASSWORD,
        vec![record; CLIENTS],
        LIMIT,
    )
    .await;
    let mms = driver::one_mms_id(replies);
    driver::only_record(&*harness.store, ALPHA, number, &mms);
    inbox_empties(&harness).await;
    // One export: one received copy, one stored result (an add), and no result document
    // (the harness delivers results through the store, as `bibgate serve` does).
    let results = stored_results(&harness, ALPHA);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].outcome, Outcome::Added);
    assert!(harness.blobs.list("results/").unwrap().is_empty());
    let stored = harness.store.record(ALPHA, &MmsId(mms)).unwrap().unwrap();
    assert_eq!(stored.revision, 1, "nothing merged into it");
    harness.stop().await;
}

/// 100 clients send the same new record at once, each copy a little different (a note
/// names the client), so the retry window does not apply: 100 exports, one add and 99
/// merges into it, every reply naming the same MMS ID, and no merge lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_clients_send_copies_of_one_new_record_at_once() {
    let _serial = SERIAL.lock().await;
    let harness = Harness::start(Config::default()).await;
    let number = 7_000_002;
    let records: Vec<Vec<u8>> = (0..CLIENTS)
        .map(|i| driver::record(number, &format!("Copy of client {i}.")))
        .collect();
    let replies = driver::simultaneous(&harness.addr_text, ALPHA, PASSWORD, records, LIMIT).await;
    let mms = driver::one_mms_id(replies);
    driver::only_record(&*harness.store, ALPHA, number, &mms);
    inbox_empties(&harness).await;
    let results = stored_results(&harness, ALPHA);
    assert_eq!(results.len(), CLIENTS);
    driver::one_add_then_merges(&results, &mms);
    let stored = harness
        .store
        .record(ALPHA, &MmsId(mms.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision, CLIENTS as u64, "no merge was lost");
    assert_eq!(
        harness.store.versions(ALPHA, &MmsId(mms)).unwrap().len(),
        CLIENTS - 1
    );
    harness.stop().await;
}

/// Exports and drop files together for `BIBGATE_LOAD_SECONDS` (20 s): no error, every
/// reply and report right, the record count equal to the distinct OCLC numbers, p99
/// latency and peak RSS flat (see the driver's docs for the bounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_load_of_exports_and_drop_files() {
    let _serial = SERIAL.lock().await;
    let duration = driver::Load::seconds_from_env("BIBGATE_LOAD_SECONDS", 20);
    let mut harness = Harness::start_without_processor(Config::default()).await;
    harness.start_processor(ProcessorConfig::default());
    bibgate_inbox::ensure_drop_folders(&harness.services).unwrap();
    let load = driver::Load {
        duration,
        clients: 8,
        think: Duration::from_millis(20),
        drop_every: Duration::from_secs(4),
        drop_records: 200,
        institution: ALPHA.into(),
        password: PASSWORD.into(),
        reply_timeout: LIMIT,
        settle_timeout: Duration::from_secs(30),
        interval: Duration::from_secs((duration.as_secs() / 10).max(2)),
    };
    let (report, mut problems) = driver::run_and_verify(
        load,
        &harness.addr_text,
        &harness.services,
        Duration::from_secs(120),
    )
    .await;
    problems.extend(report.flatness(3.0, Duration::from_millis(50)));
    println!(
        "records: {} in {ALPHA}, {} distinct OCLC numbers imported",
        harness.count(ALPHA),
        report.distinct_numbers()
    );
    driver::assert_passed(&report, &problems);
    harness.stop().await;
}

/// Exports are imported and answered while a large drop file is imported: the drop import
/// runs beside the inbox passes, not in their loop (before, every export waited for the
/// whole file, and replied "pending" when that took more than 8 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exports_are_answered_while_a_large_drop_file_is_imported() {
    let _serial = SERIAL.lock().await;
    let mut harness = Harness::start_without_processor(Config::default()).await;
    harness.start_processor(ProcessorConfig {
        drop_interval: Duration::from_millis(50),
        drop_settle: Duration::ZERO,
        ..ProcessorConfig::default()
    });
    let warm = harness
        .send(ALPHA, &driver::record(8_000_000, "Warm-up."))
        .await;
    assert!(warm.starts_with(SUCCESS), "{warm}");
    let records = 10_000u64;
    let mut file = Vec::new();
    for i in 0..records {
        file.extend(driver::record(8_100_000 + i, "Dropped."));
    }
    let report_key = format!("reports/{ALPHA}/large.mrc.results.jsonl");
    let written = std::time::Instant::now();
    harness
        .blobs
        .put(&format!("drop/{ALPHA}/large.mrc"), &file)
        .unwrap();
    let mut latencies = Vec::new();
    let mut number = 8_200_000;
    let imported = loop {
        assert!(
            written.elapsed() < Duration::from_secs(120),
            "no report within 120 s"
        );
        if harness.blobs.get(&report_key).unwrap().is_some() {
            break written.elapsed();
        }
        number += 1;
        let sent = std::time::Instant::now();
        let reply = harness
            .send(ALPHA, &driver::record(number, "Exported."))
            .await;
        latencies.push(sent.elapsed());
        assert!(reply.starts_with(SUCCESS), "{reply}");
    };
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "{records} dropped records imported in {:.1} s; {} exports meanwhile, slowest {:.0} ms",
        imported.as_secs_f64(),
        latencies.len(),
        slowest.as_secs_f64() * 1000.0
    );
    assert!(
        slowest <= (imported / 2).max(Duration::from_secs(1)),
        "an export waited {slowest:?} while the drop file took {imported:?}"
    );
    assert_eq!(harness.count(ALPHA), 1 + records + latencies.len() as u64);
    harness.stop().await;
}
