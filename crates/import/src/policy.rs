//! Per-institution merge policies: the port the import use case calls ([`PolicyRunner`]) and
//! how a policy's answer becomes the final [`Decision`].
//!
//! After the engine decided, [`Importer`](crate::Importer) asks the runner (when it has one)
//! for the sending institution's active policy. The policy sees the engine's default decision
//! and answers with a [`PolicyOutcome`]; this module applies it **on the host**: a merge with
//! field operations goes through `bibgate_engine::merge` (the operations first, then the
//! profile's rules), a rerun decides again with changed profile settings, a rejection carries
//! the policy's own code. The commit path is the same as without a policy.
//!
//! # Invariants
//!
//! - A policy never runs for a record that cannot become MARCXML (nothing could be stored).
//! - A policy cannot merge into a record locked in the editor or linked to the Community
//!   Zone (when the profile skips those), nor name a candidate that does not exist: such an
//!   answer is a failure of the policy.
//! - A failed policy (trap, fuel, deadline, memory, garbage, refused answer) never fails the
//!   import: the institution's [`OnError`] applies, and the trace says so with
//!   [`POLICY_FAILED`] or the result is rejected with [`POLICY_HOLD`].
//! - This crate does not depend on wasmtime; runners implement the trait elsewhere.

use bibgate_engine::{
    Action, Candidate, Condition, Decision, ImportRules, Incoming, MergeRule, MergeRules, Outcome,
    ReasonCode, TagPattern,
};
use bibgate_marc::Record;
use bibgate_matching::BriefLevelTable;

/// The reason code of a record held because its institution's policy failed.
pub const POLICY_HOLD: &str = "POLICY_HOLD";
/// The trace flag of a record decided by the default outcome because its policy failed.
pub const POLICY_FAILED: &str = "POLICY_FAILED";
/// The most candidates a policy is given.
pub const MAX_CANDIDATES: usize = 10;
/// The most trace lines kept from a policy, and their longest length in bytes.
pub const MAX_TRACE_LINES: usize = 32;
/// See [`MAX_TRACE_LINES`].
pub const MAX_TRACE_LINE_BYTES: usize = 200;

/// Runs institutions' active merge policies.
pub trait PolicyRunner: Send + Sync {
    /// True when `institution` has an active policy (cheap: runners cache the pointer).
    fn is_active(&self, institution: &str) -> bool;
    /// Runs the institution's active policy on `input`; `None` when it has none.
    fn decide(&self, institution: &str, input: &PolicyInput) -> Option<PolicyRun>;
}

/// What a policy is given (the runner adds the institution's configuration values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInput {
    /// The sending institution.
    pub institution: String,
    /// The incoming record, ISO 2709 in UTF-8.
    pub incoming: Vec<u8>,
    /// At most [`MAX_CANDIDATES`], in MMS ID order.
    pub candidates: Vec<PolicyCandidate>,
    /// When the record was received, Unix seconds.
    pub as_of_unix: i64,
    /// The engine's own decision.
    pub default: DefaultDecision,
}

/// A candidate as a policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyCandidate {
    /// The MMS ID.
    pub id: String,
    /// Its stored ISO 2709 bytes.
    pub marc: Vec<u8>,
    /// The keys that hit, e.g. `035a 123 -> active`.
    pub matched_on: Vec<String>,
    /// Its stored brief level.
    pub brief_level: u8,
    /// Its originating version (005 of its last import).
    pub originating_version: Option<String>,
}

/// The engine's decision as a policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultDecision {
    /// Add, merge (no operations) or reject.
    pub outcome: PolicyOutcome,
    /// The stable reason code.
    pub reason_code: String,
    /// The message the sender would get.
    pub host_message: String,
}

/// Fields selected by a tag pattern and a condition (the engine's merge-rule language).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The tags.
    pub tags: TagPattern,
    /// The subfield test.
    pub condition: Condition,
}

/// One field operation of a policy's merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOp {
    /// Existing fields stay, incoming ones are dropped.
    KeepExisting(Selector),
    /// Incoming fields replace the existing ones.
    TakeIncoming(Selector),
    /// Both are kept.
    AddIncoming(Selector),
    /// Removed from the merged record.
    Remove(Selector),
}

