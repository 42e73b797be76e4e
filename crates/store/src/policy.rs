//! The merge-policy lifecycle port: published artifacts and per-institution activation.
//!
//! - **Publish**: a policy component is content-addressed by the sha256 of its bytes. The
//!   bytes go to the blob store under `policies/sha256/<hex>/policy.wasm` and a
//!   [`PolicyManifest`] is recorded. Publishing the same bytes twice is a no-op.
//! - **Derived artifacts** (precompiled code per engine build) live beside it under
//!   `policies/sha256/<hex>/<name>`; only the host that made them reads them.
//! - **Activate**: each institution has one pointer with a revision. [`PolicyStore::activate`]
//!   is a compare-and-swap on that revision, so two admins cannot both think they won;
//!   every activation is kept as history.
//! - **Roll back**: activate the activation before the current one again, as a new revision.
//!
//! Adapters: `SqlitePolicyStore` (embedded) and `DynamoPolicyStore` (DynamoDB + S3, which
//! also records each derived artifact's sha256 and refuses bytes that do not match it).

use crate::{Error, Result};

/// The blob key of a published component.
pub fn artifact_key(sha256: &str) -> String {
    format!("policies/sha256/{sha256}/policy.wasm")
}

/// The blob key of an artifact derived from a published component.
pub fn derived_key(sha256: &str, name: &str) -> String {
    format!("policies/sha256/{sha256}/{name}")
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One configuration value of an institution's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    /// A switch.
    Flag(bool),
    /// A number.
    Int(i64),
    /// A text.
    Text(String),
    /// A list of texts.
    Texts(Vec<String>),
}

impl ConfigValue {
    /// A one-line text form for adapters: `flag:true`, `int:5`, `text:...`, `texts:a\u{1f}b`.
    pub fn encode(&self) -> String {
        match self {
            ConfigValue::Flag(v) => format!("flag:{v}"),
            ConfigValue::Int(v) => format!("int:{v}"),
            ConfigValue::Text(v) => format!("text:{v}"),
            ConfigValue::Texts(v) => format!("texts:{}", v.join("\u{1f}")),
        }
    }

    /// Reads [`ConfigValue::encode`]'s form.
    pub fn decode(text: &str) -> Result<ConfigValue> {
        let bad = || Error::Corrupt(format!("policy config value {text:?} is not readable"));
        let (kind, value) = text.split_once(':').ok_or_else(bad)?;
        Ok(match kind {
            "flag" => ConfigValue::Flag(value.parse().map_err(|_| bad())?),
            "int" => ConfigValue::Int(value.parse().map_err(|_| bad())?),
            "text" => ConfigValue::Text(value.to_string()),
            "texts" if value.is_empty() => ConfigValue::Texts(Vec::new()),
            "texts" => ConfigValue::Texts(value.split('\u{1f}').map(str::to_string).collect()),
            _ => return Err(bad()),
        })
    }
}

/// What an institution wants when its policy fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnError {
    /// Apply the engine's default outcome and flag the record.
    #[default]
    Default,
    /// Reject the record with `POLICY_HOLD`.
    Hold,
}

impl OnError {
    /// `default` or `hold`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OnError::Default => "default",
            OnError::Hold => "hold",
        }
    }

    /// Reads [`OnError::as_str`]'s form.
    pub fn parse(text: &str) -> Option<OnError> {
        match text {
            "default" => Some(OnError::Default),
            "hold" => Some(OnError::Hold),
            _ => None,
        }
    }
}

/// A published policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyManifest {
    /// The component's sha256, lowercase hex: its identity.
    pub sha256: String,
    /// The policy's name, e.g. `no-005-check`.
    pub name: String,
    /// The author's version, e.g. `1.0.0`.
    pub version: String,
    /// The WIT package it was admitted for, e.g. `bibgate:merge-policy@1.0.0`.
    pub abi: String,
    /// Component size in bytes.
    pub size: u64,
    /// Fuel budget per decision.
    pub fuel: u64,
    /// Memory cap per instance, bytes.
    pub memory_bytes: u64,
    /// One line.
    pub description: String,
    /// Who published it.
    pub published_by: String,
    /// When, Unix seconds.
    pub published_unix: i64,
}

