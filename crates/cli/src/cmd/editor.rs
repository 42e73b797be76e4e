//! `bibgate editor`: a stand-in for a cataloguer opening, leaving or releasing a record in
//! the metadata editor, and the list of a zone's current locks.
//!
//! As in Alma, a lock is released by its holder's institution; another institution needs
//! `--force`, and a forced release is recorded: a JSON document under
//! `audit/editor/<zone>/` in the blob store (who released it, when, and the lock as it
//! was), named in the command's output and in a warning on stderr.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_engine::messages::utc_minutes;
use bibgate_store::{BlobStore, EditorLock, MmsId, Store};

use super::record::stored;
use super::{ZoneArg, now_unix, zone_of};
use crate::data::Data;

/// Arguments of `bibgate editor`.
#[derive(clap::Args)]
pub struct Args {
    /// open, leave, release, or list (the zone's current locks).
    #[arg(value_enum)]
    action: EditorAction,
    /// The MMS ID (not with list).
    #[arg(required_if_eq_any([("action", "open"), ("action", "leave"), ("action", "release")]))]
    mms_id: Option<String>,
    /// The cataloguer's institution (its zone holds the record).
    #[arg(long)]
    institution: String,
    /// The cataloguer.
    #[arg(long, default_value = "cataloguer")]
    user: String,
    /// Institution or network zone.
    #[arg(long, value_enum, default_value = "iz")]
    zone: ZoneArg,
    /// release: release a lock another institution holds (recorded with who did it).
    #[arg(long)]
    force: bool,
    /// list: one JSON object per lock.
    #[arg(long)]
    json: bool,
}

/// `bibgate editor`.
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let store = data.store()?.as_ref();
    let zone = zone_of(store, &args.institution, args.zone.target())?;
    let mut out = std::io::stdout().lock();
    if matches!(args.action, EditorAction::List) && args.mms_id.is_some() {
        bail!("editor list takes no MMS ID: it lists the zone's current locks");
    }
    let Some(mms_id) = &args.mms_id else {
        if !matches!(args.action, EditorAction::List) {
            bail!("an MMS ID is needed to open, leave or release a record");
        }
        let now = now_unix();
        let timeout = lock_timeout(store, &args.institution)?;
        let shown = list(store, &zone, timeout, now, args.json, &mut out)?;
        out.flush()?;
        eprintln!(
            "{shown} current lock{} in {zone}",
            if shown == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::SUCCESS);
    };
    let by = Holder {
        institution: &args.institution,
        user: &args.user,
    };
    let forced = editor_as(
        store,
        args.action,
        &zone,
        &MmsId(mms_id.clone()),
        &by,
        args.force,
        &mut out,
    )?;
    if let Some(lock) = forced {
        let key = record_forced_release(&*data.blobs, &lock, &by, now_unix())?;
        writeln!(out, "the forced release is recorded in {key}")?;
        eprintln!(
            "warning: {} ({}) released the lock {} ({}) held on {} in {}",
            by.institution, by.user, lock.institution, lock.user, lock.mms_id, lock.zone
        );
    }
    out.flush()?;
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
    /// List the zone's current locks.
    List,
}

/// Who acts in the editor.
pub(crate) struct Holder<'a> {
    /// The cataloguer's institution.
    pub(crate) institution: &'a str,
    /// The cataloguer.
    pub(crate) user: &'a str,
}

/// Opens, leaves or releases the record, as the holder's institution (no force).
pub(crate) fn editor(
    store: &dyn Store,
    action: EditorAction,
    zone: &str,
    mms_id: &MmsId,
    institution: &str,
    user: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let by = Holder { institution, user };
    editor_as(store, action, zone, mms_id, &by, false, out).map(|_| ())
}

