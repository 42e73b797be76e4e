//! Decision tests: one per CARLI table row, the edge cases of domain.md §5, the check order
//! and the policy switches.

use bibgate_marc::check::check_record;
use bibgate_marc::{Leader, Record};
use bibgate_matching::facts::{BriefLevel, BriefLevelTable, Version005};
use bibgate_matching::oclc::Provenance;

use super::*;

/// 2024-06-01 12:00:00 UTC.
const NOW: i64 = 1_717_243_200;
const MMS_A: &str = "991000000000101";
const MMS_B: &str = "991000000000202";
const MMS_C: &str = "991000000000303";

fn leader(encoding_level: u8, bibliographic_level: u8) -> Leader {
    let mut leader = Leader::DEFAULT;
    leader.0[7] = bibliographic_level;
    leader.0[17] = encoding_level;
    leader
}

/// An OCLC record with 001/003, 005 (optional), 035 $a and a title.
fn oclc_record(number: u64, encoding_level: u8, version: Option<&str>) -> Record {
    let mut record = Record {
        leader: leader(encoding_level, b'm'),
        fields: Vec::new(),
    };
    record.push_control("001", format!("ocm{number:08}"));
    record.push_control("003", "OCoLC");
    if let Some(version) = version {
        record.push_control("005", version);
    }
    record.push_control("008", "240101s2024    ilu           000 0 eng d");
    record.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
    record.push_data("245", b'1', b'0', &[(b'a', "Incoming title.")]);
    record
}

/// An existing record in the zone: Alma 001, a local 035, the OCLC 035, a 9XX.
fn existing_record(mms_id: &str, oclc: &[(u8, u64)]) -> Record {
    let mut record = Record::default();
    record.push_control("001", mms_id);
    record.push_control("005", "20230101000000.0");
    for (code, number) in oclc {
        record.push_data("035", b' ', b' ', &[(*code, &format!("(OCoLC){number}"))]);
    }
    record.push_data("035", b' ', b' ', &[(b'a', "(CaSfKan)b1234567")]);
    record.push_data("245", b'1', b'0', &[(b'a', "Existing title.")]);
    record.push_data("949", b' ', b' ', &[(b'a', "local data")]);
    record
}

fn level(n: u8) -> BriefLevel {
    BriefLevel::new(n).unwrap_or(BriefLevel::MIN)
}

fn version(text: &str) -> Version005 {
    text.parse().unwrap()
}

/// A free, unlinked candidate at level 10 with no originating version and derived hits.
fn candidate(mms_id: &str, oclc: &[(u8, u64)]) -> Candidate {
    Candidate {
        mms_id: mms_id.to_owned(),
        record: existing_record(mms_id, oclc),
        brief_level: level(10),
        originating_version: None,
        lock: None,
        linked_to_community_zone: false,
        hits: Vec::new(),
    }
}

fn run(record: &Record, candidates: &[Candidate], policy: &ImportRules) -> Decision {
    let verdict = check_record(record);
    decide(
        &Incoming {
            record,
            verdict: &verdict,
        },
        candidates,
        policy,
        NOW,
    )
}

fn traced(decision: &Decision, needle: &str) -> bool {
    decision.trace.iter().any(|line| line.contains(needle))
}

fn assert_traced(decision: &Decision, needle: &str) {
    assert!(
        traced(decision, needle),
        "trace lacks {needle:?}:\n{}",
        decision.trace.join("\n")
    );
}

fn merged_into(decision: &Decision) -> &str {
    match &decision.outcome {
        Outcome::Merge { mms_id, .. } => mms_id,
        other => panic!(
            "expected a merge, got {other:?}\n{}",
            decision.trace.join("\n")
        ),
    }
}

fn lock(left_unix: Option<i64>) -> EditorLock {
    EditorLock {
        institution: "01CARLI_XYZ".to_owned(),
        user: "jdoe".to_owned(),
        since_unix: NOW - 7_200,
        left_unix,
    }
}

