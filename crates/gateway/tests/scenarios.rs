//! End to end through the socket: each CARLI scenario gets its host message; concurrent
//! exports; the drop folder.

mod common;

use std::time::Duration;

use bibgate_inbox::layout::parse_inbox_key;
use bibgate_inbox::{ResultDelivery, Services};
use bibgate_store::{BlobStore, MmsId, Outcome, Store};
use common::*;

/// The export id of a `received/<institution>/<export-id>.mrc` key.
fn received_export_id(key: &str) -> &str {
    key.rsplit('/')
        .next()
        .and_then(|name| name.strip_suffix(".mrc"))
        .unwrap_or_else(|| panic!("not a received export: {key}"))
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within 10 s");
}

async fn add(harness: &Harness, number: u64, version: Option<&str>, level: u8) -> String {
    let record = encode(&oclc_record(number, level, version, "Existing title."));
    let reply = harness.send(ALPHA, &record).await;
    assert!(reply.starts_with(&format!("{SUCCESS} MMS ID: ")), "{reply}");
    mms_of(&reply)
}

#[tokio::test]
async fn add_then_merge() {
    add_then_merge_with(ResultDelivery::Store).await;
}

/// The same with result documents (the delivery the Lambda function uses): the in-process
/// shim answers alike, and every export gets its document.
#[tokio::test]
async fn add_then_merge_with_result_documents() {
    add_then_merge_with(ResultDelivery::Documents).await;
}

async fn add_then_merge_with(delivery: ResultDelivery) {
    let harness = Harness::start_with(config(), delivery).await;
    let mms = add(&harness, 2001, Some("20240101120000.0"), b' ').await;
    assert!(mms.starts_with("99") && mms.ends_with("5001"), "{mms}");
    let update = encode(&oclc_record(
        2001,
        b' ',
        Some("20240301120000.0"),
        "Updated title.",
    ));
    let reply = harness.send(ALPHA, &update).await;
    assert_eq!(reply, format!("{SUCCESS} MMS ID: {mms}"));
    assert_eq!(harness.count(ALPHA), 1);
    let stored = harness.store.record(ALPHA, &MmsId(mms)).unwrap().unwrap();
    assert_eq!(stored.revision, 2);
    wait_until(|| harness.blobs.list("inbox/").unwrap().is_empty()).await;
    let documents = harness.blobs.list("results/").unwrap().len();
    match delivery {
        ResultDelivery::Store => assert_eq!(documents, 0, "no result documents"),
        ResultDelivery::Documents => assert_eq!(documents, 2, "one document per export"),
    }
    harness.stop().await;
}

#[tokio::test]
async fn multi_match() {
    let harness = Harness::start(config()).await;
    let (a, b) = seed_sharing(&*harness.store, ALPHA, 2002, 9002);
    let reply = harness.send(ALPHA, &record_bytes(2002, "Incoming.")).await;
    assert_eq!(
        failure(&reply),
        format!("Import Failed - Multi matches found for this record. Matching MMS IDs: {a}, {b}")
    );
    harness.stop().await;
}

#[tokio::test]
async fn not_added_brief() {
    let harness = Harness::start(config()).await;
    let mms = add(&harness, 2003, None, b' ').await;
    let brief = encode(&oclc_record(2003, b'7', None, "Brief."));
    let reply = harness.send(ALPHA, &brief).await;
    assert!(
        reply.starts_with(&format!(
            "Import Failed - NOT_ADDED_BRIEF: the existing record {mms} has brief level 10 (Leader/17 \" \"), higher than the incoming record's "
        )),
        "{reply}"
    );
    assert!(failure(&reply).ends_with("(Leader/17 \"7\")."), "{reply}");
    harness.stop().await;
}

#[tokio::test]
async fn not_added_locked() {
    let harness = Harness::start(config()).await;
    let mms = add(&harness, 2004, None, b' ').await;
    seed_lock(&*harness.store, ALPHA, &mms);
    let reply = harness.send(ALPHA, &record_bytes(2004, "Locked.")).await;
    assert_eq!(
        failure(&reply),
        format!(
            "Import Failed - NOT_ADDED_LOCKED: record {mms} is locked in the Metadata Editor by {ALPHA} (jdoe) since 2024-06-01 10:00 UTC."
        )
    );
    // Released: the same export again (a failure is not kept by the retry window) merges.
    harness
        .store
        .release_lock(ALPHA, &MmsId(mms.clone()))
        .unwrap();
    let reply = harness.send(ALPHA, &record_bytes(2004, "Locked.")).await;
    assert_eq!(reply, format!("{SUCCESS} MMS ID: {mms}"));
    harness.stop().await;
}

