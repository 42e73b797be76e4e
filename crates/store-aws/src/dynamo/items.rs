//! The attribute codec: domain values ↔ DynamoDB items, the key shapes of every item
//! (see the crate docs, "DynamoDB design"), and typed reads of attributes that report a
//! missing or mistyped attribute as [`Error::Corrupt`].

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use bibgate_store::{
    EditorLock, Error, ImportResult, IndexKey, Institution, MmsId, Outcome, Profile, RecordVersion,
    Result, StoredRecord, TargetZone, ZoneKind, encode_index_keys, parse_index_keys,
};

/// A lock whose holder left is garbage-collected by TTL this long after it was left.
const LOCK_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// The sort key of items that have no second part.
pub(super) const NO_SORT: &str = "-";

/// The sort key of a current record.
pub(super) const CURRENT: &str = "CUR";

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The partition of a search term's items (one per record, sort key its MMS ID).
pub(super) fn term_pk(zone: &str, term: &str) -> String {
    format!("TERM#{zone}#{term}")
}

/// The search terms a current record's item lists (none for items written without them).
pub(super) fn decode_terms(item: &Item) -> Result<Vec<String>> {
    if item.contains_key("terms") {
        get_string_list(item, "terms")
    } else {
        Ok(Vec::new())
    }
}

/// A record's item with its search terms, which the term items mirror.
pub(super) fn with_terms(mut item: Item, terms: &[String]) -> Item {
    item.insert(
        "terms".into(),
        AttributeValue::L(terms.iter().map(s).collect()),
    );
    item
}

pub(super) fn record_pk(zone: &str, mms_id: &str) -> String {
    format!("REC#{zone}#{mms_id}")
}

pub(super) fn index_pk(zone: &str, number: u64) -> String {
    format!("{}{number}", index_pk_prefix(zone))
}

/// What every index item of `zone` starts with (the `#` keeps `01A` from matching `01AB`).
pub(super) fn index_pk_prefix(zone: &str) -> String {
    format!("OCLC#{zone}#")
}

fn version_sk(revision: u64) -> String {
    format!("V#{revision:020}")
}

pub(super) fn result_pk(export_id: &str) -> String {
    format!("RESULT#{export_id}")
}

pub(super) fn lock_pk(zone: &str, mms_id: &str) -> String {
    format!("LOCK#{zone}#{mms_id}")
}

fn corrupt(item: &Item, name: &str, problem: &str) -> Error {
    let pk = match item.get("pk") {
        Some(AttributeValue::S(pk)) => pk.as_str(),
        _ => "?",
    };
    Error::Corrupt(format!("item {pk:?}: attribute {name:?} {problem}"))
}

pub(super) fn get_s(item: &Item, name: &str) -> Result<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        Some(_) => Err(corrupt(item, name, "is not a string")),
        None => Err(corrupt(item, name, "is missing")),
    }
}

fn get_opt_s(item: &Item, name: &str) -> Result<Option<String>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(corrupt(item, name, "is not a string")),
    }
}

pub(super) fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| corrupt(item, name, "is out of range")),
        Some(_) => Err(corrupt(item, name, "is not a number")),
        None => Err(corrupt(item, name, "is missing")),
    }
}

fn get_opt_n<T: FromStr>(item: &Item, name: &str) -> Result<Option<T>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => get_n(item, name).map(Some),
    }
}

fn get_bool(item: &Item, name: &str) -> Result<bool> {
    match item.get(name) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        Some(_) => Err(corrupt(item, name, "is not a boolean")),
        None => Err(corrupt(item, name, "is missing")),
    }
}

fn get_string_list(item: &Item, name: &str) -> Result<Vec<String>> {
    match item.get(name) {
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|value| match value {
                AttributeValue::S(text) => Ok(text.clone()),
                _ => Err(corrupt(item, name, "holds a value that is not a string")),
            })
            .collect(),
        Some(_) => Err(corrupt(item, name, "is not a list")),
        None => Err(corrupt(item, name, "is missing")),
    }
}

