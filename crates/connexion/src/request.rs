//! The incremental request parser.

use std::fmt;
use std::ops::Range;

use crate::error::ProtocolError;
use crate::split::{Outcome, Reading, Speculation};

/// Default limit on the bytes of one item (field or record) and on unconsumed bytes held.
///
/// A MARC record cannot exceed 99999 bytes, so 100000 admits every record.
pub const MAX_REQUEST_BYTES: usize = 100_000;

/// The reply to an HTTP health probe: `HTTP/1.0 200 OK` and an empty header section.
///
/// Byte-identical to what edge-connexion sends; the server closes the connection after it.
pub fn http_ok_response() -> &'static [u8] {
    b"HTTP/1.0 200 OK\r\n\r\n"
}

/// One complete request: the fields received before the record, and the record.
///
/// A field that was not sent is `None`; a field sent with length 0 (`P0`) is `Some(vec![])`.
/// A field sent twice keeps the last value.
/// `Debug` never prints the password (only its length) nor the record bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The `U` field ("user"; its meaning on the client side is undocumented).
    pub user: Option<Vec<u8>>,
    /// The `A` field ("local user", the local system logon ID).
    pub local_user: Option<Vec<u8>>,
    /// The `P` field (the local system password).
    pub password: Option<Vec<u8>>,
    /// The ISO 2709 record, framed by its 5-digit length; not otherwise validated here.
    pub record: Vec<u8>,
}

/// Debug helper printing bytes as an escaped string.
struct Escaped<'a>(&'a [u8]);

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Debug helper printing a placeholder instead of a secret.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"<redacted, {} bytes>\"", self.0)
    }
}

/// Debug helper printing only a length.
struct Length(usize);

impl fmt::Debug for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"<{} bytes>\"", self.0)
    }
}

pub(crate) fn debug_fields(
    out: &mut fmt::DebugStruct<'_, '_>,
    user: Option<&[u8]>,
    local_user: Option<&[u8]>,
    password: Option<&[u8]>,
) {
    out.field("user", &user.map(Escaped));
    out.field("local_user", &local_user.map(Escaped));
    out.field("password", &password.map(|p| Redacted(p.len())));
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Request");
        debug_fields(
            &mut out,
            self.user.as_deref(),
            self.local_user.as_deref(),
            self.password.as_deref(),
        );
        out.field("record", &Length(self.record.len()));
        out.finish()
    }
}

/// An HTTP `GET` received instead of a Connexion request (a liveness check on the same port).
///
/// Answer with [`http_ok_response`] and close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The request target, e.g. `/admin/health` (decoded lossily as UTF-8).
    pub path: String,
}

/// The outcome of [`RequestParser::feed`] or [`RequestParser::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// No complete request yet: read more bytes. This is a state, not an error.
    NeedMore,
    /// A record completed the request. Reply now; do not wait for a NUL or end of stream.
    Complete(Request),
    /// A NUL ended the request before any record ("no record provided"). Fields received
    /// before it are discarded.
    Nul,
    /// An HTTP health probe.
    Http(HttpProbe),
    /// With [`RequestParser::with_digit_splits`]: two or more readings of decimal length
    /// digits each form a complete request ending at the same byte (in a stable order). The
    /// caller keeps the one that names a known logon id, and refuses the request as
    /// ambiguous ([`ProtocolError::AmbiguousLength`]) when not exactly one does. The parser
    /// has moved past the request, as after [`Parse::Complete`].
    Ambiguous(Vec<Request>),
    /// The input can never become a valid request. The parser stays in this state.
    Error(ProtocolError),
}

/// The field tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    User,
    LocalUser,
    Password,
}

impl Tag {
    pub(crate) fn letter(self) -> char {
        match self {
            Tag::User => 'U',
            Tag::LocalUser => 'A',
            Tag::Password => 'P',
        }
    }
}

