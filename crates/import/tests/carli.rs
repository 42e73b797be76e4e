//! The import use case over the embedded store: one test per row of CARLI's "OCLC Gateway
//! Export Errors" table (host message, reason code and stored state), nothing lost, zones,
//! concurrency, and corpus-driven scenarios.

use std::path::PathBuf;

use bibgate_import::{Importer, Input, Received, Route, authenticate, route};
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::{self, Mode};
use bibgate_marc::{Record, Source};
use bibgate_store::{EditorLock, ImportResult, MmsId, Outcome, Store, TargetZone};
use bibgate_store_local::SqliteStore;

use bibgate_test_support::{ALPHA, BETA, NETWORK, PASSWORD, init_demo, password_hash};

fn store() -> SqliteStore {
    let store = SqliteStore::in_memory().unwrap();
    init_demo(&store);
    store
}

struct Bib {
    oclc: Vec<String>,
    cancelled: Vec<String>,
    f019: Vec<String>,
    elvl: u8,
    v005: Option<String>,
    title: String,
    extra: Vec<(String, String)>,
}

fn bib(oclc: &str) -> Bib {
    Bib {
        oclc: vec![oclc.to_string()],
        cancelled: Vec::new(),
        f019: Vec::new(),
        elvl: b' ',
        v005: Some("20240101120000.0".into()),
        title: format!("Title {oclc}"),
        extra: Vec::new(),
    }
}

impl Bib {
    fn record(&self) -> Record {
        let mut record = Record::default();
        record.leader.0[17] = self.elvl;
        if let Some(v) = &self.v005 {
            record.push_control("005", v.clone());
        }
        record.push_control("008", "240101s2024    xxu           000 0 eng d");
        for number in &self.f019 {
            record.push_data("019", b' ', b' ', &[(b'a', number)]);
        }
        for number in &self.oclc {
            record.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
        }
        for number in &self.cancelled {
            record.push_data("035", b' ', b' ', &[(b'z', &format!("(OCoLC){number}"))]);
        }
        record.push_data("245", b'1', b'0', &[(b'a', &self.title)]);
        for (tag, value) in &self.extra {
            record.push_data(tag, b' ', b' ', &[(b'a', value)]);
        }
        record
    }

    fn bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        // A field over 9,999 bytes cannot be framed by the writer; build it by hand.
        match iso2709::write_record(&self.record(), &mut bytes) {
            Ok(()) => bytes,
            Err(_) => oversized(&self.record()),
        }
    }
}

/// Frames a record whose field is too long for ISO 2709: the directory gets "9999" for it,
/// as a careless exporter would write, so the reader must repair and flag it.
fn oversized(record: &Record) -> Vec<u8> {
    let mut small = record.clone();
    let mut long_value = String::new();
    for field in &mut small.fields {
        if let bibgate_marc::Field::Data { subfields, .. } = field {
            for subfield in subfields {
                if subfield.value.len() > 9_000 {
                    long_value = std::mem::replace(&mut subfield.value, "X".into());
                }
            }
        }
    }
    let mut bytes = Vec::new();
    iso2709::write_record(&small, &mut bytes).unwrap();
    // Put the long text back in place of the single "X" (lengths now lie).
    let position = bytes.windows(3).rposition(|w| w == b"\x1faX").unwrap() + 2;
    bytes.splice(position..position + 1, long_value.bytes());
    bytes
}

fn input(bytes: &[u8]) -> Input {
    match bibgate_marc::parse(bytes, Mode::Lenient, Charset::Auto) {
        Ok(parsed) => Input::Parsed(Box::new(parsed)),
        Err(e) => Input::Unreadable(e.to_string()),
    }
}

fn received(export_id: &str, len: usize) -> Received {
    Received {
        export_id: export_id.into(),
        batch_id: None,
        index: None,
        raw_key: format!("inbox/{ALPHA}/{export_id}.mrc"),
        raw_offset: 0,
        raw_len: len as u64,
        received_unix: 1_800_000_000,
    }
}

