//! The tour's steps: one per CARLI outcome, then a drop file.

use super::*;

/// The tour: what it talks to, where it prints, and what it found.
pub(super) struct Tour<'a> {
    pub(super) runtime: &'a Runtime,
    pub(super) addr: String,
    pub(super) store: Arc<dyn Store>,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) services: Services,
    pub(super) dir: PathBuf,
    /// The data directory as a shell word, for the commands printed.
    pub(super) dir_arg: String,
    /// The password of ALPHA's Connexion profile.
    pub(super) password: String,
    /// ALPHA's Connexion profile id.
    pub(super) profile: String,
    pub(super) out: std::io::StdoutLock<'static>,
    pub(super) step: usize,
    pub(super) exports: usize,
    /// The steps that got another answer than expected, each with what it got.
    pub(super) unexpected: Vec<(usize, String)>,
    pub(super) explore: Explore,
}

impl Tour<'_> {
    pub(super) fn all_steps(&mut self) -> anyhow::Result<()> {
        let les_miserables = self.add_and_merge()?;
        self.multi_match()?;
        self.not_added_brief()?;
        self.not_added_locked()?;
        self.not_added_old()?;
        self.failed_conversion()?;
        self.wrong_password()?;
        self.unknown_institution()?;
        self.drop_file(les_miserables)?;
        Ok(())
    }

    pub(super) fn introduce(
        &mut self,
        why_temporary: Option<&str>,
        created: &[(String, String)],
        addr: &str,
    ) -> anyhow::Result<()> {
        let out = &mut self.out;
        writeln!(
            out,
            "Bibgate demo: what a Connexion client is told for each outcome, through the real protocol."
        )?;
        writeln!(out)?;
        match why_temporary {
            Some(why) => writeln!(
                out,
                "Data directory: {} (a new temporary folder, kept; {why})",
                self.dir.display()
            )?,
            None => writeln!(out, "Data directory: {}", self.dir.display())?,
        }
        writeln!(
            out,
            "  demo consortium: network zone {}, institutions {}",
            data::DEMO_NETWORK,
            data::DEMO_INSTITUTIONS.join(", ")
        )?;
        for (code, password) in created {
            writeln!(out, "  Connexion logon {code}, password {password}")?;
        }
        writeln!(
            out,
            "Gateway: listening on {addr}, the processor behind it in this process; exports log on as {ALPHA}."
        )?;
        out.flush()?;
        Ok(())
    }

    /// Starts step `n` with its title.
    pub(super) fn begin(&mut self, title: &str) -> std::io::Result<()> {
        self.step += 1;
        writeln!(self.out)?;
        writeln!(self.out, "{}. {title}", self.step)?;
        self.out.flush()
    }

    /// One labelled line of a step.
    pub(super) fn say(&mut self, label: &str, text: &str) -> std::io::Result<()> {
        let text = text.replace('\n', &format!("\n   {:<9} ", ""));
        writeln!(self.out, "   {label:<9} {text}")?;
        self.out.flush()
    }

    /// Exports `book` as ALPHA and checks the reply; prints both.
    pub(super) fn export(
        &mut self,
        book: &Book,
        charset: Charset,
        expect: Expect<'_>,
    ) -> anyhow::Result<String> {
        let password = self.password.clone();
        self.export_as(book, charset, ALPHA, &password, expect)
    }

    /// Exports `book` with this logon and checks the reply; prints both.
    pub(super) fn export_as(
        &mut self,
        book: &Book,
        charset: Charset,
        logon: &str,
        password: &str,
        expect: Expect<'_>,
    ) -> anyhow::Result<String> {
        let bytes = book.bytes(charset)?;
        self.say("sent", &book.describe(charset))?;
        self.exports += 1;
        let reply = self
            .runtime
            .block_on(bibgate_gateway::send(
                &self.addr,
                logon,
                password,
                &bytes,
                LengthEncoding::Byte,
                EXPORT_TIMEOUT,
            ))
            .with_context(|| format!("export {} to the demo gateway failed", self.exports))?;
        self.say("received", &reply)?;
        if !expect.accepts(&reply) {
            self.say("!!", &format!("expected {}", expect.describe()))?;
            self.unexpected.push((
                self.step,
                format!("expected {}, got {reply:?}", expect.describe()),
            ));
        }
        Ok(reply)
    }

    /// Notes a step whose check failed for another reason than a reply.
    pub(super) fn note_unexpected(&mut self, what: String) -> std::io::Result<()> {
        self.say("!!", &what)?;
        self.unexpected.push((self.step, what));
        Ok(())
    }

    /// A `bibgate` command line with `--data-dir`.
    pub(super) fn command(&self, args: &str) -> String {
        format!("bibgate {args} --data-dir {}", self.dir_arg)
    }

    /// The export ids received from ALPHA so far.
    pub(super) fn received_exports(&self) -> anyhow::Result<BTreeSet<String>> {
        let prefix = format!("received/{ALPHA}/");
        Ok(self
            .blobs
            .list(&prefix)?
            .into_iter()
            .filter_map(|key| {
                key.strip_prefix(&prefix)?
                    .strip_suffix(".mrc")
                    .map(str::to_string)
            })
            .collect())
    }

    /// Steps 1 and 2: a MARC-8 record is added, then its UTF-8 update merged into it.
    /// Returns the MMS ID.
    pub(super) fn add_and_merge(&mut self) -> anyhow::Result<Option<String>> {
        self.begin(
            "Add: a record the zone does not have yet (MARC-8, the Connexion client's default)",
        )?;
        let first = les_miserables();
        let reply = self.export(&first, Charset::Marc8, Expect::Added)?;
        let mms_id = mms_id_of(&reply).map(str::to_string);
        self.say(
            "",
            "a new record; every export's bytes are kept as received, under blobs/received/",
        )?;

        self.begin("Merge: the same OCLC number again, exported as UTF-8 with a newer 005")?;
        let update = les_miserables_revised();
        let reply = self.export(
            &update,
            Charset::Utf8,
            Expect::MergedInto(mms_id.as_deref()),
        )?;
        if let Some(mms_id) = mms_id_of(&reply) {
            let revision = self
                .store
                .record(ALPHA, &MmsId(mms_id.to_string()))?
                .map(|record| record.revision);
            self.say(
                "",
                &format!(
                    "merged into the same record (now revision {}); the version before is kept",
                    revision.map_or("?".to_string(), |r| r.to_string())
                ),
            )?;
            self.say(
                "see",
                &self.command(&format!("record history {mms_id} --institution {ALPHA}")),
            )?;
        }
        self.explore.merged = mms_id.clone();
        Ok(mms_id)
    }

    /// Step 3: WorldCat merged two records the zone holds separately.
    pub(super) fn multi_match(&mut self) -> anyhow::Result<()> {
        self.begin("Multi-match: the incoming record matches two records of the zone")?;
        let older = cien_anos_1967();
        let newer = cien_anos_duplicate();
        let first = self.export(&older, Charset::Utf8, Expect::Added)?;
        let second = self.export(&newer, Charset::Utf8, Expect::Added)?;
        let survivor = cien_anos_merged();
        self.say(
            "",
            &format!(
                "WorldCat then merged record {} into {}: the survivor lists {} in 019 $a",
                newer.oclc, older.oclc, newer.oclc
            ),
        )?;
        let before = self.received_exports()?;
        self.export(
            &survivor,
            Charset::Utf8,
            Expect::StartsWith(messages::MULTI_MATCH),
        )?;
        self.explore.multi_match_export =
            self.received_exports()?.difference(&before).next().cloned();
        let (first, second) = (
            mms_id_of(&first).unwrap_or("MMS_ID"),
            mms_id_of(&second).unwrap_or("MMS_ID"),
        );
        self.say(
            "resolve",
            &format!(
                "no one command: merge the two records ({first} and {second}) in the zone, then export again"
            ),
        )?;
        Ok(())
    }

    /// Step 4: a minimal-level record for a number the zone holds at full level.
    pub(super) fn not_added_brief(&mut self) -> anyhow::Result<()> {
        self.begin("NOT_ADDED_BRIEF: a briefer record may not overlay a fuller one")?;
        let full = faust();
        self.export(&full, Charset::Marc8, Expect::Added)?;
        let brief = faust_minimal();
        self.export(
            &brief,
            Charset::Utf8,
            Expect::StartsWith(messages::NOT_ADDED_BRIEF),
        )?;
        self.say(
            "resolve",
            &self.command(&format!(
                "profile set {} check-brief-level false",
                self.profile
            )),
        )?;
        self.say(
            "",
            "lets briefer records overlay fuller ones; usually the fuller record is kept instead",
        )?;
        Ok(())
    }

    /// Step 5: the match is open in the metadata editor; released, the export merges.
    pub(super) fn not_added_locked(&mut self) -> anyhow::Result<()> {
        self.begin("NOT_ADDED_LOCKED: the match is open in the metadata editor")?;
        let first = pan();
        let reply = self.export(&first, Charset::Utf8, Expect::Added)?;
        let Some(mms_id) = mms_id_of(&reply).map(str::to_string) else {
            return self
                .note_unexpected("no record to lock: the add failed".into())
                .map_err(Into::into);
        };
        let store = self.store.clone();
        let store: &dyn Store = &*store;
        let mut said = Vec::new();
        crate::cmd::editor::editor(
            store,
            crate::cmd::editor::EditorAction::Open,
            ALPHA,
            &MmsId(mms_id.clone()),
            ALPHA,
            CATALOGUER,
            &mut said,
        )?;
        self.say(
            "editor",
            &self.command(&format!("editor open {mms_id} --institution {ALPHA}")),
        )?;
        self.say("", String::from_utf8_lossy(&said).trim())?;
        let update = pan_revised();
        self.export(
            &update,
            Charset::Utf8,
            Expect::StartsWith(messages::NOT_ADDED_LOCKED),
        )?;
        let release = self.command(&format!("editor release {mms_id} --institution {ALPHA}"));
        self.say("resolve", &release)?;
        let mut said = Vec::new();
        crate::cmd::editor::editor(
            store,
            crate::cmd::editor::EditorAction::Release,
            ALPHA,
            &MmsId(mms_id.clone()),
            ALPHA,
            CATALOGUER,
            &mut said,
        )?;
        self.say(
            "",
            &format!(
                "done: {}; the same export again:",
                String::from_utf8_lossy(&said).trim()
            ),
        )?;
        self.export(&update, Charset::Utf8, Expect::MergedInto(Some(&mms_id)))?;
        Ok(())
    }

    /// Step 6: an older copy of a record; the profile's 005 check switched off, it merges.
    pub(super) fn not_added_old(&mut self) -> anyhow::Result<()> {
        self.begin("NOT_ADDED_OLD: the incoming 005 is older than the version last imported")?;
        let current = middlemarch();
        let reply = self.export(&current, Charset::Utf8, Expect::Added)?;
        let mms_id = mms_id_of(&reply).map(str::to_string);
        let old = middlemarch_saved_in_2019();
        self.say(
            "",
            "then a copy saved in a Connexion local file in 2019 is exported:",
        )?;
        self.export(
            &old,
            Charset::Utf8,
            Expect::StartsWith(messages::NOT_ADDED_OLD),
        )?;
        let switch_off = self.command(&format!("profile set {} check-005 false", self.profile));
        self.say("resolve", &switch_off)?;
        let store = self.store.clone();
        let store: &dyn Store = &*store;
        crate::cmd::profile::profile_set(store, &self.profile, "check-005", "false")?;
        self.say("", "done; the same export again:")?;
        self.export(&old, Charset::Utf8, Expect::MergedInto(mms_id.as_deref()))?;
        crate::cmd::profile::profile_set(store, &self.profile, "check-005", "true")?;
        self.say("", "check-005 is back on, as `bibgate init` sets it")?;
        self.say(
            "or",
            "per institution, with the profile left as it is: the no-005-check merge policy. It needs",
        )?;
        self.say(
            "",
            "the wasm target (`rustup target add wasm32-unknown-unknown`); from the checkout:",
        )?;
        self.say(
            "",
            &self.command("policy publish plugins/policies/no-005-check"),
        )?;
        self.say(
            "",
            &self.command(&format!(
                "policy activate no-005-check --institution {ALPHA}"
            )),
        )?;
        Ok(())
    }

    /// Step 7: a MARC-8 record whose 505 outgrows 9,999 bytes in UTF-8.
    pub(super) fn failed_conversion(&mut self) -> anyhow::Result<()> {
        self.begin("Failed MARCXML conversion: a field too long for MARC once in UTF-8")?;
        let book = kierkegaard_skrifter()?;
        let note = book
            .fields
            .iter()
            .find(|field| field.tag == "505")
            .context("the demo record has no 505")?;
        self.say(
            "",
            &format!(
                "its contents note (505) is {} bytes as exported in MARC-8 and {} bytes in UTF-8",
                thousands(note.marc8_len()?),
                thousands(note.utf8_len())
            ),
        )?;
        self.export(
            &book,
            Charset::Marc8,
            Expect::StartsWith(messages::CONVERSION_FAILED),
        )?;
        self.say(
            "resolve",
            "no one command: shorten or split the field in Connexion, then export again",
        )?;
        Ok(())
    }

    /// Step 8: the password is not the profile's.
    pub(super) fn wrong_password(&mut self) -> anyhow::Result<()> {
        self.begin("Logon failed: the Gateway Export's password is not the profile's")?;
        let expected = bibgate_import::Error::LogonFailed.to_string();
        self.say(
            "logon",
            &format!("{ALPHA} with a password that is not the profile's"),
        )?;
        self.export_as(
            &middlemarch(),
            Charset::Utf8,
            ALPHA,
            "not-the-password",
            Expect::Exactly(&expected),
        )?;
        self.say(
            "resolve",
            &self.command(&format!("profile set {} --password NEW", self.profile)),
        )?;
        self.say(
            "",
            "and the same password in the Connexion client's Gateway Export",
        )?;
        Ok(())
    }

    /// Step 9: a logon id with no institution (or no single Connexion profile) behind it.
    pub(super) fn unknown_institution(&mut self) -> anyhow::Result<()> {
        self.begin(
            "No integration profile: the Logon ID names no institution with a Connexion profile",
        )?;
        let expected = bibgate_import::Error::NoProfile(UNKNOWN.into()).to_string();
        let password = self.password.clone();
        self.say("logon", &format!("{UNKNOWN} (with {ALPHA}'s password)"))?;
        self.export_as(
            &middlemarch(),
            Charset::Utf8,
            UNKNOWN,
            &password,
            Expect::Exactly(&expected),
        )?;
        self.say("resolve", &self.command("profile list"))?;
        self.say(
            "",
            "lists the profiles; the Logon ID must be the institution code of one of them",
        )?;
        self.say(
            "",
            "Alma answers the same when an institution has two Connexion profiles: `bibgate profile delete ID`",
        )?;
        Ok(())
    }

    /// Step 10: a file of four records in the drop folder, and its report.
    pub(super) fn drop_file(&mut self, les_miserables: Option<String>) -> anyhow::Result<()> {
        self.begin("Drop folder: staff copy a file of records; the processor imports it")?;
        bibgate_inbox::ensure_drop_folders(&self.services)
            .context("could not create the drop folders")?;
        let records = [
            (kristin_lavransdatter(), Charset::Utf8, "a new record"),
            (gosta_berling(), Charset::Marc8, "a new record"),
            (
                les_miserables_third(),
                Charset::Utf8,
                "merges into step 1's record",
            ),
            (
                cien_anos_merged(),
                Charset::Utf8,
                "step 3's multi-match, still unresolved",
            ),
        ];
        let mut file = Vec::new();
        for (book, charset, what) in &records {
            file.extend(book.bytes(*charset)?);
            self.say("record", &format!("{}: {what}", book.describe(*charset)))?;
        }
        let folder = self.dir.join("blobs").join("drop").join(ALPHA);
        let path = folder.join(DROP_FILE);
        std::fs::write(&path, &file)
            .with_context(|| format!("could not write {:?}", path.display().to_string()))?;
        self.say(
            "copied",
            &format!(
                "{} ({}); it is imported once unchanged for 2 s",
                path.display(),
                crate::cmd::count(records.len(), "record")
            ),
        )?;
        let report_key = format!("reports/{ALPHA}/{DROP_FILE}.results.jsonl");
        let drop_key = format!("drop/{ALPHA}/{DROP_FILE}");
        let waited = Instant::now();
        let report = loop {
            let report = self.blobs.get(&report_key)?;
            let taken = !self
                .blobs
                .list(&format!("drop/{ALPHA}/"))?
                .contains(&drop_key);
            if let Some(report) = report.filter(|_| taken) {
                break Some(report);
            }
            if waited.elapsed() > DROP_TIMEOUT {
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let Some(report) = report else {
            return self
                .note_unexpected(format!(
                    "no report for the drop file within {} s",
                    DROP_TIMEOUT.as_secs()
                ))
                .map_err(Into::into);
        };
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut reasons = Vec::new();
        let mut merged_into = None;
        for line in String::from_utf8_lossy(&report).lines() {
            let value: serde_json::Value = serde_json::from_str(line).with_context(|| {
                format!("the drop file's report holds a line that is not JSON: {line:?}")
            })?;
            let outcome = value["outcome"].as_str().unwrap_or("unknown").to_string();
            if outcome == "failed" {
                reasons.push(
                    value["reason_code"]
                        .as_str()
                        .unwrap_or("unknown")
                        .to_string(),
                );
            }
            if outcome == "merged" {
                merged_into = value["mms_id"].as_str().map(str::to_string);
            }
            *outcomes.entry(outcome).or_default() += 1;
        }
        let counts = ["added", "merged", "failed"]
            .iter()
            .map(|outcome| format!("{} {outcome}", outcomes.get(*outcome).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ");
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        };
        self.say(
            "report",
            &format!(
                "{}: {counts}{reasons}",
                self.dir.join("blobs").join(&report_key).display()
            ),
        )?;
        self.say(
            "",
            &format!(
                "one JSON line per record; the failed one's bytes are in {DROP_FILE}.rejected.mrc beside it,"
            ),
        )?;
        self.say(
            "",
            &format!("and the file itself moved to blobs/received/drop/{ALPHA}/"),
        )?;
        let expected = [("added", 2), ("merged", 1), ("failed", 1)];
        let as_expected = expected
            .iter()
            .all(|(outcome, n)| outcomes.get(*outcome).copied().unwrap_or(0) == *n)
            && outcomes.values().sum::<usize>() == records.len()
            && (les_miserables.is_none() || merged_into == les_miserables);
        if !as_expected {
            self.note_unexpected(format!(
                "expected 2 added, 1 merged (into step 1's record), 1 failed; the report says {counts}{reasons}"
            ))?;
        }
        Ok(())
    }

    pub(super) fn conclude(&mut self, elapsed: Duration) -> anyhow::Result<()> {
        let good = self.step - failed_steps(&self.unexpected).min(self.step);
        writeln!(self.out)?;
        writeln!(
            self.out,
            "{good} of {} steps got the expected answer ({} exports and a drop file, {:.1} s).",
            self.step,
            self.exports,
            elapsed.as_secs_f64()
        )?;
        writeln!(self.out)?;
        writeln!(
            self.out,
            "Explore what the demo left in {} (in the checkout, `cargo run -p bibgate-cli --` runs `bibgate`):",
            self.dir.display()
        )?;
        let mut lines: Vec<(String, &str)> = Vec::new();
        if let Some(mms_id) = self.explore.merged.clone() {
            lines.push((
                self.command(&format!("record show {mms_id} --institution {ALPHA}")),
                "a record as stored, merged twice",
            ));
            lines.push((
                self.command(&format!("record history {mms_id} --institution {ALPHA}")),
                "its prior versions",
            ));
        }
        if let Some(export_id) = self.explore.multi_match_export.clone() {
            lines.push((
                self.command(&format!("result {export_id}")),
                "one export's result: host message, outcome, trace",
            ));
        }
        lines.push((
            self.command(&format!("profile show {}", self.profile)),
            "the Connexion profile's settings",
        ));
        lines.push((
            self.command("serve --listen 127.0.0.1:5500"),
            "this gateway again, for a Connexion client",
        ));
        lines.push((
            format!(
                "bibgate send {} --host 127.0.0.1 --port 5500 --logon {ALPHA} --password {}",
                shell_word(
                    &self
                        .dir
                        .join("blobs/received/drop")
                        .join(ALPHA)
                        .join(DROP_FILE)
                        .display()
                        .to_string()
                ),
                self.password
            ),
            "(with serve running) the drop file again, one export per record",
        ));
        for (command, what) in lines {
            writeln!(self.out, "  {command}")?;
            writeln!(self.out, "      {what}")?;
        }
        self.out.flush()?;
        Ok(())
    }
}