/// What to activate for an institution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewActivation {
    /// The institution.
    pub institution: String,
    /// A published policy's sha256.
    pub sha256: String,
    /// Its configuration values for this institution.
    pub config: Vec<(String, ConfigValue)>,
    /// The failure setting.
    pub on_error: OnError,
    /// Who activates.
    pub activated_by: String,
    /// When, Unix seconds.
    pub activated_unix: i64,
}

/// An institution's active policy at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    /// The institution.
    pub institution: String,
    /// Revision of the institution's pointer, from 1.
    pub revision: u64,
    /// The policy's name (from its manifest).
    pub name: String,
    /// The component's sha256.
    pub sha256: String,
    /// Configuration values.
    pub config: Vec<(String, ConfigValue)>,
    /// Failure setting.
    pub on_error: OnError,
    /// Who activated.
    pub activated_by: String,
    /// When, Unix seconds.
    pub activated_unix: i64,
}

impl Activation {
    /// `name@revision sha256:<hex>`, as recorded with each import result.
    pub fn label(&self) -> String {
        format!("{}@{} sha256:{}", self.name, self.revision, self.sha256)
    }
}

/// Published policies and per-institution activation.
pub trait PolicyStore: Send + Sync {
    /// Publishes a component: stores its bytes and `manifest` (whose `sha256` must be the
    /// bytes' digest, checked by the caller that computed it). False when already published
    /// (nothing is changed).
    fn publish(&self, manifest: &PolicyManifest, component: &[u8]) -> Result<bool>;
    /// A published manifest.
    fn manifest(&self, sha256: &str) -> Result<Option<PolicyManifest>>;
    /// Every published manifest, oldest first.
    fn published(&self) -> Result<Vec<PolicyManifest>>;
    /// A published component's bytes.
    fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Stores an artifact derived from a published component (e.g. precompiled code).
    fn put_derived(&self, sha256: &str, name: &str, bytes: &[u8]) -> Result<()>;
    /// A derived artifact.
    fn derived(&self, sha256: &str, name: &str) -> Result<Option<Vec<u8>>>;

    /// Makes `activation` the institution's active policy as revision `expected + 1`, where
    /// `expected` is the revision the caller saw (0: none yet). [`Error::Conflict`] when the
    /// pointer moved meanwhile, [`Error::NotFound`] when the policy is not published.
    fn activate(&self, activation: &NewActivation, expected: u64) -> Result<Activation>;
    /// The institution's active policy.
    fn active(&self, institution: &str) -> Result<Option<Activation>>;
    /// Every revision of the institution's pointer, oldest first.
    fn history(&self, institution: &str) -> Result<Vec<Activation>>;

    /// Activates the revision before `expected` again, as revision `expected + 1`.
    /// [`Error::NotFound`] when there is no earlier revision.
    fn rollback(
        &self,
        institution: &str,
        expected: u64,
        by: &str,
        now_unix: i64,
    ) -> Result<Activation> {
        let history = self.history(institution)?;
        let previous = history
            .iter()
            .rev()
            .find(|a| a.revision + 1 == expected)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "a revision of {institution}'s policy before revision {expected}"
                ))
            })?;
        self.activate(
            &NewActivation {
                institution: institution.to_string(),
                sha256: previous.sha256.clone(),
                config: previous.config.clone(),
                on_error: previous.on_error,
                activated_by: by.to_string(),
                activated_unix: now_unix,
            },
            expected,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_round_trip() {
        for value in [
            ConfigValue::Flag(true),
            ConfigValue::Int(-5),
            ConfigValue::Text("a:b".into()),
            ConfigValue::Texts(vec!["590".into(), "9XX".into()]),
            ConfigValue::Texts(Vec::new()),
        ] {
            assert_eq!(ConfigValue::decode(&value.encode()).unwrap(), value);
        }
        assert!(ConfigValue::decode("nope").is_err());
    }
}
