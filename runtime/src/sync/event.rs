//! [`Event`]: a flag greenlets can wait for.

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::{Site, wait_for};
use crate::park::WaitQueue;
use crate::time::deadline_after;

/// A flag that greenlets can wait for (gevent's `Event`, `threading.Event`).
///
/// [`set`](Self::set) wakes every waiter, and later waits return at once until
/// [`clear`](Self::clear). A waiter woken by `set` returns even if the event is cleared
/// again before it gets to run (Python's semantics, so a quick set-then-clear "pulse"
/// is not lost).
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::spawn;
/// use greenweave_runtime::sync::Event;
///
/// let ready = Rc::new(Event::new());
/// let waiters: Vec<_> = (0..3)
///     .map(|i| {
///         let ready = ready.clone();
///         spawn(move || {
///             ready.wait();
///             i * 10
///         })
///     })
///     .collect();
/// let setter = {
///     let ready = ready.clone();
///     spawn(move || ready.set())
/// };
/// let got: Vec<i32> = waiters.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(got, [0, 10, 20]);
/// setter.join().unwrap();
/// assert!(ready.is_set());
/// ```
///
/// It belongs to one thread's greenlets; sharing it with another thread does not
/// compile:
///
/// ```compile_fail,E0277
/// use std::sync::Arc;
/// let event = Arc::new(greenweave_runtime::sync::Event::new());
/// let other = event.clone();
/// std::thread::spawn(move || other.set());
/// ```
pub struct Event {
    flag: Cell<bool>,
    /// How many times `set` turned the flag on: a waiter that saw it change was woken
    /// by a `set`, even if the flag is off again.
    sets: Cell<u64>,
    waiters: WaitQueue,
    created: &'static Location<'static>,
}

impl Event {
    /// A new event, not set. Deadlock reports show where it was created.
    #[track_caller]
    pub const fn new() -> Event {
        Event {
            flag: Cell::new(false),
            sets: Cell::new(0),
            waiters: WaitQueue::new(),
            created: Location::caller(),
        }
    }

    /// Sets the flag and wakes every waiting greenlet (in the order they started
    /// waiting). Setting an event that is already set does nothing.
    pub fn set(&self) {
        if self.flag.replace(true) {
            return;
        }
        self.sets.set(self.sets.get() + 1);
        self.waiters.notify_all();
    }

    /// Resets the flag: later waits block until the next [`set`](Self::set).
    pub fn clear(&self) {
        self.flag.set(false);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag.get()
    }

    /// Blocks until the event is set (returns at once if it is).
    ///
    /// # Panics
    ///
    /// Unwinds if the greenlet is killed or a [`Timeout`](crate::Timeout) expires
    /// meanwhile, and with the deadlock report if nothing could ever set it.
    #[track_caller]
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`; returns whether the event
    /// was set (Python's `wait(timeout)`).
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_after(timeout))
    }

    /// Number of greenlets blocked in [`wait`](Self::wait) or
    /// [`wait_timeout`](Self::wait_timeout).
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let start = self.sets.get();
        let on = Site {
            what: "Event",
            created: self.created,
        };
        wait_for(&self.waiters, &on, deadline, || {
            self.flag.get() || self.sets.get() != start
        })
    }
}

impl Default for Event {
    #[track_caller]
    fn default() -> Event {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.flag.get())
            .field("waiters", &self.waiters.len())
            .field("created", &format_args!("{}", self.created))
            .finish()
    }
}
