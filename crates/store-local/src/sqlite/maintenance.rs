//! What an operator runs on a data directory: an online copy of the database
//! ([`SqliteStore::backup_into`]) and a check of its consistency ([`SqliteStore::check`]).

use std::collections::BTreeMap;
use std::path::Path;

use bibgate_store::{Error, Result, parse_index_keys};
use rusqlite::Connection;

use super::{SqliteStore, backend};
use crate::FolderBlobStore;

/// What [`SqliteStore::check`] found: counts, and each problem as one line of text (no
/// problem: the data directory is consistent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// Records in all zones.
    pub records: u64,
    /// Entries of the OCLC index.
    pub index_entries: u64,
    /// Stored import results.
    pub results: u64,
    /// Every inconsistency found, for people.
    pub problems: Vec<String>,
}

/// How many problems of one kind are listed before the rest are only counted.
const LISTED_PER_KIND: usize = 20;

/// Collects problems of one kind, listing the first [`LISTED_PER_KIND`].
struct Problems<'a> {
    out: &'a mut Vec<String>,
    kind: &'static str,
    count: usize,
}

impl<'a> Problems<'a> {
    fn new(out: &'a mut Vec<String>, kind: &'static str) -> Problems<'a> {
        Problems {
            out,
            kind,
            count: 0,
        }
    }

    fn push(&mut self, problem: String) {
        self.count += 1;
        if self.count <= LISTED_PER_KIND {
            self.out.push(problem);
        }
    }
}

impl Drop for Problems<'_> {
    fn drop(&mut self) {
        if self.count > LISTED_PER_KIND {
            self.out.push(format!(
                "… and {} more {}",
                self.count - LISTED_PER_KIND,
                self.kind
            ));
        }
    }
}

