use super::*;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn r18_blobs_and_their_folders_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data").join("blobs");
    let store = FolderBlobStore::new(&root).unwrap();
    // A world-readable input stays world-readable; its copy does not.
    let input = dir.path().join("input.mrc");
    fs::write(&input, b"bytes").unwrap();
    fs::set_permissions(&input, fs::Permissions::from_mode(0o644)).unwrap();
    store
        .put("received/A/e1.mrc", &fs::read(&input).unwrap())
        .unwrap();
    assert!(store.put_if_absent("inbox/A/e2.mrc", b"x").unwrap());
    store
        .copy_if_absent_many(&[("inbox/A/e2.mrc", "received/A/e2.mrc")])
        .into_iter()
        .for_each(|copied| assert!(copied.unwrap()));
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    for folder in [&root, &root.join("received"), &root.join("received/A")] {
        assert_eq!(mode(folder), 0o700, "{}", folder.display());
    }
    for file in ["received/A/e1.mrc", "inbox/A/e2.mrc", "received/A/e2.mrc"] {
        assert_eq!(mode(&root.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&input), 0o644);
}

#[test]
fn bad_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    for key in [
        "",
        "/etc/passwd",
        "a/../b",
        "..",
        "a//b",
        "a/",
        "./a",
        "a\0b",
        "a\\b",
        "a/.bibgate-tmp-1",
    ] {
        let err = store.put(key, b"x").unwrap_err();
        assert!(err.to_string().contains("is not valid"), "{key:?}: {err}");
        assert!(store.get(key).is_err(), "{key:?}");
    }
    assert_eq!(store.list("").unwrap(), Vec::<String>::new());
}

#[test]
fn stale_temporary_files_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    store.put("inbox/A/e1.mrc", b"blob").unwrap();
    store.put("received/A/e0.mrc", b"kept").unwrap();
    let backdate = |path: &Path| {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3_700);
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(hour_ago).unwrap();
    };
    let temp = |folder: &str, name: &str, old: bool| {
        let path = dir.path().join(folder).join(name);
        fs::write(&path, b"partial").unwrap();
        if old {
            backdate(&path);
        }
        path
    };
    let stale = temp("inbox/A", ".bibgate-tmp-1-1", true);
    let fresh = temp("inbox/A", ".bibgate-tmp-1-2", false);
    let stale_elsewhere = temp("received/A", ".bibgate-tmp-1-3", true);
    backdate(&dir.path().join("inbox/A/e1.mrc"));
    let hour = std::time::Duration::from_secs(3_600);

    assert_eq!(store.remove_stale_temporaries(hour).unwrap(), 2);
    assert!(!stale.exists());
    assert!(!stale_elsewhere.exists());
    assert!(fresh.exists(), "a write in progress keeps its file");
    assert_eq!(store.get("inbox/A/e1.mrc").unwrap().unwrap(), b"blob");
    assert_eq!(store.remove_stale_temporaries(hour).unwrap(), 0);
    assert_eq!(
        store.list("").unwrap(),
        vec!["inbox/A/e1.mrc".to_owned(), "received/A/e0.mrc".to_owned()]
    );
}

#[test]
fn temporary_files_are_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    store.put("a/b", b"1").unwrap();
    fs::write(dir.path().join("a").join(".bibgate-tmp-9-9"), b"partial").unwrap();
    assert_eq!(store.list("").unwrap(), vec!["a/b".to_owned()]);
}

#[test]
fn put_many_fails_a_bad_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    let outcomes = store.put_many(&[("a/1", b"one"), ("bad//key", b"x"), ("a/2", b"two")]);
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
    assert!(outcomes[1].is_err());
    assert_eq!(store.get("a/1").unwrap(), Some(b"one".to_vec()));
    assert_eq!(store.get("a/2").unwrap(), Some(b"two".to_vec()));
    assert_eq!(
        store.list("").unwrap(),
        vec!["a/1".to_owned(), "a/2".to_owned()]
    );
}

