//! What each page reads and each form does: blocking functions over [`Data`], each calling
//! the function its CLI command calls.

use std::collections::HashMap;
use std::io::Read;

use anyhow::Context;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bibgate_marc::{Field, Record};
use bibgate_store::{ImportResult, MmsId, Outcome, Store, TargetZone, ZoneKind};

use super::views::{self, Nav};
use super::{Refusal, Who, see_other};
use crate::cmd::editor::{EditorAction, Holder};
use crate::cmd::now_unix;
use crate::cmd::record::Diff;
use crate::cmd::result::utc;
use crate::cmd::revise::Staff;
use crate::data::Data;

/// The newest results read for the imports page (before its outcome and reason filters).
const READ_LIMIT: usize = 1_000;
/// The rows the imports page shows.
const SHOWN: usize = 200;

/// `text` for a URL's query: everything but unreserved characters percent-encoded.
pub(crate) fn url(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn record_href(zone: &str, mms_id: &str) -> String {
    format!("/record?zone={}&mms={}", url(zone), url(mms_id))
}

fn result_href(export_id: &str) -> String {
    format!("/result?id={}", url(export_id))
}

/// The zones a staff member sees: their institution's and its network zone; every zone
/// for an administrator.
fn visible_zones(store: &dyn Store, who: &Who) -> anyhow::Result<Vec<String>> {
    if who.admin {
        return Ok(store.institutions()?.into_iter().map(|i| i.code).collect());
    }
    Ok(std::iter::once(who.institution.clone())
        .chain(who.network.clone())
        .collect())
}

/// The institutions whose results a staff member sees.
fn visible_institutions(store: &dyn Store, who: &Who) -> anyhow::Result<Vec<String>> {
    if who.admin {
        return Ok(store
            .institutions()?
            .into_iter()
            .filter(|i| i.kind == ZoneKind::Institution)
            .map(|i| i.code)
            .collect());
    }
    Ok(vec![who.institution.clone()])
}

/// The institution the staff member acts for in `zone`, and which of its zones that is
/// (what the CLI's `--institution` and `--zone` say); `None` outside their zones.
fn acting_as(
    store: &dyn Store,
    who: &Who,
    zone: &str,
) -> anyhow::Result<Option<(String, TargetZone)>> {
    if zone == who.institution {
        return Ok(Some((who.institution.clone(), TargetZone::Institution)));
    }
    if who.network.as_deref() == Some(zone) {
        return Ok(Some((who.institution.clone(), TargetZone::Network)));
    }
    if !who.admin {
        return Ok(None);
    }
    let institutions = store.institutions()?;
    let Some(found) = institutions.iter().find(|i| i.code == zone) else {
        return Ok(None);
    };
    Ok(match found.kind {
        ZoneKind::Institution => Some((found.code.clone(), TargetZone::Institution)),
        ZoneKind::Network => institutions
            .iter()
            .find(|i| i.network.as_deref() == Some(zone))
            .map(|member| (member.code.clone(), TargetZone::Network)),
    })
}

fn zone_or_refuse(
    store: &dyn Store,
    who: &Who,
    zone: &str,
) -> Result<(String, TargetZone), Refusal> {
    match acting_as(store, who, zone)? {
        Some(acting) if who.sees_zone(zone) => Ok(acting),
        _ => Err(Refusal::Forbidden(format!(
            "zone {zone} is not one of yours: nothing was changed"
        ))),
    }
}

fn store_of(data: &Data) -> Result<&dyn Store, Refusal> {
    Ok(data.store()?.as_ref())
}

/// The query of the imports page.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ImportsQuery {
    institution: Option<String>,
    outcome: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    export: Option<String>,
}

fn result_row(result: &ImportResult) -> views::ResultRow {
    views::ResultRow {
        export_id: result.export_id.clone(),
        href: result_href(&result.export_id),
        received: utc(result.received_unix),
        outcome: result.outcome.as_str().to_string(),
        failed: result.outcome == Outcome::Failed,
        reason: result.reason_code.clone(),
        mms_id: result
            .mms_id
            .as_ref()
            .map(|m| m.0.clone())
            .unwrap_or_default(),
        mms_href: result
            .mms_id
            .as_ref()
            .map(|m| record_href(&result.zone, m.as_str()))
            .unwrap_or_default(),
        oclc: result
            .oclc_numbers
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        host_message: result.host_message.clone(),
    }
}

