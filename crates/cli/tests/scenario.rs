//! `scripts/consortium-scenario.sh` on both backends: a consortium from nothing (consortium
//! apply, serve, exports from three institutions) to merge policies (publish, activate for
//! one institution, rollback), a password rotation, and on AWS a dead-letter re-drive, with
//! the shipped commands only. The AWS run starts its own moto through `scripts/aws-local.sh`
//! (the bucket, table and queues as `infra/template.yaml` declares them) and runs the
//! function as `bibgate-import-processor poll`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::bibgate_path;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The scenario on `backend`; its output on failure.
fn scenario(backend: &str) {
    let bin = bibgate_path();
    // The function's binary beside the `bibgate` one (cargo test --workspace builds both).
    let processor = std::env::var_os("BIBGATE_TEST_PROCESSOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin.with_file_name("bibgate-import-processor"));
    assert!(
        processor.exists() || backend == "local",
        "{} is missing: cargo build -p bibgate-import-processor",
        processor.display()
    );
    let wasm = repo().join("target/wasm32-unknown-unknown/policy");
    assert!(
        wasm.join("bibgate_policy_no_005_check.wasm").exists(),
        "the policies are not built in {}: run scripts/test.sh",
        wasm.display()
    );
    let output = Command::new("bash")
        .arg(repo().join("scripts/consortium-scenario.sh"))
        .arg(backend)
        .env("BIBGATE_BIN", &bin)
        .env("BIBGATE_PROCESSOR_BIN", &processor)
        .env("BIBGATE_POLICY_WASM_DIR", &wasm)
        // The script sets up its own endpoint (aws) or none (local).
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("BIBGATE_BACKEND")
        .env_remove("BIBGATE_BUCKET")
        .env_remove("BIBGATE_TABLE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains(&format!("PASSED ({backend})")),
        "the scenario failed on {backend}:\n{stderr}"
    );
}

#[test]
fn the_consortium_scenario_passes_on_the_embedded_backend() {
    scenario("local");
}

#[test]
fn the_consortium_scenario_passes_on_the_aws_backend_on_moto() {
    scenario("aws");
}

/// `scripts/aws-local.sh` on a free port: its `export` lines as pairs.
fn aws_local() -> Vec<(String, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new("bash")
        .arg(repo().join("scripts/aws-local.sh"))
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aws-local.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.trim_matches('\'').to_owned()))
        .collect()
}

#[test]
fn the_local_stand_in_is_checked_against_the_template() {
    let env = aws_local();
    let value = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("aws-local.sh printed no {name}: {env:?}"))
    };
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "BIBGATE_BACKEND",
        "BIBGATE_BUCKET",
        "BIBGATE_TABLE",
        "BIBGATE_QUEUE_URL",
        "BIBGATE_DLQ_URL",
    ] {
        assert!(!value(name).is_empty(), "{name}");
    }
    let moto = value("MOTO_PID");
    let check = |template: &Path| {
        Command::new("python3")
            .arg(repo().join("scripts/aws_local.py"))
            .arg("check")
            .arg("--endpoint")
            .arg(value("AWS_ENDPOINT_URL"))
            .arg("--template")
            .arg(template)
            .output()
            .unwrap()
    };
    let template = std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let changed = |from: &str, to: &str, name: &str| {
        assert!(
            template.contains(from),
            "the template no longer has {from:?}"
        );
        let path = dir.path().join(name);
        std::fs::write(&path, template.replacen(from, to, 1)).unwrap();
        path
    };
    let same = check(&repo().join("infra/template.yaml"));
    // A template that moved on (a longer visibility timeout; a new index) is told apart.
    let visibility = check(&changed(
        "VisibilityTimeout: 5400",
        "VisibilityTimeout: 600",
        "visibility.yaml",
    ));
    let index = check(&changed(
        "        - IndexName: by_zone",
        "        - IndexName: by_something\n          KeySchema:\n            - AttributeName: zpk\n              KeyType: HASH\n          Projection:\n            ProjectionType: KEYS_ONLY\n        - IndexName: by_zone",
        "index.yaml",
    ));
    // A setting the stand-in does not know is an error, never dropped.
    let unknown = check(&changed(
        "      MessageRetentionPeriod: 345600",
        "      MessageRetentionPeriod: 345600\n      FifoQueue: false",
        "unknown.yaml",
    ));
    let _ = Command::new("kill").arg(&moto).status();
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(visibility.status.code(), Some(1), "{}", text(&visibility));
    assert!(
        text(&visibility).contains("VisibilityTimeout"),
        "{}",
        text(&visibility)
    );
    assert_eq!(index.status.code(), Some(1), "{}", text(&index));
    assert!(
        text(&index).contains("global secondary indexes"),
        "{}",
        text(&index)
    );
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("FifoQueue"), "{}", text(&unknown));
}
