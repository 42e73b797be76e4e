//! The Lambda's composition root: DynamoDB + S3 from the environment, the runtime's JSON
//! tracing subscriber, and the handler.
//!
//! Environment: `BIBGATE_TABLE`, `BIBGATE_BUCKET` (set by `infra/template.yaml`), the
//! standard AWS variables (region, credentials, `AWS_ENDPOINT_URL*`), and
//! `AWS_LAMBDA_LOG_LEVEL`/`AWS_LAMBDA_LOG_FORMAT` for the logs.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bibgate_gateway::Services;
use bibgate_import_processor::{Processor, Settings};
use bibgate_store::{BlobStore, Store};
use bibgate_store_aws::{AwsContext, DynamoStore, S3BlobStore};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::info;

fn required(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .map_err(|_| Error::from(format!("the environment variable {name} is not set")))
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

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let started = Instant::now();
    let table = required("BIBGATE_TABLE")?;
    let bucket = required("BIBGATE_BUCKET")?;
    let context = tokio::task::spawn_blocking(AwsContext::from_env).await??;
    let blobs = S3BlobStore::new(&context, &bucket);
    let store = DynamoStore::new(&context, &table).with_marc_bucket(blobs.clone());
    let store: Arc<dyn Store> = Arc::new(store);
    let blobs: Arc<dyn BlobStore> = Arc::new(blobs);
    let processor = Arc::new(Processor::new(
        Services::new(store, blobs),
        Settings::new(&bucket),
    ));
    info!(init_ms = started.elapsed().as_millis() as u64, %table, %bucket, "import processor initialised");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let processor = processor.clone();
        async move {
            let deadline = deadline_of(event.context.deadline);
            let payload = event.payload;
            let response: SqsBatchResponse = tokio::task::spawn_blocking(move || {
                let remaining = || {
                    deadline
                        .duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                };
                processor.handle(&payload, &remaining)
            })
            .await?;
            Ok::<_, Error>(response)
        }
    }))
    .await
}
