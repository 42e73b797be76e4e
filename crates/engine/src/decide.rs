//! The add / merge / reject decision for one incoming record.
//!
//! See the crate documentation for the order of the checks and why.

use std::fmt;

use bibgate_marc::Record;
use bibgate_marc::check::Verdict;
use bibgate_matching::facts::{self, BriefLevel, BriefLevelTable, Version005};
use bibgate_matching::oclc::{OclcKeys, Provenance, oclc_keys};

use crate::merge::{MergeRules, merge};
use crate::messages;

/// How far in the future (seconds after `now`) an incoming 005 may be before the trace warns.
///
/// 005 carries no time zone and OCLC writes local time, so a fresh record can look up to
/// 14 hours ahead of UTC; a day of slack keeps the warning for real oddities.
pub const FUTURE_005_TOLERANCE_SECONDS: u64 = 86_400;

/// An existing record in the target zone that shares an OCLC number with the incoming record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The record's MMS ID.
    pub mms_id: String,
    /// Its current MARC, the primary record of a merge.
    pub record: Record,
    /// Its brief level as stored (computed with the zone's table when it was last saved).
    pub brief_level: BriefLevel,
    /// The 005 received at its last OCLC import ("Originating System Version"); `None` when
    /// never recorded.
    pub originating_version: Option<Version005>,
    /// The Metadata Editor lock, if any.
    pub lock: Option<EditorLock>,
    /// True when the record is linked to the Community Zone.
    pub linked_to_community_zone: bool,
    /// Which incoming key hit which of its keys, as the zone's index found them. When empty,
    /// the hits are worked out from `record`'s own OCLC numbers.
    pub hits: Vec<Hit>,
}

/// One index hit: an incoming OCLC number found among a candidate's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hit {
    /// The OCLC number.
    pub number: u64,
    /// Where the number sits in the incoming record.
    pub incoming: Provenance,
    /// True when the number is active (035 `$a`, 001) in the existing record, false when
    /// cancelled (035 `$z`, 019 `$a`).
    pub existing_active: bool,
}

/// A Metadata Editor lock on a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditorLock {
    /// The institution of the user holding the lock.
    pub institution: String,
    /// The user holding the lock.
    pub user: String,
    /// When the record was opened (checked out), Unix seconds.
    pub since_unix: i64,
    /// `None`: the user is still in the editor, and the lock holds until released, however
    /// old. `Some(t)`: the user left the editor at `t` without releasing; the lock expires at
    /// `t + timeout`.
    pub left_unix: Option<i64>,
}

impl EditorLock {
    /// When the lock expires (`None` while the user is still in the editor).
    pub fn expires_unix(&self, timeout_seconds: i64) -> Option<i64> {
        self.left_unix
            .map(|left| left.saturating_add(timeout_seconds))
    }

    /// True when the lock still holds at `now_unix`: the user is in the editor, or left less
    /// than `timeout_seconds` ago.
    pub fn is_held(&self, now_unix: i64, timeout_seconds: i64) -> bool {
        self.expires_unix(timeout_seconds)
            .is_none_or(|expires| now_unix < expires)
    }
}

/// How incoming OCLC numbers are matched (Alma lets serials and non-serials differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MatchMethod {
    /// Alma's "Unique OCLC Identifier": any incoming number, active or cancelled, against any
    /// number of the existing record, active or cancelled.
    #[default]
    UniqueOclc,
    /// Active numbers only, on both sides: incoming cancelled numbers (035 `$z`, 019 `$a`) are
    /// not used, and a hit on a cancelled number of the existing record does not count; a
    /// candidate hit only that way is not a match.
    UniqueOclcActiveOnly,
}

impl MatchMethod {
    /// The name used in the trace.
    pub const fn label(self) -> &'static str {
        match self {
            MatchMethod::UniqueOclc => "unique OCLC identifier",
            MatchMethod::UniqueOclcActiveOnly => "unique OCLC identifier, active numbers only",
        }
    }
}

