//! The examples' logger. greenweave reports through the `log` facade, on the targets
//! `greenweave::hub`, `::monitor`, `::net`, `::threadpool`, `::sync`, `::monkey` and
//! `::greenlet` (see `greenweave::log_targets`). Warnings and errors show by default;
//! `RUST_LOG=greenweave=debug` shows everything greenweave says, and
//! `GREENWEAVE_MONITOR=100ms` adds the blocking monitor's reports.

/// Starts `env_logger`, at `warn` unless `RUST_LOG` says otherwise.
pub fn init() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
}
