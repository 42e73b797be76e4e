//! `bibgate redrive`: moves the messages of the dead-letter queue back to the import queue
//! (of each dead-letter queue to its queue, when both flags name as many: the inbox and the
//! drop path),
//! so the import processor function takes them again (after the cause, e.g. a DynamoDB
//! outage or a bad deployment, is fixed). Each message is an S3 event for an inbox export or
//! a drop file; the processor is idempotent per export id, so a message moved twice imports
//! once. The inbox objects outlive the dead-letter queue's retention (infra/template.yaml),
//! so a re-driven export finds its bytes.

use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_store_aws::SqsQueue;

use crate::data::Data;

/// Arguments of `bibgate redrive`.
#[derive(clap::Args)]
pub struct Args {
    /// The dead-letter queue's URL.
    #[arg(long, env = "BIBGATE_DLQ_URL")]
    from: Option<String>,
    /// The queue the import processor reads.
    #[arg(long, env = "BIBGATE_QUEUE_URL")]
    to: Option<String>,
    /// Move at most this many messages.
    #[arg(long, default_value_t = 10_000)]
    max: usize,
}

/// The queue URLs of `value` (comma-separated).
fn urls<'a>(value: Option<&'a str>, flag: &str) -> anyhow::Result<Vec<&'a str>> {
    let urls: Vec<&str> = value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    if urls.is_empty() {
        bail!(
            "{flag} is missing (the queue URL; scripts/aws-local.sh and the stack's outputs give it)"
        );
    }
    Ok(urls)
}

/// The (dead-letter queue, queue) pairs: one of each, or as many of each, in the same order
/// (the inbox and the drop queue: `scripts/aws-local.sh` exports both lists so).
fn pairs<'a>(from: &[&'a str], to: &[&'a str]) -> anyhow::Result<Vec<(&'a str, &'a str)>> {
    if from.len() != to.len() {
        bail!(
            "--from names {} queues and --to {}; name one of each, or as many of each in the same order",
            from.len(),
            to.len()
        );
    }
    Ok(from.iter().copied().zip(to.iter().copied()).collect())
}

/// Moves the dead letters; prints what each was.
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let Some(context) = data.aws_context() else {
        bail!(
            "the embedded backend has no dead-letter queue: the processor retries every export \
             itself, and one that cannot be imported ends with a PROCESSING_FAILED result \
             (bibgate result ID; bibgate result retry)"
        );
    };
    let from_urls = urls(args.from.as_deref(), "--from")?;
    let to_urls = urls(args.to.as_deref(), "--to")?;
    for (from, to) in pairs(&from_urls, &to_urls)? {
        let from = SqsQueue::new(context, from);
        let to = SqsQueue::new(context, to);
        let moved = from
            .redrive_to(&to, args.max)
            .context("could not re-drive the dead-letter queue")?;
        for body in &moved {
            println!("{}", describe(body));
        }
        eprintln!(
            "moved {} message{} from {} to {}",
            moved.len(),
            if moved.len() == 1 { "" } else { "s" },
            from.url(),
            to.url()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The object keys of an S3 event body, or the body's first 200 characters.
fn describe(body: &str) -> String {
    let keys: Vec<String> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            value
                .get("Records")
                .and_then(|records| records.as_array())
                .map(|records| {
                    records
                        .iter()
                        .filter_map(|record| record.pointer("/s3/object/key")?.as_str())
                        .map(bibgate_inbox::layout::decode_event_key)
                        .collect()
                })
        })
        .unwrap_or_default();
    if keys.is_empty() {
        body.chars().take(200).collect()
    } else {
        keys.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_descriptions() {
        assert_eq!(urls(Some(" http://q/a "), "--to").unwrap(), ["http://q/a"]);
        assert!(urls(None, "--to").is_err());
        let two = urls(Some("http://q/a, http://q/b"), "--to").unwrap();
        let dlqs = urls(Some("http://q/a-dlq,http://q/b-dlq"), "--from").unwrap();
        assert_eq!(
            pairs(&dlqs, &two).unwrap(),
            [
                ("http://q/a-dlq", "http://q/a"),
                ("http://q/b-dlq", "http://q/b")
            ]
        );
        assert!(
            pairs(&dlqs[..1], &two).is_err(),
            "one dead-letter queue for two queues"
        );
        let body = r#"{"Records":[{"s3":{"object":{"key":"inbox/01A/x.mrc"}}}]}"#;
        assert_eq!(describe(body), "inbox/01A/x.mrc");
        assert_eq!(describe("not json"), "not json");
        let encoded = r#"{"Records":[{"s3":{"object":{"key":"drop/01A/my+file%2B1.mrc"}}}]}"#;
        assert_eq!(describe(encoded), "drop/01A/my file+1.mrc");
    }
}
