//! MARC-in-JSON writing (the format of <https://github.com/marc4j/marc4j/wiki/MARC-in-JSON-Description>):
//! `{"leader": "...", "fields": [{"001": "..."}, {"245": {"ind1": "1", "ind2": "0", "subfields": [{"a": "..."}]}}]}`.

use crate::record::{Field, Record};

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (i, c) in value.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if u32::from(c) < 0x20 => {
                out.push_str(&value[plain_from..i]);
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
                plain_from = i + c.len_utf8();
                continue;
            }
            _ => continue,
        };
        out.push_str(&value[plain_from..i]);
        out.push_str(escaped);
        plain_from = i + c.len_utf8();
    }
    out.push_str(&value[plain_from..]);
    out.push('"');
}

fn push_byte_string(out: &mut String, byte: u8) {
    let text = String::from_utf8_lossy(std::slice::from_ref(&byte)).into_owned();
    push_json_string(out, &text);
}

/// Appends the record as one MARC-in-JSON object (no trailing newline). Every string is
/// valid JSON whatever the record holds: control characters are escaped.
pub fn write_record(record: &Record, out: &mut String) {
    out.push_str("{\"leader\":");
    push_json_string(out, &String::from_utf8_lossy(&record.leader.0));
    out.push_str(",\"fields\":[");
    for (i, field) in record.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        push_json_string(out, &field.tag().as_str());
        out.push(':');
        match field {
            Field::Control { value, .. } => push_json_string(out, value),
            Field::Data {
                ind1,
                ind2,
                subfields,
                ..
            } => {
                out.push_str("{\"ind1\":");
                push_byte_string(out, *ind1);
                out.push_str(",\"ind2\":");
                push_byte_string(out, *ind2);
                out.push_str(",\"subfields\":[");
                for (j, subfield) in subfields.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push('{');
                    push_byte_string(out, subfield.code);
                    out.push(':');
                    push_json_string(out, &subfield.value);
                    out.push('}');
                }
                out.push_str("]}");
            }
        }
        out.push('}');
    }
    out.push_str("]}");
}