// ---------------------------------------------------------------------------------------------
// One test per CARLI table row
// ---------------------------------------------------------------------------------------------

#[test]
fn carli_add_when_nothing_matches() {
    let record = oclc_record(12345, b' ', Some("20240101120000.0"));
    let decision = run(&record, &[], &ImportRules::default());
    assert_eq!(
        decision.outcome,
        Outcome::Add {
            brief_level: level(10),
            originating_version: Some(version("20240101120000.0")),
        }
    );
    assert_eq!(decision.reason, ReasonCode::Added);
    assert_eq!(decision.reason.code(), "ADDED");
    assert_eq!(
        decision.host_message(Some("991999999999101")),
        "The record has been processed successfully. MMS ID: 991999999999101"
    );
    assert_eq!(decision.keys.numbers(), vec![12345]);
    assert_traced(&decision, "no matching record; added as new");
}

#[test]
fn carli_merge_when_one_record_matches() {
    let record = oclc_record(12345, b' ', Some("20240101120000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.0"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_eq!(decision.reason, ReasonCode::Merged);
    assert_eq!(decision.reason.code(), "MERGED");
    assert_eq!(
        decision.host_message(None),
        format!("The record has been processed successfully. MMS ID: {MMS_A}")
    );
    // The argument is ignored for a merge.
    assert_eq!(
        decision.host_message(Some("other")),
        decision.host_message(None)
    );
    assert_traced(&decision, &format!("key 12345 (001) -> {MMS_A} (active)"));
    assert_traced(
        &decision,
        "match method: unique OCLC identifier (non-serial)",
    );
    assert_traced(
        &decision,
        r#"brief level: existing 10 (Leader/17 " "), incoming 10 (Leader/17 " "): allowed"#,
    );
    assert_traced(
        &decision,
        "005: incoming 20240101120000.0, originating version 20230101000000.0: newer, allowed",
    );
}

#[test]
fn carli_multi_match() {
    let record = oclc_record(12345, b' ', None);
    let candidates = [
        candidate(MMS_A, &[(b'a', 12345)]),
        candidate(MMS_B, &[(b'z', 12345)]),
    ];
    let decision = run(&record, &candidates, &ImportRules::default());
    assert_eq!(
        decision.outcome,
        Outcome::Reject(Rejection::MultiMatch {
            mms_ids: vec![MMS_A.to_owned(), MMS_B.to_owned()],
        })
    );
    assert_eq!(decision.reason.code(), "MULTI_MATCH");
    assert_eq!(
        decision.host_message(None),
        format!(
            "Import Failed - Multi matches found for this record. Matching MMS IDs: {MMS_A}, {MMS_B}"
        )
    );
    assert_traced(
        &decision,
        &format!("key 12345 (001) -> {MMS_B} (cancelled)"),
    );
}

#[test]
fn carli_not_added_brief() {
    // Leader/17 4 is level 07 in the CARLI table.
    let record = oclc_record(12345, b'4', None);
    let decision = run(
        &record,
        &[candidate(MMS_A, &[(b'a', 12345)])],
        &ImportRules::default(),
    );
    assert_eq!(
        decision.outcome,
        Outcome::Reject(Rejection::Brief {
            mms_id: MMS_A.to_owned(),
            existing: level(10),
            incoming: level(7),
            existing_leader17: b' ',
            incoming_leader17: b'4',
        })
    );
    assert_eq!(decision.reason, ReasonCode::NotAddedBrief);
    assert_eq!(decision.reason.code(), "NOT_ADDED_BRIEF");
    assert_eq!(
        decision.host_message(None),
        format!(
            r#"Import Failed - NOT_ADDED_BRIEF: the existing record {MMS_A} has brief level 10 (Leader/17 " "), higher than the incoming record's 07 (Leader/17 "4")."#
        )
    );
}

#[test]
fn carli_not_added_locked() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    // Opened 2024-06-01 10:00 UTC, left 10 minutes ago without releasing.
    existing.lock = Some(lock(Some(NOW - 600)));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::NotAddedLocked);
    assert_eq!(decision.reason.code(), "NOT_ADDED_LOCKED");
    assert!(matches!(
        decision.outcome,
        Outcome::Reject(Rejection::Locked { ref mms_id, .. }) if mms_id == MMS_A
    ));
    assert_eq!(
        decision.host_message(None),
        format!(
            "Import Failed - NOT_ADDED_LOCKED: record {MMS_A} is locked in the Metadata Editor by 01CARLI_XYZ (jdoe) since 2024-06-01 10:00 UTC."
        )
    );
}

