//! A thread's exit: its hub ends the greenlets still alive, then gives back everything
//! it owns.
//!
//! The hub's thread-local is destroyed before the greenlet layer's (it is made after
//! it; see `hub::first_use`), on the thread's own stack, which is the main greenlet.
//! Greenlets can still be switched to, so the exit is orderly:
//!
//! 1. The `Local` values of the greenlets greenweave did not spawn (the main greenlet,
//!    raw greenlets that blocked on the hub) are dropped.
//! 2. Every spawned greenlet still alive is killed, as [`killall`](crate::killall)
//!    does: the kill is delivered once, at its blocking point (`GreenletExit`, or
//!    `ECANCELED` inside a libc hook), and its destructors run; they may block, and
//!    the hub runs (timers, I/O, other threads' wake-ups) until each has died, or
//!    until [`EXIT_GRACE`] has passed. Greenlets spawned meanwhile are killed too, as soon as the exit sees
//!    them: one that has not started by then never runs, one that has runs up to its
//!    first blocking point, where the kill reaches it (spawning stays free of checks).
//! 3. The hub loop returns, so the hub greenlet's stack goes back to the pool.
//! 4. Everything is dropped: task records, timers, the fd table, the epoll instance and
//!    the waker's eventfd (kept while another thread still holds a waker). Then the
//!    greenlet layer's state goes, and with it every slab whose stacks are all back.
//!
//! A greenlet that survives its kill (catches it and blocks again) or is still
//! blocked in a destructor after [`EXIT_GRACE`] is *abandoned*: it is never resumed,
//! and its task record and its stack stay allocated for the life of the process (its
//! slab stays mapped; the slab's free stacks give their pages back). So is a raw
//! greenlet still parked on the hub: the runtime did not make it and cannot end it.
//!
//! When greenlets cannot be switched to any more, nothing is ended and every greenlet
//! is abandoned, with the hub greenlet and the records that refer to them (the epoll
//! instance and the eventfd are still closed): when the thread exits from inside a
//! spawned greenlet (`std::process::exit`, or a forked child's main greenlet
//! returning), in a hub copied by a fork and not rebuilt (the fork handlers rebuild the
//! forking thread's hub; a copy's waits are registered in the parent's epoll instance,
//! which ending them would change), if the greenlet layer's state is already gone, or
//! if the orderly exit itself panicked.
//! On the process's main thread all of this runs when the process exits normally
//! (glibc runs the main thread's thread-local destructors in `exit`).

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_greenlet as greenlet;

use crate::hub::Hub;
use crate::task::{Describe, Interrupt, Task, TaskState};

/// How long a thread's exit waits for the greenlets it killed to die.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(1);

/// How far a hub's teardown got at thread exit.
pub(crate) enum Ending {
    /// The hub loop is over; greenlets still alive (if any) are abandoned.
    Stopped,
    /// Nothing could be switched to: every greenlet and the hub greenlet are abandoned.
    Frozen,
}

/// Ends what is left of `hub`'s greenlets (see the module docs).
pub(crate) fn shut_down(hub: &Hub) -> Ending {
    if !greenlet::thread_alive()
        || hub.pid.get() != std::process::id()
        || !greenlet::current().is_main()
    {
        return Ending::Frozen;
    }
    // A panic's message was printed by the panic hook already.
    if panic::catch_unwind(AssertUnwindSafe(|| drop_adopted_locals(hub))).is_err() {
        log::error!(target: crate::log_targets::HUB, "a Local value's destructor panicked at thread exit");
    }
    let ended = panic::catch_unwind(AssertUnwindSafe(|| {
        kill_and_wait(hub);
        hub.stop_loop();
    }));
    if ended.is_err() {
        log::error!(
            target: crate::log_targets::HUB,
            "ending this thread's greenlets at its exit panicked; they are abandoned"
        );
        return Ending::Frozen;
    }
    Ending::Stopped
}

/// Drops the `Local` values of the greenlets the runtime did not spawn (spawned ones
/// drop theirs when they finish).
fn drop_adopted_locals(hub: &Hub) {
    for task in hub.tasks() {
        if task.location.is_none() {
            drop(task.take_rare());
        }
    }
}

/// What the exiting thread waits on, for reports.
struct ExitWait<'a>(&'a Task);

impl Describe for ExitWait<'_> {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Join
    }

    fn describe(&self, out: &mut String) {
        out.push_str(&format!("the end of {}, killed at thread exit", self.0));
    }
}

/// Kills every spawned greenlet still alive (and those spawned meanwhile) and waits for
/// them to die, at most until [`EXIT_GRACE`] has passed.
fn kill_and_wait(hub: &Hub) {
    let deadline = Instant::now() + EXIT_GRACE;
    let mut killed = HashSet::new();
    loop {
        let alive: Vec<Rc<Task>> = hub
            .tasks()
            .into_iter()
            .filter(|t| t.location.is_some() && t.state() != TaskState::Done)
            .collect();
        if alive.is_empty() {
            return;
        }
        for task in &alive {
            if killed.insert(task.id()) {
                task.interrupt(Interrupt::Killed);
            }
        }
        for task in &alive {
            while task.state() != TaskState::Done {
                if Instant::now() >= deadline {
                    return;
                }
                if task.joiners.wait(&ExitWait(task), Some(deadline)).is_err() {
                    // An interrupt of the main greenlet itself. None is expected (no
                    // handle can kill it, its `Timeout`s are gone with its frames, and
                    // the deadline's timer rules out a deadlock report), but if one
                    // comes, waiting is over.
                    return;
                }
            }
        }
    }
}

/// Frees `hub` after [`shut_down`], except the records of abandoned greenlets (and,
/// when frozen, everything that holds a greenlet): dropping one could resume it.
pub(crate) fn release(hub: Box<Hub>, ending: Ending) {
    let tasks = std::mem::take(&mut *hub.tasks.borrow_mut());
    match ending {
        Ending::Frozen => {
            crate::kept::keep(tasks);
            hub.ready.abandon();
            let Hub {
                greenlet,
                timers,
                io,
                spare_tasks,
                ..
            } = *hub;
            // Their greenlets' parent handles may be the hub greenlet's last ones, and
            // its stack must not be unwound now.
            crate::kept::keep((greenlet, timers, io, spare_tasks));
        }
        Ending::Stopped => {
            for (_, task) in tasks {
                let ended = match task.location {
                    Some(_) => task.state() == TaskState::Done,
                    None => task.greenlet.is_main() || task.greenlet.is_dead(),
                };
                if !ended {
                    // Abandoned: the greenlet's own stack refers to its record, and
                    // dropping the last handle of its greenlet would resume it.
                    crate::kept::keep(task);
                    continue;
                }
                if task.location.is_none() {
                    // Breaks the greenlet -> context -> task -> greenlet cycle.
                    task.detach();
                }
            }
            // Other references to an abandoned task (a timer, a wait queue) are not
            // its last: they can go with the rest.
            drop(hub);
        }
    }
}
