//! Interrupts: a kill, an expired `Timeout` or the hub's deadlock report, *posted* to a
//! task and *delivered* once, when a blocking call takes it (to unwind, or to give a
//! hook's errno). A greenlet that survives one goes on running normally, as in gevent;
//! a second kill is posted and delivered again. The transitions here are the only
//! writers of that state (`kill_requested`, `interrupted`, the `Rare` parts
//! `fired_timeouts` and `deadlock`); another task posts one through
//! [`Task::interrupt`] (in [`state`](super::state)), which also wakes it.

use super::Task;

/// Why a blocking call was interrupted instead of completing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// The greenlet was killed: unwind with `GreenletExit`.
    Killed,
    /// The `Timeout` with this id expired.
    TimedOut(u64),
    /// Nothing could ever wake this greenlet; the report says why.
    Deadlock(String),
}

impl Task {
    /// Makes `interrupt` pending, for the task's current or next blocking point to
    /// take. Kills posted before the delivery are one kill. Reached through
    /// [`Task::interrupt`], which also wakes a blocked task, and [`put_back`](Self::put_back).
    pub(super) fn post(&self, interrupt: Interrupt) {
        match interrupt {
            Interrupt::Killed => self.kill_requested.set(true),
            Interrupt::TimedOut(id) => self.rare().fired_timeouts.push(id),
            Interrupt::Deadlock(report) => self.rare().deadlock = Some(report),
        }
        self.interrupted.set(true);
    }

    /// Whether a kill is posted and not yet delivered.
    pub(crate) fn kill_posted(&self) -> bool {
        self.kill_requested.get()
    }

    /// Forgets `Timeout` `id`'s expiry if it was not delivered (the guard was dropped).
    pub(crate) fn cancel_timeout(&self, id: u64) {
        if let Some(mut rare) = self.rare_if_made() {
            rare.fired_timeouts.retain(|&fired| fired != id);
        }
    }

    /// Takes the deadlock report, if one was posted: the one interrupt a shielded wait
    /// delivers.
    pub(crate) fn take_deadlock(&self) -> Option<String> {
        self.rare_if_made()
            .and_then(|mut rare| rare.deadlock.take())
    }

    /// Takes the interrupt to deliver at this blocking point, if any: once taken, it is
    /// no longer pending. A deadlock report comes first, then a kill, then expired
    /// timeouts, the outermost (oldest) first.
    #[inline]
    pub(crate) fn take_interrupt(&self) -> Option<Interrupt> {
        if !self.interrupted.get() {
            return None;
        }
        self.take_posted()
    }

    fn take_posted(&self) -> Option<Interrupt> {
        let found = self.find_and_take();
        if found.is_none() {
            self.interrupted.set(false);
        }
        // Otherwise `interrupted` stays set: something else may still be pending, and
        // the next check finds out.
        found
    }

    fn find_and_take(&self) -> Option<Interrupt> {
        if let Some(report) = self.take_deadlock() {
            return Some(Interrupt::Deadlock(report));
        }
        if self.kill_requested.replace(false) {
            return Some(Interrupt::Killed);
        }
        let mut rare = self.rare_if_made()?;
        let (at, &id) = rare
            .fired_timeouts
            .iter()
            .enumerate()
            .min_by_key(|&(_, id)| *id)?;
        rare.fired_timeouts.swap_remove(at);
        Some(Interrupt::TimedOut(id))
    }

    /// Makes an interrupt taken by a blocking call that did not deliver it (it had
    /// something better to return: an item handed over, partial progress) pending
    /// again, for the next blocking point.
    pub(crate) fn put_back(&self, interrupt: Interrupt) {
        self.post(interrupt);
    }
}

#[cfg(test)]
mod tests {
    use greenweave_greenlet::Greenlet;

    use super::*;

    #[test]
    fn each_posted_interrupt_is_taken_once_deadlock_then_kill_then_oldest_timeout() {
        let task = Task::new(Greenlet::builder().build(|_| ()), None);
        assert_eq!(task.take_interrupt(), None);
        task.post(Interrupt::TimedOut(9));
        task.post(Interrupt::TimedOut(4));
        task.post(Interrupt::Killed);
        task.post(Interrupt::Killed); // two kills before a delivery are one
        task.post(Interrupt::Deadlock("report".into()));
        assert_eq!(
            task.take_interrupt(),
            Some(Interrupt::Deadlock("report".into()))
        );
        assert_eq!(task.take_interrupt(), Some(Interrupt::Killed));
        assert!(!task.kill_posted());
        task.put_back(Interrupt::Killed);
        assert_eq!(task.take_interrupt(), Some(Interrupt::Killed));
        assert_eq!(task.take_interrupt(), Some(Interrupt::TimedOut(4)));
        task.cancel_timeout(9); // its guard was dropped before it was delivered
        assert_eq!(task.take_interrupt(), None);
        assert!(!task.interrupted.get(), "the fast path is back");
        task.post(Interrupt::TimedOut(5));
        assert_eq!(task.take_interrupt(), Some(Interrupt::TimedOut(5)));
        assert_eq!(task.take_interrupt(), None);
    }
}
