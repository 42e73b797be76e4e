//! The [`Store`] port on one DynamoDB table (design in the crate docs).
//!
//! By concern: [`items`] (the attribute codec: domain values ↔ items, and the key shape of
//! every item), [`table`] (the table's definition, and `create_table`) and [`commit`] (an
//! import's writes as one conditional transaction). This module holds the [`DynamoStore`],
//! its reads, and its [`Store`] impl.

mod commit;
mod items;
mod logon;
mod pipeline;
mod policy;
mod staff;
mod table;

pub use logon::DynamoLogonLocks;
pub use policy::DynamoPolicyStore;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValue, Select};
use bibgate_store::{
    BlobStore, Commit, EditorLock, Error, ImportResult, IndexEntry, Institution, Lookup, MmsId,
    Profile, RecordVersion, Result, StaffAccount, Store, StoredRecord,
};
use tracing::instrument;

use crate::context::AwsContext;
use crate::s3::S3BlobStore;
use items::{
    CURRENT, IndexItem, Item, Marc, NO_SORT, get_n, get_s, index_from, index_pk, index_pk_prefix,
    institution_from, institution_item, key, lock_from, lock_item, lock_pk, n, profile_from,
    profile_item, profile_pk, profile_pointer, received_sort_key, record_from, record_pk,
    result_from, result_pk, s, term_pk, version_from,
};

/// MARC longer than this is kept in S3, not in the item (items are at most 400 KB, and a
/// merge writes the record and its prior version in one transaction of at most 4 MB).
pub const INLINE_MARC_LIMIT: usize = 300 * 1024;

/// The first serial number of a zone's MMS IDs (as in the embedded store).
const FIRST_SERIAL: u64 = 1_000_000;

/// How many keys one `BatchGetItem` may ask for.
const MAX_BATCH_GET: usize = 100;

/// How many commits of one [`Store::commit_batch`] are in flight at once, by default.
pub const DEFAULT_COMMIT_CONCURRENCY: usize = 16;

/// The outcomes of one group of a batch's commits, by the commits' indexes in the batch.
type GroupOutcomes = Vec<(usize, Result<()>)>;

