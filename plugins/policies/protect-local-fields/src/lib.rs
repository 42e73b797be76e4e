//! `protect-local-fields`: a merge never loses the institution's local fields.
//!
//! When the engine merges, the existing record's 590 (local note), 69X (local subjects), 9XX
//! (local fields) and every field carrying `$5` (institution-specific) stay, and the incoming
//! record's fields of those kinds are dropped; everything else follows the profile's merge
//! rules. Every other decision stands.
//!
//! Config: `tags` (texts, default `["590", "69X", "9XX"]`): the protected tag patterns.

use bibgate_plugin_sdk::{Decision, FieldOp, Input, MergePlan, MergePolicy, Outcome, Selector};

/// The policy.
pub struct ProtectLocalFields;

/// The protected tags unless configured.
pub const DEFAULT_TAGS: [&str; 3] = ["590", "69X", "9XX"];

impl MergePolicy for ProtectLocalFields {
    fn decide(input: &Input) -> Result<Decision, String> {
        let Some(target) = input.default.merge_target() else {
            return Ok(Decision::keep_default());
        };
        let tags = input.config.texts("tags", &DEFAULT_TAGS);
        let mut ops: Vec<FieldOp> = tags
            .iter()
            .map(|tag| FieldOp::KeepExisting(Selector::tag(tag)))
            .collect();
        ops.push(FieldOp::KeepExisting(Selector::tag("*").with_subfield('5')));
        Ok(
            Decision::new(Outcome::Merge(MergePlan { target, ops })).trace(format!(
                "protect-local-fields: keeping {} and $5 fields",
                tags.join(" ")
            )),
        )
    }
}

bibgate_plugin_sdk::export_policy!(ProtectLocalFields);

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_plugin_sdk::{Config, ConfigValue, DefaultDecision, Rejection};

    fn input(outcome: Outcome, config: Config) -> Input {
        Input {
            institution: "01DEMO_ALPHA".into(),
            incoming: Vec::new(),
            candidates: Vec::new(),
            config,
            as_of_unix: 0,
            default: DefaultDecision {
                outcome,
                reason_code: String::new(),
                host_message: String::new(),
            },
        }
    }

    #[test]
    fn protects_only_merges() {
        let merge = Outcome::Merge(MergePlan {
            target: 2,
            ops: Vec::new(),
        });
        let decision =
            ProtectLocalFields::decide(&input(merge.clone(), Config::default())).unwrap();
        let Outcome::Merge(plan) = decision.outcome else {
            panic!("not a merge")
        };
        assert_eq!(plan.target, 2);
        assert_eq!(plan.ops.len(), 4);
        let custom = Config(vec![(
            "tags".into(),
            ConfigValue::Texts(vec!["599".into()]),
        )]);
        let Outcome::Merge(plan) = ProtectLocalFields::decide(&input(merge, custom))
            .unwrap()
            .outcome
        else {
            panic!("not a merge")
        };
        assert_eq!(plan.ops[0], FieldOp::KeepExisting(Selector::tag("599")));
        for other in [
            Outcome::Add,
            Outcome::Reject(Rejection {
                code: "NOT_ADDED_OLD".into(),
                message: String::new(),
            }),
        ] {
            assert_eq!(
                ProtectLocalFields::decide(&input(other, Config::default())).unwrap(),
                Decision::keep_default()
            );
        }
    }
}
