//! Errors of setting the adapter up (the ports themselves return `bibgate_store::Error`).

/// Why the AWS adapter could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The adapter's tokio runtime could not be started.
    #[error("could not start the aws client runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A table or bucket could not be created or checked.
    #[error("could not provision {what}: {message}")]
    Provision {
        /// The table or bucket.
        what: String,
        /// The SDK's error.
        message: String,
    },
}

/// A result of setting the adapter up.
pub type Result<T, E = Error> = std::result::Result<T, E>;
