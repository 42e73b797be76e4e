//! `bibgate convert`: stream records into MARCXML, MARC-in-JSON or UTF-8 ISO 2709.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bibgate_marc::{Item, iso2709, json, marcxml};

use crate::input::ReadArgs;

/// Arguments of `bibgate convert`.
#[derive(clap::Args)]
pub struct Args {
    /// ISO 2709 or MARCXML file.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    to: To,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Print records/s and peak memory on stderr at the end.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    read: ReadArgs,
}

/// `bibgate convert`: exit 1 when a record was skipped.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Args {
        file,
        to,
        output,
        stats,
        read,
    } = args;
    let to = *to;
    let started = std::time::Instant::now();
    let label = file.display().to_string();
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let counts = if to == To::Parse {
        let f = std::fs::File::open(file)
            .with_context(|| format!("could not open {:?}", file.display().to_string()))?;
        parse_only(f, read.mode(), &label, &mut err)?
    } else {
        let source = read.open(file)?;
        match output {
            Some(path) => {
                let f = std::fs::File::create(path).with_context(|| {
                    format!("could not create {:?}", path.display().to_string())
                })?;
                let mut out = BufWriter::with_capacity(256 * 1024, f);
                let counts = convert(source, to, &label, &mut out, &mut err)?;
                out.flush()?;
                counts
            }
            None => {
                let stdout = std::io::stdout();
                let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
                let counts = convert(source, to, &label, &mut out, &mut err)?;
                out.flush()?;
                counts
            }
        }
    };
    if *stats {
        let seconds = started.elapsed().as_secs_f64();
        writeln!(
            err,
            "converted {} ({} skipped, {} flagged) in {:.3} s: {:.0} records/s; peak RSS {} KiB",
            super::count(counts.written, "record"),
            counts.skipped,
            counts.flagged,
            seconds,
            counts.written as f64 / seconds.max(1e-9),
            super::bench::peak_rss_kib().map_or("unknown".into(), |k| k.to_string())
        )?;
    }
    Ok(if counts.skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum To {
    /// A MARCXML collection.
    Marcxml,
    /// MARC-in-JSON, one record object per line (JSON Lines).
    Json,
    /// ISO 2709 in UTF-8 (Leader/09 `a`).
    Marc,
    /// Read, decode and check every record, write nothing (for timing).
    None,
    /// Only split ISO 2709 records into leader and fields, no character decoding, write
    /// nothing (for timing against `yaz-marcdump -n`).
    Parse,
}

/// Counts for the summary line.
#[derive(Debug, Default)]
struct Counts {
    /// Records written.
    pub written: usize,
    /// Records that could not be read or written (reported on stderr).
    pub skipped: usize,
    /// Records written with a warning or a convertibility error (reported on stderr).
    pub flagged: usize,
}

/// Splits every ISO 2709 record into leader and fields without decoding characters.
fn parse_only(
    input: impl std::io::Read,
    mode: iso2709::Mode,
    label: &str,
    err: &mut impl Write,
) -> std::io::Result<Counts> {
    let mut counts = Counts::default();
    let mut reader = iso2709::Reader::new(input, mode);
    while let Some(framed) = reader.next_record() {
        let parsed = framed.map_err(|e| e.to_string()).and_then(|bytes| {
            iso2709::parse_record(bytes.bytes, mode)
                .map(|raw| raw.fields.len())
                .map_err(|kind| format!("record {} at byte {}: {kind}", bytes.index, bytes.offset))
        });
        match parsed {
            Ok(_) => counts.written += 1,
            Err(message) => {
                writeln!(err, "{label}: {message}")?;
                counts.skipped += 1;
            }
        }
    }
    Ok(counts)
}

/// Converts every item, writing records to `out` and reports to `err`.
fn convert(
    items: impl Iterator<Item = Item>,
    to: To,
    label: &str,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<Counts> {
    let mut counts = Counts::default();
    let mut text = String::with_capacity(64 * 1024);
    let mut bytes = Vec::with_capacity(64 * 1024);
    if to == To::Marcxml {
        out.write_all(marcxml::COLLECTION_START.as_bytes())?;
    }
    for item in items {
        let parsed = match item.outcome {
            Ok(parsed) => parsed,
            Err(error) => {
                writeln!(err, "{label}: {error}")?;
                counts.skipped += 1;
                continue;
            }
        };
        if let Some(finding) = parsed.verdict.findings.first() {
            counts.flagged += 1;
            writeln!(
                err,
                "{label}: record {} at byte {}: {}: {}",
                item.index,
                item.offset,
                finding.reason.code(),
                finding.message
            )?;
        }
        let record = &parsed.decoded.record;
        let written = match to {
            To::Marcxml => {
                text.clear();
                marcxml::write_record(record, &mut text, false)
                    .map(|()| out.write_all(text.as_bytes()))
                    .map_err(|e| e.to_string())
            }
            To::Json => {
                text.clear();
                json::write_record(record, &mut text);
                text.push('\n');
                Ok(out.write_all(text.as_bytes()))
            }
            To::Marc => {
                bytes.clear();
                iso2709::write_record(record, &mut bytes)
                    .map(|()| out.write_all(&bytes))
                    .map_err(|e| e.to_string())
            }
            To::None | To::Parse => Ok(Ok(())),
        };
        match written {
            Ok(io) => {
                io?;
                counts.written += 1;
            }
            Err(reason) => {
                writeln!(
                    err,
                    "{label}: record {} at byte {}: not written: {reason}",
                    item.index, item.offset
                )?;
                counts.skipped += 1;
            }
        }
    }
    if to == To::Marcxml {
        out.write_all(marcxml::COLLECTION_END.as_bytes())?;
    }
    Ok(counts)
}
