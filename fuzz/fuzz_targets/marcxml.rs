//! The MARCXML reader on any bytes; what it reads writes back and reads again the same.
#![no_main]

use bibgate_marc::marcxml::{self, XmlReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = XmlReader::new(data);
    let mut n = 0;
    while let Some(result) = reader.next_record() {
        n += 1;
        if n > 64 {
            break;
        }
        let Ok(record) = result else { continue };
        let mut xml = String::new();
        if marcxml::write_record(&record, &mut xml, true).is_ok() {
            let mut again = XmlReader::new(xml.as_bytes());
            let reread = again.next_record().expect("a record").expect("our own MARCXML reads");
            assert_eq!(reread, record);
        }
    }
});
