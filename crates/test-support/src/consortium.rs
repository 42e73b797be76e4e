//! The test consortium: one network zone and four member institutions with a Connexion
//! profile each, all with one password (hashed with cheap argon2 parameters).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bibgate_store::{Institution, Store, TargetZone, ZoneKind};

/// The demo network zone.
pub const NETWORK: &str = "01DEMO_NETWORK";
/// The main demo institution.
pub const ALPHA: &str = "01DEMO_ALPHA";
/// The second demo institution.
pub const BETA: &str = "01DEMO_BETA";
/// An institution with two Connexion profiles.
pub const GAMMA: &str = "01DEMO_GAMMA";
/// An institution whose code does not start with a digit (for decimal length encoding).
pub const DECIMAL: &str = "XDEMO_DECIMAL";
/// The password of every demo profile.
pub const PASSWORD: &str = "demo-Pa55word";

pub const SUCCESS: &str = "The record has been processed successfully.";
pub const LOGON_FAILED: &str = "Logon Failed--the Logon ID and/or password is/are not valid";

/// The password hash, computed once per test binary with cheap argon2 parameters (the
/// verifier reads the parameters from the hash).
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| cheap_hash(PASSWORD))
}

/// An argon2id hash of `password` with cheap parameters (the verifier reads them from the
/// hash).
pub fn cheap_hash(password: &str) -> String {
    let params = Params::new(64, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(
            password.as_bytes(),
            &SaltString::from_b64("YmliZ2F0ZXRlc3RzYWx0").unwrap(),
        )
        .unwrap()
        .to_string()
}

/// Seconds since the Unix epoch, now (the pipeline's clock).
pub use bibgate_inbox::now_unix;

/// Creates the test consortium: the demo consortium of `bibgate init` (NETWORK, ALPHA,
/// BETA), plus GAMMA (two profiles) and DECIMAL, every profile with [`PASSWORD`].
pub fn init_demo(store: &dyn Store) {
    store
        .put_institution(&Institution {
            code: NETWORK.into(),
            name: "Demo network".into(),
            kind: ZoneKind::Network,
            network: None,
            numeric_code: 1,
        })
        .unwrap();
    for (i, code) in [ALPHA, BETA, GAMMA, DECIMAL].iter().enumerate() {
        store
            .put_institution(&Institution {
                code: (*code).into(),
                name: format!("Demo {code}"),
                kind: ZoneKind::Institution,
                network: Some(NETWORK.into()),
                numeric_code: 5001 + i as u16,
            })
            .unwrap();
        let profile =
            bibgate_import::default_profile(code, password_hash().into(), TargetZone::Institution);
        store.put_profile(&profile).unwrap();
        if *code == GAMMA {
            let mut second = profile.clone();
            second.id = format!("{code}-connexion-2");
            store.put_profile(&second).unwrap();
        }
    }
}

/// Stores an institution zone `code` (in no network) with the default integration
/// profile, whose logon is `code` and whose password is `password` (argon2-hashed with the
/// production parameters, as `bibgate profile add` does).
pub fn seed_institution(store: &dyn Store, code: &str, numeric_code: u16, password: &str) {
    store
        .put_institution(&Institution {
            code: code.into(),
            name: code.into(),
            kind: ZoneKind::Institution,
            network: None,
            numeric_code,
        })
        .expect("institution");
    let hash = bibgate_import::auth::hash_password(password).expect("hash");
    store
        .put_profile(&bibgate_import::default_profile(
            code,
            hash,
            TargetZone::Institution,
        ))
        .expect("profile");
}
