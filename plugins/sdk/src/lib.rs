//! Write Bibgate merge policies in Rust.
//!
//! A merge policy decides, for one institution, what happens to an incoming OCLC record
//! when the built-in engine's rules are not what that institution wants: it gets the
//! incoming record, the matching candidates, the institution's configuration values, the
//! as-of time and the engine's default decision, and answers with an [`Outcome`] and a
//! short trace. It runs in the Bibgate host as a WebAssembly component with no imports: no
//! I/O, no clock, no randomness, a fuel budget and a memory cap.
//!
//! # Main items
//!
//! - [`MergePolicy`]: the trait a policy implements; [`export_policy!`] exports it.
//! - [`Input`], [`Decision`], [`Outcome`], [`FieldOp`], [`Selector`], [`EngineSettings`].
//! - [`marc::Marc`]: a lazy view over the ISO 2709 bytes; [`pattern::TagPattern`].
//! - [`marc::RecordBuilder`]: ISO 2709 bytes for native tests.
//!
//! # Native mode
//!
//! On any target but `wasm32` the export macro expands to nothing, so a policy is a plain
//! Rust type: unit-test it by calling `MyPolicy::decide(&input)`.
//!
//! ```
//! use bibgate_plugin_sdk::{Decision, Input, MergePolicy, Outcome, EngineSettings};
//!
//! struct No005;
//! impl MergePolicy for No005 {
//!     fn decide(input: &Input) -> Result<Decision, String> {
//!         if input.default.reason_code != "NOT_ADDED_OLD" {
//!             return Ok(Decision::keep_default());
//!         }
//!         Ok(Decision::new(Outcome::Rerun(EngineSettings {
//!             check_005: Some(false),
//!             ..EngineSettings::default()
//!         })))
//!     }
//! }
//! bibgate_plugin_sdk::export_policy!(No005);
//! ```
//!
//! # Building
//!
//! `crate-type = ["cdylib", "rlib"]`, then `bibgate policy build` (or
//! `cargo build --profile policy --target wasm32-unknown-unknown` and the host's
//! in-process componentization). ABI: `bibgate:merge-policy@1.0.0` ([`ABI`]).
//!
//! # Invariants
//!
//! - Deterministic: nothing here reads a clock, randomness or hash seeds.
//! - Never panics on any record bytes: damaged records read as fewer fields.
#![deny(missing_docs)]
#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]

extern crate self as bibgate_plugin_sdk;

pub mod marc;
pub mod pattern;
mod types;

pub use types::{
    Candidate, Condition, Config, ConfigValue, Decision, DefaultDecision, EngineSettings, FieldOp,
    Input, MergePlan, Outcome, Rejection, Selector,
};

/// The WIT package and version this SDK builds against.
pub const ABI: &str = "bibgate:merge-policy@1.0.0";

/// A merge policy: a pure function of its input.
pub trait MergePolicy {
    /// Decides; an `Err` is a policy failure (the institution's failure setting applies).
    fn decide(input: &Input) -> Result<Decision, String>;
}

/// Exports a [`MergePolicy`] type as the component's `decide` (wasm32 only; nothing on other
/// targets).
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __BibgateExported;
            impl $crate::__private::bindings::Guest for __BibgateExported {
                fn decide(
                    input: $crate::__private::WitInput,
                ) -> ::core::result::Result<$crate::__private::WitDecision, $crate::__private::String>
                {
                    $crate::__private::run::<$policy>(input)
                }
            }
            $crate::__private::__export_merge_policy_impl!(__BibgateExported);
        };
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private;
