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
//! - `drop/<institution>/<file>.mrc|.xml` → [`bibgate_inbox::import_drop_key`], in chunks of
//!   [`Settings::chunk`] records; after a chunk, when less than [`Settings::reserve`] (or
//!   twice the chunk's time) is left, it continues in a new invocation through
//!   `drop/<institution>/.continue/<file>.json`.
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
//!
//! Every step is idempotent (see `bibgate_inbox`), so duplicate deliveries,
//! which SQS and S3 both allow, import nothing twice.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod event;
pub mod poll;

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bibgate_inbox::drop::parse_marker;
use bibgate_inbox::layout::{parse_continuation_key, parse_drop_key, parse_inbox_key};
use bibgate_inbox::{DropOutcome, Services, Start};
use tracing::{info, instrument, warn};

use crate::event::{Body, ObjectEvent, parse_body};

/// Why one message could not be processed now (it will be delivered again): the pipeline's
/// error, whose [`Error::is_permanent`] tells what retrying cannot cure.
pub use bibgate_inbox::Error;

/// Settings of the handler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The bucket the function serves; events of other buckets are ignored.
    pub bucket: String,
    /// Records of a drop file imported per chunk (one batch import each).
    pub chunk: usize,
    /// A drop file hands over to a new invocation when less time than this (or twice the
    /// last chunk's time) is left after a chunk.
    pub reserve: Duration,
    /// A message is not started with less time left than this (it is left for a new
    /// invocation); one export takes well under a second.
    pub start_margin: Duration,
}

impl Settings {
    /// Production defaults for `bucket`: chunks of 500 records, 60 s drop-file reserve,
    /// 10 s start margin.
    pub fn new(bucket: &str) -> Settings {
        Settings {
            bucket: bucket.to_owned(),
            chunk: 500,
            reserve: Duration::from_secs(60),
            start_margin: Duration::from_secs(10),
        }
    }
}

/// The handler: ports and settings, built once per process.
#[derive(Clone, Debug)]
pub struct Processor {
    services: Services,
    settings: Settings,
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
        Processor { services, settings }
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
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
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
        let deliveries: u32 = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
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
