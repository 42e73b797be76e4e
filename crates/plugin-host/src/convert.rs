//! Between the import crate's policy types and the generated WIT types.

use bibgate_engine::{Condition, TagPattern};
use bibgate_import::policy::{
    EngineSettings, FieldOp, PolicyAnswer, PolicyInput, PolicyOutcome, Selector,
};
use bibgate_store::policy::ConfigValue;

use crate::bindings::types as wit;

fn outcome_out(outcome: &PolicyOutcome) -> wit::Outcome {
    match outcome {
        PolicyOutcome::KeepDefault => wit::Outcome::KeepDefault,
        PolicyOutcome::Add => wit::Outcome::Add,
        PolicyOutcome::Merge { target, .. } => wit::Outcome::Merge(wit::MergePlan {
            target: *target,
            ops: Vec::new(),
        }),
        PolicyOutcome::Reject { code, message } => wit::Outcome::Reject(wit::Rejection {
            code: code.clone(),
            message: message.clone(),
        }),
        PolicyOutcome::Rerun(_) => wit::Outcome::KeepDefault,
    }
}

/// The WIT input for `input` with the institution's `config`.
pub(crate) fn input(input: &PolicyInput, config: &[(String, ConfigValue)]) -> wit::MergeInput {
    wit::MergeInput {
        institution: input.institution.clone(),
        incoming: input.incoming.clone(),
        candidates: input
            .candidates
            .iter()
            .map(|c| wit::Candidate {
                id: c.id.clone(),
                marc: c.marc.clone(),
                matched_on: c.matched_on.clone(),
                brief_level: c.brief_level,
                originating_version: c.originating_version.clone(),
            })
            .collect(),
        config: config
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    ConfigValue::Flag(v) => wit::ConfigValue::Flag(*v),
                    ConfigValue::Int(v) => wit::ConfigValue::Int(*v),
                    ConfigValue::Text(v) => wit::ConfigValue::Text(v.clone()),
                    ConfigValue::Texts(v) => wit::ConfigValue::Texts(v.clone()),
                };
                (name.clone(), value)
            })
            .collect(),
        as_of: input.as_of_unix,
        default_decision: wit::DefaultDecision {
            outcome: outcome_out(&input.default.outcome),
            reason_code: input.default.reason_code.clone(),
            host_message: input.default.host_message.clone(),
        },
    }
}

fn code(c: char) -> Result<u8, String> {
    u8::try_from(c)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| format!("subfield code {c:?} is not ASCII"))
}

fn selector(s: wit::Selector) -> Result<Selector, String> {
    let tags =
        TagPattern::new(&s.tag).ok_or_else(|| format!("tag pattern {:?} is not valid", s.tag))?;
    let condition = match s.condition {
        wit::Condition::Always => Condition::Always,
        wit::Condition::HasSubfield(c) => Condition::HasSubfield(code(c)?),
        wit::Condition::SubfieldStartsWith(t) => Condition::SubfieldStartsWith {
            code: code(t.code)?,
            prefix: t.prefix,
            negate: t.negate,
        },
    };
    Ok(Selector { tags, condition })
}

/// The guest's decision, checked; `Err` says why it is garbage.
pub(crate) fn answer(decision: wit::Decision) -> Result<PolicyAnswer, String> {
    let outcome = match decision.outcome {
        wit::Outcome::KeepDefault => PolicyOutcome::KeepDefault,
        wit::Outcome::Add => PolicyOutcome::Add,
        wit::Outcome::Merge(plan) => {
            if plan.ops.len() > 256 {
                return Err(format!("{} merge operations (at most 256)", plan.ops.len()));
            }
            let ops = plan
                .ops
                .into_iter()
                .map(|op| {
                    Ok(match op {
                        wit::FieldOp::KeepExisting(s) => FieldOp::KeepExisting(selector(s)?),
                        wit::FieldOp::TakeIncoming(s) => FieldOp::TakeIncoming(selector(s)?),
                        wit::FieldOp::AddIncoming(s) => FieldOp::AddIncoming(selector(s)?),
                        wit::FieldOp::Remove(s) => FieldOp::Remove(selector(s)?),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            PolicyOutcome::Merge {
                target: plan.target,
                ops,
            }
        }
        wit::Outcome::Reject(r) => PolicyOutcome::Reject {
            code: r.code,
            message: r.message,
        },
        wit::Outcome::Rerun(s) => PolicyOutcome::Rerun(EngineSettings {
            check_005: s.check_005,
            check_brief_level: s.check_brief_level,
            brief_levels: s
                .brief_levels
                .into_iter()
                .map(|(c, level)| Ok((code(c)?, level)))
                .collect::<Result<Vec<_>, String>>()?,
        }),
    };
    Ok(PolicyAnswer {
        outcome,
        trace: decision.trace,
    })
}
