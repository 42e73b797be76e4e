//! The `bibgate` binary, end to end, as one test binary (`cargo test -p bibgate-cli --test
//! tests`; a module's tests alone with a filter, e.g. `-- faults::`).
//!
//! - `backup`: `backup`, `restore` and `verify`, a backup under the load of 50 clients
//!   (issue 19).
//! - `cli`: output shapes and documented exit codes of `inspect` and `convert`.
//! - `console`: `serve --console` over raw HTTP: sign-in, zones, CSRF, cookies, back-off.
//! - `console_browser`: the console in Chromium, driven by `scripts/console_browser.py`.
//! - `consortium`: `consortium apply|show` and `institution list|show` on both backends (AWS
//!   on moto).
//! - `result`: `bibgate result` on an imported record, an unknown export and a missing store.
//! - `faults`: the processor killed at each step of an import and restarted (Unix only).
//! - `input`: input without records, endless and sparse files in bounded memory, `policy
//!   publish` of an endless file, owner-only file modes (issue 18).
//! - `metrics`: `serve --metrics`: /metrics parsed by Prometheus's parser against the stored
//!   results, and /health.
//! - `staff`: `results` and `result retry` on both backends (AWS on moto).
//! - `demo`: `bibgate demo` from a folder outside the repository, no shared corpus.
//! - `scenario`: `scripts/consortium-scenario.sh` on both backends (issue 14's acceptance).
//! - `util`: the helpers they share.

mod backup;
mod cli;
mod console;
mod console_browser;
mod consortium;
mod demo;
mod faults;
mod input;
mod metrics;
mod result;
mod scenario;
mod staff;
mod util;
