//! The domain model: what Bibgate keeps.

use std::fmt;

/// An Alma-style MMS ID: `99`, a serial number, and the zone's 4-digit institution code.
/// Unique and never reused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MmsId(pub String);

impl MmsId {
    /// Builds the id for a serial number in a zone with the given numeric code.
    pub fn new(serial: u64, zone_code: u16) -> MmsId {
        MmsId(format!("99{serial}{zone_code:04}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MmsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a zone is a consortium's network zone or one institution's zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    /// The network zone (NZ) shared by the members.
    Network,
    /// An institution zone (IZ).
    Institution,
}

impl ZoneKind {
    /// `network` or `institution`.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneKind::Network => "network",
            ZoneKind::Institution => "institution",
        }
    }
}

/// An institution, or the network zone itself. Its code is also its zone's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Institution {
    /// Alma-style code, e.g. `01DEMO_ALPHA` or `01DEMO_NETWORK`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Network or institution zone.
    pub kind: ZoneKind,
    /// For an institution: the code of its network zone, if it belongs to one.
    pub network: Option<String>,
    /// The 4-digit code that ends this zone's MMS IDs.
    pub numeric_code: u16,
}

/// Which zone a profile's imports go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetZone {
    /// The institution's own zone.
    Institution,
    /// The institution's network zone.
    Network,
}

impl TargetZone {
    /// `iz` or `nz`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetZone::Institution => "iz",
            TargetZone::Network => "nz",
        }
    }
}

/// An integration profile: how one institution's Connexion exports are received and decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Unique id, e.g. `01DEMO_ALPHA-connexion`.
    pub id: String,
    /// The institution that owns it.
    pub institution: String,
    /// The kind of integration; `connexion` is the one Bibgate serves.
    pub kind: String,
    /// The Logon ID the Connexion client sends.
    pub logon_id: String,
    /// The password as a PHC string (argon2id); never the password itself.
    pub password_hash: String,
    /// After a password rotation, the previous password's hash, accepted as well until
    /// [`Profile::previous_password_expires`] (so the Connexion clients configured with it
    /// keep working while they are updated).
    pub previous_password_hash: Option<String>,
    /// When the previous password stops being accepted (Unix seconds, exclusive); `None`
    /// with a previous hash means it is never accepted.
    pub previous_password_expires: Option<i64>,
    /// Where imports go.
    pub target_zone: TargetZone,
    /// "Do not override/merge a record with lower brief version".
    pub check_brief_level: bool,
    /// "Do not override/merge record with an older version" (the 005 comparison).
    pub check_005: bool,
    /// How long a lock lasts after its holder left the editor without releasing it.
    pub lock_timeout_seconds: i64,
    /// Leader/17 → brief level table, in `BriefLevelTable` spec syntax.
    pub brief_levels: String,
    /// Merge rules, in `MergeRules` spec syntax.
    pub merge_rules: String,
    /// Match method for serials (Leader/07 `s`).
    pub serial_match: String,
    /// Match method for everything else.
    pub nonserial_match: String,
    /// Refuse to overlay records linked to the Community Zone.
    pub skip_community_zone: bool,
}

impl Profile {
    /// The previous password's hash while it is still accepted at `now_unix` (Unix seconds).
    pub fn previous_password_at(&self, now_unix: i64) -> Option<&str> {
        match (&self.previous_password_hash, self.previous_password_expires) {
            (Some(hash), Some(expires)) if now_unix < expires => Some(hash),
            _ => None,
        }
    }

    /// The password hashes a logon is checked against at `now_unix`: the current one, and
    /// the previous one while its grace period lasts.
    pub fn password_hashes_at(&self, now_unix: i64) -> impl Iterator<Item = &str> {
        std::iter::once(self.password_hash.as_str()).chain(self.previous_password_at(now_unix))
    }
}

