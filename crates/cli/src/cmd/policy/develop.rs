//! Writing a policy: `policy new` (a crate from the template), `policy build` (a
//! component), `policy test` (the crate's fixtures) and `policy run` (one decision).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use bibgate_engine::{Candidate, Incoming};
use bibgate_import::policy::decide_with_policy;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_plugin_host::{Limits, SinglePolicyRunner, WasmEngine, componentize, sha256_hex};

use super::{config_of, load, name_of};
use crate::data::{Backend, Data};

/// Arguments of `bibgate policy new`.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The policy's name (kebab-case).
    name: String,
    /// Where to create it.
    #[arg(long, default_value = "plugins/policies")]
    dir: PathBuf,
}

/// Arguments of `bibgate policy build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The policy crate's folder.
    dir: PathBuf,
}

/// Arguments of `bibgate policy test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// The policy crate's folder.
    dir: PathBuf,
    /// Write each fixture's expected.json from this run.
    #[arg(long)]
    bless: bool,
}

/// Arguments of `bibgate policy run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The policy (a folder, a `.wasm` file, or `sha256:<hex>` when published).
    policy: String,
    /// The incoming record (ISO 2709).
    #[arg(long)]
    incoming: PathBuf,
    /// Candidate records (ISO 2709; the file stem is the MMS ID).
    #[arg(long)]
    candidate: Vec<PathBuf>,
    /// Config values as a JSON object.
    #[arg(long, default_value = "{}")]
    config: String,
}

/// `policy new`: a policy crate from the template.
pub(super) fn new(args: NewArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let NewArgs { name, dir } = args;
    let root = dir.join(&name);
    if root.exists() {
        bail!("{:?} exists already", root.display().to_string());
    }
    let ty: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::create_dir_all(root.join("fixtures/example/candidates"))?;
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bibgate-policy-{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\nbibgate-plugin-sdk.workspace = true\n"
        ),
    )?;
    std::fs::write(
        root.join("src/lib.rs"),
        format!(
            "//! `{name}`: describe what the policy changes, and when.\n\nuse bibgate_plugin_sdk::{{Decision, Input, MergePolicy}};\n\n/// The policy.\npub struct {ty};\n\nimpl MergePolicy for {ty} {{\n    fn decide(_input: &Input) -> Result<Decision, String> {{\n        Ok(Decision::keep_default())\n    }}\n}}\n\nbibgate_plugin_sdk::export_policy!({ty});\n"
        ),
    )?;
    std::fs::write(
        root.join("fixtures/example/expected.json"),
        "{ \"reason_code\": \"ADDED\" }\n",
    )?;
    writeln!(
        out,
        "created {} (add it to the workspace members; put incoming.mrc and candidates/*.mrc in each fixtures/<case>/)",
        root.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `policy build`: the crate built, admitted and written as `policy.component.wasm`.
pub(super) fn build_component(args: BuildArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let BuildArgs { dir } = args;
    let component = build(&dir)?;
    let engine = WasmEngine::new()?;
    engine.admit(&component)?;
    let path = dir.join("policy.component.wasm");
    std::fs::write(&path, &component)?;
    writeln!(
        out,
        "{}: {} bytes, sha256:{} (admitted)",
        path.display(),
        component.len(),
        sha256_hex(&component)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `policy run`: one decision, with its fuel, memory and trace.
pub(super) fn run(
    backend: &Backend,
    args: RunArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let RunArgs {
        policy,
        incoming,
        candidate,
        config,
    } = args;
    let engine = Arc::new(WasmEngine::new()?);
    let published = || Ok(Data::open(backend)?.policy_store()?.clone());
    let (loaded, label, limits) = load(&engine, published, &policy)?;
    let runner = SinglePolicyRunner::new(engine, loaded, config_of(&config)?, limits, label);
    let outcome = decide_fixture(&runner, &incoming, &candidate, 1_800_000_000)?;
    writeln!(out, "{}: {}", outcome.reason_code, outcome.host_message)?;
    let run = runner.last_run();
    writeln!(
        out,
        "fuel {} of {}; peak memory {} bytes",
        outcome.fuel,
        runner.limits().fuel,
        run.map_or(0, |r| r.peak_memory)
    )?;
    for line in &outcome.trace {
        writeln!(out, "  {line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds a policy crate; returns its component bytes.
fn build(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let manifest = dir.join("Cargo.toml");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--profile",
                "policy",
                "--target",
                "wasm32-unknown-unknown",
                "--manifest-path",
            ])
            .arg(&manifest)
            .status()
            .context("could not run cargo")?;
    if !status.success() {
        bail!(
            "cargo could not build {:?} (is the wasm32-unknown-unknown target installed? `rustup target add wasm32-unknown-unknown`)",
            dir.display().to_string()
        );
    }
    let metadata =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(&manifest)
            .output()
            .context("could not run cargo metadata")?;
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let target = metadata["target_directory"]
        .as_str()
        .context("no target directory")?;
    let text = std::fs::read_to_string(&manifest)?;
    let package = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("name = ")
                .map(|n| n.trim_matches('"').to_string())
        })
        .context("no package name in Cargo.toml")?;
    let wasm = Path::new(target)
        .join("wasm32-unknown-unknown/policy")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let core = read_wasm(&wasm)?;
    Ok(componentize(&core)?)
}

/// The bytes of the `.wasm` file at `path`, refused when it holds more than admission
/// allows ([`bibgate_plugin_host::MAX_COMPONENT_BYTES`]): at most that many bytes plus one
/// are read, so a link to an endless file (`/dev/zero`) or a huge file costs nothing.
fn read_wasm(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let limit = bibgate_plugin_host::MAX_COMPONENT_BYTES;
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("could not read {shown:?}"))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("could not read {shown:?}"))?;
    if bytes.len() > limit {
        anyhow::bail!("{shown:?} holds more than {limit} bytes, the most a merge policy may have");
    }
    Ok(bytes)
}

