//! [`Mutex`]: mutual exclusion between greenlets, holding the data it protects.

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::wait_for;
use crate::hub;
use crate::park::WaitQueue;
use crate::task::{Describe, Task};
use crate::time::deadline_after;
use crate::timeout::Elapsed;

/// A lock protecting a `T` across blocking calls (`threading.Lock` with the data
/// inside, shaped like `std::sync::Mutex`). [`lock`](Self::lock) parks the greenlet
/// while another holds it; the [`MutexGuard`] gives access to the data and unlocks
/// when dropped.
///
/// Between greenlets, a plain `RefCell` suffices as long as nothing blocks while it is
/// borrowed; a `Mutex` is for when the critical section blocks (I/O, sleep, a queue)
/// and other greenlets must wait meanwhile.
///
/// The mutex remembers which greenlet holds it: deadlock reports name the holder
/// ("Mutex created at src/main.rs:12:13, held by greenlet 'worker-2' (id 3)"), and a
/// greenlet locking a mutex it already holds panics instead of waiting for ever (use
/// [`RLock`](super::RLock) for re-entrant locking).
///
/// # No poisoning
///
/// If the holder panics, is killed or times out, unwinding drops the guard, which
/// unlocks the mutex; the next waiter gets it and sees the data as it was left. This
/// is gevent's `with lock:` behaviour. Std-style poisoning would turn every kill and
/// timeout of a lock holder into an error for everyone else, and cannot be decided
/// reliably here anyway: `std::thread::panicking()` describes the OS thread, which a
/// greenlet shares with others that may be mid-unwind. Kills and timeouts arrive only
/// at blocking calls, so code that does not block while the data is inconsistent never
/// leaves it so.
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use greenweave_runtime::{sleep, spawn};
/// use greenweave_runtime::sync::Mutex;
///
/// let log = Rc::new(Mutex::new(Vec::new()));
/// let writers: Vec<_> = ["a", "b"]
///     .into_iter()
///     .map(|name| {
///         let log = log.clone();
///         spawn(move || {
///             let mut log = log.lock();
///             log.push(format!("{name} start"));
///             sleep(Duration::from_millis(5)); // the other writer waits
///             log.push(format!("{name} end"));
///         })
///     })
///     .collect();
/// for w in writers {
///     w.join().unwrap();
/// }
/// let log = Rc::try_unwrap(log).unwrap().into_inner();
/// assert_eq!(log, ["a start", "a end", "b start", "b end"]);
/// ```
///
/// It belongs to one thread's greenlets; sharing it with another thread does not
/// compile:
///
/// ```compile_fail,E0277
/// use std::sync::Arc;
/// let counter = Arc::new(greenweave_runtime::sync::Mutex::new(0));
/// let other = counter.clone();
/// std::thread::spawn(move || *other.lock() += 1);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    data: RefCell<T>,
}

/// The lock itself, without the data: who holds it, who waits.
struct RawMutex {
    holder: RefCell<Option<Rc<Task>>>,
    waiters: WaitQueue,
    created: &'static Location<'static>,
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`. Deadlock reports show where it was
    /// created.
    #[track_caller]
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            raw: RawMutex {
                holder: RefCell::new(None),
                waiters: WaitQueue::new(),
                created: Location::caller(),
            },
            data: RefCell::new(value),
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, blocking while another greenlet holds it.
    ///
    /// # Panics
    ///
    /// - If the calling greenlet already holds it (it would wait for ever).
    /// - Unwinds if the greenlet is killed or a [`Timeout`](crate::Timeout) expires
    ///   while it waits, and with the deadlock report if it could never get the lock.
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.acquire(None);
        self.guard()
    }

    /// Like [`lock`](Self::lock), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if the mutex stayed locked for `timeout`; the greenlet no longer
    /// waits for it.
    ///
    /// # Panics
    ///
    /// As [`lock`](Self::lock).
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, Elapsed> {
        if self.raw.acquire(deadline_after(timeout)) {
            Ok(self.guard())
        } else {
            Err(Elapsed)
        }
    }

    /// Locks the mutex if it is free now; never blocks.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.raw.try_acquire().then(|| self.guard())
    }

    /// Whether some greenlet holds the lock.
    pub fn is_locked(&self) -> bool {
        self.raw.holder.borrow().is_some()
    }

    /// Number of greenlets blocked waiting for the lock.
    pub fn waiter_count(&self) -> usize {
        self.raw.waiters.len()
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            data: self.data.borrow_mut(),
        }
    }
}

impl RawMutex {
    /// Takes the lock if free, recording the current greenlet as its holder.
    fn try_acquire(&self) -> bool {
        if self.holder.borrow().is_some() {
            return false;
        }
        let me = hub::current_task();
        *self.holder.borrow_mut() = Some(me);
        true
    }

    /// Takes the lock, waiting until `deadline`; `false` if the deadline passed.
    #[track_caller]
    fn acquire(&self, deadline: Option<Instant>) -> bool {
        if self.try_acquire() {
            return true;
        }
        self.assert_not_holder();
        wait_for(&self.waiters, self, deadline, || self.try_acquire())
    }

    #[track_caller]
    fn assert_not_holder(&self) {
        let holder = self.holder.borrow();
        if let Some(holder) = holder.as_ref() {
            if holder.greenlet.is_current() {
                panic!(
                    "greenweave: {holder} tried to lock the Mutex created at {}, which it already \
                     holds: it would wait for ever (use RLock for re-entrant locking)",
                    self.created
                );
            }
        }
    }

    /// Unlocks and wakes the longest-waiting greenlet.
    fn release(&self) {
        let holder = self.holder.replace(None);
        self.waiters.notify_one();
        drop(holder);
    }
}

impl Describe for RawMutex {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Lock
    }

    fn describe(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(out, "Mutex created at {}", self.created);
        let _ = match self.holder.try_borrow().as_deref() {
            Ok(Some(holder)) => write!(out, ", held by {holder}"),
            Ok(None) => write!(out, ", not held"),
            Err(_) => write!(out, ", holder unknown"),
        };
    }
}

impl<T: Default> Default for Mutex<T> {
    #[track_caller]
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.data.try_borrow() {
            Ok(data) => d.field("data", &&*data),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        if let Some(holder) = self.raw.holder.borrow().as_ref() {
            d.field("held_by", &format_args!("{holder}"));
        }
        d.field("waiters", &self.raw.waiters.len())
            .field("created", &format_args!("{}", self.raw.created))
            .finish()
    }
}

/// Access to a [`Mutex`]'s data; unlocks the mutex when dropped (also when the
/// greenlet unwinds because of a panic, kill or timeout), waking the longest waiter.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    data: RefMut<'a, T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks (for [`Condvar`](super::Condvar)).
    pub(super) fn mutex(guard: &Self) -> &'a Mutex<T> {
        guard.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // The `RefMut` is released right after this; no other greenlet runs in between.
        self.mutex.raw.release();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.data, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.data, f)
    }
}
