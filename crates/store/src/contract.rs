//! The port contract suite: the executable definition of [`Store`] and [`BlobStore`].
//!
//! Every adapter runs it from its tests, with a factory that returns a fresh, empty store
//! for each check:
//!
//! ```text
//! #[test]
//! fn sqlite_store_passes_the_contract() {
//!     bibgate_store::contract::store_contract(&|| Box::new(SqliteStore::in_memory().unwrap()));
//! }
//! ```
//!
//! A failed check panics with the check's name and what differed. The builders
//! ([`sample_record`], [`sample_result`], [`demo_institution`], ...) are public so that
//! adapters' own tests can reuse them.
//!
//! The checks need no more than the ports promise, plus these points the ports' docs leave
//! to the suite:
//!
//! - [`Store::institutions`] is sorted by code; [`Store::allocate_mms_id`] fails with
//!   [`Error::NotFound`] for a zone that is not a stored institution, and its serial numbers
//!   increase.
//! - A commit whose result's export id is already stored fails with [`Error::AlreadyExists`]
//!   and writes nothing; an Add of an existing MMS ID fails the same way.
//! - A failed commit (of any kind) writes nothing.
//! - In a batch, a commit sees the writes of the commits before it.

use std::any::Any;
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Barrier;
use std::thread;

use crate::{
    BlobStore, Commit, EditorLock, Error, Expectation, ImportResult, IndexEntry, IndexKey,
    Institution, Lookup, MmsId, Outcome, Profile, RecordVersion, Result, Store, StoredRecord,
    TargetZone, ZoneKind,
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

/// The value of `result`, or a panic saying what failed.
fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected error: {err}"),
    }
}

/// Panics unless `result` is the error `is_expected` accepts.
fn fails<T: std::fmt::Debug>(
    result: Result<T>,
    what: &str,
    expected: &str,
    is_expected: ErrorTest,
) {
    match result {
        Err(err) if is_expected(&err) => {}
        Err(err) => panic!("{what}: expected {expected}, got the error: {err}"),
        Ok(value) => panic!("{what}: expected {expected}, got Ok({value:?})"),
    }
}

fn is_conflict(err: &Error) -> bool {
    matches!(err, Error::Conflict(_))
}

fn is_already_exists(err: &Error) -> bool {
    matches!(err, Error::AlreadyExists(_))
}

fn is_not_found(err: &Error) -> bool {
    matches!(err, Error::NotFound(_))
}

fn any_error(_: &Error) -> bool {
    true
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// A named check of a port.
type Check<T> = (&'static str, fn(&T));

/// Accepts the expected kind of error.
type ErrorTest = fn(&Error) -> bool;

/// Runs each check against a fresh value from `make`, naming the check that failed.
fn run_checks<T: ?Sized>(kind: &str, make: &dyn Fn() -> Box<T>, checks: &[Check<T>]) {
    for (name, check) in checks {
        let port = make();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&*port)));
        if let Err(payload) = outcome {
            panic!(
                "{kind} contract check `{name}` failed: {}",
                panic_message(&*payload)
            );
        }
    }
}

/// Joins a scoped thread, passing its panic on.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}

/// Runs every [`Store`] check, each against a fresh, empty store from `make`.
pub fn store_contract(make: &dyn Fn() -> Box<dyn Store>) {
    let checks: &[Check<dyn Store>] = &[
        ("institutions", check_institutions),
        ("profiles", check_profiles),
        ("allocate_mms_id", check_allocate),
        ("allocate_unknown_zone", check_allocate_unknown_zone),
        ("allocate_many", check_allocate_many),
        (
            "allocate_not_reused_after_failed_commit",
            check_allocate_not_reused,
        ),
        ("allocate_concurrently", check_allocate_concurrently),
        ("add_and_find", check_add_and_find),
        ("add_stale_expectation", check_add_stale_expectation),
        ("add_existing_mms_id", check_add_existing_mms_id),
        ("add_race_two_threads", check_add_race_two_threads),
        ("add_race_eight_threads", check_add_race_eight_threads),
        ("merge", check_merge),
        ("merge_stale_revision", check_merge_stale_revision),
        ("merge_stale_expectation", check_merge_stale_expectation),
        ("reject_and_batch_results", check_reject_and_batch_results),
        ("duplicate_export_id", check_duplicate_export_id),
        ("replace", check_replace),
        ("locks", check_locks),
        ("lookup", check_lookup),
        ("lookup_many", check_lookup_many),
        ("commit_batch", check_commit_batch),
        ("zones_are_separate", check_zones_are_separate),
    ];
    run_checks("store", make, checks);
}

