//! One stream of records from ISO 2709 or MARCXML input, whichever the bytes are.

use std::io::BufRead;

use crate::Parsed;
use crate::check::{self, Verdict};
use crate::decode::{Charset, Decoded, Encoding};
use crate::error::{ErrorKind, ReadError};
use crate::iso2709::{self, Mode};
use crate::marcxml::XmlReader;

/// The input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ISO 2709 ("binary MARC"), MARC-8 or UTF-8.
    Iso2709,
    /// MARCXML.
    MarcXml,
}

impl Format {
    /// Guesses the format from the first bytes: MARCXML starts (after blanks and a byte
    /// order mark) with `<`; anything else is taken as ISO 2709.
    pub fn sniff(prefix: &[u8]) -> Format {
        let prefix = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
        match prefix.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Format::MarcXml,
            _ => Format::Iso2709,
        }
    }
}

/// One record from a [`Source`].
#[derive(Debug)]
pub struct Item {
    /// Position in the input, counting from 1.
    pub index: usize,
    /// Byte offset where the record starts (for MARCXML: where its end was read).
    pub offset: u64,
    /// The record's bytes as received (ISO 2709 only; empty for MARCXML).
    pub raw: Vec<u8>,
    /// The decoded, checked record, or why it could not be read.
    pub outcome: Result<Parsed, ReadError>,
}

enum Inner<R: BufRead> {
    Iso(iso2709::Reader<R>),
    Xml(XmlReader<R>),
}

/// Records from ISO 2709 or MARCXML input, decoded and checked one at a time.
pub struct Source<R: BufRead> {
    inner: Inner<R>,
    mode: Mode,
    charset: Charset,
}

impl<R: BufRead> Source<R> {
    /// A source over `input`, in the given format.
    pub fn new(input: R, format: Format, mode: Mode, charset: Charset) -> Source<R> {
        let inner = match format {
            Format::Iso2709 => Inner::Iso(iso2709::Reader::new(input, mode)),
            Format::MarcXml => Inner::Xml(XmlReader::new(input)),
        };
        Source {
            inner,
            mode,
            charset,
        }
    }

    /// A source whose format is sniffed from the first bytes of `input`.
    pub fn sniffed(mut input: R, mode: Mode, charset: Charset) -> std::io::Result<Source<R>> {
        let format = Format::sniff(input.fill_buf()?);
        Ok(Source::new(input, format, mode, charset))
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_item(&mut self) -> Option<Item> {
        match &mut self.inner {
            Inner::Iso(reader) => {
                let framed = reader.next_record()?;
                Some(match framed {
                    Err(error) => Item {
                        index: error.index,
                        offset: error.offset,
                        raw: Vec::new(),
                        outcome: Err(error),
                    },
                    Ok(bytes) => {
                        let raw = bytes.bytes.to_vec();
                        let outcome =
                            crate::parse_framed(&raw, bytes.problems, self.mode, self.charset)
                                .map_err(|kind| ReadError {
                                    index: bytes.index,
                                    offset: bytes.offset,
                                    kind,
                                });
                        Item {
                            index: bytes.index,
                            offset: bytes.offset,
                            raw,
                            outcome,
                        }
                    }
                })
            }
            Inner::Xml(reader) => {
                let read = reader.next_record()?;
                Some(match read {
                    Err(error) => Item {
                        index: error.index,
                        offset: error.offset,
                        raw: Vec::new(),
                        outcome: Err(ReadError {
                            index: error.index,
                            offset: error.offset,
                            kind: ErrorKind::Xml(error.message),
                        }),
                    },
                    Ok(record) => Item {
                        index: 0,
                        offset: 0,
                        raw: Vec::new(),
                        outcome: Ok(from_xml(record)),
                    },
                })
                .map(|mut item| {
                    if item.index == 0 {
                        item.index = reader.records_seen();
                        item.offset = reader.position();
                    }
                    item
                })
            }
        }
    }
}

/// Wraps a record read from MARCXML (already Unicode) as a parsed record.
pub fn from_xml(record: crate::Record) -> Parsed {
    let verdict: Verdict = check::check_record(&record);
    Parsed {
        decoded: Decoded {
            record,
            encoding: Encoding::Utf8,
            leader_mismatch: false,
            problems: Vec::new(),
            stray_text: Vec::new(),
        },
        structure: Vec::new(),
        verdict,
    }
}

impl<R: BufRead> Iterator for Source<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.next_item()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(bytes: &[u8]) -> Vec<Item> {
        Source::sniffed(bytes, Mode::Lenient, Charset::Auto)
            .unwrap()
            .collect()
    }

    #[test]
    fn r18_a_file_that_is_not_marc_is_not_called_a_truncated_record() {
        let text = "This is a letter, not a MARC file.\n".repeat(18);
        let items = items(text.as_bytes());
        assert_eq!(items.len(), 1);
        let error = items[0].outcome.as_ref().unwrap_err().to_string();
        assert!(error.contains("not ISO 2709"), "{error}");
        assert!(!error.contains("bytes present"), "{error}");
    }

    #[test]
    fn r18_a_record_cut_short_is_still_truncated() {
        let items = items(b"01234nam a2200025 a 4500\x1e");
        let error = items[0].outcome.as_ref().unwrap_err().to_string();
        assert!(error.contains("25 of 1234 bytes present"), "{error}");
    }

    #[test]
    fn r18_a_marcxml_record_with_a_leader_and_no_fields_is_not_convertible() {
        let xml = br#"<collection xmlns="http://www.loc.gov/MARC21/slim"><record><leader>00000nam a2200000 a 4500</leader></record></collection>"#;
        let items = items(xml);
        assert_eq!(items.len(), 1);
        let parsed = items[0].outcome.as_ref().unwrap();
        assert!(!parsed.verdict.is_convertible(), "{:?}", parsed.verdict);
        assert_eq!(
            parsed.verdict.findings[0].reason.code(),
            "STRUCTURE_DAMAGED"
        );
    }
}
