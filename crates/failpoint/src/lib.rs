//! Named points in the import path where a fault test stops the process, so that it can kill
//! it there with SIGKILL and check what a restart finds.
//!
//! `BIBGATE_FAILPOINT=name[@n][,name[@n]…]` arms points: the `n`-th time (default the first)
//! the process reaches `name`, it prints `bibgate: failpoint NAME reached` on stderr and then
//! waits forever, holding whatever it holds at that moment (an open transaction, a half-done
//! pass). The test waits for that line and sends SIGKILL. Without the variable a point costs
//! one relaxed atomic load.
//!
//! The points (each placed right after the step it names has become durable, or, for
//! `store.commit.before`, right before the one write that would make it so):
//!
//! | point | where |
//! |---|---|
//! | `export.received` | an export's raw bytes are copied to `received/`; nothing imported yet |
//! | `store.commit.before` | an import's writes are staged (SQLite: inside the transaction; DynamoDB: the transaction built), not committed |
//! | `store.commit.after` | the record, its prior version, the index entries and the result are committed; no result document yet |
//! | `export.delivered` | the result is delivered (stored, and its result document written when documents are the delivery); the inbox object is not deleted yet |
//! | `drop.chunk` | one chunk of a drop file is committed (use `drop.chunk@1` to stop in the middle of a batch) |
//!
//! # Invariants
//!
//! - A point never changes what the program does unless its name is armed.
//! - An armed point never returns.
#![deny(missing_docs)]

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that arms points.
pub const VARIABLE: &str = "BIBGATE_FAILPOINT";

struct Armed {
    name: String,
    nth: u32,
    hits: AtomicU32,
}

fn armed() -> &'static [Armed] {
    static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(VARIABLE)
            .map(|v| parse(&v))
            .unwrap_or_default()
    })
}

fn parse(value: &str) -> Vec<Armed> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|spec| {
            let (name, nth) = match spec.split_once('@') {
                Some((name, nth)) => (name, nth.parse().unwrap_or(1).max(1)),
                None => (spec, 1),
            };
            Armed {
                name: name.to_string(),
                nth,
                hits: AtomicU32::new(0),
            }
        })
        .collect()
}

/// Marks the point `name`; when armed and reached for the armed time, stops here forever.
pub fn point(name: &str) {
    for armed in armed() {
        if armed.name == name && armed.hits.fetch_add(1, Ordering::Relaxed) + 1 == armed.nth {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "bibgate: failpoint {name} reached");
            let _ = err.flush();
            drop(err);
            loop {
                std::thread::park();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_counts() {
        let armed = parse(" export.received , drop.chunk@3,,x@0");
        let got: Vec<(&str, u32)> = armed.iter().map(|a| (a.name.as_str(), a.nth)).collect();
        assert_eq!(got, [("export.received", 1), ("drop.chunk", 3), ("x", 1)]);
    }

    #[test]
    fn an_unarmed_point_returns() {
        // The test process has no BIBGATE_FAILPOINT for this name.
        point("no.such.point");
    }
}
