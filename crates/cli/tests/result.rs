//! `bibgate result`, end to end: the stored result of an imported record, and the exit
//! codes for an unknown export and a missing store.

use crate::util::{Scratch, bibgate_in, corpus, run_ok};

#[test]
fn result_prints_the_stored_result_of_an_imported_record() {
    let dir = Scratch::new("result-imported");
    let out = run_ok(
        bibgate_in(dir.path())
            .args(["import", "--institution", "01DEMO_ALPHA", "--json"])
            .arg(corpus("folio-integration-tests/FAT-1204.mrc")),
    );
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let export_id = first["export_id"].as_str().unwrap();
    let mms_id = first["mms_id"].as_str().unwrap();

    let out = bibgate_in(dir.path())
        .args(["result", export_id])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("export: {export_id}\n")), "{text}");
    assert!(
        text.contains(&format!(
            "host message: {}\n",
            first["host_message"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "outcome: {}\n",
            first["outcome"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "reason code: {}\n",
            first["reason_code"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains(&format!("mms id: {mms_id}\n")), "{text}");
    let numbers: Vec<String> = first["oclc_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap().to_string())
        .collect();
    assert!(!numbers.is_empty());
    assert!(
        text.contains(&format!("oclc numbers: {}\n", numbers.join(", "))),
        "{text}"
    );
    assert!(text.contains("\nreceived: "), "{text}");
    assert!(text.contains(" UTC\ndecided: "), "{text}");
    assert!(text.contains("\ntrace:\n  "), "{text}");
}

#[test]
fn result_of_an_unknown_export_exits_1() {
    let dir = Scratch::new("result-unknown");
    run_ok(bibgate_in(dir.path()).args(["init", "--password", "secret-for-tests"]));
    let out = bibgate_in(dir.path())
        .args(["result", "01DEMO_ALPHA-1717243200123-abcd-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "no result for export 01DEMO_ALPHA-1717243200123-abcd-1 yet: it may still be processing"
        ),
        "{stderr}"
    );
}

#[test]
fn result_without_a_store_exits_2() {
    let dir = Scratch::new("result-missing");
    let out = bibgate_in(&dir.path().join("missing"))
        .args(["result", "X-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no store in"),
    );
}
