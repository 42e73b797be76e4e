//! Byte-level vectors: edge-connexion's `ConnexionRequestTest` (spec §4.1) and the parts of
//! the conformance suite (spec §4.4) that can be checked without a socket.

use bibgate_connexion::{
    HttpProbe, LengthEncoding, MAX_REQUEST_BYTES, Parse, ProtocolError, Request, RequestParser,
    RequestRef, consumable, encode_request, http_ok_response,
};

/// Feeds `input` in one chunk and returns every event up to `NeedMore` or an error.
fn events_in_one_chunk(parser: &mut RequestParser, input: &[u8]) -> Vec<Parse> {
    let mut events = vec![parser.feed(input)];
    drain(parser, &mut events);
    events
}

/// Feeds `input` one byte at a time and returns every event.
fn events_byte_by_byte(parser: &mut RequestParser, input: &[u8]) -> Vec<Parse> {
    let mut events = Vec::new();
    for byte in input {
        events.push(parser.feed(std::slice::from_ref(byte)));
        drain(parser, &mut events);
        if matches!(events.last(), Some(Parse::Error(_))) {
            break;
        }
    }
    events.retain(|event| *event != Parse::NeedMore);
    events
}

fn drain(parser: &mut RequestParser, events: &mut Vec<Parse>) {
    loop {
        match events.last() {
            Some(Parse::NeedMore) | Some(Parse::Error(_)) => return,
            _ => events.push(parser.poll()),
        }
    }
}

/// The single request in `input`, checked to be the same whatever the chunking.
fn parse_one(input: &[u8]) -> Request {
    let whole = events_in_one_chunk(&mut RequestParser::new(), input);
    let bytewise = events_byte_by_byte(&mut RequestParser::new(), input);
    match (&whole[..], &bytewise[..]) {
        ([Parse::Complete(request), Parse::NeedMore], [Parse::Complete(same)]) => {
            assert_eq!(request, same);
            request.clone()
        }
        other => panic!("expected one request, got {other:?}"),
    }
}

fn request(user: &[u8], local_user: &[u8], password: &[u8], record: &[u8]) -> Request {
    Request {
        user: Some(user.to_vec()),
        local_user: Some(local_user.to_vec()),
        password: Some(password.to_vec()),
        record: record.to_vec(),
    }
}

// ---- §4.1 testFeedInput: bytes consumed as complete items --------------------------------

#[test]
fn feed_input_consumed_table() {
    let table: &[(usize, &[u8])] = &[
        (0, b"A"),
        (0, b"A3"),
        (0, b"U3ab"),
        (5, b"U3abc"),
        (1, b" U3ab"),
        (7, b" U3abc "),
        (7, b" U3abc 0"),
        (7, b" U3abc 00010"),
        (7, b" U3abc 000101"),
        (7, b" U3abc 0001012"),
        (7, b" U3abc 00010123"),
        (7, b" U3abc 000101234"),
        (17, b" U3abc 0001012345"),
        (0, b"GET / HTTP/1.1"),
        (0, b"0"),
        (0, b"00"),
        (0, b"000"),
        (0, b"0000"),
        (5, b"00005"),
        (0, b"00016123456"),
        (0, b"0001212345"),
        (11, b"00011123456"),
        (11, b"000111234560"),
        (0, b"1000012345"),
        (0, b"U19abcde"),
        (0, b"_"),
        (0, b"U?abcde"),
        (2, b"P09876"),
        (7, b"P0U3abc"),
    ];
    for &(expected, input) in table {
        assert_eq!(
            consumable(input),
            expected,
            "input {:?}",
            input.escape_ascii().to_string()
        );
    }
}

// ---- §4.1 parse vectors -------------------------------------------------------------------

#[test]
fn parse_request_1_digit_length() {
    assert_eq!(
        parse_one(b"U5abcdeA2fgP3hij0001012345"),
        request(b"abcde", b"fg", b"hij", b"0001012345")
    );
}

