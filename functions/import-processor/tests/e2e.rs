//! End to end through S3 events on moto (T6): a record put into `inbox/…` or `drop/…`
//! makes moto's S3 send an event to an SQS queue; the test receives the real message and
//! hands it to the handler as an `SqsEvent` (a local poller in place of the Lambda
//! service), then checks DynamoDB and `results/<id>.json`. Fails, never skips, without
//! moto (`scripts/test.sh` starts it).

mod common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use bibgate_inbox::layout::{inbox_key, result_key};
use bibgate_store::{BlobStore, MmsId, Store};
use common::*;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn carli_add_then_merge_keeps_the_prior_version() {
    let aws = Loop::new();
    let added = aws.import(
        ALPHA,
        &encode(&oclc_record(3001, b' ', Some("20240101120000.0"), "First.")),
    );
    assert_eq!(added.outcome, "added", "{added:?}");
    assert_eq!(added.reason_code, "ADDED");
    let mms = added.mms_id.clone().unwrap();
    assert!(added.host_message.starts_with(SUCCESS), "{added:?}");
    assert!(added.raw_key.starts_with("received/01DEMO_ALPHA/"));
    assert!(aws.blobs.get(&added.raw_key).unwrap().is_some());

    let merged = aws.import(
        ALPHA,
        &encode(&oclc_record(
            3001,
            b' ',
            Some("20240301120000.0"),
            "Updated.",
        )),
    );
    assert_eq!(merged.outcome, "merged", "{merged:?}");
    assert_eq!(merged.mms_id.as_deref(), Some(mms.as_str()));
    let stored = aws
        .store
        .record(ALPHA, &MmsId(mms.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision, 2);
    assert_eq!(aws.store.versions(ALPHA, &MmsId(mms)).unwrap().len(), 1);
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 1);
    let result = aws.store.result(&merged.export_id).unwrap().unwrap();
    assert_eq!(result.reason_code, merged.reason_code);
}

#[test]
fn carli_multi_match_fails_and_changes_nothing() {
    let aws = Loop::new();
    let (a, b) = seed_sharing(&*aws.store, ALPHA, 3002, 9002);
    let doc = aws.import(ALPHA, &record_bytes(3002, "Incoming."));
    assert_eq!(
        doc.host_message,
        format!("Import Failed - Multi matches found for this record. Matching MMS IDs: {a}, {b}")
    );
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 2);
}

#[test]
fn carli_not_added_brief() {
    let aws = Loop::new();
    let mms = aws
        .import(ALPHA, &encode(&oclc_record(3003, b' ', None, "Full.")))
        .mms_id
        .unwrap();
    let doc = aws.import(ALPHA, &encode(&oclc_record(3003, b'7', None, "Brief.")));
    assert!(
        doc.host_message.starts_with(&format!(
            "Import Failed - NOT_ADDED_BRIEF: the existing record {mms} has brief level 10"
        )),
        "{doc:?}"
    );
    assert_eq!(doc.outcome, "failed");
}

#[test]
fn carli_not_added_locked_until_released() {
    let aws = Loop::new();
    let mms = aws
        .import(ALPHA, &record_bytes(3004, "Base."))
        .mms_id
        .unwrap();
    seed_lock(&*aws.store, ALPHA, &mms);
    let doc = aws.import(ALPHA, &record_bytes(3004, "Locked."));
    assert_eq!(
        doc.host_message,
        format!(
            "Import Failed - NOT_ADDED_LOCKED: record {mms} is locked in the Metadata Editor by {ALPHA} (jdoe) since 2024-06-01 10:00 UTC."
        )
    );
    assert!(aws.store.release_lock(ALPHA, &MmsId(mms.clone())).unwrap());
    let doc = aws.import(ALPHA, &record_bytes(3004, "Locked."));
    assert_eq!(doc.outcome, "merged", "{doc:?}");
    assert_eq!(doc.mms_id, Some(mms));
}

#[test]
fn carli_not_added_old() {
    let aws = Loop::new();
    let mms = aws
        .import(
            ALPHA,
            &encode(&oclc_record(3005, b' ', Some("20230101000000.0"), "New.")),
        )
        .mms_id
        .unwrap();
    let doc = aws.import(
        ALPHA,
        &encode(&oclc_record(3005, b' ', Some("20220101000000.0"), "Old.")),
    );
    assert_eq!(
        doc.host_message,
        format!(
            "Import Failed - NOT_ADDED_OLD: the incoming record's 005 (20220101000000.0) is older than the version last imported into {mms} (20230101000000.0)."
        )
    );
}

