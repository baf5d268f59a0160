//! Signal handlers interrupting parked waits, as they interrupt system calls.
//!
//! A thread blocked in a system call when a signal handler runs on it sees the call
//! fail with `EINTR`, or, if the handler was installed with `SA_RESTART`, go on as if
//! nothing happened; some calls are never restarted (signal(7), "Interruption of
//! system calls and library functions by signal handlers"). A greenlet parked in a
//! patched call is in no system call, so the monkey layer reproduces that rule with
//! two halves that meet here:
//!
//! - its signal handlers run the user's handler through [`run_signal_handler`]
//!   (async-signal-safe): the delivery is counted on the thread it runs on, and that
//!   thread's hub is woken;
//! - its hooks park with an [`Eintr`] class saying which handlers end the wait
//!   (`coop::wait_fd`, `coop::sleep_until`).
//!
//! At its next maintenance pass (at once if it was asleep in `epoll_wait`, which the
//! signal or the wake-up ends) the hub ends, with `Wake::Signal`, the wait of every
//! greenlet that was parked in a wait of a matching class *when the handler ran*:
//! each wait keeps the counts it started with, so a greenlet that parked after the
//! handler ran, or that was running or ready then, is not affected. A greenlet woken
//! for another reason between the handler and the pass completes normally, as a
//! system call that finished before the signal would. Handlers run on other threads
//! interrupt nothing here, as with the kernel.
//!
//! While a handler runs through [`run_signal_handler`], no greenlet of its thread can
//! park ([`can_park`](crate::coop::can_park) says no): a libc call the handler makes
//! (`write` to a self-pipe, `close`) is the real, async-signal-safe one, never a hook
//! that would switch greenlets, or touch the hub the signal interrupted. A handler that
//! leaves by `siglongjmp` leaves its thread in that state until the hub's next
//! maintenance pass, which only ever runs outside handlers.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::hub::{self, Hub};
use crate::task::{TaskRef, TaskState, Wake};

/// Which signal handlers end a wait, as signal(7) says for the system call it stands
/// for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Eintr {
    /// None (futex waits, name lookups: calls that never fail with `EINTR`, or whose
    /// callers retry at once).
    #[default]
    Never,
    /// Handlers installed without `SA_RESTART`; the kernel restarts the call after the
    /// others (`read`, `write`, `recv`, `send`, `accept`, `connect`, `wait4`, …).
    UnlessRestarted,
    /// Every handler, `SA_RESTART` or not: calls the kernel never restarts (`poll`,
    /// `select`, `epoll_wait`, the sleeps, socket calls with a `SO_RCVTIMEO` or
    /// `SO_SNDTIMEO` timeout).
    Always,
}

/// How many handlers ran on a thread: without `SA_RESTART`, and with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Handled {
    unrestarted: u32,
    restarting: u32,
}

/// What a parked task's wait says about signals: its class, and the counts of this
/// thread when it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SignalWait {
    eintr: Eintr,
    since: Handled,
}

impl SignalWait {
    /// A wait of class `eintr` started now (for tests of the records that hold one).
    #[cfg(test)]
    pub(crate) fn marked(eintr: Eintr) -> SignalWait {
        SignalWait {
            eintr,
            since: handled_here(),
        }
    }

    /// Whether a handler counted in `now` (and not in the wait's start) ends it.
    fn ended_by(self, now: Handled) -> bool {
        match self.eintr {
            Eintr::Never => false,
            Eintr::UnlessRestarted => now.unrestarted != self.since.unrestarted,
            Eintr::Always => now != self.since,
        }
    }
}

thread_local! {
    /// Handlers run on this thread, `[without SA_RESTART, with it]`. Written from
    /// signal handlers: atomics, in a `const` thread-local without a destructor, which
    /// is a plain TLS access.
    static HANDLED: [AtomicU32; 2] = const { [AtomicU32::new(0), AtomicU32::new(0)] };
}

/// Set once handlers run through [`run_signal_handler`] exist (see [`expect_signals`]).
static EXPECTED: AtomicBool = AtomicBool::new(false);