#[tokio::test]
async fn not_added_old() {
    let harness = Harness::start(config()).await;
    let mms = add(&harness, 2005, Some("20230101000000.0"), b' ').await;
    let old = encode(&oclc_record(2005, b' ', Some("20220101000000.0"), "Old."));
    let reply = harness.send(ALPHA, &old).await;
    assert_eq!(
        failure(&reply),
        format!(
            "Import Failed - NOT_ADDED_OLD: the incoming record's 005 (20220101000000.0) is older than the version last imported into {mms} (20230101000000.0)."
        )
    );
    harness.stop().await;
}

#[tokio::test]
async fn failed_marcxml_conversion() {
    let harness = Harness::start(config()).await;
    let reply = harness.send(ALPHA, &too_long_field_record(2006)).await;
    assert!(
        reply.starts_with("Import Failed - Failed to convert marc record to marc xml: "),
        "{reply}"
    );
    assert!(reply.contains("9,999"), "{reply}");
    assert_eq!(harness.count(ALPHA), 0);
    harness.stop().await;
}

#[tokio::test]
async fn bad_logon_and_no_profile() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(2007, "Logon.");
    let reply = bibgate_gateway::send(
        &harness.addr_text,
        ALPHA,
        "not-the-password",
        &record,
        bibgate_gateway::LengthEncoding::Byte,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(refusal(&reply), LOGON_FAILED);
    assert_eq!(
        refusal(&harness.send(GAMMA, &record).await),
        format!("No integration profile found for institution {GAMMA}")
    );
    assert_eq!(
        refusal(&harness.send("01NOBODY", &record).await),
        "No integration profile found for institution 01NOBODY"
    );
    harness.stop().await;
}

/// The export id of a reply that is not a success.
fn export_id_of(reply: &str) -> String {
    reply
        .split_once("\nExport ID: ")
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| panic!("no export id in {reply:?}"))
}

/// Issue 16: logon and profile failures are stored results (logon id, address, time, the
/// institution when the logon id names one; never the password), found by their export id.
#[tokio::test]
async fn r16_logon_and_profile_failures_are_stored_results() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(2016, "Refused.");
    let secret = "not-the-Password-16";
    let cases = [
        (
            desktop_request(ALPHA, secret, &record),
            ALPHA,
            "LOGON_FAILED",
        ),
        (
            desktop_request(GAMMA, PASSWORD, &record),
            GAMMA,
            "NO_PROFILE",
        ),
        (
            desktop_request("01NOBODY", secret, &record),
            bibgate_gateway::UNKNOWN_INSTITUTION,
            "NO_PROFILE",
        ),
        // An empty logon id with the Connexion user name in `U`.
        (
            {
                let mut request = field(b'U', b"jdoe-cataloguer");
                request.extend(desktop_request("", secret, &record));
                request
            },
            bibgate_gateway::UNKNOWN_INSTITUTION,
            "NO_LOGON_ID",
        ),
    ];
    for (request, institution, code) in cases {
        let reply = text(&exchange(harness.addr, &request).await);
        let export_id = export_id_of(&reply);
        let stored = harness
            .store
            .result(&export_id)
            .unwrap()
            .unwrap_or_else(|| panic!("no stored result for {reply:?}"));
        assert_eq!(stored.institution, institution, "{reply}");
        assert_eq!(stored.reason_code, code, "{reply}");
        assert_eq!(stored.outcome, bibgate_store::Outcome::Failed);
        assert_eq!(
            format!(
                "{}{}",
                stored.host_message,
                bibgate_gateway::export_line(&export_id)
            ),
            reply
        );
        assert!(
            stored.trace.iter().any(|line| line == "address: 127.0.0.1"),
            "{:?}",
            stored.trace
        );
        assert!(stored.received_unix > 0);
        let everything = format!("{stored:?}");
        assert!(!everything.contains(secret), "{everything}");
        assert!(!everything.contains(PASSWORD), "{everything}");
        if code == "NO_LOGON_ID" {
            assert_eq!(stored.host_message, bibgate_gateway::NO_LOGON_ID);
            assert!(!reply.contains("jdoe"), "{reply}");
        } else {
            assert!(
                stored
                    .trace
                    .iter()
                    .any(|line| line.starts_with("logon id: \""))
            );
        }
    }
    assert_eq!(harness.count(ALPHA), 0);
    harness.stop().await;
}

