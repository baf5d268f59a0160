//! `Timeout` and `with_timeout`: bounding how long a piece of blocking code may take.
//!
//! A timeout interrupts only at a blocking point (a sleep, a lock, a queue, I/O, a
//! join, `yield_now`): code that computes without blocking runs to its next blocking
//! call before it notices, as in gevent.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::hub;
use crate::task::Task;
use crate::time::deadline_after;
use crate::timer::{Action, TimerKey};

/// The unwind payload of an expired [`Timeout`]; caught by [`with_timeout`]. If it
/// escapes a spawned greenlet, `join` reports it as a panic with this payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutFired {
    /// Which `Timeout` expired.
    pub id: u64,
}

/// The error of [`with_timeout`] and of the `*_timeout` blocking calls: the time ran out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the timeout expired")
    }
}

impl std::error::Error for Elapsed {}

impl fmt::Display for TimeoutFired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timeout #{} expired", self.id)
    }
}

impl std::error::Error for TimeoutFired {}

static NEXT_TIMEOUT: AtomicU64 = AtomicU64::new(1);

/// A deadline for the current greenlet (gevent's `Timeout`). When it expires, the
/// greenlet's current or next blocking call unwinds with [`TimeoutFired`] (a hook of
/// `greenweave-monkey` fails with `ETIMEDOUT` instead); dropping the guard cancels it.
/// [`with_timeout`] is the usual way to use one.
///
/// An expired timeout is delivered **once**, as in gevent: code that catches the
/// unwind (or handles the hook's error) and goes on blocks normally afterwards, even
/// while the guard lives. Of several expired timeouts the outermost (oldest) is
/// delivered first; a kill pending at the same time is delivered before either.
///
/// ```
/// use std::panic::catch_unwind;
/// use std::time::{Duration, Instant};
/// use greenweave_runtime::{sleep, Timeout, TimeoutFired};
///
/// let timeout = Timeout::start(Duration::from_millis(5));
/// let caught = catch_unwind(|| sleep(Duration::from_secs(1000))).unwrap_err();
/// assert_eq!(caught.downcast_ref(), Some(&TimeoutFired { id: timeout.id() }));
/// let start = Instant::now();
/// sleep(Duration::from_millis(10)); // not interrupted again
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
#[must_use = "a Timeout is cancelled when dropped"]
pub struct Timeout {
    id: u64,
    task: Weak<Task>,
    timer: Option<TimerKey>,
}

impl Timeout {
    /// Starts a timeout of `duration` for the current greenlet. A duration too large to
    /// represent as a deadline never expires.
    #[track_caller]
    pub fn start(duration: Duration) -> Timeout {
        let id = NEXT_TIMEOUT.fetch_add(1, Ordering::Relaxed);
        hub::with(|hub| {
            let task = hub.current_task();
            let timer = deadline_after(duration).map(|at| {
                hub.timers.borrow_mut().insert(
                    at,
                    Action::Timeout {
                        task: Rc::downgrade(&task),
                        id,
                    },
                )
            });
            Timeout {
                id,
                task: Rc::downgrade(&task),
                timer,
            }
        })
    }

    /// The id carried by this timeout's [`TimeoutFired`].
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            hub::with(|hub| hub.timers.borrow_mut().cancel(key));
        }
        if let Some(task) = self.task.upgrade() {
            task.cancel_timeout(self.id);
        }
    }
}

/// Runs `f`, giving up at its first blocking point after `duration` (gevent's
/// `with_timeout`). Nested timeouts attribute correctly: the one that expired is the
/// one that reports `Elapsed`. The timeout is delivered once (see [`Timeout`]): if `f`
/// catches it, or gets it as a hook's `ETIMEDOUT` and goes on, `f` runs on undisturbed
/// and its value is returned.
///
/// ```
/// use std::time::Duration;
/// use greenweave_runtime::{sleep, with_timeout, Elapsed};
///
/// assert_eq!(with_timeout(Duration::from_millis(10), || sleep(Duration::from_secs(5))), Err(Elapsed));
/// assert_eq!(with_timeout(Duration::from_secs(5), || 7), Ok(7));
/// ```
#[track_caller]
pub fn with_timeout<T>(duration: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let timeout = Timeout::start(duration);
    let id = timeout.id;
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    drop(timeout);
    match outcome {
        Ok(value) => Ok(value),
        Err(payload) => match payload.downcast_ref::<TimeoutFired>() {
            Some(fired) if fired.id == id => Err(Elapsed),
            _ => panic::resume_unwind(payload),
        },
    }
}
