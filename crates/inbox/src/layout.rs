//! Blob keys and the JSON documents of the pipeline: the one place that knows where the
//! shim, the processors (local and Lambda) and staff put and find things.
//!
//! | key | written by | content |
//! |---|---|---|
//! | `inbox/<institution>/<export-id>.mrc` | shim | the record bytes as received |
//! | `received/<institution>/<export-id>.mrc` | processor | the same bytes, kept for good |
//! | `results/<export-id>.json` | processor | [`ResultDoc`] |
//! | `drop/<institution>/<file>.mrc` or `.xml` | staff | a file of records to import |
//! | `drop/<institution>/.continue/<file>.json` | Lambda | where a drop file continues |
//! | `received/drop/<institution>/<file>` | processor | the drop file, kept for good |
//! | `reports/<institution>/<file>.results.jsonl` | processor | one [`ResultDoc`]-like line per record |
//! | `reports/<institution>/<file>.rejected.mrc` | processor | the raw bytes of the records not imported |
//! | `reports/<institution>/<file>.<hash>.results.jsonl`, `….rejected.mrc` | processor | the same, when an earlier file of that name has a report |
//! | `received/drop/<institution>/refused/<hash>-<file>` | processor | a drop file that is not MARC, moved aside |
//! | `reports/<institution>/<file>.<hash>.refused.txt` | processor | why it was refused |
//! | `reports/<institution>/.parts/<file>/…` | Lambda | the report so far of a continued drop file |
//!
//! An export id is `<institution>-<unix-millis>-<instance>-<counter>`: the institution and
//! the receive time are read back from it, so the inbox needs no sidecar document. The
//! records of a drop file have the export ids `<batch>#<index>`, the batch id being
//! [`drop_batch_id`] (from the institution, the file name and a content hash).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use bibgate_store::ImportResult;
use serde_json::{Value, json};

/// Prefix of the inbox.
pub const INBOX: &str = "inbox/";
/// Prefix of the drop folders.
pub const DROP: &str = "drop/";
/// Prefix of the reports of drop files.
pub const REPORTS: &str = "reports/";

/// The inbox key of an export.
pub fn inbox_key(institution: &str, export_id: &str) -> String {
    format!("{INBOX}{institution}/{export_id}.mrc")
}

/// Where an export's bytes are kept once the processor took it.
pub fn received_key(institution: &str, export_id: &str) -> String {
    format!("received/{institution}/{export_id}.mrc")
}

/// The result document of an export.
pub fn result_key(export_id: &str) -> String {
    format!("results/{export_id}.json")
}

/// The drop-folder key of a file.
pub fn drop_key(institution: &str, file: &str) -> String {
    format!("{DROP}{institution}/{file}")
}

/// Where a drop file's bytes are kept once it is imported; `hash` (its content hash) tells
/// it from an earlier file of the same name ([`drop_received_key_beside`]).
pub fn drop_received_key(institution: &str, file: &str) -> String {
    format!("received/drop/{institution}/{file}")
}

/// Where a drop file's bytes are kept when an earlier file of the same name is there.
pub fn drop_received_key_beside(institution: &str, file: &str, hash: u64) -> String {
    format!("received/drop/{institution}/{hash:016x}-{file}")
}

/// The batch id of a drop file's records (their export ids are `<batch>#<index>`).
pub fn drop_batch_id(institution: &str, file: &str, hash: u64) -> String {
    format!("drop-{institution}-{file}-{hash:016x}")
}

/// The report of a drop file: one JSON line per record.
pub fn report_key(institution: &str, file: &str) -> String {
    format!("{REPORTS}{institution}/{file}.results.jsonl")
}

/// The report of a drop file whose name an earlier file's report already has: the content
/// hash tells them apart, so both are kept.
pub fn report_key_beside(institution: &str, file: &str, hash: u64) -> String {
    format!("{REPORTS}{institution}/{file}.{hash:016x}.results.jsonl")
}

/// The rejected records of a drop file whose report is [`report_key_beside`].
pub fn rejected_key_beside(institution: &str, file: &str, hash: u64) -> String {
    format!("{REPORTS}{institution}/{file}.{hash:016x}.rejected.mrc")
}

/// Where a drop file that cannot be imported is moved.
pub fn refused_key(institution: &str, file: &str, hash: u64) -> String {
    format!("received/drop/{institution}/refused/{hash:016x}-{file}")
}

/// The report that says why a drop file was refused.
pub fn refused_report_key(institution: &str, file: &str, hash: u64) -> String {
    format!("{REPORTS}{institution}/{file}.{hash:016x}.refused.txt")
}

