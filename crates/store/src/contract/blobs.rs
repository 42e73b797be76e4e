//! Checks of the blob store.

use std::io::Read;
use std::sync::Barrier;
use std::thread;

use super::support::{join, ok};
use crate::{BlobStore, Error};

fn blob_get(store: &dyn BlobStore, key: &str) -> Option<Vec<u8>> {
    ok(store.get(key), &format!("get({key:?})"))
}

pub(super) fn check_blob_basics(store: &dyn BlobStore) {
    let key = "inbox/01DEMO_ALPHA/export-1.mrc";
    assert_eq!(blob_get(store, key), None, "a missing key reads as None");
    ok(store.put(key, b"first\x00\xff"), "put");
    assert_eq!(blob_get(store, key), Some(b"first\x00\xff".to_vec()));
    ok(store.put(key, b"second"), "put (replace)");
    assert_eq!(
        blob_get(store, key),
        Some(b"second".to_vec()),
        "put replaces"
    );
    ok(store.put("empty", b""), "put(empty)");
    assert_eq!(blob_get(store, "empty"), Some(Vec::new()));
    assert!(ok(store.delete(key), "delete"));
    assert_eq!(blob_get(store, key), None, "a deleted key reads as None");
    assert!(
        !ok(store.delete(key), "delete again"),
        "deleting a missing key returns false"
    );
    assert_eq!(blob_get(store, "empty"), Some(Vec::new()));
}

pub(super) fn check_blob_put_if_absent(store: &dyn BlobStore) {
    let key = "results/batch-1.json";
    assert!(ok(store.put_if_absent(key, b"one"), "put_if_absent"));
    assert!(
        !ok(store.put_if_absent(key, b"two"), "put_if_absent again"),
        "put_if_absent of a taken key returns false"
    );
    assert_eq!(
        blob_get(store, key),
        Some(b"one".to_vec()),
        "put_if_absent of a taken key keeps the bytes"
    );
    assert!(ok(store.delete(key), "delete"));
    assert!(ok(
        store.put_if_absent(key, b"three"),
        "put_if_absent after delete"
    ));
    assert_eq!(blob_get(store, key), Some(b"three".to_vec()));
}

pub(super) fn check_blob_put_if_absent_concurrently(store: &dyn BlobStore) {
    let key = "claims/one";
    let n_threads = 8;
    let barrier = Barrier::new(n_threads);
    let winners: Vec<Vec<u8>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..n_threads)
            .map(|thread_idx| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let bytes = format!("claimed by {thread_idx}").into_bytes();
                    barrier.wait();
                    ok(store.put_if_absent(key, &bytes), "concurrent put_if_absent")
                        .then_some(bytes)
                })
            })
            .collect();
        handles.into_iter().filter_map(join).collect()
    });
    assert_eq!(
        winners.len(),
        1,
        "{} of {n_threads} concurrent put_if_absent calls won",
        winners.len()
    );
    assert_eq!(blob_get(store, key), winners.into_iter().next());
}

pub(super) fn check_blob_put_many(store: &dyn BlobStore) {
    assert!(store.put_many(&[]).is_empty(), "no blobs, no outcomes");
    ok(store.put("results/2.json", b"old"), "put");
    // (Which keys are refused differs by adapter; the folder store's tests cover a bad key
    // failing alone.)
    let outcomes = store.put_many(&[
        ("results/1.json", b"one"),
        ("results/2.json", b"two"),
        ("other/3.json", b""),
    ]);
    assert_eq!(outcomes.len(), 3, "one outcome per blob");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(blob_get(store, "results/1.json"), Some(b"one".to_vec()));
    assert_eq!(
        blob_get(store, "results/2.json"),
        Some(b"two".to_vec()),
        "put_many replaces"
    );
    assert_eq!(blob_get(store, "other/3.json"), Some(Vec::new()));
    assert_eq!(
        ok(store.list("results/"), "list"),
        vec!["results/1.json".to_owned(), "results/2.json".to_owned()],
        "nothing else appears"
    );
}

