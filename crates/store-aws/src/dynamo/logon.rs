//! The [`LogonLocks`] port on the table: one item per lock, `LOGONLOCK#<logon id>` /
//! `<address>` or `*` (every address), with `locked_unix`, `until_unix` and `expires_at` (the
//! table's TTL attribute, a day after the lock ends: DynamoDB removes ended locks by itself;
//! until it does, reads ignore them).

use bibgate_store::{LogonLock, LogonLocks, Result};
use tracing::instrument;

use super::DynamoStore;
use super::items::{Item, get_n, get_s, key, n, s};
use crate::context::AwsContext;

/// How long after its end a lock item is kept before DynamoDB's TTL removes it.
const KEEP_AFTER_END_SECONDS: i64 = 24 * 3600;

fn pk(logon_id: &str) -> String {
    format!("LOGONLOCK#{logon_id}")
}

fn sk(address: Option<&str>) -> &str {
    address.unwrap_or("*")
}

fn lock_from(item: &Item) -> Result<LogonLock> {
    let address = get_s(item, "sk")?;
    Ok(LogonLock {
        logon_id: get_s(item, "logon_id")?,
        address: (address != "*").then_some(address),
        locked_unix: get_n(item, "locked_unix")?,
        until_unix: get_n(item, "until_unix")?,
    })
}

/// The [`LogonLocks`] port on a DynamoDB table (see the module docs).
#[derive(Debug)]
pub struct DynamoLogonLocks {
    table: DynamoStore,
}

impl DynamoLogonLocks {
    /// Locks in `table`.
    pub fn new(context: &AwsContext, table: &str) -> DynamoLogonLocks {
        DynamoLogonLocks {
            table: DynamoStore::new(context, table),
        }
    }

    fn all(&self, logon_id: &str) -> Result<Vec<LogonLock>> {
        let items = self.table.context.block_on(self.table.query_partition(
            &pk(logon_id),
            None,
            "read the logon locks",
        ))?;
        items.iter().map(lock_from).collect()
    }
}

impl LogonLocks for DynamoLogonLocks {
    #[instrument(name = "dynamo.logon_locks.put", skip_all, err)]
    fn put(&self, lock: &LogonLock) -> Result<()> {
        let mut item = key(pk(&lock.logon_id), sk(lock.address.as_deref()));
        item.extend([
            ("logon_id".to_owned(), s(&lock.logon_id)),
            ("locked_unix".to_owned(), n(lock.locked_unix)),
            ("until_unix".to_owned(), n(lock.until_unix)),
            (
                "expires_at".to_owned(),
                n(lock.until_unix.saturating_add(KEEP_AFTER_END_SECONDS)),
            ),
        ]);
        self.table
            .context
            .block_on(self.table.put_item(item, "record a logon lock"))
    }

    #[instrument(name = "dynamo.logon_locks.locks", skip_all, err)]
    fn locks(&self, logon_id: &str, now_unix: i64) -> Result<Vec<LogonLock>> {
        Ok(self
            .all(logon_id)?
            .into_iter()
            .filter(|lock| lock.holds_at(now_unix))
            .collect())
    }

    #[instrument(name = "dynamo.logon_locks.unlock", skip_all, err)]
    fn unlock(&self, logon_id: &str, now_unix: i64) -> Result<usize> {
        let mut held = 0;
        for lock in self.all(logon_id)? {
            let what = "remove a logon lock";
            let client = &self.table.client;
            self.table
                .context
                .block_on(async {
                    client
                        .delete_item()
                        .table_name(&self.table.table)
                        .set_key(Some(key(pk(logon_id), sk(lock.address.as_deref()))))
                        .send()
                        .await
                })
                .map_err(|err| super::sdk_error(what, &err))?;
            held += usize::from(lock.holds_at(now_unix));
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_store::Error;

    #[test]
    fn a_corrupt_item_is_reported() {
        let mut item = key(pk("01A"), "*");
        item.insert("logon_id".into(), s("01A"));
        assert!(matches!(lock_from(&item), Err(Error::Corrupt(_))));
    }
}
