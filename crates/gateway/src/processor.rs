//! The processor: takes exports from the inbox and files from the drop folders, imports
//! them, and writes their results.
//!
//! # Exports (`inbox/<institution>/<export-id>.mrc`)
//!
//! Each pass takes the exports in the inbox (at most [`BATCH_MAX`]) and runs four steps:
//!
//! 1. For each export, copy the bytes to `received/<institution>/<export-id>.mrc` (if not
//!    there yet) — [`take_export`]; a pass copies all of its exports with one
//!    `BlobStore::copy_if_absent_many` (on the folder store: hard links, one folder sync).
//! 2. Group the exports by institution (one route each); per group, take the stored result
//!    of every export id imported already, and import the others with one
//!    [`Importer::import_batch`] (one MMS-ID allocation, one durable transaction; records
//!    that conflict are decided again one by one, in order), `raw_key` pointing at the
//!    copies. When the batch as a whole fails, its exports are imported one by one
//!    ([`decide`]), so one bad export cannot hold the others back.
//!
//!    Once a group is committed, each export's stored result is handed to the shim's
//!    connections waiting for it ([`crate::ResultSignals`]): an in-process shim answers at
//!    once, without reading the result back.
//! 3. For each export, write `results/<export-id>.json` and hand the result over again (only with
//!    [`ResultDelivery::Documents`]; with [`ResultDelivery::Store`] the stored result is
//!    all the shim reads, and nothing is written) —
//! 4. then delete the inbox object ([`finish_export`]; a pass writes all of its documents
//!    with one `BlobStore::put_many`, one folder sync on the folder store, then deletes).
//!
//! An export that cannot be imported at all (no profile routes it any more, or it failed
//! too many times) gets a stored failure result (`NO_PROFILE`, `PROCESSING_FAILED`)
//! in step 2 as well, so every export ends with a stored result whatever the delivery.
//!
//! Steps 3-4 run in the background while the next pass starts with step 1 (that pass skips
//! the exports still being finished; at most [`MAX_FINISHING`] passes finish at once, and
//! the processor stops only after they are done).
//!
//! Per export the order is the same as when exports were processed one by one
//! ([`process_export`] still does exactly that, for one key): a step starts only after the
//! previous one returned, and every write is durable when it returns. A crash between any
//! two steps leaves the inbox object, so the export is processed again, and every step is
//! idempotent: the copy is `put_if_absent`, a stored result is taken instead of importing
//! again (and [`Importer::import_batch`] falls back to [`Importer::import`], which returns
//! the stored result, if one appears meanwhile), and the result document is overwritten
//! with the same content. A group's transaction commits all of its imports or none. A crash
//! after step 4 has nothing left to do. So every received record ends with its raw bytes
//! under `received/`, one stored result and (with documents as the delivery) one result
//! document, never with two imports; and a reply given from the stored result after step 2
//! is the one the document will carry.
//!
//! The result document is written with an fsync although it can be derived from the
//! stored result ([`bibgate_store::Store::result`], shown by `bibgate result EXPORT_ID`): it
//! is what a shim polls when it does not poll the store (on AWS, `results/<export-id>.json`
//! in S3), and it must be durable before the inbox object is deleted, or a crash could
//! leave neither an inbox object to re-create it from nor the document. The embedded
//! backend delivers through the store instead ([`ResultDelivery::Store`]): the stored
//! result is durable when its commit returns, and each export then creates one file (its
//! inbox object, linked under `received/`) instead of two. New files are the costly part
//! of an export on a busy ext4 file system (inode allocation), more than the fsyncs.
//!
//! # One drop file (`drop/<institution>/<file>.mrc` or `.xml`)
//!
//! Once unchanged for [`ProcessorConfig::drop_settle`], the same four steps run for the
//! whole file: copy to `received/drop/<institution>/<file>`, import in chunks of
//! [`ProcessorConfig::drop_chunk`] records with [`Importer::import_batch`] (one durable
//! transaction each; the batch id comes from the institution, file name and a content hash,
//! so a re-run after a crash re-uses the export ids `<batch>#<index>`, takes the stored
//! result of every record committed before the crash and imports nothing twice), write
//! `reports/<institution>/<file>.results.jsonl` and, when some records failed,
//! `reports/<institution>/<file>.rejected.mrc`, then delete the drop file.
//!
//! Settled drop files are imported in a background task (one at a time, in listing order),
//! not in the processor's loop, so that exports go on being imported and answered while a
//! large file takes many seconds; a drop commit racing an export's is ordered by the
//! store's conditions (the loser decides again), as between two processors.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bibgate_import::{Importer, Input, Received};
use bibgate_marc::Source;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_store::ImportResult;
use serde_json::json;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Result;
use crate::config::ProcessorConfig;
use crate::layout::{
    DROP, INBOX, ResultDoc, export_millis, inbox_key, parse_drop_key, parse_inbox_key,
    received_key, result_key, stable_hash,
};
use crate::services::{ResultDelivery, Services, blocking};

