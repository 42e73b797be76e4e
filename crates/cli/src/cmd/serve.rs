//! `bibgate serve` (the Connexion gateway and the processor in one process) and
//! `bibgate process` (the processor alone).

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bibgate_gateway::{Config, ProcessorConfig};
use bibgate_inbox::{ResultDelivery, Services};

use crate::data::{Backend, BackendKind, Data};

/// The line that tells where the drop folders are.
fn write_drop_folders(
    out: &mut impl Write,
    drop_root: &str,
    institutions: &[String],
) -> std::io::Result<()> {
    writeln!(
        out,
        "drop folders: {drop_root}/<institution>/ for {}",
        if institutions.is_empty() {
            "(no institution with a Connexion profile yet)".to_string()
        } else {
            institutions.join(", ")
        }
    )
}

/// A multi-threaded tokio runtime with a bounded blocking pool
/// ([`bibgate_gateway::runtime`]).
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    bibgate_gateway::runtime().context("could not start the async runtime")
}

/// Arguments of `bibgate serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:5500")]
    listen: String,
    #[command(flatten)]
    processor: ServeProcessorArgs,
    /// An optional TLS listener.
    #[command(flatten)]
    tls: TlsListenArgs,
    /// Also serve Prometheus metrics at /metrics and a health check at /health on this
    /// address and port (e.g. 127.0.0.1:9500).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<String>,
    /// Also serve the staff console on this address and port (e.g. 127.0.0.1:8080); staff
    /// sign in with the accounts of `bibgate staff add`.
    #[arg(long, value_name = "ADDR:PORT")]
    console: Option<String>,
    /// The console is reached over TLS (a TLS-terminating load balancer in front): its
    /// cookies are marked Secure.
    #[arg(long, requires = "console")]
    console_secure: bool,
    /// A TOML file of these settings (and `data-dir`), under the flags' names; flags given
    /// on the command line win over it.
    #[arg(long, env = "BIBGATE_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

impl ServeArgs {
    /// Takes each setting of the `--config` file that `explicit` (by argument id) says was
    /// not given on the command line or by its variable; returns the file's `data-dir`
    /// (the caller applies it unless `--data-dir` was given).
    pub fn apply_config(
        &mut self,
        explicit: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<Option<std::path::PathBuf>> {
        let Some(path) = &self.config else {
            return Ok(None);
        };
        let config = crate::cmd::serve_config::load(path)?;
        let take = |id: &str| !explicit(id);
        if let Some(listen) = config.listen.filter(|_| take("listen")) {
            self.listen = listen;
        }
        if let Some(metrics) = config.metrics.filter(|_| take("metrics")) {
            self.metrics = Some(metrics);
        }
        let tls = &mut self.tls;
        if let Some(cert) = config.tls_cert.filter(|_| take("tls_cert")) {
            tls.tls_cert = Some(cert);
        }
        if let Some(key) = config.tls_key.filter(|_| take("tls_key")) {
            tls.tls_key = Some(key);
        }
        if tls.tls_cert.is_some() != tls.tls_key.is_some() {
            anyhow::bail!(
                "a TLS certificate needs its key and a key its certificate (tls-cert and tls-key)"
            );
        }
        if let Some(tls_listen) = config.tls_listen.filter(|_| take("tls_listen")) {
            tls.tls_listen = tls_listen;
        }
        if let Some(no_plain) = config.no_plain.filter(|_| take("no_plain")) {
            tls.no_plain = no_plain;
        }
        if tls.no_plain && tls.tls_cert.is_none() {
            anyhow::bail!("no-plain needs a TLS listener (tls-cert and tls-key)");
        }
        let processor = &mut self.processor;
        if let Some(no_processor) = config.no_processor.filter(|_| take("no_processor")) {
            processor.no_processor = no_processor;
        }
        if let Some(chunk) = config.drop_chunk.filter(|_| take("drop_chunk")) {
            processor.processor.drop_chunk = Some(chunk);
        }
        if let Some(settle) = config.drop_settle_ms.filter(|_| take("drop_settle_ms")) {
            processor.processor.drop_settle_ms = Some(settle);
        }
        Ok(config.data_dir)
    }
}

/// Arguments of `bibgate process`.
#[derive(clap::Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    processor: ProcessorArgs,
}

/// The TLS listener of `bibgate serve` (the Connexion client speaks plain TCP: TLS is for a
/// TLS-terminating front near the clients, or `bibgate send --tls`).
#[derive(Clone, Debug, clap::Args)]
pub struct TlsListenArgs {
    /// PEM certificate chain (leaf first): also serve TLS on --tls-listen.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Address and port of the TLS listener.
    #[arg(long, default_value = "0.0.0.0:5501", requires = "tls_cert")]
    pub tls_listen: String,
    /// Serve TLS only (no plain listener on --listen).
    #[arg(long, requires = "tls_cert")]
    pub no_plain: bool,
}

