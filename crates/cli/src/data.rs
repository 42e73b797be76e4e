//! The embedded default: a data directory holding the SQLite store and the blob folder.
//! This module is the CLI's composition root for storage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bibgate_store::{BlobStore, Institution, Store, TargetZone, ZoneKind};
use bibgate_store_local::{FolderBlobStore, SqliteStore};

/// The demo consortium's network zone.
pub const DEMO_NETWORK: &str = "01DEMO_NETWORK";
/// The demo institutions.
pub const DEMO_INSTITUTIONS: [&str; 2] = ["01DEMO_ALPHA", "01DEMO_BETA"];

/// An opened data directory.
pub struct Data {
    /// The record store.
    pub store: SqliteStore,
    /// Raw bytes.
    pub blobs: FolderBlobStore,
}

fn store_path(dir: &Path) -> PathBuf {
    dir.join("bibgate.sqlite")
}

/// True when `dir` holds a store.
pub fn exists(dir: &Path) -> bool {
    store_path(dir).exists()
}

/// Opens (creating if needed) the store and blob folder in `dir`.
pub fn open(dir: &Path) -> anyhow::Result<Data> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create {:?}", dir.display().to_string()))?;
    let store = SqliteStore::open(&store_path(dir)).with_context(|| {
        format!(
            "could not open the store in {:?}",
            dir.display().to_string()
        )
    })?;
    let blobs = FolderBlobStore::new(dir.join("blobs")).with_context(|| {
        format!(
            "could not open the blob folder in {:?}",
            dir.display().to_string()
        )
    })?;
    Ok(Data { store, blobs })
}

/// Creates the demo consortium; returns `(institution, password)` for each new profile.
/// Existing institutions and profiles are left as they are.
pub fn init_demo(data: &Data, password: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
    let store: &dyn Store = &data.store;
    let mut created = Vec::new();
    if store.institution(DEMO_NETWORK)?.is_none() {
        store.put_institution(&Institution {
            code: DEMO_NETWORK.into(),
            name: "Demo consortium network zone".into(),
            kind: ZoneKind::Network,
            network: None,
            numeric_code: 1,
        })?;
    }
    for (i, code) in DEMO_INSTITUTIONS.iter().enumerate() {
        if store.institution(code)?.is_none() {
            store.put_institution(&Institution {
                code: (*code).into(),
                name: format!("Demo institution {}", if i == 0 { "Alpha" } else { "Beta" }),
                kind: ZoneKind::Institution,
                network: Some(DEMO_NETWORK.into()),
                numeric_code: 5001 + i as u16,
            })?;
        }
        if store.profiles(code)?.is_empty() {
            let password =
                password.map_or_else(bibgate_import::auth::generate_password, str::to_string);
            let hash =
                bibgate_import::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            store.put_profile(&bibgate_import::default_profile(
                code,
                hash,
                TargetZone::Institution,
            ))?;
            created.push(((*code).to_string(), password));
        }
    }
    Ok(created)
}

/// Opens `dir`, creating the demo consortium first when it holds no store yet (so the quick
/// start needs no configuration). Prints the generated credentials once.
pub fn open_or_init(dir: &Path, err: &mut impl std::io::Write) -> anyhow::Result<Data> {
    let fresh = !exists(dir);
    let data = open(dir)?;
    if fresh {
        let created = init_demo(&data, None)?;
        writeln!(
            err,
            "created the demo consortium in {} (network zone {DEMO_NETWORK})",
            dir.display()
        )?;
        for (code, password) in created {
            writeln!(
                err,
                "  Connexion logon {code}, password {password} (shown once)"
            )?;
        }
    }
    Ok(data)
}

/// The blob store as the port.
pub fn blobs(data: &Data) -> &dyn BlobStore {
    &data.blobs
}

/// The AWS backend: DynamoDB `table` and S3 `bucket`, configured from the standard `AWS_*`
/// environment (credentials, region, `AWS_ENDPOINT_URL*` for local endpoints). Large MARC
/// goes to the same bucket under `marc/`.
pub fn open_aws(bucket: &str, table: &str) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn BlobStore>)> {
    let context = bibgate_store_aws::AwsContext::from_env()
        .context("could not load the aws configuration")?;
    let blobs = bibgate_store_aws::S3BlobStore::new(&context, bucket);
    let store =
        bibgate_store_aws::DynamoStore::new(&context, table).with_marc_bucket(blobs.clone());
    Ok((Arc::new(store), Arc::new(blobs)))
}

/// How old a temporary file in the blob folder must be before a sweep removes it: a write
/// in progress touched its file seconds ago.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Removes, on a background thread, the temporary files that writes interrupted by a kill
/// left in the blob folder more than an hour ago (`FolderBlobStore::remove_stale_temporaries`),
/// and logs how many. The long-running commands call it at start; it walks the whole folder
/// once, so it does not hold up the start.
pub fn sweep_stale_temporaries(blobs: &FolderBlobStore) {
    let blobs = blobs.clone();
    let spawned = std::thread::Builder::new()
        .name("bibgate-sweep".into())
        .spawn(
            move || match blobs.remove_stale_temporaries(STALE_TEMPORARY) {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::info!(
                        removed,
                        "removed temporary files left by interrupted writes"
                    );
                }
                Err(error) => tracing::warn!(%error, "could not remove stale temporary files"),
            },
        );
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the sweep of stale temporary files");
    }
}
