//! The two paths and the fanned-out drop path (issue 15), against moto: an export answered
//! while a large drop file imports, chunk tasks delivered twice and at once, records of one
//! file sharing an OCLC number in two chunks, and the inbox path's back-off.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bibgate_import_processor::poll;
use bibgate_import_processor::{Processor, Redelivery, Settings};
use bibgate_inbox::Services;
use bibgate_inbox::fanout::{self, ChunkOutcome, Planned};
use bibgate_inbox::layout::{result_key, stable_hash};
use bibgate_store::{BlobStore, Store};
use bibgate_store_aws::testing::{self, Queue};
use common::*;

/// Chunk tasks, plan and parts of every drop file of `ALPHA`.
fn leftovers(aws: &Loop) -> Vec<String> {
    let mut keys = aws.blobs.list("drop/01DEMO_ALPHA/.chunks/").unwrap();
    keys.extend(aws.blobs.list("reports/01DEMO_ALPHA/.fanout/").unwrap());
    keys
}

fn report_lines(aws: &Loop, key: &str) -> Vec<serde_json::Value> {
    let report = String::from_utf8(aws.blobs.get(key).unwrap().unwrap()).unwrap();
    report
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `n` records, record `i` (from 1) with OCLC number `base + i`, except those in `shared`,
/// which all carry `shared_number`.
fn drop_file(n: u64, base: u64, shared: &[u64], shared_number: u64) -> Vec<u8> {
    let mut file = Vec::new();
    for i in 1..=n {
        let number = if shared.contains(&i) {
            shared_number
        } else {
            base + i
        };
        let version = format!("2024010112{:04}.0", i % 10_000);
        file.extend(encode(&oclc_record(
            number,
            b' ',
            Some(&version),
            &format!("Record {i}."),
        )));
    }
    file
}

#[test]
fn a_drop_file_fans_out_into_chunks_and_reports_once() {
    let aws = Loop::with_settings(|settings| Settings {
        chunk: 3,
        max_parallel_chunks: 2,
        ..settings
    });
    // Records 2 and 8 (chunks 0 and 2) share a number: one record, added then merged.
    let file = drop_file(10, 40_000, &[2, 8], 49_999);
    let key = "drop/01DEMO_ALPHA/fanned out.mrc";
    let report_key = "reports/01DEMO_ALPHA/fanned out.mrc.results.jsonl";
    aws.blobs.put(key, &file).unwrap();
    aws.drain_until(Duration::from_secs(120), || {
        aws.blobs.get(report_key).unwrap().is_some()
    });
    aws.drain();
    let lines = report_lines(&aws, report_key);
    assert_eq!(lines.len(), 10, "one line per record: {lines:?}");
    let batch_id = format!("drop-{ALPHA}-fanned out.mrc-{:016x}", stable_hash(&file));
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"].as_u64(), Some(i as u64 + 1), "{line}");
        assert_eq!(
            line["export_id"].as_str(),
            Some(format!("{batch_id}#{}", i + 1).as_str())
        );
        let stored = aws
            .store
            .result(line["export_id"].as_str().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(line["outcome"].as_str(), Some(stored.outcome.as_str()));
    }
    let shared = aws.store.find_by_oclc(ALPHA, &[49_999]).unwrap();
    assert_eq!(
        shared.len(),
        1,
        "one record for the shared number: {shared:?}"
    );
    assert_eq!(lines[1]["outcome"], "added");
    assert_eq!(lines[7]["outcome"], "merged");
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 9);
    assert_eq!(aws.blobs.get(key).unwrap(), None, "the drop file is taken");
    assert_eq!(
        aws.blobs
            .get("received/drop/01DEMO_ALPHA/fanned out.mrc")
            .unwrap()
            .as_deref(),
        Some(&file[..]),
        "the raw bytes are kept"
    );
    assert!(leftovers(&aws).is_empty(), "{:?}", leftovers(&aws));

    // Every chunk task and the file's event once more: nothing changes.
    let report = aws.blobs.get(report_key).unwrap();
    for n in 0..4 {
        let outcome = fanout::run_chunk(
            &aws.services,
            ALPHA,
            "fanned out.mrc",
            stable_hash(&file),
            n,
        )
        .unwrap();
        assert_eq!(outcome, ChunkOutcome::Done);
    }
    assert_eq!(
        fanout::plan_drop(&aws.services, ALPHA, "fanned out.mrc", 3, 2).unwrap(),
        Planned::Gone
    );
    assert_eq!(aws.blobs.get(report_key).unwrap(), report);
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 9);
}

