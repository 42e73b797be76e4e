//! Drop files in a time-limited function: imported in chunks, continued in a new
//! invocation when the remaining time runs short.
//!
//! The gateway's processor imports a drop file in one go (it has no deadline). Here each
//! chunk of [`crate::Settings::chunk`] records is imported with one
//! [`Importer::import_batch`]; after each chunk, if the remaining time is below the
//! [`crate::Settings::reserve`], the records done so far are written as report *parts*
//! and a continuation marker `drop/<institution>/.continue/<file>.json` is written. Its
//! creation is itself an S3 event under `drop/`, so the queue delivers it to a fresh
//! invocation, which resumes at the marker's record index. The last invocation joins the
//! parts into the same report the gateway writes and deletes the drop file and the marker.
//!
//! Export ids, batch id and raw key are the gateway's (`<batch>#<index>`, batch
//! `drop-<institution>-<file>-<hash>`), so a re-run after a crash, a duplicate event, or
//! the gateway and the function both seeing a file import nothing twice: a record whose
//! export id has a result gets that result back. Records of a file are imported in file
//! order, so records with the same OCLC number are decided in order.
//!
//! The event of the drop file itself starts at record 1, unless a continuation marker for
//! the same content exists (written less than a day ago): then the file is being continued
//! (the event is a duplicate, or the retry of an invocation that handed over and then failed
//! to answer), and the event is acknowledged without doing anything. Otherwise report parts left over (by an invocation
//! killed between writing its parts and its marker, or by an earlier file of that name)
//! are deleted first, so that the report has one line per record.

use std::time::{Duration, Instant};

use bibgate_gateway::layout::{DROP, stable_hash};
use bibgate_import::{Importer, Input, Received};
use bibgate_marc::Source;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_store::{BlobStore, ImportResult, Outcome, Store};
use serde_json::json;
use tracing::{info, warn};

use crate::{Error, Settings, now_unix};

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

fn parts_prefix(institution: &str, file: &str) -> String {
    format!("reports/{institution}/.parts/{file}/")
}

/// A continuation marker older than this no longer keeps the file's own event from
/// starting the file again: its continuation has left the queue (10 receives, 5,400 s
/// visibility timeout: 15 hours), so a file dropped again must not wait for it.
const MARKER_STALE_AFTER_S: i64 = 24 * 3600;

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

fn delete_parts(blobs: &dyn BlobStore, institution: &str, file: &str) -> Result<(), Error> {
    for part in blobs.list(&parts_prefix(institution, file))? {
        blobs.delete(&part)?;
    }
    Ok(())
}

/// How far an invocation got with a drop file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropOutcome {
    /// Imported to the end; report written, drop file deleted.
    Finished {
        /// Records imported by this invocation.
        records: usize,
    },
    /// Stopped for time; a continuation marker was written.
    Continued {
        /// The first record index the next invocation imports.
        next_index: u64,
        /// Records imported by this invocation.
        records: usize,
    },
    /// The drop file is gone (finished by an earlier delivery).
    Gone,
    /// The drop file's event came again while a continuation marker for the same content
    /// exists: the continuation finishes the file, this event does nothing.
    BeingContinued,
}

