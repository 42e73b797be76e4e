//! Faults and idempotency on the AWS backend (issue 7 §2, §4), against moto.
//!
//! **Faults.** One Lambda invocation runs in its own process (`bibgate-import-processor
//! invoke -`, fed the `SqsEvent` built from the real message moto's S3 sent) with a failpoint
//! armed (`BIBGATE_FAILPOINT`, see `crates/failpoint`). The test waits for the line the point
//! prints, SIGKILLs the process there, checks that the crash left what that step promises,
//! then takes the same message again from the queue once its visibility timeout has passed
//! (SQS redelivery, which is how a Lambda retry happens) and invokes again without the
//! failpoint, and then once more (a duplicate event). Afterwards every export has exactly one
//! stored result and a result document saying the same, every OCLC number one record, a
//! merge exactly one new revision with the prior version kept, the inbox object is gone and
//! the raw bytes are under `received/`; the duplicate changed nothing.
//!
//! **Idempotency.** The same event handled by two invocations at once, a Lambda retry after
//! a success, and a Connexion client retry through the shim: the same result, and nothing
//! written a second time (a snapshot of the records, versions, index entries, results and
//! every object of the bucket is equal before and after).
//!
//! Short by default (CI); `BIBGATE_FAULT_ROUNDS=N` (e.g. 10) repeats each export scenario N
//! times on new numbers and makes the drop file N times longer, killed after every chunk.
//!
//! Concurrency is tested with threads in this process, not two processes: moto's
//! `TransactWriteItems` is not isolated (it deep-copies the table and restores that copy on
//! a cancelled transaction, with no lock), so two processes committing to one table at once
//! would test moto, not Bibgate (see `crates/store-aws`, "Concurrency on moto"). Processes
//! of one test never overlap; tests use their own table, bucket and queue.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use bibgate_import_processor::{Processor, Settings};
use bibgate_inbox::Services;
use bibgate_inbox::layout::{ResultDoc, inbox_key, received_key, result_key, stable_hash};
use bibgate_store::{
    BlobStore, ImportResult, IndexEntry, MmsId, RecordVersion, Store, StoredRecord,
};
use bibgate_store_aws::testing::QueueMessage;
use bibgate_store_aws::{DynamoStore, S3BlobStore};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_bibgate-import-processor");
/// The longest wait for anything (a process reaching a point, a message, a reply).
const WAIT: Duration = Duration::from_secs(90);