fn get_number_list(item: &Item, name: &str) -> Result<Vec<u64>> {
    match item.get(name) {
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|value| match value {
                AttributeValue::N(text) => text
                    .parse()
                    .map_err(|_| corrupt(item, name, "holds a number out of range")),
                _ => Err(corrupt(item, name, "holds a value that is not a number")),
            })
            .collect(),
        Some(_) => Err(corrupt(item, name, "is not a list")),
        None => Err(corrupt(item, name, "is missing")),
    }
}

/// The `keys` attribute: a record's keys in order, as `bibgate_store`'s key list
/// (`123:a 456:c`).
pub(super) fn decode_keys(item: &Item) -> Result<Vec<IndexKey>> {
    let text = get_s(item, "keys")?;
    parse_index_keys(&text)
        .map_err(|err| corrupt(item, "keys", &format!("holds a bad key {:?}", err.part())))
}

pub(super) fn institution_item(institution: &Institution) -> Item {
    let mut item = key("INST".to_owned(), &institution.code);
    item.insert("name".into(), s(&institution.name));
    item.insert("kind".into(), s(institution.kind.as_str()));
    if let Some(network) = &institution.network {
        item.insert("network".into(), s(network));
    }
    item.insert("numeric_code".into(), n(institution.numeric_code));
    item
}

pub(super) fn institution_from(item: &Item) -> Result<Institution> {
    let kind = match get_s(item, "kind")?.as_str() {
        "network" => ZoneKind::Network,
        "institution" => ZoneKind::Institution,
        other => return Err(corrupt(item, "kind", &format!("is {other:?}"))),
    };
    Ok(Institution {
        code: get_s(item, "sk")?,
        name: get_s(item, "name")?,
        kind,
        network: get_opt_s(item, "network")?,
        numeric_code: get_n(item, "numeric_code")?,
    })
}

pub(super) fn profile_pk(institution: &str) -> String {
    format!("PROFILE#{institution}")
}

/// The item that says which institution's partition holds a profile id.
pub(super) fn profile_pointer(id: &str) -> Item {
    key(format!("PROFILEID#{id}"), NO_SORT)
}

pub(super) fn profile_item(profile: &Profile) -> Item {
    let mut item = key(profile_pk(&profile.institution), &profile.id);
    for (name, value) in [
        ("institution", &profile.institution),
        ("kind", &profile.kind),
        ("logon_id", &profile.logon_id),
        ("password_hash", &profile.password_hash),
        ("brief_levels", &profile.brief_levels),
        ("merge_rules", &profile.merge_rules),
        ("serial_match", &profile.serial_match),
        ("nonserial_match", &profile.nonserial_match),
    ] {
        item.insert(name.into(), s(value));
    }
    item.insert("target_zone".into(), s(profile.target_zone.as_str()));
    item.insert(
        "check_brief_level".into(),
        AttributeValue::Bool(profile.check_brief_level),
    );
    item.insert("check_005".into(), AttributeValue::Bool(profile.check_005));
    item.insert(
        "lock_timeout_seconds".into(),
        n(profile.lock_timeout_seconds),
    );
    item.insert(
        "skip_community_zone".into(),
        AttributeValue::Bool(profile.skip_community_zone),
    );
    // Absent when there is none (items written before password rotation have neither).
    if let Some(previous) = &profile.previous_password_hash {
        item.insert("previous_password_hash".into(), s(previous));
    }
    if let Some(expires) = profile.previous_password_expires {
        item.insert("previous_password_expires".into(), n(expires));
    }
    item
}