/// Profile settings a policy changes before the engine decides again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineSettings {
    /// The 005 comparison.
    pub check_005: Option<bool>,
    /// The brief-level comparison.
    pub check_brief_level: Option<bool>,
    /// Leader/17 byte to brief level overrides.
    pub brief_levels: Vec<(u8, u8)>,
}

/// A policy's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// The default stands.
    KeepDefault,
    /// Add as a new record.
    Add,
    /// Merge into candidate `target` with `ops`.
    Merge {
        /// Index into the candidates.
        target: u32,
        /// Operations, before the profile's rules.
        ops: Vec<FieldOp>,
    },
    /// Reject with a stable code.
    Reject {
        /// `A-Z`, `0-9`, `_`, at most 64.
        code: String,
        /// For the sender.
        message: String,
    },
    /// Decide again with changed settings.
    Rerun(EngineSettings),
}

/// A policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyAnswer {
    /// The outcome.
    pub outcome: PolicyOutcome,
    /// Its trace lines.
    pub trace: Vec<String>,
}

/// How a policy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// It ran out of fuel (deterministic: reproduces everywhere).
    OutOfFuel,
    /// It hit the wall-clock deadline (the backstop).
    Deadline,
    /// It wanted more memory than the cap.
    Memory,
    /// It trapped.
    Trap,
    /// It returned something invalid, or refused by the host's invariants.
    Garbage,
    /// It returned an error.
    Error,
    /// It could not be loaded.
    Unavailable,
}

impl FailureKind {
    /// A short name for traces.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out of fuel",
            FailureKind::Deadline => "deadline exceeded",
            FailureKind::Memory => "memory cap exceeded",
            FailureKind::Trap => "trap",
            FailureKind::Garbage => "invalid answer",
            FailureKind::Error => "policy error",
            FailureKind::Unavailable => "not loadable",
        }
    }
}

/// A failed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFailure {
    /// What happened.
    pub kind: FailureKind,
    /// Details.
    pub message: String,
}

/// What an institution wants when its policy fails (stored with its activation):
/// `Default` applies the engine's outcome and flags the record ([`POLICY_FAILED`]), `Hold`
/// rejects it with [`POLICY_HOLD`], for staff to review and send again.
pub use bibgate_store::policy::OnError;

/// One run of an institution's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRun {
    /// `name@revision sha256:<hex>`, stored with the result.
    pub label: String,
    /// The institution's failure setting.
    pub on_error: OnError,
    /// Fuel the run burned.
    pub fuel: u64,
    /// The answer, or why there is none.
    pub result: Result<PolicyAnswer, PolicyFailure>,
}

/// A policy's rejection, which the engine's [`Outcome`] cannot carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyReject {
    /// The stable reason code.
    pub code: String,
    /// The host message.
    pub host_message: String,
}

/// The decision after the policy.
#[derive(Clone, Debug)]
pub(crate) struct Applied {
    pub decision: Decision,
    pub label: Option<String>,
    pub reject: Option<PolicyReject>,
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn clip(line: &str) -> String {
    if line.len() <= MAX_TRACE_LINE_BYTES {
        return line.to_string();
    }
    let mut end = MAX_TRACE_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// The engine's decision as a policy sees it.
pub fn default_decision(decision: &Decision, candidates: &[Candidate]) -> DefaultDecision {
    let outcome = match &decision.outcome {
        Outcome::Add { .. } => PolicyOutcome::Add,
        Outcome::Merge { mms_id, .. } => PolicyOutcome::Merge {
            target: candidates
                .iter()
                .position(|c| &c.mms_id == mms_id)
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(0),
            ops: Vec::new(),
        },
        Outcome::Reject(rejection) => PolicyOutcome::Reject {
            code: rejection.reason().code().to_string(),
            message: rejection.host_message(),
        },
    };
    DefaultDecision {
        outcome,
        reason_code: decision.reason.code().to_string(),
        host_message: decision.host_message(Some("(new)")),
    }
}

fn matched_on(candidate: &Candidate) -> Vec<String> {
    candidate
        .hits
        .iter()
        .map(|hit| {
            let from = match hit.incoming {
                bibgate_matching::Provenance::Active035a => "035a",
                bibgate_matching::Provenance::Active001 => "001",
                bibgate_matching::Provenance::Cancelled035z => "035z",
                bibgate_matching::Provenance::Cancelled019a => "019a",
            };
            let to = if hit.existing_active {
                "active"
            } else {
                "cancelled"
            };
            format!("{from} {} -> {to}", hit.number)
        })
        .collect()
}

/// Everything [`apply`] needs besides the runner.
pub(crate) struct Context<'a> {
    pub institution: &'a str,
    pub rules: &'a ImportRules,
    pub incoming: Incoming<'a>,
    pub candidates: &'a [Candidate],
    /// The stored bytes of each candidate, in the same order.
    pub marcs: &'a [&'a [u8]],
    pub now_unix: i64,
}

fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(2048);
    match bibgate_marc::iso2709::write_record(record, &mut bytes) {
        Ok(()) => bytes,
        Err(_) => Vec::new(),
    }
}

/// Asks the runner and applies the institution's policy to the engine's `default` decision.
pub(crate) fn apply(runner: &dyn PolicyRunner, cx: &Context<'_>, default: Decision) -> Applied {
    let unchanged = |decision| Applied {
        decision,
        label: None,
        reject: None,
    };
    if matches!(default.reason, ReasonCode::ConversionFailed(_))
        || !runner.is_active(cx.institution)
    {
        return unchanged(default);
    }
    let input = PolicyInput {
        institution: cx.institution.to_string(),
        incoming: encode(cx.incoming.record),
        candidates: cx
            .candidates
            .iter()
            .zip(cx.marcs)
            .take(MAX_CANDIDATES)
            .map(|(c, marc)| PolicyCandidate {
                id: c.mms_id.clone(),
                marc: marc.to_vec(),
                matched_on: matched_on(c),
                brief_level: c.brief_level.get(),
                originating_version: c.originating_version.map(|v| v.to_string()),
            })
            .collect(),
        as_of_unix: cx.now_unix,
        default: default_decision(&default, cx.candidates),
    };
    let Some(run) = runner.decide(cx.institution, &input) else {
        return unchanged(default);
    };
    let label = run.label.clone();
    let answer = run.result.and_then(|answer| {
        let trace: Vec<String> = answer
            .trace
            .iter()
            .take(MAX_TRACE_LINES)
            .map(|l| clip(l))
            .collect();
        let fuel = run.fuel;
        resolve(cx, &default, answer.outcome)
            .map(|(decision, reject)| (decision, reject, trace, fuel))
    });
    match answer {
        Ok((mut decision, reject, trace, fuel)) => {
            let mut lines = default.trace.clone();
            lines.push(format!("policy {label} ran ({fuel} fuel)"));
            lines.extend(trace.into_iter().map(|l| format!("policy: {l}")));
            if decision.outcome != default.outcome || reject.is_some() {
                let now = reject
                    .as_ref()
                    .map_or_else(|| decision.reason.code().to_string(), |r| r.code.clone());
                lines.push(format!(
                    "policy changed the decision: {} -> {now}",
                    default.reason.code()
                ));
                if decision.trace != default.trace {
                    lines.extend(decision.trace.iter().map(|l| format!("after policy: {l}")));
                }
            } else {
                lines.push("policy kept the default decision".into());
            }
            decision.trace = lines;
            Applied {
                decision,
                label: Some(label),
                reject,
            }
        }
        Err(failure) => {
            let mut decision = default;
            let what = format!("{}: {}", failure.kind.as_str(), clip(&failure.message));
            match run.on_error {
                OnError::Default => {
                    decision.trace.push(format!(
                        "{POLICY_FAILED}: policy {label} failed ({what}); the default decision applies"
                    ));
                    Applied {
                        decision,
                        label: Some(label),
                        reject: None,
                    }
                }
                OnError::Hold => {
                    decision.trace.push(format!(
                        "{POLICY_HOLD}: policy {label} failed ({what}); the record is held"
                    ));
                    Applied {
                        decision,
                        label: Some(label.clone()),
                        reject: Some(PolicyReject {
                            code: POLICY_HOLD.into(),
                            host_message: format!(
                                "{}{POLICY_HOLD}: the merge policy of {} could not decide ({}); the record is held for review",
                                bibgate_engine::messages::IMPORT_FAILED,
                                cx.institution,
                                failure.kind.as_str()
                            ),
                        }),
                    }
                }
            }
        }
    }
}