impl TlsListenArgs {
    fn server(&self) -> anyhow::Result<Option<bibgate_gateway::TlsServer>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Ok(Some(bibgate_gateway::TlsServer::from_pem_files(cert, key)?))
            }
            _ => Ok(None),
        }
    }
}

/// The processor's settings (`bibgate serve` and `bibgate process`).
#[derive(Clone, Debug, clap::Args)]
pub struct ProcessorArgs {
    /// Records of a drop file decided and committed together, in one durable transaction
    /// [default: 2000].
    #[arg(long, env = "BIBGATE_DROP_CHUNK")]
    pub drop_chunk: Option<NonZeroUsize>,
    /// Milliseconds a drop file must stay unchanged before it is imported [default: 2000].
    #[arg(long, env = "BIBGATE_DROP_SETTLE_MS")]
    pub drop_settle_ms: Option<u64>,
}

impl ProcessorArgs {
    fn config(&self) -> ProcessorConfig {
        let defaults = ProcessorConfig::default();
        ProcessorConfig {
            drop_chunk: self
                .drop_chunk
                .map_or(defaults.drop_chunk, NonZeroUsize::get),
            drop_settle: self
                .drop_settle_ms
                .map_or(defaults.drop_settle, Duration::from_millis),
            ..defaults
        }
    }
}

