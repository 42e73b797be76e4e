//! Property tests: encode/parse round trip under any chunking, chunking invariance and
//! absence of panics on arbitrary input, reply framing round trip.

use bibgate_connexion::{
    LengthEncoding, MAX_REQUEST_BYTES, Parse, ReplyParser, Request, RequestParser, RequestRef,
    encode_reply, encode_request,
};
use proptest::prelude::*;

/// Splits `input` into chunks whose sizes cycle through `sizes` (all 1 when empty).
fn chunks<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    let mut index = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(index % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
        index += 1;
    }
    out
}

/// Feeds the chunks and returns every event other than `NeedMore`, stopping at an error.
fn events(parser: &mut RequestParser, chunks: &[&[u8]]) -> Vec<Parse> {
    let mut events = Vec::new();
    for chunk in chunks {
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
                    return events;
                }
                other => {
                    events.push(other);
                    // Exercise the helpers between events; they must never panic.
                    let _ = parser.check_one_record();
                    let _ = parser.incomplete();
                    let _ = format!("{parser:?}");
                    event = parser.poll();
                }
            }
        }
    }
    events
}

fn value(max_len: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=max_len))
}

fn record() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..400).prop_map(|body| {
        let mut record = format!("{:05}", body.len() + 5).into_bytes();
        record.extend_from_slice(&body);
        record
    })
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
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_parse_round_trips(
        user in value(191),
        local_user in value(191),
        password_suffix in value(100),
        record in record(),
        decimal in any::<bool>(),
        trailing_nul in any::<bool>(),
        sizes in proptest::collection::vec(1usize..50, 0..8),
    ) {
        let encoding = if decimal { LengthEncoding::Decimal } else { LengthEncoding::Byte };
        // Decimal lengths cannot carry a value that starts with a digit (see EncodeError).
        let fix = |value: Option<Vec<u8>>| {
            value.map(|mut value| {
                if decimal && value.first().is_some_and(u8::is_ascii_digit) {
                    value[0] = b'x';
                }
                value
            })
        };
        let user = fix(user);
        let local_user = fix(local_user);
        let password = password_suffix.map(|suffix| {
            let mut password = b"SECRET".to_vec();
            password.extend_from_slice(&suffix[..suffix.len().min(185)]);
            password
        });
        let request_ref = RequestRef {
            user: user.as_deref(),
            local_user: local_user.as_deref(),
            password: password.as_deref(),
            record: &record,
            trailing_nul,
        };
        let bytes = encode_request(&request_ref, encoding).unwrap();
        let expected = Request { user, local_user, password, record };

        let mut parser = RequestParser::new();
        let got = events(&mut parser, &chunks(&bytes, &sizes));
        prop_assert_eq!(&got, &[Parse::Complete(expected.clone())]);
        prop_assert!(!parser.has_partial_request());
        prop_assert_eq!(parser.held_bytes(), 0);

        let mut parser = RequestParser::new();
        let bytewise = events(&mut parser, &chunks(&bytes, &[1]));
        prop_assert_eq!(&bytewise, &got);

        let text = format!("{expected:?}");
        prop_assert!(!text.contains("SECRET"), "{}", text);
    }

    #[test]
    fn arbitrary_input_never_panics_and_ignores_chunking(
        input in prop_oneof![protocol_bytes(), proptest::collection::vec(any::<u8>(), 0..600)],
        sizes in proptest::collection::vec(1usize..40, 0..8),
        max in prop_oneof![Just(MAX_REQUEST_BYTES), 5usize..300],
    ) {
        let mut whole = RequestParser::with_max_bytes(max);
        let expected = events(&mut whole, &[&input]);
        let _ = whole.incomplete();

        let mut chunked = RequestParser::with_max_bytes(max);
        prop_assert_eq!(&events(&mut chunked, &chunks(&input, &sizes)), &expected);
        prop_assert_eq!(chunked.incomplete(), whole.incomplete());

        let mut bytewise = RequestParser::with_max_bytes(max);
        prop_assert_eq!(&events(&mut bytewise, &chunks(&input, &[1])), &expected);
        prop_assert_eq!(bytewise.has_partial_request(), whole.has_partial_request());
    }

    #[test]
    fn reply_framing_round_trips(
        text in any::<String>(),
        sizes in proptest::collection::vec(1usize..20, 0..5),
    ) {
        let framed = encode_reply(&text);
        prop_assert_eq!(framed.iter().filter(|&&byte| byte == 0).count(), 1);
        prop_assert_eq!(framed.last(), Some(&0));
        let mut reader = ReplyParser::new();
        let mut got = Vec::new();
        for chunk in chunks(&framed, &sizes) {
            if let Some(reply) = reader.feed(chunk).unwrap() {
                got.push(reply);
            }
        }
        prop_assert_eq!(got, vec![text.replace('\0', "")]);
        prop_assert_eq!(reader.finish(), None);
    }
}
