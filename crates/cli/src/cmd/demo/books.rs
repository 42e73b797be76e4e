//! The demo's records: WorldCat-like books built in code, written as ISO 2709 in MARC-8 or
//! UTF-8.

use super::*;

/// How a record is written for export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Charset {
    /// MARC-8 (Leader/09 blank), the Connexion client's default.
    Marc8,
    /// UTF-8 (Leader/09 `a`).
    Utf8,
}

/// A data field of a [`Book`].
pub(super) struct DataField {
    pub(super) tag: &'static str,
    pub(super) indicators: [u8; 2],
    pub(super) subfields: Vec<(u8, String)>,
}

impl DataField {
    /// Its length in ISO 2709 in UTF-8: indicators, subfields, terminator.
    pub(super) fn utf8_len(&self) -> usize {
        2 + self
            .subfields
            .iter()
            .map(|(_, value)| 2 + value.len())
            .sum::<usize>()
            + 1
    }

    /// Its length in ISO 2709 in MARC-8.
    pub(super) fn marc8_len(&self) -> anyhow::Result<usize> {
        let mut bytes = Vec::new();
        for (_, value) in &self.subfields {
            encode_marc8(value, &mut bytes)?;
        }
        Ok(2 + 2 * self.subfields.len() + bytes.len() + 1)
    }
}

/// A data field written as `TAG II$a…$b…`: the tag, a space, the two indicators, then the
/// subfields as MARC breaker writes them (`245 14$aLes misérables /$cVictor Hugo.`; no demo
/// value holds a `$`).
pub(super) fn field(spec: &'static str) -> DataField {
    let (head, subfields) = spec.split_at(spec.find('$').unwrap_or(spec.len()));
    data_field(
        head.get(..3).unwrap_or_default(),
        head.get(4..).unwrap_or_default(),
        subfields,
    )
}

/// A data field from its tag, its indicators and its subfields (as in [`field`]).
pub(super) fn data_field(tag: &'static str, indicators: &str, subfields: &str) -> DataField {
    let mut both = [b' '; 2];
    for (slot, byte) in both.iter_mut().zip(indicators.bytes()) {
        *slot = byte;
    }
    DataField {
        tag,
        indicators: both,
        subfields: subfields
            .split('$')
            .filter_map(|subfield| {
                let mut chars = subfield.chars();
                let code = chars.next().filter(char::is_ascii)?;
                Some((code as u8, chars.as_str().to_string()))
            })
            .collect(),
    }
}

/// A WorldCat bibliographic record as the Connexion client exports it.
pub(super) struct Book {
    /// The OCLC number (001, 035 `$a`).
    pub(super) oclc: u64,
    /// 019 `$a`: the numbers of records OCLC merged into this one.
    pub(super) merged: Vec<u64>,
    /// Leader/17: `I` full level, `K` minimal level (both input by OCLC members).
    pub(super) level: u8,
    /// 005, the date and time of the latest transaction.
    pub(super) version: &'static str,
    /// 008.
    pub(super) fixed: String,
    /// The data fields other than 019 and 035.
    pub(super) fields: Vec<DataField>,
}

/// 008 for a book: date entered, type of date and dates (`s1862    `), place (2 or 3
/// letters), literary form (`0` not fiction, `1` fiction, `d` drama), language.
pub(super) fn fixed(
    entered: &str,
    dates: &str,
    place: &str,
    literary_form: char,
    language: &str,
) -> String {
    // 18-28 (illustrations, audience, form of item, nature of contents, government
    // publication) blank; 29-31 not a conference, not a festschrift, no index.
    format!(
        "{entered}{dates}{place:<3}{:11}000 {literary_form} {language} d",
        ""
    )
}

/// 001 as OCLC writes it: `ocm` and 8 digits (and a space), `ocn` and 9, `on` and 10 or more.
pub(super) fn control_number(oclc: u64) -> String {
    if oclc < 100_000_000 {
        format!("ocm{oclc:08} ")
    } else if oclc < 1_000_000_000 {
        format!("ocn{oclc:09}")
    } else {
        format!("on{oclc}")
    }
}

