//! The cost of the self-wake-ups of greenlets parked on their thread's `thread::park`
//! word (monkey/src/futex/parker.rs): each parked greenlet re-checks after a slice, and
//! those re-checks must leave the thread time for everything else however slow a
//! re-check is.
//!
//! Found under Valgrind with `reqwest::blocking` (crates_http.rs): a re-check (a poll of
//! reqwest's future) cost some 0.3 ms there, and 100 greenlets re-checking every 10 ms
//! took all of the test thread's time. Valgrind runs one thread at a time, so reqwest's
//! runtime thread, which had the answers to deliver, got a tenth of it; requests that
//! take 5 s took 25 s or more, and some waited out reqwest's timeout. Here the slow
//! re-check is a busy wait of 1 ms, natively.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::watch::Watchdog;
use greenweave_runtime::{joinall, sleep, spawn};

const GREENLETS: u32 = 100;
const RECHECK: Duration = Duration::from_millis(1);
const WATCHED: Duration = Duration::from_secs(2);

#[test]
fn slow_rechecks_of_a_hundred_parked_greenlets_take_a_small_share_of_the_thread() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(60), "the re-check share test");
    let rechecks = Rc::new(Cell::new(0_u32));
    let stop = Rc::new(Cell::new(false));
    let parked: Vec<_> = (0..GREENLETS)
        .map(|_| {
            let (rechecks, stop) = (rechecks.clone(), stop.clone());
            spawn(move || {
                // Nobody unparks this thread until the end: every return from the park
                // is a self-wake-up, followed by a re-check that costs RECHECK.
                std::thread::park_timeout(Duration::from_secs(60));
                while !stop.get() {
                    let busy = Instant::now();
                    while busy.elapsed() < RECHECK {}
                    rechecks.set(rechecks.get() + 1);
                    std::thread::park_timeout(Duration::from_secs(60));
                }
            })
        })
        .collect();
    let start = Instant::now();
    sleep(WATCHED);
    let watched = start.elapsed();
    let spent = RECHECK * rechecks.get();
    stop.set(true);
    // The parked greenlets hear of it at their next self-wake-up (at most 1 s away), or
    // sooner through this unpark.
    std::thread::current().unpark();
    joinall(parked).into_iter().for_each(|r| r.unwrap());
    // About a tenth once the cost is measured, plus the first round (100 ms); a fixed
    // 10 ms slice would spend all of it.
    assert!(
        spent < watched / 2,
        "{} re-checks of {RECHECK:?} took {spent:?} of {watched:?}",
        rechecks.get()
    );
}
