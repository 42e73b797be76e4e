//! A drop file fanned out into chunk tasks that run in parallel invocations (the Lambda's
//! drop path; the local processor imports a file in one pass with [`crate::drop`]).
//!
//! 1. **Plan** ([`plan_drop`], on the drop file's own event). The file is copied on the
//!    store's side to `received/drop/<institution>/<file>` (beside an earlier file of the
//!    same name, never over it), then read from there with ranged reads, a window at a
//!    time, to find record boundaries (ISO 2709: where each record starts, as the lenient
//!    reader frames it; MARCXML: after each `</record>`) and the content hash. Every
//!    [`ChunkPlan`] names a byte range and its first record index. The plan is written
//!    once (put-if-absent) under `reports/<institution>/.fanout/<file>/<hash>/plan.json`,
//!    then the first `window` chunk tasks `drop/<institution>/.chunks/<file>/<hash>/<n>.json`
//!    (put-if-absent), each an S3 event on the drop path.
//! 2. **Chunk** ([`run_chunk`], on a chunk task's event). Reads its byte range (for MARCXML
//!    with the document's head before it and the collection's end tag after it), imports
//!    its records with [`Importer::import_batch`] under the export ids `<batch>#<index>`,
//!    writes its report part (rejected records first, then the lines, each put-if-absent),
//!    releases task `n + window` (put-if-absent), and counts the parts.
//! 3. **Assemble** (by whichever chunk finds every part there). Joins the parts in order
//!    into the report (the rejected records first, then the report put-if-absent: written
//!    once whatever is delivered twice), then deletes the drop file (if unchanged), the
//!    chunk tasks, the parts, and the plan last.
//!
//! Memory: a planning invocation holds one window of the file; a chunk invocation its
//! range's bytes. The assembling chunk holds the report (about 300 bytes a record).
//!
//! Idempotent: a chunk delivered twice imports nothing twice (its records' export ids
//! have results, which come back), finds its part there, and a chunk delivered after the
//! report is written only finishes the clean-up. A plan delivered twice finds the plan
//! and the tasks there (put-if-absent writes no new object, so no new event).
//!
//! Ordering: records of one chunk are decided in file order; chunks run in parallel, so
//! records of one file with the same OCLC number in different chunks are decided in
//! commit order. They still end as one record: each commit is conditioned on the OCLC
//! index items it read, so the second add of a number fails with a conflict and is decided
//! again on the new state (a merge, or a failure such as "not added: older" by the 005
//! check, as for two exports).

use std::cell::Cell;
use std::io::{BufReader, Read};

use bibgate_import::{Importer, Input, Received};
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::{self, Mode};
use bibgate_marc::{Format, Source};
use bibgate_store::BlobStore;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::drop::Done;
use crate::layout::{
    DROP, REPORTS, drop_batch_id, drop_key, drop_received_key, drop_received_key_beside,
};
use crate::services::Services;
use crate::{Error, Result, now_unix};

/// Bytes read per ranged read while planning.
const WINDOW_BYTES: u64 = 1024 * 1024;

/// The first bytes of a report read to tell whose it is.
const REPORT_HEAD_BYTES: u64 = 64 * 1024;

/// One chunk task: the bytes `start..end` of the received file (`end` `None`: to the end)
/// and the index of their first record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    /// The first byte.
    pub start: u64,
    /// The byte after the last (`None`: the end of the file).
    pub end: Option<u64>,
    /// The file's index of the chunk's first record (from 1).
    pub first_index: u64,
}

/// A fanned-out drop file: what every chunk task reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The content hash of the file.
    pub hash: u64,
    /// The batch id of its records.
    pub batch_id: String,
    /// Where its bytes are kept (and read from).
    pub raw_key: String,
    /// Its report.
    pub report_key: String,
    /// Its rejected records.
    pub rejected_key: String,
    /// When it was received (Unix seconds): every record's receive time.
    pub received_unix: i64,
    /// MARCXML: the bytes before the first record (each chunk but the first reads them
    /// first) and the end tag of the collection (each chunk but the last ends with it).
    pub xml: Option<(u64, String)>,
    /// How many chunk tasks run at once.
    pub window: usize,
    /// The chunks, in file order.
    pub chunks: Vec<ChunkPlan>,
}

