//! `greenweave_runtime::sync`: Event, AsyncResult, Semaphore, BoundedSemaphore, Mutex,
//! RLock and Condvar across greenlets: behaviour, FIFO wake-ups, timeouts, try_ forms,
//! kills and `with_timeout` at every kind of wait, deadlock reports.
//!
//! Greenlets are ordered with events, joins and `settle` (yield until a waiter count is
//! reached), never with sleeps; timing bounds only check the shape.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::sync::{
    AsyncResult, BoundedSemaphore, Condvar, Event, Mutex, RLock, Semaphore, SemaphoreGuard,
};
use greenweave_runtime::{
    Builder, Elapsed, JoinError, JoinHandle, greenlets, joinall, spawn, with_timeout, yield_now,
};

const SHORT: Duration = Duration::from_millis(20);
const LONG: Duration = Duration::from_secs(10);

/// Yields until `cond` holds (the other greenlets reach their blocking points).
fn settle(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        yield_now();
    }
    panic!("never happened: {what}");
}

/// Sets its flag when dropped: proves a killed greenlet's destructors ran.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

type Order = Rc<RefCell<Vec<usize>>>;

/// Spawns `n` greenlets running `body(i)`, each recording `i` once `body` returns.
fn spawn_recorders(
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

fn assert_killed<T>(h: JoinHandle<T>) {
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

/// Spawns a greenlet that blocks in `wait` while holding a guard-like `DropFlag`; kills
/// it and checks its destructors ran and `waiters()` went back to 0.
fn kill_while_blocked(waiters: impl Fn() -> usize, wait: impl FnOnce() + 'static) {
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

// ---------------------------------------------------------------- Event

#[test]
fn event_set_wakes_every_waiter_in_fifo_order() {
    let ev = Rc::new(Event::new());
    let (order, handles) = spawn_recorders(5, {
        let ev = ev.clone();
        move |_| ev.wait()
    });
    settle("5 waiters", || ev.waiter_count() == 5);
    assert!(order.borrow().is_empty());
    let setter = {
        let ev = ev.clone();
        spawn(move || ev.set())
    };
    joinall(handles);
    setter.join().unwrap();
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
    assert_eq!(ev.waiter_count(), 0);
}

#[test]
fn event_set_clear_is_set_and_wait_on_a_set_event() {
    let ev = Event::new();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(Duration::ZERO));
    ev.set();
    assert!(ev.is_set());
    ev.wait(); // returns at once
    assert!(ev.wait_timeout(Duration::ZERO));
    ev.clear();
    assert!(!ev.is_set());
}

#[test]
fn event_pulse_set_then_clear_still_releases_waiters() {
    let ev = Rc::new(Event::new());
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let ev = ev.clone();
            spawn(move || ev.wait_timeout(LONG))
        })
        .collect();
    settle("3 waiters", || ev.waiter_count() == 3);
    ev.set();
    ev.clear();
    for w in waiters {
        assert!(w.join().unwrap(), "a waiter woken by set() reports the set");
    }
    assert!(!ev.is_set());
}

#[test]
fn event_wait_timeout_expires_and_leaves_no_waiter() {
    let ev = Event::new();
    let start = Instant::now();
    assert!(!ev.wait_timeout(SHORT));
    assert!(start.elapsed() >= SHORT);
    assert_eq!(ev.waiter_count(), 0);
}

#[test]
fn event_kill_while_waiting() {
    let ev = Rc::new(Event::new());
    kill_while_blocked(|| ev.waiter_count(), {
        let ev = ev.clone();
        move || ev.wait()
    });
    let h = {
        let ev = ev.clone();
        spawn(move || ev.wait())
    };
    settle("a new waiter", || ev.waiter_count() == 1);
    ev.set();
    h.join().unwrap();
}

#[test]
fn event_with_timeout_around_wait() {
    let ev = Event::new();
    assert_eq!(with_timeout(SHORT, || ev.wait()), Err(Elapsed));
    assert_eq!(ev.waiter_count(), 0);
    ev.set();
    assert_eq!(with_timeout(SHORT, || ev.wait()), Ok(()));
}