#[test]
fn carli_not_added_old() {
    let record = oclc_record(12345, b' ', Some("20220101000000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.0"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(
        decision.outcome,
        Outcome::Reject(Rejection::Old {
            mms_id: MMS_A.to_owned(),
            incoming: version("20220101000000.0"),
            originating: version("20230101000000.0"),
        })
    );
    assert_eq!(decision.reason.code(), "NOT_ADDED_OLD");
    assert_eq!(
        decision.host_message(None),
        format!(
            "Import Failed - NOT_ADDED_OLD: the incoming record's 005 (20220101000000.0) is older than the version last imported into {MMS_A} (20230101000000.0)."
        )
    );
    assert_traced(&decision, "older, blocked");
}

#[test]
fn carli_conversion_failure_field_too_long() {
    let mut record = oclc_record(12345, b' ', None);
    let summary = "x".repeat(12_000);
    record.push_data("520", b' ', b' ', &[(b'a', &summary)]);
    let verdict = check_record(&record);
    let message = verdict.first_error().map(|f| f.message.clone()).unwrap();
    let decision = run(
        &record,
        &[candidate(MMS_A, &[(b'a', 12345)])],
        &ImportRules::default(),
    );
    assert_eq!(
        decision.reason,
        ReasonCode::ConversionFailed("FIELD_TOO_LONG".to_owned())
    );
    assert_eq!(decision.reason.code(), "MARCXML_CONVERSION_FAILED");
    assert_eq!(
        decision.reason.to_string(),
        "MARCXML_CONVERSION_FAILED(FIELD_TOO_LONG)"
    );
    assert_eq!(
        decision.host_message(None),
        format!("Import Failed - Failed to convert marc record to marc xml: {message}")
    );
    assert!(message.contains("field 520 is 12,"), "{message}");
    assert_eq!(decision.trace.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Edge cases (domain.md §5)
// ---------------------------------------------------------------------------------------------

#[test]
fn edge13_incoming_only_035z_matches_existing_035a() {
    let mut record = Record {
        leader: leader(b' ', b'm'),
        fields: Vec::new(),
    };
    record.push_data("035", b' ', b' ', &[(b'z', "(OCoLC)777")]);
    record.push_data("245", b'1', b'0', &[(b'a', "Title.")]);
    let decision = run(
        &record,
        &[candidate(MMS_A, &[(b'a', 777)])],
        &ImportRules::default(),
    );
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(&decision, &format!("key 777 (035 $z) -> {MMS_A} (active)"));
}

#[test]
fn edge14_019_with_several_a_hitting_several_records_is_multi_match() {
    let mut record = oclc_record(100, b' ', None);
    record.push_data(
        "019",
        b' ',
        b' ',
        &[(b'a', "201"), (b'a', "202"), (b'a', "203")],
    );
    let candidates = [
        candidate(MMS_A, &[(b'a', 201)]),
        candidate(MMS_B, &[(b'a', 202)]),
        candidate(MMS_C, &[(b'a', 203)]),
    ];
    let decision = run(&record, &candidates, &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::MultiMatch);
    assert_eq!(
        decision.host_message(None),
        format!(
            "Import Failed - Multi matches found for this record. Matching MMS IDs: {MMS_A}, {MMS_B}, {MMS_C}"
        )
    );
    assert_traced(&decision, &format!("key 202 (019 $a) -> {MMS_B} (active)"));
}

#[test]
fn edge15_existing_with_two_oclc_numbers_is_one_record() {
    let mut record = oclc_record(500, b' ', None);
    record.push_data("019", b' ', b' ', &[(b'a', "600")]);
    let existing = candidate(MMS_A, &[(b'a', 500), (b'a', 600)]);
    // The index returns the record once per key it was found by.
    let decision = run(
        &record,
        &[existing.clone(), existing],
        &ImportRules::default(),
    );
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(&decision, "given twice; counted once");
    assert_traced(&decision, "2 keys hit the same record; counted once");
}

#[test]
fn edge16_dollar_a_and_dollar_z_hitting_one_record_count_once() {
    let mut record = oclc_record(12345, b' ', None);
    record.push_data("035", b' ', b' ', &[(b'z', "(OCoLC)999")]);
    let mut existing = candidate(MMS_A, &[(b'a', 12345), (b'z', 999)]);
    existing.hits = vec![
        Hit {
            number: 12345,
            incoming: Provenance::Active035a,
            existing_active: true,
        },
        Hit {
            number: 999,
            incoming: Provenance::Cancelled035z,
            existing_active: false,
        },
    ];
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        &format!("key 999 (035 $z) -> {MMS_A} (cancelled)"),
    );
    assert_traced(&decision, "one record matches");
}

#[test]
fn edge17_no_oclc_number_is_added() {
    let mut record = Record::default();
    record.push_data("035", b' ', b' ', &[(b'a', "(DLC)2001012345")]);
    record.push_data("245", b'1', b'0', &[(b'a', "Local title.")]);
    let decision = run(&record, &[], &ImportRules::default());
    assert!(matches!(decision.outcome, Outcome::Add { .. }));
    assert_eq!(decision.reason, ReasonCode::Added);
    assert!(decision.keys.is_empty());
    assert_traced(&decision, "no OCLC number in the record; added as new");
    assert_eq!(
        decision.host_message(None),
        "The record has been processed successfully."
    );
}

#[test]
fn edge17_candidates_without_incoming_keys_are_ignored() {
    // A record with a field but no OCLC number (a record with no field at all is not
    // convertible since issue 18).
    let mut record = Record::default();
    record.push_data("245", b'1', b'0', &[(b'a', "Local title.")]);
    let decision = run(
        &record,
        &[candidate(MMS_A, &[(b'a', 1)])],
        &ImportRules::default(),
    );
    assert_eq!(decision.reason, ReasonCode::Added);
    assert_traced(
        &decision,
        "1 candidate(s) given, but no key to match them by",
    );
}

#[test]
fn edge19_equal_brief_level_allows() {
    let record = oclc_record(12345, b'4', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.brief_level = level(7);
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        r#"brief level: existing 07 (Leader/17 " "), incoming 07 (Leader/17 "4"): allowed"#,
    );
}

#[test]
fn edge19_higher_incoming_brief_level_allows() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.brief_level = level(3);
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
}

#[test]
fn edge20_obsolete_and_fill_encoding_levels_map_through_the_table() {
    // CARLI: I = 10, M = 07, K = 05, J and | (not listed) = 01. The existing record is at 07.
    let cases = [
        (b'I', 10, true),
        (b'M', 7, true),
        (b'K', 5, false),
        (b'J', 1, false),
        (b'|', 1, false),
    ];
    for (code, expected, merges) in cases {
        let record = oclc_record(12345, code, None);
        let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
        existing.brief_level = level(7);
        let decision = run(&record, &[existing], &ImportRules::default());
        let line = format!(
            "brief level: existing 07 (Leader/17 \" \"), incoming {expected:02} (Leader/17 \"{}\")",
            char::from(code)
        );
        assert_traced(&decision, &line);
        assert_eq!(
            decision.reason == ReasonCode::Merged,
            merges,
            "Leader/17 {:?}: {:?}",
            char::from(code),
            decision.trace
        );
    }
    // The CSU table gives I 09 and K 06: same record, different level.
    let policy = ImportRules {
        brief_levels: BriefLevelTable::csu(),
        ..ImportRules::default()
    };
    let record = oclc_record(12345, b'K', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.brief_level = level(6);
    let decision = run(&record, &[existing], &policy);
    assert_eq!(merged_into(&decision), MMS_A);
}

#[test]
fn edge21_missing_incoming_005_allows_and_traces() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.0"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        "005: incoming none, originating version 20230101000000.0: cannot compare, allowed",
    );
    assert!(matches!(
        decision.outcome,
        Outcome::Merge {
            originating_version: None,
            ..
        }
    ));
}

#[test]
fn edge21_missing_originating_version_allows_and_traces() {
    let record = oclc_record(12345, b' ', Some("19990101000000.0"));
    let decision = run(
        &record,
        &[candidate(MMS_A, &[(b'a', 12345)])],
        &ImportRules::default(),
    );
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        "005: incoming 19990101000000.0, originating version none: cannot compare, allowed",
    );
}