/// The imports page: the institution's newest results (`bibgate results`), filtered; an
/// export id search goes to its result.
pub(crate) fn imports(data: &Data, who: Who, query: &ImportsQuery) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    let mut notice = String::new();
    if let Some(export) = query
        .export
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match store.result(export)? {
            Some(found) if who.sees_institution(&found.institution) => {
                return Ok(see_other(&result_href(export)));
            }
            _ => {
                notice = format!(
                    "No result for export {export} among yours (it may still be processing)."
                );
            }
        }
    }
    let institutions = visible_institutions(store, &who)?;
    let institution = query
        .institution
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| who.institution.clone());
    if !who.sees_institution(&institution) || !institutions.contains(&institution) {
        return Err(Refusal::NotFound(format!(
            "no institution {institution} here"
        )));
    }
    let now = now_unix();
    let since_text = query
        .since
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "7d".to_string());
    let since = match crate::cmd::results::parse_since(&since_text, now) {
        Ok(since) => since,
        Err(error) => {
            notice = format!("{error:#}; showing the last 7 days");
            now - 7 * 86_400
        }
    };
    let outcome = match query.outcome.as_deref().unwrap_or_default() {
        "added" => Some(Outcome::Added),
        "merged" => Some(Outcome::Merged),
        "failed" => Some(Outcome::Failed),
        _ => None,
    };
    let reason = query
        .reason
        .as_deref()
        .map(|r| r.trim().to_ascii_uppercase())
        .filter(|r| !r.is_empty());
    let read = store.institution_results(&institution, since, READ_LIMIT)?;
    let n_read = read.len();
    let matching: Vec<&ImportResult> = read
        .iter()
        .filter(|r| outcome.is_none_or(|o| r.outcome == o))
        .filter(|r| reason.as_deref().is_none_or(|code| r.reason_code == code))
        .collect();
    let n_failed = matching
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .count();
    let rows = matching.iter().take(SHOWN).map(|r| result_row(r)).collect();
    Ok(views::render(&views::ImportsPage {
        nav: Nav::of(&who),
        institutions,
        institution,
        outcome: query.outcome.clone().unwrap_or_default(),
        reason: reason.unwrap_or_default(),
        since: since_text,
        since_utc: utc(since),
        notice,
        summary: format!(
            "{} matching of the {n_read} newest results ({n_failed} failed){}",
            matching.len(),
            if matching.len() > SHOWN {
                format!("; the newest {SHOWN} shown")
            } else {
                String::new()
            }
        ),
        rows,
    }))
}

/// One result, with its host message, reason, trace and what to do next (the same steps
/// as `bibgate results`).
pub(crate) fn result(data: &Data, who: Who, export_id: &str) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    let Some(found) = store
        .result(export_id)?
        .filter(|r| who.sees_institution(&r.institution))
    else {
        return Err(Refusal::NotFound(format!(
            "no result for export {export_id} among yours"
        )));
    };
    let steps = crate::cmd::results::next_steps(store, &found);
    Ok(views::render(&views::ResultPage {
        nav: Nav::of(&who),
        row: result_row(&found),
        institution: found.institution.clone(),
        zone: found.zone.clone(),
        decided: utc(found.decided_unix),
        batch: found
            .batch_id
            .as_ref()
            .map(|b| format!("{b}, record {}", found.index.unwrap_or_default()))
            .unwrap_or_default(),
        policy: found.policy.clone().unwrap_or_default(),
        retry_of: found.retry_of.clone().unwrap_or_default(),
        retry_of_href: found
            .retry_of
            .as_deref()
            .map(result_href)
            .unwrap_or_default(),
        trace: found.trace.clone(),
        steps,
        find_href: found
            .oclc_numbers
            .first()
            .map(|n| format!("/records?zone={}&oclc={n}", url(&found.zone)))
            .unwrap_or_default(),
    }))
}

/// The Retry button: `bibgate result retry`; to the new result's page.
pub(crate) fn retry(
    data: &Data,
    who: &Who,
    export_id: &str,
) -> Result<(anyhow::Result<String>, String), Refusal> {
    let store = store_of(data)?;
    match store.result(export_id)? {
        Some(found) if who.sees_institution(&found.institution) => {}
        _ => {
            return Err(Refusal::Forbidden(format!(
                "export {export_id} is not one of yours: nothing was retried"
            )));
        }
    }
    Ok(match crate::cmd::result::retry_result(data, export_id) {
        Ok(new) => (
            Ok(format!(
                "Retried as export {}: {} ({}). {}",
                new.export_id,
                new.outcome.as_str(),
                new.reason_code,
                new.host_message
            )),
            result_href(&new.export_id),
        ),
        Err(error) => (Err(error), result_href(export_id)),
    })
}

