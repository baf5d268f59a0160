//! Jobs and [`BlockingHandle`]: the result of work running on another OS thread, which
//! a greenlet waits for by parking (never by blocking its hub).
//!
//! A [`Completer`] and its handle form a one-shot channel: the [`Completer`] goes to the other thread with the
//! work, the handle stays with the caller. The result is stored under a mutex together
//! with the [`RemoteWaker`] of whichever greenlet is waiting, so the two sides may meet
//! in either order and on any threads.
//!
//! In a forked child, a slot made before the fork is *orphaned*: the thread that would
//! complete it does not exist there (see `fork`). It then counts as complete, and its
//! handle reports the outcome if the job had finished before the fork, and
//! `JoinError::Killed` (discarded) otherwise, without waiting; its lock is only tried,
//! since a thread that does not exist in the child may have held it.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{PoisonError, TryLockError};

use crate::remote::{RemoteWaker, park_for_thread};
use crate::spawn::JoinError;
use crate::thread_sync::{Arc, Mutex, MutexGuard};

/// Whoever waits for a [`Slot`]'s outcome, woken once it is in: a parked greenlet's
/// [`RemoteWaker`] (the loom tests use a thread's event).
pub(crate) trait Waiter: Send {
    /// Wakes the waiter (from any thread).
    fn wake(self);
}

impl Waiter for RemoteWaker {
    fn wake(self) {
        RemoteWaker::wake(self);
    }
}

/// Where one outcome meets the one waiter for it, in either order, on any threads:
/// both sides look at the other under the same lock, so the outcome never arrives
/// unseen between a waiter's check and its registration.
pub(crate) struct Slot<T, W> {
    state: Mutex<State<T, W>>,
    /// The fork generation it was made in (see the module docs).
    born: u64,
}

struct State<T, W> {
    /// Set once by the completer (or by its drop, as `Killed`).
    outcome: Option<T>,
    /// Whoever waits in [`Slot::wait`], if anyone.
    waiter: Option<W>,
}

impl<T, W: Waiter> Slot<T, W> {
    fn new() -> Slot<T, W> {
        Slot {
            state: Mutex::new(State {
                outcome: None,
                waiter: None,
            }),
            born: crate::fork::generation(),
        }
    }

    /// The state, locked; `None` only for an [orphaned](Self::orphaned) slot whose lock
    /// is held (by a thread that does not exist in this forked child).
    fn lock(&self) -> Option<MutexGuard<'_, State<T, W>>> {
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
    pub(crate) fn orphaned(&self) -> bool {
        self.born != crate::fork::generation()
    }

    /// Stores the outcome and wakes the waiter, if one is registered.
    fn complete(&self, outcome: T) {
        let Some(mut state) = self.lock() else {
            // Orphaned and locked: nobody can look at it anyway.
            return;
        };
        state.outcome = Some(outcome);
        let waiter = state.waiter.take();
        drop(state);
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// Whether the outcome is in, or will never come ([orphaned](Self::orphaned)).
    pub(crate) fn is_complete(&self) -> bool {
        self.orphaned() || self.lock().is_some_and(|state| state.outcome.is_some())
    }

    /// The outcome, if it is in (once).
    pub(crate) fn take_outcome(&self) -> Option<T> {
        self.lock().and_then(|mut state| state.outcome.take())
    }

    /// Waits until the outcome is in. Each round calls `park` with a function that
    /// registers a waiter: `park` must make one, hand it over, and return once it is
    /// woken (or spuriously; the loop re-checks). An `Err` from `park` ends the wait.
    /// Either way no waiter of ours stays registered afterwards (a stale
    /// [`RemoteWaker`] would count as outstanding work for its hub until the job ends).
    pub(crate) fn wait<E>(
        &self,
        mut park: impl FnMut(&mut dyn FnMut(W)) -> Result<(), E>,
    ) -> Result<(), E> {
        while !self.is_complete() {
            let _clear = ClearWaiter(self);
            park(&mut |waiter| self.register(waiter))?;
        }
        Ok(())
    }

    /// Registers `waiter`, or wakes it at once if the outcome is already in.
    fn register(&self, waiter: W) {
        match self.lock() {
            Some(mut state) if state.outcome.is_none() => state.waiter = Some(waiter),
            _ => waiter.wake(),
        }
    }
}

/// Removes (and so disarms) the waiter a `wait` left in the slot.
struct ClearWaiter<'a, T, W: Waiter>(&'a Slot<T, W>);