#[test]
fn edge21_the_existing_local_005_is_not_the_originating_version() {
    // The existing record was edited locally in 2023 (its 005), but the version imported
    // from OCLC was from 2020: a 2021 export still overlays it.
    let record = oclc_record(12345, b' ', Some("20210101000000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20200101000000.0"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
}

#[test]
fn edge22_malformed_incoming_005_allows_and_traces() {
    for bad in [
        "20240230120000.0",
        "20240101240000.0",
        "202401011200001",
        "2024O101120000.0",
        "",
    ] {
        let record = oclc_record(12345, b' ', Some(bad));
        let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
        existing.originating_version = Some(version("20230101000000.0"));
        let decision = run(&record, &[existing], &ImportRules::default());
        assert_eq!(merged_into(&decision), MMS_A, "005 {bad:?}");
        assert_traced(&decision, "005: incoming malformed (");
        assert_traced(&decision, "cannot compare, allowed");
    }
}

#[test]
fn edge22_fourteen_character_005_is_read_as_tenths_zero() {
    let record = oclc_record(12345, b' ', Some("20220101000000"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.0"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::NotAddedOld);
    assert_traced(&decision, "005 note: 005 has no tenths of a second");
}

#[test]
fn edge23_future_incoming_005_allows_with_a_warning() {
    let record = oclc_record(12345, b' ', Some("20300101000000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.0"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        "005 warning: incoming 20300101000000.0 is in the future (now 20240601120000.0)",
    );
}

#[test]
fn edge23_a_few_hours_ahead_is_not_the_future() {
    // 005 has no time zone; 10 hours ahead of UTC is within the tolerance.
    let record = oclc_record(12345, b' ', Some("20240601220000.0"));
    let decision = run(
        &record,
        &[candidate(MMS_A, &[(b'a', 12345)])],
        &ImportRules::default(),
    );
    assert_eq!(merged_into(&decision), MMS_A);
    assert!(!traced(&decision, "005 warning"));
}

#[test]
fn edge23_older_by_a_tenth_of_a_second_blocks() {
    let record = oclc_record(12345, b' ', Some("20230101000000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.1"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::NotAddedOld);
}

#[test]
fn edge23_identical_005_allows() {
    let record = oclc_record(12345, b' ', Some("20230101000000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.0"));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(&decision, ": identical, allowed");
}

#[test]
fn edge24_expired_lock_is_free() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    // Left 2 hours ago; the timeout is 1 hour.
    existing.lock = Some(lock(Some(NOW - 7_200)));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        "expired at 2024-06-01 11:00 UTC (timeout 3600 s): free",
    );
}

#[test]
fn edge24_lock_expires_exactly_at_the_timeout() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.lock = Some(lock(Some(NOW - 3_600)));
    let decision = run(
        &record,
        std::slice::from_ref(&existing),
        &ImportRules::default(),
    );
    assert_eq!(merged_into(&decision), MMS_A);
    existing.lock = Some(lock(Some(NOW - 3_599)));
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::NotAddedLocked);
}

#[test]
fn edge24_lock_held_in_the_editor_blocks_regardless_of_age() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    let mut old_lock = lock(None);
    old_lock.since_unix = NOW - 30 * 86_400;
    existing.lock = Some(old_lock);
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::NotAddedLocked);
    assert_traced(
        &decision,
        "still in the editor (holds until released): blocked",
    );
    assert!(
        decision
            .host_message(None)
            .ends_with("by 01CARLI_XYZ (jdoe) since 2024-05-02 12:00 UTC.")
    );
}

