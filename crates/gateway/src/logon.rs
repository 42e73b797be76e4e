//! Logon bookkeeping: the failure back-off per IP address, the lock-out per logon id and
//! address (and per logon id for untrusted addresses) and the cache of verified logons.
//!
//! All are plain data structures that take `now` as an argument, so they are tested
//! without a clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use bibgate_store::Profile;

use crate::config::{LogonBackoff, LogonLockout};
use crate::digest::Digester;

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 4_096;
/// Failures remembered per address (enough to reach any cap).
const MAX_REMEMBERED: usize = 64;

/// Recent logon failures per IP address.
#[derive(Debug)]
pub(crate) struct Throttle {
    config: LogonBackoff,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Throttle {
    pub(crate) fn new(config: LogonBackoff) -> Throttle {
        Throttle {
            config,
            failures: HashMap::new(),
        }
    }

    /// Records a failure at `now` and returns how long to delay its reply.
    pub(crate) fn failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        let window = self.config.window;
        if self.failures.len() >= SWEEP_AT {
            self.failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let times = self.failures.entry(ip).or_default();
        while times
            .front()
            .is_some_and(|first| now.duration_since(*first) >= window)
        {
            times.pop_front();
        }
        times.push_back(now);
        if times.len() > MAX_REMEMBERED {
            times.pop_front();
        }
        let count = u32::try_from(times.len()).unwrap_or(u32::MAX);
        if count <= self.config.threshold {
            return Duration::ZERO;
        }
        let doublings = (count - self.config.threshold - 1).min(16);
        self.config
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.config.cap)
    }

    /// Clears an address after a successful logon.
    pub(crate) fn succeeded(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }
}

/// What a failure did to a logon id's lock-out state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Counted; not locked.
    Counted,
    /// This failure reached the threshold of its address: the logon id is now locked for
    /// that address (log it once).
    LockedNow,
    /// This failure reached the threshold of all addresses: the logon id is now locked for
    /// every address that is not trusted (log it once).
    LockedForAll,
    /// The logon id was already locked for this address (the failure is not counted again).
    AlreadyLocked,
}

#[derive(Debug, Default)]
struct LockoutEntry {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl LockoutEntry {
    fn is_locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        !self.is_locked(now)
            && self
                .failures
                .back()
                .is_none_or(|last| now.duration_since(*last) >= window)
    }

    /// Counts a failure at `now`; true when it reaches `threshold` (the entry is then
    /// locked for `duration` and its count starts again).
    fn count(
        &mut self,
        now: Instant,
        threshold: u32,
        window: Duration,
        duration: Duration,
    ) -> bool {
        if self.locked_until.is_some_and(|until| now >= until) {
            self.locked_until = None;
        }
        while self
            .failures
            .front()
            .is_some_and(|first| now.duration_since(*first) >= window)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        let count = u32::try_from(self.failures.len()).unwrap_or(u32::MAX);
        if count >= threshold {
            self.failures.clear();
            self.locked_until = Some(now + duration);
            return true;
        }
        false
    }
}

/// Drops the stale entries of `map` once it holds `sweep_at` of them; the next sweep waits
/// until the map has doubled (O(1) per call however many entries are current).
fn sweep<K: Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    sweep_at: &mut usize,
    stale: impl Fn(&V) -> bool,
) {
    if map.len() >= *sweep_at {
        map.retain(|_, value| !stale(value));
        *sweep_at = (map.len() * 2).max(SWEEP_AT);
    }
}

/// Failed logons per logon id and address, and per logon id from all addresses, and the
/// addresses trusted with a logon id because they logged on with it.
///
/// Only logon ids of existing profiles are ever recorded (the caller counts a failure only
/// after the profile was found); the maps are swept of stale entries as they grow.
#[derive(Debug)]
pub(crate) struct Lockout {
    config: LogonLockout,
    pairs: HashMap<(String, IpAddr), LockoutEntry>,
    ids: HashMap<String, LockoutEntry>,
    trusted: HashMap<(String, IpAddr), Instant>,
    sweep_pairs: usize,
    sweep_trusted: usize,
}

impl Lockout {
    pub(crate) fn new(config: LogonLockout) -> Lockout {
        Lockout {
            config,
            pairs: HashMap::new(),
            ids: HashMap::new(),
            trusted: HashMap::new(),
            sweep_pairs: SWEEP_AT,
            sweep_trusted: SWEEP_AT,
        }
    }

