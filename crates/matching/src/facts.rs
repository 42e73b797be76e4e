//! Record facts the decision engine reads: the 005 version, the encoding level and the brief
//! level derived from it, and the record kind.
//!
//! - [`parse_005`] reads `yyyymmddhhmmss.f` strictly into a [`Version005`] that compares as a
//!   tuple; the 14-character form without `.f` is accepted as `.0` and flagged
//!   ([`Lenient005::NoFraction`]). Leap seconds (`60`) are rejected. Positions in messages count
//!   from 0, as MARC does (`005/14` is the decimal point).
//! - [`BriefLevelTable`] maps Leader/17 to an Alma-style [`BriefLevel`] 01..10; CARLI's table is
//!   the default, CSU's is built in, and profiles store a table as text ([`BriefLevelTable::parse_spec`]).
//! - [`record_type`] reads Leader/06, [`is_serial`] Leader/07.

use std::fmt;
use std::str::FromStr;

use bibgate_marc::Record;

// ---------------------------------------------------------------------------------------------
// 005
// ---------------------------------------------------------------------------------------------

/// The date and time of latest transaction (field 005), parsed and validated.
///
/// Ordering compares (year, month, day, hour, minute, second, tenths), i.e. chronologically.
/// 005 carries no time zone; conversions to and from Unix seconds treat it as UTC.
/// `Display` writes `yyyymmddhhmmss.f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version005 {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    tenths: u8,
}

impl Version005 {
    /// Builds a version from its parts; `None` unless year ≤ 9999, month 1-12, day within the
    /// month (Gregorian leap years), hour ≤ 23, minute ≤ 59, second ≤ 59, tenths ≤ 9.
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        tenths: u8,
    ) -> Option<Version005> {
        let valid = year <= 9999
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour <= 23
            && minute <= 59
            && second <= 59
            && tenths <= 9;
        valid.then_some(Version005 {
            year,
            month,
            day,
            hour,
            minute,
            second,
            tenths,
        })
    }

    /// The year (0-9999).
    pub const fn year(&self) -> u16 {
        self.year
    }
    /// The month (1-12).
    pub const fn month(&self) -> u8 {
        self.month
    }
    /// The day of the month (1-31).
    pub const fn day(&self) -> u8 {
        self.day
    }
    /// The hour (0-23).
    pub const fn hour(&self) -> u8 {
        self.hour
    }
    /// The minute (0-59).
    pub const fn minute(&self) -> u8 {
        self.minute
    }
    /// The second (0-59).
    pub const fn second(&self) -> u8 {
        self.second
    }
    /// The tenths of a second (0-9).
    pub const fn tenths(&self) -> u8 {
        self.tenths
    }

    /// Seconds since 1970-01-01T00:00:00, reading the version as UTC (tenths dropped).
    pub fn to_unix_seconds(&self) -> i64 {
        let days = days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The version for a Unix time (UTC, tenths 0); `None` outside the years 0-9999.
    /// This is how a caller turns its clock reading into the `now` of [`Version005::is_in_future`].
    pub fn from_unix_seconds(seconds: i64) -> Option<Version005> {
        let days = seconds.div_euclid(86_400);
        let rest = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let year = u16::try_from(year).ok()?;
        let month = u8::try_from(month).ok()?;
        let day = u8::try_from(day).ok()?;
        let hour = u8::try_from(rest / 3_600).ok()?;
        let minute = u8::try_from(rest % 3_600 / 60).ok()?;
        let second = u8::try_from(rest % 60).ok()?;
        Version005::new(year, month, day, hour, minute, second, 0)
    }

    fn tenths_since_epoch(&self) -> i128 {
        i128::from(self.to_unix_seconds()) * 10 + i128::from(self.tenths)
    }

    /// True when this version is later than `now` plus `tolerance_seconds` (a suspicious
    /// "future" 005). Clock-free: the caller supplies `now`.
    pub fn is_in_future(&self, now: Version005, tolerance_seconds: u64) -> bool {
        self.tenths_since_epoch() > now.tenths_since_epoch() + i128::from(tolerance_seconds) * 10
    }
}

impl fmt::Display for Version005 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}{:02}{:02}{:02}.{}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.tenths
        )
    }
}

impl FromStr for Version005 {
    type Err = Bad005;

