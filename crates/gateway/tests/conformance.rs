//! The conformance suite of connexion-protocol.md §4.4, over a real socket: raw bytes in,
//! exact bytes out. Case numbers follow the spec.

mod common;

use std::time::{Duration, Instant};

use bibgate_gateway::{Config, LogonBackoff, ONE_RECORD_SUFFIX};
use bibgate_store::BlobStore;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn success_of(reply: &[u8]) -> String {
    let text = text(reply);
    assert!(
        text.starts_with(&format!("{SUCCESS} MMS ID: 99")),
        "not a success: {text}"
    );
    text
}

/// Case 1: desktop framing, no NUL from the client; the reply comes while the client keeps
/// the connection open, and the server does not close first.
#[tokio::test]
async fn c01_desktop_framing_replies_before_the_client_closes() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(1001, "Desktop framing.");
    let mut request = field(b'U', b"abcde");
    request.extend(desktop_request(ALPHA, PASSWORD, &record));
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(10)).await;
    let text = success_of(&reply);
    assert!(text.ends_with("5001"), "{text}");
    assert_eq!(harness.count(ALPHA), 1);
    // The server keeps the connection open for the client to close.
    assert_eq!(
        closed_within(&mut stream, Duration::from_millis(500)).await,
        None
    );
    drop(stream);
    harness.stop().await;
}

/// Case 1, the spec's literal vector: U=abcde, A=fg, P=hij: framed correctly, so the
/// answer is about the logon `fg`.
#[tokio::test]
async fn c01_literal_vector_is_framed() {
    let harness = Harness::start(config()).await;
    let mut request = b"UEabcdeABfgPChij".to_vec();
    request.extend(record_bytes(1002, "Literal."));
    let reply = exchange(harness.addr, &request).await;
    assert_eq!(
        refusal(&text(&reply)),
        "No integration profile found for institution fg"
    );
    harness.stop().await;
}

/// Case 2: decimal lengths (the browser / Record Manager form).
#[tokio::test]
async fn c02_decimal_framing() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(1003, "Decimal framing.");
    let mut request = format!(
        "U5abcdeA{}{DECIMAL}P{}{PASSWORD}",
        DECIMAL.len(),
        PASSWORD.len()
    )
    .into_bytes();
    request.extend(&record);
    let text = success_of(&exchange(harness.addr, &request).await);
    assert!(text.ends_with("5004"), "{text}");
    harness.stop().await;
}

/// Case 3: spaces between items.
#[tokio::test]
async fn c03_spaces_between_items() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(1004, "Spaces.");
    let mut request = b" UEabcde ".to_vec();
    request.extend(field(b'A', ALPHA.as_bytes()));
    request.push(b' ');
    request.extend(field(b'P', PASSWORD.as_bytes()));
    request.extend(b"  ");
    request.extend(&record);
    success_of(&exchange(harness.addr, &request).await);
    harness.stop().await;
}

/// Case 4: `P0` is an empty password (and the request is framed): the logon fails.
#[tokio::test]
async fn c04_empty_password_p0() {
    let harness = Harness::start(config()).await;
    let mut request = field(b'A', ALPHA.as_bytes());
    request.extend(b"P0");
    request.extend(record_bytes(1005, "Empty password."));
    let reply = exchange(harness.addr, &request).await;
    assert_eq!(refusal(&text(&reply)), LOGON_FAILED);
    assert_eq!(harness.count(ALPHA), 0);
    harness.stop().await;
}

/// Case 5: long logon ids (0x80 = 64 bytes, 0xFF = 191 bytes) are read whole: the reply
/// names the whole id.
#[tokio::test]
async fn c05_long_logon_ids() {
    let harness = Harness::start(config()).await;
    for (length_byte, len) in [(0x80u8, 64usize), (0xFF, 191)] {
        let logon = "K".repeat(len);
        let mut request = vec![b'A', length_byte];
        request.extend(logon.as_bytes());
        request.extend(field(b'P', b"pw"));
        request.extend(record_bytes(1006, "Long logon."));
        let reply = exchange(harness.addr, &request).await;
        assert_eq!(
            refusal(&text(&reply)),
            format!("No integration profile found for institution {logon}")
        );
    }
    harness.stop().await;
}

