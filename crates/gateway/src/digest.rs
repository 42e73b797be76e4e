//! Keyed in-memory digests of record bytes and passwords (the retry window, the logon cache).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// A 128-bit digest with per-process random keys (SipHash twice): for in-memory maps of
/// record bytes and passwords, never written anywhere.
#[derive(Debug, Default)]
pub struct Digester {
    a: RandomState,
    b: RandomState,
}

impl Digester {
    /// A digester with fresh random keys.
    pub fn new() -> Digester {
        Digester::default()
    }

    /// The digest of `bytes`.
    pub fn digest(&self, bytes: &[u8]) -> u128 {
        (u128::from(self.a.hash_one(bytes)) << 64) | u128::from(self.b.hash_one(bytes))
    }
}
