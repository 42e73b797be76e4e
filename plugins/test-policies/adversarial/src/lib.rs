//! A hostile policy for the host's containment tests. Its `mode` config value says how it
//! misbehaves: `loop` (never returns), `alloc` (allocates without end), `trap` (panics, an
//! `unreachable` trap under `panic = "abort"`), `garbage` (an answer the host must refuse),
//! `error` (returns an error), anything else keeps the default. The `shapes-*` modes answer
//! with every shape of the SDK's types (`shapes-rerun`, `shapes-merge`, `shapes-reject`), for
//! the host's test that pins the SDK's mirror of the WIT types to the host's.

use bibgate_plugin_sdk::{
    Condition, Decision, EngineSettings, FieldOp, Input, MergePlan, MergePolicy, Outcome,
    Rejection, Selector,
};

/// The policy.
pub struct Adversarial;

impl MergePolicy for Adversarial {
    fn decide(input: &Input) -> Result<Decision, String> {
        match input.config.text("mode", "ok") {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(core::hint::black_box(Vec::<u8>::with_capacity(1 << 20)));
                }
            }
            "trap" => panic!("the adversarial policy traps"),
            "garbage" => Ok(Decision::new(Outcome::Merge(MergePlan {
                target: 99,
                ops: vec![FieldOp::KeepExisting(Selector::tag("ABCD"))],
            }))),
            "bad-target" => Ok(Decision::new(Outcome::Merge(MergePlan {
                target: 99,
                ops: Vec::new(),
            }))),
            "error" => Err("the adversarial policy gives up".into()),
            "shapes-rerun" => Ok(Decision::new(Outcome::Rerun(EngineSettings {
                check_005: Some(false),
                check_brief_level: Some(true),
                brief_levels: vec![('M', 10), ('7', 3), (' ', 10)],
            }))
            .trace("every engine setting")),
            "shapes-merge" => Ok(Decision::new(Outcome::Merge(MergePlan {
                target: 0,
                ops: vec![
                    FieldOp::KeepExisting(Selector::tag("9XX")),
                    FieldOp::TakeIncoming(Selector::tag("245").with_subfield('a')),
                    FieldOp::AddIncoming(Selector {
                        tag: "035".into(),
                        condition: Condition::SubfieldStartsWith {
                            code: 'a',
                            prefix: "(OCoLC)".into(),
                            negate: true,
                        },
                    }),
                    FieldOp::Remove(Selector::tag("*")),
                ],
            }))),
            "shapes-reject" => Ok(Decision::new(Outcome::Reject(Rejection {
                code: "NOT_ADDED_PCC".into(),
                message: "Import Failed - held for review".into(),
            }))),
            _ => Ok(Decision::keep_default()),
        }
    }
}

bibgate_plugin_sdk::export_policy!(Adversarial);
