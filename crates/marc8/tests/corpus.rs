//! Whole-file checks on the MARC-8 sample records in shared/corpus (beside
//! the repository). Skipped, with a note, when the corpus is absent.

use std::path::PathBuf;

use bibgate_marc8::{Decoder, decode_lossy};
use unicode_normalization::UnicodeNormalization;

fn corpus(name: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(name);
    match std::fs::read(&path) {
        Ok(data) => Some(data),
        Err(e) => panic!(
            "cannot read {}: {e}; the shared corpus must sit beside the repository",
            path.display()
        ),
    }
}

/// Splits ISO 2709 data into records, each a list of `(tag, field bytes)`
/// without the field terminator.
fn records(data: &[u8]) -> Vec<Vec<(String, Vec<u8>)>> {
    let num = |b: &[u8]| -> usize {
        std::str::from_utf8(b)
            .expect("ascii number")
            .trim()
            .parse()
            .expect("number")
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 24 <= data.len() {
        let len = num(&data[pos..pos + 5]);
        let rec = &data[pos..pos + len];
        pos += len;
        let base = num(&rec[12..17]);
        let dir_end = rec.iter().position(|&b| b == 0x1E).expect("directory end");
        let mut fields = Vec::new();
        for entry in rec[24..dir_end].chunks(12) {
            let tag = String::from_utf8(entry[..3].to_vec()).expect("tag");
            let flen = num(&entry[3..7]);
            let start = num(&entry[7..12]);
            let mut f = rec[base + start..base + start + flen].to_vec();
            if f.last() == Some(&0x1E) {
                f.pop();
            }
            fields.push((tag, f));
        }
        out.push(fields);
    }
    out
}

/// Decodes every field of `name` with one decoder per field; returns the
/// number of fields and every problem message.
fn decode_file(name: &str) -> Option<(usize, Vec<String>)> {
    let data = corpus(name)?;
    let mut decoder = Decoder::new();
    let mut count = 0;
    let mut problems = Vec::new();
    for (i, record) in records(&data).into_iter().enumerate() {
        for (tag, field) in record {
            decoder.reset();
            let mut out = String::new();
            decoder.decode_into(&field, &mut out);
            count += 1;
            for p in decoder.problems() {
                problems.push(format!("record {i} field {tag}: {p}"));
            }
        }
    }
    Some((count, problems))
}

#[test]
fn marc8_samples_decode_without_problems() {
    for name in [
        "evergreen/lul_fre_500.mrc",
        "evergreen/jazz_1k.mrc",
        "crate-marc-record/marc8_multiple.mrc",
        "marc-perl/marc-charset-cjk1.marc",
        "marc-perl/marc-charset-cyrillic.marc",
        "marc-perl/marc-charset-hebrew1.marc",
        "marc4j/cyrillic_capital_e.mrc",
        "folio-mod-copycat/marc7.marc",
        "pymarc/marc8.dat",
    ] {
        let Some((count, problems)) = decode_file(name) else {
            continue;
        };
        assert!(count > 0, "{name}: no fields");
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }
}

#[test]
fn bad_eacc_sample_reports_problems() {
    let Some((_, problems)) = decode_file("pymarc/bad_eacc_encoding.dat") else {
        return;
    };
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

/// pymarc's marc8.dat and marc8-to-unicode.dat hold the same records in
/// MARC-8 and UTF-8: every field must decode to the UTF-8 copy (up to NFC).
#[test]
fn marc8_dat_matches_its_utf8_copy() {
    let (Some(marc8), Some(utf8)) = (
        corpus("pymarc/marc8.dat"),
        corpus("pymarc/marc8-to-unicode.dat"),
    ) else {
        return;
    };
    let marc8 = records(&marc8);
    let utf8 = records(&utf8);
    assert_eq!(marc8.len(), utf8.len());
    let mut compared = 0;
    for (m, u) in marc8.iter().zip(&utf8) {
        assert_eq!(m.len(), u.len());
        for ((tag, m), (tag_u, u)) in m.iter().zip(u) {
            assert_eq!(tag, tag_u);
            let (ours, problems) = decode_lossy(m);
            assert!(problems.is_empty(), "{tag}: {problems:?}");
            let theirs: String = String::from_utf8(u.clone()).expect("utf-8").nfc().collect();
            assert_eq!(ours, theirs, "field {tag}");
            compared += 1;
        }
    }
    assert!(compared > 10);
}