/// Runs every [`BlobStore`] check, each against a fresh, empty store from `make`.
pub fn blob_contract(make: &dyn Fn() -> Box<dyn BlobStore>) {
    let checks: &[Check<dyn BlobStore>] = &[
        ("put_get_replace_delete", check_blob_basics),
        ("put_if_absent", check_blob_put_if_absent),
        (
            "put_if_absent_concurrently",
            check_blob_put_if_absent_concurrently,
        ),
        ("list", check_blob_list),
        ("copy_if_absent_many", check_blob_copy_if_absent_many),
        ("put_many", check_blob_put_many),
    ];
    run_checks("blob store", make, checks);
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn find(store: &dyn Store, zone: &str, numbers: &[u64]) -> Vec<IndexEntry> {
    sorted(ok(
        store.find_by_oclc(zone, numbers),
        &format!("find_by_oclc({zone:?}, {numbers:?})"),
    ))
}

fn entry(number: u64, mms_id: &MmsId, active: bool) -> IndexEntry {
    IndexEntry {
        number,
        mms_id: mms_id.clone(),
        active,
    }
}

fn allocate(store: &dyn Store, zone: &str) -> MmsId {
    ok(
        store.allocate_mms_id(zone),
        &format!("allocate_mms_id({zone:?})"),
    )
}

fn commit(store: &dyn Store, commit: &Commit, what: &str) {
    ok(store.commit(commit), what);
}

fn record(store: &dyn Store, zone: &str, mms_id: &MmsId) -> Option<StoredRecord> {
    ok(
        store.record(zone, mms_id),
        &format!("record({zone:?}, {mms_id})"),
    )
}

fn versions(store: &dyn Store, zone: &str, mms_id: &MmsId) -> Vec<RecordVersion> {
    ok(
        store.versions(zone, mms_id),
        &format!("versions({zone:?}, {mms_id})"),
    )
}

fn count(store: &dyn Store, zone: &str) -> u64 {
    ok(
        store.count_records(zone),
        &format!("count_records({zone:?})"),
    )
}

fn stored_result(store: &dyn Store, export_id: &str) -> Option<ImportResult> {
    ok(store.result(export_id), &format!("result({export_id:?})"))
}

/// The result a commit carries.
fn result_of(commit: &Commit) -> &ImportResult {
    match commit {
        Commit::Add { result, .. } | Commit::Merge { result, .. } | Commit::Reject { result } => {
            result
        }
        Commit::Replace { .. } => panic!("a replace commit has no result"),
    }
}

/// Adds a new record with `keys` to `zone` (expecting nothing matched) and returns it.
fn add_new(store: &dyn Store, zone: &str, keys: &[IndexKey], export_id: &str) -> StoredRecord {
    let mms_id = allocate(store, zone);
    let record = sample_record(zone, &mms_id, keys);
    commit(
        store,
        &add_commit(&record, &[], export_id),
        &format!("add {mms_id} to {zone:?}"),
    );
    record
}

/// A version of `record` as it is kept when replaced.
fn version_of(
    record: &StoredRecord,
    replaced_unix: i64,
    replaced_by: &str,
    reason: &str,
) -> RecordVersion {
    RecordVersion {
        revision: record.revision,
        marc: record.marc.clone(),
        originating_version: record.originating_version.clone(),
        brief_level: record.brief_level,
        saved_unix: record.updated_unix,
        replaced_unix,
        replaced_by: replaced_by.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `record` changed as a merge would: new MARC, keys and times, one revision more.
fn merged(record: &StoredRecord, keys: &[IndexKey], label: &str) -> StoredRecord {
    StoredRecord {
        marc: format!("merged {label} into {}", record.mms_id).into_bytes(),
        revision: record.revision + 1,
        originating_version: Some(format!("2025010{}000000.0", record.revision)),
        brief_level: 8,
        linked_to_community_zone: !record.linked_to_community_zone,
        updated_unix: record.updated_unix + 60,
        keys: keys.to_vec(),
        ..record.clone()
    }
}

fn check_institutions(store: &dyn Store) {
    assert_eq!(
        ok(store.institutions(), "institutions()"),
        Vec::new(),
        "a fresh store has no institutions"
    );
    // Put in reverse to check the order.
    for institution in demo_institutions().into_iter().rev() {
        ok(store.put_institution(&institution), "put_institution");
    }
    assert_eq!(
        ok(store.institutions(), "institutions()"),
        demo_institutions(),
        "institutions() lists every institution, sorted by code"
    );
    assert_eq!(
        ok(store.institution(ZONE_A), "institution(ZONE_A)"),
        Some(demo_institution(ZONE_A, ZONE_A_CODE))
    );
    let renamed = Institution {
        name: "Alpha University, renamed".to_owned(),
        network: None,
        ..demo_institution(ZONE_A, ZONE_A_CODE)
    };
    ok(store.put_institution(&renamed), "put_institution (replace)");
    assert_eq!(
        ok(store.institution(ZONE_A), "institution(ZONE_A)"),
        Some(renamed),
        "put_institution replaces"
    );
    assert_eq!(ok(store.institutions(), "institutions()").len(), 3);
    assert_eq!(
        ok(store.institution("01NOPE"), "institution(unknown)"),
        None
    );
}

fn check_profiles(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(ok(store.profiles(ZONE_A), "profiles(ZONE_A)"), Vec::new());
    let alpha_1 = demo_profile("alpha-connexion", ZONE_A);
    let alpha_2 = Profile {
        target_zone: TargetZone::Network,
        ..demo_profile("alpha-nz", ZONE_A)
    };
    let beta = demo_profile("beta-connexion", ZONE_B);
    for profile in [&alpha_2, &beta, &alpha_1] {
        ok(store.put_profile(profile), "put_profile");
    }
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1.clone(), alpha_2.clone()],
        "profiles() returns the institution's profiles only"
    );
    let alpha_1_changed = Profile {
        check_005: true,
        lock_timeout_seconds: 60,
        merge_rules: "keep 590\nkeep 9XX".to_owned(),
        ..alpha_1.clone()
    };
    ok(store.put_profile(&alpha_1_changed), "put_profile (replace)");
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1_changed.clone(), alpha_2.clone()],
        "put_profile replaces by id"
    );
    // A password rotation: the previous hash and its expiry are kept, then dropped.
    let alpha_1_rotated = Profile {
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g".to_owned(),
        previous_password_hash: Some(alpha_1_changed.password_hash.clone()),
        previous_password_expires: Some(1_900_000_000),
        ..alpha_1_changed.clone()
    };
    ok(store.put_profile(&alpha_1_rotated), "put_profile (rotated)");
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1_rotated.clone(), alpha_2.clone()],
        "put_profile keeps the previous password hash and its expiry"
    );
    let alpha_1_expired = Profile {
        previous_password_hash: Some(alpha_1_changed.password_hash.clone()),
        previous_password_expires: Some(-1),
        ..alpha_1_rotated.clone()
    };
    ok(store.put_profile(&alpha_1_expired), "put_profile (expiry)");
    assert_eq!(
        ok(store.profiles(ZONE_A), "profiles(ZONE_A)")
            .into_iter()
            .find(|p| p.id == alpha_1_expired.id),
        Some(alpha_1_expired.clone()),
        "a negative expiry round-trips"
    );
    let alpha_1_changed = Profile {
        previous_password_hash: None,
        previous_password_expires: None,
        ..alpha_1_rotated
    };
    ok(
        store.put_profile(&alpha_1_changed),
        "put_profile (previous dropped)",
    );
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1_changed.clone(), alpha_2.clone()],
        "put_profile drops a previous password hash"
    );
    assert!(ok(store.delete_profile("alpha-nz"), "delete_profile"));
    assert!(
        !ok(store.delete_profile("alpha-nz"), "delete_profile again"),
        "deleting a missing profile returns false"
    );
    assert_eq!(
        ok(store.profiles(ZONE_A), "profiles(ZONE_A)"),
        vec![alpha_1_changed]
    );
    assert_eq!(ok(store.profiles(ZONE_B), "profiles(ZONE_B)"), vec![beta]);
    assert_eq!(
        ok(store.profiles("01NOPE"), "profiles(unknown)"),
        Vec::new()
    );
}

