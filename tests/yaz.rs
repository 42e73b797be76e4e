//! Differential test against yaz-marcdump: for every record both read, the MARCXML agrees.
//!
//! yaz-marcdump (Debian package `yaz`, installed by `.ci/run`) converts each ISO 2709 file of
//! the corpus with `-f MARC-8 -t UTF-8 -o marcxml` (it converts records whose Leader/09 is
//! blank and passes `a` records through). Both outputs are parsed back and compared on
//! leader (less lengths and Leader/09), tags, indicators, subfield codes and text after NFC.
//! Files where the two readers disagree must be listed in [`KNOWN`] with the reason; a
//! listed file that stops differing fails the test too, so the list stays true.

use std::fs::File;
use std::io::BufReader;
use std::process::Command;

use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_marc::marcxml::XmlReader;
use bibgate_marc::{Field, Record, Source};
use unicode_normalization::UnicodeNormalization;

use crate::util::{corpus, corpus_files};

/// Files where yaz-marcdump and Bibgate disagree, and why.
const WHY_A: &str = "damaged framing: yaz gives up on the record (or file), bibgate's lenient reader recovers it and flags STRUCTURE_DAMAGED";
const WHY_B: &str = "damaged directory or base address: yaz trusts the broken numbers, bibgate cuts fields at the field terminators; both flag or drop the damage differently";
const WHY_C: &str = "Leader/10 (indicator count) is not 2: yaz reads that many indicators, MARC 21 fixes it at 2 as bibgate does";
const WHY_D: &str = "invalid UTF-8 under Leader/09 a: yaz empties or truncates the value, bibgate keeps it with U+FFFD and flags INVALID_UTF8";
const WHY_E: &str = "Leader/09 blank over UTF-8 bytes: yaz decodes them as MARC-8 (mojibake), bibgate detects UTF-8 and flags LEADER09_MISMATCH";
const WHY_F: &str = "control bytes in indicators, subfield codes or before the first delimiter: yaz blanks or drops them, bibgate keeps the bytes and flags BAD_INDICATOR, BAD_SUBFIELD_CODE or XML_FORBIDDEN_CHARACTER";
const WHY_G: &str =
    "undecodable EACC bytes: yaz drops them, bibgate writes U+FFFD and flags INVALID_MARC8";

/// Files where yaz-marcdump and Bibgate disagree, each with the reason.
const KNOWN: &[(&str, &str)] = &[
    (
        "crate-mrrc/error_fixtures/e001_record_length_below_24.bin",
        WHY_A,
    ),
    (
        "crate-mrrc/error_fixtures/e001_record_length_non_digit.bin",
        WHY_A,
    ),
    (
        "crate-mrrc/error_fixtures/e002_subfield_code_count_not_two.bin",
        WHY_A,
    ),
    ("crate-mrrc/error_fixtures/e101_non_ascii_tag.bin", WHY_A),
    (
        "crate-mrrc/fuzz-regressions/non-ascii-tag-roundtrip.mrc",
        WHY_A,
    ),
    ("crate-mrrc/fuzz-regressions/oob-salvage-slice.mrc", WHY_A),
    (
        "crate-mrrc/fuzz-regressions/zero-length-control-field.mrc",
        WHY_A,
    ),
    ("marc4j/185258.mrc", WHY_A),
    ("marc4j/bad_too_long_plus_2.mrc", WHY_A),
    ("marc4j/datos-20161010-slice.mrc", WHY_A),
    ("marc4j/sample1.mrc", WHY_A),
    (
        "openlibrary/bin_input/poganucpeoplethe00stowuoft_meta.mrc",
        WHY_A,
    ),
    ("pymarc/bad_subfield_code.dat", WHY_A),
    ("traject/bad_subfield_code.marc", WHY_A),
    (
        "crate-mrrc/error_fixtures/e003_base_address_below_24.bin",
        WHY_B,
    ),
    (
        "crate-mrrc/error_fixtures/e003_base_address_non_digit.bin",
        WHY_B,
    ),
    (
        "crate-mrrc/error_fixtures/e004_base_address_past_record.bin",
        WHY_B,
    ),
    (
        "crate-mrrc/error_fixtures/e101_directory_no_terminator.bin",
        WHY_B,
    ),
    (
        "crate-mrrc/error_fixtures/e101_directory_non_digit_length.bin",
        WHY_B,
    ),
    (
        "crate-mrrc/error_fixtures/e101_directory_non_digit_start.bin",
        WHY_B,
    ),
    (
        "crate-mrrc/error_fixtures/e106_authority_field_too_short.bin",
        WHY_B,
    ),
    (
        "crate-mrrc/error_fixtures/e106_field_length_past_data.bin",
        WHY_B,
    ),
    ("marc-perl/marc-record-baddir.usmarc", WHY_B),
    ("marc4j/bad_oversize_field_bad_directory.mrc", WHY_B),
    ("openlibrary/bin_input/dasrmischepriv00rein_meta.mrc", WHY_B),
    ("openlibrary/bin_input/upei_short_008.mrc", WHY_B),
    ("openlibrary/bin_input/wrapped_lines.mrc", WHY_B),
    ("pymarc/bad_records.mrc", WHY_B),
    (
        "crate-mrrc/error_fixtures/e002_indicator_count_not_two.bin",
        WHY_C,
    ),
    (
        "crate-mrrc/error_fixtures/e301_invalid_utf8_in_authority_control_field.bin",
        WHY_D,
    ),
    (
        "crate-mrrc/error_fixtures/e301_invalid_utf8_in_control_field.bin",
        WHY_D,
    ),
    (
        "crate-mrrc/error_fixtures/e301_invalid_utf8_in_subfield.bin",
        WHY_D,
    ),
    ("ruby-marc/marc8_accented_chars.marc", WHY_D),
    ("ruby-marc/marc_with_bad_utf8.utf8.marc", WHY_D),
    ("evergreen/FSL.marc", WHY_E),
    ("evergreen/map_data.mrc", WHY_E),
    ("pymarc/utf8_without_leader_flag.dat", WHY_E),
    (
        "crate-mrrc/error_fixtures/e106_expected_subfield_delimiter.bin",
        WHY_F,
    ),
    (
        "crate-mrrc/error_fixtures/e202_non_printable_subfield_code.bin",
        WHY_F,
    ),
    ("evergreen/sample_acq_order.mrc", WHY_F),
    (
        "loc-booksall-2016/BooksAll.2016.part01.every10th.mrc",
        WHY_F,
    ),
    ("marc4j/bad-characters-in-various-fields.mrc", WHY_F),
    ("pymarc/bad_indicator.dat", WHY_F),
    ("pymarc/bad_eacc_encoding.dat", WHY_G),
];

