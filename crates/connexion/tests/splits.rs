//! Decimal lengths whose digits run into a value that starts with a digit (issue 16): every
//! Alma institution code (`01…`) as a logon id, or a password starting with a digit.

use bibgate_connexion::{
    LengthEncoding, MAX_REQUEST_BYTES, Parse, ProtocolError, Request, RequestParser, RequestRef,
    encode_request,
};
use proptest::prelude::*;

/// A record that starts like a MARC leader, `body_len` bytes after the leader.
fn record(body_len: usize) -> Vec<u8> {
    let len = 24 + body_len;
    let mut record = format!("{len:05}nam a2200025   4500").into_bytes();
    record.extend((0..body_len).map(|index| b'a' + (index % 26) as u8));
    record
}

/// Decimal encoding without the encoder's refusal of values that start with a digit.
fn decimal(fields: &[(u8, &[u8])], record: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, value) in fields {
        out.push(*tag);
        out.extend(value.len().to_string().as_bytes());
        out.extend(*value);
    }
    out.extend(record);
    out
}

fn parser() -> RequestParser {
    RequestParser::new().with_digit_splits()
}

/// Every event other than `NeedMore`, feeding `input` in chunks of `size` bytes.
fn events(mut parser: RequestParser, input: &[u8], size: usize) -> (Vec<Parse>, RequestParser) {
    let mut events = Vec::new();
    for chunk in input.chunks(size.max(1)) {
        let mut event = parser.feed(chunk);
        assert!(
            parser.held_bytes() <= parser.max_bytes() + chunk.len(),
            "held {} bytes",
            parser.held_bytes()
        );
        loop {
            match event {
                Parse::NeedMore => break,
                Parse::Error(_) => {
                    events.push(event);
                    return (events, parser);
                }
                other => {
                    events.push(other);
                    let _ = parser.incomplete();
                    event = parser.poll();
                }
            }
        }
    }
    (events, parser)
}

/// The events of `input` for every chunking: whole, one byte at a time, and every split
/// into two writes; all must agree.
fn parse_all_ways(input: &[u8]) -> Vec<Parse> {
    let (whole, _) = events(parser(), input, input.len());
    let (bytewise, _) = events(parser(), input, 1);
    assert_eq!(bytewise, whole, "one byte at a time");
    for split in 0..=input.len() {
        let mut parser = parser();
        let mut got = Vec::new();
        for part in [&input[..split], &input[split..]] {
            let mut event = parser.feed(part);
            while event != Parse::NeedMore {
                let stop = matches!(event, Parse::Error(_));
                got.push(event);
                if stop {
                    break;
                }
                event = parser.poll();
            }
        }
        assert_eq!(got, whole, "split at {split}");
    }
    whole
}

#[test]
fn r16_logon_id_starting_with_a_digit_is_read_with_decimal_lengths() {
    let record = record(40);
    let input = decimal(
        &[(b'U', b"abcde"), (b'A', b"01DEMO_ALPHA"), (b'P', b"secret")],
        &record,
    );
    assert!(input.starts_with(b"U5abcdeA1201DEMO_ALPHAP6secret"));
    let expected = Request {
        user: Some(b"abcde".to_vec()),
        local_user: Some(b"01DEMO_ALPHA".to_vec()),
        password: Some(b"secret".to_vec()),
        record: record.clone(),
    };
    assert_eq!(parse_all_ways(&input), [Parse::Complete(expected)]);

    // The plain parser reads the digits greedily: a 1201-byte logon id, never complete.
    let (plain, plain_parser) = events(RequestParser::new(), &input, input.len());
    assert_eq!(plain, []);
    assert!(plain_parser.has_partial_request());
}

#[test]
fn r16_password_and_logon_id_both_starting_with_digits() {
    let record = record(100);
    for (logon, password) in [
        (&b"01CARLI_UIU"[..], &b"2024secret"[..]),
        (b"9", b"0"),
        (b"12345678901234567890", b"1"),
    ] {
        let input = decimal(&[(b'A', logon), (b'P', password)], &record);
        let expected = Request {
            user: None,
            local_user: Some(logon.to_vec()),
            password: Some(password.to_vec()),
            record: record.clone(),
        };
        assert_eq!(
            parse_all_ways(&input),
            [Parse::Complete(expected)],
            "{logon:?}"
        );
    }
}

#[test]
fn r16_both_encodings_carry_the_same_logon_id() {
    let record = record(10);
    let byte = encode_request(
        &RequestRef {
            local_user: Some(b"01DEMO_ALPHA"),
            password: Some(b"secret"),
            record: &record,
            ..RequestRef::default()
        },
        LengthEncoding::Byte,
    )
    .unwrap();
    let decimal = decimal(&[(b'A', b"01DEMO_ALPHA"), (b'P', b"secret")], &record);
    assert_eq!(parse_all_ways(&byte), parse_all_ways(&decimal));
}

