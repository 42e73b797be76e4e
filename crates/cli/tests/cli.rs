//! The `bibgate` binary, end to end: output shapes and documented exit codes.

use crate::util::{bibgate, corpus, run_ok};

#[test]
fn inspect_json_gives_one_object_per_record_with_keys_and_verdict() {
    let out = run_ok(
        bibgate()
            .args(["inspect", "--json"])
            .arg(corpus("folio-integration-tests/FAT-1204.mrc")),
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i + 1);
        assert_eq!(line["convertible"], true);
        assert!(
            line["oclc"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["active"] == true)
        );
    }
}

#[test]
fn inspect_reports_a_damaged_record_and_exits_1() {
    let out = bibgate()
        .args(["inspect", "--json"])
        .arg(corpus("marc4j/008008027.mrc"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["readable"], false);
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("input ends inside a record"),
        "{last}"
    );
}

#[test]
fn convert_to_marcxml_streams_a_collection_and_reports_damage_on_stderr() {
    let out = bibgate()
        .args(["convert", "--to", "marcxml"])
        .arg(corpus("pymarc/bad_records.mrc"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one record is truncated");
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert!(xml.trim_end().ends_with("</collection>"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("record 9 at byte"), "{stderr}");
}

#[test]
fn convert_of_clean_marc8_file_exits_0_and_outputs_utf8() {
    let out = bibgate()
        .args(["convert", "--to", "json"])
        .arg(corpus("folio-edge-connexion/manden.marc"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(text.contains("Læse let bøger"), "{text}");
    assert_eq!(&record["leader"].as_str().unwrap()[9..10], "a");
}

#[test]
fn a_missing_file_is_exit_2() {
    let out = bibgate()
        .args(["inspect", "/nonexistent/file.mrc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not open"));
}

/// `bibgate … | head`: the reader goes away; the command ends quietly, without "Broken pipe".
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::process::Stdio;
    let mut child = bibgate()
        .args(["convert", "--to", "marcxml"])
        .arg(corpus("evergreen/jazz_1k.mrc"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.to_lowercase().contains("broken pipe"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// `bibgate send` to a port nobody listens on says what to check.
#[test]
fn send_to_a_closed_port_says_what_to_check() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = bibgate()
        .arg("send")
        .arg(corpus("folio-integration-tests/FAT-1204.mrc"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--logon", "01DEMO_ALPHA", "--password", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("could not connect to 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is `bibgate serve` running there?"),
        "{stderr}"
    );
    assert!(stderr.contains("5500"), "{stderr}");
}
