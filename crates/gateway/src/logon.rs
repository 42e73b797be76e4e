//! Logon bookkeeping: the failure back-off per IP address and the cache of verified logons.
//!
//! Both are plain data structures that take `now` as an argument, so they are tested
//! without a clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::LogonBackoff;
use crate::layout::Digester;

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

/// Logons whose password was verified recently.
///
/// Keyed by logon id; holds a keyed digest of the password (never the password) and the
/// profile's password hash it was verified against, so a changed password invalidates it.
#[derive(Debug)]
pub(crate) struct LogonCache {
    ttl: Duration,
    digester: Digester,
    entries: HashMap<String, (u128, String, Instant)>,
}

impl LogonCache {
    pub(crate) fn new(ttl: Duration) -> LogonCache {
        LogonCache {
            ttl,
            digester: Digester::new(),
            entries: HashMap::new(),
        }
    }

    /// True when `password` was verified for `logon_id` against `password_hash` within the TTL.
    pub(crate) fn hit(
        &self,
        logon_id: &str,
        password: &str,
        password_hash: &str,
        now: Instant,
    ) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        self.entries
            .get(logon_id)
            .is_some_and(|(digest, hash, since)| {
                hash == password_hash
                    && now.duration_since(*since) < self.ttl
                    && *digest == self.digester.digest(password.as_bytes())
            })
    }

    /// Remembers a verified logon.
    pub(crate) fn insert(
        &mut self,
        logon_id: &str,
        password: &str,
        password_hash: &str,
        now: Instant,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= SWEEP_AT {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (_, _, since)| now.duration_since(*since) < ttl);
        }
        let digest = self.digester.digest(password.as_bytes());
        self.entries.insert(
            logon_id.to_string(),
            (digest, password_hash.to_string(), now),
        );
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

    #[test]
    fn the_cache_matches_password_and_profile_hash_within_its_ttl() {
        let mut cache = LogonCache::new(Duration::from_secs(60));
        let now = Instant::now();
        cache.insert("A", "pw", "$hash1", now);
        assert!(cache.hit("A", "pw", "$hash1", now));
        assert!(!cache.hit("A", "pW", "$hash1", now));
        assert!(!cache.hit("A", "pw", "$hash2", now));
        assert!(!cache.hit("B", "pw", "$hash1", now));
        assert!(!cache.hit("A", "pw", "$hash1", now + Duration::from_secs(61)));
        assert!(!format!("{cache:?}").contains("pw\""));
    }
}
