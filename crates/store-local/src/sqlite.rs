//! The [`Store`] port on SQLite.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bibgate_store::{
    Commit, EditorLock, Error, Expectation, ImportResult, IndexEntry, IndexKey, Institution,
    Lookup, MmsId, Outcome, Profile, RecordVersion, Result, Store, StoredRecord, TargetZone,
    ZoneKind,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

/// The schema version this build writes and reads.
const SCHEMA_VERSION: i64 = 4;

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many idle reader connections are kept. A read beyond them opens (and configures) a
/// connection and closes it afterwards. The shim polls for the result of every waiting
/// export; at 50 concurrent exports p99 was 35.6–51.9 ms with 4 vs 23.5–38.2 ms with 32
/// (gateway latency example, alternating runs). Each reader has its own page cache
/// ([`READER_CACHE_KIB`]).
const MAX_IDLE_READERS: usize = 32;

/// A reader's page cache (negative: KiB), smaller than the writer's 32 MiB: up to
/// [`MAX_IDLE_READERS`] of them stay open, and a reader's cache is emptied whenever it sees
/// another connection's commit anyway.
const READER_CACHE_KIB: i64 = -4_000;

/// The first serial number of a zone's MMS IDs.
const FIRST_SERIAL: i64 = 1_000_000;

const SCHEMA_V1: &str = "
CREATE TABLE institutions (
    code TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    network TEXT,
    numeric_code INTEGER NOT NULL
);
CREATE TABLE profiles (
    id TEXT PRIMARY KEY NOT NULL,
    institution TEXT NOT NULL,
    kind TEXT NOT NULL,
    logon_id TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    target_zone TEXT NOT NULL,
    check_brief_level INTEGER NOT NULL,
    check_005 INTEGER NOT NULL,
    lock_timeout_seconds INTEGER NOT NULL,
    brief_levels TEXT NOT NULL,
    merge_rules TEXT NOT NULL,
    serial_match TEXT NOT NULL,
    nonserial_match TEXT NOT NULL,
    skip_community_zone INTEGER NOT NULL
);
CREATE INDEX profiles_by_institution ON profiles (institution);
CREATE TABLE counters (
    zone TEXT PRIMARY KEY NOT NULL,
    next_serial INTEGER NOT NULL
);
CREATE TABLE records (
    zone TEXT NOT NULL,
    mms_id TEXT NOT NULL,
    marc BLOB NOT NULL,
    revision INTEGER NOT NULL,
    originating_version TEXT,
    brief_level INTEGER NOT NULL,
    cz INTEGER NOT NULL,
    created_unix INTEGER NOT NULL,
    updated_unix INTEGER NOT NULL,
    keys TEXT NOT NULL,
    PRIMARY KEY (zone, mms_id)
);
CREATE TABLE versions (
    zone TEXT NOT NULL,
    mms_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    marc BLOB NOT NULL,
    originating_version TEXT,
    brief_level INTEGER NOT NULL,
    saved_unix INTEGER NOT NULL,
    replaced_unix INTEGER NOT NULL,
    replaced_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (zone, mms_id, revision),
    FOREIGN KEY (zone, mms_id) REFERENCES records (zone, mms_id)
);
CREATE TABLE oclc_index (
    zone TEXT NOT NULL,
    number INTEGER NOT NULL,
    mms_id TEXT NOT NULL,
    active INTEGER NOT NULL,
    PRIMARY KEY (zone, number, mms_id),
    FOREIGN KEY (zone, mms_id) REFERENCES records (zone, mms_id)
);
CREATE INDEX oclc_index_by_record ON oclc_index (zone, mms_id);
CREATE TABLE locks (
    zone TEXT NOT NULL,
    mms_id TEXT NOT NULL,
    institution TEXT NOT NULL,
    user TEXT NOT NULL,
    since_unix INTEGER NOT NULL,
    left_unix INTEGER,
    PRIMARY KEY (zone, mms_id)
);
CREATE TABLE results (
    export_id TEXT PRIMARY KEY NOT NULL,
    batch_id TEXT,
    idx INTEGER,
    institution TEXT NOT NULL,
    zone TEXT NOT NULL,
    outcome TEXT NOT NULL,
    host_message TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    mms_id TEXT,
    oclc_numbers TEXT NOT NULL,
    raw_key TEXT NOT NULL,
    raw_offset INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    received_unix INTEGER NOT NULL,
    decided_unix INTEGER NOT NULL,
    trace TEXT NOT NULL
);
CREATE INDEX results_by_batch ON results (batch_id, idx);
";

