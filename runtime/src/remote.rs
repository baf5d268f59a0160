//! Waking greenlets from other OS threads: the hub's injector.
//!
//! A [`RemoteWaker`] is the `Send` form of a wait token. It goes to another thread
//! (a thread-pool job, a callback from a C library); its [`wake`](RemoteWaker::wake)
//! queues the token for the hub and wakes the hub's `epoll_wait` through a
//! waker (an eventfd; see `sys::EventFd`). While a `RemoteWaker` exists the hub counts it as outstanding work, so a
//! greenlet waiting for another thread is never reported as deadlocked. The queue and
//! the count, and the order in which both sides use them, are the `injector`'s.
//!
//! In a forked child, the injectors of the parent's hubs are *defunct*: their hubs'
//! threads do not exist there (or, on the forking thread, the hub has a new injector),
//! their lock may have been held by a thread that vanished, and their eventfds are
//! shared with the parent. A wake-up through one does nothing (see `fork`).

use std::io;
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

use crate::hub::Hub;
use crate::injector::Injector;
use crate::park::WaitToken;
use crate::sys::EventFd;
use crate::task::Wake;

/// The mio token of the hub's waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// A wait addressed without `Rc`s: registry key, greenlet id, wait generation.
#[derive(Clone, Copy, Debug)]
struct RemoteToken {
    key: usize,
    id: u64,
    generation: u64,
}

/// A hub's injector, woken through an eventfd registered on its poll.
pub(crate) struct Shared {
    injector: Injector<RemoteToken, EventFd>,
    /// The fork generation it was made in: in a later one (a forked child) it is
    /// defunct.
    born: u64,
}

impl Shared {
    pub(crate) fn new(poll: &Poll) -> io::Result<Shared> {
        let waker = EventFd::new()?;
        poll.registry()
            .register(&mut SourceFd(&waker.raw()), WAKER_TOKEN, Interest::READABLE)?;
        Ok(Shared {
            injector: Injector::new(waker),
            born: crate::fork::generation(),
        })
    }

    /// Whether this is a parent's injector seen from a forked child (see the module
    /// docs).
    #[inline]
    fn defunct(&self) -> bool {
        self.born != crate::fork::generation()
    }

    /// Wakes the hub from a signal handler on its thread (async-signal-safe: one
    /// `write` to the eventfd, no lock).
    pub(crate) fn wake_from_signal_handler(&self) {
        self.injector.raise();
    }

    /// `RemoteWaker`s alive or woken but not yet processed.
    pub(crate) fn outstanding(&self) -> usize {
        self.injector.outstanding()
    }

    /// Wakes the hub out of `epoll_wait` without queuing anything (from any thread):
    /// it runs a maintenance pass, where it looks at what else was asked of it.
    pub(crate) fn wake_hub(&self) {
        self.injector.raise();
    }

    /// Runs the wake-ups other threads queued (on the hub's thread).
    pub(crate) fn run_pending(&self, hub: &Hub) {
        self.injector.drain(|token| {
            if let Some(task) = hub.task_by_key(token.key, token.id) {
                task.wake_wait(token.generation, Wake::Notified);
            }
        });
    }
}

/// Wakes one parked greenlet from any thread. Dropping it without waking counts as
/// "this work will never complete" (the greenlet stays parked, and if nothing else
/// can wake it the hub reports a deadlock).
pub struct RemoteWaker {
    shared: Arc<Shared>,
    token: RemoteToken,
    armed: bool,
}

impl RemoteWaker {
    pub(crate) fn new(shared: Arc<Shared>, wait: &WaitToken) -> RemoteWaker {
        shared.injector.expect();
        let task = wait.task();
        RemoteWaker {
            shared,
            token: RemoteToken {
                key: task.key(),
                id: task.id(),
                generation: task.generation(),
            },
            armed: true,
        }
    }

