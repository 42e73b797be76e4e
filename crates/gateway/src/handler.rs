//! From a complete request to the reply text: logon, inbox, wait for the result.
//!
//! The shim never imports: it writes the record to the inbox and waits for the processor's
//! result (its result document, or the stored result: [`ResultDelivery`]), exactly as it
//! would with the processor in another process or machine. With the processor in the same
//! process, it hands the result over as soon as the import committed
//! ([`crate::ResultSignals`]), and the shim answers with it without waiting for the next poll
//! (or the document).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bibgate_connexion::{Parse, ProtocolError, Request};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::checks::PasswordChecks;
use crate::config::Config;
use crate::logon::{Lock, Lockout, LogonCache, Throttle};
use crate::retry::{Claim, RetryWindow};
use crate::shared_locks::SharedLocks;
use bibgate_inbox::layout::{ExportIds, ResultDoc, inbox_key, result_key};
use bibgate_inbox::{ResultDelivery, Services};
use bibgate_store::{Commit, ImportResult, LogonLock, Outcome};

use crate::blocking;

/// The longest logon id accepted (the desktop client's single-byte length allows 191).
const MAX_LOGON_BYTES: usize = 191;

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub(crate) services: Services,
    pub(crate) config: Config,
    throttle: Mutex<Throttle>,
    lockout: Mutex<Lockout>,
    logons: Mutex<LogonCache>,
    retry: Mutex<RetryWindow>,
    refusals: Mutex<RefusalBudget>,
    ids: ExportIds,
    password_checks: PasswordChecks,
    /// The locks every shim shares, when the services have a store for them.
    shared_locks: Option<SharedLocks>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a request was answered with, for the reply and the log.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The reply text (without NUL).
    pub(crate) text: String,
    /// The export, when one was received.
    pub(crate) export_id: Option<String>,
    /// The authenticated institution.
    pub(crate) institution: Option<String>,
    /// `added`, `merged`, `failed`, `pending`, `logon-failed`, `logon-locked` (replied to
    /// as `logon-failed`), `no-profile`, `error`.
    pub(crate) status: &'static str,
}

impl Answer {
    fn refused(text: String, status: &'static str) -> Answer {
        Answer {
            text,
            export_id: None,
            institution: None,
            status,
        }
    }
}

