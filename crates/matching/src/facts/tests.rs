use super::*;
use bibgate_marc::Leader;
use proptest::prelude::*;

fn v(text: &str) -> Version005 {
    parse_005(text).unwrap().version
}

fn record_with_leader(leader: &[u8; 24]) -> Record {
    Record {
        leader: Leader(*leader),
        fields: Vec::new(),
    }
}

// --- 005 --------------------------------------------------------------------------------------

#[test]
fn parse_005_valid_roundtrip() {
    let parsed = parse_005("19940223151047.0").unwrap();
    assert_eq!(parsed.lenient, None);
    let version = parsed.version;
    assert_eq!(
        (
            version.year(),
            version.month(),
            version.day(),
            version.hour(),
            version.minute(),
            version.second(),
            version.tenths()
        ),
        (1994, 2, 23, 15, 10, 47, 0)
    );
    assert_eq!(version.to_string(), "19940223151047.0");
    assert_eq!(v("20220713063434.7").to_string(), "20220713063434.7");
    assert_eq!(v("20240229235959.9").to_string(), "20240229235959.9");
    assert_eq!(
        "20240229235959.9".parse::<Version005>().unwrap(),
        v("20240229235959.9")
    );
}

#[test]
fn parse_005_ordering_is_chronological() {
    assert!(v("20220713063434.0") < v("20220713063434.1"));
    assert!(v("20220713063434.9") < v("20220713063435.0"));
    assert!(v("20211231235959.9") < v("20220101000000.0"));
    assert_eq!(v("20220713063434.0"), v("20220713063434.0"));
}

#[test]
fn edge_21_missing_005() {
    let record = Record::default();
    assert_eq!(record_005(&record), None);
    let mut record = Record::default();
    record.push_control("005", "20220713063434.0");
    record.push_control("005", "garbage");
    assert_eq!(
        record_005(&record).unwrap().unwrap().version,
        v("20220713063434.0")
    );
}

#[test]
fn edge_22_fifteen_chars_rejected() {
    assert_eq!(
        parse_005("20240101120000."),
        Err(Bad005::Length {
            value: "20240101120000.".to_owned(),
            len: 15
        })
    );
    // openlibrary upei_short_008.mrc
    assert!(matches!(
        parse_005("510063003919480"),
        Err(Bad005::Length { len: 15, .. })
    ));
    // marc4j brkrtest.mrc: 17 characters.
    assert!(matches!(
        parse_005("199602210153555.7"),
        Err(Bad005::Length { len: 17, .. })
    ));
}

#[test]
fn edge_22_fourteen_chars_lenient() {
    let parsed = parse_005("20240101120000").unwrap();
    assert_eq!(parsed.lenient, Some(Lenient005::NoFraction));
    assert_eq!(parsed.version.to_string(), "20240101120000.0");
    assert!("20240101120000".parse::<Version005>().is_err());
}

#[test]
fn edge_22_february_30() {
    let error = parse_005("20240230120000.0").unwrap_err();
    assert_eq!(
        error.to_string(),
        "005 \"20240230120000.0\" has day 30, but February 2024 has 29 days"
    );
    assert!(parse_005("20230229120000.0").is_err());
    assert!(parse_005("19000229120000.0").is_err());
    assert!(parse_005("20000229120000.0").is_ok());
    assert!(parse_005("20240431120000.0").is_err());
    assert_eq!(
        parse_005("20240100120000.0"),
        Err(Bad005::DayZero {
            value: "20240100120000.0".to_owned()
        })
    );
}

