//! Merge tests: Alma's default rules, each action, field order, the leader, and the text form.

use bibgate_marc::{Field, Leader, Record, Tag};
use proptest::prelude::*;

use super::*;

fn tags(record: &Record) -> Vec<String> {
    record
        .fields
        .iter()
        .map(|field| field.tag().as_str())
        .collect()
}

fn first_values(record: &Record, tag: &str, code: u8) -> Vec<String> {
    record
        .fields_with_tag(tag)
        .flat_map(|field| field.subfield_values(code))
        .map(str::to_owned)
        .collect()
}

fn existing() -> Record {
    let mut record = Record::default();
    record.leader.0[5] = b'c';
    record.push_control("001", "991000000000101");
    record.push_control("005", "20230101000000.0");
    record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)111")]);
    record.push_data("035", b' ', b' ', &[(b'a', "(CaSfKan)b1234567")]);
    record.push_data("245", b'1', b'0', &[(b'a', "Old title.")]);
    record.push_data(
        "500",
        b' ',
        b' ',
        &[(b'a', "Local copy signed."), (b'5', "ICU")],
    );
    record.push_data("500", b' ', b' ', &[(b'a', "Generic note.")]);
    record.push_data("650", b' ', b'0', &[(b'a', "Old subject.")]);
    record.push_data("949", b' ', b' ', &[(b'a', "item data")]);
    record
}

fn incoming() -> Record {
    let mut record = Record {
        leader: Leader(*b"00000nam a2200000Ii 4500"),
        fields: Vec::new(),
    };
    record.push_control("001", "ocm00000222");
    record.push_control("003", "OCoLC");
    record.push_control("005", "20240101120000.0");
    record.push_data(
        "035",
        b' ',
        b' ',
        &[(b'a', "(OCoLC)222"), (b'z', "(OCoLC)111")],
    );
    record.push_data("245", b'1', b'0', &[(b'a', "New title.")]);
    record.push_data("500", b' ', b' ', &[(b'a', "New note.")]);
    record.push_data("650", b' ', b'0', &[(b'a', "New subject.")]);
    record
}

fn rules(spec: &str) -> MergeRules {
    MergeRules::parse(spec).unwrap()
}

#[test]
fn default_rules_keep_001_9xx_local_035_and_dollar5_fields() {
    let (merged, trace) = merge(&existing(), &incoming(), &MergeRules::default());
    assert_eq!(merged.control_value("001"), Some("991000000000101"));
    assert_eq!(merged.fields_with_tag("001").count(), 1);
    assert_eq!(first_values(&merged, "949", b'a'), vec!["item data"]);
    assert_eq!(
        first_values(&merged, "035", b'a'),
        vec!["(OCoLC)222", "(CaSfKan)b1234567"]
    );
    assert_eq!(
        first_values(&merged, "500", b'a'),
        vec!["New note.", "Local copy signed."]
    );
    assert_eq!(
        tags(&merged),
        vec![
            "001", "003", "005", "035", "035", "245", "500", "500", "650", "949"
        ]
    );
    assert!(
        trace
            .iter()
            .any(|line| line.starts_with("merge 949: existing kept 1"))
    );
}

#[test]
fn default_rules_take_everything_else_from_incoming() {
    let (merged, _) = merge(&existing(), &incoming(), &MergeRules::default());
    assert_eq!(first_values(&merged, "245", b'a'), vec!["New title."]);
    assert_eq!(first_values(&merged, "650", b'a'), vec!["New subject."]);
    assert_eq!(merged.control_value("005"), Some("20240101120000.0"));
    assert_eq!(merged.control_value("003"), Some("OCoLC"));
    // The existing OCLC 035 is replaced by the incoming one, $z included.
    assert_eq!(first_values(&merged, "035", b'z'), vec!["(OCoLC)111"]);
    assert!(!first_values(&merged, "500", b'a').contains(&"Generic note.".to_owned()));
}

