//! Skipping a test under Valgrind (`.ci/valgrind` sets `RUNNING_UNDER_VALGRIND`).
//!
//! Only for tests whose assertion is about something Valgrind changes: a time bound
//! (it runs the program 20-50 times slower, one thread at a time) or a host limit it
//! keeps for itself. Every skip names its reason.

/// Whether the test should return at once: running under Valgrind, for `reason`
/// (printed).
pub fn skip_under_valgrind(reason: &str) -> bool {
    let skip = std::env::var_os("RUNNING_UNDER_VALGRIND").is_some();
    if skip {
        eprintln!("skipped under Valgrind: {reason}");
    }
    skip
}
