//! The port contract suite (T3) against the SQLite store, in memory and on disk, and the
//! folder blob store.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bibgate_store::contract::{self, ZONE_A};
use bibgate_store::{BlobStore, Store};
use bibgate_store_local::{FolderBlobStore, SqliteStore};

/// A fresh path under `root` for each call, so that each check gets its own folder.
fn fresh_dir(root: &tempfile::TempDir, counter: &AtomicUsize) -> PathBuf {
    let dir = root
        .path()
        .join(format!("check-{}", counter.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir(&dir).unwrap();
    dir
}

#[test]
fn in_memory_store_passes_the_contract() {
    contract::store_contract(&|| Box::new(SqliteStore::in_memory().unwrap()));
}

#[test]
fn file_store_passes_the_contract() {
    let root = tempfile::tempdir().unwrap();
    let counter = AtomicUsize::new(0);
    contract::store_contract(&|| {
        let dir = fresh_dir(&root, &counter);
        Box::new(SqliteStore::open(&dir.join("bibgate.sqlite")).unwrap()) as Box<dyn Store>
    });
}

#[test]
fn folder_blob_store_passes_the_contract() {
    let root = tempfile::tempdir().unwrap();
    let counter = AtomicUsize::new(0);
    contract::blob_contract(&|| {
        let dir = fresh_dir(&root, &counter);
        Box::new(FolderBlobStore::new(dir.join("blobs")).unwrap()) as Box<dyn BlobStore>
    });
}

#[test]
fn committed_add_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bibgate.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.path(), Some(path.as_path()));
    contract::setup_zones(&store);
    let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
    let record = contract::sample_record(
        ZONE_A,
        &mms_id,
        &[contract::active(42), contract::cancelled(43)],
    );
    let add = contract::add_commit(&record, &[], "e-durable");
    store.commit(&add).unwrap();
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.record(ZONE_A, &mms_id).unwrap(), Some(record));
    assert_eq!(reopened.find_by_oclc(ZONE_A, &[42, 43]).unwrap().len(), 2);
    assert!(reopened.result("e-durable").unwrap().is_some());
    assert_eq!(reopened.count_records(ZONE_A).unwrap(), 1);
    let next = reopened.allocate_mms_id(ZONE_A).unwrap();
    assert_ne!(next, mms_id, "the serial counter survives reopening");
}

#[cfg(unix)]
#[test]
fn r18_the_database_and_its_wal_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bibgate.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    contract::setup_zones(&store);
    let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
    let record = contract::sample_record(ZONE_A, &mms_id, &[contract::active(42)]);
    store
        .commit(&contract::add_commit(&record, &[], "e-modes"))
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("bibgate.sqlite{suffix}"));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(store);

    // A database an older version left world-readable is tightened when opened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(reopened.result("e-modes").unwrap().is_some());
}

#[test]
fn two_handles_on_one_file_serialise_their_commits() {
    // Two stores on the same file stand for two processes: SQLite's write lock, not the
    // in-process mutex, must keep the expectation check and the add together.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bibgate.sqlite");
    let first = SqliteStore::open(&path).unwrap();
    let second = SqliteStore::open(&path).unwrap();
    contract::setup_zones(&first);
    for round in 0..10u64 {
        let number = 70_000 + round;
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&first, &second]
                .into_iter()
                .enumerate()
                .map(|(store_idx, store)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        assert!(store.find_by_oclc(ZONE_A, &[number]).unwrap().is_empty());
                        let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
                        let record =
                            contract::sample_record(ZONE_A, &mms_id, &[contract::active(number)]);
                        let add =
                            contract::add_commit(&record, &[], &format!("two-{round}-{store_idx}"));
                        barrier.wait();
                        store.commit(&add)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let n_ok = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(n_ok, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|outcome| match outcome {
                Ok(()) => true,
                Err(err) => err.is_conflict(),
            }),
            "round {round}: {outcomes:?}"
        );
    }
    assert_eq!(second.count_records(ZONE_A).unwrap(), 10);
}

#[test]
fn sqlite_policy_store_passes_the_policy_contract() {
    let root = tempfile::tempdir().unwrap();
    let counter = AtomicUsize::new(0);
    bibgate_store::contract_policy::policy_store_contract(&|| {
        let dir = fresh_dir(&root, &counter);
        let blobs: std::sync::Arc<dyn BlobStore> =
            std::sync::Arc::new(FolderBlobStore::new(dir.join("blobs")).unwrap());
        let db = SqliteStore::open(&dir.join("bibgate.sqlite")).unwrap();
        Box::new(bibgate_store_local::SqlitePolicyStore::new(db, blobs))
    });
}

#[test]
fn blob_logon_locks_in_the_folder_pass_the_contract() {
    let root = tempfile::tempdir().unwrap();
    let blobs: std::sync::Arc<dyn BlobStore> =
        std::sync::Arc::new(FolderBlobStore::new(root.path().join("blobs")).unwrap());
    bibgate_store::logon::logon_locks_contract(&bibgate_store::BlobLogonLocks::new(blobs));
}
