//! An import's writes: one commit applied inside an open write transaction, with its
//! expectation checked there, and a batch of commits each in its own savepoint.

use std::collections::BTreeSet;

use bibgate_store::{
    Commit, Error, Expectation, ImportResult, MmsId, Result, StoredRecord, encode_index_keys,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::rows::{RECORD_COLUMNS, RESULT_COLUMNS, encode_numbers, encode_trace, get_u64};
use super::{backend, exec_cached, query_row_cached, to_sql_u64};

/// The export id a commit stores a result under, if any.
fn commit_export_id(commit: &Commit) -> Option<&str> {
    match commit {
        Commit::Add { result, .. } | Commit::Merge { result, .. } | Commit::Reject { result } => {
            Some(&result.export_id)
        }
        Commit::Replace { .. } | Commit::ReplaceMany { .. } => None,
    }
}

/// Applies one commit inside an open transaction (or savepoint). On error the caller rolls
/// back.
pub(super) fn apply_commit(conn: &Connection, commit: &Commit) -> Result<()> {
    if let Some(export_id) = commit_export_id(commit) {
        let exists = query_row_cached(
            conn,
            "SELECT 1 FROM results WHERE export_id = ?1",
            [export_id],
            |_| Ok(()),
        )
        .optional()
        .map_err(|err| backend(&format!("look up result {export_id:?}"), err))?
        .is_some();
        if exists {
            return Err(Error::AlreadyExists(format!("result {export_id:?}")));
        }
    }
    match commit {
        Commit::Add {
            expect,
            record,
            result,
        } => {
            check_expectation(conn, &record.zone, expect)?;
            insert_record(conn, record)?;
            insert_index(conn, record)?;
            insert_result(conn, result)
        }
        Commit::Merge {
            expect,
            expected_revision,
            record,
            reason,
            result,
        } => {
            check_expectation(conn, &record.zone, expect)?;
            replace_record(conn, record, *expected_revision, &result.export_id, reason)?;
            insert_result(conn, result)
        }
        Commit::Reject { result } => insert_result(conn, result),
        Commit::Replace {
            expected_revision,
            record,
            replaced_by,
            reason,
        } => replace_record(conn, record, *expected_revision, replaced_by, reason),
        Commit::ReplaceMany { replacements } => {
            // Inside the caller's transaction (or savepoint): a failed replacement rolls
            // back the ones before it.
            for replacement in replacements {
                replace_record(
                    conn,
                    &replacement.record,
                    replacement.expected_revision,
                    &replacement.replaced_by,
                    &replacement.reason,
                )?;
            }
            Ok(())
        }
    }
}

/// Fails with a conflict unless the zone's index still holds exactly `expect.matched` for
/// `expect.numbers`.
fn check_expectation(conn: &Connection, zone: &str, expect: &Expectation) -> Result<()> {
    let mut found = BTreeSet::new();
    let mut statement = conn
        .prepare_cached("SELECT mms_id FROM oclc_index WHERE zone = ?1 AND number = ?2")
        .map_err(|err| backend("prepare the expectation check", err))?;
    for &number in &expect.numbers {
        let sql_number = to_sql_u64(number, "oclc number")?;
        let rows = statement
            .query_map(params![zone, sql_number], |row| row.get::<_, String>(0))
            .map_err(|err| {
                backend(
                    &format!("look up oclc number {number} in zone {zone:?}"),
                    err,
                )
            })?;
        for mms_id in rows {
            found.insert(MmsId(mms_id.map_err(|err| {
                backend(
                    &format!("read the index of oclc number {number} in zone {zone:?}"),
                    err,
                )
            })?));
        }
    }
    let expected: BTreeSet<MmsId> = expect.matched.iter().cloned().collect();
    if found != expected {
        let show =
            |ids: &BTreeSet<MmsId>| ids.iter().map(MmsId::as_str).collect::<Vec<_>>().join(", ");
        return Err(Error::Conflict(format!(
            "oclc numbers {:?} in zone {zone:?} now match [{}], not [{}]",
            expect.numbers,
            show(&found),
            show(&expected)
        )));
    }
    Ok(())
}

fn insert_record(conn: &Connection, record: &StoredRecord) -> Result<()> {
    let what = format!(
        "insert record {:?} in zone {:?}",
        record.mms_id.as_str(),
        record.zone
    );
    let exists = query_row_cached(
        conn,
        "SELECT 1 FROM records WHERE zone = ?1 AND mms_id = ?2",
        params![record.zone, record.mms_id.as_str()],
        |_| Ok(()),
    )
    .optional()
    .map_err(|err| backend(&what, err))?
    .is_some();
    if exists {
        return Err(Error::AlreadyExists(format!(
            "record {:?} in zone {:?}",
            record.mms_id.as_str(),
            record.zone
        )));
    }
    exec_cached(
        conn,
        &format!(
            "INSERT INTO records ({RECORD_COLUMNS}) VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            record.zone,
            record.mms_id.as_str(),
            record.marc,
            record.originating_version,
            record.brief_level,
            record.linked_to_community_zone,
            record.created_unix,
            record.updated_unix,
            encode_index_keys(&record.keys),
        ],
    )
    .map_err(|err| backend(&what, err))?;
    insert_terms(conn, &record.zone, record.mms_id.as_str(), &record.marc)
}

/// Adds a record's search terms (`bibgate_store::search::record_terms` of its MARC).
pub(super) fn insert_terms(conn: &Connection, zone: &str, mms_id: &str, marc: &[u8]) -> Result<()> {
    let mut statement = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO record_terms (zone, term, mms_id) VALUES (?1, ?2, ?3)",
        )
        .map_err(|err| backend("prepare the search term insert", err))?;
    for term in bibgate_store::search::record_terms(marc) {
        statement
            .execute(params![zone, term, mms_id])
            .map_err(|err| {
                backend(
                    &format!("index {term:?} for record {mms_id:?} in zone {zone:?}"),
                    err,
                )
            })?;
    }
    Ok(())
}

