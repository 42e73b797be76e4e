//! Errors and problems found while reading, decoding or writing records.

use std::fmt;

/// What is wrong with one record's structure or bytes.
///
/// In lenient mode most kinds are repaired and kept as a problem on the record;
/// in strict mode every kind is an error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bytes between records that belong to no record (blanks, newlines, NUL, SUB).
    Filler {
        /// How many bytes were skipped.
        len: usize,
    },
    /// The leader is shorter than 24 bytes.
    ShortLeader {
        /// How many bytes there were.
        len: usize,
    },
    /// Leader/00-04 is not five ASCII digits.
    BadRecordLength {
        /// The five bytes as text.
        found: String,
    },
    /// The declared record length does not match where the record terminator is.
    LengthMismatch {
        /// Leader/00-04.
        declared: usize,
        /// Bytes up to and including the record terminator.
        actual: usize,
    },
    /// Leader/12-16 is not digits, or points outside the record.
    BadBaseAddress {
        /// The five bytes as text.
        found: String,
    },
    /// Leader/10, 11 or 20-23 are not the MARC 21 constants `2`, `2` and `4500`.
    LeaderConstants {
        /// The leader as text.
        leader: String,
    },
    /// The directory is not a whole number of 12-byte entries, or an entry is not digits.
    BadDirectory {
        /// What is wrong.
        detail: String,
    },
    /// A directory entry points outside the data area.
    FieldOutOfBounds {
        /// The field's tag.
        tag: String,
        /// Declared start relative to the base address.
        start: usize,
        /// Declared length.
        len: usize,
    },
    /// A field does not end with the field terminator 0x1E.
    MissingFieldTerminator {
        /// The field's tag.
        tag: String,
    },
    /// A data field is shorter than its two indicators, or has text before its first subfield.
    BadDataField {
        /// The field's tag.
        tag: String,
        /// What is wrong.
        detail: String,
    },
    /// An indicator is not a digit, lowercase letter or blank.
    BadIndicator {
        /// The field's tag.
        tag: String,
        /// The byte found.
        byte: u8,
    },
    /// The input ended inside a record.
    Truncated {
        /// Bytes the leader promised.
        declared: usize,
        /// Bytes available.
        available: usize,
    },
    /// No record terminator within the size limit: this is not ISO 2709 data.
    NotIso2709 {
        /// How many bytes were skipped to find the next terminator.
        skipped: usize,
    },
    /// A MARCXML record or document is not valid.
    Xml(String),
    /// Reading from the source failed; reading stops.
    Io(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Filler { len } => write!(f, "{len} filler bytes between records"),
            ErrorKind::ShortLeader { len } => {
                write!(f, "leader has {len} bytes; a leader has 24")
            }
            ErrorKind::BadRecordLength { found } => {
                write!(
                    f,
                    "record length {found:?} in leader/00-04 is not five digits"
                )
            }
            ErrorKind::LengthMismatch { declared, actual } => write!(
                f,
                "leader says the record has {declared} bytes but its terminator is at byte {actual}"
            ),
            ErrorKind::BadBaseAddress { found } => write!(
                f,
                "base address of data {found:?} in leader/12-16 is not a position inside the record"
            ),
            ErrorKind::LeaderConstants { leader } => write!(
                f,
                "leader {leader:?} does not have 2, 2 and 4500 in positions 10, 11 and 20-23"
            ),
            ErrorKind::BadDirectory { detail } => write!(f, "directory is damaged: {detail}"),
            ErrorKind::FieldOutOfBounds { tag, start, len } => write!(
                f,
                "field {tag} is said to start at {start} with {len} bytes, outside the record"
            ),
            ErrorKind::MissingFieldTerminator { tag } => {
                write!(f, "field {tag} does not end with a field terminator (0x1E)")
            }
            ErrorKind::BadDataField { tag, detail } => write!(f, "field {tag}: {detail}"),
            ErrorKind::BadIndicator { tag, byte } => {
                write!(
                    f,
                    "field {tag} has indicator byte 0x{byte:02X}, which is not a digit, letter or blank"
                )
            }
            ErrorKind::Truncated {
                declared,
                available,
            } => write!(
                f,
                "input ends inside a record: {available} of {declared} bytes present"
            ),
            ErrorKind::NotIso2709 { skipped } => write!(
                f,
                "no record terminator (0x1D) found; skipped {skipped} bytes that are not ISO 2709"
            ),
            ErrorKind::Xml(message) => f.write_str(message),
            ErrorKind::Io(message) => write!(f, "could not read input: {message}"),
        }
    }
}

/// A record that could not be read, with where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// Position of the record in its file, counting from 1.
    pub index: usize,
    /// Byte offset of the record's first byte in the input.
    pub offset: u64,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} at byte {}: {}",
            self.index, self.offset, self.kind
        )
    }
}

impl std::error::Error for ReadError {}