fn send(store: &dyn Store, route: &Route, export_id: &str, bib: &Bib) -> ImportResult {
    let bytes = bib.bytes();
    Importer::new(store)
        .import(
            route,
            &input(&bytes),
            &received(export_id, bytes.len()),
            1_800_000_000,
        )
        .unwrap()
}

fn alpha(store: &dyn Store) -> Route {
    route(store, ALPHA, None).unwrap()
}

fn title_of(store: &dyn Store, zone: &str, mms: &MmsId) -> String {
    let stored = store.record(zone, mms).unwrap().unwrap();
    let record = bibgate_import::read_stored(&stored).unwrap();
    record
        .fields_with_tag("245")
        .next()
        .unwrap()
        .subfield_values(b'a')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn carli_add_when_nothing_matches() {
    let store = store();
    let route = alpha(&store);
    let result = send(&store, &route, "e1", &bib("12345"));
    assert_eq!(result.outcome, Outcome::Added);
    assert_eq!(result.reason_code, "ADDED");
    let mms = result.mms_id.clone().unwrap();
    assert!(mms.0.starts_with("99") && mms.0.ends_with("5001"), "{mms}");
    assert_eq!(
        result.host_message,
        format!("The record has been processed successfully. MMS ID: {mms}")
    );
    let stored = store.record(ALPHA, &mms).unwrap().unwrap();
    assert_eq!(stored.revision, 1);
    assert_eq!(
        stored.originating_version.as_deref(),
        Some("20240101120000.0")
    );
    let record = bibgate_import::read_stored(&stored).unwrap();
    assert_eq!(
        record.control_value("001"),
        Some(mms.as_str()),
        "001 carries the MMS ID"
    );
    assert_eq!(store.find_by_oclc(ALPHA, &[12345]).unwrap().len(), 1);
    assert_eq!(
        store.result("e1").unwrap().unwrap(),
        result,
        "the result is stored"
    );
}

#[test]
fn carli_merge_into_the_single_match_keeps_the_prior_version() {
    let store = store();
    let route = alpha(&store);
    let first = send(&store, &route, "e1", &bib("777"));
    let mut newer = bib("777");
    newer.title = "Revised title".into();
    newer.v005 = Some("20250101120000.0".into());
    newer
        .extra
        .push(("590".into(), "incoming local note".into()));
    let second = send(&store, &route, "e2", &newer);
    assert_eq!(second.outcome, Outcome::Merged);
    assert_eq!(second.reason_code, "MERGED");
    assert_eq!(second.mms_id, first.mms_id);
    let mms = first.mms_id.unwrap();
    assert_eq!(
        second.host_message,
        format!("The record has been processed successfully. MMS ID: {mms}")
    );
    assert_eq!(title_of(&store, ALPHA, &mms), "Revised title");
    let stored = store.record(ALPHA, &mms).unwrap().unwrap();
    assert_eq!(stored.revision, 2);
    assert_eq!(
        stored.originating_version.as_deref(),
        Some("20250101120000.0")
    );
    let versions = store.versions(ALPHA, &mms).unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].revision, 1);
    assert_eq!(versions[0].replaced_by, "e2");
    let old = bibgate_import::read_stored(&bibgate_store::StoredRecord {
        marc: versions[0].marc.clone(),
        ..stored
    })
    .unwrap();
    assert_eq!(
        old.fields_with_tag("245")
            .next()
            .unwrap()
            .subfield_values(b'a')
            .next(),
        Some("Title 777")
    );
}

