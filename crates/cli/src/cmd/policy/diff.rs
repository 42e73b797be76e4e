//! `policy diff`: the decisions two policy versions make differently on a file.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use bibgate_marc::Source;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_plugin_host::{SinglePolicyRunner, WasmEngine};

use super::{config_of, load};
use crate::cmd::now_unix;
use crate::data::Data;

/// Arguments of `bibgate policy diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// The records.
    file: PathBuf,
    /// `default` (no policy), a folder, a `.wasm` file or `sha256:<hex>`.
    #[arg(long)]
    from: String,
    /// Same forms as --from.
    #[arg(long)]
    to: String,
    /// The sending institution.
    #[arg(long)]
    institution: String,
    /// Config values for both, as a JSON object.
    #[arg(long, default_value = "{}")]
    config: String,
}

/// What two policy versions decide differently on a file (`policy diff`, and the staff
/// console's policies page).
#[derive(Debug, Default)]
pub(crate) struct DiffReport {
    /// Records read.
    pub total: usize,
    /// Records whose decision changes.
    pub changed: usize,
    /// One line per changed record: `record N: A -> B: <the new host message>`.
    pub lines: Vec<String>,
    /// Changed records by change (`A -> B`), in order of the change.
    pub by_change: Vec<(String, usize)>,
}

/// `policy diff`: exit 0 whatever changes; nothing is written.
pub(super) fn diff(data: &Data, args: &DiffArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let DiffArgs {
        file,
        from,
        to,
        institution,
        config,
    } = args;
    let source = crate::input::open(file, None, Mode::Lenient, Charset::Auto)?;
    let report = diff_report(data, source, from, to, institution, config)?;
    for line in &report.lines {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "{} of {} decisions change",
        report.changed, report.total
    )?;
    for (change, n) in &report.by_change {
        writeln!(out, "  {n}\t{change}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The decisions `from` and `to` (`default`, a folder, a `.wasm` file or `sha256:<hex>`)
/// make on the records of `source` for `institution`; nothing is written.
pub(crate) fn diff_report<R: BufRead>(
    data: &Data,
    source: Source<R>,
    from: &str,
    to: &str,
    institution: &str,
    config: &str,
) -> anyhow::Result<DiffReport> {
    let store = data.store()?.as_ref();
    let route = bibgate_import::route(store, institution, None)?;
    let engine = Arc::new(WasmEngine::new()?);
    let make = |spec: &str| -> anyhow::Result<Option<SinglePolicyRunner>> {
        if spec == "default" {
            return Ok(None);
        }
        let published = || Ok(data.policy_store()?.clone());
        let (policy, label, limits) = load(&engine, published, spec)?;
        Ok(Some(SinglePolicyRunner::new(
            engine.clone(),
            policy,
            config_of(config)?,
            limits,
            label,
        )))
    };
    let (a, b) = (make(from)?, make(to)?);
    let importer_a = bibgate_import::Importer::with_policies(
        store,
        a.as_ref().map(|r| r as &dyn bibgate_import::PolicyRunner),
    );
    let importer_b = bibgate_import::Importer::with_policies(
        store,
        b.as_ref().map(|r| r as &dyn bibgate_import::PolicyRunner),
    );
    let mut report = DiffReport::default();
    let mut by_change: BTreeMap<String, usize> = BTreeMap::new();
    for item in source {
        report.total += 1;
        let input = match item.outcome {
            Ok(parsed) => bibgate_import::Input::Parsed(Box::new(parsed)),
            Err(e) => bibgate_import::Input::Unreadable(e.to_string()),
        };
        let received = bibgate_import::Received {
            export_id: format!("diff#{}", item.index),
            batch_id: None,
            index: Some(item.index as u64),
            raw_key: String::new(),
            raw_offset: 0,
            raw_len: 0,
            received_unix: now_unix(),
        };
        let x = importer_a.explain(&route, &input, &received)?;
        let y = importer_b.explain(&route, &input, &received)?;
        let merged = |e: &bibgate_import::Explained| match e.decision.as_ref().map(|d| &d.outcome) {
            Some(bibgate_engine::Outcome::Merge { merged, .. }) => Some(merged.clone()),
            _ => None,
        };
        if x.reason_code != y.reason_code
            || x.host_message != y.host_message
            || merged(&x) != merged(&y)
        {
            report.changed += 1;
            *by_change
                .entry(format!("{} -> {}", x.reason_code, y.reason_code))
                .or_default() += 1;
            report.lines.push(format!(
                "record {}: {} -> {}: {}",
                item.index, x.reason_code, y.reason_code, y.host_message
            ));
        }
    }
    report.by_change = by_change.into_iter().collect();
    Ok(report)
}