fn garbage(message: String) -> PolicyFailure {
    PolicyFailure {
        kind: FailureKind::Garbage,
        message,
    }
}

fn brief_table(base: &BriefLevelTable, overrides: &[(u8, u8)]) -> Result<BriefLevelTable, String> {
    let default = base.level_of(0).get();
    let pairs: Vec<(u8, u8)> = (0..=255u8)
        .map(|code| {
            let level = overrides
                .iter()
                .rev()
                .find(|(c, _)| *c == code)
                .map_or_else(|| base.level_of(code).get(), |(_, level)| *level);
            (code, level)
        })
        .collect();
    BriefLevelTable::from_pairs(&pairs, default).map_err(|e| e.to_string())
}

/// The final decision for a policy's outcome, or why the outcome is refused.
fn resolve(
    cx: &Context<'_>,
    default: &Decision,
    outcome: PolicyOutcome,
) -> Result<(Decision, Option<PolicyReject>), PolicyFailure> {
    let incoming_005 = bibgate_matching::facts::record_005(cx.incoming.record)
        .and_then(Result::ok)
        .map(|p| p.version);
    match outcome {
        PolicyOutcome::KeepDefault => Ok((default.clone(), None)),
        PolicyOutcome::Add => {
            let brief_level = cx.rules.brief_levels.record_level(cx.incoming.record);
            let mut decision = default.clone();
            decision.outcome = Outcome::Add {
                brief_level,
                originating_version: incoming_005,
            };
            decision.reason = ReasonCode::Added;
            decision.trace = vec![format!(
                "added as a new record; brief level {}",
                bibgate_engine::messages::brief_level(brief_level, cx.incoming.record.leader.0[17])
            )];
            Ok((decision, None))
        }
        PolicyOutcome::Reject { code, message } => {
            if !valid_code(&code) {
                return Err(garbage(format!(
                    "rejection code {code:?} is not 1 to 64 of A-Z, 0-9, _"
                )));
            }
            let message = clip(&message.replace(['\n', '\r', '\0'], " "));
            Ok((
                default.clone(),
                Some(PolicyReject {
                    host_message: format!(
                        "{}{code}: {message}",
                        bibgate_engine::messages::IMPORT_FAILED
                    ),
                    code,
                }),
            ))
        }
        PolicyOutcome::Rerun(settings) => {
            let mut rules = cx.rules.clone();
            if let Some(check) = settings.check_005 {
                rules.check_005 = check;
            }
            if let Some(check) = settings.check_brief_level {
                rules.check_brief_level = check;
            }
            if !settings.brief_levels.is_empty() {
                rules.brief_levels = brief_table(&rules.brief_levels, &settings.brief_levels)
                    .map_err(|e| garbage(format!("brief-level overrides: {e}")))?;
            }
            let decision = bibgate_engine::decide(&cx.incoming, cx.candidates, &rules, cx.now_unix);
            Ok((decision, None))
        }
        PolicyOutcome::Merge { target, ops } => {
            let candidate = usize::try_from(target)
                .ok()
                .and_then(|i| cx.candidates.get(i).filter(|_| i < MAX_CANDIDATES))
                .ok_or_else(|| {
                    garbage(format!(
                        "merge target {target} is not one of the {} candidates",
                        cx.candidates.len().min(MAX_CANDIDATES)
                    ))
                })?;
            if candidate
                .lock
                .as_ref()
                .is_some_and(|l| l.is_held(cx.now_unix, cx.rules.lock_timeout_seconds))
            {
                return Err(garbage(format!(
                    "merge into {}, which is locked in the editor",
                    candidate.mms_id
                )));
            }
            if cx.rules.skip_community_zone && candidate.linked_to_community_zone {
                return Err(garbage(format!(
                    "merge into {}, which is linked to the Community Zone",
                    candidate.mms_id
                )));
            }
            let mut rules = Vec::with_capacity(ops.len() + cx.rules.merge.rules.len());
            let mut removes = Vec::new();
            for op in ops {
                let (selector, action) = match op {
                    FieldOp::KeepExisting(s) => (s, Action::KeepExisting),
                    FieldOp::TakeIncoming(s) => (s, Action::TakeIncoming),
                    FieldOp::AddIncoming(s) => (s, Action::KeepBoth),
                    FieldOp::Remove(s) => {
                        removes.push(s);
                        continue;
                    }
                };
                rules.push(MergeRule {
                    tags: selector.tags,
                    condition: selector.condition,
                    action,
                });
            }
            rules.extend(cx.rules.merge.rules.iter().cloned());
            let rules = MergeRules {
                rules,
                default_action: cx.rules.merge.default_action,
            };
            let (mut merged, mut trace) =
                bibgate_engine::merge(&candidate.record, cx.incoming.record, &rules);
            let before = merged.fields.len();
            merged.fields.retain(|field| {
                !removes
                    .iter()
                    .any(|s| s.tags.matches(field.tag()) && s.condition.matches(field))
            });
            if before != merged.fields.len() {
                let removed = before - merged.fields.len();
                trace.push(format!(
                    "merge: {removed} field{} removed by the policy",
                    if removed == 1 { "" } else { "s" }
                ));
            }
            let brief_level = cx.rules.brief_levels.record_level(&merged);
            trace.push(format!(
                "merged into {}; brief level {}",
                candidate.mms_id,
                bibgate_engine::messages::brief_level(brief_level, merged.leader.0[17])
            ));
            let mut decision = default.clone();
            decision.outcome = Outcome::Merge {
                mms_id: candidate.mms_id.clone(),
                merged,
                brief_level,
                originating_version: incoming_005,
            };
            decision.reason = ReasonCode::Merged;
            decision.trace = trace;
            Ok((decision, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_clipping() {
        assert!(valid_code("NOT_ADDED_PCC") && valid_code("X1"));
        assert!(!valid_code("") && !valid_code("lower") && !valid_code(&"A".repeat(65)));
        let long = "é".repeat(300);
        assert!(clip(&long).len() <= MAX_TRACE_LINE_BYTES + 3);
    }

    #[test]
    fn brief_level_overrides_keep_the_rest_of_the_table() {
        let carli = BriefLevelTable::carli();
        let table = brief_table(&carli, &[(b'M', 10)]).unwrap();
        assert_eq!(table.level_of(b'M').get(), 10);
        assert_eq!(table.level_of(b'7').get(), carli.level_of(b'7').get());
        assert_eq!(table.level_of(b'q').get(), carli.level_of(b'q').get());
        assert!(brief_table(&carli, &[(b'M', 11)]).is_err());
    }
}

/// The engine's decision and a policy's effect on it, outside an import (fixtures, `policy
/// run`): the final decision, the policy label, and the policy's rejection if it rejected.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The final decision (the default when the policy rejected; see `reject`).
    pub decision: Decision,
    /// The policy that ran.
    pub label: Option<String>,
    /// The policy's rejection.
    pub reject: Option<PolicyReject>,
}

impl Decided {
    /// The final reason code.
    pub fn reason_code(&self) -> String {
        self.reject.as_ref().map_or_else(
            || self.decision.reason.code().to_string(),
            |r| r.code.clone(),
        )
    }

    /// The final host message (`(new)` for an add's MMS ID).
    pub fn host_message(&self) -> String {
        self.reject.as_ref().map_or_else(
            || self.decision.host_message(Some("(new)")),
            |r| r.host_message.clone(),
        )
    }
}

/// Decides like an import does, without a store: the engine on `candidates` (whose stored
/// bytes are `marcs`), then `runner`'s policy for `institution`.
#[allow(clippy::too_many_arguments)]
pub fn decide_with_policy(
    runner: Option<&dyn PolicyRunner>,
    institution: &str,
    rules: &ImportRules,
    incoming: Incoming<'_>,
    candidates: &[Candidate],
    marcs: &[&[u8]],
    now_unix: i64,
) -> Decided {
    let default = bibgate_engine::decide(&incoming, candidates, rules, now_unix);
    let Some(runner) = runner else {
        return Decided {
            decision: default,
            label: None,
            reject: None,
        };
    };
    let cx = Context {
        institution,
        rules,
        incoming,
        candidates,
        marcs,
        now_unix,
    };
    let applied = apply(runner, &cx, default);
    Decided {
        decision: applied.decision,
        label: applied.label,
        reject: applied.reject,
    }
}
