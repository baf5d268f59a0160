//! `greenweave_runtime::sync`: Mutex across greenlets: behaviour, FIFO wake-ups,
//! timeouts, try_ forms, kills and `with_timeout` at every kind of wait.
//!
//! Greenlets are ordered with events, joins and `settle` (yield until a waiter count is
//! reached), never with sleeps; timing bounds only check the shape.

#[path = "common/sync.rs"]
mod common;
use common::*;

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
