//! ISO 2709 reading (streaming, strict or lenient) and writing (UTF-8).

use std::io::Read;

use crate::error::{ErrorKind, ReadError};
use crate::record::{Field, Leader, Record, Tag};

/// Record terminator.
pub const RECORD_TERMINATOR: u8 = 0x1D;
/// Field terminator.
pub const FIELD_TERMINATOR: u8 = 0x1E;
/// Subfield delimiter.
pub const SUBFIELD_DELIMITER: u8 = 0x1F;

/// The largest record the lenient reader will look for a terminator in (records over
/// 99,999 bytes exist in the wild, so the limit is well above the format's own).
pub const MAX_LENIENT_RECORD_BYTES: usize = 1 << 20;

/// How much damage the reader repairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Any deviation from ISO 2709 / MARC 21 structure makes the record an error.
    Strict,
    /// Repairs what can be repaired (wrong lengths, bad base address, damaged directory,
    /// filler between records) and keeps each repair as a problem on the record.
    #[default]
    Lenient,
}

/// One field as found in the data area, before any character decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawField<'a> {
    /// The tag from the directory.
    pub tag: Tag,
    /// The field's bytes without the field terminator.
    pub data: &'a [u8],
}

impl<'a> RawField<'a> {
    /// For a data field: the two indicator bytes, if present.
    pub fn indicators(&self) -> Option<(u8, u8)> {
        match self.data {
            [ind1, ind2, ..] => Some((*ind1, *ind2)),
            _ => None,
        }
    }

    /// For a data field: the bytes before the first subfield delimiter after the indicators
    /// (should be empty) and an iterator over `(code, value)` pairs.
    pub fn subfields(&self) -> (&'a [u8], RawSubfields<'a>) {
        let body = self.data.get(2..).unwrap_or(&[]);
        let first = body
            .iter()
            .position(|&b| b == SUBFIELD_DELIMITER)
            .unwrap_or(body.len());
        let (junk, rest) = body.split_at(first);
        (junk, RawSubfields { rest })
    }
}

/// Iterator over the `(code, value)` pairs of a raw data field.
#[derive(Clone, Debug)]
pub struct RawSubfields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawSubfields<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // `rest` always starts at a delimiter or is empty.
            let after = self.rest.get(1..)?;
            let end = after
                .iter()
                .position(|&b| b == SUBFIELD_DELIMITER)
                .unwrap_or(after.len());
            let (piece, rest) = after.split_at(end);
            self.rest = rest;
            // An empty subfield (a delimiter with no code, e.g. at the end of a field) holds
            // nothing and is passed over, as other MARC readers do.
            if let Some((code, value)) = piece.split_first() {
                return Some((*code, value));
            }
        }
    }
}

/// A record split into leader and fields, borrowing its bytes; no character decoding yet.
#[derive(Clone, Debug)]
pub struct RawRecord<'a> {
    /// The leader as read.
    pub leader: Leader,
    /// The fields in directory order.
    pub fields: Vec<RawField<'a>>,
    /// Repairs made in lenient mode; always empty in strict mode.
    pub problems: Vec<ErrorKind>,
    /// The record's bytes as received.
    pub bytes: &'a [u8],
}

fn digits(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0usize, |n, &b| n * 10 + usize::from(b - b'0')),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tag_text(tag: &[u8]) -> String {
    text(tag)
}