/// Every chunk task run twice at once (a duplicate delivery racing the first), chunks in
/// parallel, two of them holding the same new OCLC number: one record for it, every
/// record imported once, one report.
#[test]
fn chunks_delivered_twice_and_in_parallel_import_once() {
    let aws = Loop::new();
    let file = drop_file(8, 41_000, &[1, 6], 48_888);
    let name = "parallel.mrc";
    aws.blobs
        .put(&format!("drop/{ALPHA}/{name}"), &file)
        .unwrap();
    let planned = fanout::plan_drop(&aws.services, ALPHA, name, 4, 2).unwrap();
    assert_eq!(planned, Planned::FannedOut { chunks: 2 });
    // A duplicate of the file's event: the same plan.
    assert_eq!(
        fanout::plan_drop(&aws.services, ALPHA, name, 4, 2).unwrap(),
        planned
    );
    let hash = stable_hash(&file);
    let barrier = Barrier::new(4);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for n in [0, 1, 0, 1] {
            let (barrier, outcomes, services) = (&barrier, &outcomes, &aws.services);
            scope.spawn(move || {
                barrier.wait();
                let outcome = fanout::run_chunk(services, ALPHA, name, hash, n).unwrap();
                outcomes.lock().unwrap().push(outcome);
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    let assembled = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                ChunkOutcome::Imported {
                    assembled: true,
                    ..
                }
            )
        })
        .count();
    assert!(assembled <= 1, "the report is written once: {outcomes:?}");
    // A chunk that finished last but saw a part missing leaves the report to the next
    // delivery: deliver chunk 0 once more if nobody assembled.
    if assembled == 0 {
        fanout::run_chunk(&aws.services, ALPHA, name, hash, 0).unwrap();
    }
    let lines = report_lines(&aws, &format!("reports/{ALPHA}/{name}.results.jsonl"));
    assert_eq!(lines.len(), 8, "{lines:?}");
    let shared = aws.store.find_by_oclc(ALPHA, &[48_888]).unwrap();
    assert_eq!(
        shared.len(),
        1,
        "one record for the shared number: {shared:?}"
    );
    let record = aws.store.record(ALPHA, &shared[0].mms_id).unwrap().unwrap();
    let outcomes: Vec<&str> = [0, 5]
        .iter()
        .map(|&i| lines[i]["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"added"),
        "one of the two added it: {outcomes:?}"
    );
    assert_eq!(
        record.revision,
        1 + outcomes.iter().filter(|&&o| o == "merged").count() as u64,
        "the other merged into it (or failed, by the 005 check): {outcomes:?}"
    );
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 7);
    assert!(leftovers(&aws).is_empty(), "{:?}", leftovers(&aws));
}

/// An export sent while a 20,000-record drop file is importing is answered (through the
/// inbox queue and its own poll worker), not left pending behind the file.
#[test]
fn an_export_is_answered_while_a_large_drop_file_imports() {
    let aws = Loop::with_settings(|settings| Settings {
        chunk: 50,
        max_parallel_chunks: 1,
        ..settings
    });
    // The two paths of the template: inbox/ → the inbox queue, drop/ → the drop queue.
    let inbox = Queue::create(&aws.context, 30);
    testing::notify_queues(&aws.blobs, &[(&inbox, "inbox/"), (&aws.queue, "drop/")]);
    take_test_event(&inbox);
    take_test_event(&aws.queue);
    let file = drop_file(20_000, 100_000, &[], 0);
    let drop_key = "drop/01DEMO_ALPHA/large.mrc";
    let report_key = "reports/01DEMO_ALPHA/large.mrc.results.jsonl";
    aws.blobs.put(drop_key, &file).unwrap();

    let stop = AtomicBool::new(false);
    let queues = vec![
        (aws.queue.sqs().clone(), aws.queue.arn.clone()),
        (inbox.sqs().clone(), inbox.arn.clone()),
    ];
    std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            poll::poll(&aws.processor, &queues, Duration::from_secs(900), &stop);
        });
        // The file is importing: its first chunk tasks are out.
        let started = Instant::now();
        while aws
            .blobs
            .list("drop/01DEMO_ALPHA/.chunks/")
            .unwrap()
            .is_empty()
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no chunk task"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let sent = Instant::now();
        let export_id = aws.export(
            ALPHA,
            &encode(&oclc_record(
                99_999,
                b' ',
                Some("20240101120000.0"),
                "Sent meanwhile.",
            )),
        );
        while aws.blobs.get(&result_key(&export_id)).unwrap().is_none() {
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "the export was not answered within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let answered = sent.elapsed();
        let doc = aws.result_doc(&export_id).unwrap();
        assert_eq!(doc.outcome, "added", "{doc:?}");
        assert!(
            doc.host_message.contains("processed successfully"),
            "{doc:?}"
        );
        assert_eq!(
            aws.blobs.get(report_key).unwrap(),
            None,
            "the drop file is still importing"
        );
        assert!(aws.blobs.get(drop_key).unwrap().is_some());
        eprintln!("export answered in {answered:?} while the drop file imports");
        stop.store(true, Ordering::Relaxed);
        poller.join().unwrap();
    });
}

