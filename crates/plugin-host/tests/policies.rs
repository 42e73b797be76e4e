//! The plugin host end to end: the example policies built for wasm32 (by `scripts/test.sh`),
//! admitted, published, activated and run through real imports; adversarial guests;
//! determinism. A missing `.wasm` is a failure with instructions, never a skip.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bibgate_import::policy::{DefaultDecision, FailureKind, PolicyInput, PolicyOutcome};
use bibgate_import::{Importer, Input, Received, Route, route};
use bibgate_marc::Record;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::{self, Mode};
use bibgate_plugin_host::{
    Error, Limits, PublishRequest, WasmEngine, WasmPolicyRunner, componentize, publish,
};
use bibgate_store::policy::{Activation, ConfigValue, NewActivation, OnError, PolicyManifest};
use bibgate_store::{BlobStore, ImportResult, MmsId, Outcome, PolicyStore, Store};
use bibgate_store_local::{FolderBlobStore, SqlitePolicyStore, SqliteStore};

use bibgate_test_support::{ALPHA, BETA};
const NOW: i64 = 1_800_000_000;

fn wasm_dir() -> PathBuf {
    std::env::var_os("BIBGATE_POLICY_WASM_DIR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/wasm32-unknown-unknown/policy")
        },
        PathBuf::from,
    )
}

/// The component of a built policy crate (`no_005_check`, `test_policy_adversarial`, ...).
fn component(crate_suffix: &str) -> Vec<u8> {
    let name = if crate_suffix.starts_with("test_policy") {
        format!("bibgate_{crate_suffix}.wasm")
    } else {
        format!("bibgate_policy_{crate_suffix}.wasm")
    };
    let path = wasm_dir().join(&name);
    let core = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the policy {name} is not built ({}: {e}); run `bash scripts/test.sh`, or \
             `cargo build --profile policy --target wasm32-unknown-unknown -p <policy crate>` \
             (after `rustup target add wasm32-unknown-unknown`)",
            path.display()
        )
    });
    componentize(&core).unwrap()
}

fn engine() -> Arc<WasmEngine> {
    static ENGINE: OnceLock<Arc<WasmEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(WasmEngine::new().unwrap()))
        .clone()
}

struct World {
    store: SqliteStore,
    policies: Arc<SqlitePolicyStore>,
    runner: WasmPolicyRunner,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let store = SqliteStore::in_memory().unwrap();
    bibgate_test_support::init_demo(&store);
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> =
        Arc::new(FolderBlobStore::new(dir.path().join("blobs")).unwrap());
    let policies = Arc::new(SqlitePolicyStore::new(
        SqliteStore::in_memory().unwrap(),
        blobs,
    ));
    let runner = WasmPolicyRunner::new(engine(), policies.clone());
    World {
        store,
        policies,
        runner,
        _dir: dir,
    }
}

fn request(name: &str) -> PublishRequest {
    PublishRequest {
        name: name.into(),
        version: "1.0.0".into(),
        description: name.into(),
        fuel: 10_000_000,
        memory_bytes: 16 << 20,
        published_by: "test".into(),
        published_unix: NOW,
    }
}

impl World {
    fn activate(
        &self,
        institution: &str,
        policy: &str,
        config: Vec<(String, ConfigValue)>,
        on_error: OnError,
    ) -> String {
        let manifest = publish(
            &engine(),
            &*self.policies,
            &component(policy),
            &request(policy),
        )
        .unwrap();
        let expected = self
            .policies
            .active(institution)
            .unwrap()
            .map_or(0, |a| a.revision);
        self.policies
            .activate(
                &NewActivation {
                    institution: institution.into(),
                    sha256: manifest.sha256.clone(),
                    config,
                    on_error,
                    activated_by: "test".into(),
                    activated_unix: NOW,
                },
                expected,
            )
            .unwrap()
            .label()
    }

    fn route(&self, institution: &str) -> Route {
        route(&self.store, institution, None).unwrap()
    }

    fn send(&self, institution: &str, export_id: &str, record: &Record) -> ImportResult {
        let mut bytes = Vec::new();
        iso2709::write_record(record, &mut bytes).unwrap();
        let input = Input::Parsed(Box::new(
            bibgate_marc::parse(&bytes, Mode::Lenient, Charset::Auto).unwrap(),
        ));
        let received = Received {
            export_id: export_id.into(),
            batch_id: None,
            index: None,
            raw_key: format!("inbox/{institution}/{export_id}.mrc"),
            raw_offset: 0,
            raw_len: bytes.len() as u64,
            received_unix: NOW,
        };
        Importer::with_policies(&self.store, Some(&self.runner))
            .import(&self.route(institution), &input, &received, NOW)
            .unwrap()
    }

