//! The [`Store`] port on one DynamoDB table (design in the crate docs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue,
    ScalarAttributeType, Select, TransactWriteItem,
};
use bibgate_store::{
    BlobStore, Commit, EditorLock, Error, ImportResult, IndexEntry, IndexKey, Institution, MmsId,
    Outcome, Profile, RecordVersion, Result, Store, StoredRecord, TargetZone, ZoneKind,
};
use tracing::{debug, instrument};

use crate::context::AwsContext;
use crate::s3::S3BlobStore;

/// MARC longer than this is kept in S3, not in the item (items are at most 400 KB, and a
/// merge writes the record and its prior version in one transaction of at most 4 MB).
pub const INLINE_MARC_LIMIT: usize = 300 * 1024;

/// The first serial number of a zone's MMS IDs (as in the embedded store).
const FIRST_SERIAL: u64 = 1_000_000;

/// The most actions one `TransactWriteItems` may hold.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// How many keys one `BatchGetItem` may ask for.
const MAX_BATCH_GET: usize = 100;

/// A lock whose holder left is garbage-collected by TTL this long after it was left.
const LOCK_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// The sort key of items that have no second part.
const NO_SORT: &str = "-";

/// The sort key of a current record.
const CURRENT: &str = "CUR";

/// Every `TransactWriteItems` of this process goes through here (see the crate docs,
/// "Concurrency on moto").
static TRANSACTIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes transaction tokens unique within the process.
static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);

type Item = HashMap<String, AttributeValue>;

/// The [`Store`] port on one DynamoDB table (see the crate docs for the design).
#[derive(Debug)]
pub struct DynamoStore {
    context: AwsContext,
    client: Client,
    table: String,
    marc_bucket: Option<S3BlobStore>,
    /// Numeric codes of zones, by code (they never change once MMS IDs were issued).
    numeric_codes: Mutex<HashMap<String, u16>>,
}

/// What a transaction action is, to read its cancellation reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    AddedRecord,
    ReplacedRecord,
    Version,
    Result,
    Index,
}

/// An index item as read: its version and its set.
#[derive(Clone, Debug, Default)]
struct IndexItem {
    /// `None` when there is no item.
    ver: Option<u64>,
    recs: BTreeMap<String, bool>,
}

fn sdk_error<E, R>(what: &str, err: &SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::Backend(format!("could not {what}: {}", DisplayErrorContext(err)))
}

fn build_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Backend(format!("could not {what}: {err}"))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn record_pk(zone: &str, mms_id: &str) -> String {
    format!("REC#{zone}#{mms_id}")
}

fn index_pk(zone: &str, number: u64) -> String {
    format!("OCLC#{zone}#{number}")
}

fn version_sk(revision: u64) -> String {
    format!("V#{revision:020}")
}

fn result_pk(export_id: &str) -> String {
    format!("RESULT#{export_id}")
}

fn lock_pk(zone: &str, mms_id: &str) -> String {
    format!("LOCK#{zone}#{mms_id}")
}

fn corrupt(item: &Item, name: &str, problem: &str) -> Error {
    let pk = match item.get("pk") {
        Some(AttributeValue::S(pk)) => pk.as_str(),
        _ => "?",
    };
    Error::Corrupt(format!("item {pk:?}: attribute {name:?} {problem}"))
}