#[test]
fn parse_request_single_char_length_1() {
    assert_eq!(
        parse_one(b" UEabcde ABfg PChij 0001012345"),
        request(b"abcde", b"fg", b"hij", b"0001012345")
    );
}

#[test]
fn parse_request_single_char_length_2() {
    let key = b"eyJzIjoiVjJBY2JsUUt3eSIsInQiOiJkaWt1IiwidSI6ImRpa3VfYWRtaW4ifQ==";
    let key = &key[..64];
    let mut input = b" UEabcde A\x80".to_vec();
    input.extend_from_slice(key);
    input.extend_from_slice(b"PChij 0001012345");
    assert_eq!(
        parse_one(&input),
        request(b"abcde", key, b"hij", b"0001012345")
    );
}

#[test]
fn parse_request_utf8_and_two_records() {
    let local_user = "testlib user bøf".as_bytes();
    assert_eq!(local_user.len(), 17);
    let mut input = b"A17".to_vec();
    input.extend_from_slice(local_user);
    input.extend_from_slice(b"00007\xC3\xA6");
    input.extend_from_slice(b"00008123");

    let mut parser = RequestParser::new();
    let first = Request {
        local_user: Some(local_user.to_vec()),
        record: "00007æ".as_bytes().to_vec(),
        ..Request::default()
    };
    assert_eq!(parser.feed(&input), Parse::Complete(first.clone()));
    // The second record arrived with the first: the server is told.
    assert_eq!(parser.extra_bytes(), 8);
    let error = parser.check_one_record().unwrap_err();
    assert_eq!(error, ProtocolError::OneRecordExpected { extra_bytes: 8 });
    assert_eq!(error.code(), "one-record-expected");
    assert_eq!(
        error.to_string(),
        "one record expected per request; 8 more bytes followed the record"
    );
    // Polling again parses the extra input as the next request.
    let second = Request {
        record: b"00008123".to_vec(),
        ..Request::default()
    };
    assert_eq!(parser.poll(), Parse::Complete(second.clone()));
    assert!(parser.check_one_record().is_ok());
    assert_eq!(parser.poll(), Parse::NeedMore);

    // Byte by byte, the two records arrive separately and no extra input is seen.
    let bytewise = events_byte_by_byte(&mut RequestParser::new(), &input);
    assert_eq!(bytewise, [Parse::Complete(first), Parse::Complete(second)]);
}

#[test]
fn import_from_oclc() {
    assert_eq!(
        parse_one(b"U5!bcdeA2fgP3hij0001012345"),
        request(b"!bcde", b"fg", b"hij", b"0001012345")
    );
}

// ---- §4.4 conformance vectors that need no socket -----------------------------------------

/// A small well-formed UTF-8 record (leader, directory, one 245 field, terminators).
fn sample_record() -> Vec<u8> {
    let field = b"10\x1faA title\x1e";
    let directory = format!("245{:04}{:05}\x1e", field.len(), 0);
    let base = 24 + directory.len();
    let total = base + field.len() + 1;
    let mut record = format!("{total:05}nam a22{base:05}   4500").into_bytes();
    record.extend_from_slice(directory.as_bytes());
    record.extend_from_slice(field);
    record.push(0x1d);
    assert_eq!(record.len(), total);
    record
}

fn desktop_vector(record: &[u8]) -> Vec<u8> {
    let mut input = b"\x55\x45abcde\x41\x42fg\x50\x43hij".to_vec();
    input.extend_from_slice(record);
    input
}

#[test]
fn c01_c02_c03_desktop_decimal_and_spaced_framing_agree() {
    let record = sample_record();
    let expected = request(b"abcde", b"fg", b"hij", &record);
    assert_eq!(parse_one(&desktop_vector(&record)), expected);
    let mut decimal = b"U5abcdeA2fgP3hij".to_vec();
    decimal.extend_from_slice(&record);
    assert_eq!(parse_one(&decimal), expected);
    let mut spaced = b" UEabcde ABfg PChij ".to_vec();
    spaced.extend_from_slice(&record);
    assert_eq!(parse_one(&spaced), expected);
}

