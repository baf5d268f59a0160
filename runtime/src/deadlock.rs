//! The deadlock report: when nothing can ever wake any greenlet of a hub, a report
//! naming every blocked greenlet, where it was spawned and what it waits on, delivered
//! to the thread's main greenlet if it is blocked (else to the first blocked one), whose
//! blocking call panics with it (gevent's `LoopExit`, telling you why).

use std::rc::Rc;

use crate::fork::{self, ChildEnd};
use crate::hub::Hub;
use crate::task::{Interrupt, Task, TaskState};

/// Builds the report and wakes the greenlet that is to raise it.
///
/// # Panics
///
/// If no greenlet is blocked (the hub was entered without one): a bug.
pub(crate) fn deliver(hub: &Hub) {
    let tasks = hub.tasks();
    let blocked: Vec<&Rc<Task>> = tasks
        .iter()
        .filter(|t| t.state() == TaskState::Blocked)
        .collect();
    let mut report = String::from(
        "greenweave: deadlock: every greenlet on this thread is blocked and nothing can wake any of them \
         (no greenlet is ready, no timer is pending, no I/O or cross-thread work is outstanding).\n\
         Blocked greenlets:",
    );
    for task in &blocked {
        report.push_str("\n  - ");
        task.describe_line(&mut report);
    }
    // The thread's main greenlet, or in a forked child the spawned greenlet that forked
    // (which plays its part there).
    let root = hub.fork_root.get();
    let victim = blocked
        .iter()
        .find(|t| t.greenlet.is_main() || t.id() == root)
        .or(blocked.first());
    match victim {
        Some(task) => {
            task.interrupt(Interrupt::Deadlock(report));
        }
        // A child forked from inside the hub left every greenlet behind: it is done.
        None if fork::in_forked_child() => fork::exit_child(ChildEnd::Returned),
        None => panic!("{report}\n  (none: the hub was entered without a blocked greenlet)"),
    }
}
