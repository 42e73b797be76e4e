//! Fault tests on the embedded backend (issue 7, "Faults"): the processor is killed with
//! SIGKILL at each step of an import and restarted, while the gateway keeps answering.
//!
//! Every test runs the real binary on a fresh data directory: `bibgate init`, the gateway
//! alone (`bibgate serve --no-processor --listen 127.0.0.1:0`) and the processor alone
//! (`bibgate process`), armed with `BIBGATE_FAILPOINT`. The test waits for the processor's
//! `bibgate: failpoint NAME reached` line, kills it with SIGKILL, checks what the kill left
//! behind, starts a processor without the failpoint, and then checks the invariants through
//! the store itself and the CLI: every received record has exactly one result and its raw
//! bytes under `received/`, and no result document (the embedded backend delivers results
//! through the store); the inbox is empty; each OCLC number has
//! exactly one record; a merge kept exactly one prior version; and the client got the result
//! or the "Import pending" message naming its export, never a reset.
//!
//! The points: `export.received` (raw bytes under `received/`, nothing imported),
//! `store.commit.before` (inside the SQLite transaction), `store.commit.after` (record,
//! prior version and result committed), `export.delivered` (the result delivered, the inbox
//! object not deleted), each for an add and a merge; and a drop file
//! of 12 records in chunks of 5 killed after its first chunk (`drop.chunk@1`) and inside its
//! second chunk's transaction (`store.commit.before@2`).
//!
//! The short versions run by default (CI). The long version is
//! `random_kills_on_a_stream_of_exports`: one round by default; `BIBGATE_FAULT_ROUNDS=N`
//! runs N rounds on one data directory, each killing the processor at a random failpoint
//! (or after a random delay) while three clients export new and revised records and, every
//! other round, a drop file of 12 records revises its own numbers; sometimes the processor
//! stays down until a client was told "pending". `BIBGATE_FAULT_SEED` replays a run (the
//! seed is printed with `--nocapture`).
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bibgate_gateway::LengthEncoding;
use bibgate_inbox::layout::{result_key, stable_hash};
use bibgate_marc::{Leader, Record};
use bibgate_store::{ImportResult, MmsId, Outcome, Store};

use crate::util::{FAILPOINT, Scratch, bibgate_in, run_ok};

