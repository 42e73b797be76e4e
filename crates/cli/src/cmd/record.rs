//! `bibgate record`: find, show (any revision, in the formats cataloguers read), compare
//! revisions, list the history of, or restore records; merge, edit and delete them
//! (`revise.rs`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use bibgate_marc::{Field, Record};
use bibgate_store::{Commit, MmsId, Store, StoredRecord};

use super::revise::Staff;
use super::{ZoneArg, now_unix, zone_of};
use crate::data::Data;

/// How `record show` writes a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A heading (revision, brief level, 005) and the record as MarcEdit's mnemonic lines.
    Text,
    /// MarcEdit's mnemonic text (`=245  10$aTitle`), the record alone.
    Mrk,
    /// MARCXML.
    Marcxml,
    /// MARC-in-JSON.
    Json,
    /// ISO 2709 (UTF-8), as stored.
    Mrc,
}

/// A record: its MMS ID and zone.
#[derive(clap::Args)]
pub struct Which {
    /// The MMS ID.
    mms_id: String,
    /// Whose zone.
    #[arg(long)]
    institution: String,
    /// Institution or network zone.
    #[arg(long, value_enum, default_value = "iz")]
    zone: ZoneArg,
}

impl Which {
    /// The zone's code and the MMS ID.
    fn resolve(&self, store: &dyn Store) -> anyhow::Result<(String, MmsId)> {
        let zone = zone_of(store, &self.institution, self.zone.target())?;
        Ok((zone, MmsId(self.mms_id.clone())))
    }
}

/// `bibgate record` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Find the records of a zone that carry an OCLC number (035 $a active, 035 $z or 019 $a
    /// cancelled; `123`, `ocm00000123` and `(OCoLC)123` are the same number), an ISBN (020
    /// $a or $z; ISBN-10 and ISBN-13 are the same) or all the words of a title (245 $a $b).
    Find {
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
        /// The OCLC number.
        #[arg(long, required_unless_present_any = ["isbn", "title"], conflicts_with_all = ["isbn", "title"])]
        oclc: Option<String>,
        /// An ISBN.
        #[arg(long, conflicts_with = "title")]
        isbn: Option<String>,
        /// Words of the title (all of them, any order, any case).
        #[arg(long)]
        title: Option<String>,
        /// At most this many records (ISBN and title).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per record.
        #[arg(long)]
        json: bool,
    },
    /// List a zone's records a page at a time (MMS ID, revision, brief level, title); the
    /// next page starts `--after` the last MMS ID shown.
    List {
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
        /// Start after this MMS ID (the last one of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per record.
        #[arg(long)]
        json: bool,
    },
    /// Show a record: its current state, or a prior revision.
    Show {
        #[command(flatten)]
        which: Which,
        /// A prior revision (see history) instead of the current one.
        #[arg(long)]
        revision: Option<u64>,
        /// How to write it.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Compare two revisions of a record field by field (default: the one before the
    /// current, and the current).
    Diff {
        #[command(flatten)]
        which: Which,
        /// The older revision.
        #[arg(long)]
        from: Option<u64>,
        /// The newer revision (default: the current one).
        #[arg(long)]
        to: Option<u64>,
    },
    /// List a record's prior versions.
    History {
        #[command(flatten)]
        which: Which,
    },
    /// Merge two records into one: `--keep` survives (its MMS ID), the OCLC numbers of
    /// `--from` become 035 $z of it, and `--from` is withdrawn (restorable), with the index
    /// updated in the same write. Refused while either is locked by someone else.
    Merge {
        /// The record that survives.
        #[arg(long)]
        keep: String,
        /// The record merged into it and withdrawn.
        #[arg(long)]
        from: String,
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
        /// Do not carry the OCLC numbers of `--from` over as 035 $z.
        #[arg(long)]
        drop_numbers: bool,
        /// Who merges them.
        #[arg(long, default_value = "cli")]
        user: String,
    },
    /// Replace a record with an edited one: from a file (mrk, ISO 2709 or MARCXML), or in
    /// `$EDITOR` on its mrk text while holding the editor lock. The MARCXML verdict is
    /// checked before saving; the prior revision is kept.
    Edit {
        #[command(flatten)]
        which: Which,
        /// The edited record (without: open `$VISUAL`/`$EDITOR`).
        #[arg(long)]
        from: Option<std::path::PathBuf>,
        /// Who edits it (the editor lock's user).
        #[arg(long, default_value = "cli")]
        user: String,
    },
    /// Withdraw a record: no export matches it any more; restorable with `record restore`.
    Delete {
        #[command(flatten)]
        which: Which,
        /// Who withdraws it.
        #[arg(long, default_value = "cli")]
        user: String,
    },
    /// Make a prior revision current again (the current one is kept as a version).
    Restore {
        #[command(flatten)]
        which: Which,
        /// The revision to restore (see history).
        #[arg(long)]
        revision: u64,
        /// Who restores it.
        #[arg(long, default_value = "cli")]
        user: String,
    },
}