/// The profile settings the decision reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRules {
    /// Leader/17 to brief level for the incoming record (CARLI by default).
    pub brief_levels: BriefLevelTable,
    /// "Do not override/merge a record with lower brief version" (default on).
    pub check_brief_level: bool,
    /// "Do not override/merge record with an older version" (default on).
    pub check_005: bool,
    /// `working_copy_lock_timeout`, seconds after leaving the editor (default 3600).
    pub lock_timeout_seconds: i64,
    /// Reject a match linked to the Community Zone (default on; Alma's Connexion profile
    /// cannot overlay CZ-linked records).
    pub skip_community_zone: bool,
    /// The merge rules (default Alma "overlay all fields but local").
    pub merge: MergeRules,
    /// Match method for serials, Leader/07 `s` (default [`MatchMethod::UniqueOclc`]).
    pub serial_match: MatchMethod,
    /// Match method for everything else (default [`MatchMethod::UniqueOclc`]).
    pub nonserial_match: MatchMethod,
}

impl Default for ImportRules {
    /// CARLI's standard institution-zone profile (domain.md §1.2).
    fn default() -> Self {
        ImportRules {
            brief_levels: BriefLevelTable::carli(),
            check_brief_level: true,
            check_005: true,
            lock_timeout_seconds: 3_600,
            skip_community_zone: true,
            merge: MergeRules::alma_overlay_all_but_local(),
            serial_match: MatchMethod::UniqueOclc,
            nonserial_match: MatchMethod::UniqueOclc,
        }
    }
}

/// The record being imported and its MARCXML convertibility verdict.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    /// The decoded record.
    pub record: &'a Record,
    /// Its verdict from `bibgate_marc::check`.
    pub verdict: &'a Verdict,
}

/// What to do with the incoming record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Store the incoming record as a new record.
    Add {
        /// Its brief level under the import rules' brief-level table, to store with it.
        brief_level: BriefLevel,
        /// Its 005, to store as the originating version (`None` when missing or malformed).
        originating_version: Option<Version005>,
    },
    /// Replace the existing record `mms_id` with `merged`.
    Merge {
        /// The record merged into.
        mms_id: String,
        /// The merged record.
        merged: Record,
        /// The merged record's brief level under the import rules' brief-level table, to store with it.
        brief_level: BriefLevel,
        /// The incoming 005, to store as the new originating version (`None` when missing or
        /// malformed: the version last imported is then unknown).
        originating_version: Option<Version005>,
    },
    /// Store nothing; the details say why.
    Reject(Rejection),
}

/// Why a record was rejected, with what the host message needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The incoming record cannot be converted to MARCXML.
    ConversionFailed {
        /// The marc crate's reason code, e.g. `FIELD_TOO_LONG`.
        code: String,
        /// The finding's message.
        message: String,
    },
    /// Two or more records matched.
    MultiMatch {
        /// Their MMS IDs, in the order the candidates were given.
        mms_ids: Vec<String>,
    },
    /// The match is linked to the Community Zone.
    CommunityZoneLinked {
        /// The match.
        mms_id: String,
    },
    /// The match is locked in the Metadata Editor.
    Locked {
        /// The match.
        mms_id: String,
        /// The lock.
        lock: EditorLock,
    },
    /// The match has a higher brief level than the incoming record.
    Brief {
        /// The match.
        mms_id: String,
        /// The match's stored level.
        existing: BriefLevel,
        /// The incoming record's level.
        incoming: BriefLevel,
        /// The match's Leader/17.
        existing_leader17: u8,
        /// The incoming record's Leader/17.
        incoming_leader17: u8,
    },
    /// The incoming 005 is older than the version last imported into the match.
    Old {
        /// The match.
        mms_id: String,
        /// The incoming 005.
        incoming: Version005,
        /// The match's originating version.
        originating: Version005,
    },
}

/// The stable reason code of a decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// `ADDED`.
    Added,
    /// `MERGED`.
    Merged,
    /// `MULTI_MATCH`.
    MultiMatch,
    /// `NOT_ADDED_BRIEF`.
    NotAddedBrief,
    /// `NOT_ADDED_LOCKED`.
    NotAddedLocked,
    /// `NOT_ADDED_OLD`.
    NotAddedOld,
    /// `MARCXML_CONVERSION_FAILED`, with the marc crate's reason code (e.g. `FIELD_TOO_LONG`).
    ConversionFailed(String),
    /// `CZ_LINKED`.
    CommunityZoneLinked,
}

impl ReasonCode {
    /// The stable code, e.g. `NOT_ADDED_BRIEF`.
    pub fn code(&self) -> &str {
        match self {
            ReasonCode::Added => "ADDED",
            ReasonCode::Merged => "MERGED",
            ReasonCode::MultiMatch => "MULTI_MATCH",
            ReasonCode::NotAddedBrief => "NOT_ADDED_BRIEF",
            ReasonCode::NotAddedLocked => "NOT_ADDED_LOCKED",
            ReasonCode::NotAddedOld => "NOT_ADDED_OLD",
            ReasonCode::ConversionFailed(_) => "MARCXML_CONVERSION_FAILED",
            ReasonCode::CommunityZoneLinked => "CZ_LINKED",
        }
    }
}

