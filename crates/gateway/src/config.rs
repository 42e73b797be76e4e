//! Settings of the shim and the processor, with production defaults.

use std::time::Duration;

/// The port Alma (and so the Connexion clients configured for it) uses.
pub const DEFAULT_PORT: u16 = 5500;

/// What the suffix of a reply says when more than one record arrived in one read.
pub const ONE_RECORD_SUFFIX: &str = " (one record expected per export; extra data ignored)";

/// How the shim slows down repeated logon failures from one IP address.
///
/// The failures within `window` are counted; once there are more than `threshold`, each
/// further failure reply is delayed by `base`, doubled for every further failure, at most
/// `cap`. A successful logon from the address clears its count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogonBackoff {
    /// Failures allowed without delay.
    pub threshold: u32,
    /// How long a failure counts.
    pub window: Duration,
    /// The first delay.
    pub base: Duration,
    /// The longest delay (keep it well below the client's 10 s reply timeout).
    pub cap: Duration,
}

impl Default for LogonBackoff {
    fn default() -> Self {
        LogonBackoff {
            threshold: 5,
            window: Duration::from_secs(300),
            base: Duration::from_secs(1),
            cap: Duration::from_secs(5),
        }
    }
}

/// How the shim locks a logon id after repeated failed logons (per logon id, whatever the
/// address: this stops a guesser spread over many addresses, which [`LogonBackoff`] does not).
///
/// After `threshold` failures for one logon id within `window`, the logon id is locked for
/// `duration`: every logon with it, even with the right password, gets the ordinary
/// logon-failed reply (the client is not told about the lock), and the lock is logged at
/// `warn` with the logon id only. A successful logon before the threshold clears the count;
/// the lock expires by itself and the count starts again from zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogonLockout {
    /// Failures that lock the logon id (0: never lock).
    pub threshold: u32,
    /// How long a failure counts.
    pub window: Duration,
    /// How long the lock lasts.
    pub duration: Duration,
}

impl Default for LogonLockout {
    fn default() -> Self {
        LogonLockout {
            threshold: 10,
            window: Duration::from_secs(15 * 60),
            duration: Duration::from_secs(15 * 60),
        }
    }
}

/// Settings of the Connexion shim ([`crate::run`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A request that has started but receives no byte for this long gets an
    /// "incomplete request" reply and the connection is closed; a connection that sent
    /// nothing is closed without a reply.
    pub idle_timeout: Duration,
    /// A request must be complete this long after the connection (or the previous reply).
    pub request_deadline: Duration,
    /// How long the shim waits for the processor's result before replying "pending"
    /// (Record Manager gives up after about 10 s).
    pub reply_deadline: Duration,
    /// After a reply, how long the shim waits for the client to close (or send another
    /// request) before closing itself.
    pub grace: Duration,
    /// The same record bytes from the same institution within this window get the first
    /// export's result instead of a second import (see [`crate`] docs, "Retries").
    pub retry_window: Duration,
    /// The largest item (field or record) accepted; larger requests are closed unanswered.
    pub max_request_bytes: usize,
    /// Logon failure back-off (per IP address).
    pub logon_backoff: LogonBackoff,
    /// Logon id lock-out after repeated failures (per logon id).
    pub logon_lockout: LogonLockout,
    /// A verified logon is remembered this long, so that the slow password hash is not
    /// computed for every export; a changed password hash in the profile invalidates it.
    pub logon_cache: Duration,
    /// Password checks (argon2, memory-hard) run at once.
    pub max_password_checks: usize,
    /// First interval between checks for a result; grows by half each time.
    pub result_poll_first: Duration,
    /// Longest interval between checks for a result.
    pub result_poll_max: Duration,
    /// On shutdown, how long in-flight connections may take to finish.
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 256,
            idle_timeout: Duration::from_secs(30),
            request_deadline: Duration::from_secs(60),
            reply_deadline: Duration::from_secs(8),
            grace: Duration::from_secs(30),
            retry_window: Duration::from_secs(600),
            max_request_bytes: bibgate_connexion::MAX_REQUEST_BYTES,
            logon_backoff: LogonBackoff::default(),
            logon_lockout: LogonLockout::default(),
            logon_cache: Duration::from_secs(600),
            max_password_checks: 4,
            result_poll_first: Duration::from_millis(10),
            result_poll_max: Duration::from_millis(250),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Settings of the processor ([`crate::spawn_processor`]).
#[derive(Clone, Debug)]
pub struct ProcessorConfig {
    /// How often the inbox is listed when nobody wakes the processor.
    pub poll_interval: Duration,
    /// How often the drop folders are scanned.
    pub drop_interval: Duration,
    /// A drop file is imported once it was seen unchanged for this long (so a file still
    /// being copied is not read half-way).
    pub drop_settle: Duration,
    /// Inbox records processed at once.
    pub workers: usize,
    /// Records of a drop file decided and committed together, in one durable transaction
    /// (at least 1): a crash loses at most the chunk in progress, which a restart imports
    /// again.
    pub drop_chunk: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            poll_interval: Duration::from_millis(50),
            drop_interval: Duration::from_secs(1),
            drop_settle: Duration::from_secs(2),
            workers: 4,
            drop_chunk: 2_000,
        }
    }
}
