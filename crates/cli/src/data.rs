//! The CLI's composition root for storage: [`Backend`] says where the stores are (the one
//! place a backend is chosen), and [`Data`] opens each store a command uses on it, once.
//!
//! Stores are opened when a command first asks for them, so a command opens only what it
//! uses (`policy publish` never opens the record store) and never opens a store twice
//! (`import` reads records and policies from one [`Data`], with one blob folder).
//! On the local backend the record store and the policy store share one `SqliteStore` (one
//! pool of connections to the database file).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use bibgate_plugin_host::{WasmEngine, WasmPolicyRunner};
use bibgate_store::{BlobLogonLocks, BlobStore, LogonLocks, PolicyStore, Store};
use bibgate_store_local::{FolderBlobStore, SqlitePolicyStore, SqliteStore};
use clap::ValueEnum;

/// The demo consortium's network zone.
pub const DEMO_NETWORK: &str = "01DEMO_NETWORK";
/// The demo institutions.
pub const DEMO_INSTITUTIONS: [&str; 2] = ["01DEMO_ALPHA", "01DEMO_BETA"];

/// The storage backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The data directory (SQLite + blob folder); the processor runs in this process.
    Local,
    /// DynamoDB + S3 (endpoints from the standard `AWS_*` variables); the import processor
    /// is the Lambda function, so this process is the shim only.
    Aws,
}

/// Where every command finds its stores (global options).
#[derive(Clone, Debug, clap::Args)]
pub struct BackendArgs {
    /// Storage backend: the data directory, or DynamoDB + S3 (endpoints from the standard
    /// `AWS_*` variables).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "BIBGATE_BACKEND",
        default_value = "local"
    )]
    pub backend: BackendKind,
    /// S3 bucket (with --backend aws).
    #[arg(long, global = true, env = "BIBGATE_BUCKET")]
    pub bucket: Option<String>,
    /// DynamoDB table (with --backend aws).
    #[arg(long, global = true, env = "BIBGATE_TABLE")]
    pub table: Option<String>,
}

/// Where the stores are.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A data directory: the SQLite database `bibgate.sqlite` (records, profiles, results,
    /// merge policies) and the blob folder `blobs/` (raw bytes, policy components).
    Local(PathBuf),
    /// A DynamoDB table and an S3 bucket (large MARC goes to the same bucket under
    /// `marc/`), configured from the standard `AWS_*` environment (credentials, region,
    /// `AWS_ENDPOINT_URL*` for local endpoints).
    Aws {
        /// The S3 bucket.
        bucket: String,
        /// The DynamoDB table.
        table: String,
    },
}

impl Backend {
    /// The backend the options name; `data_dir` is the local one.
    pub fn new(data_dir: &Path, args: &BackendArgs) -> anyhow::Result<Backend> {
        match (args.backend, &args.bucket, &args.table) {
            (BackendKind::Aws, Some(bucket), Some(table)) => Ok(Backend::Aws {
                bucket: bucket.clone(),
                table: table.clone(),
            }),
            (BackendKind::Aws, _, _) => bail!(
                "--backend aws needs --bucket and --table (or BIBGATE_BUCKET and BIBGATE_TABLE)"
            ),
            (BackendKind::Local, _, _) => Ok(Backend::Local(data_dir.to_path_buf())),
        }
    }

    /// Which kind of backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Local(_) => BackendKind::Local,
            Backend::Aws { .. } => BackendKind::Aws,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(dir) => write!(f, "{}", dir.display()),
            Backend::Aws { bucket, table } => {
                write!(f, "dynamodb table {table} and s3 bucket {bucket}")
            }
        }
    }
}

/// The stores of one backend, each opened at most once, when first used.
pub struct Data {
    backend: Backend,
    /// Raw bytes (and, on the local backend, policy components).
    pub blobs: Arc<dyn BlobStore>,
    /// The blob folder of the local backend (for its sweep).
    folder: Option<FolderBlobStore>,
    store: OnceLock<Arc<dyn Store>>,
    /// The local backend's database, shared by the record and the policy store.
    sqlite: OnceLock<Arc<SqliteStore>>,
    policies: OnceLock<Arc<dyn PolicyStore>>,
    runner: OnceLock<Arc<WasmPolicyRunner>>,
    /// The AWS configuration and its runtime (the AWS backend), shared by its stores.
    aws: Option<bibgate_store_aws::AwsContext>,
}

