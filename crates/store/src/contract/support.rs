//! What the checks share: reading a port's answers (a panic naming the call when it
//! fails) and small builders of expected values.

use std::panic::resume_unwind;
use std::thread;

use super::fixtures::{add_commit, sample_record};
use crate::{
    Commit, Error, ImportResult, IndexEntry, IndexKey, MmsId, RecordVersion, Result, Store,
    StoredRecord,
};

/// The value of `result`, or a panic saying what failed.
pub(super) fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected error: {err}"),
    }
}

/// Panics unless `result` is the error `is_expected` accepts.
pub(super) fn fails<T: std::fmt::Debug>(
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

pub(super) fn is_conflict(err: &Error) -> bool {
    matches!(err, Error::Conflict(_))
}

pub(super) fn is_already_exists(err: &Error) -> bool {
    matches!(err, Error::AlreadyExists(_))
}

pub(super) fn is_not_found(err: &Error) -> bool {
    matches!(err, Error::NotFound(_))
}

pub(super) fn any_error(_: &Error) -> bool {
    true
}

/// Accepts the expected kind of error.
pub(super) type ErrorTest = fn(&Error) -> bool;
/// Joins a scoped thread, passing its panic on.
pub(super) fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}
pub(super) fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

pub(super) fn find(store: &dyn Store, zone: &str, numbers: &[u64]) -> Vec<IndexEntry> {
    sorted(ok(
        store.find_by_oclc(zone, numbers),
        &format!("find_by_oclc({zone:?}, {numbers:?})"),
    ))
}

pub(super) fn entry(number: u64, mms_id: &MmsId, active: bool) -> IndexEntry {
    IndexEntry {
        number,
        mms_id: mms_id.clone(),
        active,
    }
}

pub(super) fn allocate(store: &dyn Store, zone: &str) -> MmsId {
    ok(
        store.allocate_mms_id(zone),
        &format!("allocate_mms_id({zone:?})"),
    )
}

pub(super) fn commit(store: &dyn Store, commit: &Commit, what: &str) {
    ok(store.commit(commit), what);
}

pub(super) fn record(store: &dyn Store, zone: &str, mms_id: &MmsId) -> Option<StoredRecord> {
    ok(
        store.record(zone, mms_id),
        &format!("record({zone:?}, {mms_id})"),
    )
}

pub(super) fn versions(store: &dyn Store, zone: &str, mms_id: &MmsId) -> Vec<RecordVersion> {
    ok(
        store.versions(zone, mms_id),
        &format!("versions({zone:?}, {mms_id})"),
    )
}

pub(super) fn count(store: &dyn Store, zone: &str) -> u64 {
    ok(
        store.count_records(zone),
        &format!("count_records({zone:?})"),
    )
}

pub(super) fn stored_result(store: &dyn Store, export_id: &str) -> Option<ImportResult> {
    ok(store.result(export_id), &format!("result({export_id:?})"))
}

/// The result a commit carries.
pub(super) fn result_of(commit: &Commit) -> &ImportResult {
    match commit {
        Commit::Add { result, .. } | Commit::Merge { result, .. } | Commit::Reject { result } => {
            result
        }
        Commit::Replace { .. } | Commit::ReplaceMany { .. } => {
            panic!("a replace commit has no result")
        }
    }
}

/// Adds a new record with `keys` to `zone` (expecting nothing matched) and returns it.
pub(super) fn add_new(
    store: &dyn Store,
    zone: &str,
    keys: &[IndexKey],
    export_id: &str,
) -> StoredRecord {
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
pub(super) fn version_of(
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
pub(super) fn merged(record: &StoredRecord, keys: &[IndexKey], label: &str) -> StoredRecord {
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