/// The [`Store`] port on one SQLite database (see the crate docs for schema, durability
/// and concurrency).
pub struct SqliteStore {
    /// The database file; `None` in memory.
    path: Option<PathBuf>,
    /// The one connection that writes (and, in memory, also reads).
    writer: Mutex<Connection>,
    /// Idle read-only connections of a file database.
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
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
        let writer = Connection::open(path)
            .map_err(|err| backend(&format!("open database {shown:?}"), err))?;
        configure(&writer, &shown)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|err| backend(&format!("switch {shown:?} to wal mode"), err))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Backend(format!(
                "could not switch {shown:?} to wal mode: it stays in {mode:?} mode"
            )));
        }
        writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|err| backend(&format!("set synchronous=full on {shown:?}"), err))?;
        // Checkpoint the WAL every ~32 MiB instead of every 4 MiB: a page rewritten by many
        // imports between checkpoints is copied into the database once.
        writer
            .pragma_update(None, "wal_autocheckpoint", 8_000)
            .map_err(|err| backend(&format!("set the checkpoint interval on {shown:?}"), err))?;
        let mut writer = writer;
        migrate(&mut writer, &shown)?;
        Ok(SqliteStore {
            path: Some(path.to_path_buf()),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// A fresh, empty database in memory, on a single connection; gone when dropped.
    pub fn in_memory() -> Result<SqliteStore> {
        let shown = ":memory:";
        let mut writer =
            Connection::open_in_memory().map_err(|err| backend("open in-memory database", err))?;
        configure(&writer, shown)?;
        migrate(&mut writer, shown)?;
        Ok(SqliteStore {
            path: None,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction open (rusqlite rolls
        // back on drop), so the connection is still usable.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits when it returns Ok.
    pub(crate) fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| backend(&format!("begin a transaction to {what}"), err))?;
        let value = f(&tx)?;
        tx.commit()
            .map_err(|err| backend(&format!("commit the transaction to {what}"), err))?;
        Ok(value)
    }

    /// Runs a read on a pooled reader connection (the writer, in memory).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            return f(&self.writer());
        };
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(path)?,
        };
        let value = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        value
    }
}

/// Settings every connection gets.
fn configure(conn: &Connection, shown: &str) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|err| backend(&format!("set the busy timeout on {shown:?}"), err))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|err| backend(&format!("enable foreign keys on {shown:?}"), err))?;
    // Statement journals (one per savepoint of a batch) stay in memory instead of temporary
    // files; the WAL itself stays on disk, so durability is unchanged.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|err| backend(&format!("keep temporary data in memory on {shown:?}"), err))?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "cache_size", -32_000)
        .map_err(|err| backend(&format!("set the page cache size on {shown:?}"), err))?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let shown = path.display().to_string();
    let conn = Connection::open(path)
        .map_err(|err| backend(&format!("open database {shown:?} for reading"), err))?;
    configure(&conn, &shown)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|err| backend(&format!("make a reader of {shown:?} read-only"), err))?;
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)
        .map_err(|err| backend(&format!("set the page cache size on {shown:?}"), err))?;
    Ok(conn)
}

