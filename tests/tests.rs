//! Black-box tests over the shared corpus and the `bibgate` binary; one test binary.

mod corpus;
mod util;
mod yaz;
