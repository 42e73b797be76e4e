//! One drop file through [`Processor::handle`] on the local AWS stand-ins (moto; DynamoDB
//! from `scripts/dynamo_standin.py`) behind `scripts/latency_proxy.py`:
//! the AWS requests per imported record by operation, the wall time and the overlap factor
//! (injected latency summed over all requests / wall time), per variant. Run by
//! `scripts/bench-aws-drop.sh`, which starts moto and the proxy and points
//! `AWS_ENDPOINT_URL` at the proxy.
//!
//! ```text
//! bench_drop [--records N] [--chunk N] [--concurrency N] [--parallel N]
//!            [--variants before,baseline,after,fanout]
//! bench_drop setup TABLE BUCKET FILE [--records N]
//! ```
//!
//! `setup` prepares a run of the function as a process (`bibgate-import-processor poll`,
//! whose peak RSS the script measures): the test consortium in TABLE, then the same drop
//! file as `drop/01DEMO_ALPHA/FILE` in BUCKET (whose notification starts the import).
//!
//! Variants, each on a fresh table and bucket with the same file (N records with distinct
//! OCLC numbers, all new):
//!
//! - `before`: what the store did before commits were pipelined: a `lookup` per record
//!   (one `BatchGetItem` of its index items, then a `GetItem` of each matched record and of
//!   its lock) and the commits one after another;
//! - `baseline`: the batch's lookups in one round (`lookup_many`), commits one after
//!   another (commit concurrency 1), one chunk at a time;
//! - `after`: the same with `--concurrency` commits in flight (default 16);
//! - `fanout`: the file fanned out into chunk tasks of `--fanout-chunk` records (default
//!   100), which `--parallel` invocations (default 20, threads of this process, as the
//!   drop queue's concurrent invocations) take as their tasks appear, each with
//!   `--concurrency` commits in flight; the wall time runs from the file's event to the
//!   report.
//!
//! Prints a table per variant and one `BENCH {json}` line each for scripts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use bibgate_import_processor::{Processor, Settings};
use bibgate_inbox::Services;
use bibgate_inbox::layout::report_key;
use bibgate_store::{
    BlobStore, Commit, EditorLock, ImportResult, IndexEntry, Institution, MmsId, Profile,
    RecordVersion, Result, StaffAccount, Store, StoredRecord,
};
use bibgate_store_aws::testing;
use bibgate_store_aws::{DEFAULT_COMMIT_CONCURRENCY, DynamoStore};
use bibgate_test_support::{ALPHA, encode, init_demo, oclc_record};
use serde_json::{Value, json};

/// First OCLC number of the file (far from the test suites' numbers).
const FIRST_NUMBER: u64 = 610_000_000;

struct Options {
    records: usize,
    chunk: Option<usize>,
    concurrency: usize,
    parallel: usize,
    fanout_chunk: usize,
    variants: Vec<String>,
}

fn options() -> Options {
    let mut options = Options {
        records: 2_000,
        chunk: None,
        concurrency: DEFAULT_COMMIT_CONCURRENCY,
        parallel: 20,
        fanout_chunk: 100,
        variants: vec![
            "before".into(),
            "baseline".into(),
            "after".into(),
            "fanout".into(),
        ],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        let number = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{arg} takes a number, not {value:?}"))
        };
        match arg.as_str() {
            "--records" => options.records = number(),
            "--chunk" => options.chunk = Some(number()),
            "--concurrency" => options.concurrency = number(),
            "--parallel" => options.parallel = number().max(1),
            "--fanout-chunk" => options.fanout_chunk = number().max(1),
            "--variants" => options.variants = value.split(',').map(str::to_owned).collect(),
            other => panic!(
                "unknown argument {other:?}; usage: bench_drop [--records N] [--chunk N] \
                 [--concurrency N] [--parallel N] [--fanout-chunk N] \
                 [--variants before,baseline,after,fanout]"
            ),
        }
    }
    options
}

/// The drop file: `n_records` Connexion-like records with an ISBN, an author and a title of
/// a few words (the search terms a real record has), each with its own OCLC number.
fn drop_file(n_records: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for record_idx in 0..n_records as u64 {
        let number = FIRST_NUMBER + record_idx;
        let title = format!(
            "Bench volume {record_idx} of the consortium load : a study in {} parts",
            record_idx % 97
        );
        let mut record = oclc_record(number, b' ', Some("20240101120000.0"), &title);
        let isbn = format!("978{:010}", 1_000_000 + record_idx);
        record.push_data("020", b' ', b' ', &[(b'a', &isbn)]);
        record.push_data("100", b'1', b' ', &[(b'a', "Author, Bench.")]);
        bytes.extend(encode(&record));
    }
    bytes
}

