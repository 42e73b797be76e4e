//! OCLC control numbers as match keys.
//!
//! Canonical key: a non-zero `u64` ([`OclcNumber`]), whatever surface form it arrived in
//! (`(OCoLC)ocm00012345`, `(OCoLC)12345`, 001 `ocm00012345 ` + 003 `OCoLC` all give `12345`).
//! Each key keeps its provenance: active (035 `$a`, 001) or cancelled (035 `$z`, 019 `$a`).
//!
//! What counts as OCLC (domain.md §2.3):
//! - 035 `$a`/`$z`: the value, after trimming leading whitespace, must begin with the qualifier
//!   `(OCoLC)`. The qualifier is compared **case-insensitively** (`(OCOLC)`, `(ocolc)` are
//!   accepted: no other MARC organization code spells the same letters, so this cannot cause a
//!   false match). `(OCoLC-M)`, `(OCoLC-I)`, `(OCLC)`, `(DLC)` and unqualified values are not OCLC.
//!   After the qualifier every whitespace character and every `.` is removed, then one
//!   `ocm`/`ocn`/`on` prefix (any case), then leading zeros; what is left must be ASCII digits,
//!   non-empty, non-zero and fit in a `u64`.
//! - 001: `^o(cm|cn|n)\d` (lowercase, as OCLC writes it; surrounding whitespace tolerated) is
//!   OCLC whatever 003 says; any other 001 is OCLC only when the first 003 is `OCoLC`
//!   (case-insensitive, trimmed), and then it must be digits with an optional prefix. No
//!   internal spaces or dots are removed from 001.
//! - 019 `$a`: digits with an optional `ocm`/`ocn`/`on` prefix (trimmed, no internal
//!   separators); a value that starts with `(` is read like 035 (so `(OCoLC)123` is accepted,
//!   any other qualifier is not). 019 is OCLC-defined, so its values need no qualifier.
//!   The CONSER first indicator `1` is not treated specially: like Alma's "Copy 019a to 035z"
//!   normalization, every 019 `$a` becomes a cancelled key.
//!
//! Numbers longer than `u64::MAX` (20-digit values such as FOLIO's `FAT-1474` test file) are
//! rejected as [`NotOclcReason::Overflow`] and reported as a warning.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use bibgate_marc::{Field, Record, Tag};

/// An OCLC control number: a non-zero unsigned 64-bit integer.
///
/// `Display` writes the bare digits without prefix or leading zeros (`12345`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OclcNumber(u64);

impl OclcNumber {
    /// Wraps `n`; `None` for zero, which is never an OCLC number.
    pub const fn new(n: u64) -> Option<OclcNumber> {
        if n == 0 { None } else { Some(OclcNumber(n)) }
    }

    /// The number as an integer (never zero).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The canonical 035 `$a` form, `(OCoLC)12345`.
    pub fn to_035(self) -> String {
        format!("(OCoLC){}", self.0)
    }
}

impl fmt::Display for OclcNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<OclcNumber> for u64 {
    fn from(number: OclcNumber) -> u64 {
        number.0
    }
}

impl FromStr for OclcNumber {
    type Err = NotOclc;

    /// Reads the canonical text form written by `Display`: ASCII digits (leading zeros
    /// allowed), non-zero, fitting a `u64`. No prefix, qualifier or whitespace.
    fn from_str(s: &str) -> Result<OclcNumber, NotOclc> {
        let reason = if s.is_empty() {
            NotOclcReason::Empty
        } else if !s.bytes().all(|b| b.is_ascii_digit()) {
            NotOclcReason::Unparseable { body: s.to_owned() }
        } else {
            return digits_to_number(s).map_err(|reason| NotOclc::new(s, reason));
        };
        Err(NotOclc::new(s, reason))
    }
}

/// Where a key came from: active numbers identify the record, cancelled ones identify
/// records OCLC merged into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provenance {
    /// 035 `$a` with the `(OCoLC)` qualifier.
    Active035a,
    /// 001 (OCLC prefix form, or digits with 003 `OCoLC`).
    Active001,
    /// 035 `$z` with the `(OCoLC)` qualifier: a cancelled or invalid number.
    Cancelled035z,
    /// 019 `$a`: the number of a duplicate record OCLC merged into this one.
    Cancelled019a,
}

