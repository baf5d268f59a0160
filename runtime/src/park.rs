//! The one waiting mechanism every blocking primitive uses.
//!
//! A blocking call *parks* the current greenlet: it leaves a [`WaitToken`] where the
//! waker will find it (a [`WaitQueue`], a timer, an fd waiter), switches to the hub and,
//! once woken, re-checks its condition. A token carries the task's wait *generation*;
//! every wake-up bumps the generation, so a late timer, a second notification or a
//! readiness event for a wait that already ended finds a stale token and does nothing.
//!
//! Interrupts (kill, an expired `Timeout`, a deadlock report) are delivered only at
//! these blocking points, and each is delivered **once**: `park` *takes* it and returns
//! `Err(Interrupt)`, and the Rust-level callers turn that into an unwind ([`raise`]).
//! Code that must not unwind (libc hooks) gets the `Err` and reports an errno instead.
//! Either way it is no longer pending: a greenlet that catches the unwind, or logs the
//! errno and goes on, blocks normally at its next call. A caller that took an
//! interrupt but returns something else instead (an item handed over meanwhile,
//! partial progress) gives it back with [`put_back`], so it is not lost.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{self, Location};
use std::rc::Rc;
use std::time::Instant;

use greenweave_greenlet::GreenletExit;

use crate::hub::{self, Hub};
use crate::task::{Describe, Interrupt, Task, TaskState, Wake};
use crate::timeout::TimeoutFired;

/// The right to wake one particular wait of one task.
#[derive(Clone)]
pub(crate) struct WaitToken {
    task: Rc<Task>,
    generation: u64,
}

impl WaitToken {
    pub(crate) fn task(&self) -> &Rc<Task> {
        &self.task
    }

    /// Whether the wait this token belongs to is still in progress.
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.task.generation.get() == self.generation && self.task.state.get() == TaskState::Blocked
    }

    /// Ends the wait with `why` and puts the task on the run queue. Returns `false`
    /// (and does nothing) if the token is stale.
    pub(crate) fn wake(&self, why: Wake) -> bool {
        if !self.is_live() {
            return false;
        }
        make_ready(&self.task, why);
        true
    }
}

/// Moves a blocked task to the run queue, ending its current wait.
#[inline]
pub(crate) fn make_ready(task: &Rc<Task>, why: Wake) {
    make_ready_owned(Rc::clone(task), why);
}

/// [`make_ready`] with a reference the caller gives up (a woken token's), which the
/// run queue takes over instead of making its own.
#[inline]
fn make_ready_owned(task: Rc<Task>, why: Wake) {
    task.generation.set(task.generation.get() + 1);
    task.woken_by.set(why);
    task.state.set(TaskState::Ready);
    hub::get().schedule(task);
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
    let hub = hub::get();
    let task = hub.current_task_borrowed();
    park_on(hub, &task, on, deadline, register)
}

#[inline(always)]
#[track_caller]
fn park_on(
    hub: &Hub,
    task: &Rc<Task>,
    on: &dyn Describe,
    deadline: Option<Instant>,
    register: impl FnOnce(WaitToken),
) -> Result<Wake, Interrupt> {
    if let Some(interrupt) = task.take_interrupt() {
        return Err(interrupt);
    }
    let why = wait_here(hub, task, on, deadline, register);
    match task.take_interrupt() {
        Some(interrupt) => Err(interrupt),
        None => Ok(why),
    }
}