/// Case 6: lengths count bytes: `A17testlib user bøf` is exactly those 17 bytes.
#[tokio::test]
async fn c06_byte_lengths_of_utf8_values() {
    let harness = Harness::start(config()).await;
    let mut request = "A17testlib user bøfP2pw".as_bytes().to_vec();
    request.extend(record_bytes(1007, "UTF-8 logon."));
    let reply = exchange(harness.addr, &request).await;
    assert_eq!(
        refusal(&text(&reply)),
        "No integration profile found for institution testlib user bøf"
    );
    harness.stop().await;
}

/// Case 7: fragmentation (one byte at a time; splits after a tag, inside length digits,
/// inside the record) gives the identical reply.
#[tokio::test]
async fn c07_fragmentation() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(1008, "Fragmented.");
    let desktop = desktop_request(ALPHA, PASSWORD, &record);
    let whole = exchange(harness.addr, &desktop).await;
    success_of(&whole);
    let mut decimal =
        format!("A{}{DECIMAL}P{}{PASSWORD}", DECIMAL.len(), PASSWORD.len()).into_bytes();
    decimal.extend(&record);
    let decimal_whole = exchange(harness.addr, &decimal).await;
    success_of(&decimal_whole);

    // One byte at a time.
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    for byte in &desktop {
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(
        read_reply(&mut stream, Duration::from_secs(10)).await,
        whole
    );

    // Splits: right after the tag, inside the decimal length digits, inside the record.
    let splits: [(&[u8], usize); 3] =
        [(&desktop, 1), (&decimal, 2), (&desktop, desktop.len() - 40)];
    for (request, at) in splits {
        let mut stream = TcpStream::connect(harness.addr).await.unwrap();
        stream.write_all(&request[..at]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        stream.write_all(&request[at..]).await.unwrap();
        let reply = read_reply(&mut stream, Duration::from_secs(10)).await;
        let expected = if std::ptr::eq(request, &decimal[..]) {
            &decimal_whole
        } else {
            &whole
        };
        assert_eq!(&reply, expected);
    }
    // The record was imported once per institution.
    assert_eq!(harness.count(ALPHA), 1);
    assert_eq!(harness.count(DECIMAL), 1);
    harness.stop().await;
}

/// Case 8: a trailing NUL (in the same write, or after the reply) gets no second reply.
#[tokio::test]
async fn c08_trailing_nul() {
    let harness = Harness::start(config()).await;
    let mut request = desktop_request(ALPHA, PASSWORD, &record_bytes(1009, "Trailing NUL."));
    request.push(0);
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(10)).await;
    let text = success_of(&reply);
    assert!(!text.contains("one record expected"), "{text}");
    // A NUL after the reply ("notify host before disconnect") is not answered either.
    stream.write_all(&[0]).await.unwrap();
    assert_eq!(
        closed_within(&mut stream, Duration::from_millis(400)).await,
        None
    );
    harness.stop().await;
}

/// Case 9: a raw record with no fields fails the logon: no logon id was sent (issue 16:
/// said so, not "Logon Failed").
#[tokio::test]
async fn c09_raw_record_only() {
    let harness = Harness::start(config()).await;
    let reply = exchange(harness.addr, &record_bytes(1010, "Raw.")).await;
    assert_eq!(refusal(&text(&reply)), bibgate_gateway::NO_LOGON_ID);
    harness.stop().await;
}

