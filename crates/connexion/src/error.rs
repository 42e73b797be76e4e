//! Error types of the codec.
//!
//! Error messages never contain a field value.
//! They quote at most one offending byte, a record length field, or sizes and offsets.

use thiserror::Error;

/// A request that can never become valid, or a request the parser refuses to hold.
///
/// Returned inside [`crate::Parse::Error`] and by a few [`crate::RequestParser`] helpers.
/// Every variant has a stable [`code`](ProtocolError::code) for logs and metrics.
/// Offsets count bytes from the first byte the parser was fed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A byte that cannot start an item: not `U`, `A`, `P`, a space, a digit, NUL, or `GET `
    /// at the start of a request.
    #[error(
        "unexpected byte 0x{byte:02x} at offset {offset}; expected U, A, P, a space, a record or NUL"
    )]
    UnexpectedByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the stream.
        offset: u64,
    },
    /// The byte after a field tag is neither a decimal digit nor a single-byte length (`>= 0x40`).
    #[error(
        "bad length byte 0x{byte:02x} after field {tag} at offset {offset}; expected a digit or a byte of at least 0x40"
    )]
    BadFieldLength {
        /// The field tag: `U`, `A` or `P`.
        tag: char,
        /// The offending length byte.
        byte: u8,
        /// Offset of the length byte in the stream.
        offset: u64,
    },
    /// The first five bytes of a record are not ASCII digits, or give a length below 5.
    #[error(
        "bad record length \"{}\" at offset {offset}; expected 5 ascii digits giving at least 00005",
        .length_field.escape_ascii()
    )]
    BadRecordLength {
        /// The length field bytes seen so far (up to 5).
        length_field: Vec<u8>,
        /// Offset of the record in the stream.
        offset: u64,
    },
    /// One item (field or record), an unterminated length, or an HTTP header needs more bytes
    /// than the parser may hold.
    #[error("request too large: an item of at least {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes the item needs (declared size), or bytes held so far when the size is unknown.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// More input followed a complete record in the same read; the server takes one record
    /// per request.
    #[error("one record expected per request; {extra_bytes} more bytes followed the record")]
    OneRecordExpected {
        /// Bytes buffered after the record, not counting trailing spaces and one NUL.
        extra_bytes: usize,
    },
    /// The request stopped (idle timeout or end of stream) before a complete record arrived.
    #[error("incomplete request: {}", describe_incomplete(*.fields, *.held_bytes, *.item_bytes))]
    Incomplete {
        /// Complete fields received in this request.
        fields: usize,
        /// Bytes of a partial item held.
        held_bytes: usize,
        /// Total size of the partial item, when its length is already known.
        item_bytes: Option<usize>,
    },
    /// With decimal lengths, several splits of the length digits form complete requests
    /// ending at the same byte, and not exactly one of them names a known logon id.
    #[error(
        "ambiguous request: {readings} readings of its decimal length digits form a complete request, and not exactly one names a known logon id"
    )]
    AmbiguousLength {
        /// How many readings completed.
        readings: usize,
    },
}

impl ProtocolError {
    /// A stable, kebab-case identifier of the variant, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::UnexpectedByte { .. } => "unexpected-byte",
            ProtocolError::BadFieldLength { .. } => "bad-field-length",
            ProtocolError::BadRecordLength { .. } => "bad-record-length",
            ProtocolError::TooLarge { .. } => "too-large",
            ProtocolError::OneRecordExpected { .. } => "one-record-expected",
            ProtocolError::Incomplete { .. } => "incomplete-request",
            ProtocolError::AmbiguousLength { .. } => "ambiguous-length",
        }
    }
}

fn describe_incomplete(fields: usize, held_bytes: usize, item_bytes: Option<usize>) -> String {
    let mut text = format!("no record after {fields} complete field(s)");
    if held_bytes > 0 {
        match item_bytes {
            Some(total) => text.push_str(&format!(
                "; {held_bytes} of {total} bytes of the next item received"
            )),
            None => text.push_str(&format!("; {held_bytes} bytes of a partial item received")),
        }
    }
    text
}

/// A request that [`crate::encode_request`] cannot encode so that the server reads it back
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A value is longer than the single-byte length encoding allows (191 bytes).
    #[error("field {tag} has {len} bytes; the single-byte length encoding allows at most {max}")]
    ValueTooLong {
        /// The field tag: `U`, `A` or `P`.
        tag: char,
        /// The value length in bytes.
        len: usize,
        /// The maximum for the encoding.
        max: usize,
    },
    /// With decimal lengths, a non-empty value starting with a digit would be read as part of
    /// its length.
    #[error(
        "field {tag} starts with a digit, which decimal length encoding cannot express; use the single-byte encoding"
    )]
    AmbiguousValue {
        /// The field tag: `U`, `A` or `P`.
        tag: char,
    },
    /// The record does not start with 5 ASCII digits equal to its own length in bytes
    /// (at least 5).
    #[error(
        "record of {actual} bytes does not start with its own 5-digit length (found \"{}\")",
        .length_field.escape_ascii()
    )]
    BadRecord {
        /// The first bytes of the record (up to 5).
        length_field: Vec<u8>,
        /// The record length in bytes.
        actual: usize,
    },
}

impl EncodeError {
    /// A stable, kebab-case identifier of the variant, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            EncodeError::ValueTooLong { .. } => "value-too-long",
            EncodeError::AmbiguousValue { .. } => "ambiguous-value",
            EncodeError::BadRecord { .. } => "bad-record",
        }
    }
}
