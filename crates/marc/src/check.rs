//! The MARCXML convertibility check: can this record become MARCXML, and if not, why.
//!
//! Alma answers a Connexion export that it cannot convert with "Failed to convert marc
//! record to marc xml". This check finds every reason up front, each with a stable code and
//! a message that tells a cataloguer which field and byte, and what to do.

use std::fmt;

use crate::decode::{DecodeProblemKind, Decoded, Encoding};
use crate::error::ErrorKind;
use crate::marcxml::{self, XmlWriteError};
use crate::record::{Field, Record};

/// The largest field ISO 2709 can describe, in bytes, terminator included.
pub const MAX_FIELD_BYTES: usize = 9_999;
/// The largest record ISO 2709 can describe, in bytes.
pub const MAX_RECORD_BYTES: usize = 99_999;

/// Stable reason codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A field is over 9,999 bytes once in UTF-8.
    FieldTooLong,
    /// The record is over 99,999 bytes once in UTF-8.
    RecordTooLong,
    /// Leader/09 says UTF-8 but the bytes are not UTF-8.
    InvalidUtf8,
    /// Leader/09 says UTF-8 but the record holds MARC-8 escape sequences.
    Marc8EscapeInUtf8,
    /// Leader/09 says MARC-8 but the bytes are not valid MARC-8.
    InvalidMarc8,
    /// A character XML 1.0 forbids (after decoding).
    XmlForbiddenCharacter,
    /// An indicator that cannot be written as MARCXML.
    BadIndicator,
    /// A subfield code that cannot be written as MARCXML, or text outside any subfield.
    BadSubfieldCode,
    /// The ISO 2709 structure is damaged (lengths, directory, terminators).
    StructureDamaged,
    /// Leader/09 contradicts the bytes (a warning when the text could still be decoded).
    Leader09Mismatch,
}

impl Reason {
    /// The stable code, e.g. `FIELD_TOO_LONG`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::FieldTooLong => "FIELD_TOO_LONG",
            Reason::RecordTooLong => "RECORD_TOO_LONG",
            Reason::InvalidUtf8 => "INVALID_UTF8",
            Reason::Marc8EscapeInUtf8 => "MARC8_ESCAPE_IN_UTF8",
            Reason::InvalidMarc8 => "INVALID_MARC8",
            Reason::XmlForbiddenCharacter => "XML_FORBIDDEN_CHARACTER",
            Reason::BadIndicator => "BAD_INDICATOR",
            Reason::BadSubfieldCode => "BAD_SUBFIELD_CODE",
            Reason::StructureDamaged => "STRUCTURE_DAMAGED",
            Reason::Leader09Mismatch => "LEADER09_MISMATCH",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Whether a finding stops conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The record cannot be converted.
    Error,
    /// The record converts, but something is off.
    Warning,
}

/// One reason, with a message for the cataloguer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The stable code.
    pub reason: Reason,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, where, and what to do.
    pub message: String,
}

/// All findings for one record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Errors first, then warnings, each in record order.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// True when no finding is an error.
    pub fn is_convertible(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.severity == Severity::Warning)
    }

    /// The first error, if any.
    pub fn first_error(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.severity == Severity::Error)
    }

    fn error(&mut self, reason: Reason, message: String) {
        self.findings.push(Finding {
            reason,
            severity: Severity::Error,
            message,
        });
    }

    fn warning(&mut self, reason: Reason, message: String) {
        self.findings.push(Finding {
            reason,
            severity: Severity::Warning,
            message,
        });
    }
}

/// Size of a field in ISO 2709 once written in UTF-8, terminator included.
pub fn field_bytes(field: &Field) -> usize {
    match field {
        Field::Control { value, .. } => value.len() + 1,
        Field::Data { subfields, .. } => {
            2 + subfields.iter().map(|s| 2 + s.value.len()).sum::<usize>() + 1
        }
    }
}

