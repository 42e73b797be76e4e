//! Helpers for tests against a local AWS-protocol endpoint (moto), feature `test-support`.
//!
//! They panic with a clear message instead of returning errors: a test that cannot reach
//! its endpoint must fail, never skip.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use crate::{AwsContext, DynamoStore, S3BlobStore};

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

/// One SQS message as received.
#[derive(Clone, Debug)]
pub struct QueueMessage {
    /// The message id.
    pub message_id: String,
    /// The receipt handle (to delete it).
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// System attributes (`ApproximateReceiveCount`, `SentTimestamp`, ...).
    pub attributes: HashMap<String, String>,
}

/// An SQS queue (the local stand-in for the queue between S3 and the Lambda).
#[derive(Clone, Debug)]
pub struct Queue {
    context: AwsContext,
    client: aws_sdk_sqs::Client,
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
        let attributes = context
            .block_on(async {
                client
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await
            })
            .expect("the queue's attributes");
        let arn = attributes
            .attributes()
            .and_then(|map| map.get(&QueueAttributeName::QueueArn))
            .expect("a queue arn")
            .clone();
        Queue {
            context: context.clone(),
            client,
            url,
            arn,
        }
    }

    /// Up to `max` messages, waiting up to `wait_s` seconds for the first.
    pub fn receive(&self, max: i32, wait_s: i32) -> Vec<QueueMessage> {
        let output = self
            .context
            .block_on(async {
                self.client
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(max)
                    .wait_time_seconds(wait_s)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await
            })
            .expect("receive from the queue");
        output
            .messages()
            .iter()
            .map(|message| QueueMessage {
                message_id: message.message_id().unwrap_or_default().to_owned(),
                receipt_handle: message.receipt_handle().unwrap_or_default().to_owned(),
                body: message.body().unwrap_or_default().to_owned(),
                attributes: message
                    .attributes()
                    .map(|map| {
                        map.iter()
                            .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Deletes a message (acknowledges it).
    pub fn delete(&self, receipt_handle: &str) {
        self.context
            .block_on(async {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt_handle)
                    .send()
                    .await
            })
            .expect("delete a message");
    }

    /// Sends a raw body (for hand-made events).
    pub fn send(&self, body: &str) {
        self.context
            .block_on(async {
                self.client
                    .send_message()
                    .queue_url(&self.url)
                    .message_body(body)
                    .send()
                    .await
            })
            .expect("send a message");
    }
}

/// Configures `blobs`' bucket to send `s3:ObjectCreated:*` events for keys under each of
/// `prefixes` to `queue`, as `infra/template.yaml` does on AWS.
pub fn notify_queue(blobs: &S3BlobStore, queue: &Queue, prefixes: &[&str]) {
    let configurations: Vec<QueueConfiguration> = prefixes
        .iter()
        .map(|prefix| {
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