/// A field's text: UTF-8, or else Latin-1 (the clients' charset for credentials is unknown).
fn field_text(bytes: Option<&[u8]>) -> String {
    let bytes = bytes.unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The field that carries the logon id: `A`, or `U` when `A` is absent or empty.
fn logon_field(request: &Request) -> Option<&[u8]> {
    match &request.local_user {
        Some(value) if !value.is_empty() => Some(value.as_slice()),
        _ => request.user.as_deref(),
    }
}

/// A logon id as logged: at most 64 characters, escaped.
fn shown(logon_id: &str) -> String {
    logon_id
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The reply when the result is not there by the reply deadline.
pub fn pending_message(export_id: &str) -> String {
    format!(
        "Import pending: export {export_id} was received and is still being processed; see \"bibgate result {export_id}\" for its outcome."
    )
}

/// The reply when the client sent no logon id (neither `A` nor a `U` naming a profile).
pub const NO_LOGON_ID: &str = "Import Failed - no logon id was received: the Local System Logon ID is empty. Set the Logon ID and password of the OCLC Gateway Export destination and check \"Send Local System Logon ID and Password\".";

/// The institution of the stored result of a refused logon whose logon id names no
/// institution.
pub const UNKNOWN_INSTITUTION: &str = "-";

/// The line added to every reply that is not a success: the export id to look up.
pub fn export_line(export_id: &str) -> String {
    format!("\nExport ID: {export_id}")
}

/// Whether the record that export `export_id` added or merged into has changed since (a
/// newer revision than the one the export made, or no record any more). `false` when the
/// export has no stored result yet, touched no record, or the store cannot tell.
fn record_changed_since(store: &dyn bibgate_store::Store, export_id: &str) -> bool {
    let Ok(Some(result)) = store.result(export_id) else {
        return false;
    };
    let Some(mms_id) = &result.mms_id else {
        return false;
    };
    let Ok(record) = store.record(&result.zone, mms_id) else {
        return false;
    };
    let Some(record) = record else {
        return true;
    };
    let Ok(versions) = store.versions(&result.zone, mms_id) else {
        return false;
    };
    // A merge made the revision after the one it replaced; an add made revision 1.
    let made = versions
        .iter()
        .find(|version| version.replaced_by == export_id)
        .map_or(1, |version| version.revision + 1);
    record.revision > made
}

/// A refused logon, for its stored result.
struct Refusal {
    peer: IpAddr,
    logon_id: String,
    status: &'static str,
    record_len: usize,
}

/// Refused logons stored as results per source address and window, and in all: a client
/// (or many) that keeps failing cannot fill the store; beyond the budget a refusal is
/// answered and logged as before, without a stored result or an export id.
const STORED_REFUSALS_PER_ADDRESS: u32 = 20;
/// The last line of a refusal over the budget, in place of its export id.
pub const REFUSAL_NOT_RECORDED: &str =
    "(Not recorded: too many refused logons from this address; see the server log.)";
/// The same, for all addresses together.
const STORED_REFUSALS_IN_ALL: u32 = 2_000;
/// The window of both budgets.
const STORED_REFUSALS_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered by the budget; when full, other addresses' refusals are not stored.
const STORED_REFUSALS_ADDRESSES: usize = 4_096;

/// The budget of stored refusals (see [`STORED_REFUSALS_PER_ADDRESS`]).
#[derive(Default)]
struct RefusalBudget {
    per_address: HashMap<IpAddr, (Instant, u32)>,
    in_all: Option<(Instant, u32)>,
}

impl RefusalBudget {
    /// True when one more refusal from `peer` may be stored at `now` (and counts it).
    fn take(&mut self, peer: IpAddr, now: Instant) -> bool {
        let fresh = |start: &Instant| now.duration_since(*start) < STORED_REFUSALS_WINDOW;
        let in_all = match self.in_all {
            Some((start, count)) if fresh(&start) => (start, count),
            _ => (now, 0),
        };
        if in_all.1 >= STORED_REFUSALS_IN_ALL {
            return false;
        }
        if self.per_address.len() >= STORED_REFUSALS_ADDRESSES {
            self.per_address.retain(|_, (start, _)| fresh(start));
        }
        if !self.per_address.contains_key(&peer)
            && self.per_address.len() >= STORED_REFUSALS_ADDRESSES
        {
            return false;
        }
        let entry = self.per_address.entry(peer).or_insert((now, 0));
        if !fresh(&entry.0) {
            *entry = (now, 0);
        }
        if entry.1 >= STORED_REFUSALS_PER_ADDRESS {
            return false;
        }
        entry.1 += 1;
        self.in_all = Some((in_all.0, in_all.1 + 1));
        true
    }
}

/// Why a logon was refused.
enum Refused {
    /// Wrong logon id or password, or no/several profiles: the text to reply.
    Credentials(String, &'static str),
    /// Storage failed.
    Unavailable(String),
}

impl Shared {
    pub(crate) fn new(services: Services, config: Config) -> Shared {
        Shared {
            throttle: Mutex::new(Throttle::new(config.logon_backoff.clone())),
            lockout: Mutex::new(Lockout::new(config.logon_lockout.clone())),
            logons: Mutex::new(LogonCache::new(config.logon_cache)),
            retry: Mutex::new(RetryWindow::new(config.retry_window)),
            refusals: Mutex::new(RefusalBudget::default()),
            ids: ExportIds::new(),
            password_checks: PasswordChecks::new(config.max_password_checks),
            shared_locks: services.logon_locks.clone().map(SharedLocks::new),
            services,
            config,
        }
    }

    /// Answers one complete request; a reply that is not a success names its export
    /// ([`export_line`]).
    pub(crate) async fn answer(&self, peer: IpAddr, request: Request) -> Answer {
        let mut answer = self.answer_request(peer, request).await;
        if !matches!(answer.status, "added" | "merged" | "pending")
            && let Some(export_id) = &answer.export_id
        {
            answer.text.push_str(&export_line(export_id));
        }
        answer
    }

    async fn answer_request(&self, peer: IpAddr, request: Request) -> Answer {
        let logon_id = field_text(logon_field(&request));
        let password = field_text(request.password.as_deref());
        let logon_shown = shown(&logon_id);
        // The `U` field stands in for an absent or empty `A` (as in Koha); when it names no
        // profile either, the client sent no logon id at all.
        let no_local_user = request.local_user.as_ref().is_none_or(Vec::is_empty);
        let record_len = request.record.len();
        let institution = match self.logon(peer, logon_id.clone(), password).await {
            Ok(institution) => {
                lock(&self.throttle).succeeded(peer);
                institution
            }
            Err(Refused::Credentials(text, status)) => {
                let (text, status) =
                    if no_local_user && (logon_id.is_empty() || status == "no-profile") {
                        (NO_LOGON_ID.to_string(), "no-logon-id")
                    } else {
                        (text, status)
                    };
                info!(%peer, logon = %logon_shown, status, "logon refused");
                bibgate_inbox::metrics::global().logon_failed();
                let delay = lock(&self.throttle).failed(peer, Instant::now());
                let refusal = Refusal {
                    peer,
                    logon_id,
                    status,
                    record_len,
                };
                let answer = self.store_refusal(refusal, text).await;
                if !delay.is_zero() {
                    info!(%peer, delay_ms = delay.as_millis() as u64, "delaying a logon failure reply");
                    tokio::time::sleep(delay).await;
                }
                return answer;
            }
            Err(Refused::Unavailable(message)) => {
                warn!(%peer, error = %message, "could not check a logon");
                return Answer::refused(
                    "Import Failed - the logon could not be checked because the storage is unavailable; please try again later.".into(),
                    "error",
                );
            }
        };
        self.receive(institution, request.record).await
    }

    /// Stores a refused logon as a failed result (never the password, nor the record: the
    /// sender is not known) and answers with its export id. The institution is the
    /// profile's when the logon id names one, the institution's when the logon id is an
    /// institution code, else [`UNKNOWN_INSTITUTION`].
    async fn store_refusal(&self, refusal: Refusal, text: String) -> Answer {
        if !lock(&self.refusals).take(refusal.peer, Instant::now()) {
            // Over the budget: answered and logged (by the caller), not stored.
            return Answer {
                text: format!("{text}\n{REFUSAL_NOT_RECORDED}"),
                export_id: None,
                institution: None,
                status: refusal.status,
            };
        }
        let store = self.services.store.clone();
        let id = refusal.logon_id.clone();
        let institution = blocking(move || {
            match bibgate_import::profile_for_logon(&*store, &id) {
                Ok(profile) => return Some(profile.institution),
                Err(bibgate_import::Error::LogonFailed) if !id.is_empty() => {
                    // The logon id is an institution's own code (with other profiles).
                    return Some(id);
                }
                Err(_) => {}
            }
            if id.is_empty() {
                return None;
            }
            store
                .institution(&id)
                .ok()
                .flatten()
                .map(|found| found.code)
        })
        .await
        .ok()
        .flatten();
        let now = now_millis();
        // Not named after the institution: the reply must not tell which logon ids exist.
        let export_id = self.ids.next("logon", now);
        let institution = institution.unwrap_or_else(|| UNKNOWN_INSTITUTION.to_string());
        let code = match refusal.status {
            "no-profile" => "NO_PROFILE",
            "no-logon-id" => "NO_LOGON_ID",
            "logon-locked" => "LOGON_LOCKED",
            _ => "LOGON_FAILED",
        };
        let result = ImportResult {
            export_id: export_id.clone(),
            batch_id: None,
            index: None,
            institution: institution.clone(),
            zone: institution.clone(),
            outcome: Outcome::Failed,
            host_message: text.clone(),
            reason_code: code.to_string(),
            mms_id: None,
            oclc_numbers: Vec::new(),
            raw_key: String::new(),
            raw_offset: 0,
            raw_len: refusal.record_len as u64,
            received_unix: now / 1000,
            decided_unix: now / 1000,
            trace: vec![
                format!("logon id: \"{}\"", shown(&refusal.logon_id)),
                format!("address: {}", refusal.peer),
                format!("{code}: {text}"),
                "the record was not kept: the sender did not log on".to_string(),
            ],
            policy: None,
            retry_of: None,
        };
        let store = self.services.store.clone();
        match blocking(move || store.commit(&Commit::Reject { result })).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                warn!(%export_id, %error, "could not store the result of a refused logon");
            }
            Err(error) => {
                warn!(%export_id, %error, "could not store the result of a refused logon");
            }
        }
        Answer {
            text,
            export_id: Some(export_id),
            institution: Some(institution),
            status: refusal.status,
        }
    }

    /// Of the readings of a request whose decimal length digits could be split several
    /// ways ([`Parse::Ambiguous`]), the one whose logon id names a profile, as
    /// [`Parse::Complete`]; [`ProtocolError::AmbiguousLength`] when not exactly one does.
    pub(crate) async fn pick(&self, requests: Vec<Request>) -> Parse {
        let readings = requests.len();
        let mut known = Vec::new();
        for request in requests {
            let logon_id = field_text(logon_field(&request));
            let store = self.services.store.clone();
            let found = blocking(move || bibgate_import::profile_for_logon(&*store, &logon_id))
                .await
                .is_ok_and(|profile| profile.is_ok());
            if found {
                known.push(request);
            }
        }
        match (known.pop(), known.is_empty()) {
            (Some(request), true) => Parse::Complete(request),
            _ => Parse::Error(ProtocolError::AmbiguousLength { readings }),
        }
    }

    /// Checks the logon from `peer`; returns the institution.
    async fn logon(
        &self,
        peer: IpAddr,
        logon_id: String,
        password: String,
    ) -> Result<String, Refused> {
        let failed = || {
            Refused::Credentials(
                bibgate_import::Error::LogonFailed.to_string(),
                "logon-failed",
            )
        };
        if logon_id.is_empty() || logon_id.len() > MAX_LOGON_BYTES {
            return Err(failed());
        }
        let refused = |error: bibgate_import::Error| match error {
            bibgate_import::Error::LogonFailed => failed(),
            bibgate_import::Error::NoProfile(_) => {
                Refused::Credentials(error.to_string(), "no-profile")
            }
            bibgate_import::Error::UnknownInstitution(_)
            | bibgate_import::Error::NoNetworkZone(_)
            | bibgate_import::Error::BadProfile { .. } => {
                // The profile exists but cannot be used: Alma's nearest message.
                warn!(error = %error, "a connexion profile cannot be used");
                Refused::Credentials(error.to_string(), "no-profile")
            }
            other => Refused::Unavailable(other.to_string()),
        };
        let store = self.services.store.clone();
        let id = logon_id.clone();
        let profile = match blocking(move || bibgate_import::profile_for_logon(&*store, &id))
            .await
            .map_err(|e| Refused::Unavailable(e.to_string()))?
        {
            Ok(profile) => profile,
            Err(error) => {
                let refusal = refused(error);
                if matches!(refusal, Refused::Credentials(..)) {
                    // No usable profile: the same password check as a wrong password costs,
                    // so that the time of the reply does not tell known logon ids apart.
                    self.dummy_check(password).await;
                }
                return Err(refusal);
            }
        };
        // A locked logon id is refused whatever the password, after the same password check
        // as any other logon (so neither the reply nor its timing tells the client).
        let locked = self.is_locked(&logon_id, peer).await;
        if !locked
            && lock(&self.logons).hit(
                &logon_id,
                &password,
                &profile,
                Instant::now(),
                now_millis() / 1000,
            )
        {
            lock(&self.lockout).succeeded(&logon_id, peer, Instant::now());
            return Ok(profile.institution);
        }
        let store = self.services.store.clone();
        let (id, secret) = (logon_id.clone(), password.clone());
        let now_unix = now_millis() / 1000;
        let checked = self
            .password_checks
            .run(move || bibgate_import::authenticate_at(&*store, &id, &secret, now_unix))
            .await
            .map_err(Refused::Unavailable)?;
        // Checked again after the slow password check: a guess racing the one that locked
        // the logon id is refused too.
        let locked = locked || self.is_locked(&logon_id, peer).await;
        match checked {
            Ok(_) if locked => Err(Refused::Credentials(
                bibgate_import::Error::LogonFailed.to_string(),
                "logon-locked",
            )),
            Ok(route) => {
                lock(&self.lockout).succeeded(&logon_id, peer, Instant::now());
                lock(&self.logons).insert(
                    &logon_id,
                    &password,
                    &route.profile,
                    Instant::now(),
                    now_unix,
                );
                Ok(route.institution.code)
            }
            Err(bibgate_import::Error::LogonFailed) => {
                let outcome = lock(&self.lockout).failed(&logon_id, peer, Instant::now());
                let config = &self.config.logon_lockout;
                self.share_lock(&logon_id, peer, outcome).await;
                match outcome {
                    Lock::LockedNow => {
                        bibgate_inbox::metrics::global().locked_out(false);
                        warn!(
                            logon = %shown(&logon_id),
                            %peer,
                            failures = config.threshold,
                            window_s = config.window.as_secs(),
                            locked_s = config.duration.as_secs(),
                            "logon id locked for one address after repeated failed logons from it"
                        );
                        Err(failed())
                    }
                    Lock::LockedForAll => {
                        bibgate_inbox::metrics::global().locked_out(true);
                        warn!(
                            logon = %shown(&logon_id),
                            failures = config.id_threshold,
                            window_s = config.window.as_secs(),
                            locked_s = config.duration.as_secs(),
                            "logon id locked after repeated failed logons from many addresses (addresses that logged on with it keep working)"
                        );
                        Err(failed())
                    }
                    Lock::AlreadyLocked => Err(Refused::Credentials(
                        bibgate_import::Error::LogonFailed.to_string(),
                        "logon-locked",
                    )),
                    Lock::Counted => Err(failed()),
                }
            }
            Err(error) => Err(refused(error)),
        }
    }

    /// True while `logon_id` is locked for `peer`: by the shared locks when there are
    /// (this shim's own lock is forgotten once staff lifted the shared one), else by this
    /// shim's counts.
    async fn is_locked(&self, logon_id: &str, peer: IpAddr) -> bool {
        let now = Instant::now();
        let (local, trusted) = {
            let lockout = lock(&self.lockout);
            (
                lockout.is_locked(logon_id, peer, now),
                lockout.is_trusted(logon_id, peer, now),
            )
        };
        let Some(shared) = &self.shared_locks else {
            return local;
        };
        let held = shared
            .is_locked(logon_id, peer, trusted, now_millis() / 1000)
            .await;
        if local && !held {
            lock(&self.lockout).forget(logon_id);
        }
        held
    }

    /// Publishes the lock a failed logon imposed, when locks are shared.
    async fn share_lock(&self, logon_id: &str, peer: IpAddr, outcome: Lock) {
        let Some(shared) = &self.shared_locks else {
            return;
        };
        let address = match outcome {
            Lock::LockedNow => Some(peer.to_string()),
            Lock::LockedForAll => None,
            Lock::Counted | Lock::AlreadyLocked => return,
        };
        let now_unix = now_millis() / 1000;
        let duration =
            i64::try_from(self.config.logon_lockout.duration.as_secs()).unwrap_or(i64::MAX);
        shared
            .publish(LogonLock {
                logon_id: logon_id.to_owned(),
                address,
                locked_unix: now_unix,
                until_unix: now_unix.saturating_add(duration),
            })
            .await;
    }

    /// A password check against no profile (see
    /// [`bibgate_import::auth::verify_dummy_password`]), on the same threads as the real ones.
    async fn dummy_check(&self, password: String) {
        let _ = self
            .password_checks
            .run(move || bibgate_import::auth::verify_dummy_password(&password))
            .await;
    }

    /// Puts the record in the inbox (unless it is a retry) and waits for its result.
    async fn receive(&self, institution: String, record: Vec<u8>) -> Answer {
        let started = Instant::now();
        let deadline = started + self.config.reply_deadline;
        let digest = lock(&self.retry).digest(&record);
        let mut claim = lock(&self.retry).claim(&institution, digest, started, || {
            self.ids.next(&institution, now_millis())
        });
        if let Claim::Existing(export_id) = &claim {
            // The window answers only for a record that has not changed since: after a
            // restore or an edit, the same bytes are decided again.
            let store = self.services.store.clone();
            let id = export_id.clone();
            let changed = blocking(move || record_changed_since(&*store, &id))
                .await
                .unwrap_or(false);
            if changed {
                info!(%export_id, %institution, "same record received again within the retry window, but the record it touched changed since; deciding again");
                let mut retry = lock(&self.retry);
                retry.forget(&institution, digest, export_id);
                claim = retry.claim(&institution, digest, started, || {
                    self.ids.next(&institution, now_millis())
                });
            }
        }
        let export_id = match claim {
            Claim::Existing(export_id) => {
                info!(%export_id, %institution, "same record received again within the retry window; answering with its export");
                export_id
            }
            Claim::New(export_id) => {
                let blobs = self.services.blobs.clone();
                let key = inbox_key(&institution, &export_id);
                let len = record.len();
                match blocking(move || blobs.put(&key, &record)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        return self.not_stored(
                            &institution,
                            digest,
                            export_id,
                            &error.to_string(),
                        );
                    }
                    Err(error) => {
                        return self.not_stored(
                            &institution,
                            digest,
                            export_id,
                            &error.to_string(),
                        );
                    }
                }
                self.services.wake.notify_one();
                info!(%export_id, %institution, bytes = len, "export received");
                export_id
            }
        };
        match self.wait_for_result(&export_id, deadline).await {
            Some(doc) => {
                if !doc.is_success() {
                    lock(&self.retry).forget(&institution, digest, &export_id);
                }
                let status = match doc.outcome.as_str() {
                    "added" => "added",
                    "merged" => "merged",
                    _ => "failed",
                };
                info!(%export_id, %institution, outcome = status, reason = %doc.reason_code, mms_id = doc.mms_id.as_deref().unwrap_or(""), "export answered");
                Answer {
                    text: doc.host_message,
                    export_id: Some(export_id),
                    institution: Some(institution),
                    status,
                }
            }
            None => {
                info!(%export_id, %institution, "no result by the reply deadline; answering pending");
                Answer {
                    text: pending_message(&export_id),
                    export_id: Some(export_id),
                    institution: Some(institution),
                    status: "pending",
                }
            }
        }
    }

    fn not_stored(
        &self,
        institution: &str,
        digest: u128,
        export_id: String,
        error: &str,
    ) -> Answer {
        warn!(%export_id, %institution, %error, "could not write an export to the inbox");
        lock(&self.retry).forget(institution, digest, &export_id);
        Answer {
            text: "Import Failed - the export could not be stored; please try again later.".into(),
            export_id: Some(export_id),
            institution: Some(institution.to_string()),
            status: "error",
        }
    }

    /// Waits for the result until `deadline`. An in-process processor hands it over as soon
    /// as it is durable ([`crate::ResultSignals`]), cutting a wait short; that is the answer,
    /// not read back. Otherwise polls, first after a short interval, then less often:
    /// `results/<export-id>.json` with [`ResultDelivery::Documents`] (and, at the deadline,
    /// the stored result once), the stored result ([`bibgate_store::Store::result`]) with
    /// [`ResultDelivery::Store`].
    async fn wait_for_result(&self, export_id: &str, deadline: Instant) -> Option<ResultDoc> {
        let signal = self.services.results.subscribe(export_id);
        let found = self.poll_result(export_id, deadline, &signal).await;
        self.services.results.unsubscribe(export_id);
        found
    }

    /// The stored result of an export, as a result document.
    async fn stored_result(&self, export_id: &str) -> Option<ResultDoc> {
        let store = self.services.store.clone();
        let id = export_id.to_string();
        match blocking(move || store.result(&id)).await {
            Ok(Ok(Some(result))) => return Some(ResultDoc::from_result(&result)),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => warn!(%export_id, %error, "could not read a stored result"),
            Err(error) => warn!(%export_id, %error, "could not read a stored result"),
        }
        None
    }

    /// The result document of an export, if it was written.
    async fn result_document(&self, export_id: &str) -> Option<ResultDoc> {
        let blobs = self.services.blobs.clone();
        let key = result_key(export_id);
        let error = match blocking(move || blobs.get(&key)).await {
            Ok(Ok(Some(bytes))) => match ResultDoc::from_json(&bytes) {
                Some(doc) => return Some(doc),
                None => "the document is not valid JSON of a result".to_string(),
            },
            Ok(Ok(None)) => return None,
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        warn!(%export_id, %error, "could not read a result document");
        None
    }

    async fn poll_result(
        &self,
        export_id: &str,
        deadline: Instant,
        signal: &Notify,
    ) -> Option<ResultDoc> {
        let mut interval = self.config.result_poll_first.max(Duration::from_millis(1));
        let max = self.config.result_poll_max.max(interval);
        let documents = self.services.delivery == ResultDelivery::Documents;
        loop {
            // Enabled before looking, so that a hand-over after the look still wakes the wait.
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(delivered) = self.services.results.delivered(export_id) {
                return Some(delivered);
            }
            let found = if documents {
                self.result_document(export_id).await
            } else {
                self.stored_result(export_id).await
            };
            if found.is_some() {
                return found;
            }
            let now = Instant::now();
            if now >= deadline {
                // A processor in another process (or a Lambda) may have committed the result
                // and stopped before its document: the stored result is the answer then. (With
                // the store as the delivery it was just read.)
                return if documents {
                    self.stored_result(export_id).await
                } else {
                    None
                };
            }
            let wake_at = (now + interval).min(deadline);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
            interval = (interval + interval / 2).min(max);
        }
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn stored_refusals_are_budgeted_per_address_and_in_all() {
        let mut budget = RefusalBudget::default();
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..STORED_REFUSALS_PER_ADDRESS {
            assert!(budget.take(a, now));
        }
        assert!(!budget.take(a, now), "over the address's budget");
        assert!(budget.take(b, now), "another address has its own");
        let later = now + STORED_REFUSALS_WINDOW;
        assert!(budget.take(a, later), "a new window");
        let mut budget = RefusalBudget::default();
        let mut stored = 0;
        for i in 0..3_000u32 {
            let peer = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            stored += u32::from(budget.take(peer, now));
        }
        assert_eq!(stored, STORED_REFUSALS_IN_ALL);
        assert!(budget.per_address.len() <= STORED_REFUSALS_ADDRESSES);
    }
}