const ALPHA: &str = "01DEMO_ALPHA";
const PASSWORD: &str = "fault-Pa55word";
const SUCCESS: &str = "The record has been processed successfully.";
/// Generous: the machine running the tests may be busy building.
const WAIT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A running `bibgate` process: its stdout and stderr lines are collected by two threads;
/// it is killed (SIGKILL) and reaped when dropped, so that a failing test leaves nothing
/// running.
struct Running {
    name: String,
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(name: &str, mut command: Command) -> Running {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in streams {
            let (tx, log) = (tx.clone(), log.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    {
                        let mut log = log.lock().unwrap();
                        log.push_str(&line);
                        log.push('\n');
                    }
                    let _ = tx.send(line);
                }
            });
        }
        Running {
            name: name.to_string(),
            child,
            lines,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for an output line containing `needle` and returns it; fails after `limit`,
    /// or when the process ends first.
    fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no line with {needle:?} within {limit:?}; output:\n{}",
                    self.name,
                    self.log()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: ended before printing {needle:?}; output:\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    /// SIGKILL, then reap.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{} should have died of SIGKILL: {status}",
            self.name
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bibgate init --password PASSWORD` on the scratch data directory.
fn init(scratch: &Scratch) {
    run_ok(bibgate_in(&scratch.data()).args(["init", "--password", PASSWORD]));
}

/// The gateway alone; returns it and its address.
fn start_gateway(scratch: &Scratch) -> (Running, String) {
    start_serve(scratch, &["--no-processor"])
}

/// `bibgate serve` on a free loopback port with `extra` arguments; returns it and its address.
fn start_serve(scratch: &Scratch, extra: &[&str]) -> (Running, String) {
    let mut command = bibgate_in(&scratch.data());
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra);
    let gateway = Running::spawn("gateway", command);
    let line = gateway.wait_for("bibgate gateway listening on ", WAIT);
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    (gateway, addr)
}

/// The processor alone, armed with `failpoint` when given; drop files settle after 200 ms.
fn start_processor(scratch: &Scratch, failpoint: Option<&str>, extra: &[&str]) -> Running {
    let mut command = bibgate_in(&scratch.data());
    command
        .args(["process", "--drop-settle-ms", "200"])
        .args(extra);
    if let Some(failpoint) = failpoint {
        command.env(FAILPOINT, failpoint);
    }
    Running::spawn(
        &format!("processor ({})", failpoint.unwrap_or("not armed")),
        command,
    )
}

/// Waits for the armed processor to stop at its failpoint, then kills it with SIGKILL.
fn kill_at_failpoint(processor: Running, failpoint: &str) {
    let name = failpoint.split('@').next().unwrap_or(failpoint);
    processor.wait_for(&format!("bibgate: failpoint {name} reached"), WAIT);
    processor.kill();
}

/// Sends one record through the gateway with the library client, on its own thread; the
/// reply (or the client's error, as text) arrives on the returned channel.
fn send_in_background(addr: &str, record: Vec<u8>) -> Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel();
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reply = runtime.block_on(bibgate_gateway::send(
            &addr,
            ALPHA,
            PASSWORD,
            &record,
            LengthEncoding::Byte,
            WAIT,
        ));
        let _ = tx.send(reply.map_err(|e| e.to_string()));
    });
    rx
}

/// The reply from [`send_in_background`]: it must be an answer (not a client error).
fn reply_of(rx: &Receiver<Result<String, String>>) -> String {
    match rx.recv_timeout(WAIT) {
        Ok(Ok(text)) => text,
        Ok(Err(error)) => panic!("the gateway did not answer: {error}"),
        Err(error) => panic!("no reply within {WAIT:?}: {error}"),
    }
}

/// The files under `blobs/<folder>` (names only), sorted; none when the folder is absent.
fn files(scratch: &Scratch, folder: &str) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(scratch.blobs().join(folder)) {
        Ok(entries) => entries
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The export ids in a folder of `<export-id>.mrc` files.
fn export_ids(scratch: &Scratch, folder: &str) -> Vec<String> {
    files(scratch, folder)
        .into_iter()
        .filter_map(|name| name.strip_suffix(".mrc").map(str::to_string))
        .collect()
}

fn blob(scratch: &Scratch, key: &str) -> Option<Vec<u8>> {
    std::fs::read(scratch.blobs().join(key)).ok()
}

/// `bibgate result ID`: exit code and standard output.
fn result_cmd(scratch: &Scratch, export_id: &str) -> (Option<i32>, String) {
    let out = bibgate_in(&scratch.data())
        .args(["result", export_id])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A Connexion-like record: 001/003 OCLC, 005, 008, 035 $a (OCoLC)N, 245.
fn oclc_record(number: u64, version: &str, title: &str) -> Vec<u8> {
    let mut record = Record {
        leader: Leader::DEFAULT,
        fields: Vec::new(),
    };
    record.push_control("001", format!("ocm{number:08}"));
    record.push_control("003", "OCoLC");
    record.push_control("005", version);
    record.push_control("008", "240101s2024    ilu           000 0 eng d");
    record.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
    record.push_data("245", b'1', b'0', &[(b'a', title)]);
    let mut bytes = Vec::new();
    bibgate_marc::iso2709::write_record(&record, &mut bytes).unwrap();
    bytes
}

/// Imports records with `bibgate import` (another process, never armed); returns the MMS ID
/// of each.
fn seed(scratch: &Scratch, records: &[Vec<u8>]) -> Vec<String> {
    let file = scratch.path().join("seed.mrc");
    std::fs::write(&file, records.concat()).unwrap();
    let out = run_ok(
        bibgate_in(&scratch.data())
            .args(["import", "--institution", ALPHA, "--json"])
            .arg(&file),
    );
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["outcome"], "added", "{line}");
            value["mms_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), records.len());
    ids
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The one record holding `number` in ALPHA's zone: exactly one index entry (no duplicate
/// record); returns its MMS ID.
fn only_record(store: &dyn Store, number: u64) -> MmsId {
    let entries = store.find_by_oclc(ALPHA, &[number]).unwrap();
    assert_eq!(
        entries.len(),
        1,
        "OCLC number {number} must be held by exactly one record: {entries:?}"
    );
    entries[0].mms_id.clone()
}

/// Checks one record: its current title, its revision, and that its prior versions were
/// replaced by `replaced_by` (in order), so a merge kept the version it replaced, once.
fn check_record(store: &dyn Store, mms_id: &MmsId, title: &str, replaced_by: &[&str]) {
    let record = store.record(ALPHA, mms_id).unwrap().unwrap();
    assert!(
        contains(&record.marc, title),
        "record {} should carry the title {title:?}",
        mms_id.0
    );
    assert_eq!(
        record.revision,
        replaced_by.len() as u64 + 1,
        "{}",
        mms_id.0
    );
    let versions = store.versions(ALPHA, mms_id).unwrap();
    let got: Vec<(u64, &str)> = versions
        .iter()
        .map(|v| (v.revision, v.replaced_by.as_str()))
        .collect();
    let want: Vec<(u64, &str)> = replaced_by
        .iter()
        .enumerate()
        .map(|(i, id)| (i as u64 + 1, *id))
        .collect();
    assert_eq!(got, want, "prior versions of {}", mms_id.0);
}

/// Checks an export that went through the gateway: its stored result (exactly one: it is
/// keyed by the export id), no result document (the store is the delivery), its raw bytes
/// under `received/`, and no inbox object left. Returns the stored result.
fn check_export(
    scratch: &Scratch,
    store: &dyn Store,
    export_id: &str,
    bytes: &[u8],
) -> ImportResult {
    let result = store
        .result(export_id)
        .unwrap()
        .unwrap_or_else(|| panic!("no stored result for {export_id}"));
    assert!(
        blob(scratch, &result_key(export_id)).is_none(),
        "a result document for {export_id}"
    );
    assert_eq!(
        blob(scratch, &format!("received/{ALPHA}/{export_id}.mrc")).as_deref(),
        Some(bytes),
        "raw bytes of {export_id} under received/"
    );
    assert_eq!(result.raw_key, format!("received/{ALPHA}/{export_id}.mrc"));
    assert!(
        blob(scratch, &format!("inbox/{ALPHA}/{export_id}.mrc")).is_none(),
        "{export_id} is still in the inbox"
    );
    result
}

/// A reply is the stored result's host message or the pending message naming the export.
fn check_reply(reply: &str, export_id: &str, result: &ImportResult) {
    if reply.starts_with("Import pending") {
        assert_eq!(reply, bibgate_gateway::pending_message(export_id));
    } else {
        assert_eq!(reply, result.host_message, "reply for {export_id}");
        assert!(reply.starts_with(SUCCESS), "{reply}");
    }
}

// ---------------------------------------------------------------------------------------
// The processor as its own process
// ---------------------------------------------------------------------------------------

#[test]
fn process_needs_an_existing_store() {
    let scratch = Scratch::new("faults-no-store");
    let out = bibgate_in(&scratch.data()).arg("process").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no store in"), "{err}");
    assert!(!scratch.data().join("bibgate.sqlite").exists());
}

#[test]
fn process_stops_cleanly_on_sigterm() {
    let scratch = Scratch::new("faults-sigterm");
    init(&scratch);
    let mut processor = start_processor(&scratch, None, &[]);
    processor.wait_for("bibgate processor started", WAIT);
    sigterm(&processor);
    processor.wait_for("processor stopped", WAIT);
    exits_successfully(&mut processor);
}

/// `bibgate serve` (gateway and processor) stops gracefully on SIGTERM, as a service manager
/// sends it, not only on ctrl-c: after answering an export, it exits with success.
#[test]
fn serve_stops_cleanly_on_sigterm() {
    let scratch = Scratch::new("faults-serve-sigterm");
    init(&scratch);
    let (server, addr) = start_serve(&scratch, &[]);
    answers_then_stops_on_sigterm(server, &addr);
}

/// Sends `serve` an export, checks it is answered, then SIGTERM: `serve` exits with success.
fn answers_then_stops_on_sigterm(mut server: Running, addr: &str) {
    let reply = reply_of(&send_in_background(
        addr,
        oclc_record(NUMBER, "20240101120000.0", FIRST_TITLE),
    ));
    assert!(reply.starts_with(SUCCESS), "{reply}");
    sigterm(&server);
    exits_successfully(&mut server);
}

/// A write killed midway leaves its temporary file; `serve` and `process` remove those
/// older than an hour when they start (in the background), and nothing else.
#[test]
fn serve_and_process_remove_temporary_files_left_by_kills() {
    let scratch = Scratch::new("faults-stale-temporaries");
    init(&scratch);
    let blobs = scratch.data().join("blobs");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3_700);
    let temporary = |folder: &str, name: &str, old: bool| {
        let dir = blobs.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, b"partial").unwrap();
        if old {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        path
    };
    let gone_when = |path: &std::path::Path| {
        let deadline = Instant::now() + WAIT;
        while path.exists() {
            assert!(Instant::now() < deadline, "{} still there", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let inbox = format!("inbox/{ALPHA}");
    let received = format!("received/{ALPHA}");
    let stale_inbox = temporary(&inbox, ".bibgate-tmp-999999-1", true);
    let stale_received = temporary(&received, ".bibgate-tmp-999999-2", true);
    let fresh = temporary(&inbox, ".bibgate-tmp-999999-3", false);

    let (server, addr) = start_serve(&scratch, &[]);
    gone_when(&stale_inbox);
    gone_when(&stale_received);
    assert!(
        fresh.exists(),
        "a temporary file of a write in progress stays"
    );
    answers_then_stops_on_sigterm(server, &addr);

    let stale_drop = temporary(&format!("drop/{ALPHA}"), ".bibgate-tmp-999999-4", true);
    let mut processor = start_processor(&scratch, None, &[]);
    gone_when(&stale_drop);
    assert!(fresh.exists());
    sigterm(&processor);
    exits_successfully(&mut processor);
}

fn sigterm(running: &Running) {
    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(running.child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
}

fn exits_successfully(running: &mut Running) {
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", running.log());
}

// ---------------------------------------------------------------------------------------
// One export, killed at one point
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    /// A new OCLC number: the export adds a record.
    Add,
    /// The record exists (imported before): the export merges into it.
    Merge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// Restart the processor at once: the client gets the result or "pending".
    AtOnce,
    /// Restart only after the client got its answer: "pending" unless the import committed
    /// before the kill.
    AfterReply,
}

const NUMBER: u64 = 5_550_001;
const FIRST_TITLE: &str = "First title.";
const REVISED_TITLE: &str = "Revised title.";

/// Exports one record (an add or a merge), kills the processor at `failpoint`, checks what
/// the kill left, restarts the processor, and checks the end state.
fn kill_one_export(name: &str, failpoint: &str, case: Case, restart: Restart) {
    let scratch = Scratch::new(&format!("faults-{name}"));
    init(&scratch);
    let prior = match case {
        Case::Add => None,
        Case::Merge => {
            let first = oclc_record(NUMBER, "20240101120000.0", FIRST_TITLE);
            Some(MmsId(seed(&scratch, &[first]).remove(0)))
        }
    };
    let (_gateway, addr) = start_gateway(&scratch);
    let processor = start_processor(&scratch, Some(failpoint), &[]);
    let bytes = oclc_record(NUMBER, "20250101120000.0", REVISED_TITLE);
    let reply = send_in_background(&addr, bytes.clone());
    kill_at_failpoint(processor, failpoint);

    // What the kill left: the export is in the inbox, and exactly the steps before the
    // failpoint are done.
    let inbox = export_ids(&scratch, &format!("inbox/{ALPHA}"));
    assert_eq!(inbox.len(), 1, "one export in the inbox: {inbox:?}");
    let export_id = inbox[0].clone();
    assert_eq!(
        blob(&scratch, &format!("received/{ALPHA}/{export_id}.mrc")).as_deref(),
        Some(bytes.as_slice()),
        "the raw bytes are copied before any failpoint"
    );
    let committed = matches!(failpoint, "store.commit.after" | "export.delivered");
    {
        let store = scratch.store();
        assert_eq!(
            store.result(&export_id).unwrap().is_some(),
            committed,
            "stored result after a kill at {failpoint}"
        );
        let records = store.count_records(ALPHA).unwrap();
        assert_eq!(records, 1 - u64::from(case == Case::Add && !committed));
        if let Some(prior) = &prior {
            let revision = store.record(ALPHA, prior).unwrap().unwrap().revision;
            assert_eq!(revision, 1 + u64::from(committed));
        }
    }
    assert!(
        blob(&scratch, &result_key(&export_id)).is_none(),
        "no result document after a kill at {failpoint}"
    );

    let reply_text = if restart == Restart::AfterReply {
        // Nobody processes the export now: the gateway answers from the stored result it
        // polls, or says "pending" at its reply deadline when there is none; `bibgate
        // result` shows the stored result as soon as the import committed.
        let text = reply_of(&reply);
        if committed {
            assert!(text.starts_with(SUCCESS), "{text}");
        } else {
            assert_eq!(text, bibgate_gateway::pending_message(&export_id));
        }
        let (code, out) = result_cmd(&scratch, &export_id);
        assert_eq!(code, Some(if committed { 0 } else { 1 }), "{out}");
        Some(text)
    } else {
        None
    };

    let processor = start_processor(&scratch, None, &[]);
    processor.wait_for(&format!("export processed export_id={export_id}"), WAIT);
    let reply_text = reply_text.unwrap_or_else(|| reply_of(&reply));
    processor.kill();

    let store = scratch.store();
    let result = check_export(&scratch, &store, &export_id, &bytes);
    check_reply(&reply_text, &export_id, &result);
    assert!(export_ids(&scratch, &format!("inbox/{ALPHA}")).is_empty());
    assert_eq!(
        export_ids(&scratch, &format!("received/{ALPHA}")),
        std::slice::from_ref(&export_id)
    );
    assert_eq!(store.count_records(ALPHA).unwrap(), 1);
    let mms_id = only_record(&store, NUMBER);
    assert_eq!(result.mms_id.as_ref(), Some(&mms_id));
    match prior {
        None => {
            assert_eq!(result.outcome, Outcome::Added, "{result:?}");
            check_record(&store, &mms_id, REVISED_TITLE, &[]);
        }
        Some(prior) => {
            assert_eq!(result.outcome, Outcome::Merged, "{result:?}");
            assert_eq!(mms_id, prior);
            check_record(&store, &mms_id, REVISED_TITLE, &[&export_id]);
        }
    }
    let (code, out) = result_cmd(&scratch, &export_id);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&format!("outcome: {}\n", result.outcome.as_str())),
        "{out}"
    );
}

