//! `greenweave_runtime::pool`: Pool and Group.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::pool::{Group, Pool};
use greenweave_runtime::{JoinError, current_info, sleep, yield_now};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string>")
}

#[test]
fn pool_of_3_never_runs_more_than_3_of_10_jobs() {
    let pool = Pool::new(3);
    let running = Rc::new(Cell::new(0));
    let max_seen = Rc::new(Cell::new(0));
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let (running, max_seen) = (running.clone(), max_seen.clone());
            pool.spawn(move || {
                running.set(running.get() + 1);
                max_seen.set(max_seen.get().max(running.get()));
                for _ in 0..3 {
                    yield_now();
                }
                running.set(running.get() - 1);
                i
            })
        })
        .collect();
    let results: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, (0..10).collect::<Vec<_>>());
    assert_eq!(max_seen.get(), 3);
    assert_eq!(running.get(), 0);
    assert!(pool.is_empty());
}

#[test]
fn map_imap_and_imap_unordered_run_at_most_size_jobs_at_once() {
    let pool = Pool::new(3);
    let running = Rc::new(Cell::new(0));
    let max_seen = Rc::new(Cell::new(0));
    let job = {
        let (running, max_seen) = (running.clone(), max_seen.clone());
        move |i: u32| {
            running.set(running.get() + 1);
            max_seen.set(max_seen.get().max(running.get()));
            sleep(ms(u64::from(i % 4)));
            running.set(running.get() - 1);
            i
        }
    };
    let mut unordered: Vec<u32> = pool.imap_unordered(job.clone(), 0..10).collect();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..10).collect::<Vec<_>>());
    assert_eq!(max_seen.replace(0), 3);
    assert_eq!(
        pool.imap(job.clone(), 0..10).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(max_seen.replace(0), 3);
    assert_eq!(pool.map(job, 0..10), (0..10).collect::<Vec<_>>());
    assert_eq!(max_seen.get(), 3);
}

#[test]
fn spawn_blocks_the_caller_while_the_pool_is_full() {
    let pool = Pool::new(1);
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let first = pool.spawn(move || {
        l.borrow_mut().push("first starts");
        yield_now();
        l.borrow_mut().push("first ends");
    });
    assert!(pool.is_full());
    log.borrow_mut().push("main calls spawn");
    let l = log.clone();
    let second = pool.spawn(move || l.borrow_mut().push("second runs"));
    log.borrow_mut().push("spawn returned");
    second.join().unwrap();
    assert!(first.is_finished());
    assert_eq!(
        *log.borrow(),
        [
            "main calls spawn",
            "first starts",
            "first ends",
            "spawn returned",
            "second runs"
        ]
    );
}

#[test]
fn map_returns_results_in_input_order() {
    let pool = Pool::new(4);
    // The first inputs sleep longest, so they finish last.
    let out = pool.map(
        |n: u64| {
            sleep(ms(10 * (8 - n)));
            n * 100
        },
        0..8,
    );
    assert_eq!(out, [0, 100, 200, 300, 400, 500, 600, 700]);
    assert!(pool.is_empty());
}

#[test]
fn imap_yields_in_input_order_as_results_become_available() {
    let pool = Pool::new(2);
    let ended = Rc::new(Cell::new(0));
    let e = ended.clone();
    let mut it = pool.imap(
        move |n: u64| {
            if n > 0 {
                sleep(ms(40 - 10 * n));
            }
            e.set(e.get() + 1);
            n
        },
        [0, 1, 2, 3],
    );
    // The first result comes as soon as its job is done, before the others end.
    assert_eq!(it.next(), Some(0));
    assert!(ended.get() < 4, "imap waited for everything");
    let rest: Vec<u64> = it.collect();
    assert_eq!(rest, [1, 2, 3]);
    assert_eq!(ended.get(), 4);
}

#[test]
fn imap_unordered_yields_in_completion_order() {
    let pool = Pool::new(4);
    let out: Vec<u64> = pool
        .imap_unordered(
            |n: u64| {
                sleep(ms(n));
                n
            },
            [80, 20, 60, 40],
        )
        .collect();
    assert_eq!(out, [20, 40, 60, 80]);
}