impl fmt::Display for ReasonCode {
    /// The code; for a conversion failure followed by the marc reason in parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReasonCode::ConversionFailed(marc) => write!(f, "{}({marc})", self.code()),
            other => f.write_str(other.code()),
        }
    }
}

impl Rejection {
    /// The reason code for this rejection.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Rejection::ConversionFailed { code, .. } => ReasonCode::ConversionFailed(code.clone()),
            Rejection::MultiMatch { .. } => ReasonCode::MultiMatch,
            Rejection::CommunityZoneLinked { .. } => ReasonCode::CommunityZoneLinked,
            Rejection::Locked { .. } => ReasonCode::NotAddedLocked,
            Rejection::Brief { .. } => ReasonCode::NotAddedBrief,
            Rejection::Old { .. } => ReasonCode::NotAddedOld,
        }
    }

    /// The host message (Alma wording; see [`crate::messages`]).
    pub fn host_message(&self) -> String {
        match self {
            Rejection::ConversionFailed { message, .. } => messages::conversion_failed(message),
            Rejection::MultiMatch { mms_ids } => messages::multi_match(mms_ids),
            Rejection::CommunityZoneLinked { mms_id } => messages::cz_linked(mms_id),
            Rejection::Locked { mms_id, lock } => {
                messages::not_added_locked(mms_id, &lock.institution, &lock.user, lock.since_unix)
            }
            Rejection::Brief {
                mms_id,
                existing,
                incoming,
                existing_leader17,
                incoming_leader17,
            } => messages::not_added_brief(
                mms_id,
                messages::brief_level(existing, *existing_leader17),
                messages::brief_level(incoming, *incoming_leader17),
            ),
            Rejection::Old {
                mms_id,
                incoming,
                originating,
            } => messages::not_added_old(mms_id, *incoming, *originating),
        }
    }
}

/// The decision, why, and how it was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub outcome: Outcome,
    /// The stable reason code.
    pub reason: ReasonCode,
    /// One human-readable line per step, in order.
    pub trace: Vec<String>,
    /// The incoming OCLC keys the match method used, with the extraction warnings (all keys
    /// when the record failed the conversion check, which comes first).
    pub keys: OclcKeys,
}

impl Decision {
    /// The text to send back to Connexion. For an add, pass the MMS ID the store assigned
    /// (without it the message has no MMS ID part); for a merge the matched MMS ID is used and
    /// the argument is ignored.
    pub fn host_message(&self, mms_id_for_add: Option<&str>) -> String {
        match &self.outcome {
            Outcome::Add { .. } => messages::success(mms_id_for_add),
            Outcome::Merge { mms_id, .. } => messages::success(Some(mms_id)),
            Outcome::Reject(rejection) => rejection.host_message(),
        }
    }

    /// True for [`Outcome::Reject`].
    pub fn is_rejected(&self) -> bool {
        matches!(self.outcome, Outcome::Reject(_))
    }
}

/// The incoming record's 005, read once.
enum Incoming005 {
    Missing,
    Malformed(String),
    /// With a note when the value was accepted leniently (14 characters, no `.f`).
    Valid(Version005, Option<String>),
}

/// A deduplicated candidate with the hits that count under the match method.
struct Matched<'a> {
    candidate: &'a Candidate,
    hits: Vec<Hit>,
}

