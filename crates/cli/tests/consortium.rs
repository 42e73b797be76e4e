//! A consortium as a file, applied on the embedded backend and on DynamoDB + S3 (moto).

use std::path::Path;
use std::process::Command;

use crate::util::{Scratch, bibgate_in, run_ok};

const FILE: &str = r#"
network = { code = "01TEST_NETWORK", name = "Test Network" }

[[institutions]]
code = "01TEST_AAA"
name = "Library A"
connexion = { target_zone = "iz", check_005 = true }

[[institutions]]
code = "01TEST_BBB"
name = "Library B"
connexion = { check_005 = false }

[[institutions]]
code = "01TEST_CCC"
name = "Library C"
numeric_code = 5100
"#;

fn stdout(command: &mut Command) -> String {
    String::from_utf8(run_ok(command).stdout).unwrap()
}

/// apply (creates, one password per profile), apply again (nothing), show (re-applies as
/// nothing), a change, the institution list; `backend` adds the backend options.
fn apply_show_change(dir: &Path, backend: &[String]) {
    let file = dir.join("consortium.toml");
    std::fs::write(&file, FILE).unwrap();
    let command = || {
        let mut command = bibgate_in(&dir.join("data"));
        command.args(backend);
        command
    };
    let dry = stdout(
        command()
            .args(["consortium", "apply"])
            .arg(&file)
            .arg("--dry-run"),
    );
    assert!(dry.contains("dry run: nothing was changed"), "{dry}");
    assert!(!dry.contains("password"), "{dry}");
    let first = stdout(command().args(["consortium", "apply"]).arg(&file));
    assert!(
        first.contains("network zone 01TEST_NETWORK \"Test Network\" (numeric code 1): create"),
        "{first}"
    );
    assert!(
        first.contains("institution 01TEST_CCC \"Library C\" (numeric code 5100): create"),
        "{first}"
    );
    assert_eq!(first.matches("(shown once)").count(), 3, "{first}");
    assert!(
        first.contains("01TEST_AAA-connexion: Connexion logon 01TEST_AAA, password "),
        "{first}"
    );
    let again = stdout(command().args(["consortium", "apply"]).arg(&file));
    assert!(again.contains("nothing to change"), "{again}");
    assert_eq!(again.matches(": unchanged").count(), 7, "{again}");

    let shown = stdout(command().args(["consortium", "show"]));
    let shown_file = dir.join("shown.toml");
    std::fs::write(&shown_file, &shown).unwrap();
    let reapplied = stdout(command().args(["consortium", "apply"]).arg(&shown_file));
    assert!(
        reapplied.contains("nothing to change"),
        "{shown}\n{reapplied}"
    );
    assert!(shown.contains("check_005 = false"), "{shown}");

    std::fs::write(&file, FILE.replace("Library B", "Library Bee")).unwrap();
    let changed = stdout(command().args(["consortium", "apply"]).arg(&file));
    assert!(
        changed.contains("change: name \"Library B\" → \"Library Bee\""),
        "{changed}"
    );
    assert!(!changed.contains("(shown once)"), "{changed}");

    let list = stdout(command().args(["institution", "list"]));
    assert_eq!(
        list.lines().filter(|l| l.starts_with("01TEST_")).count(),
        4,
        "{list}"
    );
    let shown = stdout(command().args(["institution", "show", "01TEST_BBB"]));
    assert!(shown.contains("name: Library Bee"), "{shown}");
    assert!(
        shown.contains(
            "profile 01TEST_BBB-connexion: logon id 01TEST_BBB, target zone iz, check-005 false"
        ),
        "{shown}"
    );

    // The staff commands work on the same backend: an import adds, then merges; the record
    // is found by its OCLC number, shown at any revision and compared; the result is there.
    let record = dir.join("record.mrc");
    let import = |title: &str| {
        std::fs::write(&record, bibgate_test_support::record_bytes(4242, title)).unwrap();
        let mut c = command();
        c.arg("import")
            .arg(&record)
            .args(["--institution", "01TEST_AAA", "--json"]);
        let line = stdout(&mut c);
        serde_json::from_str::<serde_json::Value>(line.trim()).unwrap()
    };
    let added = import("A record.");
    assert_eq!(added["outcome"], "added", "{added}");
    let merged = import("A record, revised.");
    assert_eq!(merged["outcome"], "merged", "{merged}");
    assert_eq!(added["mms_id"], merged["mms_id"]);
    let mms = added["mms_id"].as_str().unwrap();
    let export_id = merged["export_id"].as_str().unwrap();
    let result = stdout(command().args(["result", export_id]));
    assert!(result.contains(mms), "{result}");
    let record_cmd = |args: &[&str]| {
        let mut c = command();
        c.arg("record")
            .args(args)
            .args(["--institution", "01TEST_AAA"]);
        c
    };
    let shown = stdout(&mut record_cmd(&["show", mms]));
    assert!(shown.contains("A record, revised."), "{shown}");
    let found = stdout(&mut record_cmd(&["find", "--oclc", "(OCoLC)4242"]));
    assert!(
        found.starts_with(&format!(
            "{mms}\t01TEST_AAA\tOCLC 4242 active\trevision 2\t"
        )),
        "{found}"
    );
    let none = record_cmd(&["find", "--oclc", "ocm00004243"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    let first = stdout(&mut record_cmd(&[
        "show",
        mms,
        "--revision",
        "1",
        "--format",
        "marcxml",
    ]));
    assert!(
        first.contains("<record") && first.contains("A record.") && !first.contains("revised"),
        "{first}"
    );
    let diff = stdout(&mut record_cmd(&["diff", mms]));
    assert!(diff.contains("revision 1 → revision 2"), "{diff}");
    assert!(diff.contains("- =245  10$aA record."), "{diff}");
    assert!(diff.contains("+ =245  10$aA record, revised."), "{diff}");

    std::fs::write(
        &file,
        "network = { code = \"X\", name = \"X\", colour = \"red\" }\n",
    )
    .unwrap();
    let out = command()
        .args(["consortium", "apply"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("colour"), "{stderr}");
}

#[test]
fn a_consortium_file_on_the_embedded_backend() {
    let scratch = Scratch::new("consortium");
    apply_show_change(scratch.path(), &[]);
}

#[test]
fn a_consortium_file_on_dynamodb_and_s3() {
    let scratch = Scratch::new("consortium-aws");
    let context = bibgate_store_aws::testing::context();
    let store = bibgate_store_aws::testing::fresh_store(&context);
    let bucket = bibgate_store_aws::testing::fresh_bucket(&context);
    apply_show_change(
        scratch.path(),
        &[
            "--backend".into(),
            "aws".into(),
            "--bucket".into(),
            bucket.bucket().into(),
            "--table".into(),
            store.table().into(),
        ],
    );
    // Nothing went to the data directory.
    assert!(!scratch.path().join("data").join("bibgate.sqlite").exists());
}
