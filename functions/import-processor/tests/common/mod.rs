//! The local AWS loop: a fresh table, bucket and queue on moto, the bucket notifying the
//! queue for `inbox/` and `drop/`, and a poller that hands the real SQS messages to the
//! handler as an `SqsEvent` (what the Lambda service does on AWS).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bibgate_import_processor::{Processor, Settings, poll};
use bibgate_inbox::Services;
use bibgate_inbox::layout::{ExportIds, ResultDoc, inbox_key, result_key};
use bibgate_plugin_host::{WasmEngine, WasmPolicyRunner};
use bibgate_store::BlobStore;
use bibgate_store_aws::testing::{self, Queue, QueueMessage};
use bibgate_store_aws::{AwsContext, DynamoPolicyStore, DynamoStore, S3BlobStore};

pub use bibgate_test_support::*;

/// Table, bucket, queue and handler of one test.
pub struct Loop {
    pub context: AwsContext,
    pub store: Arc<DynamoStore>,
    pub blobs: Arc<S3BlobStore>,
    pub queue: Queue,
    pub processor: Processor,
    pub services: Services,
    pub policies: Arc<DynamoPolicyStore>,
    pub ids: ExportIds,
}

/// One wasmtime engine for the test process.
pub fn engine() -> Arc<WasmEngine> {
    static ENGINE: std::sync::OnceLock<Arc<WasmEngine>> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(WasmEngine::new().unwrap()))
        .clone()
}

impl Loop {
    pub fn new() -> Loop {
        Loop::with_settings(|settings| settings)
    }

    pub fn with_settings(adjust: impl FnOnce(Settings) -> Settings) -> Loop {
        let context = testing::context();
        let blobs = Arc::new(testing::fresh_bucket(&context));
        let store = Arc::new(testing::fresh_store(&context).with_marc_bucket((*blobs).clone()));
        init_demo(&*store);
        let queue = Queue::create(&context, 5);
        testing::notify_queue(&blobs, &queue, &["inbox/", "drop/"]);
        take_test_event(&queue);
        // As in the function's composition root: the policies on the same table and bucket.
        let policies = Arc::new(DynamoPolicyStore::new(
            &context,
            store.table(),
            (*blobs).clone(),
        ));
        let runner = WasmPolicyRunner::with_ttl(engine(), policies.clone(), Duration::ZERO);
        let services = Services::new(store.clone(), blobs.clone()).with_policies(Arc::new(runner));
        let settings = adjust(Settings {
            reserve: Duration::ZERO,
            ..Settings::new(blobs.bucket())
        });
        let processor = Processor::new(services.clone(), settings);
        Loop {
            context,
            store,
            blobs,
            queue,
            processor,
            services,
            policies,
            ids: ExportIds::new(),
        }
    }

    /// Puts a record into the inbox as the shim does; returns the export id.
    pub fn export(&self, institution: &str, bytes: &[u8]) -> String {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let export_id = self.ids.next(institution, millis);
        self.blobs
            .put(&inbox_key(institution, &export_id), bytes)
            .unwrap();
        export_id
    }

    /// Receives up to `max` messages (waiting briefly), skipping nothing.
    pub fn receive(&self, max: i32) -> Vec<QueueMessage> {
        self.queue.receive(max, 1)
    }

    /// Runs the handler on messages; deletes the acknowledged ones; returns the response.
    pub fn invoke(&self, messages: &[QueueMessage]) -> SqsBatchResponse {
        let response = self
            .processor
            .handle(&sqs_event(messages), &|| Duration::from_secs(900));
        acknowledge(&self.queue, messages, &response);
        response
    }

    /// Polls the queue into the handler until `done()` or `timeout`.
    pub fn drain_until(&self, timeout: Duration, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < timeout,
                "the condition was not met within {timeout:?}"
            );
            let messages = self.receive(10);
            if !messages.is_empty() {
                self.invoke(&messages);
            }
        }
    }

    /// Polls until the queue gives nothing for one receive.
    pub fn drain(&self) {
        loop {
            let messages = self.receive(10);
            if messages.is_empty() {
                return;
            }
            self.invoke(&messages);
        }
    }

    pub fn result_doc(&self, export_id: &str) -> Option<ResultDoc> {
        self.blobs
            .get(&result_key(export_id))
            .unwrap()
            .map(|bytes| ResultDoc::from_json(&bytes).unwrap())
    }

    /// Exports a record and processes it through the queue; returns its result document.
    pub fn import(&self, institution: &str, bytes: &[u8]) -> ResultDoc {
        let export_id = self.export(institution, bytes);
        self.drain_until(Duration::from_secs(60), || {
            self.blobs.get(&result_key(&export_id)).unwrap().is_some()
        });
        let doc = self.result_doc(&export_id).unwrap();
        // The inbox object is gone once the result is written.
        assert_eq!(
            self.blobs.get(&inbox_key(institution, &export_id)).unwrap(),
            None
        );
        doc
    }
}

/// The SQS event the Lambda service would build from these messages.
pub fn sqs_event(messages: &[QueueMessage]) -> SqsEvent {
    poll::sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:bibgate")
}

/// Deletes the messages the response does not name as failed (what the Lambda service
/// does with `ReportBatchItemFailures`).
pub fn acknowledge(queue: &Queue, messages: &[QueueMessage], response: &SqsBatchResponse) {
    for message in poll::acknowledged(messages, response) {
        queue.delete(&message.receipt_handle);
    }
}

/// Takes the `s3:TestEvent` that S3 (and moto) sends first to a newly notified queue, so
/// that a test counts only its own events (the handler's treatment of it is tested on its
/// own).
pub fn take_test_event(queue: &Queue) {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no s3:TestEvent arrived"
        );
        if let Some(message) = queue.receive(10, 1).into_iter().next() {
            assert!(
                message.body.contains("s3:TestEvent"),
                "unexpected first message {:?}",
                message.body
            );
            queue.delete(&message.receipt_handle);
            return;
        }
    }
}
