//! What greenweave sets up for the whole process, and how to keep it for yourself.
//!
//! By default, the first use of greenweave installs two process-wide hooks:
//!
//! - **a panic hook** (when the process makes its first hub): for a panic inside a
//!   spawned greenlet it first prints `in greenlet 'name' (id N), spawned at
//!   file:line:col:`, then calls the hook that was installed before (std's, which
//!   prints the message and backtrace as usual). Kills and timeouts unwind without
//!   panicking, so they print nothing.
//! - **a `SIGSEGV` handler** (when the process makes its first greenlet stack), so
//!   that a greenlet overflowing its stack is reported by name and stack size before
//!   the process aborts, as std does for threads; any other fault is passed on to the
//!   handler installed before. Each thread that makes greenlets also gets a 64 KiB
//!   alternate signal stack if its own is smaller (std gives its threads 8 KiB).
//!
//! An application with its own panic hook or signal handling can say no to either,
//! before anything else of greenweave's runs:
//!
//! ```
//! use greenweave_runtime::config::Config;
//!
//! Config::new()
//!     .panic_hook(false)
//!     .stack_overflow_handler(false)
//!     .apply()
//!     .expect("called before the first greenlet");
//! ```
//!
//! Nothing else is process-wide unless asked for: the blocking monitor's `SIGURG`
//! handler comes with [`monitor::start`](crate::monitor::start) (or
//! `GREENWEAVE_MONITOR`) and the first `dump_all`, and a dump signal with
//! [`monitor::install_dump_signal`](crate::monitor::install_dump_signal).

use std::error::Error;
use std::fmt;

/// The process-wide hooks greenweave installs (see the [module docs](self)). Both
/// default to yes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a Config does nothing until `apply` is called"]
pub struct Config {
    panic_hook: bool,
    stack_overflow_handler: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

impl Config {
    /// The defaults: both hooks installed.
    pub fn new() -> Config {
        Config {
            panic_hook: true,
            stack_overflow_handler: true,
        }
    }

    /// Whether the first hub installs the panic hook that names the greenlet.
    pub fn panic_hook(mut self, install: bool) -> Config {
        self.panic_hook = install;
        self
    }

    /// Whether the first greenlet stack installs the `SIGSEGV` handler that reports
    /// greenlet stack overflows (and gives threads with greenlets a 64 KiB alternate
    /// signal stack). Without it, a greenlet overflowing its stack is whatever the
    /// previous `SIGSEGV` handler makes of a fault in a guard page: typically a plain
    /// segmentation fault.
    pub fn stack_overflow_handler(mut self, install: bool) -> Config {
        self.stack_overflow_handler = install;
        self
    }

    /// Makes the choices. Call it before anything else of greenweave's, at the start
    /// of `main`.
    ///
    /// # Errors
    ///
    /// If a hook that is refused has been installed already; the other choice is made
    /// all the same.
    pub fn apply(self) -> Result<(), ConfigError> {
        let overflow = greenweave_greenlet::set_overflow_handler(self.stack_overflow_handler);
        let panic = crate::report::want_panic_hook(self.panic_hook);
        match (panic, overflow) {
            (true, true) => Ok(()),
            (false, _) => Err(ConfigError {
                hook: "panic hook",
                installed_by: "the first hub",
            }),
            (true, false) => Err(ConfigError {
                hook: "stack-overflow handler (SIGSEGV)",
                installed_by: "the first greenlet stack",
            }),
        }
    }
}

/// [`Config::apply`] came too late for a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    hook: &'static str,
    installed_by: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "greenweave: the {} was installed already (by {}); call Config::apply at the \
             start of main, before anything of greenweave's runs",
            self.hook, self.installed_by
        )
    }
}

impl Error for ConfigError {}