impl Provenance {
    /// True for 035 `$a` and 001, false for 035 `$z` and 019 `$a`.
    pub const fn is_active(self) -> bool {
        matches!(self, Provenance::Active035a | Provenance::Active001)
    }

    /// The tag and subfield this provenance stands for, e.g. `"035 $a"`, `"001"`.
    pub const fn label(self) -> &'static str {
        match self {
            Provenance::Active035a => "035 $a",
            Provenance::Active001 => "001",
            Provenance::Cancelled035z => "035 $z",
            Provenance::Cancelled019a => "019 $a",
        }
    }
}

/// One match key taken from a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OclcKey {
    /// The canonical number.
    pub number: OclcNumber,
    /// The field (and subfield) it came from.
    pub provenance: Provenance,
    /// The original text of the field or subfield, unchanged.
    pub source: String,
}

/// A value that is not an OCLC number, with the original text and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an OCLC number: {reason}")]
#[non_exhaustive]
pub struct NotOclc {
    /// The value as given.
    pub value: String,
    /// Why it was rejected.
    pub reason: NotOclcReason,
}

impl NotOclc {
    fn new(value: &str, reason: NotOclcReason) -> NotOclc {
        NotOclc {
            value: value.to_owned(),
            reason,
        }
    }

    /// True when the value was probably meant as an OCLC number, so rejecting it deserves a
    /// warning: anything after a `(OCoLC)` qualifier; qualifiers that start with `OCoLC` or
    /// `OCLC` (`(OCoLC-M)`, `(OCoLC-I)`); unqualified values that are digits, `ocm`/`ocn`/`on`
    /// plus digits, or start with `OCoLC`. `(DLC)…`, `(Sirsi)…` and other local numbers are not.
    pub fn looks_like_oclc(&self) -> bool {
        match &self.reason {
            NotOclcReason::OtherQualifier(qualifier) => starts_like_oclc(qualifier.trim()),
            NotOclcReason::NoQualifier => {
                let trimmed = self.value.trim();
                starts_like_oclc(trimmed) || parse_body(trimmed, false).is_ok()
            }
            NotOclcReason::UnclosedQualifier => {
                let trimmed = self.value.trim_start();
                trimmed.starts_with('(') && starts_like_oclc(&trimmed[1..])
            }
            _ => true,
        }
    }
}

/// Why a value is not an OCLC number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotOclcReason {
    /// The value does not begin with a parenthesized qualifier.
    #[error("no qualifier; an OCLC number in 035 must begin with (OCoLC)")]
    NoQualifier,
    /// The value begins with `(` but has no closing `)`.
    #[error("the qualifier is not closed by ')'")]
    UnclosedQualifier,
    /// The qualifier is not `(OCoLC)` (e.g. `(OCoLC-M)`, `(DLC)`); holds the text between
    /// the parentheses.
    #[error("the qualifier ({0}) is not (OCoLC)")]
    OtherQualifier(String),
    /// Nothing (or only blanks and dots) follows the qualifier.
    #[error("no number follows the qualifier")]
    Empty,
    /// Only an `ocm`/`ocn`/`on` prefix, no digits.
    #[error("only the prefix {0:?}, no digits")]
    PrefixOnly(String),
    /// Letters or other characters that are not a known prefix (`tfe00123`, `ocm123abc`);
    /// holds the text after the qualifier with blanks and dots removed.
    #[error("{body:?} is not digits with an optional ocm/ocn/on prefix")]
    Unparseable {
        /// The normalized text that failed.
        body: String,
    },
    /// Only zeros.
    #[error("the number is zero")]
    Zero,
    /// More digits than a `u64` holds (the largest is 18446744073709551615).
    #[error("the number {digits} is larger than the largest supported value {max}", max = u64::MAX)]
    Overflow {
        /// The digits without leading zeros.
        digits: String,
    },
}

fn starts_like_oclc(text: &str) -> bool {
    let lower: String = text
        .chars()
        .take(5)
        .collect::<String>()
        .to_ascii_lowercase();
    lower.starts_with("ocolc") || lower.starts_with("oclc")
}