#[tokio::test]
async fn the_raw_bytes_are_kept_and_the_result_points_at_them() {
    let harness = Harness::start(config()).await;
    let record = encode(&oclc_record(
        2008,
        b' ',
        Some("20240101120000.0"),
        "Existing title.",
    ));
    add(&harness, 2008, Some("20240101120000.0"), b' ').await;
    let keys = harness.blobs.list("received/").unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(harness.blobs.get(&keys[0]).unwrap().unwrap(), record);
    // The processor deletes the inbox object right after writing the result.
    wait_until(|| harness.blobs.list("inbox/").unwrap().is_empty()).await;
    let export_id = received_export_id(&keys[0]);
    let stored = harness.store.result(export_id).unwrap().unwrap();
    assert_eq!(stored.raw_key, keys[0]);
    let doc = harness.result_doc(export_id).await;
    assert_eq!(doc.raw_key, keys[0]);
    assert_eq!(doc.reason_code, "ADDED");
    assert_eq!(doc.oclc_numbers, vec![2008]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_at_once_each_get_their_own_answer() {
    let harness = std::sync::Arc::new(Harness::start(config()).await);
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let harness = harness.clone();
        tasks.push(tokio::spawn(async move {
            let number = 3000 + i;
            let reply = harness
                .send(ALPHA, &record_bytes(number, &format!("Title {i}.")))
                .await;
            (number, reply)
        }));
    }
    let mut mms_ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (number, reply) = task.await.unwrap();
        assert!(reply.starts_with(&format!("{SUCCESS} MMS ID: ")), "{reply}");
        let mms = mms_of(&reply);
        // The MMS ID is the record with this client's OCLC number.
        let found = harness.store.find_by_oclc(ALPHA, &[number]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].mms_id.0, mms);
        assert!(mms_ids.insert(mms));
    }
    assert_eq!(harness.count(ALPHA), 50);
    std::sync::Arc::into_inner(harness).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_record_from_twenty_clients_is_one_record() {
    let harness = std::sync::Arc::new(Harness::start(config()).await);
    let record = record_bytes(4000, "Popular.");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let harness = harness.clone();
        let record = record.clone();
        tasks.push(tokio::spawn(
            async move { harness.send(ALPHA, &record).await },
        ));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    let mms = mms_of(&replies[0]);
    for reply in &replies {
        assert_eq!(reply, &format!("{SUCCESS} MMS ID: {mms}"));
    }
    assert_eq!(harness.count(ALPHA), 1);
    std::sync::Arc::into_inner(harness).unwrap().stop().await;
}

#[tokio::test]
async fn a_dropped_file_is_imported_with_a_report() {
    let harness = Harness::start(config()).await;
    let made = bibgate_inbox::ensure_drop_folders(&harness.services).unwrap();
    assert!(made.contains(&ALPHA.to_string()));
    let bad = too_long_field_record(5002);
    let mut file = record_bytes(5001, "Dropped one.");
    file.extend(&bad);
    file.extend(record_bytes(5003, "Dropped three."));
    // Staff copy the file into the folder.
    std::fs::write(
        harness
            .dir
            .path()
            .join("blobs/drop")
            .join(ALPHA)
            .join("new books.mrc"),
        &file,
    )
    .unwrap();
    let report_key = format!("reports/{ALPHA}/new books.mrc.results.jsonl");
    // Taking the file out of the drop folder is the last step.
    wait_until(|| {
        harness.blobs.list(&format!("drop/{ALPHA}/")).unwrap()
            == vec![format!("drop/{ALPHA}/README.txt")]
    })
    .await;
    let report = harness.blobs.get(&report_key).unwrap();
    let report = String::from_utf8(report.expect("a report")).unwrap();
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{report}");
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["added", "failed", "added"]);
    assert_eq!(lines[1]["index"], 2);
    assert_eq!(lines[1]["reason_code"], "MARCXML_CONVERSION_FAILED");
    assert_eq!(lines[2]["oclc_numbers"][0], 5003);
    assert_eq!(
        harness
            .blobs
            .get(&format!("reports/{ALPHA}/new books.mrc.rejected.mrc"))
            .unwrap()
            .unwrap(),
        bad
    );
    assert_eq!(
        harness
            .blobs
            .get(&format!("received/drop/{ALPHA}/new books.mrc"))
            .unwrap()
            .unwrap(),
        file
    );
    assert_eq!(
        harness.blobs.list(&format!("drop/{ALPHA}/")).unwrap(),
        vec![format!("drop/{ALPHA}/README.txt")]
    );
    assert_eq!(harness.count(ALPHA), 2);
    harness.stop().await;
}

