//! `elvl-m-is-full`: OCLC encoding level M (batch-loaded) counts as full for the brief-level
//! check.
//!
//! When the engine rejects a record as NOT_ADDED_BRIEF and its Leader/17 is `M`, the engine
//! decides again with `M` at the full level (so the 005 check and every other check still
//! run, and the merged record's brief level is computed the same way). Every other decision
//! stands.
//!
//! Config: `level` (int, default 10): the brief level `M` counts as.

use bibgate_plugin_sdk::{Decision, EngineSettings, Input, MergePolicy, Outcome};

/// The policy.
pub struct ElvlMIsFull;

impl MergePolicy for ElvlMIsFull {
    fn decide(input: &Input) -> Result<Decision, String> {
        if input.default.reason_code != "NOT_ADDED_BRIEF" {
            return Ok(Decision::keep_default());
        }
        let incoming = input.incoming().map_err(|e| e.to_string())?;
        if incoming.encoding_level() != b'M' {
            return Ok(Decision::keep_default());
        }
        let level = u8::try_from(input.config.int("level", 10).clamp(1, 10)).unwrap_or(10);
        Ok(Decision::new(Outcome::Rerun(EngineSettings {
            brief_levels: vec![('M', level)],
            ..EngineSettings::default()
        }))
        .trace(format!(
            "elvl-m-is-full: encoding level M counts as brief level {level}"
        )))
    }
}

bibgate_plugin_sdk::export_policy!(ElvlMIsFull);

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_plugin_sdk::marc::RecordBuilder;
    use bibgate_plugin_sdk::{Config, DefaultDecision, Rejection};

    fn input(reason: &str, elvl: u8) -> Input {
        Input {
            institution: "01DEMO_ALPHA".into(),
            incoming: RecordBuilder::new()
                .encoding_level(elvl)
                .data("245", &[(b'a', "T")])
                .build(),
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
    fn reruns_only_brief_rejections_of_level_m() {
        let rerun = ElvlMIsFull::decide(&input("NOT_ADDED_BRIEF", b'M')).unwrap();
        assert!(
            matches!(rerun.outcome, Outcome::Rerun(ref s) if s.brief_levels == vec![('M', 10)])
        );
        assert_eq!(
            ElvlMIsFull::decide(&input("NOT_ADDED_BRIEF", b'7')).unwrap(),
            Decision::keep_default()
        );
        assert_eq!(
            ElvlMIsFull::decide(&input("NOT_ADDED_OLD", b'M')).unwrap(),
            Decision::keep_default()
        );
    }
}