fn sorted_profiles(mut profiles: Vec<Profile>) -> Vec<Profile> {
    profiles.sort_by(|left, right| left.id.cmp(&right.id));
    profiles
}

/// The MMS ID as a number, after checking its shape.
fn mms_number(mms_id: &MmsId, zone_code: u16) -> u128 {
    let text = mms_id.as_str();
    assert!(
        text.starts_with("99"),
        "mms id {text} does not start with 99"
    );
    assert!(
        text.ends_with(&format!("{zone_code:04}")),
        "mms id {text} does not end with the zone's code {zone_code:04}"
    );
    assert!(
        text.len() > 6 && text.bytes().all(|byte| byte.is_ascii_digit()),
        "mms id {text} is not 99, a serial and the zone's code"
    );
    match text.parse() {
        Ok(number) => number,
        Err(err) => panic!("mms id {text} is not a number: {err}"),
    }
}

fn check_allocate(store: &dyn Store) {
    setup_zones(store);
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for _ in 0..1000 {
        let mms_id = allocate(store, ZONE_A);
        let number = mms_number(&mms_id, ZONE_A_CODE);
        assert!(
            number > last,
            "allocate_mms_id is not increasing: {mms_id} after {last}"
        );
        last = number;
        assert!(seen.insert(mms_id.clone()), "{mms_id} allocated twice");
    }
    for (zone, code) in [(ZONE_B, ZONE_B_CODE), (NETWORK, NETWORK_CODE)] {
        let mms_id = allocate(store, zone);
        mms_number(&mms_id, code);
        assert!(seen.insert(mms_id.clone()), "{mms_id} allocated twice");
    }
}

fn check_allocate_many(store: &dyn Store) {
    setup_zones(store);
    let before = allocate(store, ZONE_A);
    assert_eq!(
        ok(store.allocate_mms_ids(ZONE_A, 0), "allocate_mms_ids(0)"),
        Vec::new()
    );
    let many = ok(store.allocate_mms_ids(ZONE_A, 250), "allocate_mms_ids(250)");
    assert_eq!(many.len(), 250, "allocate_mms_ids returns `count` ids");
    let after = allocate(store, ZONE_A);
    let mut last = mms_number(&before, ZONE_A_CODE);
    for mms_id in many.iter().chain([&after]) {
        let number = mms_number(mms_id, ZONE_A_CODE);
        assert!(
            number > last,
            "allocate_mms_ids is not increasing: {mms_id} after {last}"
        );
        last = number;
    }
    fails(
        store.allocate_mms_ids("01NOPE", 3),
        "allocate_mms_ids in a zone that is no institution",
        "NotFound",
        is_not_found,
    );
}

fn check_allocate_unknown_zone(store: &dyn Store) {
    setup_zones(store);
    fails(
        store.allocate_mms_id("01NOPE"),
        "allocate_mms_id in a zone that is no institution",
        "NotFound",
        is_not_found,
    );
}

fn check_allocate_not_reused(store: &dyn Store) {
    setup_zones(store);
    let existing = add_new(store, ZONE_A, &[active(1001)], "e-existing");
    let failed_id = allocate(store, ZONE_A);
    let failed = sample_record(ZONE_A, &failed_id, &[active(1001)]);
    fails(
        store.commit(&add_commit(&failed, &[], "e-failed")),
        "add expecting no match where there is one",
        "Conflict",
        is_conflict,
    );
    let next = allocate(store, ZONE_A);
    assert_ne!(
        next, failed_id,
        "an mms id was reused after a failed commit"
    );
    assert_ne!(next, existing.mms_id, "an mms id was reused");
    assert!(
        mms_number(&next, ZONE_A_CODE) > mms_number(&failed_id, ZONE_A_CODE),
        "allocate_mms_id is not increasing: {next} after {failed_id}"
    );
}

fn check_allocate_concurrently(store: &dyn Store) {
    setup_zones(store);
    let n_threads = 8;
    let per_thread = 50;
    let barrier = Barrier::new(n_threads);
    let all: Vec<MmsId> = thread::scope(|scope| {
        let handles: Vec<_> = (0..n_threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    (0..per_thread)
                        .map(|_| allocate(store, ZONE_A))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(join).collect()
    });
    let distinct: BTreeSet<&MmsId> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        n_threads * per_thread,
        "concurrent allocate_mms_id returned duplicates"
    );
}

fn check_add_and_find(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(count(store, ZONE_A), 0);
    let mms_id = allocate(store, ZONE_A);
    let added = StoredRecord {
        linked_to_community_zone: true,
        originating_version: None,
        ..sample_record(ZONE_A, &mms_id, &[active(100), cancelled(200)])
    };
    let add = add_commit(&added, &[], "e-add");
    commit(store, &add, "add");
    assert_eq!(
        record(store, ZONE_A, &mms_id),
        Some(added.clone()),
        "record() returns what was added"
    );
    assert_eq!(find(store, ZONE_A, &[100]), vec![entry(100, &mms_id, true)]);
    assert_eq!(
        find(store, ZONE_A, &[200]),
        vec![entry(200, &mms_id, false)],
        "a cancelled number is indexed as cancelled"
    );
    assert_eq!(
        find(store, ZONE_A, &[300, 200, 100]),
        vec![entry(100, &mms_id, true), entry(200, &mms_id, false)]
    );
    assert_eq!(find(store, ZONE_A, &[300]), Vec::new());
    assert_eq!(find(store, ZONE_A, &[]), Vec::new());
    assert_eq!(count(store, ZONE_A), 1);
    assert_eq!(
        stored_result(store, "e-add").as_ref(),
        Some(result_of(&add)),
        "the add's result is stored"
    );
    assert_eq!(versions(store, ZONE_A, &mms_id), Vec::new());

    // A second record under the same number, decided knowing the first.
    let second_id = allocate(store, ZONE_A);
    let second = sample_record(ZONE_A, &second_id, &[active(100)]);
    commit(
        store,
        &add_commit(&second, std::slice::from_ref(&mms_id), "e-add-2"),
        "add a second record expecting the first",
    );
    assert_eq!(
        find(store, ZONE_A, &[100]),
        sorted(vec![
            entry(100, &mms_id, true),
            entry(100, &second_id, true)
        ])
    );
    assert_eq!(count(store, ZONE_A), 2);
    let unknown = MmsId::new(9_999_999, ZONE_A_CODE);
    assert_eq!(record(store, ZONE_A, &unknown), None);
    assert_eq!(versions(store, ZONE_A, &unknown), Vec::new());
    assert_eq!(stored_result(store, "e-unknown"), None);
}

