//! The wasmtime engine, admission, precompilation and one sandboxed decision.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bibgate_import::policy::{FailureKind, PolicyAnswer, PolicyFailure, PolicyInput};
use bibgate_store::policy::ConfigValue;
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};

use crate::bindings::{MergePolicy, MergePolicyPre};
use crate::convert;
use crate::error::{Error, Result};

/// The WIT package and version this host runs.
pub const ABI: &str = "bibgate:merge-policy@1.0.0";
/// The one import a policy may have: our package's type-only interface.
const TYPES_IMPORT: &str = "bibgate:merge-policy/types@1.0.0";
/// Largest component admitted.
pub const MAX_COMPONENT_BYTES: usize = 2 << 20;
/// Fuel per decision unless the manifest says less.
pub const DEFAULT_FUEL: u64 = 10_000_000;
/// The most fuel a manifest may ask for.
pub const MAX_FUEL: u64 = 100_000_000;
/// Memory per instance unless the manifest says less.
pub const DEFAULT_MEMORY_BYTES: u64 = 32 << 20;
/// The most memory a manifest may ask for (also the engine's memory reservation).
pub const MAX_MEMORY_BYTES: u64 = 64 << 20;
/// The epoch ticker's period.
const TICK: Duration = Duration::from_millis(10);
/// Ticks a decision may take before it is interrupted (the wall-clock backstop to fuel).
const DEADLINE_TICKS: u64 = 10;

/// Limits of one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel budget (deterministic).
    pub fuel: u64,
    /// Linear memory cap, bytes.
    pub memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

impl Limits {
    /// The manifest's limits, never above the platform maximum.
    pub fn clamped(fuel: u64, memory_bytes: u64) -> Limits {
        Limits {
            fuel: fuel.clamp(1, MAX_FUEL),
            memory_bytes: memory_bytes.clamp(1 << 16, MAX_MEMORY_BYTES),
        }
    }
}

/// Per-store state: the memory limiter.
pub(crate) struct HostState {
    memory_cap: usize,
    peak_memory: usize,
    denied: bool,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.denied = true;
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }

    fn tables(&self) -> usize {
        16
    }
}