#[test]
fn dropping_an_imap_kills_its_outstanding_jobs() {
    let pool = Pool::new(3);
    let completed = Rc::new(Cell::new(0));
    let c = completed.clone();
    let mut it = pool.imap(
        move |n: u64| {
            sleep(ms(n));
            c.set(c.get() + 1);
        },
        [1, 60_000, 60_000, 60_000],
    );
    assert_eq!(it.next(), Some(()));
    drop(it);
    assert!(
        pool.join_timeout(Duration::from_secs(5)),
        "jobs were not killed"
    );
    assert_eq!(completed.get(), 1);
}

#[test]
fn apply_runs_f_in_a_pool_greenlet_and_returns_its_value() {
    let pool = Pool::new(2);
    let me = current_info().id;
    let p = pool.clone();
    let (value, ran_in, members_seen) = pool.apply(move || (42, current_info().id, p.len()));
    assert_eq!(value, 42);
    assert_ne!(ran_in, me);
    assert_eq!(members_seen, 1);
    assert!(pool.is_empty());
}

#[test]
fn apply_from_a_member_of_a_full_pool_runs_inline() {
    let pool = Pool::new(1);
    let p = pool.clone();
    let h = pool.spawn(move || {
        let me = current_info().id;
        p.apply(move || current_info().id == me)
    });
    assert!(h.join().unwrap());
}

#[test]
fn a_panicking_job_surfaces_to_the_caller_and_frees_its_slot() {
    let pool = Pool::new(1);
    // spawn: the handle reports the panic.
    let h = pool.spawn(|| -> u32 { panic!("job exploded") });
    match h.join() {
        Err(JoinError::Panicked(p)) => assert_eq!(panic_message(&*p), "job exploded"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(pool.free_count(), 1);
    // apply: the panic resumes in the caller with the same payload.
    let caught = panic::catch_unwind(AssertUnwindSafe(|| pool.apply(|| panic!("apply exploded"))));
    assert_eq!(panic_message(&*caught.unwrap_err()), "apply exploded");
    assert_eq!(pool.free_count(), 1);
    // The freed slot is usable.
    assert_eq!(pool.apply(|| 5), 5);
}

#[test]
fn a_panic_in_map_resumes_in_the_caller_after_killing_the_other_jobs() {
    let pool = Pool::new(3);
    let finished = Rc::new(Cell::new(0));
    let f = finished.clone();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.map(
            move |n: u32| {
                if n == 1 {
                    panic!("bad input {n}");
                }
                sleep(Duration::from_secs(60));
                f.set(f.get() + 1);
            },
            0..6,
        )
    }));
    assert_eq!(panic_message(&*caught.unwrap_err()), "bad input 1");
    assert!(pool.is_empty(), "the other jobs were killed and waited for");
    assert_eq!(finished.get(), 0);
}

#[test]
fn kill_kills_every_member_and_frees_the_slots() {
    let pool = Pool::new(2);
    let started = Rc::new(Cell::new(0));
    let spawn_sleeper = || {
        let started = started.clone();
        pool.spawn(move || {
            started.set(started.get() + 1);
            sleep(Duration::from_secs(60));
        })
    };
    let a = spawn_sleeper();
    let b = spawn_sleeper();
    yield_now(); // both start and block
    assert_eq!(started.get(), 2);
    assert!(pool.is_full());
    pool.kill();
    assert_eq!(pool.free_count(), 2);
    assert!(matches!(a.join(), Err(JoinError::Killed)));
    assert!(matches!(b.join(), Err(JoinError::Killed)));

    // Members that have not started yet never run.
    let c = spawn_sleeper();
    pool.kill();
    assert!(matches!(c.join(), Err(JoinError::Killed)));
    assert_eq!(started.get(), 2);
    assert!(pool.is_empty());
}

