//! OCLC control numbers as match keys, and the record facts the Bibgate decision engine reads.
//!
//! Bibgate decides whether a record exported from OCLC WorldCat is added, merged into an
//! existing record, or rejected, the way Ex Libris Alma's Connexion integration does. This
//! crate supplies the inputs of that decision:
//!
//! - [`oclc`]: canonical OCLC numbers ([`oclc::OclcNumber`], a non-zero `u64`) read from
//!   035 `$a`/`$z`, 001 (+003) and 019 `$a`, each with its provenance (active or cancelled);
//!   [`oclc::oclc_keys`] returns a record's deduplicated keys and warnings about OCLC-looking
//!   values it had to reject.
//! - [`facts`]: the 005 version ([`facts::Version005`], strict parsing with human messages),
//!   Leader/17 and the Alma-style brief level ([`facts::BriefLevelTable`], CARLI by default),
//!   record type (Leader/06) and serial flag (Leader/07).
//!
//! Invariants: everything here is pure. No I/O, no environment, no clock: where "now" matters
//! the caller passes it in as a [`facts::Version005`]. No function panics on any input.
#![deny(missing_docs)]

pub mod facts;
pub mod oclc;

pub use facts::{
    Bad005, BadBriefTable, BriefLevel, BriefLevelTable, Lenient005, Parsed005, RecordType,
    Version005, parse_005,
};
pub use oclc::{
    NotOclc, NotOclcReason, OclcKey, OclcKeys, OclcNumber, OclcProblem, OclcWarning, Provenance,
    oclc_keys, parse_001, parse_019, parse_035,
};