/// The component of the built `no-005-check` policy (scripts/test.sh builds it).
fn no_005_check() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-unknown-unknown/policy/bibgate_policy_no_005_check.wasm");
    let core = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the policy is not built ({}: {e}); run `bash scripts/test.sh`",
            path.display()
        )
    });
    bibgate_plugin_host::componentize(&core).unwrap()
}

#[test]
fn the_function_applies_the_institutions_active_policy_and_names_it() {
    use bibgate_store::PolicyStore;
    use bibgate_store::policy::{NewActivation, OnError};
    let aws = Loop::new();
    let request = bibgate_plugin_host::PublishRequest {
        name: "no-005-check".into(),
        version: "1.0.0".into(),
        description: "test".into(),
        fuel: 10_000_000,
        memory_bytes: 16 << 20,
        published_by: "test".into(),
        published_unix: 1_800_000_000,
    };
    let manifest =
        bibgate_plugin_host::publish(&engine(), &*aws.policies, &no_005_check(), &request).unwrap();
    let activation = aws
        .policies
        .activate(
            &NewActivation {
                institution: ALPHA.into(),
                sha256: manifest.sha256.clone(),
                config: Vec::new(),
                on_error: OnError::Default,
                activated_by: "test".into(),
                activated_unix: 1_800_000_000,
            },
            0,
        )
        .unwrap();
    for (institution, number) in [(ALPHA, 3105), (BETA, 3106)] {
        aws.import(
            institution,
            &encode(&oclc_record(number, b' ', Some("20230101000000.0"), "New.")),
        );
    }
    let old = |number| encode(&oclc_record(number, b' ', Some("20220101000000.0"), "Old."));
    let alpha = aws.import(ALPHA, &old(3105));
    assert_eq!(alpha.reason_code, "MERGED", "{alpha:?}");
    let stored = aws.store.result(&alpha.export_id).unwrap().unwrap();
    assert_eq!(stored.policy.as_deref(), Some(activation.label().as_str()));
    assert!(activation.label().starts_with("no-005-check@1 sha256:"));
    let beta = aws.import(BETA, &old(3106));
    assert_eq!(beta.reason_code, "NOT_ADDED_OLD", "{beta:?}");
    assert_eq!(
        aws.store.result(&beta.export_id).unwrap().unwrap().policy,
        None
    );
    // A drop file of the same institution goes through the same policy.
    let oldest = encode(&oclc_record(
        3105,
        b' ',
        Some("20210101000000.0"),
        "Oldest.",
    ));
    aws.blobs.put("drop/01DEMO_ALPHA/old.mrc", &oldest).unwrap();
    let report_key = "reports/01DEMO_ALPHA/old.mrc.results.jsonl";
    aws.drain_until(WAIT, || aws.blobs.get(report_key).unwrap().is_some());
    let report = String::from_utf8(aws.blobs.get(report_key).unwrap().unwrap()).unwrap();
    let line: serde_json::Value = serde_json::from_str(report.lines().next().unwrap()).unwrap();
    assert_eq!(line["reason_code"], "MERGED", "{report}");
    let stored = aws
        .store
        .result(line["export_id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.policy.as_deref(), Some(activation.label().as_str()));
}

#[test]
fn carli_failed_marcxml_conversion_keeps_only_the_result() {
    let aws = Loop::new();
    let doc = aws.import(ALPHA, &too_long_field_record(3006));
    assert!(
        doc.host_message
            .starts_with("Import Failed - Failed to convert marc record to marc xml: "),
        "{doc:?}"
    );
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 0);
    assert!(aws.store.result(&doc.export_id).unwrap().is_some());
}

#[test]
fn carli_no_integration_profile_is_recorded_and_acknowledged() {
    let aws = Loop::new();
    for institution in [GAMMA, "01NOBODY"] {
        let doc = aws.import(institution, &record_bytes(3007, "No profile."));
        assert_eq!(
            doc.host_message,
            format!("No integration profile found for institution {institution}")
        );
        assert_eq!(doc.reason_code, "NO_PROFILE");
    }
    // Nothing is left to deliver again: the permanent failures were acknowledged.
    assert!(aws.receive(10).is_empty());
}

#[test]
fn a_duplicate_event_delivery_imports_once() {
    let aws = Loop::new();
    let bytes = record_bytes(3008, "Twice.");
    let export_id = aws.export(ALPHA, &bytes);
    let mut messages = Vec::new();
    let started = Instant::now();
    while messages.is_empty() {
        assert!(started.elapsed() < WAIT);
        messages = aws.receive(10);
    }
    assert_eq!(messages.len(), 1);
    // The same notification twice in one batch, and again in a later batch after the
    // shim wrote the same inbox key again (a retried PUT).
    let mut twice = messages.clone();
    twice.push(messages[0].clone());
    twice[1].message_id.push_str("-dup");
    let response = aws
        .processor
        .handle(&sqs_event(&twice), &|| Duration::from_secs(900));
    assert!(response.batch_item_failures.is_empty());
    acknowledge(&aws.queue, &messages, &response);
    aws.blobs
        .put(&inbox_key(ALPHA, &export_id), &bytes)
        .unwrap();
    aws.drain_until(WAIT, || {
        aws.blobs
            .get(&inbox_key(ALPHA, &export_id))
            .unwrap()
            .is_none()
    });
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 1);
    assert_eq!(aws.store.find_by_oclc(ALPHA, &[3008]).unwrap().len(), 1);
    let doc = aws.result_doc(&export_id).unwrap();
    assert_eq!(doc.outcome, "added");
    let stored = aws
        .store
        .record(ALPHA, &MmsId(doc.mms_id.unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.revision, 1,
        "the duplicate did not merge into the record"
    );
}

#[test]
fn twenty_concurrent_invocations_on_one_new_number_make_one_record() {
    let aws = Loop::new();
    let n_exports = 20;
    let ids: Vec<String> = (0..n_exports)
        .map(|i| aws.export(ALPHA, &record_bytes(3009, &format!("Racer {i}."))))
        .collect();
    let mut messages = Vec::new();
    let started = Instant::now();
    while messages.len() < n_exports {
        assert!(
            started.elapsed() < WAIT,
            "only {} events arrived",
            messages.len()
        );
        messages.extend(aws.receive(10));
    }
    // One invocation per message, all started together (as 20 Lambdas would be).
    let barrier = Barrier::new(n_exports);
    let responses: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = messages
            .iter()
            .map(|message| {
                let aws = &aws;
                let barrier = &barrier;
                scope.spawn(move || {
                    let batch = std::slice::from_ref(message);
                    barrier.wait();
                    aws.processor
                        .handle(&sqs_event(batch), &|| Duration::from_secs(900))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    for (message, response) in messages.iter().zip(&responses) {
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        acknowledge(&aws.queue, std::slice::from_ref(message), response);
    }
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 1);
    let entries = aws.store.find_by_oclc(ALPHA, &[3009]).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut outcomes: Vec<String> = ids
        .iter()
        .map(|id| aws.result_doc(id).unwrap().outcome)
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "added").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "merged").count(),
        n_exports - 1
    );
    let stored = aws
        .store
        .record(ALPHA, &entries[0].mms_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision, n_exports as u64, "no merge was lost");
}

#[test]
fn a_drop_file_with_an_encoded_name_is_imported_across_invocations() {
    // Chunks of 5 and no time left after each: every chunk ends its invocation (the
    // continued path, without fan-out).
    let aws = Loop::with_settings(|settings| bibgate_import_processor::Settings {
        chunk: 5,
        fan_out: false,
        reserve: Duration::from_secs(1),
        ..settings
    });
    let n_records = 12u64;
    let mut file = Vec::new();
    for i in 0..n_records {
        file.extend(record_bytes(4000 + i, &format!("Dropped {i}.")));
    }
    file.extend(too_long_field_record(4999));
    let key = "drop/01DEMO_ALPHA/new books+1.mrc";
    aws.blobs.put(key, &file).unwrap();
    let report_key = "reports/01DEMO_ALPHA/new books+1.mrc.results.jsonl";
    let started = Instant::now();
    let mut invocations = 0;
    while aws.blobs.get(report_key).unwrap().is_none() {
        assert!(started.elapsed() < WAIT, "no report");
        let messages = aws.receive(1);
        if messages.is_empty() {
            continue;
        }
        invocations += 1;
        // One second left after each chunk: below the reserve, so it hands over.
        let calls = std::cell::Cell::new(0);
        let remaining = || {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                Duration::from_secs(900)
            } else {
                Duration::from_millis(500)
            }
        };
        let response = aws.processor.handle(&sqs_event(&messages), &remaining);
        acknowledge(&aws.queue, &messages, &response);
    }
    assert_eq!(
        invocations, 3,
        "13 records in chunks of 5 take three invocations"
    );
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
        (1..=n_records + 1).collect::<Vec<_>>(),
        "one line per record, in order"
    );
    assert!(
        aws.blobs
            .get("reports/01DEMO_ALPHA/new books+1.mrc.rejected.mrc")
            .unwrap()
            .is_some()
    );
    assert_eq!(aws.blobs.get(key).unwrap(), None, "the drop file is taken");
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
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), n_records);
    assert!(
        aws.blobs
            .get("received/drop/01DEMO_ALPHA/new books+1.mrc")
            .unwrap()
            .is_some()
    );
}