/// Adds the record's keys to the index (a number both active and cancelled counts as
/// active).
fn insert_index(conn: &Connection, record: &StoredRecord) -> Result<()> {
    let mut statement = conn
        .prepare_cached(
            "INSERT INTO oclc_index (zone, number, mms_id, active) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (zone, number, mms_id) DO UPDATE SET active = max(active, excluded.active)",
        )
        .map_err(|err| backend("prepare the index insert", err))?;
    for key in &record.keys {
        let number = to_sql_u64(key.number, "oclc number")?;
        statement
            .execute(params![
                record.zone,
                number,
                record.mms_id.as_str(),
                key.active
            ])
            .map_err(|err| {
                backend(
                    &format!(
                        "index oclc number {} for record {:?} in zone {:?}",
                        key.number,
                        record.mms_id.as_str(),
                        record.zone
                    ),
                    err,
                )
            })?;
    }
    Ok(())
}

/// Keeps the current state as a version and makes `record` current (Merge and Replace).
fn replace_record(
    conn: &Connection,
    record: &StoredRecord,
    expected_revision: u64,
    replaced_by: &str,
    reason: &str,
) -> Result<()> {
    let zone = record.zone.as_str();
    let mms_id = record.mms_id.as_str();
    let what = format!("replace record {mms_id:?} in zone {zone:?}");
    let stored: Option<(u64, String)> = query_row_cached(
        conn,
        "SELECT revision, keys FROM records WHERE zone = ?1 AND mms_id = ?2",
        params![zone, mms_id],
        |row| Ok((get_u64(row, 0)?, row.get(1)?)),
    )
    .optional()
    .map_err(|err| backend(&what, err))?;
    let Some((stored, stored_keys)) = stored else {
        return Err(Error::NotFound(format!(
            "record {mms_id:?} in zone {zone:?}"
        )));
    };
    if stored != expected_revision {
        return Err(Error::Conflict(format!(
            "record {mms_id:?} in zone {zone:?} is at revision {stored}, not {expected_revision}"
        )));
    }
    let new_revision = expected_revision
        .checked_add(1)
        .ok_or_else(|| Error::Backend(format!("could not {what}: revision overflow")))?;
    let new_revision = to_sql_u64(new_revision, "revision")?;
    exec_cached(
        conn,
        "INSERT INTO versions (zone, mms_id, revision, marc, originating_version, brief_level, \
         saved_unix, replaced_unix, replaced_by, reason) \
         SELECT zone, mms_id, revision, marc, originating_version, brief_level, updated_unix, \
         ?3, ?4, ?5 FROM records WHERE zone = ?1 AND mms_id = ?2",
        params![zone, mms_id, record.updated_unix, replaced_by, reason],
    )
    .map_err(|err| backend(&format!("keep the prior version: {what}"), err))?;
    exec_cached(
        conn,
        "UPDATE records SET marc = ?3, revision = ?4, originating_version = ?5, \
         brief_level = ?6, cz = ?7, updated_unix = ?8, keys = ?9 \
         WHERE zone = ?1 AND mms_id = ?2",
        params![
            zone,
            mms_id,
            record.marc,
            new_revision,
            record.originating_version,
            record.brief_level,
            record.linked_to_community_zone,
            record.updated_unix,
            encode_index_keys(&record.keys),
        ],
    )
    .map_err(|err| backend(&what, err))?;
    exec_cached(
        conn,
        "DELETE FROM record_terms WHERE zone = ?1 AND mms_id = ?2",
        params![zone, mms_id],
    )
    .map_err(|err| backend(&format!("clear the search terms: {what}"), err))?;
    insert_terms(conn, zone, mms_id, &record.marc)?;
    if stored_keys == encode_index_keys(&record.keys) {
        // The usual merge: the same OCLC numbers before and after; the index stands.
        return Ok(());
    }
    exec_cached(
        conn,
        "DELETE FROM oclc_index WHERE zone = ?1 AND mms_id = ?2",
        params![zone, mms_id],
    )
    .map_err(|err| backend(&format!("clear the index entries: {what}"), err))?;
    insert_index(conn, record)
}

