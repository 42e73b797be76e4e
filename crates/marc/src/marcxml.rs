//! MARCXML (MARC 21 slim) writing and reading.

use std::fmt;
use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};

use crate::record::{Field, Leader, Record, Subfield, Tag};

/// The MARC 21 slim namespace.
pub const NAMESPACE: &str = "http://www.loc.gov/MARC21/slim";

/// What starts a MARCXML collection document.
pub const COLLECTION_START: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<collection xmlns=\"http://www.loc.gov/MARC21/slim\">\n";

/// What ends a MARCXML collection document.
pub const COLLECTION_END: &str = "</collection>\n";

/// Why a record cannot be written as MARCXML.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlWriteError {
    /// A character that XML 1.0 does not allow anywhere (most C0 controls, including the
    /// MARC-8 escape 0x1B and the ISO 2709 delimiters).
    ForbiddenCharacter {
        /// The field's tag (`LDR` for the leader).
        tag: String,
        /// The subfield code, if the character is in a subfield.
        code: Option<char>,
        /// The character.
        character: char,
        /// Its position (in characters) inside the value.
        position: usize,
    },
    /// An indicator that is not a printable ASCII character.
    BadIndicator {
        /// The field's tag.
        tag: String,
        /// The byte.
        byte: u8,
    },
    /// A subfield code that is not a printable ASCII character (this includes text before
    /// the first subfield delimiter, which has no code).
    BadSubfieldCode {
        /// The field's tag.
        tag: String,
        /// The byte.
        byte: u8,
    },
}

impl fmt::Display for XmlWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlWriteError::ForbiddenCharacter {
                tag,
                code,
                character,
                position,
            } => {
                write!(f, "field {tag}")?;
                if let Some(code) = code {
                    write!(f, " ${code}")?;
                }
                write!(
                    f,
                    " holds the control character U+{:04X} at position {position}, which XML does not allow",
                    u32::from(*character)
                )
            }
            XmlWriteError::BadIndicator { tag, byte } => write!(
                f,
                "field {tag} has indicator byte 0x{byte:02X}, which cannot be written as MARCXML"
            ),
            XmlWriteError::BadSubfieldCode { tag, byte } if *byte == 0 => write!(
                f,
                "field {tag} has text before its first subfield delimiter, or an empty subfield"
            ),
            XmlWriteError::BadSubfieldCode { tag, byte } => write!(
                f,
                "field {tag} has subfield code byte 0x{byte:02X}, which cannot be written as MARCXML"
            ),
        }
    }
}

impl std::error::Error for XmlWriteError {}

/// True for characters in XML 1.0's `Char` production.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// True when a value may hold a character XML forbids: a C0 control other than tab, line
/// feed and carriage return, or the lead byte of U+FFFE/U+FFFF. A fast scan; the writer
/// gives the exact verdict.
fn suspicious(value: &str) -> bool {
    value.bytes().any(|b| XML_BYTE[usize::from(b)] == 2)
}

/// True when writing the record as MARCXML might fail (a suspicious character, indicator
/// or subfield code). False means [`write_record`] succeeds.
pub fn needs_xml_check(record: &Record) -> bool {
    record.leader.0.iter().any(|&b| !printable(b))
        || record.fields.iter().any(|field| match field {
            Field::Control { tag, value } => {
                !tag.0.iter().all(|&b| printable(b)) || suspicious(value)
            }
            Field::Data {
                tag,
                ind1,
                ind2,
                subfields,
            } => {
                !tag.0.iter().all(|&b| printable(b))
                    || !printable(*ind1)
                    || !printable(*ind2)
                    || subfields
                        .iter()
                        .any(|s| !printable(s.code) || suspicious(&s.value))
            }
        })
}

/// What each byte needs when written as XML text: 0 nothing, 1 an escape, 2 a closer look
/// (a forbidden control, or the lead byte of U+FFFE/U+FFFF).
const XML_BYTE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        if b != 0x09 && b != 0x0A && b != 0x0D {
            table[b] = 2;
        }
        b += 1;
    }
    table[b'&' as usize] = 1;
    table[b'<' as usize] = 1;
    table[b'>' as usize] = 1;
    table[b'"' as usize] = 1;
    table[0xEF] = 2;
    table
};

