//! The [`PolicyStore`] contract suite: every adapter of the port runs
//! [`policy_store_contract`] against fresh instances.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::Error;
use crate::policy::{ConfigValue, NewActivation, OnError, PolicyManifest, PolicyStore};

/// A manifest for `bytes` (the digest is a stand-in: the store does not recompute it).
pub fn manifest(name: &str, sha256: &str, size: u64) -> PolicyManifest {
    PolicyManifest {
        sha256: sha256.to_string(),
        name: name.to_string(),
        version: "1.0.0".into(),
        abi: "bibgate:merge-policy@1.0.0".into(),
        size,
        fuel: 10_000_000,
        memory_bytes: 32 << 20,
        description: "test policy".into(),
        published_by: "contract".into(),
        published_unix: 1_800_000_000,
    }
}

fn activation(institution: &str, sha256: &str) -> NewActivation {
    NewActivation {
        institution: institution.to_string(),
        sha256: sha256.to_string(),
        config: vec![
            (
                "tags".into(),
                ConfigValue::Texts(vec!["590".into(), "9XX".into()]),
            ),
            ("strict".into(), ConfigValue::Flag(true)),
        ],
        on_error: OnError::Hold,
        activated_by: "contract".into(),
        activated_unix: 1_800_000_100,
    }
}

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Runs every check, each on a fresh store from `make`.
pub fn policy_store_contract(make: &dyn Fn() -> Box<dyn PolicyStore>) {
    publish_is_content_addressed_and_idempotent(&*make());
    activate_is_a_compare_and_swap(&*make());
    activation_needs_a_published_policy(&*make());
    rollback_activates_the_previous_revision_again(&*make());
    institutions_are_independent(&*make());
    derived_artifacts_round_trip(&*make());
}

fn publish_is_content_addressed_and_idempotent(store: &dyn PolicyStore) {
    assert!(store.publish(&manifest("a", SHA_A, 3), b"abc").unwrap());
    assert!(!store.publish(&manifest("a", SHA_A, 3), b"abc").unwrap());
    assert_eq!(store.artifact(SHA_A).unwrap().unwrap(), b"abc");
    assert_eq!(
        store.manifest(SHA_A).unwrap().unwrap(),
        manifest("a", SHA_A, 3)
    );
    assert!(store.manifest(SHA_B).unwrap().is_none());
    assert!(store.artifact(SHA_B).unwrap().is_none());
    assert!(store.publish(&manifest("b", SHA_B, 1), b"b").unwrap());
    let names: Vec<String> = store
        .published()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
}

fn activate_is_a_compare_and_swap(store: &dyn PolicyStore) {
    store.publish(&manifest("a", SHA_A, 1), b"a").unwrap();
    store.publish(&manifest("b", SHA_B, 1), b"b").unwrap();
    assert!(store.active("ALPHA").unwrap().is_none());
    let first = store.activate(&activation("ALPHA", SHA_A), 0).unwrap();
    assert_eq!(first.revision, 1);
    assert_eq!(first.name, "a");
    assert_eq!(first.label(), format!("a@1 sha256:{SHA_A}"));
    assert_eq!(store.active("ALPHA").unwrap().unwrap(), first);
    // A second admin who also saw revision 0 loses.
    let stale = store.activate(&activation("ALPHA", SHA_B), 0);
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
    assert_eq!(store.active("ALPHA").unwrap().unwrap().sha256, SHA_A);
    let second = store.activate(&activation("ALPHA", SHA_B), 1).unwrap();
    assert_eq!((second.revision, second.name.as_str()), (2, "b"));
    assert_eq!(second.config, activation("ALPHA", SHA_B).config);
    assert_eq!(second.on_error, OnError::Hold);
    assert_eq!(store.history("ALPHA").unwrap().len(), 2);
}

fn activation_needs_a_published_policy(store: &dyn PolicyStore) {
    let missing = store.activate(&activation("ALPHA", SHA_A), 0);
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    assert!(store.active("ALPHA").unwrap().is_none());
}

fn rollback_activates_the_previous_revision_again(store: &dyn PolicyStore) {
    store.publish(&manifest("a", SHA_A, 1), b"a").unwrap();
    store.publish(&manifest("b", SHA_B, 1), b"b").unwrap();
    assert!(matches!(
        store.rollback("ALPHA", 0, "x", 1),
        Err(Error::NotFound(_))
    ));
    store.activate(&activation("ALPHA", SHA_A), 0).unwrap();
    assert!(matches!(
        store.rollback("ALPHA", 1, "x", 1),
        Err(Error::NotFound(_))
    ));
    store.activate(&activation("ALPHA", SHA_B), 1).unwrap();
    let back = store.rollback("ALPHA", 2, "admin", 1_800_000_200).unwrap();
    assert_eq!((back.revision, back.sha256.as_str()), (3, SHA_A));
    assert_eq!(back.activated_by, "admin");
    assert!(matches!(
        store.rollback("ALPHA", 2, "x", 1),
        Err(Error::Conflict(_))
    ));
    let revisions: Vec<u64> = store
        .history("ALPHA")
        .unwrap()
        .iter()
        .map(|a| a.revision)
        .collect();
    assert_eq!(revisions, [1, 2, 3]);
}

fn institutions_are_independent(store: &dyn PolicyStore) {
    store.publish(&manifest("a", SHA_A, 1), b"a").unwrap();
    store.activate(&activation("ALPHA", SHA_A), 0).unwrap();
    assert!(store.active("BETA").unwrap().is_none());
    assert_eq!(
        store
            .activate(&activation("BETA", SHA_A), 0)
            .unwrap()
            .revision,
        1
    );
}

fn derived_artifacts_round_trip(store: &dyn PolicyStore) {
    store.publish(&manifest("a", SHA_A, 1), b"a").unwrap();
    assert!(store.derived(SHA_A, "x.cwasm").unwrap().is_none());
    store.put_derived(SHA_A, "x.cwasm", b"compiled").unwrap();
    store.put_derived(SHA_A, "x.cwasm", b"compiled2").unwrap();
    assert_eq!(
        store.derived(SHA_A, "x.cwasm").unwrap().unwrap(),
        b"compiled2"
    );
}
