//! `bibgate backup`, `restore` and `verify` (issue 19) through the binary: a backup taken
//! while 50 clients export through `bibgate serve` restores into a data directory that
//! `verify` passes and that holds every export answered before the backup started; a
//! corrupted manifest or a changed file is refused before anything is written; `verify`
//! reports a missing raw file; on AWS the commands name what to use instead.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bibgate_store::Store;
use bibgate_store_local::SqliteStore;
use bibgate_test_support::load as driver;

use crate::util::{Scratch, bibgate_in, run_ok};

const ALPHA: &str = "01DEMO_ALPHA";
const PASSWORD: &str = "backup-Pa55word";
const CLIENTS: usize = 50;
/// Generous: the machine running the tests may be busy building.
const LIMIT: Duration = Duration::from_secs(120);

/// `bibgate serve` on a free loopback port, killed when dropped.
pub(crate) struct Serve {
    child: Child,
    /// The gateway's address.
    pub(crate) addr: String,
    /// What it printed up to the gateway's address.
    pub(crate) lines: Vec<String>,
}

impl Serve {
    pub(crate) fn start(data: &Path, extra: &[&str]) -> Serve {
        let mut child = bibgate_in(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve ended before it listened")
                .unwrap();
            if let Some(addr) = line.strip_prefix("bibgate gateway listening on ") {
                break addr.trim().to_string();
            }
            seen.push(line);
        };
        // Keep reading, so that serve never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Serve {
            child,
            addr,
            lines: seen,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round of the load: `CLIENTS` exports sent at once, and when the last was answered.
struct Round {
    answered: Instant,
    /// (OCLC number, MMS ID of the reply).
    exports: Vec<(u64, String)>,
}

/// Every file under `dir` is 0600 and every folder 0700.
fn owner_only(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if entry.file_type().unwrap().is_dir() {
            assert_eq!(mode, 0o700, "{}", entry.path().display());
            owner_only(&entry.path());
        } else {
            assert_eq!(mode, 0o600, "{}", entry.path().display());
        }
    }
}

#[test]
fn a_backup_while_fifty_clients_export_restores_every_answered_export() {
    let scratch = Scratch::new("backup-under-load");
    run_ok(bibgate_in(&scratch.data()).args(["init", "--password", PASSWORD]));
    let serve = Serve::start(&scratch.data(), &[]);
    let rounds: Arc<Mutex<Vec<Round>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (rounds, stop, addr) = (rounds.clone(), stop.clone(), serve.addr.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let mut next_number = 80_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                let numbers: Vec<u64> = (next_number..next_number + CLIENTS as u64).collect();
                next_number += CLIENTS as u64;
                let records = numbers
                    .iter()
                    .map(|&number| driver::record(number, "Backed up."))
                    .collect();
                let replies =
                    runtime.block_on(driver::simultaneous(&addr, ALPHA, PASSWORD, records, LIMIT));
                let answered = Instant::now();
                let exports = numbers
                    .into_iter()
                    .zip(replies)
                    .map(|(number, reply)| {
                        let reply = reply.unwrap_or_else(|error| panic!("{number}: {error}"));
                        let mms =
                            driver::mms_of(&reply).unwrap_or_else(|| panic!("{number}: {reply:?}"));
                        (number, mms)
                    })
                    .collect();
                rounds.lock().unwrap().push(Round { answered, exports });
            }
        })
    };
    let rounds_so_far = || rounds.lock().unwrap().len();
    let deadline = Instant::now() + LIMIT;
    while rounds_so_far() < 3 {
        assert!(Instant::now() < deadline, "the load made no progress");
        assert!(!load.is_finished(), "the load failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let backup = scratch.path().join("backup");
    let started = Instant::now();
    let out = run_ok(
        bibgate_in(&scratch.data())
            .arg("backup")
            .arg("--to")
            .arg(&backup),
    );
    let took = started.elapsed();
    let during = rounds_so_far();
    // Serve keeps answering after (and while) the backup runs.
    while rounds_so_far() < during + 2 {
        assert!(
            Instant::now() < deadline,
            "the load stopped after the backup"
        );
        assert!(!load.is_finished(), "the load failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    drop(serve);
    println!(
        "{}backup took {took:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    owner_only(&backup);

    let restored = scratch.path().join("restored");
    run_ok(
        bibgate_in(&restored)
            .arg("restore")
            .arg("--from")
            .arg(&backup),
    );
    let verified = run_ok(bibgate_in(&restored).arg("verify"));
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("consistent"),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    owner_only(&restored);
    let store = SqliteStore::open(&restored.join("bibgate.sqlite")).unwrap();
    let rounds = rounds.lock().unwrap();
    let before: Vec<&Round> = rounds.iter().filter(|r| r.answered < started).collect();
    assert!(before.len() >= 3);
    for (number, mms) in before.iter().flat_map(|round| &round.exports) {
        let found = store.find_by_oclc(ALPHA, &[*number]).unwrap();
        assert!(
            found.iter().any(|entry| entry.mms_id.to_string() == *mms),
            "OCLC {number} (MMS ID {mms}) answered before the backup is not in the restore: {found:?}"
        );
    }
}

/// A small data directory with one imported file, and its backup.
fn backed_up(scratch: &Scratch) -> std::path::PathBuf {
    run_ok(bibgate_in(&scratch.data()).args(["init", "--password", PASSWORD]));
    let file = crate::util::corpus("traject/test_data.utf8.mrc");
    run_ok(
        bibgate_in(&scratch.data())
            .args(["import", "--institution", ALPHA])
            .arg(file),
    );
    let backup = scratch.path().join("backup");
    run_ok(
        bibgate_in(&scratch.data())
            .arg("backup")
            .arg("--to")
            .arg(&backup),
    );
    backup
}

/// Restores `backup` into a fresh folder; expects a refusal naming `needle`, and nothing
/// written.
fn refused(scratch: &Scratch, backup: &Path, needle: &str) {
    let target = scratch.path().join("refused");
    let out = bibgate_in(&target)
        .arg("restore")
        .arg("--from")
        .arg(backup)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refusing to restore"), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    assert!(
        !target.exists(),
        "a refused restore wrote {}",
        target.display()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn restore_refuses_a_corrupted_manifest_or_a_changed_file() {
    let scratch = Scratch::new("backup-corrupt");
    let backup = backed_up(&scratch);
    let manifest = std::fs::read_to_string(backup.join("MANIFEST.sha256")).unwrap();
    let damaged = |name: &str, edit: &dyn Fn(&Path)| {
        let copy = scratch.path().join(name);
        copy_dir(&backup, &copy);
        edit(&copy);
        copy
    };
    // One hash changed.
    let edited = damaged("edited", &|dir| {
        let first = if manifest.starts_with('0') { "1" } else { "0" };
        let text = format!("{first}{}", &manifest[1..]);
        std::fs::write(dir.join("MANIFEST.sha256"), text).unwrap();
    });
    refused(&scratch, &edited, "do not match its trailer");
    // The trailer cut off.
    let truncated = damaged("truncated", &|dir| {
        let cut = manifest.rfind("# bibgate backup").unwrap();
        std::fs::write(dir.join("MANIFEST.sha256"), &manifest[..cut]).unwrap();
    });
    refused(&scratch, &truncated, "no trailer");
    // A line removed (the blob would not be restored).
    let shortened = damaged("shortened", &|dir| {
        let lines: Vec<&str> = manifest.lines().collect();
        let text = format!("{}\n{}\n", lines[0], lines[lines.len() - 1]);
        std::fs::write(dir.join("MANIFEST.sha256"), text).unwrap();
    });
    refused(&scratch, &shortened, "do not match its trailer");
    // A byte of the database changed.
    let changed = damaged("changed", &|dir| {
        let path = dir.join("bibgate.sqlite");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    });
    refused(&scratch, &changed, "does not match the manifest");
    // A blob missing.
    let missing = damaged("missing", &|dir| {
        std::fs::remove_dir_all(dir.join("blobs")).unwrap();
    });
    refused(&scratch, &missing, "could not read");
    // Never over an existing data directory.
    let out = bibgate_in(&scratch.data())
        .arg("restore")
        .arg("--from")
        .arg(&backup)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
}

#[test]
fn verify_reports_a_missing_raw_file() {
    let scratch = Scratch::new("backup-verify");
    let backup = backed_up(&scratch);
    let restored = scratch.path().join("restored");
    run_ok(
        bibgate_in(&restored)
            .arg("restore")
            .arg("--from")
            .arg(&backup),
    );
    let batches = restored.join("blobs").join("batches");
    std::fs::remove_dir_all(&batches).unwrap();
    let out = bibgate_in(&restored).arg("verify").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("are missing"), "{stderr}");
}

#[test]
fn on_aws_the_commands_name_what_to_use_instead() {
    let scratch = Scratch::new("backup-aws");
    for args in [
        &["backup", "--to", "x"][..],
        &["restore", "--from", "x"][..],
        &["verify"][..],
    ] {
        let out = bibgate_in(&scratch.data())
            .args(["--backend", "aws", "--bucket", "b", "--table", "t"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("point-in-time recovery"), "{stderr}");
        assert!(stderr.contains("S3 versioning"), "{stderr}");
    }
}