impl Book {
    /// The record, fields in tag order.
    pub(super) fn record(&self) -> Record {
        let mut leader = Leader(*b"00000cam a2200000 i 4500");
        leader.0[17] = self.level;
        let mut record = Record {
            leader,
            fields: Vec::new(),
        };
        record.push_control("001", control_number(self.oclc));
        record.push_control("003", "OCoLC");
        record.push_control("005", self.version);
        record.push_control("008", self.fixed.clone());
        // 019 (when OCLC merged records into this one) and 035 go in tag order with the rest.
        let mut numbers = Vec::new();
        if !self.merged.is_empty() {
            numbers.push(DataField {
                tag: "019",
                indicators: *b"  ",
                subfields: self.merged.iter().map(|n| (b'a', n.to_string())).collect(),
            });
        }
        numbers.push(DataField {
            tag: "035",
            indicators: *b"  ",
            subfields: vec![(b'a', format!("(OCoLC){}", self.oclc))],
        });
        let mut data: Vec<&DataField> = self.fields.iter().chain(&numbers).collect();
        data.sort_by_key(|field| field.tag);
        for field in data {
            let subfields: Vec<(u8, &str)> = field
                .subfields
                .iter()
                .map(|(code, value)| (*code, value.as_str()))
                .collect();
            let [ind1, ind2] = field.indicators;
            record.push_data(field.tag, ind1, ind2, &subfields);
        }
        record
    }

    /// The ISO 2709 bytes to export.
    pub(super) fn bytes(&self, charset: Charset) -> anyhow::Result<Vec<u8>> {
        let record = self.record();
        match charset {
            Charset::Marc8 => write_marc8(&record),
            Charset::Utf8 => {
                let mut bytes = Vec::new();
                bibgate_marc::iso2709::write_record(&record, &mut bytes)
                    .map_err(|error| anyhow::anyhow!("could not write a demo record: {error}"))?;
                Ok(bytes)
            }
        }
    }