impl Plan {
    fn to_json(&self) -> Vec<u8> {
        json!({
            "hash": format!("{:016x}", self.hash),
            "batch_id": self.batch_id,
            "raw_key": self.raw_key,
            "report_key": self.report_key,
            "rejected_key": self.rejected_key,
            "received_unix": self.received_unix,
            "xml": self.xml.as_ref().map(|(head, close)| json!({"head": head, "close": close})),
            "window": self.window,
            "chunks": self.chunks.iter().map(|c| json!([c.start, c.end, c.first_index])).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes()
    }

    fn from_json(bytes: &[u8]) -> Option<Plan> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let text = |name: &str| Some(value.get(name)?.as_str()?.to_string());
        let xml = match value.get("xml") {
            Some(Value::Object(xml)) => Some((
                xml.get("head")?.as_u64()?,
                xml.get("close")?.as_str()?.to_string(),
            )),
            _ => None,
        };
        let chunks = value
            .get("chunks")?
            .as_array()?
            .iter()
            .map(|chunk| {
                Some(ChunkPlan {
                    start: chunk.get(0)?.as_u64()?,
                    end: chunk.get(1)?.as_u64(),
                    first_index: chunk.get(2)?.as_u64()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Plan {
            hash: u64::from_str_radix(&text("hash")?, 16).ok()?,
            batch_id: text("batch_id")?,
            raw_key: text("raw_key")?,
            report_key: text("report_key")?,
            rejected_key: text("rejected_key")?,
            received_unix: value.get("received_unix")?.as_i64()?,
            xml,
            window: usize::try_from(value.get("window")?.as_u64()?).ok()?.max(1),
            chunks,
        })
    }
}

/// Where the plan and the report parts of a fanned-out file are kept.
pub fn fanout_prefix(institution: &str, file: &str, hash: u64) -> String {
    format!("{REPORTS}{institution}/.fanout/{file}/{hash:016x}/")
}

/// The prefix of a fanned-out file's chunk tasks.
pub fn chunk_tasks_prefix(institution: &str, file: &str, hash: u64) -> String {
    format!("{DROP}{institution}/.chunks/{file}/{hash:016x}/")
}

/// The key of chunk task `n` (from 0).
pub fn chunk_task_key(institution: &str, file: &str, hash: u64, n: usize) -> String {
    format!("{}{n:06}.json", chunk_tasks_prefix(institution, file, hash))
}

/// `(institution, file, hash, n)` of a chunk task key.
pub fn parse_chunk_task_key(key: &str) -> Option<(&str, &str, u64, usize)> {
    let rest = key.strip_prefix(DROP)?;
    let (institution, rest) = rest.split_once("/.chunks/")?;
    let rest = rest.strip_suffix(".json")?;
    let (rest, n) = rest.rsplit_once('/')?;
    let (file, hash) = rest.rsplit_once('/')?;
    if institution.is_empty() || institution.contains('/') || file.is_empty() || file.contains('/')
    {
        return None;
    }
    let hash = u64::from_str_radix(hash, 16).ok()?;
    Some((institution, file, hash, n.parse().ok()?))
}

fn plan_key(institution: &str, file: &str, hash: u64) -> String {
    format!("{}plan.json", fanout_prefix(institution, file, hash))
}

fn part_key(institution: &str, file: &str, hash: u64, n: usize) -> String {
    format!(
        "{}part-{n:06}.jsonl",
        fanout_prefix(institution, file, hash)
    )
}

/// How many report parts the assembler fetches at once.
const PARTS_AHEAD: usize = 8;

/// Which chunk assembles the report (its number): the first to claim it.
fn assembler_key(institution: &str, file: &str, hash: u64) -> String {
    format!("{}assembler", fanout_prefix(institution, file, hash))
}

fn rejected_part_key(institution: &str, file: &str, hash: u64, n: usize) -> String {
    format!(
        "{}part-{n:06}.rejected.mrc",
        fanout_prefix(institution, file, hash)
    )
}

/// FNV-1a over more bytes (the same as [`crate::layout::stable_hash`] over all of them).
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// How far a [`Ranged`] read got: the hash of the bytes fetched, where the next window
/// starts, and whether the blob ended.
struct RangedState {
    hash: Cell<u64>,
    position: Cell<u64>,
    ended: Cell<bool>,
}

impl RangedState {
    fn new() -> RangedState {
        RangedState {
            hash: Cell::new(FNV_START),
            position: Cell::new(0),
            ended: Cell::new(false),
        }
    }
}

/// A blob read a window at a time with ranged reads, hashing what it fetches.
struct Ranged<'a> {
    blobs: &'a dyn BlobStore,
    key: &'a str,
    state: &'a RangedState,
    window: Vec<u8>,
    taken: usize,
}

impl<'a> Ranged<'a> {
    /// Reads on from where `state` got.
    fn new(blobs: &'a dyn BlobStore, key: &'a str, state: &'a RangedState) -> Ranged<'a> {
        Ranged {
            blobs,
            key,
            state,
            window: Vec::new(),
            taken: 0,
        }
    }
}

impl Read for Ranged<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.taken == self.window.len() {
            if self.state.ended.get() {
                return Ok(0);
            }
            let position = self.state.position.get();
            let window = self
                .blobs
                .get_range(self.key, position, WINDOW_BYTES)
                .map_err(std::io::Error::other)?
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{:?} is gone", self.key),
                    )
                })?;
            self.state.ended.set((window.len() as u64) < WINDOW_BYTES);
            self.state.position.set(position + window.len() as u64);
            self.state.hash.set(fnv(self.state.hash.get(), &window));
            self.window = window;
            self.taken = 0;
            if self.window.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.window.len() - self.taken);
        out[..n].copy_from_slice(&self.window[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

/// The content hash of a blob, read through as it arrives (one request on S3, bounded
/// memory); `None` when it is not there, including when it goes while being read (a store
/// that notices: another delivery's clean-up deleted it).
pub fn streamed_hash(blobs: &dyn BlobStore, key: &str) -> Result<Option<u64>> {
    let Some(mut reader) = blobs.open(key)? else {
        return Ok(None);
    };
    // The sink cannot fail: an error is the reader's.
    let mut hashed = FnvSink(FNV_START);
    match std::io::copy(&mut reader, &mut hashed) {
        Ok(_) => Ok(Some(hashed.0)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::Unreadable(format!(
            "could not read {key:?}: {error}"
        ))),
    }
}

/// A writer that only hashes what it is given.
struct FnvSink(u64);

impl std::io::Write for FnvSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = fnv(self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The head of a MARCXML document (the bytes before its first `record` element) and the
/// end tag of its root, when the root is a collection of records.
fn xml_frame(head: &[u8]) -> Option<(u64, String)> {
    let mut at = 0;
    let mut root: Option<String> = None;
    while let Some(open) = head[at..].iter().position(|&b| b == b'<') {
        let tag = at + open;
        let rest = &head[tag + 1..];
        if rest.starts_with(b"?") || rest.starts_with(b"!") {
            at = tag + 1;
            continue;
        }
        let name_len = rest
            .iter()
            .position(|&b| matches!(b, b' ' | b'>' | b'/' | b'\t' | b'\r' | b'\n'))?;
        let name = std::str::from_utf8(&rest[..name_len]).ok()?;
        let local = name.rsplit(':').next().unwrap_or(name);
        if local == "record" {
            return Some((tag as u64, format!("</{}>", root?)));
        }
        if root.is_none() {
            root = Some(name.to_string());
        }
        at = tag + 1;
    }
    None
}

/// What a scan of a file found.
struct Scanned {
    chunks: Vec<ChunkPlan>,
    /// MARCXML: the head's length and the collection's end tag.
    xml: Option<(u64, String)>,
    hash: u64,
}

/// The chunks of the file under `raw_key` (`chunk_len` records each) and its content hash.
fn boundaries(blobs: &dyn BlobStore, raw_key: &str, chunk_len: usize) -> Result<Scanned> {
    let unreadable =
        |error: std::io::Error| Error::Unreadable(format!("could not read {raw_key:?}: {error}"));
    let head = blobs
        .get_range(raw_key, 0, REPORT_HEAD_BYTES)?
        .unwrap_or_default();
    let format = Format::sniff(&head);
    let state = RangedState::new();
    let mut chunks = vec![ChunkPlan {
        start: 0,
        end: None,
        first_index: 1,
    }];
    let chunk_len = chunk_len.max(1) as u64;
    let mut xml = None;
    {
        let reader = Ranged::new(blobs, raw_key, &state);
        match format {
            Format::Iso2709 => {
                let mut framed = iso2709::Reader::new(reader, Mode::Lenient);
                while let Some(next) = framed.next_record() {
                    // Split only where a record was framed: framing from there on is the
                    // same whichever chunk reads it.
                    let Ok(record) = next else { continue };
                    let index = record.index as u64;
                    let last_first = chunks.last().map_or(1, |c| c.first_index);
                    if index >= last_first + chunk_len {
                        if let Some(last) = chunks.last_mut() {
                            last.end = Some(record.offset);
                        }
                        chunks.push(ChunkPlan {
                            start: record.offset,
                            end: None,
                            first_index: index,
                        });
                    }
                }
            }
            Format::MarcXml => {
                xml = xml_frame(&head);
                let mut source = Source::new(
                    BufReader::with_capacity(64 * 1024, reader),
                    Format::MarcXml,
                    Mode::Lenient,
                    Charset::Auto,
                );
                // Without a collection around the records (one record, or a head longer
                // than the first window): one chunk.
                while let Some(item) = source.next_item() {
                    if xml.is_none() {
                        continue;
                    }
                    let index = item.index as u64;
                    let last_first = chunks.last().map_or(1, |c| c.first_index);
                    if item.outcome.is_ok() && index + 1 >= last_first + chunk_len {
                        // After this record's end tag: the next chunk starts.
                        if let Some(last) = chunks.last_mut() {
                            last.end = Some(item.offset);
                        }
                        chunks.push(ChunkPlan {
                            start: item.offset,
                            end: None,
                            first_index: index + 1,
                        });
                    }
                }
            }
        }
    }
    // A reader that stopped early (a document that is not well-formed) leaves bytes to
    // hash; the last chunk reads them and reports what they are.
    let mut rest = Ranged::new(blobs, raw_key, &state);
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(unreadable)?;
    Ok(Scanned {
        chunks,
        xml,
        hash: state.hash.get(),
    })
}

/// What a drop file's own event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// Chunk tasks were written (or were there): `chunks` in all.
    FannedOut {
        /// How many chunk tasks the file has.
        chunks: usize,
    },
    /// Nothing to import (no records, a routing failure, or the same content's report is
    /// there): the report is written and the drop file taken.
    Finished,
    /// The drop file is gone (done by an earlier delivery).
    Gone,
}

/// Plans `drop/<institution>/<file>` (see the module docs): `chunk_len` records a chunk,
/// `window` chunk tasks released at once.
pub fn plan_drop(
    services: &Services,
    institution: &str,
    file: &str,
    chunk_len: usize,
    window: usize,
) -> Result<Planned> {
    let blobs = &*services.blobs;
    let drop_key = drop_key(institution, file);
    // The kept copy first, made on the store's side; the chunks read it (the drop file may
    // be replaced meanwhile).
    let plain = drop_received_key(institution, file);
    let copied = blobs
        .copy_if_absent_many(&[(drop_key.as_str(), plain.as_str())])
        .pop()
        .unwrap_or(Ok(false));
    let raw_key = match copied {
        Ok(true) => plain,
        Err(bibgate_store::Error::NotFound(_)) => return Ok(Planned::Gone),
        Err(error) => return Err(error.into()),
        Ok(false) => {
            // A kept file of that name: this one (a duplicate event) or an earlier one.
            let Some(dropped) = streamed_hash(blobs, &drop_key)? else {
                return Ok(Planned::Gone);
            };
            if streamed_hash(blobs, &plain)? == Some(dropped) {
                plain
            } else {
                let beside = drop_received_key_beside(institution, file, dropped);
                match blobs
                    .copy_if_absent_many(&[(drop_key.as_str(), beside.as_str())])
                    .pop()
                    .unwrap_or(Ok(false))
                {
                    Ok(_) => beside,
                    Err(bibgate_store::Error::NotFound(_)) => return Ok(Planned::Gone),
                    Err(error) => return Err(error.into()),
                }
            }
        }
    };
    let Scanned { chunks, xml, hash } = boundaries(blobs, &raw_key, chunk_len)?;
    let batch_id = drop_batch_id(institution, file, hash);
    let plan_key = plan_key(institution, file, hash);
    if let Some(existing) = blobs.get(&plan_key)?.as_deref().and_then(Plan::from_json) {
        // A duplicate event: the tasks are out (released again in case the first
        // delivery stopped before).
        release(blobs, institution, file, &existing, 0..existing.window)?;
        return Ok(Planned::FannedOut {
            chunks: existing.chunks.len(),
        });
    }
    let (report_key, rejected_key) =
        crate::drop::report_keys(blobs, institution, file, &batch_id, hash)?;
    if report_is_ours(blobs, &report_key, &batch_id)? {
        info!(file = %drop_key, %batch_id, "the same content was imported before; its report is there");
        delete_if_unchanged(blobs, &drop_key, hash)?;
        return Ok(Planned::Finished);
    }
    match bibgate_import::route(&*services.store, institution, None) {
        Ok(_) => {}
        Err(error) if error.is_permanent() => {
            warn!(file = %drop_key, %error, "drop file cannot be routed");
            let line = json!({ "error": error.to_string() });
            blobs.put(&report_key, format!("{line}\n").as_bytes())?;
            delete_if_unchanged(blobs, &drop_key, hash)?;
            return Ok(Planned::Finished);
        }
        Err(error) => return Err(error.into()),
    }
    let plan = Plan {
        hash,
        batch_id,
        raw_key,
        report_key,
        rejected_key,
        received_unix: now_unix(),
        xml,
        window: window.max(1),
        chunks,
    };
    if !blobs.put_if_absent(&plan_key, &plan.to_json())? {
        // Another delivery planned at the same time: its plan stands.
        let existing = blobs
            .get(&plan_key)?
            .as_deref()
            .and_then(Plan::from_json)
            .ok_or_else(|| Error::Incomplete(format!("the plan {plan_key:?} is unreadable")))?;
        release(blobs, institution, file, &existing, 0..existing.window)?;
        return Ok(Planned::FannedOut {
            chunks: existing.chunks.len(),
        });
    }
    release(blobs, institution, file, &plan, 0..plan.window)?;
    info!(file = %drop_key, batch_id = %plan.batch_id, chunks = plan.chunks.len(), "drop file fanned out");
    Ok(Planned::FannedOut {
        chunks: plan.chunks.len(),
    })
}

/// Writes the chunk tasks `range` of `plan` that exist and are not there yet.
fn release(
    blobs: &dyn BlobStore,
    institution: &str,
    file: &str,
    plan: &Plan,
    range: std::ops::Range<usize>,
) -> Result<()> {
    let tasks: Vec<(String, String)> = range
        .take_while(|&n| n < plan.chunks.len())
        .map(|n| {
            let task = json!({ "chunk": n, "of": plan.chunks.len() });
            (
                chunk_task_key(institution, file, plan.hash, n),
                task.to_string(),
            )
        })
        .collect();
    // The window's tasks at once (the S3 adapter keeps many requests in flight), not one
    // after another.
    let blobs_to_put: Vec<(&str, &[u8])> = tasks
        .iter()
        .map(|(key, task)| (key.as_str(), task.as_bytes()))
        .collect();
    for outcome in blobs.put_if_absent_many(&blobs_to_put) {
        outcome?;
    }
    Ok(())
}

/// Whether the report under `report_key` is the one of `batch_id`.
fn report_is_ours(blobs: &dyn BlobStore, report_key: &str, batch_id: &str) -> Result<bool> {
    let Some(head) = blobs.get_range(report_key, 0, REPORT_HEAD_BYTES)? else {
        return Ok(false);
    };
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(serde_json::from_slice::<Value>(first)
        .ok()
        .and_then(|line| Some(line.get("export_id")?.as_str()?.to_string()))
        .is_some_and(|export_id| export_id.starts_with(&format!("{batch_id}#"))))
}

/// Deletes the drop file if it still holds the content `hash` (read a window at a time).
fn delete_if_unchanged(blobs: &dyn BlobStore, key: &str, hash: u64) -> Result<bool> {
    match streamed_hash(blobs, key)? {
        None => Ok(false),
        Some(now) if now != hash => {
            warn!(file = %key, "the drop file changed while it was imported; it is kept and imported again as its new content");
            Ok(false)
        }
        Some(_) => blobs.delete(key).map_err(Into::into),
    }
}

/// What one chunk task did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Imported; `assembled` when this chunk found every part and wrote the report.
    Imported {
        /// Records of the chunk.
        records: usize,
        /// Whether this chunk assembled the report.
        assembled: bool,
    },
    /// The file is done (its plan is gone, or its report is there): nothing to import.
    Done,
}

/// Runs chunk task `n` of the drop file `file` with content `hash` (see the module docs).
pub fn run_chunk(
    services: &Services,
    institution: &str,
    file: &str,
    hash: u64,
    n: usize,
) -> Result<ChunkOutcome> {
    let blobs = &*services.blobs;
    let Some(plan) = blobs
        .get(&plan_key(institution, file, hash))?
        .as_deref()
        .and_then(Plan::from_json)
    else {
        return Ok(ChunkOutcome::Done);
    };
    if report_is_ours(blobs, &plan.report_key, &plan.batch_id)? {
        // Delivered again after the report: finish a clean-up that may have stopped.
        clean_up(blobs, institution, file, &plan)?;
        return Ok(ChunkOutcome::Done);
    }
    let Some(chunk) = plan.chunks.get(n) else {
        warn!(
            n,
            chunks = plan.chunks.len(),
            "a chunk task beyond the plan ignored"
        );
        return Ok(ChunkOutcome::Done);
    };
    let bytes = chunk_bytes(blobs, &plan, n, chunk)?;
    let route = bibgate_import::route(&*services.store, institution, None)?;
    let importer = Importer::with_policies(&*services.store, services.policies.as_deref());
    let format = if plan.xml.is_some() {
        Format::MarcXml
    } else {
        Format::sniff(&bytes)
    };
    let head_len = match (&plan.xml, n) {
        (Some((head, _)), 1..) => *head,
        _ => 0,
    };
    let source = Source::new(&bytes[..], format, Mode::Lenient, Charset::Auto);
    let mut batch: Vec<(Input, Received)> = Vec::new();
    let mut raws = Vec::new();
    for mut item in source {
        item.index = usize::try_from(chunk.first_index)
            .unwrap_or(usize::MAX)
            .saturating_add(item.index)
            .saturating_sub(1);
        item.offset = chunk.start + item.offset.saturating_sub(head_len);
        let bibgate_import::BatchItem {
            input,
            received,
            raw,
        } = bibgate_import::batch_item(item, &plan.batch_id, &plan.raw_key, plan.received_unix);
        batch.push((input, received));
        raws.push(raw);
    }
    drop(bytes);
    let mut done = Done::default();
    if !batch.is_empty() {
        let results = importer.import_batch(&route, &batch, now_unix())?;
        if results.len() != batch.len() {
            return Err(Error::Incomplete(format!(
                "a batch import returned {} results for {} records",
                results.len(),
                batch.len()
            )));
        }
        bibgate_failpoint::point("drop.chunk");
        for (result, raw) in results.iter().zip(&raws) {
            done.add(result, raw);
        }
    }
    let records = batch.len();
    // The rejected records first: the part's lines tell that both are there.
    if !done.rejected.is_empty() {
        blobs.put_if_absent(
            &rejected_part_key(institution, file, hash, n),
            &done.rejected,
        )?;
    }
    blobs.put_if_absent(&part_key(institution, file, hash, n), &done.report)?;
    bibgate_failpoint::point("drop.part");
    release(
        blobs,
        institution,
        file,
        &plan,
        n + plan.window..n + plan.window + 1,
    )?;
    if report_is_ours(blobs, &plan.report_key, &plan.batch_id)? {
        // Another chunk assembled the report meanwhile. If its clean-up already ran (this
        // is a duplicate delivery), what this one just wrote would be left behind: it goes.
        blobs.delete_many(&[
            part_key(institution, file, hash, n),
            rejected_part_key(institution, file, hash, n),
            chunk_task_key(institution, file, hash, n + plan.window),
        ])?;
        return Ok(ChunkOutcome::Imported {
            records,
            assembled: false,
        });
    }
    let listed = blobs.list(&fanout_prefix(institution, file, hash))?;
    let parts = listed.iter().filter(|key| key.ends_with(".jsonl")).count();
    let assembled = parts >= plan.chunks.len()
        && claim_assembly(blobs, institution, file, hash, n)?
        && assemble(blobs, institution, file, &plan, &listed)?;
    info!(file = %drop_key(institution, file), batch_id = %plan.batch_id, chunk = n, records, parts, assembled, "drop file chunk imported");
    Ok(ChunkOutcome::Imported { records, assembled })
}

/// The bytes chunk `n` reads: its range, for MARCXML framed as a document.
fn chunk_bytes(blobs: &dyn BlobStore, plan: &Plan, n: usize, chunk: &ChunkPlan) -> Result<Vec<u8>> {
    let len = chunk.end.map_or(u64::MAX - chunk.start, |end| {
        end.saturating_sub(chunk.start)
    });
    let gone = || Error::Incomplete(format!("the kept drop file {:?} is gone", plan.raw_key));
    let range = blobs
        .get_range(&plan.raw_key, chunk.start, len)?
        .ok_or_else(gone)?;
    let Some((head_len, close)) = &plan.xml else {
        return Ok(range);
    };
    let mut bytes = Vec::new();
    if n > 0 {
        bytes = blobs
            .get_range(&plan.raw_key, 0, *head_len)?
            .ok_or_else(gone)?;
    }
    bytes.extend_from_slice(&range);
    if chunk.end.is_some() {
        bytes.extend_from_slice(close.as_bytes());
    }
    Ok(bytes)
}

/// Joins the parts into the report (written once: put-if-absent), then cleans up. Returns
/// whether this call wrote the report.
fn assemble(
    blobs: &dyn BlobStore,
    institution: &str,
    file: &str,
    plan: &Plan,
    listed: &[String],
) -> Result<bool> {
    let report_parts: Vec<String> = (0..plan.chunks.len())
        .map(|n| part_key(institution, file, plan.hash, n))
        .collect();
    if report_parts.iter().any(|part| !listed.contains(part)) {
        // Cleaned up by another assembler meanwhile.
        return Ok(false);
    }
    let rejected_parts: Vec<String> = (0..plan.chunks.len())
        .map(|n| rejected_part_key(institution, file, plan.hash, n))
        .filter(|part| listed.contains(part))
        .collect();
    // Streamed a part at a time: the report of a large file is never whole in memory. A part
    // gone while read (another assembler cleaned up) fails the write and nothing is written.
    let gone = |err: bibgate_store::Error| -> Result<bool> {
        match err {
            bibgate_store::Error::NotFound(_)
                if report_is_ours(blobs, &plan.report_key, &plan.batch_id)? =>
            {
                Ok(false)
            }
            err => Err(err.into()),
        }
    };
    // The rejected records first: the report's appearance tells that both are there. Both
    // are the same bytes whoever assembles.
    if rejected_parts.is_empty() {
        blobs.delete(&plan.rejected_key)?;
    } else if let Err(err) = blobs.put_stream(
        &plan.rejected_key,
        &mut Parts::new(blobs, rejected_parts, 1),
    ) {
        return gone(err);
    }
    let wrote = match blobs.put_stream_if_absent(
        &plan.report_key,
        &mut Parts::new(blobs, report_parts.clone(), PARTS_AHEAD),
    ) {
        Ok(wrote) => wrote,
        Err(err) => return gone(err),
    };
    if !wrote {
        if report_is_ours(blobs, &plan.report_key, &plan.batch_id)? {
            // Another assembler wrote the same report first: it cleans up (or, killed
            // before, its chunk task is delivered again and does).
            return Ok(false);
        }
        // A report of a routing failure under the plain name: this one replaces it.
        let mut parts = Parts::new(blobs, report_parts, PARTS_AHEAD);
        if let Err(err) = blobs.put_stream(&plan.report_key, &mut parts) {
            return gone(err);
        }
    }
    bibgate_failpoint::point("drop.report");
    clean_up(blobs, institution, file, plan)?;
    if wrote {
        info!(file = %drop_key(institution, file), batch_id = %plan.batch_id, report = %plan.report_key, "drop file imported");
    }
    Ok(wrote)
}

/// Whether chunk `n` assembles the report, once every part is there: the first chunk to
/// claim it does (a claim written if absent), and only that chunk, on every delivery of its
/// task, so chunks finishing together do not all read every part, and a claimant killed
/// before the report finishes it when its task comes back.
fn claim_assembly(
    blobs: &dyn BlobStore,
    institution: &str,
    file: &str,
    hash: u64,
    n: usize,
) -> Result<bool> {
    let key = assembler_key(institution, file, hash);
    let ours = n.to_string();
    if blobs.put_if_absent(&key, ours.as_bytes())? {
        return Ok(true);
    }
    Ok(blobs
        .get(&key)?
        .is_some_and(|claim| claim == ours.as_bytes()))
}

/// Blobs read one after another as one stream, `ahead` of them fetched at once (report
/// parts are small; the rejected records' parts are fetched one at a time); a blob that is
/// gone is an `io::ErrorKind::NotFound` error.
struct Parts<'a> {
    blobs: &'a dyn BlobStore,
    keys: std::collections::VecDeque<String>,
    ahead: usize,
    fetched: std::collections::VecDeque<Vec<u8>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl<'a> Parts<'a> {
    fn new(blobs: &'a dyn BlobStore, keys: Vec<String>, ahead: usize) -> Parts<'a> {
        Parts {
            blobs,
            keys: keys.into(),
            ahead: ahead.max(1),
            fetched: std::collections::VecDeque::new(),
            current: std::io::Cursor::new(Vec::new()),
        }
    }

    /// The next `ahead` blobs, fetched at once (in order).
    fn fetch(&mut self) -> std::io::Result<()> {
        let keys: Vec<String> = self.keys.drain(..self.ahead.min(self.keys.len())).collect();
        let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
        for (key, fetched) in keys.iter().zip(self.blobs.get_many(&asked)) {
            let bytes = fetched.map_err(std::io::Error::other)?.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{key:?} is gone"))
            })?;
            self.fetched.push_back(bytes);
        }
        Ok(())
    }
}

impl Read for Parts<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            if self.fetched.is_empty() {
                if self.keys.is_empty() {
                    return Ok(0);
                }
                self.fetch()?;
            }
            if let Some(bytes) = self.fetched.pop_front() {
                self.current = std::io::Cursor::new(bytes);
            }
        }
    }
}

