//! Sleeping, yielding, timeouts and cross-thread wake-ups.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greenweave_runtime::{
    Builder, Elapsed, JoinError, Timeout, TimeoutFired, joinall, sleep, spawn, wait_for_thread,
    with_timeout, yield_now,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_seed_gevent_sleep_example_prints_1_3_4_2_in_the_longest_sleep_not_the_sum() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    let (a, b) = (log.clone(), log.clone());
    let fun1 = spawn(move || {
        a.borrow_mut().push(1);
        sleep(ms(200));
        a.borrow_mut().push(2);
    });
    let fun2 = spawn(move || {
        b.borrow_mut().push(3);
        sleep(ms(100));
        b.borrow_mut().push(4);
    });
    joinall([fun1, fun2]).into_iter().for_each(|r| r.unwrap());
    let elapsed = start.elapsed();
    assert_eq!(*log.borrow(), [1, 3, 4, 2]);
    assert!(
        elapsed >= ms(200),
        "slept at least the longest: {elapsed:?}"
    );
    if !valgrind::skip_under_valgrind("the 290 ms bound on two overlapping sleeps") {
        assert!(
            elapsed < ms(290),
            "the sleeps overlapped (sum would be 300 ms): {elapsed:?}"
        );
    }
}

#[test]
fn a_hundred_greenlets_sleeping_200ms_finish_in_well_under_a_second() {
    let start = Instant::now();
    let hs: Vec<_> = (0..100).map(|_| spawn(|| sleep(ms(200)))).collect();
    joinall(hs).into_iter().for_each(|r| r.unwrap());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?} (serial would be 20 s)",
        start.elapsed()
    );
}

#[test]
fn yield_now_lets_every_other_ready_greenlet_run_first() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let log = log.clone();
            spawn(move || {
                for round in 0..3 {
                    log.borrow_mut().push(format!("{name}{round}"));
                    yield_now();
                }
            })
        })
        .collect();
    joinall(hs).into_iter().for_each(|r| r.unwrap());
    assert_eq!(log.borrow().join(" "), "a0 b0 c0 a1 b1 c1 a2 b2 c2");
}

#[test]
fn with_timeout_gives_up_at_a_blocking_point_or_returns_the_value() {
    let start = Instant::now();
    assert_eq!(with_timeout(ms(20), || sleep(ms(10_000))), Err(Elapsed));
    assert!(start.elapsed() < ms(5_000));
    assert_eq!(with_timeout(ms(500), || 42), Ok(42));
    assert_eq!(
        with_timeout(Duration::MAX, || "never expires"),
        Ok("never expires")
    );
}

#[test]
fn nested_timeouts_attribute_to_the_one_that_expired() {
    // Inner expires first: the inner call reports it, the outer block continues.
    let outer = with_timeout(ms(500), || {
        let inner = with_timeout(ms(10), || sleep(ms(10_000)));
        assert_eq!(inner, Err(Elapsed));
        "outer finished"
    });
    assert_eq!(outer, Ok("outer finished"));

    // Outer expires first: the inner with_timeout does not swallow it.
    let inner_saw = Rc::new(RefCell::new(None));
    let saw = inner_saw.clone();
    let outer = with_timeout(ms(10), move || {
        let r = with_timeout(ms(5_000), || sleep(ms(10_000)));
        *saw.borrow_mut() = Some(r);
    });
    assert_eq!(outer, Err(Elapsed));
    assert_eq!(
        *inner_saw.borrow(),
        None,
        "the inner frame was unwound, not returned from"
    );
}

#[test]
fn a_timeout_interrupts_only_at_a_blocking_point() {
    let result = with_timeout(ms(5), || {
        let spin_until = Instant::now() + ms(20);
        while Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        "computed without blocking"
    });
    assert_eq!(result, Ok("computed without blocking"));
    // Once it has expired, the timeout fires at a blocking point: the hub looks at its
    // timers at least every MAINTENANCE_INTERVAL greenlet runs.
    let yields = std::cell::Cell::new(0u32);
    let result = with_timeout(ms(5), || {
        let spin_until = Instant::now() + ms(20);
        while Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        loop {
            yields.set(yields.get() + 1);
            yield_now();
        }
    });
    assert_eq!(
        result,
        Err::<(), _>(Elapsed),
        "the expired timeout fired at a blocking point"
    );
    assert!(
        yields.get() <= greenweave_runtime::MAINTENANCE_INTERVAL + 1,
        "after {} yields",
        yields.get()
    );
}

#[test]
fn an_uncaught_timeout_ends_a_spawned_greenlet_with_a_clear_error() {
    let h = Builder::new().name("slowpoke").spawn(|| {
        let _deadline = Timeout::start(ms(10));
        sleep(ms(10_000));
    });
    match h.join() {
        Err(err @ JoinError::Panicked(_)) => {
            assert_eq!(err.to_string(), "greenlet died of an uncaught Timeout");
            let JoinError::Panicked(payload) = err else {
                unreachable!()
            };
            assert!(payload.is::<TimeoutFired>());
        }
        other => panic!("expected the timeout to escape: {other:?}"),
    }
}

#[test]
fn a_cancelled_timeout_never_fires() {
    let t = Timeout::start(ms(5));
    drop(t);
    sleep(ms(20));
    // Reaching here means the dropped timeout did not unwind the sleep.
    yield_now();
}

#[test]
fn kill_reaches_a_greenlet_inside_with_timeout() {
    let h = spawn(|| with_timeout(ms(10_000), || sleep(ms(10_000))));
    yield_now();
    h.kill();
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

#[test]
fn another_os_thread_wakes_a_parked_greenlet_while_others_keep_running() {
    let ticks = Rc::new(RefCell::new(0u32));
    let t = ticks.clone();
    let ticker = spawn(move || {
        for _ in 0..5 {
            sleep(ms(5));
            *t.borrow_mut() += 1;
        }
    });
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    wait_for_thread(move |waker| {
        std::thread::spawn(move || {
            std::thread::sleep(ms(60));
            *slot.lock().unwrap() = Some("from the thread");
            waker.wake();
        });
    });
    assert_eq!(*result.lock().unwrap(), Some("from the thread"));
    assert_eq!(
        *ticks.borrow(),
        5,
        "the ticker ran while main waited for the thread"
    );
    ticker.join().unwrap();
}

#[test]
fn a_remote_waker_dropped_unwoken_is_reported_as_a_deadlock() {
    let msg = panic::catch_unwind(AssertUnwindSafe(|| {
        wait_for_thread(|waker| {
            std::thread::spawn(move || drop(waker)).join().unwrap();
        })
    }))
    .unwrap_err();
    let msg = msg.downcast::<String>().unwrap();
    assert!(
        msg.contains("deadlock") && msg.contains("work on another OS thread"),
        "{msg}"
    );
}
