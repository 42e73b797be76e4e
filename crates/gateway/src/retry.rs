//! The retry window: the same record from the same institution within a short time is the
//! same export.
//!
//! A client that times out sends the record again; two cataloguers may export the same
//! record at once. Within the window the second request gets the first export's id, so it
//! waits for (and replies with) the first export's result, and the record is imported once.
//! A failed result is forgotten, so a re-export after the cause was fixed (a lock released)
//! is imported again. The window never answers for a record that changed since its export
//! (a restore, an edit, another import): the handler checks the record's revision and
//! decides the same bytes again.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::digest::Digester;

/// Entries kept before stale ones are swept (at least: after a sweep, the next one waits
/// until the entries have doubled, so that sweeping costs O(1) per claim however many
/// entries are within the window).
const SWEEP_AT: usize = 4_096;

/// What [`RetryWindow::claim`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A new export: write it to the inbox.
    New(String),
    /// The same bytes were received within the window under this export id.
    Existing(String),
}

/// Recently received records by institution and content digest.
#[derive(Debug)]
pub(crate) struct RetryWindow {
    window: Duration,
    digester: Digester,
    entries: HashMap<(String, u128), (String, Instant)>,
    /// The size at which the next sweep runs.
    sweep_at: usize,
}

impl RetryWindow {
    pub(crate) fn new(window: Duration) -> RetryWindow {
        RetryWindow {
            window,
            digester: Digester::new(),
            entries: HashMap::new(),
            sweep_at: SWEEP_AT,
        }
    }

    /// The digest identifying a record's bytes.
    pub(crate) fn digest(&self, record: &[u8]) -> u128 {
        self.digester.digest(record)
    }

    /// The export id for a record: the one received within the window, or a new one.
    pub(crate) fn claim(
        &mut self,
        institution: &str,
        digest: u128,
        now: Instant,
        new_id: impl FnOnce() -> String,
    ) -> Claim {
        if self.window.is_zero() {
            return Claim::New(new_id());
        }
        let window = self.window;
        if self.entries.len() >= self.sweep_at {
            self.entries
                .retain(|_, (_, since)| now.duration_since(*since) < window);
            self.sweep_at = (self.entries.len() * 2).max(SWEEP_AT);
        }
        let key = (institution.to_string(), digest);
        if let Some((export_id, since)) = self.entries.get(&key)
            && now.duration_since(*since) < window
        {
            return Claim::Existing(export_id.clone());
        }
        let export_id = new_id();
        self.entries.insert(key, (export_id.clone(), now));
        Claim::New(export_id)
    }

    /// Forgets a record (its export failed), if it is still mapped to `export_id`.
    pub(crate) fn forget(&mut self, institution: &str, digest: u128, export_id: &str) {
        let key = (institution.to_string(), digest);
        if self
            .entries
            .get(&key)
            .is_some_and(|(id, _)| id == export_id)
        {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_within_the_window_are_one_export() {
        let mut window = RetryWindow::new(Duration::from_secs(600));
        let now = Instant::now();
        let d = window.digest(b"00010abcde");
        assert_eq!(
            window.claim("A", d, now, || "e1".into()),
            Claim::New("e1".into())
        );
        assert_eq!(
            window.claim("A", d, now + Duration::from_secs(10), || "e2".into()),
            Claim::Existing("e1".into())
        );
        // Another institution, other bytes, or after the window: new exports.
        assert_eq!(
            window.claim("B", d, now, || "e3".into()),
            Claim::New("e3".into())
        );
        let other = window.digest(b"00010abcdf");
        assert_eq!(
            window.claim("A", other, now, || "e4".into()),
            Claim::New("e4".into())
        );
        assert_eq!(
            window.claim("A", d, now + Duration::from_secs(601), || "e5".into()),
            Claim::New("e5".into())
        );
        // A failure is forgotten.
        window.forget("A", d, "e5");
        assert_eq!(
            window.claim("A", d, now + Duration::from_secs(602), || "e6".into()),
            Claim::New("e6".into())
        );
    }

    #[test]
    fn sweeps_are_amortized_and_drop_stale_entries() {
        let mut window = RetryWindow::new(Duration::from_secs(600));
        let now = Instant::now();
        for digest in 0..SWEEP_AT as u128 {
            window.claim("A", digest, now, || format!("e{digest}"));
        }
        // All within the window: the sweep keeps them, and the next waits for twice as many.
        window.claim("A", u128::MAX, now, || "x".into());
        assert_eq!(window.entries.len(), SWEEP_AT + 1);
        assert_eq!(window.sweep_at, 2 * SWEEP_AT);
        let later = now + Duration::from_secs(601);
        for digest in 0..SWEEP_AT as u128 - 1 {
            window.claim("B", digest, later, || format!("f{digest}"));
        }
        assert_eq!(window.entries.len(), 2 * SWEEP_AT);
        // The stale entries of A go at the next sweep.
        window.claim("B", u128::MAX, later, || "y".into());
        assert_eq!(window.entries.len(), SWEEP_AT);
        assert!(
            window
                .entries
                .keys()
                .all(|(institution, _)| institution == "B")
        );
    }
}