#[test]
fn leader_comes_from_incoming_except_the_record_status() {
    let (merged, trace) = merge(&existing(), &incoming(), &MergeRules::default());
    assert_eq!(merged.leader.0[17], b'I');
    assert_eq!(merged.leader.0[5], b'c');
    assert_eq!(
        trace.first().map(String::as_str),
        Some("merge leader: from incoming, Leader/05 'c' kept from existing")
    );
}

#[test]
fn keep_existing_drops_incoming_fields_of_the_class_even_without_existing_ones() {
    let mut incoming = incoming();
    incoming.push_data("590", b' ', b' ', &[(b'a', "OCLC local note")]);
    let (merged, _) = merge(&existing(), &incoming, &rules("59X keep"));
    assert_eq!(merged.fields_with_tag("590").count(), 0);
}

#[test]
fn take_incoming_drops_existing_fields_absent_from_incoming() {
    let mut existing = existing();
    existing.push_data("504", b' ', b' ', &[(b'a', "Bibliography.")]);
    let (merged, _) = merge(&existing, &incoming(), &MergeRules::default());
    assert_eq!(merged.fields_with_tag("504").count(), 0);
}

#[test]
fn keep_both_adds_incoming_and_keeps_existing_once() {
    let mut incoming = incoming();
    // Identical to the existing 650: appears once.
    incoming.push_data("650", b' ', b'0', &[(b'a', "Old subject.")]);
    let (merged, trace) = merge(&existing(), &incoming, &rules("6XX both; default take"));
    assert_eq!(
        first_values(&merged, "650", b'a'),
        vec!["New subject.", "Old subject."]
    );
    assert!(
        trace.iter().any(|line| line
            .contains("merge 650: existing kept 1, incoming taken 1, incoming already present 1")),
        "{trace:?}"
    );
}

#[test]
fn keep_both_keeps_existing_duplicates_as_they_were() {
    let mut existing = existing();
    existing.push_data("650", b' ', b'0', &[(b'a', "Old subject.")]);
    let mut incoming = incoming();
    incoming.push_data("650", b' ', b'0', &[(b'a', "Old subject.")]);
    let (merged, _) = merge(&existing, &incoming, &rules("6XX both"));
    assert_eq!(
        first_values(&merged, "650", b'a'),
        vec!["New subject.", "Old subject.", "Old subject."]
    );
}

#[test]
fn existing_fields_are_inserted_at_their_tag_position() {
    let mut incoming = Record::default();
    incoming.push_data("245", b'1', b'0', &[(b'a', "T")]);
    // Out of order on purpose: the incoming order is kept.
    incoming.push_data("100", b'1', b' ', &[(b'a', "A")]);
    incoming.push_data("700", b'1', b' ', &[(b'a', "B")]);
    let mut existing = Record::default();
    existing.push_control("001", "99");
    existing.push_data("590", b' ', b' ', &[(b'a', "local 1")]);
    existing.push_data("590", b' ', b' ', &[(b'a', "local 2")]);
    existing.push_data("999", b' ', b' ', &[(b'a', "z")]);
    let (merged, _) = merge(&existing, &incoming, &rules("001 keep; 59X keep; 9XX keep"));
    assert_eq!(
        tags(&merged),
        vec!["001", "245", "100", "590", "590", "700", "999"]
    );
    assert_eq!(
        first_values(&merged, "590", b'a'),
        vec!["local 1", "local 2"]
    );
}

#[test]
fn first_matching_rule_wins() {
    let (merged, _) = merge(&existing(), &incoming(), &rules("500 take; *[5] keep"));
    assert_eq!(first_values(&merged, "500", b'a'), vec!["New note."]);
    let (merged, _) = merge(&existing(), &incoming(), &rules("*[5] keep; 500 take"));
    assert_eq!(
        first_values(&merged, "500", b'a'),
        vec!["New note.", "Local copy signed."]
    );
}

