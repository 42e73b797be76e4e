//! A lazy, zero-copy view over one ISO 2709 record.
//!
//! Nothing is decoded up front: [`Marc::new`] checks the leader and the base address, and each
//! call walks the directory and slices only the fields it returns. Text is read as UTF-8 (the
//! host always sends UTF-8 records); a value that is not valid UTF-8 reads as empty.

use crate::pattern::TagPattern;

const FIELD_TERMINATOR: u8 = 0x1E;
const SUBFIELD_DELIMITER: u8 = 0x1F;

/// Why bytes are not an ISO 2709 record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarcError {
    /// Fewer than 24 bytes.
    ShortLeader,
    /// Leader/12-16 is not a number inside the record.
    BadBaseAddress,
}

impl core::fmt::Display for MarcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MarcError::ShortLeader => f.write_str("the record is shorter than its 24-byte leader"),
            MarcError::BadBaseAddress => f.write_str("the record's base address is not valid"),
        }
    }
}

/// A record: the leader and a directory walked on demand.
#[derive(Clone, Copy, Debug)]
pub struct Marc<'a> {
    bytes: &'a [u8],
    base: usize,
}

/// One field of a [`Marc`] record.
#[derive(Clone, Copy, Debug)]
pub struct FieldView<'a> {
    tag: &'a str,
    data: &'a [u8],
}

impl<'a> Marc<'a> {
    /// A view over `bytes`; fails only when there is no leader or no valid base address.
    pub fn new(bytes: &'a [u8]) -> Result<Marc<'a>, MarcError> {
        let leader = bytes.get(..24).ok_or(MarcError::ShortLeader)?;
        let base = leader
            .get(12..17)
            .and_then(|digits| core::str::from_utf8(digits).ok())
            .and_then(|digits| digits.trim().parse::<usize>().ok())
            .filter(|base| *base >= 24 && *base <= bytes.len())
            .ok_or(MarcError::BadBaseAddress)?;
        Ok(Marc { bytes, base })
    }

    /// The 24 leader bytes.
    pub fn leader(&self) -> &'a [u8] {
        self.bytes.get(..24).unwrap_or_default()
    }

    /// Leader/17, the encoding level (`b' '` = full, `b'M'`, `b'7'`, ...).
    pub fn encoding_level(&self) -> u8 {
        self.leader().get(17).copied().unwrap_or(b' ')
    }

    /// Every field, in directory order.
    pub fn all_fields(&self) -> impl Iterator<Item = FieldView<'a>> + 'a {
        let bytes = self.bytes;
        let base = self.base;
        let directory = bytes.get(24..base).unwrap_or_default();
        directory
            .chunks_exact(12)
            .take_while(|entry| entry.first() != Some(&FIELD_TERMINATOR))
            .filter_map(move |entry| {
                let tag = core::str::from_utf8(entry.get(..3)?).ok()?;
                let len = core::str::from_utf8(entry.get(3..7)?)
                    .ok()?
                    .parse::<usize>()
                    .ok()?;
                let start = core::str::from_utf8(entry.get(7..12)?)
                    .ok()?
                    .parse::<usize>()
                    .ok()?;
                let from = base.checked_add(start)?;
                let data = bytes.get(from..from.checked_add(len)?)?;
                let data = data.strip_suffix(&[FIELD_TERMINATOR]).unwrap_or(data);
                Some(FieldView { tag, data })
            })
    }

    /// The fields whose tag matches `pattern` (`"245"`, `"9XX"`, `"*"`); an invalid pattern
    /// matches nothing.
    pub fn fields(&self, pattern: &str) -> impl Iterator<Item = FieldView<'a>> + 'a {
        let pattern = TagPattern::new(pattern);
        self.all_fields()
            .filter(move |field| pattern.as_ref().is_some_and(|p| p.matches(field.tag)))
    }

    /// The value of the first control field with this tag (`"005"`, `"001"`).
    pub fn control(&self, tag: &str) -> Option<&'a str> {
        self.all_fields()
            .find(|field| field.tag == tag)
            .map(|field| field.text())
    }

    /// True when some field matches `pattern`.
    pub fn has(&self, pattern: &str) -> bool {
        self.fields(pattern).next().is_some()
    }
}

