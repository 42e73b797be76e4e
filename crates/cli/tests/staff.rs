//! Staff tools end to end, on the embedded backend and on DynamoDB + S3 (moto): an
//! institution's import report (`bibgate results`), each failure with its next steps, and
//! `bibgate result retry` after the cause was resolved.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bibgate_store::Store;
use bibgate_test_support::records::{oclc_record, record_bytes, seed, seed_lock, seed_sharing};

use crate::util::{Scratch, bibgate_in};

const ALPHA: &str = "01DEMO_ALPHA";

/// A data directory or an AWS table and bucket, with the demo consortium, and the store the
/// test seeds states through.
struct Site {
    scratch: Scratch,
    backend: Vec<String>,
    store: Box<dyn Store>,
    /// Keeps the AWS runtime alive for `store`.
    _context: Option<bibgate_store_aws::AwsContext>,
}

impl Site {
    fn local(name: &str) -> Site {
        let scratch = Scratch::new(name);
        let mut site = Site {
            backend: Vec::new(),
            store: Box::new(
                bibgate_store_local::SqliteStore::in_memory().expect("a placeholder store"),
            ),
            _context: None,
            scratch,
        };
        site.init();
        site.store = Box::new(
            bibgate_store_local::SqliteStore::open(&site.data().join("bibgate.sqlite"))
                .expect("the data directory's store opens"),
        );
        site
    }

    fn aws(name: &str) -> Site {
        let scratch = Scratch::new(name);
        let context = bibgate_store_aws::testing::context();
        let store = bibgate_store_aws::testing::fresh_store(&context);
        let bucket = bibgate_store_aws::testing::fresh_bucket(&context);
        let site = Site {
            backend: vec![
                "--backend".into(),
                "aws".into(),
                "--bucket".into(),
                bucket.bucket().into(),
                "--table".into(),
                store.table().into(),
            ],
            store: Box::new(store),
            _context: Some(context),
            scratch,
        };
        site.init();
        site
    }

    fn data(&self) -> PathBuf {
        self.scratch.path().join("data")
    }

