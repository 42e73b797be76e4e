//! The processor: takes exports from the inbox and files from the drop folders, imports
//! them, and writes their results.
//!
//! # One export (`inbox/<institution>/<export-id>.mrc`)
//!
//! 1. Copy the bytes to `received/<institution>/<export-id>.mrc` (if not there yet).
//! 2. Import with `raw_key` pointing at that copy (or take the stored result when this
//!    export id was imported already).
//! 3. Write `results/<export-id>.json`.
//! 4. Delete the inbox object.
//!
//! A crash between any two steps leaves the inbox object, so the export is processed again,
//! and every step is idempotent: the copy is `put_if_absent`, [`Importer::import`] returns
//! the stored result for an export id it has seen, and the result document is overwritten
//! with the same content. A crash after step 4 has nothing left to do. So every received
//! record ends with its raw bytes under `received/`, one stored result and one result
//! document, never with two imports.
//!
//! # One drop file (`drop/<institution>/<file>.mrc` or `.xml`)
//!
//! Once unchanged for [`ProcessorConfig::drop_settle`], the same four steps run for the
//! whole file: copy to `received/drop/<institution>/<file>`, import in chunks with
//! [`Importer::import_batch`] (batch id from the institution, file name and a content hash,
//! so a re-run after a crash re-uses the export ids `<batch>#<index>` and imports nothing
//! twice), write `reports/<institution>/<file>.results.jsonl` and, when some records failed,
//! `reports/<institution>/<file>.rejected.mrc`, then delete the drop file.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bibgate_import::{Importer, Input, Received};
use bibgate_marc::Source;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::{self, Mode};
use bibgate_store::ImportResult;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Result;
use crate::config::ProcessorConfig;
use crate::layout::{
    DROP, INBOX, ResultDoc, export_millis, inbox_key, parse_drop_key, parse_inbox_key,
    received_key, result_key, stable_hash,
};
use crate::services::{Services, blocking};

/// Records of a drop file decided and committed together.
const CHUNK: usize = 2_000;
/// Attempts at an export that keeps failing before a failure result is written (its raw
/// bytes stay under `received/`).
const MAX_ATTEMPTS: u32 = 8;

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Starts the processor on the current tokio runtime; it stops after the pass in progress
/// when `shutdown` completes.
pub fn spawn_processor(
    services: Services,
    config: ProcessorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut processor = Processor {
            services,
            config,
            failures: HashMap::new(),
            ignored: HashSet::new(),
            drops: HashMap::new(),
        };
        processor.run(shutdown).await;
    })
}

/// A drop file as last seen: its size and content hash, and since when it is unchanged.
struct Seen {
    len: usize,
    hash: u64,
    since: Instant,
}

struct Processor {
    services: Services,
    config: ProcessorConfig,
    /// Exports that failed: attempts so far and when to try again.
    failures: HashMap<String, (u32, Instant)>,
    /// Keys that are not exports, already warned about.
    ignored: HashSet<String>,
    /// Drop files waiting to settle.
    drops: HashMap<String, Seen>,
}

impl Processor {
    async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        info!("processor started");
        let mut next_drop_scan = Instant::now();
        loop {
            self.inbox_pass().await;
            if Instant::now() >= next_drop_scan {
                self.drop_pass().await;
                next_drop_scan = Instant::now() + self.config.drop_interval;
            }
            let wake_at = (Instant::now() + self.config.poll_interval).min(next_drop_scan);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.services.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
        info!("processor stopped");
    }