/// Splits one record's bytes (from the first leader byte up to and including the record
/// terminator, if any) into leader and fields.
///
/// In strict mode the first deviation is returned as the error. In lenient mode the reader
/// repairs what it can: a base address that does not point after the directory is replaced
/// by the position after the first field terminator, and a directory whose entries do not
/// fit the data area is replaced by splitting the data area at field terminators.
pub fn parse_record(bytes: &[u8], mode: Mode) -> Result<RawRecord<'_>, ErrorKind> {
    let mut problems = Vec::new();
    let note = |kind: ErrorKind, problems: &mut Vec<ErrorKind>| -> Result<(), ErrorKind> {
        match mode {
            Mode::Strict => Err(kind),
            Mode::Lenient => {
                problems.push(kind);
                Ok(())
            }
        }
    };

    let Some(leader_bytes) = bytes.get(..24) else {
        return Err(ErrorKind::ShortLeader { len: bytes.len() });
    };
    let mut leader = [0u8; 24];
    leader.copy_from_slice(leader_bytes);
    let leader = Leader(leader);

    // Leader/00-04.
    match digits(&bytes[..5]) {
        Some(declared) if declared == bytes.len() => {}
        Some(declared) => note(
            ErrorKind::LengthMismatch {
                declared,
                actual: bytes.len(),
            },
            &mut problems,
        )?,
        None => note(
            ErrorKind::BadRecordLength {
                found: text(&bytes[..5]),
            },
            &mut problems,
        )?,
    }
    if bytes.last() != Some(&RECORD_TERMINATOR) {
        note(
            ErrorKind::Truncated {
                declared: digits(&bytes[..5]).unwrap_or(0),
                available: bytes.len(),
            },
            &mut problems,
        )?;
    }
    if leader.0[10] != b'2' || leader.0[11] != b'2' || &leader.0[20..24] != b"4500" {
        note(
            ErrorKind::LeaderConstants {
                leader: leader.as_text(),
            },
            &mut problems,
        )?;
    }

    // The directory ends at the first field terminator after the leader.
    let directory_end = bytes[24..]
        .iter()
        .position(|&b| b == FIELD_TERMINATOR)
        .map(|p| p + 24);
    let base = match (digits(&bytes[12..17]), directory_end) {
        (Some(base), Some(end)) if base == end + 1 && base <= bytes.len() => base,
        (Some(base), None) if base <= bytes.len() && base >= 24 => {
            note(
                ErrorKind::BadDirectory {
                    detail: "the directory does not end with a field terminator".into(),
                },
                &mut problems,
            )?;
            base
        }
        (_, Some(end)) => {
            note(
                ErrorKind::BadBaseAddress {
                    found: text(&bytes[12..17]),
                },
                &mut problems,
            )?;
            end + 1
        }
        (_, None) => {
            return Err(ErrorKind::BadDirectory {
                detail: "there is no field terminator after the leader".into(),
            });
        }
    };
    let directory = &bytes[24..base.saturating_sub(1).max(24)];
    let data = &bytes[base.min(bytes.len())..];
    if !directory.len().is_multiple_of(12)
        && let Some((fields, long)) = wide_length_entries(directory, data)
    {
        // Entries that state a 5-digit field length: the entries after them are shifted, and
        // read 12 bytes at a time they would name fields that do not exist.
        note(
            ErrorKind::BadDirectory {
                detail: format!(
                    "the entr{} of field{} {} state{} a 5-digit length ({}); a directory entry has 4 digits for it",
                    if long.len() == 1 { "y" } else { "ies" },
                    if long.len() == 1 { "" } else { "s" },
                    long.iter()
                        .map(|(tag, _)| tag.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if long.len() == 1 { "s" } else { "" },
                    long.iter()
                        .map(|(_, len)| len.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            },
            &mut problems,
        )?;
        return Ok(RawRecord {
            leader,
            fields,
            problems,
            bytes,
        });
    }
    if !directory.len().is_multiple_of(12) {
        note(
            ErrorKind::BadDirectory {
                detail: format!(
                    "{} bytes is not a whole number of 12-byte entries",
                    directory.len()
                ),
            },
            &mut problems,
        )?;
    }

    let mut fields = Vec::with_capacity(directory.len() / 12);
    let mut directory_ok = true;
    for entry in directory.chunks_exact(12) {
        let tag = Tag([entry[0], entry[1], entry[2]]);
        let (Some(len), Some(start)) = (digits(&entry[3..7]), digits(&entry[7..12])) else {
            note(
                ErrorKind::BadDirectory {
                    detail: format!(
                        "entry {:?} has a length or start that is not digits",
                        text(entry)
                    ),
                },
                &mut problems,
            )?;
            directory_ok = false;
            break;
        };
        let Some(field) = data.get(start..start + len) else {
            note(
                ErrorKind::FieldOutOfBounds {
                    tag: tag_text(&entry[..3]),
                    start,
                    len,
                },
                &mut problems,
            )?;
            directory_ok = false;
            break;
        };
        match field.split_last() {
            Some((&FIELD_TERMINATOR, body)) => fields.push(RawField { tag, data: body }),
            _ => {
                note(
                    ErrorKind::MissingFieldTerminator {
                        tag: tag_text(&entry[..3]),
                    },
                    &mut problems,
                )?;
                directory_ok = false;
                break;
            }
        }
    }

    if !directory_ok {
        // Lenient repair: trust the terminators, not the lengths. Tags come from the
        // directory entries in order of their stated start; the data area is cut at 0x1E.
        fields = split_by_terminators(directory, data);
    }

    Ok(RawRecord {
        leader,
        fields,
        problems,
        bytes,
    })
}

/// The fields of a directory with 5-digit lengths, and the tags and lengths of those entries.
type WideEntries<'a> = (Vec<RawField<'a>>, Vec<(String, usize)>);

/// Reads a directory that is not a whole number of 12-byte entries as entries of 12 bytes,
/// or of 13 where an entry states a 5-digit field length (a writer's overflow for a field
/// of 10,000 bytes or more). Each entry must name a field that ends with its terminator
/// inside the data area, and at least one must be 13 bytes. Returns the fields and the tags
/// and lengths of the 13-byte entries; `None` when the directory is damaged otherwise.
fn wide_length_entries<'a>(directory: &[u8], data: &'a [u8]) -> Option<WideEntries<'a>> {
    let field_at = |start: usize, len: usize| -> Option<&'a [u8]> {
        match data.get(start..start.checked_add(len)?)?.split_last() {
            Some((&FIELD_TERMINATOR, body)) => Some(body),
            _ => None,
        }
    };
    let mut fields = Vec::new();
    let mut long = Vec::new();
    let mut at = 0;
    while at < directory.len() {
        let entry = &directory[at..];
        let tag = Tag([*entry.first()?, *entry.get(1)?, *entry.get(2)?]);
        let normal = (
            entry.get(3..7).and_then(digits),
            entry.get(7..12).and_then(digits),
        );
        if let (Some(len), Some(start)) = normal
            && let Some(body) = field_at(start, len)
        {
            fields.push(RawField { tag, data: body });
            at += 12;
            continue;
        }
        let wide = (
            entry.get(3..8).and_then(digits),
            entry.get(8..13).and_then(digits),
        );
        let (Some(len), Some(start)) = wide else {
            return None;
        };
        let body = field_at(start, len)?;
        fields.push(RawField { tag, data: body });
        long.push((tag_text(&entry[..3]), len));
        at += 13;
    }
    (!long.is_empty()).then_some((fields, long))
}