/// The query of the record page.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RecordQuery {
    zone: String,
    mms: String,
    from: Option<u64>,
    to: Option<u64>,
}

fn field_views(record: &Record) -> Vec<views::FieldView> {
    record
        .fields
        .iter()
        .map(|field| match field {
            Field::Control { tag, value } => views::FieldView {
                tag: tag.to_string(),
                ind: String::new(),
                control: value.clone(),
                subfields: Vec::new(),
            },
            Field::Data {
                tag,
                ind1,
                ind2,
                subfields,
            } => {
                let ind = |b: u8| if b == b' ' { '#' } else { char::from(b) };
                views::FieldView {
                    tag: tag.to_string(),
                    ind: format!("{}{}", ind(*ind1), ind(*ind2)),
                    control: String::new(),
                    subfields: subfields
                        .iter()
                        .map(|s| (format!("${}", char::from(s.code)), s.value.clone()))
                        .collect(),
                }
            }
        })
        .collect()
}

/// The record page (`record show`, `history`, `diff`, the lock, the editor).
pub(crate) fn record(data: &Data, who: Who, query: &RecordQuery) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    let zone = query.zone.as_str();
    let not_found = || {
        Refusal::NotFound(format!(
            "no record {} in zone {zone} among yours",
            query.mms
        ))
    };
    let Some((institution, _)) = acting_as(store, &who, zone)?.filter(|_| who.sees_zone(zone))
    else {
        return Err(not_found());
    };
    let mms_id = MmsId(query.mms.clone());
    let Some(current) = store.record(zone, &mms_id)? else {
        return Err(not_found());
    };
    let marc = bibgate_import::read_stored(&current)?;
    let now = now_unix();
    let timeout = crate::cmd::editor::lock_timeout(store, &institution)?;
    let lock = store.lock(zone, &mms_id)?.map(|lock| {
        let held = bibgate_engine::EditorLock {
            institution: lock.institution.clone(),
            user: lock.user.clone(),
            since_unix: lock.since_unix,
            left_unix: lock.left_unix,
        }
        .is_held(now, timeout.unwrap_or(i64::MAX));
        views::LockView {
            holder: format!("{} ({})", lock.institution, lock.user),
            since: bibgate_engine::messages::utc_minutes(lock.since_unix),
            expires: crate::cmd::editor::expires_text(&lock, timeout),
            held,
            mine: lock.institution == institution && lock.user == who.user,
            can_release: lock.institution == institution || who.admin,
        }
    });
    let mut revisions: Vec<views::RevisionRow> = store
        .versions(zone, &mms_id)?
        .into_iter()
        .map(|v| views::RevisionRow {
            revision: v.revision,
            saved: bibgate_engine::messages::utc_minutes(v.saved_unix),
            replaced: format!(
                "{} by {} ({})",
                bibgate_engine::messages::utc_minutes(v.replaced_unix),
                v.replaced_by,
                v.reason
            ),
            diff_href: diff_href(zone, &mms_id, v.revision),
            current: false,
        })
        .collect();
    revisions.push(views::RevisionRow {
        revision: current.revision,
        saved: bibgate_engine::messages::utc_minutes(current.updated_unix),
        replaced: "current".to_string(),
        diff_href: diff_href(zone, &mms_id, current.revision),
        current: true,
    });
    let mut diff = Vec::new();
    let mut diff_title = String::new();
    if query.to.is_some() || query.from.is_some() {
        let newer = crate::cmd::record::revision_of(store, zone, &mms_id, query.to)?;
        let from = query.from.unwrap_or(newer.revision.saturating_sub(1));
        let older = crate::cmd::record::revision_of(store, zone, &mms_id, Some(from))?;
        let old = crate::cmd::record::mrk_lines(&bibgate_import::read_stored(&older)?)?;
        let new = crate::cmd::record::mrk_lines(&bibgate_import::read_stored(&newer)?)?;
        diff_title = format!("Revision {} → revision {}", older.revision, newer.revision);
        diff = crate::cmd::record::diff_lines(&old, &new)
            .into_iter()
            .map(|line| match line {
                Diff::Same(text) => ("same", " ", text.to_string()),
                Diff::Gone(text) => ("gone", "−", text.to_string()),
                Diff::Came(text) => ("came", "+", text.to_string()),
            })
            .map(|(class, sign, text)| views::DiffLine {
                class: class.to_string(),
                sign: sign.to_string(),
                text,
            })
            .collect();
    }
    let editing = lock.as_ref().is_some_and(|l| l.mine && l.held);
    let mrk = if editing {
        crate::cmd::record::mrk_lines(&marc)?.join("\n")
    } else {
        String::new()
    };
    Ok(views::render(&views::RecordPage {
        nav: Nav::of(&who),
        zone: zone.to_string(),
        mms_id: mms_id.0.clone(),
        title: crate::cmd::record::title_of(&marc),
        leader: marc.leader.as_text(),
        leader_17: char::from(marc.leader.0[17]).to_string(),
        brief_level: format!("{:02}", current.brief_level),
        revision: current.revision,
        originating_version: current.originating_version.clone().unwrap_or_default(),
        withdrawn: marc.leader.status() == b'd',
        oclc: current
            .keys
            .iter()
            .map(|k| format!("{}{}", k.number, if k.active { "" } else { " (cancelled)" }))
            .collect(),
        fields: field_views(&marc),
        lock,
        revisions,
        diff_title,
        diff,
        editing,
        mrk,
    }))
}

