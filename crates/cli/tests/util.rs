//! What the test modules share: the `bibgate` command, scratch folders and the shared corpus.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use bibgate_store_local::SqliteStore;

/// The variable that arms a failpoint in the processor.
pub const FAILPOINT: &str = "BIBGATE_FAILPOINT";

/// The path of the `bibgate` binary under test: `$BIBGATE_TEST_BIN` when set (for a target
/// directory shared by several checkouts, whose `target/debug/bibgate` the last build of any
/// of them overwrites), else the one cargo built for this test.
pub fn bibgate_path() -> PathBuf {
    std::env::var_os("BIBGATE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bibgate")))
}

/// The `bibgate` binary under test, never armed (a failpoint or processor setting in the
/// caller's environment is removed), logging at `info`.
pub fn bibgate() -> Command {
    let mut command = Command::new(bibgate_path());
    command
        .env_remove(FAILPOINT)
        .env_remove("BIBGATE_DROP_CHUNK")
        .env_remove("BIBGATE_DROP_SETTLE_MS")
        .env_remove("BIBGATE_BACKEND")
        .env_remove("BIBGATE_BUCKET")
        .env_remove("BIBGATE_TABLE")
        .env("RUST_LOG", "info");
    command
}

/// [`bibgate`] on the data directory `data_dir`.
pub fn bibgate_in(data_dir: &Path) -> Command {
    let mut command = bibgate();
    command.arg("--data-dir").arg(data_dir);
    command
}

/// Runs the command and checks that it succeeded (its stderr is the failure message).
pub fn run_ok(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A file of the shared corpus (`$BIBGATE_SHARED/corpus`, or `../shared/corpus` beside the
/// repository).
pub fn corpus(path: &str) -> PathBuf {
    let shared = std::env::var_os("BIBGATE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("corpus").join(path)
}

/// A fresh, empty folder for one test, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new folder named after `name` (and unique within the test run).
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The data directory in it (created by the first command that opens it).
    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    /// The blob folder of the data directory.
    pub fn blobs(&self) -> PathBuf {
        self.data().join("blobs")
    }

    /// The data directory's store, opened by the test itself.
    pub fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data().join("bibgate.sqlite")).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
