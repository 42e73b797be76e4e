//! The Bibgate decision engine: add, merge or reject one record exported from OCLC Connexion,
//! the way Ex Libris Alma's Connexion integration does, and the field-level merge.
//!
//! The caller (the import use case) parses the incoming record, checks it, looks its OCLC
//! numbers up in the target zone's index, and hands everything to [`decide`] together with the
//! profile's [`ImportRules`] and the current time. The engine answers with a [`Decision`]: the
//! [`Outcome`] (add, merge with the merged record, or reject), a stable [`ReasonCode`], a trace
//! of one human-readable line per step, and the Alma host message for Connexion
//! ([`Decision::host_message`]).
//!
//! # Main types
//!
//! - Inputs: [`Incoming`] (record + MARCXML verdict), [`Candidate`] (an existing record that
//!   shares a key, with its stored brief level, originating version, [`EditorLock`], Community
//!   Zone link and [`Hit`]s), [`ImportRules`] (brief-level table, the two "do not override" switches,
//!   lock timeout, Community Zone skip, [`MatchMethod`] for serials and non-serials,
//!   [`merge::MergeRules`]).
//! - Output: [`Decision`], [`Outcome`], [`Rejection`], [`ReasonCode`].
//! - [`mod@merge`]: [`merge::merge`] and the rule model with its text form
//!   ([`merge::MergeRules::parse`], [`merge::MergeRules::to_spec`]).
//! - [`messages`]: the host message texts.
//!
//! # Order of the checks
//!
//! [`decide`] stops at the first check that fails:
//!
//! 1. **MARCXML convertibility** of the incoming record (its `Verdict`) →
//!    `MARCXML_CONVERSION_FAILED`. First, because nothing can be stored or merged from a
//!    record that cannot become MARCXML, whatever it would match.
//! 2. **Keys**: the incoming OCLC numbers, active (035 `$a`, 001) and cancelled (035 `$z`,
//!    019 `$a`: 019 counts as cancelled, as after CARLI's "Copy 019a to 035z" normalization).
//!    The match method is chosen by Leader/07 (`s` = serial) and
//!    [`MatchMethod::UniqueOclcActiveOnly`] drops the cancelled ones. No key → `ADDED`.
//! 3. **Candidates**: deduplicated by MMS ID (one record hit by its `$a` and its `$z` counts
//!    once); under the active-only method, candidates hit only through cancelled numbers are
//!    dropped. None → `ADDED`; two or more → `MULTI_MATCH`.
//! 4. **The single match**, in this order:
//!    1. Community Zone link (when [`ImportRules::skip_community_zone`]) → `CZ_LINKED`: Alma's
//!       Connexion profile skips CZ-linked records outright, so nothing else about them matters.
//!    2. Editor lock still held (user still in the editor, or left less than
//!       [`ImportRules::lock_timeout_seconds`] ago; an expired lock is free) → `NOT_ADDED_LOCKED`.
//!    3. Brief level (when [`ImportRules::check_brief_level`]): the match's stored level is higher
//!       than the incoming record's level (Leader/17 through [`ImportRules::brief_levels`]) →
//!       `NOT_ADDED_BRIEF`; equal levels do not block.
//!    4. 005 (when [`ImportRules::check_005`]): the incoming 005 is older than the match's
//!       originating version (the 005 received at its last import, never its local 005) →
//!       `NOT_ADDED_OLD`. Missing on either side or a malformed incoming 005: cannot compare,
//!       allowed, and the trace says so; identical: allowed; an incoming 005 more than a day in
//!       the future: allowed with a trace warning.
//!
//!    Otherwise → `MERGED`, by [`ImportRules::merge`].
//!
//!    Lock, brief, old is the order of Alma's reasons in CARLI's "OCLC Gateway Export Errors"
//!    table; Alma documents no order, so this is our reading of that table. It also runs from
//!    the least to the most "content" dependent check: a locked record is off limits whatever
//!    the incoming record holds.
//!
//! # Invariants
//!
//! - Pure: no I/O, no environment, no clock (the caller passes `now_unix`), no randomness; the
//!   same inputs give the same decision and trace.
//! - Total: never panics on any input; no `unwrap`/`expect` in library code.
//! - Must not depend on tokio, any AWS SDK or wasmtime; depends only on `bibgate-marc`,
//!   `bibgate-matching` and `thiserror`.
//! - Logon and profile errors are not produced here; the gateway answers those.
//!
//! ```
//! use bibgate_engine::{decide, Incoming, Outcome, ImportRules, ReasonCode};
//! use bibgate_marc::{check::check_record, Record};
//!
//! let mut record = Record::default();
//! record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)12345")]);
//! record.push_data("245", b'1', b'0', &[(b'a', "A title.")]);
//! let verdict = check_record(&record);
//! let incoming = Incoming { record: &record, verdict: &verdict };
//! let decision = decide(&incoming, &[], &ImportRules::default(), 1_700_000_000);
//! assert!(matches!(decision.outcome, Outcome::Add { .. }));
//! assert_eq!(decision.reason, ReasonCode::Added);
//! assert_eq!(
//!     decision.host_message(Some("991234")),
//!     "The record has been processed successfully. MMS ID: 991234"
//! );
//! ```
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod decide;
mod error;
pub mod merge;
pub mod messages;

pub use decide::{
    Candidate, Decision, EditorLock, FUTURE_005_TOLERANCE_SECONDS, Hit, ImportRules, Incoming,
    MatchMethod, Outcome, ReasonCode, Rejection, decide,
};
pub use error::BadRules;
pub use merge::{Action, Condition, MergeRule, MergeRules, TagPattern, merge};
