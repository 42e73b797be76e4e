//! Rows ↔ domain types: the column lists the queries select, the mapping of a row to a
//! domain value, and the text encodings of list columns (`keys`, `oclc_numbers`, `trace`).

use bibgate_store::{
    EditorLock, ImportResult, IndexEntry, IndexKey, Institution, MmsId, Outcome, Profile,
    RecordVersion, StoredRecord, TargetZone, ZoneKind, parse_index_keys,
};
use rusqlite::Row;
use rusqlite::types::Type;

fn conversion_error(idx: usize, ty: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, message.into())
}

pub(super) fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

fn get_opt_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let value: Option<i64> = row.get(idx)?;
    value
        .map(|value| {
            u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
        })
        .transpose()
}

fn get_u8(row: &Row<'_>, idx: usize) -> rusqlite::Result<u8> {
    let value: i64 = row.get(idx)?;
    u8::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

pub(super) fn get_u16(row: &Row<'_>, idx: usize) -> rusqlite::Result<u16> {
    let value: i64 = row.get(idx)?;
    u16::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

/// The `keys` column: a record's keys in order, as `bibgate_store`'s key list
/// (`123:a 456:c`).
fn decode_keys(text: &str, idx: usize) -> rusqlite::Result<Vec<IndexKey>> {
    parse_index_keys(text).map_err(|err| conversion_error(idx, Type::Text, err.to_string()))
}

pub(super) fn encode_numbers(numbers: &[u64]) -> String {
    let parts: Vec<String> = numbers.iter().map(u64::to_string).collect();
    parts.join(" ")
}

fn decode_numbers(text: &str, idx: usize) -> rusqlite::Result<Vec<u64>> {
    text.split_ascii_whitespace()
        .map(|part| {
            part.parse::<u64>()
                .map_err(|_| conversion_error(idx, Type::Text, format!("bad oclc number {part:?}")))
        })
        .collect()
}

/// Each line escaped (`\` → `\\`, newline → `\n`) and ended by a newline.
pub(super) fn encode_trace(trace: &[String]) -> String {
    let mut text = String::with_capacity(trace.iter().map(|line| line.len() + 1).sum());
    for line in trace {
        if !line.contains(['\\', '\n']) {
            text.push_str(line);
            text.push('\n');
            continue;
        }
        for ch in line.chars() {
            match ch {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                _ => text.push(ch),
            }
        }
        text.push('\n');
    }
    text
}

fn decode_trace(text: &str, idx: usize) -> rusqlite::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\n' => lines.push(std::mem::take(&mut line)),
            '\\' => match chars.next() {
                Some('\\') => line.push('\\'),
                Some('n') => line.push('\n'),
                other => {
                    return Err(conversion_error(
                        idx,
                        Type::Text,
                        format!("bad escape {other:?} in a trace"),
                    ));
                }
            },
            _ => line.push(ch),
        }
    }
    if !line.is_empty() {
        return Err(conversion_error(
            idx,
            Type::Text,
            "unterminated trace line".to_owned(),
        ));
    }
    Ok(lines)
}

pub(super) const INSTITUTION_COLUMNS: &str = "code, name, kind, network, numeric_code";

pub(super) fn institution_from_row(row: &Row<'_>) -> rusqlite::Result<Institution> {
    let kind: String = row.get(2)?;
    let kind = match kind.as_str() {
        "network" => ZoneKind::Network,
        "institution" => ZoneKind::Institution,
        _ => {
            return Err(conversion_error(
                2,
                Type::Text,
                format!("unknown zone kind {kind:?}"),
            ));
        }
    };
    Ok(Institution {
        code: row.get(0)?,
        name: row.get(1)?,
        kind,
        network: row.get(3)?,
        numeric_code: get_u16(row, 4)?,
    })
}

pub(super) const PROFILE_COLUMNS: &str = "id, institution, kind, logon_id, password_hash, target_zone, \
     check_brief_level, check_005, lock_timeout_seconds, brief_levels, merge_rules, \
     serial_match, nonserial_match, skip_community_zone, previous_password_hash, \
     previous_password_expires";

pub(super) fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
    let target: String = row.get(5)?;
    let target_zone = match target.as_str() {
        "iz" => TargetZone::Institution,
        "nz" => TargetZone::Network,
        _ => {
            return Err(conversion_error(
                5,
                Type::Text,
                format!("unknown target zone {target:?}"),
            ));
        }
    };
    Ok(Profile {
        id: row.get(0)?,
        institution: row.get(1)?,
        kind: row.get(2)?,
        logon_id: row.get(3)?,
        password_hash: row.get(4)?,
        target_zone,
        check_brief_level: row.get(6)?,
        check_005: row.get(7)?,
        lock_timeout_seconds: row.get(8)?,
        brief_levels: row.get(9)?,
        merge_rules: row.get(10)?,
        serial_match: row.get(11)?,
        nonserial_match: row.get(12)?,
        skip_community_zone: row.get(13)?,
        previous_password_hash: row.get(14)?,
        previous_password_expires: row.get(15)?,
    })
}

