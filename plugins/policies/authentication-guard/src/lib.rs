//! `authentication-guard`: an authenticated record (042, e.g. PCC) is not overlaid by an
//! unauthenticated one.
//!
//! When the engine would merge into a record whose 042 `$a` holds one of the protected
//! authentication codes, and the incoming record carries none of them, the policy either
//! rejects the record (`NOT_ADDED_AUTHENTICATED`) or merges keeping the existing
//! authenticated fields, as the institution configures. Every other decision stands.
//!
//! Config:
//! - `codes` (texts, default `["pcc"]`): 042 `$a` codes that protect a record (ASCII case
//!   ignored).
//! - `action` (text, `reject` or `keep-fields`, default `reject`).
//! - `keep` (texts, default `["042", "1XX", "6XX"]`): the tag patterns kept from the
//!   existing record under `keep-fields`.

use bibgate_plugin_sdk::marc::Marc;
use bibgate_plugin_sdk::{
    Decision, FieldOp, Input, MergePlan, MergePolicy, Outcome, Rejection, Selector,
};

/// The policy.
pub struct AuthenticationGuard;

fn authenticated(record: &Marc<'_>, codes: &[String]) -> bool {
    record.fields("042").any(|field| {
        field.subfield_values(b'a').any(|value| {
            codes
                .iter()
                .any(|code| value.trim().eq_ignore_ascii_case(code))
        })
    })
}

impl MergePolicy for AuthenticationGuard {
    fn decide(input: &Input) -> Result<Decision, String> {
        let Some(target) = input.default.merge_target() else {
            return Ok(Decision::keep_default());
        };
        let existing = input
            .candidate(target)
            .ok_or("the default merge names no candidate")?
            .record()
            .map_err(|e| e.to_string())?;
        let incoming = input.incoming().map_err(|e| e.to_string())?;
        let codes = input.config.texts("codes", &["pcc"]);
        if !authenticated(&existing, &codes) || authenticated(&incoming, &codes) {
            return Ok(Decision::keep_default());
        }
        let decision = match input.config.text("action", "reject") {
            "keep-fields" => {
                let keep = input.config.texts("keep", &["042", "1XX", "6XX"]);
                Decision::new(Outcome::Merge(MergePlan {
                    target,
                    ops: keep
                        .iter()
                        .map(|tag| FieldOp::KeepExisting(Selector::tag(tag)))
                        .collect(),
                }))
                .trace(format!(
                    "authentication-guard: the match is authenticated ({}); keeping its {}",
                    codes.join(" "),
                    keep.join(" ")
                ))
            }
            "reject" => Decision::new(Outcome::Reject(Rejection {
                code: "NOT_ADDED_AUTHENTICATED".into(),
                message: format!(
                    "the matching record is authenticated ({}) and the incoming record is not",
                    codes.join(" ")
                ),
            }))
            .trace("authentication-guard: an unauthenticated record may not overlay an authenticated one"),
            other => return Err(format!("config action {other:?} is not reject or keep-fields")),
        };
        Ok(decision)
    }
}

bibgate_plugin_sdk::export_policy!(AuthenticationGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_plugin_sdk::marc::RecordBuilder;
    use bibgate_plugin_sdk::{Candidate, Config, ConfigValue, DefaultDecision};

    fn input(existing_042: Option<&str>, incoming_042: Option<&str>, config: Config) -> Input {
        let record = |code: Option<&str>| {
            let mut builder = RecordBuilder::new();
            if let Some(code) = code {
                builder = builder.data("042", &[(b'a', code)]);
            }
            builder.data("245", &[(b'a', "T")]).build()
        };
        Input {
            institution: "01DEMO_ALPHA".into(),
            incoming: record(incoming_042),
            candidates: vec![Candidate {
                id: "991".into(),
                marc: record(existing_042),
                matched_on: Vec::new(),
                brief_level: 10,
                originating_version: None,
            }],
            config,
            as_of_unix: 0,
            default: DefaultDecision {
                outcome: Outcome::Merge(MergePlan {
                    target: 0,
                    ops: Vec::new(),
                }),
                reason_code: "MERGED".into(),
                host_message: String::new(),
            },
        }
    }

    #[test]
    fn guards_only_authenticated_matches() {
        let reject =
            AuthenticationGuard::decide(&input(Some("pcc"), None, Config::default())).unwrap();
        assert!(
            matches!(reject.outcome, Outcome::Reject(ref r) if r.code == "NOT_ADDED_AUTHENTICATED")
        );
        for (existing, incoming) in [
            (None, None),
            (Some("pcc"), Some("PCC")),
            (Some("lcd"), None),
        ] {
            assert_eq!(
                AuthenticationGuard::decide(&input(existing, incoming, Config::default())).unwrap(),
                Decision::keep_default()
            );
        }
        let keep = Config(vec![(
            "action".into(),
            ConfigValue::Text("keep-fields".into()),
        )]);
        let merge = AuthenticationGuard::decide(&input(Some("pcc"), None, keep)).unwrap();
        assert!(matches!(merge.outcome, Outcome::Merge(ref p) if p.ops.len() == 3));
        let bad = Config(vec![("action".into(), ConfigValue::Text("shrug".into()))]);
        assert!(AuthenticationGuard::decide(&input(Some("pcc"), None, bad)).is_err());
    }
}
