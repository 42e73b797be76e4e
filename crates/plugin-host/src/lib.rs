//! The merge-policy plugin host: admits, precompiles and runs WebAssembly merge policies
//! (`bibgate:merge-policy@1.0.0`, `plugins/wit/merge-policy/v1/world.wit`) with wasmtime.
//!
//! # Main types
//!
//! - [`WasmEngine`]: one wasmtime engine per process (fuel, epoch interruption with one
//!   ticker thread, NaN canonicalization, memory reservation reduced to the cap),
//!   [`WasmEngine::admit`] (admission checks), precompilation, [`WasmEngine::run`] (a
//!   fresh store per decision with fuel, an epoch deadline and a memory limiter).
//! - [`componentize`]: a `wasm32-unknown-unknown` core module with wit-bindgen's embedded
//!   type section → a component, in process (no tool download, no WASI).
//! - [`publish`]: admission + precompilation + [`PolicyStore::publish`](bibgate_store::PolicyStore::publish).
//! - [`WasmPolicyRunner`]: the [`bibgate_import::PolicyRunner`] over a [`PolicyStore`](bibgate_store::PolicyStore): reads
//!   each institution's active pointer with a short TTL, keeps loaded policies by sha256, loads
//!   precompiled artifacts keyed by engine compatibility.
//!
//! # Invariants
//!
//! - The only crate in the workspace depending on wasmtime.
//! - A policy imports nothing but our own package's types: no functions, no WASI.
//! - A policy that traps, loops, exhausts memory or answers garbage never fails the caller:
//!   [`WasmEngine::run`] returns a [`bibgate_import::policy::PolicyFailure`].
//! - Precompiled code is only ever deserialized from artifacts this host wrote into the
//!   policy store (see `engine.rs` for the one `unsafe` block).
//! - Same component + same input ⇒ same outcome and same fuel (no clock, no randomness, NaN
//!   canonicalization, deterministic relaxed SIMD).
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod bindings;
mod convert;
mod engine;
mod error;
mod runner;

pub use engine::{
    ABI, Admitted, DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, Limits, LoadedPolicy, MAX_COMPONENT_BYTES,
    MAX_FUEL, MAX_MEMORY_BYTES, Run, WasmEngine, componentize, sha256_hex,
};
pub use error::{Error, Result};
pub use runner::{
    DEFAULT_POINTER_TTL, PublishRequest, SinglePolicyRunner, WasmPolicyRunner, publish,
};