/// One HTTP/1.0 request to the proxy's control path; the response body.
fn control(method: &str, path: &str) -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL names the proxy");
    let authority = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = TcpStream::connect(&authority).expect("the proxy answers");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("the request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the response is read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.contains(" 200 "), "{method} {path}: {head}");
    body.to_owned()
}

/// The store as it read before `lookup_many` was one round for the batch: every [`Store`]
/// method goes to the DynamoDB store, except `lookup_many`, which is the port's default (a
/// `lookup` per record: `find_by_oclc`, then `record` and `lock` of each match).
struct OneLookupPerRecord(Arc<DynamoStore>);

impl Store for OneLookupPerRecord {
    fn add_staff(&self, account: &StaffAccount) -> Result<()> {
        self.0.add_staff(account)
    }
    fn staff(&self, user: &str) -> Result<Option<StaffAccount>> {
        self.0.staff(user)
    }
    fn staff_list(&self) -> Result<Vec<StaffAccount>> {
        self.0.staff_list()
    }
    fn remove_staff(&self, user: &str) -> Result<bool> {
        self.0.remove_staff(user)
    }
    fn put_institution(&self, institution: &Institution) -> Result<()> {
        self.0.put_institution(institution)
    }
    fn institutions(&self) -> Result<Vec<Institution>> {
        self.0.institutions()
    }
    fn institution(&self, code: &str) -> Result<Option<Institution>> {
        self.0.institution(code)
    }
    fn put_profile(&self, profile: &Profile) -> Result<()> {
        self.0.put_profile(profile)
    }
    fn delete_profile(&self, id: &str) -> Result<bool> {
        self.0.delete_profile(id)
    }
    fn profiles(&self, institution: &str) -> Result<Vec<Profile>> {
        self.0.profiles(institution)
    }
    fn allocate_mms_id(&self, zone: &str) -> Result<MmsId> {
        self.0.allocate_mms_id(zone)
    }
    fn allocate_mms_ids(&self, zone: &str, count: usize) -> Result<Vec<MmsId>> {
        self.0.allocate_mms_ids(zone, count)
    }
    fn find_by_oclc(&self, zone: &str, numbers: &[u64]) -> Result<Vec<IndexEntry>> {
        self.0.find_by_oclc(zone, numbers)
    }
    fn record(&self, zone: &str, mms_id: &MmsId) -> Result<Option<StoredRecord>> {
        self.0.record(zone, mms_id)
    }
    fn versions(&self, zone: &str, mms_id: &MmsId) -> Result<Vec<RecordVersion>> {
        self.0.versions(zone, mms_id)
    }
    fn count_records(&self, zone: &str) -> Result<u64> {
        self.0.count_records(zone)
    }
    fn list_records(&self, zone: &str, after: Option<&MmsId>, limit: usize) -> Result<Vec<MmsId>> {
        self.0.list_records(zone, after, limit)
    }
    fn find_by_term(&self, zone: &str, term: &str, limit: usize) -> Result<Vec<MmsId>> {
        self.0.find_by_term(zone, term, limit)
    }
    fn duplicates(&self, zone: &str) -> Result<Vec<(u64, Vec<IndexEntry>)>> {
        self.0.duplicates(zone)
    }
    fn commit(&self, commit: &Commit) -> Result<()> {
        self.0.commit(commit)
    }
    fn commit_batch(&self, commits: &[Commit]) -> Result<Vec<Result<()>>> {
        self.0.commit_batch(commits)
    }
    fn put_lock(&self, lock: &EditorLock) -> Result<()> {
        self.0.put_lock(lock)
    }
    fn release_lock(&self, zone: &str, mms_id: &MmsId) -> Result<bool> {
        self.0.release_lock(zone, mms_id)
    }
    fn lock(&self, zone: &str, mms_id: &MmsId) -> Result<Option<EditorLock>> {
        self.0.lock(zone, mms_id)
    }
    fn locks(&self, zone: &str) -> Result<Vec<EditorLock>> {
        self.0.locks(zone)
    }
    fn result(&self, export_id: &str) -> Result<Option<ImportResult>> {
        self.0.result(export_id)
    }
    fn batch_results(&self, batch_id: &str) -> Result<Vec<ImportResult>> {
        self.0.batch_results(batch_id)
    }
    fn institution_results(
        &self,
        institution: &str,
        since_unix: i64,
        limit: usize,
    ) -> Result<Vec<ImportResult>> {
        self.0.institution_results(institution, since_unix, limit)
    }
}

/// The SQS event S3 sends for a new object.
fn object_created(bucket: &str, key: &str) -> SqsEvent {
    let body = json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
    }]});
    serde_json::from_value(json!({"Records": [{
        "messageId": "bench-1",
        "receiptHandle": "bench",
        "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
        "awsRegion": "us-east-1",
    }]}))
    .expect("an SQS event")
}