#[test]
fn test_events_and_other_keys_are_acknowledged() {
    let aws = Loop::new();
    aws.queue
        .send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#);
    aws.queue.send("not an event");
    aws.blobs
        .put("drop/01DEMO_ALPHA/README.txt", b"readme")
        .unwrap();
    aws.blobs.put("inbox/not-an-export.txt", b"x").unwrap();
    let mut seen = 0;
    let started = Instant::now();
    while seen < 4 {
        assert!(started.elapsed() < WAIT, "only {seen} messages arrived");
        let messages = aws.receive(10);
        seen += messages.len();
        let response = aws.invoke(&messages);
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 0);
    assert!(aws.blobs.list("results/").unwrap().is_empty());
}

#[test]
fn throughput_and_init_against_moto() {
    let started = Instant::now();
    let context = bibgate_store_aws::testing::context();
    let store = bibgate_store_aws::DynamoStore::new(&context, "any");
    let blobs = bibgate_store_aws::S3BlobStore::new(&context, "any");
    let init = started.elapsed();
    drop((store, blobs));
    let aws = Loop::with_settings(|settings| bibgate_import_processor::Settings {
        chunk: 50,
        ..settings
    });
    let n_records = 100u64;
    let mut file = Vec::new();
    for i in 0..n_records {
        file.extend(record_bytes(6000 + i, &format!("Bulk {i}.")));
    }
    aws.blobs.put("drop/01DEMO_ALPHA/bulk.mrc", &file).unwrap();
    let started = Instant::now();
    aws.drain_until(WAIT * 3, || {
        aws.blobs
            .get("reports/01DEMO_ALPHA/bulk.mrc.results.jsonl")
            .unwrap()
            .is_some()
    });
    let drop_rate = n_records as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let n_exports = 20;
    let ids: Vec<String> = (0..n_exports)
        .map(|i| aws.export(ALPHA, &record_bytes(7000 + i, "Single.")))
        .collect();
    aws.drain_until(WAIT * 3, || {
        ids.iter()
            .all(|id| aws.blobs.get(&result_key(id)).unwrap().is_some())
    });
    let export_rate = n_exports as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "measured against moto: adapter init {} ms; drop file {drop_rate:.1} records/s; inbox exports {export_rate:.1} records/s (put + event + handler)",
        init.as_millis()
    );
    assert_eq!(
        aws.store.count_records(ALPHA).unwrap(),
        n_records + n_exports
    );
}

