//! The Lambda service's side of an SQS event source, run in this process: receive up to 10
//! messages, hand them to [`Processor::handle`] as one [`SqsEvent`], delete the messages the
//! response does not name as failed (`ReportBatchItemFailures`), and leave the failed ones
//! to come back after their visibility timeout (or after the handler's back-off, set through
//! [`QueueRedelivery`]). `bibgate-import-processor poll` runs it until SIGTERM, one worker
//! per queue (as each queue has its own event source mapping on AWS, an export on the inbox
//! queue never waits for a drop file's invocation), so the function runs without the Lambda
//! service (on moto, or any SQS).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bibgate_store_aws::{QueueMessage, SqsQueue};
use tracing::warn;

use crate::{Processor, Redelivery};

/// The SQS event the Lambda service builds from these messages.
pub fn sqs_event(messages: &[QueueMessage], source_arn: &str) -> SqsEvent {
    let records = messages
        .iter()
        .map(|message| {
            let mut record = SqsMessage::default();
            record.message_id = Some(message.message_id.clone());
            record.receipt_handle = Some(message.receipt_handle.clone());
            record.body = Some(message.body.clone());
            record.attributes = message.attributes.clone();
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(source_arn.to_owned());
            record
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// The messages the response does not name as failed: those to delete.
pub fn acknowledged<'a>(
    messages: &'a [QueueMessage],
    response: &SqsBatchResponse,
) -> Vec<&'a QueueMessage> {
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect();
    messages
        .iter()
        .filter(|message| !failed.contains(message.message_id.as_str()))
        .collect()
}

/// One receive from `queue` and, when it gave messages, one invocation of `processor` with
/// `timeout` as its time limit. Returns how many messages were handed over.
pub fn poll_once(
    processor: &Processor,
    queue: &SqsQueue,
    source_arn: &str,
    wait_s: i32,
    timeout: Duration,
) -> bibgate_store::Result<usize> {
    let messages = queue.receive(10, wait_s)?;
    if messages.is_empty() {
        return Ok(0);
    }
    let started = Instant::now();
    let remaining = || timeout.saturating_sub(started.elapsed());
    let response = processor.handle(&sqs_event(&messages, source_arn), &remaining);
    for message in acknowledged(&messages, &response) {
        queue.delete(&message.receipt_handle)?;
    }
    Ok(messages.len())
}

/// Polls every queue, each from its own thread, until `stop` is set. A failed receive or
/// delete is logged and retried after a pause (the queue keeps the messages).
pub fn poll(
    processor: &Processor,
    queues: &[(SqsQueue, String)],
    timeout: Duration,
    stop: &AtomicBool,
) {
    poll_with(processor, queues, 1, timeout, stop);
}

/// [`poll`] with `workers` threads per queue (at least 1): concurrent invocations, as the
/// event source mapping's concurrency gives on AWS (the chunk tasks of a drop file in
/// parallel).
pub fn poll_with(
    processor: &Processor,
    queues: &[(SqsQueue, String)],
    workers: usize,
    timeout: Duration,
    stop: &AtomicBool,
) {
    std::thread::scope(|scope| {
        for (queue, arn) in queues
            .iter()
            .flat_map(|queue| std::iter::repeat_n(queue, workers.max(1)))
        {
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(error) = poll_once(processor, queue, arn, 1, timeout) {
                        warn!(queue = %queue.url(), %error, "could not poll the queue; trying again");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            });
        }
    });
}

/// [`Redelivery`] on SQS queues: `ChangeMessageVisibility` on the queue whose name ends the
/// event's source ARN.
#[derive(Clone, Debug)]
pub struct QueueRedelivery {
    queues: Vec<SqsQueue>,
}

impl QueueRedelivery {
    /// Back-offs on these queues.
    pub fn new(queues: Vec<SqsQueue>) -> QueueRedelivery {
        QueueRedelivery { queues }
    }
}

impl Redelivery for QueueRedelivery {
    fn redeliver_after(
        &self,
        source_arn: &str,
        receipt_handle: &str,
        after: Duration,
    ) -> bibgate_store::Result<()> {
        let name = source_arn.rsplit(':').next().unwrap_or_default();
        let Some(queue) = self.queues.iter().find(|queue| queue.name() == name) else {
            return Err(bibgate_store::Error::NotFound(format!(
                "queue {name:?} (of {source_arn:?}) among the retry queues"
            )));
        };
        let seconds = i32::try_from(after.as_secs())
            .unwrap_or(i32::MAX)
            .min(43_200);
        queue.change_visibility(receipt_handle, seconds)
    }
}