#[test]
fn edge_22_month_hour_minute_second() {
    assert!(matches!(
        parse_005("20240001120000.0"),
        Err(Bad005::Month { month: 0, .. })
    ));
    assert!(matches!(
        parse_005("20241301120000.0"),
        Err(Bad005::Month { month: 13, .. })
    ));
    assert_eq!(
        parse_005("20240101240000.0").unwrap_err().to_string(),
        "005 \"20240101240000.0\" has hour 24; hours run from 00 to 23"
    );
    assert!(matches!(
        parse_005("20240101126000.0"),
        Err(Bad005::Minute { minute: 60, .. })
    ));
    assert!(matches!(
        parse_005("20240101120060.0"),
        Err(Bad005::Second { second: 60, .. })
    ));
    assert!(parse_005("20240101235959.9").is_ok());
}

#[test]
fn edge_22_non_digits() {
    // marc4j bad_oversize_field_bad_directory.mrc: date, then blanks.
    assert_eq!(
        parse_005("20121203        "),
        Err(Bad005::NotDigit {
            value: "20121203        ".to_owned(),
            position: 8,
            found: ' '
        })
    );
    assert!(matches!(
        parse_005("2024O101120000.0"),
        Err(Bad005::NotDigit {
            position: 4,
            found: 'O',
            ..
        })
    ));
    assert!(matches!(
        parse_005("20240101120000.x"),
        Err(Bad005::NotDigit { position: 15, .. })
    ));
    assert!(matches!(
        parse_005("20240101120000,0"),
        Err(Bad005::NoPoint { found: ',', .. })
    ));
    assert!(matches!(
        parse_005("202401011200001"),
        Err(Bad005::Length { .. })
    ));
    assert!(matches!(
        parse_005("2024010112000010"),
        Err(Bad005::NoPoint { found: '1', .. })
    ));
    assert!(matches!(
        parse_005(" 20240101120000.0"),
        Err(Bad005::Length { .. })
    ));
    assert!(matches!(
        parse_005("２０２４0101120000.0"),
        Err(Bad005::NotDigit { position: 0, .. })
    ));
    assert_eq!(parse_005(""), Err(Bad005::Empty));
}

#[test]
fn future_check_is_clock_free() {
    let now = v("20260401120000.0");
    assert!(!v("20260401120000.0").is_in_future(now, 0));
    assert!(v("20260401120000.1").is_in_future(now, 0));
    assert!(!v("20260401120500.0").is_in_future(now, 300));
    assert!(v("20260401120500.1").is_in_future(now, 300));
    // Crosses a day and a month boundary.
    assert!(!v("20260501000000.0").is_in_future(v("20260430235959.0"), 1));
    assert!(v("20260501000000.0").is_in_future(v("20260430235959.0"), 0));
    assert!(!v("19990101000000.0").is_in_future(now, u64::MAX));
}

#[test]
fn unix_seconds_conversions() {
    assert_eq!(v("19700101000000.0").to_unix_seconds(), 0);
    assert_eq!(v("20000301000000.0").to_unix_seconds(), 951_868_800);
    assert_eq!(
        Version005::from_unix_seconds(1_700_000_000)
            .unwrap()
            .to_string(),
        "20231114221320.0"
    );
    assert_eq!(
        Version005::from_unix_seconds(-1).unwrap().to_string(),
        "19691231235959.0"
    );
    assert_eq!(Version005::from_unix_seconds(i64::MAX), None);
    assert_eq!(Version005::from_unix_seconds(i64::MIN), None);
    assert_eq!(v("00000101000000.0").to_string(), "00000101000000.0");
    assert_eq!(
        Version005::from_unix_seconds(v("00000229000000.0").to_unix_seconds()),
        Some(v("00000229000000.0"))
    );
}

#[test]
fn version_new_validates() {
    assert!(Version005::new(2024, 2, 29, 23, 59, 59, 9).is_some());
    assert!(Version005::new(2023, 2, 29, 0, 0, 0, 0).is_none());
    assert!(Version005::new(2024, 1, 1, 0, 0, 0, 10).is_none());
    assert!(Version005::new(10000, 1, 1, 0, 0, 0, 0).is_none());
    assert_eq!(days_in_month(2024, 13), 0);
}

// --- encoding level and brief level -------------------------------------------------------

