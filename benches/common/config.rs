//! The criterion settings the micro-benchmark files share (the echo bench, whose
//! functions are slower and fewer, has its own).

use std::time::Duration;

use criterion::Criterion;

/// Defaults for a plain `cargo bench`: 1 s of warm-up and 3 s of measurement per
/// function; criterion's command-line flags override them.
pub fn standard() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}
