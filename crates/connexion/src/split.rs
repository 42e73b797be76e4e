//! The split search over decimal length digits (see [`crate::RequestParser::with_digit_splits`]).
//!
//! With decimal lengths, `A1201DEMO_ALPHA` may be a 12-byte value `01DEMO_ALPHA` or a
//! 1201-byte value starting `01DEMO`: the digits of the length run into a value that starts
//! with a digit. A *reading* is one way of splitting every such digit run in a request. The
//! first reading is the greedy one (the plain parser's); at each decimal length whose digits
//! run on, a reading spawns one more reading per shorter split. Every reading is parsed on
//! its own over the same bytes. The request is the reading that completes first (readings
//! that would complete later need bytes the client, waiting for its reply, never sends); when
//! several complete at the same byte, the caller chooses among them ([`Parse::Ambiguous`]).
//!
//! Bounds: a reading splits at most [`MAX_SPLIT_FIELDS`] fields, and at each one into at most
//! the number of digits of the item limit, so a request has at most (1 + 6)^3 readings with
//! the default limit. Each reading keeps only its own field values; the parser keeps the
//! bytes from the earliest position a live reading still needs, which is less than the item
//! limit behind the end of the buffer.
//!
//! Every reading must find a record that starts like a MARC leader (24 bytes, with digits
//! where the leader has its lengths, base address and entry map), so that a stream of digits
//! or the tail of a value is not taken for a record.

use crate::error::ProtocolError;
use crate::request::{Parse, Request, Step, Tag, scan};

/// The most fields of one request at which a reading is split.
pub const MAX_SPLIT_FIELDS: u8 = 3;

/// Leader positions that hold digits in every MARC 21 record: the record length, the
/// indicator count, the subfield code count, the base address of data and the entry map.
const LEADER_DIGITS: [std::ops::Range<usize>; 4] = [0..5, 10..12, 12..17, 20..24];
const LEADER_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Live,
    /// A record from `start` (stream offset) to `end`.
    Complete {
        start: u64,
        end: u64,
    },
    /// A NUL before any record, ending at `end`.
    Nul {
        end: u64,
    },
    Dead(ProtocolError),
}

/// The `U`, `A` and `P` values received so far.
pub(crate) type Fields = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

/// One reading of the request being parsed.
#[derive(Clone)]
pub(crate) struct Reading {
    /// Stream offset of the next item.
    pos: u64,
    user: Option<Vec<u8>>,
    local_user: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    fields: usize,
    items: usize,
    /// Fields at which this reading or its ancestors were split.
    splits: u8,
    /// The number of length digits the field at `pos` uses (set on a spawned reading).
    forced: Option<usize>,
    /// Splits already spawned for the field at `pos`.
    spawned: usize,
    /// The splits chosen on the way here: a stable order of readings.
    path: Vec<usize>,
    state: State,
}

impl Reading {
    /// The greedy reading starting at stream offset `pos` with the request's fields so far.
    pub(crate) fn root(pos: u64, fields: Fields, n_fields: usize, items: usize) -> Reading {
        Reading {
            pos,
            user: fields.0,
            local_user: fields.1,
            password: fields.2,
            fields: n_fields,
            items,
            splits: 0,
            forced: None,
            spawned: 0,
            path: Vec::new(),
            state: State::Live,
        }
    }

