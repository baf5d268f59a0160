//! [`BoundedSemaphore`]: a [`Semaphore`] that refuses releases above its initial value.

use std::fmt;
use std::time::Duration;

use super::{ReleaseError, Semaphore, SemaphoreGuard};
use crate::timeout::Elapsed;

/// A [`Semaphore`] that may not be released above its initial value (gevent's and
/// Python's `BoundedSemaphore`): a release without a matching acquire is reported as a
/// [`ReleaseError`] (Python raises `ValueError`) and changes nothing.
///
/// ```
/// use greenweave_runtime::sync::BoundedSemaphore;
///
/// let pool = BoundedSemaphore::new(1);
/// pool.acquire();
/// assert_eq!(pool.release(), Ok(()));
/// let err = pool.release().unwrap_err();
/// assert!(err.to_string().contains("BoundedSemaphore created at"));
/// assert!(err.to_string().contains("released too many times"));
/// assert_eq!(pool.available(), 1);
/// ```
///
/// It belongs to one thread's greenlets; sharing it with another thread does not
/// compile:
///
/// ```compile_fail,E0277
/// use std::sync::Arc;
/// let sem = Arc::new(greenweave_runtime::sync::BoundedSemaphore::new(1));
/// let other = sem.clone();
/// std::thread::spawn(move || other.acquire());
/// ```
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl BoundedSemaphore {
    /// A semaphore with `permits` permits, which is also its maximum.
    #[track_caller]
    pub const fn new(permits: usize) -> BoundedSemaphore {
        let mut inner = Semaphore::new(permits);
        inner.bound = Some(permits);
        BoundedSemaphore { inner }
    }

    /// Takes a permit, blocking until one is available. See [`Semaphore::acquire`].
    #[track_caller]
    pub fn acquire(&self) {
        self.inner.acquire();
    }

    /// Like [`acquire`](Self::acquire), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if no permit became available in time (nothing was taken).
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), Elapsed> {
        self.inner.acquire_timeout(timeout)
    }

    /// Takes a permit if one is available now; never blocks.
    #[must_use = "if it returns true, a permit was taken and must be released"]
    pub fn try_acquire(&self) -> bool {
        self.inner.try_acquire()
    }

    /// Gives a permit back and wakes the longest-waiting greenlet, if any.
    ///
    /// # Errors
    ///
    /// [`ReleaseError`] if every permit is already available (more releases than
    /// acquires); the count is left unchanged.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.inner.release_bounded(self.upper())
    }

    /// Takes a permit and returns a guard that gives it back when dropped. See
    /// [`Semaphore::access`].
    #[track_caller]
    pub fn access(&self) -> SemaphoreGuard<'_> {
        self.inner.access()
    }

    /// Like [`access`](Self::access), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if no permit became available in time.
    #[track_caller]
    pub fn access_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, Elapsed> {
        self.inner.access_timeout(timeout)
    }

    /// Like [`access`](Self::access) if a permit is available now; never blocks.
    pub fn try_access(&self) -> Option<SemaphoreGuard<'_>> {
        self.inner.try_access()
    }

    /// Permits available now.
    pub fn available(&self) -> usize {
        self.inner.available()
    }

    /// The initial (and maximum) number of permits.
    pub fn bound(&self) -> usize {
        self.upper()
    }

    /// Number of greenlets blocked waiting for a permit.
    pub fn waiter_count(&self) -> usize {
        self.inner.waiter_count()
    }

    fn upper(&self) -> usize {
        self.inner.bound.unwrap_or(usize::MAX)
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
