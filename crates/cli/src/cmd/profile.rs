//! `bibgate profile`: manage integration profiles.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_store::{Profile, Store, TargetZone};

use super::{ZoneArg, now_unix};
use crate::data::Data;

/// `bibgate profile` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a Connexion integration profile.
    Add {
        /// The institution.
        #[arg(long)]
        institution: String,
        /// The password (generated and printed once when absent).
        #[arg(long)]
        password: Option<String>,
        /// Target zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
        /// Profile id (default `<institution>-connexion`, or a numbered one if taken).
        #[arg(long)]
        id: Option<String>,
    },
    /// List profiles.
    List,
    /// Lift the logon lock-out of a profile's logon id (on every shim at once; the failures
    /// that caused it are in the server log).
    Unlock {
        /// The profile id.
        id: String,
    },
    /// Show one profile (with its logon lock-out and password rotation state).
    Show {
        /// The profile id.
        id: String,
    },
    /// Change one setting (`KEY VALUE`), or rotate the password (`--password NEW`).
    Set {
        /// The profile id.
        id: String,
        /// The setting (logon-id, password, target-zone, check-brief-level, check-005,
        /// skip-cz, lock-timeout, serial-match, nonserial-match, brief-levels, merge-rules).
        #[arg(requires = "value", conflicts_with = "password")]
        key: Option<String>,
        /// Its new value.
        value: Option<String>,
        /// A new password (`-`: read it from the first line of standard input, so it stays
        /// out of the shell history and the process list).
        #[arg(long)]
        password: Option<String>,
        /// With a new password: how long the previous password is still accepted, so the
        /// Connexion clients can be updated one by one (`7d`, `12h`, `30m`, `90s`; `0` ends
        /// it at once).
        #[arg(long, default_value = "7d")]
        keep_previous_for: String,
    },
    /// Delete a profile.
    Delete {
        /// The profile id.
        id: String,
    },
}

