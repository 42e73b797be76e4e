//! The key-list format: a record's OCLC keys as one text value, as both adapters store them
//! with the record (`123:a 456:c`).

use std::fmt::Write as _;

use crate::IndexKey;

/// Writes a record's keys, in order, as a key list: each key as `<number>:a` (active) or
/// `<number>:c` (cancelled), separated by single spaces; no keys give the empty string.
///
/// ```
/// use bibgate_store::{IndexKey, encode_index_keys};
///
/// let keys = [
///     IndexKey { number: 123, active: true },
///     IndexKey { number: 456, active: false },
/// ];
/// assert_eq!(encode_index_keys(&keys), "123:a 456:c");
/// ```
pub fn encode_index_keys(keys: &[IndexKey]) -> String {
    let mut text = String::with_capacity(keys.len() * 12);
    for (key_idx, key) in keys.iter().enumerate() {
        if key_idx > 0 {
            text.push(' ');
        }
        let state = if key.active { 'a' } else { 'c' };
        // Writing to a String cannot fail.
        let _ = write!(text, "{}:{state}", key.number);
    }
    text
}

/// Reads a key list written by [`encode_index_keys`], keeping the order (any ASCII
/// whitespace separates keys).
///
/// ```
/// use bibgate_store::{IndexKey, parse_index_keys};
///
/// let keys = parse_index_keys("123:a 456:c").unwrap();
/// assert_eq!(keys, [
///     IndexKey { number: 123, active: true },
///     IndexKey { number: 456, active: false },
/// ]);
/// assert_eq!(parse_index_keys("123:x").unwrap_err().part(), "123:x");
/// ```
pub fn parse_index_keys(text: &str) -> Result<Vec<IndexKey>, BadIndexKey> {
    text.split_ascii_whitespace()
        .map(|part| {
            let parsed = part.split_once(':').and_then(|(number, state)| {
                let number = number.parse::<u64>().ok()?;
                let active = match state {
                    "a" => true,
                    "c" => false,
                    _ => return None,
                };
                Some(IndexKey { number, active })
            });
            parsed.ok_or_else(|| BadIndexKey {
                part: part.to_owned(),
            })
        })
        .collect()
}

/// A key list holds an entry that is not `<number>:a` or `<number>:c`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad oclc key {part:?}")]
pub struct BadIndexKey {
    part: String,
}

impl BadIndexKey {
    /// The entry that could not be read.
    pub fn part(&self) -> &str {
        &self.part
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(number: u64, active: bool) -> IndexKey {
        IndexKey { number, active }
    }

    #[test]
    fn keys_round_trip() {
        let cases: Vec<Vec<IndexKey>> = vec![
            vec![],
            vec![key(0, true)],
            vec![key(12, true), key(u64::MAX, false)],
            // Order and duplicates are kept: a number may be both active and cancelled.
            vec![key(9, false), key(3, true), key(9, true)],
        ];
        for keys in cases {
            let text = encode_index_keys(&keys);
            assert_eq!(parse_index_keys(&text), Ok(keys), "{text:?}");
        }
    }

    #[test]
    fn the_format_is_numbers_and_states_separated_by_spaces() {
        assert_eq!(encode_index_keys(&[]), "");
        assert_eq!(
            encode_index_keys(&[key(123, true), key(456, false)]),
            "123:a 456:c"
        );
        assert_eq!(
            parse_index_keys("  123:a\t456:c\n"),
            Ok(vec![key(123, true), key(456, false)])
        );
    }

    #[test]
    fn malformed_lists_are_errors_naming_the_entry() {
        for (text, part) in [
            ("12:x", "12:x"),
            ("12", "12"),
            ("12:", "12:"),
            (":a", ":a"),
            ("x:a", "x:a"),
            ("-1:a", "-1:a"),
            ("18446744073709551616:a", "18446744073709551616:a"),
            ("12:a:c", "12:a:c"),
            ("12:A", "12:A"),
            ("1:a 2:b 3:c", "2:b"),
            ("1:a,2:c", "1:a,2:c"),
        ] {
            let err = parse_index_keys(text).unwrap_err();
            assert_eq!(err.part(), part, "{text:?}");
            assert_eq!(err.to_string(), format!("bad oclc key {part:?}"));
        }
    }
}