pub(super) fn check_blob_put_if_absent_many(store: &dyn BlobStore) {
    assert!(
        store.put_if_absent_many(&[]).is_empty(),
        "no blobs, no outcomes"
    );
    ok(store.put("tasks/1.json", b"taken"), "put");
    let outcomes: Vec<bool> = store
        .put_if_absent_many(&[
            ("tasks/0.json", b"zero"),
            ("tasks/1.json", b"one"),
            ("tasks/2.json", b""),
        ])
        .into_iter()
        .map(|outcome| ok(outcome, "put_if_absent_many"))
        .collect();
    assert_eq!(outcomes, [true, false, true], "only free keys are written");
    assert_eq!(blob_get(store, "tasks/0.json"), Some(b"zero".to_vec()));
    assert_eq!(
        blob_get(store, "tasks/1.json"),
        Some(b"taken".to_vec()),
        "a taken key keeps its bytes"
    );
    assert_eq!(blob_get(store, "tasks/2.json"), Some(Vec::new()));
    // One key twice in one call: exactly one write wins, whatever runs first.
    let twice: Vec<bool> = store
        .put_if_absent_many(&[("tasks/3.json", b"a"), ("tasks/3.json", b"b")])
        .into_iter()
        .map(|outcome| ok(outcome, "put_if_absent_many (one key twice)"))
        .collect();
    assert_eq!(twice.iter().filter(|&&wrote| wrote).count(), 1, "{twice:?}");
    let winner: &[u8] = if twice[0] { b"a" } else { b"b" };
    assert_eq!(blob_get(store, "tasks/3.json"), Some(winner.to_vec()));
    // More blobs than an adapter keeps in flight at once.
    let keys: Vec<String> = (0..70).map(|n| format!("many/{n:03}.json")).collect();
    let blobs: Vec<(&str, &[u8])> = keys
        .iter()
        .map(|key| (key.as_str(), key.as_bytes()))
        .collect();
    let outcomes = store.put_if_absent_many(&blobs);
    assert_eq!(outcomes.len(), 70, "one outcome per blob");
    assert!(
        outcomes.iter().all(|outcome| matches!(outcome, Ok(true))),
        "{outcomes:?}"
    );
    assert_eq!(ok(store.list("many/"), "list"), keys, "every blob written");
}

pub(super) fn check_blob_get_many(store: &dyn BlobStore) {
    assert!(store.get_many(&[]).is_empty(), "no keys, no outcomes");
    let keys: Vec<String> = (0..70).map(|n| format!("parts/{n:03}.jsonl")).collect();
    for key in &keys {
        ok(store.put(key, key.as_bytes()), "put");
    }
    ok(store.put("parts/empty", b""), "put");
    let mut asked: Vec<&str> = keys.iter().map(String::as_str).rev().collect();
    asked.insert(3, "parts/missing");
    asked.insert(5, "parts/empty");
    asked.push(&keys[0]);
    let read: Vec<Option<Vec<u8>>> = store
        .get_many(&asked)
        .into_iter()
        .map(|outcome| ok(outcome, "get_many"))
        .collect();
    let expected: Vec<Option<Vec<u8>>> = asked
        .iter()
        .map(|&key| match key {
            "parts/missing" => None,
            "parts/empty" => Some(Vec::new()),
            key => Some(key.as_bytes().to_vec()),
        })
        .collect();
    assert_eq!(
        read, expected,
        "one outcome per key, in the order asked; a missing key is None"
    );
}

pub(super) fn check_blob_copy_if_absent_many(store: &dyn BlobStore) {
    assert!(
        store.copy_if_absent_many(&[]).is_empty(),
        "no pairs, no outcomes"
    );
    ok(store.put("inbox/a/1.mrc", b"one"), "put");
    ok(store.put("inbox/a/2.mrc", b"two"), "put");
    ok(store.put("inbox/b/3.mrc", b"three"), "put");
    ok(store.put("received/a/2.mrc", b"kept"), "put");
    let outcomes = store.copy_if_absent_many(&[
        ("inbox/a/1.mrc", "received/a/1.mrc"),
        ("inbox/a/2.mrc", "received/a/2.mrc"),
        ("inbox/a/missing.mrc", "received/a/missing.mrc"),
        ("inbox/b/3.mrc", "received/b/3.mrc"),
    ]);
    assert_eq!(outcomes.len(), 4, "one outcome per pair");
    assert_eq!(
        outcomes[0].as_ref().ok(),
        Some(&true),
        "a free target is copied"
    );
    assert_eq!(
        outcomes[1].as_ref().ok(),
        Some(&false),
        "an existing target is kept"
    );
    assert!(
        matches!(outcomes[2], Err(Error::NotFound(_))),
        "a missing source is NotFound: {:?}",
        outcomes[2]
    );
    assert_eq!(
        outcomes[3].as_ref().ok(),
        Some(&true),
        "pairs in other folders too"
    );
    assert_eq!(blob_get(store, "received/a/1.mrc"), Some(b"one".to_vec()));
    assert_eq!(blob_get(store, "received/a/2.mrc"), Some(b"kept".to_vec()));
    assert_eq!(blob_get(store, "received/b/3.mrc"), Some(b"three".to_vec()));
    assert_eq!(blob_get(store, "received/a/missing.mrc"), None);
    // The copy is independent of its source.
    ok(store.delete("inbox/a/1.mrc"), "delete");
    ok(store.put("inbox/b/3.mrc", b"replaced"), "put");
    assert_eq!(blob_get(store, "received/a/1.mrc"), Some(b"one".to_vec()));
    assert_eq!(blob_get(store, "received/b/3.mrc"), Some(b"three".to_vec()));
}

