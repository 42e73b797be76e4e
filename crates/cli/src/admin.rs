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
    if let (Some(_), Some(expires)) = (
        profile.previous_password_at(now_unix()),
        profile.previous_password_expires,
    ) {
        writeln!(
            out,
            "  previous password accepted until {}",
            bibgate_engine::messages::utc_minutes(expires)
        )?;
    }
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
            let hash = bibgate_import::auth::hash_password(value).map_err(anyhow::Error::msg)?;
            bibgate_import::auth::rotate(&mut profile, hash, 0, now_unix());
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

/// A duration for the command line: `7d`, `12h`, `30m`, `90s` or plain seconds; in seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("{text:?} is not a duration like 7d, 12h, 30m, 90s or 0"),
    };
    let value: i64 = digits
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 7d, 12h, 30m, 90s or 0"))?;
    value
        .checked_mul(scale)
        .with_context(|| format!("{text:?} is too long"))
}

/// A password given on the command line; `-` reads the first line of standard input.
pub fn password_argument(value: &str) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("could not read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

/// `bibgate profile set ID --password NEW [--keep-previous-for DURATION]`: the new password
/// is accepted at once; the previous one stays accepted for `keep_previous_seconds` (so the
/// running gateway accepts both without a restart; 0 ends the previous one at once).
pub fn profile_rotate_password(
    store: &dyn Store,
    id: &str,
    password: &str,
    keep_previous_seconds: i64,
) -> anyhow::Result<Profile> {
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    let mut profile = all_profiles(store)?
        .into_iter()
        .find(|p| p.id == id)
        .with_context(|| format!("profile {id:?} does not exist (bibgate profile list)"))?;
    let hash = bibgate_import::auth::hash_password(password).map_err(anyhow::Error::msg)?;
    bibgate_import::auth::rotate(&mut profile, hash, keep_previous_seconds, now_unix());
    store.put_profile(&profile)?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_rotation_keeps_the_previous_password_for_the_grace_period() {
        const ZONE_A: &str = "01DEMO_ALPHA";
        let store = bibgate_store_local::SqliteStore::in_memory().unwrap();
        store
            .put_institution(&bibgate_store::Institution {
                code: ZONE_A.into(),
                name: "Alpha".into(),
                kind: bibgate_store::ZoneKind::Institution,
                network: None,
                numeric_code: 4521,
            })
            .unwrap();
        let old_hash = bibgate_import::auth::hash_password("old-pw").unwrap();
        let profile =
            bibgate_import::default_profile(ZONE_A, old_hash.clone(), TargetZone::Institution);
        store.put_profile(&profile).unwrap();
        let before = now_unix();
        let rotated = profile_rotate_password(&store, &profile.id, "new-pw", 3_600).unwrap();
        assert_eq!(
            rotated.previous_password_hash.as_deref(),
            Some(old_hash.as_str())
        );
        let expires = rotated.previous_password_expires.unwrap();
        assert!((before + 3_600..=now_unix() + 3_600).contains(&expires));
        let stored = bibgate_import::connexion_profile(&store, ZONE_A).unwrap();
        assert_eq!(stored, rotated);
        for (password, at, accepted) in [
            ("new-pw", before, true),
            ("old-pw", before, true),
            ("old-pw", expires, false),
            ("new-pw", expires, true),
        ] {
            assert_eq!(
                bibgate_import::auth::verify_profile_password(&stored, password, at),
                accepted,
                "{password} at {at}"
            );
        }
        let mut shown = Vec::new();
        profile_show(&stored, &mut shown).unwrap();
        let shown = String::from_utf8(shown).unwrap();
        assert!(
            shown.contains("previous password accepted until"),
            "{shown}"
        );
        assert!(!shown.contains("argon2id$"), "{shown}");
        // No grace: the previous password is dropped.
        let again = profile_rotate_password(&store, &profile.id, "newer-pw", 0).unwrap();
        assert_eq!(again.previous_password_hash, None);
        assert!(!bibgate_import::auth::verify_profile_password(
            &again,
            "new-pw",
            now_unix()
        ));
        assert!(profile_rotate_password(&store, &profile.id, "", 60).is_err());
        assert!(profile_rotate_password(&store, "nope", "pw", 60).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("12h").unwrap(), 43_200);
        assert_eq!(parse_duration("30m").unwrap(), 1_800);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }
}
