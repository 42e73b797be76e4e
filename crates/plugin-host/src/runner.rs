//! The [`PolicyRunner`] over a [`PolicyStore`], and publishing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bibgate_import::PolicyRunner;
use bibgate_import::policy::{FailureKind, OnError, PolicyFailure, PolicyInput, PolicyRun};
use bibgate_store::PolicyStore;
use bibgate_store::policy::{Activation, PolicyManifest};
use tracing::warn;

use crate::engine::{ABI, Limits, LoadedPolicy, WasmEngine, sha256_hex};
use crate::error::{Error, Result};

/// How long an institution's active pointer is trusted before it is read again.
pub const DEFAULT_POINTER_TTL: Duration = Duration::from_secs(2);

/// What [`publish`] records besides the component.
#[derive(Clone, Debug)]
pub struct PublishRequest {
    /// The policy's name.
    pub name: String,
    /// The author's version.
    pub version: String,
    /// One line.
    pub description: String,
    /// Fuel per decision (clamped to the platform maximum).
    pub fuel: u64,
    /// Memory cap, bytes (clamped).
    pub memory_bytes: u64,
    /// Who publishes.
    pub published_by: String,
    /// When.
    pub published_unix: i64,
}

/// Admits `component` (refusing it when it breaks a rule), precompiles it for `engine`
/// and publishes both. Idempotent: the same bytes give the same manifest.
pub fn publish(
    engine: &WasmEngine,
    store: &dyn PolicyStore,
    component: &[u8],
    request: &PublishRequest,
) -> Result<PolicyManifest> {
    let admitted = engine.admit(component)?;
    let sha256 = admitted.policy.sha256().to_string();
    if let Some(existing) = store.manifest(&sha256)? {
        return Ok(existing);
    }
    let limits = Limits::clamped(request.fuel, request.memory_bytes);
    let manifest = PolicyManifest {
        sha256: sha256.clone(),
        name: request.name.clone(),
        version: request.version.clone(),
        abi: ABI.to_string(),
        size: component.len() as u64,
        fuel: limits.fuel,
        memory_bytes: limits.memory_bytes,
        description: request.description.clone(),
        published_by: request.published_by.clone(),
        published_unix: request.published_unix,
    };
    store.put_derived(&sha256, &engine.precompiled_name(), &admitted.precompiled)?;
    store.publish(&manifest, component)?;
    Ok(manifest)
}

/// An institution's active policy, loaded.
struct Active {
    activation: Activation,
    limits: Limits,
    policy: std::result::Result<LoadedPolicy, String>,
}

/// An institution's active pointer as last read, and when.
type Pointer = (Instant, Option<Arc<Active>>);

/// Runs institutions' active policies from a [`PolicyStore`] (see the crate docs).
pub struct WasmPolicyRunner {
    engine: Arc<WasmEngine>,
    store: Arc<dyn PolicyStore>,
    ttl: Duration,
    pointers: Mutex<HashMap<String, Pointer>>,
    loaded: Mutex<HashMap<String, LoadedPolicy>>,
}

