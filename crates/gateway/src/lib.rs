//! The Connexion "Gateway Export" shim, the local processor behind it, and a client.
//!
//! The Connexion client (or Record Manager) connects, sends a logon and one MARC record,
//! and shows the cataloguer the text the server answers. [`run`] serves that protocol over
//! TCP; [`spawn_processor`] imports what it received, with the pipeline that the Lambda
//! function runs too (`bibgate-inbox`); [`send`] is the client side, for `bibgate send` and
//! tests. The shim and the processor share only the storage ports
//! ([`Services`](bibgate_inbox::Services)): the shim writes the record to the inbox and
//! polls for the result (the stored result on the embedded backend, the result document on
//! AWS: [`ResultDelivery`](bibgate_inbox::ResultDelivery)), exactly as it would with the
//! processor in another process.
//!
//! ```text
//! client ──TCP──▶ server ─┬─ logon (argon2, cached) ──▶ Store
//!                         ├─ put inbox/<inst>/<id>.mrc ─▶ BlobStore ◀── processor ──▶ Importer ──▶ Store
//!                         └─ poll the result ◀─────────────────────────┘ (copies to received/ first)
//!                            (Store::result, or results/<id>.json)
//! ```
//!
//! # Layout
//!
//! - `server.rs`: [`run`]: the accept loop (overall and per-address caps), one handler per
//!   connection (deadline, minimum progress, reply, grace), graceful shutdown with a
//!   broadcast and a drop guard.
//! - `handler.rs`: a complete request → reply text: logon, retry window, inbox, wait.
//! - `processor.rs`: [`spawn_processor`]: passes over the inbox and the drop folders, each
//!   running the steps of `bibgate_inbox::export` for up to [`processor::BATCH_MAX`]
//!   exports at once, and `bibgate_inbox::import_drop` for settled drop files.
//! - `logon.rs`, `retry.rs`, `digest.rs`: the logon back-off and lock-out, the
//!   verified-logon cache, the retry window, and the keyed digests they use.
//! - `slots.rs`: connections per source address, and which make room when the budget is
//!   spent; `checks.rs`: the few threads that check passwords (bounded memory).
//! - `client.rs`: [`send`], [`send_tls`].
//! - `tls.rs`: [`TlsServer`] (the optional TLS listener of [`run_listeners`]) and
//!   [`TlsClient`]: rustls with the ring provider.
//! - `config.rs`, `error.rs`.
//!
//! # Protocol policies
//!
//! - **Reply as soon as the record is complete** (by its 5-digit length); never wait for a
//!   NUL or the end of the stream (EDGCONX-7).
//! - **Do not close first.** After a reply the connection stays open until the client
//!   closes it, or [`Config::grace`] passes. A NUL or spaces after the reply are ignored; a
//!   further complete request on the same connection is answered like the first.
//! - **One record per request.** When more bytes arrived in the same read as the record,
//!   the first record is imported and [`ONE_RECORD_SUFFIX`] is added to its reply; the
//!   extra bytes are dropped.
//! - **Stalls.** A started request that receives nothing for [`Config::idle_timeout`], is
//!   not complete by [`Config::request_deadline`], or brings less than
//!   [`Config::progress_bytes`] in a [`Config::progress_window`] gets `Import Failed -
//!   incomplete request: …` naming what was missing, and the connection is closed. A
//!   connection that sent nothing is closed without a reply. A client that closes
//!   mid-request gets nothing and nothing is imported.
//! - **Limits** (a public port): connections per source address and in all, and which are
//!   closed first when they run short: see [`Config`], "Limits".
//! - **Unreadable input** (`_`, `A?`, a record starting `-0005`) gets `Import Failed - the
//!   request could not be read: …` at once (the codec's message never quotes a value).
//!   **Oversize** input ([`Config::max_request_bytes`]) is logged and the connection closed
//!   without a reply, holding at most the limit in memory. `GET … \r\n\r\n` gets
//!   `HTTP/1.0 200 OK` and a close (a liveness probe).
//! - **Logon.** The Logon ID is the `A` field (the `U` field when `A` is absent or empty),
//!   the password the `P` field; a request without a logon (a raw record) fails the logon.
//!   Replies are Alma's texts, `Logon Failed--the Logon ID and/or password is/are not valid`
//!   and `No integration profile found for institution CODE`; the password is never echoed
//!   or logged. After [`LogonBackoff::threshold`] failures from one IP address within its
//!   window, failure replies are delayed (doubling, capped). After
//!   [`LogonLockout::threshold`] failures for one logon id from one address within its
//!   window, that logon id is locked for that address for [`LogonLockout::duration`]; after
//!   [`LogonLockout::id_threshold`] from all addresses, for every address that has not
//!   logged on with it within [`LogonLockout::trusted_for`]. A locked logon gets the same
//!   logon-failed reply, after the same password check (the client cannot tell), and the
//!   lock is logged at `warn` with the logon id. A logon id with no profile costs the same
//!   password check (against a dummy hash), so timing does not tell known logon ids from
//!   unknown ones. The profile is the one whose logon id was sent (the institution's own by
//!   default: [`bibgate_import::profile_for_logon`]). The password may be the profile's current
//!   one or, after a rotation, the previous one until it expires; the verified-logon cache
//!   never outlives that expiry.
//! - **Reply within the client's timeout.** If the processor has not delivered the result by
//!   [`Config::reply_deadline`] (8 s; Record Manager waits about 10 s), the reply is
//!   `Import pending: export <id> was received and is still being processed; …`.
//!   The export is not lost: it stays in the inbox until processed.
//!
//! # Retries
//!
//! The same record bytes from the same institution within [`Config::retry_window`] are the
//! same export: the shim keeps an in-memory map (institution, keyed digest of the bytes) →
//! export id, and a repeat waits for and answers with the first export's result instead of
//! importing twice. A failed result is forgotten, so a re-export after the cause was fixed
//! (a lock released) is imported again. The processor's import is idempotent per export id
//! as well, which covers crashes and restarts.
//!
//! # Invariants
//!
//! - Nothing received is lost: the shim replies "received" (a result or pending) only after
//!   the inbox write returned, and the processor deletes an inbox object only after its raw
//!   bytes are under `received/` and its result is delivered: stored, and its result
//!   document written when documents are the delivery (see `bibgate_inbox::export`).
//! - A reply states a durable result: the stored result ([`bibgate_store::Store::result`],
//!   read after the processor's signal, or polled with `ResultDelivery::Store`) or the
//!   result document. Either says the same, and re-processing after a crash finds the stored
//!   result instead of importing again.
//! - No password in any log, error or reply; record contents are never logged at `info`.
//! - Depends on the ports only (`bibgate-store`), never on an adapter.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod checks;
mod client;
mod config;
mod digest;
mod error;
mod handler;
mod logon;
mod metrics;
pub mod processor;
mod retry;
mod server;
mod shared_locks;
mod slots;
mod tls;

pub use bibgate_connexion::LengthEncoding;
pub use client::{send, send_tls};
pub use config::{
    Config, DEFAULT_PORT, LogonBackoff, LogonLockout, MAX_BLOCKING_THREADS, ONE_RECORD_SUFFIX,
    ProcessorConfig, runtime,
};
pub use error::{Error, Result};
pub use handler::{
    NO_LOGON_ID, REFUSAL_NOT_RECORDED, UNKNOWN_INSTITUTION, export_line, pending_message,
};
pub use metrics::{MetricsSources, Probe, serve_metrics};
pub use processor::spawn_processor;
pub use server::{Listeners, run, run_listeners};
/// How long a shim trusts the shared logon locks it read (an unlock takes effect within it).
pub use shared_locks::CACHE_TTL as SHARED_LOCKS_CACHE_TTL;
pub use tls::{TlsClient, TlsError, TlsServer};

/// Runs a blocking closure (storage, password hashing) on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}
