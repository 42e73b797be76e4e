//! What the tests of the workspace share, as a dev-dependency (never a dependency of
//! anything shipped): the test consortium ([`consortium`]), record builders ([`records`]), a
//! Connexion shim without a processor ([`Shim`]), and the load driver ([`load`]) that the gateway's and the Lambda function's load tests and
//! the gateway's benchmarks run.
//!
//! Test code: it panics on a failed set-up step, with the step named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod consortium;
pub mod load;
pub mod records;
pub mod shim;

pub use consortium::*;
pub use records::*;
pub use shim::Shim;
