//! Leaving a wait queue costs O(1) per waiter, and `iwait` O(1) per handle: killing n
//! greenlets parked on one `Event`, and `iwait` over n handles, take time linear in n.
//!
//! Each test measures n = 10,000 and n = 100,000 and allows the larger 25 times the
//! time of the smaller (linear is 10 times; a scan of the queue per waiter makes it
//! about 100). Timing on a shared machine is noisy, so a pair that misses the bound is
//! measured again, up to three times: a quadratic cost misses it every time.
//!
//! Under Valgrind (`.ci/valgrind`) each scenario runs once, at 1,000, with its
//! assertions but without the time bound, which Valgrind's slowdown makes meaningless.

use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use greenweave_runtime::sync::{Event, Semaphore};
use greenweave_runtime::{JoinError, iwait, spawn, yield_now};

const SMALL: usize = 10_000;
const LARGE: usize = 100_000;
const BOUND: f64 = 25.0;
/// The one size run under Valgrind.
const UNDER_VALGRIND: usize = 1_000;

#[path = "common/valgrind.rs"]
mod valgrind;

/// The two tests run one at a time: each times itself.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Measures `run` at both sizes until the ratio is within the bound (at most three
/// tries) and asserts it is.
fn assert_linear(what: &str, run: impl Fn(usize) -> Duration) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if valgrind::skip_under_valgrind("the time bound; the scenario runs once, at 1,000") {
        run(UNDER_VALGRIND);
        return;
    }
    let mut tries = Vec::new();
    for _ in 0..3 {
        let small = run(SMALL);
        let large = run(LARGE);
        let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-9);
        tries.push(format!("{small:?} -> {large:?} ({ratio:.1}x)"));
        eprintln!("{what}: {SMALL} in {small:?}, {LARGE} in {large:?} ({ratio:.1}x)");
        if ratio <= BOUND {
            return;
        }
    }
    panic!(
        "{what}: {LARGE} took more than {BOUND} times as long as {SMALL} in every try: {}",
        tries.join(", ")
    );
}

/// Parks `n` greenlets on one event, then kills them newest first (each killed waiter
/// leaves the queue from its far end) and times the kills until all have died.
fn kill_waiters_of_one_event(n: usize) -> Duration {
    let event = Rc::new(Event::new());
    let waiters: Vec<_> = (0..n)
        .map(|_| {
            let event = event.clone();
            spawn(move || event.wait())
        })
        .collect();
    yield_now(); // every waiter starts and parks
    assert_eq!(
        event.waiter_count(),
        n,
        "every greenlet parked on the event"
    );
    let start = Instant::now();
    for waiter in waiters.iter().rev() {
        waiter.kill_nowait();
    }
    for waiter in &waiters {
        waiter.wait();
    }
    let elapsed = start.elapsed();
    assert_eq!(
        event.waiter_count(),
        0,
        "every killed waiter left the queue"
    );
    for waiter in waiters {
        assert!(matches!(waiter.join(), Err(JoinError::Killed)));
    }
    elapsed
}

/// `n` greenlets that each finish when given a permit; `iwait` over their handles,
/// giving out one permit per handle it yields, so it waits for every one of them.
fn iwait_one_finish_at_a_time(n: usize) -> Duration {
    let permits = Rc::new(Semaphore::new(0));
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let permits = permits.clone();
            spawn(move || {
                permits.acquire();
                i
            })
        })
        .collect();
    yield_now(); // every worker starts and parks on the semaphore
    assert_eq!(permits.waiter_count(), n);
    let start = Instant::now();
    permits.release();
    let mut order = Vec::with_capacity(n);
    for finished in iwait(workers) {
        order.push(finished.join().unwrap());
        permits.release();
    }
    let elapsed = start.elapsed();
    // The semaphore wakes its waiters first come, first served.
    assert!(
        order.iter().copied().eq(0..n),
        "handles come in finishing order"
    );
    elapsed
}

#[test]
fn killing_the_waiters_of_one_event_takes_linear_time() {
    assert_linear(
        "killing the waiters of one Event",
        kill_waiters_of_one_event,
    );
}

#[test]
fn iwait_takes_linear_time() {
    assert_linear("iwait", iwait_one_finish_at_a_time);
}