fn get_s(item: &Item, name: &str) -> Result<String> {
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

fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T> {
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

/// `123:a 456:c`: a record's keys in order.
fn encode_keys(keys: &[IndexKey]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|key| format!("{}:{}", key.number, if key.active { 'a' } else { 'c' }))
        .collect();
    parts.join(" ")
}

fn decode_keys(item: &Item) -> Result<Vec<IndexKey>> {
    let text = get_s(item, "keys")?;
    text.split_ascii_whitespace()
        .map(|part| {
            let parsed = part.split_once(':').and_then(|(number, state)| {
                let number = number.parse::<u64>().ok()?;
                let active = match state {
                    "a" => true,
                    "c" => false,
                    _ => return None,
                };
                Some(IndexKey { number, active })
            });
            parsed.ok_or_else(|| corrupt(item, "keys", &format!("holds a bad key {part:?}")))
        })
        .collect()
}

/// The index set a record contributes: number → active (active wins over cancelled).
fn key_set(keys: &[IndexKey]) -> BTreeMap<u64, bool> {
    let mut set = BTreeMap::new();
    for key in keys {
        let active = set.entry(key.number).or_insert(false);
        *active |= key.active;
    }
    set
}

/// A token unique to one transaction attempt, at most 36 characters.
fn transaction_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn institution_item(institution: &Institution) -> Item {
    let mut item = key("INST".to_owned(), &institution.code);
    item.insert("name".into(), s(&institution.name));
    item.insert("kind".into(), s(institution.kind.as_str()));
    if let Some(network) = &institution.network {
        item.insert("network".into(), s(network));
    }
    item.insert("numeric_code".into(), n(institution.numeric_code));
    item
}

fn institution_from(item: &Item) -> Result<Institution> {
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

fn profile_pk(institution: &str) -> String {
    format!("PROFILE#{institution}")
}

/// The item that says which institution's partition holds a profile id.
fn profile_pointer(id: &str) -> Item {
    key(format!("PROFILEID#{id}"), NO_SORT)
}

fn profile_item(profile: &Profile) -> Item {
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

fn profile_from(item: &Item) -> Result<Profile> {
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

fn result_item(result: &ImportResult) -> Item {
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
    item
}

fn result_from(item: &Item) -> Result<ImportResult> {
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
    })
}

fn lock_item(lock: &EditorLock) -> Item {
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

fn lock_from(item: &Item) -> Result<EditorLock> {
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
enum Marc {
    Inline(Vec<u8>),
    External(String),
}

impl Marc {
    fn attribute(&self) -> (&'static str, AttributeValue) {
        match self {
            Marc::Inline(bytes) => ("marc", AttributeValue::B(bytes.clone().into())),
            Marc::External(key) => ("marc_ref", s(key)),
        }
    }

    fn from_item(item: &Item) -> Result<Marc> {
        match (item.get("marc"), item.get("marc_ref")) {
            (Some(AttributeValue::B(blob)), _) => Ok(Marc::Inline(blob.clone().into_inner())),
            (_, Some(AttributeValue::S(key))) => Ok(Marc::External(key.clone())),
            _ => Err(corrupt(item, "marc", "is missing")),
        }
    }
}

impl DynamoStore {
    /// A store over `table`. Records whose MARC is longer than [`INLINE_MARC_LIMIT`] are
    /// refused unless [`DynamoStore::with_marc_bucket`] names a bucket for them.
    pub fn new(context: &AwsContext, table: &str) -> DynamoStore {
        DynamoStore {
            context: context.clone(),
            client: Client::new(context.sdk_config()),
            table: table.to_owned(),
            marc_bucket: None,
            numeric_codes: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps MARC longer than [`INLINE_MARC_LIMIT`] in this bucket (under `marc/`).
    pub fn with_marc_bucket(mut self, bucket: S3BlobStore) -> DynamoStore {
        self.marc_bucket = Some(bucket);
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with the documented keys and indexes, on-demand billing, and the
    /// TTL attribute (for local runs and tests; on AWS `infra/template.yaml` does).
    pub fn create_table(&self) -> crate::Result<()> {
        let provision = |message: String| crate::Error::Provision {
            what: format!("table {:?}", self.table),
            message,
        };
        let attribute = |name: &str, kind: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
        };
        let key_element = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let built = (|| -> std::result::Result<_, aws_sdk_dynamodb::error::BuildError> {
            let by_zone = GlobalSecondaryIndex::builder()
                .index_name("by_zone")
                .key_schema(key_element("zpk", KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()?;
            let by_batch = GlobalSecondaryIndex::builder()
                .index_name("by_batch")
                .key_schema(key_element("bpk", KeyType::Hash)?)
                .key_schema(key_element("bsk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?;
            Ok((
                vec![
                    attribute("pk", ScalarAttributeType::S)?,
                    attribute("sk", ScalarAttributeType::S)?,
                    attribute("zpk", ScalarAttributeType::S)?,
                    attribute("bpk", ScalarAttributeType::S)?,
                    attribute("bsk", ScalarAttributeType::N)?,
                ],
                vec![
                    key_element("pk", KeyType::Hash)?,
                    key_element("sk", KeyType::Range)?,
                ],
                vec![by_zone, by_batch],
            ))
        })();
        let (attributes, keys, indexes) = built.map_err(|err| provision(err.to_string()))?;
        self.context
            .block_on(async {
                self.client
                    .create_table()
                    .table_name(&self.table)
                    .set_attribute_definitions(Some(attributes))
                    .set_key_schema(Some(keys))
                    .set_global_secondary_indexes(Some(indexes))
                    .billing_mode(BillingMode::PayPerRequest)
                    .send()
                    .await
            })
            .map_err(|err| provision(DisplayErrorContext(&err).to_string()))?;
        let ttl = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name("expires_at")
            .enabled(true)
            .build()
            .map_err(|err| provision(err.to_string()))?;
        self.context
            .block_on(async {
                self.client
                    .update_time_to_live()
                    .table_name(&self.table)
                    .time_to_live_specification(ttl)
                    .send()
                    .await
            })
            .map_err(|err| provision(DisplayErrorContext(&err).to_string()))?;
        Ok(())
    }

    async fn get_item(&self, key: Item, what: &str) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error(what, &err))?;
        Ok(output.item().cloned())
    }

    async fn put_item(&self, item: Item, what: &str) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|err| sdk_error(what, &err))?;
        Ok(())
    }

    /// Every item of a partition (consistent), optionally under a sort-key prefix.
    async fn query_partition(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        what: &str,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_names("#p", "pk")
                .expression_attribute_values(":p", s(pk))
                .set_exclusive_start_key(start.take());
            request = match sk_prefix {
                Some(prefix) => request
                    .key_condition_expression("#p = :p AND begins_with(#s, :s)")
                    .expression_attribute_names("#s", "sk")
                    .expression_attribute_values(":s", s(prefix)),
                None => request.key_condition_expression("#p = :p"),
            };
            let page = request.send().await.map_err(|err| sdk_error(what, &err))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// The index items of `numbers` in `zone` (consistent reads).
    async fn read_index(
        &self,
        zone: &str,
        numbers: &BTreeSet<u64>,
    ) -> Result<BTreeMap<u64, IndexItem>> {
        let what = format!("read the oclc index of zone {zone:?}");
        let mut found: BTreeMap<u64, IndexItem> = numbers
            .iter()
            .map(|&number| (number, IndexItem::default()))
            .collect();
        let all: Vec<u64> = numbers.iter().copied().collect();
        for chunk in all.chunks(MAX_BATCH_GET) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|&number| key(index_pk(zone, number), NO_SORT))
                .collect();
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(|err| build_error(&what, err))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|err| sdk_error(&what, &err))?;
                let items = output
                    .responses()
                    .and_then(|responses| responses.get(&self.table))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for item in items {
                    let (number, index_item) = index_from(item)?;
                    found.insert(number, index_item);
                }
                if let Some(unprocessed) = output
                    .unprocessed_keys()
                    .and_then(|unprocessed| unprocessed.get(&self.table))
                {
                    keys = unprocessed.keys().to_vec();
                    if !keys.is_empty() {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        }
        Ok(found)
    }

    async fn numeric_code(&self, zone: &str) -> Result<u16> {
        if let Some(code) = self
            .numeric_codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(zone)
        {
            return Ok(*code);
        }
        let item = self
            .get_item(
                key("INST".to_owned(), zone),
                &format!("read institution {zone:?}"),
            )
            .await?;
        let Some(item) = item else {
            return Err(Error::NotFound(format!("zone {zone:?}")));
        };
        let code = institution_from(&item)?.numeric_code;
        self.numeric_codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(zone.to_owned(), code);
        Ok(code)
    }

    async fn allocate(&self, zone: &str, count: usize) -> Result<Vec<MmsId>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let numeric_code = self.numeric_code(zone).await?;
        let what = format!("allocate {count} mms ids in zone {zone:?}");
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("COUNTER#{zone}"), NO_SORT)))
            .update_expression("ADD #a :n")
            .expression_attribute_names("#a", "allocated")
            .expression_attribute_values(":n", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|err| sdk_error(&what, &err))?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        let last: u64 = get_n(&attributes, "allocated")?;
        let first = last.checked_sub(count as u64).ok_or_else(|| {
            Error::Corrupt(format!("the mms id counter of zone {zone:?} went back"))
        })?;
        (0..count as u64)
            .map(|offset| {
                FIRST_SERIAL
                    .checked_add(first + offset)
                    .map(|serial| MmsId::new(serial, numeric_code))
                    .ok_or_else(|| Error::Backend(format!("could not {what}: serials overflow")))
            })
            .collect()
    }

    /// The MARC of a record or version, fetched from S3 when it is kept there.
    fn load_marc(&self, marc: Marc) -> Result<Vec<u8>> {
        match marc {
            Marc::Inline(bytes) => Ok(bytes),
            Marc::External(marc_key) => {
                let Some(bucket) = &self.marc_bucket else {
                    return Err(Error::Backend(format!(
                        "record marc is kept in s3 at {marc_key:?}, but no marc bucket is configured"
                    )));
                };
                bucket.get(&marc_key)?.ok_or_else(|| {
                    Error::Corrupt(format!(
                        "record marc {marc_key:?} is missing from bucket {:?}",
                        bucket.bucket()
                    ))
                })
            }
        }
    }

    /// Where a new revision's MARC goes; writes it to S3 first when it is large.
    fn store_marc(&self, record: &StoredRecord, revision: u64) -> Result<Marc> {
        if record.marc.len() <= INLINE_MARC_LIMIT {
            return Ok(Marc::Inline(record.marc.clone()));
        }
        let Some(bucket) = &self.marc_bucket else {
            return Err(Error::Backend(format!(
                "record {:?} in zone {:?} has {} bytes of marc, more than the {INLINE_MARC_LIMIT} an item holds, and no marc bucket is configured",
                record.mms_id.as_str(),
                record.zone,
                record.marc.len()
            )));
        };
        let marc_key = format!(
            "marc/{}/{}/{revision}.mrc",
            record.zone,
            record.mms_id.as_str()
        );
        bucket.put(&marc_key, &record.marc)?;
        Ok(Marc::External(marc_key))
    }

    fn record_item(&self, record: &StoredRecord, revision: u64) -> Result<Item> {
        let mut item = key(record_pk(&record.zone, record.mms_id.as_str()), CURRENT);
        let (name, value) = self.store_marc(record, revision)?.attribute();
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
        item.insert("keys".into(), s(encode_keys(&record.keys)));
        Ok(item)
    }

    fn record_from(&self, item: &Item) -> Result<StoredRecord> {
        Ok(StoredRecord {
            zone: get_s(item, "zone")?,
            mms_id: MmsId(get_s(item, "mms_id")?),
            marc: self.load_marc(Marc::from_item(item)?)?,
            revision: get_n(item, "revision")?,
            originating_version: get_opt_s(item, "ov")?,
            brief_level: get_n(item, "brief")?,
            linked_to_community_zone: get_bool(item, "cz")?,
            created_unix: get_n(item, "created")?,
            updated_unix: get_n(item, "updated")?,
            keys: decode_keys(item)?,
        })
    }

    fn version_from(&self, item: &Item) -> Result<RecordVersion> {
        Ok(RecordVersion {
            revision: get_n(item, "revision")?,
            marc: self.load_marc(Marc::from_item(item)?)?,
            originating_version: get_opt_s(item, "ov")?,
            brief_level: get_n(item, "brief")?,
            saved_unix: get_n(item, "saved")?,
            replaced_unix: get_n(item, "replaced")?,
            replaced_by: get_s(item, "replaced_by")?,
            reason: get_s(item, "reason")?,
        })
    }

    fn put_action(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
        let put = put
            .build()
            .map_err(|err| build_error("build a transaction", err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The writes (or checks) of one index item whose set goes from `read` to `new`.
    fn index_action(
        &self,
        zone: &str,
        number: u64,
        read: &IndexItem,
        new: &BTreeMap<String, bool>,
    ) -> Result<TransactWriteItem> {
        let (condition, values): (&str, Vec<(&str, AttributeValue)>) = match read.ver {
            Some(ver) => ("ver = :v", vec![(":v", n(ver))]),
            None => ("attribute_not_exists(pk)", Vec::new()),
        };
        let what = "build a transaction";
        if *new == read.recs {
            let mut check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(index_pk(zone, number), NO_SORT)))
                .condition_expression(condition);
            for (name, value) in values {
                check = check.expression_attribute_values(name, value);
            }
            let check = check.build().map_err(|err| build_error(what, err))?;
            return Ok(TransactWriteItem::builder().condition_check(check).build());
        }
        if new.is_empty() {
            let mut delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(index_pk(zone, number), NO_SORT)))
                .condition_expression(condition);
            for (name, value) in values {
                delete = delete.expression_attribute_values(name, value);
            }
            let delete = delete.build().map_err(|err| build_error(what, err))?;
            return Ok(TransactWriteItem::builder().delete(delete).build());
        }
        let mut item = key(index_pk(zone, number), NO_SORT);
        item.insert("zone".into(), s(zone));
        item.insert("number".into(), n(number));
        item.insert(
            "recs".into(),
            AttributeValue::M(
                new.iter()
                    .map(|(mms_id, active)| (mms_id.clone(), AttributeValue::Bool(*active)))
                    .collect(),
            ),
        );
        item.insert("ver".into(), n(read.ver.unwrap_or(0) + 1));
        self.put_action(item, condition, values)
    }

    fn plain_put(&self, item: Item, what: &str) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|err| build_error(what, err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn plain_delete(&self, key: Item, what: &str) -> Result<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .map_err(|err| build_error(what, err))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// An unconditional transaction (profile and its pointer); a conflict with another
    /// transaction on the same items is reported as [`Error::Conflict`].
    async fn transact_plain(&self, actions: Vec<TransactWriteItem>, what: &str) -> Result<()> {
        let sent = {
            let _serialised = TRANSACTIONS.lock().await;
            self.client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .client_request_token(transaction_token())
                .send()
                .await
        };
        match sent {
            Ok(_) => Ok(()),
            Err(err)
                if err.as_service_error().is_some_and(|service| {
                    matches!(service, aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(_))
                }) =>
            {
                Err(Error::Conflict(format!("could not {what}: a concurrent change")))
            }
            Err(err) => Err(sdk_error(what, &err)),
        }
    }

    /// Applies one commit (see the crate docs, "Commit").
    async fn apply(&self, commit: &Commit) -> Result<()> {
        let (expect, record, expected_revision, replaced_by, reason, result) = match commit {
            Commit::Reject { result } => return self.put_result_alone(result).await,
            Commit::Add {
                expect,
                record,
                result,
            } => (Some(expect), record, None, "", "", Some(result)),
            Commit::Merge {
                expect,
                expected_revision,
                record,
                reason,
                result,
            } => (
                Some(expect),
                record,
                Some(*expected_revision),
                result.export_id.as_str(),
                reason.as_str(),
                Some(result),
            ),
            Commit::Replace {
                expected_revision,
                record,
                replaced_by,
                reason,
            } => (
                None,
                record,
                Some(*expected_revision),
                replaced_by.as_str(),
                reason.as_str(),
                None,
            ),
        };
        let zone = record.zone.as_str();
        let mms_id = record.mms_id.as_str();
        let what = format!("commit record {mms_id:?} in zone {zone:?}");

        // The current state, for a merge or replace.
        let current = match expected_revision {
            None => None,
            Some(expected) => {
                let item = self
                    .get_item(key(record_pk(zone, mms_id), CURRENT), &what)
                    .await?;
                let Some(item) = item else {
                    return Err(Error::NotFound(format!(
                        "record {mms_id:?} in zone {zone:?}"
                    )));
                };
                let stored: u64 = get_n(&item, "revision")?;
                if stored != expected {
                    return Err(Error::Conflict(format!(
                        "record {mms_id:?} in zone {zone:?} is at revision {stored}, not {expected}"
                    )));
                }
                Some(item)
            }
        };
        let old_keys = match &current {
            Some(item) => key_set(&decode_keys(item)?),
            None => BTreeMap::new(),
        };
        let new_keys = key_set(&record.keys);
        let mut touched: BTreeSet<u64> = old_keys.keys().chain(new_keys.keys()).copied().collect();
        if let Some(expect) = expect {
            touched.extend(expect.numbers.iter().copied());
        }
        let index = self.read_index(zone, &touched).await?;

        if let Some(expect) = expect {
            let found: BTreeSet<&str> = expect
                .numbers
                .iter()
                .filter_map(|number| index.get(number))
                .flat_map(|item| item.recs.keys().map(String::as_str))
                .collect();
            let expected: BTreeSet<&str> = expect.matched.iter().map(MmsId::as_str).collect();
            if found != expected {
                if let Some(result) = result
                    && self
                        .get_item(key(result_pk(&result.export_id), NO_SORT), &what)
                        .await?
                        .is_some()
                {
                    return Err(Error::AlreadyExists(format!(
                        "result {:?}",
                        result.export_id
                    )));
                }
                return Err(Error::Conflict(format!(
                    "oclc numbers {:?} in zone {zone:?} now match [{}], not [{}]",
                    expect.numbers,
                    found.into_iter().collect::<Vec<_>>().join(", "),
                    expected.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }

        // Which index items change, and which are only checked.
        let mut index_actions = Vec::new();
        for (&number, read) in &index {
            let mut new = read.recs.clone();
            new.remove(mms_id);
            if let Some(&active) = new_keys.get(&number) {
                new.insert(mms_id.to_owned(), active);
            }
            let expected_number = expect.is_some_and(|expect| expect.numbers.contains(&number));
            if new == read.recs && !expected_number {
                continue;
            }
            index_actions.push(self.index_action(zone, number, read, &new)?);
        }
        let n_actions = index_actions.len()
            + 1
            + usize::from(current.is_some())
            + usize::from(result.is_some());
        if n_actions > MAX_TRANSACTION_ITEMS {
            return Err(Error::Backend(format!(
                "could not {what}: it touches {} oclc index items, and one transaction holds at most {MAX_TRANSACTION_ITEMS} writes",
                index_actions.len()
            )));
        }

        let new_revision = match expected_revision {
            None => 1,
            Some(expected) => expected
                .checked_add(1)
                .ok_or_else(|| Error::Backend(format!("could not {what}: revision overflow")))?,
        };
        let mut actions = Vec::with_capacity(n_actions);
        let mut roles = Vec::with_capacity(n_actions);
        let record_item = self.record_item(record, new_revision)?;
        match expected_revision {
            None => {
                actions.push(self.put_action(
                    record_item,
                    "attribute_not_exists(pk)",
                    Vec::new(),
                )?);
                roles.push(Role::AddedRecord);
            }
            Some(expected) => {
                actions.push(self.put_action(
                    record_item,
                    "revision = :r",
                    vec![(":r", n(expected))],
                )?);
                roles.push(Role::ReplacedRecord);
            }
        }
        if let (Some(current), Some(expected)) = (&current, expected_revision) {
            let mut version = key(record_pk(zone, mms_id), &version_sk(expected));
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
            actions.push(self.put_action(version, "attribute_not_exists(pk)", Vec::new())?);
            roles.push(Role::Version);
        }
        if let Some(result) = result {
            actions.push(self.put_action(
                result_item(result),
                "attribute_not_exists(pk)",
                Vec::new(),
            )?);
            roles.push(Role::Result);
        }
        roles.extend(std::iter::repeat_n(Role::Index, index_actions.len()));
        actions.extend(index_actions);
        bibgate_failpoint::point("store.commit.before");
        self.transact(actions, &roles, record, result, &what).await
    }

    async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
        roles: &[Role],
        record: &StoredRecord,
        result: Option<&ImportResult>,
        what: &str,
    ) -> Result<()> {
        let sent = {
            let _serialised = TRANSACTIONS.lock().await;
            self.client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .client_request_token(transaction_token())
                .send()
                .await
        };
        let err = match sent {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let Some(cancelled) = err
            .as_service_error()
            .and_then(|service| match service {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(cancelled),
                _ => None,
            })
        else {
            return Err(sdk_error(what, &err));
        };
        let failed: Vec<(Role, &str)> = cancelled
            .cancellation_reasons()
            .iter()
            .zip(roles)
            .filter_map(|(reason, role)| {
                reason
                    .code()
                    .filter(|code| *code != "None")
                    .map(|code| (*role, code))
            })
            .collect();
        debug!(?failed, "transaction cancelled");
        let condition_failed = |wanted: Role| {
            failed
                .iter()
                .any(|(role, code)| *role == wanted && *code == "ConditionalCheckFailed")
        };
        if let (Some(result), true) = (result, condition_failed(Role::Result)) {
            return Err(Error::AlreadyExists(format!(
                "result {:?}",
                result.export_id
            )));
        }
        if condition_failed(Role::AddedRecord) {
            return Err(Error::AlreadyExists(format!(
                "record {:?} in zone {:?}",
                record.mms_id.as_str(),
                record.zone
            )));
        }
        if failed.is_empty() {
            return Err(sdk_error(what, &err));
        }
        let reasons: Vec<String> = failed
            .iter()
            .map(|(role, code)| format!("{role:?}: {code}"))
            .collect();
        Err(Error::Conflict(format!(
            "record {:?} in zone {:?}: the state changed since it was read ({})",
            record.mms_id.as_str(),
            record.zone,
            reasons.join(", ")
        )))
    }

    async fn put_result_alone(&self, result: &ImportResult) -> Result<()> {
        let what = format!("store result {:?}", result.export_id);
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(result_item(result)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|service| service.is_conditional_check_failed_exception()) =>
            {
                Err(Error::AlreadyExists(format!(
                    "result {:?}",
                    result.export_id
                )))
            }
            Err(err) => Err(sdk_error(&what, &err)),
        }
    }
}

fn index_from(item: &Item) -> Result<(u64, IndexItem)> {
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

impl Store for DynamoStore {
    #[instrument(name = "dynamo.put_institution", skip_all, fields(code = %institution.code), err)]
    fn put_institution(&self, institution: &Institution) -> Result<()> {
        let what = format!("store institution {:?}", institution.code);
        self.context
            .block_on(self.put_item(institution_item(institution), &what))?;
        self.numeric_codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(institution.code.clone(), institution.numeric_code);
        Ok(())
    }

    #[instrument(name = "dynamo.institutions", skip_all, err)]
    fn institutions(&self) -> Result<Vec<Institution>> {
        let items =
            self.context
                .block_on(self.query_partition("INST", None, "list institutions"))?;
        items.iter().map(institution_from).collect()
    }

    #[instrument(name = "dynamo.institution", skip(self), err)]
    fn institution(&self, code: &str) -> Result<Option<Institution>> {
        let item = self.context.block_on(self.get_item(
            key("INST".to_owned(), code),
            &format!("read institution {code:?}"),
        ))?;
        item.as_ref().map(institution_from).transpose()
    }

    #[instrument(name = "dynamo.put_profile", skip_all, fields(id = %profile.id), err)]
    fn put_profile(&self, profile: &Profile) -> Result<()> {
        let what = format!("store profile {:?}", profile.id);
        self.context.block_on(async {
            let old = self
                .get_item(profile_pointer(&profile.id), &what)
                .await?
                .map(|pointer| get_s(&pointer, "institution"))
                .transpose()?;
            let mut pointer = profile_pointer(&profile.id);
            pointer.insert("institution".into(), s(&profile.institution));
            let mut actions = vec![
                self.plain_put(profile_item(profile), &what)?,
                self.plain_put(pointer, &what)?,
            ];
            if let Some(old) = old.filter(|old| *old != profile.institution) {
                actions.push(self.plain_delete(key(profile_pk(&old), &profile.id), &what)?);
            }
            self.transact_plain(actions, &what).await
        })
    }

    #[instrument(name = "dynamo.delete_profile", skip(self), err)]
    fn delete_profile(&self, id: &str) -> Result<bool> {
        let what = format!("delete profile {id:?}");
        self.context.block_on(async {
            let Some(pointer) = self.get_item(profile_pointer(id), &what).await? else {
                return Ok(false);
            };
            let institution = get_s(&pointer, "institution")?;
            let actions = vec![
                self.plain_delete(profile_pointer(id), &what)?,
                self.plain_delete(key(profile_pk(&institution), id), &what)?,
            ];
            self.transact_plain(actions, &what).await?;
            Ok(true)
        })
    }

    #[instrument(name = "dynamo.profiles", skip(self), err)]
    fn profiles(&self, institution: &str) -> Result<Vec<Profile>> {
        let items = self.context.block_on(self.query_partition(
            &profile_pk(institution),
            None,
            &format!("list the profiles of {institution:?}"),
        ))?;
        items.iter().map(profile_from).collect()
    }

    #[instrument(name = "dynamo.allocate_mms_id", skip(self), err)]
    fn allocate_mms_id(&self, zone: &str) -> Result<MmsId> {
        let mut ids = self.context.block_on(self.allocate(zone, 1))?;
        ids.pop().ok_or_else(|| {
            Error::Backend(format!(
                "could not allocate an mms id in zone {zone:?}: none was returned"
            ))
        })
    }

    #[instrument(name = "dynamo.allocate_mms_ids", skip(self), err)]
    fn allocate_mms_ids(&self, zone: &str, count: usize) -> Result<Vec<MmsId>> {
        self.context.block_on(self.allocate(zone, count))
    }

    #[instrument(name = "dynamo.find_by_oclc", skip(self), err)]
    fn find_by_oclc(&self, zone: &str, numbers: &[u64]) -> Result<Vec<IndexEntry>> {
        let numbers: BTreeSet<u64> = numbers.iter().copied().collect();
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.context.block_on(self.read_index(zone, &numbers))?;
        Ok(index
            .into_iter()
            .flat_map(|(number, item)| {
                item.recs
                    .into_iter()
                    .map(move |(mms_id, active)| IndexEntry {
                        number,
                        mms_id: MmsId(mms_id),
                        active,
                    })
            })
            .collect())
    }

    #[instrument(name = "dynamo.record", skip(self), fields(mms_id = %mms_id), err)]
    fn record(&self, zone: &str, mms_id: &MmsId) -> Result<Option<StoredRecord>> {
        let item = self.context.block_on(self.get_item(
            key(record_pk(zone, mms_id.as_str()), CURRENT),
            &format!("read record {:?} in zone {zone:?}", mms_id.as_str()),
        ))?;
        item.as_ref().map(|item| self.record_from(item)).transpose()
    }

    #[instrument(name = "dynamo.versions", skip(self), fields(mms_id = %mms_id), err)]
    fn versions(&self, zone: &str, mms_id: &MmsId) -> Result<Vec<RecordVersion>> {
        let items = self.context.block_on(self.query_partition(
            &record_pk(zone, mms_id.as_str()),
            Some("V#"),
            &format!(
                "read the versions of record {:?} in zone {zone:?}",
                mms_id.as_str()
            ),
        ))?;
        items.iter().map(|item| self.version_from(item)).collect()
    }

    #[instrument(name = "dynamo.count_records", skip(self), err)]
    fn count_records(&self, zone: &str) -> Result<u64> {
        let what = format!("count the records of zone {zone:?}");
        self.context.block_on(async {
            let mut total = 0u64;
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("by_zone")
                    .key_condition_expression("#z = :z")
                    .expression_attribute_names("#z", "zpk")
                    .expression_attribute_values(":z", s(zone))
                    .select(Select::Count)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|err| sdk_error(&what, &err))?;
                total += u64::try_from(page.count()).unwrap_or(0);
                match page.last_evaluated_key() {
                    Some(last) if !last.is_empty() => start = Some(last.clone()),
                    _ => break,
                }
            }
            Ok(total)
        })
    }

    #[instrument(name = "dynamo.commit", skip_all, err)]
    fn commit(&self, commit: &Commit) -> Result<()> {
        self.context.block_on(self.apply(commit))
    }

    #[instrument(name = "dynamo.commit_batch", skip_all, fields(n_commits = commits.len()), err)]
    fn commit_batch(&self, commits: &[Commit]) -> Result<Vec<Result<()>>> {
        self.context.block_on(async {
            let mut outcomes = Vec::with_capacity(commits.len());
            for commit in commits {
                outcomes.push(self.apply(commit).await);
            }
            Ok(outcomes)
        })
    }

    #[instrument(name = "dynamo.put_lock", skip_all, fields(mms_id = %lock.mms_id), err)]
    fn put_lock(&self, lock: &EditorLock) -> Result<()> {
        let what = format!(
            "store the lock of record {:?} in zone {:?}",
            lock.mms_id.as_str(),
            lock.zone
        );
        self.context.block_on(self.put_item(lock_item(lock), &what))
    }

    #[instrument(name = "dynamo.release_lock", skip(self), fields(mms_id = %mms_id), err)]
    fn release_lock(&self, zone: &str, mms_id: &MmsId) -> Result<bool> {
        let what = format!(
            "release the lock of record {:?} in zone {zone:?}",
            mms_id.as_str()
        );
        let output = self
            .context
            .block_on(async {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(lock_pk(zone, mms_id.as_str()), NO_SORT)))
                    .return_values(ReturnValue::AllOld)
                    .send()
                    .await
            })
            .map_err(|err| sdk_error(&what, &err))?;
        Ok(output.attributes().is_some_and(|old| !old.is_empty()))
    }

    #[instrument(name = "dynamo.lock", skip(self), fields(mms_id = %mms_id), err)]
    fn lock(&self, zone: &str, mms_id: &MmsId) -> Result<Option<EditorLock>> {
        let item = self.context.block_on(self.get_item(
            key(lock_pk(zone, mms_id.as_str()), NO_SORT),
            &format!(
                "read the lock of record {:?} in zone {zone:?}",
                mms_id.as_str()
            ),
        ))?;
        item.as_ref().map(lock_from).transpose()
    }

    #[instrument(name = "dynamo.result", skip(self), err)]
    fn result(&self, export_id: &str) -> Result<Option<ImportResult>> {
        let item = self.context.block_on(self.get_item(
            key(result_pk(export_id), NO_SORT),
            &format!("read result {export_id:?}"),
        ))?;
        item.as_ref().map(result_from).transpose()
    }

    #[instrument(name = "dynamo.batch_results", skip(self), err)]
    fn batch_results(&self, batch_id: &str) -> Result<Vec<ImportResult>> {
        let what = format!("read the results of batch {batch_id:?}");
        let items = self.context.block_on(async {
            let mut items = Vec::new();
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("by_batch")
                    .key_condition_expression("#b = :b")
                    .expression_attribute_names("#b", "bpk")
                    .expression_attribute_values(":b", s(batch_id))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|err| sdk_error(&what, &err))?;
                items.extend(page.items().iter().cloned());
                match page.last_evaluated_key() {
                    Some(last) if !last.is_empty() => start = Some(last.clone()),
                    _ => break,
                }
            }
            Ok::<_, Error>(items)
        })?;
        items.iter().map(result_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sets_prefer_active() {
        let keys = [
            IndexKey {
                number: 1,
                active: false,
            },
            IndexKey {
                number: 1,
                active: true,
            },
            IndexKey {
                number: 2,
                active: false,
            },
        ];
        assert_eq!(key_set(&keys), BTreeMap::from([(1, true), (2, false)]));
    }

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
        };
        assert_eq!(result_from(&result_item(&result)).unwrap(), result);
    }

    #[test]
    fn tokens_fit_dynamodb() {
        assert!(transaction_token().len() <= 36);
        assert_ne!(transaction_token(), transaction_token());
    }
}