fn store_path(dir: &Path) -> PathBuf {
    dir.join("bibgate.sqlite")
}

/// The value in `cell`, made by `make` the first time.
fn once<T>(cell: &OnceLock<T>, make: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<&T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = make()?;
    Ok(cell.get_or_init(|| value))
}

impl Data {
    /// Opens the backend; on the local one, the data directory and its blob folder are
    /// created when missing (and the store when first used).
    pub fn open(backend: &Backend) -> anyhow::Result<Data> {
        match backend {
            Backend::Local(dir) => {
                // Owner-only: the data directory holds password hashes and records.
                bibgate_store_local::create_private_dir_all(dir)
                    .with_context(|| format!("could not create {:?}", dir.display().to_string()))?;
                let folder = FolderBlobStore::new(dir.join("blobs")).with_context(|| {
                    format!(
                        "could not open the blob folder in {:?}",
                        dir.display().to_string()
                    )
                })?;
                Ok(Data {
                    backend: backend.clone(),
                    blobs: Arc::new(folder.clone()),
                    folder: Some(folder),
                    store: OnceLock::new(),
                    sqlite: OnceLock::new(),
                    policies: OnceLock::new(),
                    runner: OnceLock::new(),
                    aws: None,
                })
            }
            Backend::Aws { bucket, table } => {
                let context = bibgate_store_aws::AwsContext::from_env()
                    .context("could not load the aws configuration")?;
                let blobs = bibgate_store_aws::S3BlobStore::new(&context, bucket);
                let store = bibgate_store_aws::DynamoStore::new(&context, table)
                    .with_marc_bucket(blobs.clone());
                Ok(Data {
                    backend: backend.clone(),
                    blobs: Arc::new(blobs),
                    folder: None,
                    store: OnceLock::from(Arc::new(store) as Arc<dyn Store>),
                    sqlite: OnceLock::new(),
                    policies: OnceLock::new(),
                    runner: OnceLock::new(),
                    aws: Some(context),
                })
            }
        }
    }

    /// Opens a backend that must hold a store already: a local data directory without one
    /// is an error (and is left as it is).
    pub fn open_existing(backend: &Backend) -> anyhow::Result<Data> {
        if let Backend::Local(dir) = backend
            && !store_path(dir).exists()
        {
            bail!(
                "no store in {:?} (run bibgate init, or pass --data-dir)",
                dir.display().to_string()
            );
        }
        Data::open(backend)
    }

