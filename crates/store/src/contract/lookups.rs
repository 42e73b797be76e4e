//! Checks of locks, snapshot lookups and the separation of zones.

use super::fixtures::{
    ZONE_A, ZONE_A_CODE, ZONE_B, active, add_commit, cancelled, merge_commit, sample_record,
    setup_zones,
};
use super::support::{add_new, allocate, commit, count, entry, find, merged, ok, record, versions};
use crate::{EditorLock, Lookup, MmsId, Store};

pub(super) fn check_locks(store: &dyn Store) {
    setup_zones(store);
    let mms_id = MmsId::new(1_000_000, ZONE_A_CODE);
    assert_eq!(ok(store.lock(ZONE_A, &mms_id), "lock()"), None);
    let open = EditorLock {
        zone: ZONE_A.to_owned(),
        mms_id: mms_id.clone(),
        institution: ZONE_A.to_owned(),
        user: "alice".to_owned(),
        since_unix: 1_700_000_000,
        left_unix: None,
    };
    ok(store.put_lock(&open), "put_lock");
    assert_eq!(
        ok(store.lock(ZONE_A, &mms_id), "lock()"),
        Some(open.clone())
    );
    assert_eq!(
        ok(store.lock(ZONE_B, &mms_id), "lock() in another zone"),
        None
    );
    let left = EditorLock {
        left_unix: Some(1_700_000_600),
        ..open
    };
    ok(store.put_lock(&left), "put_lock (replace)");
    assert_eq!(ok(store.lock(ZONE_A, &mms_id), "lock()"), Some(left));
    assert!(ok(store.release_lock(ZONE_A, &mms_id), "release_lock"));
    assert!(
        !ok(store.release_lock(ZONE_A, &mms_id), "release_lock again"),
        "releasing a missing lock returns false"
    );
    assert_eq!(ok(store.lock(ZONE_A, &mms_id), "lock()"), None);
}

pub(super) fn check_lookup(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(
        ok(store.lookup(ZONE_A, &[]), "lookup of no numbers"),
        Lookup::default()
    );
    let first = add_new(store, ZONE_A, &[active(500), cancelled(501)], "e-lookup-1").mms_id;
    let second = add_new(store, ZONE_A, &[active(502)], "e-lookup-2").mms_id;
    add_new(store, ZONE_B, &[active(500)], "e-lookup-other-zone");
    let lock = EditorLock {
        zone: ZONE_A.to_owned(),
        mms_id: second.clone(),
        institution: ZONE_A.to_owned(),
        user: "bob".to_owned(),
        since_unix: 1_700_000_000,
        left_unix: None,
    };
    ok(store.put_lock(&lock), "put_lock");
    let found = ok(store.lookup(ZONE_A, &[501, 502, 999]), "lookup");
    let mut named: Vec<(u64, MmsId, bool)> = found
        .entries
        .iter()
        .map(|e| (e.number, e.mms_id.clone(), e.active))
        .collect();
    named.sort();
    assert_eq!(
        named,
        vec![(501, first.clone(), false), (502, second.clone(), true)],
        "lookup returns the entries of the numbers asked for, in this zone only"
    );
    let mut ids: Vec<&MmsId> = found.records.iter().map(|r| &r.mms_id).collect();
    ids.sort();
    let mut expected = vec![&first, &second];
    expected.sort();
    assert_eq!(
        ids, expected,
        "lookup returns every record the entries name"
    );
    assert_eq!(
        found.locks,
        vec![lock],
        "lookup returns those records' locks"
    );
}

pub(super) fn check_lookup_many(store: &dyn Store) {
    setup_zones(store);
    assert!(
        ok(store.lookup_many(ZONE_A, &[]), "lookup_many of no sets").is_empty(),
        "no sets, no lookups"
    );
    let first = add_new(store, ZONE_A, &[active(600), cancelled(601)], "e-many-1").mms_id;
    let second = add_new(store, ZONE_A, &[active(602)], "e-many-2").mms_id;
    add_new(store, ZONE_B, &[active(603)], "e-many-other-zone");
    let lock = EditorLock {
        zone: ZONE_A.to_owned(),
        mms_id: first.clone(),
        institution: ZONE_A.to_owned(),
        user: "carol".to_owned(),
        since_unix: 1_700_000_000,
        left_unix: Some(1_700_000_100),
    };
    ok(store.put_lock(&lock), "put_lock");
    let sets: [&[u64]; 5] = [&[601], &[], &[603, 999], &[600, 602], &[602]];
    let many = ok(store.lookup_many(ZONE_A, &sets), "lookup_many");
    assert_eq!(many.len(), sets.len(), "one lookup per set, in order");
    for (set, got) in sets.iter().zip(&many) {
        let mut single = ok(store.lookup(ZONE_A, set), "lookup");
        let mut got = got.clone();
        for lookup in [&mut single, &mut got] {
            lookup.entries.sort();
            lookup.records.sort_by(|a, b| a.mms_id.cmp(&b.mms_id));
        }
        assert_eq!(got, single, "lookup_many({set:?}) is lookup({set:?})");
    }
    assert_eq!(
        many[3].records.len(),
        2,
        "a set that names two records finds both"
    );
    assert_eq!(many[0].locks, vec![lock], "locks come with the records");
    assert!(
        many[2].entries.is_empty(),
        "numbers of another zone are not found"
    );
    let named: Vec<&MmsId> = many[4].records.iter().map(|r| &r.mms_id).collect();
    assert_eq!(named, vec![&second], "each set finds its own record");
}

