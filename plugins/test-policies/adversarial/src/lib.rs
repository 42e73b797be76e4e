//! A hostile policy for the host's containment tests. Its `mode` config value says how it
//! misbehaves: `loop` (never returns), `alloc` (allocates without end), `trap` (panics, an
//! `unreachable` trap under `panic = "abort"`), `garbage` (an answer the host must refuse),
//! `error` (returns an error), anything else keeps the default.

use bibgate_plugin_sdk::{Decision, FieldOp, Input, MergePlan, MergePolicy, Outcome, Selector};

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
            _ => Ok(Decision::keep_default()),
        }
    }
}

bibgate_plugin_sdk::export_policy!(Adversarial);