/// Whether a drop-folder file name is one being written, by the documented convention: a
/// name starting with a dot, or ending in `.part` (any case). Such files are left alone
/// until renamed.
pub fn is_in_progress_name(file: &str) -> bool {
    file.starts_with('.') || file.to_ascii_lowercase().ends_with(".part")
}

/// The raw bytes of a drop file's records that were not imported.
pub fn rejected_key(institution: &str, file: &str) -> String {
    format!("{REPORTS}{institution}/{file}.rejected.mrc")
}

/// Where the report parts of a drop file continued across invocations are kept.
pub fn report_parts_prefix(institution: &str, file: &str) -> String {
    format!("{REPORTS}{institution}/.parts/{file}/")
}

/// The marker that continues a drop file in a new invocation.
pub fn continuation_key(institution: &str, file: &str) -> String {
    format!("{DROP}{institution}/.continue/{file}.json")
}

/// `(institution, file)` of a continuation marker key.
pub fn parse_continuation_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(DROP)?;
    let (institution, rest) = rest.split_once("/.continue/")?;
    let file = rest.strip_suffix(".json")?;
    (!institution.is_empty() && !institution.contains('/') && !file.contains('/'))
        .then_some((institution, file))
}

/// `(institution, export id)` of an inbox key, when it has the shape the shim writes.
pub fn parse_inbox_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(INBOX)?;
    let (institution, file) = rest.split_once('/')?;
    let export_id = file.strip_suffix(".mrc")?;
    if institution.is_empty() || export_id.contains('/') || !export_id.starts_with(institution) {
        return None;
    }
    Some((institution, export_id))
}

/// The receive time (Unix milliseconds) written into an export id.
pub fn export_millis(institution: &str, export_id: &str) -> Option<i64> {
    let rest = export_id.strip_prefix(institution)?.strip_prefix('-')?;
    rest.split('-').next()?.parse().ok()
}

/// `(institution, file name)` of a drop-folder key that should be imported: `.mrc` or
/// `.xml` (any case), not hidden.
pub fn parse_drop_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(DROP)?;
    let (institution, file) = rest.split_once('/')?;
    if institution.is_empty() || file.contains('/') || file.starts_with('.') {
        return None;
    }
    let lower = file.to_ascii_lowercase();
    (lower.ends_with(".mrc") || lower.ends_with(".xml")).then_some((institution, file))
}

/// The record of a forced release of an editor lock (`bibgate editor release --force`):
/// `audit/editor/<zone>/<mms-id>-<unix>.json`.
pub fn forced_release_key(zone: &str, mms_id: &str, unix: i64) -> String {
    format!("audit/editor/{zone}/{mms_id}-{unix}.json")
}

/// Makes unique export ids for this process.
#[derive(Debug)]
pub struct ExportIds {
    instance: String,
    counter: AtomicU64,
}

impl Default for ExportIds {
    fn default() -> Self {
        ExportIds::new()
    }
}

impl ExportIds {
    /// A generator with a random instance tag, so two processes never collide.
    pub fn new() -> ExportIds {
        let random = RandomState::new().hash_one(std::process::id());
        ExportIds {
            instance: format!("{:04x}", random & 0xffff),
            counter: AtomicU64::new(1),
        }
    }

    /// The next id for an institution at `unix_millis`.
    pub fn next(&self, institution: &str, unix_millis: i64) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{institution}-{unix_millis}-{}-{n}", self.instance)
    }
}

/// FNV-1a, 64 bits: a stable content hash for drop-file batch ids (the same bytes give the
/// same id after a restart, which makes re-processing idempotent).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The result of one export as the processor writes it to `results/<export-id>.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultDoc {
    /// The export id.
    pub export_id: String,
    /// The sending institution.
    pub institution: String,
    /// `added`, `merged` or `failed`.
    pub outcome: String,
    /// The text returned to the cataloguer.
    pub host_message: String,
    /// Stable reason code.
    pub reason_code: String,
    /// The record added or merged into.
    pub mms_id: Option<String>,
    /// The incoming OCLC numbers.
    pub oclc_numbers: Vec<u64>,
    /// Where the raw bytes are kept.
    pub raw_key: String,
}

