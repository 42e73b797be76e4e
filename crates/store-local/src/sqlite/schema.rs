//! Every migration of the database, in order: the schema is versioned by
//! `PRAGMA user_version`, and [`migrate`] brings a database of any older version up to
//! [`SCHEMA_VERSION`] in one transaction.
//!
//! - v1: institutions, profiles, counters, records, versions, the OCLC index, locks and
//!   results ([`SCHEMA_V1`]).
//! - v2: the merge policy that decided a result.
//! - v3: merge-policy manifests, activations and their configuration ([`SCHEMA_V3`]).
//! - v4: the previous password hash of a profile and its expiry (rotation).
//! - v5: the export id a result retries, and the index of an institution's results by
//!   received time (`bibgate results`).
//! - v6: the search terms of current records (`record_terms`: ISBNs and title words, see
//!   `bibgate_store::search`), filled for the records already stored.

use bibgate_store::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use super::backend;

/// The schema version this build writes and reads.
const SCHEMA_VERSION: i64 = 7;

/// Schema v1: every table of the [`Store`](bibgate_store::Store) port (the crate docs
/// describe them).
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

/// Schema v3: the merge-policy tables of [`SqlitePolicyStore`](crate::SqlitePolicyStore)
/// (manifests by digest, the activation history of each institution, and each
/// activation's configuration).
const SCHEMA_V3: &str = "
CREATE TABLE policy_manifests (
    sha256 TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    abi TEXT NOT NULL,
    size INTEGER NOT NULL,
    fuel INTEGER NOT NULL,
    memory_bytes INTEGER NOT NULL,
    description TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_unix INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE policy_activations (
    institution TEXT NOT NULL,
    revision INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES policy_manifests (sha256),
    on_error TEXT NOT NULL,
    activated_by TEXT NOT NULL,
    activated_unix INTEGER NOT NULL,
    PRIMARY KEY (institution, revision)
);
CREATE TABLE policy_config (
    institution TEXT NOT NULL,
    revision INTEGER NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (institution, revision, position),
    FOREIGN KEY (institution, revision) REFERENCES policy_activations (institution, revision)
);
";

/// The migrations in order: `MIGRATIONS[n]` brings a database of schema version `n` to
/// `n + 1` (version 0 is a new, empty file). Never edit one that was released: add the
/// next, raise [`SCHEMA_VERSION`], and add the fixture of the version it migrates from
/// (`tests/fixtures/schema-v<N>.sqlite`, written by the test
/// `every_schema_version_is_migrated_and_its_rows_read_back` with
/// `UPDATE_SCHEMA_FIXTURES=1`).
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    SCHEMA_V1,
    // v2: the merge policy that decided a result.
    "ALTER TABLE results ADD COLUMN policy TEXT;",
    // v3: merge-policy manifests and activations (read and written by crate::policy).
    SCHEMA_V3,
    // v4: the previous password of a profile, accepted until it expires (rotation).
    "ALTER TABLE profiles ADD COLUMN previous_password_hash TEXT;
     ALTER TABLE profiles ADD COLUMN previous_password_expires INTEGER;",
    // v5: the result a retry names, and an institution's results newest first (the
    // index's order is the report's, read backwards).
    "ALTER TABLE results ADD COLUMN retry_of TEXT;
     CREATE INDEX results_by_institution
         ON results (institution, received_unix, idx, export_id);",
    // v6: search terms, for `record find --isbn|--title` (filled for the records already
    // stored by `fill_terms`, after the SQL).
    "CREATE TABLE record_terms (
         zone TEXT NOT NULL,
         term TEXT NOT NULL,
         mms_id TEXT NOT NULL,
         PRIMARY KEY (zone, term, mms_id)
     );
     CREATE INDEX record_terms_by_record ON record_terms (zone, mms_id);",
    // v6 -> v7: the console's staff accounts.
    "CREATE TABLE staff (
         user TEXT PRIMARY KEY,
         institution TEXT NOT NULL,
         admin INTEGER NOT NULL,
         password_hash TEXT NOT NULL,
         created_unix INTEGER NOT NULL
     );",
];

/// Refuses a database whose schema is newer than this build's ([`Error::Corrupt`], saying
/// so), before anything is written to it: an older binary never changes such a file.
pub(super) fn refuse_newer(conn: &Connection, shown: &str) -> Result<()> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|err| backend(&format!("read the schema version of {shown:?}"), err))?;
    if version > SCHEMA_VERSION {
        return Err(newer(shown, version));
    }
    Ok(())
}

