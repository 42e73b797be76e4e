//! The field-level merge of an incoming OCLC record into the existing record it matched.
//!
//! # Semantics
//!
//! The **existing** record is the primary record, as in Alma's Connexion integration
//! (domain.md §1.8): rules say, class of field by class of field, whether the existing
//! record's fields stay and whether the incoming record's fields come in.
//!
//! Every field, of either record, is classified by the **first** [`MergeRule`] whose
//! [`TagPattern`] and [`Condition`] match it; a field no rule matches gets
//! [`MergeRules::default_action`]. The action then decides:
//!
//! | action | a field of the existing record | a field of the incoming record |
//! |---|---|---|
//! | [`Action::KeepExisting`] | stays | is dropped |
//! | [`Action::TakeIncoming`] | is dropped | comes in |
//! | [`Action::KeepBoth`] | stays | comes in (an identical pair appears once) |
//!
//! So `KeepExisting` takes the class from the existing record only (incoming fields of that
//! class are dropped even when the existing record has none), and `TakeIncoming` takes it from
//! the incoming record only (an existing field of that class disappears even when the incoming
//! record has none: that is what "overlay" means).
//!
//! Conditions read each field on its own: [`Condition::HasSubfield`] and
//! [`Condition::SubfieldStartsWith`] never match a control field.
//!
//! # Field order
//!
//! The merged record keeps the incoming record's fields in their order, and each existing
//! field that stays is inserted right after the last field whose tag is less than or equal to
//! its own (at the start if there is none). Existing fields that stay keep their relative order;
//! within one tag they come after the incoming fields (an existing local 035 follows the
//! incoming OCLC 035). Nothing is sorted, so a cataloguer's order in the incoming record is
//! never disturbed. Under [`Action::KeepBoth`], an existing field identical to an incoming one
//! appears once, where the incoming record put it.
//!
//! # Leader
//!
//! The leader comes from the incoming record (its Leader/06, /07 and /17 describe the body that
//! now fills the record), except Leader/05, the record status, which is kept from the existing
//! record: the status belongs to the record's life in the target zone, not to WorldCat's copy.
//! Lengths and addresses are recomputed by the writers anyway.
//!
//! # Alma's "overlay all fields but local"
//!
//! [`MergeRules::alma_overlay_all_but_local`] keeps the existing 001 (the target system's
//! record id), every 9XX, every 035 with an `$a` that does not start with `(OCoLC)` (local
//! system numbers), and every field carrying `$5`; everything else, OCLC 035s included, comes
//! from the incoming record.
//!
//! # Text form
//!
//! [`MergeRules::parse`] and [`MergeRules::to_spec`] use one rule per item, items separated
//! by `;` or a line break, blank items ignored:
//!
//! ```text
//! 001 keep; 9XX keep; 035[a!^(OCoLC)] keep; *[5] keep; default take
//! ```
//!
//! - An item is `PATTERN[CONDITION] ACTION` or `default ACTION`.
//! - `PATTERN` is `*` (any tag) or three characters, each an ASCII letter or digit matched
//!   literally, or `X`, which matches any character (so `9XX` also covers local tags such as
//!   `9AB`).
//! - `CONDITION` is optional: `[c]` = the field has subfield `c`; `[c^PREFIX]` = some
//!   subfield `c` starts with `PREFIX`; `[c!^PREFIX]` = the field has subfield `c` and none
//!   starts with `PREFIX`. The code `c` is one ASCII letter or digit, or `\xHH` for any byte.
//!   Inside `PREFIX`, write `\\`, `\;`, `\[`, `\]` for those characters and `\u{HEX}` for any
//!   character (`to_spec` uses it for control characters).
//! - `ACTION` is `keep` ([`Action::KeepExisting`]), `take` ([`Action::TakeIncoming`]) or
//!   `both` ([`Action::KeepBoth`]), case-insensitive.
//! - `default ACTION` sets [`MergeRules::default_action`]; at most once; `take` when absent.
//!
//! `to_spec` writes the rules in order followed by the `default` item, joined by `"; "`, and
//! `parse(to_spec(r)) == r` for every `r`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bibgate_marc::{Field, Record, Tag};

use crate::error::BadRules;

/// Which tags a rule applies to: any tag, or three positions each literal or `X` (any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TagPattern {
    /// `None` = any tag; otherwise per position `None` = any character.
    positions: Option<[Option<u8>; 3]>,
}

