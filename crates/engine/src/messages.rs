//! The host messages sent back to Connexion, in Alma's wording.
//!
//! Alma answers "The record has been processed successfully." plus the MMS ID for an add and
//! for a merge, and "Import Failed - " plus a reason otherwise (domain.md §1.9). The fixed
//! parts are the constants below; [`crate::Decision::host_message`] fills in the rest.

use bibgate_matching::facts::Version005;

/// Success, for an add and for a merge; followed by [`MMS_ID_LABEL`] and the MMS ID.
pub const SUCCESS: &str = "The record has been processed successfully.";
/// Between [`SUCCESS`] and the MMS ID.
pub const MMS_ID_LABEL: &str = " MMS ID: ";
/// The start of every failure message.
pub const IMPORT_FAILED: &str = "Import Failed - ";
/// Two or more records matched; followed by [`MATCHING_MMS_IDS`] and the list.
pub const MULTI_MATCH: &str = "Import Failed - Multi matches found for this record.";
/// Between [`MULTI_MATCH`] and the comma-separated MMS IDs.
pub const MATCHING_MMS_IDS: &str = " Matching MMS IDs: ";
/// The record cannot be converted to MARCXML; followed by the finding's message.
pub const CONVERSION_FAILED: &str = "Import Failed - Failed to convert marc record to marc xml: ";
/// The start of the NOT_ADDED_BRIEF message.
pub const NOT_ADDED_BRIEF: &str = "Import Failed - NOT_ADDED_BRIEF: ";
/// The start of the NOT_ADDED_LOCKED message.
pub const NOT_ADDED_LOCKED: &str = "Import Failed - NOT_ADDED_LOCKED: ";
/// The start of the NOT_ADDED_OLD message.
pub const NOT_ADDED_OLD: &str = "Import Failed - NOT_ADDED_OLD: ";
/// The start of the Community Zone message.
pub const CZ_LINKED: &str = "Import Failed - the matching record ";

/// `The record has been processed successfully. MMS ID: <mms>`, or without the MMS ID part
/// when it is not known.
pub fn success(mms_id: Option<&str>) -> String {
    match mms_id {
        Some(mms_id) => format!("{SUCCESS}{MMS_ID_LABEL}{mms_id}"),
        None => SUCCESS.to_owned(),
    }
}

/// The multi-match message with the matching MMS IDs.
pub fn multi_match(mms_ids: &[String]) -> String {
    format!("{MULTI_MATCH}{MATCHING_MMS_IDS}{}", mms_ids.join(", "))
}

/// The conversion failure message.
pub fn conversion_failed(message: &str) -> String {
    format!("{CONVERSION_FAILED}{message}")
}

/// A brief level beside the Leader/17 value it comes from: `07 (Leader/17 "4")`.
pub fn brief_level(level: impl std::fmt::Display, leader17: u8) -> String {
    format!(
        "{level} (Leader/17 \"{}\")",
        std::ascii::escape_default(leader17)
    )
}

/// The NOT_ADDED_BRIEF message; levels are written with two digits (`07`), each beside its
/// Leader/17 ([`brief_level`]).
pub fn not_added_brief(
    mms_id: &str,
    existing: impl std::fmt::Display,
    incoming: impl std::fmt::Display,
) -> String {
    format!(
        "{NOT_ADDED_BRIEF}the existing record {mms_id} has brief level {existing}, higher than the incoming record's {incoming}."
    )
}

/// The NOT_ADDED_LOCKED message.
pub fn not_added_locked(mms_id: &str, institution: &str, user: &str, since_unix: i64) -> String {
    format!(
        "{NOT_ADDED_LOCKED}record {mms_id} is locked in the Metadata Editor by {institution} ({user}) since {}.",
        utc_minutes(since_unix)
    )
}

/// The NOT_ADDED_OLD message.
pub fn not_added_old(mms_id: &str, incoming: Version005, originating: Version005) -> String {
    format!(
        "{NOT_ADDED_OLD}the incoming record's 005 ({incoming}) is older than the version last imported into {mms_id} ({originating})."
    )
}

/// The Community Zone message.
pub fn cz_linked(mms_id: &str) -> String {
    format!("{CZ_LINKED}{mms_id} is linked to the Community Zone and cannot be overlaid.")
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`; outside the years 0-9999, `unix time N`.
///
/// ```
/// assert_eq!(bibgate_engine::messages::utc_minutes(0), "1970-01-01 00:00 UTC");
/// assert_eq!(bibgate_engine::messages::utc_minutes(1_709_210_096), "2024-02-29 12:34 UTC");
/// ```
pub fn utc_minutes(unix: i64) -> String {
    match Version005::from_unix_seconds(unix) {
        Some(v) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            v.year(),
            v.month(),
            v.day(),
            v.hour(),
            v.minute()
        ),
        None => format!("unix time {unix}"),
    }
}