fn newer(shown: &str, version: i64) -> Error {
    Error::Corrupt(format!(
        "database {shown:?} has schema version {version}, newer than the {SCHEMA_VERSION} this build supports: \
         it was written by a newer bibgate; run that version (or newer), this one leaves the file as it is"
    ))
}

/// Brings the schema up to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &mut Connection, shown: &str) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| backend(&format!("begin the schema migration of {shown:?}"), err))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|err| backend(&format!("read the schema version of {shown:?}"), err))?;
    if version > SCHEMA_VERSION {
        return Err(newer(shown, version));
    }
    for (step_idx, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(|err| {
            backend(
                &format!("migrate {shown:?} to schema version {}", step_idx + 1),
                err,
            )
        })?;
    }
    if version < 6 {
        fill_terms(&tx, shown)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|err| backend(&format!("set the schema version of {shown:?}"), err))?;
    }
    tx.commit()
        .map_err(|err| backend(&format!("commit the schema migration of {shown:?}"), err))
}

/// The search terms of every record already stored (schema v6).
fn fill_terms(conn: &Connection, shown: &str) -> Result<()> {
    let what = format!("fill the search terms of {shown:?}");
    let mut select = conn
        .prepare("SELECT zone, mms_id, marc FROM records")
        .map_err(|err| backend(&what, err))?;
    let mut rows = select.query([]).map_err(|err| backend(&what, err))?;
    while let Some(row) = rows.next().map_err(|err| backend(&what, err))? {
        let zone: String = row.get(0).map_err(|err| backend(&what, err))?;
        let mms_id: String = row.get(1).map_err(|err| backend(&what, err))?;
        let marc: Vec<u8> = row.get(2).map_err(|err| backend(&what, err))?;
        super::commit::insert_terms(conn, &zone, &mms_id, &marc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bibgate_store::{Error, Profile, Store};
    use rusqlite::Connection;

    use super::SCHEMA_VERSION;
    use crate::SqliteStore;

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
        // Back to the v3 shape: no previous-password columns (nor v5's retry_of and
        // results_by_institution, v6's search terms or v7's staff accounts).
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE staff;
             DROP TABLE record_terms;
             DROP INDEX results_by_institution;
             ALTER TABLE results DROP COLUMN retry_of;
             ALTER TABLE profiles DROP COLUMN previous_password_expires;
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
    fn a_version_5_database_gets_the_search_terms_of_its_records() {
        use bibgate_store::contract::{ZONE_A, active, add_commit, sample_record, setup_zones};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        setup_zones(&store);
        let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
        let mut marc_record = bibgate_marc::Record::default();
        marc_record.push_data("245", b'1', b'0', &[(b'a', "Migrated title")]);
        let mut marc = Vec::new();
        bibgate_marc::iso2709::write_record(&marc_record, &mut marc).unwrap();
        let record = bibgate_store::StoredRecord {
            marc,
            ..sample_record(ZONE_A, &mms_id, &[active(5)])
        };
        store.commit(&add_commit(&record, &[], "e-1")).unwrap();
        drop(store);
        // Back to the v5 shape: no search terms (nor v7's staff accounts).
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE staff; DROP TABLE record_terms; PRAGMA user_version = 5;")
            .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.find_by_term(ZONE_A, "title:migrated", 10).unwrap(),
            vec![mms_id]
        );
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

    /// Where the committed fixtures are: one database per schema version.
    fn fixture(version: usize) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("schema-v{version}.sqlite"))
    }

    /// The MMS IDs the source data gets (the zone's first two serials).
    struct Source {
        store: std::sync::Arc<SqliteStore>,
        policies: crate::SqlitePolicyStore,
        merged: bibgate_store::MmsId,
        added: bibgate_store::MmsId,
    }

    /// The rows every fixture is made from, written through the current code into `dir`:
    /// zones, a rotated profile, a record added then merged (a prior version), another
    /// added, an editor lock, results (with the policy that decided them) and a published,
    /// activated merge policy.
    fn source(dir: &std::path::Path) -> Source {
        use bibgate_store::contract::{
            ZONE_A, active, add_commit, cancelled, demo_profile, merge_commit, sample_record,
            setup_zones,
        };
        use bibgate_store::policy::{ConfigValue, NewActivation, OnError, PolicyManifest};
        use bibgate_store::{EditorLock, PolicyStore};
        let store = std::sync::Arc::new(SqliteStore::open(&dir.join("source.sqlite")).unwrap());
        setup_zones(&*store);
        store
            .put_profile(&Profile {
                previous_password_hash: Some("$argon2id$v=19$previous".to_owned()),
                previous_password_expires: Some(1_900_000_000),
                ..demo_profile("alpha-connexion", ZONE_A)
            })
            .unwrap();
        let merged = store.allocate_mms_id(ZONE_A).unwrap();
        let record = sample_record(ZONE_A, &merged, &[active(42), cancelled(43)]);
        store
            .commit(&add_commit(&record, &[], "fixture-add"))
            .unwrap();
        let mut revised = record.clone();
        revised.marc.extend_from_slice(b"revised");
        store
            .commit(&merge_commit(&revised, &[42], 1, "fixture-merge"))
            .unwrap();
        let added = store.allocate_mms_id(ZONE_A).unwrap();
        let other = sample_record(ZONE_A, &added, &[active(77)]);
        store
            .commit(&add_commit(&other, &[], "fixture-add-2"))
            .unwrap();
        store
            .put_lock(&EditorLock {
                zone: ZONE_A.to_owned(),
                mms_id: merged.clone(),
                institution: ZONE_A.to_owned(),
                user: "cataloguer".to_owned(),
                since_unix: 1_700_000_500,
                left_unix: Some(1_700_000_600),
            })
            .unwrap();
        store
            .add_staff(&bibgate_store::StaffAccount {
                user: "support".to_owned(),
                institution: ZONE_A.to_owned(),
                admin: false,
                password_hash: "$argon2id$v=19$staff".to_owned(),
                created_unix: 1_700_000_900,
            })
            .unwrap();
        let blobs = std::sync::Arc::new(crate::FolderBlobStore::new(dir.join("blobs")).unwrap());
        let policies = crate::SqlitePolicyStore::shared(store.clone(), blobs);
        let component = b"\0asm fixture";
        let manifest = PolicyManifest {
            sha256: "ab".repeat(32),
            name: "protect-local-fields".to_owned(),
            version: "1.0.0".to_owned(),
            abi: "bibgate:merge-policy@1.0.0".to_owned(),
            size: component.len() as u64,
            fuel: 1_000_000,
            memory_bytes: 16 << 20,
            description: "Keeps local fields.".to_owned(),
            published_by: "fixture".to_owned(),
            published_unix: 1_700_000_700,
        };
        policies.publish(&manifest, component).unwrap();
        policies
            .activate(
                &NewActivation {
                    institution: ZONE_A.to_owned(),
                    sha256: manifest.sha256.clone(),
                    config: vec![
                        (
                            "tags".to_owned(),
                            ConfigValue::Texts(vec!["590".to_owned(), "9XX".to_owned()]),
                        ),
                        ("strict".to_owned(), ConfigValue::Flag(true)),
                    ],
                    on_error: OnError::Hold,
                    activated_by: "fixture".to_owned(),
                    activated_unix: 1_700_000_800,
                },
                0,
            )
            .unwrap();
        Source {
            store,
            policies,
            merged,
            added,
        }
    }

    /// Writes the fixture of schema `version`: the migrations up to it, then every row of
    /// `source` with the columns that version has, in small pages.
    fn write_fixture(version: usize, source: &std::path::Path) {
        let path = fixture(version);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA page_size = 512; PRAGMA journal_mode = DELETE;")
            .unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &super::MIGRATIONS[..version] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", version as i64)
            .unwrap();
        tx.commit().unwrap();
        conn.execute("ATTACH DATABASE ?1 AS source", [source.to_str().unwrap()])
            .unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM main.sqlite_master WHERE type = 'table' ORDER BY rowid")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for table in tables {
            let columns: Vec<String> = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{table}', 'main')"
                ))
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let columns = columns.join(", ");
            conn.execute(
                &format!(
                    "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM source.{table}"
                ),
                [],
            )
            .unwrap();
        }
        conn.execute_batch("DETACH DATABASE source; VACUUM;")
            .unwrap();
    }

    /// Each committed fixture of schema v1..v7 (`UPDATE_SCHEMA_FIXTURES=1` rewrites them
    /// from the migrations) is opened, migrated to the current version, and reads back
    /// every row it holds, as the current code wrote it, less what its version had no
    /// column for; the migrated store takes new writes.
    #[test]
    fn every_schema_version_is_migrated_and_its_rows_read_back() {
        use bibgate_store::PolicyStore;
        use bibgate_store::contract::{ZONE_A, active, add_commit, sample_record};
        let dir = tempfile::tempdir().unwrap();
        let source = source(dir.path());
        let source_path = dir.path().join("source.sqlite");

        let update = std::env::var_os("UPDATE_SCHEMA_FIXTURES").is_some();
        for version in 1..=SCHEMA_VERSION as usize {
            if update {
                write_fixture(version, &source_path);
            }
            let committed = fixture(version);
            assert!(
                committed.exists(),
                "{} is missing: UPDATE_SCHEMA_FIXTURES=1 cargo test -p bibgate-store-local every_schema_version",
                committed.display()
            );
            let path = dir.path().join(format!("v{version}.sqlite"));
            std::fs::copy(&committed, &path).unwrap();
            let conn = Connection::open(&path).unwrap();
            let found: i64 = conn
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .unwrap();
            assert_eq!(found, version as i64);
            drop(conn);

            let store = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
            let want = &source.store;
            assert_eq!(
                store.institutions().unwrap(),
                want.institutions().unwrap(),
                "v{version}"
            );
            let mut profiles = want.profiles(ZONE_A).unwrap();
            if version < 4 {
                for profile in &mut profiles {
                    profile.previous_password_hash = None;
                    profile.previous_password_expires = None;
                }
            }
            assert_eq!(store.profiles(ZONE_A).unwrap(), profiles, "v{version}");
            for mms_id in [&source.merged, &source.added] {
                assert_eq!(
                    store.record(ZONE_A, mms_id).unwrap(),
                    want.record(ZONE_A, mms_id).unwrap(),
                    "v{version}"
                );
                assert_eq!(
                    store.versions(ZONE_A, mms_id).unwrap(),
                    want.versions(ZONE_A, mms_id).unwrap(),
                    "v{version}"
                );
                assert_eq!(
                    store.lock(ZONE_A, mms_id).unwrap(),
                    want.lock(ZONE_A, mms_id).unwrap(),
                    "v{version}"
                );
            }
            assert_eq!(store.versions(ZONE_A, &source.merged).unwrap().len(), 1);
            assert_eq!(
                store.find_by_oclc(ZONE_A, &[42, 43, 77]).unwrap(),
                want.find_by_oclc(ZONE_A, &[42, 43, 77]).unwrap(),
                "v{version}"
            );
            for export_id in ["fixture-add", "fixture-merge", "fixture-add-2"] {
                let mut result = want.result(export_id).unwrap().unwrap();
                if version < 2 {
                    result.policy = None;
                }
                if version < 5 {
                    result.retry_of = None;
                }
                assert_eq!(store.result(export_id).unwrap(), Some(result), "v{version}");
            }
            let blobs =
                std::sync::Arc::new(crate::FolderBlobStore::new(dir.path().join("blobs")).unwrap());
            let policies = crate::SqlitePolicyStore::shared(store.clone(), blobs);
            if version < 3 {
                assert_eq!(policies.published().unwrap(), vec![]);
                assert_eq!(policies.active(ZONE_A).unwrap(), None);
            } else {
                assert_eq!(
                    policies.published().unwrap(),
                    source.policies.published().unwrap()
                );
                assert_eq!(
                    policies.history(ZONE_A).unwrap(),
                    source.policies.history(ZONE_A).unwrap()
                );
            }
            if version < 7 {
                assert_eq!(store.staff_list().unwrap(), vec![], "v{version}");
            } else {
                assert_eq!(
                    store.staff_list().unwrap(),
                    want.staff_list().unwrap(),
                    "v{version}"
                );
            }
            // The migrated store takes new writes; serials are not reused.
            let next = store.allocate_mms_id(ZONE_A).unwrap();
            assert!(next != source.merged && next != source.added, "v{version}");
            let record = sample_record(ZONE_A, &next, &[active(99)]);
            store
                .commit(&add_commit(&record, &[], "after-migration"))
                .unwrap();
            drop(policies);
            drop(store);
            let conn = Connection::open(&path).unwrap();
            let found: i64 = conn
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .unwrap();
            assert_eq!(found, SCHEMA_VERSION, "v{version}");
        }
    }

    /// A database of a newer build (in either journal mode) is refused with a message that
    /// says so, and its file is not changed by a single byte.
    #[test]
    fn a_newer_database_is_refused_and_left_byte_identical() {
        for journal in ["DELETE", "WAL"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.sqlite");
            let store = SqliteStore::open(&path).unwrap();
            bibgate_store::contract::setup_zones(&store);
            drop(store);
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
            conn.pragma_update_and_check(None, "journal_mode", journal, |_| Ok(()))
                .unwrap();
            drop(conn);
            let before = std::fs::read(&path).unwrap();
            let err = SqliteStore::open(&path).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::Corrupt(_)), "{text}");
            assert!(
                text.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
                "{text}"
            );
            assert!(text.contains("newer bibgate"), "{text}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "{journal}: the file changed"
            );
        }
    }
}