/// A crash at any step leaves the inbox object; processing it again imports nothing twice.
#[tokio::test]
async fn the_processor_resumes_idempotently_after_a_crash() {
    resumes_idempotently_after_a_crash(ResultDelivery::Store).await;
}

/// The same with result documents: a crash after the document was written.
#[tokio::test]
async fn the_processor_resumes_idempotently_after_a_crash_with_result_documents() {
    resumes_idempotently_after_a_crash(ResultDelivery::Documents).await;
}

async fn resumes_idempotently_after_a_crash(delivery: ResultDelivery) {
    use bibgate_inbox::layout::{inbox_key, received_key, result_key};
    let mut harness = Harness::start_without_processor_with(config(), delivery).await;
    let export_id = format!("{ALPHA}-1717243200000-test-1");
    let record = record_bytes(6001, "Crash.");
    // Crash after step 1: the inbox object and its received copy.
    harness
        .blobs
        .put(&inbox_key(ALPHA, &export_id), &record)
        .unwrap();
    harness
        .blobs
        .put(&received_key(ALPHA, &export_id), &record)
        .unwrap();
    harness.start_processor(processor_config());
    let doc = harness.result_doc(&export_id).await;
    assert_eq!(doc.outcome, "added");
    assert_eq!(doc.raw_key, received_key(ALPHA, &export_id));
    // Crash after step 3 (the result delivered, the inbox object not deleted): the same
    // export comes back; its stored result is reused.
    if delivery == ResultDelivery::Documents {
        assert!(harness.blobs.delete(&result_key(&export_id)).unwrap());
    }
    harness
        .blobs
        .put(&inbox_key(ALPHA, &export_id), &record)
        .unwrap();
    harness.services.wake.notify_one();
    let again = harness.result_doc(&export_id).await;
    assert_eq!(again, doc);
    wait_until(|| harness.blobs.list("inbox/").unwrap().is_empty()).await;
    assert_eq!(harness.count(ALPHA), 1);
    assert_eq!(
        harness
            .store
            .versions(ALPHA, &MmsId(doc.mms_id.unwrap()))
            .unwrap()
            .len(),
        0,
        "nothing merged"
    );
    harness.stop().await;
}

/// A backlog is imported in one pass, one batch per institution: exports of one new OCLC
/// number in the same batch end as one add and merges into it, an institution that cannot be
/// routed gets a stored failure result, an export imported before (crash after step 2) keeps
/// its stored result, and every export ends with its received copy, its stored result (and
/// result document, when those are the delivery) and no inbox object.
#[tokio::test]
async fn a_backlog_is_imported_in_batches_per_institution() {
    backlog_in_batches(ResultDelivery::Store).await;
}

/// The same with result documents.
#[tokio::test]
async fn a_backlog_is_imported_in_batches_per_institution_with_result_documents() {
    backlog_in_batches(ResultDelivery::Documents).await;
}