/// The processor options of `bibgate serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeProcessorArgs {
    /// Run the gateway only (local backend): the processor runs in another process
    /// (`bibgate process` on the same data directory), and replies come from its result
    /// documents.
    #[arg(long)]
    pub no_processor: bool,
    #[command(flatten)]
    pub processor: ProcessorArgs,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Listens for ctrl-c (SIGINT) and, on Unix, SIGTERM from now on (the handlers are
/// installed before this returns, so a signal sent once a caller said it started is never
/// missed); the future completes on the first of them. Call within the runtime.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt =
            signal(SignalKind::interrupt()).context("could not listen for SIGINT")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("could not listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Runs the processor alone on the data directory (inbox and drop folders) until ctrl-c or
/// SIGTERM; it finishes the pass in progress first. The gateway runs elsewhere
/// (`bibgate serve --no-processor`). Both share the store (SQLite in WAL mode) and the blob
/// folder; a processor killed at any point leaves work that the next one completes.
pub fn process(backend: &Backend, args: &ProcessArgs) -> anyhow::Result<ExitCode> {
    let args = &args.processor;
    init_tracing();
    let data = Data::open_existing(backend)?;
    // Shims on this data directory read the results from the same database.
    let services = Services::new(data.store()?.clone(), data.blobs.clone())
        .with_delivery(ResultDelivery::Store)
        .with_policies(data.policy_runner()?);
    let drop_root = data.drop_root();
    let config = args.config();
    runtime()?.block_on(async move {
        let stop = stop_signal()?;
        // After the signal handlers, so that a stop at any moment is graceful.
        data.sweep_stale_temporaries();
        let institutions = bibgate_inbox::ensure_drop_folders(&services)
            .context("could not create the drop folders")?;
        let mut out = std::io::stdout();
        writeln!(out, "bibgate processor started on {backend}")?;
        write_drop_folders(&mut out, &drop_root, &institutions)?;
        writeln!(out, "press ctrl-c to stop")?;
        out.flush()?;
        bibgate_gateway::spawn_processor(services, config, stop)
            .await
            .context("the processor failed")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// What `/metrics` and `/health` read: the blob store, and on the local backend the
/// database's write check.
fn metrics_sources(data: &Data) -> anyhow::Result<bibgate_gateway::MetricsSources> {
    let mut probes: Vec<(&'static str, bibgate_gateway::Probe)> = Vec::new();
    if data.backend().kind() == BackendKind::Local {
        let (sqlite, _) = data.local_stores()?;
        probes.push((
            "store",
            Arc::new(move || sqlite.check_writable().map_err(|error| error.to_string())),
        ));
    }
    Ok(bibgate_gateway::MetricsSources {
        blobs: data.blobs.clone(),
        probes,
    })
}

/// Runs the gateway (and, with the local backend, the processor unless `--no-processor`)
/// until ctrl-c or SIGTERM.
pub fn serve(backend: &Backend, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        listen,
        processor,
        tls,
        metrics,
        console,
        console_secure,
        ..
    } = args;
    init_tracing();
    // Read the certificate before anything starts, so a bad file fails at once.
    let tls_server = tls.server()?;
    let data = Arc::new(Data::open_or_init(backend, &mut std::io::stderr())?);
    let drop_root = data.drop_root();
    let kind = backend.kind();
    let in_process = kind == BackendKind::Local && !processor.no_processor;
    let processor_config = processor.processor.config();
    // The embedded backend's shim reads results from the database the processor writes
    // them to; with S3 + DynamoDB it polls the Lambda function's result documents.
    let delivery = match kind {
        BackendKind::Local => ResultDelivery::Store,
        BackendKind::Aws => ResultDelivery::Documents,
    };
    let mut store = data.store()?.clone();
    if metrics.is_some() {
        // Counts every stored result and times every commit, for /metrics.
        store = Arc::new(bibgate_inbox::metrics::MeteredStore::new(store));
    }
    let metrics_sources = match metrics {
        Some(_) => Some(metrics_sources(&data)?),
        None => None,
    };
    // Logon locks shared with every other shim of the backend (and `profile unlock`).
    let mut services = Services::new(store, data.blobs.clone())
        .with_delivery(delivery)
        .with_logon_locks(data.logon_locks()?);
    if in_process {
        // Activations are read every couple of seconds, so a policy activated while the
        // server runs takes effect without a restart.
        services = services.with_policies(data.policy_runner()?);
    }
    runtime()?.block_on(async move {
        // Before anything is announced, so that a SIGTERM (a service manager stopping the
        // server) or ctrl-c at any moment shuts down gracefully.
        let stop = stop_signal()?;
        data.sweep_stale_temporaries();
        let mut listeners = bibgate_gateway::Listeners::default();
        if !tls.no_plain {
            listeners.plain = Some(
                tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("could not listen on {listen:?}"))?,
            );
        }
        if let Some(server) = tls_server {
            let tls_listen = &tls.tls_listen;
            let listener = tokio::net::TcpListener::bind(tls_listen)
                .await
                .with_context(|| format!("could not listen on {tls_listen:?}"))?;
            listeners.tls = Some((listener, server));
        }
        let metrics_listener = match metrics {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("could not listen on {addr:?} for metrics"))?,
            ),
            None => None,
        };
        let console_listener = match console {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("could not listen on {addr:?} for the console"))?,
            ),
            None => None,
        };
        let institutions = bibgate_inbox::ensure_drop_folders(&services)
            .context("could not create the drop folders")?;
        let mut out = std::io::stdout();
        if let Some(listener) = &console_listener {
            writeln!(
                out,
                "bibgate staff console on http://{}/",
                listener.local_addr()?
            )?;
        }
        let (stop_console, console_stopped) = tokio::sync::oneshot::channel::<()>();
        let console_task = console_listener.map(|listener| {
            let options = crate::console::Options {
                secure: *console_secure,
            };
            tokio::spawn(crate::console::serve(
                listener,
                data.clone(),
                options,
                async move {
                    let _ = console_stopped.await;
                },
            ))
        });
        if let Some(listener) = &metrics_listener {
            let addr = listener.local_addr()?;
            writeln!(
                out,
                "bibgate metrics on http://{addr}/metrics and http://{addr}/health"
            )?;
        }
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_task = metrics_listener
            .zip(metrics_sources)
            .map(|(listener, sources)| {
                tokio::spawn(bibgate_gateway::serve_metrics(
                    listener,
                    sources,
                    async move {
                        let _ = metrics_stopped.await;
                    },
                ))
            });
        if let Some(listener) = &listeners.plain {
            writeln!(
                out,
                "bibgate gateway listening on {}",
                listener.local_addr()?
            )?;
        }
        if let Some((listener, _)) = &listeners.tls {
            writeln!(
                out,
                "bibgate gateway listening on {} (TLS)",
                listener.local_addr()?
            )?;
        }
        write_drop_folders(&mut out, &drop_root, &institutions)?;
        if kind == BackendKind::Local && !in_process {
            writeln!(
                out,
                "no processor in this process: run bibgate process on the same data directory"
            )?;
        }
        writeln!(out, "press ctrl-c to stop")?;
        out.flush()?;
        let (stop_processor, processor_stopped) = tokio::sync::oneshot::channel::<()>();
        // With S3 + DynamoDB the import processor is the Lambda function (S3 events).
        let processor = in_process.then(|| {
            bibgate_gateway::spawn_processor(services.clone(), processor_config, async move {
                let _ = processor_stopped.await;
            })
        });
        bibgate_gateway::run_listeners(listeners, stop, services, Config::default()).await;
        // In-flight exports are answered; now stop the processor after its current pass.
        let _ = stop_processor.send(());
        if let Some(processor) = processor {
            let _ = processor.await;
        }
        let _ = stop_metrics.send(());
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        let _ = stop_console.send(());
        if let Some(task) = console_task {
            let _ = task.await;
        }
        Ok(ExitCode::SUCCESS)
    })
}
