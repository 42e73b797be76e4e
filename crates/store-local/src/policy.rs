//! The [`PolicyStore`] port on SQLite (manifests, activation pointers and their history)
//! plus a [`BlobStore`] (component bytes and derived artifacts).
//!
//! Tables (created by the schema v3 migration, `src/sqlite/schema.rs`): `policy_manifests`
//! (by `sha256`), `policy_activations` (by `(institution, revision)`, the history) and
//! `policy_config` (by `(institution, revision, name)`). The active pointer is the highest
//! revision; activation checks it and inserts the next one in one `BEGIN IMMEDIATE`
//! transaction, which makes it a compare-and-swap.

use std::sync::Arc;

use bibgate_store::policy::{
    Activation, ConfigValue, NewActivation, OnError, PolicyManifest, artifact_key, derived_key,
    is_sha256_hex,
};
use bibgate_store::{BlobStore, Error, PolicyStore, Result};
use rusqlite::{OptionalExtension, params};

use crate::SqliteStore;
use crate::sqlite::{backend, to_sql_u64};

/// The [`PolicyStore`] port over a [`SqliteStore`] database and a blob store.
pub struct SqlitePolicyStore {
    db: Arc<SqliteStore>,
    blobs: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for SqlitePolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePolicyStore")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl SqlitePolicyStore {
    /// Policies in `db` (its own connection to the database file, or an in-memory one) with
    /// their bytes in `blobs`.
    pub fn new(db: SqliteStore, blobs: Arc<dyn BlobStore>) -> SqlitePolicyStore {
        SqlitePolicyStore::shared(Arc::new(db), blobs)
    }

    /// The same, on a database the record store also uses (one pool of connections).
    pub fn shared(db: Arc<SqliteStore>, blobs: Arc<dyn BlobStore>) -> SqlitePolicyStore {
        SqlitePolicyStore { db, blobs }
    }
}

const MANIFEST_COLUMNS: &str = "sha256, name, version, abi, size, fuel, memory_bytes, description, published_by, published_unix";

fn manifest_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyManifest> {
    let size: i64 = row.get(4)?;
    let fuel: i64 = row.get(5)?;
    let memory: i64 = row.get(6)?;
    Ok(PolicyManifest {
        sha256: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        abi: row.get(3)?,
        size: u64::try_from(size).unwrap_or(0),
        fuel: u64::try_from(fuel).unwrap_or(0),
        memory_bytes: u64::try_from(memory).unwrap_or(0),
        description: row.get(7)?,
        published_by: row.get(8)?,
        published_unix: row.get(9)?,
    })
}