#[test]
fn c04_empty_password() {
    let record = sample_record();
    let mut input = b"A2fgP0".to_vec();
    input.extend_from_slice(&record);
    let parsed = parse_one(&input);
    assert_eq!(parsed.password, Some(Vec::new()));
    assert_eq!(parsed.record, record);
    assert_eq!(
        parse_one(b"P0U3abc00005"),
        Request {
            user: Some(b"abc".to_vec()),
            password: Some(Vec::new()),
            record: b"00005".to_vec(),
            ..Request::default()
        }
    );
}

#[test]
fn c05_long_logon_ids() {
    for len in [64usize, 191] {
        let value = vec![b'k'; len];
        let mut input = vec![b'A', 0x40 + len as u8];
        input.extend_from_slice(&value);
        input.extend_from_slice(b"00005");
        assert_eq!(parse_one(&input).local_user, Some(value));
    }
}

#[test]
fn c07_fragmentation_inside_digits_record_and_after_tag() {
    let record = sample_record();
    let input = desktop_vector(&record);
    let expected = request(b"abcde", b"fg", b"hij", &record);
    // Every single split point, plus byte-at-a-time inside parse_one.
    for split in 0..=input.len() {
        let mut parser = RequestParser::new();
        let first = parser.feed(&input[..split]);
        let second = parser.feed(&input[split..]);
        let complete = if split == input.len() { first } else { second };
        assert_eq!(complete, Parse::Complete(expected.clone()), "split {split}");
    }
    let mut decimal = b"A17".to_vec();
    decimal.extend_from_slice("testlib user bøf".as_bytes());
    decimal.extend_from_slice(b"P0");
    decimal.extend_from_slice(&record);
    for split in 0..=decimal.len() {
        let mut parser = RequestParser::new();
        let events = [
            parser.feed(&decimal[..split]),
            parser.feed(&decimal[split..]),
        ];
        assert!(
            events
                .iter()
                .any(|event| matches!(event, Parse::Complete(r) if r.record == record)),
            "split {split}: {events:?}"
        );
    }
}

#[test]
fn c08_trailing_nul_gives_one_request() {
    let record = sample_record();
    let mut input = desktop_vector(&record);
    input.push(0);
    let expected = request(b"abcde", b"fg", b"hij", &record);
    assert_eq!(
        events_in_one_chunk(&mut RequestParser::new(), &input),
        [Parse::Complete(expected.clone()), Parse::NeedMore]
    );
    assert_eq!(
        events_byte_by_byte(&mut RequestParser::new(), &input),
        [Parse::Complete(expected)]
    );
    // The trailer does not count as extra input, with or without spaces.
    for tail in [&b"\0"[..], b" \0", b"  \0  ", b" "] {
        let mut input = b"00005".to_vec();
        input.extend_from_slice(tail);
        let mut parser = RequestParser::new();
        assert!(matches!(parser.feed(&input), Parse::Complete(_)));
        assert!(parser.check_one_record().is_ok(), "tail {tail:?}");
        assert_eq!(parser.poll(), Parse::NeedMore);
        assert!(!parser.has_partial_request());
        assert_eq!(parser.incomplete(), None);
    }
}