async fn backlog_in_batches(delivery: ResultDelivery) {
    use bibgate_inbox::layout::{inbox_key, received_key, result_key};
    let mut harness = Harness::start_without_processor_with(config(), delivery).await;
    let mut exports = Vec::new();
    let mut put = |institution: &str, n: usize, record: Vec<u8>| {
        let export_id = format!("{institution}-1717243200000-batch-{n:02}");
        harness
            .blobs
            .put(&inbox_key(institution, &export_id), &record)
            .unwrap();
        exports.push((institution.to_string(), export_id, record));
    };
    for n in 0..5 {
        put(ALPHA, n, record_bytes(6100 + n as u64, "Batch."));
    }
    for n in 5..8 {
        put(ALPHA, n, record_bytes(6110, "Same number."));
    }
    put(ALPHA, 8, b"00010not a record".to_vec());
    for n in 9..11 {
        put(BETA, n, record_bytes(6120 + n as u64, "Beta batch."));
    }
    put(GAMMA, 11, record_bytes(6130, "Gamma."));
    // Imported before a crash: the stored result is taken, nothing is imported again.
    let (_, imported_id, imported_bytes) = exports[0].clone();
    let store: &dyn Store = &*harness.store;
    let route = bibgate_import::route(store, ALPHA, None).unwrap();
    let input = bibgate_import::Input::Parsed(Box::new(
        bibgate_marc::parse(
            &imported_bytes,
            bibgate_marc::iso2709::Mode::Lenient,
            bibgate_marc::decode::Charset::Auto,
        )
        .unwrap(),
    ));
    let before = bibgate_import::Importer::new(store)
        .import(
            &route,
            &input,
            &bibgate_import::Received {
                export_id: imported_id.clone(),
                batch_id: None,
                index: None,
                raw_key: received_key(ALPHA, &imported_id),
                raw_offset: 0,
                raw_len: imported_bytes.len() as u64,
                received_unix: 1_717_243_200,
            },
            1_717_243_200,
        )
        .unwrap();

    harness.start_processor(processor_config());
    wait_until(|| harness.blobs.list("inbox/").unwrap().is_empty()).await;
    let mut docs = Vec::new();
    for (institution, export_id, record) in &exports {
        let doc = harness.result_doc(export_id).await;
        assert_eq!(doc.raw_key, received_key(institution, export_id));
        assert_eq!(
            harness.blobs.get(&doc.raw_key).unwrap().as_deref(),
            Some(record.as_slice())
        );
        // Every export has a stored result, the one that cannot be routed too; a result
        // document exactly when documents are the delivery.
        let stored = harness.store.result(export_id).unwrap().unwrap();
        assert_eq!(bibgate_inbox::ResultDoc::from_result(&stored), doc);
        assert_eq!(
            harness.blobs.get(&result_key(export_id)).unwrap().is_some(),
            delivery == ResultDelivery::Documents,
            "{export_id}"
        );
        docs.push(doc);
    }
    assert_eq!(docs[0].mms_id, before.mms_id.map(|m| m.0));
    for doc in &docs[1..5] {
        assert_eq!(doc.outcome, "added", "{doc:?}");
    }
    let same: Vec<_> = docs[5..8].iter().collect();
    assert_eq!(same[0].outcome, "added", "{:?}", same[0]);
    for doc in &same[1..] {
        assert_eq!(doc.outcome, "merged", "{doc:?}");
        assert_eq!(doc.mms_id, same[0].mms_id);
    }
    assert_eq!(docs[8].outcome, "failed");
    assert_eq!(docs[8].reason_code, "MARCXML_CONVERSION_FAILED");
    assert_eq!(docs[9].outcome, "added");
    assert_eq!(docs[10].outcome, "added");
    assert_eq!(docs[11].outcome, "failed");
    assert_eq!(docs[11].reason_code, "NO_PROFILE");
    assert_eq!(harness.count(ALPHA), 6);
    assert_eq!(harness.count(BETA), 2);
    harness.stop().await;
}

