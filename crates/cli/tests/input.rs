//! Issue 18, input that is large or holds no record: `import` streams with bounded memory,
//! input without a record is a failure (exit 1), `policy publish` reads a bounded amount,
//! and the data directory is created owner-only.

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::util::{Scratch, bibgate_in, corpus, run_ok};

/// The RSS ceiling of `import` on any input (issue 18).
const MAX_RSS_KIB: u64 = 64 * 1024;

fn import(scratch: &Scratch, file: &Path) -> Output {
    bibgate_in(&scratch.data())
        .args(["import", "--institution", "01DEMO_ALPHA"])
        .arg(file)
        .output()
        .unwrap()
}

/// The files kept under `blobs/batches/` (raw copies of imported files).
fn kept_copies(scratch: &Scratch) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&scratch.blobs().join("batches"), &mut files);
    files
}

#[test]
fn r18_input_without_a_record_exits_1_with_a_message_and_keeps_nothing() {
    let scratch = Scratch::new("r18-no-record");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.mrc", Vec::new()),
        ("nuls.mrc", vec![0u8; 100_000]),
        ("blanks.mrc", b" \r\n".repeat(10_000)),
        ("collections.xml", b"<collection>".repeat(100_000)),
    ];
    for (name, bytes) in cases {
        let file = scratch.path().join(name);
        std::fs::write(&file, &bytes).unwrap();
        let out = import(&scratch, &file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains("holds no MARC record"), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    assert_eq!(kept_copies(&scratch), Vec::<std::path::PathBuf>::new());
}

#[test]
fn r18_a_file_that_is_not_marc_is_one_failed_record_not_a_truncated_one() {
    let scratch = Scratch::new("r18-not-marc");
    let file = scratch.path().join("letter.mrc");
    std::fs::write(&file, "Dear colleague, here are the records.\n".repeat(17)).unwrap();
    let out = import(&scratch, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("record 1: failed"), "{stdout}");
    assert!(stdout.contains("not ISO 2709"), "{stdout}");
    assert!(!stdout.contains("bytes present"), "{stdout}");
}

#[test]
fn r18_a_marcxml_record_with_a_leader_and_no_fields_is_not_added() {
    let scratch = Scratch::new("r18-leader-only");
    let file = scratch.path().join("leader.xml");
    std::fs::write(
        &file,
        r#"<collection xmlns="http://www.loc.gov/MARC21/slim"><record><leader>00000nam a2200000 a 4500</leader></record></collection>"#,
    )
    .unwrap();
    let out = import(&scratch, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("record 1: failed"), "{stdout}");
    assert!(!stdout.contains("added"), "{stdout}");
}

/// Peak RSS in KiB from `/usr/bin/time -v` output.
fn peak_rss_kib(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or_else(|| panic!("no peak RSS in the output of /usr/bin/time -v:\n{stderr}"))
        .parse()
        .unwrap()
}

/// `bibgate import FILE` under `/usr/bin/time -v`: its output and peak RSS.
fn timed_import(scratch: &Scratch, file: &Path) -> (Output, u64) {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "/usr/bin/time is needed to measure peak RSS (apt-get install time)"
    );
    let out = std::process::Command::new(time)
        .arg("-v")
        .arg(crate::util::bibgate_path())
        .arg("--data-dir")
        .arg(scratch.data())
        .args(["import", "--institution", "01DEMO_ALPHA"])
        .arg(file)
        .env_remove(crate::util::FAILPOINT)
        .output()
        .unwrap();
    let rss = peak_rss_kib(&String::from_utf8_lossy(&out.stderr));
    (out, rss)
}

#[cfg(unix)]
#[test]
fn r18_import_of_1_gb_of_zeros_and_a_2_gb_sparse_file_fails_in_bounded_memory() {
    let scratch = Scratch::new("r18-big");
    // Set up the data directory first, so that its creation is not measured.
    run_ok(
        bibgate_in(&scratch.data())
            .args(["import", "--institution", "01DEMO_ALPHA"])
            .arg(corpus("folio-integration-tests/FAT-1204.mrc")),
    );
    let zeros = scratch.path().join("zeros.mrc");
    {
        let mut file = std::fs::File::create(&zeros).unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            file.write_all(&block).unwrap();
        }
    }
    let sparse = scratch.path().join("sparse.mrc");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let copies_before = kept_copies(&scratch).len();
    for file in [&zeros, &sparse, Path::new("/dev/zero")] {
        let started = Instant::now();
        let (out, rss_kib) = timed_import(&scratch, file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "import {}: exit {:?}, peak RSS {} KiB, {:.2} s",
            file.display(),
            out.status.code(),
            rss_kib,
            started.elapsed().as_secs_f64()
        );
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("holds no MARC record"), "{stderr}");
        assert!(stderr.contains("stopped reading after 8 MiB"), "{stderr}");
        assert!(rss_kib < MAX_RSS_KIB, "peak RSS {rss_kib} KiB: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    assert_eq!(
        kept_copies(&scratch).len(),
        copies_before,
        "no copy kept of a file without records"
    );
}

#[cfg(unix)]
#[test]
fn r18_records_after_8_mib_of_zeros_are_not_read_and_the_import_fails() {
    let scratch = Scratch::new("r18-gap");
    let record = std::fs::read(corpus("folio-integration-tests/FAT-1204.mrc")).unwrap();
    let file = scratch.path().join("gap.mrc");
    let mut bytes = record.clone();
    bytes.extend(std::iter::repeat_n(0u8, 9 << 20));
    bytes.extend(&record);
    std::fs::write(&file, &bytes).unwrap();
    let out = import(&scratch, &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped reading"), "{stderr}");
    assert!(stderr.contains("6 records imported"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn r18_policy_publish_of_a_link_to_dev_zero_is_refused_at_once() {
    let scratch = Scratch::new("r18-policy-zero");
    let link = scratch.path().join("policy.wasm");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let started = Instant::now();
    let out = bibgate_in(&scratch.data())
        .args(["policy", "publish"])
        .arg(&link)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds more than 2097152 bytes"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[cfg(unix)]
#[test]
fn r18_the_data_directory_and_its_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let scratch = Scratch::new("r18-modes");
    let input = scratch.path().join("input.mrc");
    std::fs::copy(corpus("folio-integration-tests/FAT-1204.mrc"), &input).unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o640)).unwrap();
    run_ok(
        bibgate_in(&scratch.data())
            .args(["import", "--institution", "01DEMO_ALPHA"])
            .arg(&input),
    );
    assert_eq!(mode(&scratch.data()), 0o700);
    assert_eq!(mode(&scratch.blobs()), 0o700);
    assert_eq!(mode(&scratch.data().join("bibgate.sqlite")), 0o600);
    let copies = kept_copies(&scratch);
    assert_eq!(copies.len(), 1);
    assert_eq!(mode(&copies[0]), 0o600, "the copy of a 0640 file");
    assert_eq!(mode(copies[0].parent().unwrap()), 0o700);
    assert_eq!(mode(&input), 0o640);
}

/// Issue 16: "1 records".
#[test]
fn r16_one_record_is_reported_as_one_record() {
    let scratch = Scratch::new("r16-one");
    let records = std::fs::read(corpus("folio-integration-tests/FAT-1204.mrc")).unwrap();
    let len: usize = std::str::from_utf8(&records[..5]).unwrap().parse().unwrap();
    let file = scratch.path().join("one.mrc");
    std::fs::write(&file, &records[..len]).unwrap();
    let out = import(&scratch, &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 record imported into "), "{stderr}");
}