/// Decides what to do with `incoming` given the `candidates` the zone's index returned for
/// its OCLC numbers. `now_unix` is the current time (Unix seconds), used for lock expiry and
/// the future-005 warning. Pure and total: never panics.
///
/// See the crate documentation for the order of the checks.
pub fn decide(
    incoming: &Incoming<'_>,
    candidates: &[Candidate],
    rules: &ImportRules,
    now_unix: i64,
) -> Decision {
    let mut trace = Vec::new();
    let serial = facts::is_serial(incoming.record);
    let method = if serial {
        rules.serial_match
    } else {
        rules.nonserial_match
    };
    let all_keys = oclc_keys(incoming.record);

    // 1. MARCXML convertibility.
    if !incoming.verdict.is_convertible() {
        let (code, message) = match incoming.verdict.first_error() {
            Some(finding) => (finding.reason.code().to_owned(), finding.message.clone()),
            None => (
                "UNKNOWN".to_owned(),
                "the record cannot be converted to MARCXML".to_owned(),
            ),
        };
        trace.push(format!("MARCXML conversion: failed, {code}: {message}"));
        return reject(
            Rejection::ConversionFailed { code, message },
            trace,
            all_keys,
        );
    }
    let n_warnings = incoming.verdict.findings.len();
    if n_warnings == 0 {
        trace.push("MARCXML conversion: ok".to_owned());
    } else {
        trace.push(format!("MARCXML conversion: ok, {n_warnings} warning(s)"));
    }

    // 2. Keys.
    trace.push(format!(
        "match method: {} ({})",
        method.label(),
        if serial { "serial" } else { "non-serial" }
    ));
    let keys = keys_for_method(all_keys.clone(), method, &mut trace);
    let incoming_005 = read_incoming_005(incoming.record);
    let incoming_level = rules.brief_levels.record_level(incoming.record);
    let add = |mut trace: Vec<String>, keys: OclcKeys, line: String| {
        trace.push(line);
        Decision {
            outcome: Outcome::Add {
                brief_level: incoming_level,
                originating_version: incoming_005.version(),
            },
            reason: ReasonCode::Added,
            trace,
            keys,
        }
    };
    if keys.is_empty() {
        if !candidates.is_empty() {
            trace.push(format!(
                "{} candidate(s) given, but no key to match them by; ignored",
                candidates.len()
            ));
        }
        return add(
            trace,
            keys,
            "no OCLC number in the record; added as new".to_owned(),
        );
    }
    let listed: Vec<String> = keys
        .keys
        .iter()
        .map(|key| format!("{} ({})", key.number, key.provenance.label()))
        .collect();
    trace.push(format!("incoming keys: {}", listed.join(", ")));

    // 3. Candidates.
    let matches = collect_matches(candidates, &all_keys, method, &mut trace);
    let single = match matches.as_slice() {
        [] => {
            return add(trace, keys, "no matching record; added as new".to_owned());
        }
        [single] => single,
        several => {
            let mms_ids: Vec<String> = several
                .iter()
                .map(|matched| matched.candidate.mms_id.clone())
                .collect();
            trace.push(format!(
                "{} records match ({}): multi-match",
                mms_ids.len(),
                mms_ids.join(", ")
            ));
            return reject(Rejection::MultiMatch { mms_ids }, trace, keys);
        }
    };
    let candidate = single.candidate;
    let mms_id = &candidate.mms_id;
    trace.push(format!(
        "one record matches: {mms_id} ({} hit(s))",
        single.hits.len().max(1)
    ));

    // 4. Blocking checks on the single match.
    if let Err(rejection) = check_single(
        candidate,
        incoming_level,
        incoming.record.leader.0[17],
        &incoming_005,
        rules,
        now_unix,
        &mut trace,
    ) {
        return reject(rejection, trace, keys);
    }

    let (merged, merge_trace) = merge(&candidate.record, incoming.record, &rules.merge);
    trace.extend(merge_trace);
    let brief_level = rules.brief_levels.record_level(&merged);
    let brief_level_text = messages::brief_level(brief_level, merged.leader.0[17]);
    let originating_version = incoming_005.version();
    trace.push(match originating_version {
        Some(version) => format!(
            "merged into {mms_id}; brief level {brief_level_text}; originating version {version}"
        ),
        None => format!(
            "merged into {mms_id}; brief level {brief_level_text}; originating version unknown (no valid incoming 005)"
        ),
    });
    Decision {
        outcome: Outcome::Merge {
            mms_id: mms_id.clone(),
            merged,
            brief_level,
            originating_version,
        },
        reason: ReasonCode::Merged,
        trace,
        keys,
    }
}

fn reject(rejection: Rejection, trace: Vec<String>, keys: OclcKeys) -> Decision {
    Decision {
        reason: rejection.reason(),
        outcome: Outcome::Reject(rejection),
        trace,
        keys,
    }
}

impl Incoming005 {
    fn version(&self) -> Option<Version005> {
        match self {
            Incoming005::Valid(version, _) => Some(*version),
            Incoming005::Missing | Incoming005::Malformed(_) => None,
        }
    }
}