fn rounds() -> u64 {
    std::env::var("BIBGATE_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

// --- One invocation in its own process ---------------------------------------------------

/// A running `invoke` process; killed (and reaped) when dropped, so a failing test leaves no
/// process behind.
struct Invocation {
    child: Child,
    stderr: Receiver<String>,
    stdout: Receiver<Vec<u8>>,
    log: Vec<String>,
}

impl Invocation {
    /// Starts `bibgate-import-processor invoke -` on `aws`'s table and bucket with the SQS
    /// event of `messages` on stdin; `env` adds variables (a failpoint, a chunk size).
    fn start(aws: &Loop, messages: &[QueueMessage], env: &[(&str, &str)]) -> Invocation {
        let event = serde_json::to_vec(&sqs_event(messages)).unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["invoke", "-"])
            .env("BIBGATE_TABLE", aws.store.table())
            .env("BIBGATE_BUCKET", aws.blobs.bucket())
            .env_remove("BIBGATE_FAILPOINT")
            .env_remove("BIBGATE_DROP_CHUNK")
            .env_remove("BIBGATE_DROP_FANOUT")
            .env_remove("BIBGATE_DROP_PARALLEL")
            .env("AWS_LAMBDA_LOG_LEVEL", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&event).unwrap();
        drop(stdin);
        let (err_tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (out_tx, stdout) = mpsc::channel();
        let mut pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = out_tx.send(bytes);
        });
        Invocation {
            child,
            stderr,
            stdout,
            log: Vec::new(),
        }
    }

    fn log(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// Waits for `bibgate: failpoint POINT reached` on stderr.
    fn wait_for_failpoint(&mut self, point: &str) {
        let wanted = format!("bibgate: failpoint {point} reached");
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let reached = line == wanted;
                    self.log.push(line);
                    if reached {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "failpoint {point} not reached within {WAIT:?}; stderr:\n{}",
                        self.log()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!(
                        "the invocation ended ({status:?}) without reaching failpoint {point}; stderr:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// SIGKILL, and check that the signal is what ended it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }

    /// Waits for the invocation to end and returns the response it printed.
    fn finish(self) -> SqsBatchResponse {
        self.finish_logged().0
    }

    /// [`Invocation::finish`], with the invocation's stderr lines.
    fn finish_logged(mut self) -> (SqsBatchResponse, Vec<String>) {
        let stdout = match self.stdout.recv_timeout(WAIT) {
            Ok(bytes) => bytes,
            Err(_) => panic!(
                "the invocation did not end within {WAIT:?}; stderr:\n{}",
                self.log()
            ),
        };
        let status = self.child.wait().unwrap();
        // The stderr reader ends with the process; take its last lines for the messages.
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.log.push(line);
        }
        assert!(
            status.success(),
            "the invocation failed ({status:?}); stderr:\n{}",
            self.log()
        );
        assert!(
            !self.log.iter().any(|line| line.contains("failpoint")),
            "{}",
            self.log()
        );
        let response = serde_json::from_slice(&stdout).unwrap_or_else(|error| {
            panic!(
                "the invocation printed no response ({error}): {:?}; stderr:\n{}",
                String::from_utf8_lossy(&stdout),
                self.log()
            )
        });
        (response, std::mem::take(&mut self.log))
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Invokes without a failpoint, asserts that every message was acknowledged, and deletes
/// them from the queue (what the Lambda service does).
fn invoke_ok(aws: &Loop, messages: &[QueueMessage], env: &[(&str, &str)]) {
    let response = Invocation::start(aws, messages, env).finish();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    acknowledge(&aws.queue, messages, &response);
}

/// Invokes with `point` armed, waits until the process stops there, and kills it.
fn invoke_killed_at(aws: &Loop, messages: &[QueueMessage], point: &str, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("BIBGATE_FAILPOINT", point));
    let mut invocation = Invocation::start(aws, messages, &env);
    let name = point.split('@').next().unwrap_or(point);
    invocation.wait_for_failpoint(name);
    invocation.kill();
}

// --- Queue ---------------------------------------------------------------------------------

/// The next message of the queue (waiting up to [`WAIT`]); asserts that it comes alone.
fn one_message(aws: &Loop) -> QueueMessage {
    let started = Instant::now();
    loop {
        let mut messages = aws.queue.receive(10, 1);
        assert!(messages.len() <= 1, "{messages:?}");
        if let Some(message) = messages.pop() {
            return message;
        }
        assert!(started.elapsed() < WAIT, "no message within {WAIT:?}");
    }
}

/// `n` messages (waiting up to [`WAIT`]).
fn messages(aws: &Loop, n: usize) -> Vec<QueueMessage> {
    let started = Instant::now();
    let mut messages = Vec::new();
    while messages.len() < n {
        assert!(
            started.elapsed() < WAIT,
            "only {} of {n} messages arrived",
            messages.len()
        );
        messages.extend(aws.queue.receive(10, 1));
    }
    assert_eq!(messages.len(), n, "{messages:?}");
    messages
}

/// The message again, once its visibility timeout has passed: it was not acknowledged.
fn redelivered(aws: &Loop, first: &QueueMessage) -> QueueMessage {
    let again = one_message(aws);
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.body, first.body);
    let count = |m: &QueueMessage| -> u32 {
        m.attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap()
    };
    assert_eq!(count(&again), count(first) + 1, "{again:?}");
    again
}

fn assert_queue_empty(aws: &Loop) {
    let left = aws.queue.receive(10, 1);
    assert!(left.is_empty(), "messages left: {left:?}");
}

// --- What the store and the bucket hold ---------------------------------------------------

/// Everything an import can write that concerns `numbers` and `export_ids`, and every
/// object of the bucket.
#[derive(Debug, PartialEq)]
struct Snapshot {
    records: u64,
    index: Vec<(u64, Vec<IndexEntry>)>,
    current: Vec<StoredRecord>,
    versions: Vec<Vec<RecordVersion>>,
    results: Vec<Option<ImportResult>>,
    objects: BTreeMap<String, Vec<u8>>,
}

fn snapshot(aws: &Loop, numbers: &[u64], export_ids: &[String]) -> Snapshot {
    let store = &*aws.store;
    let index: Vec<(u64, Vec<IndexEntry>)> = numbers
        .iter()
        .map(|&n| (n, store.find_by_oclc(ALPHA, &[n]).unwrap()))
        .collect();
    let mut mms_ids: Vec<MmsId> = index
        .iter()
        .flat_map(|(_, entries)| entries.iter().map(|e| e.mms_id.clone()))
        .collect();
    mms_ids.sort();
    mms_ids.dedup();
    let objects = aws
        .blobs
        .list("")
        .unwrap()
        .into_iter()
        .map(|key| {
            let bytes = aws.blobs.get(&key).unwrap().unwrap_or_default();
            (key, bytes)
        })
        .collect();
    Snapshot {
        records: store.count_records(ALPHA).unwrap(),
        current: mms_ids
            .iter()
            .map(|m| store.record(ALPHA, m).unwrap().unwrap())
            .collect(),
        versions: mms_ids
            .iter()
            .map(|m| store.versions(ALPHA, m).unwrap())
            .collect(),
        results: export_ids
            .iter()
            .map(|id| store.result(id).unwrap())
            .collect(),
        index,
        objects,
    }
}

/// The one record under `number`.
fn only_record(aws: &Loop, number: u64) -> StoredRecord {
    let entries = aws.store.find_by_oclc(ALPHA, &[number]).unwrap();
    assert_eq!(entries.len(), 1, "one record for {number}: {entries:?}");
    aws.store
        .record(ALPHA, &entries[0].mms_id)
        .unwrap()
        .unwrap()
}

/// An export after recovery: one stored result and its document agree, the inbox object
/// is gone, the raw bytes are kept; returns the document.
fn assert_settled(aws: &Loop, export_id: &str, bytes: &[u8]) -> ResultDoc {
    let stored = aws
        .store
        .result(export_id)
        .unwrap()
        .unwrap_or_else(|| panic!("no stored result for {export_id}"));
    let doc = aws
        .result_doc(export_id)
        .unwrap_or_else(|| panic!("no result document for {export_id}"));
    assert_eq!(doc, ResultDoc::from_result(&stored));
    assert_eq!(aws.blobs.get(&inbox_key(ALPHA, export_id)).unwrap(), None);
    assert_eq!(doc.raw_key, received_key(ALPHA, export_id));
    assert_eq!(
        aws.blobs.get(&doc.raw_key).unwrap().as_deref(),
        Some(bytes),
        "the raw bytes are kept"
    );
    doc
}

// --- Faults: exports -----------------------------------------------------------------------

/// What the crash at `point` must have left of an export (before any retry): `prior` is the
/// record under `number` before the export (`None` for an add).
fn assert_crash_state(
    aws: &Loop,
    point: &str,
    export_id: &str,
    bytes: &[u8],
    number: u64,
    prior: Option<&StoredRecord>,
) {
    assert!(
        aws.blobs
            .get(&inbox_key(ALPHA, export_id))
            .unwrap()
            .is_some(),
        "{point}: the inbox object stays until the end"
    );
    assert_eq!(
        aws.blobs
            .get(&received_key(ALPHA, export_id))
            .unwrap()
            .as_deref(),
        Some(bytes),
        "{point}: the raw bytes are kept first"
    );
    let stored = aws.store.result(export_id).unwrap();
    let doc = aws.blobs.get(&result_key(export_id)).unwrap();
    let entries = aws.store.find_by_oclc(ALPHA, &[number]).unwrap();
    let committed = matches!(point, "store.commit.after" | "export.delivered");
    if committed {
        assert!(stored.is_some(), "{point}: the import is committed");
        assert_eq!(entries.len(), 1, "{entries:?}");
        let record = only_record(aws, number);
        assert_eq!(
            record.revision,
            prior.map_or(1, |p| p.revision + 1),
            "{point}: the import is committed"
        );
    } else {
        assert_eq!(stored, None, "{point}: nothing is committed yet");
        match prior {
            None => assert!(entries.is_empty(), "{point}: {entries:?}"),
            Some(prior) => assert_eq!(&only_record(aws, number), prior, "{point}"),
        }
    }
    assert_eq!(
        doc.is_some(),
        point == "export.delivered",
        "{point}: the result document"
    );
}

/// For each round: an export that adds a record and one that merges into it, each killed at
/// `point`, redelivered, and delivered once more.
fn export_killed_at(point: &str) {
    let aws = Loop::new();
    for round in 0..rounds() {
        let number = 20_000 + round;
        let exports = [
            encode(&oclc_record(
                number,
                b' ',
                Some("20240101120000.0"),
                "First.",
            )),
            encode(&oclc_record(
                number,
                b' ',
                Some("20250101120000.0"),
                "Updated.",
            )),
        ];
        let mut mms: Option<String> = None;
        for (step, bytes) in exports.iter().enumerate() {
            let merge = step == 1;
            let prior = merge.then(|| only_record(&aws, number));
            let export_id = aws.export(ALPHA, bytes);
            let message = one_message(&aws);

            invoke_killed_at(&aws, std::slice::from_ref(&message), point, &[]);
            assert_crash_state(&aws, point, &export_id, bytes, number, prior.as_ref());

            // The Lambda retry: the message comes back after its visibility timeout.
            let retry = redelivered(&aws, &message);
            invoke_ok(&aws, std::slice::from_ref(&retry), &[]);
            let doc = assert_settled(&aws, &export_id, bytes);
            let record = only_record(&aws, number);
            let versions = aws.store.versions(ALPHA, &record.mms_id).unwrap();
            if merge {
                let prior = prior.unwrap();
                assert_eq!(doc.outcome, "merged", "{doc:?}");
                assert_eq!(doc.mms_id, mms, "merged into the record added before");
                assert_eq!(record.revision, prior.revision + 1, "exactly one merge");
                assert_eq!(versions.len(), 1, "one prior version: {versions:?}");
                assert_eq!(versions[0].revision, prior.revision);
                assert_eq!(versions[0].marc, prior.marc, "the prior version is kept");
                assert_eq!(versions[0].replaced_by, export_id);
            } else {
                assert_eq!(doc.outcome, "added", "{doc:?}");
                assert_eq!(doc.mms_id.as_deref(), Some(record.mms_id.as_str()));
                assert_eq!(record.revision, 1);
                assert!(versions.is_empty(), "{versions:?}");
                mms = doc.mms_id.clone();
            }
            assert_eq!(aws.store.count_records(ALPHA).unwrap(), round + 1);

            // A duplicate event (or a late retry) after the success changes nothing.
            let before = snapshot(&aws, &[number], std::slice::from_ref(&export_id));
            invoke_ok(&aws, std::slice::from_ref(&retry), &[]);
            assert_eq!(
                snapshot(&aws, &[number], std::slice::from_ref(&export_id)),
                before
            );
        }
    }
    assert_queue_empty(&aws);
}

#[test]
fn killed_after_the_raw_bytes_are_stored() {
    export_killed_at("export.received");
}

#[test]
fn killed_before_the_import_commits() {
    export_killed_at("store.commit.before");
}

#[test]
fn killed_after_the_import_commits() {
    export_killed_at("store.commit.after");
}

#[test]
fn killed_after_the_result_document() {
    export_killed_at("export.delivered");
}

// --- Faults: a drop file -------------------------------------------------------------------

/// A drop file whose invocation is killed between two commits of a chunk, then after a chunk,
/// again and again (once in the short version, after every chunk but the last in the long
/// one): each redelivered event imports the rest, records of the file are decided in order,
/// nothing twice.
#[test]
fn a_drop_file_killed_between_chunks() {
    let aws = Loop::new();
    let groups = rounds();
    // Per group of five: a merge into an existing record, an add, another merge, a second
    // record with the number just added (a merge into it, in a later chunk), an add.
    let mut prior = Vec::new();
    let mut file = Vec::new();
    let mut numbers = Vec::new();
    let mut expected = Vec::new();
    for g in 0..groups {
        let (old_a, old_b, new_a, new_b) = (30_000 + g, 31_000 + g, 32_000 + g, 33_000 + g);
        for old in [old_a, old_b] {
            let doc = aws.import(
                ALPHA,
                &encode(&oclc_record(old, b' ', Some("20240101120000.0"), "Before.")),
            );
            assert_eq!(doc.outcome, "added", "{doc:?}");
            prior.push((old, only_record(&aws, old)));
        }
        let newer =
            |n: u64, title: &str| encode(&oclc_record(n, b' ', Some("20250101120000.0"), title));
        file.extend(newer(old_a, "Dropped merge."));
        file.extend(encode(&oclc_record(
            new_a,
            b' ',
            Some("20240101120000.0"),
            "Dropped add.",
        )));
        file.extend(newer(old_b, "Dropped merge 2."));
        file.extend(newer(new_a, "Dropped add, again."));
        file.extend(newer(new_b, "Dropped add 2."));
        numbers.extend([old_a, old_b, new_a, new_b]);
        expected.extend(["merged", "added", "merged", "merged", "added"]);
    }
    let n_records = expected.len();
    let chunk = 2usize;
    let n_chunks = n_records.div_ceil(chunk);
    // The continued path (chunk after chunk); the fanned-out one is tested below. Commits one
    // after another, so that a kill at the second commit leaves exactly the first applied (the
    // concurrent commits of a chunk are killed midway in the fanned-out test).
    let env = [
        ("BIBGATE_DROP_CHUNK", "2"),
        ("BIBGATE_DROP_FANOUT", "0"),
        ("BIBGATE_COMMIT_CONCURRENCY", "1"),
    ];
    let key = "drop/01DEMO_ALPHA/faults.mrc";
    let report_key = "reports/01DEMO_ALPHA/faults.mrc.results.jsonl";
    aws.blobs.put(key, &file).unwrap();
    let records_before = aws.store.count_records(ALPHA).unwrap();

    let batch_id = format!("drop-{ALPHA}-faults.mrc-{:016x}", stable_hash(&file));
    let has_result = |index: usize| {
        aws.store
            .result(&format!("{batch_id}#{index}"))
            .unwrap()
            .is_some()
    };
    let mut message = one_message(&aws);
    // First in the middle of the first chunk's commits: record 1 committed, record 2 not.
    invoke_killed_at(
        &aws,
        std::slice::from_ref(&message),
        "store.commit.before@2",
        &env,
    );
    assert!(
        has_result(1) && !has_result(2),
        "killed between two commits"
    );
    message = redelivered(&aws, &message);
    // Then after a chunk. Short: after the first chunk. Long: after chunk k on the k-th
    // delivery.
    let kills = if groups == 1 { 1 } else { n_chunks - 1 };
    for k in 1..=kills {
        invoke_killed_at(
            &aws,
            std::slice::from_ref(&message),
            &format!("drop.chunk@{k}"),
            &env,
        );
        assert!(
            has_result(k * chunk) && (k * chunk == n_records || !has_result(k * chunk + 1)),
            "killed after chunk {k}"
        );
        assert!(aws.blobs.get(key).unwrap().is_some(), "the drop file stays");
        assert_eq!(aws.blobs.get(report_key).unwrap(), None, "no report yet");
        assert_eq!(
            aws.blobs
                .get("received/drop/01DEMO_ALPHA/faults.mrc")
                .unwrap()
                .as_deref(),
            Some(&file[..]),
            "the raw bytes are kept first"
        );
        message = redelivered(&aws, &message);
    }
    invoke_ok(&aws, std::slice::from_ref(&message), &env);

    let report = String::from_utf8(aws.blobs.get(report_key).unwrap().unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), n_records, "one line per record:\n{report}");
    let mut export_ids = Vec::new();
    for (i, (line, outcome)) in lines.iter().zip(&expected).enumerate() {
        assert_eq!(line["index"].as_u64(), Some(i as u64 + 1), "{line}");
        assert_eq!(line["outcome"].as_str(), Some(*outcome), "{line}");
        let export_id = line["export_id"].as_str().unwrap().to_string();
        assert!(export_id.ends_with(&format!("#{}", i + 1)), "{export_id}");
        let stored = aws.store.result(&export_id).unwrap().unwrap();
        assert_eq!(stored.outcome.as_str(), *outcome);
        assert_eq!(
            line["mms_id"].as_str(),
            stored.mms_id.as_ref().map(MmsId::as_str),
            "the report and the stored result agree"
        );
        assert_eq!(
            line["reason_code"].as_str(),
            Some(stored.reason_code.as_str())
        );
        export_ids.push(export_id);
    }
    for (number, prior) in &prior {
        let record = only_record(&aws, *number);
        assert_eq!(record.revision, prior.revision + 1, "exactly one merge");
        let versions = aws.store.versions(ALPHA, &record.mms_id).unwrap();
        assert_eq!(versions.len(), 1, "{versions:?}");
        assert_eq!(versions[0].marc, prior.marc, "the prior version is kept");
    }
    for g in 0..groups {
        let (new_a, new_b) = (32_000 + g, 33_000 + g);
        assert_eq!(
            only_record(&aws, new_a).revision,
            2,
            "added, then merged once"
        );
        assert_eq!(only_record(&aws, new_b).revision, 1);
    }
    assert_eq!(
        aws.store.count_records(ALPHA).unwrap(),
        records_before + 2 * groups
    );
    assert_eq!(aws.blobs.get(key).unwrap(), None, "the drop file is taken");
    assert!(
        aws.blobs
            .list("reports/01DEMO_ALPHA/.parts/")
            .unwrap()
            .is_empty()
    );
    assert!(
        aws.blobs
            .list("drop/01DEMO_ALPHA/.continue/")
            .unwrap()
            .is_empty()
    );

    // The event once more (a duplicate): the file is gone, nothing changes.
    let before = snapshot(&aws, &numbers, &export_ids);
    invoke_ok(&aws, std::slice::from_ref(&message), &env);
    assert_eq!(snapshot(&aws, &numbers, &export_ids), before);
    assert_queue_empty(&aws);
}

/// A fanned-out drop file (issue 15): a chunk invocation killed after its import and
/// before its report part, then after the part, the assembling chunk killed after the
/// report and before the clean-up; each delivered again, then every event once more (the
/// queue's own deliveries of the chunk tasks, duplicates by then): one report, every record
/// imported once, nothing left behind, nothing changed by the duplicates.
#[test]
fn a_fanned_out_drop_file_killed_at_each_step() {
    let aws = Loop::new();
    let env = [("BIBGATE_DROP_CHUNK", "2"), ("BIBGATE_DROP_PARALLEL", "3")];
    let mut file = Vec::new();
    let numbers: Vec<u64> = (0..6).map(|i| 70_000 + i).collect();
    for &number in &numbers {
        file.extend(encode(&oclc_record(
            number,
            b' ',
            Some("20240101120000.0"),
            "Fanned out.",
        )));
    }
    let key = "drop/01DEMO_ALPHA/fanned.mrc";
    let report_key = "reports/01DEMO_ALPHA/fanned.mrc.results.jsonl";
    aws.blobs.put(key, &file).unwrap();
    let hash = stable_hash(&file);
    let batch_id = format!("drop-{ALPHA}-fanned.mrc-{hash:016x}");
    let has_result = |index: usize| {
        aws.store
            .result(&format!("{batch_id}#{index}"))
            .unwrap()
            .is_some()
    };
    let fanout_prefix = format!("reports/01DEMO_ALPHA/.fanout/fanned.mrc/{hash:016x}/");
    let part = |n: usize| format!("{fanout_prefix}part-{n:06}.jsonl");

    // The file's event: the plan and three chunk tasks.
    invoke_ok(&aws, &[one_message(&aws)], &env);
    let mut tasks = messages(&aws, 3);
    // In chunk order (the key is the body's last part that differs).
    let chunk_of = |task: &QueueMessage| {
        task.body
            .find(".json")
            .map(|at| task.body[..at].to_string())
    };
    tasks.sort_by_key(|task| {
        chunk_of(task).map(|key| key[key.len().saturating_sub(6)..].to_string())
    });
    assert!(tasks[0].body.contains("000000.json"), "{:?}", tasks[0].body);
    // Each chunk task in its own process, delivered again after each kill (the same
    // message, as SQS would).
    let run = |task: &QueueMessage, point: Option<&str>| match point {
        Some(point) => invoke_killed_at(&aws, std::slice::from_ref(task), point, &env),
        None => {
            let response = Invocation::start(&aws, std::slice::from_ref(task), &env).finish();
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
        }
    };
    // Killed before the chunk's second commit, its commits in flight at once (the default
    // concurrency): one of the two records is not stored, whatever became of the other
    // (the commits start in any order, so which one is not known).
    run(&tasks[0], Some("store.commit.before@2"));
    assert!(
        !(has_result(1) && has_result(2)),
        "killed before the second commit"
    );
    run(&tasks[0], Some("drop.chunk"));
    assert!(has_result(1) && has_result(2), "chunk 0 is imported");
    assert_eq!(
        aws.blobs.get(&part(0)).unwrap(),
        None,
        "but has no part yet"
    );
    run(&tasks[0], Some("drop.part"));
    assert!(
        aws.blobs.get(&part(0)).unwrap().is_some(),
        "the part is written"
    );
    run(&tasks[0], None);
    run(&tasks[1], None);
    assert_eq!(
        aws.blobs.get(report_key).unwrap(),
        None,
        "a chunk is missing"
    );
    run(&tasks[2], Some("drop.report"));
    assert!(
        aws.blobs.get(report_key).unwrap().is_some(),
        "the report is written"
    );
    assert!(
        aws.blobs.get(key).unwrap().is_some(),
        "the clean-up has not run"
    );
    run(&tasks[2], None);

    let lines: Vec<serde_json::Value> =
        String::from_utf8(aws.blobs.get(report_key).unwrap().unwrap())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    let mut export_ids = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"].as_u64(), Some(i as u64 + 1), "{line}");
        assert_eq!(line["outcome"], "added", "{line}");
        export_ids.push(line["export_id"].as_str().unwrap().to_string());
    }
    for &number in &numbers {
        assert_eq!(only_record(&aws, number).revision, 1, "imported once");
    }
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 6);
    assert_eq!(aws.blobs.get(key).unwrap(), None, "the drop file is taken");
    assert!(aws.blobs.list(&fanout_prefix).unwrap().is_empty());
    assert!(
        aws.blobs
            .list("drop/01DEMO_ALPHA/.chunks/")
            .unwrap()
            .is_empty()
    );

    // The chunk tasks' own deliveries come back (never acknowledged): duplicates now.
    let before = snapshot(&aws, &numbers, &export_ids);
    aws.drain_until(WAIT, || aws.queue.sqs().approximate_waiting().unwrap() == 0);
    aws.drain();
    for task in &tasks {
        run(task, None);
    }
    assert_eq!(snapshot(&aws, &numbers, &export_ids), before);
}

