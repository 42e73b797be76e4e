//! `no-005-check`: turns off the NOT_ADDED_OLD comparison for one institution.
//!
//! When the engine rejects a record only because its 005 is older than the version last
//! imported into the match, the engine decides again with the 005 check off; every other
//! decision stands. Config: none.

use bibgate_plugin_sdk::{Decision, EngineSettings, Input, MergePolicy, Outcome};

/// The policy.
pub struct No005Check;

impl MergePolicy for No005Check {
    fn decide(input: &Input) -> Result<Decision, String> {
        if input.default.reason_code != "NOT_ADDED_OLD" {
            return Ok(Decision::keep_default());
        }
        Ok(Decision::new(Outcome::Rerun(EngineSettings {
            check_005: Some(false),
            ..EngineSettings::default()
        }))
        .trace("no-005-check: the 005 comparison is off for this institution; deciding again"))
    }
}

bibgate_plugin_sdk::export_policy!(No005Check);

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_plugin_sdk::{Config, DefaultDecision, Rejection};

    fn input(reason: &str) -> Input {
        Input {
            institution: "01DEMO_ALPHA".into(),
            incoming: Vec::new(),
            candidates: Vec::new(),
            config: Config::default(),
            as_of_unix: 0,
            default: DefaultDecision {
                outcome: Outcome::Reject(Rejection {
                    code: reason.into(),
                    message: String::new(),
                }),
                reason_code: reason.into(),
                host_message: String::new(),
            },
        }
    }

    #[test]
    fn reruns_only_not_added_old() {
        let rerun = No005Check::decide(&input("NOT_ADDED_OLD")).unwrap();
        assert!(matches!(
            rerun.outcome,
            Outcome::Rerun(EngineSettings {
                check_005: Some(false),
                ..
            })
        ));
        for other in ["NOT_ADDED_BRIEF", "MULTI_MATCH", "ADDED", "MERGED"] {
            assert_eq!(
                No005Check::decide(&input(other)).unwrap(),
                Decision::keep_default()
            );
        }
    }
}
