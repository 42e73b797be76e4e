//! The Lambda's composition root: DynamoDB + S3 from the environment, the runtime's JSON
//! tracing subscriber, and the handler.
//!
//! Environment: `BIBGATE_TABLE`, `BIBGATE_BUCKET`, `BIBGATE_RETRY_QUEUE_URL` (the inbox
//! function's queue, whose failed messages come back after a back-off; set by
//! `infra/template.yaml`), the
//! standard AWS variables (region, credentials, `AWS_ENDPOINT_URL*`), and
//! `AWS_LAMBDA_LOG_LEVEL`/`AWS_LAMBDA_LOG_FORMAT` for the logs.
//!
//! # Local invocation
//!
//! `bibgate-import-processor invoke [EVENT.json|-]` runs one invocation in this process,
//! like `sam local invoke`: it reads an `SqsEvent` (from the file, or stdin for `-` or no
//! argument), runs the same handler on the same DynamoDB + S3 services from the
//! environment, prints the `SqsBatchResponse` JSON on stdout and exits 0 (logs go to
//! stderr, and so do the invocation's metrics). The invocation's deadline is `BIBGATE_INVOKE_TIMEOUT_S` seconds (default 900,
//! the function's timeout); `BIBGATE_DROP_CHUNK` sets the records of a drop file per chunk
//! (default 500), `BIBGATE_DROP_PARALLEL` the chunk tasks of a file released at once
//! (default 20), `BIBGATE_DROP_FANOUT=0` imports drop files chunk after chunk with
//! continuations instead of fanning them out, `BIBGATE_COMMIT_CONCURRENCY` the commits of a
//! chunk in flight at once (default 16; 1 commits them one after another) (`poll` and the
//! Lambda runtime read the four too). The fault tests run it with `BIBGATE_FAILPOINT` armed and kill it
//! (`functions/import-processor/tests/faults.rs`).
//!
//! `bibgate-import-processor poll` is the Lambda service's side of the SQS event source, in
//! this process: it receives from each queue of `BIBGATE_QUEUE_URL` (comma-separated),
//! hands up to 10 messages at a time to the same handler and deletes what it acknowledged,
//! until SIGTERM or ctrl-c (the function without the Lambda service: on moto with
//! `scripts/aws-local.sh`, or for a local test). Each invocation gets
//! `BIBGATE_INVOKE_TIMEOUT_S` seconds (default 900); `BIBGATE_POLL_WORKERS` (default 1)
//! workers poll each queue, as concurrent invocations (a drop file's chunks in parallel).
//!
//! Without arguments the binary is the Lambda runtime client, unchanged.
//!
//! # Metrics
//!
//! After each invocation, the results it stored are logged as CloudWatch embedded metric
//! format lines (namespace `Bibgate`, metric `Results`, dimensions source, institution,
//! outcome and reason: the counters `bibgate serve --metrics` exposes as
//! `bibgate_results_total`); CloudWatch turns them into metrics with no API call.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bibgate_import_processor::poll::QueueRedelivery;
use bibgate_import_processor::{Processor, Settings};
use bibgate_inbox::metrics::{self, MeteredStore};
use bibgate_inbox::{ResultDelivery, Services};
use bibgate_plugin_host::{WasmEngine, WasmPolicyRunner};
use bibgate_store::{BlobStore, PolicyStore, Store};
use bibgate_store_aws::{AwsContext, DynamoPolicyStore, DynamoStore, S3BlobStore, SqsQueue};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::info;

fn required(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .map_err(|_| Error::from(format!("the environment variable {name} is not set")))
}

/// An optional positive number from the environment.
fn optional_number(name: &str) -> Result<Option<u64>, Error> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(value) => match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::from(format!(
                "the environment variable {name} must be a positive number, not {value:?}"
            ))),
        },
    }
}