// --- Idempotency ---------------------------------------------------------------------------

/// A handler with its own clients (a second Lambda instance), on `aws`'s table and bucket.
fn second_instance(aws: &Loop) -> Processor {
    let context = bibgate_store_aws::testing::context();
    let blobs = S3BlobStore::new(&context, aws.blobs.bucket());
    let store = DynamoStore::new(&context, aws.store.table()).with_marc_bucket(blobs.clone());
    Processor::new(
        Services::new(Arc::new(store), Arc::new(blobs)),
        Settings {
            reserve: Duration::ZERO,
            ..Settings::new(aws.blobs.bucket())
        },
    )
}

/// The same two events (a merge and an add) handled by two invocations at once, then a
/// Lambda retry after the success (in a process of its own): one import each.
#[test]
fn the_same_events_in_two_invocations_at_once_import_once() {
    let aws = Loop::new();
    let (old, new) = (40_001, 40_002);
    aws.import(ALPHA, &record_bytes(old, "Before."));
    let prior = only_record(&aws, old);
    let merge = encode(&oclc_record(old, b' ', Some("20250101120000.0"), "After."));
    let add = record_bytes(new, "New.");
    let merge_id = aws.export(ALPHA, &merge);
    let add_id = aws.export(ALPHA, &add);
    let batch = messages(&aws, 2);
    let other = second_instance(&aws);
    let instances = [&aws.processor, &other];
    let barrier = Barrier::new(2);
    let responses: Vec<SqsBatchResponse> = std::thread::scope(|scope| {
        let handles: Vec<_> = instances
            .iter()
            .map(|processor| {
                let (batch, barrier) = (&batch, &barrier);
                scope.spawn(move || {
                    let event = sqs_event(batch);
                    barrier.wait();
                    processor.handle(&event, &|| Duration::from_secs(900))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for response in &responses {
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    acknowledge(&aws.queue, &batch, &responses[0]);

    let merged = assert_settled(&aws, &merge_id, &merge);
    assert_eq!(merged.outcome, "merged", "{merged:?}");
    let record = only_record(&aws, old);
    assert_eq!(record.revision, prior.revision + 1, "merged once");
    let versions = aws.store.versions(ALPHA, &record.mms_id).unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0].marc, prior.marc);
    let added = assert_settled(&aws, &add_id, &add);
    assert_eq!(added.outcome, "added", "{added:?}");
    assert_eq!(only_record(&aws, new).revision, 1);
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 2);

    // A Lambda retry after the success (the response was lost): nothing is written again.
    let ids = [merge_id, add_id];
    let before = snapshot(&aws, &[old, new], &ids);
    invoke_ok(&aws, &batch, &[]);
    assert_eq!(snapshot(&aws, &[old, new], &ids), before);
    assert_queue_empty(&aws);
}

/// The Connexion client sends the same record again: while the first is pending (it timed
/// out), after it was answered (an add and a merge), and while the Lambda that took it was
/// killed after its commit; the shim answers with the first export, and nothing is imported
/// or written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connexion_client_retry_gets_the_first_result() {
    let aws = Arc::new(tokio::task::spawn_blocking(Loop::new).await.unwrap());
    let shim = Shim::start(
        aws.services.clone(),
        bibgate_gateway::Config {
            reply_deadline: Duration::from_secs(2),
            ..bibgate_gateway::Config::default()
        },
    )
    .await;
    let addr = shim.addr.clone();
    let send = |bytes: Vec<u8>| {
        let addr = addr.clone();
        async move {
            bibgate_gateway::send(
                &addr,
                ALPHA,
                PASSWORD,
                &bytes,
                bibgate_gateway::LengthEncoding::Byte,
                Duration::from_secs(30),
            )
            .await
            .unwrap()
        }
    };
    let blocking = |aws: &Arc<Loop>, f: fn(&Loop) -> Vec<String>| {
        let aws = aws.clone();
        async move { tokio::task::spawn_blocking(move || f(&aws)).await.unwrap() }
    };
    let inbox = |aws: &Loop| aws.blobs.list("inbox/").unwrap();
    let received = |aws: &Loop| aws.blobs.list("received/").unwrap();

    // 1. No processor yet: the client times out ("pending") and sends again.
    let first = record_bytes(50_001, "Sent twice while pending.");
    let reply = send(first.clone()).await;
    assert!(reply.starts_with("Import pending: export "), "{reply}");
    let export_id = reply
        .strip_prefix("Import pending: export ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    assert_eq!(
        send(first.clone()).await,
        reply,
        "the retry names the first export"
    );
    assert_eq!(blocking(&aws, inbox).await.len(), 1, "one inbox object");

    // The processor starts (a poller in front of the handler, as the Lambda service).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (aws, stop) = (aws.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let messages = aws.receive(10);
                if !messages.is_empty() {
                    aws.invoke(&messages);
                }
            }
        })
    };
    // Sends until answered: every reply before the answer names the same export.
    let answered = |bytes: Vec<u8>, export_id: Option<String>| {
        let send = &send;
        async move {
            let started = Instant::now();
            loop {
                let reply = send(bytes.clone()).await;
                let Some(rest) = reply.strip_prefix("Import pending: export ") else {
                    return reply;
                };
                if let Some(id) = &export_id {
                    assert!(rest.starts_with(&format!("{id} ")), "{reply}");
                }
                assert!(started.elapsed() < WAIT, "still pending: {reply}");
            }
        }
    };
    let reply = answered(first.clone(), Some(export_id.clone())).await;
    assert!(reply.starts_with(&format!("{SUCCESS} MMS ID: ")), "{reply}");
    let aws2 = aws.clone();
    let id2 = export_id.clone();
    let doc = tokio::task::spawn_blocking(move || assert_settled(&aws2, &id2, &first))
        .await
        .unwrap();
    assert_eq!(doc.host_message, reply);
    assert_eq!(blocking(&aws, received).await.len(), 1);

    // 2. Retries after the answer, for an add and then a merge.
    for (i, bytes) in [
        record_bytes(50_002, "Added, sent twice."),
        encode(&oclc_record(
            50_002,
            b' ',
            Some("20250101120000.0"),
            "Merged, sent twice.",
        )),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = answered(bytes.clone(), None).await;
        assert!(reply.starts_with(SUCCESS), "{reply}");
        // Let the processor finish (the inbox object is deleted after the result document).
        let aws2 = aws.clone();
        let before = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            while !aws2.blobs.list("inbox/").unwrap().is_empty() {
                assert!(started.elapsed() < WAIT, "the inbox is not emptied");
                std::thread::sleep(Duration::from_millis(50));
            }
            let ids: Vec<String> = aws2
                .blobs
                .list("results/")
                .unwrap()
                .iter()
                .map(|k| k["results/".len()..k.len() - ".json".len()].to_string())
                .collect();
            let snapshot = snapshot(&aws2, &[50_001, 50_002], &ids);
            (snapshot, ids)
        })
        .await
        .unwrap();
        assert_eq!(send(bytes).await, reply, "the retry gets the first answer");
        let aws2 = aws.clone();
        let (after, record, versions) = tokio::task::spawn_blocking(move || {
            let after = snapshot(&aws2, &[50_001, 50_002], &before.1);
            let record = only_record(&aws2, 50_002);
            let versions = aws2.store.versions(ALPHA, &record.mms_id).unwrap();
            (after, record, versions)
        })
        .await
        .unwrap();
        assert_eq!(after, before.0, "nothing written for the retry");
        assert_eq!(record.revision, i as u64 + 1, "{reply}");
        assert_eq!(versions.len(), i);
    }

    // 3. The Lambda is killed after the import committed; the client, answered "pending"
    //    first, sends again and gets the stored result; SQS delivers the event again and the
    //    retry writes the result document with the same answer.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::task::spawn_blocking(move || poller.join().unwrap())
        .await
        .unwrap();
    let third = record_bytes(50_003, "Sent while the Lambda crashed.");
    let reply = send(third.clone()).await;
    let export_id = reply
        .strip_prefix("Import pending: export ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{reply}"))
        .to_string();
    let aws2 = aws.clone();
    let message = tokio::task::spawn_blocking(move || {
        let message = one_message(&aws2);
        invoke_killed_at(
            &aws2,
            std::slice::from_ref(&message),
            "store.commit.after",
            &[],
        );
        message
    })
    .await
    .unwrap();
    // The import committed before the kill, so a retry is answered from the stored result
    // at the shim's reply deadline, although no result document exists yet.
    let from_store = send(third.clone()).await;
    assert!(
        from_store.starts_with(&format!("{SUCCESS} MMS ID: ")),
        "answered from the stored result: {from_store}"
    );
    let aws2 = aws.clone();
    let retry = tokio::task::spawn_blocking(move || {
        let retry = redelivered(&aws2, &message);
        let response = Invocation::start(&aws2, std::slice::from_ref(&retry), &[]).finish();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        acknowledge(&aws2.queue, std::slice::from_ref(&retry), &response);
        retry
    });
    let reply = answered(third.clone(), Some(export_id.clone())).await;
    let retry = retry.await.unwrap();
    assert!(reply.starts_with(&format!("{SUCCESS} MMS ID: ")), "{reply}");
    assert_eq!(
        reply, from_store,
        "the document says what the stored result said"
    );
    let aws2 = aws.clone();
    tokio::task::spawn_blocking(move || {
        let doc = assert_settled(&aws2, &export_id, &third);
        assert_eq!(doc.host_message, reply);
        assert_eq!(doc.outcome, "added");
        assert_eq!(only_record(&aws2, 50_003).revision, 1);
        // A duplicate of the event after all this changes nothing.
        let ids = [export_id];
        let before = snapshot(&aws2, &[50_001, 50_002, 50_003], &ids);
        invoke_ok(&aws2, std::slice::from_ref(&retry), &[]);
        assert_eq!(snapshot(&aws2, &[50_001, 50_002, 50_003], &ids), before);
        assert_queue_empty(&aws2);
    })
    .await
    .unwrap();

    shim.stop(Duration::from_secs(60)).await;
    assert_eq!(blocking(&aws, received).await.len(), 4, "four exports");
}