/// Turns a non-empty string of ASCII digits into a number.
fn digits_to_number(digits: &str) -> Result<OclcNumber, NotOclcReason> {
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Err(NotOclcReason::Zero);
    }
    match significant.parse::<u64>().ok().and_then(OclcNumber::new) {
        Some(number) => Ok(number),
        None => Err(NotOclcReason::Overflow {
            digits: significant.to_owned(),
        }),
    }
}

/// Splits one `ocm`/`ocn`/`on` prefix (any case) off `body`.
fn split_prefix(body: &str) -> (&str, &str) {
    for prefix in ["ocm", "ocn", "on"] {
        if let Some(head) = body.get(..prefix.len())
            && head.eq_ignore_ascii_case(prefix)
        {
            return (head, &body[prefix.len()..]);
        }
    }
    ("", body)
}

/// Reads the part after the qualifier (or a whole 001/019 value). With `remove_separators`,
/// whitespace and dots anywhere are dropped first.
fn parse_body(body: &str, remove_separators: bool) -> Result<OclcNumber, NotOclcReason> {
    let cleaned: String = if remove_separators {
        body.chars()
            .filter(|c| !c.is_whitespace() && *c != '.')
            .collect()
    } else {
        body.to_owned()
    };
    if cleaned.is_empty() {
        return Err(NotOclcReason::Empty);
    }
    let (prefix, digits) = split_prefix(&cleaned);
    if digits.is_empty() {
        return Err(NotOclcReason::PrefixOnly(prefix.to_owned()));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotOclcReason::Unparseable { body: cleaned });
    }
    digits_to_number(digits)
}

/// Reads a 035 `$a` or `$z` value. See the module documentation for the accepted forms.
///
/// ```
/// use bibgate_matching::oclc::parse_035;
/// assert_eq!(parse_035("(OCoLC)ocm00012345").unwrap().get(), 12345);
/// assert!(parse_035("(OCoLC-M)858201973344").is_err());
/// ```
pub fn parse_035(value: &str) -> Result<OclcNumber, NotOclc> {
    let trimmed = value.trim_start();
    let Some(rest) = trimmed.strip_prefix('(') else {
        return Err(NotOclc::new(value, NotOclcReason::NoQualifier));
    };
    let Some((qualifier, body)) = rest.split_once(')') else {
        return Err(NotOclc::new(value, NotOclcReason::UnclosedQualifier));
    };
    if !qualifier.eq_ignore_ascii_case("OCoLC") {
        return Err(NotOclc::new(
            value,
            NotOclcReason::OtherQualifier(qualifier.to_owned()),
        ));
    }
    parse_body(body, true).map_err(|reason| NotOclc::new(value, reason))
}

/// True when a 003 value names OCLC (`OCoLC`, trimmed, case-insensitive).
pub fn is_oclc_003(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("OCoLC")
}

/// True when `value` (trimmed) matches `^o(cm|cn|n)[0-9]`, OCLC's own 001 forms.
pub fn has_oclc_001_prefix(value: &str) -> bool {
    let value = value.trim().as_bytes();
    let rest = if value.starts_with(b"ocm") || value.starts_with(b"ocn") {
        &value[3..]
    } else if value.starts_with(b"on") {
        &value[2..]
    } else {
        return false;
    };
    rest.first().is_some_and(u8::is_ascii_digit)
}

/// `Ok` for an OCLC 001; `Err(None)` when the 001 is simply not OCLC; `Err(Some(_))` when it
/// claims to be OCLC (prefix form, or 003 `OCoLC`) but cannot be read.
fn parse_001_detailed(
    value: &str,
    field_003: Option<&str>,
) -> Result<OclcNumber, Option<NotOclcReason>> {
    let trimmed = value.trim();
    if has_oclc_001_prefix(trimmed) || field_003.is_some_and(is_oclc_003) {
        parse_body(trimmed, false).map_err(Some)
    } else {
        Err(None)
    }
}