#[test]
fn carli_multi_match_fails_and_changes_nothing() {
    let store = store();
    let route = alpha(&store);
    let a = send(&store, &route, "e1", &bib("111")).mms_id.unwrap();
    let b = send(&store, &route, "e2", &bib("222")).mms_id.unwrap();
    let mut merged = bib("333");
    merged.f019 = vec!["111".into(), "222".into()];
    let result = send(&store, &route, "e3", &merged);
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(result.reason_code, "MULTI_MATCH");
    assert!(
        result
            .host_message
            .starts_with("Import Failed - Multi matches found for this record."),
        "{}",
        result.host_message
    );
    assert!(result.host_message.contains(a.as_str()) && result.host_message.contains(b.as_str()));
    assert_eq!(store.count_records(ALPHA).unwrap(), 2);
    assert_eq!(store.record(ALPHA, &a).unwrap().unwrap().revision, 1);
    assert_eq!(store.record(ALPHA, &b).unwrap().unwrap().revision, 1);
    assert_eq!(
        store.result("e3").unwrap().unwrap().reason_code,
        "MULTI_MATCH"
    );
}

#[test]
fn carli_not_added_brief_when_the_match_is_fuller() {
    let store = store();
    let route = alpha(&store);
    let mms = send(&store, &route, "e1", &bib("444")).mms_id.unwrap();
    let mut brief = bib("444");
    brief.elvl = b'7';
    brief.v005 = Some("20250101000000.0".into());
    brief.title = "Brief".into();
    let result = send(&store, &route, "e2", &brief);
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(result.reason_code, "NOT_ADDED_BRIEF");
    assert!(
        result
            .host_message
            .starts_with("Import Failed - NOT_ADDED_BRIEF"),
        "{}",
        result.host_message
    );
    assert!(result.host_message.contains(mms.as_str()));
    assert_eq!(
        title_of(&store, ALPHA, &mms),
        "Title 444",
        "the fuller record is untouched"
    );
}

#[test]
fn carli_not_added_locked_until_released() {
    let store = store();
    let route = alpha(&store);
    let mms = send(&store, &route, "e1", &bib("555")).mms_id.unwrap();
    store
        .put_lock(&EditorLock {
            zone: ALPHA.into(),
            mms_id: mms.clone(),
            institution: ALPHA.into(),
            user: "jdoe".into(),
            since_unix: 1_799_990_000,
            left_unix: None,
        })
        .unwrap();
    let mut newer = bib("555");
    newer.v005 = Some("20250101000000.0".into());
    let result = send(&store, &route, "e2", &newer);
    assert_eq!(result.reason_code, "NOT_ADDED_LOCKED");
    assert!(
        result
            .host_message
            .starts_with("Import Failed - NOT_ADDED_LOCKED"),
        "{}",
        result.host_message
    );
    assert!(result.host_message.contains("01DEMO_ALPHA") && result.host_message.contains("jdoe"));
    assert_eq!(store.record(ALPHA, &mms).unwrap().unwrap().revision, 1);
    store.release_lock(ALPHA, &mms).unwrap();
    assert_eq!(send(&store, &route, "e3", &newer).outcome, Outcome::Merged);
}

#[test]
fn carli_not_added_old_and_the_profile_switch_that_turns_it_off() {
    let store = store();
    let route = alpha(&store);
    let mms = send(&store, &route, "e1", &bib("666")).mms_id.unwrap();
    let mut older = bib("666");
    older.v005 = Some("20200101000000.0".into());
    older.title = "Older".into();
    let result = send(&store, &route, "e2", &older);
    assert_eq!(result.reason_code, "NOT_ADDED_OLD");
    assert!(
        result
            .host_message
            .starts_with("Import Failed - NOT_ADDED_OLD"),
        "{}",
        result.host_message
    );
    assert_eq!(title_of(&store, ALPHA, &mms), "Title 666");

    let mut profile = bibgate_import::connexion_profile(&store, ALPHA).unwrap();
    profile.check_005 = false;
    store.put_profile(&profile).unwrap();
    let route = alpha(&store);
    let result = send(&store, &route, "e3", &older);
    assert_eq!(result.outcome, Outcome::Merged);
    assert_eq!(title_of(&store, ALPHA, &mms), "Older");
}