/// One step of the scanner over unconsumed bytes.
#[derive(Debug)]
pub(crate) enum Step {
    /// The next item is not complete; `item_bytes` is its total size when already known.
    Incomplete { item_bytes: Option<usize> },
    /// One space.
    Space,
    /// A complete field of `len` bytes whose value is at `value`.
    Field {
        tag: Tag,
        value: Range<usize>,
        len: usize,
    },
    /// A complete record of `len` bytes.
    Record { len: usize },
    /// A NUL byte.
    Nul,
    /// A complete HTTP request header of `len` bytes whose target is at `path`.
    Http { path: Range<usize>, len: usize },
    /// Input that can never become valid.
    Error(ProtocolError),
}

const HTTP_PREFIX: &[u8] = b"GET ";

/// Scans the item at the start of `buf`.
///
/// `request_start` says whether this is the first item of a request (where `GET ` is
/// recognised); `offset` is the stream offset of `buf[0]`, for error messages.
pub(crate) fn scan(buf: &[u8], request_start: bool, offset: u64, max: usize) -> Step {
    let Some(&first) = buf.first() else {
        return Step::Incomplete { item_bytes: None };
    };
    match first {
        b' ' => Step::Space,
        0 => Step::Nul,
        b'U' => scan_field(buf, Tag::User, offset, max),
        b'A' => scan_field(buf, Tag::LocalUser, offset, max),
        b'P' => scan_field(buf, Tag::Password, offset, max),
        b'0'..=b'9' => scan_record(buf, offset, max),
        b'G' if request_start => scan_http(buf, offset, max),
        byte => Step::Error(ProtocolError::UnexpectedByte { byte, offset }),
    }
}

fn scan_field(buf: &[u8], tag: Tag, offset: u64, max: usize) -> Step {
    let Some(&length_byte) = buf.get(1) else {
        return Step::Incomplete { item_bytes: None };
    };
    let (header, len) = match length_byte {
        // edge-connexion's special case (EDGCONX-11): a leading `0` is length 0 and
        // consumes only that digit, so `P0` followed by a record works.
        b'0' => (2, 0),
        b'1'..=b'9' => {
            let mut len: usize = 0;
            let mut index = 1;
            loop {
                let Some(&byte) = buf.get(index) else {
                    // The digits may continue in the next chunk.
                    return Step::Incomplete { item_bytes: None };
                };
                if !byte.is_ascii_digit() {
                    break;
                }
                len = len
                    .saturating_mul(10)
                    .saturating_add(usize::from(byte - b'0'));
                if len > max {
                    return Step::Error(ProtocolError::TooLarge {
                        size: len.saturating_add(index + 1),
                        max,
                    });
                }
                index += 1;
            }
            (index, len)
        }
        0x40..=0xFF => (2, usize::from(length_byte - 0x40)),
        byte => {
            return Step::Error(ProtocolError::BadFieldLength {
                tag: tag.letter(),
                byte,
                offset: offset + 1,
            });
        }
    };
    let total = header + len;
    if total > max {
        return Step::Error(ProtocolError::TooLarge { size: total, max });
    }
    if buf.len() < total {
        return Step::Incomplete {
            item_bytes: Some(total),
        };
    }
    Step::Field {
        tag,
        value: header..total,
        len: total,
    }
}

fn scan_record(buf: &[u8], offset: u64, max: usize) -> Step {
    let seen = &buf[..buf.len().min(5)];
    if let Some(bad) = seen.iter().position(|byte| !byte.is_ascii_digit()) {
        return Step::Error(ProtocolError::BadRecordLength {
            length_field: seen[..=bad].to_vec(),
            offset,
        });
    }
    if seen.len() < 5 {
        return Step::Incomplete { item_bytes: None };
    }
    let len = seen
        .iter()
        .fold(0usize, |acc, digit| acc * 10 + usize::from(digit - b'0'));
    if len < 5 {
        return Step::Error(ProtocolError::BadRecordLength {
            length_field: seen.to_vec(),
            offset,
        });
    }
    if len > max {
        return Step::Error(ProtocolError::TooLarge { size: len, max });
    }
    if buf.len() < len {
        return Step::Incomplete {
            item_bytes: Some(len),
        };
    }
    Step::Record { len }
}

