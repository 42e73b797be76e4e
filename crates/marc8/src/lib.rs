//! MARC-8 to UTF-8 decoding for MARC 21 records.
//!
//! MARC-8 is the legacy character encoding of MARC 21: an ISO 2022-style
//! scheme in which escape sequences designate graphic character sets into a
//! G0 (bytes 0x21-0x7E) and a G1 (bytes 0xA1-0xFE) working set. The default
//! is G0 = Basic Latin (ASCII) and G1 = Extended Latin (ANSEL). Combining
//! diacritics are stored *before* the base character they modify; Unicode
//! puts them after it, so the decoder reorders them.
//!
//! Main items:
//! - [`Decoder`]: stateful decoder; the G0/G1 designations persist across
//!   [`Decoder::decode_into`] calls, so a field can be fed piece by piece.
//! - [`decode`] / [`decode_lossy`]: decode one whole value from the default
//!   state to an NFC string.
//! - [`is_plain_ascii`]: fast check for input whose decoding is the identity.
//! - [`Problem`] / [`ProblemKind`]: what was wrong with undecodable input.
//!
//! The mapping tables (`tables.rs`) are generated from the Library of
//! Congress MARC-8 code tables (`codetables.xml`); see
//! `tests/tables_up_to_date.rs`.
//!
//! Invariants:
//! - Pure: no I/O, no environment, no clock.
//! - Never panics, whatever the input bytes; every undecodable sequence
//!   becomes U+FFFD (or is dropped, for dangling diacritics) plus a
//!   [`Problem`].
//! - C0 control bytes other than ESC (including the MARC delimiters 0x1D,
//!   0x1E and 0x1F) pass through unchanged.
//! - The space byte 0x20 is a single-byte space in every set, including the
//!   three-byte East Asian set (as in YAZ).
//! - Combining marks are emitted after the base character that follows
//!   them in MARC-8; marks with no following base character within one
//!   `decode_into` call (or before a control byte) are dropped, as pymarc
//!   does, and reported as [`ProblemKind::DanglingCombining`].

#![deny(missing_docs)]

mod tables;

use std::fmt;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use tables::{C1, CHAR_MASK, COMBINING, NOTHING};

const ESC: u8 = 0x1B;

/// A MARC-8 graphic character set, as named in the LC code tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Charset {
    /// Basic Latin (ASCII), final byte `B` (or `s` for technique 1).
    BasicLatin,
    /// Extended Latin (ANSEL), final byte `E` (`!E`).
    ExtendedLatin,
    /// Greek symbols, final byte `g`.
    GreekSymbols,
    /// Subscripts, final byte `b`.
    Subscripts,
    /// Superscripts, final byte `p`.
    Superscripts,
    /// Basic Hebrew, final byte `2`.
    BasicHebrew,
    /// Basic Cyrillic, final byte `N`.
    BasicCyrillic,
    /// Extended Cyrillic, final byte `Q`.
    ExtendedCyrillic,
    /// Basic Arabic, final byte `3`.
    BasicArabic,
    /// Extended Arabic, final byte `4`.
    ExtendedArabic,
    /// Basic Greek, final byte `S`.
    BasicGreek,
    /// Chinese, Japanese, Korean (EACC), three bytes per character, final byte `1`.
    Eacc,
}

impl Charset {
    /// The set designated by an escape sequence's final byte, if MARC-8 has one.
    pub fn from_final_byte(byte: u8) -> Option<Charset> {
        Some(match byte {
            b'B' | b's' => Charset::BasicLatin,
            b'E' => Charset::ExtendedLatin,
            b'g' => Charset::GreekSymbols,
            b'b' => Charset::Subscripts,
            b'p' => Charset::Superscripts,
            b'2' => Charset::BasicHebrew,
            b'N' => Charset::BasicCyrillic,
            b'Q' => Charset::ExtendedCyrillic,
            b'3' => Charset::BasicArabic,
            b'4' => Charset::ExtendedArabic,
            b'S' => Charset::BasicGreek,
            b'1' => Charset::Eacc,
            _ => return None,
        })
    }

    /// The escape-sequence final byte (the LC table's ISO code) of this set.
    pub fn final_byte(self) -> u8 {
        match self {
            Charset::BasicLatin => b'B',
            Charset::ExtendedLatin => b'E',
            Charset::GreekSymbols => b'g',
            Charset::Subscripts => b'b',
            Charset::Superscripts => b'p',
            Charset::BasicHebrew => b'2',
            Charset::BasicCyrillic => b'N',
            Charset::ExtendedCyrillic => b'Q',
            Charset::BasicArabic => b'3',
            Charset::ExtendedArabic => b'4',
            Charset::BasicGreek => b'S',
            Charset::Eacc => b'1',
        }
    }

