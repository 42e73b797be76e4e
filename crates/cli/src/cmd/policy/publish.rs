//! Publishing and activating: `policy publish`, `policy activate`, `policy rollback` and
//! `policy list`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bibgate_plugin_host::{PublishRequest, WasmEngine};
use bibgate_store::policy::{NewActivation, OnError};

use super::develop::component_of;
use super::{config_of, name_of};
use crate::cmd::now_unix;
use crate::data::{Backend, Data};

/// Arguments of `bibgate policy publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
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
}

/// Arguments of `bibgate policy activate`.
#[derive(clap::Args)]
pub struct ActivateArgs {
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
}

/// Arguments of `bibgate policy rollback`.
#[derive(clap::Args)]
pub struct RollbackArgs {
    /// The institution.
    #[arg(long)]
    institution: String,
}

/// `policy publish`: admits the component and stores it (content-addressed).
pub(super) fn publish(
    backend: &Backend,
    args: PublishArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let PublishArgs {
        policy,
        name,
        version,
        fuel,
        memory_mib,
    } = args;
    let component = component_of(&policy)?;
    let engine = WasmEngine::new()?;
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

/// `policy activate`: a new activation revision for the institution.
pub(super) fn activate(
    backend: &Backend,
    args: ActivateArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let ActivateArgs {
        policy,
        institution,
        config,
        on_error,
    } = args;
    let data = Data::open(backend)?;
    let store = data.policy_store()?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    activate_in(
        store.as_ref(),
        &institution,
        &policy,
        &config,
        &on_error,
        &by,
        out,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Activates `policy` (`sha256:<hex>`, a hex prefix, or a published name) for
/// `institution` as a new revision, `by` whom: `policy activate` and the console.
pub(crate) fn activate_in(
    store: &dyn bibgate_store::PolicyStore,
    institution: &str,
    policy: &str,
    config: &str,
    on_error: &str,
    by: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let on_error = OnError::parse(on_error).context("--on-error is default or hold")?;
    let wanted = policy.strip_prefix("sha256:").unwrap_or(policy);
    let published = store.published()?;
    let manifest = published
        .iter()
        .rev()
        .find(|m| m.name == wanted || (wanted.len() >= 8 && m.sha256.starts_with(wanted)))
        .with_context(|| format!("no published policy {policy:?} (see `bibgate policy list`)"))?;
    let expected = store.active(institution)?.map_or(0, |a| a.revision);
    let activation = store.activate(
        &NewActivation {
            institution: institution.to_string(),
            sha256: manifest.sha256.clone(),
            config: config_of(config)?,
            on_error,
            activated_by: by.to_string(),
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
    Ok(())
}

/// `policy rollback`: the previous revision, active again.
pub(super) fn rollback(
    backend: &Backend,
    args: RollbackArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let RollbackArgs { institution } = args;
    let data = Data::open(backend)?;
    let store = data.policy_store()?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    rollback_in(store.as_ref(), &institution, &by, out)?;
    Ok(ExitCode::SUCCESS)
}

/// Makes the institution's previous activation revision active again, `by` whom: `policy
/// rollback` and the console.
pub(crate) fn rollback_in(
    store: &dyn bibgate_store::PolicyStore,
    institution: &str,
    by: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let current = store
        .active(institution)?
        .with_context(|| format!("{institution} has no active policy"))?;
    let back = store.rollback(institution, current.revision, by, now_unix())?;
    writeln!(
        out,
        "{institution}: {} active (was {})",
        back.label(),
        current.label()
    )?;
    Ok(())
}

/// `policy list`: published policies, then each institution's active one.
pub(super) fn list(backend: &Backend, out: &mut impl Write) -> anyhow::Result<ExitCode> {
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