// ---------------------------------------------------------------- AsyncResult

#[test]
fn async_result_every_getter_gets_the_value_in_fifo_order() {
    let result: Rc<AsyncResult<String, String>> = Rc::new(AsyncResult::new());
    let got = Rc::new(RefCell::new(Vec::new()));
    let getters: Vec<_> = (0..4)
        .map(|i| {
            let (result, got) = (result.clone(), got.clone());
            spawn(move || {
                let value = result.get();
                got.borrow_mut().push((i, value));
            })
        })
        .collect();
    settle("4 getters", || result.waiter_count() == 4);
    assert!(!result.is_ready());
    let setter = {
        let result = result.clone();
        spawn(move || result.set("done".to_string()))
    };
    joinall(getters);
    setter.join().unwrap();
    let ok = || Ok("done".to_string());
    assert_eq!(*got.borrow(), [(0, ok()), (1, ok()), (2, ok()), (3, ok())]);
    assert!(result.is_ready() && result.is_successful());
}

#[test]
fn async_result_error_reaches_every_getter() {
    let result: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let result = result.clone();
            spawn(move || result.get())
        })
        .collect();
    settle("3 getters", || result.waiter_count() == 3);
    result.set_error("boom".to_string());
    for g in getters {
        assert_eq!(g.join().unwrap(), Err("boom".to_string()));
    }
    assert!(result.is_ready() && !result.is_successful());
}

#[test]
fn async_result_try_get_and_timeouts() {
    let result: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
    assert_eq!(result.try_get(), None);
    let start = Instant::now();
    assert_eq!(result.get_timeout(SHORT), Err(Elapsed));
    assert!(start.elapsed() >= SHORT);
    assert!(!result.wait_timeout(Duration::ZERO));
    assert_eq!(result.waiter_count(), 0);

    let getter = {
        let result = result.clone();
        spawn(move || result.get_timeout(LONG))
    };
    settle("a getter", || result.waiter_count() == 1);
    result.set(5);
    assert_eq!(getter.join().unwrap(), Ok(Ok(5)));
    assert_eq!(result.try_get(), Some(Ok(5)));
    result.set(6); // gevent: a later set replaces the value
    assert_eq!(result.get(), Ok(6));
}

#[test]
fn async_result_kill_and_with_timeout_while_getting() {
    let result: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
    kill_while_blocked(|| result.waiter_count(), {
        let result = result.clone();
        move || drop(result.get())
    });
    assert_eq!(with_timeout(SHORT, || result.get()), Err(Elapsed));
    assert_eq!(result.waiter_count(), 0);
    result.set(1);
    assert_eq!(result.get(), Ok(1));
}

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
    assert!(msg.contains("tests/sync.rs"), "{msg}");
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

// ---------------------------------------------------------------- Mutex

#[test]
fn mutex_counter_one_million_increments_across_ten_greenlets() {
    let counter = Rc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let counter = counter.clone();
            spawn(move || {
                for i in 0..100_000 {
                    let mut n = counter.lock();
                    if i % 1000 == 0 {
                        // g_num += 1 split by a switch: without the lock, updates are lost.
                        let seen = *n;
                        yield_now();
                        *n = seen + 1;
                    } else {
                        *n += 1;
                    }
                    drop(n);
                    if i % 1000 == 500 {
                        yield_now();
                    }
                }
            })
        })
        .collect();
    for r in joinall(workers) {
        r.unwrap();
    }
    assert_eq!(*counter.lock(), 1_000_000);
    assert_eq!(counter.waiter_count(), 0);
}

#[test]
fn mutex_excludes_other_greenlets_while_the_holder_blocks() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let h = {
        let m = m.clone();
        spawn(move || {
            let mut g = m.lock();
            g.push("holder in");
            yield_now();
            yield_now();
            g.push("holder out");
        })
    };
    let w = {
        let m = m.clone();
        spawn(move || m.lock().push("waiter"))
    };
    joinall([h, w]);
    assert_eq!(*m.lock(), ["holder in", "holder out", "waiter"]);
}