/// The most chunk slots reserved up front (a larger [`ProcessorConfig::drop_chunk`] grows
/// as records arrive).
const CAPACITY_MAX: usize = 2_000;
/// Result documents (step 3) are written by this many threads per worker: each waits on
/// its fsync, not on the CPU.
const IO_PER_WORKER: usize = 4;
/// The most inbox exports one pass takes (the rest wait for the next pass).
pub const BATCH_MAX: usize = 500;
/// Attempts at an export that keeps failing before a failure result is written (its raw
/// bytes stay under `received/`).
const MAX_ATTEMPTS: u32 = 8;
/// Passes whose steps 3-4 may run in the background at once.
pub const MAX_FINISHING: usize = 2;

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
            finishing: JoinSet::new(),
            in_flight: HashSet::new(),
            dropping: None,
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
    /// Steps 3-4 of earlier passes still running: the export ids of each task, and the task.
    finishing: JoinSet<Finished>,
    /// The export ids in `finishing`: a pass does not take them again.
    in_flight: HashSet<String>,
    /// The drop files being imported in the background: the task returns the keys of those
    /// imported. One such task at a time; exports go on meanwhile.
    dropping: Option<JoinHandle<Vec<String>>>,
}

/// What a steps 3-4 task returns: the export ids it was given, and the outcome of each it
/// finished.
type Finished = (Vec<String>, Vec<(String, Result<()>)>);

/// An export of this pass: its place in the inbox listing, where it is, and its earlier
/// failed attempts.
struct Due {
    position: usize,
    institution: String,
    export_id: String,
    attempts: u32,
}