#[test]
fn edge24_custom_lock_timeout() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.lock = Some(lock(Some(NOW - 7_200)));
    let policy = ImportRules {
        lock_timeout_seconds: 4 * 3_600,
        ..ImportRules::default()
    };
    let decision = run(&record, &[existing], &policy);
    assert_eq!(decision.reason, ReasonCode::NotAddedLocked);
}

#[test]
fn edge25_community_zone_linked_match_is_rejected() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.linked_to_community_zone = true;
    let decision = run(
        &record,
        std::slice::from_ref(&existing),
        &ImportRules::default(),
    );
    assert_eq!(
        decision.outcome,
        Outcome::Reject(Rejection::CommunityZoneLinked {
            mms_id: MMS_A.to_owned()
        })
    );
    assert_eq!(decision.reason.code(), "CZ_LINKED");
    assert_eq!(
        decision.host_message(None),
        format!(
            "Import Failed - the matching record {MMS_A} is linked to the Community Zone and cannot be overlaid."
        )
    );
    let policy = ImportRules {
        skip_community_zone: false,
        ..ImportRules::default()
    };
    let decision = run(&record, &[existing], &policy);
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(&decision, "does not skip linked records: continuing");
}

/// A serial whose only link to the existing record is a cancelled number (019 $a).
fn serial_with_019(number: u64, cancelled: u64) -> Record {
    let mut record = oclc_record(number, b' ', None);
    record.leader.0[7] = b's';
    record.push_data("019", b' ', b' ', &[(b'a', &cancelled.to_string())]);
    record
}

