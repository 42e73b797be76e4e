//! The local processor: passes over the inbox and the drop folders of one blob store,
//! running the pipeline's steps (`bibgate-inbox`) on tokio's blocking pool.
//!
//! # Exports (`inbox/<institution>/<export-id>.mrc`)
//!
//! Each pass takes the exports in the inbox (at most [`BATCH_MAX`]) and runs the four steps
//! of [`bibgate_inbox::export`] for all of them at once:
//!
//! 1. copy them all to `received/` ([`export::take_exports`]: on the folder store, links
//!    and one folder sync per institution);
//! 2. group them by institution (one route each) and decide each group with one batch
//!    import ([`export::import_exports`], one durable transaction), in inbox order (the order
//!    of the export ids: receive time first), on up to [`ProcessorConfig::workers`] threads.
//!    Once a group is committed, each export's stored result is handed to the shim's
//!    connections waiting for it ([`bibgate_inbox::ResultSignals`]): an in-process shim
//!    answers at once, without reading the result back;
//! 3. and 4. write the result documents (with [`ResultDelivery::Documents`](bibgate_inbox::ResultDelivery::Documents) only) and delete
//!    the inbox objects ([`export::finish_exports`]).
//!
//! Steps 3-4 run in the background while the next pass starts with step 1 (that pass skips
//! the exports still being finished; at most [`MAX_FINISHING`] passes finish at once, and
//! the processor stops only after they are done). An export whose steps fail is tried again
//! after a back-off (doubling, up to a minute); after [`export::MAX_ATTEMPTS`] it gets a
//! `PROCESSING_FAILED` result.
//!
//! With [`ResultDelivery::Store`](bibgate_inbox::ResultDelivery::Store) (the embedded backend) the stored result is durable when
//! its commit returns, and each export then creates one file (its inbox object, linked
//! under `received/`) instead of two. New files are the costly part of an export on a busy
//! ext4 file system (inode allocation), more than the fsyncs.
//!
//! # Drop files (`drop/<institution>/<file>.mrc` or `.xml`)
//!
//! A file written under a `.part` name (or a name starting with a dot) is never taken; it
//! is imported once renamed. A file that ends inside a record waits for the rest; a file
//! that changed while it was imported is kept and imported again as its new content. A
//! file that cannot be imported (not MARC, a name too long, repeated failures) is moved
//! to `received/drop/<institution>/refused/` with a report saying why; each problem is
//! logged once.
//!
//! Once unchanged for [`ProcessorConfig::drop_settle`], a file is imported by
//! [`bibgate_inbox::import_drop`] in chunks of [`ProcessorConfig::drop_chunk`] records,
//! never pausing. Settled drop files are imported in a background task (one at a time, in
//! listing order), not in the processor's loop, so that exports go on being imported and
//! answered while a large file takes many seconds; a drop commit racing an export's is
//! ordered by the store's conditions (the loser decides again), as between two processors.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use bibgate_inbox::export::{self, Taken};
use bibgate_inbox::layout::{
    DROP, INBOX, ResultDoc, is_in_progress_name, parse_drop_key, parse_inbox_key, refused_key,
    refused_report_key, stable_hash,
};
use bibgate_inbox::{Services, Start};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::blocking;
use crate::config::ProcessorConfig;

/// Result documents (step 3) are written by this many threads per worker: each waits on
/// its fsync, not on the CPU.
const IO_PER_WORKER: usize = 4;
/// The most inbox exports one pass takes (the rest wait for the next pass).
pub const BATCH_MAX: usize = 500;
/// Passes whose steps 3-4 may run in the background at once.
pub const MAX_FINISHING: usize = 2;

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
            drop_failures: HashMap::new(),
            drop_warned: HashSet::new(),
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
    /// "Waiting for the rest" was logged for this content.
    waiting_logged: bool,
}

/// How long a drop file that ends inside a record may stay unchanged before it is taken
/// anyway (its last record then fails as truncated, and its bytes are kept).
pub const INCOMPLETE_PATIENCE: Duration = Duration::from_secs(300);