fn read_incoming_005(record: &Record) -> Incoming005 {
    match facts::record_005(record) {
        None => Incoming005::Missing,
        Some(Err(bad)) => Incoming005::Malformed(bad.to_string()),
        Some(Ok(parsed)) => {
            Incoming005::Valid(parsed.version, parsed.lenient.map(|note| note.to_string()))
        }
    }
}

/// Applies the match method to the incoming keys and traces what it left out.
fn keys_for_method(mut keys: OclcKeys, method: MatchMethod, trace: &mut Vec<String>) -> OclcKeys {
    for warning in &keys.warnings {
        trace.push(format!("key warning: {warning}"));
    }
    if method == MatchMethod::UniqueOclcActiveOnly {
        keys.keys.retain(|key| {
            let keep = key.provenance.is_active();
            if !keep {
                trace.push(format!(
                    "key {} ({}) ignored: the match method uses active numbers only",
                    key.number,
                    key.provenance.label()
                ));
            }
            keep
        });
    }
    keys
}

/// Deduplicates candidates by MMS ID, works out their hits (from `all_keys`, every incoming key,
/// when the caller gave none) and applies the match method to the hits.
fn collect_matches<'a>(
    candidates: &'a [Candidate],
    all_keys: &OclcKeys,
    method: MatchMethod,
    trace: &mut Vec<String>,
) -> Vec<Matched<'a>> {
    let mut matches: Vec<Matched<'a>> = Vec::new();
    for candidate in candidates {
        let hits = if candidate.hits.is_empty() {
            derive_hits(&candidate.record, all_keys)
        } else {
            candidate.hits.clone()
        };
        match matches
            .iter_mut()
            .find(|matched| matched.candidate.mms_id == candidate.mms_id)
        {
            Some(matched) => {
                trace.push(format!(
                    "candidate {} given twice; counted once",
                    candidate.mms_id
                ));
                matched.hits.extend(hits);
            }
            None => matches.push(Matched { candidate, hits }),
        }
    }
    matches.retain_mut(|matched| {
        let mut seen: Vec<Hit> = Vec::with_capacity(matched.hits.len());
        for hit in matched.hits.drain(..) {
            if !seen.contains(&hit) {
                seen.push(hit);
            }
        }
        let mms_id = &matched.candidate.mms_id;
        let had_hits = !seen.is_empty();
        let mut counted = Vec::with_capacity(seen.len());
        for hit in seen {
            let side = if hit.existing_active {
                "active"
            } else {
                "cancelled"
            };
            let counts = method == MatchMethod::UniqueOclc
                || (hit.incoming.is_active() && hit.existing_active);
            if counts {
                trace.push(format!(
                    "key {} ({}) -> {mms_id} ({side})",
                    hit.number,
                    hit.incoming.label()
                ));
                counted.push(hit);
            } else {
                trace.push(format!(
                    "key {} ({}) -> {mms_id} ({side}): ignored, the match method uses active numbers only",
                    hit.number,
                    hit.incoming.label()
                ));
            }
        }
        if !had_hits {
            trace.push(format!(
                "{mms_id}: no hit details given or found in its record; counted as a match"
            ));
            return true;
        }
        if counted.is_empty() {
            trace.push(format!(
                "{mms_id}: hit only through cancelled numbers; not a match"
            ));
            return false;
        }
        if counted.len() > 1 {
            trace.push(format!(
                "{mms_id}: {} keys hit the same record; counted once",
                counted.len()
            ));
        }
        matched.hits = counted;
        true
    });
    matches
}

/// The hits of `keys` on the OCLC numbers of an existing record.
fn derive_hits(existing: &Record, keys: &OclcKeys) -> Vec<Hit> {
    let existing_keys = oclc_keys(existing);
    keys.keys
        .iter()
        .filter_map(|key| {
            existing_keys
                .keys
                .iter()
                .find(|other| other.number == key.number)
                .map(|other| Hit {
                    number: key.number.get(),
                    incoming: key.provenance,
                    existing_active: other.provenance.is_active(),
                })
        })
        .collect()
}

