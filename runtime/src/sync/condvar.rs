//! [`Condvar`]: waiting for a condition on data protected by a [`Mutex`].

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::{MutexGuard, Site};
use crate::park::WaitQueue;
use crate::task::Wake;
use crate::time::deadline_after;

/// A condition variable for greenweave's [`Mutex`](super::Mutex)
/// (`threading.Condition`, shaped like `std::sync::Condvar`).
///
/// [`wait`](Self::wait) unlocks the mutex, parks until [`notify_one`](Self::notify_one)
/// or [`notify_all`](Self::notify_all), and locks it again before returning. Waiters
/// are notified in the order they started waiting. A wait may also return when the
/// condition does not hold (another greenlet got the mutex first and changed the data),
/// so check the condition in a loop, or use [`wait_while`](Self::wait_while).
///
/// If a waiting greenlet is killed or its [`Timeout`](crate::Timeout) expires, it
/// unwinds without the mutex (the guard it passed in is gone), and a notification it
/// had received goes to the next waiter: whenever a woken waiter does not return
/// normally from `wait*` (interrupted before it ran, or while it waits to lock the
/// mutex again after the wake-up), its notification is passed on, so a `notify_one`
/// is never lost to a greenlet that will not act on it.
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::spawn;
/// use greenweave_runtime::sync::{Condvar, Mutex};
///
/// let queue = Rc::new((Mutex::new(Vec::<u32>::new()), Condvar::new()));
/// let consumer = {
///     let queue = queue.clone();
///     spawn(move || {
///         let (items, nonempty) = &*queue;
///         let mut items = nonempty.wait_while(items.lock(), |items| items.is_empty());
///         items.pop()
///     })
/// };
/// let producer = {
///     let queue = queue.clone();
///     spawn(move || {
///         let (items, nonempty) = &*queue;
///         items.lock().push(7);
///         nonempty.notify_one();
///     })
/// };
/// assert_eq!(consumer.join().unwrap(), Some(7));
/// producer.join().unwrap();
/// ```
///
/// It belongs to one thread's greenlets; sharing it with another thread does not
/// compile:
///
/// ```compile_fail,E0277
/// use std::sync::Arc;
/// let cv = Arc::new(greenweave_runtime::sync::Condvar::new());
/// let other = cv.clone();
/// std::thread::spawn(move || other.notify_all());
/// ```
pub struct Condvar {
    waiters: WaitQueue,
    created: &'static Location<'static>,
}

impl Condvar {
    /// A new condition variable. Deadlock reports show where it was created.
    #[track_caller]
    pub const fn new() -> Condvar {
        Condvar {
            waiters: WaitQueue::new(),
            created: Location::caller(),
        }
    }

    /// Unlocks `guard`'s mutex, waits for a notification, and locks the mutex again.
    ///
    /// # Panics
    ///
    /// Unwinds (without the mutex) if the greenlet is killed or a
    /// [`Timeout`](crate::Timeout) expires while it waits, and with the deadlock report
    /// if nothing could ever notify it.
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_until(guard, None).0
    }

    /// Like [`wait`](Self::wait), giving up waiting for a notification after
    /// `timeout`. Returns the guard (the mutex is locked again in either case) and
    /// whether the time ran out.
    #[track_caller]
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        self.wait_until(guard, deadline_after(timeout))
    }

    /// Waits while `condition` holds for the data, re-checking it after every
    /// wake-up; returns with the mutex locked and the condition false.
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    #[track_caller]
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Like [`wait_while`](Self::wait_while), giving up after `timeout`. Returns the
    /// guard and whether the time ran out with the condition still holding.
    #[track_caller]
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, bool) {
        let deadline = deadline_after(timeout);
        loop {
            if !condition(&mut *guard) {
                return (guard, false);
            }
            if deadline.is_some_and(|at| Instant::now() >= at) {
                return (guard, true);
            }
            guard = self.wait_until(guard, deadline).0;
        }
    }

    /// Wakes the longest-waiting greenlet, if any.
    pub fn notify_one(&self) {
        self.waiters.notify_one();
    }

    /// Wakes every waiting greenlet.
    pub fn notify_all(&self) {
        self.waiters.notify_all();
    }

    /// Number of greenlets waiting for a notification (not counting woken ones that
    /// wait to lock the mutex again).
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    #[track_caller]
    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, T>, bool) {
        let mutex = MutexGuard::mutex(&guard);
        // Unlocking only schedules the next mutex waiter; nobody runs (and so nobody
        // can notify) before we are in the queue.
        drop(guard);
        let on = Site {
            what: "Condvar",
            created: self.created,
        };
        let why = self.waiters.wait_or_raise(&on, deadline);
        // If a notification woke us and we are killed or time out while locking the
        // mutex again, it must go to the next waiter, or that one could wait for ever.
        // (An interrupt during the wait itself is handled by the queue.)
        let pass_on = PassOn {
            waiters: &self.waiters,
            armed: why == Wake::Notified,
        };
        let guard = mutex.lock();
        std::mem::forget(pass_on);
        (guard, why == Wake::TimedOut)
    }
}

/// Passes a consumed notification on to the next waiter when dropped, i.e. when the
/// woken waiter unwinds before `wait` returns.
struct PassOn<'a> {
    waiters: &'a WaitQueue,
    armed: bool,
}

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.waiters.notify_one();
        }
    }
}

impl Default for Condvar {
    #[track_caller]
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("waiters", &self.waiters.len())
            .field("created", &format_args!("{}", self.created))
            .finish()
    }
}
