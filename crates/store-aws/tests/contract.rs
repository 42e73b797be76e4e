//! The port contract suite (T3, run as part of T6) against DynamoDB and S3 on moto.
//!
//! Each check gets its own table or bucket (tests run in parallel threads, so nothing
//! resets moto globally). These tests fail, never skip, when `AWS_ENDPOINT_URL` is unset or
//! moto is not reachable: `scripts/test.sh` starts moto and sets it.

use bibgate_store::contract::{self, ZONE_A};
use bibgate_store::{BlobStore, PolicyStore, Store, contract_policy};
use bibgate_store_aws::testing;
use bibgate_store_aws::{DynamoPolicyStore, DynamoStore, INLINE_MARC_LIMIT};

#[test]
fn dynamo_store_passes_the_contract() {
    let context = testing::context();
    contract::store_contract(&|| Box::new(testing::fresh_store(&context)) as Box<dyn Store>);
}

#[test]
fn s3_blob_store_passes_the_contract() {
    let context = testing::context();
    contract::blob_contract(&|| Box::new(testing::fresh_bucket(&context)) as Box<dyn BlobStore>);
}

#[test]
fn large_marc_goes_to_s3_and_versions_keep_it() {
    let context = testing::context();
    let bucket = testing::fresh_bucket(&context);
    let store: DynamoStore = testing::fresh_store(&context).with_marc_bucket(bucket.clone());
    contract::setup_zones(&store);
    let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
    let mut record = contract::sample_record(ZONE_A, &mms_id, &[contract::active(4242)]);
    record.marc = vec![b'x'; INLINE_MARC_LIMIT + 1];
    store
        .commit(&contract::add_commit(&record, &[], "e-large"))
        .unwrap();
    assert_eq!(store.record(ZONE_A, &mms_id).unwrap(), Some(record.clone()));
    assert_eq!(bucket.list("marc/").unwrap().len(), 1);

    let mut merged = record.clone();
    merged.revision = 2;
    merged.marc = b"small again".to_vec();
    store
        .commit(&contract::merge_commit(&merged, &[4242], 1, "e-large-2"))
        .unwrap();
    assert_eq!(store.record(ZONE_A, &mms_id).unwrap(), Some(merged));
    let versions = store.versions(ZONE_A, &mms_id).unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions[0].marc, record.marc,
        "the version reads its marc from s3"
    );
}

#[test]
fn large_marc_without_a_bucket_is_refused_and_writes_nothing() {
    let context = testing::context();
    let store = testing::fresh_store(&context);
    contract::setup_zones(&store);
    let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
    let mut record = contract::sample_record(ZONE_A, &mms_id, &[contract::active(4343)]);
    record.marc = vec![b'x'; INLINE_MARC_LIMIT + 1];
    let err = store
        .commit(&contract::add_commit(&record, &[], "e-large"))
        .unwrap_err();
    assert!(err.to_string().contains("no marc bucket"), "{err}");
    assert_eq!(store.record(ZONE_A, &mms_id).unwrap(), None);
    assert!(store.find_by_oclc(ZONE_A, &[4343]).unwrap().is_empty());
    assert!(store.result("e-large").unwrap().is_none());
}

#[test]
fn a_record_with_too_many_numbers_is_refused_whole() {
    let context = testing::context();
    let store = testing::fresh_store(&context);
    contract::setup_zones(&store);
    let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
    let keys: Vec<_> = (1..=120).map(contract::active).collect();
    let record = contract::sample_record(ZONE_A, &mms_id, &keys);
    let err = store
        .commit(&contract::add_commit(&record, &[], "e-many"))
        .unwrap_err();
    assert!(err.to_string().contains("at most 100"), "{err}");
    assert_eq!(store.record(ZONE_A, &mms_id).unwrap(), None);
    assert!(store.find_by_oclc(ZONE_A, &[1, 120]).unwrap().is_empty());
    assert!(store.result("e-many").unwrap().is_none());
}

#[test]
fn the_adapters_work_from_inside_an_async_task() {
    let context = testing::context();
    let store = testing::fresh_store(&context);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        contract::setup_zones(&store);
        assert_eq!(store.institutions().unwrap().len(), 3);
    });
    // Dropping the adapter inside async code must not panic either.
    runtime.block_on(async move { drop(store) });
}

#[test]
fn a_profile_moved_to_another_institution_leaves_no_copy() {
    let context = testing::context();
    let store = testing::fresh_store(&context);
    contract::setup_zones(&store);
    let profile = contract::demo_profile("moving", ZONE_A);
    store.put_profile(&profile).unwrap();
    let moved = bibgate_store::Profile {
        institution: contract::ZONE_B.to_owned(),
        ..profile
    };
    store.put_profile(&moved).unwrap();
    assert!(store.profiles(ZONE_A).unwrap().is_empty());
    assert_eq!(store.profiles(contract::ZONE_B).unwrap(), vec![moved]);
    assert!(store.delete_profile("moving").unwrap());
    assert!(store.profiles(contract::ZONE_B).unwrap().is_empty());
    assert!(!store.delete_profile("moving").unwrap());
}

/// A policy store on a fresh table and bucket.
fn fresh_policy_store(context: &bibgate_store_aws::AwsContext) -> DynamoPolicyStore {
    let table = testing::fresh_store(context);
    DynamoPolicyStore::new(context, table.table(), testing::fresh_bucket(context))
}