/// With the store as the delivery and the processor in another process (its own signals,
/// none reaching the shim), the shim finds the result by polling the store, long before the
/// reply deadline, and no result document is written.
#[tokio::test]
async fn a_shim_without_the_processor_polls_the_store() {
    let harness = Harness::start_without_processor(config()).await;
    let elsewhere = Services::new(harness.store.clone(), harness.blobs.clone())
        .with_delivery(ResultDelivery::Store);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let processor = bibgate_gateway::spawn_processor(elsewhere, processor_config(), async move {
        let _ = stopped.await;
    });
    let started = std::time::Instant::now();
    let reply = harness.send(ALPHA, &record_bytes(7001, "Elsewhere.")).await;
    let took = started.elapsed();
    assert!(reply.starts_with(&format!("{SUCCESS} MMS ID: ")), "{reply}");
    // The reply deadline is 20 s; polling finds the result within the processor's poll
    // interval plus a few of the shim's.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let received = harness.blobs.list("received/").unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    let export_id = received_export_id(&received[0]);
    let stored = harness.store.result(export_id).unwrap().unwrap();
    assert_eq!(stored.outcome, Outcome::Added);
    assert_eq!(reply, stored.host_message);
    wait_until(|| harness.blobs.list("inbox/").unwrap().is_empty()).await;
    assert!(harness.blobs.list("results/").unwrap().is_empty());
    let _ = stop.send(());
    processor.await.unwrap();
    harness.stop().await;
}

/// A result handed over by an in-process processor is the answer: the shim does not read it
/// back. Here nothing is stored or written at all (no processor runs), so the reply can only
/// come from the hand-over — on both deliveries.
#[tokio::test]
async fn the_shim_answers_with_the_result_handed_over() {
    for delivery in [ResultDelivery::Store, ResultDelivery::Documents] {
        let harness = Harness::start_without_processor_with(config(), delivery).await;
        let record = record_bytes(7002, "Handed over.");
        let reply = {
            let send = harness.send(ALPHA, &record);
            tokio::pin!(send);
            'reply: loop {
                tokio::select! {
                    reply = &mut send => break 'reply reply,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
                // The export id is its inbox object's name; hand over until the connection,
                // which subscribes after its inbox write, has taken it.
                for key in harness.blobs.list("inbox/").unwrap() {
                    let (_, export_id) = parse_inbox_key(&key).unwrap();
                    let doc = bibgate_inbox::layout::ResultDoc {
                        export_id: export_id.into(),
                        institution: ALPHA.into(),
                        outcome: "added".into(),
                        host_message: "Handed over: MMS ID 9912345".into(),
                        reason_code: "ADDED".into(),
                        mms_id: Some("9912345".into()),
                        oclc_numbers: vec![7002],
                        raw_key: key.clone(),
                    };
                    harness.services.results.deliver(export_id, &doc);
                }
            }
        };
        assert_eq!(reply, "Handed over: MMS ID 9912345", "{delivery:?}");
        assert_eq!(harness.count(ALPHA), 0);
        assert!(harness.blobs.list("results/").unwrap().is_empty());
        harness.stop().await;
    }
}

/// Issue 16: the retry window answers only for a record that has not changed since; after a
/// `record restore` (a new revision), the same bytes are decided again.
#[tokio::test]
async fn r16_retry_window_decides_again_after_the_record_changed() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(2017, "Restored.");
    let first = harness.send(ALPHA, &record).await;
    let mms = mms_of(&first);
    let mms_id = MmsId(mms.clone());
    // Unchanged: the window answers with the first export (no new revision).
    assert_eq!(harness.send(ALPHA, &record).await, first);
    assert_eq!(
        harness
            .store
            .record(ALPHA, &mms_id)
            .unwrap()
            .unwrap()
            .revision,
        1
    );

    // A restore by staff: revision 2.
    let current = harness.store.record(ALPHA, &mms_id).unwrap().unwrap();
    harness
        .store
        .commit(&bibgate_store::Commit::Replace {
            expected_revision: 1,
            record: bibgate_store::StoredRecord {
                revision: 2,
                ..current
            },
            replaced_by: "user:staff".into(),
            reason: "restore of revision 1".into(),
        })
        .unwrap();

    // The same bytes again, within the window: decided again (merged into the record).
    let again = harness.send(ALPHA, &record).await;
    assert_eq!(again, format!("{SUCCESS} MMS ID: {mms}"));
    assert_eq!(
        harness
            .store
            .record(ALPHA, &mms_id)
            .unwrap()
            .unwrap()
            .revision,
        3,
        "decided again, not replayed"
    );
    // And that new export is what the window answers for now.
    assert_eq!(harness.send(ALPHA, &record).await, again);
    assert_eq!(
        harness
            .store
            .record(ALPHA, &mms_id)
            .unwrap()
            .unwrap()
            .revision,
        3
    );
    harness.stop().await;
}