    /// Forgets the logon id's failures and locks (a shared lock was lifted by staff).
    pub(crate) fn forget(&mut self, logon_id: &str) {
        self.ids.remove(logon_id);
        self.pairs.retain(|(id, _), _| id != logon_id);
    }

    /// True when `ip` logged on with `logon_id` recently (a lock of every address spares it).
    pub(crate) fn is_trusted(&self, logon_id: &str, ip: IpAddr, now: Instant) -> bool {
        self.trusted
            .get(&(logon_id.to_string(), ip))
            .is_some_and(|since| now.duration_since(*since) < self.config.trusted_for)
    }

    /// True while `logon_id` is locked for `ip` at `now`.
    pub(crate) fn is_locked(&self, logon_id: &str, ip: IpAddr, now: Instant) -> bool {
        let pair = self
            .pairs
            .get(&(logon_id.to_string(), ip))
            .is_some_and(|entry| entry.is_locked(now));
        pair || (self
            .ids
            .get(logon_id)
            .is_some_and(|entry| entry.is_locked(now))
            && !self.is_trusted(logon_id, ip, now))
    }

    /// Records a failed logon for `logon_id` from `ip` at `now`.
    pub(crate) fn failed(&mut self, logon_id: &str, ip: IpAddr, now: Instant) -> Lock {
        if self.is_locked(logon_id, ip, now) {
            return Lock::AlreadyLocked;
        }
        let LogonLockout {
            threshold,
            id_threshold,
            window,
            duration,
            ..
        } = self.config;
        let mut outcome = Lock::Counted;
        if id_threshold > 0 {
            let entry = self.ids.entry(logon_id.to_string()).or_default();
            if !entry.is_locked(now) && entry.count(now, id_threshold, window, duration) {
                outcome = Lock::LockedForAll;
            }
        }
        if threshold > 0 {
            sweep(&mut self.pairs, &mut self.sweep_pairs, |entry| {
                entry.is_stale(now, window)
            });
            let entry = self.pairs.entry((logon_id.to_string(), ip)).or_default();
            if entry.count(now, threshold, window, duration) {
                outcome = Lock::LockedNow;
            }
        }
        outcome
    }

    /// After a successful logon (never called while locked): clears the address's
    /// failures for the logon id and trusts the address with it from `now`.
    pub(crate) fn succeeded(&mut self, logon_id: &str, ip: IpAddr, now: Instant) {
        let key = (logon_id.to_string(), ip);
        self.pairs.remove(&key);
        let trusted_for = self.config.trusted_for;
        sweep(&mut self.trusted, &mut self.sweep_trusted, |since| {
            now.duration_since(*since) >= trusted_for
        });
        self.trusted.insert(key, now);
    }
}

/// Logons whose password was verified recently.
///
/// Keyed by logon id; holds a keyed digest of the password (never the password), a digest
/// of the profile's password settings it was verified against (current hash, previous hash
/// and its expiry), so any change to them invalidates it, and, when the profile still
/// accepted a previous password, that password's expiry: the entry stops at the expiry, so
/// an expired previous password is checked again (and refused) instead of being let
/// through by the cache.
#[derive(Debug)]
pub(crate) struct LogonCache {
    ttl: Duration,
    digester: Digester,
    entries: HashMap<String, CacheEntry>,
}

#[derive(Debug)]
struct CacheEntry {
    password: u128,
    credentials: u128,
    since: Instant,
    until_unix: Option<i64>,
}

impl LogonCache {
    pub(crate) fn new(ttl: Duration) -> LogonCache {
        LogonCache {
            ttl,
            digester: Digester::new(),
            entries: HashMap::new(),
        }
    }

    fn credentials(&self, profile: &Profile) -> u128 {
        let mut text = profile.password_hash.clone();
        text.push('\0');
        text.push_str(profile.previous_password_hash.as_deref().unwrap_or(""));
        text.push('\0');
        if let Some(expires) = profile.previous_password_expires {
            text.push_str(&expires.to_string());
        }
        self.digester.digest(text.as_bytes())
    }

