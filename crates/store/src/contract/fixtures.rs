//! The public builders of the suite: the demo consortium, profiles, keys, records, results
//! and commits, for the checks and for adapters' own tests.

use super::support::ok;
use crate::{
    Commit, Expectation, ImportResult, IndexKey, Institution, MmsId, Outcome, Profile, Store,
    StoredRecord, TargetZone, ZoneKind,
};

/// The demo network zone.
pub const NETWORK: &str = "01DEMO_NETWORK";
/// The numeric code of [`NETWORK`].
pub const NETWORK_CODE: u16 = 4520;
/// A demo institution zone.
pub const ZONE_A: &str = "01DEMO_ALPHA";
/// The numeric code of [`ZONE_A`].
pub const ZONE_A_CODE: u16 = 4521;
/// Another demo institution zone.
pub const ZONE_B: &str = "01DEMO_BETA";
/// The numeric code of [`ZONE_B`].
pub const ZONE_B_CODE: u16 = 4522;

/// A demo institution: a network zone when `code` is [`NETWORK`], else a member of it.
pub fn demo_institution(code: &str, numeric_code: u16) -> Institution {
    let is_network = code == NETWORK;
    Institution {
        code: code.to_owned(),
        name: format!("Demo {code}"),
        kind: if is_network {
            ZoneKind::Network
        } else {
            ZoneKind::Institution
        },
        network: if is_network {
            None
        } else {
            Some(NETWORK.to_owned())
        },
        numeric_code,
    }
}

/// The demo network and its two members, sorted by code.
pub fn demo_institutions() -> Vec<Institution> {
    vec![
        demo_institution(ZONE_A, ZONE_A_CODE),
        demo_institution(ZONE_B, ZONE_B_CODE),
        demo_institution(NETWORK, NETWORK_CODE),
    ]
}

/// Stores [`demo_institutions`], so that their zones can allocate MMS IDs.
pub fn setup_zones(store: &dyn Store) {
    for institution in demo_institutions() {
        ok(
            store.put_institution(&institution),
            &format!("put institution {:?}", institution.code),
        );
    }
}

/// A Connexion profile of an institution.
pub fn demo_profile(id: &str, institution: &str) -> Profile {
    Profile {
        id: id.to_owned(),
        institution: institution.to_owned(),
        kind: "connexion".to_owned(),
        logon_id: format!("{institution}-logon"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        previous_password_hash: None,
        previous_password_expires: None,
        target_zone: TargetZone::Institution,
        check_brief_level: true,
        check_005: false,
        lock_timeout_seconds: 1800,
        brief_levels: "default".to_owned(),
        merge_rules: "keep 9XX".to_owned(),
        serial_match: "issn".to_owned(),
        nonserial_match: "oclc".to_owned(),
        skip_community_zone: true,
    }
}

/// An active OCLC key.
pub fn active(number: u64) -> IndexKey {
    IndexKey {
        number,
        active: true,
    }
}

/// A cancelled OCLC key.
pub fn cancelled(number: u64) -> IndexKey {
    IndexKey {
        number,
        active: false,
    }
}

/// A record at revision 1 with the given keys, its MARC naming its MMS ID (and including
/// bytes that are not text).
pub fn sample_record(zone: &str, mms_id: &MmsId, keys: &[IndexKey]) -> StoredRecord {
    let mut marc = format!("00000nam a2200000 a 4500\u{1e}{mms_id}\u{1e}Café\u{1e}").into_bytes();
    marc.extend_from_slice(&[0x00, 0xff, 0x1d]);
    StoredRecord {
        zone: zone.to_owned(),
        mms_id: mms_id.clone(),
        marc,
        revision: 1,
        originating_version: Some("20240131120000.0".to_owned()),
        brief_level: 7,
        linked_to_community_zone: false,
        created_unix: 1_700_000_000,
        updated_unix: 1_700_000_000,
        keys: keys.to_vec(),
    }
}

/// A failed result in [`ZONE_A`] with every field set, and a trace that needs escaping.
pub fn sample_result(export_id: &str) -> ImportResult {
    ImportResult {
        export_id: export_id.to_owned(),
        batch_id: None,
        index: None,
        institution: ZONE_A.to_owned(),
        zone: ZONE_A.to_owned(),
        outcome: Outcome::Failed,
        host_message: "Import Failed: multiple matches".to_owned(),
        reason_code: "MULTI_MATCH".to_owned(),
        mms_id: None,
        oclc_numbers: vec![12345, 67890],
        raw_key: format!("inbox/{ZONE_A}/{export_id}.mrc"),
        raw_offset: 0,
        raw_len: 1234,
        received_unix: 1_700_000_100,
        decided_unix: 1_700_000_101,
        trace: vec![
            "match on 035 $a (OCLC)12345".to_owned(),
            String::new(),
            "a line\nwith a break and a \\ backslash".to_owned(),
        ],
        policy: Some("protect-local-fields@2 sha256:00ff".to_owned()),
        retry_of: Some("e-first".to_owned()),
    }
}

/// An Add of `record` expecting `matched` under all of its numbers, with an "added" result.
pub fn add_commit(record: &StoredRecord, matched: &[MmsId], export_id: &str) -> Commit {
    let mut result = sample_result(export_id);
    result.zone = record.zone.clone();
    result.outcome = Outcome::Added;
    result.reason_code = "ADDED".to_owned();
    result.host_message = "Record added".to_owned();
    result.mms_id = Some(record.mms_id.clone());
    result.oclc_numbers = record.keys.iter().map(|key| key.number).collect();
    Commit::Add {
        expect: Expectation {
            numbers: record.keys.iter().map(|key| key.number).collect(),
            matched: matched.to_vec(),
        },
        record: record.clone(),
        result,
    }
}

/// A Merge into `record.mms_id` from `expected_revision`, expecting only that record under
/// `numbers`, with a "merged" result.
pub fn merge_commit(
    record: &StoredRecord,
    numbers: &[u64],
    expected_revision: u64,
    export_id: &str,
) -> Commit {
    let mut result = sample_result(export_id);
    result.zone = record.zone.clone();
    result.outcome = Outcome::Merged;
    result.reason_code = "MERGED".to_owned();
    result.host_message = "Record merged".to_owned();
    result.mms_id = Some(record.mms_id.clone());
    result.oclc_numbers = numbers.to_vec();
    Commit::Merge {
        expect: Expectation {
            numbers: numbers.to_vec(),
            matched: vec![record.mms_id.clone()],
        },
        expected_revision,
        record: record.clone(),
        reason: "merge".to_owned(),
        result,
    }
}

/// A Reject: only a result.
pub fn reject_commit(result: ImportResult) -> Commit {
    Commit::Reject { result }
}