/// Runs `FolderSync::sync` on `threads` threads; the first sync waits until every thread
/// has taken its number, and fails when `first_fails`. Returns each thread's outcome
/// (the first thread's first) and the number of syncs run.
fn contend(threads: usize, first_fails: bool) -> (Vec<io::Result<()>>, u64) {
    let folder = Arc::new(FolderSync::default());
    let calls = Arc::new(AtomicU64::new(0));
    let sync = {
        let (folder, calls) = (folder.clone(), calls.clone());
        move || {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                while lock(&folder.state).taken < threads as u64 {
                    std::thread::yield_now();
                }
                if first_fails {
                    return Err(io::Error::other("disk gone"));
                }
            }
            Ok(())
        }
    };
    let first = {
        let (folder, sync) = (folder.clone(), sync.clone());
        std::thread::spawn(move || folder.sync(sync))
    };
    while !lock(&folder.state).running {
        std::thread::yield_now();
    }
    let others: Vec<_> = (1..threads)
        .map(|_| {
            let (folder, sync) = (folder.clone(), sync.clone());
            std::thread::spawn(move || folder.sync(sync))
        })
        .collect();
    let mut outcomes = vec![first.join().unwrap()];
    outcomes.extend(others.into_iter().map(|t| t.join().unwrap()));
    let runs = lock(&folder.state).runs;
    assert_eq!(runs, calls.load(Ordering::SeqCst));
    (outcomes, runs)
}

#[test]
fn writers_waiting_for_a_folder_sync_share_the_next_one() {
    let (outcomes, runs) = contend(8, false);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // The first sync started before the other seven took their numbers: it covers only
    // the first; one more covers all seven.
    assert_eq!(runs, 2);
}

#[test]
fn a_failed_folder_sync_fails_its_runner_and_the_others_sync_again() {
    let (outcomes, runs) = contend(3, true);
    assert_eq!(outcomes[0].as_ref().unwrap_err().to_string(), "disk gone");
    assert!(outcomes[1..].iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(runs, 2);
}

#[test]
fn concurrent_puts_into_one_folder_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || store.put(&format!("inbox/a/{i}"), b"x"))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    assert_eq!(store.list("inbox/a/").unwrap().len(), 16);
    // Their folder syncs went through the folder's shared `FolderSync` (whose sharing
    // the two tests above check deterministically).
    assert!(lock(&store.syncs.0).contains_key(&dir.path().join("inbox").join("a")));
}

#[test]
fn a_folder_emptied_by_deletes_stays_and_its_name_is_free_for_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    store.put("a/b/c", b"1").unwrap();
    assert_eq!(store.get("a").unwrap(), None, "a folder is not a blob");
    assert!(!store.delete("a/b").unwrap(), "a folder is not a blob");
    assert!(store.delete("a/b/c").unwrap());
    assert!(dir.path().join("a").join("b").is_dir(), "the folder stays");
    assert!(store.list("a/").unwrap().is_empty());
    assert_eq!(store.get("a").unwrap(), None);
    store.put("a", b"2").unwrap();
    assert_eq!(store.get("a").unwrap(), Some(b"2".to_vec()));
    // The same for put_if_absent and copies.
    store.put("x/y", b"3").unwrap();
    store.delete("x/y").unwrap();
    assert!(store.put_if_absent("x", b"4").unwrap());
    assert_eq!(store.get("x").unwrap(), Some(b"4".to_vec()));
    store.put("p/q", b"5").unwrap();
    store.delete("p/q").unwrap();
    let copied = store.copy_if_absent_many(&[("x", "p")]);
    assert!(matches!(copied.as_slice(), [Ok(true)]), "{copied:?}");
    assert_eq!(store.get("p").unwrap(), Some(b"4".to_vec()));
}

#[test]
fn a_folder_with_blobs_is_not_overwritten_by_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    store.put("a/b/c", b"1").unwrap();
    let err = store.put("a", b"2").unwrap_err().to_string();
    assert!(err.contains("folder of other blobs"), "{err}");
    assert!(store.put_if_absent("a", b"2").is_err());
    assert_eq!(store.get("a/b/c").unwrap(), Some(b"1".to_vec()));
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn new_folders_are_created_with_their_parents() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::new(dir.path()).unwrap();
    store.put("inbox/A/1", b"1").unwrap();
    store.put("inbox/B/2", b"2").unwrap();
    assert_eq!(
        store.list("inbox/").unwrap(),
        vec!["inbox/A/1", "inbox/B/2"]
    );
    // Each new folder's parent was synced once, through the shared folder syncs.
    let syncs = lock(&store.syncs.0);
    let runs = |path: &Path| syncs.get(path).map(|f| lock(&f.state).runs);
    assert_eq!(runs(dir.path()), Some(1), "root: for inbox/");
    assert_eq!(
        runs(&dir.path().join("inbox")),
        Some(2),
        "inbox/: for A and B"
    );
}