#[test]
fn encoding_level_reads_leader_17() {
    assert_eq!(
        encoding_level(&record_with_leader(b"01199cam a2200289 a 4500")),
        b' '
    );
    assert_eq!(
        encoding_level(&record_with_leader(b"00290cim  2200109Ia 4500")),
        b'I'
    );
}

#[test]
fn carli_table() {
    let table = BriefLevelTable::carli();
    let level = |code: u8| table.level_of(code).get();
    for code in [b' ', b'1', b'I', b'L'] {
        assert_eq!(level(code), 10);
    }
    for code in [b'2', b'4', b'M'] {
        assert_eq!(level(code), 7);
    }
    assert_eq!(
        (
            level(b'7'),
            level(b'K'),
            level(b'8'),
            level(b'3'),
            level(b'5')
        ),
        (5, 5, 4, 3, 2)
    );
    for code in [b'u', b'z', b'J', b'|', b'0', b'n', 0xFF] {
        assert_eq!(level(code), 1);
    }
    assert_eq!(BriefLevelTable::default(), table);
    assert_eq!(
        table.to_spec(),
        "#=10,1=10,I=10,L=10,2=7,4=7,M=7,7=5,K=5,8=4,3=3,5=2,u=1,z=1,*=1"
    );
}

#[test]
fn csu_table() {
    let table = BriefLevelTable::csu();
    let level = |code: u8| table.level_of(code).get();
    let expected = [
        (b' ', 10),
        (b'I', 9),
        (b'L', 9),
        (b'1', 8),
        (b'4', 7),
        (b'K', 6),
        (b'M', 6),
        (b'2', 5),
        (b'7', 5),
        (b'8', 4),
        (b'3', 3),
        (b'5', 2),
        (b'u', 2),
        (b'z', 2),
        (b'J', 1),
        (b'|', 2),
        (b'-', 2),
    ];
    for (code, want) in expected {
        assert_eq!(level(code), want, "{}", char::from(code));
    }
}

#[test]
fn edge_20_obsolete_oclc_codes_and_fill() {
    let carli = BriefLevelTable::carli();
    let csu = BriefLevelTable::csu();
    // I, K, M are obsolete but still ranked; J is "deleted"; fill | is invalid.
    assert!(carli.level_of(b'I') > carli.level_of(b'M'));
    assert!(carli.level_of(b'M') > carli.level_of(b'K'));
    assert_eq!(carli.level_of(b'J'), BriefLevel::MIN);
    assert_eq!(carli.level_of(b'|'), BriefLevel::MIN);
    assert!(csu.level_of(b'|') > csu.level_of(b'J'));
    assert_eq!(csu.level_of(b'J'), BriefLevel::MIN);
    let record = record_with_leader(b"00000cam a2200000|a 4500");
    assert_eq!(csu.record_level(&record).get(), 2);
}

#[test]
fn brief_level_basics() {
    assert_eq!(BriefLevel::new(0), None);
    assert_eq!(BriefLevel::new(11), None);
    assert_eq!(BriefLevel::new(5).unwrap().to_string(), "05");
    assert_eq!(BriefLevel::MAX.to_string(), "10");
    assert!(BriefLevel::MAX > BriefLevel::MIN);
}