    /// Lowercase human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Charset::BasicLatin => "basic latin (ASCII)",
            Charset::ExtendedLatin => "extended latin (ANSEL)",
            Charset::GreekSymbols => "greek symbols",
            Charset::Subscripts => "subscripts",
            Charset::Superscripts => "superscripts",
            Charset::BasicHebrew => "basic hebrew",
            Charset::BasicCyrillic => "basic cyrillic",
            Charset::ExtendedCyrillic => "extended cyrillic",
            Charset::BasicArabic => "basic arabic",
            Charset::ExtendedArabic => "extended arabic",
            Charset::BasicGreek => "basic greek",
            Charset::Eacc => "east asian (EACC)",
        }
    }

    /// True for the three-byte East Asian set.
    pub fn is_multibyte(self) -> bool {
        self == Charset::Eacc
    }

    /// The 94-entry table of a single-byte set.
    fn table(self) -> &'static [u32; 94] {
        match self {
            Charset::BasicLatin => &tables::SET_42,
            Charset::ExtendedLatin => &tables::SET_45,
            Charset::GreekSymbols => &tables::SET_67,
            Charset::Subscripts => &tables::SET_62,
            Charset::Superscripts => &tables::SET_70,
            Charset::BasicHebrew => &tables::SET_32,
            Charset::BasicCyrillic => &tables::SET_4E,
            Charset::ExtendedCyrillic => &tables::SET_51,
            Charset::BasicArabic => &tables::SET_33,
            Charset::ExtendedArabic => &tables::SET_34,
            Charset::BasicGreek => &tables::SET_53,
            // Never asked for: multibyte input goes through `eacc_entry`.
            Charset::Eacc => &EMPTY_TABLE,
        }
    }
}

static EMPTY_TABLE: [u32; 94] = [0; 94];

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Table entry of a three-byte EACC code (`0` when unmapped).
fn eacc_entry(code: u32) -> u32 {
    match tables::SET_31.binary_search_by_key(&code, |&(k, _)| k) {
        Ok(i) => tables::SET_31.get(i).map_or(0, |&(_, v)| v),
        Err(_) => 0,
    }
}

/// What is wrong with a piece of MARC-8 input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// An escape sequence that designates no MARC-8 character set; the
    /// working sets are left unchanged.
    #[error("unknown escape sequence {}", show_escape(.sequence))]
    UnknownEscape {
        /// The bytes of the sequence, starting with ESC.
        sequence: Vec<u8>,
    },
    /// The data ends inside an escape sequence.
    #[error("escape sequence cut off by the end of the data")]
    TruncatedEscape,
    /// A byte with no meaning in MARC-8 whatever the working sets (C1
    /// controls other than NSB/NSE/ZWJ/ZWNJ, 0x7F, 0xA0, 0xFF).
    #[error("byte 0x{byte:02x} has no MARC-8 meaning")]
    UnmappedByte {
        /// The byte.
        byte: u8,
    },
    /// A code not defined in the character set in force.
    #[error("code 0x{code:02x} is not defined in the {set} character set")]
    UnmappedCode {
        /// The working set the code was read from.
        set: Charset,
        /// The code as found in the data (1 or 3 bytes, big-endian).
        code: u32,
    },
    /// A three-byte character cut short by the end of the data or by a
    /// control byte.
    #[error("incomplete three-byte {set} character")]
    TruncatedMultibyte {
        /// The multibyte set in force.
        set: Charset,
    },
    /// Combining diacritics with no base character after them (at the end
    /// of the data or before a control byte); they were dropped.
    #[error("{count} combining diacritic(s) with no letter after them were dropped")]
    DanglingCombining {
        /// How many marks were dropped.
        count: usize,
    },
}

fn show_escape(sequence: &[u8]) -> String {
    let mut s = String::from("ESC");
    for &b in sequence.iter().skip(1) {
        if b.is_ascii_graphic() {
            s.push(' ');
            s.push(char::from(b));
        } else {
            s.push_str(&format!(" 0x{b:02x}"));
        }
    }
    s
}

/// One problem found while decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {kind}")]
pub struct Problem {
    /// Byte offset of the problem, counted over all bytes fed to the decoder.
    pub offset: usize,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// Stateful MARC-8 decoder.
///
/// The G0/G1 working sets start at the MARC-8 default (G0 = Basic Latin,
/// G1 = Extended Latin) and persist across [`decode_into`](Self::decode_into)
/// calls, so a caller decodes one field by feeding its pieces in order. Each
/// call must hold whole characters: a three-byte character or an escape
/// sequence split across calls is reported as truncated, and combining marks
/// still waiting for a base character at the end of a call are dropped and
/// reported.
#[derive(Debug, Clone)]
pub struct Decoder {
    g0: Charset,
    g1: Charset,
    /// Combining marks read but not yet emitted (they follow their base).
    pending: Vec<char>,
    /// Absolute offset of the first pending mark.
    pending_offset: usize,
    /// Bytes fed by earlier calls.
    offset: usize,
    problems: Vec<Problem>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder in the MARC-8 default state.
    pub fn new() -> Decoder {
        Decoder {
            g0: Charset::BasicLatin,
            g1: Charset::ExtendedLatin,
            pending: Vec::new(),
            pending_offset: 0,
            offset: 0,
            problems: Vec::new(),
        }
    }