#[test]
fn default_action_applies_to_unclaimed_fields() {
    let (merged, _) = merge(&existing(), &incoming(), &rules("245 take; default keep"));
    assert_eq!(first_values(&merged, "245", b'a'), vec!["New title."]);
    assert_eq!(first_values(&merged, "650", b'a'), vec!["Old subject."]);
    assert_eq!(merged.control_value("001"), Some("991000000000101"));
}

#[test]
fn empty_records_merge_to_an_empty_record() {
    let (merged, trace) = merge(
        &Record::default(),
        &Record::default(),
        &MergeRules::default(),
    );
    assert!(merged.fields.is_empty());
    assert_eq!(trace.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Conditions and patterns
// ---------------------------------------------------------------------------------------------

fn data(tag: &str, subfields: &[(u8, &str)]) -> Field {
    let mut record = Record::default();
    record.push_data(tag, b' ', b' ', subfields);
    record.fields.remove(0)
}

#[test]
fn starts_with_ignores_leading_blanks_and_ascii_case() {
    let oclc = Condition::SubfieldStartsWith {
        code: b'a',
        prefix: "(OCoLC)".to_owned(),
        negate: false,
    };
    assert!(oclc.matches(&data("035", &[(b'a', "  (ocolc)123")])));
    assert!(!oclc.matches(&data("035", &[(b'a', "(OCoLC-M)123")])));
    assert!(!oclc.matches(&data("035", &[(b'a', "(DLC)123")])));
    assert!(!oclc.matches(&data("035", &[(b'a', "(OCo")])));
}

#[test]
fn negated_condition_needs_the_subfield() {
    let local = Condition::SubfieldStartsWith {
        code: b'a',
        prefix: "(OCoLC)".to_owned(),
        negate: true,
    };
    assert!(local.matches(&data("035", &[(b'a', "(CaSfKan)1")])));
    assert!(!local.matches(&data("035", &[(b'a', "(OCoLC)1")])));
    // Only $z: neither local nor OCLC by its $a.
    assert!(!local.matches(&data("035", &[(b'z', "(OCoLC)1")])));
    // One $a OCLC, one not: some $a starts with the prefix, so not local.
    assert!(!local.matches(&data("035", &[(b'a', "(CaSfKan)1"), (b'a', "(OCoLC)2")])));
}

#[test]
fn subfield_conditions_never_match_control_fields() {
    let control = Field::Control {
        tag: Tag(*b"001"),
        value: "5".to_owned(),
    };
    assert!(!Condition::HasSubfield(b'5').matches(&control));
    assert!(Condition::Always.matches(&control));
}

#[test]
fn tag_patterns() {
    let tag = |text: &str| Tag::new(text).unwrap();
    let nine = TagPattern::new("9XX").unwrap();
    assert!(nine.matches(tag("900")) && nine.matches(tag("9AB")));
    assert!(!nine.matches(tag("090")));
    assert!(TagPattern::ANY.matches(tag("001")));
    assert!(TagPattern::new("X9X").unwrap().matches(tag("590")));
    for bad in ["", "9X", "9XXX", "9-X", "**", " 90"] {
        assert_eq!(TagPattern::new(bad), None, "{bad:?}");
    }
    assert_eq!(TagPattern::new("59X").unwrap().to_string(), "59X");
    assert_eq!("*".parse::<TagPattern>().unwrap(), TagPattern::ANY);
}

// ---------------------------------------------------------------------------------------------
// Text form
// ---------------------------------------------------------------------------------------------

#[test]
fn alma_default_spec() {
    let spec = MergeRules::alma_overlay_all_but_local().to_spec();
    assert_eq!(
        spec,
        "001 keep; 9XX keep; 035[a!^(OCoLC)] keep; *[5] keep; default take"
    );
    assert_eq!(MergeRules::parse(&spec).unwrap(), MergeRules::default());
}

#[test]
fn spec_accepts_lines_blanks_and_spacing() {
    let spec = "\n  001 keep\n9XX KEEP ;; 035 [a!^(OCoLC)]   keep\r\n*[5] keep\n";
    assert_eq!(rules(spec), MergeRules::alma_overlay_all_but_local());
    let spec = "500[a^Local copy] both; default keep";
    let parsed = rules(spec);
    assert_eq!(parsed.default_action, Action::KeepExisting);
    assert_eq!(
        parsed.rules[0].condition,
        Condition::SubfieldStartsWith {
            code: b'a',
            prefix: "Local copy".to_owned(),
            negate: false
        }
    );
    assert_eq!(parsed.to_spec(), spec);
}

#[test]
fn spec_escapes() {
    let rule = MergeRule {
        tags: TagPattern::ANY,
        condition: Condition::SubfieldStartsWith {
            code: b'$',
            prefix: "a;b]c[d\\e\nf".to_owned(),
            negate: true,
        },
        action: Action::KeepBoth,
    };
    let rules = MergeRules {
        rules: vec![rule],
        default_action: Action::TakeIncoming,
    };
    let spec = rules.to_spec();
    assert_eq!(
        spec,
        "*[\\x24!^a\\;b\\]c\\[d\\\\e\\u{A}f] both; default take"
    );
    assert_eq!(MergeRules::parse(&spec).unwrap(), rules);
}

#[test]
fn spec_errors() {
    type Expect = fn(&BadRules) -> bool;
    let cases: [(&str, Expect); 9] = [
        ("", |e| matches!(e, BadRules::Empty)),
        (" ; \n ", |e| matches!(e, BadRules::Empty)),
        ("9XX", |e| matches!(e, BadRules::MissingAction { .. })),
        (
            "9XX retain",
            |e| matches!(e, BadRules::Action { action, .. } if action == "retain"),
        ),
        (
            "9X keep",
            |e| matches!(e, BadRules::Pattern { pattern, .. } if pattern == "9X"),
        ),
        ("035[a keep", |e| matches!(e, BadRules::Condition { .. })),
        ("035[a~x] keep", |e| matches!(e, BadRules::Condition { .. })),
        ("035[a^\\q] keep", |e| matches!(e, BadRules::Escape { .. })),
        ("default take; default keep", |e| {
            matches!(e, BadRules::DuplicateDefault { .. })
        }),
    ];
    for (spec, expected) in cases {
        let error = MergeRules::parse(spec).unwrap_err();
        assert!(expected(&error), "{spec:?} gave {error:?}");
        let text = error.to_string();
        assert!(!text.ends_with('.'), "{text}");
    }
    assert_eq!(
        MergeRules::parse("9XX retain").unwrap_err().to_string(),
        "\"9XX retain\" has the unknown action \"retain\"; expected keep, take or both"
    );
}

fn arb_pattern() -> impl Strategy<Value = TagPattern> {
    prop_oneof![
        Just(TagPattern::ANY),
        "[0-9A-Za-z]{3}".prop_map(|text| TagPattern::new(&text).unwrap_or(TagPattern::ANY)),
    ]
}

fn arb_condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        Just(Condition::Always),
        any::<u8>().prop_map(Condition::HasSubfield),
        (any::<u8>(), any::<String>(), any::<bool>()).prop_map(|(code, prefix, negate)| {
            Condition::SubfieldStartsWith {
                code,
                prefix,
                negate,
            }
        }),
    ]
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::KeepExisting),
        Just(Action::TakeIncoming),
        Just(Action::KeepBoth),
    ]
}

proptest! {
    #[test]
    fn spec_round_trips(
        rules in proptest::collection::vec((arb_pattern(), arb_condition(), arb_action()), 0..6),
        default_action in arb_action(),
    ) {
        let rules = MergeRules {
            rules: rules
                .into_iter()
                .map(|(tags, condition, action)| MergeRule { tags, condition, action })
                .collect(),
            default_action,
        };
        let spec = rules.to_spec();
        prop_assert_eq!(MergeRules::parse(&spec), Ok(rules));
    }

    #[test]
    fn parse_never_panics(spec in any::<String>()) {
        let _ = MergeRules::parse(&spec);
    }
}