/// Runs a `profile` subcommand.
pub fn run(data: &Data, command: Command) -> anyhow::Result<ExitCode> {
    let store = data.store()?.as_ref();
    let mut out = std::io::stdout();
    match command {
        Command::Add {
            institution,
            password,
            zone,
            id,
        } => add(store, &institution, password, zone, id, &mut out)?,
        Command::List => {
            for profile in all_profiles(store)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    profile.id,
                    profile.institution,
                    profile.kind,
                    profile.target_zone.as_str()
                )?;
            }
        }
        Command::Show { id } => {
            let profile = all_profiles(store)?
                .into_iter()
                .find(|p| p.id == id)
                .with_context(|| format!("profile {id:?} does not exist"))?;
            profile_show(&profile, &mut out)?;
            let locks = data.logon_locks()?.locks(&profile.logon_id, now_unix())?;
            if locks.is_empty() {
                writeln!(out, "  logon lock-out    none")?;
            }
            for lock in locks {
                writeln!(
                    out,
                    "  logon locked      for {} since {} until {} (bibgate profile unlock {})",
                    lock.scope(),
                    bibgate_engine::messages::utc_minutes(lock.locked_unix),
                    bibgate_engine::messages::utc_minutes(lock.until_unix),
                    profile.id
                )?;
            }
        }
        Command::Unlock { id } => {
            let profile = all_profiles(store)?
                .into_iter()
                .find(|p| p.id == id)
                .with_context(|| format!("profile {id:?} does not exist"))?;
            let lifted = data.logon_locks()?.unlock(&profile.logon_id, now_unix())?;
            writeln!(
                out,
                "{} logon lock{} lifted for logon id {} (every shim sees it within {} s)",
                lifted,
                if lifted == 1 { "" } else { "s" },
                profile.logon_id,
                bibgate_gateway::SHARED_LOCKS_CACHE_TTL.as_secs()
            )?;
        }
        Command::Set {
            id,
            key,
            value,
            password,
            keep_previous_for,
        } => {
            let keep = parse_duration(&keep_previous_for)?;
            let profile = match (password, key, value) {
                (Some(password), _, _) => {
                    let password = password_argument(&password)?;
                    profile_rotate_password(store, &id, &password, keep)?
                }
                (None, Some(key), Some(value)) if key == "password" => {
                    let password = password_argument(&value)?;
                    profile_rotate_password(store, &id, &password, keep)?
                }
                (None, Some(key), Some(value)) => profile_set(store, &id, &key, &value)?,
                _ => bail!("give a setting and its value (KEY VALUE), or --password NEW"),
            };
            profile_show(&profile, &mut out)?;
        }
        Command::Delete { id } => {
            if !store.delete_profile(&id)? {
                bail!("profile {id:?} does not exist");
            }
            writeln!(out, "profile {id} deleted")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `bibgate profile add`.
fn add(
    store: &dyn Store,
    institution: &str,
    password: Option<String>,
    zone: ZoneArg,
    id: Option<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if store.institution(institution)?.is_none() {
        bail!("institution {institution:?} does not exist");
    }
    let generated = password.is_none();
    let password = password.unwrap_or_else(bibgate_import::auth::generate_password);
    let hash = bibgate_import::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
    let mut profile = bibgate_import::default_profile(institution, hash, zone.target());
    let taken = all_profiles(store)?;
    profile.id = match id {
        Some(id) => id,
        None => (1..)
            .map(|n| {
                if n == 1 {
                    profile.id.clone()
                } else {
                    format!("{}-{n}", profile.id)
                }
            })
            .find(|candidate| taken.iter().all(|p| &p.id != candidate))
            .unwrap_or_default(),
    };
    if taken.iter().any(|p| p.id == profile.id) {
        bail!("profile {:?} already exists", profile.id);
    }
    store.put_profile(&profile)?;
    writeln!(out, "profile {} added for {institution}", profile.id)?;
    if generated {
        writeln!(out, "  password {password} (shown once)")?;
    }
    if store
        .profiles(institution)?
        .iter()
        .filter(|p| p.kind == bibgate_import::CONNEXION)
        .count()
        > 1
    {
        writeln!(
            out,
            "  warning: {institution} now has more than one Connexion profile; its exports will fail with \"No integration profile found for institution {institution}\" until one is deleted"
        )?;
    }
    Ok(())
}

/// Prints a profile, without its password hash.
fn profile_show(profile: &Profile, out: &mut impl Write) -> std::io::Result<()> {
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
fn all_profiles(store: &dyn Store) -> anyhow::Result<Vec<Profile>> {
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
pub(crate) fn profile_set(
    store: &dyn Store,
    id: &str,
    key: &str,
    value: &str,
) -> anyhow::Result<Profile> {
    let mut profile = all_profiles(store)?
        .into_iter()
        .find(|p| p.id == id)
        .with_context(|| format!("profile {id:?} does not exist (bibgate profile list)"))?;
    match key {
        "logon-id" => {
            // The gateway finds a profile by its logon id (bibgate_import::profile_for_logon):
            // it must name one profile only, and not another institution's code (which logs
            // on to that institution's own profile).
            let taken = store
                .institutions()?
                .iter()
                .any(|i| i.code == value && i.code != profile.institution)
                || all_profiles(store)?
                    .iter()
                    .any(|p| p.id != profile.id && p.kind == profile.kind && p.logon_id == value);
            if value.is_empty() || taken {
                bail!(
                    "{value:?} cannot be the logon id of {id}: it is empty, another institution's code or another profile's logon id"
                );
            }
            profile.logon_id = value.into();
        }
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
        "lock-timeout" => profile.lock_timeout_seconds = parse_duration(value)?,
        "serial-match" => profile.serial_match = value.into(),
        "nonserial-match" => profile.nonserial_match = value.into(),
        "brief-levels" => profile.brief_levels = value.into(),
        "merge-rules" => profile.merge_rules = value.into(),
        other => bail!(
            "{other:?} is not a profile setting (logon-id, password, target-zone, check-brief-level, check-005, skip-cz, lock-timeout, serial-match, nonserial-match, brief-levels, merge-rules)"
        ),
    }
    bibgate_import::import_rules(&profile)?;
    store.put_profile(&profile)?;
    Ok(profile)
}

/// A duration for the command line: `7d`, `12h`, `30m`, `90s` or plain seconds; in seconds.
fn parse_duration(text: &str) -> anyhow::Result<i64> {
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
fn password_argument(value: &str) -> anyhow::Result<String> {
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
fn profile_rotate_password(
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
    fn a_logon_id_names_one_profile_and_no_other_institution() {
        let store = bibgate_store_local::SqliteStore::in_memory().unwrap();
        for (code, numeric_code) in [("01A", 1), ("01B", 2)] {
            store
                .put_institution(&bibgate_store::Institution {
                    code: code.into(),
                    name: code.into(),
                    kind: bibgate_store::ZoneKind::Institution,
                    network: None,
                    numeric_code,
                })
                .unwrap();
            let hash = cheap_hash();
            store
                .put_profile(&bibgate_import::default_profile(
                    code,
                    hash,
                    TargetZone::Institution,
                ))
                .unwrap();
        }
        let changed = profile_set(&store, "01A-connexion", "logon-id", "A-CAT").unwrap();
        assert_eq!(changed.logon_id, "A-CAT");
        assert_eq!(
            bibgate_import::profile_for_logon(&store, "A-CAT")
                .unwrap()
                .institution,
            "01A"
        );
        for taken in ["01A", "A-CAT", ""] {
            assert!(
                profile_set(&store, "01B-connexion", "logon-id", taken).is_err(),
                "{taken:?}"
            );
        }
        // Its own code back is fine.
        profile_set(&store, "01A-connexion", "logon-id", "01A").unwrap();
    }

    fn cheap_hash() -> String {
        "$argon2id$v=19$m=64,t=1,p=1$YmliZ2F0ZXRlc3RzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()
    }

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
    fn lock_timeout_takes_a_duration_like_the_grace_period() {
        let store = bibgate_store_local::SqliteStore::in_memory().unwrap();
        store
            .put_institution(&bibgate_store::Institution {
                code: "01X".into(),
                name: "X".into(),
                kind: bibgate_store::ZoneKind::Institution,
                network: None,
                numeric_code: 4522,
            })
            .unwrap();
        let profile = bibgate_import::default_profile("01X", "x".into(), TargetZone::Institution);
        store.put_profile(&profile).unwrap();
        let set = |value: &str| profile_set(&store, &profile.id, "lock-timeout", value);
        assert_eq!(set("1h").unwrap().lock_timeout_seconds, 3_600);
        assert_eq!(set("90").unwrap().lock_timeout_seconds, 90);
        assert!(set("an hour").is_err());
        assert_eq!(
            bibgate_import::connexion_profile(&store, "01X")
                .unwrap()
                .lock_timeout_seconds,
            90
        );
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
