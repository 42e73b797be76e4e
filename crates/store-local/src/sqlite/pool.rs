//! The connections of a [`SqliteStore`](super::SqliteStore): one writer behind a mutex and,
//! for a file database, a pool of read-only connections that never wait for it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bibgate_store::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use super::backend;

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many idle reader connections are kept. A read beyond them opens (and configures) a
/// connection and closes it afterwards. The shim polls for the result of every waiting
/// export, so 4 were too few at 50 concurrent exports (measured: README, "Why these
/// choices"). Each reader has its own page cache
/// ([`READER_CACHE_KIB`]).
const MAX_IDLE_READERS: usize = 32;

/// A reader's page cache (negative: KiB), smaller than the writer's 32 MiB: up to
/// [`MAX_IDLE_READERS`] of them stay open, and a reader's cache is emptied whenever it sees
/// another connection's commit anyway.
const READER_CACHE_KIB: i64 = -4_000;

/// The writer and the idle readers of one database.
pub(super) struct Pool {
    /// The database file; `None` in memory.
    path: Option<PathBuf>,
    /// The one connection that writes (and, in memory, also reads).
    writer: Mutex<Connection>,
    /// Idle read-only connections of a file database.
    readers: Mutex<Vec<Connection>>,
}

impl Pool {
    /// A pool around an opened writer (see [`open_writer`], [`open_in_memory`]) whose
    /// schema is up to date; readers of a file database are opened when needed.
    pub(super) fn new(path: Option<PathBuf>, writer: Connection) -> Pool {
        Pool {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        }
    }

    /// The database file, or `None` in memory.
    pub(super) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The writer connection, locked.
    pub(super) fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction open (rusqlite rolls
        // back on drop), so the connection is still usable.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits when it returns Ok.
    pub(super) fn write<T>(
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
    pub(super) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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

/// Opens (creating if needed) the writer of the database at `path` (shown as `shown` in
/// errors): WAL mode with `synchronous=FULL`, so every write is on disk when it returns.
pub(super) fn open_writer(path: &Path, shown: &str) -> Result<Connection> {
    make_private(path).map_err(|err| {
        Error::Backend(format!(
            "could not make database {shown:?} readable by its owner only: {err}"
        ))
    })?;
    let writer =
        Connection::open(path).map_err(|err| backend(&format!("open database {shown:?}"), err))?;
    configure(&writer, shown)?;
    // Before anything writes to the file: a database of a newer build stays as it is.
    super::schema::refuse_newer(&writer, shown)?;
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
    Ok(writer)
}

/// Creates the database file at `path` readable and writable by its owner only (0600), or
/// takes group and other access away from an existing one and its WAL and shared-memory
/// files. It holds password hashes and records; SQLite creates the `-wal` and `-shm` files
/// with the database file's permissions.
fn make_private(path: &Path) -> std::io::Result<()> {
    match crate::folder::create_private_file(path) {
        Ok(_) => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push(name.into());
        }
        for file in files {
            let metadata = match std::fs::metadata(&file) {
                Ok(metadata) => metadata,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            let mode = metadata.permissions().mode();
            if metadata.is_file() && mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))?;
            }
        }
    }
    Ok(())
}

/// Opens a fresh database in memory (shown as `shown` in errors), the only connection to it.
pub(super) fn open_in_memory(shown: &str) -> Result<Connection> {
    let writer =
        Connection::open_in_memory().map_err(|err| backend("open in-memory database", err))?;
    configure(&writer, shown)?;
    Ok(writer)
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
