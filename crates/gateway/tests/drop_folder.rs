//! The drop folder through the real processor (issue 18): a file written slowly is imported
//! whole, files of the same name keep both reports, `.part` names are left alone, and a
//! file that cannot be imported is moved aside with a report, once.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bibgate_gateway::ProcessorConfig;
use bibgate_store::BlobStore;
use common::*;

fn drop_path(harness: &Harness, file: &str) -> PathBuf {
    harness.dir.path().join("blobs/drop").join(ALPHA).join(file)
}

/// Waits (up to `seconds`) until the drop folder holds only its README (and `also`).
async fn wait_for_empty_drop_folder(harness: &Harness, also: &[&str], seconds: u64) {
    let mut expected: Vec<String> = also
        .iter()
        .map(|file| format!("drop/{ALPHA}/{file}"))
        .collect();
    expected.push(format!("drop/{ALPHA}/README.txt"));
    expected.sort();
    for _ in 0..seconds * 20 {
        if harness.blobs.list(&format!("drop/{ALPHA}/")).unwrap() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the drop folder still holds {:?} after {seconds} s",
        harness.blobs.list(&format!("drop/{ALPHA}/")).unwrap()
    );
}

fn report_lines(harness: &Harness, key: &str) -> Vec<serde_json::Value> {
    let report = harness
        .blobs
        .get(key)
        .unwrap()
        .unwrap_or_else(|| panic!("no report {key}"));
    String::from_utf8(report)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_a_drop_file_written_in_five_pieces_3_s_apart_has_all_its_records_imported() {
    // The production settle time (2 s), shorter than the writer's pauses.
    let mut harness = Harness::start_without_processor(config()).await;
    harness.start_processor(ProcessorConfig {
        drop_interval: Duration::from_millis(200),
        ..ProcessorConfig::default()
    });
    bibgate_inbox::ensure_drop_folders(&harness.services).unwrap();
    let mut file = Vec::new();
    for number in 0..5 {
        file.extend(record_bytes(18_100 + number, "Written slowly."));
    }
    // Five pieces of equal length: each cut falls inside a record.
    let cuts: Vec<usize> = (1..5).map(|i| file.len() * i / 5 + 11).collect();
    for &cut in &cuts {
        assert_ne!(file[cut - 1], 0x1D, "a cut at a record's end");
    }
    let path = drop_path(&harness, "slow.mrc");
    let writer_path = path.clone();
    let pieces = file.clone();
    let writer = tokio::task::spawn_blocking(move || {
        // One open file, written piece by piece, as a slow copy does.
        let mut out = std::fs::File::create(&writer_path).unwrap();
        let mut from = 0;
        for (i, &to) in cuts
            .iter()
            .chain(std::iter::once(&pieces.len()))
            .enumerate()
        {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(3));
            }
            out.write_all(&pieces[from..to]).unwrap();
            out.flush().unwrap();
            from = to;
        }
    });
    writer.await.unwrap();
    wait_for_empty_drop_folder(&harness, &[], 30).await;
    let lines = report_lines(&harness, &format!("reports/{ALPHA}/slow.mrc.results.jsonl"));
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|line| line["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["added"; 5], "{lines:?}");
    assert_eq!(harness.count(ALPHA), 5);
    assert_eq!(
        harness
            .blobs
            .get(&format!("received/drop/{ALPHA}/slow.mrc"))
            .unwrap()
            .unwrap(),
        file,
        "every byte kept"
    );
    harness.stop().await;
}

#[tokio::test]
async fn r18_two_drop_files_of_the_same_name_keep_both_reports() {
    let harness = Harness::start(config()).await;
    bibgate_inbox::ensure_drop_folders(&harness.services).unwrap();
    let first = record_bytes(18_201, "First of the name.");
    std::fs::write(drop_path(&harness, "books.mrc"), &first).unwrap();
    wait_for_empty_drop_folder(&harness, &[], 10).await;
    let second = record_bytes(18_202, "Second of the name.");
    std::fs::write(drop_path(&harness, "books.mrc"), &second).unwrap();
    wait_for_empty_drop_folder(&harness, &[], 10).await;
    let reports = harness.blobs.list(&format!("reports/{ALPHA}/")).unwrap();
    let hash = bibgate_inbox::layout::stable_hash(&second);
    let beside = format!("reports/{ALPHA}/books.mrc.{hash:016x}.results.jsonl");
    assert_eq!(
        reports,
        vec![
            beside.clone(),
            format!("reports/{ALPHA}/books.mrc.results.jsonl")
        ]
    );
    let plain = report_lines(
        &harness,
        &format!("reports/{ALPHA}/books.mrc.results.jsonl"),
    );
    assert_eq!(plain[0]["oclc_numbers"][0], 18_201);
    assert_eq!(
        report_lines(&harness, &beside)[0]["oclc_numbers"][0],
        18_202
    );
    assert_eq!(harness.count(ALPHA), 2);
    harness.stop().await;
}

