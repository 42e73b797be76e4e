//! The logon locks shared by every shim process ([`LogonLocks`], on the backend's store):
//! a lock one shim imposes holds on all of them, and `bibgate profile unlock` lifts it
//! everywhere. Each shim still counts failures itself (`logon.rs`); this module publishes the
//! locks its counts impose and answers "is this logon id locked here?" from a short cache
//! (one store read per logon id every [`CACHE_TTL`] at most).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bibgate_store::{LogonLock, LogonLocks};
use tracing::warn;

/// How long a logon id's locks, once read, are trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Cached logon ids beyond which the stale ones are dropped (only logon ids of existing
/// profiles get here, so this bounds a consortium's size, not an attacker's).
const MAX_CACHED: usize = 4_096;

/// A logon id's locks as last read, and when.
type Cached = (Instant, Vec<LogonLock>);

pub(crate) struct SharedLocks {
    locks: Arc<dyn LogonLocks>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl SharedLocks {
    pub(crate) fn new(locks: Arc<dyn LogonLocks>) -> SharedLocks {
        SharedLocks {
            locks,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, logon_id: &str, now: Instant) -> Option<Vec<LogonLock>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(logon_id)
            .filter(|(read, _)| now.duration_since(*read) < CACHE_TTL)
            .map(|(_, locks)| locks.clone())
    }

    fn remember(&self, logon_id: &str, locks: Vec<LogonLock>, now: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (read, _)| now.duration_since(*read) < CACHE_TTL);
        }
        cache.insert(logon_id.to_owned(), (now, locks));
    }

    /// True while a shared lock holds `logon_id` for `peer` (a lock of every address spares
    /// a `trusted` one, which logged on with the logon id recently). A store that cannot
    /// be read locks nobody out (logged): the shim's own counts still apply.
    pub(crate) async fn is_locked(
        &self,
        logon_id: &str,
        peer: IpAddr,
        trusted: bool,
        now_unix: i64,
    ) -> bool {
        let now = Instant::now();
        let locks = match self.cached(logon_id, now) {
            Some(locks) => locks,
            None => {
                let store = self.locks.clone();
                let id = logon_id.to_owned();
                let read = tokio::task::spawn_blocking(move || store.locks(&id, now_unix)).await;
                match read {
                    Ok(Ok(locks)) => {
                        self.remember(logon_id, locks.clone(), now);
                        locks
                    }
                    Ok(Err(error)) => {
                        warn!(%error, "could not read the shared logon locks");
                        return false;
                    }
                    Err(error) => {
                        warn!(%error, "could not read the shared logon locks");
                        return false;
                    }
                }
            }
        };
        let peer = peer.to_string();
        locks.iter().any(|lock| {
            lock.holds_at(now_unix)
                && match &lock.address {
                    Some(address) => *address == peer,
                    None => !trusted,
                }
        })
    }

    /// Publishes a lock: at once in this shim's cache, then in the store (a failed write is
    /// logged; this shim's own count still holds the logon id until its cache expires).
    pub(crate) async fn publish(&self, lock: LogonLock) {
        let now = Instant::now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = cache
                .entry(lock.logon_id.clone())
                .or_insert_with(|| (now, Vec::new()));
            if now.duration_since(entry.0) >= CACHE_TTL {
                // What was read long ago is read again after this lock's TTL.
                *entry = (now, Vec::new());
            }
            entry.1.retain(|held| held.address != lock.address);
            entry.1.push(lock.clone());
        }
        let store = self.locks.clone();
        match tokio::task::spawn_blocking(move || store.put(&lock)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "could not share a logon lock"),
            Err(error) => warn!(%error, "could not share a logon lock"),
        }
    }
}