/// Component bytes from a folder (built), a `.wasm` core module or component.
pub(super) fn component_of(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.is_dir() {
        return build(path);
    }
    let bytes = read_wasm(path)?;
    // A core module has version 1 in its header; a component has layer 1.
    if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
        Ok(componentize(&bytes)?)
    } else {
        Ok(bytes)
    }
}

fn read_record(path: &Path) -> anyhow::Result<(bibgate_marc::Parsed, Vec<u8>)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("could not read {:?}", path.display().to_string()))?;
    let parsed = bibgate_marc::parse(&bytes, Mode::Lenient, Charset::Auto).map_err(|e| {
        anyhow::anyhow!(
            "{:?} is not an ISO 2709 record: {e}",
            path.display().to_string()
        )
    })?;
    let mut utf8 = Vec::new();
    bibgate_marc::iso2709::write_record(&parsed.decoded.record, &mut utf8)?;
    Ok((parsed, utf8))
}

/// One fixture's outcome, for comparisons.
#[derive(Debug, PartialEq, Eq)]
struct FixtureOutcome {
    reason_code: String,
    host_message: String,
    merged: Option<Vec<u8>>,
    trace: Vec<String>,
    fuel: u64,
}

fn decide_fixture(
    runner: &SinglePolicyRunner,
    incoming: &Path,
    candidates: &[PathBuf],
    now_unix: i64,
) -> anyhow::Result<FixtureOutcome> {
    let policy = bibgate_engine::ImportRules::default();
    let (parsed, _) = read_record(incoming)?;
    let mut marcs = Vec::new();
    let mut list = Vec::new();
    for path in candidates {
        let (candidate, utf8) = read_record(path)?;
        let record = candidate.decoded.record;
        list.push(Candidate {
            mms_id: path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
            brief_level: policy.brief_levels.record_level(&record),
            originating_version: bibgate_matching::facts::record_005(&record)
                .and_then(Result::ok)
                .map(|p| p.version),
            lock: None,
            linked_to_community_zone: false,
            hits: Vec::new(),
            record,
        });
        marcs.push(utf8);
    }
    let marc_refs: Vec<&[u8]> = marcs.iter().map(Vec::as_slice).collect();
    let incoming = Incoming {
        record: &parsed.decoded.record,
        verdict: &parsed.verdict,
    };
    let decided = decide_with_policy(
        Some(runner),
        "FIXTURE",
        &policy,
        incoming,
        &list,
        &marc_refs,
        now_unix,
    );
    let merged = match &decided.decision.outcome {
        bibgate_engine::Outcome::Merge { merged, .. } if decided.reject.is_none() => {
            let mut bytes = Vec::new();
            bibgate_marc::iso2709::write_record(merged, &mut bytes)?;
            Some(bytes)
        }
        _ => None,
    };
    Ok(FixtureOutcome {
        reason_code: decided.reason_code(),
        host_message: decided.host_message(),
        merged,
        trace: decided.decision.trace.clone(),
        fuel: runner.last_run().map_or(0, |r| r.fuel),
    })
}