/// The drop-file settings from `BIBGATE_DROP_CHUNK` (records per chunk),
/// `BIBGATE_DROP_PARALLEL` (chunk tasks of a file at once) and `BIBGATE_DROP_FANOUT`
/// (`0`: chunk after chunk with continuations), for `invoke` and `poll`.
fn settings_from_env() -> Result<impl FnOnce(Settings) -> Settings, Error> {
    let chunk = optional_number("BIBGATE_DROP_CHUNK")?;
    let parallel = optional_number("BIBGATE_DROP_PARALLEL")?;
    let fan_out = std::env::var("BIBGATE_DROP_FANOUT").map_or(true, |value| value.trim() != "0");
    let size = |n: Option<u64>, default: usize| {
        n.map_or(default, |n| usize::try_from(n).unwrap_or(default))
    };
    Ok(move |settings: Settings| Settings {
        chunk: size(chunk, settings.chunk),
        max_parallel_chunks: size(parallel, settings.max_parallel_chunks),
        fan_out,
        ..settings
    })
}

/// The invocation's deadline. Lambda sends Unix milliseconds; `cargo lambda watch` sends
/// the timeout itself (e.g. `600000`), which as a date would be in 1970: a value before 2001
/// is read as milliseconds from now, so the handler behaves the same under the emulator.
fn deadline_of(deadline_ms: u64) -> SystemTime {
    const EPOCH_2001_MS: u64 = 1_000_000_000_000;
    if deadline_ms < EPOCH_2001_MS {
        SystemTime::now() + Duration::from_millis(deadline_ms)
    } else {
        SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)
    }
}

/// The handler over DynamoDB + S3 from the environment; `adjust` changes the settings.
async fn processor(adjust: impl FnOnce(Settings) -> Settings) -> Result<Arc<Processor>, Error> {
    let started = Instant::now();
    let context = tokio::task::spawn_blocking(AwsContext::from_env).await??;
    processor_on(&context, started, adjust)
}

/// The handler over DynamoDB + S3 of `context` (`init_ms` counted from `started`); `adjust`
/// changes the settings.
fn processor_on(
    context: &AwsContext,
    started: Instant,
    adjust: impl FnOnce(Settings) -> Settings,
) -> Result<Arc<Processor>, Error> {
    let table = required("BIBGATE_TABLE")?;
    let bucket = required("BIBGATE_BUCKET")?;
    let blobs = S3BlobStore::new(context, &bucket);
    let mut store = DynamoStore::new(context, &table).with_marc_bucket(blobs.clone());
    if let Some(limit) = optional_number("BIBGATE_COMMIT_CONCURRENCY")? {
        store = store.with_commit_concurrency(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    // The institutions' merge policies, from the same table and bucket. The engine starts
    // here; a policy is loaded when an institution's first record needs it (its code
    // precompiled for this architecture from the cache, or compiled once and cached).
    let policies: Arc<dyn PolicyStore> =
        Arc::new(DynamoPolicyStore::new(context, &table, blobs.clone()));
    let engine = Arc::new(WasmEngine::new()?);
    let runner = Arc::new(WasmPolicyRunner::new(engine, policies));
    // Counts the results it stores: each invocation logs them as CloudWatch metrics.
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(Arc::new(store)));
    let blobs: Arc<dyn BlobStore> = Arc::new(blobs);
    let mut processor = Processor::new(
        // The shim polls S3 for `results/<export-id>.json`.
        Services::new(store, blobs)
            .with_delivery(ResultDelivery::Documents)
            .with_policies(runner),
        adjust(Settings::new(&bucket)),
    );
    // The inbox function's queue: failed exports come back after a back-off.
    if let Ok(urls) = std::env::var("BIBGATE_RETRY_QUEUE_URL") {
        let queues = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| SqsQueue::new(context, url))
            .collect();
        processor = processor.with_redelivery(Arc::new(QueueRedelivery::new(queues)));
    }
    let processor = Arc::new(processor);
    info!(init_ms = started.elapsed().as_millis() as u64, %table, %bucket, "import processor initialised");
    Ok(processor)
}

/// Where an invocation's metrics go: the Lambda's stdout (CloudWatch Logs reads embedded
/// metric format there), or stderr in `invoke` mode, whose stdout is the response.
#[derive(Clone, Copy)]
enum MetricsTo {
    Stdout,
    Stderr,
}

