//! [`WaitQueue`]: the FIFO of parked greenlets, an intrusive list of [`Waiter`] nodes
//! (see the safety rules in the parent module, cited below by number).

use std::cell::Cell;
use std::marker::PhantomPinned;
use std::pin::{Pin, pin};
use std::ptr::{self, NonNull};
use std::time::Instant;

use super::any::{self, Shared};
use super::{about_to_park, ended, raise, wait_here};
use crate::hub::Here;
use crate::task::{Describe, Interrupt, TaskRef, TaskState, Wake};

/// A link to a node, its lifetime erased: the node is alive while it is linked (rules
/// 1-3).
type Link = Option<NonNull<Waiter<'static>>>;

/// A FIFO of parked greenlets: what every blocking primitive waits in.
///
/// Waiters are woken in the order they arrived. A woken waiter re-checks its
/// condition; one that arrives meanwhile may get there first (no hand-off), which keeps
/// the common uncontended path free of bookkeeping.
pub(crate) struct WaitQueue {
    head: Cell<Link>,
    tail: Cell<Link>,
    /// Nodes linked (including waiters whose wait already ended another way and that
    /// have not left yet).
    len: Cell<usize>,
}

/// One waiter's place in a [`WaitQueue`]: in the frame of the waiting call, or in an
/// [`AnyOf`](super::AnyOf)'s boxed slice.
pub(crate) struct Waiter<'a> {
    next: Cell<Link>,
    prev: Cell<Link>,
    /// The queue it is linked in, while it is.
    queue: Cell<Option<&'a WaitQueue>>,
    /// Whether a notification took it off the queue (rather than its own leaving, or a
    /// waker that skipped it because its wait had ended another way).
    notified: Cell<bool>,
    whom: Whom<'a>,
    /// The hand-off slot of a `SlotQueue` waiter (rule 6); null otherwise.
    slot: *const (),
    _pinned: PhantomPinned,
}

/// Whom a notification reaches.
enum Whom<'a> {
    /// A parked task: it is made ready (if its wait is still in progress).
    Task(TaskRef<'a>),
    /// Member `index` of an `AnyOf` set (rule 7): the set records it ready.
    Member(NonNull<Shared>, usize),
}

impl<'a> Waiter<'a> {
    /// A node for `task`, the current greenlet's task, which is about to park.
    #[inline(always)]
    fn task(task: TaskRef<'a>, slot: *const ()) -> Waiter<'a> {
        Waiter::new(Whom::Task(task), slot)
    }

    /// A node for member `index` of the set whose shared part is `set`.
    pub(super) fn member(set: NonNull<Shared>, index: usize) -> Waiter<'a> {
        Waiter::new(Whom::Member(set, index), ptr::null())
    }

    #[inline(always)]
    fn new(whom: Whom<'a>, slot: *const ()) -> Waiter<'a> {
        Waiter {
            next: Cell::new(None),
            prev: Cell::new(None),
            queue: Cell::new(None),
            notified: Cell::new(false),
            whom,
            slot,
            _pinned: PhantomPinned,
        }
    }

    /// Whether a notification took it off its queue.
    #[inline(always)]
    fn notified(&self) -> bool {
        self.notified.get()
    }

    /// Whether it is in a queue.
    pub(super) fn is_linked(&self) -> bool {
        self.queue.get().is_some()
    }

    /// The hand-off slot it was made with.
    #[inline(always)]
    pub(super) fn slot(&self) -> *const () {
        self.slot
    }

    /// Takes it out of its queue, if it is in one.
    #[inline(always)]
    pub(super) fn leave(&self) {
        if let Some(queue) = self.queue.get() {
            queue.unlink(self);
        }
    }

    /// Whether a notification can still do something for it: a task node's wait is in
    /// progress (rule 5); a set member always takes one.
    #[inline(always)]
    fn is_live(&self) -> bool {
        match &self.whom {
            Whom::Task(task) => task.state() == TaskState::Blocked,
            Whom::Member(..) => true,
        }
    }

    /// Delivers a notification to a node just taken off its queue, which
    /// [`is_live`](Self::is_live).
    #[inline(always)]
    pub(super) fn notify(&self) {
        self.notified.set(true);
        match &self.whom {
            Whom::Task(task) => task.wake(Wake::Notified),
            Whom::Member(set, index) => any::member_notified(*set, *index),
        }
    }
}

impl Drop for Waiter<'_> {
    /// Rule 2: a node never outlives its place in a queue.
    #[inline(always)]
    fn drop(&mut self) {
        self.leave();
    }
}