#[test]
fn edge29_serial_and_non_serial_use_their_own_match_method() {
    let policy = ImportRules {
        serial_match: MatchMethod::UniqueOclcActiveOnly,
        ..ImportRules::default()
    };
    let existing = candidate(MMS_A, &[(b'a', 4242)]);

    let serial = serial_with_019(1000, 4242);
    let decision = run(&serial, std::slice::from_ref(&existing), &policy);
    assert_eq!(decision.reason, ReasonCode::Added);
    assert_traced(
        &decision,
        "match method: unique OCLC identifier, active numbers only (serial)",
    );
    assert_traced(
        &decision,
        "key 4242 (019 $a) ignored: the match method uses active numbers only",
    );
    assert_eq!(decision.keys.numbers(), vec![1000]);
    assert_traced(
        &decision,
        &format!("{MMS_A}: hit only through cancelled numbers; not a match"),
    );

    let mut monograph = serial_with_019(1000, 4242);
    monograph.leader.0[7] = b'm';
    let decision = run(&monograph, &[existing], &policy);
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        "match method: unique OCLC identifier (non-serial)",
    );
}

#[test]
fn edge29_active_only_ignores_hits_on_existing_cancelled_numbers() {
    let policy = ImportRules {
        nonserial_match: MatchMethod::UniqueOclcActiveOnly,
        ..ImportRules::default()
    };
    let record = oclc_record(12345, b' ', None);
    let candidates = [
        candidate(MMS_A, &[(b'a', 12345)]),
        candidate(MMS_B, &[(b'a', 55), (b'z', 12345)]),
    ];
    let decision = run(&record, &candidates, &policy);
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        &format!("{MMS_B}: hit only through cancelled numbers; not a match"),
    );
    // The default method sees both.
    let decision = run(&record, &candidates, &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::MultiMatch);
}