/// One entry of a zone's OCLC index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexEntry {
    /// The OCLC number.
    pub number: u64,
    /// The record that carries it.
    pub mms_id: MmsId,
    /// Active (035 $a, 001) or cancelled (035 $z, 019 $a) in that record.
    pub active: bool,
}

/// One OCLC key of a stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexKey {
    /// The OCLC number.
    pub number: u64,
    /// Active or cancelled.
    pub active: bool,
}

/// A bibliographic record's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The zone (institution or network code).
    pub zone: String,
    /// Its MMS ID.
    pub mms_id: MmsId,
    /// The record as ISO 2709 in UTF-8.
    pub marc: Vec<u8>,
    /// 1 when added, one more at every change.
    pub revision: u64,
    /// The 005 received at the last OCLC import ("Originating System Version").
    pub originating_version: Option<String>,
    /// Brief level 1-10, computed with the zone's table when saved.
    pub brief_level: u8,
    /// Linked to the Community Zone.
    pub linked_to_community_zone: bool,
    /// When it was added (Unix seconds).
    pub created_unix: i64,
    /// When this revision was saved (Unix seconds).
    pub updated_unix: i64,
    /// Its OCLC keys, which the index holds.
    pub keys: Vec<IndexKey>,
}

/// A prior version of a record, kept when it was replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordVersion {
    /// The revision this version was.
    pub revision: u64,
    /// Its MARC (ISO 2709, UTF-8).
    pub marc: Vec<u8>,
    /// Its originating-system version.
    pub originating_version: Option<String>,
    /// Its brief level.
    pub brief_level: u8,
    /// When it had been saved.
    pub saved_unix: i64,
    /// When it was replaced.
    pub replaced_unix: i64,
    /// Who replaced it: an export id, or `user:<name>`.
    pub replaced_by: String,
    /// Why: `merge`, `restore of revision 2`, ...
    pub reason: String,
}

/// A record checked out in the metadata editor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditorLock {
    /// The zone.
    pub zone: String,
    /// The record.
    pub mms_id: MmsId,
    /// The institution whose cataloguer holds it.
    pub institution: String,
    /// The cataloguer.
    pub user: String,
    /// When it was opened (Unix seconds).
    pub since_unix: i64,
    /// When the holder left the editor without releasing it; `None` while still open.
    pub left_unix: Option<i64>,
}

/// A staff member who signs in to the console (`bibgate staff add`).
#[derive(Clone, PartialEq, Eq)]
pub struct StaffAccount {
    /// The user name, unique across the consortium.
    pub user: String,
    /// The institution whose zone the staff member sees and changes (with the network
    /// zone).
    pub institution: String,
    /// A consortium administrator: sees and changes every zone.
    pub admin: bool,
    /// The password's argon2 hash (PHC string); never the password.
    pub password_hash: String,
    /// When the account was made (Unix seconds).
    pub created_unix: i64,
}

impl std::fmt::Debug for StaffAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffAccount")
            .field("user", &self.user)
            .field("institution", &self.institution)
            .field("admin", &self.admin)
            .field("password_hash", &"<hidden>")
            .field("created_unix", &self.created_unix)
            .finish()
    }
}

/// What happened to one received record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Added as a new record.
    Added,
    /// Merged into the single match.
    Merged,
    /// Not imported ("Import Failed").
    Failed,
}

