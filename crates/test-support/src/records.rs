//! Records for tests: Connexion-like WorldCat records, their ISO 2709 bytes, and records
//! seeded into a zone directly through the `Store` port.

use bibgate_marc::{Leader, Record};
use bibgate_store::{
    Commit, EditorLock, Expectation, ImportResult, IndexKey, MmsId, Outcome, Store, StoredRecord,
};

use crate::consortium::SUCCESS;

/// A Connexion-like record: 001/003 OCLC, optional 005, 008, 035 $a (OCoLC)N, 245.
pub fn oclc_record(number: u64, encoding_level: u8, version: Option<&str>, title: &str) -> Record {
    let mut leader = Leader::DEFAULT;
    leader.0[17] = encoding_level;
    let mut record = Record {
        leader,
        fields: Vec::new(),
    };
    record.push_control("001", format!("ocm{number:08}"));
    record.push_control("003", "OCoLC");
    if let Some(version) = version {
        record.push_control("005", version);
    }
    record.push_control("008", "240101s2024    ilu           000 0 eng d");
    record.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
    record.push_data("245", b'1', b'0', &[(b'a', title)]);
    record
}

/// ISO 2709 bytes of a record.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::new();
    bibgate_marc::iso2709::write_record(record, &mut bytes).unwrap();
    bytes
}

/// A full-level record with a 005, as bytes.
pub fn record_bytes(number: u64, title: &str) -> Vec<u8> {
    encode(&oclc_record(number, b' ', Some("20240101120000.0"), title))
}

/// A MARC-8 record whose 500 field is about 5,000 bytes on the wire and 10,005 bytes in
/// UTF-8 (`æ` is one byte in MARC-8, two in UTF-8): it cannot be converted to MARCXML.
pub fn too_long_field_record(number: u64) -> Vec<u8> {
    let mut record = oclc_record(number, b' ', None, "A record with a long note.");
    let filler = "x".repeat(5_000);
    record.push_data("500", b' ', b' ', &[(b'a', &filler)]);
    let mut bytes = encode(&record);
    let start = bytes
        .windows(filler.len())
        .position(|w| w == filler.as_bytes())
        .unwrap();
    for byte in &mut bytes[start..start + filler.len()] {
        *byte = 0xB5;
    }
    bytes[9] = b' ';
    bytes
}

/// Adds a record to a zone directly through the Store port (to set up states the import
/// cannot reach, like two records sharing an OCLC number).
pub fn seed(store: &dyn Store, zone: &str, record: &Record, keys: &[(u64, bool)]) -> MmsId {
    let mms_id = store.allocate_mms_id(zone).unwrap();
    let mut record = record.clone();
    record
        .fields
        .retain(|f| !f.tag().is("001") && !f.tag().is("003"));
    let mut stored_record = Record {
        leader: record.leader,
        fields: Vec::new(),
    };
    stored_record.push_control("001", mms_id.0.clone());
    stored_record.fields.extend(record.fields);
    let result = ImportResult {
        export_id: format!("seed-{}", mms_id.0),
        batch_id: None,
        index: None,
        institution: zone.into(),
        zone: zone.into(),
        outcome: Outcome::Added,
        host_message: SUCCESS.into(),
        reason_code: "ADDED".into(),
        mms_id: Some(mms_id.clone()),
        oclc_numbers: keys.iter().map(|(n, _)| *n).collect(),
        raw_key: String::new(),
        raw_offset: 0,
        raw_len: 0,
        received_unix: 0,
        decided_unix: 0,
        trace: Vec::new(),
        policy: None,
        retry_of: None,
    };
    store
        .commit(&Commit::Add {
            expect: Expectation::default(),
            record: StoredRecord {
                zone: zone.into(),
                mms_id: mms_id.clone(),
                marc: encode(&stored_record),
                revision: 1,
                originating_version: None,
                brief_level: 10,
                linked_to_community_zone: false,
                created_unix: 0,
                updated_unix: 0,
                keys: keys
                    .iter()
                    .map(|(number, active)| IndexKey {
                        number: *number,
                        active: *active,
                    })
                    .collect(),
            },
            result,
        })
        .unwrap();
    mms_id
}

/// Seeds the usual cause of a multi-match: a record with `number` active and another whose
/// active number is `other`, with `number` cancelled (in its 019 after a WorldCat merge).
/// Returns their MMS IDs.
pub fn seed_sharing(store: &dyn Store, zone: &str, number: u64, other: u64) -> (MmsId, MmsId) {
    let a = seed(
        store,
        zone,
        &oclc_record(number, b' ', None, "A."),
        &[(number, true)],
    );
    let b = seed(
        store,
        zone,
        &oclc_record(other, b' ', None, "B."),
        &[(other, true), (number, false)],
    );
    (a, b)
}

/// Opens record `mms_id` of `zone` in the metadata editor as `jdoe` of `zone` (in the
/// editor since 2024-06-01 10:00 UTC, not left): the state behind `NOT_ADDED_LOCKED`.
pub fn seed_lock(store: &dyn Store, zone: &str, mms_id: &str) {
    store
        .put_lock(&EditorLock {
            zone: zone.into(),
            mms_id: MmsId(mms_id.into()),
            institution: zone.into(),
            user: "jdoe".into(),
            since_unix: 1_717_236_000,
            left_unix: None,
        })
        .expect("lock");
}