fn yaz_records(path: &std::path::Path) -> Vec<Record> {
    let output = Command::new("yaz-marcdump")
        .args(["-f", "MARC-8", "-t", "UTF-8", "-o", "marcxml"])
        .arg(path)
        .output()
        .expect("yaz-marcdump is not installed (apt-get install yaz; .ci/run does this)");
    let mut reader = XmlReader::new(&output.stdout[..]);
    let mut records = Vec::new();
    while let Some(result) = reader.next_record() {
        match result {
            Ok(record) => records.push(record),
            Err(e) if e.fatal => break,
            Err(_) => {}
        }
    }
    records
}

fn ours(path: &std::path::Path) -> Vec<Record> {
    let source = Source::sniffed(
        BufReader::new(File::open(path).unwrap()),
        Mode::Lenient,
        Charset::Auto,
    )
    .unwrap();
    source
        .filter_map(|item| item.outcome.ok())
        .map(|parsed| parsed.decoded.record)
        .collect()
}

fn nfc(text: &str) -> String {
    text.nfc().collect()
}

/// The first difference between two records, if any.
fn difference(yaz: &Record, ours: &Record) -> Option<String> {
    let strip = |leader: &[u8; 24]| {
        let mut l = *leader;
        // Lengths and the base address are recomputed; yaz rewrites Leader/09 to `a` and
        // Leader/10-11 and 20-23 to the MARC 21 constants, Bibgate keeps what was read.
        for i in (0..5).chain(9..12).chain(12..17).chain(20..24) {
            l[i] = b'0';
        }
        l
    };
    if strip(&yaz.leader.0) != strip(&ours.leader.0) {
        return Some(format!("leader {:?} vs {:?}", yaz.leader, ours.leader));
    }
    if yaz.fields.len() != ours.fields.len() {
        return Some(format!(
            "{} fields vs {}",
            yaz.fields.len(),
            ours.fields.len()
        ));
    }
    for (a, b) in yaz.fields.iter().zip(&ours.fields) {
        let same = match (a, b) {
            (Field::Control { tag: t1, value: v1 }, Field::Control { tag: t2, value: v2 }) => {
                t1 == t2 && nfc(v1) == nfc(v2)
            }
            (
                Field::Data {
                    tag: t1,
                    ind1: a1,
                    ind2: a2,
                    subfields: s1,
                },
                Field::Data {
                    tag: t2,
                    ind1: b1,
                    ind2: b2,
                    subfields: s2,
                },
            ) => {
                t1 == t2
                    && a1 == b1
                    && a2 == b2
                    && s1.len() == s2.len()
                    && s1
                        .iter()
                        .zip(s2)
                        .all(|(x, y)| x.code == y.code && nfc(&x.value) == nfc(&y.value))
            }
            _ => false,
        };
        if !same {
            return Some(format!("field {a:?} vs {b:?}"));
        }
    }
    None
}

#[test]
fn marcxml_agrees_with_yaz_marcdump() {
    let mut compared = 0;
    let mut unexplained = Vec::new();
    let mut stale = Vec::new();
    for file in corpus_files().into_iter().filter(|f| f.format == "bin") {
        let path = corpus().join(&file.path);
        let yaz = yaz_records(&path);
        let ours = ours(&path);
        let mut differences = Vec::new();
        if yaz.len() != ours.len() {
            differences.push(format!(
                "yaz read {} records, bibgate {}",
                yaz.len(),
                ours.len()
            ));
        } else {
            for (i, (a, b)) in yaz.iter().zip(&ours).enumerate() {
                compared += 1;
                if let Some(d) = difference(a, b) {
                    differences.push(format!("record {}: {d}", i + 1));
                }
            }
        }
        let known = KNOWN.iter().any(|(known, _)| *known == file.path);
        match (differences.is_empty(), known) {
            (false, false) => unexplained.push(format!(
                "{}: {} differences, first: {}",
                file.path,
                differences.len(),
                differences[0]
            )),
            (true, true) => stale.push(file.path.clone()),
            _ => {}
        }
    }
    assert!(compared > 25_000, "only {compared} records compared");
    assert!(
        stale.is_empty(),
        "listed as differing but agree now: {stale:?}"
    );
    assert!(
        unexplained.is_empty(),
        "{} files differ:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}
