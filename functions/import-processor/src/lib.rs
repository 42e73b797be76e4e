//! The import processor as an AWS Lambda function: S3 `ObjectCreated` events, delivered
//! through SQS, for `inbox/…` exports (from the Connexion shim) and `drop/…` files (staff
//! uploads), imported into the store, with the result written back to S3.
//!
//! [`Processor::handle`] is the handler, over the ports only (a [`Services`] of
//! `Arc<dyn Store>` and `Arc<dyn BlobStore>`), so tests run it against any adapter;
//! `main.rs` is the composition root (DynamoDB + S3 from the environment, the runtime's
//! JSON tracing subscriber).
//!
//! # Routing (by decoded key)
//!
//! - `inbox/<institution>/<export-id>.mrc` → the pipeline's steps for one export
//!   ([`bibgate_inbox::process_export`]): copy to `received/`, import (or take the stored
//!   result), write `results/<export-id>.json`, delete the inbox object.
//! - `drop/<institution>/<file>.mrc|.xml` → [`bibgate_inbox::fanout::plan_drop`]: the file
//!   is split at record boundaries into chunk tasks of [`Settings::chunk`] records, at most
//!   [`Settings::max_parallel_chunks`] released at once.
//! - `drop/<institution>/.chunks/<file>/<hash>/<n>.json` → [`bibgate_inbox::fanout::run_chunk`]:
//!   imports chunk `n`; the last chunk to finish writes the report.
//! - Without [`Settings::fan_out`]: a drop file goes to [`bibgate_inbox::import_drop_key`],
//!   in chunks of [`Settings::chunk`] records; after a chunk, when less than
//!   [`Settings::reserve`] (or twice the chunk's time) is left, it continues in a new
//!   invocation through `drop/<institution>/.continue/<file>.json`.
//! - `drop/<institution>/.continue/<file>.json` → resumes that drop file.
//! - `s3:TestEvent`, other keys, other buckets → acknowledged and ignored (logged).
//!
//! # Failures (house style E5)
//!
//! - **Permanent** (the export cannot be routed: no profile, unknown institution; a body
//!   that is no S3 event): a failure result is recorded where one can be (the gateway
//!   writes a `NO_PROFILE` result document) and the message is **acknowledged**.
//! - **Transient** (storage errors, throttling, a conflict storm): the message id is
//!   returned in `batchItemFailures`, so SQS delivers that message again after its
//!   visibility timeout while the others of the batch are deleted. An export that keeps
//!   failing gets a `PROCESSING_FAILED` result on its 8th delivery (from
//!   `ApproximateReceiveCount`), before the queue's `maxReceiveCount` (10) would move it to
//!   the dead-letter queue; its raw bytes stay under `received/`.
//! - Messages left when the invocation's remaining time is below the start margin are reported
//!   as failures without being touched, so they come back to a fresh invocation.
//! - On the inbox path a failed export comes back after a back-off by its delivery count
//!   ([`retry_delay`]: 2, 4, 8 ... s, at most [`Settings::max_retry_delay`]), set through the
//!   [`Redelivery`] port (SQS `ChangeMessageVisibility`), not after the queue's visibility
//!   timeout.
//!
//! Every step is idempotent (see `bibgate_inbox`), so duplicate deliveries,
//! which SQS and S3 both allow, import nothing twice.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod event;
pub mod poll;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bibgate_inbox::drop::parse_marker;
use bibgate_inbox::fanout::{ChunkOutcome, Planned, parse_chunk_task_key};
use bibgate_inbox::layout::{parse_continuation_key, parse_drop_key, parse_inbox_key};
use bibgate_inbox::{DropOutcome, Services, Start};
use tracing::{info, instrument, warn};

use crate::event::{Body, ObjectEvent, parse_body};

/// Makes a message that failed visible again after a delay: the port of SQS
/// `ChangeMessageVisibility`, so the handler stays testable without SQS.
pub trait Redelivery: Send + Sync + std::fmt::Debug {
    /// The message `receipt_handle` of the queue `source_arn` comes back after `after`.
    fn redeliver_after(
        &self,
        source_arn: &str,
        receipt_handle: &str,
        after: Duration,
    ) -> bibgate_store::Result<()>;
}