fn fixtures(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir.join("fixtures"))
        .with_context(|| format!("no fixtures folder in {:?}", dir.display().to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    Ok(cases)
}

fn candidates_in(case: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = std::fs::read_dir(case.join("candidates"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    list.sort();
    list
}

/// `policy test`: exit 0 when every fixture passes.
pub(super) fn test(args: TestArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let TestArgs { dir, bless } = args;
    let dir = dir.as_path();
    let engine = Arc::new(WasmEngine::new()?);
    let component = build(dir)?;
    let policy = engine.admit(&component)?.policy;
    let mut failed = 0usize;
    let cases = fixtures(dir)?;
    for case in &cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let config =
            std::fs::read_to_string(case.join("config.json")).unwrap_or_else(|_| "{}".into());
        let expected_path = case.join("expected.json");
        let expected: serde_json::Value = std::fs::read_to_string(&expected_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        let now = expected["as_of"].as_i64().unwrap_or(1_800_000_000);
        let mut runs = Vec::new();
        for _ in 0..2 {
            // A fresh runner, and inside it a fresh store and instance per decision.
            let runner = SinglePolicyRunner::new(
                engine.clone(),
                policy.clone(),
                config_of(&config)?,
                Limits::default(),
                name_of(dir),
            );
            runs.push(decide_fixture(
                &runner,
                &case.join("incoming.mrc"),
                &candidates_in(case),
                now,
            )?);
        }
        let budget = Limits::default().fuel;
        let (first, second) = (&runs[0], &runs[1]);
        let mut problems = Vec::new();
        if first != second {
            problems.push("the two runs differ (non-deterministic policy)".to_string());
        }
        if bless {
            let mut value = serde_json::json!({ "reason_code": first.reason_code, "as_of": now });
            if let Some(tags) = expected.get("merged_has") {
                value["merged_has"] = tags.clone();
            }
            std::fs::write(&expected_path, serde_json::to_string_pretty(&value)? + "\n")?;
        } else {
            if expected["reason_code"].as_str() != Some(first.reason_code.as_str()) {
                problems.push(format!(
                    "reason {} (expected {})",
                    first.reason_code, expected["reason_code"]
                ));
            }
            if let (Some(want), Some(merged)) = (expected["merged_has"].as_array(), &first.merged) {
                let text = String::from_utf8_lossy(merged);
                for w in want.iter().filter_map(|w| w.as_str()) {
                    if !text.contains(w) {
                        problems.push(format!("merged record lacks {w:?}"));
                    }
                }
            }
        }
        if problems.is_empty() {
            writeln!(
                out,
                "ok   {name}: {} (fuel {} of {budget}, {:.2}%)",
                first.reason_code,
                first.fuel,
                first.fuel as f64 * 100.0 / budget as f64
            )?;
        } else {
            failed += 1;
            writeln!(out, "FAIL {name}: {}", problems.join("; "))?;
            for line in &first.trace {
                writeln!(out, "       {line}")?;
            }
        }
    }
    writeln!(out, "{} passed, {failed} failed", cases.len() - failed)?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
