//! The [`Store`] port on SQLite.
//!
//! By concern: [`pool`] (the writer and the pooled readers), [`schema`] (every migration),
//! [`rows`] (rows ↔ domain types), [`commit`] (an import's writes, one commit or a batch)
//! and [`lookup`] (what a decision reads, from one snapshot). This module holds the
//! [`SqliteStore`] and its [`Store`] impl, which composes them.

mod commit;
mod lookup;
mod maintenance;
mod pool;
mod rows;
mod schema;

use std::path::Path;

use bibgate_store::{
    Commit, EditorLock, Error, ImportResult, IndexEntry, Institution, Lookup, MmsId, Profile,
    RecordVersion, Result, StaffAccount, Store, StoredRecord,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use commit::{apply_batch, apply_commit};
use lookup::{in_read_transaction, lookup_in, query_index, query_lock, query_record};
pub use maintenance::Check;
use pool::Pool;
use rows::{
    INSTITUTION_COLUMNS, LOCK_COLUMNS, PROFILE_COLUMNS, RESULT_COLUMNS, VERSION_COLUMNS, get_u16,
    get_u64, institution_from_row, lock_from_row, profile_from_row, result_from_row,
    version_from_row,
};

/// The first serial number of a zone's MMS IDs.
const FIRST_SERIAL: i64 = 1_000_000;

/// The [`Store`] port on one SQLite database (see the crate docs for schema, durability
/// and concurrency).
pub struct SqliteStore {
    /// The writer and the readers.
    pool: Pool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.pool.path())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// The folder must exist. The database runs in WAL mode with `synchronous=FULL`, so
    /// every write is on disk when it returns: a result reported to a sender survives a
    /// crash. Another store (or process) may open the same file; writes are serialised by
    /// SQLite's write lock, waiting up to 5 s for it.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        let mut writer = pool::open_writer(path, &shown)?;
        schema::migrate(&mut writer, &shown)?;
        Ok(SqliteStore {
            pool: Pool::new(Some(path.to_path_buf()), writer),
        })
    }

    /// A fresh, empty database in memory, on a single connection; gone when dropped.
    pub fn in_memory() -> Result<SqliteStore> {
        let shown = ":memory:";
        let mut writer = pool::open_in_memory(shown)?;
        schema::migrate(&mut writer, shown)?;
        Ok(SqliteStore {
            pool: Pool::new(None, writer),
        })
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.pool.path()
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits when it returns Ok.
    pub(crate) fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.pool.write(what, f)
    }

    /// Runs a read on a pooled reader connection (the writer, in memory).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.pool.read(f)
    }
}

/// Maps a rusqlite error to the port's error, saying what was attempted.
pub(crate) fn backend(what: &str, err: rusqlite::Error) -> Error {
    match err {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => {
            Error::Corrupt(format!("could not {what}: {err}"))
        }
        _ => Error::Backend(format!("could not {what}: {err}")),
    }
}

pub(crate) fn to_sql_u64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| Error::Backend(format!("could not store {what} {value}: it is too large")))
}

/// Takes the next `count` serials of a zone (in an open write transaction).
fn allocate_serials(conn: &Connection, zone: &str, count: usize, what: &str) -> Result<Vec<MmsId>> {
    let numeric_code: Option<u16> = query_row_cached(
        conn,
        "SELECT numeric_code FROM institutions WHERE code = ?1",
        [zone],
        |row| get_u16(row, 0),
    )
    .optional()
    .map_err(|err| backend(what, err))?;
    let Some(numeric_code) = numeric_code else {
        return Err(Error::NotFound(format!("zone {zone:?}")));
    };
    let sql_count = i64::try_from(count)
        .map_err(|_| Error::Backend(format!("could not {what}: too many at once")))?;
    exec_cached(
        conn,
        "INSERT INTO counters (zone, next_serial) VALUES (?1, ?2) ON CONFLICT (zone) DO NOTHING",
        params![zone, FIRST_SERIAL],
    )
    .map_err(|err| backend(what, err))?;
    let first = query_row_cached(
        conn,
        "UPDATE counters SET next_serial = next_serial + ?2 WHERE zone = ?1 \
             RETURNING next_serial - ?2",
        params![zone, sql_count],
        |row| get_u64(row, 0),
    )
    .map_err(|err| backend(what, err))?;
    (0..count as u64)
        .map(|offset| {
            first
                .checked_add(offset)
                .map(|serial| MmsId::new(serial, numeric_code))
                .ok_or_else(|| Error::Backend(format!("could not {what}: serials overflow")))
        })
        .collect()
}

