//! Becoming a member: `spawn`, `try_spawn`, `apply`, and the slot a member holds.

use std::fmt;
use std::panic;
use std::rc::Rc;

use greenweave_greenlet::GreenletExit;

use super::map::KillOnDrop;
use super::{Inner, Member, Pool};
use crate::hub;
use crate::spawn::JoinHandle;
use crate::task::Task;

/// The error of [`Pool::try_spawn`]: the pool was full. It gives the closure back.
///
/// ```
/// use greenweave_runtime::pool::Pool;
/// let pool = Pool::new(1);
/// let _busy = pool.spawn(|| greenweave_runtime::sleep(std::time::Duration::from_millis(10)));
/// let job = pool.try_spawn(|| 42).unwrap_err().into_inner();
/// assert_eq!(job(), 42);
/// ```
pub struct Full<F>(pub F);

impl<F> Full<F> {
    /// The closure that could not be spawned.
    ///
    /// ```
    /// use greenweave_runtime::pool::Full;
    /// let f = Full(|| "unspawned").into_inner();
    /// assert_eq!(f(), "unspawned");
    /// ```
    pub fn into_inner(self) -> F {
        self.0
    }
}

impl<F> fmt::Debug for Full<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<F> fmt::Display for Full<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the pool is full")
    }
}

impl<F> std::error::Error for Full<F> {}

/// Owned by a member's closure: registers the member while it runs and frees the
/// slot when dropped (the closure returned, unwound, or was dropped unrun).
struct Slot {
    pool: Rc<Inner>,
    id: u64,
}

impl Slot {
    /// Called first thing in the member's greenlet.
    fn started(&self) {
        let task = hub::current_task();
        let killed = {
            let mut members = self.pool.members.borrow_mut();
            let member = members
                .get_mut(&self.id)
                .expect("a running member is listed");
            member.task = Some(task);
            member.killed
        };
        if killed {
            // Killed by `Pool::kill` before it started: it never runs.
            panic::resume_unwind(Box::new(GreenletExit));
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.members.borrow_mut().remove(&self.id);
        self.pool.slot_freed.notify_one();
        self.pool.member_exited.notify_all();
    }
}

impl Pool {
    /// Spawns `f` as a member, first blocking the calling greenlet until a slot is
    /// free (gevent's `Pool.spawn`). The member starts when the caller next blocks or
    /// yields; its [`JoinHandle`] works as for [`spawn`](crate::spawn).
    ///
    /// ```
    /// use greenweave_runtime::pool::Pool;
    /// let pool = Pool::new(2);
    /// let handles: Vec<_> = (0..5).map(|i| pool.spawn(move || i * 10)).collect();
    /// let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    /// assert_eq!(total, 100);
    /// ```
    ///
    /// # Panics
    ///
    /// Unwinds if the caller is killed or times out while waiting for a slot; panics
    /// with the deadlock report if no slot can ever free up (e.g. a member of a full
    /// pool spawning into it), or if no stack can be allocated.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.wait_for_slot(None);
        self.spawn_member(f)
    }

    /// [`spawn`](Self::spawn) under gevent's and multiprocessing's other name: starts
    /// `f` in the pool (blocking while it is full) without waiting for its value.
    ///
    /// ```
    /// let pool = greenweave_runtime::pool::Pool::new(4);
    /// let jobs: Vec<_> = (0..5).map(|i| pool.apply_async(move || i * i)).collect();
    /// pool.join();
    /// assert!(jobs.iter().all(|h| h.is_finished()));
    /// ```
    #[track_caller]
    pub fn apply_async<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn(f)
    }

    /// Spawns `f` if a slot is free, without blocking.
    ///
    /// ```
    /// use greenweave_runtime::pool::Pool;
    /// let pool = Pool::new(1);
    /// assert!(pool.try_spawn(|| 1).is_ok());
    /// assert!(pool.try_spawn(|| 2).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Full`], holding `f`, when the pool is full.
    #[track_caller]
    pub fn try_spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, Full<F>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        if self.is_full() {
            return Err(Full(f));
        }
        Ok(self.spawn_member(f))
    }

    /// Spawns a member; the caller has checked that a slot is free.
    #[track_caller]
    pub(super) fn spawn_member<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let id = self.inner.next_member.get();
        self.inner.next_member.set(id + 1);
        self.inner
            .members
            .borrow_mut()
            .insert(id, Member::default());
        let slot = Slot {
            pool: self.inner.clone(),
            id,
        };
        // If spawning fails, the closure and with it the slot are dropped: freed.
        let handle = crate::spawn(move || {
            slot.started();
            let value = f();
            drop(slot);
            value
        });
        self.inner.pass_on_slot();
        handle
    }

    /// Runs `f` in the pool and returns its value (gevent's `apply`): waits for a slot,
    /// then for the job. Called from a member of this pool, it runs `f` right away in
    /// the caller, as gevent does (waiting for a slot of its own pool could deadlock).
    ///
    /// ```
    /// let pool = greenweave_runtime::pool::Pool::new(2);
    /// assert_eq!(pool.apply(|| 6 * 7), 42);
    /// ```
    ///
    /// # Panics
    ///
    /// Resumes the job's panic (same payload) in the caller; panics if the job was
    /// killed (e.g. by [`kill`](Self::kill)). If the caller unwinds while waiting (it is
    /// killed or times out), the job is killed.
    #[track_caller]
    pub fn apply<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        if self.is_member(&hub::current_task()) {
            return f();
        }
        KillOnDrop::new(self.spawn(f)).join()
    }

    pub(super) fn is_member(&self, task: &Rc<Task>) -> bool {
        let members = self.inner.members.borrow();
        members
            .values()
            .any(|m| m.task.as_ref().is_some_and(|t| Rc::ptr_eq(t, task)))
    }
}
