//! One drop file (`drop/<institution>/<file>.mrc` or `.xml`), imported in chunks by the
//! local processor and by the Lambda function alike.
//!
//! The file's bytes are kept under `received/drop/<institution>/<file>` (beside an earlier
//! file of the same name, never over it), then imported in chunks of `chunk_len` records
//! with [`Importer::import_batch`] (one durable transaction each). After each chunk the
//! caller's `pause` hook is asked whether to stop: the local processor never stops; the
//! Lambda stops when its remaining time runs short. Stopping writes the records done so far
//! as report *parts* and a continuation marker `drop/<institution>/.continue/<file>.json`,
//! whose creation is itself an S3 event under `drop/`, so a fresh invocation resumes at the
//! marker's record index. The end joins the parts into the report
//! (`reports/<institution>/<file>.results.jsonl`, one line per record) and the rejected
//! records (`<file>.rejected.mrc`), then deletes the drop file and the marker.
//!
//! Export ids are `<batch>#<index>` with the batch id from the institution, the file name
//! and a content hash, so a re-run after a crash, a duplicate event, or two processors
//! seeing the same file import nothing twice: a record whose export id has a result gets
//! that result back. Records of a file are imported in file order, so records with the
//! same OCLC number are decided in order.
//!
//! A file's own start (not a resume) does nothing while a continuation marker for the same
//! content exists (written less than a day ago): the file is being continued (the event is
//! a duplicate, or the retry of an invocation that handed over and then failed to answer).
//! Otherwise report parts left over (by an invocation killed between writing its parts and
//! its marker, or by an earlier file of that name) are deleted first, so that the report
//! has one line per record.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bibgate_import::{Importer, Input, Received};
use bibgate_marc::Source;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_store::{BlobStore, ImportResult, Outcome};
use serde_json::json;
use tracing::{info, warn};

use crate::layout::{
    DROP, continuation_key, drop_batch_id, drop_key, drop_received_key, drop_received_key_beside,
    rejected_key, rejected_key_beside, report_key, report_key_beside, report_parts_prefix,
    stable_hash,
};
use crate::services::Services;
use crate::{Error, Result, now_unix};

/// The most chunk slots reserved up front (a larger chunk grows as records arrive).
const CAPACITY_MAX: usize = 2_000;

/// A continuation marker older than this no longer keeps the file's own event from
/// starting the file again: its continuation has left the queue (10 receives, 5,400 s
/// visibility timeout: 15 hours), so a file dropped again must not wait for it.
const MARKER_STALE_AFTER_S: i64 = 24 * 3600;

/// How far one call got with a drop file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropOutcome {
    /// Imported to the end; report written, drop file deleted.
    Finished {
        /// Records imported by this call.
        records: usize,
    },
    /// Stopped by the pause hook; a continuation marker was written.
    Continued {
        /// The first record index the next call imports.
        next_index: u64,
        /// Records imported by this call.
        records: usize,
    },
    /// The drop file is gone (finished by an earlier delivery).
    Gone,
    /// The file's own start came while a continuation marker for the same content exists:
    /// the continuation finishes the file, this call does nothing.
    BeingContinued,
}

/// Where to start in a drop file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The file's own start: record 1, unless it is being continued elsewhere.
    New,
    /// A continuation: from `next_index`, if the file's content hash is still `hash` (else
    /// the file was replaced and starts again at record 1).
    Resume {
        /// The first record index to import.
        next_index: u64,
        /// The content hash the marker was written for.
        hash: u64,
    },
}

/// `(next_index, content hash)` of a continuation marker's bytes.
pub fn parse_marker(bytes: &[u8]) -> Option<(u64, u64)> {
    let value = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    let next = value.get("next_index")?.as_u64()?;
    let hash = u64::from_str_radix(value.get("hash")?.as_str()?, 16).ok()?;
    Some((next, hash))
}

