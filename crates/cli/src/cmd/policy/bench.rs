//! `policy bench`: decision latency, cold load and import throughput with and without a
//! policy.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_plugin_host::{Limits, PublishRequest, WasmEngine, WasmPolicyRunner, componentize};
use bibgate_store::policy::{NewActivation, OnError};

use crate::data::{self, Backend, Data};

/// Arguments of `bibgate policy bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Where the policy crates were built (`target/wasm32-unknown-unknown/policy`).
    #[arg(long, default_value = "target/wasm32-unknown-unknown/policy")]
    wasm_dir: PathBuf,
    /// The LOC sample (default: in the shared corpus).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Where the shared corpus is.
    #[arg(long, default_value = "../shared/corpus")]
    corpus: PathBuf,
    /// Warm decisions per case.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

pub(super) fn bench(args: &BenchArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let file = args.file.clone().unwrap_or_else(|| {
        args.corpus
            .join("loc-booksall-2016/BooksAll.2016.part01.every10th.mrc")
    });
    let core = std::fs::read(
        args.wasm_dir
            .join("bibgate_policy_authentication_guard.wasm"),
    )
    .context("build the policies first (scripts/test.sh builds them)")?;
    let component = componentize(&core)?;
    let engine = Arc::new(WasmEngine::new()?);
    let admitted = engine.admit(&component)?;
    // Records from the sample as candidates.
    let bytes = std::fs::read(&file)
        .with_context(|| format!("could not read {:?}", file.display().to_string()))?;
    let mut records = Vec::new();
    for item in bibgate_marc::Source::sniffed(&bytes[..], Mode::Lenient, Charset::Auto)?.take(11) {
        if let Ok(parsed) = item.outcome {
            let mut utf8 = Vec::new();
            bibgate_marc::iso2709::write_record(&parsed.decoded.record, &mut utf8)?;
            records.push(utf8);
        }
    }
    let incoming = records
        .first()
        .cloned()
        .context("no records in the sample")?;
    writeln!(
        out,
        "policy authentication-guard: component {} bytes, precompiled {} bytes",
        component.len(),
        admitted.precompiled.len()
    )?;
    for n in [1usize, 10] {
        let input = bibgate_import::PolicyInput {
            institution: "BENCH".into(),
            incoming: incoming.clone(),
            candidates: records
                .iter()
                .skip(1)
                .cycle()
                .take(n)
                .enumerate()
                .map(|(i, m)| bibgate_import::policy::PolicyCandidate {
                    id: format!("99{i}"),
                    marc: m.clone(),
                    matched_on: vec!["035a 1 -> active".into()],
                    brief_level: 10,
                    originating_version: None,
                })
                .collect(),
            as_of_unix: 1_800_000_000,
            default: bibgate_import::policy::DefaultDecision {
                outcome: bibgate_import::policy::PolicyOutcome::Merge {
                    target: 0,
                    ops: Vec::new(),
                },
                reason_code: "MERGED".into(),
                host_message: String::new(),
            },
        };
        let mut times = Vec::with_capacity(args.iterations);
        let mut fuel = 0;
        for i in 0..args.iterations + 50 {
            let started = Instant::now();
            let run = engine.run(&admitted.policy, &input, &[], Limits::default());
            let micros = started.elapsed().as_secs_f64() * 1e6;
            if run.result.is_err() {
                bail!("the policy failed: {:?}", run.result);
            }
            if i >= 50 {
                times.push(micros);
            }
            fuel = run.fuel;
        }
        times.sort_by(f64::total_cmp);
        writeln!(
            out,
            "warm decision, 1 incoming + {n} candidates: p50 {:.1} µs, p99 {:.1} µs, fuel {fuel}",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        )?;
    }
    let mut loads = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        engine.load_precompiled(admitted.policy.sha256(), &admitted.precompiled)?;
        loads.push(started.elapsed().as_secs_f64() * 1e3);
    }
    loads.sort_by(f64::total_cmp);
    writeln!(
        out,
        "cold load from precompiled code (deserialize + instance-pre): p50 {:.3} ms, p99 {:.3} ms",
        percentile(&loads, 0.5),
        percentile(&loads, 0.99)
    )?;
    let started = Instant::now();
    engine.admit(&component)?;
    writeln!(
        out,
        "compile from the component (admission fallback): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    )?;

    // Import throughput: the sample twice (adds, then merges) into fresh stores.
    let mut rates = Vec::new();
    for with_policy in [false, true] {
        let scratch = std::env::temp_dir().join(format!(
            "bibgate-policy-bench-{}-{with_policy}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&scratch);
        let data = Data::open(&Backend::Local(scratch.clone()))?;
        data::init_demo(&data, Some("bench"))?;
        let route =
            bibgate_import::route(data.store()?.as_ref(), data::DEMO_INSTITUTIONS[0], None)?;
        let store = data.policy_store()?;
        let runner = if with_policy {
            let manifest = bibgate_plugin_host::publish(
                &engine,
                store.as_ref(),
                &component,
                &PublishRequest {
                    name: "protect".into(),
                    version: "1".into(),
                    description: String::new(),
                    fuel: bibgate_plugin_host::DEFAULT_FUEL,
                    memory_bytes: 32 << 20,
                    published_by: "bench".into(),
                    published_unix: 0,
                },
            )?;
            store.activate(
                &NewActivation {
                    institution: route.institution.code.clone(),
                    sha256: manifest.sha256,
                    config: Vec::new(),
                    on_error: OnError::Default,
                    activated_by: "bench".into(),
                    activated_unix: 0,
                },
                0,
            )?;
            Some(WasmPolicyRunner::new(engine.clone(), store.clone()))
        } else {
            None
        };
        let importer = bibgate_import::Importer::with_policies(
            data.store()?.as_ref(),
            runner
                .as_ref()
                .map(|r| r as &dyn bibgate_import::PolicyRunner),
        );
        let options = crate::cmd::import::Options {
            dry_run: false,
            json: false,
            route: &route,
        };
        let mut counts = BTreeMap::new();
        let started = Instant::now();
        for _ in 0..2 {
            crate::cmd::import::import_file(
                &importer,
                data.blobs.as_ref(),
                &file,
                &options,
                &mut std::io::sink(),
                &mut counts,
            )?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let n: usize = counts.values().sum();
        rates.push(n as f64 / seconds);
        writeln!(
            out,
            "import {} records (adds then merges) {}: {:.2} s, {:.0} records/s ({counts:?})",
            n,
            if with_policy {
                "with authentication-guard active"
            } else {
                "without a policy"
            },
            seconds,
            n as f64 / seconds
        )?;
        let _ = std::fs::remove_dir_all(&scratch);
    }
    writeln!(
        out,
        "throughput with a policy / without: {:.2}",
        rates[1] / rates[0]
    )?;
    Ok(ExitCode::SUCCESS)
}