#[test]
fn spec_roundtrip_and_syntax() {
    for table in [BriefLevelTable::carli(), BriefLevelTable::csu()] {
        assert_eq!(
            BriefLevelTable::parse_spec(&table.to_spec()).unwrap(),
            table
        );
        assert_eq!(table.to_string().parse::<BriefLevelTable>().unwrap(), table);
    }
    // The brief's example form: blank written as a space is lost to trimming, '#' is used.
    let table = BriefLevelTable::parse_spec(
        " #=10, 1=10,I=10,L=10,2=7,4=7,M=7,7=5,K=5,8=4,3=3,5=2,u=01,z=1,*=1, ",
    )
    .unwrap();
    assert_eq!(table, BriefLevelTable::carli());
    // '*' optional, defaults to 1.
    let table = BriefLevelTable::parse_spec("#=10").unwrap();
    assert_eq!(table.level_of(b'7'), BriefLevel::MIN);
    assert_eq!(table.default_level(), BriefLevel::MIN);
    // Escapes.
    let table = BriefLevelTable::parse_spec("\\x23=9,\\x2a=8,\\x2C=7,==6,\\xff=5,*=3").unwrap();
    assert_eq!(table.level_of(b'#').get(), 9);
    assert_eq!(table.level_of(b'*').get(), 8);
    assert_eq!(table.level_of(b',').get(), 7);
    assert_eq!(table.level_of(b'=').get(), 6);
    assert_eq!(table.level_of(0xFF).get(), 5);
    assert_eq!(table.level_of(b'a').get(), 3);
    assert_eq!(
        table.to_spec(),
        "\\x23=9,\\x2A=8,\\x2C=7,\\x3D=6,\\xFF=5,*=3"
    );
    assert_eq!(
        BriefLevelTable::parse_spec(&table.to_spec()).unwrap(),
        table
    );
}

#[test]
fn spec_errors() {
    assert_eq!(BriefLevelTable::parse_spec(""), Err(BadBriefTable::Empty));
    assert_eq!(
        BriefLevelTable::parse_spec(" , "),
        Err(BadBriefTable::Empty)
    );
    assert!(matches!(
        BriefLevelTable::parse_spec("#10"),
        Err(BadBriefTable::Syntax { .. })
    ));
    assert!(matches!(
        BriefLevelTable::parse_spec("ab=10"),
        Err(BadBriefTable::Code { .. })
    ));
    assert!(matches!(
        BriefLevelTable::parse_spec("=10"),
        Err(BadBriefTable::Code { .. })
    ));
    assert!(matches!(
        BriefLevelTable::parse_spec("\\xZZ=10"),
        Err(BadBriefTable::Code { .. })
    ));
    assert!(matches!(
        BriefLevelTable::parse_spec("#=11"),
        Err(BadBriefTable::Level { .. })
    ));
    assert!(matches!(
        BriefLevelTable::parse_spec("#=0"),
        Err(BadBriefTable::Level { .. })
    ));
    assert!(matches!(
        BriefLevelTable::parse_spec("#=+5"),
        Err(BadBriefTable::Level { .. })
    ));
    assert!(matches!(
        BriefLevelTable::parse_spec("#=010"),
        Err(BadBriefTable::Level { .. })
    ));
    assert_eq!(
        BriefLevelTable::parse_spec("#=10,\\x20=9"),
        Err(BadBriefTable::Duplicate {
            code: "#".to_owned()
        })
    );
    assert_eq!(
        BriefLevelTable::parse_spec("*=1,*=2"),
        Err(BadBriefTable::Duplicate {
            code: "*".to_owned()
        })
    );
    assert_eq!(
        BriefLevelTable::parse_spec("#=11").unwrap_err().to_string(),
        "\"#=11\": the brief level must be 1 to 10"
    );
}

#[test]
fn from_pairs_validates() {
    let table = BriefLevelTable::from_pairs(&[(b' ', 10), (b'7', 4)], 2).unwrap();
    assert_eq!(table.level_of(b' ').get(), 10);
    assert_eq!(table.level_of(b'7').get(), 4);
    assert_eq!(table.level_of(b'x').get(), 2);
    assert_eq!(table.to_spec(), "#=10,7=4,*=2");
    assert!(matches!(
        BriefLevelTable::from_pairs(&[(b' ', 0)], 1),
        Err(BadBriefTable::Level { .. })
    ));
    assert!(matches!(
        BriefLevelTable::from_pairs(&[], 11),
        Err(BadBriefTable::Level { .. })
    ));
    assert!(matches!(
        BriefLevelTable::from_pairs(&[(b'7', 4), (b'7', 4)], 1),
        Err(BadBriefTable::Duplicate { .. })
    ));
}