/// Runs a `record` subcommand.
pub fn run(data: &Data, command: Command) -> anyhow::Result<ExitCode> {
    let store = data.store()?.as_ref();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Find {
            institution,
            zone,
            oclc,
            isbn,
            title,
            limit,
            json,
        } => {
            let zone = zone_of(store, &institution, zone.target())?;
            if let Some(oclc) = oclc {
                return record_find(store, &zone, &oclc, json, &mut out);
            }
            return record_search(
                store,
                &zone,
                isbn.as_deref(),
                title.as_deref(),
                limit,
                json,
                &mut out,
            );
        }
        Command::List {
            institution,
            zone,
            after,
            limit,
            json,
        } => {
            let zone = zone_of(store, &institution, zone.target())?;
            let after = after.map(MmsId);
            record_list(store, &zone, after.as_ref(), limit, json, &mut out)?;
        }
        Command::Show {
            which,
            revision,
            format,
        } => {
            let (zone, mms_id) = which.resolve(store)?;
            record_show(store, &zone, &mms_id, revision, format, &mut out)?;
        }
        Command::Diff { which, from, to } => {
            let (zone, mms_id) = which.resolve(store)?;
            record_diff(store, &zone, &mms_id, from, to, &mut out)?;
        }
        Command::History { which } => {
            let (zone, mms_id) = which.resolve(store)?;
            record_history(store, &zone, &mms_id, &mut out)?;
        }
        Command::Restore {
            which,
            revision,
            user,
        } => {
            let (zone, mms_id) = which.resolve(store)?;
            record_restore(store, &zone, &mms_id, revision, &user, &mut out)?;
        }
        Command::Merge {
            keep,
            from,
            institution,
            zone,
            drop_numbers,
            user,
        } => {
            let staff = Staff::new(store, &institution, zone.target(), &user)?;
            staff.merge(&MmsId(keep), &MmsId(from), drop_numbers, &mut out)?;
        }
        Command::Edit { which, from, user } => {
            let staff = Staff::new(store, &which.institution, which.zone.target(), &user)?;
            staff.edit(&MmsId(which.mms_id), from.as_deref(), &mut out)?;
        }
        Command::Delete { which, user } => {
            let staff = Staff::new(store, &which.institution, which.zone.target(), &user)?;
            staff.delete(&MmsId(which.mms_id), &mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a record in the usual line display (`=245  10$aTitle`; a `$` in a value is
/// MarcEdit's `{dollar}`).
pub(super) fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
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
                    write!(
                        out,
                        "${}{}",
                        char::from(subfield.code),
                        subfield.value.replace('$', "{dollar}")
                    )?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn stored(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
) -> anyhow::Result<StoredRecord> {
    store
        .record(zone, mms_id)?
        .with_context(|| format!("record {mms_id} does not exist in zone {zone}"))
}

/// An OCLC number as staff type it: `123`, `ocm00000123`, `(OCoLC)123`.
pub(crate) fn oclc_number(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let number = if text.starts_with('(') {
        bibgate_matching::oclc::parse_035(text).ok()
    } else {
        bibgate_matching::oclc::parse_001(text, Some("OCoLC"))
    };
    number
        .map(|n| n.get())
        .with_context(|| format!("{text:?} is not an OCLC number"))
}

/// `bibgate record find --oclc`: exit 1 when no record carries the number.
fn record_find(
    store: &dyn Store,
    zone: &str,
    oclc: &str,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let number = oclc_number(oclc)?;
    let lookup = store.lookup(zone, &[number])?;
    for entry in &lookup.entries {
        let record = lookup.records.iter().find(|r| r.mms_id == entry.mms_id);
        let title = record
            .and_then(|r| bibgate_import::read_stored(r).ok())
            .map(|r| title_of(&r))
            .unwrap_or_default();
        let how = if entry.active { "active" } else { "cancelled" };
        if json {
            let line = serde_json::json!({
                "mms_id": entry.mms_id.0,
                "zone": zone,
                "oclc_number": number,
                "active": entry.active,
                "revision": record.map(|r| r.revision),
                "title": title,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{}\t{zone}\tOCLC {number} {how}\trevision {}\t{title}",
                entry.mms_id,
                record.map_or_else(|| "?".into(), |r| r.revision.to_string())
            )?;
        }
    }
    if lookup.entries.is_empty() {
        eprintln!("bibgate: no record in {zone} carries OCLC number {number}");
        return Ok(ExitCode::from(1));
    }
    if lookup.entries.len() > 1 && !json {
        eprintln!(
            "bibgate: {} records carry OCLC number {number}: an export of it fails as a multi-match until they are one",
            lookup.entries.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Title terms read for one word at most (a common word's records beyond it are not
/// looked at).
const MAX_TERM_RECORDS: usize = 10_000;

/// `bibgate record find --isbn|--title`: the records with the ISBN, or with every word of
/// the title (the records of each word's term, intersected); exit 1 when none.
fn record_search(
    store: &dyn Store,
    zone: &str,
    isbn: Option<&str>,
    title: Option<&str>,
    limit: usize,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let (terms, shown) = match (isbn, title) {
        (Some(isbn), _) => (
            vec![
                bibgate_store::search::isbn_term(isbn)
                    .with_context(|| format!("{isbn:?} is not an ISBN (10 or 13 digits)"))?,
            ],
            format!("ISBN {isbn}"),
        ),
        (None, Some(title)) => {
            let terms = bibgate_store::search::title_terms(title);
            if terms.is_empty() {
                anyhow::bail!(
                    "{title:?} has no word to search for (articles and one-letter words are left out)"
                );
            }
            (terms, format!("title words {title:?}"))
        }
        (None, None) => anyhow::bail!("name --oclc, --isbn or --title"),
    };
    let mut found: Option<Vec<MmsId>> = None;
    for term in &terms {
        let ids = store.find_by_term(zone, term, MAX_TERM_RECORDS)?;
        found = Some(match found {
            None => ids,
            Some(so_far) => so_far.into_iter().filter(|id| ids.contains(id)).collect(),
        });
    }
    let mut found = found.unwrap_or_default();
    found.truncate(limit);
    for mms_id in &found {
        if let Some(record) = store.record(zone, mms_id)? {
            write_summary(&record, json, out)?;
        }
    }
    out.flush()?;
    if found.is_empty() {
        eprintln!("bibgate: no record in {zone} has {shown}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `bibgate record list`: one line (or JSON object) per record; the cursor for the next
/// page on stderr when the page is full.
fn record_list(
    store: &dyn Store,
    zone: &str,
    after: Option<&MmsId>,
    limit: usize,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let ids = store.list_records(zone, after, limit)?;
    for mms_id in &ids {
        let Some(record) = store.record(zone, mms_id)? else {
            continue;
        };
        write_summary(&record, json, out)?;
    }
    out.flush()?;
    match ids.last() {
        Some(last) if ids.len() == limit => {
            eprintln!("bibgate: more may follow: --after {last}");
        }
        _ => {}
    }
    Ok(())
}

/// ` (Leader/17 "x")`: the value a brief level comes from, as cataloguers know it.
pub(crate) fn leader_17(marc: &bibgate_marc::Record) -> String {
    format!(" (Leader/17 \"{}\")", char::from(marc.leader.0[17]))
}

/// One line about a stored record: MMS ID, revision, brief level, OCLC numbers, title
/// (withdrawn records say so).
fn write_summary(record: &StoredRecord, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let marc = bibgate_import::read_stored(record).ok();
    let title = marc.as_ref().map(title_of).unwrap_or_default();
    let withdrawn = marc.as_ref().is_some_and(|m| m.leader.status() == b'd');
    let numbers: Vec<String> = record
        .keys
        .iter()
        .map(|k| format!("{}{}", k.number, if k.active { "" } else { " (cancelled)" }))
        .collect();
    if json {
        let line = serde_json::json!({
            "mms_id": record.mms_id.0,
            "zone": record.zone,
            "revision": record.revision,
            "brief_level": record.brief_level,
            "oclc_numbers": record.keys.iter().map(|k| k.number).collect::<Vec<_>>(),
            "withdrawn": withdrawn,
            "title": title,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "{}\trevision {}\tbrief level {:02}{}\t{}\t{}{title}",
            record.mms_id,
            record.revision,
            record.brief_level,
            marc.as_ref().map(leader_17).unwrap_or_default(),
            if numbers.is_empty() {
                "no OCLC number".to_string()
            } else {
                format!("OCLC {}", numbers.join(", "))
            },
            if withdrawn { "(withdrawn) " } else { "" }
        )?;
    }
    Ok(())
}

/// The 245 $a (and $b) of a record, for lists.
pub(crate) fn title_of(record: &Record) -> String {
    record
        .fields
        .iter()
        .find_map(|field| match field {
            Field::Data { tag, subfields, .. } if tag.is("245") => Some(
                subfields
                    .iter()
                    .filter(|s| matches!(s.code, b'a' | b'b'))
                    .map(|s| s.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

/// A record's revision: the current one, or a prior one from its history.
pub(crate) fn revision_of(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
    revision: Option<u64>,
) -> anyhow::Result<StoredRecord> {
    let current = stored(store, zone, mms_id)?;
    match revision {
        None => Ok(current),
        Some(r) if r == current.revision => Ok(current),
        Some(r) => {
            let version = store
                .versions(zone, mms_id)?
                .into_iter()
                .find(|v| v.revision == r)
                .with_context(|| {
                    format!("record {mms_id} has no revision {r} (see bibgate record history)")
                })?;
            Ok(StoredRecord {
                marc: version.marc,
                revision: version.revision,
                originating_version: version.originating_version,
                brief_level: version.brief_level,
                updated_unix: version.saved_unix,
                ..current
            })
        }
    }
}

/// `bibgate record show`.
fn record_show(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
    revision: Option<u64>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let record = revision_of(store, zone, mms_id, revision)?;
    let marc = bibgate_import::read_stored(&record)?;
    match format {
        Format::Text => {
            writeln!(
                out,
                "MMS ID {} in {zone}: revision {}, brief level {:02}{}, originating version {}{}",
                record.mms_id,
                record.revision,
                record.brief_level,
                leader_17(&marc),
                record.originating_version.as_deref().unwrap_or("none"),
                if marc.leader.status() == b'd' {
                    " (withdrawn)"
                } else {
                    ""
                }
            )?;
            write_record(out, &marc)?;
        }
        Format::Mrk => write_record(out, &marc)?,
        Format::Marcxml => {
            let mut xml = String::new();
            bibgate_marc::marcxml::write_record(&marc, &mut xml, true)
                .with_context(|| format!("record {mms_id} cannot be written as MARCXML"))?;
            writeln!(out, "{xml}")?;
        }
        Format::Json => {
            let mut json = String::new();
            bibgate_marc::json::write_record(&marc, &mut json);
            writeln!(out, "{json}")?;
        }
        Format::Mrc => out.write_all(&record.marc)?,
    }
    Ok(())
}

/// A record as MarcEdit's mnemonic lines.
pub(crate) fn mrk_lines(record: &Record) -> anyhow::Result<Vec<String>> {
    let mut text = Vec::new();
    write_record(&mut text, record)?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect())
}

/// `bibgate record diff`: the lines of the older revision that went (`-`), those of the
/// newer that came (`+`), in record order (a longest common subsequence of the lines).
fn record_diff(
    store: &dyn Store,
    zone: &str,
    mms_id: &MmsId,
    from: Option<u64>,
    to: Option<u64>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let newer = revision_of(store, zone, mms_id, to)?;
    let from = match from {
        Some(from) => from,
        None if newer.revision > 1 => newer.revision - 1,
        None => anyhow::bail!("record {mms_id} has one revision only: nothing to compare"),
    };
    let older = revision_of(store, zone, mms_id, Some(from))?;
    let old = mrk_lines(&bibgate_import::read_stored(&older)?)?;
    let new = mrk_lines(&bibgate_import::read_stored(&newer)?)?;
    writeln!(
        out,
        "record {mms_id} in {zone}: revision {} → revision {}",
        older.revision, newer.revision
    )?;
    let mut changed = 0;
    for line in diff_lines(&old, &new) {
        match line {
            Diff::Same(_) => {}
            Diff::Gone(text) => {
                changed += 1;
                writeln!(out, "- {text}")?;
            }
            Diff::Came(text) => {
                changed += 1;
                writeln!(out, "+ {text}")?;
            }
        }
    }
    if changed == 0 {
        writeln!(out, "(the two revisions are the same)")?;
    }
    Ok(())
}

/// One line of a diff.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Diff<'a> {
    Same(&'a str),
    Gone(&'a str),
    Came(&'a str),
}

/// The lines of `old` and `new` as kept, gone and came (records are short: the quadratic
/// table of a longest common subsequence is small).
pub(crate) fn diff_lines<'a>(old: &'a [String], new: &'a [String]) -> Vec<Diff<'a>> {
    let (n, m) = (old.len(), new.len());
    let mut common = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut lines = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            lines.push(Diff::Same(&old[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || common[i][j + 1] > common[i + 1][j]) {
            lines.push(Diff::Came(&new[j]));
            j += 1;
        } else {
            lines.push(Diff::Gone(&old[i]));
            i += 1;
        }
    }
    lines
}

/// `bibgate record history`.
fn record_history(
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
pub(crate) fn record_restore(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oclc_numbers_as_staff_type_them() {
        assert_eq!(oclc_number("123").unwrap(), 123);
        assert_eq!(oclc_number("ocm00000123").unwrap(), 123);
        assert_eq!(oclc_number("(OCoLC)123").unwrap(), 123);
        assert_eq!(oclc_number(" (OCoLC)ocn123456789 ").unwrap(), 123_456_789);
        assert!(oclc_number("(DLC)123").is_err());
        assert!(oclc_number("abc").is_err());
    }

    #[test]
    fn a_diff_keeps_the_order_and_shows_only_what_changed() {
        let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
        let old = lines("=001  1\n=245  10$aOld title\n=500  \\\\$aNote\n=650  \\0$aA");
        let new =
            lines("=001  1\n=245  10$aNew title\n=500  \\\\$aNote\n=650  \\0$aA\n=650  \\0$aB");
        let diff = diff_lines(&old, &new);
        let changed: Vec<String> = diff
            .iter()
            .filter_map(|d| match d {
                Diff::Same(_) => None,
                Diff::Gone(t) => Some(format!("- {t}")),
                Diff::Came(t) => Some(format!("+ {t}")),
            })
            .collect();
        assert_eq!(
            changed,
            vec![
                "- =245  10$aOld title".to_string(),
                "+ =245  10$aNew title".to_string(),
                "+ =650  \\0$aB".to_string(),
            ]
        );
        assert_eq!(
            diff.iter().filter(|d| matches!(d, Diff::Same(_))).count(),
            3
        );
        assert!(
            diff_lines(&old, &old)
                .iter()
                .all(|d| matches!(d, Diff::Same(_)))
        );
    }
}
