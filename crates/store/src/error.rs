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
}

impl Error {
    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }
}

/// A storage result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