fn split_by_terminators<'a>(directory: &[u8], data: &'a [u8]) -> Vec<RawField<'a>> {
    let mut tags: Vec<(usize, Tag)> = directory
        .chunks_exact(12)
        .map(|entry| {
            let start = digits(&entry[7..12]).unwrap_or(usize::MAX);
            (start, Tag([entry[0], entry[1], entry[2]]))
        })
        .collect();
    tags.sort_by_key(|(start, _)| *start);
    let body = match data.split_last() {
        Some((&RECORD_TERMINATOR, body)) => body,
        _ => data,
    };
    let mut pieces: Vec<&[u8]> = body.split(|&b| b == FIELD_TERMINATOR).collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    tags.into_iter()
        .zip(pieces)
        .map(|((_, tag), piece)| RawField { tag, data: piece })
        .collect()
}

/// Streams records out of any byte source in constant memory.
///
/// Each call to [`Reader::next_record`] yields either a record's bytes or an error naming
/// the record's index and byte offset; after an error, reading continues with the next
/// record. Only a failure of the source itself ends the stream.
pub struct Reader<R> {
    source: R,
    mode: Mode,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    index: usize,
    eof: bool,
    failed: bool,
}

/// A framed record (its length and framing problems), the end of input, or an error with
/// the offset it applies to.
type Framed = Result<Option<(usize, Vec<ErrorKind>)>, (u64, ErrorKind)>;

