//! Character decoding: raw field bytes (MARC-8 or UTF-8) to UTF-8 text.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::iso2709::{RawField, RawRecord};
use crate::record::{Field, Record, Subfield, Tag};

/// The character encoding a record's bytes were decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// MARC-8 (Leader/09 blank).
    Marc8,
    /// UTF-8 (Leader/09 `a`).
    Utf8,
}

impl Encoding {
    /// `"MARC-8"` or `"UTF-8"`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Marc8 => "MARC-8",
            Encoding::Utf8 => "UTF-8",
        }
    }
}

/// How to choose a record's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Charset {
    /// Follow Leader/09, except that a MARC-8 leader over bytes that are evidently UTF-8
    /// (valid UTF-8 with multi-byte sequences and no escape sequences) is decoded as UTF-8
    /// and reported as a Leader/09 mismatch.
    #[default]
    Auto,
    /// Always MARC-8.
    Marc8,
    /// Always UTF-8.
    Utf8,
}

/// A character-level problem in one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeProblem {
    /// The field's tag.
    pub tag: Tag,
    /// Position of the field in the record, counting from 1.
    pub field_index: usize,
    /// What is wrong.
    pub kind: DecodeProblemKind,
}

/// What is wrong with a field's characters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeProblemKind {
    /// Leader/09 is `a` but the bytes are not UTF-8.
    InvalidUtf8 {
        /// Byte offset inside the field.
        offset: usize,
        /// True when the same bytes decode cleanly as MARC-8.
        looks_like_marc8: bool,
    },
    /// Leader/09 is `a` but the field holds a MARC-8 escape sequence (a "hybrid" record).
    EscapeInUtf8 {
        /// Byte offset inside the field.
        offset: usize,
    },
    /// The bytes are not valid MARC-8.
    Marc8(bibgate_marc8::Problem),
}

impl fmt::Display for DecodeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DecodeProblemKind::InvalidUtf8 {
                offset,
                looks_like_marc8,
            } => {
                write!(
                    f,
                    "field {} is not valid UTF-8 at byte {offset}, but Leader/09 says UTF-8",
                    self.tag
                )?;
                if *looks_like_marc8 {
                    write!(f, "; the bytes look like MARC-8")?;
                }
                Ok(())
            }
            DecodeProblemKind::EscapeInUtf8 { offset } => write!(
                f,
                "field {} holds a MARC-8 escape sequence (ESC) at byte {offset} in a record that Leader/09 says is UTF-8",
                self.tag
            ),
            DecodeProblemKind::Marc8(problem) => {
                write!(f, "field {} is not valid MARC-8: {problem}", self.tag)
            }
        }
    }
}

/// A decoded record with what was found on the way.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// The record, all text UTF-8.
    pub record: Record,
    /// The encoding the bytes were decoded from.
    pub encoding: Encoding,
    /// True when Leader/09 says one encoding and the bytes are evidently the other.
    pub leader_mismatch: bool,
    /// Character problems; each affected character became U+FFFD.
    pub problems: Vec<DecodeProblem>,
    /// Data fields whose bytes after the indicators do not start with a subfield delimiter
    /// (the stray text is kept as a subfield with code 0 so nothing is lost).
    pub stray_text: Vec<Tag>,
}

fn has_multibyte_utf8(raw: &RawRecord<'_>) -> bool {
    let mut any_multibyte = false;
    for field in &raw.fields {
        if field.data.is_ascii() {
            continue;
        }
        if field.data.contains(&0x1B) || std::str::from_utf8(field.data).is_err() {
            return false;
        }
        any_multibyte = true;
    }
    any_multibyte
}

/// Decides the encoding for a record.
pub fn detect_encoding(raw: &RawRecord<'_>, charset: Charset) -> (Encoding, bool) {
    let declared = if raw.leader.coding_scheme() == b'a' {
        Encoding::Utf8
    } else {
        Encoding::Marc8
    };
    match charset {
        Charset::Marc8 => (Encoding::Marc8, declared != Encoding::Marc8),
        Charset::Utf8 => (Encoding::Utf8, declared != Encoding::Utf8),
        Charset::Auto => {
            if declared == Encoding::Marc8 && has_multibyte_utf8(raw) {
                (Encoding::Utf8, true)
            } else {
                // A UTF-8 leader over MARC-8 bytes is reported (not acted on) by `decode`
                // once it has seen invalid UTF-8: Alma refuses such records, and so does the
                // convertibility check.
                (declared, false)
            }
        }
    }
}

fn nfc_if_needed(text: String) -> String {
    if text.is_ascii() {
        text
    } else {
        text.nfc().collect()
    }
}