#[test]
fn mutex_wakes_in_fifo_order() {
    let m = Rc::new(Mutex::new(()));
    let held = m.lock();
    let (order, handles) = spawn_recorders(5, {
        let m = m.clone();
        move |_| drop(m.lock())
    });
    settle("5 waiters", || m.waiter_count() == 5);
    assert!(m.is_locked());
    drop(held);
    joinall(handles);
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
    assert!(!m.is_locked());
}

#[test]
fn mutex_try_lock_and_lock_timeout() {
    let m = Rc::new(Mutex::new(1));
    let held = m.lock();
    let contender = {
        let m = m.clone();
        spawn(move || {
            assert!(m.try_lock().is_none());
            let start = Instant::now();
            assert_eq!(m.lock_timeout(SHORT).err(), Some(Elapsed));
            assert!(start.elapsed() >= SHORT);
            assert_eq!(m.waiter_count(), 0, "a timed-out waiter leaves the queue");
        })
    };
    contender.join().unwrap();

    let patient = {
        let m = m.clone();
        spawn(move || *m.lock_timeout(LONG).expect("released in time") + 1)
    };
    settle("a waiter", || m.waiter_count() == 1);
    drop(held);
    assert_eq!(patient.join().unwrap(), 2);
    assert_eq!(*m.try_lock().expect("free"), 1);
}

#[test]
fn mutex_kill_while_locking() {
    let m = Rc::new(Mutex::new(0));
    let other = Rc::new(Mutex::new(0));
    let held = m.lock();
    kill_while_blocked(|| m.waiter_count(), {
        let (m, other) = (m.clone(), other.clone());
        move || {
            let _mine = other.lock();
            *m.lock() += 1;
        }
    });
    assert!(
        !other.is_locked(),
        "the killed greenlet's guard unlocked its mutex"
    );
    drop(held);
    let h = {
        let m = m.clone();
        spawn(move || *m.lock() += 1)
    };
    h.join().unwrap();
    assert_eq!(*m.lock(), 1);
}

#[test]
fn mutex_with_timeout_around_lock() {
    let m = Rc::new(Mutex::new(()));
    let held = m.lock();
    let h = {
        let m = m.clone();
        spawn(move || with_timeout(SHORT, || drop(m.lock())))
    };
    assert_eq!(h.join().unwrap(), Err(Elapsed));
    assert_eq!(m.waiter_count(), 0);
    drop(held);
    assert_eq!(with_timeout(SHORT, || drop(m.lock())), Ok(()));
}

#[test]
fn mutex_is_not_poisoned_by_a_panicking_holder() {
    let m = Rc::new(Mutex::new(0));
    let h = {
        let m = m.clone();
        spawn(move || {
            let mut g = m.lock();
            *g = 7;
            panic!("holder fails");
        })
    };
    assert_eq!(h.join().unwrap_err().panic_message(), Some("holder fails"));
    assert!(!m.is_locked());
    assert_eq!(*m.lock(), 7);
}

#[test]
fn mutex_relock_by_holder_panics_instead_of_hanging() {
    let m = Mutex::new(());
    let _g = m.lock();
    let err = panic::catch_unwind(AssertUnwindSafe(|| drop(m.lock()))).unwrap_err();
    let msg = err.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("which it already holds"), "{msg}");
    assert!(msg.contains("Mutex created at"), "{msg}");
}

#[test]
fn mutex_into_inner_get_mut_and_debug() {
    let mut m = Mutex::new(vec![1]);
    m.get_mut().push(2);
    assert!(format!("{m:?}").contains("[1, 2]"));
    let g = m.lock();
    assert!(format!("{m:?}").contains("<locked>"));
    assert_eq!(format!("{g:?}"), "[1, 2]");
    drop(g);
    assert_eq!(m.into_inner(), [1, 2]);
}

