//! Check of the console's staff accounts.

use super::fixtures::{ZONE_A, ZONE_B};
use super::support::ok;
use crate::{Error, StaffAccount, Store};

fn account(user: &str, institution: &str, admin: bool) -> StaffAccount {
    StaffAccount {
        user: user.to_owned(),
        institution: institution.to_owned(),
        admin,
        password_hash: format!("$argon2id$v=19$m=8,t=1,p=1${user}"),
        created_unix: 1_700_000_000,
    }
}

/// Accounts are added once (a taken name is `AlreadyExists` and replaces nothing), read
/// back by name and listed by name; a removed account is gone, and removing it again says
/// there was none.
pub(super) fn check_staff(store: &dyn Store) {
    assert_eq!(ok(store.staff_list(), "staff_list() of none"), Vec::new());
    assert_eq!(ok(store.staff("nobody"), "staff() of none"), None);
    let zed = account("zed", ZONE_B, false);
    let ann = account("ann", ZONE_A, true);
    ok(store.add_staff(&zed), "add_staff zed");
    ok(store.add_staff(&ann), "add_staff ann");
    let taken = store.add_staff(&account("zed", ZONE_A, true));
    assert!(
        matches!(taken, Err(Error::AlreadyExists(_))),
        "a taken user name: {taken:?}"
    );
    assert_eq!(ok(store.staff("zed"), "staff(zed)"), Some(zed.clone()));
    assert_eq!(
        ok(store.staff_list(), "staff_list()"),
        vec![ann.clone(), zed.clone()],
        "every account, by user name"
    );
    assert!(ok(store.remove_staff("zed"), "remove_staff zed"));
    assert!(!ok(store.remove_staff("zed"), "remove_staff zed again"));
    assert_eq!(ok(store.staff("zed"), "staff(zed) removed"), None);
    assert_eq!(ok(store.staff_list(), "staff_list() after"), vec![ann]);
}