    /// Opens the backend, creating the demo consortium first when a local data directory
    /// holds no store yet (so the quick start needs no configuration). Prints the
    /// generated credentials once.
    pub fn open_or_init(backend: &Backend, err: &mut impl std::io::Write) -> anyhow::Result<Data> {
        let fresh = matches!(backend, Backend::Local(dir) if !store_path(dir).exists());
        let data = Data::open(backend)?;
        if fresh {
            let created = init_demo(&data, None)?;
            writeln!(
                err,
                "created the demo consortium in {backend} (network zone {DEMO_NETWORK})"
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

    /// The logon locks every shim of the backend shares: files under `logon-locks/` in the
    /// blob folder, or items of the DynamoDB table.
    pub fn logon_locks(&self) -> anyhow::Result<Arc<dyn LogonLocks>> {
        Ok(match (&self.backend, &self.aws) {
            (Backend::Aws { table, .. }, Some(context)) => {
                Arc::new(bibgate_store_aws::DynamoLogonLocks::new(context, table))
            }
            (Backend::Aws { .. }, None) => bail!("the aws configuration was not loaded"),
            (Backend::Local(_), _) => Arc::new(BlobLogonLocks::new(self.blobs.clone())),
        })
    }

    /// The AWS configuration of the AWS backend (`None` on the local one).
    pub fn aws_context(&self) -> Option<&bibgate_store_aws::AwsContext> {
        self.aws.as_ref()
    }

    /// Where the stores are.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The local backend's database, opened once.
    fn sqlite(&self, dir: &Path) -> anyhow::Result<Arc<SqliteStore>> {
        once(&self.sqlite, || {
            let store = SqliteStore::open(&store_path(dir)).with_context(|| {
                format!(
                    "could not open the store in {:?}",
                    dir.display().to_string()
                )
            })?;
            Ok(Arc::new(store))
        })
        .cloned()
    }

    /// The local backend's database and blob folder (for `backup` and `verify`).
    pub fn local_stores(&self) -> anyhow::Result<(Arc<SqliteStore>, FolderBlobStore)> {
        match (&self.backend, &self.folder) {
            (Backend::Local(dir), Some(folder)) => Ok((self.sqlite(dir)?, folder.clone())),
            _ => bail!(crate::cmd::backup::AWS_INSTEAD),
        }
    }

    /// The record store.
    pub fn store(&self) -> anyhow::Result<&Arc<dyn Store>> {
        once(&self.store, || match &self.backend {
            Backend::Local(dir) => Ok(self.sqlite(dir)? as Arc<dyn Store>),
            // Opened with the backend.
            Backend::Aws { .. } => bail!("the aws record store was not opened"),
        })
    }

    /// The merge-policy store: manifests and activations in the database, components in
    /// the blob store.
    pub fn policy_store(&self) -> anyhow::Result<&Arc<dyn PolicyStore>> {
        once(&self.policies, || match &self.backend {
            Backend::Local(dir) => Ok(Arc::new(SqlitePolicyStore::shared(
                self.sqlite(dir)?,
                self.blobs.clone(),
            )) as Arc<dyn PolicyStore>),
            Backend::Aws { bucket, table } => {
                let Some(context) = &self.aws else {
                    bail!("the aws configuration was not loaded");
                };
                let blobs = bibgate_store_aws::S3BlobStore::new(context, bucket);
                Ok(Arc::new(bibgate_store_aws::DynamoPolicyStore::new(
                    context, table, blobs,
                )) as Arc<dyn PolicyStore>)
            }
        })
    }

    /// The wasmtime runner of the institutions' active merge policies (activations are
    /// re-read every couple of seconds, so a policy activated while it runs takes effect).
    pub fn policy_runner(&self) -> anyhow::Result<Arc<WasmPolicyRunner>> {
        let policies = self.policy_store()?;
        once(&self.runner, || {
            let engine = Arc::new(WasmEngine::new()?);
            Ok(Arc::new(WasmPolicyRunner::new(engine, policies.clone())))
        })
        .cloned()
    }

    /// [`Data::policy_runner`], or `None` when no policy was ever published (nothing to
    /// run, no engine started).
    pub fn published_policy_runner(&self) -> anyhow::Result<Option<Arc<WasmPolicyRunner>>> {
        if self.policy_store()?.published()?.is_empty() {
            return Ok(None);
        }
        self.policy_runner().map(Some)
    }

    /// Where the drop folders are, for people: a folder or an S3 prefix.
    pub fn drop_root(&self) -> String {
        match &self.backend {
            Backend::Local(dir) => dir.join("blobs").join("drop").display().to_string(),
            Backend::Aws { bucket, .. } => format!("s3://{bucket}/drop"),
        }
    }

    /// Removes, on a background thread, the temporary files that writes interrupted by a
    /// kill left in the local blob folder more than an hour ago
    /// (`FolderBlobStore::remove_stale_temporaries`), and logs how many. The long-running
    /// commands call it at start; it walks the whole folder once, so it does not hold up
    /// the start. Nothing to do on S3 (its writes are atomic).
    pub fn sweep_stale_temporaries(&self) {
        let Some(blobs) = self.folder.clone() else {
            return;
        };
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
}

/// How old a temporary file in the blob folder must be before a sweep removes it: a write
/// in progress touched its file seconds ago.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// The demo consortium's file (`bibgate init` applies it).
pub const DEMO_CONSORTIUM: &str = include_str!("demo-consortium.toml");

/// Applies the demo consortium ([`DEMO_CONSORTIUM`]); returns `(institution, password)` for
/// each new profile (`password`, or a generated one). What exists already is kept.
pub fn init_demo(data: &Data, password: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
    let store = data.store()?;
    let file = crate::cmd::consortium::parse(DEMO_CONSORTIUM)?;
    let plan = crate::cmd::consortium::plan(&**store, &file)?;
    let created = crate::cmd::consortium::apply(&**store, plan, password)?;
    Ok(created
        .into_iter()
        .map(|(_, logon, password)| (logon, password))
        .collect())
}