fn escape_into(
    out: &mut String,
    value: &str,
    attribute: bool,
    tag: Tag,
    code: Option<u8>,
) -> Result<(), XmlWriteError> {
    let bytes = value.as_bytes();
    let mut plain_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if XML_BYTE[usize::from(b)] == 0 {
            i += 1;
            continue;
        }
        let replacement = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' if attribute => "&quot;",
            b'"' => {
                i += 1;
                continue;
            }
            // U+FFFE and U+FFFF (EF BF BE/BF) are the only non-characters below U+10000
            // that UTF-8 can hold and XML forbids; surrogates cannot occur in a `str`.
            0xEF => {
                if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
                {
                    let character = value[i..].chars().next().unwrap_or('\u{FFFD}');
                    return Err(XmlWriteError::ForbiddenCharacter {
                        tag: tag.as_str(),
                        code: code.map(char::from),
                        character,
                        position: value[..i].chars().count(),
                    });
                }
                i += 1;
                continue;
            }
            _ => {
                return Err(XmlWriteError::ForbiddenCharacter {
                    tag: tag.as_str(),
                    code: code.map(char::from),
                    character: char::from(b),
                    position: value[..i].chars().count(),
                });
            }
        };
        out.push_str(&value[plain_from..i]);
        out.push_str(replacement);
        i += 1;
        plain_from = i;
    }
    out.push_str(&value[plain_from..]);
    Ok(())
}

fn push_tag(out: &mut String, tag: Tag) -> Result<(), XmlWriteError> {
    for byte in tag.0 {
        if !printable(byte) {
            return Err(XmlWriteError::ForbiddenCharacter {
                tag: tag.as_str(),
                code: None,
                character: char::from(byte),
                position: 0,
            });
        }
        push_attribute_byte(out, byte);
    }
    Ok(())
}

fn push_attribute_byte(out: &mut String, byte: u8) {
    match byte {
        b'&' => out.push_str("&amp;"),
        b'<' => out.push_str("&lt;"),
        b'"' => out.push_str("&quot;"),
        _ => out.push(char::from(byte)),
    }
}

fn printable(byte: u8) -> bool {
    (0x20..0x7F).contains(&byte)
}

/// Appends one `<record>` element. With `namespace` the element carries the MARC 21 slim
/// namespace itself (for a record on its own); inside a collection it is inherited.
pub fn write_record(
    record: &Record,
    out: &mut String,
    namespace: bool,
) -> Result<(), XmlWriteError> {
    let rollback = out.len();
    let result = write_record_inner(record, out, namespace);
    if result.is_err() {
        out.truncate(rollback);
    }
    result
}

fn write_record_inner(
    record: &Record,
    out: &mut String,
    namespace: bool,
) -> Result<(), XmlWriteError> {
    out.push_str(if namespace {
        "<record xmlns=\"http://www.loc.gov/MARC21/slim\">\n  <leader>"
    } else {
        "<record>\n  <leader>"
    });
    match std::str::from_utf8(&record.leader.0) {
        Ok(leader) => escape_into(out, leader, false, Tag(*b"LDR"), None)?,
        Err(_) => escape_into(
            out,
            &String::from_utf8_lossy(&record.leader.0),
            false,
            Tag(*b"LDR"),
            None,
        )?,
    }
    out.push_str("</leader>\n");
    for field in &record.fields {
        match field {
            Field::Control { tag, value } => {
                out.push_str("  <controlfield tag=\"");
                push_tag(out, *tag)?;
                out.push_str("\">");
                escape_into(out, value, false, *tag, None)?;
                out.push_str("</controlfield>\n");
            }
            Field::Data {
                tag,
                ind1,
                ind2,
                subfields,
            } => {
                for ind in [*ind1, *ind2] {
                    if !printable(ind) {
                        return Err(XmlWriteError::BadIndicator {
                            tag: tag.as_str(),
                            byte: ind,
                        });
                    }
                }
                out.push_str("  <datafield tag=\"");
                push_tag(out, *tag)?;
                out.push_str("\" ind1=\"");
                push_attribute_byte(out, *ind1);
                out.push_str("\" ind2=\"");
                push_attribute_byte(out, *ind2);
                out.push_str("\">\n");
                for Subfield { code, value } in subfields {
                    if !printable(*code) {
                        return Err(XmlWriteError::BadSubfieldCode {
                            tag: tag.as_str(),
                            byte: *code,
                        });
                    }
                    out.push_str("    <subfield code=\"");
                    push_attribute_byte(out, *code);
                    out.push_str("\">");
                    escape_into(out, value, false, *tag, Some(*code))?;
                    out.push_str("</subfield>\n");
                }
                out.push_str("  </datafield>\n");
            }
        }
    }
    out.push_str("</record>\n");
    Ok(())
}

/// A record or document that could not be read from MARCXML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlReadError {
    /// Position of the record in the document, counting from 1 (0: before any record).
    pub index: usize,
    /// Byte offset in the document where the problem was noticed.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
    /// True when the document itself is not well-formed; reading stops after this error.
    pub fatal: bool,
}

