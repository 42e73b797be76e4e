use super::*;
use proptest::prelude::*;

fn n(value: u64) -> OclcNumber {
    OclcNumber::new(value).unwrap()
}

fn reason_035(value: &str) -> NotOclcReason {
    parse_035(value).unwrap_err().reason
}

fn record_with_035(values: &[(u8, &str)]) -> Record {
    let mut record = Record::default();
    record.push_control("001", "local1");
    record.push_data("035", b' ', b' ', values);
    record
}

fn keys_summary(keys: &OclcKeys) -> Vec<(u64, Provenance)> {
    keys.keys
        .iter()
        .map(|key| (key.number.get(), key.provenance))
        .collect()
}

// --- OclcNumber ---------------------------------------------------------------------------

#[test]
fn number_is_non_zero_and_displays_bare() {
    assert_eq!(OclcNumber::new(0), None);
    assert_eq!(n(12345).to_string(), "12345");
    assert_eq!(n(12345).to_035(), "(OCoLC)12345");
    assert_eq!(u64::from(n(7)), 7);
    assert_eq!("00012345".parse::<OclcNumber>().unwrap(), n(12345));
    assert!("ocm12345".parse::<OclcNumber>().is_err());
    assert!("".parse::<OclcNumber>().is_err());
    assert!("000".parse::<OclcNumber>().is_err());
}

#[test]
fn provenance_activity() {
    assert!(Provenance::Active035a.is_active());
    assert!(Provenance::Active001.is_active());
    assert!(!Provenance::Cancelled035z.is_active());
    assert!(!Provenance::Cancelled019a.is_active());
}

// --- domain.md §5 edge cases ------------------------------------------------------------------

#[test]
fn edge_01_same_number_two_forms_one_key() {
    let record = record_with_035(&[(b'a', "(OCoLC)ocm47704434")]);
    let mut record = record;
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)47704434")]);
    let keys = oclc_keys(&record);
    assert_eq!(
        keys_summary(&keys),
        vec![(47704434, Provenance::Active035a)]
    );
    assert_eq!(keys.keys[0].source, "(OCoLC)ocm47704434");
    assert!(keys.warnings.is_empty());
}

#[test]
fn edge_02_ocm_prefix_matches_plain() {
    assert_eq!(parse_035("(OCoLC)ocm00012345").unwrap(), n(12345));
    assert_eq!(parse_035("(OCoLC)12345").unwrap(), n(12345));
}

#[test]
fn edge_03_leading_zeros() {
    assert_eq!(parse_035("(OCoLC)00003862").unwrap(), n(3862));
    assert_eq!(parse_035("(OCoLC)00085820197").unwrap(), n(85820197));
}

#[test]
fn edge_04_other_qualifiers_are_not_oclc() {
    for value in [
        "(DLC)2001012345",
        "(CaSfKan)12345",
        "(Sirsi) i9781845902919",
        "(AMB)84714376518561876438",
    ] {
        let error = parse_035(value).unwrap_err();
        assert!(
            matches!(error.reason, NotOclcReason::OtherQualifier(_)),
            "{value}"
        );
        assert!(!error.looks_like_oclc(), "{value}");
    }
    let record = record_with_035(&[(b'a', "(DLC)12345"), (b'a', "(OCoLC)999")]);
    let keys = oclc_keys(&record);
    assert_eq!(keys.numbers(), vec![999]);
    assert!(keys.warnings.is_empty());
}

#[test]
fn edge_05_unqualified_digits_are_not_oclc() {
    let error = parse_035("12345").unwrap_err();
    assert_eq!(error.reason, NotOclcReason::NoQualifier);
    assert!(error.looks_like_oclc());
    // Duke's oclc_leading_zeros.xml: 001 DUKE002102327, 003 OCoLC, 035 $a 00503275.
    let mut record = Record::default();
    record.push_control("001", "DUKE002102327");
    record.push_control("003", "OCoLC");
    record.push_data("035", b' ', b' ', &[(b'a', "00503275")]);
    let keys = oclc_keys(&record);
    assert!(keys.is_empty());
    assert_eq!(keys.warnings.len(), 2, "{:?}", keys.warnings);
    assert!(keys.warnings.iter().any(|w| w.tag.is("001")));
    assert!(
        keys.warnings
            .iter()
            .any(|w| w.tag.is("035")
                && w.problem == OclcProblem::Rejected(NotOclcReason::NoQualifier))
    );
    // A local number like FAT-13519's "AC102422SB" is not worth a warning.
    assert!(!parse_035("AC102422SB").unwrap_err().looks_like_oclc());
}

