//! Routing: which profile, zone and import rules an institution's records get, and the
//! Connexion logon (Alma's "No integration profile found for institution X" and
//! "Logon Failed--…").

use bibgate_engine::{ImportRules, MatchMethod};
use bibgate_matching::BriefLevelTable;
use bibgate_store::{Institution, Profile, Store, TargetZone};

use crate::{CONNEXION, Error, Result, auth};

/// Where an institution's imports go, and by which rules.
#[derive(Clone, Debug)]
pub struct Route {
    /// The sending institution.
    pub institution: Institution,
    /// Its Connexion profile.
    pub profile: Profile,
    /// The zone decided in (the institution itself, or its network zone).
    pub zone: Institution,
    /// The profile's rules.
    pub rules: ImportRules,
}

fn bad(profile: &Profile, setting: &'static str, message: String) -> Error {
    Error::BadProfile {
        profile: profile.id.clone(),
        setting,
        message,
    }
}

fn match_method(profile: &Profile, setting: &'static str, text: &str) -> Result<MatchMethod> {
    match text {
        "" | "unique-oclc" => Ok(MatchMethod::UniqueOclc),
        "unique-oclc-active" => Ok(MatchMethod::UniqueOclcActiveOnly),
        other => Err(bad(
            profile,
            setting,
            format!("{other:?} is not unique-oclc or unique-oclc-active"),
        )),
    }
}

/// The import rules a profile describes.
pub fn import_rules(profile: &Profile) -> Result<ImportRules> {
    let brief_levels = if profile.brief_levels.trim().is_empty() {
        BriefLevelTable::carli()
    } else {
        BriefLevelTable::parse_spec(&profile.brief_levels)
            .map_err(|e| bad(profile, "brief-level table", e.to_string()))?
    };
    let merge = if profile.merge_rules.trim().is_empty() {
        bibgate_engine::MergeRules::alma_overlay_all_but_local()
    } else {
        bibgate_engine::MergeRules::parse(&profile.merge_rules)
            .map_err(|e| bad(profile, "merge rules", e.to_string()))?
    };
    Ok(ImportRules {
        brief_levels,
        check_brief_level: profile.check_brief_level,
        check_005: profile.check_005,
        lock_timeout_seconds: profile.lock_timeout_seconds,
        skip_community_zone: profile.skip_community_zone,
        merge,
        serial_match: match_method(profile, "serial match method", &profile.serial_match)?,
        nonserial_match: match_method(
            profile,
            "non-serial match method",
            &profile.nonserial_match,
        )?,
    })
}

/// A profile for a new Connexion integration with CARLI's standard settings.
pub fn default_profile(
    institution: &str,
    password_hash: String,
    target_zone: TargetZone,
) -> Profile {
    Profile {
        id: format!("{institution}-connexion"),
        institution: institution.to_string(),
        kind: CONNEXION.to_string(),
        logon_id: institution.to_string(),
        password_hash,
        previous_password_hash: None,
        previous_password_expires: None,
        target_zone,
        check_brief_level: true,
        check_005: true,
        lock_timeout_seconds: 3_600,
        brief_levels: BriefLevelTable::carli().to_spec(),
        merge_rules: bibgate_engine::MergeRules::alma_overlay_all_but_local().to_spec(),
        serial_match: "unique-oclc".into(),
        nonserial_match: "unique-oclc".into(),
        skip_community_zone: true,
    }
}

/// The one Connexion profile of an institution; none or several is Alma's
/// "No integration profile found for institution CODE".
pub fn connexion_profile(store: &dyn Store, institution: &str) -> Result<Profile> {
    let mut profiles: Vec<Profile> = store
        .profiles(institution)?
        .into_iter()
        .filter(|p| p.kind == CONNEXION)
        .collect();
    match profiles.len() {
        1 => Ok(profiles.remove(0)),
        _ => Err(Error::NoProfile(institution.to_string())),
    }
}

/// The Connexion profile a logon id logs on to: the institution's own when the logon id is
/// its code and its profile keeps that logon id (Alma's convention, and every profile's
/// default), else the one Connexion profile of any institution whose logon id was set to it
/// (`bibgate profile set ID logon-id X`). An institution code whose profile has another
/// logon id is [`Error::LogonFailed`]; a logon id no profile has, or several have, is
/// [`Error::NoProfile`].
pub fn profile_for_logon(store: &dyn Store, logon_id: &str) -> Result<Profile> {
    let own = match connexion_profile(store, logon_id) {
        Ok(profile) if profile.logon_id == logon_id => return Ok(profile),
        Ok(_) => true,
        Err(Error::NoProfile(_)) => false,
        Err(error) => return Err(error),
    };
    let mut found = Vec::new();
    for institution in store.institutions()? {
        if institution.code == logon_id {
            continue;
        }
        found.extend(
            store
                .profiles(&institution.code)?
                .into_iter()
                .filter(|p| p.kind == CONNEXION && p.logon_id == logon_id),
        );
    }
    match (found.len(), own) {
        (1, _) => Ok(found.remove(0)),
        (0, true) => Err(Error::LogonFailed),
        _ => Err(Error::NoProfile(logon_id.to_string())),
    }
}

/// The route for an institution's imports; `zone` overrides the profile's target zone.
pub fn route(store: &dyn Store, institution: &str, zone: Option<TargetZone>) -> Result<Route> {
    let profile = connexion_profile(store, institution)?;
    let home = store
        .institution(institution)?
        .ok_or_else(|| Error::UnknownInstitution(institution.to_string()))?;
    let zone = match zone.unwrap_or(profile.target_zone) {
        TargetZone::Institution => home.clone(),
        TargetZone::Network => {
            let network = home
                .network
                .clone()
                .ok_or_else(|| Error::NoNetworkZone(institution.to_string()))?;
            store
                .institution(&network)?
                .ok_or_else(|| Error::UnknownInstitution(network.clone()))?
        }
    };
    let rules = import_rules(&profile)?;
    Ok(Route {
        institution: home,
        profile,
        zone,
        rules,
    })
}

/// Checks a Connexion logon (Alma: the Logon ID is the institution code) now and returns its
/// route; see [`authenticate_at`].
pub fn authenticate(store: &dyn Store, logon_id: &str, password: &str) -> Result<Route> {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    authenticate_at(store, logon_id, password, now_unix)
}

/// Checks a Connexion logon at `now_unix` and returns its route (the profile found by
/// [`profile_for_logon`]). The password may be the
/// profile's current one or, after a rotation, the previous one until it expires
/// ([`auth::rotate`]).
pub fn authenticate_at(
    store: &dyn Store,
    logon_id: &str,
    password: &str,
    now_unix: i64,
) -> Result<Route> {
    let profile = profile_for_logon(store, logon_id)?;
    let route = route(store, &profile.institution, None)?;
    if route.profile.logon_id != logon_id
        || !auth::verify_profile_password(&route.profile, password, now_unix)
    {
        return Err(Error::LogonFailed);
    }
    Ok(route)
}