impl TagPattern {
    /// The pattern `*`, matching every tag.
    pub const ANY: TagPattern = TagPattern { positions: None };

    /// Reads `*` or three characters (ASCII letters or digits; `X` matches any character).
    ///
    /// ```
    /// use bibgate_engine::merge::TagPattern;
    /// use bibgate_marc::Tag;
    /// let pattern = TagPattern::new("9XX").unwrap();
    /// assert!(pattern.matches(Tag::new("949").unwrap()));
    /// assert!(!pattern.matches(Tag::new("849").unwrap()));
    /// ```
    pub fn new(text: &str) -> Option<TagPattern> {
        if text == "*" {
            return Some(TagPattern::ANY);
        }
        let bytes = text.as_bytes();
        if bytes.len() != 3 {
            return None;
        }
        let mut positions = [None; 3];
        for (slot, &byte) in positions.iter_mut().zip(bytes) {
            *slot = match byte {
                b'X' => None,
                byte if byte.is_ascii_alphanumeric() => Some(byte),
                _ => return None,
            };
        }
        Some(TagPattern {
            positions: Some(positions),
        })
    }

    /// True when `tag` matches the pattern.
    pub fn matches(&self, tag: Tag) -> bool {
        match &self.positions {
            None => true,
            Some(positions) => positions
                .iter()
                .zip(tag.0)
                .all(|(expected, byte)| expected.is_none_or(|expected| expected == byte)),
        }
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.positions {
            None => f.write_str("*"),
            Some(positions) => {
                for position in positions {
                    let c = position.map_or('X', char::from);
                    write!(f, "{c}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for TagPattern {
    type Err = BadRules;

    fn from_str(s: &str) -> Result<TagPattern, BadRules> {
        TagPattern::new(s).ok_or_else(|| BadRules::Pattern {
            item: s.to_owned(),
            pattern: s.to_owned(),
        })
    }
}

/// A test on one field's subfields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Every field.
    Always,
    /// The field has at least one subfield with this code (e.g. `$5`, the institution a
    /// field belongs to).
    HasSubfield(u8),
    /// Compares the values of subfield `code` with `prefix`, after trimming leading
    /// whitespace from the value and ignoring ASCII case (so `(ocolc)` counts as `(OCoLC)`,
    /// as in the matcher).
    ///
    /// `negate: false`: some subfield `code` starts with `prefix`. `negate: true`: the field
    /// has subfield `code` and none of them starts with `prefix`. A field without the subfield
    /// matches neither form (a 035 with only `$z` is neither local nor OCLC by its `$a`).
    SubfieldStartsWith {
        /// The subfield code.
        code: u8,
        /// The prefix.
        prefix: String,
        /// True for "does not start with".
        negate: bool,
    },
}

fn starts_with_ignore_ascii_case(value: &str, prefix: &str) -> bool {
    let value = value.trim_start().as_bytes();
    let prefix = prefix.as_bytes();
    value
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

impl Condition {
    /// True when `field` satisfies the condition.
    pub fn matches(&self, field: &Field) -> bool {
        match self {
            Condition::Always => true,
            Condition::HasSubfield(code) => field.subfields().iter().any(|s| s.code == *code),
            Condition::SubfieldStartsWith {
                code,
                prefix,
                negate,
            } => {
                let mut values = field.subfield_values(*code).peekable();
                if values.peek().is_none() {
                    return false;
                }
                let any = values.any(|value| starts_with_ignore_ascii_case(value, prefix));
                any != *negate
            }
        }
    }
}

fn write_code(f: &mut fmt::Formatter<'_>, code: u8) -> fmt::Result {
    if code.is_ascii_alphanumeric() {
        write!(f, "{}", char::from(code))
    } else {
        write!(f, "\\x{code:02X}")
    }
}

fn write_prefix(f: &mut fmt::Formatter<'_>, prefix: &str) -> fmt::Result {
    for c in prefix.chars() {
        match c {
            '\\' | ';' | '[' | ']' => write!(f, "\\{c}")?,
            c if c.is_control() => write!(f, "\\u{{{:X}}}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Condition {
    /// The bracketed form used in the text specification; empty for [`Condition::Always`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Always => Ok(()),
            Condition::HasSubfield(code) => {
                f.write_str("[")?;
                write_code(f, *code)?;
                f.write_str("]")
            }
            Condition::SubfieldStartsWith {
                code,
                prefix,
                negate,
            } => {
                f.write_str("[")?;
                write_code(f, *code)?;
                f.write_str(if *negate { "!^" } else { "^" })?;
                write_prefix(f, prefix)?;
                f.write_str("]")
            }
        }
    }
}

/// What happens to a class of fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The existing record's fields stay; the incoming record's are dropped. Spec word `keep`.
    KeepExisting,
    /// The existing record's fields are dropped; the incoming record's come in. Spec word `take`.
    TakeIncoming,
    /// Both: the existing fields stay and the incoming ones are added (an incoming field
    /// identical to one that stays is not added twice). Spec word `both`.
    KeepBoth,
}

impl Action {
    /// The word used in the text specification: `keep`, `take` or `both`.
    pub const fn word(self) -> &'static str {
        match self {
            Action::KeepExisting => "keep",
            Action::TakeIncoming => "take",
            Action::KeepBoth => "both",
        }
    }

    fn from_word(word: &str) -> Option<Action> {
        [Action::KeepExisting, Action::TakeIncoming, Action::KeepBoth]
            .into_iter()
            .find(|action| action.word().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One rule: fields whose tag matches `tags` and which satisfy `condition` get `action`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MergeRule {
    /// The tags the rule applies to.
    pub tags: TagPattern,
    /// The test on the field's subfields.
    pub condition: Condition,
    /// What happens to matching fields.
    pub action: Action,
}

impl MergeRule {
    /// A rule without condition.
    pub fn new(tags: TagPattern, action: Action) -> MergeRule {
        MergeRule {
            tags,
            condition: Condition::Always,
            action,
        }
    }

    /// True when the rule applies to `field`.
    pub fn matches(&self, field: &Field) -> bool {
        self.tags.matches(field.tag()) && self.condition.matches(field)
    }
}

impl fmt::Display for MergeRule {
    /// The rule's item in the text specification, e.g. `035[a!^(OCoLC)] keep`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{} {}", self.tags, self.condition, self.action)
    }
}

/// An ordered list of rules (first match wins) and the action for fields no rule matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MergeRules {
    /// The rules, tried in order.
    pub rules: Vec<MergeRule>,
    /// The action for fields no rule matches.
    pub default_action: Action,
}

impl Default for MergeRules {
    /// Alma's "overlay all fields but local".
    fn default() -> Self {
        MergeRules::alma_overlay_all_but_local()
    }
}

impl fmt::Display for MergeRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_spec())
    }
}

impl FromStr for MergeRules {
    type Err = BadRules;

    fn from_str(s: &str) -> Result<MergeRules, BadRules> {
        MergeRules::parse(s)
    }
}

/// Splits on unescaped `;` and line breaks; escapes stay in the items.
fn split_items(spec: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (at, c) in spec.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ';' || c == '\n' || c == '\r' {
            items.push(&spec[start..at]);
            start = at + c.len_utf8();
        }
    }
    items.push(&spec[start..]);
    items
}

fn unescape(text: &str, item: &str) -> Result<String, BadRules> {
    let bad = || BadRules::Escape {
        item: item.to_owned(),
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(c @ ('\\' | ';' | '[' | ']')) => out.push(c),
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err(bad());
                }
                let mut hex = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(h) if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                        _ => return Err(bad()),
                    }
                }
                let decoded = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(bad)?;
                out.push(decoded);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