    /// Strict: only the 16-character form; the lenient 14-character form is an error here
    /// (use [`parse_005`] to accept it with a flag).
    fn from_str(s: &str) -> Result<Version005, Bad005> {
        let parsed = parse_005(s)?;
        match parsed.lenient {
            None => Ok(parsed.version),
            Some(_) => Err(Bad005::Length {
                value: s.to_owned(),
                len: s.chars().count(),
            }),
        }
    }
}

const fn is_leap_year(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days in `month` (1-12) of `year`, Gregorian rule; 0 for an invalid month.
pub const fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn month_name(month: &u8) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    usize::from(*month)
        .checked_sub(1)
        .and_then(|index| NAMES.get(index))
        .copied()
        .unwrap_or("month ??")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A 005 that was accepted although not in the standard form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Lenient005 {
    /// The 14-character form `yyyymmddhhmmss` without `.f`, read as `.0`.
    #[error("005 has no tenths of a second (.f); read as .0")]
    NoFraction,
}

/// A parsed 005 and whether it needed leniency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed005 {
    /// The version.
    pub version: Version005,
    /// `Some` when the value was accepted although not in the standard form; log it.
    pub lenient: Option<Lenient005>,
}

/// Why a 005 value was rejected. Positions count characters from 0.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Bad005 {
    /// The value is empty.
    #[error("005 is empty")]
    Empty,
    /// Neither 16 characters (`yyyymmddhhmmss.f`) nor 14 (`yyyymmddhhmmss`).
    #[error("005 {value:?} has {len} characters; expected 16 (yyyymmddhhmmss.f)")]
    Length {
        /// The value.
        value: String,
        /// Its length in characters.
        len: usize,
    },
    /// A character that should be a digit is not.
    #[error("005 {value:?} has {found:?} at position {position}, where a digit belongs")]
    NotDigit {
        /// The value.
        value: String,
        /// The position, counting from 0.
        position: usize,
        /// The character found.
        found: char,
    },
    /// Position 14 is not the decimal point.
    #[error("005 {value:?} has {found:?} at position 14, where '.' belongs")]
    NoPoint {
        /// The value.
        value: String,
        /// The character found.
        found: char,
    },
    /// Month 00 or above 12.
    #[error("005 {value:?} has month {month:02}; months run from 01 to 12")]
    Month {
        /// The value.
        value: String,
        /// The month read.
        month: u8,
    },
    /// Day 00.
    #[error("005 {value:?} has day 00; days start at 01")]
    DayZero {
        /// The value.
        value: String,
    },
    /// Day beyond the length of the month.
    #[error("005 {value:?} has day {day}, but {} {year} has {max} days", month_name(.month))]
    Day {
        /// The value.
        value: String,
        /// The year read.
        year: u16,
        /// The month read.
        month: u8,
        /// The day read.
        day: u8,
        /// The days in that month.
        max: u8,
    },
    /// Hour above 23.
    #[error("005 {value:?} has hour {hour}; hours run from 00 to 23")]
    Hour {
        /// The value.
        value: String,
        /// The hour read.
        hour: u8,
    },
    /// Minute above 59.
    #[error("005 {value:?} has minute {minute}; minutes run from 00 to 59")]
    Minute {
        /// The value.
        value: String,
        /// The minute read.
        minute: u8,
    },
    /// Second above 59 (leap seconds are not accepted).
    #[error("005 {value:?} has second {second}; seconds run from 00 to 59 (no leap seconds)")]
    Second {
        /// The value.
        value: String,
        /// The second read.
        second: u8,
    },
}

