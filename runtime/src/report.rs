//! Panic reports that name the greenlet, the way std names the thread.
//!
//! std's panic message says which *thread* panicked; with many greenlets on one thread
//! that is not enough. The first hub of the process installs a panic hook that, for a
//! panic inside a greenlet the runtime spawned, first prints
//!
//! ```text
//! in greenlet 'worker-3' (id 12), spawned at src/main.rs:20:9:
//! ```
//!
//! and then hands over to the hook that was installed before (std's, which prints the
//! message, location and backtrace as usual). Kills and timeouts unwind without
//! panicking, so they print nothing.

use std::panic;
use std::sync::{Mutex, PoisonError};

use greenweave_greenlet as greenlet;

use crate::task::Task;

/// Whether the hook is wanted, and whether it was installed.
struct Hook {
    refused: bool,
    installed: bool,
}

static HOOK: Mutex<Hook> = Mutex::new(Hook {
    refused: false,
    installed: false,
});

/// Installs the hook once per process, unless the application refused it
/// (`config::Config::panic_hook`).
pub(crate) fn install_panic_hook() {
    let mut hook = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
    if hook.refused || hook.installed {
        return;
    }
    hook.installed = true;
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if let Some(line) = spawned_greenlet_line() {
            eprintln!("{line}");
        }
        previous(info);
    }));
}

/// Chooses whether the first hub installs the hook; `false` if it is installed
/// already (saying yes then changes nothing and returns `true`).
pub(crate) fn want_panic_hook(install: bool) -> bool {
    let mut hook = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
    if hook.installed {
        return install;
    }
    hook.refused = !install;
    true
}

/// "in greenlet 'x' (id N), spawned at f.rs:1:2:" for a spawned greenlet; `None` on a
/// thread's main greenlet (std's "thread 'name'" already says it) or outside greenweave.
fn spawned_greenlet_line() -> Option<String> {
    if !greenlet::thread_alive() {
        return None;
    }
    let here = crate::hub::Here::new();
    let task = Task::current_borrowed(&here)?;
    let at = task.location?;
    Some(format!("in {}, spawned at {at}:", **task))
}