/// The [`Store`] port on one DynamoDB table (see the crate docs for the design).
#[derive(Debug)]
pub struct DynamoStore {
    context: AwsContext,
    client: Client,
    table: String,
    marc_bucket: Option<S3BlobStore>,
    /// Numeric codes of zones, by code (they never change once MMS IDs were issued).
    numeric_codes: Mutex<HashMap<String, u16>>,
    /// At most this many commits of a batch in flight (at least 1).
    commit_concurrency: usize,
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
            commit_concurrency: DEFAULT_COMMIT_CONCURRENCY,
        }
    }

    /// Applies at most `limit` (at least 1) commits of a [`Store::commit_batch`] at once
    /// (default [`DEFAULT_COMMIT_CONCURRENCY`]); 1 applies them one after another.
    pub fn with_commit_concurrency(mut self, limit: usize) -> DynamoStore {
        self.commit_concurrency = limit.max(1);
        self
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

    /// Every item whose partition key starts with `prefix`, handed to `each` page by page
    /// (a consistent Scan: staff reports only, never an import's path).
    async fn scan_prefix(
        &self,
        prefix: &str,
        what: &str,
        mut each: impl FnMut(&Item) -> Result<()> + Send,
    ) -> Result<()> {
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error(what, &err))?;
            for item in page.items() {
                each(item)?;
            }
            match page.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// The items of `keys` that exist (consistent `BatchGetItem`s of at most
    /// [`MAX_BATCH_GET`] keys, unprocessed keys asked again), in no particular order.
    async fn batch_get(&self, keys: Vec<Item>, what: &str) -> Result<Vec<Item>> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut keys = chunk.to_vec();
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(|err| build_error(what, err))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|err| sdk_error(what, &err))?;
                if let Some(items) = output
                    .responses()
                    .and_then(|responses| responses.get(&self.table))
                {
                    found.extend(items.iter().cloned());
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
        let keys = numbers
            .iter()
            .map(|&number| key(index_pk(zone, number), NO_SORT))
            .collect();
        for item in self.batch_get(keys, &what).await? {
            let (number, index_item) = index_from(&item)?;
            found.insert(number, index_item);
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

    /// Two rounds of `BatchGetItem` for the whole batch: the index items of every number,
    /// then the current items and locks of every record they name.
    #[instrument(name = "dynamo.lookup_many", skip_all, fields(zone = %zone, n_sets = sets.len()), err)]
    fn lookup_many(&self, zone: &str, sets: &[&[u64]]) -> Result<Vec<Lookup>> {
        let numbers: BTreeSet<u64> = sets.iter().flat_map(|set| set.iter().copied()).collect();
        if numbers.is_empty() {
            return Ok(sets.iter().map(|_| Lookup::default()).collect());
        }
        let what = format!(
            "read the records of zone {zone:?} for {} oclc numbers",
            numbers.len()
        );
        let (index, items) = self.context.block_on(async {
            let index = self.read_index(zone, &numbers).await?;
            let ids: BTreeSet<&str> = index
                .values()
                .flat_map(|item| item.recs.keys().map(String::as_str))
                .collect();
            let keys = ids
                .iter()
                .flat_map(|mms_id| {
                    [
                        key(record_pk(zone, mms_id), CURRENT),
                        key(lock_pk(zone, mms_id), NO_SORT),
                    ]
                })
                .collect();
            let items = self.batch_get(keys, &what).await?;
            Ok::<_, Error>((index, items))
        })?;
        let mut records: HashMap<String, StoredRecord> = HashMap::new();
        let mut locks: HashMap<String, EditorLock> = HashMap::new();
        for item in &items {
            if get_s(item, "pk")?.starts_with("LOCK#") {
                let lock = lock_from(item)?;
                locks.insert(lock.mms_id.as_str().to_owned(), lock);
            } else {
                let record = record_from(item, |marc| self.load_marc(marc))?;
                records.insert(record.mms_id.as_str().to_owned(), record);
            }
        }
        // As the default `lookup` answers: entries by number, records and locks by MMS ID.
        let lookups = sets
            .iter()
            .map(|set| {
                let set: BTreeSet<u64> = set.iter().copied().collect();
                let entries: Vec<IndexEntry> = set
                    .iter()
                    .filter_map(|number| index.get(number).map(|item| (*number, item)))
                    .flat_map(|(number, item)| {
                        item.recs.iter().map(move |(mms_id, &active)| IndexEntry {
                            number,
                            mms_id: MmsId(mms_id.clone()),
                            active,
                        })
                    })
                    .collect();
                let ids: BTreeSet<&str> = entries.iter().map(|e| e.mms_id.as_str()).collect();
                Lookup {
                    records: ids
                        .iter()
                        .filter_map(|mms_id| records.get(*mms_id).cloned())
                        .collect(),
                    locks: ids
                        .iter()
                        .filter_map(|mms_id| locks.get(*mms_id).cloned())
                        .collect(),
                    entries,
                }
            })
            .collect();
        Ok(lookups)
    }

    #[instrument(name = "dynamo.record", skip(self), fields(mms_id = %mms_id), err)]
    fn record(&self, zone: &str, mms_id: &MmsId) -> Result<Option<StoredRecord>> {
        let item = self.context.block_on(self.get_item(
            key(record_pk(zone, mms_id.as_str()), CURRENT),
            &format!("read record {:?} in zone {zone:?}", mms_id.as_str()),
        ))?;
        item.as_ref()
            .map(|item| record_from(item, |marc| self.load_marc(marc)))
            .transpose()
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
        items
            .iter()
            .map(|item| version_from(item, |marc| self.load_marc(marc)))
            .collect()
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

    #[instrument(name = "dynamo.find_by_term", skip(self), err)]
    fn find_by_term(&self, zone: &str, term: &str, limit: usize) -> Result<Vec<MmsId>> {
        let what = format!("find the records of zone {zone:?} with {term:?}");
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page_size = i32::try_from(limit.min(1_000)).unwrap_or(1_000);
        self.context.block_on(async {
            let mut ids = Vec::new();
            let mut start: Option<Item> = None;
            while ids.len() < limit {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :p")
                    .expression_attribute_values(":p", s(term_pk(zone, term)))
                    .consistent_read(true)
                    .limit(page_size)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|err| sdk_error(&what, &err))?;
                for item in page.items() {
                    ids.push(MmsId(get_s(item, "sk")?));
                }
                match page.last_evaluated_key() {
                    Some(last) if !last.is_empty() => start = Some(last.clone()),
                    _ => break,
                }
            }
            ids.truncate(limit);
            Ok(ids)
        })
    }

    #[instrument(name = "dynamo.list_records", skip(self), err)]
    fn list_records(&self, zone: &str, after: Option<&MmsId>, limit: usize) -> Result<Vec<MmsId>> {
        let what = format!("list the records of zone {zone:?}");
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page_size = i32::try_from(limit.min(1_000)).unwrap_or(1_000);
        // The GSI has no sort key: its order is DynamoDB's, and a page starts after the
        // previous page's last record (its GSI key, built from the MMS ID).
        let mut start: Option<Item> = after.map(|mms_id| {
            let mut start = key(record_pk(zone, mms_id.as_str()), CURRENT);
            start.insert("zpk".into(), s(zone));
            start
        });
        let prefix = record_pk(zone, "");
        self.context.block_on(async {
            let mut ids = Vec::new();
            while ids.len() < limit {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("by_zone")
                    .key_condition_expression("#z = :z")
                    .expression_attribute_names("#z", "zpk")
                    .expression_attribute_values(":z", s(zone))
                    .limit(page_size)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|err| sdk_error(&what, &err))?;
                for item in page.items() {
                    let pk = get_s(item, "pk")?;
                    let mms_id = pk.strip_prefix(&prefix).ok_or_else(|| {
                        Error::Corrupt(format!("{what}: {pk:?} is not a record key"))
                    })?;
                    ids.push(MmsId(mms_id.to_owned()));
                }
                match page.last_evaluated_key() {
                    Some(last) if !last.is_empty() => start = Some(last.clone()),
                    _ => break,
                }
            }
            ids.truncate(limit);
            Ok(ids)
        })
    }

    fn duplicates(&self, zone: &str) -> Result<Vec<(u64, Vec<IndexEntry>)>> {
        let what = format!("list the shared oclc numbers of zone {zone:?}");
        let mut shared = Vec::new();
        self.context
            .block_on(self.scan_prefix(&index_pk_prefix(zone), &what, |item| {
                let (number, index) = index_from(item)?;
                if index.recs.len() > 1 {
                    let entries = index
                        .recs
                        .into_iter()
                        .map(|(mms_id, active)| IndexEntry {
                            number,
                            mms_id: MmsId(mms_id),
                            active,
                        })
                        .collect();
                    shared.push((number, entries));
                }
                Ok(())
            }))?;
        shared.sort_by_key(|(number, _)| *number);
        Ok(shared)
    }

    #[instrument(name = "dynamo.commit", skip_all, err)]
    fn commit(&self, commit: &Commit) -> Result<()> {
        self.context.block_on(self.apply(commit))
    }

    #[instrument(name = "dynamo.commit_batch", skip_all, fields(n_commits = commits.len()), err)]
    fn commit_batch(&self, commits: &[Commit]) -> Result<Vec<Result<()>>> {
        let groups = pipeline::independent_groups(commits);
        let tasks: Vec<crate::bounded::Task<'_, GroupOutcomes>> = groups
            .into_iter()
            .map(|group| {
                Box::pin(async move {
                    let mut outcomes = Vec::with_capacity(group.len());
                    for commit_idx in group {
                        if let Some(commit) = commits.get(commit_idx) {
                            outcomes.push((commit_idx, self.apply(commit).await));
                        }
                    }
                    outcomes
                }) as crate::bounded::Task<'_, _>
            })
            .collect();
        let by_group = self
            .context
            .block_on(crate::bounded::run_bounded(tasks, self.commit_concurrency));
        let mut outcomes: Vec<Option<Result<()>>> = commits.iter().map(|_| None).collect();
        for (commit_idx, outcome) in by_group.into_iter().flatten() {
            if let Some(slot) = outcomes.get_mut(commit_idx) {
                *slot = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.ok_or_else(|| {
                    Error::Backend("a commit of the batch was not applied".to_owned())
                })
            })
            .collect()
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

    #[instrument(name = "dynamo.locks", skip(self), err)]
    fn locks(&self, zone: &str) -> Result<Vec<EditorLock>> {
        let what = format!("read the locks of zone {zone:?}");
        let mut locks = Vec::new();
        self.context
            .block_on(self.scan_prefix(&lock_pk(zone, ""), &what, |item| {
                let lock = lock_from(item)?;
                // `LOCK#<zone>#` cannot be the start of another zone's key: zone codes
                // hold no `#`. Checked anyway.
                if lock.zone == zone {
                    locks.push(lock);
                }
                Ok(())
            }))?;
        locks.sort_by(|a, b| a.mms_id.as_str().cmp(b.mms_id.as_str()));
        Ok(locks)
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

    #[instrument(name = "dynamo.institution_results", skip(self), err)]
    fn institution_results(
        &self,
        institution: &str,
        since_unix: i64,
        limit: usize,
    ) -> Result<Vec<ImportResult>> {
        let what = format!("read the results of institution {institution:?}");
        let page_size = i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000);
        let items = self.context.block_on(async {
            let mut items = Vec::new();
            let mut start: Option<Item> = None;
            while items.len() < limit {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("by_institution")
                    .key_condition_expression("#i = :i AND #s >= :s")
                    .expression_attribute_names("#i", "ipk")
                    .expression_attribute_names("#s", "isk")
                    .expression_attribute_values(":i", s(institution))
                    .expression_attribute_values(":s", s(received_sort_key(since_unix)))
                    .scan_index_forward(false)
                    .limit(page_size)
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
            items.truncate(limit);
            Ok::<_, Error>(items)
        })?;
        items.iter().map(result_from).collect()
    }

    // The console's staff accounts: `staff.rs`.

    #[instrument(name = "dynamo.add_staff", skip_all, fields(user = %account.user), err)]
    fn add_staff(&self, account: &StaffAccount) -> Result<()> {
        self.add_staff_item(account)
    }

    #[instrument(name = "dynamo.staff", skip(self), err)]
    fn staff(&self, user: &str) -> Result<Option<StaffAccount>> {
        self.staff_item_of(user)
    }

    #[instrument(name = "dynamo.staff_list", skip(self), err)]
    fn staff_list(&self) -> Result<Vec<StaffAccount>> {
        self.staff_items()
    }

    #[instrument(name = "dynamo.remove_staff", skip(self), err)]
    fn remove_staff(&self, user: &str) -> Result<bool> {
        self.remove_staff_item(user)
    }
}