fn report_line(result: &ImportResult) -> serde_json::Value {
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

/// Imports a drop file from record `start_index` on (1 for a new file), stopping when
/// `remaining()` falls below the reserve. `expected_hash` (from a continuation marker)
/// must match the file's content hash, else the file was replaced and starts again at 1.
pub fn process_drop(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    settings: &Settings,
    institution: &str,
    file: &str,
    resume: Option<(u64, u64)>,
    remaining: &dyn Fn() -> Duration,
) -> Result<DropOutcome, Error> {
    let drop_key = format!("{DROP}{institution}/{file}");
    let Some(bytes) = blobs.get(&drop_key)? else {
        return Ok(DropOutcome::Gone);
    };
    let hash = stable_hash(&bytes);
    let start_index = match resume {
        Some((next_index, expected_hash)) if expected_hash == hash => next_index,
        Some(_) => {
            warn!(file = %drop_key, "the drop file changed since its continuation was written; starting again");
            delete_parts(blobs, institution, file)?;
            1
        }
        None => {
            // The file's own event: its first delivery, a duplicate, or a retry.
            let marker = blobs.get(&continuation_key(institution, file))?;
            if marker.is_some_and(|m| continuing(&m, hash, now_unix())) {
                info!(file = %drop_key, "the drop file is being continued in another invocation; duplicate event ignored");
                return Ok(DropOutcome::BeingContinued);
            }
            delete_parts(blobs, institution, file)?;
            1
        }
    };
    let batch_id = format!("drop-{institution}-{file}-{hash:016x}");
    let mut raw_key = format!("received/drop/{institution}/{file}");
    if !blobs.put_if_absent(&raw_key, &bytes)?
        && blobs.get(&raw_key)?.as_deref() != Some(&bytes[..])
    {
        raw_key = format!("received/drop/{institution}/{hash:016x}-{file}");
        blobs.put(&raw_key, &bytes)?;
    }
    let report_key = format!("reports/{institution}/{file}.results.jsonl");
    let rejected_key = format!("reports/{institution}/{file}.rejected.mrc");
    let route = match bibgate_import::route(store, institution, None) {
        Ok(route) => route,
        Err(error) if crate::is_permanent(&error) => {
            warn!(file = %drop_key, %error, "drop file cannot be routed");
            let line = json!({ "error": error.to_string() });
            blobs.put(&report_key, format!("{line}\n").as_bytes())?;
            blobs.delete(&drop_key)?;
            blobs.delete(&continuation_key(institution, file))?;
            return Ok(DropOutcome::Finished { records: 0 });
        }
        Err(error) => return Err(error.into()),
    };
    let importer = Importer::new(store);
    let received_unix = now_unix();
    let source = Source::sniffed(&bytes[..], Mode::Lenient, Charset::Auto)
        .map_err(|error| Error::Unreadable(format!("could not read {drop_key:?}: {error}")))?;
    let mut report = Vec::new();
    let mut rejected = Vec::new();
    let mut chunk: Vec<(Input, Received)> = Vec::with_capacity(settings.chunk);
    let mut raws: Vec<Vec<u8>> = Vec::with_capacity(settings.chunk);
    let mut records = 0usize;
    let first_of_part = start_index;
    let flush = |chunk: &mut Vec<(Input, Received)>,
                 raws: &mut Vec<Vec<u8>>,
                 report: &mut Vec<u8>,
                 rejected: &mut Vec<u8>|
     -> Result<usize, Error> {
        if chunk.is_empty() {
            return Ok(0);
        }
        let results = importer.import_batch(&route, chunk, now_unix())?;
        bibgate_failpoint::point("drop.chunk");
        for (result, raw) in results.iter().zip(raws.iter()) {
            report.extend_from_slice(report_line(result).to_string().as_bytes());
            report.push(b'\n');
            if result.outcome == Outcome::Failed {
                rejected.extend_from_slice(raw);
            }
        }
        let n_done = chunk.len();
        chunk.clear();
        raws.clear();
        Ok(n_done)
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
        if chunk.len() >= settings.chunk {
            let started = Instant::now();
            records += flush(&mut chunk, &mut raws, &mut report, &mut rejected)?;
            let last_chunk = started.elapsed();
            let next_index = index + 1;
            if remaining() < settings.reserve.max(last_chunk * 2) {
                // Keep what is done as report parts, then hand over to a new invocation.
                let prefix = parts_prefix(institution, file);
                blobs.put(&format!("{prefix}{first_of_part:012}.jsonl"), &report)?;
                if !rejected.is_empty() {
                    blobs.put(
                        &format!("{prefix}{first_of_part:012}.rejected.mrc"),
                        &rejected,
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
                info!(file = %drop_key, %batch_id, records, next_index, last_chunk_ms = last_chunk.as_millis() as u64, "drop file continues in a new invocation");
                return Ok(DropOutcome::Continued {
                    next_index,
                    records,
                });
            }
        }
    }
    records += flush(&mut chunk, &mut raws, &mut report, &mut rejected)?;
    // Earlier invocations' parts first, in record order.
    let prefix = parts_prefix(institution, file);
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
    full_report.extend_from_slice(&report);
    full_rejected.extend_from_slice(&rejected);
    if full_rejected.is_empty() {
        blobs.delete(&rejected_key)?;
    } else {
        blobs.put(&rejected_key, &full_rejected)?;
    }
    blobs.put(&report_key, &full_report)?;
    blobs.delete(&drop_key)?;
    blobs.delete(&continuation_key(institution, file))?;
    for part in &parts {
        blobs.delete(part)?;
    }
    info!(file = %drop_key, %batch_id, records, report = %report_key, "drop file imported");
    Ok(DropOutcome::Finished { records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_keys_round_trip() {
        let key = continuation_key("01DEMO_ALPHA", "new books.mrc");
        assert_eq!(key, "drop/01DEMO_ALPHA/.continue/new books.mrc.json");
        assert_eq!(
            parse_continuation_key(&key),
            Some(("01DEMO_ALPHA", "new books.mrc"))
        );
        assert_eq!(bibgate_gateway::layout::parse_drop_key(&key), None);
        assert_eq!(parse_continuation_key("drop/A/x.mrc"), None);
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