fn check_add_stale_expectation(store: &dyn Store) {
    setup_zones(store);
    let first = add_new(store, ZONE_A, &[active(100)], "e-first");
    let late_id = allocate(store, ZONE_A);
    let late = sample_record(ZONE_A, &late_id, &[active(100), active(101)]);
    fails(
        store.commit(&add_commit(&late, &[], "e-late")),
        "add expecting no match when the index holds one",
        "Conflict",
        is_conflict,
    );
    let phantom = MmsId::new(9_999_999, ZONE_A_CODE);
    fails(
        store.commit(&add_commit(
            &late,
            &[first.mms_id.clone(), phantom],
            "e-late-2",
        )),
        "add expecting more matches than the index holds",
        "Conflict",
        is_conflict,
    );
    assert_eq!(
        record(store, ZONE_A, &late_id),
        None,
        "a conflicting add wrote its record"
    );
    assert_eq!(
        find(store, ZONE_A, &[101]),
        Vec::new(),
        "a conflicting add wrote index entries"
    );
    assert_eq!(
        find(store, ZONE_A, &[100]),
        vec![entry(100, &first.mms_id, true)]
    );
    assert_eq!(
        stored_result(store, "e-late"),
        None,
        "a conflicting add wrote its result"
    );
    assert_eq!(stored_result(store, "e-late-2"), None);
    assert_eq!(count(store, ZONE_A), 1);
    // Decided again with what is there now, it succeeds.
    commit(
        store,
        &add_commit(&late, std::slice::from_ref(&first.mms_id), "e-late-3"),
        "add expecting the current index",
    );
    assert_eq!(count(store, ZONE_A), 2);
}

fn check_add_existing_mms_id(store: &dyn Store) {
    setup_zones(store);
    let first = add_new(store, ZONE_A, &[active(100)], "e-first");
    let clash = sample_record(ZONE_A, &first.mms_id, &[active(900)]);
    fails(
        store.commit(&add_commit(&clash, &[], "e-clash")),
        "add of an mms id that exists",
        "AlreadyExists",
        is_already_exists,
    );
    assert_eq!(record(store, ZONE_A, &first.mms_id), Some(first));
    assert_eq!(find(store, ZONE_A, &[900]), Vec::new());
    assert_eq!(stored_result(store, "e-clash"), None);
    assert_eq!(count(store, ZONE_A), 1);
}

/// `n_threads` threads each look a new number up (all before any commits), allocate, and
/// add a record expecting no match: exactly one may win.
fn add_race(store: &dyn Store, n_threads: usize, rounds: u64) {
    setup_zones(store);
    for round in 0..rounds {
        let number = 50_000 + round;
        let barrier = Barrier::new(n_threads);
        let outcomes: Vec<(String, Result<()>)> = thread::scope(|scope| {
            let handles: Vec<_> = (0..n_threads)
                .map(|thread_idx| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let found = ok(
                            store.find_by_oclc(ZONE_A, &[number]),
                            "find_by_oclc in a race",
                        );
                        assert_eq!(found, Vec::new(), "round {round}: the number is new");
                        let mms_id = allocate(store, ZONE_A);
                        let export_id = format!("race-{n_threads}-{round}-{thread_idx}");
                        let add = add_commit(
                            &sample_record(ZONE_A, &mms_id, &[active(number)]),
                            &[],
                            &export_id,
                        );
                        // Everyone has decided before anyone commits.
                        barrier.wait();
                        (export_id, store.commit(&add))
                    })
                })
                .collect();
            handles.into_iter().map(join).collect()
        });
        let mut n_won = 0;
        for (export_id, outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    n_won += 1;
                    assert!(stored_result(store, &export_id).is_some());
                }
                Err(err) if err.is_conflict() => {
                    assert_eq!(
                        stored_result(store, &export_id),
                        None,
                        "round {round}: a losing add stored its result"
                    );
                }
                Err(err) => panic!("round {round}: {export_id} failed with {err}, not a conflict"),
            }
        }
        assert_eq!(
            n_won, 1,
            "round {round}: {n_won} of {n_threads} racing adds of oclc number {number} succeeded"
        );
        assert_eq!(
            find(store, ZONE_A, &[number]).len(),
            1,
            "round {round}: the index holds one record for the number"
        );
        assert_eq!(
            count(store, ZONE_A),
            round + 1,
            "round {round}: one record per round"
        );
    }
}

fn check_add_race_two_threads(store: &dyn Store) {
    add_race(store, 2, 20);
}

fn check_add_race_eight_threads(store: &dyn Store) {
    add_race(store, 8, 5);
}

fn check_merge(store: &dyn Store) {
    setup_zones(store);
    let old = add_new(store, ZONE_A, &[active(100), active(200)], "e-add");
    let new = merged(&old, &[active(100), cancelled(300)], "first");
    let merge = merge_commit(&new, &[100, 300], 1, "e-merge");
    commit(store, &merge, "merge");
    assert_eq!(
        record(store, ZONE_A, &old.mms_id),
        Some(new.clone()),
        "record() returns the merged state at revision 2"
    );
    assert_eq!(
        versions(store, ZONE_A, &old.mms_id),
        vec![version_of(&old, new.updated_unix, "e-merge", "merge")],
        "the prior state is kept as a version"
    );
    assert_eq!(
        find(store, ZONE_A, &[200]),
        Vec::new(),
        "a number the merged record lacks is no longer indexed"
    );
    assert_eq!(
        find(store, ZONE_A, &[100, 300]),
        vec![
            entry(100, &old.mms_id, true),
            entry(300, &old.mms_id, false)
        ]
    );
    assert_eq!(
        stored_result(store, "e-merge").as_ref(),
        Some(result_of(&merge))
    );
    assert_eq!(count(store, ZONE_A), 1);

    // And once more: versions accumulate, oldest first.
    let newer = merged(&new, &[active(100)], "second");
    commit(
        store,
        &merge_commit(&newer, &[100], 2, "e-merge-2"),
        "second merge",
    );
    assert_eq!(record(store, ZONE_A, &old.mms_id), Some(newer.clone()));
    assert_eq!(
        versions(store, ZONE_A, &old.mms_id),
        vec![
            version_of(&old, new.updated_unix, "e-merge", "merge"),
            version_of(&new, newer.updated_unix, "e-merge-2", "merge"),
        ]
    );
    assert_eq!(find(store, ZONE_A, &[300]), Vec::new());
}