#[test]
fn nul_before_any_record() {
    for input in [&b"U4User\0"[..], b"\0"] {
        assert_eq!(
            events_in_one_chunk(&mut RequestParser::new(), input),
            [Parse::Nul, Parse::NeedMore]
        );
        assert_eq!(
            events_byte_by_byte(&mut RequestParser::new(), input),
            [Parse::Nul]
        );
    }
    // Fields before the NUL are discarded; the next request starts clean.
    let mut parser = RequestParser::new();
    assert_eq!(parser.feed(b"U4User\0"), Parse::Nul);
    assert_eq!(
        parser.feed(b"00005"),
        Parse::Complete(Request {
            record: b"00005".to_vec(),
            ..Request::default()
        })
    );
    // A second NUL after a request's trailer is a request without a record.
    let mut parser = RequestParser::new();
    assert!(matches!(parser.feed(b"00005\0\0"), Parse::Complete(_)));
    assert_eq!(parser.poll(), Parse::Nul);
}

#[test]
fn nul_inside_a_value_is_data() {
    assert_eq!(parse_one(b"P3a\0b00005").password, Some(b"a\0b".to_vec()));
}

#[test]
fn c09_raw_record_only() {
    let record = sample_record();
    assert_eq!(
        parse_one(&record),
        Request {
            record,
            ..Request::default()
        }
    );
}

#[test]
fn c10_c13_stalled_requests_are_described() {
    let mut parser = RequestParser::new();
    assert!(!parser.has_partial_request());
    assert_eq!(parser.incomplete(), None);

    assert_eq!(parser.feed(b"U5abc"), Parse::NeedMore);
    let error = parser.incomplete().unwrap();
    assert_eq!(
        error,
        ProtocolError::Incomplete {
            fields: 0,
            held_bytes: 5,
            item_bytes: Some(7)
        }
    );
    assert_eq!(error.code(), "incomplete-request");
    assert_eq!(
        error.to_string(),
        "incomplete request: no record after 0 complete field(s); 5 of 7 bytes of the next item received"
    );

    let mut parser = RequestParser::new();
    assert_eq!(parser.feed(b"U4User"), Parse::NeedMore);
    assert_eq!(
        parser.incomplete().unwrap().to_string(),
        "incomplete request: no record after 1 complete field(s)"
    );

    let mut parser = RequestParser::new();
    assert_eq!(parser.feed(b"U19abcde"), Parse::NeedMore);
    assert_eq!(
        parser.incomplete(),
        Some(ProtocolError::Incomplete {
            fields: 0,
            held_bytes: 8,
            item_bytes: Some(22)
        })
    );
}

#[test]
fn c11_oversize_field_is_refused_without_allocating_it() {
    // The declared length is over the limit as soon as its sixth digit arrives, so the
    // error comes before any data; nothing of the declared size is allocated.
    let expected = Parse::Error(ProtocolError::TooLarge {
        size: 1_000_006,
        max: MAX_REQUEST_BYTES,
    });
    assert_eq!(
        events_byte_by_byte(&mut RequestParser::new(), b"U99999999"),
        std::slice::from_ref(&expected)
    );
    let mut parser = RequestParser::new();
    assert_eq!(parser.feed(b"U99999999"), expected);
    // 200 kB more: the parser stays failed and buffers nothing.
    let chunk = vec![b'x'; 8192];
    for _ in 0..25 {
        assert_eq!(parser.feed(&chunk), expected);
        assert_eq!(parser.held_bytes(), 0);
    }
    assert!(format!("{parser:?}").contains("held_bytes: 0"));

    // A declared length just over the limit is refused when its digits end.
    let mut parser = RequestParser::new();
    assert_eq!(parser.feed(b"U99995"), Parse::NeedMore);
    assert_eq!(
        parser.feed(&chunk),
        Parse::Error(ProtocolError::TooLarge {
            size: 100_001,
            max: MAX_REQUEST_BYTES
        })
    );
}

