//! The search terms of a record: what `record find --isbn` and `--title` look up.
//!
//! Both adapters keep, for every current record, its terms (`isbn:<13 digits>` for each
//! ISBN in 020 $a/$z, `title:<word>` for the words of 245 $a/$b) in the same write as the
//! record, derived here from its stored MARC, so the two never disagree and no import path
//! computes them. A withdrawn record (Leader/05 `d`) has none.

use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_marc::{Field, Record};

/// At most this many title words of one record are indexed (the first ones).
pub const MAX_TITLE_WORDS: usize = 12;
/// At most this many ISBNs of one record are indexed.
pub const MAX_ISBNS: usize = 8;

/// Words too common to find anything by (articles, prepositions, conjunctions).
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "at", "by", "de", "der", "die", "das", "el", "en", "et", "for", "from", "in",
    "la", "le", "les", "of", "on", "or", "the", "to", "und", "with",
];

/// The term of an ISBN (`isbn:` and 13 digits) from text as catalogued or typed
/// (`0-306-40615-2`, `9780306406157 (pbk.)`); `None` when it holds no ISBN.
pub fn isbn_term(text: &str) -> Option<String> {
    let token: String = text
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | 'x' | 'X' | ' '))
        .filter(|c| !matches!(c, '-' | ' '))
        .collect();
    let digits = match token.len() {
        13 if token.bytes().all(|b| b.is_ascii_digit()) => token,
        10 if token[..9].bytes().all(|b| b.is_ascii_digit()) => {
            let stem = format!("978{}", &token[..9]);
            let sum: u32 = stem
                .bytes()
                .enumerate()
                .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
                .sum();
            format!("{stem}{}", (10 - sum % 10) % 10)
        }
        _ => return None,
    };
    Some(format!("isbn:{digits}"))
}

/// The title terms of text (`title:<word>`): lowercase letters and digits, words of two or
/// more characters, stop words left out, each once, in order.
pub fn title_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() < 2 || STOP_WORDS.contains(&word.as_str()) {
            continue;
        }
        let term = format!("title:{word}");
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

/// The terms of a record stored as ISO 2709 (UTF-8): its ISBNs, then its title words;
/// none for a withdrawn or unreadable record.
pub fn record_terms(marc: &[u8]) -> Vec<String> {
    let Ok(parsed) = bibgate_marc::parse(marc, Mode::Lenient, Charset::Utf8) else {
        return Vec::new();
    };
    terms_of(&parsed.decoded.record)
}

fn terms_of(record: &Record) -> Vec<String> {
    if record.leader.status() == b'd' {
        return Vec::new();
    }
    let mut terms: Vec<String> = Vec::new();
    let mut n_isbns = 0;
    for field in record.fields_with_tag("020") {
        for value in field
            .subfield_values(b'a')
            .chain(field.subfield_values(b'z'))
        {
            if let Some(term) = isbn_term(value)
                && !terms.contains(&term)
                && n_isbns < MAX_ISBNS
            {
                terms.push(term);
                n_isbns += 1;
            }
        }
    }
    let title: Vec<&str> = record
        .fields_with_tag("245")
        .take(1)
        .flat_map(|field| match field {
            Field::Data { subfields, .. } => subfields
                .iter()
                .filter(|s| matches!(s.code, b'a' | b'b'))
                .map(|s| s.value.as_str())
                .collect::<Vec<_>>(),
            Field::Control { .. } => Vec::new(),
        })
        .collect();
    terms.extend(
        title_terms(&title.join(" "))
            .into_iter()
            .take(MAX_TITLE_WORDS),
    );
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isbns_as_catalogued() {
        let want = Some("isbn:9780306406157".to_owned());
        assert_eq!(isbn_term("9780306406157"), want);
        assert_eq!(isbn_term("978-0-306-40615-7 (pbk.)"), want);
        assert_eq!(isbn_term("0306406152"), want);
        assert_eq!(isbn_term("0-306-40615-2 : $12.00"), want);
        assert_eq!(
            isbn_term("080442957X"),
            Some("isbn:9780804429573".to_owned())
        );
        assert_eq!(isbn_term("(pbk.)"), None);
        assert_eq!(isbn_term("12345"), None);
    }

    #[test]
    fn title_words() {
        assert_eq!(
            title_terms("The History of the Book : a Study, 2nd ed. / Ünïcode"),
            [
                "title:history",
                "title:book",
                "title:study",
                "title:2nd",
                "title:ed",
                "title:ünïcode"
            ]
        );
    }

    #[test]
    fn a_record_s_terms() {
        let mut record = Record::default();
        record.push_data("020", b' ', b' ', &[(b'a', "0306406152"), (b'z', "junk")]);
        record.push_data("020", b' ', b' ', &[(b'a', "978-0-306-40615-7")]);
        record.push_data(
            "245",
            b'1',
            b'0',
            &[(b'a', "Alpha beta :"), (b'b', "gamma."), (b'c', "by Zed")],
        );
        let mut marc = Vec::new();
        bibgate_marc::iso2709::write_record(&record, &mut marc).unwrap();
        assert_eq!(
            record_terms(&marc),
            [
                "isbn:9780306406157",
                "title:alpha",
                "title:beta",
                "title:gamma"
            ]
        );
        record.leader.0[5] = b'd';
        let mut marc = Vec::new();
        bibgate_marc::iso2709::write_record(&record, &mut marc).unwrap();
        assert_eq!(record_terms(&marc), Vec::<String>::new());
        assert_eq!(record_terms(b"not marc"), Vec::<String>::new());
    }
}
