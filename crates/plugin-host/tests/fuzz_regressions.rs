//! Inputs the `policy` fuzz target (fuzz/fuzz_targets/policy.rs) found to crash admission,
//! kept as regressions: each must be refused with an error, never a panic.

use std::path::PathBuf;

use bibgate_plugin_host::{WasmEngine, componentize};

#[test]
fn fuzz_crashes_are_refused_with_an_error() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("fuzz-crash-"))
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no fuzz-crash-* fixtures in {dir:?}");
    let engine = WasmEngine::new().unwrap();
    for path in inputs {
        let bytes = std::fs::read(&path).unwrap();
        let componentized = componentize(&bytes);
        assert!(componentized.is_err(), "{path:?} should not componentise");
        let message = componentized.unwrap_err().to_string();
        assert!(
            message.contains("not a valid WebAssembly core module"),
            "{path:?}: {message}"
        );
        assert!(
            engine.admit(&bytes).is_err(),
            "{path:?} should not be admitted"
        );
    }
}
