//! `bibgate record`, `bibgate editor` and `bibgate profile`.

use std::io::Write;

use anyhow::{Context, bail};
use bibgate_marc::{Field, Record};
use bibgate_store::{Commit, EditorLock, MmsId, Profile, Store, StoredRecord, TargetZone};

use crate::import_cmd::now_unix;

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

/// Writes a record in the usual line display (`=245  10$aTitle`).
pub fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
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

fn stored(store: &dyn Store, zone: &str, mms_id: &MmsId) -> anyhow::Result<StoredRecord> {
    store
        .record(zone, mms_id)?
        .with_context(|| format!("record {mms_id} does not exist in zone {zone}"))
}

/// `bibgate record show`.
pub fn record_show(
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
pub fn record_history(
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
pub fn record_restore(
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

/// What `bibgate editor` does.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum EditorAction {
    /// Open the record in the metadata editor (locks it).
    Open,
    /// Leave the editor without releasing (the lock expires after the profile's timeout).
    Leave,
    /// Release the record.
    Release,
}

/// `bibgate editor`.
pub fn editor(
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

/// Prints a profile, without its password hash.
pub fn profile_show(profile: &Profile, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "profile {} (institution {}, {})",
        profile.id, profile.institution, profile.kind
    )?;
    writeln!(out, "  logon-id          {}", profile.logon_id)?;
    writeln!(out, "  password          (argon2id hash stored)")?;
    writeln!(out, "  target-zone       {}", profile.target_zone.as_str())?;
    writeln!(out, "  check-brief-level {}", profile.check_brief_level)?;
    writeln!(out, "  check-005         {}", profile.check_005)?;
    writeln!(
        out,
        "  lock-timeout      {} s",
        profile.lock_timeout_seconds
    )?;
    writeln!(out, "  skip-cz           {}", profile.skip_community_zone)?;
    writeln!(out, "  serial-match      {}", profile.serial_match)?;
    writeln!(out, "  nonserial-match   {}", profile.nonserial_match)?;
    writeln!(out, "  brief-levels      {}", profile.brief_levels)?;
    writeln!(out, "  merge-rules       {}", profile.merge_rules)?;
    Ok(())
}

/// Every profile of every institution.
pub fn all_profiles(store: &dyn Store) -> anyhow::Result<Vec<Profile>> {
    let mut profiles = Vec::new();
    for institution in store.institutions()? {
        profiles.extend(store.profiles(&institution.code)?);
    }
    Ok(profiles)
}

fn parse_bool(value: &str) -> anyhow::Result<bool> {
    match value {
        "true" | "on" | "yes" => Ok(true),
        "false" | "off" | "no" => Ok(false),
        other => bail!("{other:?} is not true or false"),
    }
}

/// `bibgate profile set ID KEY VALUE`: changes one setting, checked before it is stored.
pub fn profile_set(store: &dyn Store, id: &str, key: &str, value: &str) -> anyhow::Result<Profile> {
    let mut profile = all_profiles(store)?
        .into_iter()
        .find(|p| p.id == id)
        .with_context(|| format!("profile {id:?} does not exist (bibgate profile list)"))?;
    match key {
        "logon-id" => profile.logon_id = value.into(),
        "password" => {
            profile.password_hash =
                bibgate_import::auth::hash_password(value).map_err(anyhow::Error::msg)?
        }
        "target-zone" => {
            profile.target_zone = match value {
                "iz" => TargetZone::Institution,
                "nz" => TargetZone::Network,
                other => bail!("{other:?} is not iz or nz"),
            }
        }
        "check-brief-level" => profile.check_brief_level = parse_bool(value)?,
        "check-005" => profile.check_005 = parse_bool(value)?,
        "skip-cz" => profile.skip_community_zone = parse_bool(value)?,
        "lock-timeout" => {
            profile.lock_timeout_seconds = value
                .parse()
                .context("lock-timeout is a number of seconds")?
        }
        "serial-match" => profile.serial_match = value.into(),
        "nonserial-match" => profile.nonserial_match = value.into(),
        "brief-levels" => profile.brief_levels = value.into(),
        "merge-rules" => profile.merge_rules = value.into(),
        other => bail!(
            "{other:?} is not a profile setting (logon-id, password, target-zone, check-brief-level, check-005, skip-cz, lock-timeout, serial-match, nonserial-match, brief-levels, merge-rules)"
        ),
    }
    bibgate_import::policy(&profile)?;
    store.put_profile(&profile)?;
    Ok(profile)
}
