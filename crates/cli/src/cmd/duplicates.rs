//! `bibgate duplicates`: the OCLC numbers that two or more records of a zone carry — the
//! records an export of that number fails on as a multi-match until they are one.

use std::io::Write;
use std::process::ExitCode;

use bibgate_store::Store;

use super::{ZoneArg, zone_of};
use crate::data::Data;

/// Arguments of `bibgate duplicates`.
#[derive(clap::Args)]
pub struct Args {
    /// Whose zone.
    #[arg(long)]
    institution: String,
    /// Institution or network zone.
    #[arg(long, value_enum, default_value = "iz")]
    zone: ZoneArg,
    /// One JSON object per OCLC number.
    #[arg(long)]
    json: bool,
}

/// Lists the shared OCLC numbers of the zone, one line each; a count on stderr.
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let store: &dyn Store = &**data.store()?;
    let zone = zone_of(store, &args.institution, args.zone.target())?;
    let mut out = std::io::stdout().lock();
    let shared = report(store, &zone, args.json, &mut out)?;
    out.flush()?;
    eprintln!(
        "{shared} OCLC number{} on two or more records in {zone}",
        if shared == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the report; returns how many numbers are shared.
fn report(
    store: &dyn Store,
    zone: &str,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let shared = store.duplicates(zone)?;
    for (number, entries) in &shared {
        if json {
            let records: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| serde_json::json!({ "mms_id": e.mms_id.0, "active": e.active }))
                .collect();
            let line = serde_json::json!({
                "zone": zone,
                "oclc_number": number,
                "records": records,
            });
            writeln!(out, "{line}")?;
        } else {
            let records: Vec<String> = entries
                .iter()
                .map(|e| {
                    let how = if e.active { "active" } else { "cancelled" };
                    format!("{} ({how})", e.mms_id)
                })
                .collect();
            writeln!(out, "OCLC {number}\t{}", records.join(", "))?;
        }
    }
    Ok(shared.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_store_local::SqliteStore;
    use bibgate_test_support::{ALPHA, BETA, init_demo, seed, seed_sharing};

    #[test]
    fn shared_numbers_are_listed_with_their_records() {
        let store = SqliteStore::in_memory().unwrap();
        init_demo(&store);
        let (a, b) = seed_sharing(&store, ALPHA, 2002, 9002);
        let lone = bibgate_test_support::oclc_record(3003, b' ', None, "Alone.");
        seed(&store, ALPHA, &lone, &[(3003, true)]);
        seed(&store, BETA, &lone, &[(2002, true)]);
        let mut text = Vec::new();
        assert_eq!(report(&store, ALPHA, false, &mut text).unwrap(), 1);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            format!("OCLC 2002\t{a} (active), {b} (cancelled)\n")
        );
        let mut json = Vec::new();
        report(&store, ALPHA, true, &mut json).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(line["oclc_number"], 2002);
        assert_eq!(line["records"][1]["active"], false);
        assert_eq!(report(&store, BETA, false, &mut Vec::new()).unwrap(), 0);
    }
}
