//! Checks of institutions, profiles and MMS ID allocation.

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::thread;

use super::fixtures::{
    NETWORK, NETWORK_CODE, ZONE_A, ZONE_A_CODE, ZONE_B, ZONE_B_CODE, active, add_commit,
    demo_institution, demo_institutions, demo_profile, sample_record, setup_zones,
};
use super::support::{add_new, allocate, fails, is_conflict, is_not_found, join, ok};
use crate::{Institution, MmsId, Profile, Store, TargetZone};

pub(super) fn check_institutions(store: &dyn Store) {
    assert_eq!(
        ok(store.institutions(), "institutions()"),
        Vec::new(),
        "a fresh store has no institutions"
    );
    // Put in reverse to check the order.
    for institution in demo_institutions().into_iter().rev() {
        ok(store.put_institution(&institution), "put_institution");
    }
    assert_eq!(
        ok(store.institutions(), "institutions()"),
        demo_institutions(),
        "institutions() lists every institution, sorted by code"
    );
    assert_eq!(
        ok(store.institution(ZONE_A), "institution(ZONE_A)"),
        Some(demo_institution(ZONE_A, ZONE_A_CODE))
    );
    let renamed = Institution {
        name: "Alpha University, renamed".to_owned(),
        network: None,
        ..demo_institution(ZONE_A, ZONE_A_CODE)
    };
    ok(store.put_institution(&renamed), "put_institution (replace)");
    assert_eq!(
        ok(store.institution(ZONE_A), "institution(ZONE_A)"),
        Some(renamed),
        "put_institution replaces"
    );
    assert_eq!(ok(store.institutions(), "institutions()").len(), 3);
    assert_eq!(
        ok(store.institution("01NOPE"), "institution(unknown)"),
        None
    );
}

pub(super) fn check_profiles(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(ok(store.profiles(ZONE_A), "profiles(ZONE_A)"), Vec::new());
    let alpha_1 = demo_profile("alpha-connexion", ZONE_A);
    let alpha_2 = Profile {
        target_zone: TargetZone::Network,
        ..demo_profile("alpha-nz", ZONE_A)
    };
    let beta = demo_profile("beta-connexion", ZONE_B);
    for profile in [&alpha_2, &beta, &alpha_1] {
        ok(store.put_profile(profile), "put_profile");
    }
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1.clone(), alpha_2.clone()],
        "profiles() returns the institution's profiles only"
    );
    let alpha_1_changed = Profile {
        check_005: true,
        lock_timeout_seconds: 60,
        merge_rules: "keep 590\nkeep 9XX".to_owned(),
        ..alpha_1.clone()
    };
    ok(store.put_profile(&alpha_1_changed), "put_profile (replace)");
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1_changed.clone(), alpha_2.clone()],
        "put_profile replaces by id"
    );
    // A password rotation: the previous hash and its expiry are kept, then dropped.
    let alpha_1_rotated = Profile {
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g".to_owned(),
        previous_password_hash: Some(alpha_1_changed.password_hash.clone()),
        previous_password_expires: Some(1_900_000_000),
        ..alpha_1_changed.clone()
    };
    ok(store.put_profile(&alpha_1_rotated), "put_profile (rotated)");
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1_rotated.clone(), alpha_2.clone()],
        "put_profile keeps the previous password hash and its expiry"
    );
    let alpha_1_expired = Profile {
        previous_password_hash: Some(alpha_1_changed.password_hash.clone()),
        previous_password_expires: Some(-1),
        ..alpha_1_rotated.clone()
    };
    ok(store.put_profile(&alpha_1_expired), "put_profile (expiry)");
    assert_eq!(
        ok(store.profiles(ZONE_A), "profiles(ZONE_A)")
            .into_iter()
            .find(|p| p.id == alpha_1_expired.id),
        Some(alpha_1_expired.clone()),
        "a negative expiry round-trips"
    );
    let alpha_1_changed = Profile {
        previous_password_hash: None,
        previous_password_expires: None,
        ..alpha_1_rotated
    };
    ok(
        store.put_profile(&alpha_1_changed),
        "put_profile (previous dropped)",
    );
    assert_eq!(
        sorted_profiles(ok(store.profiles(ZONE_A), "profiles(ZONE_A)")),
        vec![alpha_1_changed.clone(), alpha_2.clone()],
        "put_profile drops a previous password hash"
    );
    assert!(ok(store.delete_profile("alpha-nz"), "delete_profile"));
    assert!(
        !ok(store.delete_profile("alpha-nz"), "delete_profile again"),
        "deleting a missing profile returns false"
    );
    assert_eq!(
        ok(store.profiles(ZONE_A), "profiles(ZONE_A)"),
        vec![alpha_1_changed]
    );
    assert_eq!(ok(store.profiles(ZONE_B), "profiles(ZONE_B)"), vec![beta]);
    assert_eq!(
        ok(store.profiles("01NOPE"), "profiles(unknown)"),
        Vec::new()
    );
}

