//! The staff console in a real browser (issue 17's acceptance): `scripts/console_browser.py`
//! drives Debian's Chromium with Playwright against `bibgate serve --console` on a data
//! directory prepared with the CLI. It signs in, finds two failed exports, follows their
//! guidance (releases a lock; sets Leader/17 in the editor), retries each and sees it merge,
//! uploads a file and reads its report, and saves screenshots into `docs/screenshots/`.
//!
//! Fails (never skips) without python3, Playwright or `/usr/bin/chromium`:
//! `scripts/test.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use bibgate_test_support::records::{
    encode, oclc_record, record_bytes, seed, seed_lock, too_long_field_record,
};

use crate::backup::Serve;
use crate::console::{console_addr, staff_add};
use crate::util::{Scratch, bibgate_in, run_ok};

const ALPHA: &str = "01DEMO_ALPHA";

/// Imports `bytes` for ALPHA with the CLI; returns the export id of its one record (which
/// failed for `reason`).
fn failed_import(scratch: &Scratch, name: &str, bytes: &[u8], reason: &str) -> String {
    let file = scratch.path().join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = bibgate_in(&scratch.data())
        .args(["import", "--institution", ALPHA, "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        panic!(
            "import printed {line:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(value["reason_code"], reason, "{value}");
    value["export_id"].as_str().unwrap().to_string()
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn staff_resolve_failed_exports_and_upload_a_file_in_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: scripts/test.sh installs it (apt-get install chromium)"
    );
    let scratch = Scratch::new("console-browser");
    run_ok(bibgate_in(&scratch.data()).args(["init", "--password", "console-Pa55word"]));
    let store = scratch.store();
    // NOT_ADDED_LOCKED: the match is open in the editor.
    let locked = oclc_record(62_000_001, b' ', None, "Held in the editor.");
    let locked_mms = seed(&store, ALPHA, &locked, &[(62_000_001, true)]);
    seed_lock(&store, ALPHA, locked_mms.as_str());
    // NOT_ADDED_BRIEF: the match is fuller than the incoming brief record.
    let full = oclc_record(62_000_002, b' ', None, "Fuller than the export.");
    seed(&store, ALPHA, &full, &[(62_000_002, true)]);
    drop(store);
    let locked_export = failed_import(
        &scratch,
        "locked.mrc",
        &record_bytes(62_000_001, "Held in the editor, again."),
        "NOT_ADDED_LOCKED",
    );
    let brief_export = failed_import(
        &scratch,
        "brief.mrc",
        &encode(&oclc_record(
            62_000_002,
            b'3',
            Some("20240101120000.0"),
            "Brief.",
        )),
        "NOT_ADDED_BRIEF",
    );
    staff_add(&scratch.data(), "ann", ALPHA, false);
    // The upload: two new records and one that cannot become MARCXML.
    let upload = scratch.path().join("new-books.mrc");
    let mut bytes = record_bytes(62_100_001, "New book one.");
    bytes.extend(record_bytes(62_100_002, "New book two."));
    bytes.extend(too_long_field_record(62_100_003));
    std::fs::write(&upload, bytes).unwrap();

    let serve = Serve::start(
        &scratch.data(),
        &["--console", "127.0.0.1:0", "--drop-settle-ms", "200"],
    );
    let addr = console_addr(&serve);
    let screenshots = repository().join("docs/screenshots");
    let out = Command::new("python3")
        .arg(repository().join("scripts/console_browser.py"))
        .args(["--url", &format!("http://{addr}")])
        .args(["--user", "ann", "--password", "a long staff password"])
        .args([
            "--locked-export",
            &locked_export,
            "--locked-mms",
            locked_mms.as_str(),
        ])
        .args(["--brief-export", &brief_export])
        .arg("--upload")
        .arg(&upload)
        .arg("--screenshots")
        .arg(&screenshots)
        .output()
        .expect("python3 runs scripts/console_browser.py");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(serve);
}