#[test]
fn r16_requests_that_were_unambiguous_parse_as_before() {
    let record = record(5);
    let mut input = b"A17".to_vec();
    input.extend("testlib user bøf".as_bytes());
    input.extend(b"P0");
    input.extend(&record);
    let (plain, _) = events(RequestParser::new(), &input, input.len());
    assert_eq!(parse_all_ways(&input), plain);

    // A digit run over the limit is still the greedy reading's error once no shorter split
    // can complete.
    let mut input = b"U99999999".to_vec();
    input.extend(vec![b'x'; 200_000]);
    let (events, parser) = events(parser(), &input, 8192);
    assert_eq!(
        events,
        [Parse::Error(ProtocolError::TooLarge {
            size: 1_000_006,
            max: MAX_REQUEST_BYTES
        })]
    );
    assert_eq!(parser.held_bytes(), 0);
}

#[test]
fn r16_two_readings_ending_at_the_same_byte_go_to_the_caller() {
    // `A15P3abc` is A = "5", P = "abc" and a 50-byte record, or A = 15 bytes and a 40-byte
    // record that starts 10 bytes into the first one.
    let mut record = b"00050nam a0004000xxx4500".to_vec();
    record.resize(50, b'1');
    let mut input = b"A15P3abc".to_vec();
    input.extend(&record);
    let greedy = Request {
        local_user: Some(input[3..18].to_vec()),
        record: input[18..].to_vec(),
        ..Request::default()
    };
    let split = Request {
        local_user: Some(b"5".to_vec()),
        password: Some(b"abc".to_vec()),
        record: record.clone(),
        ..Request::default()
    };
    assert_eq!(
        parse_all_ways(&input),
        [Parse::Ambiguous(vec![greedy, split])]
    );
    let error = ProtocolError::AmbiguousLength { readings: 2 };
    assert_eq!(error.code(), "ambiguous-length");
}

#[test]
fn r16_a_split_must_find_a_record_that_starts_like_a_leader() {
    // A = "2" then a 5-byte "record" of digits only: not a leader, so the 12-byte logon id
    // (still incomplete) stands.
    let (got, parser) = events(parser(), b"A1200005xxxx", 12);
    assert_eq!(got, []);
    assert_eq!(
        parser.incomplete(),
        Some(ProtocolError::Incomplete {
            fields: 0,
            held_bytes: 12,
            item_bytes: Some(15)
        })
    );
}

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(
        proptest::sample::select(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_ ".to_vec()),
        0..40,
    ))
}

/// Bytes biased towards the protocol's alphabet so that parsing gets deep.
fn protocol_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => proptest::sample::select(b"UAP0123456789 \0GET /\r\n@ABCE\x80\xff".to_vec()),
        1 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..600)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decimal_values_starting_with_digits_round_trip(
        user in value(),
        local_user in value(),
        password in value(),
        body_len in 0usize..300,
        size in 1usize..50,
    ) {
        let record = record(body_len);
        let mut fields = Vec::new();
        for (tag, value) in [(b'U', &user), (b'A', &local_user), (b'P', &password)] {
            if let Some(value) = value {
                fields.push((tag, value.as_slice()));
            }
        }
        let input = decimal(&fields, &record);
        let expected = Request { user, local_user, password, record };
        let (whole, _) = events(parser(), &input, input.len());
        let (chunked, _) = events(parser(), &input, size);
        let (bytewise, _) = events(parser(), &input, 1);
        prop_assert_eq!(&chunked, &whole);
        prop_assert_eq!(&bytewise, &whole);
        match &whole[..] {
            [Parse::Complete(request)] => prop_assert_eq!(request, &expected),
            [Parse::Ambiguous(requests)] => prop_assert!(requests.contains(&expected)),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn arbitrary_input_ignores_chunking_with_digit_splits(
        input in prop_oneof![protocol_bytes(), proptest::collection::vec(any::<u8>(), 0..600)],
        size in 1usize..40,
        max in prop_oneof![Just(MAX_REQUEST_BYTES), 5usize..300],
    ) {
        let make = || RequestParser::with_max_bytes(max).with_digit_splits();
        let (expected, whole) = events(make(), &input, input.len());
        let (chunked_events, chunked) = events(make(), &input, size);
        prop_assert_eq!(&chunked_events, &expected);
        prop_assert_eq!(chunked.incomplete(), whole.incomplete());
        let (bytewise_events, bytewise) = events(make(), &input, 1);
        prop_assert_eq!(&bytewise_events, &expected);
        prop_assert_eq!(bytewise.has_partial_request(), whole.has_partial_request());
        prop_assert_eq!(bytewise.incomplete(), whole.incomplete());
    }
}