#[test]
fn killed_after_the_raw_bytes_are_stored_add() {
    kill_one_export(
        "received-add",
        "export.received",
        Case::Add,
        Restart::AtOnce,
    );
}

#[test]
fn killed_after_the_raw_bytes_are_stored_merge() {
    kill_one_export(
        "received-merge",
        "export.received",
        Case::Merge,
        Restart::AfterReply,
    );
}

#[test]
fn killed_inside_the_commit_add() {
    kill_one_export(
        "before-add",
        "store.commit.before",
        Case::Add,
        Restart::AfterReply,
    );
}

#[test]
fn killed_inside_the_commit_merge() {
    kill_one_export(
        "before-merge",
        "store.commit.before",
        Case::Merge,
        Restart::AtOnce,
    );
}

#[test]
fn killed_after_the_record_write_add() {
    kill_one_export(
        "after-add",
        "store.commit.after",
        Case::Add,
        Restart::AtOnce,
    );
}

#[test]
fn killed_after_the_record_write_merge() {
    kill_one_export(
        "after-merge",
        "store.commit.after",
        Case::Merge,
        Restart::AfterReply,
    );
}

#[test]
fn killed_before_the_inbox_delete_add() {
    kill_one_export(
        "result-doc-add",
        "export.delivered",
        Case::Add,
        Restart::AfterReply,
    );
}