#[test]
fn carli_failed_marcxml_conversion_keeps_only_the_result() {
    let store = store();
    let route = alpha(&store);
    let mut long = bib("888");
    long.extra.push(("520".into(), "x".repeat(10_000)));
    let result = send(&store, &route, "e1", &long);
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(result.reason_code, "MARCXML_CONVERSION_FAILED");
    assert!(
        result
            .host_message
            .starts_with("Import Failed - Failed to convert marc record to marc xml"),
        "{}",
        result.host_message
    );
    assert_eq!(store.count_records(ALPHA).unwrap(), 0);
    let kept = store.result("e1").unwrap().unwrap();
    assert_eq!(
        kept.raw_key,
        format!("inbox/{ALPHA}/e1.mrc"),
        "the raw bytes stay referenced"
    );
}

#[test]
fn carli_two_connexion_profiles_is_no_integration_profile_found() {
    let store = store();
    let mut second =
        bibgate_import::default_profile(ALPHA, password_hash().into(), TargetZone::Institution);
    second.id = "second".into();
    store.put_profile(&second).unwrap();
    let error = route(&store, ALPHA, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "No integration profile found for institution 01DEMO_ALPHA"
    );
    let error = authenticate(&store, ALPHA, PASSWORD).unwrap_err();
    assert_eq!(
        error.to_string(),
        "No integration profile found for institution 01DEMO_ALPHA"
    );
}

#[test]
fn carli_wrong_password_is_logon_failed() {
    let store = store();
    let error = authenticate(&store, ALPHA, "wrong").unwrap_err();
    assert_eq!(
        error.to_string(),
        "Logon Failed--the Logon ID and/or password is/are not valid"
    );
    assert_eq!(
        authenticate(&store, ALPHA, PASSWORD)
            .unwrap()
            .institution
            .code,
        ALPHA
    );
}

#[test]
fn edge_26_a_network_zone_profile_does_not_see_institution_zone_records() {
    let store = store();
    let iz = send(&store, &alpha(&store), "e1", &bib("999"))
        .mms_id
        .unwrap();
    let nz_route = route(&store, ALPHA, Some(TargetZone::Network)).unwrap();
    let result = send(&store, &nz_route, "e2", &bib("999"));
    assert_eq!(result.outcome, Outcome::Added);
    assert_eq!(result.zone, NETWORK);
    assert_ne!(result.mms_id.unwrap(), iz);
    // Another member's export into the network zone now merges.
    let beta_nz = route(&store, BETA, Some(TargetZone::Network)).unwrap();
    assert_eq!(
        send(&store, &beta_nz, "e3", &bib("999")).outcome,
        Outcome::Merged
    );
}

#[test]
fn a_retry_of_the_same_export_returns_the_first_result() {
    let store = store();
    let route = alpha(&store);
    let first = send(&store, &route, "e1", &bib("1212"));
    let again = send(&store, &route, "e1", &bib("1212"));
    assert_eq!(first, again);
    assert_eq!(store.count_records(ALPHA).unwrap(), 1);
}