pub(super) fn profile_from(item: &Item) -> Result<Profile> {
    let target_zone = match get_s(item, "target_zone")?.as_str() {
        "iz" => TargetZone::Institution,
        "nz" => TargetZone::Network,
        other => return Err(corrupt(item, "target_zone", &format!("is {other:?}"))),
    };
    Ok(Profile {
        id: get_s(item, "sk")?,
        institution: get_s(item, "institution")?,
        kind: get_s(item, "kind")?,
        logon_id: get_s(item, "logon_id")?,
        password_hash: get_s(item, "password_hash")?,
        target_zone,
        check_brief_level: get_bool(item, "check_brief_level")?,
        check_005: get_bool(item, "check_005")?,
        lock_timeout_seconds: get_n(item, "lock_timeout_seconds")?,
        brief_levels: get_s(item, "brief_levels")?,
        merge_rules: get_s(item, "merge_rules")?,
        serial_match: get_s(item, "serial_match")?,
        nonserial_match: get_s(item, "nonserial_match")?,
        skip_community_zone: get_bool(item, "skip_community_zone")?,
        previous_password_hash: get_opt_s(item, "previous_password_hash")?,
        previous_password_expires: get_opt_n(item, "previous_password_expires")?,
    })
}

pub(super) fn result_item(result: &ImportResult) -> Item {
    let mut item = key(result_pk(&result.export_id), NO_SORT);
    item.insert("export_id".into(), s(&result.export_id));
    if let Some(batch_id) = &result.batch_id {
        item.insert("batch_id".into(), s(batch_id));
        item.insert("bpk".into(), s(batch_id));
        // Results without an index sort last, as in the embedded store.
        item.insert("bsk".into(), n(result.index.unwrap_or(u64::MAX)));
    }
    if let Some(index) = result.index {
        item.insert("idx".into(), n(index));
    }
    item.insert("institution".into(), s(&result.institution));
    item.insert("ipk".into(), s(&result.institution));
    item.insert(
        "isk".into(),
        s(format!(
            "{}#{:020}#{}",
            received_sort_key(result.received_unix),
            result.index.unwrap_or(0),
            result.export_id
        )),
    );
    item.insert("zone".into(), s(&result.zone));
    item.insert("outcome".into(), s(result.outcome.as_str()));
    item.insert("host_message".into(), s(&result.host_message));
    item.insert("reason_code".into(), s(&result.reason_code));
    if let Some(mms_id) = &result.mms_id {
        item.insert("mms_id".into(), s(mms_id.as_str()));
    }
    item.insert(
        "oclc_numbers".into(),
        AttributeValue::L(result.oclc_numbers.iter().map(n).collect()),
    );
    item.insert("raw_key".into(), s(&result.raw_key));
    item.insert("raw_offset".into(), n(result.raw_offset));
    item.insert("raw_len".into(), n(result.raw_len));
    item.insert("received".into(), n(result.received_unix));
    item.insert("decided".into(), n(result.decided_unix));
    item.insert(
        "trace".into(),
        AttributeValue::L(result.trace.iter().map(s).collect()),
    );
    if let Some(policy) = &result.policy {
        item.insert("policy".into(), s(policy));
    }
    if let Some(retry_of) = &result.retry_of {
        item.insert("retry_of".into(), s(retry_of));
    }
    item
}

/// The received time as the start of a result's `isk` (GSI `by_institution`): 20 digits,
/// so that text order is time order (times before 1970 sort as 1970).
pub(super) fn received_sort_key(received_unix: i64) -> String {
    format!("{:020}", received_unix.max(0))
}

pub(super) fn result_from(item: &Item) -> Result<ImportResult> {
    let outcome = get_s(item, "outcome")?;
    let outcome = Outcome::parse(&outcome)
        .ok_or_else(|| corrupt(item, "outcome", &format!("is {outcome:?}")))?;
    Ok(ImportResult {
        export_id: get_s(item, "export_id")?,
        batch_id: get_opt_s(item, "batch_id")?,
        index: get_opt_n(item, "idx")?,
        institution: get_s(item, "institution")?,
        zone: get_s(item, "zone")?,
        outcome,
        host_message: get_s(item, "host_message")?,
        reason_code: get_s(item, "reason_code")?,
        mms_id: get_opt_s(item, "mms_id")?.map(MmsId),
        oclc_numbers: get_number_list(item, "oclc_numbers")?,
        raw_key: get_s(item, "raw_key")?,
        raw_offset: get_n(item, "raw_offset")?,
        raw_len: get_n(item, "raw_len")?,
        received_unix: get_n(item, "received")?,
        decided_unix: get_n(item, "decided")?,
        trace: get_string_list(item, "trace")?,
        policy: get_opt_s(item, "policy")?,
        retry_of: get_opt_s(item, "retry_of")?,
    })
}

