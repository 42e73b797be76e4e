//! `bibgate inspect`: what Bibgate sees in each record.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bibgate_marc::Item;
use bibgate_marc::check::Severity;
use bibgate_matching::{BriefLevelTable, facts, oclc_keys};
use serde_json::{Value, json};

use crate::input::ReadArgs;

/// Arguments of `bibgate inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// ISO 2709 or MARCXML files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per record and line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

/// `bibgate inspect`: exit 1 when a record could not be read.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Args { files, json, read } = args;
    let brief_levels = BriefLevelTable::carli();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut failed = false;
    for path in files {
        let source = read.open(path)?;
        if files.len() > 1 && !json {
            writeln!(out, "== {}", path.display())?;
        }
        for item in source {
            failed |= item.outcome.is_err();
            let mut value = describe(&item, &brief_levels);
            if *json {
                if files.len() > 1 {
                    value["file"] = serde_json::json!(path.display().to_string());
                }
                serde_json::to_writer(&mut out, &value)?;
                writeln!(out)?;
            } else {
                write_text(&mut out, &value)?;
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Describes one record as a JSON object.
fn describe(item: &Item, brief_levels: &BriefLevelTable) -> Value {
    let parsed = match &item.outcome {
        Err(error) => {
            return json!({
                "index": item.index,
                "offset": item.offset,
                "readable": false,
                "error": error.kind.to_string(),
            });
        }
        Ok(parsed) => parsed,
    };
    let record = &parsed.decoded.record;
    let keys = oclc_keys(record);
    let elvl = facts::encoding_level(record);
    let (v005, v005_error, v005_note) = match facts::record_005(record) {
        None => (Value::Null, Value::Null, Value::Null),
        Some(Ok(parsed)) => (
            json!(parsed.version.to_string()),
            Value::Null,
            parsed.lenient.map_or(Value::Null, |l| json!(l.to_string())),
        ),
        Some(Err(bad)) => (Value::Null, json!(bad.to_string()), Value::Null),
    };
    json!({
        "index": item.index,
        "offset": item.offset,
        "readable": true,
        "encoding": parsed.decoded.encoding.name(),
        "leader": record.leader.as_text(),
        "record_type": format!("{:?}", facts::record_type(record)),
        "serial": facts::is_serial(record),
        "encoding_level": char::from(elvl).to_string(),
        "brief_level": brief_levels.level_of(elvl).get(),
        "005": v005,
        "005_error": v005_error,
        "005_note": v005_note,
        "oclc": keys.keys.iter().map(|k| json!({
            "number": k.number.get(),
            "active": k.provenance.is_active(),
            "from": k.provenance.label(),
            "source": k.source,
        })).collect::<Vec<_>>(),
        "oclc_warnings": keys.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "convertible": parsed.verdict.is_convertible(),
        "findings": parsed.verdict.findings.iter().map(|f| json!({
            "code": f.reason.code(),
            "severity": match f.severity { Severity::Error => "error", Severity::Warning => "warning" },
            "message": f.message,
        })).collect::<Vec<_>>(),
    })
}

/// Writes the human form of [`describe`]'s object.
fn write_text(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    let index = &value["index"];
    if value["readable"] == json!(false) {
        return writeln!(
            out,
            "record {index}: unreadable: {}",
            value["error"].as_str().unwrap_or("")
        );
    }
    let title_005 = match (&value["005"], &value["005_error"]) {
        (Value::String(v), _) => v.clone(),
        (_, Value::String(e)) => format!("invalid ({e})"),
        _ => "none".into(),
    };
    let oclc: Vec<String> = value["oclc"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    format!(
                        "{} ({}{})",
                        k["number"],
                        k["from"].as_str().unwrap_or(""),
                        if k["active"] == json!(true) {
                            ""
                        } else {
                            ", cancelled"
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    writeln!(
        out,
        "record {index}: {} | ELvl {:?} (brief level {}) | 005 {} | OCLC {}",
        value["encoding"].as_str().unwrap_or(""),
        value["encoding_level"].as_str().unwrap_or(""),
        value["brief_level"],
        title_005,
        if oclc.is_empty() {
            "none".to_string()
        } else {
            oclc.join(", ")
        },
    )?;
    for warning in value["oclc_warnings"].as_array().into_iter().flatten() {
        writeln!(out, "  warning: {}", warning.as_str().unwrap_or(""))?;
    }
    let findings = value["findings"].as_array().cloned().unwrap_or_default();
    if value["convertible"] == json!(true) {
        writeln!(out, "  converts to MARCXML")?;
    } else {
        writeln!(out, "  cannot be converted to MARCXML")?;
    }
    for finding in findings {
        writeln!(
            out,
            "  {} {}: {}",
            finding["severity"].as_str().unwrap_or(""),
            finding["code"].as_str().unwrap_or(""),
            finding["message"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}
