//! The storage error every port returns.

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state a commit expected has changed (another import got there first); nothing
    /// was written. Decide again.
    #[error("the stored state changed since it was read: {0}")]
    Conflict(String),
    /// A unique thing exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A referenced thing does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// Stored data could not be read back (corruption, or a newer format).
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    /// The backend failed (disk, database, network).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The record cannot be stored by this backend whatever is retried: it exceeds one of
    /// the backend's limits (the text says which, and what to do).
    #[error("the record exceeds a limit of the store: {0}")]
    RecordTooLarge(String),
}

impl Error {
    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    /// True when the error depends only on the record, so retrying cannot help: the import
    /// records it as that record's failure ([`Error::RecordTooLarge`]).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::RecordTooLarge(_))
    }
}

/// A storage result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
