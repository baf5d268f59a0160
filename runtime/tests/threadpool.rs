//! `greenweave_runtime::threadpool`: spawn_blocking, ThreadPool, BlockingHandle.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use greenweave_runtime::threadpool::{
    BlockingHandle, ThreadPool, default_pool, set_default_pool_size, spawn_blocking,
};
use greenweave_runtime::{Elapsed, JoinError, joinall, sleep, spawn, with_timeout};

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
fn the_caller_parks_while_other_greenlets_keep_running() {
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let ticker = spawn(move || {
        loop {
            sleep(ms(5));
            t.set(t.get() + 1);
        }
    });
    let start = Instant::now();
    let value = spawn_blocking(|| {
        std::thread::sleep(ms(100));
        std::thread::current().name().map(String::from)
    });
    assert!(start.elapsed() >= ms(100));
    assert!(
        value.unwrap().starts_with("greenweave-pool-"),
        "the job ran on a pool thread"
    );
    assert!(
        ticks.get() >= 5,
        "the ticker ticked only {} times during a 100 ms job",
        ticks.get()
    );
    ticker.kill();
}

#[test]
fn fifty_greenlets_on_a_pool_of_fifty_sleep_at_once() {
    let pool = Rc::new(ThreadPool::new(50));
    let start = Instant::now();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let pool = pool.clone();
            spawn(move || {
                pool.run(move || {
                    std::thread::sleep(ms(50));
                    i * 2
                })
            })
        })
        .collect();
    let results: Vec<i32> = joinall(handles).into_iter().map(Result::unwrap).collect();
    assert_eq!(results, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    if !valgrind::skip_under_valgrind("the 1 s bound and the 50 threads need the sleeps to overlap")
    {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "took {:?}",
            start.elapsed()
        );
        assert_eq!(pool.threads(), 50);
    }
    pool.shutdown();
}

#[derive(Debug, PartialEq)]
struct Custom(u32);

#[test]
fn a_panic_in_the_job_resumes_in_the_caller_with_its_payload() {
    let err = panic::catch_unwind(|| spawn_blocking(|| panic::panic_any(Custom(7)))).unwrap_err();
    assert_eq!(err.downcast_ref::<Custom>(), Some(&Custom(7)));

    let pool = ThreadPool::new(1);
    let err = panic::catch_unwind(AssertUnwindSafe(|| pool.run(|| panic!("job {} failed", 3))))
        .unwrap_err();
    assert_eq!(panic_text(&*err), "job 3 failed");
    // The pool thread survived the panic.
    assert_eq!(pool.run(|| 5), 5);
    assert_eq!(pool.threads(), 1);
}

#[test]
fn map_returns_results_in_input_order_running_at_most_size_at_once() {
    let pool = ThreadPool::new(3);
    let running = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (r, m) = (running.clone(), max_seen.clone());
    let out = pool.map(
        move |i: u64| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            // later items finish first
            std::thread::sleep(ms(20 - i));
            r.fetch_sub(1, Ordering::SeqCst);
            i * i
        },
        0..12,
    );
    assert_eq!(out, (0..12).map(|i| i * i).collect::<Vec<_>>());
    assert_eq!(max_seen.load(Ordering::SeqCst), 3);
    assert_eq!(running.load(Ordering::SeqCst), 0);
}

#[test]
fn map_waits_for_every_job_then_resumes_the_first_panic() {
    let pool = ThreadPool::new(2);
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.map(
            move |i: u32| {
                std::thread::sleep(ms(5));
                f.fetch_add(1, Ordering::SeqCst);
                assert!(i != 2 && i != 4, "item {i} is bad");
                i
            },
            0..6,
        )
    }))
    .unwrap_err();
    assert_eq!(panic_text(&*err), "item 2 is bad");
    assert_eq!(finished.load(Ordering::SeqCst), 6);
}

#[test]
fn killing_a_waiting_greenlet_unwinds_it_and_the_job_still_completes() {
    if valgrind::skip_under_valgrind("the kill must land well within the job's 200 ms") {
        return;
    }
    let pool = Rc::new(ThreadPool::new(2));
    let counter = Arc::new(AtomicUsize::new(0));
    let (p, c) = (pool.clone(), counter.clone());
    let waiter = spawn(move || {
        p.run(move || {
            std::thread::sleep(ms(200));
            c.fetch_add(1, Ordering::SeqCst);
        });
        unreachable!("killed while waiting");
    });
    while pool.active() == 0 {
        sleep(ms(1));
    }
    let start = Instant::now();
    waiter.kill();
    assert!(start.elapsed() < ms(100), "kill did not wait for the job");
    assert!(matches!(waiter.join(), Err(JoinError::Killed)));
    assert_eq!(counter.load(Ordering::SeqCst), 0);
    // The hub is fine: no deadlock report, other waits work.
    sleep(ms(1));
    pool.shutdown();
    assert_eq!(
        counter.load(Ordering::SeqCst),
        1,
        "the job ran to completion"
    );
}

