//! The changes staff make to stored records: `record merge` (two records become one),
//! `record edit` (a new revision from a file or from `$EDITOR`) and `record delete`
//! (withdraw). Each is a new revision with the prior one kept, so `record restore` undoes it.
//!
//! A withdrawn record is a revision whose Leader/05 is `d` (MARC's "deleted") and which has
//! no OCLC keys: the index no longer names it, so no export matches it; its MARC is kept
//! as it was.

use std::collections::BTreeSet;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bibgate_engine::ImportRules;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_marc::{Field, Record, Subfield, Tag};
use bibgate_store::{Commit, IndexKey, MmsId, Replacement, Store, StoredRecord, TargetZone};

use super::now_unix;
use super::record::{stored, write_record};

/// Leader/05 of a withdrawn record.
const WITHDRAWN: u8 = b'd';

/// Who changes records, where, and under which profile rules (lock timeout, brief levels).
pub(crate) struct Staff<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The zone's code.
    pub zone: String,
    /// The institution staff act for.
    pub institution: String,
    /// The cataloguer.
    pub user: String,
    /// The institution's profile rules for that zone (the defaults without a profile).
    pub rules: ImportRules,
}

impl<'a> Staff<'a> {
    /// Staff of `institution` working in its `target` zone.
    pub fn new(
        store: &'a dyn Store,
        institution: &str,
        target: TargetZone,
        user: &str,
    ) -> anyhow::Result<Staff<'a>> {
        let zone = super::zone_of(store, institution, target)?;
        let rules = bibgate_import::route(store, institution, Some(target))
            .map(|route| route.rules)
            .unwrap_or_default();
        Ok(Staff {
            store,
            zone,
            institution: institution.to_string(),
            user: user.to_string(),
            rules,
        })
    }

    fn replaced_by(&self) -> String {
        format!("user:{}", self.user)
    }

    /// The record, refused when withdrawn or locked by someone else.
    fn changeable(&self, mms_id: &MmsId, now: i64) -> anyhow::Result<(StoredRecord, Record)> {
        let current = stored(self.store, &self.zone, mms_id)?;
        let record = bibgate_import::read_stored(&current)?;
        if record.leader.status() == WITHDRAWN {
            bail!(
                "record {mms_id} is withdrawn (see `bibgate record history {mms_id} --institution {}`; \
                 `record restore` brings a revision back)",
                self.institution
            );
        }
        self.refuse_if_locked(mms_id, now)?;
        Ok((current, record))
    }

    /// Fails while another cataloguer holds the record in the metadata editor.
    fn refuse_if_locked(&self, mms_id: &MmsId, now: i64) -> anyhow::Result<()> {
        let Some(lock) = self.store.lock(&self.zone, mms_id)? else {
            return Ok(());
        };
        let held = bibgate_engine::EditorLock {
            institution: lock.institution.clone(),
            user: lock.user.clone(),
            since_unix: lock.since_unix,
            left_unix: lock.left_unix,
        }
        .is_held(now, self.rules.lock_timeout_seconds);
        if held && (lock.institution != self.institution || lock.user != self.user) {
            bail!(
                "record {mms_id} is locked in the metadata editor by {} ({}) since {}: ask them to \
                 release it (`bibgate editor release {mms_id} --institution {}`), or wait until \
                 the lock lapses",
                lock.institution,
                lock.user,
                bibgate_engine::messages::utc_minutes(lock.since_unix),
                lock.institution
            );
        }
        Ok(())
    }

    /// `bibgate record merge`: `keep` survives with the OCLC numbers of `from` as 035 $z
    /// (unless `drop_numbers`), `from` is withdrawn; one atomic write with the index.
    pub fn merge(
        &self,
        keep: &MmsId,
        from: &MmsId,
        drop_numbers: bool,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        if keep == from {
            bail!("--keep and --from name the same record {keep}");
        }
        let now = now_unix();
        let (kept, mut survivor) = self.changeable(keep, now)?;
        let (gone, mut withdrawn) = self.changeable(from, now)?;
        let mut carried = Vec::new();
        if !drop_numbers {
            let on_kept: BTreeSet<u64> = keys_of(&survivor).iter().map(|k| k.number).collect();
            let mut numbers: Vec<&IndexKey> = gone.keys.iter().collect();
            numbers.sort_by_key(|k| (!k.active, k.number));
            for key in numbers {
                if !on_kept.contains(&key.number) && !carried.contains(&key.number) {
                    carried.push(key.number);
                }
            }
            for number in &carried {
                insert_in_tag_order(
                    &mut survivor,
                    Field::Data {
                        tag: Tag(*b"035"),
                        ind1: b' ',
                        ind2: b' ',
                        subfields: vec![Subfield {
                            code: b'z',
                            value: format!("(OCoLC){number}"),
                        }],
                    },
                );
            }
        }
        withdrawn.leader.0[5] = WITHDRAWN;
        let survivor_keys = keys_of(&survivor);
        let replacements = vec![
            Replacement {
                expected_revision: kept.revision,
                record: StoredRecord {
                    marc: encode(&survivor)?,
                    revision: kept.revision + 1,
                    updated_unix: now,
                    keys: survivor_keys,
                    ..kept.clone()
                },
                replaced_by: self.replaced_by(),
                reason: format!("merge of {from}"),
            },
            Replacement {
                expected_revision: gone.revision,
                record: StoredRecord {
                    marc: encode(&withdrawn)?,
                    revision: gone.revision + 1,
                    updated_unix: now,
                    keys: Vec::new(),
                    ..gone.clone()
                },
                replaced_by: self.replaced_by(),
                reason: format!("merged into {keep}"),
            },
        ];
        self.store.commit(&Commit::ReplaceMany { replacements })?;
        let numbers: Vec<String> = carried.iter().map(u64::to_string).collect();
        writeln!(
            out,
            "record {from} merged into {keep}: {keep} is at revision {}{}; {from} is withdrawn \
             (revision {}; `bibgate record restore {from} --institution {} --revision {}` \
             brings it back)",
            kept.revision + 1,
            if numbers.is_empty() {
                String::new()
            } else {
                format!(", with 035 $z (OCoLC) {}", numbers.join(", "))
            },
            gone.revision + 1,
            self.institution,
            gone.revision
        )?;
        Ok(())
    }

    /// `bibgate record delete`: withdraws a record (a new revision; restorable).
    pub fn delete(&self, mms_id: &MmsId, out: &mut impl Write) -> anyhow::Result<()> {
        let now = now_unix();
        let (current, mut record) = self.changeable(mms_id, now)?;
        record.leader.0[5] = WITHDRAWN;
        self.store.commit(&Commit::Replace {
            expected_revision: current.revision,
            record: StoredRecord {
                marc: encode(&record)?,
                revision: current.revision + 1,
                updated_unix: now,
                keys: Vec::new(),
                ..current.clone()
            },
            replaced_by: self.replaced_by(),
            reason: "withdrawn".to_string(),
        })?;
        writeln!(
            out,
            "record {mms_id} withdrawn (revision {}; `bibgate record restore {mms_id} --institution {} \
             --revision {}` brings it back)",
            current.revision + 1,
            self.institution,
            current.revision
        )?;
        Ok(())
    }

    /// `bibgate record edit`: a new revision from `from` (mrk, ISO 2709 or MARCXML), or
    /// from `$EDITOR` on the record's mrk text while holding the editor lock.
    pub fn edit(
        &self,
        mms_id: &MmsId,
        from: Option<&Path>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let now = now_unix();
        let (current, record) = self.changeable(mms_id, now)?;
        let edited = match from {
            Some(path) => read_record_file(path)?,
            None => self.edit_interactively(mms_id, &record, now)?,
        };
        self.save(&current, edited, out)
    }

    /// The console's edit: a new revision from MarcEdit mnemonic text (`=245  10$a...`),
    /// read as `record edit --from FILE.mrk` reads it.
    pub fn edit_mrk(&self, mms_id: &MmsId, text: &str, out: &mut impl Write) -> anyhow::Result<()> {
        let now = now_unix();
        let (current, _) = self.changeable(mms_id, now)?;
        let edited = parse_mrk(text)?;
        self.save(&current, edited, out)
    }

    /// Opens `$VISUAL` or `$EDITOR` (else `vi`) on the record's mrk text, holding the
    /// editor lock meanwhile (released after, unless it was held before).
    fn edit_interactively(
        &self,
        mms_id: &MmsId,
        record: &Record,
        now: i64,
    ) -> anyhow::Result<Record> {
        let held_before = self
            .store
            .lock(&self.zone, mms_id)?
            .is_some_and(|l| l.institution == self.institution && l.user == self.user);
        if !held_before {
            self.store.put_lock(&bibgate_store::EditorLock {
                zone: self.zone.clone(),
                mms_id: mms_id.clone(),
                institution: self.institution.clone(),
                user: self.user.clone(),
                since_unix: now,
                left_unix: None,
            })?;
        }
        let edited = run_editor(mms_id, record);
        if !held_before {
            self.store.release_lock(&self.zone, mms_id)?;
        }
        edited
    }

    /// Checks the MARCXML verdict and stores the edited record as a new revision.
    fn save(
        &self,
        current: &StoredRecord,
        mut record: Record,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let mms_id = &current.mms_id;
        let verdict = bibgate_marc::check::check_record(&record);
        if !verdict.is_convertible() {
            let problems: Vec<String> = verdict
                .findings
                .iter()
                .filter(|f| f.severity == bibgate_marc::check::Severity::Error)
                .map(|f| f.message.clone())
                .collect();
            bail!(
                "the edited record cannot be converted to MARCXML, nothing was saved: {}",
                problems.join("; ")
            );
        }
        if record.leader.status() == WITHDRAWN {
            bail!("Leader/05 `d` withdraws a record: use `bibgate record delete`");
        }
        let incoming = bibgate_matching::oclc_keys(&record);
        bibgate_import::localize(&mut record, mms_id, &incoming);
        let marc = encode(&record)?;
        if marc == current.marc {
            writeln!(out, "record {mms_id}: no change")?;
            return Ok(());
        }
        let keys = keys_of(&record);
        let brief_level = self
            .rules
            .brief_levels
            .level_of(record.leader.encoding_level())
            .get();
        let now = now_unix();
        self.store.commit(&Commit::Replace {
            expected_revision: current.revision,
            record: StoredRecord {
                marc,
                revision: current.revision + 1,
                brief_level,
                updated_unix: now,
                keys: keys.clone(),
                ..current.clone()
            },
            replaced_by: self.replaced_by(),
            reason: "edit".to_string(),
        })?;
        writeln!(
            out,
            "record {mms_id} saved as revision {} (brief level {brief_level:02}, Leader/17 {:?}); \
             revision {} kept in the history",
            current.revision + 1,
            char::from(record.leader.encoding_level()),
            current.revision
        )?;
        let numbers: Vec<u64> = keys.iter().map(|k| k.number).collect();
        if !numbers.is_empty() {
            let others: BTreeSet<String> = self
                .store
                .find_by_oclc(&self.zone, &numbers)?
                .into_iter()
                .filter(|e| &e.mms_id != mms_id)
                .map(|e| format!("{} (OCLC {})", e.mms_id, e.number))
                .collect();
            if !others.is_empty() {
                eprintln!(
                    "bibgate: other records carry its OCLC numbers too: {}; an export of them \
                     fails as a multi-match until they are merged (`bibgate record merge`)",
                    others.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(())
    }
}

/// A record's OCLC keys, as the index holds them.
pub(super) fn keys_of(record: &Record) -> Vec<IndexKey> {
    bibgate_matching::oclc_keys(record)
        .keys
        .iter()
        .map(|k| IndexKey {
            number: k.number.get(),
            active: k.provenance.is_active(),
        })
        .collect()
}

fn encode(record: &Record) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    bibgate_marc::iso2709::write_record(record, &mut bytes)
        .map_err(|err| anyhow::anyhow!("the record cannot be written as ISO 2709: {err}"))?;
    Ok(bytes)
}

/// Puts `field` after the last field whose tag is not greater than its own.
fn insert_in_tag_order(record: &mut Record, field: Field) {
    let tag = field.tag();
    let position = record
        .fields
        .iter()
        .rposition(|f| f.tag() <= tag)
        .map_or(0, |at| at + 1);
    record.fields.insert(position, field);
}

/// The one record of a file: MarcEdit mnemonic text (`=LDR  …`), ISO 2709 or MARCXML.
fn read_record_file(path: &Path) -> anyhow::Result<Record> {
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("could not open {shown}"))?;
    // A record is at most 99,999 bytes in ISO 2709; MARCXML and mrk are longer, not by this.
    let mut bytes = Vec::new();
    file.take(16 * 1024 * 1024 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("could not read {shown}"))?;
    if bytes.len() > 16 * 1024 * 1024 {
        bail!("{shown} is larger than 16 MiB: not one record");
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .with_context(|| format!("{shown} is empty"))?;
    if bytes[start] == b'=' {
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{shown} is mrk text but not UTF-8"))?;
        return parse_mrk(&text).with_context(|| format!("{shown} is not valid mrk text"));
    }
    let mut source =
        bibgate_marc::Source::sniffed(BufReader::new(&bytes[..]), Mode::Lenient, Charset::Auto)
            .with_context(|| format!("could not read {shown}"))?;
    let first = source
        .next_item()
        .with_context(|| format!("{shown} holds no record"))?;
    if source.next_item().is_some() {
        bail!("{shown} holds more than one record: edit one at a time");
    }
    let parsed = first
        .outcome
        .map_err(|err| anyhow::anyhow!("{shown}: the record cannot be read: {err}"))?;
    Ok(parsed.decoded.record)
}

/// MarcEdit's mnemonic text: `=LDR  …`, `=001  value`, `=245  10$aTitle$bRest`; `\` is a
/// blank in the leader, control fields and indicators, `{dollar}` a `$` in a value.
pub(super) fn parse_mrk(text: &str) -> anyhow::Result<Record> {
    let mut record = Record::default();
    let mut leader_seen = false;
    for (line_idx, line) in text.lines().enumerate() {
        let line_no = line_idx + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let rest = line
            .strip_prefix('=')
            .with_context(|| format!("line {line_no} does not start with `=`"))?;
        let (tag, value) = match (rest.get(..3), rest.get(3..)) {
            (Some(tag), Some(value)) => (tag, value.strip_prefix("  ").unwrap_or(value)),
            _ => bail!("line {line_no} has no tag"),
        };
        let blanks = |text: &str| text.replace('\\', " ");
        if tag == "LDR" {
            let leader = blanks(value);
            let bytes: [u8; 24] = leader
                .as_bytes()
                .try_into()
                .ok()
                .filter(|_| leader.is_ascii())
                .with_context(|| {
                    format!("line {line_no}: the leader is not 24 ASCII characters")
                })?;
            record.leader = bibgate_marc::Leader(bytes);
            leader_seen = true;
            continue;
        }
        let tag_bytes: [u8; 3] = tag
            .as_bytes()
            .try_into()
            .ok()
            .filter(|b: &[u8; 3]| b.iter().all(u8::is_ascii_alphanumeric))
            .with_context(|| format!("line {line_no}: {tag:?} is not a tag"))?;
        if tag.starts_with("00") {
            record.fields.push(Field::Control {
                tag: Tag(tag_bytes),
                value: blanks(value),
            });
            continue;
        }
        let indicator = |c: Option<u8>| match c {
            Some(b'\\') | Some(b' ') => Ok(b' '),
            Some(c) if c.is_ascii_alphanumeric() => Ok(c),
            _ => Err(anyhow::anyhow!("line {line_no}: bad indicators")),
        };
        let bytes = value.as_bytes();
        let (ind1, ind2) = (
            indicator(bytes.first().copied())?,
            indicator(bytes.get(1).copied())?,
        );
        let subfield_text = value
            .get(2..)
            .with_context(|| format!("line {line_no}: bad indicators"))?;
        let body = subfield_text
            .strip_prefix('$')
            .with_context(|| format!("line {line_no}: a data field needs `$` and a code"))?;
        let mut subfields = Vec::new();
        for part in body.split('$') {
            let mut chars = part.chars();
            let code = chars
                .next()
                .filter(char::is_ascii_alphanumeric)
                .with_context(|| format!("line {line_no}: a subfield without a code"))?;
            subfields.push(Subfield {
                code: code as u8,
                value: chars.as_str().replace("{dollar}", "$"),
            });
        }
        record.fields.push(Field::Data {
            tag: Tag(tag_bytes),
            ind1,
            ind2,
            subfields,
        });
    }
    if !leader_seen {
        bail!("no `=LDR` line");
    }
    Ok(record)
}

/// Writes the record's mrk text to a private temporary file, runs the editor on it and
/// reads it back.
fn run_editor(mms_id: &MmsId, record: &Record) -> anyhow::Result<Record> {
    let path = std::env::temp_dir().join(format!(
        "bibgate-edit-{mms_id}-{}-{}.mrk",
        std::process::id(),
        now_unix()
    ));
    let mut text = Vec::new();
    write_record(&mut text, record)?;
    write_private(&path, &text)?;
    let edited = edit_file(&path);
    let _ = std::fs::remove_file(&path);
    let text = edited?;
    parse_mrk(&text).context("the edited text is not valid mrk; nothing was saved")
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("could not write {}", path.display()))
}

