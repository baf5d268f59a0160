//! Helpers shared by the `sync_*` test files.
#![allow(dead_code, unused_imports)]

pub use std::cell::{Cell, RefCell};
pub use std::panic::{self, AssertUnwindSafe};
pub use std::rc::Rc;
pub use std::time::{Duration, Instant};

pub use greenweave_runtime::sync::{
    AsyncResult, BoundedSemaphore, Condvar, Event, Mutex, RLock, Semaphore, SemaphoreGuard,
};
pub use greenweave_runtime::{
    Builder, Elapsed, JoinError, JoinHandle, greenlets, joinall, spawn, with_timeout, yield_now,
};

pub const SHORT: Duration = Duration::from_millis(20);
pub const LONG: Duration = Duration::from_secs(10);

/// Yields until `cond` holds (the other greenlets reach their blocking points).
pub fn settle(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        yield_now();
    }
    panic!("never happened: {what}");
}

/// Sets its flag when dropped: proves a killed greenlet's destructors ran.
pub struct DropFlag(pub Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

pub type Order = Rc<RefCell<Vec<usize>>>;

/// Spawns `n` greenlets running `body(i)`, each recording `i` once `body` returns.
pub fn spawn_recorders(
    n: usize,
    body: impl Fn(usize) + Clone + 'static,
) -> (Order, Vec<JoinHandle<()>>) {
    let order: Order = Rc::default();
    let handles = (0..n)
        .map(|i| {
            let (order, body) = (order.clone(), body.clone());
            spawn(move || {
                body(i);
                order.borrow_mut().push(i);
            })
        })
        .collect();
    (order, handles)
}

pub fn assert_killed<T: 'static>(h: JoinHandle<T>) {
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

/// Spawns a greenlet that blocks in `wait` while holding a guard-like `DropFlag`; kills
/// it and checks its destructors ran and `waiters()` went back to 0.
pub fn kill_while_blocked(waiters: impl Fn() -> usize, wait: impl FnOnce() + 'static) {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let h = spawn(move || {
        let _flag = flag;
        wait();
    });
    settle("the victim blocks", || waiters() == 1);
    h.kill();
    assert!(dropped.get(), "the killed greenlet's destructors ran");
    assert_eq!(waiters(), 0, "the killed waiter left the queue");
    assert_killed(h);
}