#[tokio::test]
async fn r18_part_files_wait_other_files_are_imported_by_content_or_moved_aside_once() {
    let harness = Harness::start(config()).await;
    bibgate_inbox::ensure_drop_folders(&harness.services).unwrap();
    let marc = record_bytes(18_301, "Named .marc.");
    let text = b"Dear colleague, the records follow next week.\n".repeat(10);
    let long_name = format!("{}.mrc", "x".repeat(230));
    std::fs::write(drop_path(&harness, "copying.mrc.part"), &marc).unwrap();
    std::fs::write(drop_path(&harness, ".hidden.mrc"), &marc).unwrap();
    std::fs::write(drop_path(&harness, "records.marc"), &marc).unwrap();
    std::fs::write(drop_path(&harness, "notes.txt"), &text).unwrap();
    std::fs::write(
        drop_path(&harness, &long_name),
        record_bytes(18_302, "Long name."),
    )
    .unwrap();
    wait_for_empty_drop_folder(&harness, &[".hidden.mrc", "copying.mrc.part"], 10).await;
    // Files being written stay for as long as they are named so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(drop_path(&harness, "copying.mrc.part").exists());
    assert!(drop_path(&harness, ".hidden.mrc").exists());

    // Imported by its content.
    let lines = report_lines(
        &harness,
        &format!("reports/{ALPHA}/records.marc.results.jsonl"),
    );
    assert_eq!(lines[0]["outcome"], "added");
    // Not MARC: moved aside, with a report that says why.
    let hash = bibgate_inbox::layout::stable_hash(&text);
    assert_eq!(
        harness
            .blobs
            .get(&format!(
                "received/drop/{ALPHA}/refused/{hash:016x}-notes.txt"
            ))
            .unwrap()
            .unwrap(),
        text
    );
    let why = harness
        .blobs
        .get(&format!(
            "reports/{ALPHA}/notes.txt.{hash:016x}.refused.txt"
        ))
        .unwrap()
        .unwrap();
    let why = String::from_utf8(why).unwrap();
    assert!(why.contains("content is not MARC"), "{why}");
    // A name too long for its report's name: moved aside under a shorter name.
    let refused: Vec<String> = harness
        .blobs
        .list(&format!("reports/{ALPHA}/"))
        .unwrap()
        .into_iter()
        .filter(|key| key.ends_with(".refused.txt"))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    let long = refused.iter().find(|key| key.contains("xxxx")).unwrap();
    let why = String::from_utf8(harness.blobs.get(long).unwrap().unwrap()).unwrap();
    assert!(why.contains("bytes long"), "{why}");
    assert_eq!(harness.count(ALPHA), 1, "only records.marc is imported");

    // Renamed when complete: imported.
    std::fs::rename(
        drop_path(&harness, "copying.mrc.part"),
        drop_path(&harness, "copying.mrc"),
    )
    .unwrap();
    wait_for_empty_drop_folder(&harness, &[".hidden.mrc"], 10).await;
    assert!(
        harness
            .blobs
            .get(&format!("reports/{ALPHA}/copying.mrc.results.jsonl"))
            .unwrap()
            .is_some()
    );
    harness.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn r18_links_fifos_and_names_no_key_can_hold_are_moved_aside_with_a_report() {
    use std::os::unix::ffi::OsStrExt;
    let harness = Harness::start(config()).await;
    bibgate_inbox::ensure_drop_folders(&harness.services).unwrap();
    let folder = drop_path(&harness, "");
    let outside = harness.dir.path().join("outside.mrc");
    std::fs::write(&outside, record_bytes(18_401, "Behind a link.")).unwrap();
    std::os::unix::fs::symlink(&outside, folder.join("link.mrc")).unwrap();
    let fifo = folder.join("pipe.mrc");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.mrc");
    std::fs::write(folder.join(latin1), record_bytes(18_402, "Latin-1 name.")).unwrap();
    std::fs::write(
        folder.join("a\\b.mrc"),
        record_bytes(18_403, "Backslash name."),
    )
    .unwrap();
    // Wait until the folder itself (not the store's listing, which cannot see them) holds
    // nothing but the README.
    let mut left = Vec::new();
    for _ in 0..200 {
        left = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, vec![std::ffi::OsString::from("README.txt")]);
    let refused: Vec<std::ffi::OsString> = std::fs::read_dir(
        harness
            .dir
            .path()
            .join("blobs/received/drop")
            .join(ALPHA)
            .join("refused"),
    )
    .unwrap()
    .map(|entry| entry.unwrap().file_name())
    .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    let reports: Vec<String> = harness
        .blobs
        .list(&format!("reports/{ALPHA}/"))
        .unwrap()
        .into_iter()
        .filter(|key| key.ends_with(".refused.txt"))
        .collect();
    assert_eq!(reports.len(), 4, "{reports:?}");
    let texts: Vec<String> = reports
        .iter()
        .map(|key| String::from_utf8(harness.blobs.get(key).unwrap().unwrap()).unwrap())
        .collect();
    for why in [
        "symbolic link",
        "not a regular file",
        "not UTF-8",
        "contains a backslash",
    ] {
        assert!(
            texts.iter().any(|text| text.contains(why)),
            "{why}: {texts:?}"
        );
    }
    // The link's target is untouched and nothing was imported.
    assert!(outside.exists());
    assert_eq!(harness.count(ALPHA), 0);
    harness.stop().await;
}