fn diff_href(zone: &str, mms_id: &MmsId, revision: u64) -> String {
    if revision <= 1 {
        return String::new();
    }
    format!("{}&to={revision}#diff", record_href(zone, mms_id.as_str()))
}

/// Where a form goes back to: a local path given by the form, else `fallback`.
fn back_to(form: &HashMap<String, String>, fallback: String) -> String {
    form.get("back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .cloned()
        .unwrap_or(fallback)
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or_default()
}

/// The record page's forms: open (take the lock), release, save (a new revision from the
/// mrk text), restore a revision; as `editor open|release`, `record edit`, `record restore`.
pub(crate) fn record_action(
    data: &Data,
    who: &Who,
    form: &HashMap<String, String>,
) -> Result<(anyhow::Result<String>, String), Refusal> {
    let store = store_of(data)?;
    let zone = field(form, "zone");
    let mms_id = MmsId(field(form, "mms").to_string());
    let (institution, target) = zone_or_refuse(store, who, zone)?;
    let to = back_to(form, record_href(zone, mms_id.as_str()));
    let mut out = Vec::new();
    let by = Holder {
        institution: &institution,
        user: &who.user,
    };
    let done: anyhow::Result<()> = match field(form, "action") {
        "open" => crate::cmd::editor::editor_as(
            store,
            EditorAction::Open,
            zone,
            &mms_id,
            &by,
            false,
            &mut out,
        )
        .map(|_| ()),
        "release" => (|| -> anyhow::Result<()> {
            let force = who.admin
                && store
                    .lock(zone, &mms_id)?
                    .is_some_and(|l| l.institution != institution);
            let forced = crate::cmd::editor::editor_as(
                store,
                EditorAction::Release,
                zone,
                &mms_id,
                &by,
                force,
                &mut out,
            )?;
            if let Some(lock) = forced {
                let key = crate::cmd::editor::record_forced_release(
                    &*data.blobs,
                    &lock,
                    &by,
                    now_unix(),
                )?;
                out.extend_from_slice(format!(" (recorded in {key})").as_bytes());
            }
            Ok(())
        })(),
        "save" => Staff::new(store, &institution, target, &who.user)
            .and_then(|staff| staff.edit_mrk(&mms_id, field(form, "text"), &mut out)),
        "restore" => field(form, "revision")
            .parse::<u64>()
            .context("no revision to restore")
            .and_then(|revision| {
                crate::cmd::record::record_restore(
                    store, zone, &mms_id, revision, &who.user, &mut out,
                )
            }),
        other => Err(anyhow::anyhow!("there is no action {other:?}")),
    };
    Ok((done.map(|()| message(&out)), to))
}

fn message(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out).trim().to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Done.".to_string(),
    }
}