#[test]
fn killed_before_the_inbox_delete_merge() {
    kill_one_export(
        "result-doc-merge",
        "export.delivered",
        Case::Merge,
        Restart::AtOnce,
    );
}

// ---------------------------------------------------------------------------------------
// A drop file, killed in the middle
// ---------------------------------------------------------------------------------------

const DROP_FILE: &str = "batch.mrc";
/// OCLC numbers of the drop file's records 1-11; record 12 is number 2 again.
const DROP_BASE: u64 = 7_000;
/// Numbers imported before the file arrives (its records 3, 6 and 11 merge into them).
const DROP_SEEDED: [u64; 3] = [DROP_BASE + 3, DROP_BASE + 6, DROP_BASE + 11];

/// The title of the drop file's record `i` (1-11).
fn dropped_title(i: u64) -> String {
    format!("Dropped record {i:02}.")
}

/// The title of its record 12, a revision of record 2.
const AGAIN_TITLE: &str = "Dropped record 02, revised.";

/// Drops a file of 12 records (chunks of 5), kills the processor at `failpoint` with
/// `committed` records committed, restarts it, and checks the report and the store.
fn kill_in_a_drop_file(name: &str, failpoint: &str, committed: usize) {
    let scratch = Scratch::new(&format!("faults-{name}"));
    init(&scratch);
    let seeded: Vec<Vec<u8>> = DROP_SEEDED
        .iter()
        .map(|n| oclc_record(*n, "20240101120000.0", &format!("Seeded {n}.")))
        .collect();
    let seeded_ids = seed(&scratch, &seeded);
    let mut records: Vec<Vec<u8>> = (1..=11)
        .map(|i| oclc_record(DROP_BASE + i, "20250101120000.0", &dropped_title(i)))
        .collect();
    records.push(oclc_record(DROP_BASE + 2, "20250601120000.0", AGAIN_TITLE));
    let bytes = records.concat();
    let batch_id = format!("drop-{ALPHA}-{DROP_FILE}-{:016x}", stable_hash(&bytes));

    let chunk = ["--drop-chunk", "5"];
    let processor = start_processor(&scratch, Some(failpoint), &chunk);
    processor.wait_for("bibgate processor started", WAIT);
    // Written under a hidden name and renamed, like staff are told to.
    let folder = scratch.blobs().join("drop").join(ALPHA);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(".incoming"), &bytes).unwrap();
    std::fs::rename(folder.join(".incoming"), folder.join(DROP_FILE)).unwrap();
    kill_at_failpoint(processor, failpoint);

    let report_key = format!("reports/{ALPHA}/{DROP_FILE}.results.jsonl");
    assert!(folder.join(DROP_FILE).exists(), "the drop file stays");
    assert!(blob(&scratch, &report_key).is_none(), "no report yet");
    assert_eq!(
        scratch.store().batch_results(&batch_id).unwrap().len(),
        committed,
        "records committed when killed at {failpoint}"
    );

    let processor = start_processor(&scratch, None, &chunk);
    processor.wait_for("drop file imported", WAIT);
    processor.kill();

    // The report: one line per record, each record once, saying what the store says.
    let report = String::from_utf8(blob(&scratch, &report_key).unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let indexes: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (1..=12).collect::<Vec<u64>>(), "{report}");
    let store = scratch.store();
    let results = store.batch_results(&batch_id).unwrap();
    assert_eq!(results.len(), 12, "one stored result per record");
    let by_id: HashMap<&str, &ImportResult> =
        results.iter().map(|r| (r.export_id.as_str(), r)).collect();
    assert_eq!(by_id.len(), 12, "no export id twice");
    for line in &lines {
        let index = line["index"].as_u64().unwrap();
        let export_id = format!("{batch_id}#{index}");
        assert_eq!(line["export_id"], export_id.as_str());
        let result = by_id[export_id.as_str()];
        assert_eq!(line["outcome"], result.outcome.as_str(), "record {index}");
        assert_eq!(
            line["mms_id"].as_str(),
            result.mms_id.as_ref().map(|m| m.0.as_str()),
            "record {index}"
        );
        let merged = DROP_SEEDED.contains(&(DROP_BASE + index)) || index == 12;
        assert_eq!(
            result.outcome,
            if merged {
                Outcome::Merged
            } else {
                Outcome::Added
            },
            "record {index}: {result:?}"
        );
    }
    // The store: one record per number, each merge kept the version it replaced, once.
    assert_eq!(store.count_records(ALPHA).unwrap(), 11);
    for i in 1..=11u64 {
        let number = DROP_BASE + i;
        let mms_id = only_record(&store, number);
        let own = format!("{batch_id}#{i}");
        assert_eq!(by_id[own.as_str()].mms_id.as_ref(), Some(&mms_id));
        if let Some(at) = DROP_SEEDED.iter().position(|n| *n == number) {
            assert_eq!(mms_id.0, seeded_ids[at]);
            check_record(&store, &mms_id, &dropped_title(i), &[&own]);
        } else if i == 2 {
            let again = format!("{batch_id}#12");
            check_record(&store, &mms_id, AGAIN_TITLE, &[&again]);
            assert_eq!(by_id[again.as_str()].mms_id.as_ref(), Some(&mms_id));
        } else {
            check_record(&store, &mms_id, &dropped_title(i), &[]);
        }
    }
    assert!(!folder.join(DROP_FILE).exists(), "the drop file is taken");
    assert_eq!(
        blob(&scratch, &format!("received/drop/{ALPHA}/{DROP_FILE}")),
        Some(bytes)
    );
    assert!(
        blob(
            &scratch,
            &format!("reports/{ALPHA}/{DROP_FILE}.rejected.mrc")
        )
        .is_none()
    );
}