#[test]
fn edge_06_ocolc_m_and_i_are_not_oclc() {
    assert_eq!(
        reason_035("(OCoLC-M)858201973344"),
        NotOclcReason::OtherQualifier("OCoLC-M".to_owned())
    );
    assert_eq!(
        reason_035("(OCoLC-I)164324897"),
        NotOclcReason::OtherQualifier("OCoLC-I".to_owned())
    );
    assert!(parse_035("(OCoLC-M)656729").unwrap_err().looks_like_oclc());
    // oclcNumTests.mrc record "a035withOCoLC-MnoParens".
    let error = parse_035("OCoLC-M656729").unwrap_err();
    assert_eq!(error.reason, NotOclcReason::NoQualifier);
    assert!(error.looks_like_oclc());
}

#[test]
fn edge_07_whitespace_dots_and_junk() {
    assert_eq!(parse_035("(OCoLC) ocn 00987654").unwrap(), n(987654));
    assert_eq!(parse_035("(OCoLC)ocm.00123456").unwrap(), n(123456));
    assert_eq!(parse_035("   (OCoLC)12345").unwrap(), n(12345));
    assert_eq!(parse_035("\t(OCoLC)12345 ").unwrap(), n(12345));
    assert_eq!(
        reason_035("(OCoLC)ocm00123456abc"),
        NotOclcReason::Unparseable {
            body: "ocm00123456abc".to_owned()
        }
    );
    assert!(matches!(
        reason_035("(OCoLC)nodigitshere"),
        NotOclcReason::Unparseable { .. }
    ));
}

#[test]
fn edge_08_odd_prefix_no_key_and_warning() {
    assert_eq!(
        reason_035("(OCoLC)tfe00123"),
        NotOclcReason::Unparseable {
            body: "tfe00123".to_owned()
        }
    );
    assert!(matches!(
        reason_035("(OCoLC)ab2c00456"),
        NotOclcReason::Unparseable { .. }
    ));
    let keys = oclc_keys(&record_with_035(&[(b'a', "(OCoLC)tfe00123")]));
    assert!(keys.is_empty());
    assert_eq!(keys.warnings.len(), 1);
    assert_eq!(keys.warnings[0].subfield, Some(b'a'));
    assert_eq!(keys.warnings[0].text, "(OCoLC)tfe00123");
    assert_eq!(
        keys.warnings[0].to_string(),
        "035 $a \"(OCoLC)tfe00123\" is not an OCLC number: \"tfe00123\" is not digits with an optional ocm/ocn/on prefix"
    );
}

#[test]
fn edge_09_zeros_only_and_prefix_only() {
    assert_eq!(reason_035("(OCoLC)0000"), NotOclcReason::Zero);
    assert_eq!(reason_035("(OCoLC)ocm00000000"), NotOclcReason::Zero);
    assert_eq!(
        reason_035("(OCoLC)ocm"),
        NotOclcReason::PrefixOnly("ocm".to_owned())
    );
    assert_eq!(
        reason_035("(OCoLC)ON"),
        NotOclcReason::PrefixOnly("ON".to_owned())
    );
    assert_eq!(reason_035("(OCoLC)"), NotOclcReason::Empty);
    assert_eq!(reason_035("(OCoLC) . "), NotOclcReason::Empty);
    let keys = oclc_keys(&record_with_035(&[
        (b'a', "(OCoLC)0000"),
        (b'z', "(OCoLC)ocm"),
    ]));
    assert!(keys.is_empty());
    assert_eq!(keys.warnings.len(), 2);
}

#[test]
fn edge_10_001_ocm_with_trailing_space_no_003() {
    assert_eq!(parse_001("ocm00000001 ", None), Some(n(1)));
    let mut record = Record::default();
    record.push_control("001", "ocm00000001 ");
    let keys = oclc_keys(&record);
    assert_eq!(keys_summary(&keys), vec![(1, Provenance::Active001)]);
    assert_eq!(keys.keys[0].source, "ocm00000001 ");
}