#[test]
fn mutex_wait_is_described_in_greenlets() {
    let m = Rc::new(Mutex::new(()));
    let holder = {
        let m = m.clone();
        Builder::new().name("holder").spawn(move || {
            let _g = m.lock();
            Event::new().wait_timeout(LONG);
        })
    };
    let waiter = {
        let m = m.clone();
        Builder::new().name("waiter").spawn(move || drop(m.lock()))
    };
    settle("the waiter blocks", || m.waiter_count() == 1);
    let info = greenlets()
        .into_iter()
        .find(|g| g.name.as_deref() == Some("waiter"))
        .expect("the waiter is listed");
    let on = info.waiting_on.expect("it is blocked");
    assert!(on.starts_with("Mutex created at"), "{on}");
    assert!(on.contains("held by greenlet 'holder'"), "{on}");
    holder.kill();
    waiter.join().unwrap();
}

#[test]
fn mutex_deadlock_report_names_mutexes_and_holders() {
    let a = Rc::new(Mutex::new("A"));
    let b = Rc::new(Mutex::new("B"));
    let (a_held, b_held) = (Rc::new(Event::new()), Rc::new(Event::new()));
    let t1 = {
        let (a, b, a_held, b_held) = (a.clone(), b.clone(), a_held.clone(), b_held.clone());
        Builder::new().name("lock-a-then-b").spawn(move || {
            let _a = a.lock();
            a_held.set();
            b_held.wait();
            let _b = b.lock();
        })
    };
    let t2 = {
        let (a, b) = (a.clone(), b.clone());
        Builder::new().name("lock-b-then-a").spawn(move || {
            let _b = b.lock();
            b_held.set();
            a_held.wait();
            let _a = a.lock();
        })
    };
    let payload = panic::catch_unwind(AssertUnwindSafe(|| t1.wait()))
        .expect_err("waiting for a deadlocked greenlet panics");
    let report = payload
        .downcast_ref::<String>()
        .expect("the report is a String");
    for needle in [
        "deadlock",
        "lock-a-then-b",
        "lock-b-then-a",
        "Mutex created at",
        "held by greenlet 'lock-a-then-b'",
        "held by greenlet 'lock-b-then-a'",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in:\n{report}");
    }
    // Killing one side releases its mutex; the other then finishes normally.
    t1.kill();
    t2.join().unwrap();
    assert!(!a.is_locked() && !b.is_locked());
}

// ---------------------------------------------------------------- RLock

#[test]
fn rlock_is_reentrant_for_its_holder_and_exclusive_for_others() {
    let lock = Rc::new(RLock::new());
    let log = Rc::new(RefCell::new(Vec::new()));
    let holder = {
        let (lock, log) = (lock.clone(), log.clone());
        spawn(move || {
            let _outer = lock.lock();
            let _inner = lock.lock();
            lock.acquire();
            assert!(lock.is_owned());
            log.borrow_mut().push("holder locked 3 times");
            yield_now();
            lock.release().unwrap();
            drop(_inner);
            yield_now();
            log.borrow_mut().push("holder done");
        })
    };
    let other = {
        let (lock, log) = (lock.clone(), log.clone());
        spawn(move || {
            assert!(!lock.is_owned());
            let _g = lock.lock();
            log.borrow_mut().push("other locked");
        })
    };
    joinall([holder, other]);
    assert_eq!(
        *log.borrow(),
        ["holder locked 3 times", "holder done", "other locked"]
    );
    assert!(!lock.is_locked());
}

