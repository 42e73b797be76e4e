//! `bibgate serve` (the Connexion gateway and the processor in one process) and
//! `bibgate send` (a Connexion client).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bibgate_gateway::{Config, LengthEncoding, ProcessorConfig, Services};
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_marc::{Source, iso2709};
use bibgate_store::{BlobStore, Store};
use clap::ValueEnum;

use crate::data;

/// How `bibgate send` writes field lengths.
#[derive(Clone, Copy, ValueEnum)]
pub enum LengthEncodingArg {
    /// One byte per length, like the Connexion desktop client.
    Byte,
    /// Decimal digits, like the Connexion browser.
    Decimal,
}

impl LengthEncodingArg {
    fn encoding(self) -> LengthEncoding {
        match self {
            LengthEncodingArg::Byte => LengthEncoding::Byte,
            LengthEncodingArg::Decimal => LengthEncoding::Decimal,
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

/// Where `bibgate serve` keeps records and blobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The data directory (SQLite + blob folder); the processor runs in this process.
    Local,
    /// DynamoDB + S3 (endpoints from the standard `AWS_*` variables); the import processor
    /// is the Lambda function, so this process is the shim only.
    Aws,
}

/// The storage options of `bibgate serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct BackendArgs {
    /// Storage backend.
    #[arg(long, value_enum, env = "BIBGATE_BACKEND", default_value = "local")]
    pub backend: BackendKind,
    /// S3 bucket (with --backend aws).
    #[arg(long, env = "BIBGATE_BUCKET", required_if_eq("backend", "aws"))]
    pub bucket: Option<String>,
    /// DynamoDB table (with --backend aws).
    #[arg(long, env = "BIBGATE_TABLE", required_if_eq("backend", "aws"))]
    pub table: Option<String>,
}

/// Runs the gateway (and, with the local backend, the processor) until ctrl-c.
pub fn serve(data_dir: &Path, listen: &str, backend: &BackendArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let (store, blobs, drop_root): (Arc<dyn Store>, Arc<dyn BlobStore>, String) =
        match (backend.backend, &backend.bucket, &backend.table) {
            (BackendKind::Aws, Some(bucket), Some(table)) => {
                let (store, blobs) = data::open_aws(bucket, table)?;
                (store, blobs, format!("s3://{bucket}/drop"))
            }
            (BackendKind::Aws, _, _) => anyhow::bail!("--backend aws needs --bucket and --table"),
            (BackendKind::Local, _, _) => {
                let data::Data { store, blobs } =
                    data::open_or_init(data_dir, &mut std::io::stderr())?;
                let root = data_dir.join("blobs").join("drop").display().to_string();
                (Arc::new(store), Arc::new(blobs), root)
            }
        };
    let in_process = backend.backend == BackendKind::Local;
    let mut services = Services::new(store, blobs);
    if in_process {
        // Activations are read every couple of seconds, so a policy activated while the
        // server runs takes effect without a restart.
        services = services
            .with_policies(crate::policy_cmd::runner(data_dir, true)?.context("no policy runner")?);
    }
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("could not listen on {listen:?}"))?;
        let addr = listener.local_addr()?;
        let institutions = bibgate_gateway::ensure_drop_folders(&services)
            .context("could not create the drop folders")?;
        let mut out = std::io::stdout();
        writeln!(out, "bibgate gateway listening on {addr}")?;
        writeln!(
            out,
            "drop folders: {drop_root}/<institution>/ for {}",
            if institutions.is_empty() {
                "(no institution with a Connexion profile yet)".to_string()
            } else {
                institutions.join(", ")
            }
        )?;
        writeln!(out, "press ctrl-c to stop")?;
        out.flush()?;
        let (stop_processor, processor_stopped) = tokio::sync::oneshot::channel::<()>();
        // With S3 + DynamoDB the import processor is the Lambda function (S3 events).
        let processor = in_process.then(|| {
            bibgate_gateway::spawn_processor(
                services.clone(),
                ProcessorConfig::default(),
                async move {
                    let _ = processor_stopped.await;
                },
            )
        });
        bibgate_gateway::run(
            listener,
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            services,
            Config::default(),
        )
        .await;
        // In-flight exports are answered; now stop the processor after its current pass.
        let _ = stop_processor.send(());
        if let Some(processor) = processor {
            let _ = processor.await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Options of `bibgate send`.
pub struct SendArgs<'a> {
    /// The file of records.
    pub file: &'a Path,
    /// Server host.
    pub host: &'a str,
    /// Server port.
    pub port: u16,
    /// Local system logon id.
    pub logon: &'a str,
    /// Local system password.
    pub password: &'a str,
    /// Field length encoding.
    pub encoding: LengthEncodingArg,
    /// Per-record timeout.
    pub timeout: Duration,
}

/// Sends each record of a file on its own connection; prints each reply.
/// Exit code 0 when every reply is a success, 1 otherwise, 2 on a connection error.
pub fn send(args: &SendArgs<'_>) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(args.file)
        .with_context(|| format!("could not open {:?}", args.file.display().to_string()))?;
    let source = Source::sniffed(std::io::BufReader::new(file), Mode::Lenient, Charset::Auto)
        .with_context(|| format!("could not read {:?}", args.file.display().to_string()))?;
    let addr = format!("{}:{}", args.host, args.port);
    let runtime = runtime()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_ok = true;
    let mut sent = 0usize;
    for item in source {
        let bytes = if item.raw.is_empty() {
            // MARCXML: send the record as ISO 2709 (UTF-8).
            match &item.outcome {
                Ok(parsed) => {
                    let mut bytes = Vec::new();
                    match iso2709::write_record(&parsed.decoded.record, &mut bytes) {
                        Ok(()) => bytes,
                        Err(error) => {
                            writeln!(out, "record {}: not sent: {error}", item.index)?;
                            all_ok = false;
                            continue;
                        }
                    }
                }
                Err(error) => {
                    writeln!(out, "record {}: not sent: {error}", item.index)?;
                    all_ok = false;
                    continue;
                }
            }
        } else {
            item.raw
        };
        let reply = runtime.block_on(bibgate_gateway::send(
            &addr,
            args.logon,
            args.password,
            &bytes,
            args.encoding.encoding(),
            args.timeout,
        ));
        sent += 1;
        match reply {
            Ok(text) => {
                all_ok &= text.starts_with("The record has been processed successfully.");
                writeln!(out, "record {}: {text}", item.index)?;
            }
            Err(bibgate_gateway::Error::Encode(error)) => {
                all_ok = false;
                writeln!(out, "record {}: not sent: {error}", item.index)?;
            }
            Err(error) => {
                out.flush()?;
                eprintln!("bibgate: record {}: {error}", item.index);
                return Ok(ExitCode::from(2));
            }
        }
    }
    out.flush()?;
    if sent == 0 && all_ok {
        eprintln!("bibgate: no records in {}", args.file.display());
        return Ok(ExitCode::from(1));
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