    /// Back to the default sets, with problems cleared and offset 0.
    pub fn reset(&mut self) {
        self.g0 = Charset::BasicLatin;
        self.g1 = Charset::ExtendedLatin;
        self.pending.clear();
        self.pending_offset = 0;
        self.offset = 0;
        self.problems.clear();
    }

    /// Problems seen so far, in input order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems seen so far, leaving none.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// The working sets in force: `(G0, G1)`.
    pub fn working_sets(&self) -> (Charset, Charset) {
        (self.g0, self.g1)
    }

    /// Decodes `bytes`, appending UTF-8 to `out`.
    ///
    /// Never panics. An undecodable byte sequence becomes U+FFFD and a
    /// recorded [`Problem`]; decoding then continues. The output is not
    /// normalised (combining marks are reordered but not composed).
    pub fn decode_into(&mut self, bytes: &[u8], out: &mut String) {
        out.reserve(bytes.len());
        let len = bytes.len();
        let mut i = 0;
        while i < len {
            let b = bytes[i];
            if b < 0x80 {
                if self.g0 == Charset::BasicLatin && self.pending.is_empty() {
                    // Fast path: ASCII graphics, space and C0 controls other
                    // than ESC map to themselves.
                    let run = bytes[i..]
                        .iter()
                        .position(|&c| c >= 0x7F || c == ESC)
                        .unwrap_or(len - i);
                    if run > 0 {
                        if let Ok(s) = std::str::from_utf8(&bytes[i..i + run]) {
                            out.push_str(s);
                        }
                        i += run;
                        continue;
                    }
                }
                if b == ESC {
                    i = self.escape(bytes, i, out);
                } else if b < 0x20 {
                    self.flush_dangling();
                    out.push(char::from(b));
                    i += 1;
                } else if b == 0x20 {
                    self.push_base(' ', out);
                    i += 1;
                } else if b == 0x7F {
                    self.unmapped_byte(b, i, out);
                    i += 1;
                } else if self.g0 == Charset::Eacc {
                    i = self.multibyte(bytes, i, self.g0, false, out);
                } else {
                    let entry = self.g0.table()[usize::from(b - 0x21)];
                    self.emit(entry, self.g0, u32::from(b), i, out);
                    i += 1;
                }
            } else if b < 0xA0 {
                match C1.iter().find(|&&(k, _)| k == b) {
                    // NSB/NSE/ZWJ/ZWNJ: transparent to combining reordering.
                    Some(&(_, entry)) => out.push(to_char(entry)),
                    None => self.unmapped_byte(b, i, out),
                }
                i += 1;
            } else if b == 0xA0 || b == 0xFF {
                self.unmapped_byte(b, i, out);
                i += 1;
            } else if self.g1 == Charset::Eacc {
                i = self.multibyte(bytes, i, self.g1, true, out);
            } else {
                let entry = self.g1.table()[usize::from((b & 0x7F) - 0x21)];
                self.emit(entry, self.g1, u32::from(b), i, out);
                i += 1;
            }
        }
        self.flush_dangling();
        self.offset += len;
    }

    fn problem(&mut self, at: usize, kind: ProblemKind) {
        self.problems.push(Problem {
            offset: self.offset + at,
            kind,
        });
    }

    fn unmapped_byte(&mut self, byte: u8, at: usize, out: &mut String) {
        self.problem(at, ProblemKind::UnmappedByte { byte });
        self.push_base(char::REPLACEMENT_CHARACTER, out);
    }

    /// Emits a base character followed by the combining marks waiting for it.
    fn push_base(&mut self, c: char, out: &mut String) {
        out.push(c);
        if !self.pending.is_empty() {
            out.extend(self.pending.drain(..));
        }
    }

    /// Drops combining marks that have no base character, reporting them.
    fn flush_dangling(&mut self) {
        if !self.pending.is_empty() {
            let count = self.pending.len();
            self.pending.clear();
            self.problems.push(Problem {
                offset: self.pending_offset,
                kind: ProblemKind::DanglingCombining { count },
            });
        }
    }

