//! A drop file's chunk commits in flight together (DynamoDB on moto, T6): records of one
//! chunk that share an OCLC number are kept in file order by the store, so the first adds
//! and the later ones merge into it, as when the commits went one after another.
//! Fails, never skips, without moto (`scripts/test.sh` starts it).

mod common;

use std::time::Duration;

use bibgate_inbox::layout::report_key;
use bibgate_store::{BlobStore, Store};
use common::{ALPHA, Loop, record_bytes};

#[test]
fn records_sharing_an_oclc_number_in_one_chunk_end_as_one_record() {
    let aws = Loop::new();
    let first_number = 620_000_000;
    // 40 records in one chunk: 20 numbers, each twice (the copies 20 records apart).
    let mut file = Vec::new();
    for copy in 0..2 {
        for offset in 0..20u64 {
            file.extend(record_bytes(
                first_number + offset,
                &format!("Shared number {offset}, copy {copy}"),
            ));
        }
    }
    aws.blobs
        .put("drop/01DEMO_ALPHA/shared.mrc", &file)
        .unwrap();
    let report = report_key(ALPHA, "shared.mrc");
    aws.drain_until(Duration::from_secs(120), || {
        aws.blobs.get(&report).unwrap().is_some()
    });

    assert_eq!(aws.store.count_records(ALPHA).unwrap(), 20);
    for offset in 0..20 {
        let entries = aws
            .store
            .find_by_oclc(ALPHA, &[first_number + offset])
            .unwrap();
        assert_eq!(
            entries.len(),
            1,
            "number {}: {entries:?}",
            first_number + offset
        );
    }
    let report = aws.blobs.get(&report).unwrap().unwrap();
    let lines: Vec<serde_json::Value> = report
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    for (line_idx, line) in lines.iter().enumerate() {
        let expected = if line_idx < 20 { "added" } else { "merged" };
        assert_eq!(line["outcome"], expected, "line {line_idx}: {line}");
        assert_eq!(
            line["mms_id"],
            lines[line_idx % 20]["mms_id"],
            "line {line_idx} names the record its number's first copy added"
        );
    }
}