#[test]
fn edge_11_ten_digit_on_numbers() {
    assert_eq!(parse_001("on1345345345", None), Some(n(1345345345)));
    assert_eq!(parse_035("(OCoLC)on1345345345").unwrap(), n(1345345345));
    assert_eq!(parse_035("(OCoLC)1345345345").unwrap(), n(1345345345));
    assert_eq!(
        parse_035("(OCoLC)18446744073709551615").unwrap(),
        n(u64::MAX)
    );
    assert_eq!(
        reason_035("(OCoLC)18446744073709551616"),
        NotOclcReason::Overflow {
            digits: "18446744073709551616".to_owned()
        }
    );
}

#[test]
fn edge_12_001_003_and_035_same_number_one_key() {
    let mut record = Record::default();
    record.push_control("001", "12345");
    record.push_control("003", "OCoLC");
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)12345")]);
    let keys = oclc_keys(&record);
    assert_eq!(keys_summary(&keys), vec![(12345, Provenance::Active001)]);
    assert!(keys.warnings.is_empty());
    // 001 with prefix, 003 absent.
    let mut record = Record::default();
    record.push_control("001", "ocn123456789");
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)123456789")]);
    assert_eq!(oclc_keys(&record).numbers(), vec![123456789]);
}

#[test]
fn edge_16_a_and_z_same_number_counted_once_as_active() {
    let keys = oclc_keys(&record_with_035(&[
        (b'z', "(OCoLC)555"),
        (b'a', "(OCoLC)ocm00000555"),
    ]));
    assert_eq!(keys_summary(&keys), vec![(555, Provenance::Active035a)]);
    assert_eq!(keys.cancelled().count(), 0);
    assert_eq!(keys.warnings.len(), 1);
    assert_eq!(
        keys.warnings[0].problem,
        OclcProblem::CancelsActive { number: n(555) }
    );
    assert_eq!(keys.warnings[0].text, "(OCoLC)555");
    // Different numbers in $a and $z: both kept with their provenance.
    let keys = oclc_keys(&record_with_035(&[(b'a', "(OCoLC)1"), (b'z', "(OCoLC)2")]));
    assert_eq!(
        keys_summary(&keys),
        vec![(1, Provenance::Active035a), (2, Provenance::Cancelled035z)]
    );
    assert_eq!(keys.active().count(), 1);
    assert_eq!(keys.cancelled().count(), 1);
}

#[test]
fn edge_18_repeated_001_003_use_first_and_warn() {
    let mut record = Record::default();
    record.push_control("001", "ocm00000042 ");
    record.push_control("001", "ocm00000043 ");
    record.push_control("003", "DLC");
    record.push_control("003", "OCoLC");
    let keys = oclc_keys(&record);
    assert_eq!(keys.numbers(), vec![42]);
    assert_eq!(keys.warnings.len(), 2);
    assert_eq!(keys.warnings[0].problem, OclcProblem::Repeated { count: 2 });
    assert_eq!(keys.warnings[0].text, "ocm00000042 ");
    assert!(keys.warnings[1].tag.is("003"));
    // The first 003 (DLC) decides: a bare-digit first 001 is then not OCLC.
    let mut record = Record::default();
    record.push_control("001", "4242");
    record.push_control("003", "DLC");
    record.push_control("003", "OCoLC");
    let keys = oclc_keys(&record);
    assert!(keys.is_empty());
    assert_eq!(keys.warnings.len(), 1);
}

// --- 001 / 003 / 019 --------------------------------------------------------------------------

#[test]
fn parse_001_rules() {
    assert_eq!(parse_001("ocm47255235", None), Some(n(47255235)));
    assert_eq!(parse_001("ocn123456789", Some("DLC")), Some(n(123456789)));
    assert_eq!(parse_001("12345", Some("OCoLC")), Some(n(12345)));
    assert_eq!(parse_001("12345", Some(" ocolc ")), Some(n(12345)));
    assert_eq!(parse_001("12345", None), None);
    assert_eq!(parse_001("12345", Some("DLC")), None);
    assert_eq!(parse_001("303845", Some("LTSCA")), None); // FAT-13522
    assert_eq!(parse_001("ebc6715020", Some("NhCcYBP")), None); // FAT-1474
    assert_eq!(parse_001("OCM123", None), None); // prefix form is lowercase
    assert_eq!(parse_001("OCM123", Some("OCoLC")), Some(n(123)));
    assert_eq!(parse_001("ocm 123", None), None); // no internal separators in 001
    assert_eq!(parse_001("ocm00000000", None), None);
    assert_eq!(parse_001("onion", None), None);
    assert!(has_oclc_001_prefix("on1"));
    assert!(!has_oclc_001_prefix("on"));
    assert!(!has_oclc_001_prefix("ocx1"));
}