#[test]
fn killed_after_the_first_chunk_of_a_drop_file() {
    kill_in_a_drop_file("drop-chunk", "drop.chunk@1", 5);
}

#[test]
fn killed_inside_the_second_chunk_of_a_drop_file() {
    kill_in_a_drop_file("drop-commit", "store.commit.before@2", 5);
}

// ---------------------------------------------------------------------------------------
// Long version: random kills on a stream of exports
// ---------------------------------------------------------------------------------------

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const CLIENTS: u64 = 3;
const EXPORTS_PER_CLIENT: usize = 4;
/// Records of a round's drop file (chunks of 5: three chunks).
const DROP_RECORDS: usize = 12;
/// Numbers are owned by one client each, and the drop files own their own: `number %
/// OWNERS` is the owner (client index, or `CLIENTS` for the drop files).
const OWNERS: u64 = CLIENTS + 1;
const POINTS: [&str; 4] = [
    "export.received",
    "store.commit.before",
    "store.commit.after",
    "export.delivered",
];

/// One record of the stream: its bytes (a later 005 than every earlier record of its
/// number), its title, and, for a drop-file record, its export id (`<batch>#<index>`);
/// a gateway export's id is found from its bytes under `received/`.
#[derive(Clone)]
struct Sent {
    title: String,
    bytes: Vec<u8>,
    export_id: Option<String>,
}

