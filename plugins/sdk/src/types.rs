//! The policy's input and output, as plain Rust (the WIT types are converted at the
//! boundary, so policies and their native tests never see generated code).

use crate::marc::{Marc, MarcError};

/// One configuration value of the institution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    /// A switch.
    Flag(bool),
    /// A number.
    Int(i64),
    /// A text.
    Text(String),
    /// A list of texts (e.g. tag patterns).
    Texts(Vec<String>),
}

/// The institution's configuration values, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config(pub Vec<(String, ConfigValue)>);

impl Config {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A flag, or `default` when absent or of another type.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.get(name) {
            Some(ConfigValue::Flag(value)) => *value,
            _ => default,
        }
    }

    /// A number, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.get(name) {
            Some(ConfigValue::Int(value)) => *value,
            _ => default,
        }
    }

    /// A text, or `default`.
    pub fn text<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        match self.get(name) {
            Some(ConfigValue::Text(value)) => value,
            _ => default,
        }
    }

    /// A list of texts (a single text counts as a list of one), or `default`.
    pub fn texts(&self, name: &str, default: &[&str]) -> Vec<String> {
        match self.get(name) {
            Some(ConfigValue::Texts(values)) => values.clone(),
            Some(ConfigValue::Text(value)) => vec![value.clone()],
            _ => default.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// An existing record that shares an OCLC number with the incoming one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The host's record id (MMS ID).
    pub id: String,
    /// Its ISO 2709 bytes.
    pub marc: Vec<u8>,
    /// The keys that matched.
    pub matched_on: Vec<String>,
    /// Its stored brief level (1 to 10).
    pub brief_level: u8,
    /// The 005 received at its last import.
    pub originating_version: Option<String>,
}

impl Candidate {
    /// A lazy view of its record.
    pub fn record(&self) -> Result<Marc<'_>, MarcError> {
        Marc::new(&self.marc)
    }
}

/// A test on one field's subfields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Every field.
    Always,
    /// The field has this subfield.
    HasSubfield(char),
    /// Some subfield `code` starts with `prefix` (`negate`: has it, and none does).
    SubfieldStartsWith {
        /// The code.
        code: char,
        /// The prefix (ASCII case ignored).
        prefix: String,
        /// Reverse the test.
        negate: bool,
    },
}

/// Fields selected by a tag pattern and a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// `245`, `9XX`, `*`.
    pub tag: String,
    /// The subfield test.
    pub condition: Condition,
}

impl Selector {
    /// Every field whose tag matches `pattern`.
    pub fn tag(pattern: &str) -> Selector {
        Selector {
            tag: pattern.to_string(),
            condition: Condition::Always,
        }
    }

    /// Only fields that have subfield `code`.
    pub fn with_subfield(mut self, code: char) -> Selector {
        self.condition = Condition::HasSubfield(code);
        self
    }
}

/// One field operation of a merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOp {
    /// The existing fields stay; the incoming ones are dropped.
    KeepExisting(Selector),
    /// The incoming fields replace the existing ones.
    TakeIncoming(Selector),
    /// Both sides' fields are kept.
    AddIncoming(Selector),
    /// Removed from the merged record.
    Remove(Selector),
}

/// Merge into candidate `target` with `ops` (first match wins, then the profile's rules).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergePlan {
    /// Index into [`Input::candidates`].
    pub target: u32,
    /// The operations.
    pub ops: Vec<FieldOp>,
}

/// A rejection with a stable code (`A-Z`, `0-9`, `_`) and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// E.g. `NOT_ADDED_PCC`.
    pub code: String,
    /// For the sender.
    pub message: String,
}

/// Profile settings to change before the engine decides again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineSettings {
    /// The 005 comparison switch.
    pub check_005: Option<bool>,
    /// The brief-level comparison switch.
    pub check_brief_level: Option<bool>,
    /// Leader/17 code to brief level (1 to 10) overrides.
    pub brief_levels: Vec<(char, u8)>,
}

/// What to do with the incoming record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The engine's default decision stands.
    KeepDefault,
    /// Add as a new record.
    Add,
    /// Merge into a candidate.
    Merge(MergePlan),
    /// Store nothing.
    Reject(Rejection),
    /// Decide again with changed engine settings.
    Rerun(EngineSettings),
}

/// The engine's own decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultDecision {
    /// As an outcome (a merge has no operations).
    pub outcome: Outcome,
    /// E.g. `NOT_ADDED_OLD`.
    pub reason_code: String,
    /// What the sender would get.
    pub host_message: String,
}

impl DefaultDecision {
    /// The merge target, when the default is a merge.
    pub fn merge_target(&self) -> Option<u32> {
        match &self.outcome {
            Outcome::Merge(plan) => Some(plan.target),
            _ => None,
        }
    }
}

/// Everything a policy is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The sending institution's code.
    pub institution: String,
    /// The incoming record's ISO 2709 bytes.
    pub incoming: Vec<u8>,
    /// The candidates (at most 10).
    pub candidates: Vec<Candidate>,
    /// The institution's configuration.
    pub config: Config,
    /// When the record was received, Unix seconds.
    pub as_of_unix: i64,
    /// The engine's own decision.
    pub default: DefaultDecision,
}

impl Input {
    /// A lazy view of the incoming record.
    pub fn incoming(&self) -> Result<Marc<'_>, MarcError> {
        Marc::new(&self.incoming)
    }

    /// The candidate at `index`.
    pub fn candidate(&self, index: u32) -> Option<&Candidate> {
        self.candidates.get(usize::try_from(index).ok()?)
    }
}

/// The policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// Short lines for the import trace.
    pub trace: Vec<String>,
}

impl Decision {
    /// Keep the engine's decision.
    pub fn keep_default() -> Decision {
        Decision::new(Outcome::KeepDefault)
    }

    /// A decision with no trace yet.
    pub fn new(outcome: Outcome) -> Decision {
        Decision {
            outcome,
            trace: Vec::new(),
        }
    }

    /// Adds a trace line.
    pub fn trace(mut self, line: impl Into<String>) -> Decision {
        self.trace.push(line.into());
        self
    }
}