    /// Handles one table entry for `code` read from `set` at `at`.
    fn emit(&mut self, entry: u32, set: Charset, code: u32, at: usize, out: &mut String) {
        if entry == 0 {
            self.problem(at, ProblemKind::UnmappedCode { set, code });
            self.push_base(char::REPLACEMENT_CHARACTER, out);
        } else if entry & NOTHING != 0 {
            // Second half of a two-character mark: LC maps it to nothing.
        } else if entry & COMBINING != 0 {
            if self.pending.is_empty() {
                self.pending_offset = self.offset + at;
            }
            self.pending.push(to_char(entry));
        } else {
            self.push_base(to_char(entry), out);
        }
    }

    /// Reads one three-byte character starting at `i`; returns the next index.
    fn multibyte(
        &mut self,
        bytes: &[u8],
        i: usize,
        set: Charset,
        high: bool,
        out: &mut String,
    ) -> usize {
        let mask = if high { 0x7F } else { 0xFF };
        let mut code = u32::from(bytes[i] & mask);
        for k in 1..3 {
            match bytes.get(i + k) {
                Some(&c) if c >= 0x20 => code = (code << 8) | u32::from(c & mask),
                _ => {
                    self.problem(i, ProblemKind::TruncatedMultibyte { set });
                    self.push_base(char::REPLACEMENT_CHARACTER, out);
                    return i + k;
                }
            }
        }
        let entry = eacc_entry(code);
        let shown = if high { code | 0x0080_8080 } else { code };
        self.emit(entry, set, shown, i, out);
        i + 3
    }

    /// Parses the escape sequence at `i`; returns the index after it.
    ///
    /// Accepted form (as YAZ): `ESC [$] [( , ) -] [!] F`, where `(`/`,` (or
    /// none) designate G0 and `)`/`-` designate G1. The set is chosen by the
    /// final byte `F` alone, so technique 1 (`ESC g`, `ESC b`, `ESC p`,
    /// `ESC s`) and lenient forms such as `ESC $ 1` work too.
    fn escape(&mut self, bytes: &[u8], i: usize, out: &mut String) -> usize {
        let mut j = i + 1;
        if bytes.get(j) == Some(&b'$') {
            j += 1;
        }
        let mut g1 = false;
        match bytes.get(j) {
            Some(b'(' | b',') => j += 1,
            Some(b')' | b'-') => {
                g1 = true;
                j += 1;
            }
            _ => {}
        }
        if bytes.get(j) == Some(&b'!') {
            j += 1;
        }
        let Some(&f) = bytes.get(j) else {
            self.problem(i, ProblemKind::TruncatedEscape);
            self.push_base(char::REPLACEMENT_CHARACTER, out);
            return bytes.len();
        };
        match Charset::from_final_byte(f) {
            Some(set) if g1 => self.g1 = set,
            Some(set) => self.g0 = set,
            None => {
                // A final byte must be a graphic; anything else is left to be
                // decoded on its own.
                let end = if (0x21..0x7F).contains(&f) { j + 1 } else { j };
                let sequence = bytes[i..end].to_vec();
                self.problem(i, ProblemKind::UnknownEscape { sequence });
                self.push_base(char::REPLACEMENT_CHARACTER, out);
                return end;
            }
        }
        j + 1
    }
}

fn to_char(entry: u32) -> char {
    char::from_u32(entry & CHAR_MASK).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// True when `bytes` are plain ASCII without ESC or DEL, so that MARC-8
/// decoding is the identity (C0 controls included).
pub fn is_plain_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b < 0x7F && b != ESC)
}

/// Decodes one whole value from the default state to an NFC string, or
/// returns the first problem.
pub fn decode(bytes: &[u8]) -> Result<String, Problem> {
    let (s, problems) = decode_lossy(bytes);
    match problems.into_iter().next() {
        Some(p) => Err(p),
        None => Ok(s),
    }
}

/// Decodes one whole value from the default state to an NFC string,
/// replacing what cannot be decoded, and returns the problems found.
pub fn decode_lossy(bytes: &[u8]) -> (String, Vec<Problem>) {
    if is_plain_ascii(bytes)
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return (s.to_owned(), Vec::new());
    }
    let mut decoder = Decoder::new();
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
    decoder.decode_into(bytes, &mut out);
    (to_nfc(out), decoder.problems)
}

/// NFC-normalises `s`, without copying when it already is.
fn to_nfc(s: String) -> String {
    if is_nfc_quick(s.chars()) == IsNormalized::Yes {
        s
    } else {
        s.nfc().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_latin_table_is_identity() {
        for (i, &e) in tables::SET_42.iter().enumerate() {
            assert_eq!(e, i as u32 + 0x21);
        }
    }

    #[test]
    fn eacc_table_is_sorted() {
        assert!(tables::SET_31.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