    /// The title statement (245 `$a $b $c`).
    pub(super) fn title(&self) -> String {
        self.fields
            .iter()
            .filter(|field| field.tag == "245")
            .flat_map(|field| field.subfields.iter())
            .filter(|(code, _)| b"abc".contains(code))
            .map(|(_, value)| value.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What the tour says it sent.
    pub(super) fn describe(&self, charset: Charset) -> String {
        let merged = if self.merged.is_empty() {
            String::new()
        } else {
            let numbers: Vec<String> = self.merged.iter().map(u64::to_string).collect();
            format!(", 019 $a {}", numbers.join(" $a "))
        };
        format!(
            "\"{}\" OCLC {} ({}, Leader/17 {}, 005 {}{merged})",
            self.title(),
            self.oclc,
            match charset {
                Charset::Marc8 => "MARC-8",
                Charset::Utf8 => "UTF-8",
            },
            char::from(self.level),
            self.version,
        )
    }
}

/// `fields`, then 336-338 for a printed book.
pub(super) fn printed_book(mut fields: Vec<DataField>) -> Vec<DataField> {
    fields.extend([
        field("336   $atext$btxt$2rdacontent"),
        field("337   $aunmediated$bn$2rdamedia"),
        field("338   $avolume$bnc$2rdacarrier"),
    ]);
    fields
}

/// 040 of a record created by `agency` and edited by OCLC members since.
pub(super) fn cataloguing_source(agency: &str) -> DataField {
    data_field(
        "040",
        "  ",
        &format!("$a{agency}$beng$erda$c{agency}$dOCLCQ"),
    )
}

pub(super) fn les_miserables() -> Book {
    Book {
        oclc: 41_230_578,
        merged: Vec::new(),
        level: b'I',
        version: "20240315094512.0",
        fixed: fixed("990514", "s1862    ", "fr", '1', "fre"),
        fields: printed_book(vec![
            cataloguing_source("DLC"),
            field("100 1 $aHugo, Victor,$d1802-1885,$eauthor."),
            field("245 14$aLes misérables /$cVictor Hugo."),
            field("264  1$aParis :$bA. Lacroix, Verboeckhoven et Cie,$c1862."),
            field("300   $a10 volumes ;$c24 cm"),
        ]),
    }
}

/// The same record after OCLC members enriched it.
pub(super) fn les_miserables_revised() -> Book {
    let mut book = les_miserables();
    book.version = "20250122161530.0";
    book.fields.push(field(
        "650  0$aParis (France)$xHistory$y1830-1848$vFiction.",
    ));
    book
}

/// And once more, for the drop file.
pub(super) fn les_miserables_third() -> Book {
    let mut book = les_miserables_revised();
    book.version = "20250904103322.0";
    book.fields
        .push(field("655  7$aHistorical fiction.$2lcgft"));
    book
}

pub(super) fn cien_anos(oclc: u64, version: &'static str, entered: &str, agency: &str) -> Book {
    Book {
        oclc,
        merged: Vec::new(),
        level: b'I',
        version,
        fixed: fixed(entered, "s1967    ", "ag", '1', "spa"),
        fields: printed_book(vec![
            cataloguing_source(agency),
            field("100 1 $aGarcía Márquez, Gabriel,$d1927-2014,$eauthor."),
            field("245 10$aCien años de soledad /$cGabriel García Márquez."),
            field("250   $aPrimera edición."),
            field("264  1$aBuenos Aires :$bEditorial Sudamericana,$c1967."),
            field("300   $a351 pages ;$c20 cm"),
        ]),
    }
}

pub(super) fn cien_anos_1967() -> Book {
    cien_anos(3_290_651, "20230911080512.0", "771104", "DLC")
}

/// A duplicate WorldCat record of the same edition, entered in 2018.
pub(super) fn cien_anos_duplicate() -> Book {
    cien_anos(1_035_687_263, "20180517121933.0", "180517", "AR-BaBN")
}

/// The record that survived WorldCat's merge of the two.
pub(super) fn cien_anos_merged() -> Book {
    let mut book = cien_anos(3_290_651, "20250630141210.0", "771104", "DLC");
    book.merged = vec![1_035_687_263];
    book
}

pub(super) fn faust() -> Book {
    Book {
        oclc: 18_203_974,
        merged: Vec::new(),
        level: b'I',
        version: "20231002113045.0",
        fixed: fixed("880615", "s1808    ", "gw", 'd', "ger"),
        fields: printed_book(vec![
            cataloguing_source("DLC"),
            field("100 1 $aGoethe, Johann Wolfgang von,$d1749-1832,$eauthor."),
            field("245 10$aFaust :$beine Tragödie /$cvon Goethe."),
            field("264  1$aTübingen :$bIn der J.G. Cotta'schen Buchhandlung,$c1808."),
            field("300   $a309 pages ;$c17 cm"),
            field("600 00$aFaust,$d-approximately 1540$vDrama."),
        ]),
    }
}

/// The same number as a minimal-level record, with a newer 005.
pub(super) fn faust_minimal() -> Book {
    Book {
        level: b'K',
        version: "20250402090114.0",
        fields: vec![
            field("040   $aXYZ$beng$cXYZ"),
            field("100 1 $aGoethe, Johann Wolfgang von."),
            field("245 10$aFaust."),
            field("264  1$aTübingen,$c1808."),
        ],
        ..faust()
    }
}

pub(super) fn pan() -> Book {
    Book {
        oclc: 7_112_339,
        merged: Vec::new(),
        level: b'I',
        version: "20220118153402.0",
        fixed: fixed("810409", "s1894    ", "dk", '1', "nor"),
        fields: printed_book(vec![
            cataloguing_source("NO-OsNB"),
            field("100 1 $aHamsun, Knut,$d1859-1952,$eauthor."),
            field("245 10$aPan :$baf løitnant Thomas Glahns papirer /$cKnut Hamsun."),
            field("264  1$aKøbenhavn :$bP.G. Philipsens forlag,$c1894."),
            field("300   $a227 pages ;$c19 cm"),
        ]),
    }
}

pub(super) fn pan_revised() -> Book {
    let mut book = pan();
    book.version = "20250211100744.0";
    book.fields.push(field("655  7$aNovels.$2lcgft"));
    book
}

pub(super) fn middlemarch() -> Book {
    Book {
        oclc: 263_671_951,
        merged: Vec::new(),
        level: b'I',
        version: "20240610143307.0",
        fixed: fixed("081016", "m18711872", "stk", '1', "eng"),
        fields: printed_book(vec![
            cataloguing_source("UKMGB"),
            field("100 1 $aEliot, George,$d1819-1880,$eauthor."),
            field("245 10$aMiddlemarch :$ba study of provincial life /$cby George Eliot."),
            field("264  1$aEdinburgh :$bWilliam Blackwood and Sons,$c1871-1872."),
            field("300   $a4 volumes ;$c20 cm"),
            field("650  0$aCity and town life$vFiction."),
        ]),
    }
}

/// The same record as it was in 2019, before its 650.
pub(super) fn middlemarch_saved_in_2019() -> Book {
    let mut book = middlemarch();
    book.version = "20190212083015.0";
    book.fields.retain(|field| field.tag != "650");
    book
}

/// Works listed in the contents note of the Kierkegaard edition.
pub(super) const KIERKEGAARD_WORKS: [&str; 24] = [
    "Enten - Eller. Første Deel",
    "Enten - Eller. Anden Deel",
    "Frygt og Bæven",
    "Gjentagelsen",
    "Philosophiske Smuler",
    "Begrebet Angest",
    "Forord",
    "Stadier paa Livets Vei",
    "Afsluttende uvidenskabelig Efterskrift",
    "En literair Anmeldelse",
    "Opbyggelige Taler i forskjellig Aand",
    "Kjerlighedens Gjerninger",
    "Christelige Taler",
    "Lilien paa Marken og Fuglen under Himlen",
    "Sygdommen til Døden",
    "Indøvelse i Christendom",
    "Om min Forfatter-Virksomhed",
    "Til Selvprøvelse Samtiden anbefalet",
    "Dømmer selv!",
    "Øieblikket",
    "Hvad Christus dømmer om officiel Christendom",
    "Synspunktet for min Forfatter-Virksomhed",
    "Atten opbyggelige Taler",
    "Tre Taler ved tænkte Leiligheder",
];

/// The most bytes the 505 may have in MARC-8, so that it still fits ISO 2709 as exported.
pub(super) const CONTENTS_MARC8_MAX: usize = 9_990;

/// A contents note that fits in MARC-8 but not in UTF-8: `æ` and `ø` are one byte each in
/// MARC-8 and two in UTF-8.
pub(super) fn kierkegaard_contents() -> anyhow::Result<String> {
    let mut note = String::new();
    for (index, work) in KIERKEGAARD_WORKS.iter().cycle().take(500).enumerate() {
        let volume = index + 1;
        let entry = format!(
            "{}Bd. {volume}. {work} / tekst ved Niels Jørgen Cappelørn, Joakim Garff, Johnny Kondrup og Finn Hauberg Mortensen ; kommentarer ved Søren Kierkegaard Forskningscenteret, bd. K{volume}",
            if note.is_empty() { "" } else { " -- " }
        );
        let candidate = format!("{note}{entry}");
        let mut bytes = Vec::new();
        encode_marc8(&candidate, &mut bytes)?;
        // Indicators, `$a`, terminator.
        if bytes.len() + 5 > CONTENTS_MARC8_MAX {
            break;
        }
        note = candidate;
    }
    Ok(note)
}

pub(super) fn kierkegaard_skrifter() -> anyhow::Result<Book> {
    let mut contents = data_field("505", "0 ", "");
    contents.subfields.push((b'a', kierkegaard_contents()?));
    Ok(Book {
        oclc: 37_884_625,
        merged: Vec::new(),
        level: b'I',
        version: "20240827110458.0",
        fixed: fixed("971105", "m19972013", "dk", '0', "dan"),
        fields: printed_book(vec![
            cataloguing_source("DKDLA"),
            field("100 1 $aKierkegaard, Søren,$d1813-1855,$eauthor."),
            field(
                "245 10$aSøren Kierkegaards skrifter /$cudgivet af Søren Kierkegaard Forskningscenteret.",
            ),
            field("264  1$aKøbenhavn :$bGad,$c1997-2013."),
            field("300   $a55 volumes ;$c24 cm"),
            contents,
        ]),
    })
}

pub(super) fn kristin_lavransdatter() -> Book {
    Book {
        oclc: 2_542_918,
        merged: Vec::new(),
        level: b'I',
        version: "20240119084411.0",
        fixed: fixed("761203", "m19201922", "no", '1', "nor"),
        fields: printed_book(vec![
            cataloguing_source("NO-OsNB"),
            field("100 1 $aUndset, Sigrid,$d1882-1949,$eauthor."),
            field("245 10$aKristin Lavransdatter /$cSigrid Undset."),
            field("264  1$aKristiania :$bAschehoug,$c1920-1922."),
            field("300   $a3 volumes ;$c20 cm"),
            field("505 0 $a1. Kransen -- 2. Husfrue -- 3. Korset."),
        ]),
    }
}

pub(super) fn gosta_berling() -> Book {
    Book {
        oclc: 4_871_021,
        merged: Vec::new(),
        level: b'I',
        version: "20231117142208.0",
        fixed: fixed("790322", "s1891    ", "sw", '1', "swe"),
        fields: printed_book(vec![
            cataloguing_source("S-KB"),
            field("100 1 $aLagerlöf, Selma,$d1858-1940,$eauthor."),
            field(
                "245 10$aGösta Berlings saga :$bberättelse från det gamla Värmland /$cSelma Lagerlöf.",
            ),
            field("264  1$aStockholm :$bF. & G. Beijer,$c1891."),
            field("300   $a2 volumes ;$c19 cm"),
        ]),
    }
}

/// MARC-8 combining diacritics (written before the letter they modify), the precomposed
/// letters they make, and those letters' base letters, in the same order.
pub(super) const MARC8_DIACRITICS: [(u8, &str, &str); 8] = [
    (0xE1, "àèìòùÀÈÌÒÙ", "aeiouAEIOU"),
    (0xE2, "áéíóúýÁÉÍÓÚÝ", "aeiouyAEIOUY"),
    (0xE3, "âêîôûÂÊÎÔÛ", "aeiouAEIOU"),
    (0xE4, "ãñõÃÑÕ", "anoANO"),
    (0xE8, "äëïöüÿÄËÏÖÜ", "aeiouyAEIOU"),
    (0xE9, "čěňřšžČĚŇŘŠŽ", "cenrszCENRSZ"),
    (0xEA, "åÅ", "aA"),
    (0xF0, "çÇ", "cC"),
];

/// MARC-8 special letters (one byte each in the Extended Latin set).
pub(super) const MARC8_LETTERS: [(char, u8); 14] = [
    ('Ł', 0xA1),
    ('Ø', 0xA2),
    ('Đ', 0xA3),
    ('Þ', 0xA4),
    ('Æ', 0xA5),
    ('Œ', 0xA6),
    ('ł', 0xB1),
    ('ø', 0xB2),
    ('đ', 0xB3),
    ('þ', 0xB4),
    ('æ', 0xB5),
    ('œ', 0xB6),
    ('ð', 0xBA),
    ('ß', 0xC7),
];

/// Appends `text` in MARC-8 (ASCII and the Extended Latin set, which is all the demo's
/// records need). A character outside them is an error.
pub(super) fn encode_marc8(text: &str, out: &mut Vec<u8>) -> anyhow::Result<()> {
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else if let Some((_, byte)) = MARC8_LETTERS.iter().find(|(letter, _)| *letter == c) {
            out.push(*byte);
        } else if let Some((mark, base)) =
            MARC8_DIACRITICS.iter().find_map(|(mark, letters, bases)| {
                let position = letters.chars().position(|letter| letter == c)?;
                Some((*mark, bases.chars().nth(position)?))
            })
        {
            out.push(mark);
            out.push(base as u8);
        } else {
            bail!("{c:?} has no MARC-8 form in the demo's table");
        }
    }
    Ok(())
}

/// Writes `record` as ISO 2709 in MARC-8 (Leader/09 blank), as the Connexion client does
/// by default. `bibgate_marc::iso2709::write_record` writes UTF-8 only.
pub(super) fn write_marc8(record: &Record) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(1024);
    let mut directory = Vec::with_capacity(record.fields.len() * 12);
    for field in &record.fields {
        let start = data.len();
        match field {
            Field::Control { value, .. } => encode_marc8(value, &mut data)?,
            Field::Data {
                ind1,
                ind2,
                subfields,
                ..
            } => {
                data.extend([*ind1, *ind2]);
                for subfield in subfields {
                    data.extend([SUBFIELD_DELIMITER, subfield.code]);
                    encode_marc8(&subfield.value, &mut data)?;
                }
            }
        }
        data.push(FIELD_TERMINATOR);
        let len = data.len() - start;
        ensure!(
            len <= 9_999 && start <= 99_999,
            "field {} of a demo record does not fit ISO 2709 ({len} bytes at {start})",
            field.tag()
        );
        directory.extend_from_slice(&field.tag().0);
        directory.extend_from_slice(format!("{len:04}{start:05}").as_bytes());
    }
    directory.push(FIELD_TERMINATOR);
    data.push(RECORD_TERMINATOR);
    let base = 24 + directory.len();
    let total = base + data.len();
    ensure!(
        total <= 99_999,
        "a demo record does not fit ISO 2709 ({total} bytes)"
    );
    let mut leader = record.leader.0;
    leader[..5].copy_from_slice(format!("{total:05}").as_bytes());
    leader[9] = b' ';
    leader[10..12].copy_from_slice(b"22");
    leader[12..17].copy_from_slice(format!("{base:05}").as_bytes());
    leader[20..24].copy_from_slice(b"4500");
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(&leader);
    bytes.extend_from_slice(&directory);
    bytes.extend_from_slice(&data);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_marc::decode::{Charset as Decoding, Encoding};
    use bibgate_marc::iso2709::Mode;