/// A drop file that continues in a new invocation (the time ran short after a chunk) gets
/// its original event again (a duplicate S3 event, or a retry whose first response was
/// lost) before the continuation runs, and the continuation is killed after a chunk: the
/// report still has one line per record, in order, and nothing is imported twice.
#[test]
fn a_duplicate_drop_event_while_the_file_continues() {
    let aws = Loop::new();
    let n_records = 5u64;
    let mut file = Vec::new();
    for i in 0..n_records {
        file.extend(record_bytes(60_000 + i, &format!("Continued {i}.")));
    }
    let key = "drop/01DEMO_ALPHA/continued.mrc";
    let report_key = "reports/01DEMO_ALPHA/continued.mrc.results.jsonl";
    aws.blobs.put(key, &file).unwrap();
    let original = one_message(&aws);
    // 60 s left at the start: after the first chunk less than the 60 s reserve is left.
    let short = [
        ("BIBGATE_DROP_CHUNK", "2"),
        ("BIBGATE_DROP_FANOUT", "0"),
        ("BIBGATE_INVOKE_TIMEOUT_S", "60"),
    ];
    invoke_ok(&aws, std::slice::from_ref(&original), &short);
    assert_eq!(aws.blobs.get(report_key).unwrap(), None, "not finished");
    assert_eq!(
        aws.blobs.list("drop/01DEMO_ALPHA/.continue/").unwrap(),
        ["drop/01DEMO_ALPHA/.continue/continued.mrc.json"]
    );
    let continuation = one_message(&aws);
    assert!(
        continuation.body.contains(".continue"),
        "{}",
        continuation.body
    );

    // The original event again (its response was lost, or S3 sent it twice): the file is
    // being continued, so nothing changes.
    let env = [("BIBGATE_DROP_CHUNK", "2"), ("BIBGATE_DROP_FANOUT", "0")];
    let numbers: Vec<u64> = (0..n_records).map(|i| 60_000 + i).collect();
    let before = snapshot(&aws, &numbers, &[]);
    invoke_ok(&aws, std::slice::from_ref(&original), &env);
    assert_eq!(snapshot(&aws, &numbers, &[]), before);
    // The continuation, killed after its first chunk, then delivered again.
    invoke_killed_at(
        &aws,
        std::slice::from_ref(&continuation),
        "drop.chunk@1",
        &env,
    );
    let continuation = redelivered(&aws, &continuation);
    invoke_ok(&aws, std::slice::from_ref(&continuation), &env);

    let report = String::from_utf8(aws.blobs.get(report_key).unwrap().unwrap()).unwrap();
    let indexes: Vec<u64> = report
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        indexes,
        (1..=n_records).collect::<Vec<_>>(),
        "one line per record, in order:\n{report}"
    );
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), n_records);
    for i in 0..n_records {
        assert_eq!(only_record(&aws, 60_000 + i).revision, 1);
    }
    assert_eq!(aws.blobs.get(key).unwrap(), None);
    assert!(
        aws.blobs
            .list("drop/01DEMO_ALPHA/.continue/")
            .unwrap()
            .is_empty()
    );
    assert!(
        aws.blobs
            .list("reports/01DEMO_ALPHA/.parts/")
            .unwrap()
            .is_empty()
    );
    assert_queue_empty(&aws);
}

