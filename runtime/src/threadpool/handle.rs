//! Jobs and [`BlockingHandle`]: the result of work running on another OS thread, which
//! a greenlet waits for by parking (never by blocking its hub).
//!
//! A [`Completer`] and its handle form a one-shot channel: the [`Completer`] goes to the other thread with the
//! work, the handle stays with the caller. The result is stored under a mutex together
//! with the [`RemoteWaker`] of whichever greenlet is waiting, so the two sides may meet
//! in either order and on any threads.
//!
//! In a forked child, a slot made before the fork is *orphaned*: the thread that would
//! complete it does not exist there (see `fork`). Its handle then reports the outcome
//! if the job had finished before the fork, and `JoinError::Killed` (discarded)
//! otherwise, without waiting; its lock is only tried, since a thread that does not
//! exist in the child may have held it.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use crate::remote::{RemoteWaker, park_for_thread};
use crate::spawn::JoinError;

struct Slot<T> {
    state: Mutex<State<T>>,
    /// The fork generation it was made in.
    born: u64,
}

struct State<T> {
    /// Set once by the completer (or by its drop, as `Killed`).
    outcome: Option<Result<T, JoinError>>,
    /// The greenlet waiting in `join`, if any.
    waiter: Option<RemoteWaker>,
}

impl<T> Slot<T> {
    /// The state, locked; `None` only for an [orphaned](Self::orphaned) slot whose lock
    /// is held (by a thread that does not exist in this child).
    fn lock(&self) -> Option<MutexGuard<'_, State<T>>> {
        if !self.orphaned() {
            return Some(self.state.lock().unwrap_or_else(PoisonError::into_inner));
        }
        match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Made before a fork, seen in the child: nobody here will complete it.
    fn orphaned(&self) -> bool {
        self.born != crate::fork::generation()
    }

    /// For an orphaned slot, what its handle reports: the outcome if the job had
    /// finished before the fork, else `Killed`. `None` for a slot of this process.
    fn orphan_outcome(&self) -> Option<Result<T, JoinError>> {
        if !self.orphaned() {
            return None;
        }
        let outcome = self.lock().and_then(|mut state| state.outcome.take());
        Some(outcome.unwrap_or(Err(JoinError::Killed)))
    }
}

/// A new one-shot result slot: complete it on the worker, join the handle anywhere.
pub(crate) fn oneshot<T>() -> (Completer<T>, BlockingHandle<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            outcome: None,
            waiter: None,
        }),
        born: crate::fork::generation(),
    });
    (
        Completer {
            slot: Some(slot.clone()),
        },
        BlockingHandle { slot },
    )
}

/// The sending half. Dropping it without completing reports [`JoinError::Killed`]
/// (the work was discarded), so a waiter is never left parked for ever.
pub(crate) struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Completer<T> {
    /// Stores the outcome and wakes the waiting greenlet, if any.
    pub(crate) fn complete(mut self, outcome: Result<T, JoinError>) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Result<T, JoinError>) {
        if let Some(slot) = self.slot.take() {
            let Some(mut state) = slot.lock() else {
                // Orphaned and locked: no one can see it anyway.
                return;
            };
            state.outcome = Some(outcome);
            let waiter = state.waiter.take();
            drop(state);
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.finish(Err(JoinError::Killed));
    }
}

/// A queued pool job, type-erased. The pool thread [`run`](Job::run)s it, updates its
/// own counters, then [`deliver`](Job::deliver)s the outcome: a caller that sees the
/// result also sees the counters (`active`) already updated.
pub(crate) trait Job: Send {
    /// Runs the work, catching a panic, and keeps the outcome.
    fn run(&mut self);
    /// Hands the outcome to the handle and wakes its waiter.
    fn deliver(self: Box<Self>);
}

/// `f` as a [`Job`], and the handle its outcome goes to.
pub(crate) fn job<F, T>(f: F) -> (Box<dyn Job>, BlockingHandle<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (completer, handle) = oneshot();
    let job = JobOf {
        f: Some(f),
        outcome: None,
        completer,
    };
    (Box::new(job), handle)
}

struct JobOf<F, T> {
    f: Option<F>,
    outcome: Option<Result<T, JoinError>>,
    completer: Completer<T>,
}

impl<F, T> Job for JobOf<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn run(&mut self) {
        if let Some(f) = self.f.take() {
            self.outcome =
                Some(panic::catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::Panicked));
        }
    }

    fn deliver(self: Box<Self>) {
        let JobOf {
            outcome, completer, ..
        } = *self;
        if let Some(outcome) = outcome {
            completer.complete(outcome);
        }
        // else the completer's drop reports the job as discarded
    }
}

