//! The decoded record model: a leader and an ordered list of fields whose text is UTF-8.

use std::fmt;

/// The 24-byte record leader.
///
/// Positions 00-04 (record length) and 12-16 (base address) are recomputed by the writers;
/// the other positions are kept as read.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Leader(pub [u8; 24]);

impl Leader {
    /// The leader of a new, empty UTF-8 bibliographic record.
    pub const DEFAULT: Leader = Leader(*b"00000nam a2200000 i 4500");

    /// Leader/05, the record status (`n` new, `c` corrected, `d` deleted, ...).
    pub fn status(&self) -> u8 {
        self.0[5]
    }

    /// Leader/06, the type of record (`a` language material, `z` authority, ...).
    pub fn record_type(&self) -> u8 {
        self.0[6]
    }

    /// Leader/07, the bibliographic level (`m` monograph, `s` serial, ...).
    pub fn bibliographic_level(&self) -> u8 {
        self.0[7]
    }

    /// Leader/09, the character coding scheme: blank for MARC-8, `a` for UCS/Unicode.
    pub fn coding_scheme(&self) -> u8 {
        self.0[9]
    }

    /// Leader/17, the encoding level.
    pub fn encoding_level(&self) -> u8 {
        self.0[17]
    }

    /// The leader as text; bytes outside ASCII are shown as `?`.
    pub fn as_text(&self) -> String {
        self.0
            .iter()
            .map(|&b| {
                if b.is_ascii() && !b.is_ascii_control() {
                    b as char
                } else {
                    '?'
                }
            })
            .collect()
    }
}

impl fmt::Debug for Leader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Leader({:?})", self.as_text())
    }
}

/// A three-character field tag. Tags are usually digits but real files carry letters too.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub [u8; 3]);

impl Tag {
    /// Builds a tag from a three-byte string such as `"245"`; `None` for any other length.
    pub fn new(tag: &str) -> Option<Tag> {
        let bytes = tag.as_bytes();
        (bytes.len() == 3).then(|| Tag([bytes[0], bytes[1], bytes[2]]))
    }

    /// Control fields are the tags `001` to `009` (and `00X` with a letter).
    pub fn is_control(&self) -> bool {
        self.0[0] == b'0' && self.0[1] == b'0'
    }

    /// The tag as text; bytes outside printable ASCII are shown as `?`.
    pub fn as_str(&self) -> String {
        self.0
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect()
    }

    /// True when the tag equals `other` ("245").
    pub fn is(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

/// One subfield of a data field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subfield {
    /// The subfield code, normally a lowercase letter or a digit.
    pub code: u8,
    /// The value as UTF-8 text.
    pub value: String,
}

/// A field: control fields carry text, data fields carry indicators and subfields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// A control field (`001`-`009`).
    Control {
        /// The tag.
        tag: Tag,
        /// The value as UTF-8 text.
        value: String,
    },
    /// A data field.
    Data {
        /// The tag.
        tag: Tag,
        /// First indicator.
        ind1: u8,
        /// Second indicator.
        ind2: u8,
        /// The subfields in order.
        subfields: Vec<Subfield>,
    },
}

impl Field {
    /// The field's tag.
    pub fn tag(&self) -> Tag {
        match self {
            Field::Control { tag, .. } | Field::Data { tag, .. } => *tag,
        }
    }

    /// The subfields of a data field; empty for a control field.
    pub fn subfields(&self) -> &[Subfield] {
        match self {
            Field::Control { .. } => &[],
            Field::Data { subfields, .. } => subfields,
        }
    }

    /// The values of every subfield with the given code, in order.
    pub fn subfield_values(&self, code: u8) -> impl Iterator<Item = &str> {
        self.subfields()
            .iter()
            .filter(move |subfield| subfield.code == code)
            .map(|subfield| subfield.value.as_str())
    }

    /// The control field's value; `None` for a data field.
    pub fn control_value(&self) -> Option<&str> {
        match self {
            Field::Control { value, .. } => Some(value),
            Field::Data { .. } => None,
        }
    }

    /// The indicators of a data field; `None` for a control field.
    pub fn indicators(&self) -> Option<(u8, u8)> {
        match self {
            Field::Control { .. } => None,
            Field::Data { ind1, ind2, .. } => Some((*ind1, *ind2)),
        }
    }
}

/// A decoded MARC 21 record: every text value is UTF-8, whatever encoding it arrived in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The leader as read (writers recompute lengths and addresses).
    pub leader: Leader,
    /// The fields in the order they were read.
    pub fields: Vec<Field>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            leader: Leader::DEFAULT,
            fields: Vec::new(),
        }
    }
}

impl Record {
    /// Every field with the given tag ("035"), in order.
    pub fn fields_with_tag<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields.iter().filter(move |field| field.tag().is(tag))
    }

    /// The value of the first control field with the given tag.
    pub fn control_value(&self, tag: &str) -> Option<&str> {
        self.fields
            .iter()
            .filter(|field| field.tag().is(tag))
            .find_map(Field::control_value)
    }

    /// Appends a control field.
    pub fn push_control(&mut self, tag: &str, value: impl Into<String>) -> &mut Self {
        if let Some(tag) = Tag::new(tag) {
            self.fields.push(Field::Control {
                tag,
                value: value.into(),
            });
        }
        self
    }

    /// Appends a data field; `subfields` pairs a code with a value.
    pub fn push_data(
        &mut self,
        tag: &str,
        ind1: u8,
        ind2: u8,
        subfields: &[(u8, &str)],
    ) -> &mut Self {
        if let Some(tag) = Tag::new(tag) {
            self.fields.push(Field::Data {
                tag,
                ind1,
                ind2,
                subfields: subfields
                    .iter()
                    .map(|(code, value)| Subfield {
                        code: *code,
                        value: (*value).to_owned(),
                    })
                    .collect(),
            });
        }
        self
    }
}
