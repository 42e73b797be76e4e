//! Host bindings for `bibgate:merge-policy@1.0.0`, generated once here (house style R8).
#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "../../plugins/wit/merge-policy/v1",
    world: "merge-policy",
});

pub use bibgate::merge_policy::types;
