//! [`AsyncResult`]: a value (or error) that greenlets can wait for.

use std::cell::RefCell;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::{Site, wait_for};
use crate::park::WaitQueue;
use crate::time::deadline_after;
use crate::timeout::Elapsed;

/// A result that arrives later, for any number of greenlets to wait for (gevent's
/// `AsyncResult`): one greenlet [`set`](Self::set)s a value or
/// [`set_error`](Self::set_error)s an error, and every waiter [`get`](Self::get)s a
/// clone of it.
///
/// The error type `E` is the caller's choice (a `String`, an error enum,
/// `Rc<dyn std::error::Error>` for arbitrary errors); `get` returns `Result<T, E>`, so
/// both `T` and `E` must be `Clone` to be read. Setting again replaces the stored
/// outcome and wakes any new waiters, as in gevent.
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::spawn;
/// use greenweave_runtime::sync::AsyncResult;
///
/// let answer: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
/// let readers: Vec<_> = (0..3)
///     .map(|_| {
///         let answer = answer.clone();
///         spawn(move || answer.get())
///     })
///     .collect();
/// let writer = {
///     let answer = answer.clone();
///     spawn(move || answer.set(42))
/// };
/// for r in readers {
///     assert_eq!(r.join().unwrap(), Ok(42));
/// }
/// writer.join().unwrap();
///
/// let failed: AsyncResult<u32, String> = AsyncResult::new();
/// failed.set_error("no answer".to_string());
/// assert_eq!(failed.try_get(), Some(Err("no answer".to_string())));
/// ```
///
/// It belongs to one thread's greenlets; sharing it with another thread does not
/// compile:
///
/// ```compile_fail,E0277
/// use std::sync::Arc;
/// use greenweave_runtime::sync::AsyncResult;
/// let result: Arc<AsyncResult<u32, String>> = Arc::new(AsyncResult::new());
/// let other = result.clone();
/// std::thread::spawn(move || other.set(1));
/// ```
pub struct AsyncResult<T, E> {
    outcome: RefCell<Option<Result<T, E>>>,
    waiters: WaitQueue,
    created: &'static Location<'static>,
}

impl<T, E> AsyncResult<T, E> {
    /// A new result, not ready yet. Deadlock reports show where it was created.
    #[track_caller]
    pub const fn new() -> AsyncResult<T, E> {
        AsyncResult {
            outcome: RefCell::new(None),
            waiters: WaitQueue::new(),
            created: Location::caller(),
        }
    }

    /// Stores `value` and wakes every waiter.
    pub fn set(&self, value: T) {
        self.complete(Ok(value));
    }

    /// Stores `error` (gevent's `set_exception`) and wakes every waiter; they get
    /// `Err(error)`.
    pub fn set_error(&self, error: E) {
        self.complete(Err(error));
    }

    fn complete(&self, outcome: Result<T, E>) {
        let previous = self.outcome.replace(Some(outcome));
        drop(previous);
        self.waiters.notify_all();
    }

    /// Whether a value or an error has been set (gevent's `ready()`).
    pub fn is_ready(&self) -> bool {
        self.outcome.borrow().is_some()
    }

    /// Whether a value (not an error) has been set (gevent's `successful()`).
    pub fn is_successful(&self) -> bool {
        matches!(*self.outcome.borrow(), Some(Ok(_)))
    }

    /// Blocks until a value or error is set, without reading it.
    ///
    /// # Panics
    ///
    /// Unwinds if the greenlet is killed or a [`Timeout`](crate::Timeout) expires
    /// meanwhile, and with the deadlock report if nothing could ever set it.
    #[track_caller]
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`; returns whether the result
    /// is ready.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_after(timeout))
    }

    /// Number of greenlets blocked waiting for the result.
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let on = Site {
            what: "AsyncResult",
            created: self.created,
        };
        wait_for(&self.waiters, &on, deadline, || self.is_ready())
    }
}

impl<T: Clone, E: Clone> AsyncResult<T, E> {
    /// Blocks until the result is set, then returns a clone of it: `Ok(value)`, or
    /// `Err(error)` if it was set with [`set_error`](Self::set_error).
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    #[track_caller]
    pub fn get(&self) -> Result<T, E> {
        self.wait();
        self.try_get().expect("the result is ready after wait()")
    }

    /// Like [`get`](Self::get), giving up after `timeout` with [`Elapsed`].
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if nothing was set in time; otherwise the result itself is the
    /// `Ok` value (and may be an `Err` set by [`set_error`](Self::set_error)).
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<Result<T, E>, Elapsed> {
        if self.wait_timeout(timeout) {
            Ok(self.try_get().expect("the result is ready after wait()"))
        } else {
            Err(Elapsed)
        }
    }

    /// The result if it is set, without blocking (gevent's `get(block=False)`).
    pub fn try_get(&self) -> Option<Result<T, E>> {
        self.outcome.borrow().clone()
    }
}

impl<T, E> Default for AsyncResult<T, E> {
    #[track_caller]
    fn default() -> AsyncResult<T, E> {
        AsyncResult::new()
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("outcome", &*self.outcome.borrow())
            .field("waiters", &self.waiters.len())
            .field("created", &format_args!("{}", self.created))
            .finish()
    }
}