// --- record kind ---------------------------------------------------------------------------

#[test]
fn record_type_from_leader_06() {
    for byte in *b"acdefgijkmoprt" {
        assert_eq!(RecordType::from_leader06(byte), RecordType::Bibliographic);
    }
    assert_eq!(RecordType::from_leader06(b'z'), RecordType::Authority);
    for byte in *b"uvxy" {
        assert_eq!(RecordType::from_leader06(byte), RecordType::Holdings);
    }
    assert_eq!(RecordType::from_leader06(b'w'), RecordType::Classification);
    assert_eq!(RecordType::from_leader06(b'q'), RecordType::Community);
    assert_eq!(RecordType::from_leader06(b'b'), RecordType::Unknown(b'b'));
    assert_eq!(
        record_type(&record_with_leader(b"00000nz  a2200000n  4500")),
        RecordType::Authority
    );
}

#[test]
fn serial_is_leader_07_s_only() {
    assert!(is_serial(&record_with_leader(b"00000cas a2200000 a 4500")));
    assert!(!is_serial(&record_with_leader(b"00000cai a2200000 a 4500")));
    assert!(!is_serial(&record_with_leader(b"00000cab a2200000 a 4500")));
    assert!(!is_serial(&record_with_leader(b"00000cam a2200000 a 4500")));
}

// --- properties ---------------------------------------------------------------------------

fn any_version() -> impl Strategy<Value = Version005> {
    (
        0u16..=9999,
        1u8..=12,
        1u8..=31,
        0u8..=23,
        0u8..=59,
        0u8..=59,
        0u8..=9,
    )
        .prop_map(|(year, month, day, hour, minute, second, tenths)| {
            let day = day.min(days_in_month(year, month));
            Version005::new(year, month, day, hour, minute, second, tenths).unwrap()
        })
}

proptest! {
    #[test]
    fn prop_005_display_parse_roundtrip(version in any_version()) {
        let text = version.to_string();
        prop_assert_eq!(text.len(), 16);
        let parsed = parse_005(&text).unwrap();
        prop_assert_eq!(parsed.version, version);
        prop_assert_eq!(parsed.lenient, None);
    }

    #[test]
    fn prop_005_order_matches_string_and_seconds(a in any_version(), b in any_version()) {
        prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        if a.to_unix_seconds() < b.to_unix_seconds() {
            prop_assert!(a < b);
        }
    }

    #[test]
    fn prop_005_unix_roundtrip(version in any_version()) {
        let seconds = version.to_unix_seconds();
        let back = Version005::from_unix_seconds(seconds).unwrap();
        prop_assert_eq!(back.to_string()[..14].to_owned(), version.to_string()[..14].to_owned());
    }

    #[test]
    fn prop_005_never_panics(value in any::<String>(), digits in "[0-9]{14}(\\.[0-9])?") {
        let _ = parse_005(&value).map_err(|error| error.to_string());
        if let Ok(parsed) = parse_005(&digits) {
            prop_assert_eq!(parsed.version.to_string()[..14].to_owned(), digits[..14].to_owned());
        }
    }

    #[test]
    fn prop_spec_roundtrip(
        pairs in proptest::collection::btree_map(any::<u8>(), 1u8..=10, 0..20),
        default in 1u8..=10,
    ) {
        let pairs: Vec<(u8, u8)> = pairs.into_iter().collect();
        let table = BriefLevelTable::from_pairs(&pairs, default).unwrap();
        let spec = table.to_spec();
        prop_assert_eq!(BriefLevelTable::parse_spec(&spec).unwrap(), table.clone());
        for (code, level) in &pairs {
            prop_assert_eq!(table.level_of(*code).get(), *level);
        }
    }

    #[test]
    fn prop_spec_parse_never_panics(spec in "\\PC{0,40}") {
        let _ = BriefLevelTable::parse_spec(&spec);
    }
}
