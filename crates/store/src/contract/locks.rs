//! Check of the listing of a zone's locks.

use super::fixtures::{ZONE_A, ZONE_A_CODE, ZONE_B, ZONE_B_CODE, setup_zones};
use super::support::ok;
use crate::{EditorLock, MmsId, Store};

fn lock(zone: &str, mms_id: &MmsId, user: &str, left_unix: Option<i64>) -> EditorLock {
    EditorLock {
        zone: zone.to_owned(),
        mms_id: mms_id.clone(),
        institution: zone.to_owned(),
        user: user.to_owned(),
        since_unix: 1_700_000_000,
        left_unix,
    }
}

/// `locks(zone)` lists every lock of the zone (held or left), in MMS ID order, and no other
/// zone's; a released lock is gone from it.
pub(super) fn check_zone_locks(store: &dyn Store) {
    setup_zones(store);
    assert_eq!(ok(store.locks(ZONE_A), "locks() of no locks"), Vec::new());
    let second = MmsId::new(1_000_002, ZONE_A_CODE);
    let first = MmsId::new(1_000_001, ZONE_A_CODE);
    let third = MmsId::new(1_000_003, ZONE_A_CODE);
    let other = MmsId::new(1_000_001, ZONE_B_CODE);
    let held = lock(ZONE_A, &second, "alice", None);
    let left = lock(ZONE_A, &first, "bob", Some(1_700_000_600));
    let released = lock(ZONE_A, &third, "carol", None);
    for each in [&held, &left, &released, &lock(ZONE_B, &other, "dave", None)] {
        ok(store.put_lock(each), "put_lock");
    }
    assert!(ok(store.release_lock(ZONE_A, &third), "release_lock"));
    assert_eq!(
        ok(store.locks(ZONE_A), "locks()"),
        vec![left.clone(), held.clone()],
        "every lock of the zone, in MMS ID order"
    );
    assert_eq!(
        ok(store.locks(ZONE_B), "locks() of another zone").len(),
        1,
        "only that zone's locks"
    );
    assert_eq!(
        ok(
            store.locks("01DEMO"),
            "locks() of a zone whose code starts another's"
        ),
        Vec::new()
    );
}