/// The longest drop file name imported: its report adds up to 31 bytes
/// (`.<hash>.results.jsonl`) and most file systems allow 255.
pub const MAX_DROP_NAME_BYTES: usize = 200;

/// Permanent import failures of one drop file after which it is moved aside with a report
/// (transient ones, such as a full disk, are retried for as long as they last).
pub const DROP_ATTEMPTS: u32 = 3;

/// The outcome of each drop file a background task imported, by key.
type DropOutcomes = Vec<(String, std::result::Result<(), DropFailure>)>;

/// Why a drop file's import failed.
struct DropFailure {
    /// Trying again cannot help.
    permanent: bool,
    message: String,
}

/// `(institution, file)` of a drop-folder key the processor looks at: a file right in an
/// institution's folder, not being written (`.part`, a leading dot: see
/// [`bibgate_inbox::layout::is_in_progress_name`]) and not the folder's `README.txt`.
pub fn drop_candidate(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(DROP)?;
    let (institution, file) = rest.split_once('/')?;
    if institution.is_empty()
        || file.is_empty()
        || file.contains('/')
        || file == "README.txt"
        || is_in_progress_name(file)
    {
        return None;
    }
    Some((institution, file))
}

/// Moves a drop file that cannot be imported to `received/drop/<institution>/refused/` and
/// writes a report saying why; the drop file is deleted if it did not change meanwhile.
/// Returns the report's key.
fn refuse_drop(
    blobs: &dyn bibgate_store::BlobStore,
    key: &str,
    institution: &str,
    file: &str,
    bytes: &[u8],
    hash: u64,
    reason: &str,
) -> bibgate_store::Result<String> {
    let short = short_name(file);
    blobs.put(&refused_key(institution, short, hash), bytes)?;
    let report = refused_report_key(institution, short, hash);
    let text = format!(
        "{file:?} ({} bytes) was not imported: {reason}.\nIts bytes are kept as {}.\n",
        bytes.len(),
        refused_key(institution, short, hash)
    );
    blobs.put(&report, text.as_bytes())?;
    match blobs.get(key)? {
        Some(now) if stable_hash(&now) == hash => {
            blobs.delete(key)?;
        }
        _ => {}
    }
    Ok(report)
}

/// Moves what is in `drop/<institution>/` but cannot be a drop file (symbolic links,
/// FIFOs and other special files, names not UTF-8 or holding a backslash) to
/// `received/drop/<institution>/refused/`, with a report for each saying why. Returns each
/// entry moved with its report's key.
fn set_aside_non_blobs(
    blobs: &dyn bibgate_store::BlobStore,
    institution: &str,
) -> bibgate_store::Result<Vec<(bibgate_store::SetAside, String)>> {
    let moved = blobs.set_aside_non_blobs(
        &format!("{DROP}{institution}/"),
        &format!("received/drop/{institution}/refused/"),
    )?;
    let mut reported = Vec::with_capacity(moved.len());
    for entry in moved {
        let now = entry.key.rsplit('/').next().unwrap_or_default();
        let report = format!("reports/{institution}/{now}.refused.txt");
        let text = format!(
            "{:?} was not imported: {}; only regular files with UTF-8 names are.\nIt is now {}.\n",
            entry.name, entry.why, entry.key
        );
        blobs.put(&report, text.as_bytes())?;
        reported.push((entry, report));
    }
    Ok(reported)
}

/// At most the first 100 bytes of a file name (on a character boundary), so that names
/// derived from it with a prefix and suffix stay under file-system limits.
fn short_name(file: &str) -> &str {
    let mut end = file.len().min(100);
    while !file.is_char_boundary(end) {
        end -= 1;
    }
    &file[..end]
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
    /// Drop files whose import failed: permanent failures so far and the last error (logged
    /// when it changes).
    drop_failures: HashMap<String, (u32, String)>,
    /// Drop files already warned about (unreadable, could not be moved aside).
    drop_warned: HashSet<String>,
    /// Steps 3-4 of earlier passes still running: the export ids of each task, and the task.
    finishing: JoinSet<Finished>,
    /// The export ids in `finishing`: a pass does not take them again.
    in_flight: HashSet<String>,
    /// The drop files being imported in the background: the task returns the keys of those
    /// imported. One such task at a time; exports go on meanwhile.
    dropping: Option<JoinHandle<DropOutcomes>>,
}