/// Brings the schema up to [`SCHEMA_VERSION`].
fn migrate(conn: &mut Connection, shown: &str) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| backend(&format!("begin the schema migration of {shown:?}"), err))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|err| backend(&format!("read the schema version of {shown:?}"), err))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Corrupt(format!(
            "database {shown:?} has schema version {version}, newer than the {SCHEMA_VERSION} this build supports"
        )));
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)
            .map_err(|err| backend(&format!("create the schema of {shown:?}"), err))?;
    }
    if version < 2 {
        // v2: the merge policy that decided a result.
        tx.execute_batch("ALTER TABLE results ADD COLUMN policy TEXT;")
            .map_err(|err| backend(&format!("migrate {shown:?} to schema version 2"), err))?;
    }
    if version < 3 {
        // v3: merge-policy manifests and activations (crate::policy).
        tx.execute_batch(crate::policy::SCHEMA_V3)
            .map_err(|err| backend(&format!("migrate {shown:?} to schema version 3"), err))?;
    }
    if version < 4 {
        // v4: the previous password of a profile, accepted until it expires (rotation).
        tx.execute_batch(
            "ALTER TABLE profiles ADD COLUMN previous_password_hash TEXT;
             ALTER TABLE profiles ADD COLUMN previous_password_expires INTEGER;",
        )
        .map_err(|err| backend(&format!("migrate {shown:?} to schema version 4"), err))?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|err| backend(&format!("set the schema version of {shown:?}"), err))?;
    }
    tx.commit()
        .map_err(|err| backend(&format!("commit the schema migration of {shown:?}"), err))
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

fn conversion_error(idx: usize, ty: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, message.into())
}

fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

fn get_opt_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let value: Option<i64> = row.get(idx)?;
    value
        .map(|value| {
            u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
        })
        .transpose()
}

fn get_u8(row: &Row<'_>, idx: usize) -> rusqlite::Result<u8> {
    let value: i64 = row.get(idx)?;
    u8::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

fn get_u16(row: &Row<'_>, idx: usize) -> rusqlite::Result<u16> {
    let value: i64 = row.get(idx)?;
    u16::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

/// `123:a 456:c`: a record's keys in order.
fn encode_keys(keys: &[IndexKey]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|key| format!("{}:{}", key.number, if key.active { 'a' } else { 'c' }))
        .collect();
    parts.join(" ")
}

fn decode_keys(text: &str, idx: usize) -> rusqlite::Result<Vec<IndexKey>> {
    text.split_ascii_whitespace()
        .map(|part| {
            let parsed = part.split_once(':').and_then(|(number, state)| {
                let number = number.parse::<u64>().ok()?;
                let active = match state {
                    "a" => true,
                    "c" => false,
                    _ => return None,
                };
                Some(IndexKey { number, active })
            });
            parsed
                .ok_or_else(|| conversion_error(idx, Type::Text, format!("bad oclc key {part:?}")))
        })
        .collect()
}

fn encode_numbers(numbers: &[u64]) -> String {
    let parts: Vec<String> = numbers.iter().map(u64::to_string).collect();
    parts.join(" ")
}

fn decode_numbers(text: &str, idx: usize) -> rusqlite::Result<Vec<u64>> {
    text.split_ascii_whitespace()
        .map(|part| {
            part.parse::<u64>()
                .map_err(|_| conversion_error(idx, Type::Text, format!("bad oclc number {part:?}")))
        })
        .collect()
}

/// Each line escaped (`\` → `\\`, newline → `\n`) and ended by a newline.
fn encode_trace(trace: &[String]) -> String {
    let mut text = String::with_capacity(trace.iter().map(|line| line.len() + 1).sum());
    for line in trace {
        if !line.contains(['\\', '\n']) {
            text.push_str(line);
            text.push('\n');
            continue;
        }
        for ch in line.chars() {
            match ch {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                _ => text.push(ch),
            }
        }
        text.push('\n');
    }
    text
}

fn decode_trace(text: &str, idx: usize) -> rusqlite::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\n' => lines.push(std::mem::take(&mut line)),
            '\\' => match chars.next() {
                Some('\\') => line.push('\\'),
                Some('n') => line.push('\n'),
                other => {
                    return Err(conversion_error(
                        idx,
                        Type::Text,
                        format!("bad escape {other:?} in a trace"),
                    ));
                }
            },
            _ => line.push(ch),
        }
    }
    if !line.is_empty() {
        return Err(conversion_error(
            idx,
            Type::Text,
            "unterminated trace line".to_owned(),
        ));
    }
    Ok(lines)
}