/// The whole path: Connexion client → shim (S3 + DynamoDB) → `inbox/` → S3 event → SQS →
/// handler (a poller thread) → `results/` → the shim's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_path_from_the_shim_to_the_reply() {
    let aws = std::sync::Arc::new(tokio::task::spawn_blocking(Loop::new).await.unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let aws = aws.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let messages = aws.receive(10);
                if !messages.is_empty() {
                    aws.invoke(&messages);
                }
            }
        })
    };
    let shim = Shim::start(
        aws.services.clone(),
        bibgate_gateway::Config {
            reply_deadline: Duration::from_secs(30),
            ..bibgate_gateway::Config::default()
        },
    )
    .await;
    let addr = shim.addr.clone();
    let send = |bytes: Vec<u8>, password: &'static str| {
        let addr = addr.clone();
        async move {
            bibgate_gateway::send(
                &addr,
                ALPHA,
                password,
                &bytes,
                bibgate_gateway::LengthEncoding::Byte,
                Duration::from_secs(40),
            )
            .await
            .unwrap()
        }
    };
    let reply = send(record_bytes(5001, "Through the shim."), PASSWORD).await;
    assert!(
        reply.starts_with(&format!("{SUCCESS} MMS ID: 99")),
        "{reply}"
    );
    let reply = send(
        encode(&oclc_record(5001, b' ', Some("20250101120000.0"), "Again.")),
        PASSWORD,
    )
    .await;
    assert!(reply.starts_with(SUCCESS), "{reply}");
    // A reply that is not a success names its export (issue 16).
    let refused = send(record_bytes(5002, "Wrong password."), "not-the-password").await;
    let (message, export_id) = refused
        .split_once("\nExport ID: ")
        .unwrap_or_else(|| panic!("no export id in {refused:?}"));
    assert_eq!(
        message,
        "Logon Failed--the Logon ID and/or password is/are not valid"
    );
    assert!(export_id.starts_with("logon-"), "{refused}");
    shim.stop(Duration::from_secs(60)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::task::spawn_blocking(move || poller.join().unwrap())
        .await
        .unwrap();
    let store = aws.store.clone();
    let (count, received) = tokio::task::spawn_blocking(move || {
        (
            store.count_records(ALPHA).unwrap(),
            aws.blobs.list("received/01DEMO_ALPHA/").unwrap().len(),
        )
    })
    .await
    .unwrap();
    assert_eq!(count, 1, "the second export merged");
    assert_eq!(received, 2, "both exports' raw bytes are kept");
}
