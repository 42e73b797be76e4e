//! `bibgate result EXPORT_ID`: the stored result of one export (a Connexion export id, as
//! in the gateway's "Import pending" reply, or `<batch>#<index>` for a record of a file);
//! `bibgate result retry EXPORT_ID` imports its stored bytes again.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_import::{Input, Received};
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_store::{BlobStore, ImportResult, Outcome, Store};

use super::{ZoneArg, now_unix};
use crate::data::Data;

/// Arguments of `bibgate result`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// The export id (from the gateway's reply or log, or `<batch>#<index>`).
    #[arg(required = true)]
    export_id: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `bibgate result` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Import the stored raw bytes of an export again (with the institution's profile and
    /// merge policy as they are now), under a new export id; the new result names the one
    /// it retries.
    Retry {
        /// The export id whose bytes to import again.
        export_id: String,
    },
}

/// `bibgate result`: prints the result of the export on standard output.
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = match (&args.command, &args.export_id) {
        (Some(Command::Retry { export_id }), _) => retry(data, export_id, &mut out)?,
        (None, Some(export_id)) => show(data.store()?.as_ref(), export_id, &mut out)?,
        (None, None) => bail!("name an export id, or `retry EXPORT_ID`"),
    };
    out.flush()?;
    Ok(code)
}

/// Records longer than this are not a record (ISO 2709 caps a record at 99,999 bytes; a
/// MARCXML record may be longer, but not by this much).
const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// `bibgate result retry`: exit 0 when the new import added or merged, 1 when it failed
/// again (its result says why).
fn retry(data: &Data, export_id: &str, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let result = retry_result(data, export_id)?;
    write_result(&result, out)?;
    Ok(if result.outcome == Outcome::Failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Imports the stored bytes of `export_id` again under a new export id (`result retry`, and
/// the console's Retry); returns the new result.
pub(crate) fn retry_result(data: &Data, export_id: &str) -> anyhow::Result<ImportResult> {
    let store = data.store()?.as_ref();
    let first = store
        .result(export_id)?
        .with_context(|| format!("there is no result for export {export_id}"))?;
    let bytes = stored_bytes(data.blobs.as_ref(), &first)?;
    let zone = if first.zone == first.institution {
        ZoneArg::Iz
    } else {
        ZoneArg::Nz
    };
    let (route, policies) =
        super::import::route_and_policies(data, &first.institution, Some(zone))?;
    let importer = super::import::importer(data, policies.as_ref())?.retrying(export_id);
    let now = now_unix();
    let received = Received {
        export_id: bibgate_inbox::layout::ExportIds::new()
            .next(&first.institution, now.saturating_mul(1_000)),
        batch_id: None,
        index: None,
        raw_key: first.raw_key.clone(),
        raw_offset: first.raw_offset,
        raw_len: first.raw_len,
        received_unix: now,
    };
    let input = match bibgate_marc::parse(&bytes, Mode::Lenient, Charset::Auto) {
        Ok(parsed) => Input::Parsed(Box::new(parsed)),
        Err(error) => Input::Unreadable(error.to_string()),
    };
    Ok(importer.import(&route, &input, &received, now)?)
}

/// The raw bytes a result was imported from: its slice of the blob it names.
fn stored_bytes(blobs: &dyn BlobStore, result: &ImportResult) -> anyhow::Result<Vec<u8>> {
    let export_id = &result.export_id;
    if result.raw_key.is_empty() {
        bail!("export {export_id} has no stored bytes to import again");
    }
    if result.raw_len > MAX_RECORD_BYTES {
        bail!(
            "export {export_id} names {} bytes of {:?}: too many for one record",
            result.raw_len,
            result.raw_key
        );
    }
    let mut opened = blobs.open(&result.raw_key)?.with_context(|| {
        format!(
            "the bytes of export {export_id} ({:?}) are no longer stored",
            result.raw_key
        )
    })?;
    // A record of a MARCXML file has no bytes of its own there to import again.
    let mut prefix = Vec::new();
    (&mut opened)
        .take(512)
        .read_to_end(&mut prefix)
        .with_context(|| format!("could not read {:?}", result.raw_key))?;
    if bibgate_marc::Format::sniff(&prefix) == bibgate_marc::Format::MarcXml {
        bail!(
            "export {export_id} is a record of the MARCXML file {:?}: import the file again \
             (`bibgate import`), or the corrected record",
            result.raw_key
        );
    }
    if result.raw_len == 0 {
        bail!("export {export_id} has no stored bytes to import again");
    }
    let mut reader = std::io::Cursor::new(prefix).chain(opened);
    let skipped = std::io::copy(
        &mut (&mut reader).take(result.raw_offset),
        &mut std::io::sink(),
    )
    .with_context(|| format!("could not read {:?}", result.raw_key))?;
    let mut bytes = Vec::new();
    reader
        .take(result.raw_len)
        .read_to_end(&mut bytes)
        .with_context(|| format!("could not read {:?}", result.raw_key))?;
    if skipped < result.raw_offset || (bytes.len() as u64) < result.raw_len {
        bail!(
            "{:?} is shorter than export {export_id} says (offset {}, {} bytes)",
            result.raw_key,
            result.raw_offset,
            result.raw_len
        );
    }
    Ok(bytes)
}

/// Prints the stored result of `export_id`: exit 0 when there is one, 1 (with a note on
/// stderr) when there is none yet.
fn show(store: &dyn Store, export_id: &str, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    match store.result(export_id)? {
        Some(result) => {
            write_result(&result, out)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no result for export {export_id} yet: it may still be processing");
            Ok(ExitCode::from(1))
        }
    }
}

/// The result as text: one `name: value` line per fact, then the trace, indented.
fn write_result(result: &ImportResult, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "export: {}", result.export_id)?;
    writeln!(out, "host message: {}", result.host_message)?;
    writeln!(out, "outcome: {}", result.outcome.as_str())?;
    writeln!(out, "reason code: {}", result.reason_code)?;
    writeln!(
        out,
        "mms id: {}",
        result.mms_id.as_ref().map_or("none", |m| m.as_str())
    )?;
    let numbers: Vec<String> = result.oclc_numbers.iter().map(u64::to_string).collect();
    writeln!(
        out,
        "oclc numbers: {}",
        if numbers.is_empty() {
            "none".to_string()
        } else {
            numbers.join(", ")
        }
    )?;
    writeln!(out, "institution: {}", result.institution)?;
    writeln!(out, "zone: {}", result.zone)?;
    if let Some(batch) = &result.batch_id {
        writeln!(
            out,
            "batch: {batch}, record {}",
            result
                .index
                .map_or_else(|| "?".to_string(), |i| i.to_string())
        )?;
    }
    writeln!(
        out,
        "raw bytes: {} (offset {}, {} bytes)",
        result.raw_key, result.raw_offset, result.raw_len
    )?;
    if let Some(retry_of) = &result.retry_of {
        writeln!(out, "retry of: {retry_of}")?;
    }
    writeln!(out, "received: {}", utc(result.received_unix))?;
    writeln!(out, "decided: {}", utc(result.decided_unix))?;
    writeln!(out, "trace:")?;
    for line in &result.trace {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
pub(crate) fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let seconds = unix.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_717_243_200), "2024-06-01 12:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }
}