impl SqliteStore {
    /// Writes a consistent copy of the whole database to the new file `dest` (owner-only,
    /// 0600) with `VACUUM INTO`, while other connections and processes keep reading and
    /// writing: the copy is the snapshot of one read transaction, which in WAL mode never
    /// blocks a writer. `dest` must not exist. An in-memory store is refused.
    pub fn backup_into(&self, dest: &Path) -> Result<()> {
        let Some(path) = self.path() else {
            return Err(Error::Backend(
                "an in-memory database cannot be backed up".to_string(),
            ));
        };
        let shown = dest.display().to_string();
        // SQLite accepts an empty file: created first, it has the owner-only mode.
        crate::folder::create_private_file(dest).map_err(|err| {
            Error::Backend(format!("could not create the backup file {shown:?}: {err}"))
        })?;
        let conn = Connection::open(path)
            .map_err(|err| backend(&format!("open {:?} for a backup", path.display()), err))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|err| backend("set the busy timeout of the backup connection", err))?;
        conn.execute("VACUUM INTO ?1", [&shown])
            .map_err(|err| backend(&format!("copy the database into {shown:?}"), err))?;
        // VACUUM INTO syncs the copy only with synchronous=FULL on the connection; sync it
        // here whatever the setting.
        std::fs::File::open(dest)
            .and_then(|file| file.sync_all())
            .map_err(|err| Error::Backend(format!("could not sync {shown:?}: {err}")))
    }

    /// Whether the database takes a durable write now: one write transaction that rewrites
    /// the schema version with its own value (for a health check; nothing changes).
    pub fn check_writable(&self) -> Result<()> {
        self.write("check that the database is writable", |tx| {
            let version: i64 = tx
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(|err| backend("read the schema version", err))?;
            tx.pragma_update(None, "user_version", version)
                .map_err(|err| backend("write the schema version", err))
        })
    }

    /// Checks the database and the blobs it refers to: SQLite's integrity and foreign-key
    /// checks, every result's raw bytes present in `blobs` (the key exists and is long
    /// enough for the result's offset and length), and the OCLC index equal to what the
    /// records' key lists say (each record's numbers, active when any key of the number
    /// is). Reads one snapshot.
    pub fn check(&self, blobs: &FolderBlobStore) -> Result<Check> {
        self.read(|conn| {
            let what = "check the database";
            let tx = conn
                .unchecked_transaction()
                .map_err(|err| backend(what, err))?;
            let mut check = Check::default();
            integrity(&tx, &mut check.problems)?;
            check.results = check_raw_bytes(&tx, blobs, &mut check.problems)?;
            let (records, index_entries) = check_index(&tx, &mut check.problems)?;
            check.records = records;
            check.index_entries = index_entries;
            Ok(check)
        })
    }
}

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`.
fn integrity(conn: &Connection, out: &mut Vec<String>) -> Result<()> {
    let what = "run the integrity check";
    let mut statement = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|err| backend(what, err))?;
    let lines = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(|err| backend(what, err))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|err| backend(what, err))?;
    let mut problems = Problems::new(out, "integrity problems");
    for line in lines {
        if line != "ok" {
            problems.push(format!("database integrity: {line}"));
        }
    }
    drop(problems);
    let what = "run the foreign-key check";
    let mut statement = conn
        .prepare("PRAGMA foreign_key_check")
        .map_err(|err| backend(what, err))?;
    let rows = statement
        .query_map([], |row| {
            Ok(format!(
                "a row of {} refers to a missing row of {}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(2)?
            ))
        })
        .map_err(|err| backend(what, err))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|err| backend(what, err))?;
    let mut problems = Problems::new(out, "foreign-key problems");
    for row in rows {
        problems.push(row);
    }
    Ok(())
}

/// Every result's raw bytes; returns how many results there are.
fn check_raw_bytes(
    conn: &Connection,
    blobs: &FolderBlobStore,
    out: &mut Vec<String>,
) -> Result<u64> {
    let what = "read the results' raw-bytes keys";
    let mut statement = conn
        .prepare("SELECT export_id, raw_key, raw_offset, raw_len FROM results")
        .map_err(|err| backend(what, err))?;
    let mut rows = statement.query([]).map_err(|err| backend(what, err))?;
    let mut problems = Problems::new(out, "results without their raw bytes");
    let mut count = 0;
    // Batch files hold many results: each file's size is read once.
    let mut sizes: BTreeMap<String, Option<u64>> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(|err| backend(what, err))? {
        count += 1;
        let export_id: String = row.get(0).map_err(|err| backend(what, err))?;
        let raw_key: String = row.get(1).map_err(|err| backend(what, err))?;
        let offset: i64 = row.get(2).map_err(|err| backend(what, err))?;
        let len: i64 = row.get(3).map_err(|err| backend(what, err))?;
        if raw_key.is_empty() {
            continue;
        }
        let size = match sizes.get(&raw_key) {
            Some(size) => *size,
            None => {
                let size = blobs.size(&raw_key)?;
                sizes.insert(raw_key.clone(), size);
                size
            }
        };
        let end = offset.saturating_add(len);
        match size {
            None => problems.push(format!(
                "result {export_id}: its raw bytes {raw_key:?} are missing"
            )),
            Some(size)
                if offset < 0 || len < 0 || u64::try_from(end).unwrap_or(u64::MAX) > size =>
            {
                problems.push(format!(
                    "result {export_id}: {raw_key:?} has {size} bytes, the result needs bytes {offset}..{end}"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(count)
}

/// The OCLC index against the records' key lists; returns (records, index entries).
fn check_index(conn: &Connection, out: &mut Vec<String>) -> Result<(u64, u64)> {
    let what = "read the records' OCLC keys";
    // (zone, number, mms_id) → active, from the records.
    let mut expected: BTreeMap<(String, i64, String), bool> = BTreeMap::new();
    let mut problems = Problems::new(out, "index differences");
    let mut records = 0;
    {
        let mut statement = conn
            .prepare("SELECT zone, mms_id, keys FROM records")
            .map_err(|err| backend(what, err))?;
        let mut rows = statement.query([]).map_err(|err| backend(what, err))?;
        while let Some(row) = rows.next().map_err(|err| backend(what, err))? {
            records += 1;
            let zone: String = row.get(0).map_err(|err| backend(what, err))?;
            let mms_id: String = row.get(1).map_err(|err| backend(what, err))?;
            let keys: String = row.get(2).map_err(|err| backend(what, err))?;
            match parse_index_keys(&keys) {
                Ok(keys) => {
                    for key in keys {
                        let Ok(number) = i64::try_from(key.number) else {
                            problems.push(format!(
                                "record {zone}/{mms_id}: OCLC number {} is too large",
                                key.number
                            ));
                            continue;
                        };
                        let active = expected
                            .entry((zone.clone(), number, mms_id.clone()))
                            .or_insert(false);
                        *active |= key.active;
                    }
                }
                Err(err) => problems.push(format!(
                    "record {zone}/{mms_id}: unreadable key list: {:?}",
                    err.part()
                )),
            }
        }
    }
    let what = "read the OCLC index";
    let mut statement = conn
        .prepare("SELECT zone, number, mms_id, active FROM oclc_index")
        .map_err(|err| backend(what, err))?;
    let mut rows = statement.query([]).map_err(|err| backend(what, err))?;
    let mut entries = 0;
    while let Some(row) = rows.next().map_err(|err| backend(what, err))? {
        entries += 1;
        let zone: String = row.get(0).map_err(|err| backend(what, err))?;
        let number: i64 = row.get(1).map_err(|err| backend(what, err))?;
        let mms_id: String = row.get(2).map_err(|err| backend(what, err))?;
        let active: bool = row.get(3).map_err(|err| backend(what, err))?;
        match expected.remove(&(zone.clone(), number, mms_id.clone())) {
            None => problems.push(format!(
                "index entry {zone}/{number} → {mms_id}: no such key on that record"
            )),
            Some(want) if want != active => problems.push(format!(
                "index entry {zone}/{number} → {mms_id}: active is {active}, the record says {want}"
            )),
            Some(_) => {}
        }
    }
    for (zone, number, mms_id) in expected.into_keys() {
        problems.push(format!(
            "record {zone}/{mms_id}: OCLC number {number} is missing from the index"
        ));
    }
    Ok((records, entries))
}

#[cfg(test)]
mod tests {
    use bibgate_store::contract::{
        ZONE_A, active, add_commit, cancelled, sample_record, setup_zones,
    };
    use bibgate_store::{BlobStore, Store};
    use rusqlite::Connection;

    use crate::{FolderBlobStore, SqliteStore};

    /// A store with two committed adds whose raw bytes are in the blob folder.
    fn seeded(dir: &std::path::Path) -> (SqliteStore, FolderBlobStore) {
        let store = SqliteStore::open(&dir.join("db.sqlite")).unwrap();
        let blobs = FolderBlobStore::new(dir.join("blobs")).unwrap();
        setup_zones(&store);
        for (export_id, keys) in [
            ("e1", vec![active(11), cancelled(12)]),
            ("e2", vec![active(21), cancelled(21)]),
        ] {
            let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
            let commit = add_commit(&sample_record(ZONE_A, &mms_id, &keys), &[], export_id);
            store.commit(&commit).unwrap();
            blobs
                .put(&format!("inbox/{ZONE_A}/{export_id}.mrc"), &[b'x'; 1234])
                .unwrap();
        }
        (store, blobs)
    }

    #[test]
    fn a_consistent_store_has_no_problems() {
        let dir = tempfile::tempdir().unwrap();
        let (store, blobs) = seeded(dir.path());
        let check = store.check(&blobs).unwrap();
        assert_eq!(check.problems, Vec::<String>::new());
        assert_eq!(
            (check.records, check.index_entries, check.results),
            (2, 3, 2)
        );
    }

    #[test]
    fn missing_or_short_raw_bytes_and_index_differences_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (store, blobs) = seeded(dir.path());
        blobs.delete(&format!("inbox/{ZONE_A}/e1.mrc")).unwrap();
        blobs
            .put(&format!("inbox/{ZONE_A}/e2.mrc"), b"short")
            .unwrap();
        let conn = Connection::open(dir.path().join("db.sqlite")).unwrap();
        conn.execute_batch(
            "DELETE FROM oclc_index WHERE number = 11;
             UPDATE oclc_index SET active = 0 WHERE number = 21;
             INSERT INTO oclc_index (zone, number, mms_id, active)
                 SELECT zone, 99, mms_id, 1 FROM records LIMIT 1;",
        )
        .unwrap();
        let problems = store.check(&blobs).unwrap().problems;
        let has = |needle: &str| problems.iter().any(|problem| problem.contains(needle));
        assert!(has("result e1: its raw bytes"), "{problems:?}");
        assert!(
            has("result e2: \"inbox/01DEMO_ALPHA/e2.mrc\" has 5 bytes"),
            "{problems:?}"
        );
        assert!(
            has("OCLC number 11 is missing from the index"),
            "{problems:?}"
        );
        assert!(has("active is false, the record says true"), "{problems:?}");
        assert!(has("/99 → "), "{problems:?}");
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn a_backup_is_an_owner_only_copy_that_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (store, blobs) = seeded(dir.path());
        let copy = dir.path().join("copy.sqlite");
        store.backup_into(&copy).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let copied = SqliteStore::open(&copy).unwrap();
        assert_eq!(copied.count_records(ZONE_A).unwrap(), 2);
        assert_eq!(copied.check(&blobs).unwrap().problems, Vec::<String>::new());
        store.check_writable().unwrap();
        // Never over an existing file.
        assert!(store.backup_into(&copy).is_err());
    }
}