fn sorted_profiles(mut profiles: Vec<Profile>) -> Vec<Profile> {
    profiles.sort_by(|left, right| left.id.cmp(&right.id));
    profiles
}

/// The MMS ID as a number, after checking its shape.
fn mms_number(mms_id: &MmsId, zone_code: u16) -> u128 {
    let text = mms_id.as_str();
    assert!(
        text.starts_with("99"),
        "mms id {text} does not start with 99"
    );
    assert!(
        text.ends_with(&format!("{zone_code:04}")),
        "mms id {text} does not end with the zone's code {zone_code:04}"
    );
    assert!(
        text.len() > 6 && text.bytes().all(|byte| byte.is_ascii_digit()),
        "mms id {text} is not 99, a serial and the zone's code"
    );
    match text.parse() {
        Ok(number) => number,
        Err(err) => panic!("mms id {text} is not a number: {err}"),
    }
}

pub(super) fn check_allocate(store: &dyn Store) {
    setup_zones(store);
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for _ in 0..1000 {
        let mms_id = allocate(store, ZONE_A);
        let number = mms_number(&mms_id, ZONE_A_CODE);
        assert!(
            number > last,
            "allocate_mms_id is not increasing: {mms_id} after {last}"
        );
        last = number;
        assert!(seen.insert(mms_id.clone()), "{mms_id} allocated twice");
    }
    for (zone, code) in [(ZONE_B, ZONE_B_CODE), (NETWORK, NETWORK_CODE)] {
        let mms_id = allocate(store, zone);
        mms_number(&mms_id, code);
        assert!(seen.insert(mms_id.clone()), "{mms_id} allocated twice");
    }
}

pub(super) fn check_allocate_many(store: &dyn Store) {
    setup_zones(store);
    let before = allocate(store, ZONE_A);
    assert_eq!(
        ok(store.allocate_mms_ids(ZONE_A, 0), "allocate_mms_ids(0)"),
        Vec::new()
    );
    let many = ok(store.allocate_mms_ids(ZONE_A, 250), "allocate_mms_ids(250)");
    assert_eq!(many.len(), 250, "allocate_mms_ids returns `count` ids");
    let after = allocate(store, ZONE_A);
    let mut last = mms_number(&before, ZONE_A_CODE);
    for mms_id in many.iter().chain([&after]) {
        let number = mms_number(mms_id, ZONE_A_CODE);
        assert!(
            number > last,
            "allocate_mms_ids is not increasing: {mms_id} after {last}"
        );
        last = number;
    }
    fails(
        store.allocate_mms_ids("01NOPE", 3),
        "allocate_mms_ids in a zone that is no institution",
        "NotFound",
        is_not_found,
    );
}

pub(super) fn check_allocate_unknown_zone(store: &dyn Store) {
    setup_zones(store);
    fails(
        store.allocate_mms_id("01NOPE"),
        "allocate_mms_id in a zone that is no institution",
        "NotFound",
        is_not_found,
    );
}

pub(super) fn check_allocate_not_reused(store: &dyn Store) {
    setup_zones(store);
    let existing = add_new(store, ZONE_A, &[active(1001)], "e-existing");
    let failed_id = allocate(store, ZONE_A);
    let failed = sample_record(ZONE_A, &failed_id, &[active(1001)]);
    fails(
        store.commit(&add_commit(&failed, &[], "e-failed")),
        "add expecting no match where there is one",
        "Conflict",
        is_conflict,
    );
    let next = allocate(store, ZONE_A);
    assert_ne!(
        next, failed_id,
        "an mms id was reused after a failed commit"
    );
    assert_ne!(next, existing.mms_id, "an mms id was reused");
    assert!(
        mms_number(&next, ZONE_A_CODE) > mms_number(&failed_id, ZONE_A_CODE),
        "allocate_mms_id is not increasing: {next} after {failed_id}"
    );
}

pub(super) fn check_allocate_concurrently(store: &dyn Store) {
    setup_zones(store);
    let n_threads = 8;
    let per_thread = 50;
    let barrier = Barrier::new(n_threads);
    let all: Vec<MmsId> = thread::scope(|scope| {
        let handles: Vec<_> = (0..n_threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    (0..per_thread)
                        .map(|_| allocate(store, ZONE_A))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(join).collect()
    });
    let distinct: BTreeSet<&MmsId> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        n_threads * per_thread,
        "concurrent allocate_mms_id returned duplicates"
    );
}
