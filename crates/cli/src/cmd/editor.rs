//! `bibgate editor`: a stand-in for a cataloguer opening, leaving or releasing a record in
//! the metadata editor.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_store::{EditorLock, MmsId, Store};

use super::record::stored;
use super::{ZoneArg, now_unix, zone_of};
use crate::data::Data;

/// Arguments of `bibgate editor`.
#[derive(clap::Args)]
pub struct Args {
    /// open, leave or release.
    #[arg(value_enum)]
    action: EditorAction,
    /// The MMS ID.
    mms_id: String,
    /// The cataloguer's institution (its zone holds the record).
    #[arg(long)]
    institution: String,
    /// The cataloguer.
    #[arg(long, default_value = "cataloguer")]
    user: String,
    /// Institution or network zone.
    #[arg(long, value_enum, default_value = "iz")]
    zone: ZoneArg,
}

/// `bibgate editor`.
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let store = data.store()?.as_ref();
    let zone = zone_of(store, &args.institution, args.zone.target())?;
    editor(
        store,
        args.action,
        &zone,
        &MmsId(args.mms_id.clone()),
        &args.institution,
        &args.user,
        &mut std::io::stdout(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What `bibgate editor` does.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum EditorAction {
    /// Open the record in the metadata editor (locks it).
    Open,
    /// Leave the editor without releasing (the lock expires after the profile's timeout).
    Leave,
    /// Release the record.
    Release,
}

/// Opens, leaves or releases the record.
pub(crate) fn editor(
    store: &dyn Store,
    action: EditorAction,
    zone: &str,
    mms_id: &MmsId,
    institution: &str,
    user: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    stored(store, zone, mms_id)?;
    let now = now_unix();
    match action {
        EditorAction::Open => {
            if let Some(lock) = store.lock(zone, mms_id)?
                && lock.left_unix.is_none()
                && (lock.institution != institution || lock.user != user)
            {
                bail!(
                    "record {mms_id} is open in the editor by {} ({})",
                    lock.institution,
                    lock.user
                );
            }
            store.put_lock(&EditorLock {
                zone: zone.into(),
                mms_id: mms_id.clone(),
                institution: institution.into(),
                user: user.into(),
                since_unix: now,
                left_unix: None,
            })?;
            writeln!(
                out,
                "record {mms_id} opened in the editor by {institution} ({user}); it is locked until released"
            )?;
        }
        EditorAction::Leave => {
            let lock = store
                .lock(zone, mms_id)?
                .with_context(|| format!("record {mms_id} is not open in the editor"))?;
            store.put_lock(&EditorLock {
                left_unix: Some(now),
                ..lock
            })?;
            writeln!(
                out,
                "left the editor without releasing {mms_id}; the lock expires after the profile's timeout"
            )?;
        }
        EditorAction::Release => {
            let released = store.release_lock(zone, mms_id)?;
            writeln!(
                out,
                "{}",
                if released {
                    format!("record {mms_id} released")
                } else {
                    format!("record {mms_id} was not locked")
                }
            )?;
        }
    }
    Ok(())
}