fn scan_http(buf: &[u8], offset: u64, max: usize) -> Step {
    let prefix_len = buf.len().min(HTTP_PREFIX.len());
    if buf[..prefix_len] != HTTP_PREFIX[..prefix_len] {
        return Step::Error(ProtocolError::UnexpectedByte { byte: b'G', offset });
    }
    if prefix_len < HTTP_PREFIX.len() {
        return Step::Incomplete { item_bytes: None };
    }
    // Only the first `max` bytes may hold the header, so the outcome does not depend on how
    // the input was split into chunks.
    let window = &buf[..buf.len().min(max)];
    let end = window.iter().enumerate().find_map(|(index, &byte)| {
        if byte != b'\n' {
            return None;
        }
        let rest = &window[index + 1..];
        if rest.starts_with(b"\n") {
            Some(index + 2)
        } else if rest.starts_with(b"\r\n") {
            Some(index + 3)
        } else {
            None
        }
    });
    match end {
        Some(len) => {
            let target = &buf[HTTP_PREFIX.len()..len];
            let path_len = target
                .iter()
                .position(|&byte| matches!(byte, b' ' | b'\r' | b'\n'))
                .unwrap_or(target.len());
            Step::Http {
                path: HTTP_PREFIX.len()..HTTP_PREFIX.len() + path_len,
                len,
            }
        }
        None if buf.len() >= max => Step::Error(ProtocolError::TooLarge {
            size: buf.len(),
            max,
        }),
        None => Step::Incomplete { item_bytes: None },
    }
}

/// Whether `buf` starts with a field whose decimal length has at least two digits visible.
fn digits_run_on(buf: &[u8]) -> bool {
    matches!(buf, [b'U' | b'A' | b'P', b'1'..=b'9', next, ..] if next.is_ascii_digit())
}

/// How many bytes at the start of `buf` form complete items (spaces, fields, records).
///
/// Stops at the first incomplete item, NUL, HTTP probe or invalid byte, and uses
/// [`MAX_REQUEST_BYTES`]. This is the measure of edge-connexion's `testFeedInput` table:
/// `consumable(b" U3abc 0001012345") == 17`, `consumable(b"P09876") == 2`.
pub fn consumable(buf: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let advance = match scan(rest, pos == 0, pos as u64, MAX_REQUEST_BYTES) {
            Step::Space => 1,
            Step::Field { len, .. } | Step::Record { len } => len,
            Step::Incomplete { .. } | Step::Nul | Step::Http { .. } | Step::Error(_) => {
                return pos;
            }
        };
        pos += advance;
    }
}

/// Incremental parser of Connexion requests over a byte stream.
///
/// Feed it chunks of any size (one byte at a time works) with [`feed`](Self::feed); it
/// buffers what it cannot consume yet. Each call returns at most one event; after an event
/// other than [`Parse::NeedMore`], call [`poll`](Self::poll) until it returns
/// [`Parse::NeedMore`] to drain requests already buffered.
///
/// After [`Parse::Complete`] the parser starts a new request. Spaces and one NUL directly
/// after a record are the completed request's trailer and are swallowed silently. Use
/// [`check_one_record`](Self::check_one_record) right after `Complete` to find out whether
/// more input had already arrived with the record.
///
/// After [`Parse::Error`] the parser is finished: it drops its buffer and returns the same
/// error from every later call.
///
/// `Debug` shows sizes and state only, never buffered bytes or field values.
pub struct RequestParser {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    /// Stream offset of `buf[0]`.
    offset: u64,
    max_bytes: usize,
    user: Option<Vec<u8>>,
    local_user: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    /// Complete fields in the current request.
    fields: usize,
    /// Items (spaces and fields) in the current request.
    items: usize,
    /// The last event was `Complete` and no other item has been seen since: spaces and one
    /// NUL now belong to that request's trailer.
    after_record: bool,
    /// The trailer's NUL has been consumed.
    trailer_nul: bool,
    failed: Option<ProtocolError>,
    /// Whether decimal length digits may be split ([`RequestParser::with_digit_splits`]).
    digit_splits: bool,
    /// The readings of the current request once a decimal length's digits run on.
    speculation: Option<Speculation>,
}

