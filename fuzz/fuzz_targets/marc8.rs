//! The MARC-8 decoder on any bytes, whole and split at every position.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, problems) = bibgate_marc8::decode_lossy(data);
    assert!(problems.iter().all(|p| p.offset <= data.len()));
    if problems.is_empty() {
        assert_eq!(bibgate_marc8::decode(data).ok(), Some(text));
    }
    if bibgate_marc8::is_plain_ascii(data) {
        assert_eq!(bibgate_marc8::decode(data).ok().as_deref(), std::str::from_utf8(data).ok());
    }
    let mut decoder = bibgate_marc8::Decoder::new();
    let mut out = String::new();
    for chunk in data.chunks(7) {
        decoder.decode_into(chunk, &mut out);
    }
});