/// What a back-off port was asked.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<(String, String, Duration)>>);

impl Redelivery for Recorded {
    fn redeliver_after(
        &self,
        source_arn: &str,
        receipt_handle: &str,
        after: Duration,
    ) -> bibgate_store::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push((source_arn.into(), receipt_handle.into(), after));
        Ok(())
    }
}

/// A blob store that is down.
struct Down;

impl BlobStore for Down {
    fn put(&self, _: &str, _: &[u8]) -> bibgate_store::Result<()> {
        Err(bibgate_store::Error::Backend("down".into()))
    }
    fn put_if_absent(&self, _: &str, _: &[u8]) -> bibgate_store::Result<bool> {
        Err(bibgate_store::Error::Backend("down".into()))
    }
    fn get(&self, _: &str) -> bibgate_store::Result<Option<Vec<u8>>> {
        Err(bibgate_store::Error::Backend("down".into()))
    }
    fn list(&self, _: &str) -> bibgate_store::Result<Vec<String>> {
        Err(bibgate_store::Error::Backend("down".into()))
    }
    fn delete(&self, _: &str) -> bibgate_store::Result<bool> {
        Err(bibgate_store::Error::Backend("down".into()))
    }
}

fn message(id: &str, key: &str, deliveries: u32) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.into());
    message.receipt_handle = Some(format!("receipt-{id}"));
    message.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:bibgate-dev-inbox".into());
    message.body = Some(format!(
        r#"{{"Records":[{{"eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"b"}},"object":{{"key":"{key}"}}}}}}]}}"#
    ));
    message
        .attributes
        .insert("ApproximateReceiveCount".into(), deliveries.to_string());
    message
}

#[test]
fn a_failed_export_comes_back_after_a_back_off() {
    assert_eq!(
        bibgate_import_processor::retry_delay(1, Duration::from_secs(300)),
        Duration::from_secs(2)
    );
    assert_eq!(
        bibgate_import_processor::retry_delay(7, Duration::from_secs(300)),
        Duration::from_secs(128)
    );
    assert_eq!(
        bibgate_import_processor::retry_delay(9, Duration::from_secs(300)),
        Duration::from_secs(300)
    );
    assert_eq!(
        bibgate_import_processor::retry_delay(u32::MAX, Duration::from_secs(300)),
        Duration::from_secs(300)
    );
    let aws = Loop::new();
    let services = Services::new(aws.store.clone(), Arc::new(Down));
    let recorded = Arc::new(Recorded::default());
    let processor = Processor::new(services, Settings::new("b")).with_redelivery(recorded.clone());
    let mut event = SqsEvent::default();
    event.records = vec![
        message("export", &format!("inbox/{ALPHA}/{ALPHA}-1-x-1.mrc"), 3),
        message("file", &format!("drop/{ALPHA}/f.mrc"), 3),
    ];
    let response = processor.handle(&event, &|| Duration::from_secs(20));
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["export", "file"], "both are delivered again");
    assert_eq!(
        *recorded.0.lock().unwrap(),
        [(
            "arn:aws:sqs:us-east-1:123456789012:bibgate-dev-inbox".to_string(),
            "receipt-export".to_string(),
            Duration::from_secs(8)
        )],
        "the export backs off 2^3 s; the drop file keeps the queue's visibility timeout"
    );
}

