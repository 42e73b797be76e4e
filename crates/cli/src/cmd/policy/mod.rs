//! `bibgate policy ...`: write, build, test, run, compare, publish, activate and roll back
//! per-institution merge policies (WebAssembly components run by `bibgate-plugin-host`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bibgate_engine::{Candidate, Incoming};
use bibgate_import::policy::decide_with_policy;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_plugin_host::{
    Limits, LoadedPolicy, PolicyEngine, PublishRequest, SinglePolicyRunner, WasmPolicyRunner,
    componentize, sha256_hex,
};
use bibgate_store::PolicyStore;
use bibgate_store::policy::{ConfigValue, NewActivation, OnError};
use clap::Subcommand;

use super::now_unix;
use crate::data::{self, Backend, Data};

/// `bibgate policy` subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Create a policy crate from the template.
    New {
        /// The policy's name (kebab-case).
        name: String,
        /// Where to create it.
        #[arg(long, default_value = "plugins/policies")]
        dir: PathBuf,
    },
    /// Build a policy crate for wasm32 and turn it into a component (in process).
    Build {
        /// The policy crate's folder.
        dir: PathBuf,
    },
    /// Run the crate's fixtures twice each in fresh instances; fail on any difference.
    Test {
        /// The policy crate's folder.
        dir: PathBuf,
        /// Write each fixture's expected.json from this run.
        #[arg(long)]
        bless: bool,
    },
    /// Decide one incoming record against candidate records with a policy.
    Run {
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
    },
    /// Decide each record of a file with two policy versions against the institution's
    /// records; list the decisions that change. Nothing is written.
    Diff {
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
    },
    /// Admit and publish a policy (content-addressed; idempotent).
    Publish {
        /// A folder (built first), or a `.wasm` core module or component.
        policy: PathBuf,
        /// The policy's name (default: the folder or file name).
        #[arg(long)]
        name: Option<String>,
        /// The author's version.
        #[arg(long, default_value = "1.0.0")]
        version: String,
        /// Fuel per decision.
        #[arg(long, default_value_t = bibgate_plugin_host::DEFAULT_FUEL)]
        fuel: u64,
        /// Memory cap per instance, MiB.
        #[arg(long, default_value_t = 32)]
        memory_mib: u64,
    },
    /// Make a published policy the institution's active one (a new revision).
    Activate {
        /// `sha256:<hex>`, a hex prefix, or a published name (its latest version).
        policy: String,
        /// The institution.
        #[arg(long)]
        institution: String,
        /// Config values as a JSON object (`true` → flag, 5 → int, "x" → text, ["a"] → texts).
        #[arg(long, default_value = "{}")]
        config: String,
        /// When the policy fails: `default` (apply the engine's outcome, flag) or `hold`.
        #[arg(long, default_value = "default")]
        on_error: String,
    },
    /// Activate the institution's previous revision again.
    Rollback {
        /// The institution.
        #[arg(long)]
        institution: String,
    },
    /// List published policies and each institution's active one.
    List,
    /// Measure decision latency, cold load and import throughput with and without a policy.
    Bench(BenchArgs),
}

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

fn config_of(json: &str) -> anyhow::Result<Vec<(String, ConfigValue)>> {
    let value: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("config {json:?} is not JSON"))?;
    let Some(object) = value.as_object() else {
        bail!("config must be a JSON object");
    };
    object
        .iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::Bool(b) => ConfigValue::Flag(*b),
                serde_json::Value::Number(n) => ConfigValue::Int(
                    n.as_i64()
                        .with_context(|| format!("config {name}: not an integer"))?,
                ),
                serde_json::Value::String(s) => ConfigValue::Text(s.clone()),
                serde_json::Value::Array(items) => ConfigValue::Texts(
                    items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .with_context(|| format!("config {name}: only texts in a list"))?,
                ),
                _ => bail!("config {name}: use true/false, an integer, a text or a list of texts"),
            };
            Ok((name.clone(), value))
        })
        .collect()
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
    let core = std::fs::read(&wasm)
        .with_context(|| format!("could not read {:?}", wasm.display().to_string()))?;
    Ok(componentize(&core)?)
}

/// Component bytes from a folder (built), a `.wasm` core module or component.
fn component_of(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.is_dir() {
        return build(path);
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("could not read {:?}", path.display().to_string()))?;
    // A core module has version 1 in its header; a component has layer 1.
    if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
        Ok(componentize(&bytes)?)
    } else {
        Ok(bytes)
    }
}

fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| {
            s.to_string_lossy()
                .trim_start_matches("bibgate_policy_")
                .replace('_', "-")
        })
        .unwrap_or_else(|| "policy".into())
}

