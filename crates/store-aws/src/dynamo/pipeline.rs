//! Commits of one batch in flight together: the batch split into groups of commits that
//! share nothing (no OCLC number, MMS ID or export id), each group applied in order, the
//! groups concurrently, at most a bounded number at once.
//!
//! Commits that share a key are kept in batch order, so a batch ends as it would one
//! commit after another (the first of two adds of one new OCLC number adds, the second
//! gets a conflict and is decided again by the importer). Commits that share nothing
//! cannot change each other's outcome; conflicts with other processes are still decided
//! by the conditional writes.

use std::collections::HashMap;

use bibgate_store::Commit;

/// One key a commit reads or writes, by which commits of a batch are ordered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Touch<'a> {
    Number(&'a str, u64),
    Record(&'a str, &'a str),
    Result(&'a str),
}

/// The keys a commit touches (those known before it runs: a merge's prior numbers are
/// read at commit time, and a conflict on them is caught by the conditions).
fn touches(commit: &Commit) -> Vec<Touch<'_>> {
    fn record<'a>(record: &'a bibgate_store::StoredRecord, touched: &mut Vec<Touch<'a>>) {
        let zone = record.zone.as_str();
        touched.push(Touch::Record(zone, record.mms_id.as_str()));
        touched.extend(
            record
                .keys
                .iter()
                .map(|key| Touch::Number(zone, key.number)),
        );
    }
    let mut touched = Vec::new();
    match commit {
        Commit::Add {
            expect,
            record: stored,
            result,
        }
        | Commit::Merge {
            expect,
            record: stored,
            result,
            ..
        } => {
            record(stored, &mut touched);
            let zone = stored.zone.as_str();
            touched.extend(
                expect
                    .numbers
                    .iter()
                    .map(|&number| Touch::Number(zone, number)),
            );
            touched.extend(
                expect
                    .matched
                    .iter()
                    .map(|mms_id| Touch::Record(zone, mms_id.as_str())),
            );
            touched.push(Touch::Result(result.export_id.as_str()));
        }
        Commit::Reject { result } => touched.push(Touch::Result(result.export_id.as_str())),
        Commit::Replace { record: stored, .. } => record(stored, &mut touched),
        Commit::ReplaceMany { replacements } => {
            for replacement in replacements {
                record(&replacement.record, &mut touched);
            }
        }
    }
    touched
}

/// The batch's commits (by index) in groups that share no key; each group in batch order,
/// the groups in the order of their first commit.
pub(super) fn independent_groups(commits: &[Commit]) -> Vec<Vec<usize>> {
    // Union-find over commit indexes; a key joins every commit that touches it.
    let mut parent: Vec<usize> = (0..commits.len()).collect();
    fn root(parent: &mut [usize], mut at: usize) -> usize {
        while parent[at] != at {
            parent[at] = parent[parent[at]];
            at = parent[at];
        }
        at
    }
    let mut first_toucher: HashMap<Touch<'_>, usize> = HashMap::new();
    for (commit_idx, commit) in commits.iter().enumerate() {
        for touch in touches(commit) {
            let other = *first_toucher.entry(touch).or_insert(commit_idx);
            let (a, b) = (root(&mut parent, other), root(&mut parent, commit_idx));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for commit_idx in 0..commits.len() {
        let group_root = root(&mut parent, commit_idx);
        let group_idx = *group_of_root.entry(group_root).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group_idx].push(commit_idx);
    }
    groups
}

#[cfg(test)]
mod tests {
    use bibgate_store::contract::{active, add_commit, sample_record, sample_result};
    use bibgate_store::{MmsId, Replacement, StoredRecord};

    use super::*;

    fn record(zone: &str, mms_id: &str, numbers: &[u64]) -> StoredRecord {
        let keys: Vec<_> = numbers.iter().copied().map(active).collect();
        sample_record(zone, &MmsId(mms_id.to_owned()), &keys)
    }

    fn add(zone: &str, mms_id: &str, numbers: &[u64], export_id: &str) -> Commit {
        add_commit(&record(zone, mms_id, numbers), &[], export_id)
    }

    fn result(export_id: &str) -> bibgate_store::ImportResult {
        sample_result(export_id)
    }

    #[test]
    fn commits_sharing_a_key_share_a_group_in_batch_order() {
        let commits = vec![
            add("Z", "1", &[10], "e1"),
            add("Z", "2", &[20], "e2"),
            add("Z", "3", &[10, 30], "e3"),
            add("Y", "4", &[10], "e4"),
            Commit::Reject {
                result: result("e2"),
            },
            add("Z", "5", &[30], "e5"),
            Commit::ReplaceMany {
                replacements: vec![Replacement {
                    expected_revision: 1,
                    record: record("Y", "4", &[]),
                    replaced_by: String::new(),
                    reason: String::new(),
                }],
            },
        ];
        assert_eq!(
            independent_groups(&commits),
            vec![vec![0, 2, 5], vec![1, 4], vec![3, 6]]
        );
        assert!(independent_groups(&[]).is_empty());
    }
}