    /// True when `password` was verified for `logon_id` against the profile's current
    /// password settings within the TTL, and any previous password accepted then is still
    /// accepted at `now_unix`.
    pub(crate) fn hit(
        &self,
        logon_id: &str,
        password: &str,
        profile: &Profile,
        now: Instant,
        now_unix: i64,
    ) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        self.entries.get(logon_id).is_some_and(|entry| {
            now.duration_since(entry.since) < self.ttl
                && entry.until_unix.is_none_or(|until| now_unix < until)
                && entry.credentials == self.credentials(profile)
                && entry.password == self.digester.digest(password.as_bytes())
        })
    }

    /// Remembers a logon verified against `profile` at `now` (`now_unix`).
    pub(crate) fn insert(
        &mut self,
        logon_id: &str,
        password: &str,
        profile: &Profile,
        now: Instant,
        now_unix: i64,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= SWEEP_AT {
            let ttl = self.ttl;
            self.entries
                .retain(|_, entry| now.duration_since(entry.since) < ttl);
        }
        let until_unix = profile
            .previous_password_at(now_unix)
            .and(profile.previous_password_expires);
        let entry = CacheEntry {
            password: self.digester.digest(password.as_bytes()),
            credentials: self.credentials(profile),
            since: now,
            until_unix,
        };
        self.entries.insert(logon_id.to_string(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn failures_are_slowed_after_the_threshold_and_capped() {
        let mut throttle = Throttle::new(LogonBackoff::default());
        let start = Instant::now();
        let delays: Vec<u64> = (0..10)
            .map(|i| {
                throttle
                    .failed(ip(1), start + Duration::from_secs(i))
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 0, 1, 2, 4, 5, 5]);
        // Another address is not affected.
        assert_eq!(throttle.failed(ip(2), start), Duration::ZERO);
        // A success clears the count.
        throttle.succeeded(ip(1));
        assert_eq!(
            throttle.failed(ip(1), start + Duration::from_secs(11)),
            Duration::ZERO
        );
    }

    #[test]
    fn failures_expire_after_the_window() {
        let mut throttle = Throttle::new(LogonBackoff {
            threshold: 1,
            ..LogonBackoff::default()
        });
        let start = Instant::now();
        assert_eq!(throttle.failed(ip(1), start), Duration::ZERO);
        assert_eq!(
            throttle.failed(ip(1), start + Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            throttle.failed(ip(1), start + Duration::from_secs(400)),
            Duration::ZERO
        );
    }

    fn lockout() -> Lockout {
        Lockout::new(LogonLockout {
            threshold: 3,
            id_threshold: 0,
            window: Duration::from_secs(900),
            duration: Duration::from_secs(900),
            trusted_for: Duration::from_secs(3_600),
        })
    }

    #[test]
    fn a_logon_id_is_locked_at_the_threshold_and_the_lock_expires() {
        let mut lockout = lockout();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(0)), Lock::Counted);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(10)), Lock::Counted);
        assert!(!lockout.is_locked("ALPHA", ip(1), at(10)));
        assert_eq!(lockout.failed("ALPHA", ip(1), at(20)), Lock::LockedNow);
        assert!(lockout.is_locked("ALPHA", ip(1), at(20)));
        // Further failures while locked neither count nor extend the lock.
        assert_eq!(lockout.failed("ALPHA", ip(1), at(500)), Lock::AlreadyLocked);
        assert!(lockout.is_locked("ALPHA", ip(1), at(919)));
        // Another logon id is not affected.
        assert!(!lockout.is_locked("BETA", ip(1), at(20)));
        assert_eq!(lockout.failed("BETA", ip(1), at(20)), Lock::Counted);
        // The lock expires after its duration; counting starts again from zero.
        assert!(!lockout.is_locked("ALPHA", ip(1), at(920)));
        assert_eq!(lockout.failed("ALPHA", ip(1), at(921)), Lock::Counted);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(922)), Lock::Counted);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(923)), Lock::LockedNow);
    }

    #[test]
    fn a_success_before_the_threshold_clears_the_count() {
        let mut lockout = lockout();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(0)), Lock::Counted);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(1)), Lock::Counted);
        lockout.succeeded("ALPHA", ip(1), at(1));
        assert_eq!(lockout.failed("ALPHA", ip(1), at(2)), Lock::Counted);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(3)), Lock::Counted);
        assert!(!lockout.is_locked("ALPHA", ip(1), at(3)));
    }

    #[test]
    fn failures_older_than_the_window_do_not_lock() {
        let mut lockout = lockout();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(0)), Lock::Counted);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(600)), Lock::Counted);
        // The first failure is now 900 s old and no longer counts.
        assert_eq!(lockout.failed("ALPHA", ip(1), at(900)), Lock::Counted);
        assert_eq!(lockout.failed("ALPHA", ip(1), at(901)), Lock::LockedNow);
    }

    #[test]
    fn a_zero_threshold_never_locks() {
        let mut lockout = Lockout::new(LogonLockout {
            threshold: 0,
            id_threshold: 0,
            ..LogonLockout::default()
        });
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(lockout.failed("ALPHA", ip(1), now), Lock::Counted);
        }
        assert!(!lockout.is_locked("ALPHA", ip(1), now));
    }

    #[test]
    fn failures_from_one_address_lock_the_logon_id_for_that_address_only() {
        let mut lockout = lockout();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        for s in 0..2 {
            assert_eq!(lockout.failed("ALPHA", ip(9), at(s)), Lock::Counted);
        }
        assert_eq!(lockout.failed("ALPHA", ip(9), at(2)), Lock::LockedNow);
        assert!(lockout.is_locked("ALPHA", ip(9), at(3)));
        // Another address, never seen before, is not locked, and its count is its own.
        assert!(!lockout.is_locked("ALPHA", ip(1), at(3)));
        assert_eq!(lockout.failed("ALPHA", ip(1), at(3)), Lock::Counted);
        assert!(!lockout.is_locked("ALPHA", ip(1), at(3)));
    }

    #[test]
    fn failures_from_many_addresses_lock_the_logon_id_except_for_trusted_addresses() {
        let mut lockout = Lockout::new(LogonLockout {
            threshold: 3,
            id_threshold: 5,
            window: Duration::from_secs(900),
            duration: Duration::from_secs(900),
            trusted_for: Duration::from_secs(600),
        });
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // The library's own address logs on.
        lockout.succeeded("ALPHA", ip(1), at(0));
        // Five guessers, one failure each: below each address's threshold, at the logon
        // id's.
        for last in 10..14 {
            assert_eq!(lockout.failed("ALPHA", ip(last), at(1)), Lock::Counted);
        }
        assert_eq!(lockout.failed("ALPHA", ip(14), at(1)), Lock::LockedForAll);
        assert!(lockout.is_locked("ALPHA", ip(10), at(2)));
        assert!(
            lockout.is_locked("ALPHA", ip(200), at(2)),
            "a new address too"
        );
        assert!(!lockout.is_locked("ALPHA", ip(1), at(2)), "trusted");
        assert!(!lockout.is_locked("BETA", ip(10), at(2)));
        // The trust ends after its period; the lock after its duration.
        assert!(lockout.is_locked("ALPHA", ip(1), at(600)));
        assert!(!lockout.is_locked("ALPHA", ip(10), at(901)));
    }

    fn profile(hash: &str) -> Profile {
        bibgate_import::default_profile("A", hash.into(), bibgate_store::TargetZone::Institution)
    }

    #[test]
    fn the_cache_matches_password_and_profile_hash_within_its_ttl() {
        let mut cache = LogonCache::new(Duration::from_secs(60));
        let now = Instant::now();
        let p1 = profile("$hash1");
        cache.insert("A", "pw", &p1, now, 0);
        assert!(cache.hit("A", "pw", &p1, now, 0));
        assert!(!cache.hit("A", "pW", &p1, now, 0));
        assert!(!cache.hit("A", "pw", &profile("$hash2"), now, 0));
        assert!(!cache.hit("B", "pw", &p1, now, 0));
        assert!(!cache.hit("A", "pw", &p1, now + Duration::from_secs(61), 0));
        assert!(!format!("{cache:?}").contains("pw\""));
    }

    #[test]
    fn the_cache_never_outlives_a_previous_password() {
        let mut cache = LogonCache::new(Duration::from_secs(600));
        let now = Instant::now();
        let mut rotated = profile("$new");
        rotated.previous_password_hash = Some("$old".into());
        rotated.previous_password_expires = Some(1_000);
        // Verified while the previous password was accepted: the entry ends at its expiry.
        cache.insert("A", "old-pw", &rotated, now, 900);
        assert!(cache.hit("A", "old-pw", &rotated, now, 999));
        assert!(!cache.hit("A", "old-pw", &rotated, now, 1_000));
        // A change to the previous password settings invalidates the entry.
        let dropped = Profile {
            previous_password_hash: None,
            previous_password_expires: None,
            ..rotated.clone()
        };
        assert!(!cache.hit("A", "old-pw", &dropped, now, 900));
        let shortened = Profile {
            previous_password_expires: Some(950),
            ..rotated.clone()
        };
        assert!(!cache.hit("A", "old-pw", &shortened, now, 900));
        // Verified after the previous password expired (only the current one can have
        // matched): not capped.
        cache.insert("A", "new-pw", &rotated, now, 2_000);
        assert!(cache.hit("A", "new-pw", &rotated, now, 5_000));
    }
}