const INSTITUTION_COLUMNS: &str = "code, name, kind, network, numeric_code";

fn institution_from_row(row: &Row<'_>) -> rusqlite::Result<Institution> {
    let kind: String = row.get(2)?;
    let kind = match kind.as_str() {
        "network" => ZoneKind::Network,
        "institution" => ZoneKind::Institution,
        _ => {
            return Err(conversion_error(
                2,
                Type::Text,
                format!("unknown zone kind {kind:?}"),
            ));
        }
    };
    Ok(Institution {
        code: row.get(0)?,
        name: row.get(1)?,
        kind,
        network: row.get(3)?,
        numeric_code: get_u16(row, 4)?,
    })
}

const PROFILE_COLUMNS: &str = "id, institution, kind, logon_id, password_hash, target_zone, \
     check_brief_level, check_005, lock_timeout_seconds, brief_levels, merge_rules, \
     serial_match, nonserial_match, skip_community_zone, previous_password_hash, \
     previous_password_expires";

fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
    let target: String = row.get(5)?;
    let target_zone = match target.as_str() {
        "iz" => TargetZone::Institution,
        "nz" => TargetZone::Network,
        _ => {
            return Err(conversion_error(
                5,
                Type::Text,
                format!("unknown target zone {target:?}"),
            ));
        }
    };
    Ok(Profile {
        id: row.get(0)?,
        institution: row.get(1)?,
        kind: row.get(2)?,
        logon_id: row.get(3)?,
        password_hash: row.get(4)?,
        target_zone,
        check_brief_level: row.get(6)?,
        check_005: row.get(7)?,
        lock_timeout_seconds: row.get(8)?,
        brief_levels: row.get(9)?,
        merge_rules: row.get(10)?,
        serial_match: row.get(11)?,
        nonserial_match: row.get(12)?,
        skip_community_zone: row.get(13)?,
        previous_password_hash: row.get(14)?,
        previous_password_expires: row.get(15)?,
    })
}

const RECORD_COLUMNS: &str = "zone, mms_id, marc, revision, originating_version, brief_level, \
     cz, created_unix, updated_unix, keys";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<StoredRecord> {
    let keys: String = row.get(9)?;
    Ok(StoredRecord {
        zone: row.get(0)?,
        mms_id: MmsId(row.get(1)?),
        marc: row.get(2)?,
        revision: get_u64(row, 3)?,
        originating_version: row.get(4)?,
        brief_level: get_u8(row, 5)?,
        linked_to_community_zone: row.get(6)?,
        created_unix: row.get(7)?,
        updated_unix: row.get(8)?,
        keys: decode_keys(&keys, 9)?,
    })
}

const RESULT_COLUMNS: &str = "export_id, batch_id, idx, institution, zone, outcome, \
     host_message, reason_code, mms_id, oclc_numbers, raw_key, raw_offset, raw_len, \
     received_unix, decided_unix, trace, policy";

