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
//!   [`Error::NotFound`](crate::Error::NotFound) for a zone that is not a stored
//!   institution, and its serial numbers increase.
//! - A commit whose result's export id is already stored fails with
//!   [`Error::AlreadyExists`](crate::Error::AlreadyExists) and writes nothing; an Add of an
//!   existing MMS ID fails the same way.
//! - A failed commit (of any kind) writes nothing.
//! - In a batch, a commit sees the writes of the commits before it.

mod blobs;
mod commits;
mod fixtures;
mod locks;
mod lookups;
mod staff;
mod support;
mod zones;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::{BlobStore, Store};

pub use fixtures::{
    NETWORK, NETWORK_CODE, ZONE_A, ZONE_A_CODE, ZONE_B, ZONE_B_CODE, active, add_commit, cancelled,
    demo_institution, demo_institutions, demo_profile, merge_commit, reject_commit, sample_record,
    sample_result, setup_zones,
};

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

/// Runs every [`Store`] check, each against a fresh, empty store from `make`.
pub fn store_contract(make: &dyn Fn() -> Box<dyn Store>) {
    let checks: &[Check<dyn Store>] = &[
        ("institutions", zones::check_institutions),
        ("profiles", zones::check_profiles),
        ("allocate_mms_id", zones::check_allocate),
        ("allocate_unknown_zone", zones::check_allocate_unknown_zone),
        ("allocate_many", zones::check_allocate_many),
        (
            "allocate_not_reused_after_failed_commit",
            zones::check_allocate_not_reused,
        ),
        ("allocate_concurrently", zones::check_allocate_concurrently),
        ("add_and_find", commits::check_add_and_find),
        (
            "add_stale_expectation",
            commits::check_add_stale_expectation,
        ),
        ("add_existing_mms_id", commits::check_add_existing_mms_id),
        ("add_race_two_threads", commits::check_add_race_two_threads),
        (
            "add_race_eight_threads",
            commits::check_add_race_eight_threads,
        ),
        ("merge", commits::check_merge),
        ("merge_stale_revision", commits::check_merge_stale_revision),
        (
            "merge_stale_expectation",
            commits::check_merge_stale_expectation,
        ),
        (
            "reject_and_batch_results",
            commits::check_reject_and_batch_results,
        ),
        ("duplicate_export_id", commits::check_duplicate_export_id),
        ("replace", commits::check_replace),
        ("replace_many", commits::check_replace_many),
        ("list_records", lookups::check_list_records),
        ("find_by_term", lookups::check_find_by_term),
        ("locks", lookups::check_locks),
        ("zone_locks", locks::check_zone_locks),
        ("lookup", lookups::check_lookup),
        ("lookup_many", lookups::check_lookup_many),
        ("commit_batch", commits::check_commit_batch),
        ("zones_are_separate", lookups::check_zones_are_separate),
        ("duplicates", lookups::check_duplicates),
        ("institution_results", commits::check_institution_results),
        ("staff", staff::check_staff),
    ];
    run_checks("store", make, checks);
}

/// Runs every [`BlobStore`] check, each against a fresh, empty store from `make`.
pub fn blob_contract(make: &dyn Fn() -> Box<dyn BlobStore>) {
    let checks: &[Check<dyn BlobStore>] = &[
        ("put_get_replace_delete", blobs::check_blob_basics),
        ("put_if_absent", blobs::check_blob_put_if_absent),
        (
            "put_if_absent_concurrently",
            blobs::check_blob_put_if_absent_concurrently,
        ),
        ("list", blobs::check_blob_list),
        ("copy_if_absent_many", blobs::check_blob_copy_if_absent_many),
        ("put_many", blobs::check_blob_put_many),
        ("put_if_absent_many", blobs::check_blob_put_if_absent_many),
        ("get_many", blobs::check_blob_get_many),
        ("put_stream_and_open", blobs::check_blob_put_stream_and_open),
        ("get_range", blobs::check_blob_get_range),
        (
            "put_stream_if_absent",
            blobs::check_blob_put_stream_if_absent,
        ),
        ("delete_many", blobs::check_blob_delete_many),
    ];
    run_checks("blob store", make, checks);
}
