//! Skipping a test under Valgrind (`.ci/valgrind` sets `RUNNING_UNDER_VALGRIND`).
//! Shared with the monkey crate's tests (monkey/tests/common/mod.rs).
//!
//! Only for tests whose assertion is about something Valgrind changes: a time bound
//! (it runs the program 20-50 times slower, one thread at a time), a host limit it
//! keeps for itself, or a system call it does not implement (`pidfd_open`). Every
//! skip names its reason. A program the test executes (`Command`, the test binary
//! itself included) inherits the variable but runs natively (`.ci/valgrind` does not
//! trace children), so it has no reason to ask; a forked child is still under Valgrind.

/// Whether the test should return at once: running under Valgrind, for `reason`
/// (printed).
pub fn skip_under_valgrind(reason: &str) -> bool {
    let skip = std::env::var_os("RUNNING_UNDER_VALGRIND").is_some();
    if skip {
        eprintln!("skipped under Valgrind: {reason}");
    }
    skip
}