/// Reads a 001 value given the record's 003 (if any). See the module documentation.
///
/// ```
/// use bibgate_matching::oclc::parse_001;
/// assert_eq!(parse_001("ocm00000001 ", None).unwrap().get(), 1);
/// assert_eq!(parse_001("12345", Some("OCoLC")).unwrap().get(), 12345);
/// assert_eq!(parse_001("12345", Some("DLC")), None);
/// ```
pub fn parse_001(value: &str, field_003: Option<&str>) -> Option<OclcNumber> {
    parse_001_detailed(value, field_003).ok()
}

/// Reads a 019 `$a` value. See the module documentation.
pub fn parse_019(value: &str) -> Result<OclcNumber, NotOclc> {
    let trimmed = value.trim();
    if trimmed.starts_with('(') {
        return parse_035(value);
    }
    parse_body(trimmed, false).map_err(|reason| NotOclc::new(value, reason))
}

/// What was wrong with an OCLC-looking value or with the record's control fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OclcProblem {
    /// The value looked like an OCLC number but was rejected.
    Rejected(NotOclcReason),
    /// A non-repeatable control field (001 or 003) occurs `count` times; the first was used.
    Repeated {
        /// How many times the tag occurs.
        count: usize,
    },
    /// The number also occurs as an active number of the same record; the key was kept as
    /// active (a record cannot have cancelled its own number).
    CancelsActive {
        /// The number in question.
        number: OclcNumber,
    },
}

/// A note about a value that [`oclc_keys`] could not use, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OclcWarning {
    /// The field's tag.
    pub tag: Tag,
    /// The subfield code, `None` for a control field.
    pub subfield: Option<u8>,
    /// The text in question (for `Repeated`, the value of the first occurrence).
    pub text: String,
    /// What was wrong.
    pub problem: OclcProblem,
}

impl fmt::Display for OclcWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tag)?;
        if let Some(code) = self.subfield {
            write!(f, " ${}", code.escape_ascii())?;
        }
        match &self.problem {
            OclcProblem::Rejected(reason) => {
                write!(f, " {:?} is not an OCLC number: {reason}", self.text)
            }
            OclcProblem::Repeated { count } => write!(
                f,
                " occurs {count} times but is not repeatable; the first ({:?}) was used",
                self.text
            ),
            OclcProblem::CancelsActive { number } => write!(
                f,
                " {:?} cancels {number}, which is also an active number of the record; kept as active",
                self.text
            ),
        }
    }
}

/// The OCLC match keys of a record, plus warnings about values that could not be used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OclcKeys {
    /// One key per distinct number, in the order the numbers first occur in the record; when a
    /// number is both active and cancelled, the key is the (first) active occurrence.
    pub keys: Vec<OclcKey>,
    /// Rejected OCLC-looking values, repeated 001/003, numbers both active and cancelled.
    pub warnings: Vec<OclcWarning>,
}

impl OclcKeys {
    /// The active keys (035 `$a`, 001).
    pub fn active(&self) -> impl Iterator<Item = &OclcKey> {
        self.keys.iter().filter(|key| key.provenance.is_active())
    }

    /// The cancelled keys (035 `$z`, 019 `$a`) whose number is not also active.
    pub fn cancelled(&self) -> impl Iterator<Item = &OclcKey> {
        self.keys.iter().filter(|key| !key.provenance.is_active())
    }

    /// The distinct numbers, active and cancelled, in key order (for index lookups).
    pub fn numbers(&self) -> Vec<u64> {
        self.keys.iter().map(|key| key.number.get()).collect()
    }

    /// True when `number` is one of the keys.
    pub fn contains(&self, number: OclcNumber) -> bool {
        self.keys.iter().any(|key| key.number == number)
    }

    /// True when the record has no OCLC key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Collects keys, deduplicating by number and preferring active provenance.
#[derive(Default)]
struct KeyCollector {
    out: OclcKeys,
    index: HashMap<OclcNumber, usize>,
    /// Cancelled occurrences superseded or skipped because the number is active.
    conflicts: Vec<OclcKey>,
}

impl KeyCollector {
    fn push(&mut self, key: OclcKey) {
        match self.index.get(&key.number) {
            None => {
                self.index.insert(key.number, self.out.keys.len());
                self.out.keys.push(key);
            }
            Some(&at) => {
                let existing = &mut self.out.keys[at];
                match (existing.provenance.is_active(), key.provenance.is_active()) {
                    (false, true) => {
                        let cancelled = std::mem::replace(existing, key);
                        self.conflicts.push(cancelled);
                    }
                    (true, false) => self.conflicts.push(key),
                    _ => {}
                }
            }
        }
    }