/// Whether a marker says that a continuation of the content `hash` is under way (written
/// less than [`MARKER_STALE_AFTER_S`] before `now_unix`).
fn continuing(marker: &[u8], hash: u64, now_unix: i64) -> bool {
    let written = serde_json::from_slice::<serde_json::Value>(marker)
        .ok()
        .and_then(|value| value.get("written_unix")?.as_i64());
    parse_marker(marker).is_some_and(|(_, h)| h == hash)
        && written.is_some_and(|w| now_unix.saturating_sub(w) < MARKER_STALE_AFTER_S)
}

fn delete_parts(blobs: &dyn BlobStore, institution: &str, file: &str) -> Result<()> {
    for part in blobs.list(&report_parts_prefix(institution, file))? {
        blobs.delete(&part)?;
    }
    Ok(())
}

/// One line of a drop file's report.
pub fn report_line(result: &ImportResult) -> serde_json::Value {
    json!({
        "index": result.index,
        "export_id": result.export_id,
        "outcome": result.outcome.as_str(),
        "host_message": result.host_message,
        "reason_code": result.reason_code,
        "mms_id": result.mms_id.as_ref().map(|m| m.0.clone()),
        "oclc_numbers": result.oclc_numbers,
    })
}

/// Reads `drop/<institution>/<file>` and imports it ([`import_drop`]); [`DropOutcome::Gone`]
/// when the file is not there.
pub fn import_drop_key(
    services: &Services,
    institution: &str,
    file: &str,
    start: Start,
    chunk_len: usize,
    pause: &dyn Fn(Duration) -> bool,
) -> Result<DropOutcome> {
    let Some(bytes) = services.blobs.get(&drop_key(institution, file))? else {
        return Ok(DropOutcome::Gone);
    };
    import_drop(services, institution, file, &bytes, start, chunk_len, pause)
}

