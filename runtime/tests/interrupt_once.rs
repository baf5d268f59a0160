//! A kill or a timeout is delivered once, as in gevent: a greenlet that catches it goes
//! on running normally; `kill()` waits for death, `kill_timeout` bounds that wait, and a
//! second kill delivers again.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_greenlet::GreenletExit;
use greenweave_runtime::{
    Elapsed, JoinError, JoinHandle, Timeout, TimeoutFired, sleep, spawn, with_timeout, yield_now,
};

/// Runs `f`, returning the payload it unwound with, if any.
fn unwound(f: impl FnOnce()) -> Option<Box<dyn std::any::Any + Send>> {
    panic::catch_unwind(AssertUnwindSafe(f)).err()
}

/// How long a `sleep(d)` took.
fn timed_sleep(d: Duration) -> Duration {
    let start = Instant::now();
    sleep(d);
    start.elapsed()
}

#[test]
fn a_greenlet_that_catches_its_kill_goes_on_running_and_sleeps_normally() {
    let h = spawn(|| {
        let payload = unwound(|| sleep(Duration::from_secs(1000))).expect("killed");
        assert!(payload.is::<GreenletExit>());
        // Delivered once: the next sleeps sleep, they do not unwind again.
        yield_now();
        timed_sleep(Duration::from_millis(20))
    });
    yield_now(); // it parks in its long sleep
    h.kill_nowait();
    let slept = h.join().expect("it survived its kill and returned");
    assert!(slept >= Duration::from_millis(20), "slept only {slept:?}");
}

#[test]
fn kill_waits_for_a_survivor_to_finish_its_blocking_cleanup() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let h = spawn(move || {
        if unwound(|| sleep(Duration::from_secs(1000))).is_some() {
            l.borrow_mut().push("caught");
            sleep(Duration::from_millis(10)); // cleanup that blocks
            l.borrow_mut().push("cleaned up");
        }
        "survived"
    });
    yield_now();
    h.kill();
    assert!(h.is_finished(), "kill() returns once the greenlet is dead");
    assert_eq!(*log.borrow(), ["caught", "cleaned up"]);
    assert_eq!(h.join().unwrap(), "survived");
}