impl fmt::Display for XmlReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == 0 {
            write!(f, "at byte {}: {}", self.offset, self.message)
        } else {
            write!(
                f,
                "record {} (byte {}): {}",
                self.index, self.offset, self.message
            )
        }
    }
}

impl std::error::Error for XmlReadError {}

/// Streams `<record>` elements out of a MARCXML document (a `<collection>` or a lone
/// `<record>`, with or without a namespace prefix).
pub struct XmlReader<R: BufRead> {
    reader: quick_xml::Reader<R>,
    buf: Vec<u8>,
    index: usize,
    done: bool,
}

#[derive(Default)]
struct Building {
    leader: Option<String>,
    fields: Vec<Field>,
    error: Option<String>,
    /// The element whose text is being collected.
    text_target: Option<TextTarget>,
    text: String,
    /// The open data field.
    data: Option<(Tag, u8, u8, Vec<Subfield>)>,
}

enum TextTarget {
    Leader,
    Control(Tag),
    Subfield(u8),
}

fn attribute(start: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .map(|a| {
            a.unescape_value()
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned())
        })
}

/// A tag attribute: three characters, or one or two digits that lost their leading zeros
/// (`tag="42"` is 042, as ruby-marc reads it).
fn xml_tag(value: &str) -> Option<Tag> {
    match value.len() {
        1 | 2 if value.bytes().all(|b| b.is_ascii_digit()) => Tag::new(&format!("{value:0>3}")),
        _ => Tag::new(value),
    }
}

fn one_byte(value: Option<String>, what: &str, default: u8) -> Result<u8, String> {
    match value {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(b' '),
        Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
        Some(v) => Err(format!("{what} {v:?} is not one ASCII character")),
    }
}

impl<R: BufRead> XmlReader<R> {
    /// A reader over a MARCXML document.
    pub fn new(source: R) -> XmlReader<R> {
        let mut reader = quick_xml::Reader::from_reader(source);
        reader.config_mut().trim_text(false);
        XmlReader {
            reader,
            buf: Vec::with_capacity(4096),
            index: 0,
            done: false,
        }
    }

    /// Byte offset reached in the document.
    pub fn position(&self) -> u64 {
        self.reader.buffer_position()
    }

    /// How many `<record>` elements have been started so far.
    pub fn records_seen(&self) -> usize {
        self.index
    }

