//! `bibgate policy ...`: write, build, test, run, compare, publish, activate and roll back
//! per-institution merge policies (WebAssembly components run by `bibgate-plugin-host`).

mod bench;
mod develop;
pub(crate) mod diff;
mod publish;

pub(crate) use publish::{activate_in, rollback_in};

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use bibgate_plugin_host::{Limits, LoadedPolicy, WasmEngine, sha256_hex};
use bibgate_store::PolicyStore;
use bibgate_store::policy::ConfigValue;
use clap::Subcommand;

use crate::data::{Backend, Data};

/// `bibgate policy` subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Create a policy crate from the template.
    New(develop::NewArgs),
    /// Build a policy crate for wasm32 and turn it into a component (in process).
    Build(develop::BuildArgs),
    /// Run the crate's fixtures twice each in fresh instances; fail on any difference.
    Test(develop::TestArgs),
    /// Decide one incoming record against candidate records with a policy.
    Run(develop::RunArgs),
    /// Decide each record of a file with two policy versions against the institution's
    /// records; list the decisions that change. Nothing is written.
    Diff(diff::DiffArgs),
    /// Admit and publish a policy (content-addressed; idempotent).
    Publish(publish::PublishArgs),
    /// Make a published policy the institution's active one (a new revision).
    Activate(publish::ActivateArgs),
    /// Activate the institution's previous revision again.
    Rollback(publish::RollbackArgs),
    /// List published policies and each institution's active one.
    List,
    /// Measure decision latency, cold load and import throughput with and without a policy.
    Bench(bench::BenchArgs),
}

/// Runs a `policy` subcommand.
pub fn run(backend: &Backend, command: Command) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::New(args) => develop::new(args, &mut out),
        Command::Build(args) => develop::build_component(args, &mut out),
        Command::Test(args) => develop::test(args, &mut out),
        Command::Run(args) => develop::run(backend, args, &mut out),
        Command::Diff(args) => diff::diff(&Data::open(backend)?, &args, &mut out),
        Command::Publish(args) => publish::publish(backend, args, &mut out),
        Command::Activate(args) => publish::activate(backend, args, &mut out),
        Command::Rollback(args) => publish::rollback(backend, args, &mut out),
        Command::List => publish::list(backend, &mut out),
        Command::Bench(args) => bench::bench(&args, &mut out),
    }
}

/// Config values from a JSON object.
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

/// The policy's name from its folder or file name.
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
    engine: &WasmEngine,
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
    let bytes = develop::component_of(path)?;
    let policy = engine.admit(&bytes)?.policy;
    let label = format!("{}@local sha256:{}", name_of(path), sha256_hex(&bytes));
    Ok((policy, label, Limits::default()))
}
