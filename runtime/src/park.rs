//! The one waiting mechanism every blocking primitive uses.
//!
//! A blocking call *parks* the current greenlet: it leaves a way to wake it where the
//! waker will find it (a node in a [`WaitQueue`], a [`WaitToken`] in a timer or an fd
//! waiter), switches to the hub and, once woken, re-checks its condition. A token
//! carries the task's wait *generation*; every wake-up bumps the generation, so a late
//! timer, a second notification or a readiness event for a wait that already ended
//! finds a stale token and does nothing.
//!
//! Interrupts (kill, an expired `Timeout`, a deadlock report) are delivered only at
//! these blocking points, and each is delivered **once**: `park` *takes* it and returns
//! `Err(Interrupt)`, and the Rust-level callers turn that into an unwind ([`raise`]).
//! Code that must not unwind (libc hooks) gets the `Err` and reports an errno instead.
//! Either way it is no longer pending: a greenlet that catches the unwind, or logs the
//! errno and goes on, blocks normally at its next call. A caller that took an
//! interrupt but returns something else instead (an item handed over meanwhile,
//! partial progress) gives it back with [`put_back`], so it is not lost.
//!
//! # Wait queues
//!
//! A [`WaitQueue`] is a FIFO of parked greenlets: waiters are woken in the order they
//! arrived, and a woken waiter re-checks its condition (one that arrives meanwhile may
//! get there first: no hand-off). A notification consumed by a waiter that is then
//! interrupted is passed on to the next one, so none is lost. A [`SlotQueue`] adds a
//! hand-off slot per waiter (Go's direct send; see there). [`AnyOf`] waits on several
//! queues at once (`wait_any`, `iwait`).
//!
//! The queue is an intrusive doubly linked list of [`Waiter`] nodes that live where
//! the waiting happens: in the frame of the waiting call (greenlet stacks never move),
//! or in a boxed slice an [`AnyOf`] owns. Joining the queue, leaving it on a timeout or
//! a kill, and being woken are O(1) each, and a single waiter allocates nothing. A
//! waiter whose wait already ended another way (a timeout, a kill) is still linked
//! until its greenlet runs and leaves; a notification that reaches it first skips it
//! for the next waiter, which it wakes instead.
//!
//! # Safety rules
//!
//! The unsafe code of this module and its children relies on these rules, and cites
//! them by number.
//!
//! 1. **A node does not move while it is linked.** [`WaitQueue::link`] takes the node
//!    pinned: on the waiting call's stack (`pin!`), which stays put while the greenlet
//!    is parked, or in an [`AnyOf`]'s boxed slice, which is never moved or resized.
//! 2. **A node leaves its queue before it goes.** A linked node's `Drop` unlinks it, so
//!    however the scope holding it ends (a return, an unwind, a forced unwind of a
//!    greenlet at thread exit), no queue keeps its address; by `Pin`'s drop guarantee
//!    its memory is not reused before that `Drop` ran. (A greenlet still parked when
//!    its thread exits is abandoned: never resumed nor unwound, its stack never freed,
//!    so its nodes stay valid, and linked, for as long as anything reaches them. So
//!    are the greenlets a fork leaves behind in the child; `WaitQueue::forget_all`
//!    drops such nodes from a queue the child goes on using, without touching them.)
//! 3. **A queue outlives the nodes linked in it.** A node holds `&'a WaitQueue` for
//!    the queue it is in (`Waiter<'a>` is invariant in `'a`), so the borrow checker
//!    keeps the queue alive and in place for as long as the node may be linked.
//!    [`AnyOf`] members are the one exception, linked into queues borrowed from the
//!    holders the set owns ([`HoldsQueue`]): the set keeps each holder in place, and
//!    unlinks its member before it drops the holder or gives it back.
//! 4. **One thread, no re-entrance.** Queues and nodes are neither `Send` nor `Sync`,
//!    and a queue's links change only inside its own methods, which run no user code
//!    while the links are inconsistent.
//! 5. **A task node's task is alive.** It holds a [`TaskRef`] to the task of the
//!    greenlet whose frame made it, which that greenlet's body (or context) keeps
//!    alive for longer than any of its frames. Its wait is still in progress exactly
//!    while the task is `Blocked`: a task blocks only inside the call that linked the
//!    node, and the node leaves before that call returns.
//! 6. **A slot belongs to its node's frame.** A node made by `SlotQueue<T>::wait` points
//!    at a `Cell<Option<T>>` that the same call borrows for longer than the node lives,
//!    and only `SlotQueue<T>::serve` of that queue (so of that `T`) reads it, while
//!    the node is linked and its waiter parked.
//! 7. **A member node's set is alive.** An [`AnyOf`] member points at the set's shared
//!    part, boxed, which the set drops after its members (field order).