pub(super) fn lock_item(lock: &EditorLock) -> Item {
    let mut item = key(lock_pk(&lock.zone, lock.mms_id.as_str()), NO_SORT);
    item.insert("zone".into(), s(&lock.zone));
    item.insert("mms_id".into(), s(lock.mms_id.as_str()));
    item.insert("institution".into(), s(&lock.institution));
    item.insert("user".into(), s(&lock.user));
    item.insert("since".into(), n(lock.since_unix));
    if let Some(left) = lock.left_unix {
        item.insert("left".into(), n(left));
        item.insert(
            "expires_at".into(),
            n(left.saturating_add(LOCK_TTL_SECONDS)),
        );
    }
    item
}

pub(super) fn lock_from(item: &Item) -> Result<EditorLock> {
    Ok(EditorLock {
        zone: get_s(item, "zone")?,
        mms_id: MmsId(get_s(item, "mms_id")?),
        institution: get_s(item, "institution")?,
        user: get_s(item, "user")?,
        since_unix: get_n(item, "since")?,
        left_unix: get_opt_n(item, "left")?,
    })
}

/// Where a record's MARC is: in the item, or in S3.
#[derive(Clone, Debug)]
pub(super) enum Marc {
    Inline(Vec<u8>),
    External(String),
}

impl Marc {
    pub(super) fn attribute(&self) -> (&'static str, AttributeValue) {
        match self {
            Marc::Inline(bytes) => ("marc", AttributeValue::B(bytes.clone().into())),
            Marc::External(key) => ("marc_ref", s(key)),
        }
    }

    pub(super) fn from_item(item: &Item) -> Result<Marc> {
        match (item.get("marc"), item.get("marc_ref")) {
            (Some(AttributeValue::B(blob)), _) => Ok(Marc::Inline(blob.clone().into_inner())),
            (_, Some(AttributeValue::S(key))) => Ok(Marc::External(key.clone())),
            _ => Err(corrupt(item, "marc", "is missing")),
        }
    }
}

/// A current record's item at `revision`, its MARC where `marc` says (see
/// [`DynamoStore::store_marc`](super::DynamoStore)).
pub(super) fn record_item(record: &StoredRecord, revision: u64, marc: &Marc) -> Item {
    let mut item = key(record_pk(&record.zone, record.mms_id.as_str()), CURRENT);
    let (name, value) = marc.attribute();
    item.insert(name.into(), value);
    item.insert("zpk".into(), s(&record.zone));
    item.insert("zone".into(), s(&record.zone));
    item.insert("mms_id".into(), s(record.mms_id.as_str()));
    item.insert("revision".into(), n(revision));
    if let Some(version) = &record.originating_version {
        item.insert("ov".into(), s(version));
    }
    item.insert("brief".into(), n(record.brief_level));
    item.insert(
        "cz".into(),
        AttributeValue::Bool(record.linked_to_community_zone),
    );
    item.insert("created".into(), n(record.created_unix));
    item.insert("updated".into(), n(record.updated_unix));
    item.insert("keys".into(), s(encode_index_keys(&record.keys)));
    item
}

/// A current record from its item; `load_marc` fetches MARC kept in S3.
pub(super) fn record_from(
    item: &Item,
    load_marc: impl FnOnce(Marc) -> Result<Vec<u8>>,
) -> Result<StoredRecord> {
    Ok(StoredRecord {
        zone: get_s(item, "zone")?,
        mms_id: MmsId(get_s(item, "mms_id")?),
        marc: load_marc(Marc::from_item(item)?)?,
        revision: get_n(item, "revision")?,
        originating_version: get_opt_s(item, "ov")?,
        brief_level: get_n(item, "brief")?,
        linked_to_community_zone: get_bool(item, "cz")?,
        created_unix: get_n(item, "created")?,
        updated_unix: get_n(item, "updated")?,
        keys: decode_keys(item)?,
    })
}