    fn init(&self) {
        let out = self
            .bibgate()
            .args(["init", "--password", "secret-for-tests"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    fn bibgate(&self) -> Command {
        let mut command = bibgate_in(&self.data());
        command.args(&self.backend);
        command
    }

    /// Writes `bytes` to a file and imports it for ALPHA; returns the one JSON line.
    fn import(&self, name: &str, bytes: &[u8]) -> (Option<i32>, serde_json::Value) {
        let file = self.scratch.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = self
            .bibgate()
            .args(["import", "--institution", ALPHA, "--json"])
            .arg(&file)
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        let line = stdout.lines().next().unwrap_or_else(|| {
            panic!("import printed nothing: {}", text(&out.stderr));
        });
        (out.status.code(), serde_json::from_str(line).unwrap())
    }

    /// `bibgate results --institution ALPHA ARGS --json`, one value per line.
    fn results(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self
            .bibgate()
            .args(["results", "--institution", ALPHA, "--json"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.bibgate().args(args).output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn str_of<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// NOT_ADDED_LOCKED: reported with its next steps; released; the retry merges into the
/// locked record and names the export it retries; the report lists both, newest first.
fn locked_then_released_and_retried(site: &Site) {
    let record = oclc_record(4_242, b' ', None, "Locked.");
    let mms_id = seed(site.store.as_ref(), ALPHA, &record, &[(4_242, true)]);
    seed_lock(site.store.as_ref(), ALPHA, mms_id.as_str());

    let (code, first) = site.import("locked.mrc", &record_bytes(4_242, "Locked, again."));
    assert_eq!(code, Some(1), "{first}");
    assert_eq!(str_of(&first, "reason_code"), "NOT_ADDED_LOCKED", "{first}");
    let export_id = str_of(&first, "export_id").to_string();

    let failed = site.results(&["--outcome", "failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(str_of(&failed[0], "export_id"), export_id);
    let next = failed[0]["next"].to_string();
    assert!(
        next.contains("bibgate editor list --institution 01DEMO_ALPHA"),
        "{next}"
    );
    assert!(
        next.contains(&format!("bibgate result retry {export_id}")),
        "{next}"
    );

    let out = site.run(&["editor", "release", mms_id.as_str(), "--institution", ALPHA]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Received times are whole seconds: the retry is the newer one a second later.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let out = site.run(&["result", "retry", &export_id]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains("host message: The record has been processed successfully."),
        "{shown}"
    );
    assert!(shown.contains("outcome: merged\n"), "{shown}");
    assert!(shown.contains(&format!("mms id: {mms_id}\n")), "{shown}");
    assert!(
        shown.contains(&format!("retry of: {export_id}\n")),
        "{shown}"
    );

    let all = site.results(&[]);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        str_of(&all[0], "outcome"),
        "merged",
        "newest first: {all:?}"
    );
    assert_eq!(str_of(&all[0], "retry_of"), export_id);
    assert_eq!(all[0]["next"], serde_json::json!([]));
    assert_eq!(str_of(&all[1], "export_id"), export_id);
    let retry_id = str_of(&all[0], "export_id").to_string();
    let out = site.run(&["result", &retry_id]);
    assert!(
        text(&out.stdout).contains(&format!("retry of: {export_id}\n")),
        "{}",
        text(&out.stdout)
    );

    assert_eq!(
        site.results(&["--reason", "not_added_locked"]).len(),
        1,
        "--reason filters (any case)"
    );
    assert_eq!(site.results(&["--outcome", "added"]).len(), 0);
    assert_eq!(site.results(&["--since", "2000-01-01"]).len(), 2);
    assert_eq!(site.results(&["--limit", "1"]).len(), 1);

    let out = site.run(&["results", "--institution", ALPHA, "--csv"]);
    let csv = text(&out.stdout);
    assert!(
        csv.starts_with(
            "received,export_id,outcome,reason_code,mms_id,oclc_numbers,host_message,policy,retry_of,next\n"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let out = site.run(&["results", "--institution", ALPHA]);
    let report = text(&out.stdout);
    assert!(report.contains("    next: "), "{report}");
    assert!(
        report.contains(&format!("    retry of {export_id}")),
        "{report}"
    );
    assert!(text(&out.stderr).contains("2 results of 01DEMO_ALPHA since "));
}

/// MULTI_MATCH: the next steps name the records that carry the number now and the merge.
fn multi_match_names_the_records_to_merge(site: &Site) {
    let (a, b) = seed_sharing(site.store.as_ref(), ALPHA, 5_550, 5_551);
    let (code, first) = site.import("multi.mrc", &record_bytes(5_550, "Shared."));
    assert_eq!(code, Some(1), "{first}");
    assert_eq!(str_of(&first, "reason_code"), "MULTI_MATCH", "{first}");
    let failed = site.results(&["--reason", "MULTI_MATCH"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let next = failed[0]["next"].to_string();
    assert!(
        next.contains("bibgate record find --institution 01DEMO_ALPHA --oclc 5550"),
        "{next}"
    );
    assert!(
        next.contains(&format!(
            "bibgate record merge --keep {a} --from {b} --institution 01DEMO_ALPHA"
        )),
        "{next}"
    );
}

/// MULTI_MATCH resolved: the merge is refused while a record is locked by someone else;
/// merged, the export of the number goes into the kept record; the withdrawn one is kept
/// in the history and restorable.
fn multi_match_merged_then_exported_again(site: &Site) {
    let (a, b) = seed_sharing(site.store.as_ref(), ALPHA, 6_660, 6_661);
    let bytes = record_bytes(6_660, "Shared again.");
    let (code, first) = site.import("multi-again.mrc", &bytes);
    assert_eq!(code, Some(1), "{first}");
    assert_eq!(str_of(&first, "reason_code"), "MULTI_MATCH", "{first}");

    let merge = [
        "record",
        "merge",
        "--keep",
        a.as_str(),
        "--from",
        b.as_str(),
        "--institution",
        ALPHA,
    ];
    seed_lock(site.store.as_ref(), ALPHA, b.as_str());
    let out = site.run(&merge);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is locked in the metadata editor by 01DEMO_ALPHA (jdoe)"),
        "{stderr}"
    );
    assert!(site.store.release_lock(ALPHA, &b).unwrap());

    let out = site.run(&merge);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains(&format!("record {b} merged into {a}")),
        "{said}"
    );
    assert!(said.contains("035 $z (OCoLC) 6661"), "{said}");

    // The index moved in the same write: both numbers name the kept record only.
    let found = text(
        &site
            .run(&[
                "record",
                "find",
                "--institution",
                ALPHA,
                "--oclc",
                "6661",
                "--json",
            ])
            .stdout,
    );
    assert_eq!(found.lines().count(), 1, "{found}");
    assert!(found.contains(&format!("\"mms_id\":\"{a}\"")), "{found}");
    assert!(found.contains("\"active\":false"), "{found}");
    let shown = text(
        &site
            .run(&["record", "show", b.as_str(), "--institution", ALPHA])
            .stdout,
    );
    assert!(
        shown.contains("revision 2") && shown.contains("(withdrawn)"),
        "{shown}"
    );
    let out = site.run(&[
        "record",
        "merge",
        "--keep",
        a.as_str(),
        "--from",
        b.as_str(),
        "--institution",
        ALPHA,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a withdrawn record is not merged again"
    );

    let (code, again) = site.import("multi-again-2.mrc", &bytes);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(
        str_of(&again, "host_message"),
        format!("The record has been processed successfully. MMS ID: {a}")
    );
    assert_eq!(str_of(&again, "mms_id"), a.as_str());
    // The first export, retried, goes the same way.
    let out = site.run(&["result", "retry", str_of(&first, "export_id")]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(&format!("mms id: {a}\n")));

    // Withdrawn is restorable.
    let out = site.run(&[
        "record",
        "restore",
        b.as_str(),
        "--institution",
        ALPHA,
        "--revision",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(
        &site
            .run(&["record", "show", b.as_str(), "--institution", ALPHA])
            .stdout,
    );
    assert!(!shown.contains("(withdrawn)"), "{shown}");
}

/// NOT_ADDED_BRIEF resolved: the match's Leader/17 set like the incoming record's in
/// `$EDITOR` (holding the lock meanwhile); the export then merges. An edit that cannot
/// become MARCXML is refused; an edit from a file; delete and restore.
fn brief_edited_then_exported_again(site: &Site) {
    let full = oclc_record(7_070, b' ', None, "Full.");
    let mms_id = seed(site.store.as_ref(), ALPHA, &full, &[(7_070, true)]);
    let brief = bibgate_test_support::records::encode(&oclc_record(
        7_070,
        b'3',
        Some("20240101120000.0"),
        "Brief.",
    ));
    let (code, first) = site.import("brief.mrc", &brief);
    assert_eq!(code, Some(1), "{first}");
    assert_eq!(str_of(&first, "reason_code"), "NOT_ADDED_BRIEF", "{first}");
    let next = site.results(&["--reason", "NOT_ADDED_BRIEF"])[0]["next"].to_string();
    assert!(
        next.contains("bibgate record edit MMS_ID --institution 01DEMO_ALPHA"),
        "{next}"
    );

    // The editor: a script that sets Leader/17 to `3` and notes whether the lock is held.
    let script = site.scratch.path().join("set-ldr17.sh");
    let seen_lock = site.scratch.path().join("seen-lock.txt");
    let mut lock_check = site.bibgate();
    lock_check.args([
        "record",
        "edit",
        mms_id.as_str(),
        "--institution",
        ALPHA,
        "--user",
        "other",
        "--from",
        "/nonexistent.mrk",
    ]);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsed -i '1s/^\\(=LDR  .\\{{17\\}}\\)./\\13/' \"$1\"\n{} >{} 2>&1 || true\n",
            shell_words(&lock_check),
            seen_lock.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = site
        .bibgate()
        .args([
            "record",
            "edit",
            mms_id.as_str(),
            "--institution",
            ALPHA,
            "--user",
            "cat",
        ])
        .env("EDITOR", &script)
        .env_remove("VISUAL")
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("saved as revision 2 (brief level 03, Leader/17 '3')"),
        "{said}"
    );
    let shown = site.run(&["record", "show", mms_id.as_str(), "--institution", ALPHA]);
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("revision 2, brief level 03 (Leader/17 \"3\")"),
        "{shown}"
    );
    let seen = std::fs::read_to_string(&seen_lock).unwrap();
    assert!(
        seen.contains("locked in the metadata editor by 01DEMO_ALPHA (cat)"),
        "{seen}"
    );
    assert_eq!(
        site.store.lock(ALPHA, &mms_id).unwrap(),
        None,
        "released after"
    );

    let (code, again) = site.import("brief-2.mrc", &brief);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(
        str_of(&again, "host_message"),
        format!("The record has been processed successfully. MMS ID: {mms_id}")
    );

    // From a file: a field too long for MARCXML is refused, nothing saved.
    let mrk = text(
        &site
            .run(&[
                "record",
                "show",
                mms_id.as_str(),
                "--institution",
                ALPHA,
                "--format",
                "mrk",
            ])
            .stdout,
    );
    let revision = site.store.record(ALPHA, &mms_id).unwrap().unwrap().revision;
    let long = site.scratch.path().join("long.mrk");
    std::fs::write(&long, format!("{mrk}=500  \\\\$a{}\n", "x".repeat(10_000))).unwrap();
    let out = site.run(&[
        "record",
        "edit",
        mms_id.as_str(),
        "--institution",
        ALPHA,
        "--from",
        &long.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be converted to MARCXML"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        site.store.record(ALPHA, &mms_id).unwrap().unwrap().revision,
        revision
    );
    let note = site.scratch.path().join("note.mrk");
    std::fs::write(&note, format!("{mrk}=500  \\\\$aA note.\n")).unwrap();
    let out = site.run(&[
        "record",
        "edit",
        mms_id.as_str(),
        "--institution",
        ALPHA,
        "--from",
        &note.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let diff = text(
        &site
            .run(&["record", "diff", mms_id.as_str(), "--institution", ALPHA])
            .stdout,
    );
    assert!(diff.contains("+ =500  \\\\$aA note."), "{diff}");

    // Delete withdraws: no export finds it; restore brings it back.
    let out = site.run(&["record", "delete", mms_id.as_str(), "--institution", ALPHA]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = site.run(&["record", "find", "--institution", ALPHA, "--oclc", "7070"]);
    assert_eq!(out.status.code(), Some(1));
    let out = site.run(&[
        "record",
        "restore",
        mms_id.as_str(),
        "--institution",
        ALPHA,
        "--revision",
        &(revision + 1).to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = site.run(&["record", "find", "--institution", ALPHA, "--oclc", "7070"]);
    assert_eq!(out.status.code(), Some(0));
}

/// `record find --isbn|--title` finds an imported record; `record list` pages through the
/// zone.
fn find_by_isbn_and_title_and_list(site: &Site) {
    let mut record = oclc_record(
        8_080,
        b' ',
        Some("20240101120000.0"),
        "The Searchable history :",
    );
    record.push_data("020", b' ', b' ', &[(b'a', "0-306-40615-2 (pbk.)")]);
    let (code, imported) = site.import("isbn.mrc", &bibgate_test_support::records::encode(&record));
    assert_eq!(code, Some(0), "{imported}");
    let mms_id = str_of(&imported, "mms_id").to_string();
    let find = |args: &[&str]| {
        let mut all = vec!["record", "find", "--institution", ALPHA, "--json"];
        all.extend_from_slice(args);
        site.run(&all)
    };
    for args in [
        &["--isbn", "9780306406157"][..],
        &["--isbn", "0306406152"][..],
        &["--title", "HISTORY searchable"][..],
    ] {
        let out = find(args);
        let found = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(found.lines().count(), 1, "{args:?}: {found}");
        assert!(
            found.contains(&format!("\"mms_id\":\"{mms_id}\"")),
            "{found}"
        );
    }
    assert_eq!(
        find(&["--title", "history of nothing"]).status.code(),
        Some(1)
    );
    assert_eq!(find(&["--isbn", "12"]).status.code(), Some(2));
    assert_eq!(
        find(&[]).status.code(),
        Some(2),
        "one of --oclc, --isbn, --title"
    );

    let list = |args: &[&str]| {
        let mut all = vec!["record", "list", "--institution", ALPHA, "--json"];
        all.extend_from_slice(args);
        let out = site.run(&all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let ids: Vec<String> = text(&out.stdout)
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                str_of(&value, "mms_id").to_string()
            })
            .collect();
        (ids, text(&out.stderr))
    };
    let (everything, _) = list(&["--limit", "1000"]);
    assert!(everything.contains(&mms_id), "{everything:?}");
    let (first, said) = list(&["--limit", "2"]);
    assert_eq!(first.len(), 2);
    assert!(said.contains(&format!("--after {}", first[1])), "{said}");
    let (rest, _) = list(&["--after", &first[1], "--limit", "1000"]);
    let paged: Vec<String> = first.into_iter().chain(rest).collect();
    assert_eq!(paged, everything);
}

/// A command as one shell line (its arguments have no quotes).
fn shell_words(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(
        command
            .get_args()
            .map(|a| format!("'{}'", a.to_string_lossy())),
    );
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.insert(
                0,
                format!("{}='{}'", key.to_string_lossy(), value.to_string_lossy()),
            );
        }
    }
    words.join(" ")
}

fn unknown_institution_and_bad_since(site: &Site) {
    let out = site.run(&["results", "--institution", "01NOPE"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("01NOPE"),
        "{}",
        text(&out.stderr)
    );
    let out = site.run(&["results", "--institution", ALPHA, "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("yesterday"));
    // A record of a MARCXML file has no bytes of its own to import again.
    let xml = "<?xml version=\"1.0\"?><collection xmlns=\"http://www.loc.gov/MARC21/slim\">\
        <record><leader>00000nam a2200000 a 4500</leader>\
        <controlfield tag=\"001\">ocm00009090</controlfield>\
        <controlfield tag=\"003\">OCoLC</controlfield>\
        <datafield tag=\"035\" ind1=\" \" ind2=\" \"><subfield code=\"a\">(OCoLC)9090</subfield></datafield>\
        <datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">XML.</subfield></datafield>\
        </record></collection>";
    let (code, imported) = site.import("record.xml", xml.as_bytes());
    assert_eq!(code, Some(0), "{imported}");
    let out = site.run(&["result", "retry", str_of(&imported, "export_id")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("MARCXML file"),
        "{}",
        text(&out.stderr)
    );
    let out = site.run(&["result", "retry", "no-such-export"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no result for export no-such-export"));
}

fn all(site: &Site) {
    locked_then_released_and_retried(site);
    multi_match_names_the_records_to_merge(site);
    multi_match_merged_then_exported_again(site);
    brief_edited_then_exported_again(site);
    find_by_isbn_and_title_and_list(site);
    unknown_institution_and_bad_since(site);
}

#[test]
fn staff_tools_on_the_embedded_backend() {
    all(&Site::local("staff"));
}

#[test]
fn staff_tools_on_dynamodb_and_s3() {
    let site = Site::aws("staff-aws");
    all(&site);
    assert!(!Path::new(&site.data().join("bibgate.sqlite")).exists());
}
