//! `bibgate results`: an institution's import report — every result of its Connexion
//! exports, drop-file records and CLI imports, newest first, each failure with what to do
//! next (the CARLI "Steps to Resolve", in Bibgate's commands).

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_store::{ImportResult, MmsId, Outcome, Store};

use super::now_unix;
use super::result::utc;
use crate::data::Data;

/// At most this many results are read unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 1_000;

/// Arguments of `bibgate results`.
#[derive(clap::Args)]
pub struct Args {
    /// The sending institution.
    #[arg(long)]
    institution: String,
    /// Received since: a duration back from now (`30m`, `1h`, `1d`, `7d`) or a UTC date or
    /// time (`2026-05-01`, `2026-05-01T09:30`).
    #[arg(long, default_value = "1d")]
    since: String,
    /// Only results with this outcome.
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// Only results with this reason code (`MULTI_MATCH`, `NOT_ADDED_BRIEF`, ...).
    #[arg(long)]
    reason: Option<String>,
    /// Read at most this many of the newest results (before `--outcome` and `--reason`).
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    limit: usize,
    /// One JSON object per result and line.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Comma-separated values with a header line.
    #[arg(long)]
    csv: bool,
}

/// The `--outcome` argument.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutcomeArg {
    /// Added as a new record.
    Added,
    /// Merged into the one match.
    Merged,
    /// Import Failed.
    Failed,
}

impl OutcomeArg {
    fn outcome(self) -> Outcome {
        match self {
            OutcomeArg::Added => Outcome::Added,
            OutcomeArg::Merged => Outcome::Merged,
            OutcomeArg::Failed => Outcome::Failed,
        }
    }
}

/// `bibgate results`: the report on stdout, a count on stderr; exit 0 (an empty report is
/// not an error).
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let store: &dyn Store = &**data.store()?;
    if store.institution(&args.institution)?.is_none() {
        bail!(
            "institution {:?} does not exist (see bibgate institution list)",
            args.institution
        );
    }
    let since = parse_since(&args.since, now_unix())?;
    let reason = args.reason.as_deref().map(str::to_ascii_uppercase);
    let results: Vec<ImportResult> = store
        .institution_results(&args.institution, since, args.limit)?
        .into_iter()
        .filter(|r| args.outcome.is_none_or(|o| r.outcome == o.outcome()))
        .filter(|r| reason.as_deref().is_none_or(|code| r.reason_code == code))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.csv {
        writeln!(
            out,
            "received,export_id,outcome,reason_code,mms_id,oclc_numbers,host_message,policy,retry_of,next"
        )?;
    }
    let mut n_failed = 0;
    for result in &results {
        let next = next_steps(store, result);
        if result.outcome == Outcome::Failed {
            n_failed += 1;
        }
        if args.json {
            writeln!(out, "{}", json_line(result, &next))?;
        } else if args.csv {
            writeln!(out, "{}", csv_line(result, &next))?;
        } else {
            write_text(&mut out, result, &next)?;
        }
    }
    out.flush()?;
    eprintln!(
        "{} result{} of {} since {} ({n_failed} failed)",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        args.institution,
        utc(since)
    );
    Ok(ExitCode::SUCCESS)
}

/// `--since`: a duration back from `now_unix`, or a UTC date (`YYYY-MM-DD`) or time
/// (`YYYY-MM-DDTHH:MM[:SS]`, a space for the `T` too).
pub(crate) fn parse_since(text: &str, now_unix: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    let shape = || {
        format!(
            "{text:?} is neither a duration (30m, 1h, 1d, 7d) nor a UTC date or time \
             (2026-05-01, 2026-05-01T09:30)"
        )
    };
    if let Some(seconds) = parse_duration(text) {
        return now_unix.checked_sub(seconds).with_context(shape);
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_parts = date.splitn(3, '-');
    let mut number = |max: i64| -> Option<i64> {
        date_parts
            .next()
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|n| (1..=max).contains(n))
    };
    let (Some(year), Some(month), Some(day)) = (number(9_999), number(12), number(31)) else {
        bail!(shape());
    };
    let mut seconds = 0;
    if let Some(time) = time {
        let parts: Vec<&str> = time.trim_end_matches('Z').split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            bail!(shape());
        }
        let limits = [23, 59, 59];
        for (part, (limit, scale)) in parts.iter().zip(limits.iter().zip([3_600, 60, 1])) {
            let value: i64 = part
                .parse()
                .ok()
                .filter(|v| (0..=*limit).contains(v) && part.len() == 2)
                .with_context(shape)?;
            seconds += value * scale;
        }
    }
    Ok(days_from_civil(year, month, day) * 86_400 + seconds)
}