#[test]
fn c11_oversize_variants() {
    // An unterminated digit run (all digits) still stops at the limit.
    let mut parser = RequestParser::new();
    let mut outcome = parser.feed(b"U9");
    for _ in 0..100 {
        if outcome != Parse::NeedMore {
            break;
        }
        outcome = parser.feed(b"9999999999");
    }
    assert!(matches!(
        outcome,
        Parse::Error(ProtocolError::TooLarge { .. })
    ));

    // A declared record length over the limit (edge-connexion's test, limit 10).
    let mut parser = RequestParser::with_max_bytes(10);
    let Parse::Error(error) = parser.feed(b"00016123456") else {
        panic!("expected an error");
    };
    assert_eq!(error, ProtocolError::TooLarge { size: 16, max: 10 });
    assert_eq!(error.code(), "too-large");
    assert_eq!(
        error.to_string(),
        "request too large: an item of at least 16 bytes exceeds the limit of 10 bytes"
    );

    // The largest MARC record fits the default limit.
    let mut record = b"99999".to_vec();
    record.resize(99_999, b'x');
    let mut parser = RequestParser::new();
    let Parse::Complete(parsed) = parser.feed(&record) else {
        panic!("expected a record");
    };
    assert_eq!(parsed.record.len(), 99_999);

    // An HTTP header without a blank line within the limit.
    let mut parser = RequestParser::with_max_bytes(64);
    assert_eq!(parser.feed(b"GET / HTTP/1.1\r\n"), Parse::NeedMore);
    assert!(matches!(
        parser.feed(&[b'h'; 64]),
        Parse::Error(ProtocolError::TooLarge { .. })
    ));
}

#[test]
fn c12_bytes_that_can_never_parse_fail_fast() {
    let cases: &[(&[u8], ProtocolError, &str)] = &[
        (
            b"_",
            ProtocolError::UnexpectedByte {
                byte: b'_',
                offset: 0,
            },
            "unexpected byte 0x5f at offset 0; expected U, A, P, a space, a record or NUL",
        ),
        (
            b"-0005",
            ProtocolError::UnexpectedByte {
                byte: b'-',
                offset: 0,
            },
            "unexpected byte 0x2d at offset 0; expected U, A, P, a space, a record or NUL",
        ),
        (
            b"U?abcde",
            ProtocolError::BadFieldLength {
                tag: 'U',
                byte: b'?',
                offset: 1,
            },
            "bad length byte 0x3f after field U at offset 1; expected a digit or a byte of at least 0x40",
        ),
        (
            b"A?abc",
            ProtocolError::BadFieldLength {
                tag: 'A',
                byte: b'?',
                offset: 1,
            },
            "bad length byte 0x3f after field A at offset 1; expected a digit or a byte of at least 0x40",
        ),
        (
            b"U3abc 0-005",
            ProtocolError::BadRecordLength {
                length_field: b"0-".to_vec(),
                offset: 6,
            },
            "bad record length \"0-\" at offset 6; expected 5 ascii digits giving at least 00005",
        ),
        (
            b"00004",
            ProtocolError::BadRecordLength {
                length_field: b"00004".to_vec(),
                offset: 0,
            },
            "bad record length \"00004\" at offset 0; expected 5 ascii digits giving at least 00005",
        ),
        (
            b"P05abcde",
            ProtocolError::BadRecordLength {
                length_field: b"5a".to_vec(),
                offset: 2,
            },
            "bad record length \"5a\" at offset 2; expected 5 ascii digits giving at least 00005",
        ),
        (
            b"GEX",
            ProtocolError::UnexpectedByte {
                byte: b'G',
                offset: 0,
            },
            "unexpected byte 0x47 at offset 0; expected U, A, P, a space, a record or NUL",
        ),
        (
            b"U3abcGET / HTTP/1.0\n\n",
            ProtocolError::UnexpectedByte {
                byte: b'G',
                offset: 5,
            },
            "unexpected byte 0x47 at offset 5; expected U, A, P, a space, a record or NUL",
        ),
    ];
    for (input, expected, message) in cases {
        let whole = events_in_one_chunk(&mut RequestParser::new(), input);
        let bytewise = events_byte_by_byte(&mut RequestParser::new(), input);
        assert_eq!(whole, [Parse::Error(expected.clone())], "{input:?}");
        assert_eq!(bytewise, whole, "{input:?}");
        assert_eq!(expected.to_string(), *message);
    }
    assert_eq!(
        ProtocolError::UnexpectedByte { byte: 0, offset: 0 }.code(),
        "unexpected-byte"
    );
    assert_eq!(
        ProtocolError::BadFieldLength {
            tag: 'U',
            byte: 0,
            offset: 0
        }
        .code(),
        "bad-field-length"
    );
    assert_eq!(
        ProtocolError::BadRecordLength {
            length_field: Vec::new(),
            offset: 0
        }
        .code(),
        "bad-record-length"
    );
}