/// Size of the record in ISO 2709 once written in UTF-8.
pub fn record_bytes(record: &Record) -> usize {
    24 + 12 * record.fields.len() + 1 + record.fields.iter().map(field_bytes).sum::<usize>() + 1
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Checks a decoded record; `structure` holds the repairs the lenient ISO 2709 reader made
/// (empty for MARCXML input).
pub fn check(decoded: &Decoded, structure: &[ErrorKind]) -> Verdict {
    let mut verdict = check_record(&decoded.record);
    for problem in structure {
        if matches!(problem, ErrorKind::Filler { .. }) {
            continue;
        }
        verdict.error(
            Reason::StructureDamaged,
            format!("{problem}. Export the record again from Connexion; if it fails again, report the OCLC number"),
        );
    }
    for problem in &decoded.problems {
        let (reason, hint) = match &problem.kind {
            DecodeProblemKind::InvalidUtf8 { .. } => (
                Reason::InvalidUtf8,
                "In Connexion set Tools > Options > Export > Record Characteristics to MARC 21 with UTF-8 Unicode and export again",
            ),
            DecodeProblemKind::EscapeInUtf8 { .. } => (
                Reason::Marc8EscapeInUtf8,
                "The record mixes MARC-8 and UTF-8; export it again as MARC 21 with UTF-8 Unicode",
            ),
            DecodeProblemKind::Marc8(_) => (
                Reason::InvalidMarc8,
                "Correct the character in Connexion, or export as MARC 21 with UTF-8 Unicode",
            ),
        };
        verdict.error(reason, format!("{problem}. {hint}"));
    }
    if decoded.leader_mismatch {
        let declared = if decoded.encoding == Encoding::Utf8 && decoded.problems.is_empty() {
            "Leader/09 says MARC-8 (blank) but the bytes are UTF-8; decoded as UTF-8"
        } else {
            "Leader/09 says UTF-8 (a) but the bytes are MARC-8"
        };
        verdict.warning(
            Reason::Leader09Mismatch,
            format!("{declared}. Check the export character set in Connexion"),
        );
    }
    // Errors first.
    verdict
        .findings
        .sort_by_key(|f| matches!(f.severity, Severity::Warning));
    verdict
}

/// Checks the parts of convertibility that need only the decoded record: sizes and what
/// MARCXML can hold.
pub fn check_record(record: &Record) -> Verdict {
    let mut verdict = Verdict::default();
    if record.fields.is_empty() {
        // A leader alone (a MARCXML `<record>` with only `<leader>`) is no record to add.
        verdict.error(
            Reason::StructureDamaged,
            "the record has a leader and no fields. Export the record again from Connexion"
                .to_string(),
        );
    }
    for field in &record.fields {
        let len = field_bytes(field);
        if len > MAX_FIELD_BYTES {
            verdict.error(
                Reason::FieldTooLong,
                format!(
                    "field {} is {} bytes long in UTF-8; MARC allows 9,999 bytes per field. Shorten or split the field and export again",
                    field.tag(),
                    thousands(len)
                ),
            );
        }
    }
    let total = record_bytes(record);
    if total > MAX_RECORD_BYTES {
        verdict.error(
            Reason::RecordTooLong,
            format!(
                "the record is {} bytes long in UTF-8; MARC allows 99,999 bytes per record. Remove or shorten fields and export again",
                thousands(total)
            ),
        );
    }
    if !marcxml::needs_xml_check(record) {
        return verdict;
    }
    let mut scratch = String::with_capacity(4096);
    // The writer stops at the first problem; look at each field on its own to list all.
    for field in &record.fields {
        let single = Record {
            leader: record.leader,
            fields: vec![field.clone()],
        };
        scratch.clear();
        if let Err(e) = marcxml::write_record(&single, &mut scratch, false) {
            let reason = match e {
                XmlWriteError::ForbiddenCharacter { .. } => Reason::XmlForbiddenCharacter,
                XmlWriteError::BadIndicator { .. } => Reason::BadIndicator,
                XmlWriteError::BadSubfieldCode { .. } => Reason::BadSubfieldCode,
            };
            verdict.error(
                reason,
                format!("{e}. Correct the field in Connexion and export again"),
            );
        }
    }
    let leader_only = Record {
        leader: record.leader,
        fields: Vec::new(),
    };
    scratch.clear();
    if let Err(e) = marcxml::write_record(&leader_only, &mut scratch, false) {
        verdict.error(Reason::XmlForbiddenCharacter, format!("the leader: {e}"));
    }
    verdict
}