    /// Wakes the greenlet (if its wait is still in progress).
    pub fn wake(mut self) {
        self.armed = false;
        if !self.shared.defunct() {
            self.shared.injector.inject(self.token);
        }
    }
}

impl Drop for RemoteWaker {
    fn drop(&mut self) {
        if self.armed && !self.shared.defunct() {
            // The hub re-checks whether anything can still wake its greenlets.
            self.shared.injector.forget();
        }
    }
}

/// Ends one shielded wait (see [`coop::park_external`](crate::coop::park_external))
/// from any thread, any number of times (only the first call while the wait is in
/// progress counts). Unlike a [`RemoteWaker`] it does not count as outstanding work:
/// the hub counts the *wait* instead, for as long as it lasts.
pub struct ThreadWaker {
    shared: Arc<Shared>,
    token: RemoteToken,
}

impl ThreadWaker {
    pub(crate) fn new(shared: Arc<Shared>, wait: &WaitToken) -> ThreadWaker {
        let task = wait.task();
        ThreadWaker {
            shared,
            token: RemoteToken {
                key: task.key(),
                id: task.id(),
                generation: task.generation(),
            },
        }
    }

    /// Wakes the greenlet if its wait is still in progress. From a greenlet of the
    /// waiter's own hub this makes it ready at once; from anywhere else (another
    /// thread, or the hub itself) it goes through the hub's injector.
    pub fn wake(&self) {
        let woken_here = crate::hub::try_with_existing(|hub| {
            if !Arc::ptr_eq(&hub.remote.borrow(), &self.shared) || hub.greenlet.is_current() {
                return false;
            }
            if let Some(task) = hub.try_task_by_key(self.token.key, self.token.id) {
                task.wake_wait(self.token.generation, Wake::Notified);
                return true;
            }
            false
        });
        if woken_here == Some(true) || self.shared.defunct() {
            return;
        }
        // Counted only now: until the hub handles this, its wait counts instead.
        self.shared.injector.expect();
        self.shared.injector.inject(self.token);
    }
}

/// What a greenlet waiting for another thread shows in reports.
struct OtherThread;

impl crate::task::Describe for OtherThread {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Thread
    }

    fn describe(&self, out: &mut String) {
        out.push_str("work on another OS thread");
    }
}

/// Parks the current greenlet until another OS thread wakes it: `start` receives a
/// [`RemoteWaker`] to hand to that thread (a job queue, a callback). Other greenlets run
/// meanwhile. Returns when the waker is woken; if it is dropped unwoken and nothing else
/// can wake this greenlet, the hub reports a deadlock here.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// let result = Arc::new(Mutex::new(None));
/// let slot = result.clone();
/// greenweave_runtime::wait_for_thread(move |waker| {
///     std::thread::spawn(move || {
///         *slot.lock().unwrap() = Some(6 * 7);
///         waker.wake();
///     });
/// });
/// assert_eq!(*result.lock().unwrap(), Some(42));
/// ```
///
/// # Panics
///
/// Unwinds with `GreenletExit` if the greenlet is killed, or with the timeout's payload
/// if a `Timeout` expires, while it waits (the other thread's work is not cancelled).
#[track_caller]
pub fn wait_for_thread(start: impl FnOnce(RemoteWaker)) {
    if let Err(interrupt) = park_for_thread(start) {
        crate::park::raise(interrupt);
    }
}

/// [`wait_for_thread`] for callers that must not unwind: an interrupt comes back as
/// `Err`, taken (delivered by whoever reports it; see `park::put_back`).
#[track_caller]
pub(crate) fn park_for_thread(
    start: impl FnOnce(RemoteWaker),
) -> Result<(), crate::task::Interrupt> {
    // No `hub::with` closure around the park: the park records its caller's line,
    // which a closure would hide.
    let here = crate::hub::Here::new();
    let shared = crate::hub::get(&here).remote.borrow().clone();
    crate::park::park(&OtherThread, None, |token| {
        start(RemoteWaker::new(shared, &token));
    })
    .map(|_| ())
}
