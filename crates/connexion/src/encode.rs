//! The client side: request encoding.

use std::fmt;

use crate::error::EncodeError;
use crate::request::{Tag, debug_fields};

/// The largest value the single-byte length encoding can express (`0xFF - 0x40`).
pub const MAX_BYTE_LENGTH: usize = 0xFF - 0x40;

/// How [`encode_request`] writes field lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthEncoding {
    /// One byte `0x40 + len`, as the Connexion desktop client sends; at most 191 bytes.
    Byte,
    /// ASCII decimal digits, as the Connexion browser sent; an empty value is `0`.
    Decimal,
}

/// A request to encode, borrowing its parts.
///
/// `Debug` never prints the password.
#[derive(Clone, Copy, Default)]
pub struct RequestRef<'a> {
    /// The `U` field, omitted when `None`.
    pub user: Option<&'a [u8]>,
    /// The `A` field (local system logon ID), omitted when `None`.
    pub local_user: Option<&'a [u8]>,
    /// The `P` field (local system password), omitted when `None`.
    pub password: Option<&'a [u8]>,
    /// The ISO 2709 record; it must start with its own 5-digit length.
    pub record: &'a [u8],
    /// Whether to end the request with a NUL byte.
    pub trailing_nul: bool,
}

impl fmt::Debug for RequestRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RequestRef");
        debug_fields(&mut out, self.user, self.local_user, self.password);
        out.field("record", &format_args!("\"<{} bytes>\"", self.record.len()));
        out.field("trailing_nul", &self.trailing_nul);
        out.finish()
    }
}

/// Encodes a request as `U`, `A`, `P` (those present, in that order), the record, and an
/// optional NUL, with no spaces.
///
/// Fails when the server could not read the request back unchanged: a value over 191 bytes
/// with [`LengthEncoding::Byte`], a non-empty value starting with a digit with
/// [`LengthEncoding::Decimal`] (the digits would be read as part of its length), or a record
/// that does not start with its own 5-digit length.
pub fn encode_request(
    request: &RequestRef<'_>,
    encoding: LengthEncoding,
) -> Result<Vec<u8>, EncodeError> {
    check_record(request.record)?;
    let fields = [
        (Tag::User, request.user),
        (Tag::LocalUser, request.local_user),
        (Tag::Password, request.password),
    ];
    let mut out = Vec::with_capacity(
        request.record.len()
            + 1
            + fields
                .iter()
                .map(|(_, value)| value.map_or(0, |v| v.len() + 7))
                .sum::<usize>(),
    );
    for (tag, value) in fields {
        if let Some(value) = value {
            encode_field(&mut out, tag, value, encoding)?;
        }
    }
    out.extend_from_slice(request.record);
    if request.trailing_nul {
        out.push(0);
    }
    Ok(out)
}

fn encode_field(
    out: &mut Vec<u8>,
    tag: Tag,
    value: &[u8],
    encoding: LengthEncoding,
) -> Result<(), EncodeError> {
    let letter = tag.letter();
    // `letter` is one of U, A, P, so the cast is exact.
    out.push(letter as u8);
    match encoding {
        LengthEncoding::Byte => {
            let length_byte = u8::try_from(value.len())
                .ok()
                .and_then(|len| len.checked_add(0x40))
                .ok_or(EncodeError::ValueTooLong {
                    tag: letter,
                    len: value.len(),
                    max: MAX_BYTE_LENGTH,
                })?;
            out.push(length_byte);
        }
        LengthEncoding::Decimal => {
            if value.first().is_some_and(u8::is_ascii_digit) {
                return Err(EncodeError::AmbiguousValue { tag: letter });
            }
            out.extend_from_slice(value.len().to_string().as_bytes());
        }
    }
    out.extend_from_slice(value);
    Ok(())
}

fn check_record(record: &[u8]) -> Result<(), EncodeError> {
    let length_field = &record[..record.len().min(5)];
    let declared = if length_field.len() == 5 && length_field.iter().all(u8::is_ascii_digit) {
        Some(
            length_field
                .iter()
                .fold(0usize, |acc, digit| acc * 10 + usize::from(digit - b'0')),
        )
    } else {
        None
    };
    if declared == Some(record.len()) {
        Ok(())
    } else {
        Err(EncodeError::BadRecord {
            length_field: length_field.to_vec(),
            actual: record.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(
        user: Option<&'static [u8]>,
        local_user: Option<&'static [u8]>,
        password: Option<&'static [u8]>,
    ) -> RequestRef<'static> {
        RequestRef {
            user,
            local_user,
            password,
            record: b"0001012345",
            trailing_nul: false,
        }
    }

    #[test]
    fn byte_encoding_matches_the_desktop_vector() {
        let request = fields(Some(b"abcde"), Some(b"fg"), Some(b"hij"));
        let bytes = encode_request(&request, LengthEncoding::Byte).unwrap();
        assert_eq!(bytes, b"UEabcdeABfgPChij0001012345");
    }

    #[test]
    fn decimal_encoding_matches_the_browser_vector() {
        let request = fields(Some(b"abcde"), Some(b"fg"), Some(b"hij"));
        let bytes = encode_request(&request, LengthEncoding::Decimal).unwrap();
        assert_eq!(bytes, b"U5abcdeA2fgP3hij0001012345");
    }

    #[test]
    fn empty_values() {
        let request = RequestRef {
            trailing_nul: true,
            ..fields(None, Some(b""), Some(b""))
        };
        assert_eq!(
            encode_request(&request, LengthEncoding::Decimal).unwrap(),
            b"A0P00001012345\0"
        );
        assert_eq!(
            encode_request(&request, LengthEncoding::Byte).unwrap(),
            b"A@P@0001012345\0"
        );
    }

    #[test]
    fn byte_encoding_limit() {
        let long = [b'x'; 192];
        let ok = RequestRef {
            local_user: Some(&long[..191]),
            ..fields(None, None, None)
        };
        let bytes = encode_request(&ok, LengthEncoding::Byte).unwrap();
        assert_eq!(&bytes[..2], b"A\xFF");
        let too_long = RequestRef {
            local_user: Some(&long),
            ..ok
        };
        let error = encode_request(&too_long, LengthEncoding::Byte).unwrap_err();
        assert_eq!(error.code(), "value-too-long");
        assert_eq!(
            error.to_string(),
            "field A has 192 bytes; the single-byte length encoding allows at most 191"
        );
        assert!(encode_request(&too_long, LengthEncoding::Decimal).is_ok());
    }

    #[test]
    fn decimal_value_starting_with_a_digit_is_refused() {
        let request = fields(None, None, Some(b"9876"));
        let error = encode_request(&request, LengthEncoding::Decimal).unwrap_err();
        assert_eq!(error, EncodeError::AmbiguousValue { tag: 'P' });
        assert_eq!(error.code(), "ambiguous-value");
        assert_eq!(
            encode_request(&request, LengthEncoding::Byte).unwrap(),
            b"PD98760001012345"
        );
    }

    #[test]
    fn record_must_carry_its_own_length() {
        for record in [
            &b""[..],
            b"0001",
            b"00012123456",
            b"0000912345",
            b"00004",
            b"abcde",
        ] {
            let request = RequestRef {
                record,
                ..Default::default()
            };
            let error = encode_request(&request, LengthEncoding::Byte).unwrap_err();
            assert_eq!(error.code(), "bad-record");
        }
    }

    #[test]
    fn debug_hides_password() {
        let request = fields(Some(b"abc"), None, Some(b"hunter2"));
        let text = format!("{request:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted, 7 bytes>"), "{text}");
    }
}