fn parse_condition(text: &str, item: &str) -> Result<Condition, BadRules> {
    let bad = || BadRules::Condition {
        item: item.to_owned(),
    };
    let bytes = text.as_bytes();
    let (code, rest) = match bytes {
        [b'\\', b'x' | b'X', high, low, ..]
            if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() =>
        {
            let code = text
                .get(2..4)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(bad)?;
            (code, text.get(4..).ok_or_else(bad)?)
        }
        [first, ..] if first.is_ascii_graphic() && *first != b'\\' => {
            (*first, text.get(1..).ok_or_else(bad)?)
        }
        _ => return Err(bad()),
    };
    if rest.is_empty() {
        return Ok(Condition::HasSubfield(code));
    }
    let (negate, prefix) = if let Some(prefix) = rest.strip_prefix("!^") {
        (true, prefix)
    } else if let Some(prefix) = rest.strip_prefix('^') {
        (false, prefix)
    } else {
        return Err(bad());
    };
    Ok(Condition::SubfieldStartsWith {
        code,
        prefix: unescape(prefix, item)?,
        negate,
    })
}

/// One parsed item: a rule or the default action.
enum Item {
    Rule(MergeRule),
    Default(Action),
}

fn parse_item(item: &str) -> Result<Item, BadRules> {
    let Some((head, word)) = item.rsplit_once(char::is_whitespace) else {
        return Err(BadRules::MissingAction {
            item: item.to_owned(),
        });
    };
    let action = Action::from_word(word).ok_or_else(|| BadRules::Action {
        item: item.to_owned(),
        action: word.to_owned(),
    })?;
    let head = head.trim_end();
    if head.eq_ignore_ascii_case("default") {
        return Ok(Item::Default(action));
    }
    let (pattern_text, condition) = match head.split_once('[') {
        None => (head, Condition::Always),
        Some((pattern_text, rest)) => {
            let Some(inner) = rest.strip_suffix(']') else {
                return Err(BadRules::Condition {
                    item: item.to_owned(),
                });
            };
            (pattern_text.trim_end(), parse_condition(inner, item)?)
        }
    };
    let tags = TagPattern::new(pattern_text).ok_or_else(|| BadRules::Pattern {
        item: item.to_owned(),
        pattern: pattern_text.to_owned(),
    })?;
    Ok(Item::Rule(MergeRule {
        tags,
        condition,
        action,
    }))
}