fn result_from_row(row: &Row<'_>) -> rusqlite::Result<ImportResult> {
    let outcome: String = row.get(5)?;
    let outcome = Outcome::parse(&outcome)
        .ok_or_else(|| conversion_error(5, Type::Text, format!("unknown outcome {outcome:?}")))?;
    let numbers: String = row.get(9)?;
    let trace: String = row.get(15)?;
    Ok(ImportResult {
        export_id: row.get(0)?,
        batch_id: row.get(1)?,
        index: get_opt_u64(row, 2)?,
        institution: row.get(3)?,
        zone: row.get(4)?,
        outcome,
        host_message: row.get(6)?,
        reason_code: row.get(7)?,
        mms_id: row.get::<_, Option<String>>(8)?.map(MmsId),
        oclc_numbers: decode_numbers(&numbers, 9)?,
        raw_key: row.get(10)?,
        raw_offset: get_u64(row, 11)?,
        raw_len: get_u64(row, 12)?,
        received_unix: row.get(13)?,
        decided_unix: row.get(14)?,
        trace: decode_trace(&trace, 15)?,
        policy: row.get(16)?,
    })
}

/// The export id a commit stores a result under, if any.
fn commit_export_id(commit: &Commit) -> Option<&str> {
    match commit {
        Commit::Add { result, .. } | Commit::Merge { result, .. } | Commit::Reject { result } => {
            Some(&result.export_id)
        }
        Commit::Replace { .. } => None,
    }
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

/// Applies one commit inside an open transaction (or savepoint). On error the caller rolls
/// back.
fn apply_commit(conn: &Connection, commit: &Commit) -> Result<()> {
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
            encode_keys(&record.keys),
        ],
    )
    .map_err(|err| backend(&what, err))?;
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
            encode_keys(&record.keys),
        ],
    )
    .map_err(|err| backend(&what, err))?;
    if stored_keys == encode_keys(&record.keys) {
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
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
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
        ],
    )
    .map_err(|err| backend(&what, err))?;
    Ok(())
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
                .prepare_cached(
                    "SELECT revision, marc, originating_version, brief_level, saved_unix, \
                     replaced_unix, replaced_by, reason FROM versions \
                     WHERE zone = ?1 AND mms_id = ?2 ORDER BY revision",
                )
                .map_err(|err| backend(&what, err))?;
            let rows = statement
                .query_map(params![zone, mms_id.as_str()], |row| {
                    Ok(RecordVersion {
                        revision: get_u64(row, 0)?,
                        marc: row.get(1)?,
                        originating_version: row.get(2)?,
                        brief_level: get_u8(row, 3)?,
                        saved_unix: row.get(4)?,
                        replaced_unix: row.get(5)?,
                        replaced_by: row.get(6)?,
                        reason: row.get(7)?,
                    })
                })
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

    fn commit(&self, commit: &Commit) -> Result<()> {
        self.write("commit an import", |tx| {
            apply_commit(tx, commit)?;
            bibgate_failpoint::point("store.commit.before");
            Ok(())
        })
    }

    fn commit_batch(&self, commits: &[Commit]) -> Result<Vec<Result<()>>> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| backend("begin a transaction to commit a batch", err))?;
        let mut outcomes = Vec::with_capacity(commits.len());
        for (commit_idx, commit) in commits.iter().enumerate() {
            // Savepoints by hand through the statement cache: rusqlite's own re-parse their
            // SQL for every commit of the batch.
            exec_cached(&tx, "SAVEPOINT bibgate_commit", []).map_err(|err| {
                backend(
                    &format!("open a savepoint for commit {commit_idx} of a batch"),
                    err,
                )
            })?;
            match apply_commit(&tx, commit) {
                Ok(()) => {
                    exec_cached(&tx, "RELEASE bibgate_commit", []).map_err(|err| {
                        backend(&format!("release commit {commit_idx} of a batch"), err)
                    })?;
                    outcomes.push(Ok(()));
                }
                Err(err) => {
                    // A failure to roll back would leave the batch's state unknown: the
                    // whole transaction is then abandoned (rolled back on drop).
                    exec_cached(&tx, "ROLLBACK TO bibgate_commit", [])
                        .and_then(|_| exec_cached(&tx, "RELEASE bibgate_commit", []))
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
}

fn query_index(conn: &Connection, zone: &str, numbers: &[u64]) -> Result<Vec<IndexEntry>> {
    let sql_numbers = numbers
        .iter()
        .map(|&number| to_sql_u64(number, "oclc number"))
        .collect::<Result<Vec<i64>>>()?;
    let what = || format!("look up oclc numbers {numbers:?} in zone {zone:?}");
    // One statement, so one consistent snapshot for all the numbers.
    let placeholders = vec!["?"; sql_numbers.len()].join(", ");
    let sql = format!(
        "SELECT number, mms_id, active FROM oclc_index \
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
        .query_map(values.as_slice(), |row| {
            Ok(IndexEntry {
                number: get_u64(row, 0)?,
                mms_id: MmsId(row.get(1)?),
                active: row.get(2)?,
            })
        })
        .map_err(|err| backend(&what(), err))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|err| backend(&what(), err))
}

/// Runs `f` in one deferred read transaction (one snapshot of the database).
fn in_read_transaction<T>(conn: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    exec_cached(conn, "BEGIN DEFERRED", []).map_err(|err| backend("begin a read", err))?;
    let read = f();
    exec_cached(conn, "COMMIT", []).map_err(|err| backend("end a read", err))?;
    read
}

/// [`Store::lookup`] on a connection inside a read transaction.
fn lookup_in(conn: &Connection, zone: &str, numbers: &[u64]) -> Result<Lookup> {
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

fn query_record(conn: &Connection, zone: &str, mms_id: &MmsId) -> Result<Option<StoredRecord>> {
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

fn query_lock(conn: &Connection, zone: &str, mms_id: &MmsId) -> Result<Option<EditorLock>> {
    query_row_cached(
        conn,
        "SELECT zone, mms_id, institution, user, since_unix, left_unix FROM locks \
                 WHERE zone = ?1 AND mms_id = ?2",
        params![zone, mms_id.as_str()],
        |row| {
            Ok(EditorLock {
                zone: row.get(0)?,
                mms_id: MmsId(row.get(1)?),
                institution: row.get(2)?,
                user: row.get(3)?,
                since_unix: row.get(4)?,
                left_unix: row.get(5)?,
            })
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_round_trips() {
        let cases: Vec<Vec<String>> = vec![
            vec![],
            vec![String::new()],
            vec![String::new(), String::new()],
            vec![
                "a\\b".to_owned(),
                "line\nbreak".to_owned(),
                "\\n".to_owned(),
            ],
        ];
        for trace in cases {
            let text = encode_trace(&trace);
            assert_eq!(decode_trace(&text, 0).unwrap(), trace, "{text:?}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let keys = vec![
            IndexKey {
                number: 12,
                active: true,
            },
            IndexKey {
                number: u64::MAX,
                active: false,
            },
        ];
        assert_eq!(decode_keys(&encode_keys(&keys), 0).unwrap(), keys);
        assert_eq!(decode_keys("", 0).unwrap(), Vec::new());
        assert!(decode_keys("12:x", 0).is_err());
    }

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

    #[test]
    fn a_version_3_database_is_migrated_with_no_previous_passwords() {
        use bibgate_store::contract::{ZONE_A, demo_profile, setup_zones};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        setup_zones(&store);
        let profile = demo_profile("alpha-connexion", ZONE_A);
        store.put_profile(&profile).unwrap();
        drop(store);
        // Back to the v3 shape: no previous-password columns.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE profiles DROP COLUMN previous_password_expires;
             ALTER TABLE profiles DROP COLUMN previous_password_hash;
             PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.profiles(ZONE_A).unwrap(), vec![profile.clone()]);
        let rotated = Profile {
            previous_password_hash: Some(profile.password_hash.clone()),
            previous_password_expires: Some(1_900_000_000),
            ..profile
        };
        store.put_profile(&rotated).unwrap();
        assert_eq!(store.profiles(ZONE_A).unwrap(), vec![rotated]);
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
    }
}
