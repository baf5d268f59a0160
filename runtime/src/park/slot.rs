//! [`SlotQueue`]: a [`WaitQueue`] whose waiters leave a hand-off slot.

use std::cell::Cell;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr;
use std::time::Instant;

use super::{Parking, Record, WaitQueue, about_to_park};
use crate::hub::Here;
use crate::task::{Describe, Interrupt};

/// A [`WaitQueue`] whose waiters each leave a hand-off slot for a `T`, so that the one
/// who wakes a waiter can hand it a value, or take one from it, in the same step
/// (Go's direct send): a getter parked on an empty queue wakes up holding its item,
/// and a putter parked on a full one wakes up with its item already stored. Neither
/// re-checks the queue, and a value is never in flight between owners.
///
/// A waiter's slot lives in the frame of its waiting call, and its address in the
/// waiter's queue node, in the same frame (rule 6 of the parent module): `wait`'s own,
/// or the frame of a caller that waits in steps ([`block`](Self::block)). It is only
/// used while the node is linked (the waiter is parked inside that very call), and
/// the node leaves the queue before that call returns, or unwinds.
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

    /// Starts a wait with `slot` open to whoever serves this queue, for a caller whose
    /// own frame switches (the queue shell, `queue::base`): takes a pending interrupt
    /// (returned, taken, with nothing else done), or fills `record` with a wait whose
    /// node joins this queue, and [`block`](Parking::block)s in it. The caller then
    /// switches ([`Record::switch`]) and, once back, ends the wait with
    /// [`Record::finish`] and looks at its slot: what a server put there or took
    /// from there has happened, even if the wait ended with an interrupt that arrived
    /// later. It is woken when served, by [`wake_all`](Self::wake_all), when the
    /// deadline passes, or by an interrupt.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn block<'a>(
        &'a self,
        record: Pin<&mut Record<'a>>,
        here: &'a Here,
        slot: &'a Cell<Option<T>>,
        on: &'a dyn Describe,
        deadline: Option<Instant>,
    ) -> Result<(), Interrupt> {
        let (hub, task) = about_to_park(here)?;
        let parking = record.fill(Parking::new(hub, task, on, ptr::from_ref(slot).cast()));
        parking.join(&self.queue);
        parking.block(deadline, on.kind());
        Ok(())
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