impl MergeRules {
    /// Alma's "overlay all fields but local" as rules:
    /// `001 keep; 9XX keep; 035[a!^(OCoLC)] keep; *[5] keep; default take`.
    pub fn alma_overlay_all_but_local() -> MergeRules {
        let pattern = |text: &str| TagPattern::new(text).unwrap_or(TagPattern::ANY);
        MergeRules {
            rules: vec![
                MergeRule::new(pattern("001"), Action::KeepExisting),
                MergeRule::new(pattern("9XX"), Action::KeepExisting),
                MergeRule {
                    tags: pattern("035"),
                    condition: Condition::SubfieldStartsWith {
                        code: b'a',
                        prefix: "(OCoLC)".to_owned(),
                        negate: true,
                    },
                    action: Action::KeepExisting,
                },
                MergeRule {
                    tags: TagPattern::ANY,
                    condition: Condition::HasSubfield(b'5'),
                    action: Action::KeepExisting,
                },
            ],
            default_action: Action::TakeIncoming,
        }
    }

    /// Reads the text form (see the module documentation).
    ///
    /// ```
    /// use bibgate_engine::merge::MergeRules;
    /// let rules = MergeRules::parse("001 keep; 9XX keep; 035[a!^(OCoLC)] keep; *[5] keep").unwrap();
    /// assert_eq!(rules, MergeRules::alma_overlay_all_but_local());
    /// ```
    pub fn parse(spec: &str) -> Result<MergeRules, BadRules> {
        let mut rules = Vec::new();
        let mut default_action = None;
        let mut any = false;
        for item in split_items(spec)
            .into_iter()
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            any = true;
            match parse_item(item)? {
                Item::Rule(rule) => rules.push(rule),
                Item::Default(_) if default_action.is_some() => {
                    return Err(BadRules::DuplicateDefault {
                        item: item.to_owned(),
                    });
                }
                Item::Default(action) => default_action = Some(action),
            }
        }
        if !any {
            return Err(BadRules::Empty);
        }
        Ok(MergeRules {
            rules,
            default_action: default_action.unwrap_or(Action::TakeIncoming),
        })
    }

    /// Writes the text form: the rules in order, then `default ACTION`, joined by `"; "`.
    pub fn to_spec(&self) -> String {
        let mut items: Vec<String> = self.rules.iter().map(MergeRule::to_string).collect();
        items.push(format!("default {}", self.default_action));
        items.join("; ")
    }

    /// The action for `field` and the index of the rule that decided (`None` = the default).
    pub fn action_for(&self, field: &Field) -> (Action, Option<usize>) {
        self.rules
            .iter()
            .position(|rule| rule.matches(field))
            .and_then(|index| self.rules.get(index).map(|rule| (rule.action, Some(index))))
            .unwrap_or((self.default_action, None))
    }

    fn rule_label(&self, index: Option<usize>) -> String {
        match index.and_then(|index| self.rules.get(index).map(|rule| (index, rule))) {
            Some((index, rule)) => format!("rule {} \"{rule}\"", index + 1),
            None => format!("default {}", self.default_action),
        }
    }
}