/// After the report: the drop file (if unchanged), the chunk tasks, the parts, the plan.
fn clean_up(blobs: &dyn BlobStore, institution: &str, file: &str, plan: &Plan) -> Result<()> {
    delete_if_unchanged(blobs, &drop_key(institution, file), plan.hash)?;
    blobs.delete_many(&blobs.list(&chunk_tasks_prefix(institution, file, plan.hash))?)?;
    let plan_key = plan_key(institution, file, plan.hash);
    let parts: Vec<String> = blobs
        .list(&fanout_prefix(institution, file, plan.hash))?
        .into_iter()
        .filter(|part| *part != plan_key)
        .collect();
    blobs.delete_many(&parts)?;
    blobs.delete(&plan_key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One blob, read in windows (`get_range`) or through `open`; with `gone_after`, the
    /// reader `open` gives fails as a store does that notices the blob was deleted (another
    /// delivery's clean-up) once that many bytes were read.
    struct OneBlob {
        bytes: Vec<u8>,
        gone_after: Option<usize>,
    }

    /// A reader of `.0` that fails with `NotFound` from byte `.2` on (`.1` read so far).
    struct GoneAt(Vec<u8>, usize, usize);

    impl Read for GoneAt {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.1 == self.0.len() {
                return Ok(0);
            }
            if self.1 >= self.2 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "deleted while read",
                ));
            }
            let n = out.len().min(self.2 - self.1).min(self.0.len() - self.1);
            out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    impl BlobStore for OneBlob {
        fn put(&self, _: &str, _: &[u8]) -> bibgate_store::Result<()> {
            unreachable!("only read")
        }
        fn put_if_absent(&self, _: &str, _: &[u8]) -> bibgate_store::Result<bool> {
            unreachable!("only read")
        }
        fn get(&self, _: &str) -> bibgate_store::Result<Option<Vec<u8>>> {
            unreachable!("read in windows or through open")
        }
        fn list(&self, _: &str) -> bibgate_store::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn delete(&self, _: &str) -> bibgate_store::Result<bool> {
            Ok(false)
        }
        fn open(&self, _: &str) -> bibgate_store::Result<Option<Box<dyn Read + Send>>> {
            let gone_at = self.gone_after.unwrap_or(self.bytes.len());
            Ok(Some(Box::new(GoneAt(self.bytes.clone(), 0, gone_at))))
        }
        fn get_range(
            &self,
            _: &str,
            start: u64,
            len: u64,
        ) -> bibgate_store::Result<Option<Vec<u8>>> {
            let start = usize::try_from(start).unwrap().min(self.bytes.len());
            let end = start
                .saturating_add(usize::try_from(len).unwrap())
                .min(self.bytes.len());
            Ok(Some(self.bytes[start..end].to_vec()))
        }
    }

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_windows_read_while_planning() {
        let bytes: Vec<u8> = (0..2 * WINDOW_BYTES + 10)
            .map(|i| (i % 251) as u8)
            .collect();
        let blobs = OneBlob {
            bytes,
            gone_after: None,
        };
        let state = RangedState::new();
        std::io::copy(
            &mut Ranged::new(&blobs, "drop/A/f.mrc", &state),
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(state.position.get(), 2 * WINDOW_BYTES + 10);
        assert_eq!(
            streamed_hash(&blobs, "drop/A/f.mrc").unwrap(),
            Some(state.hash.get())
        );
    }

    #[test]
    fn a_drop_file_deleted_while_its_hash_is_read_is_gone_not_unreadable() {
        let blobs = OneBlob {
            bytes: vec![b'x'; WINDOW_BYTES as usize + 10],
            gone_after: Some(WINDOW_BYTES as usize),
        };
        assert_eq!(streamed_hash(&blobs, "drop/A/f.mrc").unwrap(), None);
        assert!(!delete_if_unchanged(&blobs, "drop/A/f.mrc", 1).unwrap());
    }

    #[test]
    fn chunk_task_keys_round_trip() {
        let key = chunk_task_key("01DEMO_ALPHA", "new books.mrc", 0xab, 12);
        assert_eq!(
            key,
            "drop/01DEMO_ALPHA/.chunks/new books.mrc/00000000000000ab/000012.json"
        );
        assert_eq!(
            parse_chunk_task_key(&key),
            Some(("01DEMO_ALPHA", "new books.mrc", 0xab, 12))
        );
        assert_eq!(crate::layout::parse_drop_key(&key), None);
        assert_eq!(crate::layout::parse_continuation_key(&key), None);
        assert_eq!(parse_chunk_task_key("drop/A/x.mrc"), None);
    }

    #[test]
    fn xml_heads_are_found() {
        let doc = b"<?xml version=\"1.0\"?>\n<marc:collection xmlns:marc=\"x\">\n<marc:record><marc:leader>";
        let (head, close) = xml_frame(doc).unwrap();
        assert_eq!(&doc[head as usize..head as usize + 5], b"<marc");
        assert_eq!(close, "</marc:collection>");
        assert_eq!(xml_frame(b"<record><leader>"), None, "no collection");
    }

    #[test]
    fn hashes_agree() {
        assert_eq!(
            fnv(fnv(FNV_START, b"ab"), b"cd"),
            crate::layout::stable_hash(b"abcd")
        );
    }
}
