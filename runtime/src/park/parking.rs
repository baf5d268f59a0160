//! [`Parking`]: a wait's state in the waiting call's frame, and the three steps every
//! wait is made of: [`block`](Parking::block) (out of line), the switch (inline, in
//! the waiting call's own frame) and [`resumed`](Parking::resumed) (out of line).
//!
//! Only what is live across the switch has to stay in the frame that switches: a
//! resumed greenlet returns through the frames that were live when it suspended,
//! and each such return mispredicts (see docs/DESIGN-NOTES.md, "A blocking call is
//! one frame deep"). A call made before the switch has returned by then, and one made
//! after it is a fresh call, so both predict: the bookkeeping of a wait lives in
//! those two calls, and the frame that switches holds only this record and the
//! switch itself. The hottest blocking calls (queue `put`/`get`) are a thin shell
//! around that switch (see `queue::base`); the others inline the three steps into
//! their one frame.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Instant;

use super::WaitToken;
use super::queue::{WaitQueue, Waiter};
use crate::hub::{Hub, Leaving};
use crate::stats::ParkKind;
use crate::task::{Describe, Interrupt, Task, TaskRef, Wake};
use crate::timer::{Action, TimerKey};

/// One wait of the current task, pinned in the frame of the waiting call: its queue
/// node (rule 1 of the parent module), what it waits on (which the task shows while
/// blocked), its timer and the greenlet it switches to.
pub(crate) struct Parking<'a> {
    hub: &'a Hub,
    task: TaskRef<'a>,
    /// The task's `waiting_on` points here while it is blocked in this wait.
    on: &'a dyn Describe,
    /// Its place in a wait queue, if the wait joins one (rules 1-6).
    node: Waiter<'a>,
    timer: Cell<Option<TimerKey>>,
    /// The task [`block`](Self::block) chose to switch to directly, if any (the hub
    /// otherwise), held until the switch.
    next: Cell<Option<Rc<Task>>>,
}

impl<'a> Parking<'a> {
    /// A wait of `task` (the current one) on `on`, with hand-off `slot` (rule 6; null
    /// for none) should it join a queue. Nothing happens until [`block`](Self::block).
    #[inline(always)]
    pub(crate) fn new(
        hub: &'a Hub,
        task: TaskRef<'a>,
        on: &'a dyn Describe,
        slot: *const (),
    ) -> Parking<'a> {
        Parking {
            hub,
            node: Waiter::task(task.reborrow(), slot),
            task,
            on,
            timer: Cell::new(None),
            next: Cell::new(None),
        }
    }

    /// The waiting task.
    #[inline(always)]
    pub(crate) fn task(&self) -> &TaskRef<'a> {
        &self.task
    }

    /// Its queue node, pinned as the record is.
    #[inline(always)]
    pub(super) fn node(self: Pin<&Self>) -> Pin<&Waiter<'a>> {
        // SAFETY: structural pinning: the record never moves its node out nor hands
        // out `&mut` to it, and drops it in place.
        unsafe { self.map_unchecked(|parking| &parking.node) }
    }

    /// Links the node at the back of `queue`.
    #[inline(always)]
    pub(super) fn join(self: Pin<&Self>, queue: &'a WaitQueue) {
        queue.link(self.node());
    }

    /// A token to wake this wait with (for wakers that keep it: timers, fd waits).
    #[inline(always)]
    pub(crate) fn token(&self) -> WaitToken {
        WaitToken::of(&self.task)
    }

    /// Starts the wait, once the waker can find the task: arms the timer for
    /// `deadline`, counts the park as `kind`, records the park line (the caller's
    /// `#[track_caller]` location, so the user's call site) and marks the task
    /// blocked; then picks the greenlet to switch to. [`switch`](Self::switch) next.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn block(self: Pin<&Self>, deadline: Option<Instant>, kind: ParkKind) {
        let (hub, task) = (self.hub, &self.task);
        if let Some(at) = deadline {
            let key = hub.timers.borrow_mut().insert(at, Action::Wake(self.token()));
            self.timer.set(Some(key));
        }
        hub.stats.count_park(kind);
        // SAFETY: `on` is a field of this pinned record, which stays in place until it
        // drops, and its `Drop` (or `resumed`, before) clears what this sets.
        unsafe { task.show_waiting_on(NonNull::from(&self.get_ref().on)) };
        task.parked_at.set(std::panic::Location::caller());
        task.parked_clock.set(hub.stats.clock());
        task.block();
        self.next.set(hub.take_direct(Leaving::Parked));
    }

    /// Switches away, to the greenlet [`block`](Self::block) picked; returns when the
    /// task runs again. Always inlined: this is what runs in the waiting call's own
    /// frame.
    #[inline(always)]
    pub(crate) fn switch(self: Pin<&Self>) {
        self.hub.switch_to(self.next.take());
    }

    /// Back from the switch: ends the wait's bookkeeping (what it showed, its timer)
    /// and says how it ended, whatever interrupt may be pending.
    #[inline(always)]
    pub(crate) fn resumed(self: Pin<&Self>) -> Wake {
        self.task.stop_showing_waiting_on();
        let why = self.task.resume();
        if let Some(key) = self.timer.take() {
            if why != Wake::TimedOut {
                self.hub.timers.borrow_mut().cancel(key);
            }
        }
        why
    }

    /// [`resumed`](Self::resumed), then the interrupt that arrived meanwhile, taken,
    /// if any (see [`ended`](super::ended)).
    #[inline(always)]
    pub(crate) fn finish(self: Pin<&Self>) -> Result<Wake, Interrupt> {
        let why = self.resumed();
        super::ended(&self.task, why)
    }

    /// The whole wait: [`block`](Self::block), [`switch`](Self::switch),
    /// [`resumed`](Self::resumed).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait(self: Pin<&Self>, deadline: Option<Instant>, kind: ParkKind) -> Wake {
        self.block(deadline, kind);
        self.switch();
        self.resumed()
    }

    /// Whether a notification took its node off its queue.
    #[inline(always)]
    pub(super) fn notified(&self) -> bool {
        self.node.notified()
    }
}