#[test]
fn a_timeout_unwinds_the_waiting_greenlet() {
    let start = Instant::now();
    let outcome = with_timeout(ms(20), || spawn_blocking(|| std::thread::sleep(ms(200))));
    assert_eq!(outcome, Err(Elapsed));
    if !valgrind::skip_under_valgrind("the 150 ms bound on the timeout's return") {
        assert!(start.elapsed() < ms(150));
    }
}

#[test]
fn two_os_threads_with_their_own_hubs_share_a_pool() {
    let pool = Arc::new(ThreadPool::new(4));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let handles: Vec<_> = (0..10u64)
                    .map(|i| {
                        let pool = pool.clone();
                        spawn(move || {
                            pool.run(move || {
                                std::thread::sleep(ms(10));
                                t * 100 + i
                            })
                        })
                    })
                    .collect();
                joinall(handles)
                    .into_iter()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<u64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results[0], (0..10).collect::<Vec<_>>());
    assert_eq!(results[1], (100..110).collect::<Vec<_>>());
    pool.shutdown();
}

#[test]
fn a_handle_can_be_joined_on_another_os_thread() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ThreadPool>();
    fn assert_send<T: Send>() {}
    assert_send::<BlockingHandle<String>>();

    let pool = ThreadPool::new(1);
    let handle = pool.spawn(|| {
        std::thread::sleep(ms(20));
        String::from("made on the pool")
    });
    assert!(!handle.is_finished());
    let joined = std::thread::spawn(move || handle.join().unwrap());
    assert_eq!(joined.join().unwrap(), "made on the pool");
}

#[test]
fn threads_start_on_demand_and_counts_reflect_the_queue() {
    let pool = ThreadPool::new(2);
    assert_eq!(pool.threads(), 0);
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let rx = rx.clone();
            pool.spawn(move || rx.lock().unwrap().recv().unwrap())
        })
        .collect();
    // The first job blocks in recv holding the receiver's mutex, the second waits for
    // that mutex: both threads are busy, three jobs wait.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.active() < 2 {
        assert!(Instant::now() < deadline, "{pool:?}");
        std::thread::yield_now();
    }
    assert_eq!((pool.threads(), pool.active(), pool.queued()), (2, 2, 3));
    for _ in 0..5 {
        tx.send(()).unwrap();
    }
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!((pool.queued(), pool.active(), pool.threads()), (0, 0, 2));
    assert!(format!("{pool:?}").contains("size: 2"));
}

#[test]
fn shutdown_runs_the_queued_jobs_then_refuses_new_ones() {
    let pool = ThreadPool::new(1);
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let done = done.clone();
        drop(pool.spawn(move || {
            std::thread::sleep(ms(5));
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    pool.shutdown();
    assert_eq!(done.load(Ordering::SeqCst), 4);
    assert_eq!(pool.threads(), 0);
    pool.shutdown(); // again: nothing to wait for
    let err = panic::catch_unwind(AssertUnwindSafe(|| pool.run(|| ()))).unwrap_err();
    assert!(
        panic_text(&*err).contains("shut down"),
        "{}",
        panic_text(&*err)
    );
}

#[test]
fn dropping_a_pool_does_not_wait_but_its_queued_jobs_still_run() {
    let (tx, rx) = mpsc::channel();
    let pool = ThreadPool::new(1);
    for i in 0..3 {
        let tx = tx.clone();
        drop(pool.spawn(move || {
            std::thread::sleep(ms(30));
            tx.send(i).unwrap();
        }));
    }
    let start = Instant::now();
    drop(pool);
    assert!(
        start.elapsed() < ms(60),
        "drop waited {:?}",
        start.elapsed()
    );
    let got: Vec<i32> = (0..3)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    assert_eq!(got, [0, 1, 2]);
}

#[test]
fn shutdown_from_a_pool_thread_panics_instead_of_hanging() {
    let pool = Arc::new(ThreadPool::new(1));
    let p = pool.clone();
    let err = panic::catch_unwind(AssertUnwindSafe(|| pool.run(move || p.shutdown()))).unwrap_err();
    assert!(
        panic_text(&*err).contains("would wait for itself"),
        "{}",
        panic_text(&*err)
    );
}

#[test]
fn a_pool_of_zero_threads_is_refused() {
    let err = panic::catch_unwind(|| ThreadPool::new(0)).unwrap_err();
    assert!(panic_text(&*err).contains("at least one thread"));
}

#[test]
fn the_default_pool_is_sized_before_first_use_only() {
    spawn_blocking(|| ());
    assert!(!set_default_pool_size(3), "the default pool already exists");
    assert!(default_pool().size() >= 10);
    assert!(default_pool().threads() >= 1);
}
