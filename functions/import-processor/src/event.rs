//! S3 event notifications as they arrive in SQS message bodies, read leniently.
//!
//! `aws_lambda_events::s3::S3Event` is strict (it requires `userIdentity`,
//! `requestParameters` and a zoned `eventTime`); moto's notifications lack them, and AWS
//! only promises the fields we use. So this reads just `eventName`, `s3.bucket.name` and
//! `s3.object.key`, and ignores everything else. The `s3:TestEvent` S3 sends when a
//! notification is configured has no records.

use serde::Deserialize;

/// One object-created notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEvent {
    /// `ObjectCreated:Put`, ...
    pub event_name: String,
    /// The bucket.
    pub bucket: String,
    /// The object key, decoded (S3 form-encodes keys in notifications).
    pub key: String,
}

/// What a message body holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Object notifications (usually one).
    Objects(Vec<ObjectEvent>),
    /// `s3:TestEvent`, sent once when a notification is configured.
    Test,
}

#[derive(Deserialize)]
struct RawBody {
    #[serde(rename = "Records", default)]
    records: Vec<RawRecord>,
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: RawS3,
}

#[derive(Deserialize)]
struct RawS3 {
    bucket: RawBucket,
    object: RawObject,
}

#[derive(Deserialize)]
struct RawBucket {
    name: String,
}

#[derive(Deserialize)]
struct RawObject {
    key: String,
}

/// Why a body is not an S3 notification.
#[derive(Debug, thiserror::Error)]
#[error("the message body is not an s3 event notification: {0}")]
pub struct NotAnEvent(String);

/// Reads a message body.
pub fn parse_body(body: &str) -> Result<Body, NotAnEvent> {
    let raw: RawBody = serde_json::from_str(body).map_err(|err| NotAnEvent(err.to_string()))?;
    if raw.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Body::Test);
    }
    if raw.records.is_empty() {
        return Err(NotAnEvent("it has no records".into()));
    }
    Ok(Body::Objects(
        raw.records
            .into_iter()
            .map(|record| ObjectEvent {
                event_name: record.event_name,
                bucket: record.s3.bucket.name,
                key: decode_key(&record.s3.object.key),
            })
            .collect(),
    ))
}

/// Decodes a key as S3 writes it into notifications (shared with `bibgate redrive`).
pub use bibgate_inbox::layout::decode_event_key as decode_key;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(
            decode_key("drop%2F01DEMO_ALPHA%2Fnew+books%2B1%25.mrc"),
            "drop/01DEMO_ALPHA/new books+1%.mrc"
        );
        assert_eq!(decode_key("inbox/A/A-1.mrc"), "inbox/A/A-1.mrc");
        assert_eq!(decode_key("bad%zz%"), "bad%zz%");
        assert_eq!(decode_key("caf%C3%A9"), "café");
    }

    #[test]
    fn moto_bodies_are_read() {
        // moto 5.2: no userIdentity, requestParameters or sequencer; eventTime has no zone.
        let body = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
            "awsRegion": "us-east-1", "eventTime": "2026-11-27T10:01:37.462147",
            "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0",
            "configurationId": "c", "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
            "object": {"key": "inbox%2FA%2FA-1+2.mrc", "size": 3, "eTag": "x"}}}]}"#;
        assert_eq!(
            parse_body(body).unwrap(),
            Body::Objects(vec![ObjectEvent {
                event_name: "ObjectCreated:Put".into(),
                bucket: "b".into(),
                key: "inbox/A/A-1 2.mrc".into(),
            }])
        );
    }

    #[test]
    fn aws_bodies_and_test_events_are_read() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2024-06-01T10:00:00.000Z","eventName":"ObjectCreated:Put",
            "userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"1.2.3.4"},
            "responseElements":{"x-amz-request-id":"r"},"s3":{"s3SchemaVersion":"1.0",
            "configurationId":"c","bucket":{"name":"b","ownerIdentity":{"principalId":"X"},
            "arn":"arn:aws:s3:::b"},"object":{"key":"drop/A/x.mrc","size":1,"eTag":"e",
            "sequencer":"00"}}}]}"#;
        assert!(
            matches!(parse_body(body).unwrap(), Body::Objects(events) if events[0].key == "drop/A/x.mrc")
        );
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-06-01T10:00:00.000Z","Bucket":"b"}"#;
        assert_eq!(parse_body(test).unwrap(), Body::Test);
        assert!(parse_body("not json").is_err());
        assert!(parse_body("{}").is_err());
    }
}

#[cfg(test)]
mod fixture_tests {
    use aws_lambda_events::event::sqs::SqsEvent;

    use super::*;

    fn fixture(name: &str) -> SqsEvent {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn the_sqs_fixtures_parse() {
        let event = fixture("sqs-moto-s3-event.json");
        let body = event.records[0].body.as_deref().unwrap();
        assert_eq!(
            parse_body(body).unwrap(),
            Body::Objects(vec![ObjectEvent {
                event_name: "ObjectCreated:Put".into(),
                bucket: "bibgate-dev".into(),
                key: "drop/01DEMO_ALPHA/new books+1.mrc".into(),
            }])
        );
        let event = fixture("sqs-s3-test-event.json");
        assert_eq!(
            parse_body(event.records[0].body.as_deref().unwrap()).unwrap(),
            Body::Test
        );
    }
}