fn check_merge_stale_revision(store: &dyn Store) {
    setup_zones(store);
    let old = add_new(store, ZONE_A, &[active(100)], "e-add");
    let new = merged(&old, &[active(100)], "first");
    commit(store, &merge_commit(&new, &[100], 1, "e-merge"), "merge");
    let stale = merged(&old, &[active(100), active(400)], "stale");
    fails(
        store.commit(&merge_commit(&stale, &[100], 1, "e-stale")),
        "merge from a revision that is no longer current",
        "Conflict",
        is_conflict,
    );
    assert_eq!(
        record(store, ZONE_A, &old.mms_id),
        Some(new),
        "a stale merge changed the record"
    );
    assert_eq!(
        versions(store, ZONE_A, &old.mms_id).len(),
        1,
        "a stale merge kept a version"
    );
    assert_eq!(
        find(store, ZONE_A, &[400]),
        Vec::new(),
        "a stale merge wrote index entries"
    );
    assert_eq!(
        stored_result(store, "e-stale"),
        None,
        "a stale merge stored its result"
    );
}

fn check_merge_stale_expectation(store: &dyn Store) {
    setup_zones(store);
    let target = add_new(store, ZONE_A, &[active(100)], "e-add");
    // Another record arrives under the same number after the merge was decided.
    let other_id = allocate(store, ZONE_A);
    commit(
        store,
        &add_commit(
            &sample_record(ZONE_A, &other_id, &[active(100)]),
            std::slice::from_ref(&target.mms_id),
            "e-other",
        ),
        "add a second record under the number",
    );
    let new = merged(&target, &[active(100), active(500)], "late");
    fails(
        store.commit(&merge_commit(&new, &[100], 1, "e-merge")),
        "merge expecting a single match where there are two",
        "Conflict",
        is_conflict,
    );
    assert_eq!(record(store, ZONE_A, &target.mms_id), Some(target.clone()));
    assert_eq!(versions(store, ZONE_A, &target.mms_id), Vec::new());
    assert_eq!(find(store, ZONE_A, &[500]), Vec::new());
    assert_eq!(stored_result(store, "e-merge"), None);
}

fn check_reject_and_batch_results(store: &dyn Store) {
    setup_zones(store);
    let rejected = sample_result("e-reject");
    commit(store, &reject_commit(rejected.clone()), "reject");
    assert_eq!(stored_result(store, "e-reject"), Some(rejected));
    assert_eq!(count(store, ZONE_A), 0, "a reject wrote a record");
    assert_eq!(find(store, ZONE_A, &[12345, 67890]), Vec::new());

    let in_batch = |batch: &str, index: u64| ImportResult {
        batch_id: Some(batch.to_owned()),
        index: Some(index),
        host_message: format!("record {index} of {batch}"),
        ..sample_result(&format!("{batch}#{index}"))
    };
    for (batch, index) in [("b1", 3), ("b2", 1), ("b1", 1), ("b1", 2)] {
        commit(
            store,
            &reject_commit(in_batch(batch, index)),
            &format!("reject {batch}#{index}"),
        );
    }
    assert_eq!(
        ok(store.batch_results("b1"), "batch_results(b1)"),
        vec![in_batch("b1", 1), in_batch("b1", 2), in_batch("b1", 3)],
        "batch_results() returns the batch's results in index order"
    );
    assert_eq!(
        ok(store.batch_results("b2"), "batch_results(b2)"),
        vec![in_batch("b2", 1)]
    );
    assert_eq!(
        ok(store.batch_results("b3"), "batch_results(b3)"),
        Vec::new()
    );
}

fn check_duplicate_export_id(store: &dyn Store) {
    setup_zones(store);
    let first = sample_result("e-dup");
    commit(store, &reject_commit(first.clone()), "reject");
    let again = ImportResult {
        host_message: "a retry".to_owned(),
        ..sample_result("e-dup")
    };
    fails(
        store.commit(&reject_commit(again)),
        "reject with an export id already stored",
        "AlreadyExists",
        is_already_exists,
    );
    let mms_id = allocate(store, ZONE_A);
    let record_new = sample_record(ZONE_A, &mms_id, &[active(700)]);
    fails(
        store.commit(&add_commit(&record_new, &[], "e-dup")),
        "add with an export id already stored",
        "AlreadyExists",
        is_already_exists,
    );
    assert_eq!(
        record(store, ZONE_A, &mms_id),
        None,
        "an add with a duplicate export id wrote its record"
    );
    assert_eq!(find(store, ZONE_A, &[700]), Vec::new());

    let target = add_new(store, ZONE_A, &[active(800)], "e-base");
    let new = merged(&target, &[active(800), active(801)], "dup");
    fails(
        store.commit(&merge_commit(&new, &[800], 1, "e-dup")),
        "merge with an export id already stored",
        "AlreadyExists",
        is_already_exists,
    );
    assert_eq!(record(store, ZONE_A, &target.mms_id), Some(target.clone()));
    assert_eq!(versions(store, ZONE_A, &target.mms_id), Vec::new());
    assert_eq!(find(store, ZONE_A, &[801]), Vec::new());
    assert_eq!(
        stored_result(store, "e-dup"),
        Some(first),
        "the first result stays"
    );
    assert_eq!(count(store, ZONE_A), 1);
}