pub(super) fn check_blob_list(store: &dyn BlobStore) {
    assert_eq!(ok(store.list(""), "list(\"\")"), Vec::<String>::new());
    let keys = [
        "inbox/01DEMO_ALPHA/b.mrc",
        "results/x.json",
        "inbox/01DEMO_ALPHA/a.mrc",
        "inbox/01DEMO_BETA/c.mrc",
        "inbox/01DEMO_ALPHA/sub/d.mrc",
        "inbox/01DEMO_ALPHA-old.mrc",
    ];
    for key in keys {
        ok(store.put(key, key.as_bytes()), &format!("put({key:?})"));
    }
    let list = |prefix: &str| ok(store.list(prefix), &format!("list({prefix:?})"));
    assert_eq!(
        list("inbox/01DEMO_ALPHA/"),
        vec![
            "inbox/01DEMO_ALPHA/a.mrc",
            "inbox/01DEMO_ALPHA/b.mrc",
            "inbox/01DEMO_ALPHA/sub/d.mrc",
        ],
        "list() returns the keys under the prefix, nested ones too, in lexical order"
    );
    assert_eq!(
        list("inbox/01DEMO"),
        vec![
            "inbox/01DEMO_ALPHA-old.mrc",
            "inbox/01DEMO_ALPHA/a.mrc",
            "inbox/01DEMO_ALPHA/b.mrc",
            "inbox/01DEMO_ALPHA/sub/d.mrc",
            "inbox/01DEMO_BETA/c.mrc",
        ],
        "a prefix need not end at a `/`"
    );
    let mut all: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    all.sort();
    assert_eq!(list(""), all, "list(\"\") returns every key");
    assert_eq!(list("nothing/"), Vec::<String>::new());
    assert_eq!(list("results/x.json"), vec!["results/x.json"]);
    assert!(ok(store.delete("inbox/01DEMO_ALPHA/sub/d.mrc"), "delete"));
    assert_eq!(
        list("inbox/01DEMO_ALPHA/"),
        vec!["inbox/01DEMO_ALPHA/a.mrc", "inbox/01DEMO_ALPHA/b.mrc"],
        "a deleted key is not listed"
    );
}

pub(super) fn check_blob_put_stream_and_open(store: &dyn BlobStore) {
    /// A source that hands out its bytes a few at a time, as a file or pipe may.
    struct Trickle(Vec<u8>, usize);
    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let written = ok(
        store.put_stream("batches/b1/file.mrc", &mut Trickle(bytes.clone(), 0)),
        "put_stream",
    );
    assert_eq!(written, bytes.len() as u64, "put_stream counts the bytes");
    assert_eq!(blob_get(store, "batches/b1/file.mrc"), Some(bytes.clone()));
    // A large blob read back through `open` a little at a time, as a hash or a download
    // goes through it.
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    ok(store.put("batches/b1/large.mrc", &large), "put");
    let mut reader = ok(store.open("batches/b1/large.mrc"), "open").expect("the blob is there");
    let mut read_back = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        let n = reader.read(&mut piece).expect("the blob reads");
        if n == 0 {
            break;
        }
        read_back.extend_from_slice(&piece[..n]);
    }
    assert!(read_back == large, "open reads every byte, in order");
    ok(
        store.put_stream("batches/b1/file.mrc", &mut &b"replaced"[..]),
        "put_stream over a blob",
    );
    let mut read_back = Vec::new();
    ok(store.open("batches/b1/file.mrc"), "open")
        .expect("the blob is there")
        .read_to_end(&mut read_back)
        .expect("the blob reads");
    assert_eq!(read_back, b"replaced", "put_stream replaces; open reads");
    assert!(
        ok(store.open("batches/b1/missing.mrc"), "open a free key").is_none(),
        "a free key opens as none"
    );
    assert!(
        ok(store.open("batches/b1"), "open a folder").is_none(),
        "a prefix is not a blob"
    );
}

