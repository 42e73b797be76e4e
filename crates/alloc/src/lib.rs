//! The global allocator Bibgate's binaries ship with, and the one setting a long-running
//! server adds to it. One place, so that `bibgate` and the benchmarks that claim to measure
//! it run on the same allocator with the same settings.
//!
//! - [`Allocator`] is mimalloc, built without transparent huge pages (workspace manifest):
//!   imports allocate and free many record-sized buffers and spend about a quarter less CPU
//!   with it than with the system allocator (ARCHITECTURE.md, `crates/cli`).
//! - [`keep_freed_pages`] turns off mimalloc's purging (returning freed pages to the OS
//!   10 ms after they become free). `bibgate serve` calls it: an export's buffers are
//!   freed when its reply is sent and needed again by the next export, and purging them in
//!   between made the gateway's p99 at 50 clients worse (README, issue 4). The cost is that
//!   the process keeps its peak heap resident; measured in RELIABILITY.md.
//!
//! The binary declares the allocator itself:
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: bibgate_alloc::Allocator = bibgate_alloc::Allocator;
//! ```

/// The allocator: mimalloc without transparent huge pages.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (the 16th entry of `mi_option_e`, the
/// same in mimalloc 2 and 3): milliseconds before freed memory is returned to the OS; `-1`
/// never. The Rust bindings leave it out of their constants ("not exposed for stability
/// reasons"); the test below checks the number against the environment variable mimalloc
/// reads for it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed pages to the OS (mimalloc's purge delay `-1`), for this process from
/// now on. Freed memory stays mapped and is reused by later allocations; the resident size
/// stays at its peak. Meant for a long-running server whose work comes in equal-sized
/// pieces; call it once at start-up.
pub fn keep_freed_pages() {
    // SAFETY: `mi_option_set` stores a value into mimalloc's option table (an atomic
    // store); any option number below `_mi_option_last` is valid and the value is plain.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
}

/// mimalloc's current purge delay in milliseconds (`-1`: never).
pub fn purge_delay() -> i64 {
    // SAFETY: reads mimalloc's option table; initialises the option from the environment on
    // first read.
    #[allow(unsafe_code)]
    let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    i64::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "BIBGATE_ALLOC_TEST_CHILD";

    /// mimalloc reads `MIMALLOC_PURGE_DELAY` into the purge-delay option at start-up; a
    /// process started with it must see that value through [`PURGE_DELAY`]. A wrong option
    /// number reads some other option's value. (The test runs itself as the child.)
    #[test]
    fn purge_delay_is_the_option_the_environment_sets() {
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(purge_delay(), 4321);
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "tests::purge_delay_is_the_option_the_environment_sets",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("MIMALLOC_PURGE_DELAY", "4321")
            .output()
            .expect("runs the test binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the child ran the check: {stdout}"
        );
    }

    #[test]
    fn keep_freed_pages_sets_never() {
        keep_freed_pages();
        assert_eq!(purge_delay(), -1);
    }
}