/// The back-off before the next delivery of a message that failed on its `deliveries`th
/// delivery: 2^`deliveries` seconds, at most `max`.
pub fn retry_delay(deliveries: u32, max: Duration) -> Duration {
    let seconds = 1u64.checked_shl(deliveries.min(32)).unwrap_or(u64::MAX);
    Duration::from_secs(seconds).min(max)
}

/// Why one message could not be processed now (it will be delivered again): the pipeline's
/// error, whose [`Error::is_permanent`] tells what retrying cannot cure.
pub use bibgate_inbox::Error;

/// Settings of the handler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The bucket the function serves; events of other buckets are ignored.
    pub bucket: String,
    /// Records of a drop file imported per chunk (one batch import each; with
    /// [`Settings::fan_out`], one chunk task each).
    pub chunk: usize,
    /// Drop files are split into chunk tasks that run in parallel invocations
    /// ([`bibgate_inbox::fanout`]); off, a file is imported chunk after chunk, continued
    /// across invocations ([`bibgate_inbox::import_drop_key`]).
    pub fan_out: bool,
    /// The most chunk tasks of one file released at once (each finished chunk releases the
    /// next); the event source mapping's concurrency caps the invocations of all files.
    pub max_parallel_chunks: usize,
    /// A drop file hands over to a new invocation when less time than this (or twice the
    /// last chunk's time) is left after a chunk.
    pub reserve: Duration,
    /// A message is not started with less time left than this (it is left for a new
    /// invocation); one export takes well under a second.
    pub start_margin: Duration,
    /// The longest back-off before a failed export is delivered again ([`retry_delay`]).
    pub max_retry_delay: Duration,
}

impl Settings {
    /// Production defaults for `bucket`: drop files fanned out in chunks of 500 records, 20
    /// chunk tasks of a file at once, 60 s drop-file reserve, 10 s start margin, back-offs
    /// up to 5 min.
    pub fn new(bucket: &str) -> Settings {
        Settings {
            bucket: bucket.to_owned(),
            chunk: 500,
            fan_out: true,
            max_parallel_chunks: 20,
            reserve: Duration::from_secs(60),
            start_margin: Duration::from_secs(10),
            max_retry_delay: Duration::from_secs(300),
        }
    }
}

/// The handler: ports and settings, built once per process.
#[derive(Clone, Debug)]
pub struct Processor {
    services: Services,
    settings: Settings,
    redelivery: Option<Arc<dyn Redelivery>>,
}