impl Drop for Parking<'_> {
    /// However the waiting call ends (an unwind out of its switch included), the task
    /// stops pointing at `on`; the node then leaves its queue as it drops (rule 2).
    #[inline]
    fn drop(&mut self) {
        self.task.stop_showing_waiting_on();
    }
}

/// A waiting call's room for a [`Parking`] record, empty until a step of the call
/// blocks: for the queue shell (`queue::base`), whose out-of-line steps fill it
/// ([`SlotQueue::block`](super::SlotQueue::block)) and empty it
/// ([`finish`](Self::finish)) on either side of the switch it makes in its own frame
/// ([`switch`](Self::switch)). A record still full as it drops (only an unwind out
/// of the switch leaves one) is emptied out of line, so the shell carries no copy of
/// a wait's drop.
pub(crate) struct Record<'a> {
    parking: ManuallyDrop<Option<Parking<'a>>>,
}

impl<'a> Record<'a> {
    /// An empty record.
    #[inline(always)]
    pub(crate) const fn new() -> Record<'a> {
        Record {
            parking: ManuallyDrop::new(None),
        }
    }

    /// The wait it holds, if any.
    #[inline(always)]
    pub(crate) fn get(self: Pin<&Self>) -> Option<Pin<&Parking<'a>>> {
        // SAFETY: structural pinning: the record never moves its contents, and drops
        // them in place.
        unsafe { self.map_unchecked(|record| &*record.parking) }.as_pin_ref()
    }

    /// Its contents, pinned.
    #[inline(always)]
    fn contents(self: Pin<&mut Self>) -> Pin<&mut Option<Parking<'a>>> {
        // SAFETY: as in `get`; `Pin::set` drops the old contents in place.
        unsafe { self.map_unchecked_mut(|record| &mut *record.parking) }
    }

    /// Holds `parking` from now on (dropping a wait it held), and gives it back pinned.
    #[inline(always)]
    pub(crate) fn fill(mut self: Pin<&mut Self>, parking: Parking<'a>) -> Pin<&Parking<'a>> {
        self.as_mut().contents().set(Some(parking));
        self.into_ref()
            .get()
            .expect("the record was filled just above")
    }

    /// Switches away as the wait it holds says ([`Parking::switch`]).
    #[inline(always)]
    pub(crate) fn switch(self: Pin<&Self>) {
        if let Some(parking) = self.get() {
            parking.switch();
        }
    }

    /// Back from [`switch`](Self::switch): if it holds a wait,
    /// [`finish`](Parking::finish)es it and empties the record (the node leaves its
    /// queue if still linked); `None` if it held none (no wait happened).
    #[inline(always)]
    pub(crate) fn finish(self: Pin<&mut Self>) -> Option<Result<Wake, Interrupt>> {
        let result = self.as_ref().get()?.finish();
        self.contents().set(None);
        Some(result)
    }

    #[cold]
    #[inline(never)]
    fn drop_contents(&mut self) {
        // SAFETY: called once, from `drop`; nothing uses the contents afterwards, and
        // they are dropped in place (pinning allows that).
        unsafe { ManuallyDrop::drop(&mut self.parking) };
    }
}

impl Drop for Record<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.parking.is_some() {
            self.drop_contents();
        }
    }
}