/// Increments the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A component that passed admission, ready to run.
#[derive(Clone)]
pub struct LoadedPolicy {
    pre: MergePolicyPre<HostState>,
    sha256: String,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl LoadedPolicy {
    /// The component's sha256.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The result of [`WasmEngine::admit`].
#[derive(Debug)]
pub struct Admitted {
    /// The loaded policy.
    pub policy: LoadedPolicy,
    /// Its precompiled code for this engine (store it with [`WasmEngine::compatibility`]).
    pub precompiled: Vec<u8>,
}

/// One decision's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Fuel burned.
    pub fuel: u64,
    /// Linear memory high-water mark, bytes.
    pub peak_memory: u64,
    /// The answer or the failure.
    pub result: Result<PolicyAnswer, PolicyFailure>,
}

/// The process's wasmtime engine for policies.
pub struct WasmEngine {
    engine: Engine,
    linker: Linker<HostState>,
    compatibility: String,
    _ticker: Ticker,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("compatibility", &self.compatibility)
            .finish_non_exhaustive()
    }
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` output into sha256, for a compatibility key that is stable across processes.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Turns a `wasm32-unknown-unknown` core module built with wit-bindgen (which embeds the
/// world's type information) into a component, in process.
pub fn componentize(core_module: &[u8]) -> Result<Vec<u8>> {
    // wit-component slices the module by its sections' declared ranges before validating
    // it, and panics on a section that overruns the bytes (found by the `policy` fuzz
    // target): the module is validated first.
    wasmparser::Validator::new()
        .validate_all(core_module)
        .map_err(|e| Error::Compile(format!("not a valid WebAssembly core module: {e}")))?;
    wit_component::ComponentEncoder::default()
        .module(core_module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| Error::Compile(format!("{e:#}")))
}

fn engine_error(e: impl std::fmt::Display) -> Error {
    Error::Engine(e.to_string())
}

impl WasmEngine {
    /// The engine, its linker (our type-only interface, no functions) and the epoch ticker.
    pub fn new() -> Result<WasmEngine> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .wasm_component_model(true)
            // Reserve only what the cap allows, not the default multi-GiB per memory.
            .memory_reservation(MAX_MEMORY_BYTES)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0);
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        linker.instance(TYPES_IMPORT).map_err(engine_error)?;
        let mut hasher = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let compatibility = hex(&hasher.0.finalize())[..32].to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("policy-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(engine_error)?
        };
        Ok(WasmEngine {
            engine,
            linker,
            compatibility,
            _ticker: Ticker {
                stop,
                thread: Some(thread),
            },
        })
    }

    /// The key of this engine's precompiled code (wasmtime build + config).
    pub fn compatibility(&self) -> &str {
        &self.compatibility
    }

    /// The name under which precompiled code for this engine is stored.
    pub fn precompiled_name(&self) -> String {
        format!("{}.cwasm", self.compatibility)
    }

    /// Checks a component against the admission rules and compiles it:
    /// at most [`MAX_COMPONENT_BYTES`]; imports only `bibgate:merge-policy/types@1.0.0`
    /// (type definitions, no functions, no WASI) and type aliases; exports `decide` with
    /// the world's signature.
    pub fn admit(&self, component: &[u8]) -> Result<Admitted> {
        if component.len() > MAX_COMPONENT_BYTES {
            return Err(Error::Refused(format!(
                "the component is {} bytes, more than the {MAX_COMPONENT_BYTES} allowed",
                component.len()
            )));
        }
        let compiled = Component::new(&self.engine, component)
            .map_err(|e| Error::Compile(format!("{e:#}")))?;
        self.check_world(&compiled)?;
        let policy = self.prepare(compiled, sha256_hex(component))?;
        let precompiled = self
            .engine
            .precompile_component(component)
            .map_err(|e| Error::Compile(format!("{e:#}")))?;
        Ok(Admitted {
            policy,
            precompiled,
        })
    }

    fn check_world(&self, component: &Component) -> Result<()> {
        let ty = component.component_type();
        for (name, item) in ty.imports(&self.engine) {
            match item.ty {
                ComponentItem::Type(_) => {}
                ComponentItem::ComponentInstance(instance) if name == TYPES_IMPORT => {
                    for (export, item) in instance.exports(&self.engine) {
                        if !matches!(item.ty, ComponentItem::Type(_)) {
                            return Err(Error::Refused(format!(
                                "import {name:?} has a non-type member {export:?}"
                            )));
                        }
                    }
                }
                ComponentItem::ComponentInstance(_)
                    if name.starts_with("bibgate:merge-policy/") =>
                {
                    return Err(Error::Refused(format!(
                        "import {name:?} is not {TYPES_IMPORT} (wrong world version?)"
                    )));
                }
                _ => {
                    return Err(Error::Refused(format!(
                        "import {name:?} is not allowed: a policy may import only the types of {ABI}"
                    )));
                }
            }
        }
        let decide = ty
            .exports(&self.engine)
            .find(|(name, _)| *name == "decide")
            .map(|(_, item)| item.ty);
        match decide {
            Some(ComponentItem::ComponentFunc(_)) => Ok(()),
            _ => Err(Error::Refused(format!(
                "the component does not export `decide` of world {ABI}"
            ))),
        }
    }

    fn prepare(&self, component: Component, sha256: String) -> Result<LoadedPolicy> {
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::Refused(format!("{e:#}")))?;
        let pre = MergePolicyPre::new(instance_pre)
            .map_err(|e| Error::Refused(format!("not world {ABI}: {e:#}")))?;
        Ok(LoadedPolicy { pre, sha256 })
    }

    /// Loads precompiled code written by [`WasmEngine::admit`] of an engine with the same
    /// [`WasmEngine::compatibility`], for the component whose digest is `sha256`.
    ///
    /// Only call this with bytes this host produced and stored itself (the policy store's
    /// derived artifacts, written after admission): wasmtime trusts precompiled code.
    pub fn load_precompiled(&self, sha256: &str, precompiled: &[u8]) -> Result<LoadedPolicy> {
        let component = deserialize(&self.engine, precompiled)?;
        self.check_world(&component)?;
        self.prepare(component, sha256.to_string())
    }

    /// Runs one decision in a fresh store: `limits.fuel`, an epoch deadline, the memory cap.
    /// Never fails: a trap, fuel or memory exhaustion, or a bad answer is a failed run.
    pub fn run(
        &self,
        policy: &LoadedPolicy,
        input: &PolicyInput,
        config: &[(String, ConfigValue)],
        limits: Limits,
    ) -> Run {
        let memory_cap = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        let mut store = Store::new(
            &self.engine,
            HostState {
                memory_cap,
                peak_memory: 0,
                denied: false,
            },
        );
        store.limiter(|state| state);
        let fail = |kind, message: String| PolicyFailure { kind, message };
        if let Err(e) = store.set_fuel(limits.fuel) {
            return Run {
                fuel: 0,
                peak_memory: 0,
                result: Err(fail(FailureKind::Unavailable, e.to_string())),
            };
        }
        store.set_epoch_deadline(DEADLINE_TICKS);
        store.epoch_deadline_trap();
        let wit_input = convert::input(input, config);
        let called = policy
            .pre
            .instantiate(&mut store)
            .and_then(|instance: MergePolicy| instance.call_decide(&mut store, &wit_input));
        let fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data();
        let peak_memory = state.peak_memory as u64;
        let result = match called {
            Ok(Ok(decision)) => {
                convert::answer(decision).map_err(|m| fail(FailureKind::Garbage, m))
            }
            Ok(Err(message)) => Err(fail(FailureKind::Error, message)),
            Err(error) => {
                let kind = match error.downcast_ref::<Trap>() {
                    Some(Trap::OutOfFuel) => FailureKind::OutOfFuel,
                    Some(Trap::Interrupt) => FailureKind::Deadline,
                    _ if state.denied => FailureKind::Memory,
                    _ => FailureKind::Trap,
                };
                let message = match kind {
                    FailureKind::OutOfFuel => format!("used all {} fuel", limits.fuel),
                    FailureKind::Memory => {
                        format!("wanted more than {} bytes of memory", limits.memory_bytes)
                    }
                    _ => format!("{error:#}"),
                };
                Err(fail(kind, message))
            }
        };
        Run {
            fuel,
            peak_memory,
            result,
        }
    }
}

/// Deserializes precompiled code.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, precompiled: &[u8]) -> Result<Component> {
    // SAFETY: wasmtime requires the bytes to come from `precompile_component` of a
    // compatible engine and to be unmodified (it checks the version and config header, but
    // executes the code as is). Callers pass only derived artifacts that this host wrote to
    // the policy store after admission; the store's write access is limited to the admission
    // path (`publish`, `WasmPolicyRunner`), which is the trust boundary.
    unsafe { Component::deserialize(engine, precompiled) }
        .map_err(|e| Error::Compile(format!("precompiled code: {e:#}")))
}