/// Records of a zone by OCLC number (`record find --oclc`); one hit goes to its page.
pub(crate) fn find_records(
    data: &Data,
    who: Who,
    query: &HashMap<String, String>,
) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    let zones = visible_zones(store, &who)?;
    let zone = query
        .get("zone")
        .filter(|z| !z.is_empty())
        .cloned()
        .unwrap_or_else(|| who.institution.clone());
    if !zones.contains(&zone) || !who.sees_zone(&zone) {
        return Err(Refusal::NotFound(format!("no zone {zone} among yours")));
    }
    let oclc = query
        .get("oclc")
        .map(|o| o.trim().to_string())
        .unwrap_or_default();
    let mut notice = String::new();
    let mut rows = Vec::new();
    if !oclc.is_empty() {
        match crate::cmd::record::oclc_number(&oclc) {
            Ok(number) => {
                let mut seen = std::collections::BTreeSet::new();
                for entry in store.find_by_oclc(&zone, &[number])? {
                    if !seen.insert(entry.mms_id.0.clone()) {
                        continue;
                    }
                    let title = store
                        .record(&zone, &entry.mms_id)?
                        .and_then(|r| bibgate_import::read_stored(&r).ok())
                        .map(|m| crate::cmd::record::title_of(&m))
                        .unwrap_or_default();
                    rows.push(views::FoundRow {
                        href: record_href(&zone, entry.mms_id.as_str()),
                        mms_id: entry.mms_id.0.clone(),
                        how: if entry.active { "active" } else { "cancelled" }.to_string(),
                        title,
                    });
                }
                if rows.len() == 1
                    && let Some(only) = rows.first()
                {
                    return Ok(see_other(&only.href));
                }
                if rows.is_empty() {
                    notice = format!("No record of {zone} carries OCLC number {number}.");
                }
            }
            Err(error) => notice = format!("{error:#}"),
        }
    }
    Ok(views::render(&views::RecordsPage {
        nav: Nav::of(&who),
        zones,
        zone,
        oclc,
        notice,
        rows,
    }))
}

/// The duplicates page (`bibgate duplicates`), each number with a merge form.
pub(crate) fn duplicates(
    data: &Data,
    who: Who,
    query: &HashMap<String, String>,
) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    let zones = visible_zones(store, &who)?;
    let zone = query
        .get("zone")
        .filter(|z| !z.is_empty())
        .cloned()
        .unwrap_or_else(|| who.institution.clone());
    if !zones.contains(&zone) || !who.sees_zone(&zone) {
        return Err(Refusal::NotFound(format!("no zone {zone} among yours")));
    }
    let rows = store
        .duplicates(&zone)?
        .into_iter()
        .map(|(number, entries)| views::DuplicateRow {
            number,
            records: entries
                .iter()
                .map(|e| views::FoundRow {
                    href: record_href(&zone, e.mms_id.as_str()),
                    mms_id: e.mms_id.0.clone(),
                    how: if e.active { "active" } else { "cancelled" }.to_string(),
                    title: String::new(),
                })
                .collect(),
        })
        .collect();
    Ok(views::render(&views::DuplicatesPage {
        nav: Nav::of(&who),
        zones,
        zone,
        rows,
    }))
}

/// The merge form: `bibgate record merge --keep K --from F`.
pub(crate) fn merge(
    data: &Data,
    who: &Who,
    form: &HashMap<String, String>,
) -> Result<(anyhow::Result<String>, String), Refusal> {
    let store = store_of(data)?;
    let zone = field(form, "zone");
    let (institution, target) = zone_or_refuse(store, who, zone)?;
    let keep = MmsId(field(form, "keep").to_string());
    let from = MmsId(field(form, "from").to_string());
    let mut out = Vec::new();
    let done = Staff::new(store, &institution, target, &who.user)
        .and_then(|staff| staff.merge(&keep, &from, false, &mut out));
    Ok((
        done.map(|()| message(&out)),
        format!("/duplicates?zone={}", url(zone)),
    ))
}