#[test]
fn rlock_release_by_non_owner_names_the_owner() {
    let lock = Rc::new(RLock::new());
    let err = lock.release().unwrap_err().to_string();
    assert!(err.contains("RLock created at"), "{err}");
    assert!(err.contains("not held by any greenlet"), "{err}");

    let (holding, done) = (Rc::new(Event::new()), Rc::new(Event::new()));
    let owner = {
        let (lock, holding, done) = (lock.clone(), holding.clone(), done.clone());
        Builder::new().name("owner").spawn(move || {
            let _g = lock.lock();
            holding.set();
            done.wait();
        })
    };
    holding.wait();
    let err = lock.release().unwrap_err().to_string();
    assert!(err.contains("held by greenlet 'owner'"), "{err}");
    assert!(err.contains("cannot release"), "{err}");
    assert!(lock.is_locked(), "a refused release changes nothing");
    done.set();
    owner.join().unwrap();
    assert!(!lock.is_locked());
}

#[test]
fn rlock_wakes_in_fifo_order() {
    let lock = Rc::new(RLock::new());
    let held = lock.lock();
    let (order, handles) = spawn_recorders(5, {
        let lock = lock.clone();
        move |_| {
            let _g = lock.lock();
            let _again = lock.lock();
        }
    });
    settle("5 waiters", || lock.waiter_count() == 5);
    drop(held);
    joinall(handles);
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
}

#[test]
fn rlock_try_lock_and_lock_timeout() {
    let lock = Rc::new(RLock::new());
    let held = lock.lock();
    assert!(lock.try_lock().is_some(), "re-entrant try_lock succeeds");
    let contender = {
        let lock = lock.clone();
        spawn(move || {
            assert!(lock.try_lock().is_none());
            let start = Instant::now();
            assert!(lock.lock_timeout(SHORT).is_err());
            assert!(start.elapsed() >= SHORT);
            assert_eq!(lock.waiter_count(), 0);
        })
    };
    contender.join().unwrap();
    let patient = {
        let lock = lock.clone();
        spawn(move || lock.lock_timeout(LONG).is_ok())
    };
    settle("a waiter", || lock.waiter_count() == 1);
    drop(held);
    assert!(patient.join().unwrap());
}

#[test]
fn rlock_kill_and_with_timeout_while_locking() {
    let lock = Rc::new(RLock::new());
    let mine = Rc::new(RLock::new());
    let held = lock.lock();
    kill_while_blocked(|| lock.waiter_count(), {
        let (lock, mine) = (lock.clone(), mine.clone());
        move || {
            let _a = mine.lock();
            let _b = mine.lock();
            drop(lock.lock());
        }
    });
    assert!(!mine.is_locked(), "both levels were released by the unwind");
    let h = {
        let lock = lock.clone();
        spawn(move || with_timeout(SHORT, || drop(lock.lock())))
    };
    assert_eq!(h.join().unwrap(), Err(Elapsed));
    assert_eq!(lock.waiter_count(), 0);
    drop(held);
    let h = {
        let lock = lock.clone();
        spawn(move || drop(lock.lock()))
    };
    h.join().unwrap();
}

// ---------------------------------------------------------------- Condvar

type Shared = Rc<(Mutex<Vec<u32>>, Condvar)>;

#[test]
fn condvar_wait_while_producer_consumer() {
    let shared: Shared = Rc::new((Mutex::new(Vec::new()), Condvar::new()));
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let shared = shared.clone();
            spawn(move || {
                let (items, cv) = &*shared;
                let mut items = cv.wait_while(items.lock(), |v| v.is_empty());
                items.pop().unwrap()
            })
        })
        .collect();
    settle("3 consumers wait", || shared.1.waiter_count() == 3);
    let producer = {
        let shared = shared.clone();
        spawn(move || {
            let (items, cv) = &*shared;
            for i in 1..=3 {
                items.lock().push(i);
                cv.notify_one();
                yield_now();
            }
        })
    };
    let mut got: Vec<u32> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    producer.join().unwrap();
    got.sort();
    assert_eq!(got, [1, 2, 3]);
}