use std::panic::{self, Location};
use std::rc::Rc;
use std::time::Instant;

use greenweave_greenlet::GreenletExit;

use crate::hub::{self, Here, Hub, Leaving};
use crate::task::{Describe, Interrupt, Task, TaskRef, Wake};
use crate::timeout::TimeoutFired;

mod any;
mod queue;
mod slot;

pub(crate) use any::{AnyOf, HoldsQueue};
pub(crate) use queue::WaitQueue;
use queue::Waiter;
pub(crate) use slot::SlotQueue;

/// The right to wake one particular wait of one task, owned (for timers and other
/// wakers that keep it past the waiting call's frame).
#[derive(Clone)]
pub(crate) struct WaitToken {
    task: Rc<Task>,
    generation: u64,
}

impl WaitToken {
    /// A token for the wait `task` is about to start (or is in).
    #[inline]
    fn of(task: &Rc<Task>) -> WaitToken {
        WaitToken {
            task: Rc::clone(task),
            generation: task.generation(),
        }
    }

    pub(crate) fn task(&self) -> &Rc<Task> {
        &self.task
    }

    /// Whether the wait this token belongs to is still in progress.
    #[cfg(test)]
    pub(crate) fn is_live(&self) -> bool {
        self.task.is_in_wait(self.generation)
    }

    /// Ends the wait with `why` and puts the task on the run queue. Returns `false`
    /// (and does nothing) if the token is stale.
    pub(crate) fn wake(&self, why: Wake) -> bool {
        self.task.wake_wait(self.generation, why)
    }
}

/// Parks the current greenlet until a token handed to `register` is woken, the
/// `deadline` passes, or an interrupt arrives. `on` describes the wait for deadlock
/// reports and `greenlets()`.
///
/// An interrupt already pending is returned at once, without parking. A returned
/// interrupt has been taken: it is delivered, and pending no more (see [`put_back`]).
#[inline(always)]
#[track_caller]
pub(crate) fn park(
    on: &dyn Describe,
    deadline: Option<Instant>,
    register: impl FnOnce(WaitToken),
) -> Result<Wake, Interrupt> {
    // No closures: LLVM may outline one, and a frame between the blocking call and
    // its switch costs a mispredicted return on every resume (see `hub::get`).
    let here = Here::new();
    let (hub, task) = about_to_park(&here)?;
    register(WaitToken::of(&task));
    let why = wait_here(hub, &task, on, deadline);
    ended(&task, why)
}

/// The hub and the current task, for a blocking call about to park; or the interrupt
/// already pending, taken, which the call returns instead of parking.
#[inline(always)]
#[track_caller]
pub(crate) fn about_to_park(here: &Here) -> Result<(&Hub, TaskRef<'_>), Interrupt> {
    let hub = hub::get(here);
    let task = hub.current_task_borrowed();
    match task.take_interrupt() {
        Some(interrupt) => Err(interrupt),
        None => Ok((hub, task)),
    }
}

/// What a blocking call returns for a wait that ended with `why`: an interrupt that
/// arrived meanwhile, taken, or `why`.
#[inline(always)]
pub(crate) fn ended(task: &Task, why: Wake) -> Result<Wake, Interrupt> {
    match task.take_interrupt() {
        Some(interrupt) => Err(interrupt),
        None => Ok(why),
    }
}

/// The wait itself, once the waker can find the task: parks until woken or the
/// deadline passes and says how it ended, whatever interrupt may be pending before or
/// after (the callers decide what to make of those).
#[inline(always)]
#[track_caller]
fn wait_here(hub: &Hub, task: &TaskRef<'_>, on: &dyn Describe, deadline: Option<Instant>) -> Wake {
    let timer = deadline.map(|at| {
        hub.timers
            .borrow_mut()
            .insert(at, crate::timer::Action::Wake(WaitToken::of(task)))
    });
    hub.stats.count_park(on.kind());
    let shows = task.show_waiting_on(&on);
    task.parked_at.set(Location::caller());
    task.parked_clock.set(hub.stats.clock());
    task.block();
    hub.switch_away(Leaving::Parked);
    drop(shows);
    let why = task.resume();
    if let Some(key) = timer {
        if why != Wake::TimedOut {
            hub.timers.borrow_mut().cancel(key);
        }
    }
    why
}