/// Step 4: Community Zone, lock, brief level, 005, in that order.
fn check_single(
    candidate: &Candidate,
    incoming_level: BriefLevel,
    incoming_leader17: u8,
    incoming_005: &Incoming005,
    rules: &ImportRules,
    now_unix: i64,
    trace: &mut Vec<String>,
) -> Result<(), Rejection> {
    let mms_id = &candidate.mms_id;

    // Community Zone.
    match (candidate.linked_to_community_zone, rules.skip_community_zone) {
        (false, _) => trace.push("community zone: not linked".to_owned()),
        (true, true) => {
            trace.push(format!(
                "community zone: {mms_id} is linked to the Community Zone: rejected"
            ));
            return Err(Rejection::CommunityZoneLinked {
                mms_id: mms_id.clone(),
            });
        }
        (true, false) => trace.push(format!(
            "community zone: {mms_id} is linked, but the policy does not skip linked records: continuing"
        )),
    }

    // Lock.
    match &candidate.lock {
        None => trace.push("lock: none".to_owned()),
        Some(lock) => {
            let holder = format!(
                "{} ({}) since {}",
                lock.institution,
                lock.user,
                messages::utc_minutes(lock.since_unix)
            );
            let held = lock.is_held(now_unix, rules.lock_timeout_seconds);
            match (lock.left_unix, lock.expires_unix(rules.lock_timeout_seconds)) {
                (Some(left), Some(expires)) if held => trace.push(format!(
                    "lock: held by {holder}; left the editor at {} without releasing, expires at {}: blocked",
                    messages::utc_minutes(left),
                    messages::utc_minutes(expires)
                )),
                (Some(left), Some(expires)) => trace.push(format!(
                    "lock: by {holder}; left the editor at {}, expired at {} (timeout {} s): free",
                    messages::utc_minutes(left),
                    messages::utc_minutes(expires),
                    rules.lock_timeout_seconds
                )),
                _ => trace.push(format!(
                    "lock: held by {holder}, still in the editor (holds until released): blocked"
                )),
            }
            if held {
                return Err(Rejection::Locked {
                    mms_id: mms_id.clone(),
                    lock: lock.clone(),
                });
            }
        }
    }

    // Brief level.
    let existing_level = candidate.brief_level;
    let existing_leader17 = candidate.record.leader.0[17];
    let levels = format!(
        "brief level: existing {}, incoming {}",
        messages::brief_level(existing_level, existing_leader17),
        messages::brief_level(incoming_level, incoming_leader17)
    );
    if rules.check_brief_level {
        if existing_level > incoming_level {
            trace.push(format!("{levels}: existing is higher, blocked"));
            return Err(Rejection::Brief {
                mms_id: mms_id.clone(),
                existing: existing_level,
                incoming: incoming_level,
                existing_leader17,
                incoming_leader17,
            });
        }
        trace.push(format!("{levels}: allowed"));
    } else {
        trace.push(format!("{levels}: check off"));
    }

    // 005.
    let originating = candidate.originating_version;
    let originating_text =
        originating.map_or_else(|| "none".to_owned(), |version| version.to_string());
    if let Incoming005::Valid(_, Some(note)) = incoming_005 {
        trace.push(format!("005 note: {note}"));
    }
    if let Incoming005::Valid(version, _) = incoming_005
        && let Some(now) = Version005::from_unix_seconds(now_unix)
        && version.is_in_future(now, FUTURE_005_TOLERANCE_SECONDS)
    {
        trace.push(format!(
            "005 warning: incoming {version} is in the future (now {now}); accepted as is"
        ));
    }
    if !rules.check_005 {
        let incoming_text = match incoming_005 {
            Incoming005::Valid(version, _) => version.to_string(),
            Incoming005::Missing => "none".to_owned(),
            Incoming005::Malformed(_) => "malformed".to_owned(),
        };
        trace.push(format!(
            "005: incoming {incoming_text}, originating version {originating_text}: check off"
        ));
        return Ok(());
    }
    match (incoming_005, originating) {
        (Incoming005::Missing, _) => trace.push(format!(
            "005: incoming none, originating version {originating_text}: cannot compare, allowed"
        )),
        (Incoming005::Malformed(why), _) => trace.push(format!(
            "005: incoming malformed ({why}), originating version {originating_text}: cannot compare, allowed"
        )),
        (Incoming005::Valid(version, _), None) => trace.push(format!(
            "005: incoming {version}, originating version none: cannot compare, allowed"
        )),
        (Incoming005::Valid(version, _), Some(stored)) => {
            if *version < stored {
                trace.push(format!(
                    "005: incoming {version}, originating version {stored}: older, blocked"
                ));
                return Err(Rejection::Old {
                    mms_id: mms_id.clone(),
                    incoming: *version,
                    originating: stored,
                });
            }
            let relation = if *version == stored {
                "identical"
            } else {
                "newer"
            };
            trace.push(format!(
                "005: incoming {version}, originating version {stored}: {relation}, allowed"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