/// Runs `f` over `items` on up to `threads` blocking threads; the outputs come back in no
/// particular order (a task that panicked loses its items' outputs: those exports stay in
/// the inbox for a later pass).
async fn parallel<I, O, F>(services: &Services, items: Vec<I>, threads: usize, f: F) -> Vec<O>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(&Services, I) -> O + Clone + Send + 'static,
{
    let threads = threads.clamp(1, items.len().max(1));
    let mut chunks: Vec<Vec<I>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(chunk) = chunks.get_mut(i % threads) {
            chunk.push(item);
        }
    }
    let mut tasks = JoinSet::new();
    for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
        let services = services.clone();
        let f = f.clone();
        tasks.spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|item| f(&services, item))
                .collect::<Vec<O>>()
        });
    }
    let mut outputs = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(out) => outputs.extend(out),
            Err(error) => warn!(%error, "a processor task failed"),
        }
    }
    outputs
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
        if let Some(task) = self.dropping.take() {
            self.dropped(task.await);
        }
        while let Some(joined) = self.finishing.join_next().await {
            self.finished(joined);
        }
        info!("processor stopped");
    }

    /// Notes a failed attempt at an export; it is tried again after a back-off.
    fn failed(&mut self, export_id: String, error: &crate::Error) {
        let attempts = self.failures.get(&export_id).map_or(0, |(n, _)| *n) + 1;
        let delay = Duration::from_secs(1u64 << attempts.min(6));
        warn!(%export_id, %error, attempts, retry_in_s = delay.as_secs(), "could not process an export; will retry");
        self.failures
            .insert(export_id, (attempts, Instant::now() + delay));
    }

    /// Takes in the outcome of a steps 3-4 task.
    fn finished(&mut self, joined: std::result::Result<Finished, tokio::task::JoinError>) {
        match joined {
            Ok((ids, outcomes)) => {
                for id in &ids {
                    self.in_flight.remove(id);
                }
                for (export_id, outcome) in outcomes {
                    match outcome {
                        Ok(()) => {
                            self.failures.remove(&export_id);
                        }
                        Err(error) => self.failed(export_id, &error),
                    }
                }
            }
            Err(error) => {
                // Not expected (`parallel` catches its tasks' panics); forget what was in
                // flight so that the next pass looks at those exports again.
                warn!(%error, "a processor task failed");
                self.in_flight.clear();
            }
        }
    }

    /// Processes the exports in the inbox (at most [`BATCH_MAX`]) as one batch; see the
    /// module docs. Steps 3-4 run on in the background, so that the next pass can start
    /// (exports whose steps 3-4 are running are left to them).
    async fn inbox_pass(&mut self) {
        while let Some(joined) = self.finishing.try_join_next() {
            self.finished(joined);
        }
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
        let mut due = Vec::new();
        for key in keys {
            let Some((institution, export_id)) = parse_inbox_key(&key) else {
                if self.ignored.insert(key.clone()) {
                    warn!(%key, "ignoring an inbox object that is not an export");
                }
                continue;
            };
            if self.in_flight.contains(export_id) {
                continue;
            }
            let failed = self.failures.get(export_id);
            if failed.is_some_and(|(_, next)| *next > now) {
                continue;
            }
            due.push(Due {
                position: due.len(),
                institution: institution.to_string(),
                export_id: export_id.to_string(),
                attempts: failed.map_or(0, |(n, _)| *n),
            });
            if due.len() >= BATCH_MAX {
                break;
            }
        }
        if due.is_empty() {
            return;
        }
        let count = due.len();

        // Step 1: the copies to `received/`, made durable together.
        let services = self.services.clone();
        let taken = match blocking(move || {
            let outcomes = take_exports(&services, &due);
            due.into_iter().zip(outcomes).collect::<Vec<_>>()
        })
        .await
        {
            Ok(taken) => taken,
            Err(error) => {
                warn!(%error, "the inbox pass could not take its exports");
                return;
            }
        };
        let mut groups: BTreeMap<String, Vec<(usize, Taken, u32)>> = BTreeMap::new();
        for (due, outcome) in taken {
            match outcome {
                Ok(Some(export)) => groups.entry(due.institution).or_default().push((
                    due.position,
                    export,
                    due.attempts,
                )),
                // Taken by another processor meanwhile.
                Ok(None) => {
                    self.failures.remove(&due.export_id);
                }
                Err(error) => self.failed(due.export_id, &error),
            }
        }

        // Step 2: one batch import per institution, in inbox order (the order of the
        // export ids: receive time first).
        let groups: Vec<(String, Vec<(Taken, u32)>)> = groups
            .into_iter()
            .map(|(institution, mut exports)| {
                exports.sort_by_key(|(position, _, _)| *position);
                let exports = exports
                    .into_iter()
                    .map(|(_, export, attempts)| (export, attempts))
                    .collect();
                (institution, exports)
            })
            .collect();
        let decided = parallel(
            &self.services,
            groups,
            self.config.workers,
            |services, (institution, exports): (String, Vec<(Taken, u32)>)| {
                let (exports, attempts): (Vec<Taken>, Vec<u32>) = exports.into_iter().unzip();
                let outcomes = decide_batch(services, &institution, &exports);
                exports
                    .into_iter()
                    .zip(attempts)
                    .zip(outcomes)
                    .map(|((export, attempts), outcome)| (export, attempts, outcome))
                    .collect::<Vec<_>>()
            },
        )
        .await;
        let mut settled = Vec::new();
        for (export, attempts, outcome) in decided.into_iter().flatten() {
            if let Ok(doc) = &outcome {
                // The result is stored (durably): an in-process shim may answer with it
                // already (see `ResultSignals`).
                self.services.results.deliver(&export.export_id, doc);
            }
            match settle(&self.services, &export, attempts, outcome) {
                Ok(doc) => settled.push((export, doc)),
                Err(error) => self.failed(export.export_id, &error),
            }
        }
        debug!(
            exports = count,
            decided = settled.len(),
            "inbox pass decided"
        );
        if settled.is_empty() {
            return;
        }

        // Steps 3 and 4, in the background: the result documents, the signals, the deletes.
        while self.finishing.len() >= MAX_FINISHING {
            match self.finishing.join_next().await {
                Some(joined) => self.finished(joined),
                None => break,
            }
        }
        let ids: Vec<String> = settled.iter().map(|(e, _)| e.export_id.clone()).collect();
        self.in_flight.extend(ids.iter().cloned());
        let services = self.services.clone();
        // Several groups at once: each document's own fsync waits on the disk, and the file
        // system commits concurrent fsyncs together; each group syncs its folder once.
        let io_threads = self.config.workers.max(1) * IO_PER_WORKER;
        let per_group = settled.len().div_ceil(io_threads).max(1);
        let mut groups: Vec<Vec<(Taken, ResultDoc)>> = Vec::new();
        let mut settled = settled.into_iter().peekable();
        while settled.peek().is_some() {
            groups.push(settled.by_ref().take(per_group).collect());
        }
        self.finishing.spawn(async move {
            let outcomes = parallel(&services, groups, io_threads, |services, group| {
                finish_exports(services, group.iter().map(|(export, doc)| (export, doc)))
            })
            .await
            .into_iter()
            .flatten()
            .collect();
            (ids, outcomes)
        });
    }

    /// Starts importing the drop files that have settled, in the background, unless the
    /// previous import is still running.
    async fn drop_pass(&mut self) {
        if let Some(task) = self.dropping.take() {
            if !task.is_finished() {
                self.dropping = Some(task);
                return;
            }
            self.dropped(task.await);
        }
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
        let mut ready = Vec::new();
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
            ready.push((key, institution, file, bytes));
        }
        if ready.is_empty() {
            return;
        }
        // In the background, so that exports are imported and answered meanwhile (a large
        // file takes many seconds); commits that race with the inbox's are ordered by the
        // store's conditions, as across processors.
        let services = self.services.clone();
        let chunk = self.config.drop_chunk;
        self.dropping = Some(tokio::task::spawn_blocking(move || {
            let mut done = Vec::new();
            for (key, institution, file, bytes) in ready {
                match process_drop(&services, &institution, &file, &bytes, chunk) {
                    Ok(()) => done.push(key),
                    Err(error) => warn!(%key, %error, "could not import a drop file; will retry"),
                }
            }
            done
        }));
    }

    /// Takes in the outcome of a drop import task: the files imported are forgotten (the
    /// others are tried again).
    fn dropped(&mut self, joined: std::result::Result<Vec<String>, tokio::task::JoinError>) {
        match joined {
            Ok(done) => {
                for key in done {
                    self.drops.remove(&key);
                }
            }
            Err(error) => warn!(%error, "a drop import task failed"),
        }
    }
}