fn check_replace(store: &dyn Store) {
    setup_zones(store);
    let first = add_new(store, ZONE_A, &[active(100), active(200)], "e-add");
    let second = merged(&first, &[active(100)], "first");
    commit(store, &merge_commit(&second, &[100], 1, "e-merge"), "merge");
    let restored = StoredRecord {
        revision: 3,
        updated_unix: second.updated_unix + 3600,
        ..first.clone()
    };
    let replace = |expected_revision: u64, record: &StoredRecord| Commit::Replace {
        expected_revision,
        record: record.clone(),
        replaced_by: "user:alice".to_owned(),
        reason: "restore of revision 1".to_owned(),
    };
    commit(
        store,
        &replace(2, &restored),
        "replace (restore revision 1)",
    );
    assert_eq!(record(store, ZONE_A, &first.mms_id), Some(restored.clone()));
    assert_eq!(
        versions(store, ZONE_A, &first.mms_id),
        vec![
            version_of(&first, second.updated_unix, "e-merge", "merge"),
            version_of(
                &second,
                restored.updated_unix,
                "user:alice",
                "restore of revision 1"
            ),
        ],
        "the replaced state is kept as a version"
    );
    assert_eq!(
        find(store, ZONE_A, &[200]),
        vec![entry(200, &first.mms_id, true)],
        "the restored record's numbers are indexed again"
    );
    fails(
        store.commit(&replace(2, &restored)),
        "replace from a revision that is no longer current",
        "Conflict",
        is_conflict,
    );
    assert_eq!(versions(store, ZONE_A, &first.mms_id).len(), 2);
    assert_eq!(record(store, ZONE_A, &first.mms_id), Some(restored));
    let missing = sample_record(ZONE_A, &MmsId::new(9_999_999, ZONE_A_CODE), &[active(1)]);
    fails(
        store.commit(&replace(1, &missing)),
        "replace of a record that does not exist",
        "an error",
        any_error,
    );
    assert_eq!(count(store, ZONE_A), 1);
}

fn check_locks(store: &dyn Store) {
    setup_zones(store);
    let mms_id = MmsId::new(1_000_000, ZONE_A_CODE);
    assert_eq!(ok(store.lock(ZONE_A, &mms_id), "lock()"), None);
    let open = EditorLock {
        zone: ZONE_A.to_owned(),
        mms_id: mms_id.clone(),
        institution: ZONE_A.to_owned(),
        user: "alice".to_owned(),
        since_unix: 1_700_000_000,
        left_unix: None,
    };
    ok(store.put_lock(&open), "put_lock");
    assert_eq!(
        ok(store.lock(ZONE_A, &mms_id), "lock()"),
        Some(open.clone())
    );
    assert_eq!(
        ok(store.lock(ZONE_B, &mms_id), "lock() in another zone"),
        None
    );
    let left = EditorLock {
        left_unix: Some(1_700_000_600),
        ..open
    };
    ok(store.put_lock(&left), "put_lock (replace)");
    assert_eq!(ok(store.lock(ZONE_A, &mms_id), "lock()"), Some(left));
    assert!(ok(store.release_lock(ZONE_A, &mms_id), "release_lock"));
    assert!(
        !ok(store.release_lock(ZONE_A, &mms_id), "release_lock again"),
        "releasing a missing lock returns false"
    );
    assert_eq!(ok(store.lock(ZONE_A, &mms_id), "lock()"), None);
}

fn check_lookup(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(
        ok(store.lookup(ZONE_A, &[]), "lookup of no numbers"),
        Lookup::default()
    );
    let first = add_new(store, ZONE_A, &[active(500), cancelled(501)], "e-lookup-1").mms_id;
    let second = add_new(store, ZONE_A, &[active(502)], "e-lookup-2").mms_id;
    add_new(store, ZONE_B, &[active(500)], "e-lookup-other-zone");
    let lock = EditorLock {
        zone: ZONE_A.to_owned(),
        mms_id: second.clone(),
        institution: ZONE_A.to_owned(),
        user: "bob".to_owned(),
        since_unix: 1_700_000_000,
        left_unix: None,
    };
    ok(store.put_lock(&lock), "put_lock");
    let found = ok(store.lookup(ZONE_A, &[501, 502, 999]), "lookup");
    let mut named: Vec<(u64, MmsId, bool)> = found
        .entries
        .iter()
        .map(|e| (e.number, e.mms_id.clone(), e.active))
        .collect();
    named.sort();
    assert_eq!(
        named,
        vec![(501, first.clone(), false), (502, second.clone(), true)],
        "lookup returns the entries of the numbers asked for, in this zone only"
    );
    let mut ids: Vec<&MmsId> = found.records.iter().map(|r| &r.mms_id).collect();
    ids.sort();
    let mut expected = vec![&first, &second];
    expected.sort();
    assert_eq!(
        ids, expected,
        "lookup returns every record the entries name"
    );
    assert_eq!(
        found.locks,
        vec![lock],
        "lookup returns those records' locks"
    );
}

fn check_lookup_many(store: &dyn Store) {
    setup_zones(store);
    assert!(
        ok(store.lookup_many(ZONE_A, &[]), "lookup_many of no sets").is_empty(),
        "no sets, no lookups"
    );
    let first = add_new(store, ZONE_A, &[active(600), cancelled(601)], "e-many-1").mms_id;
    let second = add_new(store, ZONE_A, &[active(602)], "e-many-2").mms_id;
    add_new(store, ZONE_B, &[active(603)], "e-many-other-zone");
    let lock = EditorLock {
        zone: ZONE_A.to_owned(),
        mms_id: first.clone(),
        institution: ZONE_A.to_owned(),
        user: "carol".to_owned(),
        since_unix: 1_700_000_000,
        left_unix: Some(1_700_000_100),
    };
    ok(store.put_lock(&lock), "put_lock");
    let sets: [&[u64]; 5] = [&[601], &[], &[603, 999], &[600, 602], &[602]];
    let many = ok(store.lookup_many(ZONE_A, &sets), "lookup_many");
    assert_eq!(many.len(), sets.len(), "one lookup per set, in order");
    for (set, got) in sets.iter().zip(&many) {
        let mut single = ok(store.lookup(ZONE_A, set), "lookup");
        let mut got = got.clone();
        for lookup in [&mut single, &mut got] {
            lookup.entries.sort();
            lookup.records.sort_by(|a, b| a.mms_id.cmp(&b.mms_id));
        }
        assert_eq!(got, single, "lookup_many({set:?}) is lookup({set:?})");
    }
    assert_eq!(
        many[3].records.len(),
        2,
        "a set that names two records finds both"
    );
    assert_eq!(many[0].locks, vec![lock], "locks come with the records");
    assert!(
        many[2].entries.is_empty(),
        "numbers of another zone are not found"
    );
    let named: Vec<&MmsId> = many[4].records.iter().map(|r| &r.mms_id).collect();
    assert_eq!(named, vec![&second], "each set finds its own record");
}