/// Imports the drop file `bytes` of `institution` named `file` (see the module docs),
/// `chunk_len` records (at least 1) per batch import. After each chunk, `pause` is given
/// the chunk's time and says whether to hand over to a continuation.
pub fn import_drop(
    services: &Services,
    institution: &str,
    file: &str,
    bytes: &[u8],
    start: Start,
    chunk_len: usize,
    pause: &dyn Fn(Duration) -> bool,
) -> Result<DropOutcome> {
    let chunk_len = chunk_len.max(1);
    let store = &*services.store;
    let blobs = &*services.blobs;
    let drop_key = drop_key(institution, file);
    let hash = stable_hash(bytes);
    let start_index = match start {
        Start::Resume {
            next_index,
            hash: expected,
        } if expected == hash => next_index,
        Start::Resume { .. } => {
            warn!(file = %drop_key, "the drop file changed since its continuation was written; starting again");
            delete_parts(blobs, institution, file)?;
            1
        }
        Start::New => {
            // The file's own start: its first delivery, a duplicate, or a retry.
            let marker = blobs.get(&continuation_key(institution, file))?;
            if marker.is_some_and(|m| continuing(&m, hash, now_unix())) {
                info!(file = %drop_key, "the drop file is being continued elsewhere; nothing to do");
                return Ok(DropOutcome::BeingContinued);
            }
            delete_parts(blobs, institution, file)?;
            1
        }
    };
    let batch_id = drop_batch_id(institution, file, hash);
    let mut raw_key = drop_received_key(institution, file);
    if !blobs.put_if_absent(&raw_key, bytes)? && blobs.get(&raw_key)?.as_deref() != Some(bytes) {
        // An earlier file of the same name: keep both.
        raw_key = drop_received_key_beside(institution, file, hash);
        blobs.put(&raw_key, bytes)?;
    }
    let (report_key, rejected_key) = report_keys(blobs, institution, file, &batch_id, hash)?;
    let route = match bibgate_import::route(store, institution, None) {
        Ok(route) => route,
        Err(error) if error.is_permanent() => {
            warn!(file = %drop_key, %error, "drop file cannot be routed");
            let line = json!({ "error": error.to_string() });
            blobs.put(&report_key, format!("{line}\n").as_bytes())?;
            delete_if_unchanged(blobs, &drop_key, hash)?;
            blobs.delete(&continuation_key(institution, file))?;
            return Ok(DropOutcome::Finished { records: 0 });
        }
        Err(error) => return Err(error.into()),
    };
    let importer = Importer::with_policies(store, services.policies.as_deref());
    let received_unix = now_unix();
    let source = Source::sniffed(bytes, Mode::Lenient, Charset::Auto)
        .map_err(|error| Error::Unreadable(format!("could not read {drop_key:?}: {error}")))?;
    let mut done = Done::default();
    let mut chunk: Vec<(Input, Received)> = Vec::with_capacity(chunk_len.min(CAPACITY_MAX));
    let mut raws: Vec<Vec<u8>> = Vec::with_capacity(chunk_len.min(CAPACITY_MAX));
    let mut records = 0usize;
    let flush = |chunk: &mut Vec<(Input, Received)>,
                 raws: &mut Vec<Vec<u8>>,
                 done: &mut Done|
     -> Result<usize> {
        if chunk.is_empty() {
            return Ok(0);
        }
        let results = importer.import_batch(&route, chunk, now_unix())?;
        bibgate_failpoint::point("drop.chunk");
        for (result, raw) in results.iter().zip(raws.iter()) {
            done.add(result, raw);
        }
        let imported = chunk.len();
        chunk.clear();
        raws.clear();
        Ok(imported)
    };
    for item in source {
        let index = item.index as u64;
        if index < start_index {
            continue;
        }
        let bibgate_import::BatchItem {
            input,
            received,
            raw,
        } = bibgate_import::batch_item(item, &batch_id, &raw_key, received_unix);
        chunk.push((input, received));
        raws.push(raw);
        if chunk.len() >= chunk_len {
            let started = Instant::now();
            records += flush(&mut chunk, &mut raws, &mut done)?;
            let last_chunk = started.elapsed();
            if pause(last_chunk) {
                let next_index = index + 1;
                hand_over(
                    blobs,
                    institution,
                    file,
                    start_index,
                    hash,
                    next_index,
                    &done,
                )?;
                info!(file = %drop_key, %batch_id, records, next_index, last_chunk_ms = last_chunk.as_millis() as u64, "drop file continues in a new invocation");
                return Ok(DropOutcome::Continued {
                    next_index,
                    records,
                });
            }
        }
    }
    records += flush(&mut chunk, &mut raws, &mut done)?;
    // Earlier calls' parts first, in record order.
    let prefix = report_parts_prefix(institution, file);
    let parts = blobs.list(&prefix)?;
    let mut full_report = Vec::new();
    let mut full_rejected = Vec::new();
    for part in &parts {
        let Some(part_bytes) = blobs.get(part)? else {
            continue;
        };
        if part.ends_with(".rejected.mrc") {
            full_rejected.extend_from_slice(&part_bytes);
        } else {
            full_report.extend_from_slice(&part_bytes);
        }
    }
    full_report.extend_from_slice(&done.report);
    full_rejected.extend_from_slice(&done.rejected);
    // The rejected records first: the report's appearance tells that both are there.
    if full_rejected.is_empty() {
        blobs.delete(&rejected_key)?;
    } else {
        blobs.put(&rejected_key, &full_rejected)?;
    }
    blobs.put(&report_key, &full_report)?;
    delete_if_unchanged(blobs, &drop_key, hash)?;
    blobs.delete(&continuation_key(institution, file))?;
    for part in &parts {
        blobs.delete(part)?;
    }
    let count = |outcome: &str| done.counts.get(outcome).copied().unwrap_or(0);
    info!(
        file = %drop_key,
        %batch_id,
        records,
        added = count("added"),
        merged = count("merged"),
        failed = count("failed"),
        report = %report_key,
        "drop file imported"
    );
    Ok(DropOutcome::Finished { records })
}

