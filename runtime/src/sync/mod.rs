//! Synchronization between the greenlets of one thread: gevent's `gevent.event` and
//! `gevent.lock` (and their `threading` counterparts) for greenweave.
//!
//! | greenweave | gevent / threading |
//! | --- | --- |
//! | [`Event`] | `gevent.event.Event`, `threading.Event` |
//! | [`AsyncResult`] | `gevent.event.AsyncResult` |
//! | [`Semaphore`], [`BoundedSemaphore`] | `gevent.lock.Semaphore` / `BoundedSemaphore` |
//! | [`Mutex`] | `threading.Lock` (holding data, like `std::sync::Mutex`) |
//! | [`RLock`] | `gevent.lock.RLock`, `threading.RLock` |
//! | [`Condvar`] | `threading.Condition` (with a [`Mutex`], like `std::sync::Condvar`) |
//!
//! ```
//! use std::rc::Rc;
//! use greenweave_runtime::{joinall, spawn, yield_now};
//! use greenweave_runtime::sync::Mutex;
//!
//! let total = Rc::new(Mutex::new(0u64));
//! let workers: Vec<_> = (0..4)
//!     .map(|_| {
//!         let total = total.clone();
//!         spawn(move || {
//!             for _ in 0..100 {
//!                 let mut n = total.lock();
//!                 let seen = *n;
//!                 yield_now(); // others run, and wait for the lock
//!                 *n = seen + 1;
//!             }
//!         })
//!     })
//!     .collect();
//! joinall(workers);
//! assert_eq!(*total.lock(), 400);
//! ```
//!
//! # Common behaviour
//!
//! - **One thread.** These primitives coordinate the greenlets of the thread that
//!   created them; they are neither `Send` nor `Sync`, so sharing one with another OS
//!   thread does not compile. Share them between greenlets with `Rc` (or borrow them
//!   from a value that outlives the greenlets).
//! - **Blocking** parks only the calling greenlet; the others run meanwhile. Blocking
//!   in the thread's main greenlet runs the hub until main can continue.
//! - **Fairness.** Waiters are woken in the order they started waiting (FIFO). A woken
//!   waiter re-checks its condition when it runs, so a greenlet that comes along in
//!   between (and did not wait) may take the lock or permit first ("barging"); the
//!   woken one then waits again, at the back of the queue. This keeps the uncontended
//!   path cheap, as in gevent.
//! - **Kills and timeouts** ([`JoinHandle::kill`](crate::JoinHandle::kill),
//!   [`with_timeout`](crate::with_timeout)) are delivered at every blocking call here:
//!   the call unwinds, its waiter is removed from the queue, guards held by the
//!   greenlet are dropped (releasing their locks), and a wake-up it had already
//!   received is passed on to the next waiter. The `*_timeout` methods instead return
//!   [`Elapsed`](crate::Elapsed) (or `false`) when their own time runs out.
//! - **No poisoning.** A [`Mutex`] or [`RLock`] guard dropped by a panic, a kill or a
//!   timeout simply releases the lock (gevent's `with lock:` does the same). See
//!   [`Mutex`] for why.
//! - **Deadlock reports** name what each blocked greenlet waits on: "Mutex created at
//!   src/main.rs:12:13, held by greenlet 'worker-2' (id 3)".
//! - **Misuse** (releasing a [`BoundedSemaphore`] too often, releasing an [`RLock`]
//!   the caller does not hold) returns a [`ReleaseError`] naming the primitive and
//!   where it was created.

use std::fmt;
use std::panic::Location;
use std::time::Instant;

use crate::park::WaitQueue;
use crate::task::Describe;

mod async_result;
mod bounded;
mod condvar;
mod event;
mod mutex;
mod rlock;
mod semaphore;

pub use async_result::AsyncResult;
pub use bounded::BoundedSemaphore;
pub use condvar::Condvar;
pub use event::Event;
pub use mutex::{Mutex, MutexGuard};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{Semaphore, SemaphoreGuard};

/// The error of releasing a primitive the caller may not release: a
/// [`BoundedSemaphore`] above its initial value (Python's `ValueError`), an [`RLock`]
/// held by another greenlet or by nobody (Python's `RuntimeError`).
///
/// Its message names the primitive, where it was created and, for locks, the holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseError {
    message: String,
}

impl ReleaseError {
    fn new(message: String) -> ReleaseError {
        ReleaseError { message }
    }
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReleaseError {}

/// "`what` created at `created`": how a primitive without further state describes a
/// wait on itself.
struct Site {
    what: &'static str,
    created: &'static Location<'static>,
}

impl Describe for Site {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Event
    }

    fn describe(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(out, "{} created at {}", self.what, self.created);
    }
}

/// Parks in `queue` until `ready()` returns `true` (then returns `true`) or the
/// deadline passes (then returns `false`). `ready` is checked first, and again after
/// every wake-up: it may take what it finds (a lock, a permit).
///
/// Unwinds on kills, timeouts and deadlock reports (the queue removes the waiter).
#[track_caller]
fn wait_for(
    queue: &WaitQueue,
    on: &dyn Describe,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> bool,
) -> bool {
    loop {
        if ready() {
            return true;
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            return false;
        }
        queue.wait_or_raise(on, deadline);
    }
}