impl<'a> FieldView<'a> {
    /// The tag.
    pub fn tag(&self) -> &'a str {
        self.tag
    }

    /// True for 001-009.
    pub fn is_control(&self) -> bool {
        self.tag.starts_with("00")
    }

    /// A control field's value (empty for invalid UTF-8).
    pub fn text(&self) -> &'a str {
        core::str::from_utf8(self.data).unwrap_or_default()
    }

    /// A data field's two indicators.
    pub fn indicators(&self) -> Option<(u8, u8)> {
        if self.is_control() {
            return None;
        }
        Some((*self.data.first()?, *self.data.get(1)?))
    }

    /// A data field's subfields as `(code, value)`, in order.
    pub fn subfields(&self) -> impl Iterator<Item = (u8, &'a str)> + 'a {
        let body = if self.is_control() {
            &[][..]
        } else {
            self.data.get(2..).unwrap_or_default()
        };
        body.split(|b| *b == SUBFIELD_DELIMITER)
            .skip(1)
            .filter_map(|chunk| {
                let (code, value) = chunk.split_first()?;
                Some((*code, core::str::from_utf8(value).unwrap_or_default()))
            })
    }

    /// The first value of subfield `code`.
    pub fn subfield(&self, code: u8) -> Option<&'a str> {
        self.subfields().find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    /// Every value of subfield `code`.
    pub fn subfield_values(&self, code: u8) -> impl Iterator<Item = &'a str> + 'a {
        self.subfields()
            .filter(move |(c, _)| *c == code)
            .map(|(_, v)| v)
    }
}

/// Builds ISO 2709 bytes, for native tests and fixtures.
#[derive(Clone, Debug)]
pub struct RecordBuilder {
    leader: [u8; 24],
    fields: Vec<(String, Vec<u8>)>,
}

impl Default for RecordBuilder {
    fn default() -> Self {
        RecordBuilder::new()
    }
}

impl RecordBuilder {
    /// An empty record with a UTF-8 book leader (Leader/17 blank: full level).
    pub fn new() -> RecordBuilder {
        let mut leader = [b' '; 24];
        leader[..].copy_from_slice(b"00000nam a2200000 i 4500");
        leader[17] = b' ';
        RecordBuilder {
            leader,
            fields: Vec::new(),
        }
    }

    /// Sets Leader/17.
    pub fn encoding_level(mut self, level: u8) -> RecordBuilder {
        self.leader[17] = level;
        self
    }

    /// Adds a control field.
    pub fn control(mut self, tag: &str, value: &str) -> RecordBuilder {
        self.fields
            .push((tag.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Adds a data field with blank indicators.
    pub fn data(mut self, tag: &str, subfields: &[(u8, &str)]) -> RecordBuilder {
        let mut body = vec![b' ', b' '];
        for (code, value) in subfields {
            body.push(SUBFIELD_DELIMITER);
            body.push(*code);
            body.extend_from_slice(value.as_bytes());
        }
        self.fields.push((tag.to_string(), body));
        self
    }

    /// The ISO 2709 bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut directory = Vec::new();
        let mut data = Vec::new();
        for (tag, body) in &self.fields {
            let start = data.len();
            data.extend_from_slice(body);
            data.push(FIELD_TERMINATOR);
            let tag3: String = format!("{tag:0>3}").chars().take(3).collect();
            directory.extend_from_slice(
                format!("{tag3}{:04}{:05}", data.len() - start, start).as_bytes(),
            );
        }
        directory.push(FIELD_TERMINATOR);
        let base = 24 + directory.len();
        let total = base + data.len() + 1;
        let mut leader = self.leader;
        leader[..5].copy_from_slice(format!("{:05}", total % 100_000).as_bytes());
        leader[12..17].copy_from_slice(format!("{:05}", base % 100_000).as_bytes());
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&leader);
        out.extend_from_slice(&directory);
        out.extend_from_slice(&data);
        out.push(0x1D);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_builder_writes() {
        let bytes = RecordBuilder::new()
            .encoding_level(b'M')
            .control("005", "20240101120000.0")
            .data("245", &[(b'a', "Title"), (b'c', "Someone")])
            .data("590", &[(b'a', "Local note")])
            .data("945", &[(b'a', "item"), (b'5', "ALPHA")])
            .build();
        let marc = Marc::new(&bytes).unwrap();
        assert_eq!(marc.encoding_level(), b'M');
        assert_eq!(marc.control("005"), Some("20240101120000.0"));
        assert_eq!(marc.fields("9XX").count(), 1);
        assert_eq!(marc.fields("*").count(), 4);
        let title = marc.fields("245").next().unwrap();
        assert_eq!(title.subfield(b'c'), Some("Someone"));
        assert_eq!(title.indicators(), Some((b' ', b' ')));
        assert!(marc.has("59X"));
        assert!(!marc.has("6XX"));
    }

    #[test]
    fn damaged_bytes_never_panic() {
        assert_eq!(Marc::new(b"short").unwrap_err(), MarcError::ShortLeader);
        let mut bytes = RecordBuilder::new().data("245", &[(b'a', "T")]).build();
        bytes.truncate(30);
        assert!(Marc::new(&bytes).is_err() || Marc::new(&bytes).unwrap().fields("*").count() == 0);
        let mut lying = RecordBuilder::new().data("245", &[(b'a', "T")]).build();
        lying[24 + 3..24 + 7].copy_from_slice(b"9999");
        assert_eq!(Marc::new(&lying).unwrap().fields("*").count(), 0);
    }
}
