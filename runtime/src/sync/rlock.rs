//! [`RLock`]: a lock the holding greenlet may take again.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{ReleaseError, wait_for};
use crate::hub;
use crate::park::WaitQueue;
use crate::task::{Describe, Task};
use crate::time::deadline_after;
use crate::timeout::Elapsed;

/// A re-entrant lock (gevent's `RLock`, `threading.RLock`): the greenlet holding it may
/// lock it again, and it is free once every acquisition has been released. Other
/// greenlets block until then.
///
/// Use the guard forms ([`lock`](Self::lock), [`lock_timeout`](Self::lock_timeout),
/// [`try_lock`](Self::try_lock)), or Python-style [`acquire`](Self::acquire) and
/// [`release`](Self::release); a `release` by a greenlet that does not hold the lock
/// is an error naming the holder. Like [`Mutex`](super::Mutex), it is not poisoned by
/// panics, kills or timeouts: unwinding drops the guards, which release it.
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::spawn;
/// use greenweave_runtime::sync::RLock;
///
/// let lock = Rc::new(RLock::new());
/// let outer = lock.lock();
/// let inner = lock.lock(); // the same greenlet: no deadlock
/// let other = {
///     let lock = lock.clone();
///     spawn(move || lock.try_lock().is_some())
/// };
/// assert_eq!(other.join().unwrap(), false); // still held by main
/// drop(inner);
/// drop(outer);
/// let other = {
///     let lock = lock.clone();
///     spawn(move || lock.try_lock().is_some())
/// };
/// assert_eq!(other.join().unwrap(), true);
///
/// // Releasing a lock you do not hold is an error.
/// let err = lock.release().unwrap_err();
/// assert!(err.to_string().contains("not held by any greenlet"));
/// ```
///
/// It belongs to one thread's greenlets; sharing it with another thread does not
/// compile:
///
/// ```compile_fail,E0277
/// use std::sync::Arc;
/// let lock = Arc::new(greenweave_runtime::sync::RLock::new());
/// let other = lock.clone();
/// std::thread::spawn(move || drop(other.lock()));
/// ```
pub struct RLock {
    owner: RefCell<Option<Rc<Task>>>,
    /// How many times the owner holds it.
    count: Cell<usize>,
    waiters: WaitQueue,
    created: &'static Location<'static>,
}

impl RLock {
    /// A new, unlocked lock. Deadlock reports show where it was created.
    #[track_caller]
    pub const fn new() -> RLock {
        RLock {
            owner: RefCell::new(None),
            count: Cell::new(0),
            waiters: WaitQueue::new(),
            created: Location::caller(),
        }
    }

    /// Locks it (again, if the calling greenlet holds it already), blocking while
    /// another greenlet holds it. The guard releases one level when dropped.
    ///
    /// # Panics
    ///
    /// Unwinds if the greenlet is killed or a [`Timeout`](crate::Timeout) expires
    /// while it waits, and with the deadlock report if it could never get the lock.
    #[track_caller]
    pub fn lock(&self) -> RLockGuard<'_> {
        self.acquire();
        RLockGuard { lock: self }
    }

    /// Like [`lock`](Self::lock), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if another greenlet held it for `timeout`.
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_>, Elapsed> {
        if self.acquire_until(deadline_after(timeout)) {
            Ok(RLockGuard { lock: self })
        } else {
            Err(Elapsed)
        }
    }

    /// Like [`lock`](Self::lock) if that would not block.
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        let me = hub::current_task();
        self.try_acquire_as(&me).then(|| RLockGuard { lock: self })
    }

    /// Locks it without a guard (Python's `acquire()`); pair with
    /// [`release`](Self::release).
    ///
    /// # Panics
    ///
    /// As [`lock`](Self::lock).
    #[track_caller]
    pub fn acquire(&self) {
        self.acquire_until(None);
    }

    /// Releases one level of the calling greenlet's hold (Python's `release()`); the
    /// lock is free, and the longest waiter woken, when the last level is released.
    ///
    /// # Errors
    ///
    /// [`ReleaseError`] (changing nothing) if the calling greenlet does not hold it;
    /// the message names the lock and its holder, if any.
    pub fn release(&self) -> Result<(), ReleaseError> {
        let me = hub::current_task();
        let owner = self.owner.borrow().clone();
        match owner {
            Some(owner) if Rc::ptr_eq(&owner, &me) => {
                self.release_one();
                Ok(())
            }
            Some(owner) => Err(ReleaseError::new(format!(
                "greenweave: {me} cannot release the RLock created at {}: it is held by {owner}",
                self.created
            ))),
            None => Err(ReleaseError::new(format!(
                "greenweave: {me} cannot release the RLock created at {}: it is not held by \
                 any greenlet",
                self.created
            ))),
        }
    }

    /// Whether the calling greenlet holds it (Python's `_is_owned()`).
    pub fn is_owned(&self) -> bool {
        let me = hub::current_task();
        self.owner
            .borrow()
            .as_ref()
            .is_some_and(|owner| Rc::ptr_eq(owner, &me))
    }

    /// Whether some greenlet holds it.
    pub fn is_locked(&self) -> bool {
        self.owner.borrow().is_some()
    }

    /// Number of greenlets blocked waiting for it.
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    #[track_caller]
    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        let me = hub::current_task();
        wait_for(&self.waiters, self, deadline, || self.try_acquire_as(&me))
    }

    fn try_acquire_as(&self, me: &Rc<Task>) -> bool {
        let mut owner = self.owner.borrow_mut();
        match owner.as_ref() {
            None => {
                *owner = Some(me.clone());
                self.count.set(1);
                true
            }
            Some(o) if Rc::ptr_eq(o, me) => {
                self.count.set(self.count.get() + 1);
                true
            }
            Some(_) => false,
        }
    }

    /// Releases one level, whoever runs this (the guard's drop: the guard was made
    /// by the holder).
    fn release_one(&self) {
        let Some(count) = self.count.get().checked_sub(1) else {
            // A guard outliving a manual `release()` of its level: nothing to undo.
            log::error!(
                target: crate::log_targets::SYNC,
                "greenweave: RLock created at {} released more times than it was acquired",
                self.created
            );
            return;
        };
        self.count.set(count);
        if count == 0 {
            let owner = self.owner.replace(None);
            self.waiters.notify_one();
            drop(owner);
        }
    }
}

impl Describe for RLock {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Lock
    }

    fn describe(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(out, "RLock created at {}", self.created);
        let _ = match self.owner.try_borrow().as_deref() {
            Ok(Some(owner)) => write!(out, ", held by {owner} ({} times)", self.count.get()),
            Ok(None) => write!(out, ", not held"),
            Err(_) => write!(out, ", holder unknown"),
        };
    }
}

impl Default for RLock {
    #[track_caller]
    fn default() -> RLock {
        RLock::new()
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RLock");
        if let Some(owner) = self.owner.borrow().as_ref() {
            d.field("held_by", &format_args!("{owner}"))
                .field("count", &self.count.get());
        }
        d.field("waiters", &self.waiters.len())
            .field("created", &format_args!("{}", self.created))
            .finish()
    }
}

/// One level of an [`RLock`] held; released when dropped (also when the greenlet
/// unwinds because of a panic, kill or timeout).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        self.lock.release_one();
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard")
            .field("lock", self.lock)
            .finish()
    }
}
