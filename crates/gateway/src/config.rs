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

/// How the shim locks a logon id after repeated failed logons.
///
/// Failures are counted per logon id **and source address**: after `threshold` failures for
/// one logon id from one address within `window`, that logon id is locked for `duration` for
/// that address only, so an outsider guessing from elsewhere cannot lock a library out.
/// A guesser spread over many addresses is stopped by `id_threshold`: after that many
/// failures for one logon id from all addresses together within `window`, the logon id is
/// locked for every address except those that logged on with it successfully within
/// `trusted_for` (a library's own clients keep working while others hammer its logon id).
///
/// While locked, every logon, even with the right password, gets the ordinary logon-failed
/// reply after the same password check (the client is not told about the lock); each lock
/// is logged once at `warn` with the logon id (and the address, for a per-address lock). A
/// successful logon before the threshold clears that address's count; locks expire by
/// themselves and counting starts again from zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogonLockout {
    /// Failures from one address that lock the logon id for that address (0: never lock).
    pub threshold: u32,
    /// Failures from all addresses together that lock the logon id for every address that
    /// is not trusted (0: never).
    pub id_threshold: u32,
    /// How long a failure counts.
    pub window: Duration,
    /// How long a lock lasts.
    pub duration: Duration,
    /// How long an address that logged on successfully with a logon id stays exempt from
    /// that logon id's all-address lock.
    pub trusted_for: Duration,
}

impl Default for LogonLockout {
    fn default() -> Self {
        LogonLockout {
            threshold: 10,
            id_threshold: 100,
            window: Duration::from_secs(15 * 60),
            duration: Duration::from_secs(15 * 60),
            trusted_for: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Settings of the Connexion shim ([`crate::run`]).
///
/// # Limits
///
/// A public port is shared fairly: one source address holds at most
/// [`Config::max_connections_per_address`] connections (when one of them has already had
/// its reply, it is closed to make room for a new one; otherwise three times as many wait
/// up to [`Config::address_wait`] for one to end, holding no place in the budget, at most
/// [`Config::max_connections`] waiting in all, and further ones are closed at once), and
/// all addresses together at most [`Config::max_connections`]. When the
/// budget is spent, the connections that have had their reply (only waiting for the client
/// to close, [`Config::grace`]) are closed first, oldest first, and a connection replied to
/// while others wait skips the grace period. No client that makes no progress keeps a slot:
/// a request must be complete within [`Config::request_deadline`] of its start (the
/// connection, or the previous reply), and bring at least [`Config::progress_bytes`] in
/// every [`Config::progress_window`] until it is complete.
#[derive(Clone, Debug)]
pub struct Config {
    /// Connections served at once (all addresses); more wait in the listen backlog while
    /// the connections that had their reply are closed to make room.
    pub max_connections: usize,
    /// Connections served at once from one source address (well below
    /// [`Config::max_connections`], so that one address cannot take the budget).
    pub max_connections_per_address: usize,
    /// How long a connection over its address's cap waits for one of them to end before it
    /// is closed (three times the cap may wait; more are closed at once).
    pub address_wait: Duration,
    /// A request that has started but receives no byte for this long gets an
    /// "incomplete request" reply and the connection is closed; a connection that sent
    /// nothing is closed without a reply.
    pub idle_timeout: Duration,
    /// A request must be complete this long after the connection (or the previous reply),
    /// however its bytes trickle in.
    pub request_deadline: Duration,
    /// The minimum progress of an incomplete request: at least [`Config::progress_bytes`]
    /// in each window of this length (counted from the connection or the previous reply),
    /// or it is treated as stalled (an "incomplete request" reply, or a close without a
    /// reply when nothing came).
    pub progress_window: Duration,
    /// Bytes an incomplete request must bring in each [`Config::progress_window`].
    pub progress_bytes: usize,
    /// How long the shim waits for the processor's result before replying "pending"
    /// (Record Manager gives up after about 10 s).
    pub reply_deadline: Duration,
    /// After a reply, how long the shim waits for the client to close (or send another
    /// request) before closing itself; cut short when the connection budget is spent.
    pub grace: Duration,
    /// The same record bytes from the same institution within this window get the first
    /// export's result instead of a second import (see [`crate`] docs, "Retries").
    pub retry_window: Duration,
    /// The largest item (field or record) accepted; larger requests are closed unanswered.
    pub max_request_bytes: usize,
    /// Logon failure back-off (per IP address).
    pub logon_backoff: LogonBackoff,
    /// Logon id lock-out after repeated failures (per logon id and address, and per logon
    /// id for untrusted addresses).
    pub logon_lockout: LogonLockout,
    /// A verified logon is remembered this long, so that the slow password hash is not
    /// computed for every export; a changed password hash in the profile invalidates it.
    pub logon_cache: Duration,
    /// Password checks (argon2, memory-hard: about 19 MiB each with the default cost) run
    /// at once, each on a thread of its own: they bound the memory the checks take, and
    /// keep, to this many times 19 MiB.
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
            max_connections_per_address: 32,
            address_wait: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            request_deadline: Duration::from_secs(30),
            progress_window: Duration::from_secs(5),
            progress_bytes: 256,
            reply_deadline: Duration::from_secs(8),
            grace: Duration::from_secs(30),
            retry_window: Duration::from_secs(600),
            max_request_bytes: bibgate_connexion::MAX_REQUEST_BYTES,
            logon_backoff: LogonBackoff::default(),
            logon_lockout: LogonLockout::default(),
            logon_cache: Duration::from_secs(600),
            max_password_checks: 2,
            result_poll_first: Duration::from_millis(10),
            result_poll_max: Duration::from_millis(250),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Threads of the blocking pool (storage calls, password checks) of the runtime
/// [`runtime`] builds; with the worker threads, the ceiling of `bibgate serve`'s threads.
pub const MAX_BLOCKING_THREADS: usize = 32;

/// The multi-threaded tokio runtime for the gateway (and the CLI): its blocking pool is
/// capped at [`MAX_BLOCKING_THREADS`] (tokio's default is 512, which a flood of
/// connections each waiting on a storage call grows to hundreds of threads), and idle
/// blocking threads end after 10 s.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_keep_alive(Duration::from_secs(10))
        .build()
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