    fn every_book() -> Vec<Book> {
        vec![
            les_miserables(),
            les_miserables_revised(),
            les_miserables_third(),
            cien_anos_1967(),
            cien_anos_duplicate(),
            cien_anos_merged(),
            faust(),
            faust_minimal(),
            pan(),
            pan_revised(),
            middlemarch(),
            middlemarch_saved_in_2019(),
            kierkegaard_skrifter().unwrap(),
            kristin_lavransdatter(),
            gosta_berling(),
        ]
    }

    #[test]
    fn every_record_reads_back_as_built_in_both_charsets() {
        for book in every_book() {
            let record = book.record();
            // 001, 003, 005, 008, the book's fields, 035 and 019 if any: no spec was dropped.
            let merged = usize::from(!book.merged.is_empty());
            assert_eq!(record.fields.len(), 4 + book.fields.len() + 1 + merged);
            assert_eq!(
                record.control_value("008").unwrap().len(),
                40,
                "{}",
                book.title()
            );
            for charset in [Charset::Marc8, Charset::Utf8] {
                if book.oclc == 37_884_625 && charset == Charset::Utf8 {
                    continue; // its 505 does not fit in UTF-8: step 7
                }
                let bytes = book.bytes(charset).unwrap();
                let parsed = bibgate_marc::parse(&bytes, Mode::Strict, Decoding::Auto).unwrap();
                assert_eq!(
                    parsed.decoded.record.fields,
                    record.fields,
                    "{}",
                    book.title()
                );
                let expected = match charset {
                    Charset::Marc8 => Encoding::Marc8,
                    Charset::Utf8 => Encoding::Utf8,
                };
                assert_eq!(parsed.decoded.encoding, expected);
                assert!(parsed.decoded.problems.is_empty(), "{}", book.title());
                if book.oclc != 37_884_625 {
                    assert!(parsed.verdict.is_convertible(), "{}", book.title());
                }
            }
        }
    }