/// What a steps 3-4 task returns: the export ids it was given, and the outcome of each it
/// finished.
type Finished = (Vec<String>, Vec<(String, bibgate_inbox::Result<()>)>);

/// An export of this pass: its place in the inbox listing, where it is, and its earlier
/// failed attempts.
struct Due {
    position: usize,
    export: export::Due,
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
    fn failed(&mut self, export_id: String, error: &dyn std::fmt::Display) {
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
                export: export::Due {
                    institution: institution.to_string(),
                    export_id: export_id.to_string(),
                },
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
            let exports: Vec<export::Due> = due.iter().map(|d| d.export.clone()).collect();
            let outcomes = export::take_exports(&services, &exports);
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
                Ok(Some(export)) => groups.entry(due.export.institution).or_default().push((
                    due.position,
                    export,
                    due.attempts,
                )),
                // Taken by another processor meanwhile.
                Ok(None) => {
                    self.failures.remove(&due.export.export_id);
                }
                Err(error) => self.failed(due.export.export_id, &error),
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
                let outcomes = export::import_exports(services, &institution, &exports);
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
            match export::settle(&self.services, &export, attempts, outcome) {
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
                export::finish_exports(services, group.iter().map(|(export, doc)| (export, doc)))
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
    ///
    /// A file is taken once it has stayed unchanged for [`ProcessorConfig::drop_settle`]
    /// and does not end inside a record (a file still being written; after
    /// [`INCOMPLETE_PATIENCE`] unchanged it is taken anyway, its last record failing).
    /// Names that are being written by convention (`.part`, a leading dot) are left alone.
    /// A file with another extension than `.mrc` or `.xml` is imported when its content is
    /// MARC, otherwise moved aside with a report saying why; so is a file whose import
    /// failed [`DROP_ATTEMPTS`] times. Each problem is logged once.
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
        let institutions: BTreeSet<String> = keys
            .iter()
            .filter_map(|key| key.strip_prefix(DROP)?.split_once('/'))
            .map(|(institution, _)| institution.to_string())
            .collect();
        for institution in institutions {
            let blobs = self.services.blobs.clone();
            let outcome = blocking(move || set_aside_non_blobs(&*blobs, &institution)).await;
            match outcome {
                Ok(Ok(moved)) => {
                    for (entry, report) in moved {
                        warn!(file = %entry.name, now = %entry.key, %report, reason = %entry.why, "drop-folder entry refused and moved aside");
                    }
                }
                Ok(Err(error)) => {
                    if self.drop_warned.insert(format!("{DROP}*")) {
                        warn!(%error, "could not move aside what is not a file in a drop folder");
                    }
                }
                Err(error) => {
                    warn!(%error, "could not move aside what is not a file in a drop folder")
                }
            }
        }
        self.drops.retain(|key, _| keys.contains(key));
        self.drop_failures.retain(|key, _| keys.contains(key));
        self.drop_warned.retain(|key| keys.contains(key));
        let mut ready = Vec::new();
        for key in keys {
            let Some((institution, file)) = drop_candidate(&key) else {
                continue;
            };
            let by_extension = parse_drop_key(&key).is_some();
            let (institution, file) = (institution.to_string(), file.to_string());
            let blobs = self.services.blobs.clone();
            let lookup = key.clone();
            let bytes = match blocking(move || blobs.get(&lookup)).await {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => continue,
                Ok(Err(error)) => {
                    if self.drop_warned.insert(key.clone()) {
                        warn!(%key, %error, "could not read a drop file; it stays where it is");
                    }
                    continue;
                }
                Err(error) => {
                    warn!(%key, %error, "could not read a drop file");
                    continue;
                }
            };
            let now = Instant::now();
            let hash = stable_hash(&bytes);
            let (settled, unchanged_for) = match self.drops.get(&key) {
                Some(seen) if seen.len == bytes.len() && seen.hash == hash => {
                    let unchanged_for = now.duration_since(seen.since);
                    (unchanged_for >= self.config.drop_settle, unchanged_for)
                }
                _ => {
                    self.drops.insert(
                        key.clone(),
                        Seen {
                            len: bytes.len(),
                            hash,
                            since: now,
                            waiting_logged: false,
                        },
                    );
                    (self.config.drop_settle.is_zero(), Duration::ZERO)
                }
            };
            if !settled {
                debug!(%key, "drop file seen; waiting for it to settle");
                continue;
            }
            let attempts = self.drop_failures.get(&key).map_or(0, |(n, _)| *n);
            let refusal = if file.len() > MAX_DROP_NAME_BYTES {
                Some(format!(
                    "its name is {} bytes long; names over {MAX_DROP_NAME_BYTES} bytes leave no room for the names of its report and copies",
                    file.len()
                ))
            } else if attempts >= DROP_ATTEMPTS {
                let error = self
                    .drop_failures
                    .get(&key)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_default();
                Some(format!(
                    "its import failed {attempts} times, and trying again cannot help; the last error: {error}"
                ))
            } else if !by_extension && !bibgate_inbox::drop::looks_like_marc(&bytes) {
                Some(
                    "its name ends neither in .mrc nor in .xml and its content is not MARC (ISO 2709 or MARCXML)"
                        .to_string(),
                )
            } else {
                None
            };
            if let Some(reason) = refusal {
                let blobs = self.services.blobs.clone();
                let refused = (key.clone(), institution, file, hash);
                let moved = blocking(move || {
                    let (key, institution, file, hash) = refused;
                    refuse_drop(&*blobs, &key, &institution, &file, &bytes, hash, &reason)
                        .map(|report| (report, reason))
                })
                .await;
                match moved {
                    Ok(Ok((report, reason))) => {
                        warn!(%key, %report, %reason, "drop file refused and moved aside");
                    }
                    Ok(Err(error)) => {
                        if self.drop_warned.insert(key.clone()) {
                            warn!(%key, %error, "could not move a refused drop file aside");
                        }
                    }
                    Err(error) => warn!(%key, %error, "could not move a refused drop file aside"),
                }
                self.drops.remove(&key);
                continue;
            }
            if bibgate_inbox::drop::ends_inside_a_record(&bytes)
                && unchanged_for < INCOMPLETE_PATIENCE
            {
                if let Some(seen) = self.drops.get_mut(&key)
                    && !seen.waiting_logged
                {
                    seen.waiting_logged = true;
                    info!(%key, bytes = bytes.len(), "drop file ends inside a record; waiting for the rest");
                }
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
            let mut outcomes = Vec::new();
            for (key, institution, file, bytes) in ready {
                let outcome = bibgate_inbox::import_drop(
                    &services,
                    &institution,
                    &file,
                    &bytes,
                    Start::New,
                    chunk,
                    &|_| false,
                )
                .map(|_| ())
                .map_err(|error| DropFailure {
                    permanent: error.is_permanent(),
                    message: error.to_string(),
                });
                outcomes.push((key, outcome));
            }
            outcomes
        }));
    }

    /// Takes in the outcome of a drop import task: the files imported are forgotten (the
    /// others are tried again).
    fn dropped(&mut self, joined: std::result::Result<DropOutcomes, tokio::task::JoinError>) {
        match joined {
            Ok(outcomes) => {
                for (key, outcome) in outcomes {
                    self.drops.remove(&key);
                    match outcome {
                        Ok(()) => {
                            self.drop_failures.remove(&key);
                        }
                        Err(DropFailure { permanent, message }) => {
                            let entry = self.drop_failures.entry(key.clone()).or_default();
                            // A transient failure (the store, the disk) is retried for as
                            // long as it lasts; only permanent ones lead to a refusal.
                            if permanent {
                                entry.0 += 1;
                            }
                            if entry.1 != message {
                                warn!(%key, error = %message, permanent, "could not import a drop file; will retry");
                            }
                            entry.1 = message;
                        }
                    }
                }
            }
            Err(error) => warn!(%error, "a drop import task failed"),
        }
    }
}