/// The report and rejected-records keys of a drop file: `<file>.results.jsonl` and
/// `<file>.rejected.mrc`, unless a report of that name belongs to another file (another
/// batch: other content under the same name), which keeps its report; this file's then
/// carry its content hash ([`report_key_beside`]).
pub(crate) fn report_keys(
    blobs: &dyn BlobStore,
    institution: &str,
    file: &str,
    batch_id: &str,
    hash: u64,
) -> Result<(String, String)> {
    let plain = report_key(institution, file);
    let ours = |report: &[u8]| {
        let first = report.split(|&b| b == b'\n').next().unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(first)
            .ok()
            .and_then(|line| {
                let export_id = line.get("export_id")?.as_str()?.to_string();
                Some(export_id.starts_with(&format!("{batch_id}#")))
            })
            // A routing failure's report (a line without export id) may be replaced by
            // the next try; an empty report (a file without records) is kept.
            .unwrap_or(!first.is_empty())
    };
    // The first line tells whose report it is: read the head only.
    match blobs.get_range(&plain, 0, 64 * 1024)? {
        Some(report) if !ours(&report) => Ok((
            report_key_beside(institution, file, hash),
            rejected_key_beside(institution, file, hash),
        )),
        _ => Ok((plain, rejected_key(institution, file))),
    }
}

/// Deletes the drop file `key` if it still holds the content `hash` that was imported; a
/// file that changed meanwhile (more bytes written, or replaced) is kept, to be imported
/// as the new content it is. Returns whether it was deleted.
fn delete_if_unchanged(blobs: &dyn BlobStore, key: &str, hash: u64) -> Result<bool> {
    match blobs.get(key)? {
        None => Ok(false),
        Some(now) if stable_hash(&now) != hash => {
            warn!(file = %key, "the drop file changed while it was imported; it is kept and imported again as its new content");
            Ok(false)
        }
        Some(_) => blobs.delete(key).map_err(Into::into),
    }
}

/// Whether drop-file bytes end inside a record, as a file still being written does: ISO
/// 2709 whose last byte other than blanks and NULs is not a record terminator (0x1D), or
/// MARCXML that does not end with the end of a `record` or `collection` element. Empty
/// input does not.
pub fn ends_inside_a_record(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0 | 0x1A));
    let Some(end) = end else {
        return false;
    };
    let content = &bytes[..=end];
    match bibgate_marc::Format::sniff(content) {
        bibgate_marc::Format::Iso2709 => content[end] != bibgate_marc::iso2709::RECORD_TERMINATOR,
        bibgate_marc::Format::MarcXml => {
            !(content.ends_with(b"collection>") || content.ends_with(b"record>"))
        }
    }
}

/// Whether bytes look like MARC: MARCXML with a `record` element, or ISO 2709 starting
/// (after filler) with a five-digit record length and holding a record terminator. Used for
/// drop files whose extension is neither `.mrc` nor `.xml`.
pub fn looks_like_marc(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0 | 0x1A | 0x1D));
    let Some(start) = start else {
        return false;
    };
    let content = &bytes[start..];
    match bibgate_marc::Format::sniff(content) {
        bibgate_marc::Format::MarcXml => content
            .windows(7)
            .any(|w| w == b"<record" || w == b":record"),
        bibgate_marc::Format::Iso2709 => {
            content.len() >= 24
                && content[..5].iter().all(u8::is_ascii_digit)
                && content.contains(&bibgate_marc::iso2709::RECORD_TERMINATOR)
        }
    }
}

/// What the chunks of one call produced: report lines, rejected records, counts.
#[derive(Default)]
pub(crate) struct Done {
    pub(crate) report: Vec<u8>,
    pub(crate) rejected: Vec<u8>,
    counts: HashMap<&'static str, usize>,
}