    #[test]
    fn the_kierkegaard_record_fits_marc8_but_not_utf8() {
        let book = kierkegaard_skrifter().unwrap();
        let note = book.fields.iter().find(|f| f.tag == "505").unwrap();
        let marc8 = note.marc8_len().unwrap();
        assert!((9_000..=CONTENTS_MARC8_MAX).contains(&marc8), "{marc8}");
        assert!(note.utf8_len() > 9_999, "{}", note.utf8_len());
        let bytes = book.bytes(Charset::Marc8).unwrap();
        let parsed = bibgate_marc::parse(&bytes, Mode::Strict, Decoding::Auto).unwrap();
        assert!(!parsed.verdict.is_convertible());
        assert!(book.bytes(Charset::Utf8).is_err());
    }

    #[test]
    fn oclc_numbers_are_written_as_oclc_does() {
        assert_eq!(control_number(3_290_651), "ocm03290651 ");
        assert_eq!(control_number(263_671_951), "ocn263671951");
        assert_eq!(control_number(1_035_687_263), "on1035687263");
        let record = cien_anos_merged().record();
        let tags: Vec<String> = record.fields.iter().map(|f| f.tag().as_str()).collect();
        assert_eq!(
            tags,
            [
                "001", "003", "005", "008", "019", "035", "040", "100", "245", "250", "264", "300",
                "336", "337", "338"
            ]
        );
    }

    #[test]
    fn a_character_without_a_marc8_form_is_an_error() {
        assert!(encode_marc8("Ελληνικά", &mut Vec::new()).is_err());
    }

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_word("/tmp/bibgate-demo-1"), "/tmp/bibgate-demo-1");
        assert_eq!(shell_word("my data"), "'my data'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(9_908), "9,908");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn success_messages_give_their_mms_id() {
        assert_eq!(
            mms_id_of("The record has been processed successfully. MMS ID: 991234"),
            Some("991234")
        );
        assert_eq!(mms_id_of("Import Failed - NOT_ADDED_OLD: x"), None);
    }
}