fn check_commit_batch(store: &dyn Store) {
    setup_zones(store);
    assert!(
        ok(store.commit_batch(&[]), "commit_batch(empty)").is_empty(),
        "an empty batch has no results"
    );
    let existing = add_new(store, ZONE_A, &[active(100)], "e-existing");
    let id_1 = allocate(store, ZONE_A);
    let id_2 = allocate(store, ZONE_A);
    let id_4 = allocate(store, ZONE_A);
    let record_1 = sample_record(ZONE_A, &id_1, &[active(200)]);
    let merged_existing = merged(&existing, &[active(100), active(600)], "batch");
    let commits = vec![
        add_commit(&record_1, &[], "e1"),
        add_commit(&sample_record(ZONE_A, &id_2, &[active(100)]), &[], "e2"),
        reject_commit(sample_result("e3")),
        reject_commit(sample_result("e1")),
        // Sees the add of record 1 earlier in the batch.
        add_commit(&sample_record(ZONE_A, &id_4, &[active(200)]), &[], "e4"),
        merge_commit(&merged_existing, &[100], 1, "e5"),
    ];
    let outcomes = ok(store.commit_batch(&commits), "commit_batch");
    assert_eq!(outcomes.len(), commits.len(), "one outcome per commit");
    let expected: [(&str, ErrorTest); 6] = [
        ("Ok", |_| false),
        ("Conflict", is_conflict),
        ("Ok", |_| false),
        ("AlreadyExists", is_already_exists),
        ("Conflict", is_conflict),
        ("Ok", |_| false),
    ];
    for (commit_idx, (outcome, (name, is_expected))) in
        outcomes.into_iter().zip(expected).enumerate()
    {
        match (name, outcome) {
            ("Ok", Ok(())) => {}
            ("Ok", Err(err)) => panic!("batch commit {commit_idx}: expected Ok, got {err}"),
            (_, outcome) => fails(
                outcome,
                &format!("batch commit {commit_idx}"),
                name,
                is_expected,
            ),
        }
    }
    assert_eq!(record(store, ZONE_A, &id_1), Some(record_1));
    assert_eq!(record(store, ZONE_A, &id_2), None);
    assert_eq!(record(store, ZONE_A, &id_4), None);
    assert_eq!(
        record(store, ZONE_A, &existing.mms_id),
        Some(merged_existing)
    );
    assert_eq!(find(store, ZONE_A, &[200]), vec![entry(200, &id_1, true)]);
    assert_eq!(
        find(store, ZONE_A, &[100]),
        vec![entry(100, &existing.mms_id, true)]
    );
    assert_eq!(
        stored_result(store, "e1").as_ref(),
        Some(result_of(&commits[0])),
        "the add's result stays, not the duplicate reject's"
    );
    assert_eq!(stored_result(store, "e2"), None);
    assert_eq!(
        stored_result(store, "e3").as_ref(),
        Some(result_of(&commits[2]))
    );
    assert_eq!(stored_result(store, "e4"), None);
    assert!(stored_result(store, "e5").is_some());
    assert_eq!(count(store, ZONE_A), 2);
}

fn check_zones_are_separate(store: &dyn Store) {
    setup_zones(store);
    let in_a = add_new(store, ZONE_A, &[active(100)], "e-a");
    assert_eq!(find(store, ZONE_B, &[100]), Vec::new());
    assert_eq!(record(store, ZONE_B, &in_a.mms_id), None);
    assert_eq!(count(store, ZONE_B), 0);
    assert_eq!(versions(store, ZONE_B, &in_a.mms_id), Vec::new());
    // The same number is new in zone B.
    let in_b = add_new(store, ZONE_B, &[active(100)], "e-b");
    assert_eq!(
        find(store, ZONE_A, &[100]),
        vec![entry(100, &in_a.mms_id, true)]
    );
    assert_eq!(
        find(store, ZONE_B, &[100]),
        vec![entry(100, &in_b.mms_id, true)]
    );
    assert_eq!(count(store, ZONE_A), 1);
    assert_eq!(count(store, ZONE_B), 1);
    // A merge in zone B leaves zone A alone.
    let new_b = merged(&in_b, &[active(101)], "b");
    commit(
        store,
        &merge_commit(&new_b, &[100], 1, "e-b-merge"),
        "merge in zone B",
    );
    assert_eq!(
        find(store, ZONE_A, &[100]),
        vec![entry(100, &in_a.mms_id, true)]
    );
    assert_eq!(record(store, ZONE_A, &in_a.mms_id), Some(in_a));
}

fn blob_get(store: &dyn BlobStore, key: &str) -> Option<Vec<u8>> {
    ok(store.get(key), &format!("get({key:?})"))
}

fn check_blob_basics(store: &dyn BlobStore) {
    let key = "inbox/01DEMO_ALPHA/export-1.mrc";
    assert_eq!(blob_get(store, key), None, "a missing key reads as None");
    ok(store.put(key, b"first\x00\xff"), "put");
    assert_eq!(blob_get(store, key), Some(b"first\x00\xff".to_vec()));
    ok(store.put(key, b"second"), "put (replace)");
    assert_eq!(
        blob_get(store, key),
        Some(b"second".to_vec()),
        "put replaces"
    );
    ok(store.put("empty", b""), "put(empty)");
    assert_eq!(blob_get(store, "empty"), Some(Vec::new()));
    assert!(ok(store.delete(key), "delete"));
    assert_eq!(blob_get(store, key), None, "a deleted key reads as None");
    assert!(
        !ok(store.delete(key), "delete again"),
        "deleting a missing key returns false"
    );
    assert_eq!(blob_get(store, "empty"), Some(Vec::new()));
}

fn check_blob_put_if_absent(store: &dyn BlobStore) {
    let key = "results/batch-1.json";
    assert!(ok(store.put_if_absent(key, b"one"), "put_if_absent"));
    assert!(
        !ok(store.put_if_absent(key, b"two"), "put_if_absent again"),
        "put_if_absent of a taken key returns false"
    );
    assert_eq!(
        blob_get(store, key),
        Some(b"one".to_vec()),
        "put_if_absent of a taken key keeps the bytes"
    );
    assert!(ok(store.delete(key), "delete"));
    assert!(ok(
        store.put_if_absent(key, b"three"),
        "put_if_absent after delete"
    ));
    assert_eq!(blob_get(store, key), Some(b"three".to_vec()));
}