impl fmt::Debug for RequestParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RequestParser");
        out.field("held_bytes", &self.held_bytes());
        out.field("offset", &(self.offset + self.pos as u64));
        out.field("max_bytes", &self.max_bytes);
        debug_fields(
            &mut out,
            self.user.as_deref(),
            self.local_user.as_deref(),
            self.password.as_deref(),
        );
        out.field("after_record", &self.after_record);
        out.field("digit_splits", &self.digit_splits);
        out.field(
            "readings",
            &self.speculation.as_ref().map_or(0, Speculation::len),
        );
        out.field("failed", &self.failed);
        out.finish()
    }
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestParser {
    /// A parser with the default limit, [`MAX_REQUEST_BYTES`].
    pub fn new() -> Self {
        Self::with_max_bytes(MAX_REQUEST_BYTES)
    }

    /// A parser whose items (and unconsumed bytes) may not exceed `max_bytes`.
    ///
    /// Values below 5 make every record too large.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        RequestParser {
            buf: Vec::new(),
            pos: 0,
            offset: 0,
            max_bytes,
            user: None,
            local_user: None,
            password: None,
            fields: 0,
            items: 0,
            after_record: false,
            trailer_nul: false,
            failed: None,
            digit_splits: false,
            speculation: None,
        }
    }

    /// Reads a decimal length whose digits run into a value that starts with a digit (a
    /// logon id such as `01DEMO_ALPHA` sent as `A1201DEMO_ALPHA`) by trying every split of
    /// the digits, instead of reading them greedily.
    ///
    /// Each split is parsed on its own; the request is the one that completes first (the
    /// client sends nothing more while it waits for its reply). Once digits run on, every
    /// reading (the greedy one too) must find a record that starts like a MARC leader: a
    /// request whose record does not is refused with the greedy reading's error (or waits
    /// for bytes a shorter split needs). When several splits
    /// complete at the same byte, [`Parse::Ambiguous`] gives them all to the caller, which
    /// knows the logon ids. When every split fails, the error is the greedy reading's.
    ///
    /// Outcomes still do not depend on how bytes are split into reads, and memory stays
    /// bounded: at most three fields of a request are split, and the parser keeps only the
    /// bytes a live split still needs (less than the limit) plus each split's field values.
    /// Input that a greedy parser refuses at once (a 9-digit length) may now wait for the
    /// bytes a shorter split needs.
    pub fn with_digit_splits(mut self) -> Self {
        self.digit_splits = true;
        self
    }

    /// The configured limit.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Appends `bytes` to the buffer and parses as far as the first event.
    ///
    /// When the caller polls until [`Parse::NeedMore`] before feeding again, the parser holds
    /// at most `max_bytes` plus the size of the chunk being fed, plus the field values of the
    /// current request (each at most `max_bytes`).
    pub fn feed(&mut self, bytes: &[u8]) -> Parse {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
        self.poll()
    }

    /// Parses buffered bytes as far as the first event, without new input.
    pub fn poll(&mut self) -> Parse {
        let outcome = self.step_until_event();
        self.compact();
        outcome
    }

    /// Bytes buffered but not consumed yet.
    pub fn held_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes buffered after the completed request, not counting its trailer (spaces and one
    /// NUL, then spaces). Meaningful right after [`Parse::Complete`].
    pub fn extra_bytes(&self) -> usize {
        let mut rest = &self.buf[self.pos..];
        if !self.after_record {
            return rest.len();
        }
        let skip_spaces =
            |bytes: &[u8]| -> usize { bytes.iter().take_while(|&&b| b == b' ').count() };
        rest = &rest[skip_spaces(rest)..];
        if !self.trailer_nul && rest.first() == Some(&0) {
            rest = &rest[1..];
            rest = &rest[skip_spaces(rest)..];
        }
        rest.len()
    }

    /// `Err(ProtocolError::OneRecordExpected)` when [`extra_bytes`](Self::extra_bytes) is
    /// not zero, i.e. the client sent more than one request (or trailing garbage) together
    /// with the record just completed.
    ///
    /// The recommended server policy: process the completed record, and add the error
    /// message to the reply so the cataloguer learns that the rest was not imported. The
    /// caller then either drops the connection's remaining input or keeps polling, which
    /// parses it as the next request.
    pub fn check_one_record(&self) -> Result<(), ProtocolError> {
        match self.extra_bytes() {
            0 => Ok(()),
            extra_bytes => Err(ProtocolError::OneRecordExpected { extra_bytes }),
        }
    }

    /// Whether a request has started (a field, a space or part of an item received) without
    /// completing. The trailer of a completed request does not count.
    pub fn has_partial_request(&self) -> bool {
        self.failed.is_none()
            && (self.speculation.is_some() || self.items > 0 || self.extra_bytes() > 0)
    }

    /// `Some(ProtocolError::Incomplete)` describing a request that has started but not
    /// completed; `None` when the parser is idle or has failed.
    ///
    /// For the server's idle timeout or end of stream: the error's message is a suitable
    /// reply text, and it never quotes a field value.
    pub fn incomplete(&self) -> Option<ProtocolError> {
        if !self.has_partial_request() {
            return None;
        }
        if let Some(speculation) = &self.speculation {
            return Some(speculation.incomplete(&self.buf, self.offset, self.max_bytes));
        }
        let rest = &self.buf[self.pos..];
        let held_bytes = if self.after_record {
            self.extra_bytes()
        } else {
            rest.len()
        };
        let item_bytes = match scan(
            &rest[rest.len() - held_bytes..],
            self.items == 0,
            0,
            self.max_bytes,
        ) {
            Step::Incomplete { item_bytes } => item_bytes,
            _ => None,
        };
        Some(ProtocolError::Incomplete {
            fields: self.fields,
            held_bytes,
            item_bytes,
        })
    }

    fn step_until_event(&mut self) -> Parse {
        if let Some(error) = &self.failed {
            return Parse::Error(error.clone());
        }
        loop {
            if self.speculation.is_some() {
                return self.step_readings();
            }
            let rest = &self.buf[self.pos..];
            let offset = self.offset + self.pos as u64;
            let request_start = self.items == 0;
            if self.digit_splits && digits_run_on(rest) {
                let fields = (
                    self.user.take(),
                    self.local_user.take(),
                    self.password.take(),
                );
                let root = Reading::root(offset, fields, self.fields, self.items);
                self.speculation = Some(Speculation::new(root));
                self.after_record = false;
                self.trailer_nul = false;
                continue;
            }
            match scan(rest, request_start, offset, self.max_bytes) {
                Step::Incomplete { .. } => {
                    // Defensive: every item size is checked against the limit as soon as it
                    // is known, so this only guards against future scanner changes.
                    if rest.len() > self.max_bytes {
                        return self.fail(ProtocolError::TooLarge {
                            size: rest.len(),
                            max: self.max_bytes,
                        });
                    }
                    return Parse::NeedMore;
                }
                Step::Space => {
                    self.pos += 1;
                    if !self.after_record {
                        self.items += 1;
                    }
                }
                Step::Nul => {
                    self.pos += 1;
                    if self.after_record && !self.trailer_nul {
                        // The optional NUL that ends the request just completed.
                        self.trailer_nul = true;
                    } else {
                        self.reset_request();
                        return Parse::Nul;
                    }
                }
                Step::Field { tag, value, len } => {
                    let value = rest[value].to_vec();
                    match tag {
                        Tag::User => self.user = Some(value),
                        Tag::LocalUser => self.local_user = Some(value),
                        Tag::Password => self.password = Some(value),
                    }
                    self.pos += len;
                    self.fields += 1;
                    self.items += 1;
                    self.after_record = false;
                    self.trailer_nul = false;
                }
                Step::Record { len } => {
                    let record = rest[..len].to_vec();
                    self.pos += len;
                    let request = Request {
                        user: self.user.take(),
                        local_user: self.local_user.take(),
                        password: self.password.take(),
                        record,
                    };
                    self.reset_request();
                    self.after_record = true;
                    return Parse::Complete(request);
                }
                Step::Http { path, len } => {
                    let path = String::from_utf8_lossy(&rest[path]).into_owned();
                    self.pos += len;
                    self.reset_request();
                    return Parse::Http(HttpProbe { path });
                }
                Step::Error(error) => return self.fail(error),
            }
        }
    }

    /// Parses the readings of a request whose decimal length digits run on.
    fn step_readings(&mut self) -> Parse {
        let Some(speculation) = self.speculation.as_mut() else {
            return Parse::NeedMore;
        };
        let outcome = speculation.run(&self.buf, self.offset, self.max_bytes);
        let index_of = |offset: u64, base: u64| {
            usize::try_from(offset.saturating_sub(base)).unwrap_or(usize::MAX)
        };
        match outcome {
            Outcome::NeedMore { keep_from } => {
                self.pos = index_of(keep_from, self.offset).min(self.buf.len());
                Parse::NeedMore
            }
            Outcome::Failed(error) => {
                self.speculation = None;
                self.fail(error)
            }
            Outcome::Event { end, event } => {
                self.speculation = None;
                self.pos = index_of(end, self.offset).min(self.buf.len());
                self.reset_request();
                self.after_record = !matches!(event, Parse::Nul);
                event
            }
        }
    }

    fn reset_request(&mut self) {
        self.user = None;
        self.local_user = None;
        self.password = None;
        self.fields = 0;
        self.items = 0;
        self.after_record = false;
        self.trailer_nul = false;
    }

    fn fail(&mut self, error: ProtocolError) -> Parse {
        self.reset_request();
        self.speculation = None;
        self.buf = Vec::new();
        self.pos = 0;
        self.failed = Some(error.clone());
        Parse::Error(error)
    }

    /// Drops consumed bytes from the front of the buffer (once per poll, so consuming many
    /// small items stays linear).
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.offset += self.pos as u64;
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_length_checks_digits_as_soon_as_visible() {
        let mut parser = RequestParser::new();
        match parser.feed(b"0-") {
            Parse::Error(error) => assert_eq!(error.code(), "bad-record-length"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn compaction_keeps_offsets() {
        let mut parser = RequestParser::new();
        assert_eq!(parser.feed(b"U3abc "), Parse::NeedMore);
        assert_eq!(parser.held_bytes(), 0);
        assert_eq!(
            parser.feed(b"_"),
            Parse::Error(ProtocolError::UnexpectedByte {
                byte: b'_',
                offset: 6
            })
        );
    }

    #[test]
    fn debug_of_parser_hides_password_and_buffer() {
        let mut parser = RequestParser::new();
        assert_eq!(parser.feed(b"P6secretP6sec"), Parse::NeedMore);
        let text = format!("{parser:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("sec\""), "{text}");
        assert!(text.contains("<redacted, 6 bytes>"), "{text}");
    }
}
