//! `bibgate demo` as a new user runs it: from a folder outside the repository, with no shared
//! corpus reachable, every outcome through the gateway and a drop file.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `bibgate demo` in `cwd` with `args`, its temporary folders under `tmp`, and no
/// shared corpus.
fn demo(cwd: &Path, tmp: &Path, args: &[&str]) -> Output {
    Command::new(crate::util::bibgate_path())
        .arg("demo")
        .args(args)
        .current_dir(cwd)
        .env_remove("BIBGATE_SHARED")
        .env_remove("RUST_LOG")
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

/// The path on the "Data directory:" line.
fn data_directory(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("Data directory: "))
        .unwrap_or_else(|| panic!("no data directory line in:\n{stdout}"))
        .split(" (")
        .next()
        .unwrap()
        .to_string()
}

fn assert_every_outcome(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "received  The record has been processed successfully. MMS ID: ",
        "received  Import Failed - Multi matches found for this record. Matching MMS IDs: ",
        "received  Import Failed - NOT_ADDED_BRIEF: ",
        "received  Import Failed - NOT_ADDED_LOCKED: ",
        "received  Import Failed - NOT_ADDED_OLD: ",
        "received  Import Failed - Failed to convert marc record to marc xml: field 505 is ",
        "received  Logon Failed--the Logon ID and/or password is/are not valid",
        "received  No integration profile found for institution 01DEMO_GAMMA",
        "bibgate editor release ",
        "bibgate profile set 01DEMO_ALPHA-connexion check-005 false",
        "bibgate policy activate no-005-check --institution 01DEMO_ALPHA",
        "new-books.mrc.results.jsonl: 2 added, 1 merged, 1 failed (MULTI_MATCH)",
        "10 of 10 steps got the expected answer",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert!(!stdout.contains("!!"), "{stdout}");
    stdout
}

#[test]
fn the_demo_shows_every_outcome_and_never_reuses_a_data_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let data = scratch.path().join("data");

    let first = demo(
        scratch.path(),
        &tmp,
        &["--data-dir", data.to_str().unwrap()],
    );
    let stdout = assert_every_outcome(&first);
    assert_eq!(
        Path::new(&data_directory(&stdout)),
        data.canonicalize().unwrap()
    );
    let report = data.join("blobs/reports/01DEMO_ALPHA/new-books.mrc.results.jsonl");
    assert_eq!(std::fs::read_to_string(&report).unwrap().lines().count(), 4);
    let store = data.join("bibgate.sqlite");
    let store_before = std::fs::read(&store).unwrap();
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "nothing in the temporary folder"
    );
    assert!(
        !scratch.path().join("bibgate-data").exists(),
        "the default data directory is not touched"
    );

    // The same data directory again: it holds data, so the demo runs in a new temporary
    // folder, says so, and leaves the first run's data as it was.
    let second = demo(
        scratch.path(),
        &tmp,
        &["--data-dir", data.to_str().unwrap()],
    );
    let stdout = assert_every_outcome(&second);
    assert!(
        stdout.contains("already holds data, which the demo leaves as it is"),
        "{stdout}"
    );
    let elsewhere = data_directory(&stdout);
    assert!(
        Path::new(&elsewhere).starts_with(tmp.canonicalize().unwrap()),
        "{elsewhere}"
    );
    assert!(Path::new(&elsewhere).join("bibgate.sqlite").exists());
    assert_eq!(std::fs::read(&store).unwrap(), store_before);
    assert_eq!(std::fs::read_to_string(&report).unwrap().lines().count(), 4);

    // The README's command, with no --data-dir: a new temporary folder too, and the default
    // ./bibgate-data is not created.
    let third = demo(scratch.path(), &tmp, &[]);
    let stdout = assert_every_outcome(&third);
    assert!(stdout.contains("no --data-dir given"), "{stdout}");
    let third_dir = data_directory(&stdout);
    assert!(
        Path::new(&third_dir).starts_with(tmp.canonicalize().unwrap()),
        "{third_dir}"
    );
    assert_ne!(third_dir, elsewhere);
    assert!(!scratch.path().join("bibgate-data").exists());
}
