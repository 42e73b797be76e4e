//! Compares the decoder with pymarc on real MARC-8 subfield values.
//!
//! `fixtures/pymarc_oracle.tsv` holds MARC-8 subfield values taken from the
//! sample files in shared/corpus and pymarc 5.4's NFC decoding of each
//! (regenerate with `python3 crates/marc8/tests/fixtures/make_fixtures.py`).
//! This test needs no Python.
//!
//! Where pymarc is wrong the expected value is corrected: by rule for the
//! ligature halves ([`lc_ligatures`]) and case by case in
//! [`KNOWN_DIFFERENCES`], each with the reason.

use bibgate_marc8::decode_lossy;

const ORACLE: &str = include_str!("fixtures/pymarc_oracle.tsv");

/// Cases where this decoder deliberately differs from pymarc:
/// `(hex of the MARC-8 bytes, our NFC output, why pymarc is wrong)`.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "1b284e6f444c554b4520492052455b451b28514a1b284e4120734157455a4e4f472055535441574e4f4720535544411b28422e",
        "Одлуке и решења Савезног уставног суда.",
        "pymarc keys Extended Cyrillic by its G1 codes (0xC0-0xF3) only, so `ESC ( Q` \
         (Extended Cyrillic as G0, 0x4A = њ) decodes to a space",
    ),
    (
        "1b284e6f444c554b452049204d495b1b2851491b284e451b28514a1b284e412075535441574e4f472053554441201b2851681b284e55474f534c4157491b2851481b284e451b2842",
        "Одлуке и мишљења Уставног суда Југославије",
        "same pymarc gap: Extended Cyrillic љ, њ, Ј, ј designated as G0 become spaces",
    ),
    (
        "1b24312150564b376f69244e21513121473469244e21307021512b7b3639323466367d1b2842",
        "米国の統治の仕組\u{FFFD}\u{FFFD}\u{FFFD}",
        "malformed data (ASCII `{6924f6}` left in EACC mode): the triples 7B3639 and \
         323466 are not EACC and 367D is cut short by ESC; pymarc turns each into a space \
         and swallows the ESC of the final `ESC ( B`, we emit U+FFFD and report problems",
    ),
];

/// pymarc maps the MARC-8 ligature and double tilde halves (ANSEL 0xEB/0xEC,
/// 0xFA/0xFB) to the deprecated half marks U+FE20/U+FE21 and U+FE22/U+FE23.
/// The LC table (revised September 2004) prefers the single two-character
/// marks U+0361 and U+0360 for the first half and nothing for the second
/// half; YAZ does the same. This rewrites pymarc's output accordingly.
fn lc_ligatures(pymarc: &str) -> String {
    pymarc
        .chars()
        .filter_map(|c| match c {
            '\u{FE20}' => Some('\u{0361}'),
            '\u{FE22}' => Some('\u{0360}'),
            '\u{FE21}' | '\u{FE23}' => None,
            c => Some(c),
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Decodes a JSON string literal as written by Python's `json.dumps(..., ensure_ascii=False)`.
fn unjson(s: &str) -> String {
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .expect("json string");
    let mut out = String::new();
    let mut chars = inner.chars();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().expect("escape") {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let u = u32::from_str_radix(&hex, 16).expect("\\u");
                if (0xD800..0xDC00).contains(&u) {
                    pending_high = Some(u);
                    continue;
                }
                let cp = match pending_high.take() {
                    Some(h) => 0x10000 + ((h - 0xD800) << 10) + (u - 0xDC00),
                    None => u,
                };
                out.push(char::from_u32(cp).expect("scalar"));
            }
            other => out.push(other),
        }
    }
    out
}

struct Case {
    file: String,
    hex: String,
    bytes: Vec<u8>,
    /// `None` when pymarc raised an error.
    pymarc: Option<String>,
}

fn cases() -> Vec<Case> {
    let mut file = String::new();
    let mut cases = Vec::new();
    for line in ORACLE.lines() {
        if let Some(name) = line.strip_prefix("# file: ") {
            file = name.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (hex, expected) = line.split_once('\t').expect("tab");
        cases.push(Case {
            file: file.clone(),
            hex: hex.to_string(),
            bytes: unhex(hex),
            pymarc: (expected != "!error").then(|| unjson(expected)),
        });
    }
    cases
}

#[test]
fn fixture_covers_every_sample_file() {
    let cases = cases();
    assert!(cases.len() > 2000, "{} cases", cases.len());
    for file in [
        "evergreen/lul_fre_500.mrc",
        "evergreen/jazz_1k.mrc",
        "crate-marc-record/marc8_multiple.mrc",
        "marc-perl/marc-charset-cjk1.marc",
        "marc-perl/marc-charset-cyrillic.marc",
        "marc-perl/marc-charset-hebrew1.marc",
        "marc4j/cyrillic_capital_e.mrc",
        "folio-mod-copycat/marc7.marc",
        "pymarc/marc8.dat",
        "pymarc/bad_eacc_encoding.dat",
    ] {
        assert!(cases.iter().any(|c| c.file == file), "no case from {file}");
    }
}

#[test]
fn only_the_malformed_eacc_value_has_problems() {
    let malformed = KNOWN_DIFFERENCES[2].0;
    for case in cases() {
        let (_, problems) = decode_lossy(&case.bytes);
        if case.hex == malformed {
            assert_eq!(problems.len(), 3, "{problems:?}");
        } else {
            assert!(
                problems.is_empty(),
                "{}: {}: {problems:?}",
                case.file,
                case.hex
            );
        }
    }
}

#[test]
fn matches_pymarc_except_known_differences() {
    let mut mismatches = Vec::new();
    let mut used = vec![false; KNOWN_DIFFERENCES.len()];
    for case in cases() {
        let (ours, _problems) = decode_lossy(&case.bytes);
        let known = KNOWN_DIFFERENCES
            .iter()
            .position(|(h, _, _)| *h == case.hex);
        let expected = match known {
            Some(k) => {
                used[k] = true;
                Some(KNOWN_DIFFERENCES[k].1.to_string())
            }
            None => case.pymarc.as_deref().map(lc_ligatures),
        };
        if expected.as_deref() != Some(ours.as_str()) {
            mismatches.push(format!(
                "{}: {}\n  pymarc: {:?}\n  ours:   {:?}",
                case.file, case.hex, case.pymarc, ours
            ));
        }
    }
    for (k, used) in used.iter().enumerate() {
        assert!(
            used,
            "known difference {} not in fixture",
            KNOWN_DIFFERENCES[k].0
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