/// Bytes skipped between records: blank, CR, LF, NUL and SUB (0x1A, the DOS end of file).
fn is_filler(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | 0 | 0x1A | RECORD_TERMINATOR)
}

/// One record's bytes from a [`Reader`], with where they came from.
#[derive(Debug)]
pub struct RecordBytes<'a> {
    /// Position in the file, counting from 1.
    pub index: usize,
    /// Byte offset of the first byte.
    pub offset: u64,
    /// The record's bytes, as framed by the reader.
    pub bytes: &'a [u8],
    /// Framing repairs (lenient mode only).
    pub problems: Vec<ErrorKind>,
}

impl<R: Read> Reader<R> {
    /// A reader over `source` (a file, a socket buffer, a byte slice).
    pub fn new(source: R, mode: Mode) -> Reader<R> {
        Reader {
            source,
            mode,
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            offset: 0,
            index: 0,
            eof: false,
            failed: false,
        }
    }

    /// Makes sure at least `want` bytes are buffered from `start`, unless the input ends.
    fn fill(&mut self, want: usize) -> Result<(), ErrorKind> {
        while self.end - self.start < want && !self.eof {
            if self.start > 0 && self.end + 4096 > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).max(want);
                self.buf.resize(grown, 0);
            }
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ErrorKind::Io(e.to_string())),
            }
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Finds the next record terminator at or after `from` bytes into the buffered data,
    /// reading more as needed, up to `limit` bytes. Returns its position relative to start.
    fn find_terminator(&mut self, from: usize, limit: usize) -> Result<Option<usize>, ErrorKind> {
        let mut searched = from;
        loop {
            let available = self.end - self.start;
            if let Some(p) = self.buf[self.start + searched..self.end]
                .iter()
                .position(|&b| b == RECORD_TERMINATOR)
            {
                return Ok(Some(searched + p));
            }
            searched = available;
            if self.eof || available >= limit {
                return Ok(None);
            }
            self.fill(available + 64 * 1024)?;
        }
    }

    /// The next record's bytes, an error for a record that cannot be framed, or `None` at
    /// the end of the input.
    pub fn next_record(&mut self) -> Option<Result<RecordBytes<'_>, ReadError>> {
        if self.failed {
            return None;
        }
        match self.frame() {
            Ok(Some((len, problems))) => {
                let from = self.start;
                let offset = self.offset;
                self.consume(len);
                Some(Ok(RecordBytes {
                    index: self.index,
                    offset,
                    bytes: &self.buf[from..from + len],
                    problems,
                }))
            }
            Ok(None) => None,
            Err((offset, ErrorKind::Io(message))) => {
                self.failed = true;
                Some(Err(ReadError {
                    index: self.index + 1,
                    offset,
                    kind: ErrorKind::Io(message),
                }))
            }
            Err((offset, kind)) => Some(Err(ReadError {
                index: self.index,
                offset,
                kind,
            })),
        }
    }

    /// Frames the next record: returns its length from `start` and any framing problems,
    /// or an error (with the offset it applies to) after consuming the damaged bytes.
    fn frame(&mut self) -> Framed {
        let io = |offset: u64| move |kind: ErrorKind| (offset, kind);
        let mut problems = Vec::new();

        // Skip filler.
        let mut skipped = 0;
        loop {
            self.fill(1).map_err(io(self.offset))?;
            if self.start == self.end {
                if skipped > 0 && self.mode == Mode::Strict {
                    self.index += 1;
                    return Err((
                        self.offset - skipped as u64,
                        ErrorKind::Filler { len: skipped },
                    ));
                }
                return Ok(None);
            }
            let byte = self.buf[self.start];
            if !is_filler(byte) {
                break;
            }
            self.consume(1);
            skipped += 1;
        }
        if skipped > 0 {
            match self.mode {
                Mode::Strict => {
                    self.index += 1;
                    return Err((
                        self.offset - skipped as u64,
                        ErrorKind::Filler { len: skipped },
                    ));
                }
                Mode::Lenient => problems.push(ErrorKind::Filler { len: skipped }),
            }
        }
        self.index += 1;
        let offset = self.offset;

        self.fill(5).map_err(io(offset))?;
        let declared = digits(&self.buf[self.start..(self.start + 5).min(self.end)]);
        if let Some(declared) = declared.filter(|&n| n >= 25) {
            self.fill(declared).map_err(io(offset))?;
            let available = self.end - self.start;
            if available >= declared && self.buf[self.start + declared - 1] == RECORD_TERMINATOR {
                // The ordinary case: the leader's length is right. A terminator inside the
                // stated length means the length is wrong, which parse_record reports.
                if self.mode == Mode::Strict
                    || !self.buf[self.start..self.start + declared - 1].contains(&RECORD_TERMINATOR)
                {
                    return Ok(Some((declared, problems)));
                }
            }
            if self.mode == Mode::Strict {
                let kind = if available < declared && self.eof {
                    ErrorKind::Truncated {
                        declared,
                        available,
                    }
                } else {
                    ErrorKind::LengthMismatch {
                        declared,
                        actual: self
                            .find_terminator(0, declared.max(100_000))
                            .map_err(io(offset))?
                            .map_or(available, |p| p + 1),
                    }
                };
                self.resync(offset, declared)?;
                return Err((offset, kind));
            }
        } else if self.mode == Mode::Strict {
            let found = text(&self.buf[self.start..(self.start + 5).min(self.end)]);
            self.resync(offset, 1)?;
            return Err((offset, ErrorKind::BadRecordLength { found }));
        }

        // Lenient: the record ends at the next terminator.
        match self
            .find_terminator(0, MAX_LENIENT_RECORD_BYTES)
            .map_err(io(offset))?
        {
            Some(p) => Ok(Some((p + 1, problems))),
            None => {
                let available = self.end - self.start;
                if self.eof {
                    self.consume(available);
                    // Bytes that do not start with a record length are not the start of a
                    // record cut short: "631 of 0 bytes present" would say nothing true.
                    let kind = match declared.filter(|&n| n >= 25) {
                        Some(declared) => ErrorKind::Truncated {
                            declared,
                            available,
                        },
                        None => ErrorKind::NotIso2709 { skipped: available },
                    };
                    Err((offset, kind))
                } else {
                    self.consume(available);
                    Err((offset, ErrorKind::NotIso2709 { skipped: available }))
                }
            }
        }
    }

    /// After a framing error in strict mode: skip to just after the next record terminator.
    fn resync(&mut self, offset: u64, at_least: usize) -> Result<(), (u64, ErrorKind)> {
        let found = self
            .find_terminator(0, MAX_LENIENT_RECORD_BYTES)
            .map_err(|kind| (offset, kind))?;
        let available = self.end - self.start;
        let skip = found
            .map_or(available, |p| p + 1)
            .max(at_least.min(available));
        self.consume(skip);
        Ok(())
    }
}

