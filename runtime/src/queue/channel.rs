//! `Channel`: a rendezvous between a putter and a getter, on the shared queue core.
//!
//! A blocked `put` queues an *offer* (its item plus a wait queue of its own) in a core
//! whose storage is a FIFO of offers, then waits until a getter takes the item out of
//! the offer. Withdrawing an offer (timeout, kill, close) takes it out of the core
//! first, so an item is either delivered or given back, never both.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use crate::park::WaitQueue;
use crate::task::Describe;

use super::api::{Sink, Source, blocking_api};
use super::base::Core;
use super::storage::Store;
use super::wait::{Deadline, Stop, wait_step};

/// An item waiting for a getter.
struct Offer<T> {
    /// `None` once a getter took it.
    item: RefCell<Option<T>>,
    /// Where its putter waits for the take (empty for a `try_put` hand-off).
    taken: WaitQueue,
    /// Whether a putter waits for it (`false`: a `try_put` hand-off).
    owned: bool,
}

/// The offers, oldest first.
struct Offers<T>(VecDeque<Rc<Offer<T>>>);

impl<T> Store for Offers<T> {
    type Item = Rc<Offer<T>>;
    fn new() -> Self {
        Offers(VecDeque::new())
    }
    fn push(&mut self, offer: Rc<Offer<T>>) {
        self.0.push_back(offer);
    }
    fn pop(&mut self) -> Option<Rc<Offer<T>>> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn describe(&self, _maxsize: usize, out: &mut String) {
        match self.0.len() {
            0 => out.push_str("no putter waiting"),
            n => out.push_str(&format!("{n} items offered")),
        }
    }
}

impl<T> Offers<T> {
    fn withdraw(&mut self, offer: &Rc<Offer<T>>) {
        self.0.retain(|o| !Rc::ptr_eq(o, offer));
    }
}

/// A rendezvous channel (gevent's `Channel`, a zero-capacity queue): `put` waits until
/// a getter has *taken* the item, and `get` waits for a putter.
///
/// A `put` that fails (timeout, close) gives its item back and guarantees nobody
/// received it. [`try_put`](Self::try_put) succeeds only if a getter is waiting; the
/// item then stays in the channel until that getter (or, if it dies first, the next
/// one) takes it. Otherwise it has the same API as
/// [`Queue`](super::Queue); [`len`](Self::len) counts items offered and not yet taken.
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
/// assert_eq!(ch.get().unwrap(), "hello");
/// log.borrow_mut().push("got");
/// putter.join().unwrap();
/// assert_eq!(*log.borrow(), ["got", "put returned"]);
/// ```
pub struct Channel<T> {
    offers: Core<Offers<T>>,
}

impl<T> Channel<T> {
    /// A new, open channel.
    #[track_caller]
    pub fn new() -> Self {
        Channel {
            offers: Core::new(0, "Channel", Location::caller()),
        }
    }

    /// Items offered by putters (and `try_put` hand-offs) and not yet taken.
    pub fn len(&self) -> usize {
        self.offers.len()
    }

    /// Whether no item is on offer (a `try_get` would fail).
    pub fn is_empty(&self) -> bool {
        self.offers.len() == 0
    }

    /// Whether no getter is waiting (a `try_put` would fail).
    pub fn is_full(&self) -> bool {
        self.offers.waiting_getters() == 0
    }

    /// Always `Some(0)`: a channel stores nothing.
    pub fn maxsize(&self) -> Option<usize> {
        Some(0)
    }

    /// Closes the channel: blocked getters wake with `Closed`, blocked putters with
    /// `Closed` and their item (not delivered), later puts fail. Items handed off by
    /// `try_put` can still be taken. Returns `false` if it was already closed.
    pub fn close(&self) -> bool {
        if !self.offers.close() {
            return false;
        }
        let mut withdrawn = Vec::new();
        self.offers.with_items(|offers| {
            offers.0.retain(|o| {
                if o.owned {
                    withdrawn.push(o.clone());
                }
                !o.owned
            });
        });
        for offer in withdrawn {
            offer.taken.notify_one();
        }
        true
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.offers.is_closed()
    }

    /// Greenlets parked in get and in put, in that order (for tests and diagnostics).
    #[doc(hidden)]
    pub fn waiter_counts(&self) -> (usize, usize) {
        let putters = self
            .offers
            .with_items(|o| o.0.iter().filter(|o| o.owned).count());
        (self.offers.waiting_getters(), putters)
    }
}

impl<T> Default for Channel<T> {
    #[track_caller]
    fn default() -> Self {
        Channel::new()
    }
}

/// What a blocked putter waits for, for deadlock reports.
struct Offering<'a, T>(&'a Channel<T>);

impl<T> Describe for Offering<'_, T> {
    fn describe(&self, out: &mut String) {
        out.push_str("put on ");
        self.0.offers.describe_self(out);
        out.push_str(" (waiting for a getter)");
    }
}

/// Withdraws an offer that is still queued when its put ends, including by unwinding.
struct Withdraw<'a, T> {
    offers: &'a Core<Offers<T>>,
    offer: &'a Rc<Offer<T>>,
}

impl<T> Withdraw<'_, T> {
    /// Withdraws the offer and returns its item, unless a getter took it.
    fn take_back(&self) -> Option<T> {
        self.offers.with_items(|o| o.withdraw(self.offer));
        self.offer.item.borrow_mut().take()
    }
}

impl<T> Drop for Withdraw<'_, T> {
    fn drop(&mut self) {
        self.offers.with_items(|o| o.withdraw(self.offer));
    }
}

impl<T> Sink<T> for Channel<T> {
    fn put_until(&self, item: T, deadline: Deadline) -> Result<(), (T, Stop)> {
        if self.offers.is_closed() {
            return Err((item, Stop::Closed));
        }
        let no_getter = self.offers.waiting_getters() == 0;
        let owned = !matches!(deadline, Deadline::Now);
        if !owned && no_getter {
            return Err((item, Stop::WouldBlock));
        }
        let offer = Rc::new(Offer {
            item: RefCell::new(Some(item)),
            taken: WaitQueue::new(),
            owned,
        });
        // Open and unbounded: this pushes the offer and notifies a getter.
        let _ = self.offers.put_until(offer.clone(), Deadline::Now);
        if !owned {
            return Ok(()); // a hand-off to the getter just notified
        }
        let guard = Withdraw {
            offers: &self.offers,
            offer: &offer,
        };
        loop {
            let stop = if offer.item.borrow().is_none() {
                return Ok(()); // taken: delivered
            } else if self.offers.is_closed() {
                Stop::Closed
            } else {
                match wait_step(&offer.taken, &Offering(self), deadline) {
                    Ok(()) => continue,
                    Err(stop) => stop,
                }
            };
            if let Some(item) = guard.take_back() {
                return Err((item, stop));
            }
        }
    }
}

impl<T> Source<T> for Channel<T> {
    fn get_until(&self, deadline: Deadline) -> Result<T, Stop> {
        let offer = self.offers.get_until(deadline)?;
        let item = offer.item.borrow_mut().take();
        offer.taken.notify_one();
        Ok(item.expect("greenweave: a queued Channel offer holds its item"))
    }
}

blocking_api!(Channel, put_waits: "until a getter has taken it");

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("offered", &self.len())
            .field("waiting_getters", &self.offers.waiting_getters())
            .field("closed", &self.is_closed())
            .field("created_at", &format_args!("{}", self.offers.created_at()))
            .finish_non_exhaustive()
    }
}