pub(super) fn check_blob_put_stream_if_absent(store: &dyn BlobStore) {
    /// A source that fails once `.1` bytes were read (`.0` so far), as a report's parts
    /// do when one is deleted while they are read.
    struct GoneAt(usize, usize);
    impl std::io::Read for GoneAt {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 >= self.1 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "a part is gone",
                ));
            }
            let n = buf.len().min(self.1 - self.0);
            buf[..n].fill(b'x');
            self.0 += n;
            Ok(n)
        }
    }
    let key = "reports/contract/streamed.jsonl";
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert!(
        ok(
            store.put_stream_if_absent(key, &mut &bytes[..]),
            "put_stream_if_absent"
        ),
        "a free key is written"
    );
    assert_eq!(blob_get(store, key), Some(bytes.clone()));
    assert!(
        !ok(
            store.put_stream_if_absent(key, &mut &b"other"[..]),
            "put_stream_if_absent on a taken key"
        ),
        "a taken key is not written"
    );
    assert_eq!(
        blob_get(store, key),
        Some(bytes),
        "a taken key keeps its bytes"
    );
    // Larger than what an adapter may send from memory (1 MiB on S3): written once.
    let large_key = "reports/contract/large.jsonl";
    let large: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    assert!(ok(
        store.put_stream_if_absent(large_key, &mut &large[..]),
        "put_stream_if_absent of 9 MiB"
    ));
    assert!(
        blob_get(store, large_key) == Some(large.clone()),
        "9 MiB read back"
    );
    assert!(!ok(
        store.put_stream_if_absent(large_key, &mut &b"other"[..]),
        "put_stream_if_absent of a taken large key"
    ));
    let replaced: Vec<u8> = large.iter().map(|b| b.wrapping_add(1)).collect();
    assert_eq!(
        ok(
            store.put_stream(large_key, &mut &replaced[..]),
            "put_stream of 9 MiB"
        ),
        replaced.len() as u64
    );
    assert!(
        blob_get(store, large_key) == Some(replaced),
        "put_stream of 9 MiB replaces"
    );
    // A source that fails: nothing is written, and a part that is gone says so.
    for at in [10, 9 * 1024 * 1024] {
        let failing = "reports/contract/failing.jsonl";
        match store.put_stream_if_absent(failing, &mut GoneAt(0, at)) {
            Err(crate::Error::NotFound(_)) => {}
            other => panic!("a source whose part is gone after {at} bytes: {other:?}"),
        }
        assert_eq!(
            blob_get(store, failing),
            None,
            "nothing written after {at} bytes"
        );
    }
}

pub(super) fn check_blob_delete_many(store: &dyn BlobStore) {
    let keys: Vec<String> = (0..5)
        .map(|i| format!("reports/contract/many/{i}.jsonl"))
        .collect();
    for key in &keys[..4] {
        store.put(key, b"x").unwrap();
    }
    store.put("reports/contract/kept.jsonl", b"kept").unwrap();
    // The fifth key was never written: no error.
    ok(store.delete_many(&keys), "delete_many");
    assert_eq!(
        ok(store.list("reports/contract/many/"), "list"),
        Vec::<String>::new(),
        "every key is gone"
    );
    assert_eq!(
        blob_get(store, "reports/contract/kept.jsonl"),
        Some(b"kept".to_vec()),
        "another key stays"
    );
    ok(store.delete_many(&[]), "delete_many of no keys");
}

pub(super) fn check_blob_get_range(store: &dyn BlobStore) {
    let key = "contract/range/blob.bin";
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    store.put(key, &bytes).unwrap();
    assert_eq!(store.get_range(key, 0, 10).unwrap().unwrap(), &bytes[..10]);
    assert_eq!(
        store.get_range(key, 990, 100).unwrap().unwrap(),
        &bytes[990..],
        "fewer bytes at the end"
    );
    assert_eq!(
        store.get_range(key, 100, 1).unwrap().unwrap(),
        &bytes[100..101]
    );
    assert_eq!(
        store.get_range(key, 1000, 10).unwrap().unwrap(),
        Vec::<u8>::new(),
        "none from the end on"
    );
    assert_eq!(
        store.get_range(key, 0, 0).unwrap().unwrap(),
        Vec::<u8>::new()
    );
    assert_eq!(
        store.get_range("contract/range/missing", 0, 10).unwrap(),
        None
    );
    assert_eq!(
        store.get_range("contract/range/missing", 0, 0).unwrap(),
        None
    );
}
