//! `bibgate serve --metrics` (issue 19): after a scenario of exports (added, merged or
//! failed, and refused logons) and a drop file, `/metrics` parses with the Prometheus
//! text-format parser of `prometheus_client` (Python, installed by scripts/test.sh), and
//! its result counters equal the results stored, by source, institution, outcome and
//! reason; `/health` says the store and the blob folder are writable.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bibgate_inbox::layout::{drop_batch_id, stable_hash};
use bibgate_store::Store;
use bibgate_test_support::load as driver;

use crate::backup::Serve;
use crate::util::{Scratch, bibgate_in, run_ok};

const ALPHA: &str = "01DEMO_ALPHA";
const PASSWORD: &str = "metrics-Pa55word";
const LIMIT: Duration = Duration::from_secs(120);

/// The body of `GET path` on `addr`, with its status line.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Every sample of `text`, as `prometheus_client`'s parser reads it: `(name, labels)` →
/// value, labels as `k=v` joined by `,` in name order.
fn parse(text: &str) -> BTreeMap<(String, String), f64> {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}\t{labels}\t{sample.value}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test.sh installs prometheus_client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text (pip install prometheus_client?): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut parts = line.split('\t');
            let (name, labels, value) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            (
                (name.to_string(), labels.to_string()),
                value.parse().unwrap(),
            )
        })
        .collect()
}

fn sample(samples: &BTreeMap<(String, String), f64>, name: &str, labels: &str) -> f64 {
    *samples
        .get(&(name.to_string(), labels.to_string()))
        .unwrap_or_else(|| panic!("no sample {name}{{{labels}}} in {samples:#?}"))
}

#[test]
fn metrics_match_the_stored_results_after_exports_and_a_drop_file() {
    let scratch = Scratch::new("metrics");
    run_ok(bibgate_in(&scratch.data()).args(["init", "--password", PASSWORD]));
    let serve = Serve::start(
        &scratch.data(),
        &["--metrics", "127.0.0.1:0", "--drop-settle-ms", "200"],
    );
    let metrics_addr = serve
        .lines
        .iter()
        .find_map(|line| line.strip_prefix("bibgate metrics on http://"))
        .and_then(|rest| rest.split('/').next())
        .expect("the metrics address")
        .to_string();

    // Exports: 12 new, 4 of them again with another note, 3 that cannot be converted, and
    // 3 logons with a wrong password.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut records: Vec<Vec<u8>> = (0..12)
        .map(|i| driver::record(81_000_000 + i, "First."))
        .collect();
    records.extend((0..3).map(|i| driver::unconvertible(81_100_000 + i, "Bad.")));
    let mut replies = runtime.block_on(driver::simultaneous(
        &serve.addr,
        ALPHA,
        PASSWORD,
        records,
        LIMIT,
    ));
    let again = (0..4)
        .map(|i| driver::record(81_000_000 + i, "Second, revised."))
        .collect();
    replies.extend(runtime.block_on(driver::simultaneous(
        &serve.addr,
        ALPHA,
        PASSWORD,
        again,
        LIMIT,
    )));
    let wrong = runtime.block_on(driver::simultaneous(
        &serve.addr,
        ALPHA,
        "not-the-password",
        vec![driver::record(81_200_000, "x"); 3],
        LIMIT,
    ));
    for reply in replies.iter().chain(&wrong) {
        assert!(reply.is_ok(), "{reply:?}");
    }

    // A drop file of 6 records, one of which cannot be converted.
    let mut drop_bytes = Vec::new();
    for i in 0..5 {
        drop_bytes.extend(driver::record(81_300_000 + i, "Dropped."));
    }
    drop_bytes.extend(driver::unconvertible(81_300_100, "Dropped, bad."));
    let drop_dir = scratch.blobs().join("drop").join(ALPHA);
    std::fs::write(drop_dir.join("batch.mrc.part"), &drop_bytes).unwrap();
    std::fs::rename(drop_dir.join("batch.mrc.part"), drop_dir.join("batch.mrc")).unwrap();
    let batch_id = drop_batch_id(ALPHA, "batch.mrc", stable_hash(&drop_bytes));
    let store = scratch.store();
    let deadline = Instant::now() + LIMIT;
    while store.batch_results(&batch_id).unwrap().len() < 6 || drop_dir.join("batch.mrc").exists() {
        assert!(Instant::now() < deadline, "the drop file was not imported");
        std::thread::sleep(Duration::from_millis(50));
    }

    // What is stored, by labels.
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    let mut count = |source: &str, result: &bibgate_store::ImportResult| {
        let labels = format!(
            "institution={},outcome={},reason={},source={source}",
            result.institution,
            result.outcome.as_str(),
            result.reason_code
        );
        *stored.entry(labels).or_default() += 1;
    };
    let received = scratch.blobs().join("received").join(ALPHA);
    let mut exports = 0;
    for entry in std::fs::read_dir(&received).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(export_id) = name.strip_suffix(".mrc") else {
            continue;
        };
        exports += 1;
        count("export", &store.result(export_id).unwrap().unwrap());
    }
    assert_eq!(exports, 19);
    // The refused logons are stored results too (no raw bytes: the sender did not log on).
    let refused: Vec<_> = store
        .institution_results(ALPHA, 0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|result| result.reason_code == "LOGON_FAILED")
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    for result in &refused {
        count("export", result);
    }
    for result in store.batch_results(&batch_id).unwrap() {
        count("drop", &result);
    }
    assert!(stored.len() >= 4, "added, merged and failed: {stored:?}");

    let (status, text) = get(&metrics_addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    let samples = parse(&text);
    let counted: BTreeMap<String, u64> = samples
        .iter()
        .filter(|((name, _), _)| name == "bibgate_results_total")
        .map(|((_, labels), value)| (labels.clone(), *value as u64))
        .collect();
    assert_eq!(counted, stored);
    assert_eq!(sample(&samples, "bibgate_logon_failures_total", ""), 3.0);
    assert_eq!(
        sample(&samples, "bibgate_replies_total", "status=logon-failed"),
        3.0
    );
    assert_eq!(sample(&samples, "bibgate_reply_seconds_count", ""), 22.0);
    assert_eq!(
        sample(&samples, "bibgate_reply_seconds_bucket", "le=+Inf"),
        22.0
    );
    // One commit per export at least; the drop file's records in one chunk.
    assert!(sample(&samples, "bibgate_store_commit_seconds_count", "") >= 1.0);
    assert_eq!(sample(&samples, "bibgate_inbox_backlog", ""), 0.0);
    assert_eq!(sample(&samples, "bibgate_drop_backlog", ""), 0.0);
    assert!(sample(&samples, "process_resident_memory_bytes", "") > 1e6);
    assert!(sample(&samples, "process_threads", "") >= 2.0);
    assert_eq!(
        sample(&samples, "bibgate_logon_lockouts_total", "scope=address"),
        0.0
    );

    let (status, body) = get(&metrics_addr, "/health");
    assert!(status.contains("200"), "{status}: {body}");
    assert_eq!(body, "store: writable\nblobs: writable\n");
    let (status, _) = get(&metrics_addr, "/nothing");
    assert!(status.contains("404"), "{status}");
    drop(serve);
}