/// Parses a 005 value. Strict `yyyymmddhhmmss.f` (16 characters, no surrounding blanks);
/// the 14-character form without `.f` is accepted as `.0` with [`Lenient005::NoFraction`].
///
/// ```
/// use bibgate_matching::facts::parse_005;
/// let parsed = parse_005("19940223151047.0").unwrap();
/// assert_eq!(parsed.version.to_string(), "19940223151047.0");
/// assert!(parse_005("20240230120000.0").is_err());
/// ```
pub fn parse_005(value: &str) -> Result<Parsed005, Bad005> {
    let chars: Vec<char> = value.chars().collect();
    let lenient = match chars.len() {
        0 => return Err(Bad005::Empty),
        16 => None,
        14 => Some(Lenient005::NoFraction),
        len => {
            return Err(Bad005::Length {
                value: value.to_owned(),
                len,
            });
        }
    };
    let mut digits = [0u8; 15];
    for (position, &found) in chars.iter().enumerate() {
        if position == 14 {
            if found != '.' {
                return Err(Bad005::NoPoint {
                    value: value.to_owned(),
                    found,
                });
            }
            continue;
        }
        let Some(digit) = found.to_digit(10).and_then(|d| u8::try_from(d).ok()) else {
            return Err(Bad005::NotDigit {
                value: value.to_owned(),
                position,
                found,
            });
        };
        digits[position.min(14)] = digit;
    }
    let two = |at: usize| digits[at] * 10 + digits[at + 1];
    let year = u16::from(two(0)) * 100 + u16::from(two(2));
    let (month, day, hour, minute, second) = (two(4), two(6), two(8), two(10), two(12));
    let tenths = if lenient.is_some() { 0 } else { digits[14] };
    let text = || value.to_owned();
    if !(1..=12).contains(&month) {
        return Err(Bad005::Month {
            value: text(),
            month,
        });
    }
    let max = days_in_month(year, month);
    if day == 0 {
        return Err(Bad005::DayZero { value: text() });
    }
    if day > max {
        return Err(Bad005::Day {
            value: text(),
            year,
            month,
            day,
            max,
        });
    }
    if hour > 23 {
        return Err(Bad005::Hour {
            value: text(),
            hour,
        });
    }
    if minute > 59 {
        return Err(Bad005::Minute {
            value: text(),
            minute,
        });
    }
    if second > 59 {
        return Err(Bad005::Second {
            value: text(),
            second,
        });
    }
    Ok(Parsed005 {
        version: Version005 {
            year,
            month,
            day,
            hour,
            minute,
            second,
            tenths,
        },
        lenient,
    })
}

/// The record's 005 (first occurrence), parsed; `None` when the record has no 005 (the caller
/// decides what "cannot compare" means; domain.md §1.6 recommends: allow, but log).
pub fn record_005(record: &Record) -> Option<Result<Parsed005, Bad005>> {
    record.control_value("005").map(parse_005)
}

// ---------------------------------------------------------------------------------------------
// Encoding level and brief level
// ---------------------------------------------------------------------------------------------

/// Leader/17, the encoding level byte (blank = full level).
pub fn encoding_level(record: &Record) -> u8 {
    record.leader.encoding_level()
}

/// An Alma-style brief level, 1 (briefest) to 10 (fullest). `Display` writes two digits (`05`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BriefLevel(u8);

impl BriefLevel {
    /// The briefest level, 01.
    pub const MIN: BriefLevel = BriefLevel(1);
    /// The fullest level, 10.
    pub const MAX: BriefLevel = BriefLevel(10);

    /// `None` unless `level` is 1 to 10.
    pub const fn new(level: u8) -> Option<BriefLevel> {
        if level >= 1 && level <= 10 {
            Some(BriefLevel(level))
        } else {
            None
        }
    }

    /// The level as a number, 1 to 10.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for BriefLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// Why a brief-level table could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadBriefTable {
    /// The specification has no entries.
    #[error("the brief-level table is empty")]
    Empty,
    /// An item is not `CODE=LEVEL`.
    #[error("{item:?} is not CODE=LEVEL")]
    Syntax {
        /// The offending item.
        item: String,
    },
    /// The code is not one character, `#`, `*` or `\xHH`.
    #[error(
        "{item:?}: the code must be one character, '#' for blank, '*' for any other code, or \\xHH"
    )]
    Code {
        /// The offending item.
        item: String,
    },
    /// The level is not 1 to 10.
    #[error("{item:?}: the brief level must be 1 to 10")]
    Level {
        /// The offending item.
        item: String,
    },
    /// The same code (or `*`) appears twice.
    #[error("the code {code} is given twice")]
    Duplicate {
        /// The code as written in the specification syntax.
        code: String,
    },
}

/// Maps Leader/17 to a [`BriefLevel`]: explicit codes, plus a default for every other byte.
///
/// Text form ([`BriefLevelTable::to_spec`], [`BriefLevelTable::parse_spec`], also `Display` and
/// `FromStr`): comma-separated `CODE=LEVEL` items, blanks around items ignored, empty items
/// ignored. `CODE` is `#` for the blank byte (a literal space would be lost to trimming), `*` for
/// "any other byte" (optional, defaults to 1), a single printable ASCII character, or `\xHH` for
/// any byte (`\x23` for a literal `#`, `\x2A` for `*`, `\x2C` for `,`). `LEVEL` is 1 to 10, a
/// leading zero allowed (`05`). Each code may appear once. `to_spec` writes levels from 10 down,
/// codes in byte order within a level, `*` last, e.g. CARLI:
/// `#=10,1=10,I=10,L=10,2=7,4=7,M=7,7=5,K=5,8=4,3=3,5=2,u=1,z=1,*=1`.
#[derive(Clone, PartialEq, Eq)]
pub struct BriefLevelTable {
    /// Per byte: 0 = use the default, otherwise the explicit level.
    levels: [u8; 256],
    default: BriefLevel,
}