// ---------------------------------------------------------------------------------------------
// Order of the checks
// ---------------------------------------------------------------------------------------------

/// A match that is locked, has a higher brief level and a newer originating version.
fn blocked_every_way() -> (Record, Candidate) {
    let record = oclc_record(12345, b'7', Some("20220101000000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.lock = Some(lock(None));
    existing.brief_level = level(10);
    existing.originating_version = Some(version("20230101000000.0"));
    (record, existing)
}

#[test]
fn order_locked_and_old_and_briefer_reports_locked() {
    let (record, existing) = blocked_every_way();
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::NotAddedLocked);
    assert!(!traced(&decision, "brief level:"));
}

#[test]
fn order_old_and_briefer_reports_brief() {
    let (record, mut existing) = blocked_every_way();
    existing.lock = None;
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::NotAddedBrief);
    assert!(!traced(&decision, "005:"));
}

#[test]
fn order_community_zone_comes_before_the_lock() {
    let (record, mut existing) = blocked_every_way();
    existing.linked_to_community_zone = true;
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(decision.reason, ReasonCode::CommunityZoneLinked);
}

#[test]
fn order_conversion_comes_before_matching() {
    let mut record = oclc_record(12345, b' ', None);
    record.push_data("500", b' ', b' ', &[(b'a', "bad \u{1} control")]);
    let candidates = [
        candidate(MMS_A, &[(b'a', 12345)]),
        candidate(MMS_B, &[(b'a', 12345)]),
    ];
    let decision = run(&record, &candidates, &ImportRules::default());
    assert_eq!(
        decision.reason,
        ReasonCode::ConversionFailed("XML_FORBIDDEN_CHARACTER".to_owned())
    );
    assert!(
        decision
            .host_message(None)
            .starts_with("Import Failed - Failed to convert marc record to marc xml: ")
    );
}

#[test]
fn order_multi_match_comes_before_the_blocking_checks() {
    let (record, existing) = blocked_every_way();
    let decision = run(
        &record,
        &[existing, candidate(MMS_B, &[(b'a', 12345)])],
        &ImportRules::default(),
    );
    assert_eq!(decision.reason, ReasonCode::MultiMatch);
}