pub(super) fn check_zones_are_separate(store: &dyn Store) {
    setup_zones(store);
    let in_a = add_new(store, ZONE_A, &[active(100)], "e-a");
    assert_eq!(find(store, ZONE_B, &[100]), Vec::new());
    assert_eq!(record(store, ZONE_B, &in_a.mms_id), None);
    assert_eq!(count(store, ZONE_B), 0);
    assert_eq!(versions(store, ZONE_B, &in_a.mms_id), Vec::new());
    // The same number is new in zone B.
    let in_b = add_new(store, ZONE_B, &[active(100)], "e-b");
    assert_eq!(
        find(store, ZONE_A, &[100]),
        vec![entry(100, &in_a.mms_id, true)]
    );
    assert_eq!(
        find(store, ZONE_B, &[100]),
        vec![entry(100, &in_b.mms_id, true)]
    );
    assert_eq!(count(store, ZONE_A), 1);
    assert_eq!(count(store, ZONE_B), 1);
    // A merge in zone B leaves zone A alone.
    let new_b = merged(&in_b, &[active(101)], "b");
    commit(
        store,
        &merge_commit(&new_b, &[100], 1, "e-b-merge"),
        "merge in zone B",
    );
    assert_eq!(
        find(store, ZONE_A, &[100]),
        vec![entry(100, &in_a.mms_id, true)]
    );
    assert_eq!(record(store, ZONE_A, &in_a.mms_id), Some(in_a));
}

pub(super) fn check_duplicates(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(
        ok(store.duplicates(ZONE_A), "duplicates of an empty zone"),
        Vec::new()
    );
    let a = add_new(store, ZONE_A, &[active(700)], "e-dup-1").mms_id;
    // A second record carrying 700 (cancelled, as after a WorldCat merge), added knowing
    // that 700 matches the first.
    let b = allocate(store, ZONE_A);
    let second = sample_record(ZONE_A, &b, &[active(701), cancelled(700)]);
    commit(
        store,
        &add_commit(&second, std::slice::from_ref(&a), "e-dup-2"),
        "add a second record carrying 700",
    );
    add_new(store, ZONE_A, &[active(702)], "e-dup-3");
    add_new(store, ZONE_B, &[active(702)], "e-dup-other-zone");
    let shared = ok(store.duplicates(ZONE_A), "duplicates");
    assert_eq!(
        shared.len(),
        1,
        "only 700 is on two records of zone A: {shared:?}"
    );
    let (number, entries) = &shared[0];
    assert_eq!(*number, 700);
    let mut got: Vec<(String, bool)> = entries
        .iter()
        .map(|e| (e.mms_id.0.clone(), e.active))
        .collect();
    got.sort();
    let mut want = vec![(a.0, true), (b.0, false)];
    want.sort();
    assert_eq!(got, want);
    assert!(entries.iter().all(|e| e.number == 700));
    assert_eq!(
        ok(store.duplicates(ZONE_B), "duplicates of zone B"),
        Vec::new(),
        "702 is on one record in each zone: not shared"
    );
}