    /// The next record, an error for a record that is not valid MARCXML (reading goes on),
    /// a fatal error for a document that is not well-formed XML, or `None` at the end.
    pub fn next_record(&mut self) -> Option<Result<Record, XmlReadError>> {
        if self.done {
            return None;
        }
        let mut building: Option<Building> = None;
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event.into_owned(),
                Err(e) => {
                    self.done = true;
                    return Some(Err(XmlReadError {
                        index: if building.is_some() { self.index } else { 0 },
                        offset: self.position(),
                        message: format!("the document is not well-formed XML: {e}"),
                        fatal: true,
                    }));
                }
            };
            let empty = matches!(event, Event::Empty(_));
            match event {
                Event::Eof => {
                    self.done = true;
                    if building.is_some() {
                        return Some(Err(XmlReadError {
                            index: self.index,
                            offset: self.position(),
                            message: "the document ends inside a record".into(),
                            fatal: true,
                        }));
                    }
                    return None;
                }
                Event::Start(start) | Event::Empty(start)
                    if start.local_name().as_ref() == b"record" =>
                {
                    if building.is_some() {
                        continue;
                    }
                    self.index += 1;
                    if empty {
                        return Some(self.finish(Building::default()));
                    }
                    building = Some(Building::default());
                }
                Event::Start(start) | Event::Empty(start) => {
                    let Some(b) = building.as_mut() else { continue };
                    let name = start.local_name().as_ref().to_vec();
                    Self::open(b, &start, &name);
                    if empty {
                        // An empty element closes at once.
                        Self::close(b, &name);
                    }
                }
                Event::End(end) => {
                    let name = end.local_name().as_ref().to_vec();
                    if name == b"record" {
                        if let Some(b) = building.take() {
                            return Some(self.finish(b));
                        }
                        continue;
                    }
                    if let Some(b) = building.as_mut() {
                        Self::close(b, &name);
                    }
                }
                Event::Text(text) => {
                    if let Some(b) = building.as_mut().filter(|b| b.text_target.is_some()) {
                        match text.decode() {
                            Ok(t) => b.text.push_str(&t),
                            Err(e) => {
                                b.error
                                    .get_or_insert_with(|| format!("text is not valid UTF-8: {e}"));
                            }
                        }
                    }
                }
                Event::CData(data) => {
                    if let Some(b) = building.as_mut().filter(|b| b.text_target.is_some()) {
                        b.text.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Event::GeneralRef(reference) => {
                    if let Some(b) = building.as_mut().filter(|b| b.text_target.is_some()) {
                        match reference.resolve_char_ref() {
                            Ok(Some(c)) => b.text.push(c),
                            _ => {
                                let name = String::from_utf8_lossy(&reference).into_owned();
                                match quick_xml::escape::resolve_predefined_entity(&name) {
                                    Some(s) => b.text.push_str(s),
                                    None => {
                                        b.error.get_or_insert_with(|| {
                                            format!("unknown entity &{name};")
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn open(b: &mut Building, start: &BytesStart<'_>, name: &[u8]) {
        match name {
            b"leader" => {
                b.text_target = Some(TextTarget::Leader);
                b.text.clear();
            }
            b"controlfield" => match attribute(start, b"tag").and_then(|t| xml_tag(&t)) {
                Some(tag) => {
                    b.text_target = Some(TextTarget::Control(tag));
                    b.text.clear();
                }
                None => {
                    b.error.get_or_insert_with(|| {
                        "a controlfield has no three-character tag attribute".into()
                    });
                }
            },
            b"datafield" => {
                let tag = attribute(start, b"tag").and_then(|t| xml_tag(&t));
                let ind1 = one_byte(attribute(start, b"ind1"), "ind1", b' ');
                let ind2 = one_byte(attribute(start, b"ind2"), "ind2", b' ');
                match (tag, ind1, ind2) {
                    (Some(tag), Ok(ind1), Ok(ind2)) => b.data = Some((tag, ind1, ind2, Vec::new())),
                    (None, _, _) => {
                        b.error.get_or_insert_with(|| {
                            "a datafield has no three-character tag attribute".into()
                        });
                    }
                    (_, Err(e), _) | (_, _, Err(e)) => {
                        b.error.get_or_insert(e);
                    }
                }
            }
            b"subfield" => match one_byte(attribute(start, b"code"), "subfield code", 0) {
                Ok(0) => {
                    b.error
                        .get_or_insert_with(|| "a subfield has no code attribute".into());
                }
                Ok(code) => {
                    b.text_target = Some(TextTarget::Subfield(code));
                    b.text.clear();
                }
                Err(e) => {
                    b.error.get_or_insert(e);
                }
            },
            // Anything else inside a record (OAI-PMH headers, Koha's identifier and
            // datestamp) is not MARC and is passed over.
            _ => {}
        }
    }

    fn close(b: &mut Building, name: &[u8]) {
        match name {
            b"leader" => {
                if matches!(b.text_target, Some(TextTarget::Leader)) {
                    b.leader = Some(std::mem::take(&mut b.text));
                    b.text_target = None;
                }
            }
            b"controlfield" => {
                if let Some(TextTarget::Control(tag)) = b.text_target.take() {
                    b.fields.push(Field::Control {
                        tag,
                        value: std::mem::take(&mut b.text),
                    });
                }
            }
            b"subfield" => {
                if let Some(TextTarget::Subfield(code)) = b.text_target.take() {
                    let value = std::mem::take(&mut b.text);
                    if let Some((_, _, _, subfields)) = b.data.as_mut() {
                        subfields.push(Subfield { code, value });
                    }
                }
            }
            b"datafield" => {
                if let Some((tag, ind1, ind2, subfields)) = b.data.take() {
                    b.fields.push(Field::Data {
                        tag,
                        ind1,
                        ind2,
                        subfields,
                    });
                }
            }
            _ => {}
        }
    }

    fn finish(&self, b: Building) -> Result<Record, XmlReadError> {
        let error = |message: String| XmlReadError {
            index: self.index,
            offset: self.position(),
            message,
            fatal: false,
        };
        if let Some(message) = b.error {
            return Err(error(message));
        }
        let leader = match b.leader {
            Some(text) if text.len() == 24 && text.is_ascii() => {
                let mut bytes = [0u8; 24];
                bytes.copy_from_slice(text.as_bytes());
                Leader(bytes)
            }
            Some(text) => {
                return Err(error(format!(
                    "leader {text:?} has {} characters; a leader has 24",
                    text.chars().count()
                )));
            }
            None => return Err(error("the record has no leader".into())),
        };
        Ok(Record {
            leader,
            fields: b.fields,
        })
    }
}