#[test]
fn empty_001_with_oclc_003_warns() {
    // trln-marc-to-argot/ncsu/oclc003-empty-001.xml
    let mut record = Record::default();
    record.push_control("001", "");
    record.push_control("003", "OCoLC");
    record.push_data("035", b' ', b' ', &[(b'a', "(Sirsi) a3085133")]);
    let keys = oclc_keys(&record);
    assert!(keys.is_empty());
    assert_eq!(keys.warnings.len(), 1);
    assert_eq!(
        keys.warnings[0].problem,
        OclcProblem::Rejected(NotOclcReason::Empty)
    );
}

#[test]
fn parse_019_rules() {
    assert_eq!(parse_019("12345").unwrap(), n(12345));
    assert_eq!(parse_019(" 0012345 ").unwrap(), n(12345));
    assert_eq!(parse_019("ocm00012345").unwrap(), n(12345));
    assert_eq!(parse_019("(OCoLC)12345").unwrap(), n(12345));
    assert!(parse_019("(DLC)12345").is_err());
    assert!(parse_019("123 45").is_err());
    assert!(parse_019("12a").is_err());
    assert_eq!(parse_019("0").unwrap_err().reason, NotOclcReason::Zero);
    assert_eq!(parse_019("").unwrap_err().reason, NotOclcReason::Empty);
}

#[test]
fn nineteen_becomes_cancelled_keys() {
    let mut record = Record::default();
    record.push_control("001", "ocm00000010 ");
    record.push_data(
        "019",
        b' ',
        b' ',
        &[(b'a', "11"), (b'a', "12"), (b'a', "x9")],
    );
    record.push_data(
        "035",
        b' ',
        b' ',
        &[(b'a', "(OCoLC)10"), (b'z', "(OCoLC)11")],
    );
    let keys = oclc_keys(&record);
    assert_eq!(
        keys_summary(&keys),
        vec![
            (10, Provenance::Active001),
            (11, Provenance::Cancelled019a),
            (12, Provenance::Cancelled019a),
        ]
    );
    assert_eq!(keys.numbers(), vec![10, 11, 12]);
    assert!(keys.contains(n(12)));
    assert!(!keys.contains(n(13)));
    assert_eq!(keys.warnings.len(), 1);
    assert!(keys.warnings[0].tag.is("019"));
}

#[test]
fn cancelled_019_equal_to_active_is_dropped_with_warning() {
    let mut record = Record::default();
    record.push_data("019", b' ', b' ', &[(b'a', "77")]);
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)77")]);
    let keys = oclc_keys(&record);
    assert_eq!(keys_summary(&keys), vec![(77, Provenance::Active035a)]);
    assert_eq!(keys.warnings.len(), 1);
    assert!(keys.warnings[0].tag.is("019"));
    assert_eq!(
        keys.warnings[0].problem,
        OclcProblem::CancelsActive { number: n(77) }
    );
}

#[test]
fn qualifier_is_case_insensitive_but_exact() {
    assert_eq!(parse_035("(OCOLC)123").unwrap(), n(123));
    assert_eq!(parse_035("(ocolc)123").unwrap(), n(123));
    assert!(matches!(
        reason_035("(OCLC)123"),
        NotOclcReason::OtherQualifier(_)
    ));
    assert!(parse_035("(OCLC)123").unwrap_err().looks_like_oclc());
    assert!(matches!(
        reason_035("( OCoLC)123"),
        NotOclcReason::OtherQualifier(_)
    ));
    assert_eq!(reason_035("(OCoLC123"), NotOclcReason::UnclosedQualifier);
    assert!(parse_035("(OCoLC123").unwrap_err().looks_like_oclc());
    assert_eq!(reason_035("OCoLC)123"), NotOclcReason::NoQualifier);
    assert_eq!(reason_035(""), NotOclcReason::NoQualifier);
    assert!(!parse_035("").unwrap_err().looks_like_oclc());
}

#[test]
fn other_035_subfields_ignored() {
    // FAT-13519: 035 $a AC102422SB $b BC GMF 05 7333 $f 20110214 oclc
    let keys = oclc_keys(&record_with_035(&[
        (b'a', "AC102422SB"),
        (b'b', "BC GMF 05 7333"),
        (b'f', "20110214 oclc"),
        (b'9', "(OCoLC)5"),
    ]));
    assert!(keys.is_empty());
    assert!(keys.warnings.is_empty());
}