#[test]
fn c12_http_probe() {
    for (input, path) in [
        (&b"GET / HTTP/1.1\r\n\r\n"[..], "/"),
        (
            b"GET /admin/health HTTP/1.1\r\nHost: x\r\n\r\n",
            "/admin/health",
        ),
        (b"GET /other HTTP/1.0\n\n", "/other"),
    ] {
        let expected = Parse::Http(HttpProbe {
            path: path.to_string(),
        });
        assert_eq!(
            events_in_one_chunk(&mut RequestParser::new(), input),
            [expected.clone(), Parse::NeedMore]
        );
        assert_eq!(
            events_byte_by_byte(&mut RequestParser::new(), input),
            [expected]
        );
    }
    let mut parser = RequestParser::new();
    assert_eq!(
        parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n"),
        Parse::NeedMore
    );
    assert_eq!(
        parser.feed(b"\r\n"),
        Parse::Http(HttpProbe { path: "/".into() })
    );
    assert_eq!(http_ok_response(), b"HTTP/1.0 200 OK\r\n\r\n");
}

#[test]
fn c14_two_records_in_one_write() {
    let record = sample_record();
    let mut input = desktop_vector(&record);
    input.extend_from_slice(&desktop_vector(&record));
    let mut parser = RequestParser::new();
    assert!(matches!(parser.feed(&input), Parse::Complete(_)));
    assert_eq!(
        parser.check_one_record(),
        Err(ProtocolError::OneRecordExpected {
            extra_bytes: input.len() / 2
        })
    );
}

#[test]
fn c15_sequential_requests_on_one_parser() {
    let record = sample_record();
    let expected = request(b"abcde", b"fg", b"hij", &record);
    let mut parser = RequestParser::new();
    for _ in 0..2 {
        assert_eq!(
            parser.feed(&desktop_vector(&record)),
            Parse::Complete(expected.clone())
        );
        assert!(parser.check_one_record().is_ok());
    }
}

#[test]
fn c18_debug_never_prints_the_password() {
    let parsed = parse_one(b"U5abcdeA2fgP6abc1230001012345");
    let text = format!("{parsed:?}");
    assert!(!text.contains("abc123"), "{text}");
    assert_eq!(
        text,
        "Request { user: Some(\"abcde\"), local_user: Some(\"fg\"), \
         password: Some(\"<redacted, 6 bytes>\"), record: \"<10 bytes>\" }"
    );
    let text = format!("{:#?}", Parse::Complete(parsed));
    assert!(!text.contains("abc123"), "{text}");
}

#[test]
fn encoder_output_parses_back() {
    let record = sample_record();
    for encoding in [LengthEncoding::Byte, LengthEncoding::Decimal] {
        let request_ref = RequestRef {
            user: Some(b"abcde"),
            local_user: Some("testlib user bøf".as_bytes()),
            password: Some(b""),
            record: &record,
            trailing_nul: true,
        };
        let bytes = encode_request(&request_ref, encoding).unwrap();
        assert_eq!(
            events_in_one_chunk(&mut RequestParser::new(), &bytes),
            [
                Parse::Complete(request(
                    b"abcde",
                    "testlib user bøf".as_bytes(),
                    b"",
                    &record
                )),
                Parse::NeedMore
            ]
        );
    }
}
