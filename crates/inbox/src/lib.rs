//! The import pipeline every runtime shares: where things are kept ([`layout`]), the steps
//! of one Connexion export ([`export`]) and the chunked import of one drop file ([`drop`](mod@drop)).
//!
//! Two runtimes drive it: the local processor in `bibgate-gateway` (passes over the inbox
//! and the drop folders of the embedded backend, in the same process as the Connexion
//! shim or beside it) and the Lambda function in `functions/import-processor` (one S3
//! event at a time, through SQS). Both hand it the same [`Services`] (the storage ports,
//! the merge-policy runner and the in-process result hand-over), so an export or a drop
//! file is imported the same way, with the same policies, whichever runs it.
//!
//! ```text
//! shim ─► inbox/<inst>/<id>.mrc ─┐                       ┌─► results/<id>.json (AWS)
//!                                 ├─► export::… ─► Importer ─┤
//! staff ─► drop/<inst>/<file> ────┴─► drop::… ───► Importer ─┴─► reports/<inst>/<file>.*
//! ```
//!
//! # Invariants
//!
//! - Nothing received is lost: an inbox object or drop file is deleted only after its raw
//!   bytes are under `received/` and its results are stored (and, for exports delivered by
//!   documents, the result document is written).
//! - Every step is idempotent per export id (`<export-id>`, or `<batch>#<index>` for the
//!   records of a drop file), so a crash, a duplicate event or two processors seeing the
//!   same object import nothing twice.
//! - Permanent and transient failures are told apart in one place,
//!   [`Error::is_permanent`]: a permanent one is recorded (a `NO_PROFILE` result, a report
//!   line) and the object is done; a transient one leaves the object to be tried again.
//! - Depends on the ports only (`bibgate-store`, `bibgate-import`), never on an adapter, a
//!   socket or a runtime: the only tokio part is the in-process [`ResultSignals`].
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod drop;
mod error;
pub mod export;
pub mod fanout;
pub mod layout;
pub mod metrics;
mod services;

use std::time::{SystemTime, UNIX_EPOCH};

pub use drop::{DropOutcome, Start, ensure_drop_folders, import_drop, import_drop_key};
pub use error::{Error, Result};
pub use export::{Taken, process_export};
pub use layout::ResultDoc;
pub use services::{ResultDelivery, ResultSignals, Services};

/// Seconds since the Unix epoch, now (0 before it, saturating far after).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