impl Store for SqliteStore {
    fn put_institution(&self, institution: &Institution) -> Result<()> {
        let what = format!("store institution {:?}", institution.code);
        self.write(&what, |tx| {
            exec_cached(
                tx,
                &format!(
                    "INSERT INTO institutions ({INSTITUTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
                     network = excluded.network, numeric_code = excluded.numeric_code"
                ),
                params![
                    institution.code,
                    institution.name,
                    institution.kind.as_str(),
                    institution.network,
                    institution.numeric_code,
                ],
            )
            .map_err(|err| backend(&what, err))?;
            Ok(())
        })
    }

    fn institutions(&self) -> Result<Vec<Institution>> {
        self.read(|conn| {
            let what = "list institutions";
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {INSTITUTION_COLUMNS} FROM institutions ORDER BY code"
                ))
                .map_err(|err| backend(what, err))?;
            let rows = statement
                .query_map([], institution_from_row)
                .map_err(|err| backend(what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(what, err))
        })
    }

    fn institution(&self, code: &str) -> Result<Option<Institution>> {
        self.read(|conn| {
            query_row_cached(
                conn,
                &format!("SELECT {INSTITUTION_COLUMNS} FROM institutions WHERE code = ?1"),
                [code],
                institution_from_row,
            )
            .optional()
            .map_err(|err| backend(&format!("read institution {code:?}"), err))
        })
    }

    fn put_profile(&self, profile: &Profile) -> Result<()> {
        let what = format!("store profile {:?}", profile.id);
        self.write(&what, |tx| {
            exec_cached(
                tx,
                &format!(
                    "INSERT OR REPLACE INTO profiles ({PROFILE_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ),
                params![
                    profile.id,
                    profile.institution,
                    profile.kind,
                    profile.logon_id,
                    profile.password_hash,
                    profile.target_zone.as_str(),
                    profile.check_brief_level,
                    profile.check_005,
                    profile.lock_timeout_seconds,
                    profile.brief_levels,
                    profile.merge_rules,
                    profile.serial_match,
                    profile.nonserial_match,
                    profile.skip_community_zone,
                    profile.previous_password_hash,
                    profile.previous_password_expires,
                ],
            )
            .map_err(|err| backend(&what, err))?;
            Ok(())
        })
    }

    fn delete_profile(&self, id: &str) -> Result<bool> {
        let what = format!("delete profile {id:?}");
        self.write(&what, |tx| {
            let n_deleted = tx
                .execute("DELETE FROM profiles WHERE id = ?1", [id])
                .map_err(|err| backend(&what, err))?;
            Ok(n_deleted > 0)
        })
    }

    fn profiles(&self, institution: &str) -> Result<Vec<Profile>> {
        self.read(|conn| {
            let what = format!("list the profiles of {institution:?}");
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {PROFILE_COLUMNS} FROM profiles WHERE institution = ?1 ORDER BY id"
                ))
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map([institution], profile_from_row)
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })
    }

    fn allocate_mms_id(&self, zone: &str) -> Result<MmsId> {
        let what = format!("allocate an mms id in zone {zone:?}");
        let mut ids = self.write(&what, |tx| allocate_serials(tx, zone, 1, &what))?;
        ids.pop()
            .ok_or_else(|| Error::Backend(format!("could not {what}: no id was allocated")))
    }

    fn allocate_mms_ids(&self, zone: &str, count: usize) -> Result<Vec<MmsId>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let what = format!("allocate {count} mms ids in zone {zone:?}");
        self.write(&what, |tx| allocate_serials(tx, zone, count, &what))
    }

    fn find_by_oclc(&self, zone: &str, numbers: &[u64]) -> Result<Vec<IndexEntry>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|conn| query_index(conn, zone, numbers))
    }

    fn lookup(&self, zone: &str, numbers: &[u64]) -> Result<Lookup> {
        if numbers.is_empty() {
            return Ok(Lookup::default());
        }
        // One read transaction: the index, the records and the locks come from the same
        // snapshot, so a record the index names is always there.
        self.read(|conn| in_read_transaction(conn, || lookup_in(conn, zone, numbers)))
    }

    fn lookup_many(&self, zone: &str, sets: &[&[u64]]) -> Result<Vec<Lookup>> {
        if sets.iter().all(|numbers| numbers.is_empty()) {
            return Ok(vec![Lookup::default(); sets.len()]);
        }
        // One snapshot for all of them: one BEGIN/COMMIT and one pooled connection per
        // batch instead of per record.
        self.read(|conn| {
            in_read_transaction(conn, || {
                sets.iter()
                    .map(|numbers| lookup_in(conn, zone, numbers))
                    .collect()
            })
        })
    }

    fn record(&self, zone: &str, mms_id: &MmsId) -> Result<Option<StoredRecord>> {
        self.read(|conn| query_record(conn, zone, mms_id))
    }

    fn versions(&self, zone: &str, mms_id: &MmsId) -> Result<Vec<RecordVersion>> {
        let what = format!(
            "read the versions of record {:?} in zone {zone:?}",
            mms_id.as_str()
        );
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {VERSION_COLUMNS} FROM versions \
                     WHERE zone = ?1 AND mms_id = ?2 ORDER BY revision"
                ))
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map(params![zone, mms_id.as_str()], version_from_row)
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })
    }

    fn count_records(&self, zone: &str) -> Result<u64> {
        self.read(|conn| {
            query_row_cached(
                conn,
                "SELECT count(*) FROM records WHERE zone = ?1",
                [zone],
                |row| get_u64(row, 0),
            )
            .map_err(|err| backend(&format!("count the records of zone {zone:?}"), err))
        })
    }

    fn list_records(&self, zone: &str, after: Option<&MmsId>, limit: usize) -> Result<Vec<MmsId>> {
        let what = format!("list the records of zone {zone:?}");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.map_or("", MmsId::as_str);
        self.read(|conn| {
            // The primary key (zone, mms_id) serves it.
            let mut statement = conn
                .prepare_cached(
                    "SELECT mms_id FROM records WHERE zone = ?1 AND mms_id > ?2 \
                     ORDER BY mms_id LIMIT ?3",
                )
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map(params![zone, after, limit], |row| row.get(0).map(MmsId))
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })
    }

    fn find_by_term(&self, zone: &str, term: &str, limit: usize) -> Result<Vec<MmsId>> {
        let what = format!("find the records of zone {zone:?} with {term:?}");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT mms_id FROM record_terms WHERE zone = ?1 AND term = ?2 \
                     ORDER BY mms_id LIMIT ?3",
                )
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map(params![zone, term, limit], |row| row.get(0).map(MmsId))
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })
    }

    fn duplicates(&self, zone: &str) -> Result<Vec<(u64, Vec<IndexEntry>)>> {
        let what = format!("list the shared oclc numbers of zone {zone:?}");
        let rows: Vec<IndexEntry> = self.read(|conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT number, mms_id, active FROM oclc_index WHERE zone = ?1 AND number IN \
                     (SELECT number FROM oclc_index WHERE zone = ?1 GROUP BY number \
                      HAVING count(*) > 1) ORDER BY number, mms_id",
                )
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map([zone], |row| {
                    Ok(IndexEntry {
                        number: get_u64(row, 0)?,
                        mms_id: MmsId(row.get(1)?),
                        active: row.get::<_, i64>(2)? != 0,
                    })
                })
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })?;
        let mut grouped: Vec<(u64, Vec<IndexEntry>)> = Vec::new();
        for entry in rows {
            match grouped.last_mut() {
                Some((number, entries)) if *number == entry.number => entries.push(entry),
                _ => grouped.push((entry.number, vec![entry])),
            }
        }
        Ok(grouped)
    }

    fn commit(&self, commit: &Commit) -> Result<()> {
        self.write("commit an import", |tx| {
            apply_commit(tx, commit)?;
            bibgate_failpoint::point("store.commit.before");
            Ok(())
        })
    }

    fn commit_batch(&self, commits: &[Commit]) -> Result<Vec<Result<()>>> {
        let mut conn = self.pool.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| backend("begin a transaction to commit a batch", err))?;
        let outcomes = apply_batch(&tx, commits)?;
        bibgate_failpoint::point("store.commit.before");
        tx.commit().map_err(|err| backend("commit a batch", err))?;
        Ok(outcomes)
    }

    fn put_lock(&self, lock: &EditorLock) -> Result<()> {
        let what = format!(
            "store the lock of record {:?} in zone {:?}",
            lock.mms_id.as_str(),
            lock.zone
        );
        self.write(&what, |tx| {
            exec_cached(
                tx,
                "INSERT OR REPLACE INTO locks (zone, mms_id, institution, user, since_unix, \
                 left_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    lock.zone,
                    lock.mms_id.as_str(),
                    lock.institution,
                    lock.user,
                    lock.since_unix,
                    lock.left_unix,
                ],
            )
            .map_err(|err| backend(&what, err))?;
            Ok(())
        })
    }

    fn release_lock(&self, zone: &str, mms_id: &MmsId) -> Result<bool> {
        let what = format!(
            "release the lock of record {:?} in zone {zone:?}",
            mms_id.as_str()
        );
        self.write(&what, |tx| {
            let n_deleted = tx
                .execute(
                    "DELETE FROM locks WHERE zone = ?1 AND mms_id = ?2",
                    params![zone, mms_id.as_str()],
                )
                .map_err(|err| backend(&what, err))?;
            Ok(n_deleted > 0)
        })
    }

    fn lock(&self, zone: &str, mms_id: &MmsId) -> Result<Option<EditorLock>> {
        self.read(|conn| query_lock(conn, zone, mms_id))
    }

    fn locks(&self, zone: &str) -> Result<Vec<EditorLock>> {
        let what = format!("read the locks of zone {zone:?}");
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {LOCK_COLUMNS} FROM locks WHERE zone = ?1 ORDER BY mms_id"
                ))
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map([zone], lock_from_row)
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })
    }

    fn result(&self, export_id: &str) -> Result<Option<ImportResult>> {
        self.read(|conn| {
            query_row_cached(
                conn,
                &format!("SELECT {RESULT_COLUMNS} FROM results WHERE export_id = ?1"),
                [export_id],
                result_from_row,
            )
            .optional()
            .map_err(|err| backend(&format!("read result {export_id:?}"), err))
        })
    }

    fn batch_results(&self, batch_id: &str) -> Result<Vec<ImportResult>> {
        let what = format!("read the results of batch {batch_id:?}");
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {RESULT_COLUMNS} FROM results WHERE batch_id = ?1 \
                     ORDER BY idx IS NULL, idx, rowid"
                ))
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map([batch_id], result_from_row)
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })
    }

    fn institution_results(
        &self,
        institution: &str,
        since_unix: i64,
        limit: usize,
    ) -> Result<Vec<ImportResult>> {
        let what = format!("read the results of institution {institution:?}");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            // Served by `results_by_institution`, read backwards.
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {RESULT_COLUMNS} FROM results \
                     WHERE institution = ?1 AND received_unix >= ?2 \
                     ORDER BY received_unix DESC, idx DESC, export_id DESC LIMIT ?3"
                ))
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map(params![institution, since_unix, limit], result_from_row)
                .map_err(|err| backend(&what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(&what, err))
        })
    }

    fn add_staff(&self, account: &StaffAccount) -> Result<()> {
        let what = format!("add staff account {:?}", account.user);
        self.write(&what, |tx| {
            let n_inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO staff (user, institution, admin, password_hash, \
                     created_unix) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        account.user,
                        account.institution,
                        account.admin,
                        account.password_hash,
                        account.created_unix,
                    ],
                )
                .map_err(|err| backend(&what, err))?;
            if n_inserted == 0 {
                return Err(Error::AlreadyExists(format!(
                    "staff account {:?}",
                    account.user
                )));
            }
            Ok(())
        })
    }

    fn staff(&self, user: &str) -> Result<Option<StaffAccount>> {
        self.read(|conn| {
            query_row_cached(
                conn,
                &format!("SELECT {STAFF_COLUMNS} FROM staff WHERE user = ?1"),
                [user],
                staff_from_row,
            )
            .optional()
            .map_err(|err| backend(&format!("read staff account {user:?}"), err))
        })
    }

    fn staff_list(&self) -> Result<Vec<StaffAccount>> {
        let what = "read the staff accounts";
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached(&format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY user"))
                .map_err(|err| backend(what, err))?;
            let rows = statement
                .query_map([], staff_from_row)
                .map_err(|err| backend(what, err))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|err| backend(what, err))
        })
    }

    fn remove_staff(&self, user: &str) -> Result<bool> {
        let what = format!("remove staff account {user:?}");
        self.write(&what, |tx| {
            let n_deleted = tx
                .execute("DELETE FROM staff WHERE user = ?1", [user])
                .map_err(|err| backend(&what, err))?;
            Ok(n_deleted > 0)
        })
    }
}

/// The columns [`staff_from_row`] reads, in its order.
const STAFF_COLUMNS: &str = "user, institution, admin, password_hash, created_unix";

fn staff_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StaffAccount> {
    Ok(StaffAccount {
        user: row.get(0)?,
        institution: row.get(1)?,
        admin: row.get(2)?,
        password_hash: row.get(3)?,
        created_unix: row.get(4)?,
    })
}

/// Runs a statement through the connection's prepared-statement cache: an import runs the
/// same few statements thousands of times, and parsing them each time is most of the cost.
fn exec_cached<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache.
fn query_row_cached<
    T,
    P: rusqlite::Params,
    F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: F,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}
