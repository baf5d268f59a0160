//! `greenweave_runtime::sync`: Semaphore and BoundedSemaphore across greenlets: behaviour, FIFO wake-ups,
//! timeouts, try_ forms, kills and `with_timeout` at every kind of wait.
//!
//! Greenlets are ordered with events, joins and `settle` (yield until a waiter count is
//! reached), never with sleeps; timing bounds only check the shape.

#[path = "common/sync.rs"]
mod common;
use common::*;

// ---------------------------------------------------------------- Semaphore

/// Runs `n` greenlets that each hold a permit of `sem` (taken with `access`) across
/// two yields; returns the most that held one at the same time.
fn max_concurrency<S: 'static>(
    n: usize,
    sem: &Rc<S>,
    access: for<'a> fn(&'a S) -> SemaphoreGuard<'a>,
) -> usize {
    let (running, most) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (sem, running, most) = (sem.clone(), running.clone(), most.clone());
            spawn(move || {
                let _permit = access(&sem);
                running.set(running.get() + 1);
                most.set(most.get().max(running.get()));
                yield_now();
                yield_now();
                running.set(running.get() - 1);
            })
        })
        .collect();
    for r in joinall(handles) {
        r.unwrap();
    }
    most.get()
}

#[test]
fn semaphore_limits_how_many_hold_a_permit() {
    let sem = Rc::new(Semaphore::new(3));
    assert_eq!(max_concurrency(10, &sem, Semaphore::access), 3);
    assert_eq!(sem.available(), 3);
    assert_eq!(sem.waiter_count(), 0);
}

#[test]
fn semaphore_wakes_in_fifo_order() {
    let sem = Rc::new(Semaphore::new(0));
    let (order, handles) = spawn_recorders(5, {
        let sem = sem.clone();
        move |_| sem.acquire()
    });
    settle("5 waiters", || sem.waiter_count() == 5);
    for _ in 0..5 {
        sem.release();
    }
    joinall(handles);
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
    assert_eq!(sem.available(), 0);
}

#[test]
fn semaphore_try_and_timeout_forms() {
    let sem = Rc::new(Semaphore::new(1));
    assert!(sem.try_acquire());
    assert!(!sem.try_acquire());
    assert!(sem.try_access().is_none());
    let start = Instant::now();
    assert_eq!(sem.acquire_timeout(SHORT), Err(Elapsed));
    assert!(start.elapsed() >= SHORT);
    assert!(sem.access_timeout(Duration::ZERO).is_err());
    assert_eq!(sem.waiter_count(), 0);

    let waiter = {
        let sem = sem.clone();
        spawn(move || sem.acquire_timeout(LONG))
    };
    settle("a waiter", || sem.waiter_count() == 1);
    sem.release();
    assert_eq!(waiter.join().unwrap(), Ok(()));
    assert_eq!(sem.available(), 0);
    sem.release();
    {
        let _g = sem.try_access().expect("a permit is free");
        assert_eq!(sem.available(), 0);
    }
    assert_eq!(sem.available(), 1);
    sem.release(); // unbounded: more releases than acquires raise the count
    assert_eq!(sem.available(), 2);
}

#[test]
fn semaphore_kill_while_acquiring_releases_held_permits() {
    let sem = Rc::new(Semaphore::new(0));
    let other = Rc::new(Semaphore::new(1));
    kill_while_blocked(|| sem.waiter_count(), {
        let (sem, other) = (sem.clone(), other.clone());
        move || {
            let _held = other.access();
            sem.acquire();
        }
    });
    assert_eq!(
        other.available(),
        1,
        "the killed greenlet's permit came back"
    );
    sem.release();
    sem.acquire(); // still works
    assert_eq!(with_timeout(SHORT, || sem.acquire()), Err(Elapsed));
    assert_eq!(sem.waiter_count(), 0);
    assert_eq!(sem.available(), 0);
}

#[test]
fn bounded_semaphore_limits_and_refuses_extra_release() {
    let sem = Rc::new(BoundedSemaphore::new(5));
    assert_eq!(max_concurrency(20, &sem, BoundedSemaphore::access), 5);
    assert_eq!(sem.available(), 5);
    let err = sem.release().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("BoundedSemaphore created at"), "{msg}");
    assert!(msg.contains("tests/sync_semaphore.rs"), "{msg}");
    assert!(msg.contains("released too many times"), "{msg}");
    assert_eq!(sem.available(), 5, "a refused release changes nothing");
    assert_eq!(sem.bound(), 5);

    sem.acquire();
    assert_eq!(sem.release(), Ok(()));
    assert!(sem.try_acquire());
    assert_eq!(sem.acquire_timeout(Duration::ZERO), Ok(()));
    assert_eq!(sem.available(), 3);
}

#[test]
fn bounded_semaphore_kill_and_with_timeout_while_acquiring() {
    let sem = Rc::new(BoundedSemaphore::new(1));
    let _held = sem.access();
    kill_while_blocked(|| sem.waiter_count(), {
        let sem = sem.clone();
        move || sem.acquire()
    });
    assert_eq!(with_timeout(SHORT, || sem.acquire()), Err(Elapsed));
    assert_eq!(sem.waiter_count(), 0);
    drop(_held);
    assert_eq!(sem.available(), 1);
}
