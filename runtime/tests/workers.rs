//! `greenweave_runtime::workers`: one hub per OS thread.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use greenweave_runtime::threadpool::spawn_blocking;
use greenweave_runtime::{joinall, sleep, spawn, workers};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn four_workers_each_run_a_hundred_sleeping_greenlets() {
    let start = Instant::now();
    let results = workers(4, |i| {
        let handles: Vec<_> = (0..100)
            .map(|j| {
                spawn(move || {
                    sleep(ms(20));
                    j
                })
            })
            .collect();
        let sum: usize = joinall(handles).into_iter().map(Result::unwrap).sum();
        let name = std::thread::current().name().map(String::from);
        (i, sum, name)
    });
    assert_eq!(results.len(), 4);
    for (i, (index, sum, name)) in results.into_iter().enumerate() {
        assert_eq!(index, i);
        assert_eq!(sum, 4950);
        assert_eq!(name, Some(format!("greenweave-worker-{i}")));
    }
    if !valgrind::skip_under_valgrind(
        "the 1 s bound on four workers' sleeps (Valgrind runs one thread at a time)",
    ) {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_worker_panic_reaches_the_caller_after_the_others_finish() {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        workers(3, move |i| {
            if i == 1 {
                panic!("worker {i} gave up");
            }
            sleep(ms(30));
            f.fetch_add(1, Ordering::SeqCst);
        })
    }))
    .unwrap_err();
    assert_eq!(panic_text(&*err), "worker 1 gave up");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "the others ran to completion"
    );
}

#[test]
fn with_several_panics_the_lowest_numbered_worker_wins() {
    let err = panic::catch_unwind(|| {
        workers(4, |i| {
            // Worker 3 panics first, worker 2 later.
            sleep(ms(if i == 2 { 40 } else { 1 }));
            assert!(i < 2, "worker {i}");
        })
    })
    .unwrap_err();
    assert_eq!(panic_text(&*err), "worker 2");
}

#[test]
fn zero_workers_return_an_empty_vec() {
    let out: Vec<u8> = workers(0, |_| unreachable!("no worker starts"));
    assert!(out.is_empty());
}

#[test]
fn the_callers_other_greenlets_keep_running_while_workers_run() {
    if valgrind::skip_under_valgrind(
        "counts ticks within a time window, which Valgrind's slowdown breaks",
    ) {
        return;
    }
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let ticker = spawn(move || {
        loop {
            sleep(ms(5));
            t.set(t.get() + 1);
        }
    });
    // 5 ms ticks over 200 ms of work: about 40 if the hub ran; 4 is a generous floor
    // for a loaded machine, and 0 or 1 if it was blocked.
    let out = workers(2, |i| {
        std::thread::sleep(ms(200));
        i
    });
    assert_eq!(out, [0, 1]);
    assert!(ticks.get() >= 4, "only {} ticks", ticks.get());
    ticker.kill();
}

#[test]
fn workers_can_use_the_shared_thread_pool() {
    let out = workers(3, |i| {
        let handles: Vec<_> = (0..5)
            .map(|j| spawn(move || spawn_blocking(move || i * 10 + j)))
            .collect();
        joinall(handles)
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    assert_eq!(
        out,
        [
            vec![0, 1, 2, 3, 4],
            vec![10, 11, 12, 13, 14],
            vec![20, 21, 22, 23, 24]
        ]
    );
}