/// `30m`, `1h`, `7d`, `90s`: seconds; `None` for anything else.
fn parse_duration(text: &str) -> Option<i64> {
    let at = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(at);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    digits.parse::<i64>().ok()?.checked_mul(scale)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What staff do about a result: nothing for a success; for a failure, the steps that
/// resolve it, naming the commands with this result's values.
pub(crate) fn next_steps(store: &dyn Store, result: &ImportResult) -> Vec<String> {
    if result.outcome != Outcome::Failed {
        return Vec::new();
    }
    let inst = &result.institution;
    let id = &result.export_id;
    let zone = zone_flag(result);
    let retry = format!("export it again from Connexion, or run `bibgate result retry {id}`");
    let first_number = result.oclc_numbers.first().copied();
    let find = match first_number {
        Some(number) => {
            format!("`bibgate record find --institution {inst}{zone} --oclc {number}`")
        }
        None => format!("`bibgate record find --institution {inst}{zone} --oclc N`"),
    };
    match result.reason_code.as_str() {
        "MULTI_MATCH" => {
            let holders = holders(store, result);
            let (keep, from) = match holders.as_slice() {
                [keep, from, ..] => (keep.as_str(), from.as_str()),
                _ => ("A", "B"),
            };
            let mut steps = vec![format!(
                "Two or more records of {} carry its OCLC number{}{}: see them with {find} \
                 (all such numbers: `bibgate duplicates --institution {inst}{zone}`).",
                result.zone,
                if result.oclc_numbers.len() == 1 {
                    ""
                } else {
                    "s"
                },
                if holders.is_empty() {
                    String::new()
                } else {
                    format!(" (now {})", holders.join(", "))
                },
            )];
            if holders.len() == 1 {
                steps.push(format!(
                    "Only {} carries it now: {retry}.",
                    holders.first().map_or("one record", String::as_str)
                ));
            } else {
                steps.push(format!(
                    "Merge them into the one to keep: `bibgate record merge --keep {keep} --from {from} \
                     --institution {inst}{zone}` (the other is withdrawn, restorable), then {retry}."
                ));
            }
            steps
        }
        "NOT_ADDED_BRIEF" => vec![
            format!(
                "The record it matched has a higher brief level (is fuller) than the incoming \
                 one, which may not overlay it. Find it with {find}."
            ),
            format!(
                "Set its Leader/17 like the incoming record's: `bibgate record edit MMS_ID \
                 --institution {inst}{zone}`, then {retry}."
            ),
            format!(
                "Or import it another way (`bibgate import FILE --institution {inst}`) and merge \
                 the two afterwards with `bibgate record merge`; switching the check off \
                 (`bibgate profile set PROFILE check-brief-level false`) affects every export."
            ),
        ],
        "NOT_ADDED_LOCKED" => vec![
            format!(
                "The record it matched is open in the metadata editor (the host message names \
                 who holds it and since when): see the locks with `bibgate editor list \
                 --institution {inst}`."
            ),
            format!(
                "Ask the holder to save and release it (`bibgate editor release MMS_ID \
                 --institution HOLDER`), or wait until the lock lapses (the profile's \
                 lock-timeout after the holder left the editor); then {retry}."
            ),
        ],
        "NOT_ADDED_OLD" => vec![
            format!(
                "The record it matched was imported with a newer 005 than the incoming one \
                 (an older WorldCat version was exported): see it with {find}."
            ),
            format!(
                "Export the current WorldCat record from Connexion; or switch the 005 \
                 comparison off (`bibgate profile set PROFILE check-005 false`) and {retry}; or \
                 import it another way and merge with `bibgate record merge`."
            ),
        ],
        "MARCXML_CONVERSION_FAILED" => vec![
            format!(
                "The record cannot become MARCXML: a field over 9,999 bytes, text not in the \
                 character set Leader/09 declares, or control characters. The trace says which: \
                 `bibgate result {id}`."
            ),
            "Correct the record in Connexion (shorten the field; export in UTF-8, Leader/09 \
             `a`) and export it again; or import a corrected file with `bibgate import` \
             (`bibgate record edit` corrects a stored record)."
                .to_string(),
        ],
        "CZ_LINKED" => vec![format!(
            "The record it matched is linked to the Community Zone and the profile refuses to \
             overlay such records: see it with {find}; change it there, or switch the check off \
             (`bibgate profile set PROFILE skip-cz false`) and {retry}."
        )],
        "NO_PROFILE" => vec![format!(
            "No usable Connexion integration profile for {inst} (none, or more than one): check \
             with `bibgate profile list` and keep exactly one (`bibgate profile add \
             --institution {inst}`, `bibgate profile delete ID`); then {retry}."
        )],
        "LOGON_FAILED" => vec![format!(
            "The Logon ID or password of the Connexion Gateway Export does not match the \
             profile: set the same password on both sides (`bibgate profile set PROFILE \
             --password NEW`, and in Connexion: Tools > Options > Export), then export again."
        )],
        "POLICY_HOLD" => vec![format!(
            "The institution's merge policy failed and holds records: see `bibgate result {id}` \
             for why, fix or roll back the policy (`bibgate policy list`, `bibgate policy \
             rollback`), then run `bibgate result retry {id}`."
        )],
        "PROCESSING_FAILED" => vec![format!(
            "The processor could not import it after repeated tries (see the trace: `bibgate \
             result {id}`, and the server log); once the cause is fixed, run `bibgate result \
             retry {id}`."
        )],
        _ => vec![format!(
            "See why with `bibgate result {id}`; once the cause is fixed, run `bibgate result \
             retry {id}`."
        )],
    }
}

/// ` --zone nz` when the result was decided in the network zone, else nothing.
fn zone_flag(result: &ImportResult) -> &'static str {
    if result.zone == result.institution {
        ""
    } else {
        " --zone nz"
    }
}