/// The locks page: every lock of the staff member's zones (`bibgate editor list`), held or
/// lapsed, with a release button where the CLI allows one.
pub(crate) fn locks(data: &Data, who: Who) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    let now = now_unix();
    let mut rows = Vec::new();
    for zone in visible_zones(store, &who)? {
        let Some((institution, _)) = acting_as(store, &who, &zone)? else {
            continue;
        };
        let timeout = crate::cmd::editor::lock_timeout(store, &institution)?;
        for lock in store.locks(&zone)? {
            let held = bibgate_engine::EditorLock {
                institution: lock.institution.clone(),
                user: lock.user.clone(),
                since_unix: lock.since_unix,
                left_unix: lock.left_unix,
            }
            .is_held(now, timeout.unwrap_or(i64::MAX));
            rows.push(views::LockRow {
                href: record_href(&zone, lock.mms_id.as_str()),
                zone: zone.clone(),
                mms_id: lock.mms_id.0.clone(),
                view: views::LockView {
                    holder: format!("{} ({})", lock.institution, lock.user),
                    since: bibgate_engine::messages::utc_minutes(lock.since_unix),
                    expires: crate::cmd::editor::expires_text(&lock, timeout),
                    held,
                    mine: lock.institution == institution && lock.user == who.user,
                    can_release: lock.institution == institution || who.admin,
                },
            });
        }
    }
    Ok(views::render(&views::LocksPage {
        nav: Nav::of(&who),
        rows,
    }))
}

/// The policies page: per institution the active merge policy and its history (`bibgate
/// policy list`).
pub(crate) fn policies(data: &Data, who: Who) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    let policies = data.policy_store()?;
    let mut rows = Vec::new();
    for institution in visible_institutions(store, &who)? {
        let active = policies.active(&institution)?;
        let history = policies
            .history(&institution)?
            .into_iter()
            .map(|a| {
                format!(
                    "revision {}: {} activated {} by {}",
                    a.revision,
                    a.label(),
                    bibgate_engine::messages::utc_minutes(a.activated_unix),
                    a.activated_by
                )
            })
            .collect();
        rows.push(views::PolicyRow {
            institution,
            has_active: active.is_some(),
            active: active
                .map(|a| format!("{} (revision {})", a.label(), a.revision))
                .unwrap_or_else(|| "none: the engine's decisions".to_string()),
            history,
        });
    }
    let published = policies
        .published()?
        .into_iter()
        .rev()
        .map(|m| {
            (
                format!("sha256:{}", m.sha256),
                format!(
                    "{} {} (sha256:{})",
                    m.name,
                    m.version,
                    m.sha256.get(..12).unwrap_or_default()
                ),
            )
        })
        .collect();
    Ok(views::render(&views::PoliciesPage {
        nav: Nav::of(&who),
        rows,
        published,
    }))
}

/// The policies page's forms: `policy activate` (no config values) and `policy rollback`,
/// for the staff member's institution (an administrator's: any).
pub(crate) fn policy_action(
    data: &Data,
    who: &Who,
    form: &HashMap<String, String>,
) -> Result<(anyhow::Result<String>, String), Refusal> {
    let institution = field(form, "institution");
    if !who.sees_institution(institution) {
        return Err(Refusal::Forbidden(format!(
            "{institution} is not your institution: no policy was changed"
        )));
    }
    let store = data.policy_store()?;
    let by = format!("console:{}", who.user);
    let mut out = Vec::new();
    let done = match field(form, "action") {
        "activate" => crate::cmd::policy::activate_in(
            store.as_ref(),
            institution,
            field(form, "policy"),
            "{}",
            field(form, "on_error"),
            &by,
            &mut out,
        ),
        "rollback" => crate::cmd::policy::rollback_in(store.as_ref(), institution, &by, &mut out),
        other => Err(anyhow::anyhow!("there is no action {other:?}")),
    };
    Ok((done.map(|()| message(&out)), "/policies".to_string()))
}

/// Changed records listed on the policy diff page (the counts cover all).
pub(crate) const DIFF_LINES_SHOWN: usize = 500;

/// The policies page's diff form: what two policy versions (`default`, or a published
/// `sha256:…`) decide differently on an uploaded file for the staff member's institution,
/// through `policy diff`'s own function; nothing is written.
pub(crate) fn policy_diff(
    data: &Data,
    who: Who,
    form: super::multipart::Form,
) -> Result<Response, Refusal> {
    let institution = form
        .text("institution")
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| who.institution.clone());
    if !who.sees_institution(&institution) {
        return Err(Refusal::Forbidden(format!(
            "{institution} is not your institution: no diff was run"
        )));
    }
    let from = form.text("from").unwrap_or_else(|| "default".to_string());
    let to = form.text("to").unwrap_or_default();
    let (file, bytes) = form.file.unwrap_or_default();
    let outcome = if bytes.is_empty() {
        Err("choose a file of MARC records to compare the decisions on".to_string())
    } else if to.is_empty() {
        Err("choose the policy to compare with".to_string())
    } else {
        uploaded_source(bytes)
            .and_then(|source| {
                crate::cmd::policy::diff::diff_report(data, source, &from, &to, &institution, "{}")
            })
            .map(|report| views::PolicyDiff {
                total: report.total,
                changed: report.changed,
                more: report.lines.len().saturating_sub(DIFF_LINES_SHOWN),
                lines: report.lines.into_iter().take(DIFF_LINES_SHOWN).collect(),
                by_change: report.by_change,
            })
            .map_err(|error| format!("{error:#}"))
    };
    Ok(views::render(&views::PolicyDiffPage {
        nav: Nav::of(&who),
        institution,
        file,
        from,
        to,
        outcome,
    }))
}