    /// Parses as far as the bytes go (`buf[0]` is at stream offset `base`), pushing the
    /// readings spawned on the way to `children`.
    fn advance(&mut self, buf: &[u8], base: u64, max: usize, children: &mut Vec<Reading>) {
        while self.state == State::Live {
            let Some(rest) = usize::try_from(self.pos - base)
                .ok()
                .and_then(|index| buf.get(index..))
            else {
                return;
            };
            // A field already being split goes on spawning as its digits arrive.
            if self.forced.is_none() && (self.spawned > 0 || self.splits < MAX_SPLIT_FIELDS) {
                self.spawn(rest, max, children);
            }
            let step = match self.forced {
                Some(digits) => scan_forced(rest, digits, max),
                None => scan(rest, self.items == 0, self.pos, max),
            };
            match step {
                Step::Incomplete { .. } => {
                    if !leader_so_far(rest) {
                        self.state = State::Dead(not_a_leader(rest, self.pos));
                    }
                    return;
                }
                Step::Space => {
                    self.pos += 1;
                    self.items += 1;
                }
                Step::Nul => {
                    self.state = State::Nul { end: self.pos + 1 };
                }
                Step::Field { tag, value, len } => {
                    let value = rest[value].to_vec();
                    match tag {
                        Tag::User => self.user = Some(value),
                        Tag::LocalUser => self.local_user = Some(value),
                        Tag::Password => self.password = Some(value),
                    }
                    self.pos += len as u64;
                    self.fields += 1;
                    self.items += 1;
                    self.forced = None;
                    self.spawned = 0;
                }
                Step::Record { len } => {
                    let record = &rest[..len];
                    self.state = if len >= LEADER_LEN && leader_so_far(record) {
                        State::Complete {
                            start: self.pos,
                            end: self.pos + len as u64,
                        }
                    } else {
                        State::Dead(not_a_leader(record, self.pos))
                    };
                }
                // `GET ` is recognised only where a request starts, which a reading never is.
                Step::Http { .. } => {
                    self.state = State::Dead(ProtocolError::UnexpectedByte {
                        byte: b'G',
                        offset: self.pos,
                    });
                }
                Step::Error(error) => self.state = State::Dead(error),
            }
        }
    }

    /// Spawns a reading for each shorter split of a decimal length at the start of `rest`
    /// whose value would start with a digit, as far as the digits are visible.
    fn spawn(&mut self, rest: &[u8], max: usize, children: &mut Vec<Reading>) {
        let (Some(tag), Some(b'1'..=b'9')) = (rest.first(), rest.get(1)) else {
            return;
        };
        if !matches!(tag, b'U' | b'A' | b'P') {
            return;
        }
        loop {
            let digits = self.spawned + 1;
            // The split after `digits` digits exists when the next byte is a digit too.
            if !rest.get(1 + digits).is_some_and(u8::is_ascii_digit) {
                return;
            }
            let Some(len) = decimal(&rest[1..=digits]) else {
                return;
            };
            if len > max {
                return;
            }
            if self.spawned == 0 {
                self.splits += 1;
            }
            self.spawned = digits;
            let mut child = self.clone();
            child.forced = Some(digits);
            child.spawned = 0;
            child.path.push(digits);
            children.push(child);
        }
    }

    fn request(&self, record: Vec<u8>) -> Request {
        Request {
            user: self.user.clone(),
            local_user: self.local_user.clone(),
            password: self.password.clone(),
            record,
        }
    }
}

/// The value of ASCII digits, `None` on overflow.
fn decimal(digits: &[u8]) -> Option<usize> {
    digits.iter().try_fold(0usize, |acc, digit| {
        acc.checked_mul(10)?
            .checked_add(usize::from(digit.wrapping_sub(b'0')))
    })
}