/// Opens, leaves or releases the record as `by`. A release of another institution's lock
/// needs `force`; the lock it removed is returned, to be recorded.
pub(crate) fn editor_as(
    store: &dyn Store,
    action: EditorAction,
    zone: &str,
    mms_id: &MmsId,
    by: &Holder<'_>,
    force: bool,
    out: &mut impl Write,
) -> anyhow::Result<Option<EditorLock>> {
    stored(store, zone, mms_id)?;
    let now = now_unix();
    let (institution, user) = (by.institution, by.user);
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
            let lock = store.lock(zone, mms_id)?;
            let forced = match lock {
                Some(lock) if lock.institution != institution => {
                    if !force {
                        bail!(
                            "record {mms_id} is locked by {} ({}) since {}; only {} can release it (or release it with --force, which is recorded)",
                            lock.institution,
                            lock.user,
                            utc_minutes(lock.since_unix),
                            lock.institution
                        );
                    }
                    Some(lock)
                }
                _ => None,
            };
            let released = store.release_lock(zone, mms_id)?;
            writeln!(
                out,
                "{}",
                match (&forced, released) {
                    (Some(lock), true) => format!(
                        "record {mms_id} released by force: the lock of {} ({}) is removed",
                        lock.institution, lock.user
                    ),
                    (None, true) => format!("record {mms_id} released"),
                    (_, false) => format!("record {mms_id} was not locked"),
                }
            )?;
            return Ok(forced.filter(|_| released));
        }
        EditorAction::List => bail!("list takes no MMS ID"),
    }
    Ok(None)
}

/// The lock timeout of the institution's Connexion profile (the first, by id), if any.
pub(crate) fn lock_timeout(store: &dyn Store, institution: &str) -> anyhow::Result<Option<i64>> {
    Ok(store
        .profiles(institution)?
        .into_iter()
        .find(|profile| profile.kind == bibgate_import::CONNEXION)
        .map(|profile| profile.lock_timeout_seconds))
}

/// When a lock expires, as shown.
pub(crate) fn expires_text(lock: &EditorLock, timeout: Option<i64>) -> String {
    match (lock.left_unix, timeout) {
        (None, _) => "when released (still in the editor)".to_string(),
        (Some(left), Some(timeout)) => utc_minutes(left.saturating_add(timeout)),
        (Some(left), None) => format!(
            "after the profile's lock timeout (left the editor {})",
            utc_minutes(left)
        ),
    }
}