    fn record(&self, zone: &str, mms: &MmsId) -> Record {
        bibgate_import::read_stored(&self.store.record(zone, mms).unwrap().unwrap()).unwrap()
    }
}

fn bib(oclc: &str, v005: &str, elvl: u8, title: &str, extra: &[(&str, &[(u8, &str)])]) -> Record {
    let mut record = Record::default();
    record.leader.0[17] = elvl;
    record.push_control("005", v005);
    record.push_control("008", "240101s2024    xxu           000 0 eng d");
    record.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){oclc}"))]);
    record.push_data("245", b'1', b'0', &[(b'a', title)]);
    for (tag, subfields) in extra {
        record.push_data(tag, b' ', b' ', subfields);
    }
    record
}

fn title(record: &Record) -> String {
    record
        .fields_with_tag("245")
        .flat_map(|f| f.subfield_values(b'a'))
        .collect::<Vec<_>>()
        .join("|")
}

fn tags(record: &Record, tag: &str) -> Vec<String> {
    record
        .fields_with_tag(tag)
        .flat_map(|f| f.subfield_values(b'a'))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Acceptance: each example policy changes the outcome in its intended case and no other.

#[test]
fn no_005_check_turns_off_not_added_old_for_its_institution_only() {
    let w = world();
    let label = w.activate(ALPHA, "no_005_check", Vec::new(), OnError::Default);
    assert!(label.starts_with("no_005_check@1 sha256:"), "{label}");
    for institution in [ALPHA, BETA] {
        let first = w.send(
            institution,
            &format!("{institution}-1"),
            &bib("666", "20240101120000.0", b' ', "Newer", &[]),
        );
        assert_eq!(first.reason_code, "ADDED");
        let older = bib("666", "20200101000000.0", b' ', "Older", &[]);
        let result = w.send(institution, &format!("{institution}-2"), &older);
        let mms = first.mms_id.unwrap();
        if institution == ALPHA {
            assert_eq!(result.outcome, Outcome::Merged, "{:#?}", result.trace);
            assert_eq!(result.reason_code, "MERGED");
            assert_eq!(result.policy.as_deref(), Some(label.as_str()));
            assert!(
                result
                    .trace
                    .iter()
                    .any(|l| l.contains("NOT_ADDED_OLD -> MERGED")),
                "{:#?}",
                result.trace
            );
            assert_eq!(title(&w.record(ALPHA, &mms)), "Older");
        } else {
            assert_eq!(result.reason_code, "NOT_ADDED_OLD");
            assert_eq!(result.policy, None);
            assert_eq!(title(&w.record(BETA, &mms)), "Newer");
        }
    }
    // Not the intended case: a newer record merges with or without the policy, the same way.
    let newer = w.send(
        ALPHA,
        "a-3",
        &bib("666", "20250101000000.0", b' ', "Newest", &[]),
    );
    assert_eq!(newer.reason_code, "MERGED");
    assert!(
        newer
            .trace
            .iter()
            .any(|l| l == "policy kept the default decision")
    );
    let added = w.send(
        ALPHA,
        "a-4",
        &bib("777", "20200101000000.0", b' ', "New", &[]),
    );
    assert_eq!(added.reason_code, "ADDED");
    assert!(
        added
            .trace
            .iter()
            .any(|l| l == "policy kept the default decision")
    );
}

#[test]
fn protect_local_fields_keeps_590_and_69x_in_merges_only() {
    let w = world();
    let plain = world();
    w.activate(ALPHA, "protect_local_fields", Vec::new(), OnError::Default);
    let local: &[(&str, &[(u8, &str)])] = &[
        ("590", &[(b'a', "Local note")]),
        ("690", &[(b'a', "Local subject")]),
    ];
    let incoming_local: &[(&str, &[(u8, &str)])] = &[("590", &[(b'a', "OCLC note")])];
    for world in [&w, &plain] {
        let first = world.send(
            ALPHA,
            "e1",
            &bib("888", "20240101120000.0", b' ', "Old", local),
        );
        let result = world.send(
            ALPHA,
            "e2",
            &bib("888", "20250101120000.0", b' ', "New", incoming_local),
        );
        assert_eq!(result.reason_code, "MERGED");
        let merged = world.record(ALPHA, &first.mms_id.unwrap());
        assert_eq!(title(&merged), "New");
        if std::ptr::eq(world, &w) {
            assert_eq!(tags(&merged, "590"), ["Local note"]);
            assert_eq!(tags(&merged, "690"), ["Local subject"]);
            assert!(
                result.trace.iter().any(|l| l.contains("policy changed")),
                "{:#?}",
                result.trace
            );
        } else {
            // Alma's default overlay replaces them.
            assert_eq!(tags(&merged, "590"), ["OCLC note"]);
            assert!(tags(&merged, "690").is_empty());
        }
    }
    // Without local fields the merged record is what the engine alone makes.
    let a = w.send(
        ALPHA,
        "e3",
        &bib("999", "20240101120000.0", b' ', "One", &[]),
    );
    w.send(
        ALPHA,
        "e4",
        &bib("999", "20250101120000.0", b' ', "Two", &[]),
    );
    let b = plain.send(
        ALPHA,
        "e3",
        &bib("999", "20240101120000.0", b' ', "One", &[]),
    );
    plain.send(
        ALPHA,
        "e4",
        &bib("999", "20250101120000.0", b' ', "Two", &[]),
    );
    assert_eq!(
        w.record(ALPHA, &a.mms_id.unwrap()),
        plain.record(ALPHA, &b.mms_id.unwrap())
    );
}

#[test]
fn elvl_m_is_full_merges_level_m_over_a_full_record_only() {
    let w = world();
    w.activate(ALPHA, "elvl_m_is_full", Vec::new(), OnError::Default);
    w.send(
        ALPHA,
        "e1",
        &bib("1234", "20240101120000.0", b' ', "Full", &[]),
    );
    let m = w.send(
        ALPHA,
        "e2",
        &bib("1234", "20250101120000.0", b'M', "Level M", &[]),
    );
    assert_eq!(m.reason_code, "MERGED", "{:#?}", m.trace);
    let stored = w
        .store
        .record(ALPHA, &m.mms_id.clone().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.brief_level, 10,
        "M counts as full for the stored level too"
    );
    // Level 7 is still brief; BETA has no policy.
    let seven = w.send(
        ALPHA,
        "e3",
        &bib("1234", "20260101120000.0", b'7', "Level 7", &[]),
    );
    assert_eq!(seven.reason_code, "NOT_ADDED_BRIEF");
    w.send(
        BETA,
        "b1",
        &bib("1234", "20240101120000.0", b' ', "Full", &[]),
    );
    let beta = w.send(
        BETA,
        "b2",
        &bib("1234", "20250101120000.0", b'M', "Level M", &[]),
    );
    assert_eq!(beta.reason_code, "NOT_ADDED_BRIEF");
    // Level M that is also older: the 005 check still applies after the rerun.
    let old_m = w.send(
        ALPHA,
        "e4",
        &bib("1234", "20000101120000.0", b'M', "Old M", &[]),
    );
    assert_eq!(old_m.reason_code, "NOT_ADDED_OLD");
}

#[test]
fn authentication_guard_rejects_or_keeps_fields_as_configured() {
    let w = world();
    w.activate(ALPHA, "authentication_guard", Vec::new(), OnError::Default);
    let pcc: &[(&str, &[(u8, &str)])] = &[
        ("042", &[(b'a', "pcc")]),
        ("650", &[(b'a', "Checked subject")]),
    ];
    w.send(
        ALPHA,
        "e1",
        &bib("4321", "20240101120000.0", b' ', "PCC", pcc),
    );
    let result = w.send(
        ALPHA,
        "e2",
        &bib(
            "4321",
            "20250101120000.0",
            b' ',
            "Plain",
            &[("650", &[(b'a', "Other")])],
        ),
    );
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(result.reason_code, "NOT_ADDED_AUTHENTICATED");
    assert!(
        result
            .host_message
            .starts_with("Import Failed - NOT_ADDED_AUTHENTICATED: "),
        "{}",
        result.host_message
    );
    // An authenticated incoming record merges as usual.
    let ok = w.send(
        ALPHA,
        "e3",
        &bib("4321", "20250101120000.0", b' ', "PCC too", pcc),
    );
    assert_eq!(ok.reason_code, "MERGED");
    // keep-fields: merge, keeping 042/1XX/6XX of the existing record.
    w.activate(
        ALPHA,
        "authentication_guard",
        vec![("action".into(), ConfigValue::Text("keep-fields".into()))],
        OnError::Default,
    );
    let mut w2 = w;
    w2.runner = WasmPolicyRunner::new(engine(), w2.policies.clone());
    let kept = w2.send(
        ALPHA,
        "e4",
        &bib(
            "4321",
            "20260101120000.0",
            b' ',
            "Plain again",
            &[("650", &[(b'a', "Other")])],
        ),
    );
    assert_eq!(kept.reason_code, "MERGED");
    let merged = w2.record(ALPHA, &kept.mms_id.unwrap());
    assert_eq!(tags(&merged, "650"), ["Checked subject"]);
    assert_eq!(title(&merged), "Plain again");
}

// ---------------------------------------------------------------------------------------
// Admission and containment.

fn input() -> PolicyInput {
    let mut bytes = Vec::new();
    iso2709::write_record(&bib("1", "20240101120000.0", b' ', "T", &[]), &mut bytes).unwrap();
    PolicyInput {
        institution: ALPHA.into(),
        incoming: bytes,
        candidates: Vec::new(),
        as_of_unix: NOW,
        default: DefaultDecision {
            outcome: PolicyOutcome::Add,
            reason_code: "ADDED".into(),
            host_message: String::new(),
        },
    }
}

fn mode(m: &str) -> Vec<(String, ConfigValue)> {
    vec![("mode".into(), ConfigValue::Text(m.into()))]
}

#[test]
fn adversarial_guests_are_contained() {
    let engine = engine();
    let policy = engine
        .admit(&component("test_policy_adversarial"))
        .unwrap()
        .policy;
    let limits = Limits {
        fuel: 5_000_000,
        memory_bytes: 8 << 20,
    };
    for (m, kind) in [
        ("loop", FailureKind::OutOfFuel),
        ("alloc", FailureKind::Memory),
        ("trap", FailureKind::Trap),
        ("garbage", FailureKind::Garbage),
        ("error", FailureKind::Error),
    ] {
        let run = engine.run(&policy, &input(), &mode(m), limits);
        assert_eq!(
            run.result.as_ref().unwrap_err().kind,
            kind,
            "{m}: {:?}",
            run.result
        );
        // The host and the next instance carry on.
        let ok = engine.run(&policy, &input(), &mode("ok"), limits);
        assert_eq!(ok.result.unwrap().outcome, PolicyOutcome::KeepDefault);
    }
    // The wall-clock backstop: with practically unlimited fuel the epoch deadline stops it.
    let started = std::time::Instant::now();
    let run = engine.run(
        &policy,
        &input(),
        &mode("loop"),
        Limits {
            fuel: u64::MAX / 2,
            memory_bytes: 8 << 20,
        },
    );
    assert_eq!(run.result.unwrap_err().kind, FailureKind::Deadline);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// The SDK mirrors the WIT types in plain Rust (a guest must not link host crates); what a
/// guest builds with the SDK must arrive as the same values in the host's types, through
/// the real component boundary. A change on either side that does not keep them in step
/// (e.g. Leader/17 codes as `char` in the SDK and bytes in the host) fails here.
#[test]
fn the_sdk_types_arrive_as_the_host_types() {
    use bibgate_engine::{Condition, TagPattern};
    use bibgate_import::policy::{EngineSettings, FieldOp, Selector};
    let engine = engine();
    let policy = engine
        .admit(&component("test_policy_adversarial"))
        .unwrap()
        .policy;
    let answer = |m: &str| {
        engine
            .run(&policy, &input(), &mode(m), Limits::default())
            .result
            .unwrap_or_else(|failure| panic!("{m}: {failure:?}"))
    };
    let rerun = answer("shapes-rerun");
    assert_eq!(
        rerun.outcome,
        PolicyOutcome::Rerun(EngineSettings {
            check_005: Some(false),
            check_brief_level: Some(true),
            brief_levels: vec![(b'M', 10), (b'7', 3), (b' ', 10)],
        })
    );
    assert_eq!(rerun.trace, vec!["every engine setting".to_string()]);
    let tags = |p: &str| TagPattern::new(p).unwrap();
    assert_eq!(
        answer("shapes-merge").outcome,
        PolicyOutcome::Merge {
            target: 0,
            ops: vec![
                FieldOp::KeepExisting(Selector {
                    tags: tags("9XX"),
                    condition: Condition::Always,
                }),
                FieldOp::TakeIncoming(Selector {
                    tags: tags("245"),
                    condition: Condition::HasSubfield(b'a'),
                }),
                FieldOp::AddIncoming(Selector {
                    tags: tags("035"),
                    condition: Condition::SubfieldStartsWith {
                        code: b'a',
                        prefix: "(OCoLC)".into(),
                        negate: true,
                    },
                }),
                FieldOp::Remove(Selector {
                    tags: tags("*"),
                    condition: Condition::Always,
                }),
            ],
        }
    );
    assert_eq!(
        answer("shapes-reject").outcome,
        PolicyOutcome::Reject {
            code: "NOT_ADDED_PCC".into(),
            message: "Import Failed - held for review".into(),
        }
    );
}

#[test]
fn failing_policies_apply_the_institutions_failure_setting() {
    let w = world();
    w.activate(
        ALPHA,
        "test_policy_adversarial",
        mode("loop"),
        OnError::Default,
    );
    let flagged = w.send(
        ALPHA,
        "e1",
        &bib("5555", "20240101120000.0", b' ', "T", &[]),
    );
    assert_eq!(flagged.reason_code, "ADDED");
    assert!(
        flagged
            .trace
            .iter()
            .any(|l| l.starts_with("POLICY_FAILED: ") && l.contains("out of fuel")),
        "{:#?}",
        flagged.trace
    );
    assert!(flagged.policy.is_some());
    w.activate(
        ALPHA,
        "test_policy_adversarial",
        mode("bad-target"),
        OnError::Hold,
    );
    let runner = WasmPolicyRunner::new(engine(), w.policies.clone());
    let w = World { runner, ..w };
    let held = w.send(
        ALPHA,
        "e2",
        &bib("5556", "20240101120000.0", b' ', "T", &[]),
    );
    assert_eq!(held.outcome, Outcome::Failed);
    assert_eq!(held.reason_code, "POLICY_HOLD");
    assert!(
        held.host_message
            .starts_with("Import Failed - POLICY_HOLD: "),
        "{}",
        held.host_message
    );
    assert!(
        w.store.count_records(ALPHA).unwrap() == 1,
        "nothing stored for the held record"
    );
}

#[test]
fn admission_refuses_function_imports_wasi_wrong_worlds_and_oversize() {
    let engine = engine();
    let wasi = wat::parse_str(
        r#"(component
            (import "wasi:clocks/wall-clock@0.2.0" (instance (export "now" (func (result u64)))))
        )"#,
    )
    .unwrap();
    let host_function =
        wat::parse_str(r#"(component (import "log" (func (param "m" string))))"#).unwrap();
    let no_decide = wat::parse_str("(component)").unwrap();
    let wrong_signature = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func (export "decide") (result u32) (canon lift (core func $i "f")))
        )"#,
    )
    .unwrap();
    let other_version =
        wat::parse_str(r#"(component (import "bibgate:merge-policy/types@2.0.0" (instance)))"#)
            .unwrap();
    for (what, bytes) in [
        ("wasi", wasi),
        ("host function", host_function),
        ("no decide", no_decide),
        ("wrong signature", wrong_signature),
        ("other version", other_version),
    ] {
        let refused = engine.admit(&bytes);
        assert!(
            matches!(refused, Err(Error::Refused(_))),
            "{what}: {refused:?}"
        );
    }
    let huge = vec![0u8; bibgate_plugin_host::MAX_COMPONENT_BYTES + 1];
    assert!(matches!(engine.admit(&huge), Err(Error::Refused(_))));
    // And publish refuses, storing nothing.
    let w = world();
    let refused = publish(
        &engine,
        &*w.policies,
        &wat::parse_str("(component)").unwrap(),
        &request("x"),
    );
    assert!(refused.is_err());
    assert!(w.policies.published().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Determinism, precompiled loading, hot activation.

#[test]
fn same_input_same_outcome_and_fuel_in_fresh_instances() {
    let engine = engine();
    for name in [
        "no_005_check",
        "protect_local_fields",
        "elvl_m_is_full",
        "authentication_guard",
    ] {
        let policy = engine.admit(&component(name)).unwrap().policy;
        let first = engine.run(&policy, &input(), &[], Limits::default());
        assert!(first.result.is_ok(), "{name}: {:?}", first.result);
        assert!(first.fuel > 0);
        for _ in 0..5 {
            assert_eq!(
                engine.run(&policy, &input(), &[], Limits::default()),
                first,
                "{name}"
            );
        }
    }
}

#[test]
fn precompiled_artifacts_load_and_activation_is_picked_up_within_the_ttl() {
    let w = world();
    let runner = WasmPolicyRunner::with_ttl(
        engine(),
        w.policies.clone(),
        std::time::Duration::from_millis(100),
    );
    let w = World { runner, ..w };
    let manifest = publish(
        &engine(),
        &*w.policies,
        &component("no_005_check"),
        &request("no_005_check"),
    )
    .unwrap();
    let precompiled = w
        .policies
        .derived(&manifest.sha256, &engine().precompiled_name())
        .unwrap()
        .unwrap();
    let loaded = engine()
        .load_precompiled(&manifest.sha256, &precompiled)
        .unwrap();
    assert!(
        engine()
            .run(&loaded, &input(), &[], Limits::default())
            .result
            .is_ok()
    );
    // No policy yet; then an activation, seen without a restart once the TTL passed.
    w.send(
        ALPHA,
        "e1",
        &bib("31", "20240101120000.0", b' ', "Newer", &[]),
    );
    let before = w.send(
        ALPHA,
        "e2",
        &bib("31", "20200101120000.0", b' ', "Older", &[]),
    );
    assert_eq!(before.reason_code, "NOT_ADDED_OLD");
    w.activate(ALPHA, "no_005_check", Vec::new(), OnError::Default);
    std::thread::sleep(std::time::Duration::from_millis(150));
    let after = w.send(
        ALPHA,
        "e3",
        &bib("31", "20200101120000.0", b' ', "Older", &[]),
    );
    assert_eq!(after.reason_code, "MERGED");
    // Roll back (to nothing: revision 1 is the first) is refused; publish twice is idempotent.
    assert!(w.policies.rollback(ALPHA, 1, "t", NOW).is_err());
    let again = publish(
        &engine(),
        &*w.policies,
        &component("no_005_check"),
        &request("no_005_check"),
    )
    .unwrap();
    assert_eq!(again, manifest);
}

/// A policy store whose cache of precompiled code is broken: reads are refused (as a
/// swapped object is) and writes fail.
struct BrokenCache(Arc<SqlitePolicyStore>);

impl PolicyStore for BrokenCache {
    fn publish(&self, manifest: &PolicyManifest, component: &[u8]) -> bibgate_store::Result<bool> {
        self.0.publish(manifest, component)
    }
    fn manifest(&self, sha256: &str) -> bibgate_store::Result<Option<PolicyManifest>> {
        self.0.manifest(sha256)
    }
    fn published(&self) -> bibgate_store::Result<Vec<PolicyManifest>> {
        self.0.published()
    }
    fn artifact(&self, sha256: &str) -> bibgate_store::Result<Option<Vec<u8>>> {
        self.0.artifact(sha256)
    }
    fn put_derived(&self, _: &str, _: &str, _: &[u8]) -> bibgate_store::Result<()> {
        Err(bibgate_store::Error::Backend(
            "the cache is read-only".into(),
        ))
    }
    fn derived(&self, _: &str, _: &str) -> bibgate_store::Result<Option<Vec<u8>>> {
        Err(bibgate_store::Error::Corrupt("swapped: refused".into()))
    }
    fn activate(
        &self,
        activation: &NewActivation,
        expected: u64,
    ) -> bibgate_store::Result<Activation> {
        self.0.activate(activation, expected)
    }
    fn active(&self, institution: &str) -> bibgate_store::Result<Option<Activation>> {
        self.0.active(institution)
    }
    fn history(&self, institution: &str) -> bibgate_store::Result<Vec<Activation>> {
        self.0.history(institution)
    }
}

#[test]
fn a_refused_or_unwritable_cache_costs_a_compile_never_the_policy() {
    let w = world();
    let manifest = publish(
        &engine(),
        &*w.policies,
        &component("no_005_check"),
        &request("no_005_check"),
    )
    .unwrap();
    let runner = WasmPolicyRunner::new(engine(), Arc::new(BrokenCache(w.policies.clone())));
    let loaded = runner.load(&manifest.sha256).unwrap();
    assert_eq!(loaded.sha256(), manifest.sha256);
    assert!(
        engine()
            .run(&loaded, &input(), &[], Limits::default())
            .result
            .is_ok()
    );
}
