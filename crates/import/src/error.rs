//! Errors of the import use case.

/// Why an import could not be attempted (as opposed to a record that was decided and
/// failed, which is an [`bibgate_store::ImportResult`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No Connexion integration profile, or more than one (Alma's wording).
    #[error("No integration profile found for institution {0}")]
    NoProfile(String),
    /// The logon id or password is wrong (Alma's wording).
    #[error("Logon Failed--the Logon ID and/or password is/are not valid")]
    LogonFailed,
    /// The institution is not known.
    #[error("institution {0:?} does not exist")]
    UnknownInstitution(String),
    /// The profile targets the network zone but the institution belongs to none.
    #[error("institution {0:?} belongs to no network zone")]
    NoNetworkZone(String),
    /// A profile setting cannot be used.
    #[error("profile {profile:?} has an unusable {setting}: {message}")]
    BadProfile {
        /// The profile id.
        profile: String,
        /// Which setting.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stored record cannot be read back.
    #[error("stored record {0} cannot be read: {1}")]
    CorruptRecord(String, String),
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] bibgate_store::Error),
}

impl Error {
    /// Whether trying again cannot help: the export cannot be routed (no profile, unknown
    /// institution, no network zone, an unusable profile setting) until staff change the
    /// configuration. Storage errors and unreadable stored records are transient.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::NoProfile(_)
                | Error::UnknownInstitution(_)
                | Error::NoNetworkZone(_)
                | Error::BadProfile { .. }
        )
    }
}

/// A result of the import use case.
pub type Result<T, E = Error> = std::result::Result<T, E>;