impl Done {
    pub(crate) fn add(&mut self, result: &ImportResult, raw: &[u8]) {
        self.report
            .extend_from_slice(report_line(result).to_string().as_bytes());
        self.report.push(b'\n');
        *self.counts.entry(result.outcome.as_str()).or_default() += 1;
        if result.outcome == Outcome::Failed {
            self.rejected.extend_from_slice(raw);
        }
    }
}

/// Keeps what a call did as report parts, then writes the continuation marker.
fn hand_over(
    blobs: &dyn BlobStore,
    institution: &str,
    file: &str,
    first_of_part: u64,
    hash: u64,
    next_index: u64,
    done: &Done,
) -> Result<()> {
    let prefix = report_parts_prefix(institution, file);
    blobs.put(&format!("{prefix}{first_of_part:012}.jsonl"), &done.report)?;
    if !done.rejected.is_empty() {
        blobs.put(
            &format!("{prefix}{first_of_part:012}.rejected.mrc"),
            &done.rejected,
        )?;
    }
    let marker = json!({
        "next_index": next_index,
        "hash": format!("{hash:016x}"),
        "written_unix": now_unix(),
    });
    blobs.put(
        &continuation_key(institution, file),
        marker.to_string().as_bytes(),
    )?;
    Ok(())
}

/// Text of the README placed in each drop folder.
const DROP_README: &str = "Copy MARC files (.mrc, ISO 2709; or .xml, MARCXML) into this folder to import them.\n\
Each file is imported once it has stayed unchanged for a moment; it then moves to\n\
received/drop/<institution>/ and its report appears in reports/<institution>/\n\
(<file>.results.jsonl, one line per record, and <file>.rejected.mrc with the records not imported).\n\
Write or copy a file under a name ending in .part (or starting with a dot) and rename it\n\
when complete: such files are never taken. Other files that are not MARC are moved to\n\
received/drop/<institution>/refused/ with a report <file>.<hash>.refused.txt saying why.\n";