#[test]
fn order_trace_runs_step_by_step() {
    let record = oclc_record(12345, b' ', Some("20240101120000.0"));
    let decision = run(
        &record,
        &[candidate(MMS_A, &[(b'a', 12345)])],
        &ImportRules::default(),
    );
    let position = |needle: &str| {
        decision
            .trace
            .iter()
            .position(|line| line.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {:?}", decision.trace))
    };
    let steps = [
        "MARCXML conversion: ok",
        "match method:",
        "incoming keys: 12345 (001)",
        "key 12345",
        "one record matches",
        "community zone:",
        "lock:",
        "brief level:",
        "005:",
        "merge leader:",
        "merged into",
    ];
    let positions: Vec<usize> = steps.iter().map(|step| position(step)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        decision.trace
    );
}

// ---------------------------------------------------------------------------------------------
// ImportRules switches
// ---------------------------------------------------------------------------------------------

#[test]
fn policy_check_005_off_merges_an_older_record() {
    let record = oclc_record(12345, b' ', Some("20220101000000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.originating_version = Some(version("20230101000000.0"));
    let policy = ImportRules {
        check_005: false,
        ..ImportRules::default()
    };
    let decision = run(&record, &[existing], &policy);
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        "005: incoming 20220101000000.0, originating version 20230101000000.0: check off",
    );
}

#[test]
fn policy_check_brief_level_off_merges_a_briefer_record() {
    let record = oclc_record(12345, b'5', None);
    let policy = ImportRules {
        check_brief_level: false,
        ..ImportRules::default()
    };
    let decision = run(&record, &[candidate(MMS_A, &[(b'a', 12345)])], &policy);
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        r#"brief level: existing 10 (Leader/17 " "), incoming 02 (Leader/17 "5"): check off"#,
    );
}

// ---------------------------------------------------------------------------------------------
// The merge outcome
// ---------------------------------------------------------------------------------------------

#[test]
fn merge_outcome_carries_the_merged_record_level_and_version() {
    let record = oclc_record(12345, b'4', Some("20240101120000.0"));
    let mut existing = candidate(MMS_A, &[(b'a', 12345)]);
    existing.brief_level = level(5);
    let decision = run(&record, &[existing], &ImportRules::default());
    let Outcome::Merge {
        merged,
        brief_level,
        originating_version,
        ..
    } = &decision.outcome
    else {
        panic!("expected a merge: {:?}", decision.trace);
    };
    assert_eq!(*brief_level, level(7));
    assert_eq!(*originating_version, Some(version("20240101120000.0")));
    assert_eq!(merged.control_value("001"), Some(MMS_A));
    assert_eq!(merged.control_value("005"), Some("20240101120000.0"));
    let values: Vec<&str> = merged
        .fields_with_tag("035")
        .flat_map(|field| field.subfield_values(b'a'))
        .collect();
    assert_eq!(values, vec!["(OCoLC)12345", "(CaSfKan)b1234567"]);
    assert!(merged.fields_with_tag("949").next().is_some());
    assert!(
        decision.trace.iter().any(|line| line.starts_with("merge ")
            && line.contains(" 245")
            && line.ends_with("from the incoming record (by default take)")),
        "245 is not listed as taken by default:\n{}",
        decision.trace.join("\n")
    );
}

#[test]
fn caller_hits_are_used_as_given() {
    let record = oclc_record(12345, b' ', None);
    let mut existing = candidate(MMS_A, &[]);
    existing.hits = vec![Hit {
        number: 12345,
        incoming: Provenance::Active001,
        existing_active: false,
    }];
    let decision = run(&record, &[existing], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(
        &decision,
        &format!("key 12345 (001) -> {MMS_A} (cancelled)"),
    );
}

#[test]
fn candidate_without_any_hit_details_still_counts() {
    let record = oclc_record(12345, b' ', None);
    let decision = run(&record, &[candidate(MMS_A, &[])], &ImportRules::default());
    assert_eq!(merged_into(&decision), MMS_A);
    assert_traced(&decision, "no hit details given or found in its record");
}

#[test]
fn reason_codes_are_stable() {
    let codes = [
        (ReasonCode::Added, "ADDED"),
        (ReasonCode::Merged, "MERGED"),
        (ReasonCode::MultiMatch, "MULTI_MATCH"),
        (ReasonCode::NotAddedBrief, "NOT_ADDED_BRIEF"),
        (ReasonCode::NotAddedLocked, "NOT_ADDED_LOCKED"),
        (ReasonCode::NotAddedOld, "NOT_ADDED_OLD"),
        (
            ReasonCode::ConversionFailed("X".to_owned()),
            "MARCXML_CONVERSION_FAILED",
        ),
        (ReasonCode::CommunityZoneLinked, "CZ_LINKED"),
    ];
    for (reason, code) in codes {
        assert_eq!(reason.code(), code);
    }
}

#[test]
fn lock_times_outside_the_calendar_are_printed_as_unix_time() {
    assert_eq!(
        messages::utc_minutes(i64::MAX),
        format!("unix time {}", i64::MAX)
    );
    assert_eq!(messages::utc_minutes(-1), "1969-12-31 23:59 UTC");
    let lock = EditorLock {
        left_unix: Some(i64::MAX),
        ..lock(None)
    };
    assert!(lock.is_held(i64::MAX - 1, 3_600));
}