/// An uploaded file as a source of records, its format sniffed as `policy diff` does.
fn uploaded_source(
    bytes: Vec<u8>,
) -> anyhow::Result<bibgate_marc::Source<std::io::Cursor<Vec<u8>>>> {
    bibgate_marc::Source::sniffed(
        std::io::Cursor::new(bytes),
        bibgate_marc::iso2709::Mode::Lenient,
        bibgate_marc::decode::Charset::Auto,
    )
    .map_err(|error| anyhow::anyhow!("the file could not be read: {error}"))
}

/// The upload page.
pub(crate) fn upload_page(data: &Data, who: Who) -> Result<Response, Refusal> {
    let store = store_of(data)?;
    Ok(views::render(&views::UploadPage {
        institutions: visible_institutions(store, &who)?,
        institution: who.institution.clone(),
        max_mib: super::UPLOAD_MAX_BYTES / (1024 * 1024),
        nav: Nav::of(&who),
    }))
}

/// A file name for the drop folder: the upload time, then the sent name with anything but
/// letters, digits, `.`, `_` and `-` made `_` (at most 100 characters).
fn drop_name(sent: &str, now: i64) -> String {
    let base = sent.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if clean.trim_matches(['.', '_']).is_empty() {
        clean = "upload.mrc".to_string();
    }
    let mut name = format!("console-{now}-{clean}");
    if bibgate_inbox::layout::is_in_progress_name(&name) {
        name.push_str(".mrc");
    }
    name
}

/// The upload form: the file goes into the institution's drop folder, where the processor
/// imports it as it imports any drop file; to its report page.
pub(crate) fn upload(
    data: &Data,
    who: &Who,
    form: super::multipart::Form,
) -> Result<(anyhow::Result<String>, String), Refusal> {
    let institution = form
        .text("institution")
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| who.institution.clone());
    if !who.sees_institution(&institution) {
        return Err(Refusal::Forbidden(format!(
            "{institution} is not your institution: nothing was uploaded"
        )));
    }
    let Some((sent, bytes)) = form.file.filter(|(_, b)| !b.is_empty()) else {
        return Ok((
            Err(anyhow::anyhow!("choose a file of MARC records to upload")),
            "/upload".to_string(),
        ));
    };
    if bytes.len() > super::UPLOAD_MAX_BYTES {
        return Ok((
            Err(anyhow::anyhow!(
                "the file is larger than {} MiB: put it into the drop folder instead",
                super::UPLOAD_MAX_BYTES / (1024 * 1024)
            )),
            "/upload".to_string(),
        ));
    }
    let name = drop_name(&sent, now_unix());
    let hash = bibgate_inbox::layout::stable_hash(&bytes);
    let key = bibgate_inbox::layout::drop_key(&institution, &name);
    data.blobs.put(&key, &bytes)?;
    tracing::info!(user = %who.user, %key, n_bytes = bytes.len(), "console: file uploaded");
    Ok((
        Ok(format!(
            "{sent} ({} bytes) is in the drop folder of {institution} as {name}; it is imported \
             as every drop file is, and this page shows its report when done.",
            bytes.len()
        )),
        format!(
            "/upload/report?institution={}&file={}&hash={hash:016x}",
            url(&institution),
            url(&name)
        ),
    ))
}

/// The query of an upload's report and its downloads.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ReportQuery {
    institution: String,
    file: String,
    hash: String,
    kind: Option<String>,
}

