//! The gateway's error type.

use std::time::Duration;

use bibgate_connexion::{EncodeError, ProtocolError};

/// Why a gateway operation failed.
///
/// Messages name the address or key involved and never contain a password or record bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client could not connect to the server.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// The server address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The request cannot be encoded (a value too long for the length encoding, a record
    /// that does not start with its own length).
    #[error("could not encode the request: {0}")]
    Encode(#[from] EncodeError),
    /// The server sent no complete reply in time.
    #[error("no reply from {addr} within {:.1} s", .timeout.as_secs_f64())]
    Timeout {
        /// The server address.
        addr: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The server closed the connection without replying.
    #[error("{addr} closed the connection without a reply")]
    NoReply {
        /// The server address.
        addr: String,
    },
    /// The reply could not be read (too long).
    #[error("unreadable reply from {addr}: {source}")]
    Reply {
        /// The server address.
        addr: String,
        /// The cause.
        #[source]
        source: ProtocolError,
    },
    /// A storage port failed.
    #[error(transparent)]
    Store(#[from] bibgate_store::Error),
    /// The import use case failed before deciding (no route, storage).
    #[error(transparent)]
    Import(#[from] bibgate_import::Error),
    /// A step of the import pipeline failed.
    #[error(transparent)]
    Inbox(#[from] bibgate_inbox::Error),
    /// A blocking task panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(String),
}

/// A result of the gateway.
pub type Result<T, E = Error> = std::result::Result<T, E>;