/// Per-tag counts for the merge trace.
#[derive(Default)]
struct TagTally {
    existing_kept: usize,
    existing_dropped: usize,
    incoming_taken: usize,
    incoming_dropped: usize,
    incoming_duplicate: usize,
    rules: Vec<String>,
}

impl TagTally {
    /// Nothing kept from the existing record and nothing dropped from the incoming one, by
    /// the default rule alone.
    fn is_plain_default(&self) -> bool {
        self.existing_kept == 0
            && self.incoming_dropped == 0
            && self.incoming_duplicate == 0
            && self.rules.len() == 1
            && self.rules.iter().all(|rule| rule.starts_with("default"))
    }

    fn note_rule(&mut self, label: String) {
        if !self.rules.contains(&label) {
            self.rules.push(label);
        }
    }

    fn line(&self, tag: Tag) -> String {
        let parts: Vec<String> = [
            (self.existing_kept, "existing kept"),
            (self.existing_dropped, "existing dropped"),
            (self.incoming_taken, "incoming taken"),
            (self.incoming_dropped, "incoming dropped"),
            (self.incoming_duplicate, "incoming already present"),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{what} {count}"))
        .collect();
        format!(
            "merge {tag}: {} (by {})",
            parts.join(", "),
            self.rules.join(", ")
        )
    }
}

/// Merges `incoming` into `existing` by `rules` (see the module documentation); returns the
/// merged record and one trace line for the leader and one per tag, in tag order.
pub fn merge(existing: &Record, incoming: &Record, rules: &MergeRules) -> (Record, Vec<String>) {
    let mut tallies: BTreeMap<Tag, TagTally> = BTreeMap::new();
    // Each placed field with `true` when it came from the existing record.
    let mut placed: Vec<(Field, bool)> =
        Vec::with_capacity(existing.fields.len() + incoming.fields.len());
    for field in &incoming.fields {
        let (action, index) = rules.action_for(field);
        let tally = tallies.entry(field.tag()).or_default();
        tally.note_rule(rules.rule_label(index));
        match action {
            Action::KeepExisting => tally.incoming_dropped += 1,
            Action::TakeIncoming | Action::KeepBoth => {
                tally.incoming_taken += 1;
                placed.push((field.clone(), false));
            }
        }
    }
    for field in &existing.fields {
        let (action, index) = rules.action_for(field);
        let tally = tallies.entry(field.tag()).or_default();
        tally.note_rule(rules.rule_label(index));
        match action {
            Action::TakeIncoming => tally.existing_dropped += 1,
            Action::KeepExisting | Action::KeepBoth => {
                tally.existing_kept += 1;
                if action == Action::KeepBoth
                    && let Some(at) = placed
                        .iter()
                        .position(|(other, from_existing)| !from_existing && other == field)
                {
                    // The identical incoming copy stands for both, where the incoming record
                    // put it; it is marked as existing so a second copy is not absorbed too.
                    if let Some(slot) = placed.get_mut(at) {
                        slot.1 = true;
                    }
                    tally.incoming_taken = tally.incoming_taken.saturating_sub(1);
                    tally.incoming_duplicate += 1;
                    continue;
                }
                let tag = field.tag();
                let at = placed
                    .iter()
                    .rposition(|(other, _)| other.tag() <= tag)
                    .map_or(0, |last| last + 1);
                placed.insert(at, (field.clone(), true));
            }
        }
    }
    let fields = placed.into_iter().map(|(field, _)| field).collect();
    let mut leader = incoming.leader;
    leader.0[5] = existing.leader.0[5];
    let mut trace = vec![format!(
        "merge leader: from incoming, Leader/05 {:?} kept from existing",
        char::from(leader.0[5])
    )];
    // Tags that only went through the default rule share one line (a full record has dozens
    // of them, and every trace is stored with its result); every other tag gets its own.
    let (plain, special): (Vec<_>, Vec<_>) = tallies
        .iter()
        .partition(|(_, tally)| tally.is_plain_default());
    if !plain.is_empty() {
        let tags: Vec<String> = plain.iter().map(|(tag, _)| tag.to_string()).collect();
        let rule = plain
            .first()
            .and_then(|(_, tally)| tally.rules.first())
            .cloned()
            .unwrap_or_default();
        trace.push(format!(
            "merge {}: from the incoming record (by {rule})",
            tags.join(" ")
        ));
    }
    trace.extend(special.iter().map(|(tag, tally)| tally.line(**tag)));
    (Record { leader, fields }, trace)
}

#[cfg(test)]
mod tests;
