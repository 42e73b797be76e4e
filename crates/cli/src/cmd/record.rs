//! `bibgate record`: show, list the history of, or restore records.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use bibgate_marc::{Field, Record};
use bibgate_store::{Commit, MmsId, Store, StoredRecord};

use super::{ZoneArg, now_unix, zone_of};
use crate::data::Data;

/// `bibgate record` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Show a record's current state.
    Show {
        /// The MMS ID.
        mms_id: String,
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
    },
    /// List a record's prior versions.
    History {
        /// The MMS ID.
        mms_id: String,
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
    },
    /// Make a prior revision current again (the current one is kept as a version).
    Restore {
        /// The MMS ID.
        mms_id: String,
        /// The revision to restore (see history).
        #[arg(long)]
        revision: u64,
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
        /// Who restores it.
        #[arg(long, default_value = "cli")]
        user: String,
    },
}

/// Runs a `record` subcommand.
pub fn run(data: &Data, command: Command) -> anyhow::Result<ExitCode> {
    let store = data.store()?.as_ref();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Show {
            mms_id,
            institution,
            zone,
        } => {
            let zone = zone_of(store, &institution, zone.target())?;
            record_show(store, &zone, &MmsId(mms_id), &mut out)?;
        }
        Command::History {
            mms_id,
            institution,
            zone,
        } => {
            let zone = zone_of(store, &institution, zone.target())?;
            record_history(store, &zone, &MmsId(mms_id), &mut out)?;
        }
        Command::Restore {
            mms_id,
            revision,
            institution,
            zone,
            user,
        } => {
            let zone = zone_of(store, &institution, zone.target())?;
            record_restore(store, &zone, &MmsId(mms_id), revision, &user, &mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a record in the usual line display (`=245  10$aTitle`).
fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
    writeln!(out, "=LDR  {}", record.leader.as_text())?;
    for field in &record.fields {
        match field {
            Field::Control { tag, value } => writeln!(out, "={tag}  {value}")?,
            Field::Data {
                tag,
                ind1,
                ind2,
                subfields,
            } => {
                let ind = |b: u8| if b == b' ' { '\\' } else { char::from(b) };
                write!(out, "={tag}  {}{}", ind(*ind1), ind(*ind2))?;
                for subfield in subfields {
                    write!(out, "${}{}", char::from(subfield.code), subfield.value)?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

pub(super) fn stored(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
) -> anyhow::Result<StoredRecord> {
    store
        .record(zone, mms_id)?
        .with_context(|| format!("record {mms_id} does not exist in zone {zone}"))
}

/// `bibgate record show`.
fn record_show(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let record = stored(store, zone, mms_id)?;
    writeln!(
        out,
        "MMS ID {} in {zone}: revision {}, brief level {:02}, originating version {}",
        record.mms_id,
        record.revision,
        record.brief_level,
        record.originating_version.as_deref().unwrap_or("none")
    )?;
    write_record(out, &bibgate_import::read_stored(&record)?)?;
    Ok(())
}

/// `bibgate record history`.
fn record_history(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let current = stored(store, zone, mms_id)?;
    for version in store.versions(zone, mms_id)? {
        writeln!(
            out,
            "revision {}: replaced at {} by {} ({}); originating version {}",
            version.revision,
            bibgate_engine::messages::utc_minutes(version.replaced_unix),
            version.replaced_by,
            version.reason,
            version.originating_version.as_deref().unwrap_or("none")
        )?;
    }
    writeln!(
        out,
        "revision {} (current): saved at {}",
        current.revision,
        bibgate_engine::messages::utc_minutes(current.updated_unix)
    )?;
    Ok(())
}

/// `bibgate record restore`: a prior revision becomes current; the current one is kept.
fn record_restore(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
    revision: u64,
    user: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let current = stored(store, zone, mms_id)?;
    let version = store
        .versions(zone, mms_id)?
        .into_iter()
        .find(|v| v.revision == revision)
        .with_context(|| {
            format!("record {mms_id} has no prior revision {revision} (see bibgate record history)")
        })?;
    let record = bibgate_import::read_stored(&StoredRecord {
        marc: version.marc.clone(),
        ..current.clone()
    })?;
    let keys = bibgate_matching::oclc_keys(&record)
        .keys
        .iter()
        .map(|k| bibgate_store::IndexKey {
            number: k.number.get(),
            active: k.provenance.is_active(),
        })
        .collect();
    let now = now_unix();
    store.commit(&Commit::Replace {
        expected_revision: current.revision,
        record: StoredRecord {
            marc: version.marc,
            revision: current.revision + 1,
            originating_version: version.originating_version,
            brief_level: version.brief_level,
            updated_unix: now,
            keys,
            ..current.clone()
        },
        replaced_by: format!("user:{user}"),
        reason: format!("restore of revision {revision}"),
    })?;
    writeln!(
        out,
        "record {mms_id}: revision {revision} restored as revision {}; revision {} kept in the history",
        current.revision + 1,
        current.revision
    )?;
    Ok(())
}