/// Why a record cannot be written as ISO 2709.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// A field is longer than the 9,999 bytes a directory entry can state.
    FieldTooLong {
        /// The field's tag.
        tag: Tag,
        /// Its length in bytes, terminator included.
        len: usize,
    },
    /// The record is longer than the 99,999 bytes the leader can state.
    RecordTooLong {
        /// Its length in bytes.
        len: usize,
    },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::FieldTooLong { tag, len } => write!(
                f,
                "field {tag} has {len} bytes; ISO 2709 allows 9,999 per field"
            ),
            WriteError::RecordTooLong { len } => write!(
                f,
                "record has {len} bytes; ISO 2709 allows 99,999 per record"
            ),
        }
    }
}

impl std::error::Error for WriteError {}

fn push_number(out: &mut Vec<u8>, n: usize, width: usize) {
    let mut digits = [b'0'; 5];
    let mut n = n;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Writes a record as ISO 2709 in UTF-8 (Leader/09 is set to `a`), appending to `out`.
pub fn write_record(record: &Record, out: &mut Vec<u8>) -> Result<(), WriteError> {
    let mut data = Vec::with_capacity(1024);
    let mut directory = Vec::with_capacity(record.fields.len() * 12);
    for field in &record.fields {
        let start = data.len();
        match field {
            Field::Control { value, .. } => data.extend_from_slice(value.as_bytes()),
            Field::Data {
                ind1,
                ind2,
                subfields,
                ..
            } => {
                data.push(*ind1);
                data.push(*ind2);
                for subfield in subfields {
                    data.push(SUBFIELD_DELIMITER);
                    data.push(subfield.code);
                    data.extend_from_slice(subfield.value.as_bytes());
                }
            }
        }
        data.push(FIELD_TERMINATOR);
        let len = data.len() - start;
        if len > 9_999 {
            return Err(WriteError::FieldTooLong {
                tag: field.tag(),
                len,
            });
        }
        directory.extend_from_slice(&field.tag().0);
        push_number(&mut directory, len, 4);
        if start > 99_999 {
            return Err(WriteError::RecordTooLong { len: start });
        }
        push_number(&mut directory, start, 5);
    }
    directory.push(FIELD_TERMINATOR);
    data.push(RECORD_TERMINATOR);
    let base = 24 + directory.len();
    let total = base + data.len();
    if total > 99_999 {
        return Err(WriteError::RecordTooLong { len: total });
    }
    let mut leader = record.leader.0;
    leader[9] = b'a';
    leader[10] = b'2';
    leader[11] = b'2';
    leader[20..24].copy_from_slice(b"4500");
    let leader_start = out.len();
    out.extend_from_slice(&leader);
    let mut numbers = Vec::with_capacity(10);
    push_number(&mut numbers, total, 5);
    push_number(&mut numbers, base, 5);
    out[leader_start..leader_start + 5].copy_from_slice(&numbers[..5]);
    out[leader_start + 12..leader_start + 17].copy_from_slice(&numbers[5..]);
    out.extend_from_slice(&directory);
    out.extend_from_slice(&data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose 505 (10,005 bytes) has a directory entry with a 5-digit length.
    fn five_digit_length() -> Vec<u8> {
        let fields: [(&str, Vec<u8>); 4] = [
            ("001", b"ocm1".to_vec()),
            ("245", b"10\x1faTitle".to_vec()),
            ("505", {
                let mut text = b"0 \x1fa".to_vec();
                text.resize(10_004, b'x');
                text
            }),
            ("650", b" 0\x1faX".to_vec()),
        ];
        let mut directory = Vec::new();
        let mut data = Vec::new();
        for (tag, body) in &fields {
            let len = body.len() + 1;
            let width = if len > 9_999 { 5 } else { 4 };
            directory.extend(format!("{tag}{len:0width$}{:05}", data.len()).into_bytes());
            data.extend(body);
            data.push(FIELD_TERMINATOR);
        }
        directory.push(FIELD_TERMINATOR);
        data.push(RECORD_TERMINATOR);
        let base = 24 + directory.len();
        let total = base + data.len();
        let mut record = format!("{total:05}nam a22{base:05} a 4500").into_bytes();
        record.extend(directory);
        record.extend(data);
        record
    }

    #[test]
    fn r16_a_five_digit_field_length_is_a_damaged_directory_not_a_field_that_does_not_exist() {
        let bytes = five_digit_length();
        let expected = "directory is damaged: the entry of field 505 states a 5-digit length (10005); a directory entry has 4 digits for it";
        let error = parse_record(&bytes, Mode::Strict).unwrap_err();
        assert_eq!(error.to_string(), expected);

        let raw = parse_record(&bytes, Mode::Lenient).unwrap();
        let tags: Vec<String> = raw.fields.iter().map(|f| tag_text(&f.tag.0)).collect();
        assert_eq!(tags, ["001", "245", "505", "650"]);
        assert_eq!(raw.fields[2].data.len(), 10_004);
        assert_eq!(raw.fields[3].data, b" 0\x1faX");
        let problems: Vec<String> = raw.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems, [expected]);
    }
}