/// The report's and the rejected records' keys of a drop file, where they exist.
fn report_blobs(
    data: &Data,
    query: &ReportQuery,
    hash: u64,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    use bibgate_inbox::layout::{rejected_key, rejected_key_beside, report_key, report_key_beside};
    let (inst, file) = (query.institution.as_str(), query.file.as_str());
    let exists = |key: &str| -> anyhow::Result<bool> { Ok(data.blobs.open(key)?.is_some()) };
    let report = [report_key_beside(inst, file, hash), report_key(inst, file)]
        .into_iter()
        .find_map(|key| exists(&key).map(|e| e.then_some(key)).transpose())
        .transpose()?;
    let rejected = [
        rejected_key_beside(inst, file, hash),
        rejected_key(inst, file),
    ]
    .into_iter()
    .find_map(|key| exists(&key).map(|e| e.then_some(key)).transpose())
    .transpose()?;
    Ok((report, rejected))
}

fn report_query(who: &Who, query: &ReportQuery) -> Result<u64, Refusal> {
    if !who.sees_institution(&query.institution) || query.file.contains('/') {
        return Err(Refusal::NotFound("no such upload among yours".to_string()));
    }
    u64::from_str_radix(&query.hash, 16).map_err(|_| Refusal::Bad("no such upload".to_string()))
}

/// An upload's report: counts per outcome and every failed record with its reason, from
/// the stored results of the file's batch; refreshes itself while the file is imported.
pub(crate) fn upload_report(
    data: &Data,
    who: Who,
    query: &ReportQuery,
) -> Result<Response, Refusal> {
    let hash = report_query(&who, query)?;
    let store = store_of(data)?;
    let batch = bibgate_inbox::layout::drop_batch_id(&query.institution, &query.file, hash);
    let results = store.batch_results(&batch)?;
    let waiting = data
        .blobs
        .open(&bibgate_inbox::layout::drop_key(
            &query.institution,
            &query.file,
        ))?
        .is_some();
    let (report, rejected) = report_blobs(data, query, hash)?;
    let mut refused = String::new();
    if results.is_empty()
        && let Some(key) = &report
        && let Some(bytes) = data.blobs.get(key)?
    {
        refused = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let base = format!(
        "/upload/download?institution={}&file={}&hash={}",
        url(&query.institution),
        url(&query.file),
        url(&query.hash)
    );
    Ok(views::render(&views::ReportPage {
        nav: Nav::of(&who),
        file: query.file.clone(),
        institution: query.institution.clone(),
        pending: waiting || (results.is_empty() && report.is_none()),
        n_records: results.len(),
        n_added: count(Outcome::Added),
        n_merged: count(Outcome::Merged),
        n_failed: count(Outcome::Failed),
        refused,
        failed: results
            .iter()
            .filter(|r| r.outcome == Outcome::Failed)
            .map(|r| (r.index.unwrap_or_default(), result_row(r)))
            .collect(),
        report_href: report
            .map(|_| format!("{base}&kind=report"))
            .unwrap_or_default(),
        rejected_href: rejected
            .map(|_| format!("{base}&kind=rejected"))
            .unwrap_or_default(),
    }))
}

/// The JSONL report or the rejected records of an upload, as a download.
pub(crate) fn upload_download(
    data: &Data,
    who: &Who,
    query: &ReportQuery,
) -> Result<Response, Refusal> {
    let hash = report_query(who, query)?;
    let (report, rejected) = report_blobs(data, query, hash)?;
    let (key, content_type, suffix) = match query.kind.as_deref() {
        Some("report") => (report, "application/x-ndjson", "results.jsonl"),
        Some("rejected") => (rejected, "application/marc", "rejected.mrc"),
        _ => (None, "", ""),
    };
    let Some(key) = key else {
        return Err(Refusal::NotFound(
            "no such file for this upload".to_string(),
        ));
    };
    let mut bytes = Vec::new();
    data.blobs
        .open(&key)?
        .with_context(|| format!("{key:?} is gone"))?
        .read_to_end(&mut bytes)
        .with_context(|| format!("could not read {key:?}"))?;
    let name: String = format!("{}.{suffix}", query.file)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(url("drop-A#12"), "drop-A%2312");
        assert_eq!(url("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn drop_names_are_safe() {
        assert_eq!(drop_name("../../x y.mrc", 7), "console-7-x_y.mrc");
        assert_eq!(drop_name("C:\\books\\a.mrc", 7), "console-7-a.mrc");
        assert_eq!(drop_name("...", 7), "console-7-upload.mrc");
        assert_eq!(drop_name("a.part", 7), "console-7-a.part.mrc");
    }
}