/// Stores the result of an export that cannot be imported at all (`NO_PROFILE`,
/// `PROCESSING_FAILED`), as a rejected import with the institution as its zone, and returns
/// its document: so `bibgate result` finds it and a shim polling the store answers it. A
/// result stored for the export meanwhile (its import committed after all) wins. When the
/// store refuses the write, the export is tried again later, unless documents are the
/// delivery: then the document alone carries the failure (the store may be what fails).
fn failure(services: &Services, export: &Taken, text: String, code: &str) -> Result<ResultDoc> {
    let received = received_of(export);
    let result = ImportResult {
        export_id: received.export_id,
        batch_id: None,
        index: None,
        institution: export.institution.clone(),
        zone: export.institution.clone(),
        outcome: bibgate_store::Outcome::Failed,
        trace: vec![format!("{code}: {text}")],
        host_message: text,
        reason_code: code.to_string(),
        mms_id: None,
        oclc_numbers: Vec::new(),
        raw_key: received.raw_key,
        raw_offset: received.raw_offset,
        raw_len: received.raw_len,
        received_unix: received.received_unix,
        decided_unix: now_unix(),
        policy: None,
    };
    let store = &*services.store;
    match store.commit(&bibgate_store::Commit::Reject {
        result: result.clone(),
    }) {
        Ok(()) => Ok(ResultDoc::from_result(&result)),
        Err(bibgate_store::Error::AlreadyExists(_)) => match store.result(&export.export_id)? {
            Some(stored) => Ok(ResultDoc::from_result(&stored)),
            None => Err(crate::Error::Task(format!(
                "the result of export {} exists and cannot be read",
                export.export_id
            ))),
        },
        Err(error) if services.delivery == ResultDelivery::Documents => {
            let export_id = &export.export_id;
            warn!(%export_id, %error, "could not store a failure result; its result document carries it");
            Ok(ResultDoc::from_result(&result))
        }
        Err(error) => Err(error.into()),
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

/// An export after step 1: its bytes, also kept under `raw_key`.
#[derive(Clone, Debug)]
pub struct Taken {
    /// The sending institution.
    pub institution: String,
    /// The export id.
    pub export_id: String,
    /// Where the bytes are kept (`received/<institution>/<export-id>.mrc`).
    pub raw_key: String,
    /// The record bytes as received.
    pub bytes: Vec<u8>,
}

/// Step 1: reads an inbox export and copies it to `received/` (unless it is there already);
/// `None` when the inbox object is gone (another processor took it).
pub fn take_export(
    services: &Services,
    institution: &str,
    export_id: &str,
) -> Result<Option<Taken>> {
    let blobs = &*services.blobs;
    let Some(bytes) = blobs.get(&inbox_key(institution, export_id))? else {
        return Ok(None);
    };
    let raw_key = received_key(institution, export_id);
    blobs.put_if_absent(&raw_key, &bytes)?;
    bibgate_failpoint::point("export.received");
    Ok(Some(Taken {
        institution: institution.to_string(),
        export_id: export_id.to_string(),
        raw_key,
        bytes,
    }))
}

/// Step 1 for many exports at once: reads each inbox export and copies them all to
/// `received/` with one [`BlobStore::copy_if_absent_many`](bibgate_store::BlobStore) (on
/// the folder store: links, and one folder sync per institution). One outcome per export,
/// as [`take_export`] gives it.
fn take_exports(services: &Services, due: &[Due]) -> Vec<Result<Option<Taken>>> {
    let blobs = &*services.blobs;
    let mut outcomes: Vec<Result<Option<Taken>>> = Vec::with_capacity(due.len());
    let mut keys: Vec<(String, String)> = Vec::with_capacity(due.len());
    let mut copying: Vec<usize> = Vec::with_capacity(due.len());
    for (i, due) in due.iter().enumerate() {
        let inbox = inbox_key(&due.institution, &due.export_id);
        match blobs.get(&inbox) {
            Ok(Some(bytes)) => {
                let raw_key = received_key(&due.institution, &due.export_id);
                keys.push((inbox, raw_key.clone()));
                copying.push(i);
                outcomes.push(Ok(Some(Taken {
                    institution: due.institution.clone(),
                    export_id: due.export_id.clone(),
                    raw_key,
                    bytes,
                })));
            }
            Ok(None) => outcomes.push(Ok(None)),
            Err(error) => outcomes.push(Err(error.into())),
        }
    }
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    let copied = blobs.copy_if_absent_many(&pairs);
    for (i, copy) in copying.into_iter().zip(copied) {
        let Some(outcome) = outcomes.get_mut(i) else {
            continue;
        };
        let fallback = match (&copy, &*outcome) {
            // The inbox object went away after it was read (another processor finished
            // it): copy the bytes read instead, as `take_export` does.
            (Err(bibgate_store::Error::NotFound(_)), Ok(Some(taken))) => {
                Some(blobs.put_if_absent(&taken.raw_key, &taken.bytes))
            }
            _ => None,
        };
        if let Err(error) = fallback.unwrap_or(copy) {
            *outcome = Err(error.into());
        }
    }
    bibgate_failpoint::point("export.received");
    outcomes
}

/// The result document to write for an export after step 2: the decided one, a failure
/// document for an export that cannot be routed or failed [`MAX_ATTEMPTS`] times (counting
/// `attempts` earlier failures), or the error (to try again later).
fn settle(
    services: &Services,
    export: &Taken,
    attempts: u32,
    outcome: Result<ResultDoc>,
) -> Result<ResultDoc> {
    let Taken {
        institution,
        export_id,
        ..
    } = export;
    match outcome {
        Ok(doc) => Ok(doc),
        Err(crate::Error::Import(error)) if is_permanent(&error) => {
            warn!(%export_id, %institution, %error, "export cannot be routed");
            failure(services, export, error.to_string(), "NO_PROFILE")
        }
        Err(error) if attempts + 1 >= MAX_ATTEMPTS => {
            warn!(%export_id, %institution, %error, "export failed too often; recording a failure (raw bytes kept)");
            failure(
                services,
                export,
                format!("Import Failed - the record could not be processed: {error}"),
                "PROCESSING_FAILED",
            )
        }
        Err(error) => Err(error),
    }
}

/// Steps 3 and 4: writes the result document, signals the connections waiting for it, and
/// deletes the inbox object.
pub fn finish_export(services: &Services, export: &Taken, doc: &ResultDoc) -> Result<()> {
    finish_exports(services, [(export, doc)])
        .pop()
        .map_or(Ok(()), |(_, outcome)| outcome)
}

/// Steps 3 and 4 for many exports: the result documents with one
/// [`BlobStore::put_many`](bibgate_store::BlobStore) (one folder sync on the folder store;
/// none with [`ResultDelivery::Store`]), the signals, then the inbox deletes. One outcome
/// per export, by export id.
fn finish_exports<'a>(
    services: &Services,
    settled: impl IntoIterator<Item = (&'a Taken, &'a ResultDoc)>,
) -> Vec<(String, Result<()>)> {
    let settled: Vec<(&Taken, &ResultDoc)> = settled.into_iter().collect();
    let blobs = &*services.blobs;
    let written: Vec<bibgate_store::Result<()>> = match services.delivery {
        ResultDelivery::Documents => {
            let docs: Vec<(String, Vec<u8>)> = settled
                .iter()
                .map(|(export, doc)| (result_key(&export.export_id), doc.to_json()))
                .collect();
            let items: Vec<(&str, &[u8])> = docs
                .iter()
                .map(|(key, json)| (key.as_str(), json.as_slice()))
                .collect();
            blobs.put_many(&items)
        }
        // Every settled export's result is stored (by its import, or by `failure`).
        ResultDelivery::Store => settled.iter().map(|_| Ok(())).collect(),
    };
    for ((export, doc), outcome) in settled.iter().zip(&written) {
        if outcome.is_ok() {
            services.results.deliver(&export.export_id, doc);
        }
    }
    bibgate_failpoint::point("export.delivered");
    settled
        .iter()
        .zip(written)
        .map(|((export, doc), written)| {
            let export_id = &export.export_id;
            let outcome = written
                .and_then(|()| blobs.delete(&inbox_key(&export.institution, export_id)))
                .map_err(crate::Error::from)
                .map(|_| {
                    info!(
                        %export_id,
                        institution = %export.institution,
                        outcome = %doc.outcome,
                        reason = %doc.reason_code,
                        mms_id = doc.mms_id.as_deref().unwrap_or(""),
                        "export processed"
                    );
                });
            (export_id.clone(), outcome)
        })
        .collect()
}

/// Steps 1-4 for one export on its own (see the module docs). `attempts` counts earlier
/// failures. The processor batches instead; this is the path for one key at a time.
pub fn process_export(
    services: &Services,
    institution: &str,
    export_id: &str,
    attempts: u32,
) -> Result<()> {
    let Some(export) = take_export(services, institution, export_id)? else {
        // Taken by another processor meanwhile.
        return Ok(());
    };
    let doc = settle(services, &export, attempts, decide(services, &export))?;
    finish_export(services, &export, &doc)
}

/// The import input of an export's bytes.
fn input_of(bytes: &[u8]) -> Input {
    match bibgate_marc::parse(bytes, Mode::Lenient, Charset::Auto) {
        Ok(parsed) => Input::Parsed(Box::new(parsed)),
        Err(error) => Input::Unreadable(error.to_string()),
    }
}

/// Where an export came from, for the importer.
fn received_of(export: &Taken) -> Received {
    Received {
        export_id: export.export_id.clone(),
        batch_id: None,
        index: None,
        raw_key: export.raw_key.clone(),
        raw_offset: 0,
        raw_len: export.bytes.len() as u64,
        received_unix: export_millis(&export.institution, &export.export_id)
            .map_or_else(now_unix, |ms| ms / 1000),
    }
}

/// Step 2 for one export: its stored result, or a new import.
pub fn decide(services: &Services, export: &Taken) -> Result<ResultDoc> {
    let store = &*services.store;
    if let Some(existing) = store.result(&export.export_id)? {
        return Ok(ResultDoc::from_result(&existing));
    }
    let route = bibgate_import::route(store, &export.institution, None)?;
    let result = Importer::with_policies(store, services.policies.as_deref()).import(
        &route,
        &input_of(&export.bytes),
        &received_of(export),
        now_unix(),
    )?;
    Ok(ResultDoc::from_result(&result))
}

/// Step 2 for exports of one institution: the stored results of those imported already,
/// one [`Importer::import_batch`] for the others. The outcomes are in the order of
/// `exports`. When the batch fails as a whole, each of its exports is decided on its own
/// ([`decide`]), so that one export's error stays its own.
pub fn decide_batch(
    services: &Services,
    institution: &str,
    exports: &[Taken],
) -> Vec<Result<ResultDoc>> {
    let store = &*services.store;
    let mut outcomes: Vec<Option<Result<ResultDoc>>> = Vec::with_capacity(exports.len());
    let mut fresh = Vec::new();
    for (i, export) in exports.iter().enumerate() {
        match store.result(&export.export_id) {
            Ok(Some(existing)) => outcomes.push(Some(Ok(ResultDoc::from_result(&existing)))),
            Ok(None) => {
                outcomes.push(None);
                fresh.push(i);
            }
            Err(error) => outcomes.push(Some(Err(error.into()))),
        }
    }
    if !fresh.is_empty() {
        let batch = || -> Result<Vec<ImportResult>> {
            let route = bibgate_import::route(store, institution, None)?;
            let inputs: Vec<(Input, Received)> = fresh
                .iter()
                .filter_map(|&i| exports.get(i))
                .map(|export| (input_of(&export.bytes), received_of(export)))
                .collect();
            let results = Importer::with_policies(store, services.policies.as_deref())
                .import_batch(&route, &inputs, now_unix())?;
            if results.len() != inputs.len() {
                return Err(crate::Error::Task(format!(
                    "the batch import returned {} results for {} exports",
                    results.len(),
                    inputs.len()
                )));
            }
            Ok(results)
        };
        match batch() {
            Ok(results) => {
                for (&i, result) in fresh.iter().zip(&results) {
                    if let Some(slot) = outcomes.get_mut(i) {
                        *slot = Some(Ok(ResultDoc::from_result(result)));
                    }
                }
            }
            Err(error) => {
                if fresh.len() > 1 {
                    warn!(%institution, exports = fresh.len(), %error, "a batch import failed; importing its exports one by one");
                }
                for &i in &fresh {
                    if let (Some(slot), Some(export)) = (outcomes.get_mut(i), exports.get(i)) {
                        *slot = Some(decide(services, export));
                    }
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Err(crate::Error::Task("an export was not decided".into())))
        })
        .collect()
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

/// Imports one drop file (see the module docs), `chunk_len` records (at least 1) per batch
/// import.
fn process_drop(
    services: &Services,
    institution: &str,
    file: &str,
    bytes: &[u8],
    chunk_len: usize,
) -> Result<()> {
    let chunk_len = chunk_len.max(1);
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
    let importer = Importer::with_policies(store, services.policies.as_deref());
    let received_unix = now_unix();
    let source = Source::sniffed(bytes, Mode::Lenient, Charset::Auto)
        .map_err(|e| crate::Error::Task(format!("could not read {drop_key:?}: {e}")))?;
    let mut report = Vec::new();
    let mut rejected = Vec::new();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut chunk: Vec<(Input, Received)> = Vec::with_capacity(chunk_len.min(CAPACITY_MAX));
    let mut raws: Vec<Vec<u8>> = Vec::with_capacity(chunk_len.min(CAPACITY_MAX));
    let mut flush = |chunk: &mut Vec<(Input, Received)>, raws: &mut Vec<Vec<u8>>| -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let results = importer.import_batch(&route, chunk, now_unix())?;
        bibgate_failpoint::point("drop.chunk");
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
        let bibgate_import::BatchItem {
            input,
            received,
            raw,
        } = bibgate_import::batch_item(item, &batch_id, &raw_key, received_unix);
        chunk.push((input, received));
        raws.push(raw);
        if chunk.len() >= chunk_len {
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

/// Text of the README placed in each drop folder.
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
