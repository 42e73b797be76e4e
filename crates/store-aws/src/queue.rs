//! An SQS queue, feature `sqs`: what `bibgate-import-processor poll` receives from (the
//! Lambda service's side of the event source, run locally) and what `bibgate redrive` moves
//! dead letters with.

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use bibgate_store::{Error, Result};

use crate::context::AwsContext;

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

/// An SQS queue by URL.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    context: AwsContext,
    client: Client,
    url: String,
}

fn sqs_error(what: &str, err: impl std::error::Error + 'static) -> Error {
    Error::Backend(format!("could not {what}: {}", DisplayErrorContext(err)))
}

impl SqsQueue {
    /// The queue at `url`.
    pub fn new(context: &AwsContext, url: &str) -> SqsQueue {
        SqsQueue {
            context: context.clone(),
            client: Client::new(context.sdk_config()),
            url: url.to_owned(),
        }
    }

    /// The queue URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn attribute(&self, name: QueueAttributeName) -> Result<Option<String>> {
        let what = format!("read the attributes of queue {:?}", self.url);
        let output = self
            .context
            .block_on(async {
                self.client
                    .get_queue_attributes()
                    .queue_url(&self.url)
                    .attribute_names(name.clone())
                    .send()
                    .await
            })
            .map_err(|err| sqs_error(&what, err))?;
        Ok(output.attributes().and_then(|map| map.get(&name)).cloned())
    }

    /// The queue's ARN.
    pub fn arn(&self) -> Result<String> {
        self.attribute(QueueAttributeName::QueueArn)?
            .ok_or_else(|| Error::Backend(format!("queue {:?} has no arn", self.url)))
    }

    /// The approximate number of messages waiting (not in flight).
    pub fn approximate_waiting(&self) -> Result<u64> {
        let value = self.attribute(QueueAttributeName::ApproximateNumberOfMessages)?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Up to `max` (1-10) messages, waiting up to `wait_s` seconds for the first.
    pub fn receive(&self, max: i32, wait_s: i32) -> Result<Vec<QueueMessage>> {
        let what = format!("receive from queue {:?}", self.url);
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
            .map_err(|err| sqs_error(&what, err))?;
        Ok(output
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
            .collect())
    }

    /// Deletes a message (acknowledges it).
    pub fn delete(&self, receipt_handle: &str) -> Result<()> {
        let what = format!("delete a message from queue {:?}", self.url);
        self.context
            .block_on(async {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt_handle)
                    .send()
                    .await
            })
            .map_err(|err| sqs_error(&what, err))?;
        Ok(())
    }

    /// Makes a received message visible again after `seconds` (0-43,200), instead of
    /// after the queue's visibility timeout: how a failed message is retried sooner.
    pub fn change_visibility(&self, receipt_handle: &str, seconds: i32) -> Result<()> {
        let what = format!("change the visibility of a message of queue {:?}", self.url);
        self.context
            .block_on(async {
                self.client
                    .change_message_visibility()
                    .queue_url(&self.url)
                    .receipt_handle(receipt_handle)
                    .visibility_timeout(seconds)
                    .send()
                    .await
            })
            .map_err(|err| sqs_error(&what, err))?;
        Ok(())
    }

    /// The queue's name (the last segment of its URL, and of its ARN).
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or_default()
    }

    /// Sends a body.
    pub fn send(&self, body: &str) -> Result<()> {
        let what = format!("send a message to queue {:?}", self.url);
        self.context
            .block_on(async {
                self.client
                    .send_message()
                    .queue_url(&self.url)
                    .message_body(body)
                    .send()
                    .await
            })
            .map_err(|err| sqs_error(&what, err))?;
        Ok(())
    }

    /// Moves up to `max` messages from this queue (a dead-letter queue) to `target`: each is
    /// sent to the target first and deleted here only then, so a failure in between leaves a
    /// copy in both (the handler is idempotent per export id), never in neither. Returns the
    /// bodies moved.
    pub fn redrive_to(&self, target: &SqsQueue, max: usize) -> Result<Vec<String>> {
        let mut moved = Vec::new();
        while moved.len() < max {
            let want = i32::try_from((max - moved.len()).min(10)).unwrap_or(10);
            let messages = self.receive(want, 0)?;
            if messages.is_empty() {
                break;
            }
            for message in messages {
                target.send(&message.body)?;
                self.delete(&message.receipt_handle)?;
                moved.push(message.body);
            }
        }
        Ok(moved)
    }
}