/// Runs `handler`, a signal handler that the signal being handled on this thread calls
/// (`restarting`: it was installed with `SA_RESTART`), and returns what it returns.
/// Greenlets of this thread parked in waits of a matching [`Eintr`] class end them
/// with `EINTR` at the hub's next maintenance pass, which this makes happen soon (the
/// hub's waker is written, so a hub asleep in `epoll_wait`, or about to be, wakes up).
/// While `handler` runs, no greenlet of this thread parks (see the module docs).
///
/// Async-signal-safe, and meant to be called from signal handlers: it touches only
/// atomics (in a destructor-free thread-local and in the hub) and makes one `write`
/// system call (the raw instruction, never a libc hook; `errno` is left alone). On a
/// thread without a hub it only counts. The count comes first: a handler that never
/// returns (`siglongjmp`, `_exit`) still ends the waits it would have.
pub fn run_signal_handler<R>(restarting: bool, handler: impl FnOnce() -> R) -> R {
    HANDLED.with(|counts| counts[usize::from(restarting)].fetch_add(1, Ordering::Relaxed));
    let here = hub::Here::new();
    let Some(hub) = hub::existing(&here) else {
        return handler();
    };
    // Borrowed mutably only while a forked child rebuilds its hub, inside `fork`; a
    // handler interrupting that has nothing to wake.
    if let Ok(remote) = hub.remote.try_borrow() {
        remote.wake_from_signal_handler();
    }
    hub.signal_handlers_running.fetch_add(1, Ordering::Relaxed);
    let result = handler();
    // Saturating: a maintenance pass may have reset it meanwhile (a handler that
    // misused the runtime and parked).
    let _ = hub
        .signal_handlers_running
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(1))
        });
    result
}

/// Says that handlers run through [`run_signal_handler`] are installed in this process. From
/// then on a greenlet parked in a wait some signal can end counts as something the
/// operating system may wake, as a thread in `pause` does: with nothing else to wait
/// for, its hub sleeps until a signal comes instead of reporting a deadlock.
pub fn expect_signals() {
    EXPECTED.store(true, Ordering::Relaxed);
}

/// Whether [`expect_signals`] was called.
pub(crate) fn expected() -> bool {
    EXPECTED.load(Ordering::Relaxed)
}

/// This thread's counts now.
fn handled_here() -> Handled {
    HANDLED.with(|counts| Handled {
        unrestarted: counts[0].load(Ordering::Relaxed),
        restarting: counts[1].load(Ordering::Relaxed),
    })
}

/// Marks the current greenlet's waits as ended by the handlers `eintr` names, for as
/// long as it lives (one blocking call of a hook). `Eintr::Never` marks nothing.
pub(crate) struct Interruptible<'a> {
    /// The hub and the task marked (none for `Eintr::Never`), borrowed for the frame
    /// of the blocking call: neither a reference count nor a second hub lookup.
    marked: Option<(&'a Hub, TaskRef<'a>)>,
}

impl<'a> Interruptible<'a> {
    #[inline]
    #[track_caller]
    pub(crate) fn enter(hub: &'a Hub, eintr: Eintr) -> Interruptible<'a> {
        if eintr == Eintr::Never {
            return Interruptible { marked: None };
        }
        let task = hub.current_task_borrowed();
        task.set_signal_wait(SignalWait {
            eintr,
            since: handled_here(),
        });
        hub.signal_waits.set(hub.signal_waits.get() + 1);
        Interruptible {
            marked: Some((hub, task)),
        }
    }
}

impl Drop for Interruptible<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some((hub, task)) = &self.marked {
            task.set_signal_wait(SignalWait::default());
            hub.signal_waits.set(hub.signal_waits.get() - 1);
        }
    }
}

/// The hub's side, at each maintenance pass: ends the waits that handlers run on this
/// thread since the last pass interrupt (see the module docs).
pub(crate) fn end_interrupted_waits(hub: &Hub, seen: &Cell<Handled>) {
    // No handler is running: the hub runs only when a greenlet switched to it, which
    // none does inside a handler. One that left by `siglongjmp` is over.
    hub.signal_handlers_running.store(0, Ordering::Relaxed);
    let now = handled_here();
    if seen.replace(now) == now || hub.signal_waits.get() == 0 {
        return;
    }
    for task in hub.tasks() {
        if task.state() == TaskState::Blocked && task.signal_wait().ended_by(now) {
            task.wake(Wake::Signal);
        }
    }
}