pub(super) const RECORD_COLUMNS: &str = "zone, mms_id, marc, revision, originating_version, brief_level, \
     cz, created_unix, updated_unix, keys";

pub(super) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<StoredRecord> {
    let keys: String = row.get(9)?;
    Ok(StoredRecord {
        zone: row.get(0)?,
        mms_id: MmsId(row.get(1)?),
        marc: row.get(2)?,
        revision: get_u64(row, 3)?,
        originating_version: row.get(4)?,
        brief_level: get_u8(row, 5)?,
        linked_to_community_zone: row.get(6)?,
        created_unix: row.get(7)?,
        updated_unix: row.get(8)?,
        keys: decode_keys(&keys, 9)?,
    })
}

pub(super) const RESULT_COLUMNS: &str = "export_id, batch_id, idx, institution, zone, outcome, \
     host_message, reason_code, mms_id, oclc_numbers, raw_key, raw_offset, raw_len, \
     received_unix, decided_unix, trace, policy, retry_of";

pub(super) fn result_from_row(row: &Row<'_>) -> rusqlite::Result<ImportResult> {
    let outcome: String = row.get(5)?;
    let outcome = Outcome::parse(&outcome)
        .ok_or_else(|| conversion_error(5, Type::Text, format!("unknown outcome {outcome:?}")))?;
    let numbers: String = row.get(9)?;
    let trace: String = row.get(15)?;
    Ok(ImportResult {
        export_id: row.get(0)?,
        batch_id: row.get(1)?,
        index: get_opt_u64(row, 2)?,
        institution: row.get(3)?,
        zone: row.get(4)?,
        outcome,
        host_message: row.get(6)?,
        reason_code: row.get(7)?,
        mms_id: row.get::<_, Option<String>>(8)?.map(MmsId),
        oclc_numbers: decode_numbers(&numbers, 9)?,
        raw_key: row.get(10)?,
        raw_offset: get_u64(row, 11)?,
        raw_len: get_u64(row, 12)?,
        received_unix: row.get(13)?,
        decided_unix: row.get(14)?,
        trace: decode_trace(&trace, 15)?,
        policy: row.get(16)?,
        retry_of: row.get(17)?,
    })
}

pub(super) const VERSION_COLUMNS: &str = "revision, marc, originating_version, brief_level, \
     saved_unix, replaced_unix, replaced_by, reason";

pub(super) fn version_from_row(row: &Row<'_>) -> rusqlite::Result<RecordVersion> {
    Ok(RecordVersion {
        revision: get_u64(row, 0)?,
        marc: row.get(1)?,
        originating_version: row.get(2)?,
        brief_level: get_u8(row, 3)?,
        saved_unix: row.get(4)?,
        replaced_unix: row.get(5)?,
        replaced_by: row.get(6)?,
        reason: row.get(7)?,
    })
}

pub(super) const LOCK_COLUMNS: &str = "zone, mms_id, institution, user, since_unix, left_unix";

pub(super) fn lock_from_row(row: &Row<'_>) -> rusqlite::Result<EditorLock> {
    Ok(EditorLock {
        zone: row.get(0)?,
        mms_id: MmsId(row.get(1)?),
        institution: row.get(2)?,
        user: row.get(3)?,
        since_unix: row.get(4)?,
        left_unix: row.get(5)?,
    })
}

pub(super) const INDEX_COLUMNS: &str = "number, mms_id, active";

pub(super) fn index_entry_from_row(row: &Row<'_>) -> rusqlite::Result<IndexEntry> {
    Ok(IndexEntry {
        number: get_u64(row, 0)?,
        mms_id: MmsId(row.get(1)?),
        active: row.get(2)?,
    })
}

#[cfg(test)]
mod tests {
    use bibgate_store::encode_index_keys;

    use super::*;

    #[test]
    fn trace_round_trips() {
        let cases: Vec<Vec<String>> = vec![
            vec![],
            vec![String::new()],
            vec![String::new(), String::new()],
            vec![
                "a\\b".to_owned(),
                "line\nbreak".to_owned(),
                "\\n".to_owned(),
            ],
        ];
        for trace in cases {
            let text = encode_trace(&trace);
            assert_eq!(decode_trace(&text, 0).unwrap(), trace, "{text:?}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let keys = vec![
            IndexKey {
                number: 12,
                active: true,
            },
            IndexKey {
                number: u64::MAX,
                active: false,
            },
        ];
        assert_eq!(decode_keys(&encode_index_keys(&keys), 0).unwrap(), keys);
        assert_eq!(decode_keys("", 0).unwrap(), Vec::new());
        assert!(decode_keys("12:x", 0).is_err());
    }
}
