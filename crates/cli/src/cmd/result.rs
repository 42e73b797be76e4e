//! `bibgate result EXPORT_ID`: the stored result of one export (a Connexion export id, as
//! in the gateway's "Import pending" reply, or `<batch>#<index>` for a record of a file).

use std::io::Write;
use std::process::ExitCode;

use bibgate_store::{ImportResult, Store};

use crate::data::Data;

/// Arguments of `bibgate result`.
#[derive(clap::Args)]
pub struct Args {
    /// The export id (from the gateway's reply or log, or `<batch>#<index>`).
    export_id: String,
}

/// `bibgate result`: prints the result of the export on standard output.
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let store = data.store()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = show(store.as_ref(), &args.export_id, &mut out)?;
    out.flush()?;
    Ok(code)
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
    writeln!(out, "received: {}", utc(result.received_unix))?;
    writeln!(out, "decided: {}", utc(result.decided_unix))?;
    writeln!(out, "trace:")?;
    for line in &result.trace {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
fn utc(unix: i64) -> String {
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
