//! Helpers for tests against a local AWS-protocol endpoint (moto), feature `test-support`.
//!
//! They panic with a clear message instead of returning errors: a test that cannot reach
//! its endpoint must fail, never skip.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::{AwsContext, DynamoStore, S3BlobStore, SqsQueue};

static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The endpoint from `AWS_ENDPOINT_URL`, after checking something listens there.
///
/// Panics when the variable is unset or nothing answers: run the tests through
/// `scripts/test.sh`, which starts moto and sets it.
pub fn require_endpoint() -> String {
    let Ok(url) = std::env::var("AWS_ENDPOINT_URL") else {
        panic!(
            "AWS_ENDPOINT_URL is not set: these tests need a local AWS-protocol endpoint (moto); \
             run them through scripts/test.sh, which starts moto_server and sets it"
        );
    };
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let reachable = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "the AWS endpoint {url:?} (AWS_ENDPOINT_URL) is not reachable: start moto_server \
         (scripts/test.sh does) and try again"
    );
    url
}

/// A context from the environment, after [`require_endpoint`].
pub fn context() -> AwsContext {
    require_endpoint();
    AwsContext::from_env().expect("the aws context loads")
}

/// A name no other test of this run uses: lowercase letters, digits and `-`, valid for
/// buckets, tables and queues.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xff_ffff_ffff,
        NAME_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh table with the store's schema.
pub fn fresh_store(context: &AwsContext) -> DynamoStore {
    let store = DynamoStore::new(context, &unique_name("bibgate-t"));
    store.create_table().expect("the table is created");
    store
}

/// A fresh bucket.
pub fn fresh_bucket(context: &AwsContext) -> S3BlobStore {
    let blobs = S3BlobStore::new(context, &unique_name("bibgate-b"));
    blobs.create_bucket().expect("the bucket is created");
    blobs
}

pub use crate::QueueMessage;

/// An SQS queue (the local stand-in for the queue between S3 and the Lambda).
#[derive(Clone, Debug)]
pub struct Queue {
    queue: SqsQueue,
    /// The queue URL.
    pub url: String,
    /// The queue ARN.
    pub arn: String,
}

impl Queue {
    /// Creates a queue with a short visibility timeout (messages not deleted come back).
    pub fn create(context: &AwsContext, visibility_timeout_s: u32) -> Queue {
        let client = aws_sdk_sqs::Client::new(context.sdk_config());
        let name = unique_name("bibgate-q");
        let url = context
            .block_on(async {
                client
                    .create_queue()
                    .queue_name(&name)
                    .attributes(
                        QueueAttributeName::VisibilityTimeout,
                        visibility_timeout_s.to_string(),
                    )
                    .send()
                    .await
            })
            .expect("the queue is created")
            .queue_url()
            .expect("a queue url")
            .to_owned();
        let queue = SqsQueue::new(context, &url);
        let arn = queue.arn().expect("the queue's arn");
        Queue { queue, url, arn }
    }

    /// The queue as the production code uses it.
    pub fn sqs(&self) -> &SqsQueue {
        &self.queue
    }

    /// Up to `max` messages, waiting up to `wait_s` seconds for the first.
    pub fn receive(&self, max: i32, wait_s: i32) -> Vec<QueueMessage> {
        self.queue
            .receive(max, wait_s)
            .expect("receive from the queue")
    }

    /// Deletes a message (acknowledges it).
    pub fn delete(&self, receipt_handle: &str) {
        self.queue.delete(receipt_handle).expect("delete a message");
    }

    /// Sends a raw body (for hand-made events).
    pub fn send(&self, body: &str) {
        self.queue.send(body).expect("send a message");
    }
}

/// Configures `blobs`' bucket to send `s3:ObjectCreated:*` events for keys under each of
/// `prefixes` to `queue`, as `infra/template.yaml` does on AWS.
pub fn notify_queue(blobs: &S3BlobStore, queue: &Queue, prefixes: &[&str]) {
    let routes: Vec<(&Queue, &str)> = prefixes.iter().map(|prefix| (queue, *prefix)).collect();
    notify_queues(blobs, &routes);
}

/// Configures `blobs`' bucket to send `s3:ObjectCreated:*` events for keys under each
/// prefix to its queue (the two paths of `infra/template.yaml`: `inbox/` and `drop/`).
pub fn notify_queues(blobs: &S3BlobStore, routes: &[(&Queue, &str)]) {
    let configurations: Vec<QueueConfiguration> = routes
        .iter()
        .map(|(queue, prefix)| {
            QueueConfiguration::builder()
                .queue_arn(&queue.arn)
                .events(Event::S3ObjectCreated)
                .filter(
                    NotificationConfigurationFilter::builder()
                        .key(
                            S3KeyFilter::builder()
                                .filter_rules(
                                    FilterRule::builder()
                                        .name(FilterRuleName::Prefix)
                                        .value(*prefix)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
                .expect("a queue configuration")
        })
        .collect();
    let configuration = NotificationConfiguration::builder()
        .set_queue_configurations(Some(configurations))
        .build();
    let client = blobs.client();
    blobs
        .context()
        .block_on(async {
            client
                .put_bucket_notification_configuration()
                .bucket(blobs.bucket())
                .notification_configuration(configuration)
                .send()
                .await
        })
        .expect("the bucket notification is configured");
}