/// The records of the result's zone that carry its OCLC numbers now (a staff report reads
/// them again; an unreadable index reads as none).
fn holders(store: &dyn Store, result: &ImportResult) -> Vec<String> {
    if result.oclc_numbers.is_empty() {
        return Vec::new();
    }
    let found = store
        .find_by_oclc(&result.zone, &result.oclc_numbers)
        .unwrap_or_default();
    let ids: BTreeSet<MmsId> = found.into_iter().map(|e| e.mms_id).collect();
    ids.into_iter().map(|id| id.0).collect()
}

fn write_text(out: &mut impl Write, result: &ImportResult, next: &[String]) -> anyhow::Result<()> {
    let numbers: Vec<String> = result.oclc_numbers.iter().map(u64::to_string).collect();
    writeln!(
        out,
        "{}  {}  {} {}{}{}  {}",
        utc(result.received_unix),
        result.export_id,
        result.outcome.as_str(),
        result.reason_code,
        result
            .mms_id
            .as_ref()
            .map_or_else(String::new, |m| format!(" {m}")),
        if numbers.is_empty() {
            String::new()
        } else {
            format!(" OCLC {}", numbers.join(","))
        },
        result.host_message
    )?;
    if let Some(policy) = &result.policy {
        writeln!(out, "    decided by merge policy {policy}")?;
    }
    if let Some(retry_of) = &result.retry_of {
        writeln!(out, "    retry of {retry_of}")?;
    }
    for step in next {
        writeln!(out, "    next: {step}")?;
    }
    Ok(())
}

fn json_line(result: &ImportResult, next: &[String]) -> serde_json::Value {
    serde_json::json!({
        "received": utc(result.received_unix),
        "received_unix": result.received_unix,
        "export_id": result.export_id,
        "institution": result.institution,
        "zone": result.zone,
        "outcome": result.outcome.as_str(),
        "reason_code": result.reason_code,
        "host_message": result.host_message,
        "mms_id": result.mms_id.as_ref().map(|m| m.0.clone()),
        "oclc_numbers": result.oclc_numbers,
        "batch_id": result.batch_id,
        "index": result.index,
        "policy": result.policy,
        "retry_of": result.retry_of,
        "next": next,
    })
}

fn csv_line(result: &ImportResult, next: &[String]) -> String {
    let numbers: Vec<String> = result.oclc_numbers.iter().map(u64::to_string).collect();
    let fields = [
        utc(result.received_unix),
        result.export_id.clone(),
        result.outcome.as_str().to_string(),
        result.reason_code.clone(),
        result
            .mms_id
            .as_ref()
            .map(|m| m.0.clone())
            .unwrap_or_default(),
        numbers.join(" "),
        result.host_message.clone(),
        result.policy.clone().unwrap_or_default(),
        result.retry_of.clone().unwrap_or_default(),
        next.join(" "),
    ];
    fields
        .iter()
        .map(|field| csv_field(field))
        .collect::<Vec<_>>()
        .join(",")
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_as_staff_write_it() {
        let now = 1_764_758_400; // 2025-12-03 10:40:00 UTC
        assert_eq!(parse_since("1h", now).unwrap(), now - 3_600);
        assert_eq!(parse_since("1d", now).unwrap(), now - 86_400);
        assert_eq!(parse_since("30m", now).unwrap(), now - 1_800);
        assert_eq!(parse_since("1970-01-02", now).unwrap(), 86_400);
        assert_eq!(parse_since("2024-06-01T12:00", now).unwrap(), 1_717_243_200);
        assert_eq!(
            parse_since("2024-06-01 12:00:30", now).unwrap(),
            1_717_243_230
        );
        assert_eq!(parse_since("2000-02-29", now).unwrap(), 951_782_400);
        for bad in [
            "",
            "1x",
            "yesterday",
            "2024-13-01",
            "2024-06-01T25:00",
            "2024-06",
        ] {
            assert!(parse_since(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