impl WaitQueue {
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue {
            head: Cell::new(None),
            tail: Cell::new(None),
            len: Cell::new(0),
        }
    }

    /// Parks until notified, the deadline passes, or an interrupt arrives. On
    /// anything but a notification the waiter leaves the queue; a notification consumed
    /// by a wait that is then interrupted is passed on to the next waiter, so none is
    /// lost.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait(
        &self,
        on: &dyn Describe,
        deadline: Option<Instant>,
    ) -> Result<Wake, Interrupt> {
        self.wait_with_slot::<true>(ptr::null(), on, deadline)
    }

    /// Like [`wait`](Self::wait), unwinding on interrupts.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait_or_raise(&self, on: &dyn Describe, deadline: Option<Instant>) -> Wake {
        self.wait(on, deadline).unwrap_or_else(|i| raise(i))
    }

    /// The wait of [`wait`](Self::wait) and `SlotQueue::wait`, with the waiter's
    /// hand-off `slot` (rule 6; null for none): parks in a node of this frame and
    /// returns how it ended. A pending interrupt returns at once, without joining the
    /// queue. With `PASS_ON`, a notification that an interrupt then made useless is
    /// passed on to the next waiter (a slot waiter's server has acted on it instead).
    #[inline(always)]
    #[track_caller]
    pub(super) fn wait_with_slot<const PASS_ON: bool>(
        &self,
        slot: *const (),
        on: &dyn Describe,
        deadline: Option<Instant>,
    ) -> Result<Wake, Interrupt> {
        // Straight-line, no closures: one frame between the caller and the switch
        // (see `hub::get`).
        let here = Here::new();
        let (hub, task) = about_to_park(&here)?;
        let node = pin!(Waiter::task(task.reborrow(), slot));
        self.link(node.as_ref());
        let why = wait_here(hub, &task, on, deadline);
        let result = ended(&task, why);
        if PASS_ON && result.is_err() && node.notified() {
            // Taken off the queue by the notification: it is not linked.
            self.notify_one();
        }
        result
        // A wait that a timeout or an interrupt ended leaves the queue as the node
        // drops, right after this.
    }

    /// Links `node` at the back.
    #[inline(always)]
    pub(super) fn link<'a>(&'a self, node: Pin<&Waiter<'a>>) {
        let node = node.get_ref();
        debug_assert!(!node.is_linked(), "a waiter is in one queue at a time");
        let ptr = NonNull::from(node).cast::<Waiter<'static>>();
        let tail = self.tail.get();
        node.prev.set(tail);
        node.next.set(None);
        node.notified.set(false);
        match tail {
            // SAFETY: a linked node is alive and in place (rules 1-3).
            Some(tail) => unsafe { tail.as_ref() }.next.set(Some(ptr)),
            None => self.head.set(Some(ptr)),
        }
        self.tail.set(Some(ptr));
        node.queue.set(Some(self));
        self.len.set(self.len.get() + 1);
    }

    /// Takes `node`, which is linked here, out. Out of line: a waiter that was
    /// notified has left already, so this runs only for waits that ended otherwise
    /// (a timeout, an interrupt), and every wait site would carry a copy.
    #[inline(never)]
    fn unlink(&self, node: &Waiter<'_>) {
        let (prev, next) = (node.prev.get(), node.next.get());
        match prev {
            // SAFETY: its neighbours are linked, so alive and in place (rules 1-3).
            Some(prev) => unsafe { prev.as_ref() }.next.set(next),
            None => self.head.set(next),
        }
        match next {
            // SAFETY: as above.
            Some(next) => unsafe { next.as_ref() }.prev.set(prev),
            None => self.tail.set(prev),
        }
        node.queue.set(None);
        self.len.set(self.len.get() - 1);
    }

    /// Takes the longest-waiting node off the front.
    #[inline(always)]
    fn pop_front(&self) -> Option<&Waiter<'static>> {
        let head = self.head.get()?;
        // SAFETY: a linked node is alive and in place (rules 1-3); it stays alive
        // while the caller uses it, which runs no code of its owner's (rule 4).
        let node = unsafe { head.as_ref() };
        let next = node.next.get();
        self.head.set(next);
        match next {
            // SAFETY: as above.
            Some(next) => unsafe { next.as_ref() }.prev.set(None),
            None => self.tail.set(None),
        }
        node.queue.set(None);
        self.len.set(self.len.get() - 1);
        Some(node)
    }

    /// Takes the longest-waiting node that a notification can still reach, leaving
    /// out on the way those whose wait ended another way.
    #[inline(always)]
    pub(super) fn pop_live(&self) -> Option<&Waiter<'static>> {
        loop {
            let node = self.pop_front()?;
            if node.is_live() {
                return Some(node);
            }
        }
    }

    /// Wakes the longest-waiting greenlet; `false` if none was waiting.
    pub(crate) fn notify_one(&self) -> bool {
        match self.pop_live() {
            Some(node) => {
                node.notify();
                true
            }
            None => false,
        }
    }

    /// Wakes every waiting greenlet; returns how many.
    #[inline]
    pub(crate) fn notify_all(&self) -> usize {
        let mut woken = 0;
        while let Some(node) = self.pop_live() {
            node.notify();
            woken += 1;
        }
        woken
    }

    /// Forgets every waiter without waking or unlinking it (in a forked child: the
    /// greenlets the fork left behind, whose nodes these are, are never resumed,
    /// unwound or dropped, so nothing reaches their nodes again; see `fork` and rule
    /// 2). The queue is empty afterwards.
    pub(crate) fn forget_all(&self) {
        self.head.set(None);
        self.tail.set(None);
        self.len.set(0);
    }

    /// Number of greenlets waiting.
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// Whether nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }
}

#[cfg(test)]
mod tests;