#[test]
fn parallel_imports_of_one_new_oclc_number_create_one_record() {
    let dir = tempfile::tempdir().unwrap();
    // A file store, so readers and the writer are separate connections as in production.
    let store = SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
    init_demo(&store);
    let route = alpha(&store);
    for round in 0..5 {
        let number = format!("4242{round}");
        let barrier = std::sync::Barrier::new(8);
        let results: Vec<ImportResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (store, route, barrier, number) = (&store, &route, &barrier, &number);
                    scope.spawn(move || {
                        barrier.wait();
                        send(store, route, &format!("r{round}-t{t}"), &bib(number))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let added = results
            .iter()
            .filter(|r| r.outcome == Outcome::Added)
            .count();
        let merged = results
            .iter()
            .filter(|r| r.outcome == Outcome::Merged)
            .count();
        assert_eq!((added, merged), (1, 7), "round {round}");
        let mms: std::collections::BTreeSet<_> = results.iter().map(|r| r.mms_id.clone()).collect();
        assert_eq!(mms.len(), 1, "every reply names the same record");
    }
    assert_eq!(store.count_records(ALPHA).unwrap(), 5);
}

fn corpus(path: &str) -> PathBuf {
    let shared = std::env::var_os("BIBGATE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("corpus").join(path)
}

fn import_file(store: &dyn Store, route: &Route, path: &str) -> Vec<ImportResult> {
    let bytes = std::fs::read(corpus(path)).unwrap();
    let inputs: Vec<(Input, Received)> = Source::sniffed(&bytes[..], Mode::Lenient, Charset::Auto)
        .unwrap()
        .map(|item| {
            let received = Received {
                export_id: format!("{path}#{}", item.index),
                batch_id: Some(path.into()),
                index: Some(item.index as u64),
                raw_key: format!("drop/{path}"),
                raw_offset: item.offset,
                raw_len: item.raw.len() as u64,
                received_unix: 1_800_000_000,
            };
            let input = match item.outcome {
                Ok(parsed) => Input::Parsed(Box::new(parsed)),
                Err(e) => Input::Unreadable(e.to_string()),
            };
            (input, received)
        })
        .collect();
    Importer::new(store)
        .import_batch(route, &inputs, 1_800_000_000)
        .unwrap()
}

#[test]
fn corpus_fat_1204_then_its_update_merges_every_record() {
    let store = store();
    let route = alpha(&store);
    let first = import_file(&store, &route, "folio-integration-tests/FAT-1204.mrc");
    assert_eq!(first.len(), 6);
    assert!(
        first.iter().all(|r| r.outcome == Outcome::Added),
        "{first:#?}"
    );
    let second = import_file(
        &store,
        &route,
        "folio-integration-tests/FAT-1204-UPDATED.mrc",
    );
    assert!(
        second.iter().all(|r| r.outcome == Outcome::Merged),
        "{second:#?}"
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.mms_id, b.mms_id);
    }
    assert_eq!(store.count_records(ALPHA).unwrap(), 6);
}

#[test]
fn corpus_bookops_dupes_merge_into_the_sample() {
    let store = store();
    let route = alpha(&store);
    let sample = import_file(&store, &route, "bookops-overload/bpl-sample.mrc");
    assert_eq!(sample.len(), 5);
    let dupes = import_file(&store, &route, "bookops-overload/bpl-dupes-sample.mrc");
    assert_eq!(dupes.len(), 2);
    for dupe in &dupes {
        assert_eq!(dupe.outcome, Outcome::Merged, "{dupe:#?}");
        assert!(sample.iter().any(|s| s.mms_id == dupe.mms_id));
    }
}

#[test]
fn corpus_019_numbers_of_a_real_record_hit_two_local_records() {
    // A real WorldCat record whose 019 lists numbers OCLC merged into it (edge case 14).
    let bytes = std::fs::read(corpus("folio-mod-data-import/sample100.mrc")).unwrap();
    let with_019 = Source::sniffed(&bytes[..], Mode::Lenient, Charset::Auto)
        .unwrap()
        .filter_map(|item| item.outcome.ok())
        .map(|parsed| parsed.decoded.record)
        .find(|record| {
            record
                .fields_with_tag("019")
                .flat_map(|f| f.subfield_values(b'a'))
                .count()
                >= 2
        })
        .expect("sample100.mrc has a record with two 019 $a");
    let cancelled: Vec<String> = with_019
        .fields_with_tag("019")
        .flat_map(|f| f.subfield_values(b'a').map(str::to_string))
        .take(2)
        .collect();
    let store = store();
    let route = alpha(&store);
    for (i, number) in cancelled.iter().enumerate() {
        send(&store, &route, &format!("local{i}"), &bib(number.trim()));
    }
    let mut bytes = Vec::new();
    iso2709::write_record(&with_019, &mut bytes).unwrap();
    let result = Importer::new(&store)
        .import(
            &route,
            &input(&bytes),
            &received("real", bytes.len()),
            1_800_000_000,
        )
        .unwrap();
    assert_eq!(result.reason_code, "MULTI_MATCH", "{result:#?}");
}
