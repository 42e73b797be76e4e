//! The pipeline's error type.

/// Why a pipeline step failed (the export or file stays where it is, to be tried again,
/// unless [`Error::is_permanent`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A storage port failed.
    #[error(transparent)]
    Store(#[from] bibgate_store::Error),
    /// The import use case failed before deciding (no route, storage).
    #[error(transparent)]
    Import(#[from] bibgate_import::Error),
    /// A drop file cannot be read at all.
    #[error("{0}")]
    Unreadable(String),
    /// A step did not produce what it must (a batch import returned too few results).
    #[error("{0}")]
    Incomplete(String),
}

impl Error {
    /// Whether trying again cannot help (see [`bibgate_import::Error::is_permanent`]).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Import(error) if error.is_permanent())
    }
}

/// A result of the pipeline.
pub type Result<T, E = Error> = std::result::Result<T, E>;