/// The back-off on a real queue: the message is visible again after it, not after the
/// queue's visibility timeout.
#[test]
fn the_back_off_changes_the_message_visibility_on_sqs() {
    let context = testing::context();
    let queue = Queue::create(&context, 600);
    queue.send("hello");
    let first = queue.receive(1, 1);
    assert_eq!(first.len(), 1);
    let redelivery = poll::QueueRedelivery::new(vec![queue.sqs().clone()]);
    redelivery
        .redeliver_after(&queue.arn, &first[0].receipt_handle, Duration::from_secs(1))
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(again) = queue.receive(1, 1).pop() {
            assert_eq!(again.message_id, first[0].message_id);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not visible again after the back-off"
        );
    }
}

/// A record touching more OCLC numbers than one DynamoDB transaction can index is one
/// failed report line with the reason; the rest of its chunk imports.
#[test]
fn a_record_with_too_many_oclc_numbers_fails_alone() {
    let aws = Loop::with_settings(|settings| Settings {
        chunk: 3,
        ..settings
    });
    let mut file = Vec::new();
    for i in 0..3u64 {
        let mut record = oclc_record(
            43_000 + i,
            b' ',
            Some("20240101120000.0"),
            &format!("Record {i}."),
        );
        if i == 1 {
            for extra in 0..120u64 {
                record.push_data(
                    "035",
                    b' ',
                    b' ',
                    &[(b'a', &format!("(OCoLC){}", 500_000 + extra))],
                );
            }
        }
        file.extend(encode(&record));
    }
    let report_key = "reports/01DEMO_ALPHA/many numbers.mrc.results.jsonl";
    aws.blobs
        .put("drop/01DEMO_ALPHA/many numbers.mrc", &file)
        .unwrap();
    aws.drain_until(Duration::from_secs(120), || {
        aws.blobs.get(report_key).unwrap().is_some()
    });
    let lines = report_lines(&aws, report_key);
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|line| line["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["added", "failed", "added"], "{lines:?}");
    assert_eq!(lines[1]["reason_code"], "RECORD_TOO_LARGE", "{lines:?}");
    let message = lines[1]["host_message"].as_str().unwrap();
    assert!(
        message.contains("OCLC numbers") && message.contains("at most 100"),
        "{message}"
    );
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 2);
    assert!(
        aws.blobs
            .get("reports/01DEMO_ALPHA/many numbers.mrc.rejected.mrc")
            .unwrap()
            .is_some(),
        "the record is among the rejected ones"
    );
}

/// A MARCXML drop file is split after `</record>` elements: each chunk reads the
/// document's head first and ends with the collection's end tag, and the records keep
/// their indexes in the file.
#[test]
fn a_marcxml_drop_file_fans_out_at_record_elements() {
    use bibgate_marc::marcxml::{COLLECTION_END, COLLECTION_START, write_record};
    let aws = Loop::with_settings(|settings| Settings {
        chunk: 2,
        ..settings
    });
    let mut xml = COLLECTION_START.to_string();
    for i in 1..=5u64 {
        let record = oclc_record(
            45_000 + i,
            b' ',
            Some("20240101120000.0"),
            &format!("Xml {i}."),
        );
        write_record(&record, &mut xml, false).unwrap();
        xml.push('\n');
    }
    xml.push_str(COLLECTION_END);
    let report_key = "reports/01DEMO_ALPHA/books.xml.results.jsonl";
    aws.blobs
        .put("drop/01DEMO_ALPHA/books.xml", xml.as_bytes())
        .unwrap();
    aws.drain_until(Duration::from_secs(120), || {
        aws.blobs.get(report_key).unwrap().is_some()
    });
    let lines = report_lines(&aws, report_key);
    assert_eq!(lines.len(), 5, "{lines:?}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"].as_u64(), Some(i as u64 + 1), "{line}");
        assert_eq!(line["outcome"], "added", "{line}");
        assert_eq!(
            line["oclc_numbers"][0].as_u64(),
            Some(45_001 + i as u64),
            "{line}"
        );
    }
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 5);
    assert!(leftovers(&aws).is_empty(), "{:?}", leftovers(&aws));
}