/// One variant's run: the proxy's counters over the handler's call, and its wall time.
fn run(variant: &str, options: &Options, file: &[u8]) -> Value {
    let context = testing::context();
    let blobs = Arc::new(testing::fresh_bucket(&context));
    let concurrency = if variant == "after" || variant == "fanout" {
        options.concurrency
    } else {
        1
    };
    let dynamo = Arc::new(
        testing::fresh_store(&context)
            .with_marc_bucket((*blobs).clone())
            .with_commit_concurrency(concurrency),
    );
    let store: Arc<dyn Store> = if variant == "before" {
        Arc::new(OneLookupPerRecord(dynamo.clone()))
    } else {
        dynamo.clone()
    };
    init_demo(&*store);
    let key = format!("drop/{ALPHA}/bench-{variant}.mrc");
    blobs.put(&key, file).expect("the drop file is stored");
    let defaults = Settings::new(blobs.bucket());
    let fan_out = variant == "fanout";
    let settings = Settings {
        chunk: if fan_out {
            options.fanout_chunk
        } else {
            options.chunk.unwrap_or(defaults.chunk)
        },
        fan_out,
        max_parallel_chunks: options.parallel,
        reserve: Duration::ZERO,
        ..defaults
    };
    let chunk = settings.chunk;
    let processor = Processor::new(Services::new(store.clone(), blobs.clone()), settings);
    let event = object_created(blobs.bucket(), &key);

    control("POST", "/__proxy/reset");
    let started = Instant::now();
    let response = processor.handle(&event, &|| Duration::from_secs(900));
    assert!(
        response.batch_item_failures.is_empty(),
        "{variant}: the drop file failed"
    );
    // The bench's own listings of released chunk tasks (what S3's notifications to the drop
    // queue do in production) are taken out of the counts.
    let own_lists = if fan_out {
        run_chunk_tasks(&processor, &blobs, options.parallel)
    } else {
        0
    };
    let wall = started.elapsed();
    let mut stats: Value = serde_json::from_str(&control("GET", "/__proxy/stats")).expect("json");
    if let Some(lists) = stats["requests"]["s3"]["ListObjectsV2"].as_u64() {
        stats["requests"]["s3"]["ListObjectsV2"] = json!(lists.saturating_sub(own_lists));
        // Their injected latency too: the overlap factor counts the function's requests only.
        let own_ms = own_lists as f64 * stats["latency_ms"]["s3"].as_f64().unwrap_or(0.0);
        let s3_ms = stats["injected_ms"]["s3"].as_f64().unwrap_or(0.0);
        let total_ms = stats["injected_total_ms"].as_f64().unwrap_or(0.0);
        stats["injected_ms"]["s3"] = json!((s3_ms - own_ms).max(0.0));
        stats["injected_total_ms"] = json!((total_ms - own_ms).max(0.0));
    }
    let report = blobs
        .get(&report_key(ALPHA, &format!("bench-{variant}.mrc")))
        .expect("the report is readable")
        .expect("the report is written");
    let n_reported = report
        .split(|&byte| byte == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let n_records = store.count_records(ALPHA).expect("the zone is counted") as usize;
    assert_eq!(n_reported, options.records, "{variant}: report lines");
    assert_eq!(n_records, options.records, "{variant}: records imported");
    json!({
        "variant": variant,
        "records": n_records,
        "chunk": chunk,
        "parallel": if fan_out { options.parallel } else { 1 },
        "commit_concurrency": concurrency,
        "wall_ms": wall.as_secs_f64() * 1000.0,
        "stats": stats,
    })
}

/// The fanned-out file's chunk tasks (`drop/<institution>/.chunks/…`, each released as an
/// S3 object whose event would reach the drop queue) handed to `parallel` worker threads as
/// they appear, until the report is written and every task taken has finished. Returns how
/// many listings (one `ListObjectsV2` each: a handful of tasks) it made.
fn run_chunk_tasks(
    processor: &Processor,
    blobs: &Arc<bibgate_store_aws::S3BlobStore>,
    parallel: usize,
) -> u64 {
    let mut lists = 0u64;
    let prefix = format!("drop/{ALPHA}/.chunks/");
    let (send, receive) = std::sync::mpsc::channel::<String>();
    let receive = std::sync::Mutex::new(receive);
    let in_flight = std::sync::atomic::AtomicUsize::new(0);
    let redelivered = std::sync::atomic::AtomicUsize::new(0);
    let mut taken = std::collections::HashSet::new();
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let next = receive.lock().expect("the task channel").recv();
                    let Ok(key) = next else { return };
                    let event = object_created(blobs.bucket(), &key);
                    // A failed task is delivered again, as the drop queue would (counted).
                    let mut deliveries = 0;
                    loop {
                        deliveries += 1;
                        let response = processor.handle(&event, &|| Duration::from_secs(900));
                        if response.batch_item_failures.is_empty() {
                            break;
                        }
                        assert!(deliveries < 5, "chunk task {key} failed {deliveries} times");
                        redelivered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
        loop {
            lists += 1;
            for key in blobs.list(&prefix).expect("the chunk tasks are listed") {
                if taken.insert(key.clone()) {
                    in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    send.send(key).expect("a worker takes the task");
                }
            }
            if in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                lists += 1;
                let left = blobs.list(&prefix).expect("listed");
                if left.iter().all(|key| taken.contains(key)) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(send);
    });
    let redelivered = redelivered.load(std::sync::atomic::Ordering::SeqCst);
    if redelivered > 0 {
        println!("fanout: {redelivered} chunk task deliveries failed and were delivered again");
    }
    lists
}

fn print_variant(result: &Value, baseline: Option<&Value>) {
    let records = result["records"].as_f64().unwrap_or(1.0).max(1.0);
    let wall_ms = result["wall_ms"].as_f64().unwrap_or(0.0);
    let injected = result["stats"]["injected_total_ms"].as_f64().unwrap_or(0.0);
    println!(
        "{}: {} records, chunk {}, {} chunk(s) at once, commit concurrency {}",
        result["variant"].as_str().unwrap_or("?"),
        records,
        result["chunk"],
        result["parallel"],
        result["commit_concurrency"]
    );
    let mut total = 0u64;
    if let Some(services) = result["stats"]["requests"].as_object() {
        for (service, operations) in services {
            for (operation, count) in operations.as_object().into_iter().flatten() {
                let count = count.as_u64().unwrap_or(0);
                total += count;
                println!(
                    "  {:<40} {:>7} {:>8.3}/record",
                    format!("{service}.{operation}"),
                    count,
                    count as f64 / records
                );
            }
        }
    }
    println!(
        "  {:<40} {:>7} {:>8.3}/record",
        "all requests",
        total,
        total as f64 / records
    );
    println!(
        "  wall {:.1} s ({:.0} records/s); injected latency {:.1} s; overlap factor {:.2}",
        wall_ms / 1000.0,
        records / (wall_ms / 1000.0),
        injected / 1000.0,
        injected / wall_ms
    );
    println!(
        "  requests in flight at the proxy: at most {}, {:.1} on average (Little's law)",
        result["stats"]["max_in_flight"],
        result["stats"]["mean_in_flight"].as_f64().unwrap_or(0.0)
    );
    let served_dynamodb = result["stats"]["upstream_ms"]["dynamodb"]
        .as_f64()
        .unwrap_or(0.0);
    println!(
        "  time the DynamoDB server took (after the injected latency; waits for moto's \
         one-at-a-time lock included) {:.1} s",
        served_dynamodb / 1000.0
    );
    if let Some(baseline) = baseline {
        let base_wall = baseline["wall_ms"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  vs {}: wall {:.2}x ({:.1}x faster)",
            baseline["variant"].as_str().unwrap_or("?"),
            wall_ms / base_wall,
            base_wall / wall_ms
        );
    }
}

/// `setup TABLE BUCKET FILE [--records N]` (see the module docs).
fn setup(mut args: impl Iterator<Item = String>) {
    let usage = "usage: bench_drop setup TABLE BUCKET FILE [--records N]";
    let (Some(table), Some(bucket), Some(file)) = (args.next(), args.next(), args.next()) else {
        panic!("{usage}");
    };
    let records = match (args.next().as_deref(), args.next()) {
        (Some("--records"), Some(n)) => n.parse().unwrap_or_else(|_| panic!("{usage}")),
        (None, _) => 2_000,
        _ => panic!("{usage}"),
    };
    let context = testing::context();
    init_demo(&DynamoStore::new(&context, &table));
    bibgate_store_aws::S3BlobStore::new(&context, &bucket)
        .put(&format!("drop/{ALPHA}/{file}"), &drop_file(records))
        .expect("the drop file is stored");
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("setup") {
        setup(std::env::args().skip(2));
        return;
    }
    let options = options();
    let file = drop_file(options.records);
    let mut results: Vec<Value> = Vec::new();
    for variant in &options.variants {
        assert!(
            ["before", "baseline", "after", "fanout"].contains(&variant.as_str()),
            "unknown variant {variant:?}"
        );
        let result = run(variant, &options, &file);
        println!("BENCH {result}");
        results.push(result);
    }
    println!();
    let baseline = results
        .iter()
        .find(|result| result["variant"] == "baseline")
        .cloned();
    for result in &results {
        let compare = baseline
            .as_ref()
            .filter(|baseline| baseline["variant"] != result["variant"]);
        print_variant(result, compare);
    }
}
