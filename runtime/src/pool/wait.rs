//! Waiting on a pool: for a free slot, for it to empty, for its members to die.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Pool, Waiting};
use crate::hub;
use crate::task::Interrupt;
use crate::task::Task;
use crate::time::deadline_after;

impl Pool {
    /// Waits until a slot is free (at once if one is), giving up after `timeout`
    /// (`None`: no limit). Returns whether a slot is free. Nothing is reserved: a
    /// `spawn` right after it does not block unless someone else took the slot.
    ///
    /// ```
    /// use std::time::Duration;
    /// use greenweave_runtime::{pool::Pool, sleep};
    /// let pool = Pool::new(1);
    /// pool.spawn(|| sleep(Duration::from_millis(30)));
    /// assert!(!pool.wait_available(Some(Duration::from_millis(5))));
    /// assert!(pool.wait_available(None));
    /// ```
    #[track_caller]
    pub fn wait_available(&self, timeout: Option<Duration>) -> bool {
        let available = self.wait_for_slot(timeout.and_then(deadline_after));
        self.inner.pass_on_slot();
        available
    }

    /// Waits until a slot is free or `deadline` passes; returns whether one is free.
    #[track_caller]
    pub(super) fn wait_for_slot(&self, deadline: Option<Instant>) -> bool {
        while self.is_full() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.inner
                .slot_freed
                .wait_or_raise(&Waiting::Slot(&self.inner), deadline);
        }
        true
    }

    /// Waits until every member has finished (gevent's `join`), including members
    /// spawned meanwhile.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let pool = greenweave_runtime::pool::Pool::new(2);
    /// let done = Rc::new(Cell::new(0));
    /// for _ in 0..5 {
    ///     let done = done.clone();
    ///     pool.spawn(move || done.set(done.get() + 1));
    /// }
    /// pool.join();
    /// assert_eq!(done.get(), 5);
    /// ```
    #[track_caller]
    pub fn join(&self) {
        self.join_until(None);
    }

    /// Like [`join`](Self::join), giving up after `timeout`; returns whether the pool
    /// is empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = greenweave_runtime::pool::Pool::new(2);
    /// pool.spawn(|| greenweave_runtime::sleep(Duration::from_millis(30)));
    /// assert!(!pool.join_timeout(Duration::from_millis(5)));
    /// assert!(pool.join_timeout(Duration::from_secs(5)));
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(deadline_after(timeout))
    }

    #[track_caller]
    fn join_until(&self, deadline: Option<Instant>) -> bool {
        if !self.is_empty() {
            self.assert_not_member("join");
        }
        while !self.is_empty() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.inner
                .member_exited
                .wait_or_raise(&Waiting::Exit(&self.inner), deadline);
        }
        true
    }

    /// Kills every member and waits until the pool is empty (gevent's `kill`); members
    /// spawned meanwhile are killed too. Members unwind from their blocking point with
    /// `GreenletExit`; ones that have not started never run. Their handles report
    /// [`JoinError::Killed`](crate::JoinError::Killed).
    ///
    /// ```
    /// use std::time::Duration;
    /// use greenweave_runtime::{pool::Pool, sleep, JoinError};
    /// let pool = Pool::new(3);
    /// let h = pool.spawn(|| sleep(Duration::from_secs(60)));
    /// pool.kill();
    /// assert!(pool.is_empty());
    /// assert!(matches!(h.join(), Err(JoinError::Killed)));
    /// ```
    #[track_caller]
    pub fn kill(&self) {
        self.assert_not_member("kill");
        while !self.is_empty() {
            let started: Vec<Rc<Task>> = {
                let mut members = self.inner.members.borrow_mut();
                members
                    .values_mut()
                    .filter_map(|m| {
                        let first_kill = !std::mem::replace(&mut m.killed, true);
                        m.task.clone().filter(|_| first_kill)
                    })
                    .collect()
            };
            for task in &started {
                task.interrupt(Interrupt::Killed);
            }
            self.inner
                .member_exited
                .wait_or_raise(&Waiting::Exit(&self.inner), None);
        }
    }

    #[track_caller]
    pub(super) fn assert_not_member(&self, what: &str) {
        assert!(
            !self.is_member(&hub::current_task()),
            "greenweave: a member of a pool cannot {what} its own pool: it would wait for itself"
        );
    }
}
