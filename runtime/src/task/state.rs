//! Where a task's state changes: the named transitions below are the only writers of
//! a [`Task`]'s run state (`state`), its wait (`generation`, `woken_by`,
//! `signal_wait`), its registry `key` and its `result`. What is pending to interrupt
//! it has its own writers in [`interrupts`](super::interrupts), reached from outside
//! only through [`Task::interrupt`] (post) and the blocking calls' take and put back.
//!
//! ```text
//!   new / reuse ──▶ Ready ──start_running──▶ Running ──finish──▶ Done ──reuse──▶ Ready
//!   (a fork's child: any state ──left_behind──▶ Done)
//!                    ▲  ▲                     │    │
//!                    │  └──────requeue────────┘    block
//!                    │                             ▼
//!                    └──────────wake────────── Blocked
//! ```
//!
//! A wait is one stay in `Blocked`: [`block`](Task::block) starts it,
//! [`wake`](Task::wake) ends it (notified, timed out, interrupted or by a signal) and
//! begins a new `generation`, so a wake-up meant for an earlier wait
//! ([`wake_wait`](Task::wake_wait) with its generation) does nothing. The task itself
//! comes back through [`resume`](Task::resume), which says why its wait ended.

use std::panic::Location;
use std::rc::Rc;

use greenweave_greenlet::Greenlet;

use super::{Interrupt, Task, TaskResult, TaskState, Wake};
use crate::hub::{self, Here, Hub};
use crate::signals::SignalWait;

impl Task {
    /// What it is doing now.
    #[inline(always)]
    pub(crate) fn state(&self) -> TaskState {
        self.state.get()
    }

    /// Ready → Running: the hub, or a direct switch, takes it off the run queue.
    #[inline(always)]
    pub(crate) fn start_running(&self) {
        self.state.set(TaskState::Running);
    }

    /// Running → Ready: it queues itself again to let the others run (a yield).
    #[inline(always)]
    pub(crate) fn requeue(self: &Rc<Task>, hub: &Hub) {
        self.state.set(TaskState::Ready);
        hub.schedule(Rc::clone(self));
    }

    /// Running → Blocked: a park call starts a wait, and switches away next.
    #[inline(always)]
    pub(crate) fn block(&self) {
        self.state.set(TaskState::Blocked);
    }

    /// Back in its own greenlet after switching away (from a wait or a yield): Running
    /// again, and why its last wait ended.
    #[inline(always)]
    pub(crate) fn resume(&self) -> Wake {
        self.state.set(TaskState::Running);
        self.woken_by.get()
    }

    /// Blocked → Ready: ends its current wait with `why` and puts it on the run queue.
    #[inline]
    pub(crate) fn wake(self: &Rc<Task>, why: Wake) {
        self.generation.set(self.generation.get() + 1);
        self.woken_by.set(why);
        self.state.set(TaskState::Ready);
        hub::get(&Here::new()).schedule(Rc::clone(self));
    }

    /// The wait it is in or about to start, for a waker that keeps it (see
    /// [`wake_wait`](Self::wake_wait)).
    #[inline(always)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Whether the wait numbered `generation` is still in progress.
    #[inline]
    pub(crate) fn is_in_wait(&self, generation: u64) -> bool {
        self.generation.get() == generation && self.state.get() == TaskState::Blocked
    }

    /// [`wake`](Self::wake)s it if the wait numbered `generation` is still in
    /// progress; returns whether it did.
    #[inline]
    pub(crate) fn wake_wait(self: &Rc<Task>, generation: u64, why: Wake) -> bool {
        let live = self.is_in_wait(generation);
        if live {
            self.wake(why);
        }
        live
    }

    /// Posts `interrupt`, delivered once at its current or next blocking point, and
    /// wakes it if it is blocked; nothing happens if it has finished. The one way to
    /// interrupt another task (a kill, an expired `Timeout`, the deadlock report).
    pub(crate) fn interrupt(self: &Rc<Task>, interrupt: Interrupt) {
        match self.state.get() {
            TaskState::Done => {}
            TaskState::Blocked => {
                self.post(interrupt);
                self.wake(Wake::Interrupted);
            }
            TaskState::Ready | TaskState::Running => self.post(interrupt),
        }
    }

    /// Running → Done: its function came to `result`, for its `JoinHandle` to take.
    #[inline]
    pub(crate) fn finish(&self, result: TaskResult) {
        *self.result.borrow_mut() = Some(result);
        self.state.set(TaskState::Done);
    }

    /// → Done without finishing: a fork left it behind in the child, where its stack
    /// is never touched again. Its wait generation moves on, so every token for it is
    /// stale (and only blocked or ready tasks are ever woken); it has no result, which
    /// its `JoinHandle` reads as killed.
    pub(crate) fn left_behind(&self) {
        self.generation.set(self.generation.get() + 1);
        self.state.set(TaskState::Done);
    }

    /// Takes what its function came to (once it is [`Done`](TaskState::Done)).
    #[inline]
    pub(crate) fn take_result(&self) -> Option<TaskResult> {
        self.result.borrow_mut().take()
    }

    /// Which signal handlers end its current wait (see `signals`).
    #[inline]
    pub(crate) fn signal_wait(&self) -> SignalWait {
        self.signal_wait.get()
    }

