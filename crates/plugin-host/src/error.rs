//! The host's error.

/// Why a policy could not be admitted, compiled, loaded or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The component breaks an admission rule (imports, world, version, size).
    #[error("policy refused: {0}")]
    Refused(String),
    /// The bytes are not a valid component (or core module, for componentization).
    #[error("could not compile the policy: {0}")]
    Compile(String),
    /// The wasmtime engine could not be set up.
    #[error("could not set up the wasm engine: {0}")]
    Engine(String),
    /// A stored artifact does not match its digest.
    #[error("policy artifact {0} does not match its sha256")]
    Digest(String),
    /// The policy store failed.
    #[error(transparent)]
    Store(#[from] bibgate_store::Error),
}

/// The host's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