/// The prior version kept when `current` (the item of `record`'s MMS ID at revision
/// `expected`) is replaced by `record`.
pub(super) fn version_item(
    current: &Item,
    record: &StoredRecord,
    expected: u64,
    replaced_by: &str,
    reason: &str,
) -> Result<Item> {
    let mut version = key(
        record_pk(&record.zone, record.mms_id.as_str()),
        &version_sk(expected),
    );
    let (name, value) = Marc::from_item(current)?.attribute();
    version.insert(name.into(), value);
    version.insert("revision".into(), n(expected));
    if let Some(ov) = current.get("ov") {
        version.insert("ov".into(), ov.clone());
    }
    version.insert("brief".into(), n(get_n::<u8>(current, "brief")?));
    version.insert("saved".into(), n(get_n::<i64>(current, "updated")?));
    version.insert("replaced".into(), n(record.updated_unix));
    version.insert("replaced_by".into(), s(replaced_by));
    version.insert("reason".into(), s(reason));
    Ok(version)
}

/// A prior version from its item; `load_marc` fetches MARC kept in S3.
pub(super) fn version_from(
    item: &Item,
    load_marc: impl FnOnce(Marc) -> Result<Vec<u8>>,
) -> Result<RecordVersion> {
    Ok(RecordVersion {
        revision: get_n(item, "revision")?,
        marc: load_marc(Marc::from_item(item)?)?,
        originating_version: get_opt_s(item, "ov")?,
        brief_level: get_n(item, "brief")?,
        saved_unix: get_n(item, "saved")?,
        replaced_unix: get_n(item, "replaced")?,
        replaced_by: get_s(item, "replaced_by")?,
        reason: get_s(item, "reason")?,
    })
}

/// An index item as read: its version and its set.
#[derive(Clone, Debug, Default)]
pub(super) struct IndexItem {
    /// `None` when there is no item.
    pub(super) ver: Option<u64>,
    /// MMS ID → active.
    pub(super) recs: BTreeMap<String, bool>,
}

/// An index item holding the set `recs` (MMS ID → active) at version `ver`.
pub(super) fn index_item(zone: &str, number: u64, recs: &BTreeMap<String, bool>, ver: u64) -> Item {
    let mut item = key(index_pk(zone, number), NO_SORT);
    item.insert("zone".into(), s(zone));
    item.insert("number".into(), n(number));
    item.insert(
        "recs".into(),
        AttributeValue::M(
            recs.iter()
                .map(|(mms_id, active)| (mms_id.clone(), AttributeValue::Bool(*active)))
                .collect(),
        ),
    );
    item.insert("ver".into(), n(ver));
    item
}

pub(super) fn index_from(item: &Item) -> Result<(u64, IndexItem)> {
    let number = get_n(item, "number")?;
    let ver = get_n(item, "ver")?;
    let recs = match item.get("recs") {
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(mms_id, active)| match active {
                AttributeValue::Bool(active) => Ok((mms_id.clone(), *active)),
                _ => Err(corrupt(item, "recs", "holds a value that is not a boolean")),
            })
            .collect::<Result<BTreeMap<_, _>>>()?,
        _ => return Err(corrupt(item, "recs", "is not a map")),
    };
    Ok((
        number,
        IndexItem {
            ver: Some(ver),
            recs,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_items_round_trip() {
        let result = ImportResult {
            export_id: "b#1".into(),
            batch_id: Some("b".into()),
            index: Some(1),
            institution: "A".into(),
            zone: "A".into(),
            outcome: Outcome::Merged,
            host_message: "m".into(),
            reason_code: "MERGED".into(),
            mms_id: Some(MmsId("991".into())),
            oclc_numbers: vec![1, 2],
            raw_key: "k".into(),
            raw_offset: 3,
            raw_len: 4,
            received_unix: 5,
            decided_unix: 6,
            trace: vec![String::new(), "a\nb".into()],
            policy: Some("p@1 sha256:00".into()),
            retry_of: Some("e-0".into()),
        };
        assert_eq!(result_from(&result_item(&result)).unwrap(), result);
    }
}