/// Runs `event` through the handler on a blocking thread, with `deadline`; then logs the
/// results it stored as CloudWatch embedded-metric-format lines
/// ([`bibgate_inbox::metrics::emf_lines`]: one a label set, `Bibgate/Results`).
async fn handle(
    processor: Arc<Processor>,
    event: SqsEvent,
    deadline: SystemTime,
    metrics_to: MetricsTo,
) -> Result<SqsBatchResponse, Error> {
    let response = tokio::task::spawn_blocking(move || {
        let remaining = || {
            deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        };
        // One invocation at a time per instance: the difference is this invocation's.
        let before = metrics::global().results();
        let response = processor.handle(&event, &remaining);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            });
        for line in metrics::emf_lines(&before, &metrics::global().results(), now_ms) {
            match metrics_to {
                MetricsTo::Stdout => println!("{line}"),
                MetricsTo::Stderr => eprintln!("{line}"),
            }
        }
        response
    })
    .await?;
    Ok(response)
}

/// Polls the queues of `BIBGATE_QUEUE_URL` into the handler until SIGTERM or ctrl-c.
async fn poll() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let urls = required("BIBGATE_QUEUE_URL")?;
    let timeout = Duration::from_secs(optional_number("BIBGATE_INVOKE_TIMEOUT_S")?.unwrap_or(900));
    let workers = optional_number("BIBGATE_POLL_WORKERS")?
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1);
    let started = Instant::now();
    // One configuration for the handler's stores and the queues.
    let context = tokio::task::spawn_blocking(AwsContext::from_env).await??;
    let processor = processor_on(&context, started, settings_from_env()?)?;
    let queues = tokio::task::spawn_blocking(move || {
        urls.split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let queue = SqsQueue::new(&context, url);
                let arn = queue.arn()?;
                Ok((queue, arn))
            })
            .collect::<Result<Vec<_>, bibgate_store::Error>>()
    })
    .await??;
    if queues.is_empty() {
        return Err(Error::from("BIBGATE_QUEUE_URL names no queue"));
    }
    // Failed exports come back after a back-off, as on AWS.
    let redelivery = QueueRedelivery::new(queues.iter().map(|(queue, _)| queue.clone()).collect());
    let processor = Arc::new((*processor).clone().with_redelivery(Arc::new(redelivery)));
    info!(queues = queues.len(), "polling; SIGTERM or ctrl-c stops");
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            bibgate_import_processor::poll::poll_with(&processor, &queues, workers, timeout, &stop);
        })
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("stopping after the current invocation");
    stop.store(true, Ordering::Relaxed);
    poller.await?;
    Ok(())
}

/// One local invocation (see the module docs).
async fn invoke(source: Option<String>) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let bytes = match source.as_deref() {
        None | Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Error::from(format!("could not read the event from stdin: {e}")))?;
            bytes
        }
        Some(path) => std::fs::read(path)
            .map_err(|e| Error::from(format!("could not read the event {path:?}: {e}")))?,
    };
    let event: SqsEvent = serde_json::from_slice(&bytes)
        .map_err(|e| Error::from(format!("the event is not an SQS event: {e}")))?;
    let timeout = optional_number("BIBGATE_INVOKE_TIMEOUT_S")?.unwrap_or(900);
    let deadline = SystemTime::now() + Duration::from_secs(timeout);
    let adjust = settings_from_env()?;
    let processor = processor(adjust).await?;
    let response = handle(processor, event, deadline, MetricsTo::Stderr).await?;
    println!("{}", serde_json::to_string(&response)?);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None => {}
        Some("invoke") => {
            let source = args.next();
            if let Some(extra) = args.next() {
                return Err(Error::from(format!(
                    "unexpected argument {extra:?}; usage: bibgate-import-processor [invoke [EVENT.json|-]]"
                )));
            }
            return invoke(source).await;
        }
        Some("poll") => {
            if let Some(extra) = args.next() {
                return Err(Error::from(format!(
                    "unexpected argument {extra:?}; usage: bibgate-import-processor poll"
                )));
            }
            return poll().await;
        }
        Some(other) => {
            return Err(Error::from(format!(
                "unknown argument {other:?}; usage: bibgate-import-processor [invoke [EVENT.json|-] | poll]"
            )));
        }
    }
    lambda_runtime::tracing::init_default_subscriber();
    let processor = processor(settings_from_env()?).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let processor = processor.clone();
        async move {
            let deadline = deadline_of(event.context.deadline);
            handle(processor, event.payload, deadline, MetricsTo::Stdout).await
        }
    }))
    .await
}