impl<T, W: Waiter> Drop for ClearWaiter<'_, T, W> {
    fn drop(&mut self) {
        let waiter = self.0.lock().and_then(|mut state| state.waiter.take());
        drop(waiter);
    }
}

/// A job's outcome: its value, or how it failed.
type Outcome<T> = Result<T, JoinError>;

/// The slot a job's outcome goes to, shared by its completer and its waiter.
pub(crate) type OutcomeSlot<T, W> = Arc<Slot<Outcome<T>, W>>;

/// A new one-shot result slot: complete it on the worker, join the handle anywhere.
pub(crate) fn oneshot<T>() -> (Completer<T>, BlockingHandle<T>) {
    let (completer, slot) = completion();
    (completer, BlockingHandle { slot })
}

/// A [`Completer`] and the slot it fills, for any kind of waiter.
pub(crate) fn completion<T, W: Waiter>() -> (Completer<T, W>, OutcomeSlot<T, W>) {
    let slot = Arc::new(Slot::new());
    (
        Completer {
            slot: Some(slot.clone()),
        },
        slot,
    )
}

/// The sending half. Dropping it without completing reports [`JoinError::Killed`]
/// (the work was discarded), so a waiter is never left parked for ever.
pub(crate) struct Completer<T, W: Waiter = RemoteWaker> {
    slot: Option<OutcomeSlot<T, W>>,
}

impl<T, W: Waiter> Completer<T, W> {
    /// Stores the outcome and wakes the waiting greenlet, if any.
    pub(crate) fn complete(mut self, outcome: Outcome<T>) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome<T>) {
        if let Some(slot) = self.slot.take() {
            slot.complete(outcome);
        }
    }
}

impl<T, W: Waiter> Drop for Completer<T, W> {
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
    let (job, slot) = job_for(f);
    (job, BlockingHandle { slot })
}

/// `f` as a [`Job`], and the slot its outcome goes to, for any kind of waiter.
pub(crate) fn job_for<F, T, W>(f: F) -> (Box<dyn Job>, OutcomeSlot<T, W>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    W: Waiter + 'static,
{
    let (completer, slot) = completion();
    let job = JobOf {
        f: Some(f),
        outcome: None,
        completer,
    };
    (Box::new(job), slot)
}

struct JobOf<F, T, W: Waiter> {
    f: Option<F>,
    outcome: Option<Outcome<T>>,
    completer: Completer<T, W>,
}

impl<F, T, W> Job for JobOf<F, T, W>
where
    F: FnOnce() -> T + Send,
    T: Send,
    W: Waiter,
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
    slot: OutcomeSlot<T, RemoteWaker>,
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
        loop {
            if let Some(outcome) = self.slot.take_outcome() {
                return Ok(outcome);
            }
            if self.slot.orphaned() {
                // A job of the parent's, in a forked child: it will never finish here.
                return Ok(Err(JoinError::Killed));
            }
            self.wait_or_interrupt()?;
        }
    }

    /// Parks until the job has finished, leaving its outcome in the handle; a kill or
    /// timeout while waiting comes back as `Err(Interrupt)`. The handle stays usable
    /// either way, so a caller that was interrupted can wait again later.
    #[track_caller]
    pub(crate) fn wait_or_interrupt(&self) -> Result<(), crate::task::Interrupt> {
        self.slot.wait(|register| park_for_thread(register))
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
        self.slot.is_complete()
    }
}

impl<T> fmt::Debug for BlockingHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
