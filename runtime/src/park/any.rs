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
        // Rule 3: a queue borrowed from the holder stays alive and in place while the
        // holder is neither moved, nor dropped, nor borrowed mutably, and the set does
        // none of these while the node is linked: the holder stays in the boxed slice
        // until `take` (which unlinks the node first), and the node drops before it.
        // SAFETY: so the queue outlives the node's link (rule 3, as just said).
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

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{spawn, yield_now};

    /// Plain queues as holders.
    struct Holder(Rc<WaitQueue>);

    impl HoldsQueue for Holder {
        fn queue(&self) -> &WaitQueue {
            &self.0
        }
    }

    fn queues(n: usize) -> Vec<Rc<WaitQueue>> {
        (0..n).map(|_| Rc::new(WaitQueue::new())).collect()
    }

    fn set_over(queues: &[Rc<WaitQueue>]) -> AnyOf<Holder> {
        AnyOf::new(queues.iter().map(|q| Holder(q.clone())), |_| false)
    }

    fn lens(queues: &[Rc<WaitQueue>]) -> Vec<usize> {
        queues.iter().map(|q| q.len()).collect()
    }

    #[test]
    fn a_notified_member_is_ready_and_out_of_its_queue_until_linked_again() {
        let qs = queues(3);
        let mut set = set_over(&qs);
        assert_eq!(lens(&qs), [1, 1, 1]);
        assert!(qs[1].notify_one(), "a member takes a notification");
        assert_eq!(lens(&qs), [1, 0, 1]);
        assert_eq!(set.pop_ready(), Some(1));
        assert_eq!(set.pop_ready(), None);
        set.link(1);
        set.link(1); // linked already: nothing changes
        assert_eq!(lens(&qs), [1, 1, 1]);
        assert!(Rc::ptr_eq(&set.take(2).unwrap().0, &qs[2]));
        assert_eq!(lens(&qs), [1, 1, 0], "a holder given back leaves its queue");
        assert!(set.get(2).is_none());
        set.link(2); // given back: nothing to link
        assert_eq!(lens(&qs), [1, 1, 0]);
        drop(set);
        assert_eq!(lens(&qs), [0, 0, 0], "dropping the set leaves every queue");
    }

    #[test]
    fn members_ready_from_the_start_come_first_in_order() {
        let qs = queues(4);
        let set = AnyOf::new(qs.iter().map(|q| Holder(q.clone())), |h| {
            Rc::ptr_eq(&h.0, &qs[1]) || Rc::ptr_eq(&h.0, &qs[3])
        });
        assert_eq!(lens(&qs), [1, 0, 1, 0]);
        assert_eq!(set.wait(&"ready", None), Ok(Wake::Notified), "no wait");
        qs[2].notify_all();
        qs[0].notify_all();
        let order: Vec<_> = std::iter::from_fn(|| set.pop_ready()).collect();
        assert_eq!(order, [1, 3, 2, 0]);
    }

    #[test]
    fn wait_parks_until_a_member_is_notified_or_the_deadline_passes() {
        let qs = queues(3);
        let set = set_over(&qs);
        let q = qs[2].clone();
        let notifier = spawn(move || q.notify_one());
        assert_eq!(set.wait(&"test set", None), Ok(Wake::Notified));
        assert!(notifier.join().unwrap());
        assert_eq!(set.pop_ready(), Some(2));
        let deadline = Instant::now() + Duration::from_millis(2);
        assert_eq!(set.wait(&"test set", Some(deadline)), Ok(Wake::TimedOut));
        // A member notified while nobody waits is ready for the next wait.
        qs[0].notify_one();
        assert_eq!(set.wait(&"test set", None), Ok(Wake::Notified));
        assert_eq!(set.pop_ready(), Some(0));
    }

    #[test]
    fn a_greenlet_killed_in_a_set_wait_leaves_every_queue() {
        let qs = queues(3);
        let theirs = qs.clone();
        let waiter = spawn(move || {
            let set = set_over(&theirs);
            set.wait(&"test set", None)
                .unwrap_or_else(|i| crate::park::raise(i))
        });
        yield_now();
        assert_eq!(lens(&qs), [1, 1, 1]);
        waiter.kill();
        assert_eq!(lens(&qs), [0, 0, 0]);
        assert_eq!(qs.iter().filter(|q| q.notify_one()).count(), 0);
    }
}
