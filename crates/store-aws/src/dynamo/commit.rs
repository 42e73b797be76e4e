//! An import's writes: one commit as one `TransactWriteItems` whose conditions are the
//! expectation (see the crate docs, "Commit"), its cancellation reasons mapped back to the
//! port's errors, and the builders of its actions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use bibgate_store::{
    Commit, Error, ImportResult, IndexKey, MmsId, Replacement, Result, StoredRecord,
};
use tracing::debug;

use super::items::{
    CURRENT, IndexItem, Item, NO_SORT, decode_keys, decode_terms, get_n, index_item, index_pk, key,
    n, record_item, record_pk, result_item, result_pk, term_pk, version_item, with_terms,
};
use super::{DynamoStore, build_error, sdk_error};

/// The most actions one `TransactWriteItems` may hold.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// Makes transaction tokens unique within the process.
static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a transaction action is, to read its cancellation reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    AddedRecord,
    ReplacedRecord,
    Version,
    Result,
    Index,
    Term,
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

impl DynamoStore {
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
        let item = index_item(zone, number, new, read.ver.unwrap_or(0) + 1);
        self.put_action(item, condition, values)
    }

    /// The term items of one record going from `old` to `new` terms: deletes and puts.
    fn term_actions(
        &self,
        zone: &str,
        mms_id: &str,
        old: &[String],
        new: &[String],
    ) -> Result<Vec<TransactWriteItem>> {
        let what = "build a transaction";
        let mut actions = Vec::new();
        for term in old.iter().filter(|t| !new.contains(t)) {
            actions.push(self.plain_delete(key(term_pk(zone, term), mms_id), what)?);
        }
        for term in new.iter().filter(|t| !old.contains(t)) {
            actions.push(self.plain_put(key(term_pk(zone, term), mms_id), what)?);
        }
        Ok(actions)
    }

    pub(super) fn plain_put(&self, item: Item, what: &str) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|err| build_error(what, err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) fn plain_delete(&self, key: Item, what: &str) -> Result<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .map_err(|err| build_error(what, err))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// An unconditional transaction (profile and its pointer); a conflict with another
    /// transaction on the same items is reported as [`Error::Conflict`].
    pub(super) async fn transact_plain(
        &self,
        actions: Vec<TransactWriteItem>,
        what: &str,
    ) -> Result<()> {
        let sent = self.send_transaction(actions).await;
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

    /// Sends one `TransactWriteItems` with an idempotency token.
    async fn send_transaction(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> std::result::Result<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        >,
    > {
        self.client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(transaction_token())
            .send()
            .await
    }

    /// Applies one commit (see the crate docs, "Commit").
    pub(super) async fn apply(&self, commit: &Commit) -> Result<()> {
        let (expect, record, expected_revision, replaced_by, reason, result) = match commit {
            Commit::Reject { result } => return self.put_result_alone(result).await,
            Commit::ReplaceMany { replacements } => return self.replace_many(replacements).await,
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
        let old_terms = match &current {
            Some(item) => decode_terms(item)?,
            None => Vec::new(),
        };
        let new_terms = bibgate_store::search::record_terms(&record.marc);
        let term_actions = self.term_actions(zone, mms_id, &old_terms, &new_terms)?;
        let n_actions = index_actions.len()
            + term_actions.len()
            + 1
            + usize::from(current.is_some())
            + usize::from(result.is_some());
        if n_actions > MAX_TRANSACTION_ITEMS {
            return Err(Error::RecordTooLarge(format!(
                "it touches {} OCLC numbers, and DynamoDB writes at most {MAX_TRANSACTION_ITEMS} items in one transaction (the record, its result and one index item per number); remove cancelled or duplicate numbers (035 $z) from the record and send it again",
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
        let marc = self.store_marc(record, new_revision)?;
        let record_item = with_terms(record_item(record, new_revision, &marc), &new_terms);
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
            let version = version_item(current, record, expected, replaced_by, reason)?;
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
        roles.extend(std::iter::repeat_n(Role::Term, term_actions.len()));
        actions.extend(term_actions);
        bibgate_failpoint::point("store.commit.before");
        self.transact(actions, &roles, record, result, &what).await
    }

    /// [`Commit::ReplaceMany`]: one `TransactWriteItems` with, per record, its new state
    /// (conditioned on the expected revision) and its prior version, and each index item
    /// whose set changes once for all records (conditioned on the `ver` read).
    async fn replace_many(&self, replacements: &[Replacement]) -> Result<()> {
        let Some(first) = replacements.first() else {
            return Ok(());
        };
        let zone = first.record.zone.as_str();
        let what = format!("replace {} records in zone {zone:?}", replacements.len());
        let mut seen = BTreeSet::new();
        for replacement in replacements {
            if replacement.record.zone != zone || !seen.insert(&replacement.record.mms_id) {
                return Err(Error::Backend(format!(
                    "could not {what}: each record once, all of one zone"
                )));
            }
        }
        let mut currents = Vec::with_capacity(replacements.len());
        let mut touched = BTreeSet::new();
        for replacement in replacements {
            let mms_id = replacement.record.mms_id.as_str();
            let item = self
                .get_item(key(record_pk(zone, mms_id), CURRENT), &what)
                .await?
                .ok_or_else(|| Error::NotFound(format!("record {mms_id:?} in zone {zone:?}")))?;
            let stored: u64 = get_n(&item, "revision")?;
            if stored != replacement.expected_revision {
                return Err(Error::Conflict(format!(
                    "record {mms_id:?} in zone {zone:?} is at revision {stored}, not {}",
                    replacement.expected_revision
                )));
            }
            touched.extend(key_set(&decode_keys(&item)?).into_keys());
            touched.extend(key_set(&replacement.record.keys).into_keys());
            currents.push(item);
        }
        let index = self.read_index(zone, &touched).await?;
        let mut index_actions = Vec::new();
        for (&number, read) in &index {
            let mut new = read.recs.clone();
            for replacement in replacements {
                let mms_id = replacement.record.mms_id.as_str();
                new.remove(mms_id);
                if let Some(&active) = key_set(&replacement.record.keys).get(&number) {
                    new.insert(mms_id.to_owned(), active);
                }
            }
            if new != read.recs {
                index_actions.push(self.index_action(zone, number, read, &new)?);
            }
        }
        let mut term_actions = Vec::new();
        let mut new_terms = Vec::with_capacity(replacements.len());
        for (replacement, current) in replacements.iter().zip(&currents) {
            let terms = bibgate_store::search::record_terms(&replacement.record.marc);
            term_actions.extend(self.term_actions(
                zone,
                replacement.record.mms_id.as_str(),
                &decode_terms(current)?,
                &terms,
            )?);
            new_terms.push(terms);
        }
        let n_actions = index_actions.len() + term_actions.len() + 2 * replacements.len();
        if n_actions > MAX_TRANSACTION_ITEMS {
            return Err(Error::Backend(format!(
                "could not {what}: it needs {n_actions} writes, and one transaction holds at most {MAX_TRANSACTION_ITEMS}"
            )));
        }
        let mut actions = Vec::with_capacity(n_actions);
        let mut roles = Vec::with_capacity(n_actions);
        for ((replacement, current), terms) in replacements.iter().zip(&currents).zip(&new_terms) {
            let expected = replacement.expected_revision;
            let new_revision = expected
                .checked_add(1)
                .ok_or_else(|| Error::Backend(format!("could not {what}: revision overflow")))?;
            let marc = self.store_marc(&replacement.record, new_revision)?;
            actions.push(self.put_action(
                with_terms(record_item(&replacement.record, new_revision, &marc), terms),
                "revision = :r",
                vec![(":r", n(expected))],
            )?);
            roles.push(Role::ReplacedRecord);
            let version = version_item(
                current,
                &replacement.record,
                expected,
                &replacement.replaced_by,
                &replacement.reason,
            )?;
            actions.push(self.put_action(version, "attribute_not_exists(pk)", Vec::new())?);
            roles.push(Role::Version);
        }
        roles.extend(std::iter::repeat_n(Role::Index, index_actions.len()));
        actions.extend(index_actions);
        roles.extend(std::iter::repeat_n(Role::Term, term_actions.len()));
        actions.extend(term_actions);
        bibgate_failpoint::point("store.commit.before");
        self.transact(actions, &roles, &first.record, None, &what)
            .await
    }

    async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
        roles: &[Role],
        record: &StoredRecord,
        result: Option<&ImportResult>,
        what: &str,
    ) -> Result<()> {
        let sent = self.send_transaction(actions).await;
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
    fn tokens_fit_dynamodb() {
        assert!(transaction_token().len() <= 36);
        assert_ne!(transaction_token(), transaction_token());
    }
}