/// What an invocation killed between writing its report part and its continuation marker
/// leaves (a part, no marker): the redelivered event starts the file again and does not
/// join the stale part, so the report has one line per record.
#[test]
fn a_report_part_without_a_marker_is_not_joined() {
    let aws = Loop::with_settings(|settings| Settings {
        chunk: 2,
        fan_out: false,
        ..settings
    });
    let mut file = Vec::new();
    for i in 0..3u64 {
        file.extend(record_bytes(61_000 + i, &format!("Part {i}.")));
    }
    aws.blobs
        .put(
            "reports/01DEMO_ALPHA/.parts/stale.mrc/000000000001.jsonl",
            b"{\"index\":1}\n{\"index\":2}\n",
        )
        .unwrap();
    aws.blobs.put("drop/01DEMO_ALPHA/stale.mrc", &file).unwrap();
    let report_key = "reports/01DEMO_ALPHA/stale.mrc.results.jsonl";
    aws.drain_until(WAIT, || aws.blobs.get(report_key).unwrap().is_some());
    let report = String::from_utf8(aws.blobs.get(report_key).unwrap().unwrap()).unwrap();
    let indexes: Vec<u64> = report
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes, [1, 2, 3], "{report}");
    assert!(
        aws.blobs
            .list("reports/01DEMO_ALPHA/.parts/")
            .unwrap()
            .is_empty()
    );
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 3);
}