/// Scans a field whose length is its first `digits` digits.
fn scan_forced(buf: &[u8], digits: usize, max: usize) -> Step {
    let tag = match buf.first() {
        Some(b'U') => Tag::User,
        Some(b'A') => Tag::LocalUser,
        _ => Tag::Password,
    };
    let header = 1 + digits;
    let Some(len) = buf.get(1..header).and_then(decimal) else {
        return Step::Incomplete { item_bytes: None };
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

/// Whether the visible part of a record start has digits where a MARC leader has them.
/// Anything else than a record start (a partial field) passes.
fn leader_so_far(bytes: &[u8]) -> bool {
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return true;
    }
    LEADER_DIGITS.iter().all(|range| {
        let visible = &bytes[range.start.min(bytes.len())..range.end.min(bytes.len())];
        visible.iter().all(u8::is_ascii_digit)
    })
}

fn not_a_leader(bytes: &[u8], offset: u64) -> ProtocolError {
    ProtocolError::BadRecordLength {
        length_field: bytes[..bytes.len().min(5)].to_vec(),
        offset,
    }
}

/// The readings of one request being parsed.
pub(crate) struct Speculation {
    readings: Vec<Reading>,
}

/// What the readings say after parsing the buffered bytes.
pub(crate) enum Outcome {
    /// Some reading needs more bytes; keep the bytes from this stream offset.
    NeedMore { keep_from: u64 },
    /// The request ends at stream offset `end` with this event.
    Event { end: u64, event: Parse },
    /// Every reading failed; the greedy reading's error.
    Failed(ProtocolError),
}

impl Speculation {
    pub(crate) fn new(root: Reading) -> Speculation {
        Speculation {
            readings: vec![root],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.readings.len()
    }

    /// Parses every reading over `buf` (whose first byte is at stream offset `base`).
    pub(crate) fn run(&mut self, buf: &[u8], base: u64, max: usize) -> Outcome {
        let mut index = 0;
        while index < self.readings.len() {
            let mut children = Vec::new();
            self.readings[index].advance(buf, base, max, &mut children);
            self.readings.extend(children);
            index += 1;
        }
        let first_end = self
            .readings
            .iter()
            .filter_map(|reading| match reading.state {
                State::Complete { end, .. } | State::Nul { end } => Some(end),
                State::Live | State::Dead(_) => None,
            })
            .min();
        let Some(end) = first_end else {
            let keep_from = self
                .readings
                .iter()
                .filter(|reading| reading.state == State::Live)
                .map(|reading| reading.pos)
                .min();
            return match keep_from {
                Some(keep_from) => Outcome::NeedMore { keep_from },
                None => match self.readings.first().map(|root| &root.state) {
                    Some(State::Dead(error)) => Outcome::Failed(error.clone()),
                    _ => Outcome::Failed(ProtocolError::Incomplete {
                        fields: 0,
                        held_bytes: 0,
                        item_bytes: None,
                    }),
                },
            };
        };
        // Readings that complete later, or still need bytes, lose: the client waits for a
        // reply after its request and sends nothing more.
        let mut complete: Vec<&Reading> = self
            .readings
            .iter()
            .filter(|reading| matches!(reading.state, State::Complete { end: e, .. } if e == end))
            .collect();
        complete.sort_by(|a, b| a.path.cmp(&b.path));
        let mut requests = complete.iter().filter_map(|reading| match reading.state {
            State::Complete { start, end } => {
                let record = buf.get(index_of(start, base)?..index_of(end, base)?)?;
                Some(reading.request(record.to_vec()))
            }
            _ => None,
        });
        let event = match (requests.next(), complete.len()) {
            (None, _) => Parse::Nul,
            (Some(request), 1) => Parse::Complete(request),
            (Some(first), _) => {
                let mut all = vec![first];
                all.extend(requests);
                Parse::Ambiguous(all)
            }
        };
        Outcome::Event { end, event }
    }

    /// The partial request to describe on a timeout: the greedy reading while it lives, else
    /// the live reading that got furthest.
    pub(crate) fn incomplete(&self, buf: &[u8], base: u64, max: usize) -> ProtocolError {
        let live = |reading: &&Reading| reading.state == State::Live;
        let reading = self.readings.first().filter(live).or_else(|| {
            self.readings
                .iter()
                .filter(live)
                .max_by(|a, b| a.pos.cmp(&b.pos).then_with(|| b.path.cmp(&a.path)))
        });
        let Some(reading) = reading else {
            return ProtocolError::Incomplete {
                fields: 0,
                held_bytes: 0,
                item_bytes: None,
            };
        };
        let rest = index_of(reading.pos, base)
            .and_then(|index| buf.get(index..))
            .unwrap_or_default();
        let step = match reading.forced {
            Some(digits) => scan_forced(rest, digits, max),
            None => scan(rest, reading.items == 0, reading.pos, max),
        };
        let item_bytes = match step {
            Step::Incomplete { item_bytes } => item_bytes,
            _ => None,
        };
        ProtocolError::Incomplete {
            fields: reading.fields,
            held_bytes: rest.len(),
            item_bytes,
        }
    }
}

fn index_of(offset: u64, base: u64) -> Option<usize> {
    usize::try_from(offset.checked_sub(base)?).ok()
}