struct FieldDecoder {
    encoding: Encoding,
    marc8: bibgate_marc8::Decoder,
    /// Bytes fed to `marc8` since the field started (its problem offsets count these).
    fed: usize,
}

impl FieldDecoder {
    fn start_field(&mut self) {
        if self.encoding == Encoding::Marc8 {
            self.marc8.reset();
            self.fed = 0;
        }
    }

    /// Decodes one piece of a field. `base` is the piece's offset inside the field.
    fn piece(
        &mut self,
        bytes: &[u8],
        base: usize,
        problems: &mut Vec<DecodeProblemKind>,
    ) -> String {
        match self.encoding {
            Encoding::Utf8 => {
                if let Some(p) = bytes.iter().position(|&b| b == 0x1B) {
                    problems.push(DecodeProblemKind::EscapeInUtf8 { offset: base + p });
                }
                match std::str::from_utf8(bytes) {
                    Ok(text) => text.to_owned(),
                    Err(e) => {
                        problems.push(DecodeProblemKind::InvalidUtf8 {
                            offset: base + e.valid_up_to(),
                            looks_like_marc8: bibgate_marc8::decode(bytes).is_ok(),
                        });
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                }
            }
            Encoding::Marc8 => {
                let seen = self.marc8.problems().len();
                let mut out = String::with_capacity(bytes.len() + 8);
                self.marc8.decode_into(bytes, &mut out);
                for problem in &self.marc8.problems()[seen..] {
                    let mut problem = problem.clone();
                    problem.offset = base + problem.offset.saturating_sub(self.fed);
                    problems.push(DecodeProblemKind::Marc8(problem));
                }
                self.fed += bytes.len();
                nfc_if_needed(out)
            }
        }
    }
}

fn decode_field(
    field: &RawField<'_>,
    decoder: &mut FieldDecoder,
    problems: &mut Vec<DecodeProblemKind>,
    stray: &mut bool,
) -> Field {
    decoder.start_field();
    if field.tag.is_control() {
        return Field::Control {
            tag: field.tag,
            value: decoder.piece(field.data, 0, problems),
        };
    }
    let (ind1, ind2) = field.indicators().unwrap_or((b' ', b' '));
    let (junk, raw_subfields) = field.subfields();
    let mut subfields = Vec::new();
    let mut offset = 2;
    if !junk.is_empty() {
        decoder.start_field();
        *stray = true;
        subfields.push(Subfield {
            code: 0,
            value: decoder.piece(junk, offset, problems),
        });
    }
    offset += junk.len();
    for (code, value) in raw_subfields {
        // Each subfield starts in the default character sets, as in yaz and pymarc: an
        // escape sequence left open by one subfield does not leak into the next.
        decoder.start_field();
        subfields.push(Subfield {
            code,
            value: decoder.piece(value, offset + 2, problems),
        });
        offset += 2 + value.len();
    }
    Field::Data {
        tag: field.tag,
        ind1,
        ind2,
        subfields,
    }
}

/// Decodes every field of a raw record to UTF-8 text.
///
/// Never fails: undecodable characters become U+FFFD and are listed as problems, so the
/// caller can decide (the convertibility check turns them into a verdict). MARC-8 text is
/// returned in Unicode normalisation form C; UTF-8 text is kept as received.
pub fn decode(raw: &RawRecord<'_>, charset: Charset) -> Decoded {
    let (encoding, leader_mismatch) = detect_encoding(raw, charset);
    let mut decoder = FieldDecoder {
        encoding,
        marc8: bibgate_marc8::Decoder::new(),
        fed: 0,
    };
    let mut problems = Vec::new();
    let mut stray_text = Vec::new();
    let mut fields = Vec::with_capacity(raw.fields.len());
    let mut kinds = Vec::new();
    for (i, field) in raw.fields.iter().enumerate() {
        let mut stray = false;
        fields.push(decode_field(field, &mut decoder, &mut kinds, &mut stray));
        if stray {
            stray_text.push(field.tag);
        }
        problems.extend(kinds.drain(..).map(|kind| DecodeProblem {
            tag: field.tag,
            field_index: i + 1,
            kind,
        }));
    }
    let leader_mismatch = leader_mismatch
        || (charset == Charset::Auto
            && encoding == Encoding::Utf8
            && !problems.is_empty()
            && raw
                .fields
                .iter()
                .all(|f| bibgate_marc8::decode(f.data).is_ok()));
    // The decoded text is Unicode whatever it arrived as, and the leader says so.
    let mut leader = raw.leader;
    leader.0[9] = b'a';
    Decoded {
        record: Record { leader, fields },
        encoding,
        leader_mismatch,
        problems,
        stray_text,
    }
}