/// A loaded policy from a folder, a file, or `sha256:<hex>` in the policy store (which
/// `policies` opens, only then).
fn load(
    engine: &PolicyEngine,
    policies: impl FnOnce() -> anyhow::Result<Arc<dyn PolicyStore>>,
    spec: &str,
) -> anyhow::Result<(LoadedPolicy, String, Limits)> {
    if let Some(hex) = spec.strip_prefix("sha256:") {
        let store = policies()?;
        let manifest = store
            .manifest(hex)?
            .with_context(|| format!("policy {spec} is not published"))?;
        let bytes = store.artifact(hex)?.context("the artifact is missing")?;
        let policy = engine.admit(&bytes)?.policy;
        return Ok((
            policy,
            format!("{}@- sha256:{hex}", manifest.name),
            Limits::clamped(manifest.fuel, manifest.memory_bytes),
        ));
    }
    let path = Path::new(spec);
    let bytes = component_of(path)?;
    let policy = engine.admit(&bytes)?.policy;
    let label = format!("{}@local sha256:{}", name_of(path), sha256_hex(&bytes));
    Ok((policy, label, Limits::default()))
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
    let policy = bibgate_engine::Policy::default();
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
fn test(dir: &Path, bless: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let engine = Arc::new(PolicyEngine::new()?);
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

/// Runs a `policy` subcommand.
pub fn run(backend: &Backend, command: Command) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::New { name, dir } => {
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
        Command::Build { dir } => {
            let component = build(&dir)?;
            let engine = PolicyEngine::new()?;
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
        Command::Test { dir, bless } => test(&dir, bless, &mut out),
        Command::Run {
            policy,
            incoming,
            candidate,
            config,
        } => {
            let engine = Arc::new(PolicyEngine::new()?);
            let published = || Ok(Data::open(backend)?.policy_store()?.clone());
            let (loaded, label, limits) = load(&engine, published, &policy)?;
            let runner =
                SinglePolicyRunner::new(engine, loaded, config_of(&config)?, limits, label);
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
        Command::Diff {
            file,
            from,
            to,
            institution,
            config,
        } => diff(
            &Data::open(backend)?,
            &file,
            &from,
            &to,
            &institution,
            &config,
            &mut out,
        ),
        Command::Publish {
            policy,
            name,
            version,
            fuel,
            memory_mib,
        } => {
            let component = component_of(&policy)?;
            let engine = PolicyEngine::new()?;
            let data = Data::open(backend)?;
            let store = data.policy_store()?;
            let manifest = bibgate_plugin_host::publish(
                &engine,
                store.as_ref(),
                &component,
                &PublishRequest {
                    name: name.unwrap_or_else(|| name_of(&policy)),
                    version,
                    description: String::new(),
                    fuel,
                    memory_bytes: memory_mib << 20,
                    published_by: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
                    published_unix: now_unix(),
                },
            )?;
            writeln!(
                out,
                "published {} {} sha256:{} ({} bytes, fuel {}, memory {} MiB)",
                manifest.name,
                manifest.version,
                manifest.sha256,
                manifest.size,
                manifest.fuel,
                manifest.memory_bytes >> 20
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Activate {
            policy,
            institution,
            config,
            on_error,
        } => {
            let data = Data::open(backend)?;
            let store = data.policy_store()?;
            let on_error = OnError::parse(&on_error).context("--on-error is default or hold")?;
            let wanted = policy.strip_prefix("sha256:").unwrap_or(&policy);
            let published = store.published()?;
            let manifest = published
                .iter()
                .rev()
                .find(|m| m.name == wanted || (wanted.len() >= 8 && m.sha256.starts_with(wanted)))
                .with_context(|| {
                    format!("no published policy {policy:?} (see `bibgate policy list`)")
                })?;
            let expected = store.active(&institution)?.map_or(0, |a| a.revision);
            let activation = store.activate(
                &NewActivation {
                    institution: institution.clone(),
                    sha256: manifest.sha256.clone(),
                    config: config_of(&config)?,
                    on_error,
                    activated_by: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
                    activated_unix: now_unix(),
                },
                expected,
            )?;
            writeln!(
                out,
                "{institution}: {} active (a running serve picks it up within {} s)",
                activation.label(),
                bibgate_plugin_host::DEFAULT_POINTER_TTL.as_secs()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { institution } => {
            let data = Data::open(backend)?;
            let store = data.policy_store()?;
            let current = store
                .active(&institution)?
                .with_context(|| format!("{institution} has no active policy"))?;
            let back = store.rollback(
                &institution,
                current.revision,
                &std::env::var("USER").unwrap_or_else(|_| "cli".into()),
                now_unix(),
            )?;
            writeln!(
                out,
                "{institution}: {} active (was {})",
                back.label(),
                current.label()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            let data = Data::open(backend)?;
            let store = data.policy_store()?;
            writeln!(out, "published:")?;
            for m in store.published()? {
                writeln!(
                    out,
                    "  {} {}\tsha256:{}\t{} bytes\tfuel {}",
                    m.name, m.version, m.sha256, m.size, m.fuel
                )?;
            }
            writeln!(out, "active:")?;
            for institution in data.store()?.institutions()? {
                if let Some(a) = store.active(&institution.code)? {
                    let config: Vec<String> = a
                        .config
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.encode()))
                        .collect();
                    writeln!(
                        out,
                        "  {}\t{}\ton-error {}\t{}",
                        institution.code,
                        a.label(),
                        a.on_error.as_str(),
                        config.join(" ")
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench(&args, &mut out),
    }
}

fn diff(
    data: &Data,
    file: &Path,
    from: &str,
    to: &str,
    institution: &str,
    config: &str,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let store = data.store()?.as_ref();
    let route = bibgate_import::route(store, institution, None)?;
    let engine = Arc::new(PolicyEngine::new()?);
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
    let source = crate::input::open(file, None, Mode::Lenient, Charset::Auto)?;
    let (mut total, mut changed) = (0usize, 0usize);
    let mut by_change: BTreeMap<String, usize> = BTreeMap::new();
    for item in source {
        total += 1;
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
            changed += 1;
            *by_change
                .entry(format!("{} -> {}", x.reason_code, y.reason_code))
                .or_default() += 1;
            writeln!(
                out,
                "record {}: {} -> {}: {}",
                item.index, x.reason_code, y.reason_code, y.host_message
            )?;
        }
    }
    writeln!(out, "{changed} of {total} decisions change")?;
    for (change, n) in by_change {
        writeln!(out, "  {n}\t{change}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

fn bench(args: &BenchArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
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
    let engine = Arc::new(PolicyEngine::new()?);
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
