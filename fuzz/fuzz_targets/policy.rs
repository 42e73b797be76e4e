//! Policy admission: whatever bytes are offered as a merge policy (a component, or a core
//! module that `bibgate policy publish` componentises first), admission answers Ok or a
//! refusal, never a panic; and a component it admits really has the world's shape.
#![no_main]

use std::sync::OnceLock;

use bibgate_plugin_host::{WasmEngine, componentize};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static WasmEngine {
    static ENGINE: OnceLock<WasmEngine> = OnceLock::new();
    ENGINE.get_or_init(|| WasmEngine::new().expect("the policy engine starts"))
}

fuzz_target!(|data: &[u8]| {
    let engine = engine();
    if let Ok(admitted) = engine.admit(data) {
        // An admitted policy always comes with its precompiled code.
        assert!(!admitted.precompiled.is_empty());
    }
    if let Ok(component) = componentize(data) {
        let _ = engine.admit(&component);
    }
});