/// An invocation logs the results it stored as CloudWatch embedded-metric-format lines
/// (issue 19): an added export is one `Bibgate/Results` line with its labels and 1; a
/// duplicate delivery that stores nothing logs none.
#[test]
fn an_invocation_logs_its_results_as_embedded_metrics() {
    let aws = Loop::new();
    let bytes = encode(&oclc_record(
        29_000,
        b' ',
        Some("20240101120000.0"),
        "Counted.",
    ));
    aws.export(ALPHA, &bytes);
    let message = one_message(&aws);
    let emf = |log: &[String]| -> Vec<serde_json::Value> {
        log.iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|value| value.get("_aws").is_some())
            .collect()
    };
    let (response, log) =
        Invocation::start(&aws, std::slice::from_ref(&message), &[]).finish_logged();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let lines = emf(&log);
    assert_eq!(lines.len(), 1, "{log:#?}");
    let line = &lines[0];
    let metric = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(metric["Namespace"], "Bibgate");
    assert_eq!(metric["Metrics"][0]["Name"], "Results");
    assert_eq!(
        metric["Dimensions"][0],
        serde_json::json!(["source", "institution", "outcome", "reason"])
    );
    assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(line["source"], "export");
    assert_eq!(line["institution"], ALPHA);
    assert_eq!(line["outcome"], "added");
    assert_eq!(line["reason"], "ADDED");
    assert_eq!(line["Results"], 1);
    // The same message again: the stored result is found, nothing is stored, no metric.
    let (_, log) = Invocation::start(&aws, std::slice::from_ref(&message), &[]).finish_logged();
    assert!(emf(&log).is_empty(), "{log:#?}");
}