impl ResultDoc {
    /// The document of a stored result.
    pub fn from_result(result: &ImportResult) -> ResultDoc {
        ResultDoc {
            export_id: result.export_id.clone(),
            institution: result.institution.clone(),
            outcome: result.outcome.as_str().to_string(),
            host_message: result.host_message.clone(),
            reason_code: result.reason_code.clone(),
            mms_id: result.mms_id.as_ref().map(|m| m.0.clone()),
            oclc_numbers: result.oclc_numbers.clone(),
            raw_key: result.raw_key.clone(),
        }
    }

    /// True for `added` and `merged`.
    pub fn is_success(&self) -> bool {
        self.outcome != "failed"
    }

    /// The JSON value.
    pub fn to_value(&self) -> Value {
        json!({
            "export_id": self.export_id,
            "institution": self.institution,
            "outcome": self.outcome,
            "host_message": self.host_message,
            "reason_code": self.reason_code,
            "mms_id": self.mms_id,
            "oclc_numbers": self.oclc_numbers,
            "raw_key": self.raw_key,
        })
    }

    /// The JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }

    /// Reads [`ResultDoc::to_json`] back; `None` when it is not such a document.
    pub fn from_json(bytes: &[u8]) -> Option<ResultDoc> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        Some(ResultDoc {
            export_id: text("export_id")?,
            institution: text("institution").unwrap_or_default(),
            outcome: text("outcome")?,
            host_message: text("host_message")?,
            reason_code: text("reason_code").unwrap_or_default(),
            mms_id: text("mms_id"),
            oclc_numbers: value
                .get("oclc_numbers")
                .and_then(Value::as_array)
                .map(|numbers| numbers.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
            raw_key: text("raw_key").unwrap_or_default(),
        })
    }
}

/// Decodes a key as S3 writes it into notifications: `application/x-www-form-urlencoded`
/// (`+` for a space, `%XX` for other bytes, moto even `%2F` for `/`). Invalid escapes are
/// kept as they are; invalid UTF-8 becomes U+FFFD.
pub fn decode_event_key(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&byte) = bytes.get(idx) {
        match byte {
            b'+' => {
                out.push(b' ');
                idx += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(idx + 1..idx + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                match hex {
                    Some(decoded) => {
                        out.push(decoded);
                        idx += 3;
                    }
                    None => {
                        out.push(b'%');
                        idx += 1;
                    }
                }
            }
            _ => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_keys_round_trip() {
        let ids = ExportIds::new();
        let id = ids.next("01DEMO_ALPHA", 1_717_243_200_123);
        let key = inbox_key("01DEMO_ALPHA", &id);
        assert_eq!(parse_inbox_key(&key), Some(("01DEMO_ALPHA", id.as_str())));
        assert_eq!(export_millis("01DEMO_ALPHA", &id), Some(1_717_243_200_123));
        assert_eq!(parse_inbox_key("inbox/X/Y.mrc"), None);
        assert_eq!(parse_inbox_key("inbox/X/X-1.json"), None);
        assert_ne!(ids.next("A", 1), ids.next("A", 1));
    }

    #[test]
    fn drop_keys() {
        assert_eq!(
            parse_drop_key("drop/01DEMO_ALPHA/new books.MRC"),
            Some(("01DEMO_ALPHA", "new books.MRC"))
        );
        assert_eq!(parse_drop_key("drop/01DEMO_ALPHA/README.txt"), None);
        assert_eq!(parse_drop_key("drop/01DEMO_ALPHA/.partial.mrc"), None);
        assert_eq!(parse_drop_key("drop/01DEMO_ALPHA/sub/x.mrc"), None);
    }

    #[test]
    fn continuation_keys_round_trip() {
        let key = continuation_key("01DEMO_ALPHA", "new books.mrc");
        assert_eq!(key, "drop/01DEMO_ALPHA/.continue/new books.mrc.json");
        assert_eq!(
            parse_continuation_key(&key),
            Some(("01DEMO_ALPHA", "new books.mrc"))
        );
        assert_eq!(parse_drop_key(&key), None);
        assert_eq!(parse_continuation_key("drop/A/x.mrc"), None);
    }

    #[test]
    fn result_documents_round_trip() {
        let doc = ResultDoc {
            export_id: "A-1-x-1".into(),
            institution: "A".into(),
            outcome: "added".into(),
            host_message: "The record has been processed successfully. MMS ID: 99".into(),
            reason_code: "ADDED".into(),
            mms_id: Some("99".into()),
            oclc_numbers: vec![12345],
            raw_key: "received/A/A-1-x-1.mrc".into(),
        };
        assert_eq!(ResultDoc::from_json(&doc.to_json()), Some(doc));
        assert_eq!(ResultDoc::from_json(b"{}"), None);
    }
}
