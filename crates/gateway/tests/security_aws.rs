//! Password rotation and logon id lock-out on the AWS backend: the shim (and the processor)
//! over DynamoDB + S3 on moto, profile changed in DynamoDB while the shim runs.
//!
//! Like every AWS test, this fails (never skips) without `AWS_ENDPOINT_URL` pointing at a
//! running moto: `scripts/test.sh` starts it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bibgate_gateway::{Config, LogonBackoff, LogonLockout};
use bibgate_inbox::Services;
use bibgate_store::Store;
use bibgate_store_aws::{DynamoStore, testing};
use common::*;

async fn send(addr: &str, logon: &str, password: &str, number: u64) -> String {
    bibgate_gateway::send(
        addr,
        logon,
        password,
        &record_bytes(number, &format!("AWS security {number}.")),
        bibgate_gateway::LengthEncoding::Byte,
        Duration::from_secs(60),
    )
    .await
    .unwrap()
}

fn ok(reply: &str) -> bool {
    reply.starts_with(SUCCESS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_lockout_on_dynamodb_and_s3() {
    let (store, blobs) = tokio::task::spawn_blocking(|| {
        let context = testing::context();
        let store = testing::fresh_store(&context);
        let blobs = testing::fresh_bucket(&context);
        init_demo(&store);
        (Arc::new(store), Arc::new(blobs))
    })
    .await
    .unwrap();
    let services = Services::new(store.clone(), blobs);
    let shim = Shim::start(
        services.clone(),
        Config {
            reply_deadline: Duration::from_secs(40),
            logon_lockout: LogonLockout {
                threshold: 3,
                window: Duration::from_secs(60),
                duration: Duration::from_secs(2),
                ..LogonLockout::default()
            },
            logon_backoff: LogonBackoff {
                threshold: 1_000,
                ..LogonBackoff::default()
            },
            ..Config::default()
        },
    )
    .await;
    let addr = shim.addr.clone();
    let (stop_processor, processor_stopped) = tokio::sync::oneshot::channel::<()>();
    let processor = bibgate_gateway::spawn_processor(services, processor_config(), async move {
        let _ = processor_stopped.await;
    });

    // Rotation: the old password is verified (and cached), then the profile is changed in
    // DynamoDB with a 5 s grace period while the shim runs.
    let new_password = "new-Aws-Rotation-pw-68000";
    assert!(ok(&send(&addr, ALPHA, PASSWORD, 9001).await));
    let rotating = store.clone();
    let expires = tokio::task::spawn_blocking(move || {
        let mut profile = bibgate_import::connexion_profile(&*rotating, ALPHA).unwrap();
        let now = now_unix();
        bibgate_import::auth::rotate(&mut profile, cheap_hash(new_password), 5, now);
        rotating.put_profile(&profile).unwrap();
        now + 5
    })
    .await
    .unwrap();
    assert!(ok(&send(&addr, ALPHA, new_password, 9002).await));
    assert!(ok(&send(&addr, ALPHA, PASSWORD, 9003).await));
    assert!(now_unix() < expires, "the grace period checks ran in time");
    while now_unix() < expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = send(&addr, ALPHA, PASSWORD, 9004).await;
    assert_eq!(refusal(&refused), LOGON_FAILED);
    // Issue 16: the refused logon is a result in DynamoDB, under ALPHA.
    let export_id = refused
        .split_once("\nExport ID: ")
        .map(|(_, id)| id.to_string())
        .unwrap();
    let reader = store.clone();
    let stored = tokio::task::spawn_blocking(move || reader.result(&export_id).unwrap())
        .await
        .unwrap()
        .expect("the refused logon is a stored result");
    assert_eq!(stored.institution, ALPHA);
    assert_eq!(stored.reason_code, "LOGON_FAILED");
    assert!(ok(&send(&addr, ALPHA, new_password, 9005).await));

    // Lock-out: three failures lock BETA; the right password is refused until it expires.
    for _ in 0..3 {
        assert_eq!(
            refusal(&send(&addr, BETA, "wrong-Aws-pw", 9006).await),
            LOGON_FAILED
        );
    }
    let locked_at = std::time::Instant::now();
    assert_eq!(
        refusal(&send(&addr, BETA, PASSWORD, 9007).await),
        LOGON_FAILED
    );
    tokio::time::sleep(Duration::from_millis(2_100).saturating_sub(locked_at.elapsed())).await;
    assert!(ok(&send(&addr, BETA, PASSWORD, 9007).await));

    shim.stop(Duration::from_secs(10)).await;
    let _ = stop_processor.send(());
    processor.await.unwrap();
    let counts = tokio::task::spawn_blocking(move || {
        let store: &DynamoStore = &store;
        (
            store.count_records(ALPHA).unwrap(),
            store.count_records(BETA).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        counts,
        (4, 1),
        "every accepted export was imported, nothing else"
    );
}
