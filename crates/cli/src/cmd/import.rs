//! `bibgate import` and `bibgate explain`.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bibgate_engine::Outcome as Decided;
use bibgate_import::{Importer, Input, Received, Route};
use bibgate_marc::Source;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_store::{BlobStore, ImportResult};
use indicatif::ProgressBar;
use serde_json::json;

use super::{ZoneArg, now_unix};
use crate::data::Data;

/// Records decided and committed together (one durable transaction).
const CHUNK: usize = 2_000;

/// Arguments of `bibgate import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// ISO 2709 or MARCXML files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The sending institution.
    #[arg(long)]
    institution: String,
    /// Decide in this zone instead of the profile's.
    #[arg(long, value_enum)]
    zone: Option<ZoneArg>,
    /// Decide and report, store nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per record and line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `bibgate explain`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// ISO 2709 or MARCXML file.
    file: PathBuf,
    /// The sending institution.
    #[arg(long)]
    institution: String,
    /// Decide in this zone instead of the profile's.
    #[arg(long, value_enum)]
    zone: Option<ZoneArg>,
}

/// The importer over the record store, with the merge-policy runner when there is one.
pub(super) fn importer<'a>(
    data: &'a Data,
    policies: Option<&'a Arc<bibgate_plugin_host::WasmPolicyRunner>>,
) -> anyhow::Result<Importer<'a>> {
    Ok(Importer::with_policies(
        data.store()?.as_ref(),
        policies.map(|r| r.as_ref() as &dyn bibgate_import::PolicyRunner),
    ))
}

/// The route of `institution` (in `zone`, or the profile's) and the published merge
/// policies, for import and explain.
pub(super) fn route_and_policies(
    data: &Data,
    institution: &str,
    zone: Option<ZoneArg>,
) -> anyhow::Result<(Route, Option<Arc<bibgate_plugin_host::WasmPolicyRunner>>)> {
    let route = bibgate_import::route(
        data.store()?.as_ref(),
        institution,
        zone.map(ZoneArg::target),
    )?;
    Ok((route, data.published_policy_runner()?))
}

