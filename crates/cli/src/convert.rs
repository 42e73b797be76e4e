//! `bibgate convert`: stream records into MARCXML, MARC-in-JSON or UTF-8 ISO 2709.

use std::io::Write;

use bibgate_marc::{Item, iso2709, json, marcxml};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum To {
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
pub struct Counts {
    /// Records written.
    pub written: usize,
    /// Records that could not be read or written (reported on stderr).
    pub skipped: usize,
    /// Records written with a warning or a convertibility error (reported on stderr).
    pub flagged: usize,
}

/// Splits every ISO 2709 record into leader and fields without decoding characters.
pub fn parse_only(
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
pub fn run(
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
