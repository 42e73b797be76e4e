//! The logon lock-out shared by every shim process: the `LogonLocks` port.
//!
//! Each shim counts failed logons itself (per logon id and address, and per logon id); when a
//! count reaches its threshold, the shim *publishes* a lock here, and every shim asks here
//! (through a short cache) whether a logon id is locked, so a lock imposed by one task of a
//! service holds on all of them, and `bibgate profile unlock` lifts it everywhere.
//!
//! Adapters: [`BlobLogonLocks`] over any [`BlobStore`] (the embedded backend: files under
//! `logon-locks/` in the data directory), and the DynamoDB one (an item per lock whose TTL
//! attribute removes it after it ended).

use crate::{BlobStore, Error, Result};

/// One lock of a logon id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogonLock {
    /// The logon id.
    pub logon_id: String,
    /// The address it is locked for; `None`: every address that has not logged on with it
    /// recently (the per-logon-id threshold).
    pub address: Option<String>,
    /// When it was imposed, Unix seconds.
    pub locked_unix: i64,
    /// When it ends, Unix seconds (exclusive).
    pub until_unix: i64,
}

impl LogonLock {
    /// True while the lock holds at `now_unix`.
    pub fn holds_at(&self, now_unix: i64) -> bool {
        now_unix < self.until_unix
    }

    /// `address 192.0.2.1` or `all addresses`.
    pub fn scope(&self) -> String {
        match &self.address {
            Some(address) => format!("address {address}"),
            None => "all addresses".to_owned(),
        }
    }
}

/// Locks of logon ids, shared by every shim process of a backend.
pub trait LogonLocks: Send + Sync {
    /// Records a lock (replacing one of the same logon id and scope).
    fn put(&self, lock: &LogonLock) -> Result<()>;
    /// The locks of `logon_id` that hold at `now_unix`.
    fn locks(&self, logon_id: &str, now_unix: i64) -> Result<Vec<LogonLock>>;
    /// Removes every lock of `logon_id` (current or ended); returns how many held at
    /// `now_unix`.
    fn unlock(&self, logon_id: &str, now_unix: i64) -> Result<usize>;
}

/// Hex of the bytes of `text`: any logon id or address as one key segment.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn scope_segment(address: Option<&str>) -> String {
    address.map_or_else(|| "all".to_owned(), |a| format!("a-{}", hex(a)))
}

/// [`LogonLocks`] as small blobs `logon-locks/<hex logon id>/<scope>.lock` in a
/// [`BlobStore`]; an ended lock is ignored when read and removed by `unlock`.
#[derive(Clone)]
pub struct BlobLogonLocks {
    blobs: std::sync::Arc<dyn BlobStore>,
}

impl std::fmt::Debug for BlobLogonLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobLogonLocks").finish_non_exhaustive()
    }
}

impl BlobLogonLocks {
    /// Locks kept in `blobs`.
    pub fn new(blobs: std::sync::Arc<dyn BlobStore>) -> BlobLogonLocks {
        BlobLogonLocks { blobs }
    }

    fn prefix(logon_id: &str) -> String {
        format!("logon-locks/{}/", hex(logon_id))
    }

    fn encode(lock: &LogonLock) -> String {
        format!(
            "v1\n{}\n{}\n{}\n{}\n",
            lock.locked_unix,
            lock.until_unix,
            lock.address.as_deref().unwrap_or("*"),
            lock.logon_id
        )
    }

    fn decode(key: &str, bytes: &[u8]) -> Result<LogonLock> {
        let bad = || Error::Corrupt(format!("logon lock {key:?} is not readable"));
        let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
        let mut lines = text.lines();
        if lines.next() != Some("v1") {
            return Err(bad());
        }
        let locked_unix = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
        let until_unix = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
        let address = match lines.next().ok_or_else(bad)? {
            "*" => None,
            address => Some(address.to_owned()),
        };
        let logon_id = lines.next().ok_or_else(bad)?.to_owned();
        Ok(LogonLock {
            logon_id,
            address,
            locked_unix,
            until_unix,
        })
    }

    fn all(&self, logon_id: &str) -> Result<Vec<(String, LogonLock)>> {
        let mut locks = Vec::new();
        for key in self.blobs.list(&Self::prefix(logon_id))? {
            if let Some(bytes) = self.blobs.get(&key)? {
                locks.push((key.clone(), Self::decode(&key, &bytes)?));
            }
        }
        Ok(locks)
    }
}

impl LogonLocks for BlobLogonLocks {
    fn put(&self, lock: &LogonLock) -> Result<()> {
        let key = format!(
            "{}{}.lock",
            Self::prefix(&lock.logon_id),
            scope_segment(lock.address.as_deref())
        );
        self.blobs.put(&key, Self::encode(lock).as_bytes())
    }

    fn locks(&self, logon_id: &str, now_unix: i64) -> Result<Vec<LogonLock>> {
        Ok(self
            .all(logon_id)?
            .into_iter()
            .map(|(_, lock)| lock)
            .filter(|lock| lock.holds_at(now_unix))
            .collect())
    }

    fn unlock(&self, logon_id: &str, now_unix: i64) -> Result<usize> {
        let mut held = 0;
        for (key, lock) in self.all(logon_id)? {
            self.blobs.delete(&key)?;
            held += usize::from(lock.holds_at(now_unix));
        }
        Ok(held)
    }
}

/// The [`LogonLocks`] contract: every adapter runs it on a fresh instance.
#[cfg(feature = "test-support")]
#[allow(clippy::unwrap_used)]
pub fn logon_locks_contract(locks: &dyn LogonLocks) {
    let lock = |id: &str, address: Option<&str>, until| LogonLock {
        logon_id: id.to_owned(),
        address: address.map(str::to_owned),
        locked_unix: 1_000,
        until_unix: until,
    };
    assert!(locks.locks("01A", 1_000).unwrap().is_empty());
    locks.put(&lock("01A", Some("192.0.2.1"), 2_000)).unwrap();
    locks.put(&lock("01A", None, 1_500)).unwrap();
    locks.put(&lock("01A", Some("2001:db8::1"), 2_000)).unwrap();
    locks
        .put(&lock("01B/x y", Some("192.0.2.1"), 2_000))
        .unwrap();
    let mut held = locks.locks("01A", 1_200).unwrap();
    held.sort_by_key(|l| l.address.clone());
    assert_eq!(
        held,
        [
            lock("01A", None, 1_500),
            lock("01A", Some("192.0.2.1"), 2_000),
            lock("01A", Some("2001:db8::1"), 2_000),
        ]
    );
    // An ended lock no longer holds; a new lock of the same scope replaces the old one.
    assert_eq!(locks.locks("01A", 1_600).unwrap().len(), 2);
    locks.put(&lock("01A", Some("192.0.2.1"), 3_000)).unwrap();
    assert!(
        locks
            .locks("01A", 2_500)
            .unwrap()
            .contains(&lock("01A", Some("192.0.2.1"), 3_000))
    );
    // Unlock counts what held and removes everything of that logon id only.
    assert_eq!(locks.unlock("01A", 1_600).unwrap(), 2);
    assert!(locks.locks("01A", 1_000).unwrap().is_empty());
    assert_eq!(locks.locks("01B/x y", 1_000).unwrap().len(), 1);
    assert_eq!(locks.unlock("01A", 1_600).unwrap(), 0);
}