/// The delivery count of a message (`ApproximateReceiveCount`, 1 when absent).
fn deliveries(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// What became of one message.
enum Disposition {
    /// Done (or permanently failed, with the failure recorded): delete it.
    Ack,
    /// Deliver again later.
    Retry,
}

impl Processor {
    /// A handler over the ports.
    pub fn new(services: Services, settings: Settings) -> Processor {
        Processor {
            services,
            settings,
            redelivery: None,
        }
    }

    /// The same handler, retrying failed exports after a back-off through `redelivery`
    /// (without it a failed message comes back after the queue's visibility timeout).
    pub fn with_redelivery(mut self, redelivery: Arc<dyn Redelivery>) -> Processor {
        self.redelivery = Some(redelivery);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Handles one SQS batch; `remaining` tells how much time the invocation has left.
    /// Returns the messages to deliver again (partial batch failure).
    #[instrument(name = "import_processor.handle", skip_all, fields(n_messages = event.records.len()))]
    pub fn handle(&self, event: &SqsEvent, remaining: &dyn Fn() -> Duration) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let left = remaining();
            let disposition = if left < self.settings.start_margin {
                warn!(message_id = %id, remaining_ms = left.as_millis() as u64, "too little time left; leaving the message for a new invocation");
                Disposition::Retry
            } else {
                self.message(message, remaining)
            };
            if let Disposition::Retry = disposition {
                if left >= self.settings.start_margin {
                    self.back_off(message);
                }
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Sets the next delivery of a failed inbox export (all of the message's objects inbox
    /// keys) to [`retry_delay`] from now; other messages keep the queue's visibility timeout.
    fn back_off(&self, message: &SqsMessage) {
        let Some(redelivery) = &self.redelivery else {
            return;
        };
        let (Some(arn), Some(receipt)) = (&message.event_source_arn, &message.receipt_handle)
        else {
            return;
        };
        let inbox = match parse_body(message.body.as_deref().unwrap_or_default()) {
            Ok(Body::Objects(events)) => events
                .iter()
                .all(|object| parse_inbox_key(&object.key).is_some()),
            _ => false,
        };
        if !inbox {
            return;
        }
        let delay = retry_delay(deliveries(message), self.settings.max_retry_delay);
        if let Err(error) = redelivery.redeliver_after(arn, receipt, delay) {
            warn!(%error, "could not set the back-off; the message comes back after the queue's visibility timeout");
        }
    }

    fn message(&self, message: &SqsMessage, remaining: &dyn Fn() -> Duration) -> Disposition {
        let id = message.message_id.as_deref().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or_default();
        let events = match parse_body(body) {
            Ok(Body::Objects(events)) => events,
            Ok(Body::Test) => {
                info!(message_id = %id, "s3 test event ignored");
                return Disposition::Ack;
            }
            Err(error) => {
                // Permanent: no redelivery will make it an event.
                warn!(message_id = %id, %error, "message dropped");
                return Disposition::Ack;
            }
        };
        let deliveries = deliveries(message);
        let mut disposition = Disposition::Ack;
        for object in &events {
            if let Err(error) = self.object(object, deliveries.saturating_sub(1), remaining) {
                warn!(message_id = %id, key = %object.key, %error, deliveries, "could not process an object; it will be delivered again");
                disposition = Disposition::Retry;
            }
        }
        disposition
    }

    #[instrument(name = "import_processor.object", skip(self, object, remaining), fields(key = %object.key), err)]
    fn object(
        &self,
        object: &ObjectEvent,
        attempts: u32,
        remaining: &dyn Fn() -> Duration,
    ) -> Result<(), Error> {
        if object.bucket != self.settings.bucket {
            warn!(bucket = %object.bucket, "event of another bucket ignored");
            return Ok(());
        }
        if !object.event_name.is_empty() && !object.event_name.starts_with("ObjectCreated") {
            info!(event = %object.event_name, "event ignored");
            return Ok(());
        }
        let key = object.key.as_str();
        if let Some((institution, export_id)) = parse_inbox_key(key) {
            bibgate_inbox::process_export(&self.services, institution, export_id, attempts)?;
            return Ok(());
        }
        if let Some((institution, file, hash, n)) = parse_chunk_task_key(key) {
            match bibgate_inbox::fanout::run_chunk(&self.services, institution, file, hash, n)? {
                ChunkOutcome::Done => info!("chunk task of a finished drop file ignored"),
                ChunkOutcome::Imported { .. } => {}
            }
            return Ok(());
        }
        if self.settings.fan_out
            && let Some((institution, file)) = parse_drop_key(key)
        {
            let planned = bibgate_inbox::fanout::plan_drop(
                &self.services,
                institution,
                file,
                self.settings.chunk,
                self.settings.max_parallel_chunks,
            )?;
            if planned == Planned::Gone {
                info!("drop file already processed");
            }
            return Ok(());
        }
        let (institution, file, start) =
            if let Some((institution, file)) = parse_continuation_key(key) {
                let Some(marker) = self.services.blobs.get(key)? else {
                    return Ok(());
                };
                let (next_index, hash) = parse_marker(&marker).unwrap_or_else(|| {
                    warn!("unreadable continuation marker; starting the file again");
                    (1, 0)
                });
                (institution, file, Start::Resume { next_index, hash })
            } else if let Some((institution, file)) = parse_drop_key(key) {
                (institution, file, Start::New)
            } else {
                info!("object ignored: neither an export nor a drop file");
                return Ok(());
            };
        let reserve = self.settings.reserve;
        let outcome = bibgate_inbox::import_drop_key(
            &self.services,
            institution,
            file,
            start,
            self.settings.chunk,
            &|last_chunk| remaining() < reserve.max(last_chunk * 2),
        )?;
        match outcome {
            DropOutcome::Gone => info!("drop file already processed"),
            DropOutcome::BeingContinued => info!("drop file being continued"),
            DropOutcome::Finished { .. } | DropOutcome::Continued { .. } => {}
        }
        Ok(())
    }
}
