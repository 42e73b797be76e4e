//! The wasm32 glue: wit-bindgen bindings and conversions (not public API).
#![allow(missing_docs)]

pub use std::string::String;

#[allow(unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/merge-policy/v1",
        world: "merge-policy",
        pub_export_macro: true,
        export_macro_name: "__export_merge_policy_impl",
        default_bindings_module: "bibgate_plugin_sdk::__private::bindings",
        runtime_path: "bibgate_plugin_sdk::__private::wit_bindgen_rt",
    });
}

pub use bindings::__export_merge_policy_impl;
pub use wit_bindgen::rt as wit_bindgen_rt;

use bindings::bibgate::merge_policy::types as wit;

pub type WitInput = wit::MergeInput;
pub type WitDecision = wit::Decision;

use crate::types::*;

fn config_value(value: wit::ConfigValue) -> ConfigValue {
    match value {
        wit::ConfigValue::Flag(v) => ConfigValue::Flag(v),
        wit::ConfigValue::Int(v) => ConfigValue::Int(v),
        wit::ConfigValue::Text(v) => ConfigValue::Text(v),
        wit::ConfigValue::Texts(v) => ConfigValue::Texts(v),
    }
}

fn condition_in(c: wit::Condition) -> Condition {
    match c {
        wit::Condition::Always => Condition::Always,
        wit::Condition::HasSubfield(code) => Condition::HasSubfield(code),
        wit::Condition::SubfieldStartsWith(t) => Condition::SubfieldStartsWith {
            code: t.code,
            prefix: t.prefix,
            negate: t.negate,
        },
    }
}

fn condition_out(c: Condition) -> wit::Condition {
    match c {
        Condition::Always => wit::Condition::Always,
        Condition::HasSubfield(code) => wit::Condition::HasSubfield(code),
        Condition::SubfieldStartsWith {
            code,
            prefix,
            negate,
        } => wit::Condition::SubfieldStartsWith(wit::PrefixTest {
            code,
            prefix,
            negate,
        }),
    }
}

fn selector_in(s: wit::Selector) -> Selector {
    Selector {
        tag: s.tag,
        condition: condition_in(s.condition),
    }
}

fn selector_out(s: Selector) -> wit::Selector {
    wit::Selector {
        tag: s.tag,
        condition: condition_out(s.condition),
    }
}

fn outcome_in(o: wit::Outcome) -> Outcome {
    match o {
        wit::Outcome::KeepDefault => Outcome::KeepDefault,
        wit::Outcome::Add => Outcome::Add,
        wit::Outcome::Merge(plan) => Outcome::Merge(MergePlan {
            target: plan.target,
            ops: plan
                .ops
                .into_iter()
                .map(|op| match op {
                    wit::FieldOp::KeepExisting(s) => FieldOp::KeepExisting(selector_in(s)),
                    wit::FieldOp::TakeIncoming(s) => FieldOp::TakeIncoming(selector_in(s)),
                    wit::FieldOp::AddIncoming(s) => FieldOp::AddIncoming(selector_in(s)),
                    wit::FieldOp::Remove(s) => FieldOp::Remove(selector_in(s)),
                })
                .collect(),
        }),
        wit::Outcome::Reject(r) => Outcome::Reject(Rejection {
            code: r.code,
            message: r.message,
        }),
        wit::Outcome::Rerun(s) => Outcome::Rerun(EngineSettings {
            check_005: s.check_005,
            check_brief_level: s.check_brief_level,
            brief_levels: s.brief_levels,
        }),
    }
}

fn outcome_out(o: Outcome) -> wit::Outcome {
    match o {
        Outcome::KeepDefault => wit::Outcome::KeepDefault,
        Outcome::Add => wit::Outcome::Add,
        Outcome::Merge(plan) => wit::Outcome::Merge(wit::MergePlan {
            target: plan.target,
            ops: plan
                .ops
                .into_iter()
                .map(|op| match op {
                    FieldOp::KeepExisting(s) => wit::FieldOp::KeepExisting(selector_out(s)),
                    FieldOp::TakeIncoming(s) => wit::FieldOp::TakeIncoming(selector_out(s)),
                    FieldOp::AddIncoming(s) => wit::FieldOp::AddIncoming(selector_out(s)),
                    FieldOp::Remove(s) => wit::FieldOp::Remove(selector_out(s)),
                })
                .collect(),
        }),
        Outcome::Reject(r) => wit::Outcome::Reject(wit::Rejection {
            code: r.code,
            message: r.message,
        }),
        Outcome::Rerun(s) => wit::Outcome::Rerun(wit::EngineSettings {
            check_005: s.check_005,
            check_brief_level: s.check_brief_level,
            brief_levels: s.brief_levels,
        }),
    }
}

/// Converts the WIT input, runs the policy, converts its answer.
pub fn run<P: crate::MergePolicy>(input: WitInput) -> Result<WitDecision, String> {
    let input = Input {
        institution: input.institution,
        incoming: input.incoming,
        candidates: input
            .candidates
            .into_iter()
            .map(|c| Candidate {
                id: c.id,
                marc: c.marc,
                matched_on: c.matched_on,
                brief_level: c.brief_level,
                originating_version: c.originating_version,
            })
            .collect(),
        config: Config(
            input
                .config
                .into_iter()
                .map(|(k, v)| (k, config_value(v)))
                .collect(),
        ),
        as_of_unix: input.as_of,
        default: DefaultDecision {
            outcome: outcome_in(input.default_decision.outcome),
            reason_code: input.default_decision.reason_code,
            host_message: input.default_decision.host_message,
        },
    };
    let decision = P::decide(&input)?;
    Ok(wit::Decision {
        outcome: outcome_out(decision.outcome),
        trace: decision.trace,
    })
}
