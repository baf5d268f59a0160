//! `greenweave_runtime::sync`: Event and AsyncResult across greenlets: behaviour, FIFO wake-ups,
//! timeouts, try_ forms, kills and `with_timeout` at every kind of wait.
//!
//! Greenlets are ordered with events, joins and `settle` (yield until a waiter count is
//! reached), never with sleeps; timing bounds only check the shape.

#[path = "common/sync.rs"]
mod common;
use common::*;

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
