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
const SCHEMA_VERSION: i64 = 6;

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

/// Brings the schema up to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &mut Connection, shown: &str) -> Result<()> {
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
        // v3: merge-policy manifests and activations (read and written by crate::policy).
        tx.execute_batch(SCHEMA_V3)
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
    if version < 5 {
        // v5: the result a retry names, and an institution's results newest first (the
        // index's order is the report's, read backwards).
        tx.execute_batch(
            "ALTER TABLE results ADD COLUMN retry_of TEXT;
             CREATE INDEX results_by_institution
                 ON results (institution, received_unix, idx, export_id);",
        )
        .map_err(|err| backend(&format!("migrate {shown:?} to schema version 5"), err))?;
    }
    if version < 6 {
        // v6: search terms, for `record find --isbn|--title`.
        tx.execute_batch(
            "CREATE TABLE record_terms (
                 zone TEXT NOT NULL,
                 term TEXT NOT NULL,
                 mms_id TEXT NOT NULL,
                 PRIMARY KEY (zone, term, mms_id)
             );
             CREATE INDEX record_terms_by_record ON record_terms (zone, mms_id);",
        )
        .map_err(|err| backend(&format!("migrate {shown:?} to schema version 6"), err))?;
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
        // results_by_institution).
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE record_terms;
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
        // Back to the v5 shape: no search terms.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE record_terms; PRAGMA user_version = 5;")
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
}