#[test]
fn not_oclc_error_message() {
    let error = parse_035("(OCoLC-M)656729").unwrap_err();
    assert_eq!(
        error.to_string(),
        "\"(OCoLC-M)656729\" is not an OCLC number: the qualifier (OCoLC-M) is not (OCoLC)"
    );
}

// --- real corpus values ----------------------------------------------------------------------

#[test]
fn corpus_fat_13522_odd_forms() {
    // folio-integration-tests/FAT-13522.mrc (one record).
    let mut record = Record::default();
    record.push_control("001", "303845");
    record.push_control("003", "LTSCA");
    record.push_control("005", "20220713063434.0");
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)ocm0000123456")]);
    record.push_data("035", b' ', b' ', &[(b'a', "(Sirsi) i9781845902919")]);
    record.push_data(
        "035",
        b' ',
        b' ',
        &[
            (b'a', "(OCoLC)ocm0000123456 "),
            (b'a', "(OCoLC)ocm000064758 "),
            (b'a', "(OCoLC)0000976939443 "),
            (b'a', "(OCoLC)ocn000 . 01001261435 "),
            (b'a', "(OCoLC)120194933 "),
            (b'a', "(OCoLC)tfe0000501056183 "),
            (b'z', "(OCoLC)ocm000012345678 "),
        ],
    );
    let keys = oclc_keys(&record);
    assert_eq!(
        keys_summary(&keys),
        vec![
            (123456, Provenance::Active035a),
            (64758, Provenance::Active035a),
            (976939443, Provenance::Active035a),
            (1001261435, Provenance::Active035a),
            (120194933, Provenance::Active035a),
            (12345678, Provenance::Cancelled035z),
        ]
    );
    assert_eq!(keys.warnings.len(), 1);
    assert_eq!(keys.warnings[0].text, "(OCoLC)tfe0000501056183 ");
    assert_eq!(
        keys.warnings[0].problem,
        OclcProblem::Rejected(NotOclcReason::Unparseable {
            body: "tfe0000501056183".to_owned()
        })
    );
}

#[test]
fn corpus_fat_1474_twenty_digits_overflow() {
    // folio-integration-tests/FAT-1474-Create.mrc, records 1 and 2.
    let mut record = Record::default();
    record.push_control("001", "ebc6715020");
    record.push_control("003", "NhCcYBP");
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)84714376518561876438")]);
    let keys = oclc_keys(&record);
    assert!(keys.is_empty());
    assert_eq!(
        keys.warnings[0].problem,
        OclcProblem::Rejected(NotOclcReason::Overflow {
            digits: "84714376518561876438".to_owned()
        })
    );
    let mut record = Record::default();
    record.push_data("035", b' ', b' ', &[(b'a', "(AMB)84714376518561876438")]);
    let keys = oclc_keys(&record);
    assert!(keys.is_empty() && keys.warnings.is_empty());
}

#[test]
fn corpus_stanford_oclc_num_tests() {
    // stanford-searchworks/oclcNumTests.mrc, record "aMultOclcNums".
    let mut record = Record::default();
    record.push_control("001", "aMultOclcNums");
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC-M)656729")]);
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC-M)38052115")]);
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC-M)38403775")]);
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)180776170")]);
    record.push_data("079", b' ', b' ', &[(b'a', "ocm00666000")]);
    let keys = oclc_keys(&record);
    assert_eq!(keys.numbers(), vec![180776170]);
    assert_eq!(keys.warnings.len(), 3);
    // Record "a035and079butNoOclc": (CStRLIN) silent, (OCoLC-I) warned, 079 ignored.
    let mut record = Record::default();
    record.push_control("001", "a035and079butNoOclc");
    record.push_data("035", b' ', b' ', &[(b'a', "(CStRLIN)CSUO98-B6924")]);
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC-I)164324897")]);
    record.push_data("079", b' ', b' ', &[(b'a', "bad 079")]);
    let keys = oclc_keys(&record);
    assert!(keys.is_empty());
    assert_eq!(keys.warnings.len(), 1);
    assert_eq!(
        keys.warnings[0].problem,
        OclcProblem::Rejected(NotOclcReason::OtherQualifier("OCoLC-I".to_owned()))
    );
}

#[test]
fn corpus_sample100_and_modinv() {
    // folio-mod-data-import/sample100.mrc; FAT-13519 / MODINV-1094.
    assert_eq!(parse_035("(OCoLC)ocm47255235").unwrap(), n(47255235));
    assert_eq!(parse_035("(OCoLC)ocm0000123456").unwrap(), n(123456));
}