#[test]
fn dynamo_policy_store_passes_the_policy_contract() {
    let context = testing::context();
    bibgate_store::contract_policy::policy_store_contract(&|| {
        Box::new(fresh_policy_store(&context)) as Box<dyn PolicyStore>
    });
}

#[test]
fn a_swapped_precompiled_object_is_refused() {
    let context = testing::context();
    let table = testing::fresh_store(&context);
    let bucket = testing::fresh_bucket(&context);
    let policies = DynamoPolicyStore::new(&context, table.table(), bucket.clone());
    let sha = "c".repeat(64);
    policies
        .publish(&contract_policy::manifest("c", &sha, 1), b"c")
        .unwrap();
    policies.put_derived(&sha, "x.cwasm", b"compiled").unwrap();
    assert_eq!(
        policies.derived(&sha, "x.cwasm").unwrap().unwrap(),
        b"compiled"
    );
    // Whoever can write the bucket but not the table swaps the object.
    let objects = bucket.list(&format!("policies/sha256/{sha}/")).unwrap();
    let object = objects
        .iter()
        .find(|key| key.ends_with("-x.cwasm"))
        .expect("the derived object is under the policy's prefix");
    bucket.put(object, b"evil code").unwrap();
    let refused = policies.derived(&sha, "x.cwasm");
    assert!(
        matches!(&refused, Err(bibgate_store::Error::Corrupt(message)) if message.contains("refused")),
        "{refused:?}"
    );
    // Written again (as the host does after compiling from the checked component): loads.
    policies.put_derived(&sha, "x.cwasm", b"compiled").unwrap();
    assert_eq!(
        policies.derived(&sha, "x.cwasm").unwrap().unwrap(),
        b"compiled"
    );
}

#[test]
fn dynamo_logon_locks_pass_the_contract() {
    let context = testing::context();
    let table = testing::fresh_store(&context);
    bibgate_store::logon::logon_locks_contract(&bibgate_store_aws::DynamoLogonLocks::new(
        &context,
        table.table(),
    ));
}

#[test]
fn a_batch_with_two_commits_on_one_oclc_number_ends_as_one_record() {
    let context = testing::context();
    let store = testing::fresh_store(&context).with_commit_concurrency(8);
    contract::setup_zones(&store);
    // 30 records of their own, and 10 pairs of adds on one new number each: the commits in
    // flight together, the pairs in batch order.
    let mut commits = Vec::new();
    let mut records = Vec::new();
    for commit_idx in 0..50u64 {
        let number = if commit_idx < 30 {
            7_000 + commit_idx
        } else {
            8_000 + (commit_idx - 30) % 10
        };
        let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
        let record = contract::sample_record(ZONE_A, &mms_id, &[contract::active(number)]);
        commits.push(contract::add_commit(
            &record,
            &[],
            &format!("e-pair-{commit_idx}"),
        ));
        records.push(record);
    }
    let outcomes = store.commit_batch(&commits).unwrap();
    assert_eq!(outcomes.len(), commits.len());
    for (commit_idx, outcome) in outcomes.iter().enumerate() {
        if commit_idx < 40 {
            assert!(outcome.is_ok(), "commit {commit_idx}: {outcome:?}");
        } else {
            assert!(
                matches!(outcome, Err(bibgate_store::Error::Conflict(_))),
                "commit {commit_idx} comes second on its number: {outcome:?}"
            );
        }
    }
    for (commit_idx, record) in records.iter().enumerate() {
        let stored = store.record(ZONE_A, &record.mms_id).unwrap();
        assert_eq!(stored.is_some(), commit_idx < 40, "record {commit_idx}");
    }
    for number in 8_000..8_010 {
        let entries = store.find_by_oclc(ZONE_A, &[number]).unwrap();
        assert_eq!(entries.len(), 1, "number {number}: {entries:?}");
    }
    assert_eq!(store.count_records(ZONE_A).unwrap(), 40);
}

#[test]
fn lookup_many_reads_records_and_locks_of_the_whole_batch() {
    let context = testing::context();
    let store = testing::fresh_store(&context);
    contract::setup_zones(&store);
    let mut ids = Vec::new();
    for number in 0..150u64 {
        let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
        let record = contract::sample_record(ZONE_A, &mms_id, &[contract::active(9_000 + number)]);
        store
            .commit(&contract::add_commit(
                &record,
                &[],
                &format!("e-look-{number}"),
            ))
            .unwrap();
        ids.push(mms_id);
    }
    store
        .put_lock(&bibgate_store::EditorLock {
            zone: ZONE_A.to_owned(),
            mms_id: ids[1].clone(),
            institution: ZONE_A.to_owned(),
            user: "cataloguer".to_owned(),
            since_unix: 1_800_000_000,
            left_unix: None,
        })
        .unwrap();
    // More numbers than one BatchGetItem takes; one set of two, one unknown, one empty.
    let numbers: Vec<Vec<u64>> = (0..150u64)
        .map(|number| vec![9_000 + number])
        .chain([vec![9_000, 9_001], vec![12_345], Vec::new()])
        .collect();
    let sets: Vec<&[u64]> = numbers.iter().map(Vec::as_slice).collect();
    let many = store.lookup_many(ZONE_A, &sets).unwrap();
    let one_by_one: Vec<_> = sets
        .iter()
        .map(|set| store.lookup(ZONE_A, set).unwrap())
        .collect();
    assert_eq!(many, one_by_one);
    assert_eq!(many[150].records.len(), 2);
    assert_eq!(many[150].locks.len(), 1);
    assert!(many[151].entries.is_empty() && many[152].entries.is_empty());
}