impl std::fmt::Debug for WasmPolicyRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPolicyRunner")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl WasmPolicyRunner {
    /// A runner over `store`, re-reading active pointers every [`DEFAULT_POINTER_TTL`].
    pub fn new(engine: Arc<WasmEngine>, store: Arc<dyn PolicyStore>) -> WasmPolicyRunner {
        WasmPolicyRunner::with_ttl(engine, store, DEFAULT_POINTER_TTL)
    }

    /// The same with another TTL.
    pub fn with_ttl(
        engine: Arc<WasmEngine>,
        store: Arc<dyn PolicyStore>,
        ttl: Duration,
    ) -> WasmPolicyRunner {
        WasmPolicyRunner {
            engine,
            store,
            ttl,
            pointers: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Loads a published policy: from memory, else its precompiled code for this engine,
    /// else its component (checked against its digest, admitted, precompiled and stored).
    pub fn load(&self, sha256: &str) -> Result<LoadedPolicy> {
        if let Some(policy) = self
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sha256)
        {
            return Ok(policy.clone());
        }
        let name = self.engine.precompiled_name();
        // A cached artifact that cannot be read, is refused by the store (its digest is not
        // the recorded one) or does not load costs a compile, never the import.
        let from_cache = match self.store.derived(sha256, &name) {
            Ok(Some(bytes)) => match self.engine.load_precompiled(sha256, &bytes) {
                Ok(policy) => Some(policy),
                Err(error) => {
                    warn!(%sha256, %error, "precompiled policy not loadable; compiling again");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                warn!(%sha256, %error, "precompiled policy not readable; compiling again");
                None
            }
        };
        let policy = match from_cache {
            Some(policy) => policy,
            None => {
                let component = self.store.artifact(sha256)?.ok_or_else(|| {
                    Error::Store(bibgate_store::Error::NotFound(format!("policy {sha256}")))
                })?;
                if sha256_hex(&component) != sha256 {
                    return Err(Error::Digest(sha256.to_string()));
                }
                let admitted = self.engine.admit(&component)?;
                // The cache is an optimisation: a failed write is logged, the policy runs.
                if let Err(error) = self.store.put_derived(sha256, &name, &admitted.precompiled) {
                    warn!(%sha256, %error, "could not cache the precompiled policy");
                }
                admitted.policy
            }
        };
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sha256.to_string(), policy.clone());
        Ok(policy)
    }

    fn active(&self, institution: &str) -> Option<Arc<Active>> {
        let now = Instant::now();
        if let Some((read, active)) = self
            .pointers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(institution)
            && now.duration_since(*read) < self.ttl
        {
            return active.clone();
        }
        let active = match self.store.active(institution) {
            Ok(Some(activation)) => {
                let previous = self
                    .pointers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(institution)
                    .and_then(|(_, a)| a.clone());
                match previous.filter(|p| p.activation == activation) {
                    Some(same) => Some(same),
                    None => Some(Arc::new(self.prepare(activation))),
                }
            }
            Ok(None) => None,
            Err(error) => {
                warn!(%institution, %error, "could not read the active policy; keeping the last one read");
                let last = self
                    .pointers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(institution)
                    .and_then(|(_, a)| a.clone());
                return last;
            }
        };
        self.pointers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(institution.to_string(), (now, active.clone()));
        active
    }

    fn prepare(&self, activation: Activation) -> Active {
        let limits = match self.store.manifest(&activation.sha256) {
            Ok(Some(m)) => Limits::clamped(m.fuel, m.memory_bytes),
            _ => Limits::default(),
        };
        let policy = self.load(&activation.sha256).map_err(|e| {
            warn!(institution = %activation.institution, sha256 = %activation.sha256, error = %e, "active policy not loadable");
            e.to_string()
        });
        Active {
            activation,
            limits,
            policy,
        }
    }
}

impl PolicyRunner for WasmPolicyRunner {
    fn is_active(&self, institution: &str) -> bool {
        self.active(institution).is_some()
    }

    fn decide(&self, institution: &str, input: &PolicyInput) -> Option<PolicyRun> {
        let active = self.active(institution)?;
        let label = active.activation.label();
        let on_error = active.activation.on_error;
        let (fuel, result) = match &active.policy {
            Ok(policy) => {
                let run = self
                    .engine
                    .run(policy, input, &active.activation.config, active.limits);
                (run.fuel, run.result)
            }
            Err(message) => (
                0,
                Err(PolicyFailure {
                    kind: FailureKind::Unavailable,
                    message: message.clone(),
                }),
            ),
        };
        Some(PolicyRun {
            label,
            on_error,
            fuel,
            result,
        })
    }
}

/// A runner for one loaded policy with fixed config, for every institution (fixtures,
/// `bibgate policy run|test|diff|bench`). Remembers the fuel of its last run.
pub struct SinglePolicyRunner {
    engine: Arc<WasmEngine>,
    policy: LoadedPolicy,
    config: Vec<(String, bibgate_store::policy::ConfigValue)>,
    limits: Limits,
    label: String,
    on_error: OnError,
    last: Mutex<Option<crate::Run>>,
}

impl std::fmt::Debug for SinglePolicyRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinglePolicyRunner")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl SinglePolicyRunner {
    /// Runs `policy` with `config` and `limits`; failures apply the default outcome.
    pub fn new(
        engine: Arc<WasmEngine>,
        policy: LoadedPolicy,
        config: Vec<(String, bibgate_store::policy::ConfigValue)>,
        limits: Limits,
        label: String,
    ) -> SinglePolicyRunner {
        SinglePolicyRunner {
            engine,
            policy,
            config,
            limits,
            label,
            on_error: OnError::Default,
            last: Mutex::new(None),
        }
    }

    /// The report of the last run.
    pub fn last_run(&self) -> Option<crate::Run> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

impl PolicyRunner for SinglePolicyRunner {
    fn is_active(&self, _institution: &str) -> bool {
        true
    }

    fn decide(&self, _institution: &str, input: &PolicyInput) -> Option<PolicyRun> {
        let run = self
            .engine
            .run(&self.policy, input, &self.config, self.limits);
        let report = PolicyRun {
            label: self.label.clone(),
            on_error: self.on_error,
            fuel: run.fuel,
            result: run.result.clone(),
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(run);
        Some(report)
    }
}
