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
