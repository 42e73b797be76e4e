//! Every corpus file is read without a panic; well-formed files give the counts SOURCES.md lists.

use std::fs::File;
use std::io::BufReader;

use bibgate_marc::Source;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;

use crate::util::{corpus, corpus_files};

struct Count {
    ok: usize,
    errors: Vec<String>,
}

fn read_all(path: &std::path::Path, mode: Mode) -> Count {
    let file = BufReader::new(File::open(path).unwrap());
    let source = Source::sniffed(file, mode, Charset::Auto).unwrap();
    let mut count = Count {
        ok: 0,
        errors: Vec::new(),
    };
    for item in source {
        match item.outcome {
            Ok(_) => count.ok += 1,
            Err(e) => count.errors.push(e.to_string()),
        }
    }
    count
}

#[test]
fn every_corpus_file_reads_without_panic_in_both_modes() {
    let files = corpus_files();
    assert!(files.len() > 380, "SOURCES.md lists {} files", files.len());
    let mut panics = Vec::new();
    for file in &files {
        let path = corpus().join(&file.path);
        for mode in [Mode::Lenient, Mode::Strict] {
            let result = std::panic::catch_unwind(|| read_all(&path, mode));
            if result.is_err() {
                panics.push(format!("{} ({mode:?})", file.path));
            }
        }
    }
    assert!(panics.is_empty(), "panicked on: {panics:#?}");
}

#[test]
fn well_formed_files_give_the_listed_record_counts() {
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for file in corpus_files() {
        if !matches!(file.kind.as_str(), "real" | "odd" | "synthetic") {
            continue;
        }
        checked += 1;
        let count = read_all(&corpus().join(&file.path), Mode::Lenient);
        if count.ok != file.records || !count.errors.is_empty() {
            mismatches.push(format!(
                "{} ({}): SOURCES.md {} records, read {} with {} errors {:?}",
                file.path,
                file.kind,
                file.records,
                count.ok,
                count.errors.len(),
                count.errors.iter().take(2).collect::<Vec<_>>()
            ));
        }
    }
    assert!(checked > 300, "only {checked} well-formed files");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn records(path: &std::path::Path) -> Vec<bibgate_marc::Record> {
    let source = Source::sniffed(
        BufReader::new(File::open(path).unwrap()),
        Mode::Lenient,
        Charset::Auto,
    )
    .unwrap();
    source
        .map(|item| item.outcome.unwrap().decoded.record)
        .collect()
}

fn nfc_fields(record: &bibgate_marc::Record) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    record
        .fields
        .iter()
        .map(|field| match field {
            bibgate_marc::Field::Control { tag, value } => format!("{tag} {}", value.nfc()),
            bibgate_marc::Field::Data {
                tag,
                ind1,
                ind2,
                subfields,
            } => {
                let mut text = format!("{tag} {}{}", char::from(*ind1), char::from(*ind2));
                for subfield in subfields {
                    text.push_str(&format!(
                        " ${}{}",
                        char::from(subfield.code),
                        subfield.value.nfc()
                    ));
                }
                text
            }
        })
        .collect()
}

#[test]
fn marc8_and_utf8_copies_of_the_same_records_decode_to_the_same_text() {
    let pairs = [
        ("marc4j/brkrtest.mrc", "marc4j/brkrtest_UTF8.mrc"),
        ("pymarc/marc8.dat", "pymarc/marc8-to-unicode.dat"),
        (
            "folio-mod-copycat/marc7.marc",
            "folio-mod-copycat/marc7utf8.marc",
        ),
    ];
    for (marc8, utf8) in pairs {
        let left = records(&corpus().join(marc8));
        let right = records(&corpus().join(utf8));
        assert_eq!(left.len(), right.len(), "{marc8} vs {utf8}");
        assert!(!left.is_empty());
        for (i, (a, b)) in left.iter().zip(&right).enumerate() {
            assert_eq!(a.leader.coding_scheme(), b'a');
            let (fa, fb) = (nfc_fields(a), nfc_fields(b));
            for (x, y) in fa.iter().zip(&fb) {
                assert_eq!(x, y, "{marc8} vs {utf8}, record {}", i + 1);
            }
            assert_eq!(fa.len(), fb.len(), "{marc8} vs {utf8}, record {}", i + 1);
        }
    }
}
