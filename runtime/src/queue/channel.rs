//! `Channel`: a rendezvous between a putter and a getter, on the shared queue core.
//!
//! A channel is a queue that stores nothing: a put hands its item to a getter that
//! waits, or waits with the item in its hand (its wait slot) until a getter takes it
//! from there. A put that ends without a getter (timeout, close, kill) still holds its
//! item, so an item is either delivered or given back, never both.

use std::fmt;
use std::panic::Location;

use super::api::{Sink, Source, blocking_api};
use super::base::Core;
use super::storage::Fifo;
use super::wait::{Deadline, Stop};

/// A rendezvous channel (gevent's `Channel`, a zero-capacity queue): `put` waits until
/// a getter has *taken* the item, and `get` waits for a putter. A put that finds a
/// getter waiting hands the item over and returns at once (the getter holds it from
/// then on, as a Go receiver does after a direct send); otherwise it waits, item in
/// hand, for the getter that takes it.
///
/// A `put` that fails (timeout, close) gives its item back and guarantees nobody
/// received it. [`try_put`](Self::try_put) succeeds only if a getter is waiting, and
/// hands the item to it. Otherwise it has the same API as [`Queue`](super::Queue);
/// [`len`](Self::len) counts the items of putters waiting for a getter.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use greenweave_runtime::{queue::Channel, spawn};
///
/// let ch = Rc::new(Channel::new());
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let putter = spawn({
///     let (ch, log) = (ch.clone(), log.clone());
///     move || {
///         ch.put("hello").unwrap(); // returns once main has the item
///         log.borrow_mut().push("put returned");
///     }
/// });
/// greenweave_runtime::yield_now(); // the putter starts and waits for a getter
/// assert_eq!(ch.len(), 1);
/// assert_eq!(ch.get().unwrap(), "hello");
/// log.borrow_mut().push("got");
/// putter.join().unwrap();
/// assert_eq!(*log.borrow(), ["got", "put returned"]);
/// ```
pub struct Channel<T> {
    core: Core<Fifo<T>>,
}

impl<T> Channel<T> {
    /// A new, open channel.
    #[track_caller]
    pub fn new() -> Self {
        Channel {
            core: Core::new(0, "Channel", Location::caller()).rendezvous(),
        }
    }

    /// Items offered by putters waiting for a getter.
    pub fn len(&self) -> usize {
        self.core.waiting_putters()
    }

    /// Whether no putter waits (a `try_get` would fail).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no getter is waiting (a `try_put` would fail).
    pub fn is_full(&self) -> bool {
        self.core.waiting_getters() == 0
    }

    /// Always `Some(0)`: a channel stores nothing.
    pub fn maxsize(&self) -> Option<usize> {
        Some(0)
    }

    /// Closes the channel: blocked getters wake with `Closed`, blocked putters with
    /// `Closed` and their item (not delivered), later puts fail. Returns `false` if it
    /// was already closed.
    pub fn close(&self) -> bool {
        self.core.close()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Greenlets parked in get and in put, in that order (for tests and diagnostics).
    #[doc(hidden)]
    pub fn waiter_counts(&self) -> (usize, usize) {
        (self.core.waiting_getters(), self.core.waiting_putters())
    }
}

impl<T> Default for Channel<T> {
    #[track_caller]
    fn default() -> Self {
        Channel::new()
    }
}

impl<T> Sink<T> for Channel<T> {
    #[track_caller]
    fn put_until(&self, item: T, deadline: Deadline) -> Result<(), (T, Stop)> {
        self.core.put_until(item, deadline)
    }
}

impl<T> Source<T> for Channel<T> {
    #[track_caller]
    fn get_until(&self, deadline: Deadline) -> Result<T, Stop> {
        self.core.get_until(deadline)
    }
}

blocking_api!(Channel, put_waits: "until a getter has taken it");

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("offered", &self.len())
            .field("waiting_getters", &self.core.waiting_getters())
            .field("closed", &self.is_closed())
            .field("created_at", &format_args!("{}", self.core.created_at()))
            .finish_non_exhaustive()
    }
}