/// The result of a job started with [`ThreadPool::spawn`](super::ThreadPool::spawn)
/// (the pool's `apply_async`): [`join`](Self::join) parks the calling greenlet until
/// the job has finished.
///
/// The handle is `Send`: it may be joined by any greenlet on any OS thread. Dropping
/// it detaches the job, which still runs; its value is dropped on the pool thread.
///
/// ```
/// use greenweave_runtime::threadpool::ThreadPool;
///
/// let pool = ThreadPool::new(2);
/// let handle = pool.spawn(|| (1..=10).product::<u64>());
/// // ... the caller does other things meanwhile ...
/// assert_eq!(handle.join().unwrap(), 3_628_800);
/// ```
pub struct BlockingHandle<T> {
    slot: Arc<Slot<T>>,
}

impl<T> BlockingHandle<T> {
    /// Parks the calling greenlet until the job has finished, and returns its value.
    /// Other greenlets of this thread run meanwhile.
    ///
    /// ```
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(1);
    /// let failed = pool.spawn(|| -> u32 { panic!("no luck") });
    /// assert_eq!(failed.join().unwrap_err().panic_message(), Some("no luck"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the original payload if the job panicked;
    /// [`JoinError::Killed`] if it was discarded without running (which a
    /// [`ThreadPool`](super::ThreadPool) never does: it runs every job it accepted).
    ///
    /// # Panics
    ///
    /// Unwinds with `GreenletExit` if the waiting greenlet is killed, or with the
    /// timeout's payload if a [`Timeout`](crate::Timeout) expires; the job is not
    /// cancelled (Rust cannot stop another thread) and its value is dropped when done.
    #[track_caller]
    pub fn join(self) -> Result<T, JoinError> {
        self.join_or_interrupt()
            .unwrap_or_else(|interrupt| crate::park::raise(interrupt))
    }

    /// [`join`](Self::join) for callers that must not unwind: a kill or timeout while
    /// waiting comes back as `Err(Interrupt)` (the job keeps running; its value is
    /// dropped when done).
    #[track_caller]
    pub(crate) fn join_or_interrupt(self) -> Result<Result<T, JoinError>, crate::task::Interrupt> {
        if let Some(outcome) = self.slot.orphan_outcome() {
            return Ok(outcome);
        }
        loop {
            if let Some(outcome) = self.slot.lock().and_then(|mut s| s.outcome.take()) {
                return Ok(outcome);
            }
            self.wait_or_interrupt()?;
        }
    }

    /// Parks until the job has finished, leaving its outcome in the handle; a kill or
    /// timeout while waiting comes back as `Err(Interrupt)`. The handle stays usable
    /// either way, so a caller that was interrupted can wait again later.
    #[track_caller]
    pub(crate) fn wait_or_interrupt(&self) -> Result<(), crate::task::Interrupt> {
        while !self.is_finished() {
            // Whether the wait ends normally or is interrupted, no waker of ours stays
            // behind (a stale one would count as outstanding work for our hub until the
            // job finished).
            let _clear = ClearWaiter(&self.slot);
            park_for_thread(|waker| match self.slot.lock() {
                Some(mut state) if state.outcome.is_none() => state.waiter = Some(waker),
                _ => waker.wake(),
            })?;
        }
        Ok(())
    }

    /// Whether the job has finished (returned or panicked); [`join`](Self::join)
    /// would then return without waiting.
    ///
    /// ```
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(1);
    /// let handle = pool.spawn(|| 5);
    /// while !handle.is_finished() {
    ///     greenweave_runtime::sleep(std::time::Duration::from_millis(1));
    /// }
    /// assert_eq!(handle.join().unwrap(), 5);
    /// ```
    pub fn is_finished(&self) -> bool {
        // An orphaned slot (in a forked child) is as good as finished: `join` returns
        // at once.
        self.slot.orphaned() || self.slot.lock().is_some_and(|s| s.outcome.is_some())
    }
}

impl<T> fmt::Debug for BlockingHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Removes (and so disarms) the waiter a `join` left in the slot.
struct ClearWaiter<'a, T>(&'a Slot<T>);

impl<T> Drop for ClearWaiter<'_, T> {
    fn drop(&mut self) {
        let waiter = self.0.lock().and_then(|mut s| s.waiter.take());
        drop(waiter);
    }
}
