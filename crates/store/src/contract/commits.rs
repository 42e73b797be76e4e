//! Checks of commits: adds, merges, rejects, replaces and batches, their expectations, and
//! racing imports.

use std::sync::Barrier;
use std::thread;

use super::fixtures::{
    ZONE_A, ZONE_A_CODE, ZONE_B, active, add_commit, cancelled, merge_commit, reject_commit,
    sample_record, sample_result, setup_zones,
};
use super::support::{
    ErrorTest, add_new, allocate, any_error, commit, count, entry, fails, find, is_already_exists,
    is_conflict, join, merged, ok, record, result_of, sorted, stored_result, version_of, versions,
};
use crate::{Commit, ImportResult, MmsId, Replacement, Result, Store, StoredRecord};

pub(super) fn check_add_and_find(store: &dyn Store) {
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

pub(super) fn check_add_stale_expectation(store: &dyn Store) {
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

pub(super) fn check_add_existing_mms_id(store: &dyn Store) {
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

pub(super) fn check_add_race_two_threads(store: &dyn Store) {
    add_race(store, 2, 20);
}

pub(super) fn check_add_race_eight_threads(store: &dyn Store) {
    add_race(store, 8, 5);
}

pub(super) fn check_merge(store: &dyn Store) {
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

pub(super) fn check_merge_stale_revision(store: &dyn Store) {
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

pub(super) fn check_merge_stale_expectation(store: &dyn Store) {
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

pub(super) fn check_reject_and_batch_results(store: &dyn Store) {
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

pub(super) fn check_duplicate_export_id(store: &dyn Store) {
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

pub(super) fn check_replace(store: &dyn Store) {
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

pub(super) fn check_commit_batch(store: &dyn Store) {
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

pub(super) fn check_institution_results(store: &dyn Store) {
    setup_zones(store);
    let at =
        |export_id: &str, institution: &str, received_unix: i64, index: Option<u64>| ImportResult {
            institution: institution.to_owned(),
            received_unix,
            batch_id: index.map(|_| "b-report".to_owned()),
            index,
            retry_of: None,
            ..sample_result(export_id)
        };
    let results = [
        at("r-old", ZONE_A, 1_000, None),
        at("r-b#1", ZONE_A, 2_000, Some(1)),
        at("r-b#2", ZONE_A, 2_000, Some(2)),
        at("r-new", ZONE_A, 3_000, None),
        at("r-other", ZONE_B, 2_500, None),
        ImportResult {
            retry_of: Some("r-old".to_owned()),
            ..at("r-retry", ZONE_A, 2_500, None)
        },
    ];
    for result in &results {
        commit(
            store,
            &reject_commit(result.clone()),
            &format!("reject {}", result.export_id),
        );
    }
    let ids = |found: Vec<ImportResult>| -> Vec<String> {
        found.into_iter().map(|r| r.export_id).collect()
    };
    assert_eq!(
        ids(ok(
            store.institution_results(ZONE_A, 0, 100),
            "institution_results(all)"
        )),
        vec!["r-new", "r-retry", "r-b#2", "r-b#1", "r-old"],
        "institution_results() is newest first, later records of a batch first"
    );
    assert_eq!(
        ids(ok(
            store.institution_results(ZONE_A, 2_000, 100),
            "institution_results(since)"
        )),
        vec!["r-new", "r-retry", "r-b#2", "r-b#1"],
        "institution_results() keeps results received at or after `since`"
    );
    assert_eq!(
        ids(ok(
            store.institution_results(ZONE_A, 0, 2),
            "institution_results(limit)"
        )),
        vec!["r-new", "r-retry"],
        "institution_results() stops at the limit"
    );
    assert_eq!(
        ok(
            store.institution_results(ZONE_B, 0, 100),
            "institution_results(other)"
        ),
        vec![results[4].clone()],
        "institution_results() returns whole results of that institution only"
    );
    assert_eq!(
        ok(
            store.institution_results(ZONE_A, 2_500, 1),
            "institution_results(retry)"
        )
        .first()
        .map(|r| r.retry_of.clone()),
        Some(None),
    );
    assert_eq!(
        stored_result(store, "r-retry").and_then(|r| r.retry_of),
        Some("r-old".to_owned()),
        "a result keeps the export id it retries"
    );
    assert_eq!(
        ok(
            store.institution_results(ZONE_A, 3_001, 100),
            "institution_results(future)"
        ),
        Vec::new()
    );
}

pub(super) fn check_replace_many(store: &dyn Store) {
    setup_zones(store);
    // The usual multi-match: `keep` has 100 active; `from` has 200 active and 100 cancelled.
    let keep = add_new(store, ZONE_A, &[active(100)], "e-keep");
    let from_id = allocate(store, ZONE_A);
    let from = sample_record(ZONE_A, &from_id, &[active(200), cancelled(100)]);
    commit(
        store,
        &add_commit(&from, std::slice::from_ref(&keep.mms_id), "e-from"),
        "add a record sharing number 100",
    );
    let survivor = merged(&keep, &[active(100), cancelled(200)], "staff");
    let withdrawn = merged(&from, &[], "withdrawn");
    let replacement = |expected_revision: u64, record: &StoredRecord, reason: &str| Replacement {
        expected_revision,
        record: record.clone(),
        replaced_by: "user:alice".to_owned(),
        reason: reason.to_owned(),
    };
    let merge = Commit::ReplaceMany {
        replacements: vec![
            replacement(1, &survivor, "merge of another record"),
            replacement(1, &withdrawn, "merged into another record"),
        ],
    };

    // A stale revision of either record fails the whole commit.
    let stale = Commit::ReplaceMany {
        replacements: vec![
            replacement(1, &survivor, "merge of another record"),
            replacement(7, &withdrawn, "merged into another record"),
        ],
    };
    fails(
        store.commit(&stale),
        "replace_many with one stale revision",
        "Conflict",
        is_conflict,
    );
    assert_eq!(record(store, ZONE_A, &keep.mms_id), Some(keep.clone()));
    assert_eq!(versions(store, ZONE_A, &keep.mms_id), Vec::new());
    assert_eq!(
        find(store, ZONE_A, &[100, 200]),
        sorted(vec![
            entry(100, &keep.mms_id, true),
            entry(100, &from.mms_id, false),
            entry(200, &from.mms_id, true),
        ]),
        "a failed replace_many leaves the index as it was"
    );

    commit(store, &merge, "replace_many (a staff merge)");
    assert_eq!(record(store, ZONE_A, &keep.mms_id), Some(survivor.clone()));
    assert_eq!(record(store, ZONE_A, &from.mms_id), Some(withdrawn.clone()));
    assert_eq!(
        versions(store, ZONE_A, &from.mms_id),
        vec![version_of(
            &from,
            withdrawn.updated_unix,
            "user:alice",
            "merged into another record"
        )],
        "the withdrawn record's state is kept as a version"
    );
    assert_eq!(versions(store, ZONE_A, &keep.mms_id).len(), 1);
    assert_eq!(
        find(store, ZONE_A, &[100, 200]),
        vec![
            entry(100, &keep.mms_id, true),
            entry(200, &keep.mms_id, false),
        ],
        "the index follows both records in the same commit"
    );
    assert_eq!(
        ok(store.duplicates(ZONE_A), "duplicates"),
        Vec::new(),
        "no number is shared after the merge"
    );
    fails(
        store.commit(&merge),
        "the same replace_many again",
        "Conflict",
        is_conflict,
    );
}