/// Plans the stream's records: fresh numbers or revisions of numbers the owner sent before.
struct Planner {
    rng: Rng,
    next_number: u64,
    version: u64,
    /// Per number: the records sent, in order.
    sent: BTreeMap<u64, Vec<Sent>>,
}

impl Planner {
    fn record(&mut self, owner: u64) -> (u64, Sent) {
        let own: Vec<u64> = self
            .sent
            .keys()
            .copied()
            .filter(|n| n % OWNERS == owner)
            .collect();
        let number = if own.is_empty() || self.rng.below(3) == 0 {
            while self.next_number % OWNERS != owner {
                self.next_number += 1;
            }
            self.next_number += 1;
            self.next_number - 1
        } else {
            own[self.rng.below(own.len() as u64) as usize]
        };
        self.version += 1;
        let version = self.version;
        // One second later than the record before (at most 28 days of them).
        let v005 = format!(
            "202501{:02}{:02}{:02}{:02}.0",
            1 + version / 86_400,
            version / 3_600 % 24,
            version / 60 % 60,
            version % 60
        );
        let title = format!("Number {number} version {version}.");
        let one = Sent {
            bytes: oclc_record(number, &v005, &title),
            title,
            export_id: None,
        };
        (number, one)
    }
}

#[test]
fn random_kills_on_a_stream_of_exports() {
    let rounds: usize = std::env::var("BIBGATE_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let seed: u64 = std::env::var("BIBGATE_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("fault stream: {rounds} rounds, BIBGATE_FAULT_SEED={seed}");
    let mut planner = Planner {
        rng: Rng(seed),
        next_number: 9_000_000,
        version: 0,
        sent: BTreeMap::new(),
    };
    let scratch = Scratch::new("faults-stream");
    init(&scratch);
    let (_gateway, addr) = start_gateway(&scratch);
    let chunk = ["--drop-chunk", "5"];
    let drop_folder = scratch.blobs().join("drop").join(ALPHA);
    // Per drop file: its name, bytes and batch id.
    let mut drops: Vec<(String, Vec<u8>, String)> = Vec::new();
    let mut replies: Vec<(Vec<u8>, String)> = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        // The round's exports, decided up front: per client, new numbers or revisions of
        // the client's own numbers (one client per number, so the exports of a number
        // arrive in order).
        let mut plans: Vec<Vec<Sent>> = Vec::new();
        for client in 0..CLIENTS {
            let mut plan = Vec::new();
            for _ in 0..EXPORTS_PER_CLIENT {
                let (number, one) = planner.record(client);
                planner.sent.entry(number).or_default().push(one.clone());
                plan.push(one);
            }
            plans.push(plan);
        }
        // Every other round, a drop file as well (its numbers repeat within the file).
        let drop_file = (planner.rng.below(2) == 0).then(|| {
            let name = format!("round-{round}.mrc");
            // Recorded at once, so that later records of the file may revise earlier ones.
            let mut placed = Vec::new();
            let mut bytes = Vec::new();
            for _ in 0..DROP_RECORDS {
                let (number, one) = planner.record(CLIENTS);
                bytes.extend_from_slice(&one.bytes);
                let records = planner.sent.entry(number).or_default();
                records.push(one);
                placed.push((number, records.len() - 1));
            }
            let batch_id = format!("drop-{ALPHA}-{name}-{:016x}", stable_hash(&bytes));
            for (i, (number, at)) in placed.into_iter().enumerate() {
                if let Some(one) = planner.sent.get_mut(&number).and_then(|r| r.get_mut(at)) {
                    one.export_id = Some(format!("{batch_id}#{}", i + 1));
                }
            }
            drops.push((name.clone(), bytes.clone(), batch_id));
            (name, bytes)
        });
        let rng = &mut planner.rng;
        let (point, kill) = if rng.below(5) == 0 {
            (None, Duration::from_millis(rng.below(3_000)))
        } else if drop_file.is_some() && rng.below(3) == 0 {
            (
                Some(format!("drop.chunk@{}", 1 + rng.below(2))),
                Duration::ZERO,
            )
        } else {
            let point = POINTS[rng.below(POINTS.len() as u64) as usize];
            (
                Some(format!("{point}@{}", 1 + rng.below(3))),
                Duration::ZERO,
            )
        };
        // Now and then the processor stays down until a client was told "pending".
        let late = rng.below(4) == 0;
        eprintln!(
            "round {round}: {}kill {}, restart {}",
            if drop_file.is_some() {
                "drop file; "
            } else {
                ""
            },
            point
                .as_deref()
                .map_or_else(|| format!("after {kill:?}"), |p| format!("at {p}")),
            if late {
                "after a pending reply"
            } else {
                "at once"
            }
        );
        let processor = start_processor(&scratch, point.as_deref(), &chunk);
        processor.wait_for("bibgate processor started", WAIT);
        if let Some((name, bytes)) = &drop_file {
            let hidden = drop_folder.join(format!(".{name}"));
            std::fs::write(&hidden, bytes).unwrap();
            std::fs::rename(&hidden, drop_folder.join(name)).unwrap();
        }
        let (tx, done) = mpsc::channel();
        for plan in plans {
            let (tx, addr) = (tx.clone(), addr.clone());
            std::thread::spawn(move || {
                for one in plan {
                    let reply = reply_of(&send_in_background(&addr, one.bytes.clone()));
                    let _ = tx.send((one.bytes, reply));
                }
            });
        }
        drop(tx);
        match &point {
            Some(point) => kill_at_failpoint(processor, point),
            None => {
                std::thread::sleep(kill);
                processor.kill();
            }
        }
        let total = CLIENTS as usize * EXPORTS_PER_CLIENT;
        let before = replies.len();
        let receive = |replies: &mut Vec<(Vec<u8>, String)>| match done.recv_timeout(WAIT) {
            Ok(reply) => {
                let pending = reply.1.starts_with("Import pending");
                replies.push(reply);
                pending
            }
            Err(error) => panic!("round {round}: a client did not finish: {error}"),
        };
        if late {
            // Until a pending reply, or every reply (all processed before the kill).
            for _ in 0..total {
                if receive(&mut replies) {
                    break;
                }
            }
        }
        let processor = start_processor(&scratch, None, &chunk);
        while replies.len() - before < total {
            receive(&mut replies);
        }
        // Every export is processed once the inbox is empty (its delete is the last step),
        // and the drop file once it is gone from the drop folder (likewise).
        let deadline = Instant::now() + WAIT;
        while !export_ids(&scratch, &format!("inbox/{ALPHA}")).is_empty()
            || drop_file
                .as_ref()
                .is_some_and(|(name, _)| drop_folder.join(name).exists())
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: the inbox or the drop folder was not emptied; processor output:\n{}",
                processor.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        processor.kill();
    }

    // The end state over all rounds: every gateway export received once, with its result,
    // raw bytes and no result document; every reply the result or "pending".
    let store = scratch.store();
    let sent = &planner.sent;
    let received = export_ids(&scratch, &format!("received/{ALPHA}"));
    let exports = sent
        .values()
        .flatten()
        .filter(|one| one.export_id.is_none())
        .count();
    assert_eq!(received.len(), exports, "one export per record sent");
    let mut by_bytes: HashMap<Vec<u8>, (String, ImportResult)> = HashMap::new();
    for export_id in &received {
        let bytes = blob(&scratch, &format!("received/{ALPHA}/{export_id}.mrc")).unwrap();
        let result = check_export(&scratch, &store, export_id, &bytes);
        assert!(
            by_bytes
                .insert(bytes, (export_id.clone(), result))
                .is_none(),
            "one record received twice"
        );
    }
    assert_eq!(replies.len(), exports);
    let mut pending = 0;
    for (bytes, reply) in &replies {
        let (export_id, result) = &by_bytes[bytes];
        check_reply(reply, export_id, result);
        pending += usize::from(reply.starts_with("Import pending"));
    }
    // Every drop file: kept under received/, a report line per record saying what the
    // store says, one stored result per record.
    for (name, bytes, batch_id) in &drops {
        assert_eq!(
            blob(&scratch, &format!("received/drop/{ALPHA}/{name}")).as_ref(),
            Some(bytes)
        );
        let report = blob(&scratch, &format!("reports/{ALPHA}/{name}.results.jsonl")).unwrap();
        let report = String::from_utf8(report).unwrap();
        let results = store.batch_results(batch_id).unwrap();
        assert_eq!(results.len(), DROP_RECORDS, "{name}");
        let lines: Vec<serde_json::Value> = report
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), DROP_RECORDS, "{name}: {report}");
        for (i, line) in lines.iter().enumerate() {
            let export_id = format!("{batch_id}#{}", i + 1);
            assert_eq!(line["export_id"], export_id.as_str(), "{name}");
            let result = store.result(&export_id).unwrap().unwrap();
            assert_eq!(line["outcome"], result.outcome.as_str(), "{export_id}");
            assert_eq!(
                line["mms_id"].as_str(),
                result.mms_id.as_ref().map(|m| m.0.as_str()),
                "{export_id}"
            );
        }
    }
    // Every number: one record; its first record added it, every later one merged into it
    // in order, each leaving exactly one prior version.
    let resolve = |one: &Sent| -> (String, ImportResult) {
        match &one.export_id {
            Some(id) => (id.clone(), store.result(id).unwrap().unwrap()),
            None => by_bytes[&one.bytes].clone(),
        }
    };
    for (number, records) in sent {
        let mms_id = only_record(&store, *number);
        let resolved: Vec<(String, ImportResult)> = records.iter().map(resolve).collect();
        let ids: Vec<&str> = resolved.iter().map(|(id, _)| id.as_str()).collect();
        let outcomes: Vec<Outcome> = resolved.iter().map(|(_, r)| r.outcome).collect();
        let mut want = vec![Outcome::Merged; records.len()];
        want[0] = Outcome::Added;
        assert_eq!(outcomes, want, "number {number}: {ids:?}");
        for (id, result) in &resolved {
            assert_eq!(result.mms_id.as_ref(), Some(&mms_id), "{id}");
        }
        let last = records.last().unwrap();
        check_record(&store, &mms_id, &last.title, &ids[1..]);
    }
    assert_eq!(store.count_records(ALPHA).unwrap(), sent.len() as u64);
    eprintln!(
        "fault stream: {rounds} rounds, {exports} exports and {} drop files of {DROP_RECORDS} records on {} OCLC numbers ({pending} exports answered \"pending\") in {:.1} s",
        drops.len(),
        sent.len(),
        started.elapsed().as_secs_f64()
    );
}