/// Parks like [`park`], but an interrupt neither stops the wait from starting nor is
/// returned: a kill or an expired `Timeout` that arrives meanwhile ends the wait early
/// (`Wake::Interrupted`, which the caller treats as a spurious wake-up) and stays
/// pending for the greenlet's next interruptible blocking call. For waits whose
/// callers cannot take an error (a futex wait inside std's `Mutex::lock`, which would
/// retry at once, for ever). A deadlock report addressed to this task comes back as
/// `Err(report)`.
#[track_caller]
pub(crate) fn park_shielded(
    on: &dyn Describe,
    deadline: Option<Instant>,
    register: impl FnOnce(WaitToken),
) -> Result<Wake, String> {
    let here = Here::new();
    let hub = hub::get(&here);
    let task = hub.current_task_borrowed();
    register(WaitToken::of(&task));
    let why = wait_here(hub, &task, on, deadline);
    if why == Wake::Interrupted {
        if let Some(report) = task.take_deadlock() {
            return Err(report);
        }
    }
    Ok(why)
}

/// Makes an interrupt that [`park`] returned, but which the caller does not deliver (it
/// has a result to return instead), pending again for the current greenlet's next
/// blocking point.
pub(crate) fn put_back(interrupt: Interrupt) {
    let here = Here::new();
    hub::get(&here).current_task_borrowed().put_back(interrupt);
}

/// Turns an interrupt into the unwind Rust-level blocking calls use.
pub(crate) fn raise(interrupt: Interrupt) -> ! {
    match interrupt {
        Interrupt::Killed => panic::resume_unwind(Box::new(GreenletExit)),
        Interrupt::TimedOut(id) => panic::resume_unwind(Box::new(TimeoutFired { id })),
        Interrupt::Deadlock(report) => panic!("{report}"),
    }
}

/// [`park`], unwinding on interrupts.
#[inline(always)]
#[track_caller]
pub(crate) fn park_or_raise(
    on: &dyn Describe,
    deadline: Option<Instant>,
    register: impl FnOnce(WaitToken),
) -> Wake {
    park(on, deadline, register).unwrap_or_else(|i| raise(i))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_token_is_stale_once_its_wait_ended() {
        let slot: Rc<RefCell<Option<WaitToken>>> = Rc::default();
        let s = slot.clone();
        let waker = crate::spawn(move || {
            let token = s.borrow().clone().unwrap();
            assert!(token.wake(Wake::Notified), "the first wake ends the wait");
            assert!(
                !token.wake(Wake::Notified),
                "a second wake of the same wait is ignored"
            );
        });
        let why = park(&"test wait", None, |t| *slot.borrow_mut() = Some(t)).unwrap();
        assert_eq!(why, Wake::Notified);
        waker.join().unwrap();
        let token = slot.borrow().clone().unwrap();
        assert!(!token.is_live());
        assert!(
            !token.wake(Wake::Notified),
            "waking an ended wait does nothing"
        );
    }

    #[test]
    fn the_timer_of_a_wait_ended_early_does_not_end_a_later_wait() {
        if std::env::var_os("RUNNING_UNDER_VALGRIND").is_some() {
            // The first wait's 30 ms must not pass before a greenlet spawned for it
            // runs, which Valgrind's slowdown (.ci/valgrind) does not guarantee.
            return;
        }
        let slot: Rc<RefCell<Option<WaitToken>>> = Rc::default();
        let s = slot.clone();
        let waker = crate::spawn(move || {
            s.borrow().clone().unwrap().wake(Wake::Notified);
        });
        // First wait: deadline in 30 ms, but notified at once.
        let deadline = Instant::now() + Duration::from_millis(30);
        assert_eq!(
            park(&"first", Some(deadline), |t| *slot.borrow_mut() = Some(t)),
            Ok(Wake::Notified)
        );
        waker.join().unwrap();
        // Second wait with a later deadline: the first wait's timer must not end it.
        let start = Instant::now();
        let second = start + Duration::from_millis(80);
        assert_eq!(park(&"second", Some(second), |_| {}), Ok(Wake::TimedOut));
        assert!(
            start.elapsed() >= Duration::from_millis(80),
            "woken early after {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_timed_out_waiter_leaves_the_queue_and_a_notification_is_not_lost_to_it() {
        let queue = Rc::new(WaitQueue::new());
        let q = queue.clone();
        let impatient = crate::spawn(move || {
            q.wait(
                &"impatient",
                Some(Instant::now() + Duration::from_millis(5)),
            )
        });
        let q = queue.clone();
        let patient = crate::spawn(move || q.wait(&"patient", None));
        crate::yield_now();
        assert_eq!(queue.len(), 2);
        assert_eq!(impatient.join().unwrap(), Ok(Wake::TimedOut));
        assert_eq!(queue.len(), 1, "the timed-out waiter removed itself");
        assert!(queue.notify_one());
        assert_eq!(patient.join().unwrap(), Ok(Wake::Notified));
        assert!(queue.is_empty());
    }
}
