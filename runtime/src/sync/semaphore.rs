//! [`Semaphore`]: counted permits, and the [`SemaphoreGuard`] holding one.

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::{ReleaseError, wait_for};
use crate::park::WaitQueue;
use crate::task::Describe;
use crate::time::deadline_after;
use crate::timeout::Elapsed;

/// A counter of permits (gevent's `Semaphore`): [`acquire`](Self::acquire) takes one,
/// blocking while there are none; [`release`](Self::release) gives one back and wakes
/// the longest waiter. [`access`](Self::access) holds a permit for a scope.
///
/// Like Python's `Semaphore`, it is not bounded: releasing more often than acquiring
/// raises the count. Use [`BoundedSemaphore`](super::BoundedSemaphore) to catch that
/// mistake.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use greenweave_runtime::{joinall, sleep, spawn};
/// use greenweave_runtime::sync::Semaphore;
///
/// let slots = Rc::new(Semaphore::new(2));
/// let (running, most) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
/// let workers: Vec<_> = (0..6)
///     .map(|_| {
///         let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
///         spawn(move || {
///             let _permit = slots.access();
///             running.set(running.get() + 1);
///             most.set(most.get().max(running.get()));
///             sleep(Duration::from_millis(5));
///             running.set(running.get() - 1);
///         })
///     })
///     .collect();
/// joinall(workers);
/// assert_eq!(most.get(), 2);
/// assert_eq!(slots.available(), 2);
/// ```
///
/// It belongs to one thread's greenlets; sharing it with another thread does not
/// compile:
///
/// ```compile_fail,E0277
/// use std::sync::Arc;
/// let sem = Arc::new(greenweave_runtime::sync::Semaphore::new(1));
/// let other = sem.clone();
/// std::thread::spawn(move || other.release());
/// ```
pub struct Semaphore {
    permits: Cell<usize>,
    /// `Some(initial)` for a [`BoundedSemaphore`](super::BoundedSemaphore).
    pub(super) bound: Option<usize>,
    waiters: WaitQueue,
    created: &'static Location<'static>,
}

impl Semaphore {
    /// A semaphore with `permits` permits. Deadlock reports show where it was created.
    #[track_caller]
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: Cell::new(permits),
            bound: None,
            waiters: WaitQueue::new(),
            created: Location::caller(),
        }
    }

    /// Takes a permit, blocking until one is available.
    ///
    /// # Panics
    ///
    /// Unwinds if the greenlet is killed or a [`Timeout`](crate::Timeout) expires
    /// meanwhile, and with the deadlock report if no permit could ever come back.
    #[track_caller]
    pub fn acquire(&self) {
        self.acquire_until(None);
    }

    /// Like [`acquire`](Self::acquire), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if no permit became available in time (nothing was taken).
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), Elapsed> {
        if self.acquire_until(deadline_after(timeout)) {
            Ok(())
        } else {
            Err(Elapsed)
        }
    }

    /// Takes a permit if one is available now; never blocks.
    #[must_use = "if it returns true, a permit was taken and must be released"]
    pub fn try_acquire(&self) -> bool {
        match self.permits.get() {
            0 => false,
            n => {
                self.permits.set(n - 1);
                true
            }
        }
    }

    /// Gives a permit back and wakes the longest-waiting greenlet, if any.
    ///
    /// # Panics
    ///
    /// If the count would overflow `usize` (the panic points at this call).
    #[track_caller]
    pub fn release(&self) {
        let n = self.permits.get();
        let Some(n) = n.checked_add(1) else {
            panic!(
                "greenweave: Semaphore::release(): the Semaphore created at {} already has \
                 usize::MAX permits available",
                self.created
            )
        };
        self.permits.set(n);
        self.waiters.notify_one();
    }

    /// Takes a permit (blocking like [`acquire`](Self::acquire)) and returns a guard
    /// that gives it back when dropped: gevent's `with semaphore:`.
    #[track_caller]
    pub fn access(&self) -> SemaphoreGuard<'_> {
        self.acquire();
        SemaphoreGuard { semaphore: self }
    }

    /// Like [`access`](Self::access), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if no permit became available in time.
    #[track_caller]
    pub fn access_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, Elapsed> {
        self.acquire_timeout(timeout)?;
        Ok(SemaphoreGuard { semaphore: self })
    }

    /// Like [`access`](Self::access) if a permit is available now; never blocks.
    pub fn try_access(&self) -> Option<SemaphoreGuard<'_>> {
        self.try_acquire()
            .then(|| SemaphoreGuard { semaphore: self })
    }

    /// Permits available now (gevent's `counter`).
    pub fn available(&self) -> usize {
        self.permits.get()
    }

    /// Number of greenlets blocked waiting for a permit.
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    #[track_caller]
    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        wait_for(&self.waiters, self, deadline, || self.try_acquire())
    }

    fn kind(&self) -> &'static str {
        if self.bound.is_some() {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        }
    }

    /// The bounded release: refuses to go above the initial value.
    pub(super) fn release_bounded(&self, bound: usize) -> Result<(), ReleaseError> {
        if self.permits.get() >= bound {
            return Err(ReleaseError::new(format!(
                "greenweave: BoundedSemaphore created at {} released too many times: \
                 {} permits are already available, its initial value",
                self.created, bound
            )));
        }
        self.release();
        Ok(())
    }
}

impl Describe for Semaphore {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Lock
    }

    fn describe(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(out, "{} created at {}", self.kind(), self.created);
        let _ = match self.bound {
            Some(bound) => write!(out, " ({} of {bound} permits available)", self.available()),
            None => write!(out, " ({} permits available)", self.available()),
        };
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.kind())
            .field("available", &self.permits.get())
            .field("waiters", &self.waiters.len())
            .field("created", &format_args!("{}", self.created))
            .finish()
    }
}

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`](super::BoundedSemaphore), given
/// back when dropped (including when the greenlet unwinds because of a panic, kill or
/// timeout).
#[must_use = "the permit is released as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    semaphore: &'a Semaphore,
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        match self.semaphore.bound {
            None => self.semaphore.release(),
            Some(bound) => {
                if let Err(err) = self.semaphore.release_bounded(bound) {
                    // Only possible after an extra manual `release()`, which was the
                    // actual mistake; panicking while unwinding would abort.
                    if std::thread::panicking() {
                        log::error!(target: crate::log_targets::SYNC, "{err}");
                    } else {
                        panic!("{err}");
                    }
                }
            }
        }
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard")
            .field("semaphore", self.semaphore)
            .finish()
    }
}
