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
use std::sync::Once;

use greenweave_greenlet as greenlet;

use crate::task::Task;

static INSTALL: Once = Once::new();

/// Installs the hook once per process.
pub(crate) fn install_panic_hook() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if let Some(line) = spawned_greenlet_line() {
                eprintln!("{line}");
            }
            previous(info);
        }));
    });
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