/// Case 10: a stalled request gets an error reply naming what was incomplete, then a close.
#[tokio::test]
async fn c10_stall() {
    let harness = Harness::start(Config {
        idle_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    stream.write_all(b"U5abc").await.unwrap();
    let started = Instant::now();
    let sent = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(
        sent,
        b"Import Failed - incomplete request: no record after 0 complete field(s); 5 of 7 bytes of the next item received; the request timed out.\0".to_vec()
    );
    // A connection that sends nothing is closed without a reply.
    let mut silent = TcpStream::connect(harness.addr).await.unwrap();
    assert_eq!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    harness.stop().await;
}

/// Case 11: an item that keeps growing past the limit: closed without a reply, and the
/// server goes on serving.
#[tokio::test]
async fn c11_oversize() {
    let harness = Harness::start(config()).await;
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    let mut request = b"U99999999".to_vec();
    request.extend(vec![b'x'; 200_000]);
    // The server may reset the connection while we are still writing.
    let _ = stream.write_all(&request).await;
    assert_eq!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    // A record whose declared length is over the limit, too.
    let small = Harness::start(Config {
        max_request_bytes: 10,
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(small.addr).await.unwrap();
    let _ = stream.write_all(b"00016123456").await;
    assert_eq!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    small.stop().await;
    success_of(
        &exchange(
            harness.addr,
            &desktop_request(ALPHA, PASSWORD, &record_bytes(1011, "After oversize.")),
        )
        .await,
    );
    harness.stop().await;
}

/// Case 12: bad length digits and stray bytes get a defined reply at once; an HTTP probe
/// gets 200 and a close.
#[tokio::test]
async fn c12_bad_bytes() {
    let harness = Harness::start(config()).await;
    let cases: [(&[u8], &str); 3] = [
        (
            b"A?abc",
            "Import Failed - the request could not be read: bad length byte 0x3f after field A at offset 1; expected a digit or a byte of at least 0x40.",
        ),
        (
            b"_",
            "Import Failed - the request could not be read: unexpected byte 0x5f at offset 0; expected U, A, P, a space, a record or NUL.",
        ),
        (
            b"-0005",
            "Import Failed - the request could not be read: unexpected byte 0x2d at offset 0; expected U, A, P, a space, a record or NUL.",
        ),
    ];
    for (request, expected) in cases {
        let reply = exchange(harness.addr, request).await;
        assert_eq!(text(&reply), expected);
    }
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        Some(b"HTTP/1.0 200 OK\r\n\r\n".to_vec())
    );
    harness.stop().await;
}

/// Case 13: a declared length that never arrives, then a close: no reply, nothing imported.
#[tokio::test]
async fn c13_declared_length_overrun() {
    let harness = Harness::start(config()).await;
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    stream.write_all(b"U19abcde").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    assert!(harness.blobs.list("inbox/").unwrap().is_empty());
    harness.stop().await;
}

/// Case 14: two records in one write: the first is imported, the reply says the rest was
/// ignored.
#[tokio::test]
async fn c14_two_records_in_one_write() {
    let harness = Harness::start(config()).await;
    let mut request = desktop_request(ALPHA, PASSWORD, &record_bytes(1014, "First."));
    request.extend(record_bytes(1015, "Second."));
    let reply = text(&exchange(harness.addr, &request).await);
    assert!(reply.starts_with(SUCCESS), "{reply}");
    assert!(reply.ends_with(ONE_RECORD_SUFFIX), "{reply}");
    assert_eq!(harness.count(ALPHA), 1);
    harness.stop().await;
}

/// Case 15: sequential connections are independent.
#[tokio::test]
async fn c15_sequential_connections() {
    let harness = Harness::start(config()).await;
    let first = success_of(
        &exchange(
            harness.addr,
            &desktop_request(ALPHA, PASSWORD, &record_bytes(1016, "One.")),
        )
        .await,
    );
    let second = success_of(
        &exchange(
            harness.addr,
            &desktop_request(ALPHA, PASSWORD, &record_bytes(1017, "Two.")),
        )
        .await,
    );
    assert_ne!(mms_of(&first), mms_of(&second));
    assert_eq!(harness.count(ALPHA), 2);
    harness.stop().await;
}

/// Case 16: the reply comes within the client's 10 s even when nothing processes the
/// export; the export is processed later.
#[tokio::test]
async fn c16_reply_within_the_deadline_when_the_processor_is_stopped() {
    let mut harness = Harness::start_without_processor(Config {
        reply_deadline: Duration::from_millis(500),
        ..config()
    })
    .await;
    let started = Instant::now();
    let reply = text(
        &exchange(
            harness.addr,
            &desktop_request(ALPHA, PASSWORD, &record_bytes(1018, "Pending.")),
        )
        .await,
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let export_id = reply
        .strip_prefix("Import pending: export ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("not pending: {reply}"))
        .to_string();
    assert_eq!(reply, bibgate_gateway::pending_message(&export_id));
    assert!(export_id.starts_with(&format!("{ALPHA}-")));
    harness.start_processor(processor_config());
    let doc = harness.result_doc(&export_id).await;
    assert_eq!(doc.outcome, "added");
    harness.stop().await;
}

/// Case 17: a client that never reads the reply and closes at once does not disturb the
/// server, and its export is still imported.
#[tokio::test]
async fn c17_client_closes_without_reading() {
    let harness = Harness::start(config()).await;
    for number in 1019..1024 {
        let mut stream = TcpStream::connect(harness.addr).await.unwrap();
        stream
            .write_all(&desktop_request(
                ALPHA,
                PASSWORD,
                &record_bytes(number, "Gone."),
            ))
            .await
            .unwrap();
        drop(stream);
    }
    success_of(
        &exchange(
            harness.addr,
            &desktop_request(ALPHA, PASSWORD, &record_bytes(1024, "Still here.")),
        )
        .await,
    );
    for _ in 0..500 {
        if harness.count(ALPHA) == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(harness.count(ALPHA), 6);
    harness.stop().await;
}

/// Case 18: a wrong password gets Alma's text, which does not echo the password.
#[tokio::test]
async fn c18_wrong_password() {
    let harness = Harness::start(config()).await;
    let secret = "hunter2-Secret";
    let reply = exchange(
        harness.addr,
        &desktop_request(ALPHA, secret, &record_bytes(1025, "Wrong password.")),
    )
    .await;
    assert_eq!(refusal(&text(&reply)), LOGON_FAILED);
    assert!(!String::from_utf8_lossy(&reply).contains(secret));
    assert_eq!(harness.count(ALPHA), 0);
    harness.stop().await;
}

/// Repeated logon failures from one address are slowed down.
#[tokio::test]
async fn repeated_logon_failures_are_delayed() {
    let harness = Harness::start(Config {
        logon_backoff: LogonBackoff {
            threshold: 2,
            window: Duration::from_secs(60),
            base: Duration::from_millis(800),
            cap: Duration::from_millis(800),
        },
        ..config()
    })
    .await;
    let request = desktop_request(ALPHA, "wrong", &record_bytes(1026, "Brute force."));
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(
            refusal(&text(&exchange(harness.addr, &request).await)),
            LOGON_FAILED
        );
        assert!(started.elapsed() < Duration::from_millis(800));
    }
    let started = Instant::now();
    assert_eq!(
        refusal(&text(&exchange(harness.addr, &request).await)),
        LOGON_FAILED
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    harness.stop().await;
}

/// After the grace period the server closes a connection the client left open.
#[tokio::test]
async fn the_server_closes_after_the_grace_period() {
    let harness = Harness::start(Config {
        grace: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    stream
        .write_all(&desktop_request(
            ALPHA,
            PASSWORD,
            &record_bytes(1027, "Grace."),
        ))
        .await
        .unwrap();
    success_of(&read_reply(&mut stream, Duration::from_secs(10)).await);
    assert_eq!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    harness.stop().await;
}

/// A second request on the same connection, after the reply, is answered too.
#[tokio::test]
async fn a_second_request_on_one_connection_is_answered() {
    let harness = Harness::start(config()).await;
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    stream
        .write_all(&desktop_request(
            ALPHA,
            PASSWORD,
            &record_bytes(1028, "First on one."),
        ))
        .await
        .unwrap();
    let first = success_of(&read_reply(&mut stream, Duration::from_secs(10)).await);
    stream
        .write_all(&desktop_request(
            ALPHA,
            PASSWORD,
            &record_bytes(1029, "Second on one."),
        ))
        .await
        .unwrap();
    let second = success_of(&read_reply(&mut stream, Duration::from_secs(10)).await);
    assert_ne!(mms_of(&first), mms_of(&second));
    harness.stop().await;
}

/// Shutdown stops accepting and closes idle connections; `run` returns.
#[tokio::test]
async fn graceful_shutdown_closes_idle_connections() {
    let harness = Harness::start(config()).await;
    let addr = harness.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"U3ab").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    harness.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    assert!(TcpStream::connect(addr).await.is_err());
}

/// Decimal lengths in the request of `logon` (which may start with a digit).
fn decimal_request(logon: &str, password: &str, record: &[u8]) -> Vec<u8> {
    let mut request = format!("A{}{logon}P{}{password}", logon.len(), password.len()).into_bytes();
    request.extend(record);
    request
}

/// Issue 16: a logon id starting with a digit (every Alma institution code) in decimal
/// length encoding, whole, fragmented at every point of its fields and one byte at a time;
/// the same record in both encodings.
#[tokio::test]
async fn r16_decimal_logon_id_starting_with_a_digit() {
    let harness = Harness::start(config()).await;
    let record = record_bytes(1016, "Decimal logon id with a digit.");
    let decimal = decimal_request(ALPHA, PASSWORD, &record);
    assert!(decimal.starts_with(b"A1201DEMO_ALPHA"));
    let whole = exchange(harness.addr, &decimal).await;
    let mms = mms_of(&success_of(&whole));
    let desktop = exchange(harness.addr, &desktop_request(ALPHA, PASSWORD, &record)).await;
    assert_eq!(mms_of(&success_of(&desktop)), mms);

    // Fragmented: after the tag, inside the digits, inside the logon id, the password,
    // and the record.
    for at in [1, 2, 3, 4, 10, 16, 20, decimal.len() - 30] {
        let mut stream = TcpStream::connect(harness.addr).await.unwrap();
        stream.write_all(&decimal[..at]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(&decimal[at..]).await.unwrap();
        let reply = read_reply(&mut stream, Duration::from_secs(10)).await;
        assert_eq!(mms_of(&success_of(&reply)), mms, "split at {at}");
    }
    // One byte at a time.
    let mut stream = TcpStream::connect(harness.addr).await.unwrap();
    for byte in &decimal {
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let reply = read_reply(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(mms_of(&success_of(&reply)), mms);
    assert_eq!(harness.count(ALPHA), 1);

    // A password starting with a digit too.
    seed_institution(&*harness.store, "01DEMO_DIGITS", 5099, "2024secret");
    let reply = exchange(
        harness.addr,
        &decimal_request("01DEMO_DIGITS", "2024secret", &record),
    )
    .await;
    success_of(&reply);
    harness.stop().await;
}

/// Issue 16: two readings of the digits that complete at the same byte: the one whose
/// logon id names a profile is the request; with none, the request is refused as ambiguous.
#[tokio::test]
async fn r16_readings_ending_together_are_told_apart_by_the_logon_id() {
    // `A15P3abc` is A = "5", P = "abc" and a 50-byte record, or a 15-byte A and a 40-byte
    // record that starts 10 bytes into the first one.
    let mut record = b"00050nam a0004000xxx4500".to_vec();
    record.resize(50, b'1');
    let mut request = b"A15P3abc".to_vec();
    request.extend(&record);

    let harness = Harness::start(config()).await;
    let reply = text(&exchange(harness.addr, &request).await);
    assert!(
        reply.starts_with(
            "Import Failed - the request could not be read: ambiguous request: 2 readings"
        ),
        "{reply}"
    );

    seed_institution(&*harness.store, "5", 5098, "abc");
    let reply = text(&exchange(harness.addr, &request).await);
    // Logged on as "5": the 50-byte record was taken (and is not a usable MARC record).
    assert!(!reply.contains("the request could not be read"), "{reply}");
    assert!(
        reply.contains("Failed to convert marc record to marc xml"),
        "{reply}"
    );
    assert!(!reply.contains(LOGON_FAILED), "{reply}");
    assert!(!reply.contains("No integration profile"), "{reply}");
    harness.stop().await;
}