#[test]
fn a_destructor_run_by_the_kill_may_block() {
    struct SleepOnDrop(Rc<Cell<bool>>);
    impl Drop for SleepOnDrop {
        fn drop(&mut self) {
            sleep(Duration::from_millis(5));
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let h = spawn(move || {
        let _guard = SleepOnDrop(d);
        sleep(Duration::from_secs(1000));
    });
    yield_now();
    h.kill();
    assert!(dropped.get(), "the destructor slept and finished");
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

#[test]
fn kill_timeout_says_whether_it_died_and_a_second_kill_delivers_again() {
    let kills = Rc::new(Cell::new(0));
    let ticks = Rc::new(Cell::new(0_u32));
    let (k, t) = (kills.clone(), ticks.clone());
    let h = spawn(move || {
        loop {
            match unwound(|| sleep(Duration::from_millis(1))) {
                None => t.set(t.get() + 1),
                Some(_) if k.get() == 0 => k.set(1), // survives its first kill
                Some(payload) => {
                    k.set(2);
                    panic::resume_unwind(payload);
                }
            }
        }
    });
    yield_now();
    assert!(
        !h.kill_timeout(Duration::from_millis(50)),
        "it caught its kill and lives on"
    );
    assert_eq!(kills.get(), 1, "the kill was delivered once");
    let before = ticks.get();
    sleep(Duration::from_millis(20));
    assert!(ticks.get() > before, "it goes on running normally");
    assert!(h.kill_timeout(Duration::from_secs(10)), "the second kill");
    assert_eq!(kills.get(), 2);
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

#[test]
fn kill_timeout_edge_cases() {
    // Zero: the kill is sent, and it has not died yet (it has not even run).
    let h = spawn(|| sleep(Duration::from_secs(1000)));
    assert!(!h.kill_timeout(Duration::ZERO));
    h.wait();
    assert!(matches!(h.join(), Err(JoinError::Killed)));
    // Too large to be a deadline: waits for ever, i.e. until it died.
    let h = spawn(|| sleep(Duration::from_secs(1000)));
    yield_now();
    assert!(h.kill_timeout(Duration::MAX));
    // A finished greenlet: nothing to kill, it is dead.
    let done = spawn(|| 3);
    done.wait();
    assert!(done.kill_timeout(Duration::ZERO));
    assert_eq!(done.join().unwrap(), 3);
}

#[test]
fn a_greenlet_that_catches_its_own_kill_goes_on_running() {
    let cell: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
    let done = Rc::new(Cell::new(false));
    let (c, d) = (cell.clone(), done.clone());
    let h = spawn(move || {
        let me = c.borrow_mut().take().unwrap();
        let payload = unwound(|| me.kill()).expect("killing yourself unwinds at once");
        assert!(payload.is::<GreenletExit>());
        let payload = unwound(|| {
            me.kill_timeout(Duration::from_secs(1));
        });
        assert!(payload.expect("so does kill_timeout").is::<GreenletExit>());
        // Neither left a kill behind.
        sleep(Duration::from_millis(1));
        d.set(true);
    });
    let id = h.id();
    *cell.borrow_mut() = Some(h);
    while greenweave_runtime::greenlets().iter().any(|g| g.id == id) {
        sleep(Duration::from_millis(1));
    }
    assert!(done.get(), "it ran to its end");
}

#[test]
fn a_caught_timeout_is_delivered_once() {
    let timeout = Timeout::start(Duration::from_millis(5));
    let payload = unwound(|| sleep(Duration::from_secs(1000))).expect("timed out");
    assert_eq!(
        payload.downcast_ref::<TimeoutFired>(),
        Some(&TimeoutFired { id: timeout.id() })
    );
    // The guard still lives, but its timeout was delivered: sleeps sleep.
    let slept = timed_sleep(Duration::from_millis(20));
    assert!(slept >= Duration::from_millis(20), "slept only {slept:?}");
    drop(timeout);
}

#[test]
fn with_timeout_returns_the_value_of_code_that_caught_its_timeout() {
    let outcome = with_timeout(Duration::from_millis(5), || {
        assert!(unwound(|| sleep(Duration::from_secs(1000))).is_some());
        timed_sleep(Duration::from_millis(20))
    });
    let slept = outcome.expect("it caught its timeout");
    assert!(slept >= Duration::from_millis(20), "slept only {slept:?}");
}

#[test]
fn nested_timeouts_still_attribute_to_the_one_that_expired() {
    let inner_result = Rc::new(Cell::new(None));
    let r = inner_result.clone();
    let outer = with_timeout(Duration::from_millis(10), move || {
        let inner = with_timeout(Duration::from_secs(1000), || {
            sleep(Duration::from_secs(1000))
        });
        r.set(Some(inner));
    });
    assert_eq!(outer, Err(Elapsed));
    assert_eq!(
        inner_result.get(),
        None,
        "the outer one unwound through the inner"
    );
    // And nothing is left pending.
    let slept = timed_sleep(Duration::from_millis(5));
    assert!(slept >= Duration::from_millis(5));
}

#[test]
fn a_kill_that_comes_with_a_better_answer_stays_pending_for_the_next_blocking_call() {
    use greenweave_runtime::queue::Queue;
    use std::os::fd::AsRawFd;

    // A putter on a full queue whose item a getter takes, then is killed before it
    // runs: the put succeeded, and the kill lands at its next blocking call.
    let q = Rc::new(Queue::new(1));
    q.put(0).unwrap();
    let put = Rc::new(Cell::new(None));
    let (q2, p) = (q.clone(), put.clone());
    let putter = spawn(move || {
        p.set(Some(q2.put(1).is_ok()));
        yield_now(); // a blocking point: delivers what is pending
    });
    yield_now(); // it parks: the queue is full
    assert_eq!(q.get().unwrap(), 0); // takes the putter's item in, waking it
    putter.kill_nowait();
    assert!(matches!(putter.join(), Err(JoinError::Killed)));
    assert_eq!(put.get(), Some(true));
    assert_eq!(q.get().unwrap(), 1);

    // A reader whose fd is closed under its wait, then is killed before it runs: the
    // wait says `EBADF`, and the kill lands at its next blocking call.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let reader = spawn(move || {
        let err = greenweave_runtime::io::wait_readable(fd, None).unwrap_err();
        s.set(err.raw_os_error());
        yield_now(); // a blocking point: delivers what is pending
    });
    yield_now();
    greenweave_runtime::io::notify_closed(fd);
    reader.kill_nowait();
    assert!(matches!(reader.join(), Err(JoinError::Killed)));
    assert_eq!(seen.get(), Some(libc::EBADF));
}