impl Default for BriefLevelTable {
    /// The CARLI I-Share table.
    fn default() -> Self {
        BriefLevelTable::carli()
    }
}

impl fmt::Debug for BriefLevelTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BriefLevelTable({:?})", self.to_spec())
    }
}

impl fmt::Display for BriefLevelTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_spec())
    }
}

impl FromStr for BriefLevelTable {
    type Err = BadBriefTable;

    fn from_str(s: &str) -> Result<BriefLevelTable, BadBriefTable> {
        BriefLevelTable::parse_spec(s)
    }
}

/// Builds a table from a literal list known to be valid.
const fn const_table(pairs: &[(u8, u8)], default: u8) -> BriefLevelTable {
    let mut levels = [0u8; 256];
    let mut index = 0;
    while index < pairs.len() {
        levels[pairs[index].0 as usize] = pairs[index].1;
        index += 1;
    }
    BriefLevelTable {
        levels,
        default: BriefLevel(default),
    }
}

const CARLI: BriefLevelTable = const_table(
    &[
        (b' ', 10),
        (b'1', 10),
        (b'I', 10),
        (b'L', 10),
        (b'2', 7),
        (b'4', 7),
        (b'M', 7),
        (b'7', 5),
        (b'K', 5),
        (b'8', 4),
        (b'3', 3),
        (b'5', 2),
        (b'u', 1),
        (b'z', 1),
    ],
    1,
);

const CSU: BriefLevelTable = const_table(
    &[
        (b' ', 10),
        (b'I', 9),
        (b'L', 9),
        (b'1', 8),
        (b'4', 7),
        (b'K', 6),
        (b'M', 6),
        (b'2', 5),
        (b'7', 5),
        (b'8', 4),
        (b'3', 3),
        (b'5', 2),
        (b'u', 2),
        (b'z', 2),
        (b'J', 1),
    ],
    2,
);

/// The specification text of one code byte.
fn code_text(code: u8) -> String {
    match code {
        b' ' => "#".to_owned(),
        b'#' | b'*' | b',' | b'=' | b'\\' => format!("\\x{code:02X}"),
        code if code.is_ascii_graphic() => char::from(code).to_string(),
        code => format!("\\x{code:02X}"),
    }
}

/// `Some(None)` for `*`, `Some(Some(byte))` for a code, `None` when invalid.
fn parse_code(text: &str) -> Option<Option<u8>> {
    match text.as_bytes() {
        b"#" => Some(Some(b' ')),
        b"*" => Some(None),
        [byte] if byte.is_ascii_graphic() => Some(Some(*byte)),
        [b'\\', b'x' | b'X', high, low] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
            let hex = std::str::from_utf8(&text.as_bytes()[2..]).ok()?;
            u8::from_str_radix(hex, 16).ok().map(Some)
        }
        _ => None,
    }
}

fn parse_level(text: &str) -> Option<BriefLevel> {
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u8>().ok().and_then(BriefLevel::new)
}

impl BriefLevelTable {
    /// The CARLI I-Share table (the default): 10 = blank, 1, I, L; 07 = 2, 4, M; 05 = 7, K;
    /// 04 = 8; 03 = 3; 02 = 5; 01 = u, z and any other byte.
    pub const fn carli() -> BriefLevelTable {
        CARLI
    }

    /// The CSU Network Zone table: 10 = blank; 09 = I, L; 08 = 1; 07 = 4; 06 = K, M;
    /// 05 = 2, 7; 04 = 8; 03 = 3; 02 = 5, u, z and any other byte (the lowest non-deleted
    /// level, domain.md §4.2); 01 = J (deleted).
    pub const fn csu() -> BriefLevelTable {
        CSU
    }