    fn warn_rejected(&mut self, tag: Tag, subfield: Option<u8>, error: NotOclc) {
        self.out.warnings.push(OclcWarning {
            tag,
            subfield,
            text: error.value,
            problem: OclcProblem::Rejected(error.reason),
        });
    }

    fn finish(mut self) -> OclcKeys {
        for key in self.conflicts {
            let (tag, subfield) = match key.provenance {
                Provenance::Cancelled019a => ("019", Some(b'a')),
                _ => ("035", Some(b'z')),
            };
            if let Some(tag) = Tag::new(tag) {
                self.out.warnings.push(OclcWarning {
                    tag,
                    subfield,
                    text: key.source,
                    problem: OclcProblem::CancelsActive { number: key.number },
                });
            }
        }
        self.out
    }
}

fn warn_repeated(collector: &mut KeyCollector, record: &Record, name: &str) {
    let count = record.fields_with_tag(name).count();
    if count > 1
        && let Some(tag) = Tag::new(name)
    {
        let text = record.control_value(name).unwrap_or_default().to_owned();
        collector.out.warnings.push(OclcWarning {
            tag,
            subfield: None,
            text,
            problem: OclcProblem::Repeated { count },
        });
    }
}

/// Extracts every OCLC key of a record: 001 (+ first 003), 035 `$a` (active), 035 `$z` and
/// 019 `$a` (cancelled). Keys are deduplicated by number (edge cases 1, 12, 16); repeated
/// 001/003 use the first occurrence and add a warning (edge case 18).
pub fn oclc_keys(record: &Record) -> OclcKeys {
    let mut collector = KeyCollector::default();
    warn_repeated(&mut collector, record, "001");
    warn_repeated(&mut collector, record, "003");
    let field_003 = record.control_value("003");
    let mut seen_001 = false;
    for field in &record.fields {
        let tag = field.tag();
        if tag.is("001") {
            if seen_001 {
                continue;
            }
            seen_001 = true;
            if let Field::Control { value, .. } = field {
                match parse_001_detailed(value, field_003) {
                    Ok(number) => collector.push(OclcKey {
                        number,
                        provenance: Provenance::Active001,
                        source: value.clone(),
                    }),
                    Err(Some(reason)) => {
                        collector.warn_rejected(tag, None, NotOclc::new(value, reason));
                    }
                    Err(None) => {}
                }
            }
        } else if tag.is("035") {
            for subfield in field.subfields() {
                let provenance = match subfield.code {
                    b'a' => Provenance::Active035a,
                    b'z' => Provenance::Cancelled035z,
                    _ => continue,
                };
                match parse_035(&subfield.value) {
                    Ok(number) => collector.push(OclcKey {
                        number,
                        provenance,
                        source: subfield.value.clone(),
                    }),
                    Err(error) if error.looks_like_oclc() => {
                        collector.warn_rejected(tag, Some(subfield.code), error);
                    }
                    Err(_) => {}
                }
            }
        } else if tag.is("019") {
            for value in field.subfield_values(b'a') {
                match parse_019(value) {
                    Ok(number) => collector.push(OclcKey {
                        number,
                        provenance: Provenance::Cancelled019a,
                        source: value.to_owned(),
                    }),
                    Err(error) => collector.warn_rejected(tag, Some(b'a'), error),
                }
            }
        }
    }
    collector.finish()
}

/// True when the record says it is an OCLC record: first 003 is `OCoLC`, or the first 001 has
/// an OCLC prefix (`ocm`/`ocn`/`on` + digit).
pub fn is_oclc_record(record: &Record) -> bool {
    record.control_value("003").is_some_and(is_oclc_003)
        || record.control_value("001").is_some_and(has_oclc_001_prefix)
}

#[cfg(test)]
mod tests;