#[test]
fn condvar_notify_one_wakes_exactly_one_in_fifo_order() {
    let shared: Shared = Rc::new((Mutex::new(Vec::new()), Condvar::new()));
    let (order, mut handles) = spawn_recorders(4, {
        let shared = shared.clone();
        move |_| {
            let (m, cv) = &*shared;
            drop(cv.wait(m.lock()));
        }
    });
    settle("4 waiters", || shared.1.waiter_count() == 4);
    assert!(!shared.0.is_locked(), "waiting released the mutex");
    shared.1.notify_one();
    handles.remove(0).join().unwrap();
    assert_eq!(*order.borrow(), [0]);
    assert_eq!(shared.1.waiter_count(), 3);
    shared.1.notify_all();
    joinall(handles);
    assert_eq!(*order.borrow(), [0, 1, 2, 3]);
}

#[test]
fn condvar_wait_relocks_the_mutex_before_returning() {
    let shared: Shared = Rc::new((Mutex::new(Vec::new()), Condvar::new()));
    let waiter = {
        let shared = shared.clone();
        spawn(move || {
            let (m, cv) = &*shared;
            let g = cv.wait(m.lock());
            g.clone()
        })
    };
    settle("a waiter", || shared.1.waiter_count() == 1);
    let mut g = shared.0.lock();
    shared.1.notify_one();
    g.push(9); // the woken waiter cannot see the data until we unlock
    yield_now();
    assert_eq!(
        shared.0.waiter_count(),
        1,
        "woken, now waiting for the mutex"
    );
    drop(g);
    assert_eq!(waiter.join().unwrap(), [9]);
}

#[test]
fn condvar_timeout_forms() {
    let (m, cv) = (Mutex::new(0), Condvar::new());
    let start = Instant::now();
    let (g, timed_out) = cv.wait_timeout(m.lock(), SHORT);
    assert!(timed_out && start.elapsed() >= SHORT);
    assert!(m.is_locked(), "the guard came back locked");
    let (g, timed_out) = cv.wait_timeout_while(g, SHORT, |n| *n == 0);
    assert!(timed_out);
    let (g, timed_out) = cv.wait_timeout_while(g, SHORT, |n| *n != 0);
    assert!(!timed_out, "the condition was already false");
    drop(g);
    assert_eq!(cv.waiter_count(), 0);

    let shared = Rc::new((Mutex::new(0), Condvar::new()));
    let waiter = {
        let shared = shared.clone();
        spawn(move || {
            let (m, cv) = &*shared;
            let (g, timed_out) = cv.wait_timeout_while(m.lock(), LONG, |n| *n < 2);
            (*g, timed_out)
        })
    };
    for _ in 0..2 {
        settle("a waiter", || shared.1.waiter_count() == 1);
        *shared.0.lock() += 1;
        shared.1.notify_all();
    }
    assert_eq!(waiter.join().unwrap(), (2, false));
}

#[test]
fn condvar_kill_and_with_timeout_while_waiting() {
    let shared: Shared = Rc::new((Mutex::new(Vec::new()), Condvar::new()));
    kill_while_blocked(|| shared.1.waiter_count(), {
        let shared = shared.clone();
        move || {
            let (m, cv) = &*shared;
            drop(cv.wait(m.lock()));
        }
    });
    assert!(
        !shared.0.is_locked(),
        "the killed waiter does not hold the mutex"
    );
    let (m, cv) = &*shared;
    assert_eq!(
        with_timeout(SHORT, || drop(cv.wait(m.lock()))),
        Err(Elapsed)
    );
    assert_eq!(cv.waiter_count(), 0);
    assert!(!m.is_locked());

    // A notification consumed by a greenlet killed before it ran goes to the next one.
    let (order, handles) = spawn_recorders(2, {
        let shared = shared.clone();
        move |_| {
            let (m, cv) = &*shared;
            drop(cv.wait(m.lock()));
        }
    });
    let mut handles = handles.into_iter();
    let (first, second) = (handles.next().unwrap(), handles.next().unwrap());
    settle("2 waiters", || cv.waiter_count() == 2);
    cv.notify_one();
    first.kill_nowait();
    second.join().unwrap();
    assert_killed(first);
    assert_eq!(*order.borrow(), [1]);
}
