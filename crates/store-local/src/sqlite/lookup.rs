//! Reads of what a decision needs, on one connection: the index entries of some numbers,
//! records and locks, and [`lookup_in`] for a whole [`Lookup`] inside one read
//! transaction (one snapshot).

use bibgate_store::{EditorLock, IndexEntry, Lookup, MmsId, Result, StoredRecord};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{
    INDEX_COLUMNS, LOCK_COLUMNS, RECORD_COLUMNS, index_entry_from_row, lock_from_row,
    record_from_row,
};
use super::{backend, exec_cached, query_row_cached, to_sql_u64};

/// The index entries of `numbers` in `zone`, by number and MMS ID.
pub(super) fn query_index(
    conn: &Connection,
    zone: &str,
    numbers: &[u64],
) -> Result<Vec<IndexEntry>> {
    let sql_numbers = numbers
        .iter()
        .map(|&number| to_sql_u64(number, "oclc number"))
        .collect::<Result<Vec<i64>>>()?;
    let what = || format!("look up oclc numbers {numbers:?} in zone {zone:?}");
    // One statement, so one consistent snapshot for all the numbers.
    let placeholders = vec!["?"; sql_numbers.len()].join(", ");
    let sql = format!(
        "SELECT {INDEX_COLUMNS} FROM oclc_index \
         WHERE zone = ? AND number IN ({placeholders}) ORDER BY number, mms_id"
    );
    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(|err| backend(&what(), err))?;
    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(numbers.len() + 1);
    values.push(&zone);
    for number in &sql_numbers {
        values.push(number);
    }
    let rows = statement
        .query_map(values.as_slice(), index_entry_from_row)
        .map_err(|err| backend(&what(), err))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|err| backend(&what(), err))
}

/// Runs `f` in one deferred read transaction (one snapshot of the database).
pub(super) fn in_read_transaction<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    exec_cached(conn, "BEGIN DEFERRED", []).map_err(|err| backend("begin a read", err))?;
    let read = f();
    exec_cached(conn, "COMMIT", []).map_err(|err| backend("end a read", err))?;
    read
}

/// [`Store::lookup`](bibgate_store::Store::lookup) on a connection inside a read transaction.
pub(super) fn lookup_in(conn: &Connection, zone: &str, numbers: &[u64]) -> Result<Lookup> {
    if numbers.is_empty() {
        return Ok(Lookup::default());
    }
    let entries = query_index(conn, zone, numbers)?;
    let mut ids: Vec<&MmsId> = entries.iter().map(|e| &e.mms_id).collect();
    ids.sort();
    ids.dedup();
    let mut records = Vec::with_capacity(ids.len());
    let mut locks = Vec::new();
    for id in ids {
        if let Some(record) = query_record(conn, zone, id)? {
            records.push(record);
        }
        if let Some(lock) = query_lock(conn, zone, id)? {
            locks.push(lock);
        }
    }
    Ok(Lookup {
        entries,
        records,
        locks,
    })
}

/// A record's current state.
pub(super) fn query_record(
    conn: &Connection,
    zone: &str,
    mms_id: &MmsId,
) -> Result<Option<StoredRecord>> {
    query_row_cached(
        conn,
        &format!("SELECT {RECORD_COLUMNS} FROM records WHERE zone = ?1 AND mms_id = ?2"),
        params![zone, mms_id.as_str()],
        record_from_row,
    )
    .optional()
    .map_err(|err| {
        backend(
            &format!("read record {:?} in zone {zone:?}", mms_id.as_str()),
            err,
        )
    })
}

/// A record's lock, whether expired or not.
pub(super) fn query_lock(
    conn: &Connection,
    zone: &str,
    mms_id: &MmsId,
) -> Result<Option<EditorLock>> {
    query_row_cached(
        conn,
        &format!("SELECT {LOCK_COLUMNS} FROM locks WHERE zone = ?1 AND mms_id = ?2"),
        params![zone, mms_id.as_str()],
        lock_from_row,
    )
    .optional()
    .map_err(|err| {
        backend(
            &format!(
                "read the lock of record {:?} in zone {zone:?}",
                mms_id.as_str()
            ),
            err,
        )
    })
}
