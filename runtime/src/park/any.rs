//! [`AnyOf`]: waiting on several [`WaitQueue`]s at once (`wait_any`, `iwait`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::ptr::NonNull;
use std::time::Instant;

use super::{WaitQueue, WaitToken, Waiter, park};
use crate::task::{Describe, Interrupt, Wake};

/// Something that holds a [`WaitQueue`] (a `JoinHandle`: its task's joiners).
pub(crate) trait HoldsQueue {
    fn queue(&self) -> &WaitQueue;
}

impl<Q: HoldsQueue> HoldsQueue for &Q {
    fn queue(&self) -> &WaitQueue {
        (**self).queue()
    }
}

/// A set of waits on the queues of some holders, registered once for as long as the
/// set lives: a notification of holder `i`'s queue records `i` as ready (and wakes the
/// greenlet parked in [`wait`](Self::wait), if any) instead of waking anyone directly.
/// So a set over n queues costs O(n) to make and drop, and O(1) per notification.
///
/// A member takes a notification the way a broadcast waiter does: one that reaches it
/// is not passed on when the set is dropped unread. The set is for conditions that
/// hold for good once they hold (a greenlet's end), whose queues are notified with
/// `notify_all`.
pub(crate) struct AnyOf<Q: HoldsQueue> {
    /// Dropped first: each member's node leaves its queue before its holder goes, and
    /// before the shared part the node points at (rules 3 and 7).
    members: Box<[Member<Q>]>,
    shared: Box<Shared>,
}

struct Member<Q> {
    /// Linked in `holder`'s queue while it waits there. Dropped before `holder`.
    node: Waiter<'static>,
    /// `None` once [`AnyOf::take`] gave it back.
    holder: Option<Q>,
}

/// The part of an [`AnyOf`] its members' nodes reach.
#[derive(Default)]
pub(super) struct Shared {
    /// Members ready, in the order they became ready.
    ready: RefCell<VecDeque<usize>>,
    /// The wait of the greenlet parked in [`AnyOf::wait`], while it is.
    waiter: RefCell<Option<WaitToken>>,
}

/// What a member's node does on a notification (see [`Waiter::notify`]).
pub(super) fn member_notified(set: NonNull<Shared>, index: usize) {
    // SAFETY: rule 7: a member's node points at the shared part of the set that owns
    // it, which the set drops after the node.
    let shared = unsafe { set.as_ref() };
    shared.ready.borrow_mut().push_back(index);
    if let Some(waiter) = &*shared.waiter.borrow() {
        waiter.wake(Wake::Notified);
    }
}

impl<Q: HoldsQueue> AnyOf<Q> {
    /// A set over `holders`, member `i` being the `i`-th: those for which `ready`
    /// says so are ready at once, the others wait in their queues.
    pub(crate) fn new(holders: impl IntoIterator<Item = Q>, ready: impl Fn(&Q) -> bool) -> Self {
        let shared = Box::<Shared>::default();
        let at = NonNull::from(&*shared);
        let members: Box<[Member<Q>]> = holders
            .into_iter()
            .enumerate()
            .map(|(i, holder)| Member {
                node: Waiter::member(at, i),
                holder: Some(holder),
            })
            .collect();
        let set = AnyOf { members, shared };
        for (i, member) in set.members.iter().enumerate() {
            match &member.holder {
                Some(holder) if ready(holder) => set.shared.ready.borrow_mut().push_back(i),
                _ => set.link(i),
            }
        }
        set
    }

    /// Links member `i`'s node in its holder's queue (again), if it still has its
    /// holder and is not linked.
    pub(crate) fn link(&self, i: usize) {
        let member = &self.members[i];
        let Some(holder) = &member.holder else {
            return;
        };
        if member.node.is_linked() {
            return;
        }
        let queue: *const WaitQueue = holder.queue();
        // SAFETY: rule 3: a queue borrowed from the holder stays alive and in place
        // while the holder is neither moved, nor dropped, nor borrowed mutably, and
        // the set does none of these while the node is linked: the holder stays in
        // the boxed slice until `take` (which unlinks the node first), and the node
        // drops before it (field order).
        let queue: &'static WaitQueue = unsafe { &*queue };
        // SAFETY: rule 1: the boxed slice is never moved out of or resized.
        queue.link(unsafe { Pin::new_unchecked(&member.node) });
    }

    /// The longest-ready member not yet handed out by this, if any.
    pub(crate) fn pop_ready(&self) -> Option<usize> {
        self.shared.ready.borrow_mut().pop_front()
    }

    /// Member `i`'s holder, unless [`take`](Self::take) gave it back.
    pub(crate) fn get(&self, i: usize) -> Option<&Q> {
        self.members[i].holder.as_ref()
    }

    /// Gives member `i`'s holder back, its node out of the queue first.
    pub(crate) fn take(&mut self, i: usize) -> Option<Q> {
        let member = &mut self.members[i];
        member.node.leave();
        member.holder.take()
    }

    /// Parks until a member is ready (at once if one already is), the deadline passes,
    /// or an interrupt arrives, as [`park`] does.
    #[track_caller]
    pub(crate) fn wait(
        &self,
        on: &dyn Describe,
        deadline: Option<Instant>,
    ) -> Result<Wake, Interrupt> {
        if !self.shared.ready.borrow().is_empty() {
            return Ok(Wake::Notified);
        }
        let woken = park(on, deadline, |token| {
            *self.shared.waiter.borrow_mut() = Some(token);
        });
        self.shared.waiter.borrow_mut().take();
        woken
    }
}