fn load_activations(
    conn: &rusqlite::Connection,
    institution: &str,
    only_latest: bool,
) -> Result<Vec<Activation>> {
    let what = format!("read the policy activations of {institution:?}");
    let sql = format!(
        "SELECT a.revision, a.sha256, m.name, a.on_error, a.activated_by, a.activated_unix
         FROM policy_activations a JOIN policy_manifests m ON m.sha256 = a.sha256
         WHERE a.institution = ?1 ORDER BY a.revision {}",
        if only_latest { "DESC LIMIT 1" } else { "ASC" }
    );
    let mut statement = conn.prepare_cached(&sql).map_err(|e| backend(&what, e))?;
    let rows = statement
        .query_map(params![institution], |row| {
            let revision: i64 = row.get(0)?;
            let on_error: String = row.get(3)?;
            Ok((
                revision,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                on_error,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })
        .map_err(|e| backend(&what, e))?;
    let mut activations = Vec::new();
    for row in rows {
        let (revision, sha256, name, on_error, activated_by, activated_unix) =
            row.map_err(|e| backend(&what, e))?;
        let on_error = OnError::parse(&on_error)
            .ok_or_else(|| Error::Corrupt(format!("policy failure setting {on_error:?}")))?;
        let mut config_statement = conn
            .prepare_cached(
                "SELECT name, value FROM policy_config
                 WHERE institution = ?1 AND revision = ?2 ORDER BY position",
            )
            .map_err(|e| backend(&what, e))?;
        let config = config_statement
            .query_map(params![institution, revision], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| backend(&what, e))?
            .map(|row| {
                let (name, value) = row.map_err(|e| backend(&what, e))?;
                Ok((name, ConfigValue::decode(&value)?))
            })
            .collect::<Result<Vec<_>>>()?;
        activations.push(Activation {
            institution: institution.to_string(),
            revision: u64::try_from(revision).unwrap_or(0),
            name,
            sha256,
            config,
            on_error,
            activated_by,
            activated_unix,
        });
    }
    Ok(activations)
}

fn check_sha(sha256: &str) -> Result<()> {
    if is_sha256_hex(sha256) {
        Ok(())
    } else {
        Err(Error::NotFound(format!("policy {sha256:?} (not a sha256)")))
    }
}

impl PolicyStore for SqlitePolicyStore {
    fn publish(&self, manifest: &PolicyManifest, component: &[u8]) -> Result<bool> {
        check_sha(&manifest.sha256)?;
        if self.manifest(&manifest.sha256)?.is_some() {
            return Ok(false);
        }
        // Bytes first: a manifest never names bytes that are not there.
        self.blobs.put(&artifact_key(&manifest.sha256), component)?;
        let what = format!("publish policy {}", manifest.sha256);
        self.db.write(&what, |tx| {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO policy_manifests
                     (sha256, name, version, abi, size, fuel, memory_bytes, description,
                      published_by, published_unix, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                             (SELECT COALESCE(MAX(seq), 0) + 1 FROM policy_manifests))",
                    params![
                        manifest.sha256,
                        manifest.name,
                        manifest.version,
                        manifest.abi,
                        to_sql_u64(manifest.size, "policy size")?,
                        to_sql_u64(manifest.fuel, "fuel")?,
                        to_sql_u64(manifest.memory_bytes, "memory cap")?,
                        manifest.description,
                        manifest.published_by,
                        manifest.published_unix,
                    ],
                )
                .map_err(|e| backend(&what, e))?;
            Ok(inserted == 1)
        })
    }

    fn manifest(&self, sha256: &str) -> Result<Option<PolicyManifest>> {
        let what = format!("read policy {sha256}");
        self.db.read(|conn| {
            conn.query_row(
                &format!("SELECT {MANIFEST_COLUMNS} FROM policy_manifests WHERE sha256 = ?1"),
                params![sha256],
                manifest_of,
            )
            .optional()
            .map_err(|e| backend(&what, e))
        })
    }

    fn published(&self) -> Result<Vec<PolicyManifest>> {
        let what = "list published policies";
        self.db.read(|conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {MANIFEST_COLUMNS} FROM policy_manifests ORDER BY seq"
                ))
                .map_err(|e| backend(what, e))?;
            let rows = statement
                .query_map([], manifest_of)
                .map_err(|e| backend(what, e))?;
            rows.map(|row| row.map_err(|e| backend(what, e))).collect()
        })
    }

    fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        check_sha(sha256)?;
        self.blobs.get(&artifact_key(sha256))
    }

    fn put_derived(&self, sha256: &str, name: &str, bytes: &[u8]) -> Result<()> {
        check_sha(sha256)?;
        if name.is_empty() || name.contains('/') || name == "policy.wasm" {
            return Err(Error::Backend(format!(
                "could not store derived artifact {name:?}: not a plain file name"
            )));
        }
        self.blobs.put(&derived_key(sha256, name), bytes)
    }

    fn derived(&self, sha256: &str, name: &str) -> Result<Option<Vec<u8>>> {
        check_sha(sha256)?;
        self.blobs.get(&derived_key(sha256, name))
    }

    fn activate(&self, activation: &NewActivation, expected: u64) -> Result<Activation> {
        let institution = activation.institution.as_str();
        let what = format!("activate policy {} for {institution:?}", activation.sha256);
        let revision = self.db.write(&what, |tx| {
            let current: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(revision), 0) FROM policy_activations WHERE institution = ?1",
                    params![institution],
                    |row| row.get(0),
                )
                .map_err(|e| backend(&what, e))?;
            if u64::try_from(current).ok() != Some(expected) {
                return Err(Error::Conflict(format!(
                    "the policy pointer of {institution} is at revision {current}, not {expected}"
                )));
            }
            let published: Option<String> = tx
                .query_row(
                    "SELECT sha256 FROM policy_manifests WHERE sha256 = ?1",
                    params![activation.sha256],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| backend(&what, e))?;
            if published.is_none() {
                return Err(Error::NotFound(format!("policy {}", activation.sha256)));
            }
            let revision = current + 1;
            tx.execute(
                "INSERT INTO policy_activations
                 (institution, revision, sha256, on_error, activated_by, activated_unix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    institution,
                    revision,
                    activation.sha256,
                    activation.on_error.as_str(),
                    activation.activated_by,
                    activation.activated_unix
                ],
            )
            .map_err(|e| backend(&what, e))?;
            for (position, (name, value)) in activation.config.iter().enumerate() {
                tx.execute(
                    "INSERT INTO policy_config (institution, revision, position, name, value)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        institution,
                        revision,
                        i64::try_from(position).unwrap_or(i64::MAX),
                        name,
                        value.encode()
                    ],
                )
                .map_err(|e| backend(&what, e))?;
            }
            Ok(revision)
        })?;
        self.history(institution)?
            .into_iter()
            .find(|a| i64::try_from(a.revision).ok() == Some(revision))
            .ok_or_else(|| Error::Backend(format!("could not read back {what}")))
    }

    fn active(&self, institution: &str) -> Result<Option<Activation>> {
        self.db
            .read(|conn| load_activations(conn, institution, true))
            .map(|mut v| v.pop())
    }

    fn history(&self, institution: &str) -> Result<Vec<Activation>> {
        self.db
            .read(|conn| load_activations(conn, institution, false))
    }
}
