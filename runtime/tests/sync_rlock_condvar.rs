//! `greenweave_runtime::sync`: RLock and Condvar across greenlets: behaviour, FIFO wake-ups,
//! timeouts, try_ forms, kills and `with_timeout` at every kind of wait.
//!
//! Greenlets are ordered with events, joins and `settle` (yield until a waiter count is
//! reached), never with sleeps; timing bounds only check the shape.

#[path = "common/sync.rs"]
mod common;
use common::*;

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

/// The first of two waiters is notified, then killed (or its `Timeout` expires) while it
/// waits to lock the mutex again: the notification it consumed must go to the second.
#[test]
fn condvar_notification_is_passed_on_when_the_woken_waiter_dies_relocking() {
    for how in ["kill", "with_timeout", "kill in wait_timeout"] {
        let shared: Shared = Rc::new((Mutex::new(Vec::new()), Condvar::new()));
        let (order, handles) = spawn_recorders(2, {
            let shared = shared.clone();
            move |i| {
                let (m, cv) = &*shared;
                match (i, how) {
                    (0, "with_timeout") => {
                        assert_eq!(
                            with_timeout(SHORT, || drop(cv.wait(m.lock()))),
                            Err(Elapsed)
                        );
                    }
                    (0, "kill in wait_timeout") => drop(cv.wait_timeout(m.lock(), LONG)),
                    _ => drop(cv.wait(m.lock())),
                }
            }
        });
        let mut handles = handles.into_iter();
        let (first, second) = (handles.next().unwrap(), handles.next().unwrap());
        let (m, cv) = &*shared;
        settle("2 waiters", || cv.waiter_count() == 2);
        let held = m.lock();
        cv.notify_one();
        settle("the woken waiter waits for the mutex", || {
            m.waiter_count() == 1
        });
        if how == "with_timeout" {
            first.join().unwrap(); // its Timeout expires while we hold the mutex
        } else {
            first.kill();
            assert_killed(first);
        }
        drop(held);
        settle(
            &format!("{how}: the second waiter got the notification"),
            || order.borrow().contains(&1),
        );
        second.join().unwrap();
        assert_eq!(cv.waiter_count(), 0);
        assert!(!m.is_locked());
    }
}