pub(super) fn check_list_records(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(
        ok(store.list_records(ZONE_A, None, 10), "list_records(empty)"),
        Vec::new()
    );
    let mut added: Vec<MmsId> = (0..5u64)
        .map(|n| add_new(store, ZONE_A, &[active(900 + n)], &format!("e-list-{n}")).mms_id)
        .collect();
    add_new(store, ZONE_B, &[active(999)], "e-list-b");
    // Pages of two, each after the last of the one before: every record once.
    let mut listed = Vec::new();
    let mut after: Option<MmsId> = None;
    for page_idx in 0..10 {
        let page = ok(
            store.list_records(ZONE_A, after.as_ref(), 2),
            &format!("list_records(page {page_idx})"),
        );
        assert!(page.len() <= 2, "a page holds at most `limit`: {page:?}");
        let Some(last) = page.last().cloned() else {
            break;
        };
        listed.extend(page);
        after = Some(last);
    }
    assert_eq!(
        ok(store.list_records(ZONE_A, None, 100), "list_records(all)"),
        listed,
        "the pages, one after the other, are the whole list in the same order"
    );
    listed.sort();
    added.sort();
    assert_eq!(
        listed, added,
        "list_records() lists the zone's records only, each once"
    );
    assert_eq!(
        ok(store.list_records(ZONE_A, None, 0), "list_records(0)"),
        Vec::new()
    );
}

/// ISO 2709 bytes of a record with these ISBNs (020 $a) and this title (245 $a).
fn searchable_marc(isbns: &[&str], title: &str, withdrawn: bool) -> Vec<u8> {
    let mut record = bibgate_marc::Record::default();
    if withdrawn {
        record.leader.0[5] = b'd';
    }
    for isbn in isbns {
        record.push_data("020", b' ', b' ', &[(b'a', isbn)]);
    }
    record.push_data("245", b'1', b'0', &[(b'a', title)]);
    let mut marc = Vec::new();
    bibgate_marc::iso2709::write_record(&record, &mut marc).expect("a small record is written");
    marc
}

pub(super) fn check_find_by_term(store: &dyn Store) {
    setup_zones(store);
    let add = |zone: &str, number: u64, marc: Vec<u8>, export_id: &str| {
        let mms_id = allocate(store, zone);
        let record = crate::StoredRecord {
            marc,
            ..sample_record(zone, &mms_id, &[active(number)])
        };
        commit(store, &add_commit(&record, &[], export_id), export_id);
        record
    };
    let terms = |zone: &str, term: &str, limit: usize| {
        ok(
            store.find_by_term(zone, term, limit),
            &format!("find_by_term({zone:?}, {term:?})"),
        )
    };
    let first = add(
        ZONE_A,
        801,
        searchable_marc(&["0-306-40615-2"], "Alpha beta", false),
        "e-t1",
    );
    let second = add(
        ZONE_A,
        802,
        searchable_marc(&[], "Beta gamma", false),
        "e-t2",
    );
    let other = add(ZONE_B, 803, searchable_marc(&[], "Beta", false), "e-t3");
    let mut both = vec![first.mms_id.clone(), second.mms_id.clone()];
    both.sort();
    assert_eq!(terms(ZONE_A, "title:beta", 10), both);
    assert_eq!(terms(ZONE_A, "title:beta", 1), both[..1].to_vec());
    assert_eq!(
        terms(ZONE_A, "isbn:9780306406157", 10),
        vec![first.mms_id.clone()]
    );
    assert_eq!(terms(ZONE_B, "title:beta", 10), vec![other.mms_id.clone()]);
    assert_eq!(terms(ZONE_A, "title:nothing", 10), Vec::new());

    // A merge that changes the title moves its terms in the same write.
    let retitled = crate::StoredRecord {
        marc: searchable_marc(&["0-306-40615-2"], "Delta", false),
        revision: 2,
        updated_unix: first.updated_unix + 60,
        ..first.clone()
    };
    commit(
        store,
        &merge_commit(&retitled, &[801], 1, "e-t4"),
        "merge retitled",
    );
    assert_eq!(terms(ZONE_A, "title:alpha", 10), Vec::new());
    assert_eq!(terms(ZONE_A, "title:delta", 10), vec![first.mms_id.clone()]);
    assert_eq!(terms(ZONE_A, "title:beta", 10), vec![second.mms_id.clone()]);

    // A withdrawn record (Leader/05 `d`) has no terms.
    let withdrawn = crate::StoredRecord {
        marc: searchable_marc(&[], "Beta gamma", true),
        revision: 2,
        keys: Vec::new(),
        ..second.clone()
    };
    commit(
        store,
        &crate::Commit::ReplaceMany {
            replacements: vec![crate::Replacement {
                expected_revision: 1,
                record: withdrawn,
                replaced_by: "user:alice".to_owned(),
                reason: "withdrawn".to_owned(),
            }],
        },
        "withdraw",
    );
    assert_eq!(terms(ZONE_A, "title:gamma", 10), Vec::new());
    assert_eq!(terms(ZONE_A, "title:beta", 10), Vec::new());
}