impl Outcome {
    /// `added`, `merged` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Added => "added",
            Outcome::Merged => "merged",
            Outcome::Failed => "failed",
        }
    }

    /// Parses [`Outcome::as_str`].
    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "added" => Some(Outcome::Added),
            "merged" => Some(Outcome::Merged),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// The result of one received record, as reported to the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportResult {
    /// Unique id of the received record: a Connexion export id, or `<batch>#<index>`.
    pub export_id: String,
    /// The batch (drop file or command run) it came in, if any.
    pub batch_id: Option<String>,
    /// Its position in the batch, counting from 1.
    pub index: Option<u64>,
    /// The sending institution.
    pub institution: String,
    /// The zone it was decided in.
    pub zone: String,
    /// Added, merged or failed.
    pub outcome: Outcome,
    /// The host message returned to the sender.
    pub host_message: String,
    /// Stable reason code (`ADDED`, `MULTI_MATCH`, `NOT_ADDED_OLD`, ...).
    pub reason_code: String,
    /// The record added or merged into.
    pub mms_id: Option<MmsId>,
    /// The incoming record's OCLC numbers.
    pub oclc_numbers: Vec<u64>,
    /// Blob key of the raw bytes as received.
    pub raw_key: String,
    /// Offset of this record inside that blob.
    pub raw_offset: u64,
    /// Length of this record inside that blob.
    pub raw_len: u64,
    /// When it was received (Unix seconds).
    pub received_unix: i64,
    /// When it was decided (Unix seconds).
    pub decided_unix: i64,
    /// How it was decided, one line per step.
    pub trace: Vec<String>,
    /// The merge policy that decided it, `name@revision sha256:<hex>`; `None` when the
    /// engine's built-in rules alone decided.
    pub policy: Option<String>,
    /// The export id whose stored bytes this result imported again (`bibgate result
    /// retry`); `None` for a record received the usual way.
    pub retry_of: Option<String>,
}

/// What [`crate::Store::lookup`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The index entries for the numbers asked for.
    pub entries: Vec<IndexEntry>,
    /// The records those entries name (a record missing here although named means the state
    /// changed between reads: decide again).
    pub records: Vec<StoredRecord>,
    /// Their locks, expired or not.
    pub locks: Vec<EditorLock>,
}

/// The state a decision was based on: the records indexed under the incoming numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectation {
    /// The incoming record's OCLC numbers.
    pub numbers: Vec<u64>,
    /// The distinct records the zone's index held for them (sorted), when decided.
    pub matched: Vec<MmsId>,
}

/// The writes of one import, applied atomically by [`crate::Store::commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Commit {
    /// A new record, its index entries and the result.
    Add {
        /// Fails with a conflict unless the index still matches.
        expect: Expectation,
        /// The record (revision 1).
        record: StoredRecord,
        /// The result.
        result: ImportResult,
    },
    /// A merge: the current state becomes a version, `record` becomes current.
    Merge {
        /// Fails with a conflict unless the index still matches.
        expect: Expectation,
        /// Fails with a conflict unless the record is still at this revision.
        expected_revision: u64,
        /// The new state (revision `expected_revision + 1`).
        record: StoredRecord,
        /// Why the prior version was replaced.
        reason: String,
        /// The result.
        result: ImportResult,
    },
    /// Only a result: the record was not imported.
    Reject {
        /// The result.
        result: ImportResult,
    },
    /// A record's state replaced outside an import (restore of a prior version).
    Replace {
        /// Fails with a conflict unless the record is still at this revision.
        expected_revision: u64,
        /// The new state (revision `expected_revision + 1`).
        record: StoredRecord,
        /// Who replaced it (`user:<name>`).
        replaced_by: String,
        /// Why.
        reason: String,
    },
    /// Several records of one zone replaced together outside an import, all or nothing,
    /// with the index following each (a staff merge: the survivor gains the other's OCLC
    /// numbers, the other is withdrawn). Fails with a conflict, writing nothing, unless
    /// every record is still at its expected revision.
    ReplaceMany {
        /// Each record's replacement, as in [`Commit::Replace`]; each record at most once.
        replacements: Vec<Replacement>,
    },
}

/// One record's replacement in a [`Commit::ReplaceMany`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// Fails with a conflict unless the record is still at this revision.
    pub expected_revision: u64,
    /// The new state (revision `expected_revision + 1`).
    pub record: StoredRecord,
    /// Who replaced it (`user:<name>`).
    pub replaced_by: String,
    /// Why.
    pub reason: String,
}