fn edit_file(path: &Path) -> anyhow::Result<String> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    // Through the shell, as git does, so that `EDITOR="code --wait"` works.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("bibgate-editor")
        .arg(path)
        .status()
        .with_context(|| format!("could not run the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor {editor:?} failed ({status}); nothing was saved");
    }
    std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrk_round_trips_through_the_writer() {
        let mut record = Record::default();
        record.leader.0[17] = b'M';
        record.push_control("001", "991000");
        record.push_control("008", "240101s2024    ilu           000 0 eng d");
        record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)12")]);
        record.push_data(
            "245",
            b'1',
            b'0',
            &[(b'a', "Costs $5 :"), (b'b', "a title.")],
        );
        let mut text = Vec::new();
        write_record(&mut text, &record).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("=245  10$aCosts {dollar}5 :$ba title."),
            "{text}"
        );
        assert_eq!(parse_mrk(&text).unwrap(), record);
    }

    #[test]
    fn bad_mrk_is_refused_with_its_line() {
        for (text, wanted) in [
            ("=245  10$aNo leader", "no `=LDR`"),
            ("=LDR  short", "24 ASCII"),
            (
                "=LDR  00000nam a2200000 a 4500\nnot a field",
                "line 2 does not start",
            ),
            (
                "=LDR  00000nam a2200000 a 4500\n=245  10 no subfields",
                "line 2: a data field needs",
            ),
            ("=LDR  00000nam a2200000 a 4500\n=2!5  10$ax", "not a tag"),
        ] {
            let err = format!("{:#}", parse_mrk(text).unwrap_err());
            assert!(err.contains(wanted), "{text:?}: {err}");
        }
    }

    #[test]
    fn fields_go_in_tag_order() {
        let mut record = Record::default();
        record.push_control("001", "1");
        record.push_data("035", b' ', b' ', &[(b'a', "(OCoLC)1")]);
        record.push_data("245", b'1', b'0', &[(b'a', "T")]);
        insert_in_tag_order(
            &mut record,
            Field::Data {
                tag: Tag(*b"035"),
                ind1: b' ',
                ind2: b' ',
                subfields: vec![Subfield {
                    code: b'z',
                    value: "(OCoLC)2".into(),
                }],
            },
        );
        let tags: Vec<String> = record.fields.iter().map(|f| f.tag().as_str()).collect();
        assert_eq!(tags, ["001", "035", "035", "245"]);
        assert_eq!(
            record.fields[2].subfield_values(b'z').collect::<Vec<_>>(),
            ["(OCoLC)2"]
        );
    }
}