#[test]
fn is_oclc_record_checks_003_and_001() {
    let mut record = Record::default();
    record.push_control("001", "ocm00000001 ");
    assert!(is_oclc_record(&record));
    let mut record = Record::default();
    record.push_control("003", "OCoLC");
    assert!(is_oclc_record(&record));
    assert!(!is_oclc_record(&Record::default()));
}

// --- properties ---------------------------------------------------------------------------

/// Inserts `.` or blanks at the given positions of `text`.
fn sprinkle(text: &str, cuts: &[(usize, bool)]) -> String {
    let mut out = String::new();
    for (index, ch) in text.chars().enumerate() {
        for &(at, dot) in cuts {
            if at % (text.len() + 1) == index {
                out.push(if dot { '.' } else { ' ' });
            }
        }
        out.push(ch);
    }
    out
}

proptest! {
    #[test]
    fn prop_surface_forms_parse_to_n(
        number in 1u64..=u64::MAX,
        zeros in 0usize..6,
        blanks in "[ \t]{0,3}",
        cuts in proptest::collection::vec((0usize..40, any::<bool>()), 0..4),
    ) {
        let expected = OclcNumber::new(number).unwrap();
        prop_assert_eq!(parse_035(&format!("(OCoLC){number}")).unwrap(), expected);
        if number < 100_000_000 {
            prop_assert_eq!(parse_035(&format!("(OCoLC)ocm{number:08}")).unwrap(), expected);
        }
        prop_assert_eq!(parse_035(&format!("(OCoLC)ocn{number:09}")).unwrap(), expected);
        prop_assert_eq!(parse_035(&format!("(OCoLC)on{number}")).unwrap(), expected);
        let padded = format!("{}{number}", "0".repeat(zeros));
        prop_assert_eq!(parse_035(&format!("(OCoLC){padded}")).unwrap(), expected);
        prop_assert_eq!(parse_035(&format!("{blanks}(OCoLC){padded}")).unwrap(), expected);
        let sprinkled = sprinkle(&format!("ocn{padded}"), &cuts);
        prop_assert_eq!(parse_035(&format!("{blanks}(OCoLC){sprinkled}")).unwrap(), expected);
        prop_assert_eq!(parse_035(&expected.to_035()).unwrap(), expected);
        prop_assert_eq!(expected.to_string().parse::<OclcNumber>().unwrap(), expected);
        prop_assert_eq!(parse_019(&number.to_string()).unwrap(), expected);
        prop_assert_eq!(parse_001(&format!("on{number}"), None), Some(expected));
        prop_assert_eq!(parse_001(&number.to_string(), Some("OCoLC")), Some(expected));
    }

    #[test]
    fn prop_other_forms_never_parse(number in 0u64..=u64::MAX, blanks in "[ ]{0,2}") {
        let values = [
            format!("{blanks}(OCoLC-M){number}"),
            format!("{blanks}(OCoLC-I){number}"),
            format!("{blanks}(DLC){number}"),
            format!("{blanks}{number}"),
            format!("ocm{number}"),
        ];
        for value in &values {
            prop_assert!(parse_035(value).is_err(), "{}", value);
        }
        prop_assert_eq!(parse_001(&number.to_string(), None), None);
    }

    #[test]
    fn prop_never_panics(value in any::<String>(), other in "\\PC{0,20}") {
        let _ = parse_035(&value);
        let _ = parse_035(&format!("(OCoLC){value}"));
        let _ = parse_035(&format!("(OCoLC){other}"));
        let _ = parse_019(&value);
        let _ = parse_001(&value, Some("OCoLC"));
        let _ = parse_001(&value, None);
        let _ = value.parse::<OclcNumber>();
        if let Err(error) = parse_035(&value) {
            let _ = error.looks_like_oclc();
            let _ = error.to_string();
        }
        let mut record = Record::default();
        record.push_control("001", value.clone());
        record.push_control("003", "OCoLC");
        record.push_data("019", b' ', b' ', &[(b'a', &other)]);
        record.push_data("035", b' ', b' ', &[(b'a', &value), (b'z', &format!("(OCoLC){other}"))]);
        let keys = oclc_keys(&record);
        let numbers = keys.numbers();
        let mut distinct = numbers.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(distinct.len(), numbers.len());
        for warning in &keys.warnings {
            let _ = warning.to_string();
        }
    }
}