    /// Makes its waits end when the handlers `wait` names run, until set back to
    /// `SignalWait::default()` (see `signals::Interruptible`).
    pub(crate) fn set_signal_wait(&self, wait: SignalWait) {
        self.signal_wait.set(wait);
    }

    /// Its key in the hub's registry, `usize::MAX` when it is not registered.
    #[inline(always)]
    pub(crate) fn key(&self) -> usize {
        self.key.get()
    }

    /// The hub registered it under `key`.
    #[inline(always)]
    pub(crate) fn registered(&self, key: usize) {
        self.key.set(key);
    }

    /// The hub unregistered it: takes its key, if it had one.
    #[inline(always)]
    pub(crate) fn unregistered(&self) -> Option<usize> {
        Some(self.key.replace(usize::MAX)).filter(|&key| key != usize::MAX)
    }

    /// Done → Ready: makes this finished, joined record the record of a new task, as
    /// `*self = Task::new(greenlet, location)` would, without dropping the parts a
    /// finished, joined task leaves empty (its joiners were all woken, its rare parts
    /// and its result taken): those are only checked. Every field is named below, so a
    /// new field cannot be forgotten here.
    pub(crate) fn reuse(
        &mut self,
        greenlet: Greenlet,
        location: Option<&'static Location<'static>>,
    ) {
        let Task {
            greenlet: old_greenlet,
            name,
            location: old_location,
            state,
            generation,
            woken_by,
            waiting_on,
            parked_at: _,
            parked_clock: _,
            signal_wait,
            kill_requested,
            interrupted,
            joiners,
            key,
            rare,
            result,
        } = self;
        if !joiners.is_empty() || rare.get_mut().is_some() || result.get_mut().is_some() {
            *self = Task::new(greenlet, location);
            return;
        }
        *name = greenlet.name();
        *old_greenlet = greenlet;
        *old_location = location;
        state.set(TaskState::Ready);
        // The generation goes on counting instead of restarting, so no token of the old
        // task's waits could ever match a new wait (none can be left: the record was
        // unshared when it was kept).
        generation.set(generation.get() + 1);
        woken_by.set(Wake::Notified);
        waiting_on.set(None);
        signal_wait.set(SignalWait::default());
        kill_requested.set(false);
        interrupted.set(false);
        key.set(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use greenweave_greenlet::Greenlet;

    use super::*;
    use crate::task::Describe;

    /// What `Task::new` sets and `Task::reuse` resets, for comparison.
    type Fresh = (
        TaskState,
        Wake,
        bool,
        bool,
        bool,
        usize,
        Option<Rc<str>>,
        Option<&'static Location<'static>>,
        u64,
        SignalWait,
    );

    fn fresh_parts(task: &Task) -> Fresh {
        (
            task.state.get(),
            task.woken_by.get(),
            task.waiting_on.get().is_none(),
            task.kill_requested.get(),
            task.interrupted.get(),
            task.key.get(),
            task.name.clone(),
            task.location,
            task.id(),
            task.signal_wait.get(),
        )
    }

    #[test]
    fn a_reused_record_starts_out_as_a_new_one_does() {
        static WAITED_ON: &str = "something";
        let old_at = Location::caller();
        let mut record = Task::new(Greenlet::builder().name("old").build(|_| ()), None);
        // Everything a finished task can leave behind in the parts `reuse` resets.
        record.state.set(TaskState::Done);
        record.woken_by.set(Wake::TimedOut);
        let on: &dyn Describe = &WAITED_ON;
        std::mem::forget(record.show_waiting_on(&on));
        record.kill_requested.set(true);
        record.interrupted.set(true);
        record.key.set(7);
        record.generation.set(5);
        record
            .signal_wait
            .set(SignalWait::marked(crate::coop::Eintr::Always));

        let g = Greenlet::builder().name("new").build(|_| ());
        let new = Task::new(g.clone(), Some(old_at));
        record.reuse(g, Some(old_at));
        assert_eq!(fresh_parts(&record), fresh_parts(&new));
        assert!(
            record.generation.get() > 5,
            "the generation goes on counting"
        );
    }

    #[test]
    fn an_interrupt_reaches_a_live_task_once_and_a_finished_one_not_at_all() {
        let task = Rc::new(Task::new(Greenlet::builder().build(|_| ()), None));
        // Ready (spawned, not yet run): posted, nothing to wake.
        task.interrupt(Interrupt::Killed);
        task.interrupt(Interrupt::Killed);
        assert_eq!(task.state(), TaskState::Ready);
        assert_eq!(task.take_interrupt(), Some(Interrupt::Killed));
        assert_eq!(
            task.take_interrupt(),
            None,
            "two kills before delivery are one"
        );

        task.finish(smallbox::smallbox!(()));
        assert_eq!(task.state(), TaskState::Done);
        task.interrupt(Interrupt::Killed);
        task.interrupt(Interrupt::TimedOut(3));
        assert!(!task.kill_posted());
        assert_eq!(task.take_interrupt(), None, "a finished task takes none");
        assert!(task.rare_if_made().is_none(), "and keeps nothing for it");
    }
}
