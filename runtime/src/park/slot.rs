//! [`SlotQueue`]: a [`WaitQueue`] whose waiters leave a hand-off slot.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr;
use std::time::Instant;

use super::WaitQueue;
use crate::task::{Describe, Interrupt, Wake};

/// A [`WaitQueue`] whose waiters each leave a hand-off slot for a `T`, so that the one
/// who wakes a waiter can hand it a value, or take one from it, in the same step
/// (Go's direct send): a getter parked on an empty queue wakes up holding its item,
/// and a putter parked on a full one wakes up with its item already stored. Neither
/// re-checks the queue, and a value is never in flight between owners.
///
/// A waiter's slot lives in its own `wait` frame, and its address in the waiter's
/// queue node, in the same frame (rule 6 of the parent module). It is only used while
/// the node is linked (the waiter is parked inside that very call), and the node
/// leaves the queue before `wait` returns, or unwinds.
pub(crate) struct SlotQueue<T> {
    queue: WaitQueue,
    _slots: PhantomData<*const Cell<Option<T>>>,
}

impl<T> SlotQueue<T> {
    pub(crate) const fn new() -> SlotQueue<T> {
        SlotQueue {
            queue: WaitQueue::new(),
            _slots: PhantomData,
        }
    }

    /// Parks with `slot` open to whoever serves this queue, until served (or woken by
    /// [`wake_all`](Self::wake_all)), the deadline passes, or an interrupt arrives.
    /// The caller looks at its slot afterwards: what a server put there or took from
    /// there has happened, even if this returns an interrupt that arrived later.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait(
        &self,
        slot: &Cell<Option<T>>,
        on: &dyn Describe,
        deadline: Option<Instant>,
    ) -> Result<Wake, Interrupt> {
        self.queue
            .wait_with_slot::<false>(ptr::from_ref(slot).cast(), on, deadline)
    }

    /// Hands the longest-waiting live waiter's slot to `serve` and wakes it; `false`
    /// (and `serve` not called) if nobody waits.
    #[inline]
    pub(crate) fn serve(&self, serve: impl FnOnce(&Cell<Option<T>>)) -> bool {
        let Some(node) = self.queue.pop_live() else {
            return false;
        };
        let slot = node.slot().cast::<Cell<Option<T>>>();
        // SAFETY: rule 6: a node of this queue was made by `wait` above with a slot of
        // its own frame, of this queue's `T`; it was linked and its waiter is parked
        // (`pop_live`), so the slot is alive and nobody else uses it.
        serve(unsafe { &*slot });
        node.notify();
        true
    }

    /// Wakes every waiter without serving it (their slots are as they left them).
    pub(crate) fn wake_all(&self) -> usize {
        self.queue.notify_all()
    }

    /// Waiters parked now.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