/// The wait itself: registers, parks, and says how it ended, whatever interrupt may be
/// pending before or after (the callers decide what to make of those).
#[inline(always)]
#[track_caller]
fn wait_here(
    hub: &Hub,
    task: &Rc<Task>,
    on: &dyn Describe,
    deadline: Option<Instant>,
    register: impl FnOnce(WaitToken),
) -> Wake {
    let token = || WaitToken {
        task: task.clone(),
        generation: task.generation.get(),
    };
    register(token());
    let timer = deadline.map(|at| {
        hub.timers
            .borrow_mut()
            .insert(at, crate::timer::Action::Wake(token()))
    });
    hub.stats.count_park(on.kind());
    let on: *const (dyn Describe + '_) = on;
    // SAFETY: only the lifetime is erased. `on` is borrowed for this whole call; the
    // pointer is cleared by `ClearWaitingOn` before this call returns or unwinds, and it
    // is only read while the task is blocked, i.e. while this call is in progress.
    let on: *const (dyn Describe + 'static) = unsafe { std::mem::transmute(on) };
    task.waiting_on.set(Some(on));
    task.parked_at.set(Location::caller());
    task.parked_clock.set(hub.stats.clock());
    let clear = ClearWaitingOn(task);
    task.state.set(TaskState::Blocked);
    hub.switch_away(false);
    drop(clear);
    task.state.set(TaskState::Running);
    let why = task.woken_by.get();
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
    let hub = hub::get();
    let task = hub.current_task_borrowed();
    let why = wait_here(hub, &task, on, deadline, register);
    if why == Wake::Interrupted {
        if let Some(report) = task.take_deadlock() {
            return Err(report);
        }
    }
    Ok(why)
}

/// Clears a task's `waiting_on` when the park call that set it ends, even by unwinding
/// (a greenlet force-unwound at thread exit), so the pointer never outlives its target.
struct ClearWaitingOn<'a>(&'a Task);

impl Drop for ClearWaitingOn<'_> {
    fn drop(&mut self) {
        self.0.waiting_on.set(None);
    }
}

