//! The crate's error: a merge-rule specification that cannot be read.

/// Why a merge-rule specification (see [`crate::merge::MergeRules::parse`]) could not be read.
///
/// Every variant quotes the offending item as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadRules {
    /// The specification has no items.
    #[error("the merge rules are empty; write at least one rule or \"default take\"")]
    Empty,
    /// An item has no action word after the tag pattern.
    #[error("{item:?} is not PATTERN[CONDITION] ACTION, e.g. \"9XX keep\"")]
    MissingAction {
        /// The offending item.
        item: String,
    },
    /// The action word is not `keep`, `take` or `both`.
    #[error("{item:?} has the unknown action {action:?}; expected keep, take or both")]
    Action {
        /// The offending item.
        item: String,
        /// The word found.
        action: String,
    },
    /// The tag pattern is not `*` or three characters (ASCII letters or digits, `X` for any).
    #[error(
        "{item:?} has the tag pattern {pattern:?}; expected * or three letters or digits, X for any"
    )]
    Pattern {
        /// The offending item.
        item: String,
        /// The pattern as written.
        pattern: String,
    },
    /// The condition in brackets cannot be read.
    #[error(
        "{item:?} has a condition that cannot be read; expected [c], [c^PREFIX] or [c!^PREFIX] with c a subfield code"
    )]
    Condition {
        /// The offending item.
        item: String,
    },
    /// A backslash escape in a prefix is not `\\`, `\;`, `\[`, `\]` or `\u{HEX}`.
    #[error("{item:?} has an unknown escape; use \\\\, \\;, \\[, \\] or \\u{{HEX}}")]
    Escape {
        /// The offending item.
        item: String,
    },
    /// `default` is given more than once.
    #[error("the default action is given twice ({item:?})")]
    DuplicateDefault {
        /// The second `default` item.
        item: String,
    },
}