/// `bibgate import`: exit 1 when a record failed or a file held no record (or was not read
/// to its end).
pub fn run_import(data: &Data, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let (route, policies) = route_and_policies(data, &args.institution, args.zone)?;
    let importer = importer(data, policies.as_ref())?;
    let options = Options {
        dry_run: args.dry_run,
        json: args.json,
        route: &route,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut counts = BTreeMap::new();
    let started = std::time::Instant::now();
    let mut n_problems = 0;
    for file in &args.files {
        let read = import_file(
            &importer,
            data.blobs.as_ref(),
            file,
            &options,
            &mut out,
            &mut counts,
        )?;
        if let Some(problem) = read.problem(&file.display().to_string()) {
            out.flush()?;
            eprintln!("bibgate: {problem}");
            n_problems += 1;
        }
    }
    out.flush()?;
    let total: usize = counts.values().sum();
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "{}{} into {} in {:.2} s: {}",
        super::count(total, "record"),
        if args.dry_run {
            " decided (dry run)"
        } else {
            " imported"
        },
        route.zone.code,
        started.elapsed().as_secs_f64(),
        summary.join(", ")
    );
    Ok(
        if counts.get("failed").copied().unwrap_or(0) > 0 || n_problems > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `bibgate explain`: writes nothing; exit 1 when the file holds no record.
pub fn run_explain(data: &Data, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let (route, policies) = route_and_policies(data, &args.institution, args.zone)?;
    let importer = importer(data, policies.as_ref())?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let read = explain_file(&importer, &route, &args.file, &mut out)?;
    out.flush()?;
    if let Some(problem) = read.problem(&args.file.display().to_string()) {
        eprintln!("bibgate: {problem}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of output for a record.
pub struct Line {
    /// Position in the file, from 1.
    pub index: u64,
    /// added, merged or failed.
    pub outcome: &'static str,
    /// The host message.
    pub host_message: String,
    /// Stable reason code.
    pub reason_code: String,
    /// The MMS ID, if any.
    pub mms_id: Option<String>,
    /// The incoming OCLC numbers.
    pub oclc_numbers: Vec<u64>,
    /// The export id, if stored.
    pub export_id: Option<String>,
    /// The trace.
    pub trace: Vec<String>,
}

impl Line {
    fn from_result(result: &ImportResult) -> Line {
        Line {
            index: result.index.unwrap_or(0),
            outcome: result.outcome.as_str(),
            host_message: result.host_message.clone(),
            reason_code: result.reason_code.clone(),
            mms_id: result.mms_id.as_ref().map(|m| m.0.clone()),
            oclc_numbers: result.oclc_numbers.clone(),
            export_id: Some(result.export_id.clone()),
            trace: result.trace.clone(),
        }
    }

    /// The JSON form.
    pub fn json(&self, file: &str) -> serde_json::Value {
        json!({
            "file": file,
            "index": self.index,
            "outcome": self.outcome,
            "host_message": self.host_message,
            "reason_code": self.reason_code,
            "mms_id": self.mms_id,
            "oclc_numbers": self.oclc_numbers,
            "export_id": self.export_id,
            "trace": self.trace,
        })
    }
}

/// Options of one import run.
pub struct Options<'a> {
    /// Decide only.
    pub dry_run: bool,
    /// JSON lines instead of text.
    pub json: bool,
    /// The route.
    pub route: &'a Route,
}

/// How far `import` reads without finding a record before it stops reading a file: that
/// many filler bytes in a row (blanks, NULs, record terminators: the whole of a file of
/// zeros, a sparse file or `/dev/zero`), or that many bytes read between two records. An
/// ISO 2709 record is at most 1 MiB in lenient mode (99,999 bytes in strict mode) and the
/// reader reads ahead at most 1.25 MiB, so ordinary files never come near it; a MARCXML
/// record may be up to about 6 MiB.
pub const MAX_BYTES_WITHOUT_RECORD: u64 = 8 << 20;

/// What reading one file gave.
#[derive(Debug, Default)]
pub struct FileRead {
    /// Records (readable or not) that got a line.
    pub records: u64,
    /// Reading stopped at this byte offset after [`MAX_BYTES_WITHOUT_RECORD`] bytes without
    /// a record; the rest of the file was not read.
    pub stopped_at: Option<u64>,
}

impl FileRead {
    /// The problem to report for the file, if any: no record at all, or a rest not read.
    pub fn problem(&self, label: &str) -> Option<String> {
        let limit = MAX_BYTES_WITHOUT_RECORD >> 20;
        match (self.records, self.stopped_at) {
            (0, Some(at)) => Some(format!(
                "{label:?} holds no MARC record: nothing but filler or unreadable bytes in its first {at} bytes; stopped reading after {limit} MiB without a record"
            )),
            (0, None) => Some(format!(
                "{label:?} holds no MARC record (it is empty or holds nothing but blanks, NULs and record terminators)"
            )),
            (_, Some(at)) => Some(format!(
                "stopped reading {label:?} at byte {at}: {limit} MiB without a record; the rest of the file was not imported"
            )),
            (_, None) => None,
        }
    }
}

/// Counts the bytes read through a [`Guard`], and where it stopped.
#[derive(Debug, Default)]
struct GuardState {
    /// Bytes passed on.
    read: std::cell::Cell<u64>,
    /// `read` when the last record came out of the reader (set by the caller).
    last_record_at: std::cell::Cell<u64>,
    /// Set when the guard stopped the input: the bytes passed on by then.
    stopped_at: std::cell::Cell<Option<u64>>,
}

/// Ends its input early (as an end of file) once [`MAX_BYTES_WITHOUT_RECORD`] filler bytes
/// came in a row, or, with `gap` set, that many bytes since the last record.
struct Guard<R> {
    inner: R,
    state: std::rc::Rc<GuardState>,
    gap: bool,
    filler_run: u64,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.state.stopped_at.get().is_some() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        let passed = &buf[..n];
        // Searching from the end finds ordinary data at once.
        self.filler_run = match passed.iter().rposition(|&b| !is_filler(b)) {
            Some(p) => (n - p - 1) as u64,
            None => self.filler_run + n as u64,
        };
        let read = self.state.read.get() + n as u64;
        self.state.read.set(read);
        let since_record = read - self.state.last_record_at.get();
        if self.filler_run > MAX_BYTES_WITHOUT_RECORD
            || (self.gap && since_record > MAX_BYTES_WITHOUT_RECORD)
        {
            self.state.stopped_at.set(Some(read));
        }
        Ok(n)
    }
}

/// Bytes that separate records without being one (as the ISO 2709 reader skips them).
fn is_filler(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t' | 0 | 0x1A | 0x1D)
}

/// Imports one file, reading it as a stream in bounded memory.
///
/// Its bytes are first copied to the blob store (`batches/<batch>/<name>`, in 64 KiB
/// pieces, durable before any record is decided, so every result points to raw bytes that
/// exist), then its records are read back from that copy and decided in chunks. A dry run
/// reads the file once and keeps nothing. Reading stops after [`MAX_BYTES_WITHOUT_RECORD`]
/// bytes without a record; a file without any record keeps no copy. Adds the per-outcome
/// counts to `counts`.
pub fn import_file(
    importer: &Importer<'_>,
    blobs: &dyn BlobStore,
    path: &Path,
    options: &Options<'_>,
    out: &mut impl Write,
    counts: &mut BTreeMap<String, usize>,
) -> anyhow::Result<FileRead> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("could not read {shown:?}"))?;
    let received_unix = now_unix();
    let name = path
        .file_name()
        .map_or_else(|| "input".to_string(), |n| n.to_string_lossy().into_owned());
    // Unique per file and run: the same file imported twice in one second is two batches.
    static BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let batch_id = format!(
        "{}-{}-{}-{}",
        options.route.institution.code,
        received_unix,
        std::process::id(),
        BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let raw_key = format!("batches/{batch_id}/{name}");
    let copied = std::rc::Rc::new(GuardState::default());
    let (input, len): (Box<dyn Read>, u64) = if options.dry_run {
        (Box::new(file), 0)
    } else {
        let mut guard = Guard {
            inner: file,
            state: copied.clone(),
            gap: false,
            filler_run: 0,
        };
        let len = blobs
            .put_stream(&raw_key, &mut guard)
            .with_context(|| format!("could not keep the raw bytes of {shown:?}"))?;
        let kept = blobs
            .open(&raw_key)
            .and_then(|kept| {
                kept.ok_or_else(|| bibgate_store::Error::NotFound(format!("blob {raw_key:?}")))
            })
            .with_context(|| format!("could not read back the raw bytes of {shown:?}"))?;
        (kept, len)
    };
    let state = std::rc::Rc::new(GuardState::default());
    let guarded = Guard {
        inner: input,
        state: state.clone(),
        gap: true,
        filler_run: 0,
    };
    let bar = (std::io::stderr().is_terminal() && len > 1 << 20).then(|| ProgressBar::new(len));
    let reader = std::io::BufReader::with_capacity(256 * 1024, guarded);
    let source = Source::sniffed(reader, Mode::Lenient, Charset::Auto)
        .with_context(|| format!("could not read {shown:?}"))?;
    let mut read = FileRead::default();
    let label = path.display().to_string();
    let mut chunk: Vec<(Input, Received)> = Vec::with_capacity(CHUNK);
    let mut flush =
        |chunk: &mut Vec<(Input, Received)>, out: &mut dyn Write| -> anyhow::Result<()> {
            let lines: Vec<Line> = if options.dry_run {
                let mut lines = Vec::with_capacity(chunk.len());
                for (input, received) in chunk.iter() {
                    let explained = importer.explain(options.route, input, received)?;
                    let outcome = match explained.decision.as_ref().map(|d| &d.outcome) {
                        Some(Decided::Add { .. }) => "added",
                        Some(Decided::Merge { .. }) => "merged",
                        _ => "failed",
                    };
                    let mms_id = match explained.decision.as_ref().map(|d| &d.outcome) {
                        Some(Decided::Merge { mms_id, .. }) => Some(mms_id.clone()),
                        _ => None,
                    };
                    lines.push(Line {
                        index: received.index.unwrap_or(0),
                        outcome,
                        host_message: explained.host_message,
                        reason_code: explained.reason_code,
                        mms_id,
                        oclc_numbers: explained
                            .decision
                            .as_ref()
                            .map(|d| d.keys.numbers())
                            .unwrap_or_default(),
                        export_id: None,
                        trace: explained.decision.map(|d| d.trace).unwrap_or_default(),
                    });
                }
                lines
            } else {
                importer
                    .import_batch(options.route, chunk, now_unix())?
                    .iter()
                    .map(Line::from_result)
                    .collect()
            };
            for line in &lines {
                *counts.entry(line.outcome.to_string()).or_default() += 1;
                if options.json {
                    serde_json::to_writer(&mut *out, &line.json(&label))?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{label} record {}: {}: {}",
                        line.index, line.outcome, line.host_message
                    )?;
                }
            }
            chunk.clear();
            Ok(())
        };
    for item in source {
        state.last_record_at.set(state.read.get());
        read.records += 1;
        if let Some(bar) = &bar {
            bar.set_position(item.offset);
        }
        let item = bibgate_import::batch_item(item, &batch_id, &raw_key, received_unix);
        chunk.push((item.input, item.received));
        if chunk.len() == CHUNK {
            flush(&mut chunk, out)?;
        }
    }
    flush(&mut chunk, out)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    read.stopped_at = copied.stopped_at.get().or(state.stopped_at.get());
    if read.records == 0 && !options.dry_run {
        // Nothing refers to the copy.
        blobs
            .delete(&raw_key)
            .with_context(|| format!("could not remove the copy of {shown:?}"))?;
    }
    Ok(read)
}

/// Prints the decision and trace for every record of a file; writes nothing.
fn explain_file(
    importer: &Importer<'_>,
    route: &Route,
    path: &Path,
    out: &mut impl Write,
) -> anyhow::Result<FileRead> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("could not read {shown:?}"))?;
    let state = std::rc::Rc::new(GuardState::default());
    let guarded = Guard {
        inner: file,
        state: state.clone(),
        gap: true,
        filler_run: 0,
    };
    let reader = std::io::BufReader::with_capacity(256 * 1024, guarded);
    let source = Source::sniffed(reader, Mode::Lenient, Charset::Auto)
        .with_context(|| format!("could not read {shown:?}"))?;
    let mut read = FileRead::default();
    for item in source {
        state.last_record_at.set(state.read.get());
        read.records += 1;
        let bibgate_import::BatchItem {
            input, received, ..
        } = bibgate_import::batch_item(item, "explain", "", now_unix());
        let index = received.index.unwrap_or(0);
        let explained = importer.explain(route, &input, &received)?;
        writeln!(
            out,
            "record {index}: {} ({})",
            explained.host_message, explained.reason_code
        )?;
        for line in explained.decision.map(|d| d.trace).unwrap_or_default() {
            writeln!(out, "  {line}")?;
        }
    }
    read.stopped_at = state.stopped_at.get();
    Ok(read)
}
