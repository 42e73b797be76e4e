//! MARC 21 record model and codecs for Bibgate.
//!
//! The first stage of every import: bytes in, a [`Record`] with UTF-8 text out, plus
//! everything that was wrong on the way.
//!
//! - [`iso2709`]: a streaming [`iso2709::Reader`] over any byte source that frames records in
//!   constant memory, strict or lenient ([`iso2709::Mode`]); [`iso2709::parse_record`] splits
//!   one record into leader and raw fields; [`iso2709::write_record`] writes UTF-8 ISO 2709.
//! - [`decode`]: raw fields to UTF-8 text from MARC-8 (via `bibgate-marc8`) or UTF-8, with
//!   Leader/09 mismatch detection.
//! - [`marcxml`]: MARCXML writer and streaming reader; [`json`]: MARC-in-JSON writer.
//! - [`check`]: the MARCXML convertibility verdict with stable reason codes.
//! - [`parse`]: the whole pipeline for one ISO 2709 record.
//!
//! # Invariants
//!
//! - Pure: no files, sockets, environment or clock. Readers take any `std::io::Read` the
//!   caller opened; nothing here opens one.
//! - Never panics on any input: damaged records become errors or findings with the record's
//!   index, byte offset and tag, and reading goes on with the next record.
//! - Text in a [`Record`] is always UTF-8; the raw bytes stay with the caller.
//! - Must not depend on tokio, any AWS SDK or wasmtime.
//!
//! ```
//! use bibgate_marc::{parse, iso2709::Mode, decode::Charset};
//! let mut record = bibgate_marc::Record::default();
//! record.push_control("001", "ocm00012345 ");
//! record.push_data("245", b'1', b'0', &[(b'a', "Caf\u{e9} /")]);
//! let mut bytes = Vec::new();
//! bibgate_marc::iso2709::write_record(&record, &mut bytes).unwrap();
//! let parsed = parse(&bytes, Mode::Strict, Charset::Auto).unwrap();
//! assert_eq!(parsed.decoded.record.fields, record.fields);
//! assert!(parsed.verdict.is_convertible());
//! ```
#![deny(missing_docs)]

pub mod check;
pub mod decode;
mod error;
pub mod iso2709;
pub mod json;
pub mod marcxml;
mod record;
pub mod source;

pub use error::{ErrorKind, ReadError};
pub use record::{Field, Leader, Record, Subfield, Tag};
pub use source::{Format, Item, Source};

use check::Verdict;
use decode::{Charset, Decoded};
use iso2709::Mode;

/// One ISO 2709 record, decoded and checked.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The decoded record and its character problems.
    pub decoded: Decoded,
    /// Structural repairs made by the lenient reader.
    pub structure: Vec<ErrorKind>,
    /// The convertibility verdict.
    pub verdict: Verdict,
}

/// Parses, decodes and checks one ISO 2709 record.
///
/// Fails only when no leader and directory can be found at all; every other problem is a
/// finding in the verdict.
pub fn parse(bytes: &[u8], mode: Mode, charset: Charset) -> Result<Parsed, ErrorKind> {
    parse_framed(bytes, Vec::new(), mode, charset)
}

/// [`parse`] for a record a reader framed: `framing` holds the reader's repairs, which the
/// verdict counts with the record's own (the record is checked once).
pub fn parse_framed(
    bytes: &[u8],
    mut framing: Vec<ErrorKind>,
    mode: Mode,
    charset: Charset,
) -> Result<Parsed, ErrorKind> {
    let raw = iso2709::parse_record(bytes, mode)?;
    let decoded = decode::decode(&raw, charset);
    framing.extend(raw.problems);
    let verdict = check::check(&decoded, &framing);
    Ok(Parsed {
        decoded,
        structure: framing,
        verdict,
    })
}