    /// Builds a table from `(Leader/17 byte, level)` pairs and the level of every other byte.
    pub fn from_pairs(
        pairs: &[(u8, u8)],
        default_level: u8,
    ) -> Result<BriefLevelTable, BadBriefTable> {
        let default = BriefLevel::new(default_level).ok_or_else(|| BadBriefTable::Level {
            item: format!("*={default_level}"),
        })?;
        let mut levels = [0u8; 256];
        for &(code, level) in pairs {
            let item = format!("{}={level}", code_text(code));
            let level = BriefLevel::new(level).ok_or(BadBriefTable::Level { item })?;
            let slot = &mut levels[usize::from(code)];
            if *slot != 0 {
                return Err(BadBriefTable::Duplicate {
                    code: code_text(code),
                });
            }
            *slot = level.get();
        }
        Ok(BriefLevelTable { levels, default })
    }

    /// Reads the text form (see the type documentation).
    pub fn parse_spec(spec: &str) -> Result<BriefLevelTable, BadBriefTable> {
        let mut pairs = Vec::new();
        let mut default: Option<BriefLevel> = None;
        let mut any = false;
        for item in spec
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            any = true;
            let Some((code, level)) = item.rsplit_once('=') else {
                return Err(BadBriefTable::Syntax {
                    item: item.to_owned(),
                });
            };
            let code = parse_code(code.trim()).ok_or_else(|| BadBriefTable::Code {
                item: item.to_owned(),
            })?;
            let level = parse_level(level.trim()).ok_or_else(|| BadBriefTable::Level {
                item: item.to_owned(),
            })?;
            match code {
                Some(byte) => pairs.push((byte, level.get())),
                None if default.is_some() => {
                    return Err(BadBriefTable::Duplicate {
                        code: "*".to_owned(),
                    });
                }
                None => default = Some(level),
            }
        }
        if !any {
            return Err(BadBriefTable::Empty);
        }
        BriefLevelTable::from_pairs(&pairs, default.unwrap_or(BriefLevel::MIN).get())
    }

    /// Writes the text form (see the type documentation); `parse_spec` reads it back to an
    /// equal table.
    pub fn to_spec(&self) -> String {
        let mut items = Vec::new();
        for level in (1..=10u8).rev() {
            for (code, &explicit) in (0u8..=255).zip(self.levels.iter()) {
                if explicit == level {
                    items.push(format!("{}={level}", code_text(code)));
                }
            }
        }
        items.push(format!("*={}", self.default.get()));
        items.join(",")
    }

    /// The level for a Leader/17 byte.
    pub fn level_of(&self, leader17: u8) -> BriefLevel {
        match self.levels[usize::from(leader17)] {
            0 => self.default,
            level => BriefLevel(level),
        }
    }

    /// The level every unlisted byte gets.
    pub const fn default_level(&self) -> BriefLevel {
        self.default
    }

    /// The level of a record, from its Leader/17.
    pub fn record_level(&self, record: &Record) -> BriefLevel {
        self.level_of(encoding_level(record))
    }
}

// ---------------------------------------------------------------------------------------------
// Record kind
// ---------------------------------------------------------------------------------------------

/// The kind of MARC record, from Leader/06.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `a c d e f g i j k m o p r t`.
    Bibliographic,
    /// `z`.
    Authority,
    /// `u v x y`.
    Holdings,
    /// `w`.
    Classification,
    /// `q` (community information).
    Community,
    /// Any other byte, kept.
    Unknown(u8),
}

impl RecordType {
    /// Classifies a Leader/06 byte.
    pub const fn from_leader06(byte: u8) -> RecordType {
        match byte {
            b'a' | b'c' | b'd' | b'e' | b'f' | b'g' | b'i' | b'j' | b'k' | b'm' | b'o' | b'p'
            | b'r' | b't' => RecordType::Bibliographic,
            b'z' => RecordType::Authority,
            b'u' | b'v' | b'x' | b'y' => RecordType::Holdings,
            b'w' => RecordType::Classification,
            b'q' => RecordType::Community,
            other => RecordType::Unknown(other),
        }
    }
}

/// The record's kind, from Leader/06.
pub fn record_type(record: &Record) -> RecordType {
    RecordType::from_leader06(record.leader.record_type())
}

/// True when Leader/07 is `s` (serial). `b` (serial component part) and `i` (integrating
/// resource) are not serials here: Alma's Connexion profile and CARLI's configuration route
/// only Leader/07 `s` to the serial match method (domain.md §5 case 29).
pub fn is_serial(record: &Record) -> bool {
    record.leader.bibliographic_level() == b's'
}

#[cfg(test)]
mod tests;
