//! `bibgate import` and `bibgate explain`.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write};
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
fn importer<'a>(
    data: &'a Data,
    policies: Option<&'a Arc<bibgate_plugin_host::WasmPolicyRunner>>,
) -> anyhow::Result<Importer<'a>> {
    Ok(Importer::with_policies(
        data.store()?.as_ref(),
        policies.map(|r| r.as_ref() as &dyn bibgate_import::PolicyRunner),
    ))
}

/// `bibgate import`: exit 1 when a record failed.
pub fn run_import(data: &Data, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let route = bibgate_import::route(
        data.store()?.as_ref(),
        &args.institution,
        args.zone.map(ZoneArg::target),
    )?;
    let policies = data.published_policy_runner()?;
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
    for file in &args.files {
        import_file(
            &importer,
            data.blobs.as_ref(),
            file,
            &options,
            &mut out,
            &mut counts,
        )?;
    }
    out.flush()?;
    let total: usize = counts.values().sum();
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "{total} records{} into {} in {:.2} s: {}",
        if args.dry_run {
            " decided (dry run)"
        } else {
            " imported"
        },
        route.zone.code,
        started.elapsed().as_secs_f64(),
        summary.join(", ")
    );
    Ok(if counts.get("failed").copied().unwrap_or(0) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `bibgate explain`: writes nothing.
pub fn run_explain(data: &Data, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let route = bibgate_import::route(
        data.store()?.as_ref(),
        &args.institution,
        args.zone.map(ZoneArg::target),
    )?;
    let policies = data.published_policy_runner()?;
    let importer = importer(data, policies.as_ref())?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    explain_file(&importer, &route, &args.file, &mut out)?;
    out.flush()?;
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

/// Imports one file: its bytes go to the blob store first, then each record is decided.
/// Returns the per-outcome counts.
pub fn import_file(
    importer: &Importer<'_>,
    blobs: &dyn BlobStore,
    path: &Path,
    options: &Options<'_>,
    out: &mut impl Write,
    counts: &mut BTreeMap<String, usize>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("could not read {:?}", path.display().to_string()))?;
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
    if !options.dry_run {
        blobs.put(&raw_key, &bytes).with_context(|| {
            format!(
                "could not keep the raw bytes of {:?}",
                path.display().to_string()
            )
        })?;
    }
    let bar = (std::io::stderr().is_terminal() && bytes.len() > 1 << 20)
        .then(|| ProgressBar::new(bytes.len() as u64));
    let source = Source::sniffed(&bytes[..], Mode::Lenient, Charset::Auto)?;
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
    Ok(())
}

/// Prints the decision and trace for every record of a file; writes nothing.
fn explain_file(
    importer: &Importer<'_>,
    route: &Route,
    path: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("could not read {:?}", path.display().to_string()))?;
    let source = Source::sniffed(&bytes[..], Mode::Lenient, Charset::Auto)?;
    for item in source {
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
    Ok(())
}
