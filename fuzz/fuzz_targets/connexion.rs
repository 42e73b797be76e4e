//! The Connexion request parser on any bytes in any chunking: no panic, bounded memory, and
//! the outcome does not depend on how the bytes were split.
#![no_main]

use bibgate_connexion::{Parse, ReplyParser, RequestParser};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], chunk: usize, digit_splits: bool) -> Vec<String> {
    let mut parser = RequestParser::with_max_bytes(4_096);
    if digit_splits {
        parser = parser.with_digit_splits();
    }
    let mut events = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut parse = parser.feed(piece);
        loop {
            assert!(parser.held_bytes() <= 4_096 + piece.len());
            match parse {
                Parse::NeedMore => break,
                Parse::Error(e) => {
                    events.push(format!("error {}", e.code()));
                    return events;
                }
                Parse::Complete(request) => events.push(format!("complete {}", request.record.len())),
                Parse::Ambiguous(requests) => events.push(format!("ambiguous {}", requests.len())),
                Parse::Nul => events.push("nul".into()),
                Parse::Http(_) => {
                    events.push("http".into());
                    return events;
                }
            }
            parse = parser.poll();
        }
    }
    events
}

fuzz_target!(|data: &[u8]| {
    for digit_splits in [false, true] {
        let whole = run(data, data.len(), digit_splits);
        for chunk in [1, 3, 64] {
            assert_eq!(run(data, chunk, digit_splits), whole, "chunk size {chunk}");
        }
    }
    let mut replies = ReplyParser::new();
    let _ = replies.feed(data);
});