/// Creates `drop/<institution>/README.txt` for every institution with a Connexion profile;
/// returns the institutions.
pub fn ensure_drop_folders(services: &Services) -> Result<Vec<String>> {
    let mut made = Vec::new();
    for institution in services.store.institutions()? {
        if bibgate_import::connexion_profile(&*services.store, &institution.code).is_err() {
            continue;
        }
        services.blobs.put_if_absent(
            &format!("{DROP}{}/README.txt", institution.code),
            DROP_README.as_bytes(),
        )?;
        made.push(institution.code);
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blobs in memory.
    #[derive(Default)]
    struct Memory(std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

    impl BlobStore for Memory {
        fn put(&self, key: &str, bytes: &[u8]) -> bibgate_store::Result<()> {
            self.0.lock().unwrap().insert(key.into(), bytes.to_vec());
            Ok(())
        }
        fn put_if_absent(&self, key: &str, bytes: &[u8]) -> bibgate_store::Result<bool> {
            let mut blobs = self.0.lock().unwrap();
            if blobs.contains_key(key) {
                return Ok(false);
            }
            blobs.insert(key.into(), bytes.to_vec());
            Ok(true)
        }
        fn get(&self, key: &str) -> bibgate_store::Result<Option<Vec<u8>>> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        fn list(&self, prefix: &str) -> bibgate_store::Result<Vec<String>> {
            let blobs = self.0.lock().unwrap();
            Ok(blobs
                .keys()
                .filter(|key| key.starts_with(prefix))
                .cloned()
                .collect())
        }
        fn delete(&self, key: &str) -> bibgate_store::Result<bool> {
            Ok(self.0.lock().unwrap().remove(key).is_some())
        }
    }

    #[test]
    fn r18_a_drop_file_that_changed_after_it_was_taken_is_kept() {
        let blobs = Memory::default();
        blobs.put("drop/A/f.mrc", b"first part").unwrap();
        let taken = stable_hash(b"first part");
        blobs.put("drop/A/f.mrc", b"first part, and more").unwrap();
        assert!(!delete_if_unchanged(&blobs, "drop/A/f.mrc", taken).unwrap());
        assert_eq!(
            blobs.get("drop/A/f.mrc").unwrap().unwrap(),
            b"first part, and more"
        );
        let now = stable_hash(b"first part, and more");
        assert!(delete_if_unchanged(&blobs, "drop/A/f.mrc", now).unwrap());
        assert!(!delete_if_unchanged(&blobs, "drop/A/f.mrc", now).unwrap());
    }

    #[test]
    fn r18_a_report_of_another_file_of_the_same_name_is_kept() {
        let blobs = Memory::default();
        let ours = |batch: &str| report_keys(&blobs, "A", "f.mrc", batch, 0xab).unwrap();
        let plain = (
            "reports/A/f.mrc.results.jsonl".to_string(),
            "reports/A/f.mrc.rejected.mrc".to_string(),
        );
        let beside = (
            "reports/A/f.mrc.00000000000000ab.results.jsonl".to_string(),
            "reports/A/f.mrc.00000000000000ab.rejected.mrc".to_string(),
        );
        assert_eq!(ours("b1"), plain, "no report yet");
        blobs
            .put(
                "reports/A/f.mrc.results.jsonl",
                b"{\"export_id\":\"b1#1\"}\n",
            )
            .unwrap();
        assert_eq!(ours("b1"), plain, "this file's own report, written again");
        assert_eq!(ours("b2"), beside, "another file's report is kept");
        blobs.put("reports/A/f.mrc.results.jsonl", b"").unwrap();
        assert_eq!(ours("b2"), beside, "an empty report is kept");
    }

    #[test]
    fn r18_files_still_being_written_end_inside_a_record() {
        let mut record = b"00026nam a2200025 a 4500".to_vec();
        record.extend([0x1E, 0x1D]);
        assert!(!ends_inside_a_record(&record));
        assert!(!ends_inside_a_record(
            &[record.as_slice(), b"\r\n\0"].concat()
        ));
        assert!(ends_inside_a_record(&record[..20]));
        assert!(ends_inside_a_record(&[record.as_slice(), b"000"].concat()));
        assert!(!ends_inside_a_record(b""));
        assert!(!ends_inside_a_record(
            b"<collection><record></record></collection>\n"
        ));
        assert!(ends_inside_a_record(b"<collection><record><leader>00"));
        assert!(looks_like_marc(&record));
        assert!(looks_like_marc(
            b"<?xml version=\"1.0\"?><collection><record>"
        ));
        assert!(!looks_like_marc(b"Dear colleague"));
        assert!(!looks_like_marc(b"<html><body>no</body></html>"));
        assert!(!looks_like_marc(&[0u8; 100]));
    }

    #[test]
    fn markers_parse() {
        assert_eq!(
            parse_marker(br#"{"next_index":501,"hash":"00000000000000ff"}"#),
            Some((501, 255))
        );
        assert_eq!(parse_marker(br#"{"next_index":501}"#), None);
        assert_eq!(parse_marker(b"not json"), None);
    }

    #[test]
    fn a_marker_keeps_the_file_event_out_for_a_day() {
        let marker = br#"{"next_index":3,"hash":"00000000000000ff","written_unix":1000}"#;
        assert!(continuing(marker, 255, 1000 + 3600));
        assert!(!continuing(marker, 256, 1000 + 3600), "another content");
        assert!(
            !continuing(marker, 255, 1000 + MARKER_STALE_AFTER_S),
            "stale"
        );
        assert!(!continuing(
            br#"{"next_index":3,"hash":"00000000000000ff"}"#,
            255,
            1000
        ));
    }
}
