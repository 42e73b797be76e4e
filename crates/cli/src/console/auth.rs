//! Who is signed in: the session table (in memory, one process), the cookies, the CSRF
//! tokens, and the sign-in back-off per user name and per address.
//!
//! Plain data structures that take `now` as an argument, so they are tested without a
//! clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};

/// The session cookie's name.
pub(super) const SESSION_COOKIE: &str = "bibgate_session";
/// The sign-in form's cookie (its CSRF token before there is a session).
pub(super) const SIGNIN_COOKIE: &str = "bibgate_signin";

/// A session ends after this long without a request.
const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, whatever its use.
const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions; the oldest goes first.
const MAX_SESSIONS: usize = 10_000;

/// 256 random bits as 64 hex digits (the operating system's generator).
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in time that does not depend on where they differ.
pub(super) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// A cookie's value from a `Cookie` header (`a=1; b=2`).
pub(super) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, Secure when `secure`;
/// `max_age` 0 clears it.
pub(super) fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(seconds) = max_age {
        text.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    text
}

/// What the console knows about a signed-in staff member.
#[derive(Clone, Debug)]
pub(super) struct Session {
    /// The user name.
    pub user: String,
    /// The CSRF token every form of the session carries.
    pub csrf: String,
    /// A message for the next page (after a POST's redirect): (is an error, text).
    pub flash: Option<(bool, String)>,
    signed_in: Instant,
    seen: Instant,
}

/// The session table.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// A new session for `user`; returns its id (the cookie's value).
    pub fn start(&mut self, user: &str, now: Instant) -> String {
        self.by_id.retain(|_, s| {
            now.duration_since(s.seen) < IDLE && now.duration_since(s.signed_in) < ABSOLUTE
        });
        if self.by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(id, _)| id.clone())
        {
            self.by_id.remove(&oldest);
        }
        let id = random_token();
        self.by_id.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf: random_token(),
                flash: None,
                signed_in: now,
                seen: now,
            },
        );
        id
    }

    /// The live session of `id` (its idle time restarts); `None` for an unknown, idle or
    /// too old one (which is ended).
    pub fn get(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        let live = self.by_id.get(id).is_some_and(|s| {
            now.duration_since(s.seen) < IDLE && now.duration_since(s.signed_in) < ABSOLUTE
        });
        if !live {
            self.by_id.remove(id);
            return None;
        }
        let session = self.by_id.get_mut(id)?;
        session.seen = now;
        Some(session)
    }

    /// Ends a session.
    pub fn end(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

/// How sign-in failures slow down the next tries.
#[derive(Clone, Copy, Debug)]
pub(super) struct BackoffConfig {
    /// Failures within this window count.
    pub window: Duration,
    /// Failures allowed before the back-off starts.
    pub threshold: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            window: Duration::from_secs(15 * 60),
            threshold: 5,
            base: Duration::from_secs(30),
            cap: Duration::from_secs(15 * 60),
        }
    }
}

/// Recent sign-in failures per user name and per address: after `threshold` failures in
/// the window, sign-in is refused (before the password is checked) until a wait that
/// doubles with each further failure has passed.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    config: BackoffConfig,
    failures: HashMap<String, VecDeque<Instant>>,
}

/// Failures remembered per key.
const MAX_REMEMBERED: usize = 32;
/// Keys kept before stale ones are swept.
const SWEEP_AT: usize = 4_096;

impl Backoff {
    pub fn new(config: BackoffConfig) -> Backoff {
        Backoff {
            config,
            failures: HashMap::new(),
        }
    }

    fn keys(user: &str, address: IpAddr) -> [String; 2] {
        [format!("user:{user}"), format!("address:{address}")]
    }

    /// How long sign-in of `user` from `address` must still wait; zero when it may go on.
    pub fn wait(&mut self, user: &str, address: IpAddr, now: Instant) -> Duration {
        let window = self.config.window;
        Self::keys(user, address)
            .iter()
            .map(|key| {
                let Some(times) = self.failures.get_mut(key) else {
                    return Duration::ZERO;
                };
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    times.pop_front();
                }
                let count = u32::try_from(times.len()).unwrap_or(u32::MAX);
                if count < self.config.threshold {
                    return Duration::ZERO;
                }
                let doublings = (count - self.config.threshold).min(16);
                let wait = self
                    .config
                    .base
                    .saturating_mul(1u32 << doublings)
                    .min(self.config.cap);
                times.back().map_or(Duration::ZERO, |last| {
                    wait.saturating_sub(now.duration_since(*last))
                })
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Records a failed sign-in.
    pub fn failed(&mut self, user: &str, address: IpAddr, now: Instant) {
        let window = self.config.window;
        if self.failures.len() >= SWEEP_AT {
            self.failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for key in Self::keys(user, address) {
            let times = self.failures.entry(key).or_default();
            times.push_back(now);
            if times.len() > MAX_REMEMBERED {
                times.pop_front();
            }
        }
    }

    /// Clears the user name and the address after a successful sign-in.
    pub fn succeeded(&mut self, user: &str, address: IpAddr) {
        for key in Self::keys(user, address) {
            self.failures.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_and_written() {
        assert_eq!(
            cookie("a=1; bibgate_session=xyz; b=2", SESSION_COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie("bibgate_sessionx=1", SESSION_COOKIE), None);
        assert_eq!(
            set_cookie("n", "v", true, None),
            "n=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_cookie("n", "", false, Some(0)),
            "n=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[..63]));
    }

    #[test]
    fn sessions_end_when_idle_or_ended() {
        let mut sessions = Sessions::default();
        let now = Instant::now();
        let id = sessions.start("ann", now);
        assert_eq!(
            sessions.get(&id, now).map(|s| s.user.clone()),
            Some("ann".into())
        );
        assert!(sessions.get("forged", now).is_none());
        assert!(sessions.get(&id, now + IDLE).is_none());
        let id = sessions.start("ann", now);
        sessions.end(&id);
        assert!(sessions.get(&id, now).is_none());
    }

    #[test]
    fn failures_back_off_per_user_and_per_address() {
        let config = BackoffConfig {
            window: Duration::from_secs(600),
            threshold: 3,
            base: Duration::from_secs(10),
            cap: Duration::from_secs(60),
        };
        let mut backoff = Backoff::new(config);
        let here: IpAddr = [127, 0, 0, 1].into();
        let there: IpAddr = [127, 0, 0, 2].into();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(backoff.wait("ann", here, now), Duration::ZERO);
            backoff.failed("ann", here, now);
        }
        assert_eq!(backoff.wait("ann", here, now), Duration::from_secs(10));
        // The user name waits from any address, and the address for any user.
        assert_eq!(backoff.wait("ann", there, now), Duration::from_secs(10));
        assert_eq!(backoff.wait("bob", here, now), Duration::from_secs(10));
        assert_eq!(backoff.wait("bob", there, now), Duration::ZERO);
        backoff.failed("ann", here, now);
        assert_eq!(backoff.wait("ann", here, now), Duration::from_secs(20));
        let later = now + Duration::from_secs(21);
        assert_eq!(backoff.wait("ann", here, later), Duration::ZERO);
        backoff.succeeded("ann", here);
        assert_eq!(backoff.wait("ann", here, now), Duration::ZERO);
    }
}