    /// Processes every export in the inbox, a few at a time.
    async fn inbox_pass(&mut self) {
        let blobs = self.services.blobs.clone();
        let keys = match blocking(move || blobs.list(INBOX)).await {
            Ok(Ok(keys)) => keys,
            Ok(Err(error)) => {
                warn!(%error, "could not list the inbox");
                return;
            }
            Err(error) => {
                warn!(%error, "could not list the inbox");
                return;
            }
        };
        let now = Instant::now();
        let permits = Arc::new(Semaphore::new(self.config.workers.max(1)));
        let mut tasks = JoinSet::new();
        for key in keys {
            let Some((institution, export_id)) = parse_inbox_key(&key) else {
                if self.ignored.insert(key.clone()) {
                    warn!(%key, "ignoring an inbox object that is not an export");
                }
                continue;
            };
            if self
                .failures
                .get(export_id)
                .is_some_and(|(_, next)| *next > now)
            {
                continue;
            }
            let (institution, export_id) = (institution.to_string(), export_id.to_string());
            let attempts = self.failures.get(&export_id).map_or(0, |(n, _)| *n);
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let services = self.services.clone();
            tasks.spawn_blocking(move || {
                let outcome = process_export(&services, &institution, &export_id, attempts);
                drop(permit);
                (export_id, outcome)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((export_id, Ok(()))) => {
                    self.failures.remove(&export_id);
                }
                Ok((export_id, Err(error))) => {
                    let attempts = self.failures.get(&export_id).map_or(0, |(n, _)| *n) + 1;
                    let delay = Duration::from_secs(1u64 << attempts.min(6));
                    warn!(%export_id, %error, attempts, retry_in_s = delay.as_secs(), "could not process an export; will retry");
                    self.failures
                        .insert(export_id, (attempts, Instant::now() + delay));
                }
                Err(error) => warn!(%error, "an export task failed"),
            }
        }
    }

    /// Imports drop files that have settled.
    async fn drop_pass(&mut self) {
        let blobs = self.services.blobs.clone();
        let keys = match blocking(move || blobs.list(DROP)).await {
            Ok(Ok(keys)) => keys,
            Ok(Err(error)) => {
                warn!(%error, "could not list the drop folders");
                return;
            }
            Err(error) => {
                warn!(%error, "could not list the drop folders");
                return;
            }
        };
        self.drops.retain(|key, _| keys.contains(key));
        for key in keys {
            let Some((institution, file)) = parse_drop_key(&key) else {
                continue;
            };
            let (institution, file) = (institution.to_string(), file.to_string());
            let blobs = self.services.blobs.clone();
            let lookup = key.clone();
            let bytes = match blocking(move || blobs.get(&lookup)).await {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => continue,
                Ok(Err(error)) => {
                    warn!(%key, %error, "could not read a drop file");
                    continue;
                }
                Err(error) => {
                    warn!(%key, %error, "could not read a drop file");
                    continue;
                }
            };
            let now = Instant::now();
            let hash = stable_hash(&bytes);
            let settled = match self.drops.get(&key) {
                Some(seen) if seen.len == bytes.len() && seen.hash == hash => {
                    now.duration_since(seen.since) >= self.config.drop_settle
                }
                _ => {
                    self.drops.insert(
                        key.clone(),
                        Seen {
                            len: bytes.len(),
                            hash,
                            since: now,
                        },
                    );
                    self.config.drop_settle.is_zero()
                }
            };
            if !settled {
                debug!(%key, "drop file seen; waiting for it to settle");
                continue;
            }
            let services = self.services.clone();
            match blocking(move || process_drop(&services, &institution, &file, &bytes)).await {
                Ok(Ok(())) => {
                    self.drops.remove(&key);
                }
                Ok(Err(error)) => warn!(%key, %error, "could not import a drop file; will retry"),
                Err(error) => warn!(%key, %error, "could not import a drop file; will retry"),
            }
        }
    }
}

/// The result document for an export that cannot be imported at all.
fn failure_doc(
    institution: &str,
    export_id: &str,
    raw_key: &str,
    text: String,
    code: &str,
) -> ResultDoc {
    ResultDoc {
        export_id: export_id.to_string(),
        institution: institution.to_string(),
        outcome: "failed".into(),
        host_message: text,
        reason_code: code.into(),
        mms_id: None,
        oclc_numbers: Vec::new(),
        raw_key: raw_key.to_string(),
    }
}

/// Whether an import error will not go away by trying again.
fn is_permanent(error: &bibgate_import::Error) -> bool {
    matches!(
        error,
        bibgate_import::Error::NoProfile(_)
            | bibgate_import::Error::UnknownInstitution(_)
            | bibgate_import::Error::NoNetworkZone(_)
            | bibgate_import::Error::BadProfile { .. }
    )
}

/// Steps 1-4 for one export (see the module docs). `attempts` counts earlier failures.
fn process_export(
    services: &Services,
    institution: &str,
    export_id: &str,
    attempts: u32,
) -> Result<()> {
    let blobs = &*services.blobs;
    let inbox = inbox_key(institution, export_id);
    let Some(bytes) = blobs.get(&inbox)? else {
        // Taken by another processor meanwhile.
        return Ok(());
    };
    let raw_key = received_key(institution, export_id);
    blobs.put_if_absent(&raw_key, &bytes)?;
    let doc = match decide(services, institution, export_id, &raw_key, &bytes) {
        Ok(doc) => doc,
        Err(crate::Error::Import(error)) if is_permanent(&error) => {
            warn!(%export_id, %institution, %error, "export cannot be routed");
            failure_doc(
                institution,
                export_id,
                &raw_key,
                error.to_string(),
                "NO_PROFILE",
            )
        }
        Err(error) if attempts + 1 >= MAX_ATTEMPTS => {
            warn!(%export_id, %institution, %error, "export failed too often; recording a failure (raw bytes kept)");
            failure_doc(
                institution,
                export_id,
                &raw_key,
                format!("Import Failed - the record could not be processed: {error}"),
                "PROCESSING_FAILED",
            )
        }
        Err(error) => return Err(error),
    };
    blobs.put(&result_key(export_id), &doc.to_json())?;
    services.results.notify(export_id);
    blobs.delete(&inbox)?;
    info!(
        %export_id,
        %institution,
        outcome = %doc.outcome,
        reason = %doc.reason_code,
        mms_id = doc.mms_id.as_deref().unwrap_or(""),
        "export processed"
    );
    Ok(())
}

/// Step 2: the stored result of this export, or a new import.
fn decide(
    services: &Services,
    institution: &str,
    export_id: &str,
    raw_key: &str,
    bytes: &[u8],
) -> Result<ResultDoc> {
    let store = &*services.store;
    if let Some(existing) = store.result(export_id)? {
        return Ok(ResultDoc::from_result(&existing));
    }
    let route = bibgate_import::route(store, institution, None)?;
    let input = match bibgate_marc::parse(bytes, Mode::Lenient, Charset::Auto) {
        Ok(parsed) => Input::Parsed(Box::new(parsed)),
        Err(error) => Input::Unreadable(error.to_string()),
    };
    let received = Received {
        export_id: export_id.to_string(),
        batch_id: None,
        index: None,
        raw_key: raw_key.to_string(),
        raw_offset: 0,
        raw_len: bytes.len() as u64,
        received_unix: export_millis(institution, export_id).map_or_else(now_unix, |ms| ms / 1000),
    };
    let result = Importer::new(store).import(&route, &input, &received, now_unix())?;
    Ok(ResultDoc::from_result(&result))
}

/// One line of a drop file's report.
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

/// Imports one drop file (see the module docs).
fn process_drop(services: &Services, institution: &str, file: &str, bytes: &[u8]) -> Result<()> {
    let store = &*services.store;
    let blobs = &*services.blobs;
    let drop_key = format!("{DROP}{institution}/{file}");
    let hash = stable_hash(bytes);
    let batch_id = format!("drop-{institution}-{file}-{hash:016x}");
    let mut raw_key = format!("received/drop/{institution}/{file}");
    if !blobs.put_if_absent(&raw_key, bytes)? && blobs.get(&raw_key)?.as_deref() != Some(bytes) {
        // An earlier file of the same name: keep both.
        raw_key = format!("received/drop/{institution}/{hash:016x}-{file}");
        blobs.put(&raw_key, bytes)?;
    }
    let report_key = format!("reports/{institution}/{file}.results.jsonl");
    let rejected_key = format!("reports/{institution}/{file}.rejected.mrc");
    let route = match bibgate_import::route(store, institution, None) {
        Ok(route) => route,
        Err(error) if is_permanent(&error) => {
            warn!(file = %drop_key, %error, "drop file cannot be routed");
            let line = json!({ "error": error.to_string() });
            blobs.put(&report_key, format!("{line}\n").as_bytes())?;
            blobs.delete(&drop_key)?;
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let importer = Importer::new(store);
    let received_unix = now_unix();
    let source = Source::sniffed(bytes, Mode::Lenient, Charset::Auto)
        .map_err(|e| crate::Error::Task(format!("could not read {drop_key:?}: {e}")))?;
    let mut report = Vec::new();
    let mut rejected = Vec::new();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut chunk: Vec<(Input, Received)> = Vec::with_capacity(CHUNK);
    let mut raws: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    let mut flush = |chunk: &mut Vec<(Input, Received)>, raws: &mut Vec<Vec<u8>>| -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let results = importer.import_batch(&route, chunk, now_unix())?;
        for (result, raw) in results.iter().zip(raws.iter()) {
            report.extend_from_slice(report_line(result).to_string().as_bytes());
            report.push(b'\n');
            *counts.entry(result.outcome.as_str()).or_default() += 1;
            if result.outcome == bibgate_store::Outcome::Failed {
                rejected.extend_from_slice(raw);
            }
        }
        chunk.clear();
        raws.clear();
        Ok(())
    };
    for item in source {
        let index = item.index as u64;
        let (input, raw) = match item.outcome {
            Ok(parsed) => {
                let raw = if item.raw.is_empty() {
                    // MARCXML: the record re-encoded as ISO 2709.
                    let mut out = Vec::new();
                    match iso2709::write_record(&parsed.decoded.record, &mut out) {
                        Ok(()) => out,
                        Err(_) => Vec::new(),
                    }
                } else {
                    item.raw.clone()
                };
                (Input::Parsed(Box::new(parsed)), raw)
            }
            Err(error) => (Input::Unreadable(error.to_string()), item.raw.clone()),
        };
        chunk.push((
            input,
            Received {
                export_id: format!("{batch_id}#{index}"),
                batch_id: Some(batch_id.clone()),
                index: Some(index),
                raw_key: raw_key.clone(),
                raw_offset: item.offset,
                raw_len: item.raw.len() as u64,
                received_unix,
            },
        ));
        raws.push(raw);
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut raws)?;
        }
    }
    flush(&mut chunk, &mut raws)?;
    // The rejected records first: the report's appearance tells that both are there.
    if rejected.is_empty() {
        blobs.delete(&rejected_key)?;
    } else {
        blobs.put(&rejected_key, &rejected)?;
    }
    blobs.put(&report_key, &report)?;
    blobs.delete(&drop_key)?;
    info!(
        file = %drop_key,
        %batch_id,
        added = counts.get("added").copied().unwrap_or(0),
        merged = counts.get("merged").copied().unwrap_or(0),
        failed = counts.get("failed").copied().unwrap_or(0),
        report = %report_key,
        "drop file imported"
    );
    Ok(())
}

/// Text of the README placed in each drop folder (it also keeps the folder from being
/// pruned when its last file is taken).
const DROP_README: &str = "Copy MARC files (.mrc, ISO 2709; or .xml, MARCXML) into this folder to import them.\n\
Each file is imported once it has stayed unchanged for a moment; it then moves to\n\
received/drop/<institution>/ and its report appears in reports/<institution>/\n\
(<file>.results.jsonl, one line per record, and <file>.rejected.mrc with the records not imported).\n\
Copy large files under a name starting with a dot and rename them when complete.\n";

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
