//! One module per command group, each with its clap arguments and its `run` function.
//! Also the few things several commands share: the `--zone` argument and the clock.

pub mod backup;
pub mod bench;
pub mod bench_console;
pub mod consortium;
pub mod convert;
pub mod demo;
pub mod duplicates;
pub mod editor;
pub mod import;
pub mod init;
pub mod inspect;
pub mod policy;
pub mod profile;
pub mod record;
pub mod redrive;
pub mod result;
pub mod results;
pub(crate) mod revise;
pub mod send;
pub mod serve;
pub mod serve_config;
pub mod staff;

use anyhow::Context;
use bibgate_store::{Store, TargetZone};
use clap::ValueEnum;

/// The `--zone` argument.
#[derive(Clone, Copy, ValueEnum)]
pub enum ZoneArg {
    /// The institution zone.
    Iz,
    /// The network zone.
    Nz,
}

impl ZoneArg {
    /// The zone the argument names.
    pub fn target(self) -> TargetZone {
        match self {
            ZoneArg::Iz => TargetZone::Institution,
            ZoneArg::Nz => TargetZone::Network,
        }
    }
}

/// The zone an institution's `--zone` option names.
pub fn zone_of(store: &dyn Store, institution: &str, zone: TargetZone) -> anyhow::Result<String> {
    let home = store.institution(institution)?.with_context(|| {
        format!("institution {institution:?} does not exist (bibgate init creates the demo ones)")
    })?;
    Ok(match zone {
        TargetZone::Institution => home.code,
        TargetZone::Network => home
            .network
            .with_context(|| format!("institution {institution:?} belongs to no network zone"))?,
    })
}

/// `n` and the noun, singular for one: `1 record`, `2 records`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Current time in Unix seconds (the pipeline's clock).
pub use bibgate_inbox::now_unix;

#[cfg(test)]
mod tests {
    #[test]
    fn r16_one_is_singular() {
        assert_eq!(super::count(1, "record"), "1 record");
        assert_eq!(super::count(0, "record"), "0 records");
        assert_eq!(super::count(2, "lock"), "2 locks");
    }
}