fn check_blob_put_if_absent_concurrently(store: &dyn BlobStore) {
    let key = "claims/one";
    let n_threads = 8;
    let barrier = Barrier::new(n_threads);
    let winners: Vec<Vec<u8>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..n_threads)
            .map(|thread_idx| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let bytes = format!("claimed by {thread_idx}").into_bytes();
                    barrier.wait();
                    ok(store.put_if_absent(key, &bytes), "concurrent put_if_absent")
                        .then_some(bytes)
                })
            })
            .collect();
        handles.into_iter().filter_map(join).collect()
    });
    assert_eq!(
        winners.len(),
        1,
        "{} of {n_threads} concurrent put_if_absent calls won",
        winners.len()
    );
    assert_eq!(blob_get(store, key), winners.into_iter().next());
}

fn check_blob_put_many(store: &dyn BlobStore) {
    assert!(store.put_many(&[]).is_empty(), "no blobs, no outcomes");
    ok(store.put("results/2.json", b"old"), "put");
    // (Which keys are refused differs by adapter; the folder store's tests cover a bad key
    // failing alone.)
    let outcomes = store.put_many(&[
        ("results/1.json", b"one"),
        ("results/2.json", b"two"),
        ("other/3.json", b""),
    ]);
    assert_eq!(outcomes.len(), 3, "one outcome per blob");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(blob_get(store, "results/1.json"), Some(b"one".to_vec()));
    assert_eq!(
        blob_get(store, "results/2.json"),
        Some(b"two".to_vec()),
        "put_many replaces"
    );
    assert_eq!(blob_get(store, "other/3.json"), Some(Vec::new()));
    assert_eq!(
        ok(store.list("results/"), "list"),
        vec!["results/1.json".to_owned(), "results/2.json".to_owned()],
        "nothing else appears"
    );
}

fn check_blob_copy_if_absent_many(store: &dyn BlobStore) {
    assert!(
        store.copy_if_absent_many(&[]).is_empty(),
        "no pairs, no outcomes"
    );
    ok(store.put("inbox/a/1.mrc", b"one"), "put");
    ok(store.put("inbox/a/2.mrc", b"two"), "put");
    ok(store.put("inbox/b/3.mrc", b"three"), "put");
    ok(store.put("received/a/2.mrc", b"kept"), "put");
    let outcomes = store.copy_if_absent_many(&[
        ("inbox/a/1.mrc", "received/a/1.mrc"),
        ("inbox/a/2.mrc", "received/a/2.mrc"),
        ("inbox/a/missing.mrc", "received/a/missing.mrc"),
        ("inbox/b/3.mrc", "received/b/3.mrc"),
    ]);
    assert_eq!(outcomes.len(), 4, "one outcome per pair");
    assert_eq!(
        outcomes[0].as_ref().ok(),
        Some(&true),
        "a free target is copied"
    );
    assert_eq!(
        outcomes[1].as_ref().ok(),
        Some(&false),
        "an existing target is kept"
    );
    assert!(
        matches!(outcomes[2], Err(Error::NotFound(_))),
        "a missing source is NotFound: {:?}",
        outcomes[2]
    );
    assert_eq!(
        outcomes[3].as_ref().ok(),
        Some(&true),
        "pairs in other folders too"
    );
    assert_eq!(blob_get(store, "received/a/1.mrc"), Some(b"one".to_vec()));
    assert_eq!(blob_get(store, "received/a/2.mrc"), Some(b"kept".to_vec()));
    assert_eq!(blob_get(store, "received/b/3.mrc"), Some(b"three".to_vec()));
    assert_eq!(blob_get(store, "received/a/missing.mrc"), None);
    // The copy is independent of its source.
    ok(store.delete("inbox/a/1.mrc"), "delete");
    ok(store.put("inbox/b/3.mrc", b"replaced"), "put");
    assert_eq!(blob_get(store, "received/a/1.mrc"), Some(b"one".to_vec()));
    assert_eq!(blob_get(store, "received/b/3.mrc"), Some(b"three".to_vec()));
}

fn check_blob_list(store: &dyn BlobStore) {
    assert_eq!(ok(store.list(""), "list(\"\")"), Vec::<String>::new());
    let keys = [
        "inbox/01DEMO_ALPHA/b.mrc",
        "results/x.json",
        "inbox/01DEMO_ALPHA/a.mrc",
        "inbox/01DEMO_BETA/c.mrc",
        "inbox/01DEMO_ALPHA/sub/d.mrc",
        "inbox/01DEMO_ALPHA-old.mrc",
    ];
    for key in keys {
        ok(store.put(key, key.as_bytes()), &format!("put({key:?})"));
    }
    let list = |prefix: &str| ok(store.list(prefix), &format!("list({prefix:?})"));
    assert_eq!(
        list("inbox/01DEMO_ALPHA/"),
        vec![
            "inbox/01DEMO_ALPHA/a.mrc",
            "inbox/01DEMO_ALPHA/b.mrc",
            "inbox/01DEMO_ALPHA/sub/d.mrc",
        ],
        "list() returns the keys under the prefix, nested ones too, in lexical order"
    );
    assert_eq!(
        list("inbox/01DEMO"),
        vec![
            "inbox/01DEMO_ALPHA-old.mrc",
            "inbox/01DEMO_ALPHA/a.mrc",
            "inbox/01DEMO_ALPHA/b.mrc",
            "inbox/01DEMO_ALPHA/sub/d.mrc",
            "inbox/01DEMO_BETA/c.mrc",
        ],
        "a prefix need not end at a `/`"
    );
    let mut all: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    all.sort();
    assert_eq!(list(""), all, "list(\"\") returns every key");
    assert_eq!(list("nothing/"), Vec::<String>::new());
    assert_eq!(list("results/x.json"), vec!["results/x.json"]);
    assert!(ok(store.delete("inbox/01DEMO_ALPHA/sub/d.mrc"), "delete"));
    assert_eq!(
        list("inbox/01DEMO_ALPHA/"),
        vec!["inbox/01DEMO_ALPHA/a.mrc", "inbox/01DEMO_ALPHA/b.mrc"],
        "a deleted key is not listed"
    );
}