/// Makes an interrupt that [`park`] returned, but which the caller does not deliver (it
/// has a result to return instead), pending again for the current greenlet's next
/// blocking point.
pub(crate) fn put_back(interrupt: Interrupt) {
    hub::get().current_task_borrowed().put_back(interrupt);
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

/// A FIFO of parked greenlets: what every blocking primitive waits in.
///
/// Waiters are woken in the order they arrived. A woken waiter re-checks its
/// condition; one that arrives meanwhile may get there first (no hand-off), which keeps
/// the common uncontended path free of bookkeeping.
pub(crate) struct WaitQueue {
    waiters: RefCell<Waiters>,
    /// Live entries (stale tokens are removed when their wait ends without a wake).
    len: Cell<usize>,
}

/// The oldest waiter inline, the others behind it: the common single waiter (a join,
/// a handoff between two greenlets) needs no buffer allocation.
struct Waiters {
    first: Option<WaitToken>,
    rest: VecDeque<WaitToken>,
}

impl Waiters {
    #[inline]
    fn push(&mut self, token: WaitToken) {
        if self.first.is_none() {
            self.first = Some(token);
        } else {
            self.rest.push_back(token);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<WaitToken> {
        let first = self.first.take()?;
        if !self.rest.is_empty() {
            self.first = self.rest.pop_front();
        }
        Some(first)
    }

    fn contains(&self, id: WaitId) -> bool {
        self.first.iter().chain(&self.rest).any(|t| t.id() == id)
    }

    fn remove(&mut self, id: WaitId) -> bool {
        if self.first.as_ref().is_some_and(|t| t.id() == id) {
            self.pop();
            return true;
        }
        match self.rest.iter().position(|t| t.id() == id) {
            Some(pos) => {
                self.rest.remove(pos);
                true
            }
            None => false,
        }
    }
}

/// Identifies one wait of one task without holding the task.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WaitId(*const Task, u64);

impl WaitToken {
    fn id(&self) -> WaitId {
        WaitId(Rc::as_ptr(&self.task), self.generation)
    }
}

impl WaitQueue {
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue {
            waiters: RefCell::new(Waiters {
                first: None,
                rest: VecDeque::new(),
            }),
            len: Cell::new(0),
        }
    }

    /// Parks until notified, the deadline passes, or an interrupt arrives. On
    /// anything but a notification the entry is removed; a notification consumed by a
    /// wait that is then interrupted is passed on to the next waiter, so none is lost.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait(
        &self,
        on: &dyn Describe,
        deadline: Option<Instant>,
    ) -> Result<Wake, Interrupt> {
        let mut mine: Option<WaitId> = None;
        let result = park(on, deadline, |token| {
            mine = Some(token.id());
            self.push(token);
        });
        let notified = matches!(result, Ok(Wake::Notified)) || self.was_notified(mine);
        if !notified {
            if let Some(id) = mine {
                self.remove_id(id);
            }
        } else if result.is_err() {
            self.notify_one();
        }
        result
    }

    /// Like [`wait`](Self::wait), unwinding on interrupts.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait_or_raise(&self, on: &dyn Describe, deadline: Option<Instant>) -> Wake {
        self.wait(on, deadline).unwrap_or_else(|i| raise(i))
    }

    /// Whether our token was taken off the queue by a notification (as opposed to
    /// still sitting in it after a timeout or interrupt).
    fn was_notified(&self, mine: Option<WaitId>) -> bool {
        mine.is_some_and(|id| !self.waiters.borrow().contains(id))
    }

    /// Adds a waiter without parking (for waits on several queues at once).
    #[inline]
    pub(crate) fn push(&self, token: WaitToken) {
        self.waiters.borrow_mut().push(token);
        self.len.set(self.len.get() + 1);
    }

    /// Takes the longest-waiting entry whose wait is still in progress, dropping stale
    /// ones on the way.
    #[inline]
    fn pop_live(&self) -> Option<WaitToken> {
        if self.len.get() == 0 {
            return None;
        }
        loop {
            let token = self.waiters.borrow_mut().pop()?;
            self.len.set(self.len.get() - 1);
            if token.is_live() {
                return Some(token);
            }
        }
    }

    /// Removes a waiter that is still queued.
    pub(crate) fn remove(&self, token: &WaitToken) {
        self.remove_id(token.id());
    }

    fn remove_id(&self, id: WaitId) {
        if self.waiters.borrow_mut().remove(id) {
            self.len.set(self.len.get() - 1);
        }
    }

    /// Wakes the longest-waiting greenlet; `false` if none was waiting.
    pub(crate) fn notify_one(&self) -> bool {
        match self.pop_live() {
            Some(token) => {
                make_ready_owned(token.task, Wake::Notified);
                true
            }
            None => false,
        }
    }

    /// Wakes every waiting greenlet; returns how many.
    #[inline]
    pub(crate) fn notify_all(&self) -> usize {
        let mut woken = 0;
        loop {
            let Some(token) = self.pop_live() else {
                return woken;
            };
            make_ready_owned(token.task, Wake::Notified);
            woken += 1;
        }
    }

    /// Forgets every waiter without waking or dropping it (in a forked child, greenlets
    /// left behind by the fork, kept for ever; see `fork`).
    pub(crate) fn forget_all(&self) {
        let waiters = std::mem::replace(
            &mut *self.waiters.borrow_mut(),
            Waiters {
                first: None,
                rest: VecDeque::new(),
            },
        );
        crate::kept::keep(waiters);
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

/// A [`WaitQueue`] whose waiters each leave a hand-off slot for a `T`, so that the one
/// who wakes a waiter can hand it a value, or take one from it, in the same step
/// (Go's direct send): a getter parked on an empty queue wakes up holding its item,
/// and a putter parked on a full one wakes up with its item already stored. Neither
/// re-checks the queue, and a value is never in flight between owners.
///
/// A waiter's slot lives in its own `wait` frame; its address waits in the task's
/// `wait_slot` (a task parks in one wait at a time, so this keeps queue entries at
/// two words). It is only used while the waiter's token is live (the waiter is parked
/// inside that very call), and `wait` takes its entry out of the queue before it
/// returns, or unwinds.
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
        let mut entry = LeaveQueue {
            queue: &self.queue,
            mine: None,
        };
        let result = park(on, deadline, |token| {
            entry.mine = Some(token.id());
            token.task.wait_slot.set(std::ptr::from_ref(slot).cast());
            self.queue.push(token);
        });
        if result == Ok(Wake::Notified) {
            // Served or woken by `wake_all`: both took the entry out.
            entry.mine = None;
        }
        result
    }

    /// Hands the longest-waiting live waiter's slot to `serve` and wakes it; `false`
    /// (and `serve` not called) if nobody waits.
    #[inline]
    pub(crate) fn serve(&self, serve: impl FnOnce(&Cell<Option<T>>)) -> bool {
        let Some(token) = self.queue.pop_live() else {
            return false;
        };
        let slot = token.task.wait_slot.get().cast::<Cell<Option<T>>>();
        // SAFETY: the token is live, so its task is parked inside the `SlotQueue::wait`
        // on this queue that pushed it (a wait's end bumps the generation), which set
        // `wait_slot` to a slot of its own frame, of this queue's `T`.
        serve(unsafe { &*slot });
        make_ready_owned(token.task, Wake::Notified);
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

/// Takes a slot waiter's entry out of its queue when its `wait` ends without having
/// been served, including by unwinding, so no slot address outlives its frame.
struct LeaveQueue<'a> {
    queue: &'a WaitQueue,
    mine: Option<WaitId>,
}

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.mine {
            self.queue.remove_id(id);
        }
    }
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