#[test]
fn join_waits_for_every_member() {
    let pool = Pool::new(3);
    let done = Rc::new(Cell::new(0));
    let handles: Vec<_> = (0..7u64)
        .map(|i| {
            let done = done.clone();
            pool.spawn(move || {
                sleep(ms(5 * i));
                done.set(done.get() + 1);
            })
        })
        .collect();
    pool.join();
    assert_eq!(done.get(), 7);
    assert!(pool.is_empty());
    assert!(handles.iter().all(|h| h.is_finished()));
}

#[test]
fn join_timeout_and_wait_available_time_out_while_busy() {
    let pool = Pool::new(1);
    let sleeper = pool.spawn(|| sleep(Duration::from_secs(60)));
    let start = Instant::now();
    assert!(!pool.wait_available(Some(ms(30))));
    assert!(start.elapsed() >= ms(30));
    assert!(!pool.join_timeout(ms(10)));
    assert!(!pool.wait_available(Some(Duration::ZERO)));
    sleeper.kill();
    assert!(pool.wait_available(Some(Duration::ZERO)));
    assert!(pool.wait_available(None));
    assert!(pool.join_timeout(Duration::ZERO));
}

#[test]
fn wait_available_returns_when_a_slot_frees() {
    let pool = Pool::new(1);
    pool.spawn(|| sleep(ms(20)));
    assert!(pool.wait_available(Some(Duration::from_secs(10))));
    assert_eq!(pool.free_count(), 1);
}

#[test]
fn try_spawn_gives_the_closure_back_when_full() {
    let pool = Pool::new(1);
    let busy = pool.try_spawn(|| sleep(ms(10))).expect("a slot is free");
    let text = String::from("still here");
    let err = pool.try_spawn(move || text).expect_err("the pool is full");
    assert_eq!(err.to_string(), "the pool is full");
    let job = err.into_inner();
    assert_eq!(job(), "still here");
    busy.join().unwrap();
    assert_eq!(pool.try_spawn(|| 3).unwrap().join().unwrap(), 3);
}

#[test]
fn group_is_an_unbounded_pool() {
    let group = Group::new();
    assert_eq!(group.size(), None);
    let handles: Vec<_> = (0..100).map(|i| group.spawn(move || i)).collect();
    // `spawn` never blocked: none of them has run yet.
    assert_eq!(group.len(), 100);
    assert!(!group.is_full());
    assert_eq!(group.free_count(), usize::MAX);
    group.join();
    assert!(group.is_empty());
    let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 4950);

    assert_eq!(group.map(|x: i32| x * 2, [1, 2, 3]), [2, 4, 6]);
    assert_eq!(group.apply(|| "applied"), "applied");
    let sleeper = group.spawn(|| sleep(Duration::from_secs(60)));
    group.kill();
    assert!(matches!(sleeper.join(), Err(JoinError::Killed)));
}

#[test]
fn a_member_waiting_for_its_own_full_pool_is_reported_as_a_deadlock() {
    let pool = Pool::new(1);
    let p = pool.clone();
    let member = pool.spawn(move || p.spawn(|| ()).join().unwrap());
    let report = panic::catch_unwind(AssertUnwindSafe(|| member.join())).unwrap_err();
    let report = panic_message(&*report);
    assert!(report.contains("deadlock"), "{report}");
    assert!(
        report.contains("a free slot in Pool(1) created at runtime/tests/pool.rs"),
        "{report}"
    );
}

#[test]
#[should_panic(expected = "at least one slot")]
fn a_pool_of_zero_is_refused() {
    let _ = Pool::new(0);
}

#[test]
fn shape_pool_of_100_runs_1000_sleeping_jobs_concurrently() {
    let pool = Pool::new(100);
    let start = Instant::now();
    for _ in 0..1000 {
        pool.spawn(|| sleep(ms(50)));
    }
    pool.join();
    let elapsed = start.elapsed();
    // Ten rounds of 100: at least 500 ms by design; 50 s if it ran them one by one.
    assert!(elapsed >= ms(500), "{elapsed:?}: ran more than 100 at once");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}