/// Writes the zone's current locks (held at `now`: open, or left less than `timeout` ago;
/// a left lock counts as current when the timeout is not known); returns how many.
fn list(
    store: &dyn Store,
    zone: &str,
    timeout: Option<i64>,
    now: i64,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let current: Vec<EditorLock> = store
        .locks(zone)?
        .into_iter()
        .filter(|lock| match (lock.left_unix, timeout) {
            (Some(left), Some(timeout)) => now < left.saturating_add(timeout),
            _ => true,
        })
        .collect();
    if !json && !current.is_empty() {
        writeln!(out, "MMS ID\tuser\tinstitution\tsince\texpires")?;
    }
    for lock in &current {
        if json {
            let line = serde_json::json!({
                "zone": lock.zone,
                "mms_id": lock.mms_id.as_str(),
                "user": lock.user,
                "institution": lock.institution,
                "since_unix": lock.since_unix,
                "left_unix": lock.left_unix,
                "expires_unix": match (lock.left_unix, timeout) {
                    (Some(left), Some(timeout)) => Some(left.saturating_add(timeout)),
                    _ => None,
                },
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                lock.mms_id,
                lock.user,
                lock.institution,
                utc_minutes(lock.since_unix),
                expires_text(lock, timeout)
            )?;
        }
    }
    Ok(current.len())
}

/// Writes the record of a forced release; returns its key.
pub(crate) fn record_forced_release(
    blobs: &dyn BlobStore,
    lock: &EditorLock,
    by: &Holder<'_>,
    now: i64,
) -> anyhow::Result<String> {
    let key = bibgate_inbox::layout::forced_release_key(&lock.zone, lock.mms_id.as_str(), now);
    let document = serde_json::json!({
        "action": "release",
        "forced": true,
        "at_unix": now,
        "by_institution": by.institution,
        "by_user": by.user,
        "lock": {
            "zone": lock.zone,
            "mms_id": lock.mms_id.as_str(),
            "institution": lock.institution,
            "user": lock.user,
            "since_unix": lock.since_unix,
            "left_unix": lock.left_unix,
        },
    });
    blobs
        .put(&key, document.to_string().as_bytes())
        .with_context(|| format!("could not record the forced release in {key:?}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_store_local::{FolderBlobStore, SqliteStore};
    use bibgate_test_support::{ALPHA, BETA, NETWORK, init_demo, oclc_record, seed};

    fn open(store: &dyn Store, zone: &str, mms_id: &MmsId, institution: &str, user: &str) {
        editor(
            store,
            EditorAction::Open,
            zone,
            mms_id,
            institution,
            user,
            &mut Vec::new(),
        )
        .unwrap();
    }

    #[test]
    fn r16_list_shows_the_current_locks_of_a_zone() {
        let store = SqliteStore::in_memory().unwrap();
        init_demo(&store);
        let record = oclc_record(4001, b' ', None, "Locked.");
        let first = seed(&store, NETWORK, &record, &[(4001, true)]);
        let second = seed(&store, NETWORK, &record, &[(4002, true)]);
        let expired = seed(&store, NETWORK, &record, &[(4003, true)]);
        open(&store, NETWORK, &first, ALPHA, "jdoe");
        open(&store, NETWORK, &second, BETA, "asmith");
        store
            .put_lock(&EditorLock {
                zone: NETWORK.into(),
                mms_id: expired.clone(),
                institution: BETA.into(),
                user: "gone".into(),
                since_unix: 1_000,
                left_unix: Some(2_000),
            })
            .unwrap();
        let now = now_unix();
        let mut text = Vec::new();
        assert_eq!(
            list(&store, NETWORK, Some(1800), now, false, &mut text).unwrap(),
            2
        );
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "MMS ID\tuser\tinstitution\tsince\texpires");
        assert!(
            lines[1].starts_with(&format!("{first}\tjdoe\t{ALPHA}\t")),
            "{text}"
        );
        assert!(lines[1].ends_with("\twhen released (still in the editor)"));
        assert!(lines[2].starts_with(&format!("{second}\tasmith\t{BETA}\t")));
        assert!(!text.contains("gone"), "an expired lock is not current");

        let mut json = Vec::new();
        list(&store, NETWORK, Some(1800), now, true, &mut json).unwrap();
        let line: serde_json::Value =
            serde_json::from_slice(json.split(|&b| b == b'\n').next().unwrap()).unwrap();
        assert_eq!(line["mms_id"], first.as_str());
        assert_eq!(line["institution"], ALPHA);
        assert_eq!(
            list(&store, ALPHA, Some(1800), now, false, &mut Vec::new()).unwrap(),
            0
        );
    }

    #[test]
    fn r16_only_the_holders_institution_releases_without_force() {
        let store = SqliteStore::in_memory().unwrap();
        init_demo(&store);
        let dir = tempfile::tempdir().unwrap();
        let blobs = FolderBlobStore::new(dir.path()).unwrap();
        let record = oclc_record(4101, b' ', None, "Locked.");
        let mms_id = seed(&store, NETWORK, &record, &[(4101, true)]);
        open(&store, NETWORK, &mms_id, ALPHA, "jdoe");

        let beta = Holder {
            institution: BETA,
            user: "asmith",
        };
        let release = |by: &Holder<'_>, force: bool| {
            editor_as(
                &store,
                EditorAction::Release,
                NETWORK,
                &mms_id,
                by,
                force,
                &mut Vec::new(),
            )
        };
        let refused = release(&beta, false).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("only {ALPHA} can release it")),
            "{refused}"
        );
        assert!(store.lock(NETWORK, &mms_id).unwrap().is_some());

        let forced = release(&beta, true).unwrap().unwrap();
        assert_eq!(forced.institution, ALPHA);
        assert!(store.lock(NETWORK, &mms_id).unwrap().is_none());
        let key = record_forced_release(&blobs, &forced, &beta, 5_000).unwrap();
        let document: serde_json::Value =
            serde_json::from_slice(&blobs.get(&key).unwrap().unwrap()).unwrap();
        assert_eq!(document["by_institution"], BETA);
        assert_eq!(document["by_user"], "asmith");
        assert_eq!(document["lock"]["user"], "jdoe");

        // The holder's institution releases without force, and nothing is recorded.
        open(&store, NETWORK, &mms_id, ALPHA, "jdoe");
        let alpha = Holder {
            institution: ALPHA,
            user: "someone-else",
        };
        assert_eq!(release(&alpha, false).unwrap(), None);
        assert!(store.lock(NETWORK, &mms_id).unwrap().is_none());
    }
}
