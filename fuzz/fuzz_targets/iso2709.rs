//! The ISO 2709 reader, decoder, convertibility check and every writer, on any bytes.
#![no_main]

use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::{self, Mode};
use bibgate_marc::{Source, json, marcxml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for mode in [Mode::Lenient, Mode::Strict] {
        for charset in [Charset::Auto, Charset::Marc8, Charset::Utf8] {
            let source = Source::new(data, bibgate_marc::Format::Iso2709, mode, charset);
            for item in source.take(64) {
                let Ok(parsed) = item.outcome else { continue };
                let record = &parsed.decoded.record;
                let _ = bibgate_matching::oclc_keys(record);
                let _ = bibgate_matching::facts::record_005(record);
                let mut text = String::new();
                let written = marcxml::write_record(record, &mut text, true);
                // The verdict and the writer agree: a convertible record always writes.
                if parsed.verdict.is_convertible() {
                    assert!(written.is_ok(), "convertible record failed to write: {written:?}");
                }
                json::write_record(record, &mut text);
                let mut bytes = Vec::new();
                if iso2709::write_record(record, &mut bytes).is_ok() {
                    // What we write, we read back to the same fields.
                    let again = bibgate_marc::parse(&bytes, Mode::Strict, Charset::Utf8)
                        .expect("our own output parses strictly");
                    assert_eq!(again.decoded.record.fields, record.fields);
                }
            }
        }
    }
});