fn insert_result(conn: &Connection, result: &ImportResult) -> Result<()> {
    let what = format!("store result {:?}", result.export_id);
    let index = result
        .index
        .map(|index| to_sql_u64(index, "result index"))
        .transpose()?;
    exec_cached(
        conn,
        &format!(
            "INSERT INTO results ({RESULT_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ),
        params![
            result.export_id,
            result.batch_id,
            index,
            result.institution,
            result.zone,
            result.outcome.as_str(),
            result.host_message,
            result.reason_code,
            result.mms_id.as_ref().map(MmsId::as_str),
            encode_numbers(&result.oclc_numbers),
            result.raw_key,
            to_sql_u64(result.raw_offset, "raw offset")?,
            to_sql_u64(result.raw_len, "raw length")?,
            result.received_unix,
            result.decided_unix,
            encode_trace(&result.trace),
            result.policy,
            result.retry_of,
        ],
    )
    .map_err(|err| backend(&what, err))?;
    Ok(())
}

/// Applies each commit of a batch inside the open transaction `tx`, each in its own
/// savepoint: a commit that fails is rolled back alone and its error is its outcome.
/// Outcomes are in input order; an error here (a savepoint that could not be opened,
/// released or rolled back) leaves the batch's state unknown, and the caller abandons the
/// transaction.
pub(super) fn apply_batch(tx: &Transaction<'_>, commits: &[Commit]) -> Result<Vec<Result<()>>> {
    let mut outcomes = Vec::with_capacity(commits.len());
    for (commit_idx, commit) in commits.iter().enumerate() {
        // Savepoints by hand through the statement cache: rusqlite's own re-parse their
        // SQL for every commit of the batch.
        exec_cached(tx, "SAVEPOINT bibgate_commit", []).map_err(|err| {
            backend(
                &format!("open a savepoint for commit {commit_idx} of a batch"),
                err,
            )
        })?;
        match apply_commit(tx, commit) {
            Ok(()) => {
                exec_cached(tx, "RELEASE bibgate_commit", []).map_err(|err| {
                    backend(&format!("release commit {commit_idx} of a batch"), err)
                })?;
                outcomes.push(Ok(()));
            }
            Err(err) => {
                // A failure to roll back would leave the batch's state unknown: the
                // whole transaction is then abandoned (rolled back on drop).
                exec_cached(tx, "ROLLBACK TO bibgate_commit", [])
                    .and_then(|_| exec_cached(tx, "RELEASE bibgate_commit", []))
                    .map_err(|rollback_err| {
                        backend(
                            &format!("roll back commit {commit_idx} of a batch"),
                            rollback_err,
                        )
                    })?;
                outcomes.push(Err(err));
            }
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use bibgate_store::{Commit, Error, Expectation, Store};

    use crate::SqliteStore;

    /// A commit that fails after some of its writes (here: an OCLC number too large for
    /// SQLite, refused after the record row was inserted) leaves nothing behind, alone or
    /// in a batch.
    #[test]
    fn a_commit_failing_midway_rolls_back_alone() {
        use bibgate_store::contract::{self, ZONE_A};
        let store = SqliteStore::in_memory().unwrap();
        contract::setup_zones(&store);
        let bad_id = store.allocate_mms_id(ZONE_A).unwrap();
        let bad = contract::sample_record(
            ZONE_A,
            &bad_id,
            &[contract::active(7), contract::active(u64::MAX)],
        );
        let bad_add = contract::add_commit(&bad, &[], "e-bad");
        let bad_add = match bad_add {
            Commit::Add { record, result, .. } => Commit::Add {
                expect: Expectation::default(),
                record,
                result,
            },
            other => other,
        };
        let err = store.commit(&bad_add).unwrap_err();
        assert!(matches!(err, Error::Backend(_)), "{err}");
        assert_eq!(store.record(ZONE_A, &bad_id).unwrap(), None);

        let good_id = store.allocate_mms_id(ZONE_A).unwrap();
        let good = contract::sample_record(ZONE_A, &good_id, &[contract::active(8)]);
        let outcomes = store
            .commit_batch(&[bad_add, contract::add_commit(&good, &[], "e-good")])
            .unwrap();
        assert!(
            matches!(outcomes[0], Err(Error::Backend(_))),
            "{outcomes:?}"
        );
        assert!(outcomes[1].is_ok(), "{outcomes:?}");
        assert_eq!(store.record(ZONE_A, &bad_id).unwrap(), None);
        assert!(store.find_by_oclc(ZONE_A, &[7]).unwrap().is_empty());
        assert!(store.result("e-bad").unwrap().is_none());
        assert_eq!(store.count_records(ZONE_A).unwrap(), 1);
    }
}
