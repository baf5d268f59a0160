//! std's blocking primitives between greenlets under `patch_all`: locks, condvars,
//! channels, `Once`, `Barrier`, `thread::park`, thread joins. Each test also checks that
//! the hub kept running other greenlets (a ticker) while one waited.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

use common::ticker;
use greenweave_runtime::{joinall, sleep, spawn};

#[test]
fn a_std_mutex_held_across_a_sleep_is_waited_for_cooperatively() {
    greenweave_monkey::patch_all();
    let (ticks, tick) = ticker();
    let lock = Arc::new(Mutex::new(Vec::new()));
    let holders: Vec<_> = (0..10)
        .map(|i| {
            let lock = lock.clone();
            spawn(move || {
                let mut guard = lock.lock().unwrap();
                // Parks while holding the lock: the others wait in the futex hook.
                sleep(Duration::from_millis(5));
                guard.push(i);
            })
        })
        .collect();
    let start = Instant::now();
    joinall(holders).into_iter().for_each(|r| r.unwrap());
    let elapsed = start.elapsed();
    let mut got = lock.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    common::assert_ticked(
        &ticks,
        20,
        &format!("a greenlet waited for the mutex ({elapsed:?})"),
    );
    tick.kill();
}

#[test]
fn a_condvar_wait_timeout_is_notified_by_another_greenlet() {
    greenweave_monkey::patch_all();
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    let waiter = spawn(move || {
        let (lock, cvar) = &*p;
        let start = Instant::now();
        let guard = lock.lock().unwrap();
        let (guard, result) = cvar
            .wait_timeout_while(guard, Duration::from_secs(10), |ready| !*ready)
            .unwrap();
        (*guard, result.timed_out(), start.elapsed())
    });
    let p = pair.clone();
    let notifier = spawn(move || {
        sleep(Duration::from_millis(50));
        *p.0.lock().unwrap() = true;
        p.1.notify_one();
    });
    notifier.join().unwrap();
    let (ready, timed_out, elapsed) = waiter.join().unwrap();
    assert!(ready && !timed_out, "not notified: {ready} {timed_out}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn a_condvar_timeout_elapses_while_other_greenlets_run() {
    greenweave_monkey::patch_all();
    let (ticks, tick) = ticker();
    let pair = (Mutex::new(()), Condvar::new());
    let start = Instant::now();
    let guard = pair.0.lock().unwrap();
    let (_guard, result) = pair
        .1
        .wait_timeout(guard, Duration::from_millis(100))
        .unwrap();
    let elapsed = start.elapsed();
    assert!(result.timed_out());
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    common::assert_ticked(&ticks, 20, "the condvar wait timed out");
    tick.kill();
}

#[test]
fn many_greenlets_receive_from_channels_fed_by_other_threads() {
    greenweave_monkey::patch_all();
    // The senders wait for a gate that a greenlet opens after 20 sleeps on the hub: the
    // values arrive only if the hub kept running while every receiver was parked (a
    // receiver blocking the thread would time out after 10 s instead). No tick count,
    // so no bound a loaded machine or Valgrind could break.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    // Every receiver parks on this thread's one thread::park word at the same time.
    let receivers: Vec<_> = (0..20_u64)
        .map(|i| {
            let (tx, rx) = mpsc::channel::<u64>();
            let gate = gate.clone();
            std::thread::spawn(move || {
                let (open, opened) = &*gate;
                drop(
                    opened
                        .wait_while(open.lock().unwrap(), |open| !*open)
                        .unwrap(),
                );
                std::thread::sleep(Duration::from_millis(3 * i));
                tx.send(i * 10).unwrap();
            });
            spawn(move || rx.recv_timeout(Duration::from_secs(10)))
        })
        .collect();
    let opener = spawn(move || {
        for _ in 0..20 {
            sleep(Duration::from_millis(1));
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    });
    let got: Vec<_> = joinall(receivers).into_iter().map(Result::unwrap).collect();
    let expected: Vec<_> = (0..20).map(|i| Ok(i * 10)).collect();
    assert_eq!(got, expected, "a receiver blocked the hub thread");
    opener.join().unwrap();
}

#[test]
fn thread_joins_from_greenlets_overlap() {
    greenweave_monkey::patch_all();
    let start = Instant::now();
    let joiners: Vec<_> = (0..20_u64)
        .map(|i| {
            spawn(move || {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    i
                })
                .join()
                .unwrap()
            })
        })
        .collect();
    let got: Vec<u64> = joinall(joiners).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    let elapsed = start.elapsed();
    if !common::valgrind::skip_under_valgrind("the 2 s wall-time bound") {
        assert!(
            elapsed < Duration::from_secs(2),
            "20 joins of 200 ms threads took {elapsed:?}"
        );
    }
}

#[test]
fn a_barrier_between_greenlets_and_threads() {
    greenweave_monkey::patch_all();
    let barrier = Arc::new(Barrier::new(8));
    let passed = Arc::new(AtomicUsize::new(0));
    let greenlets: Vec<_> = (0..6)
        .map(|_| {
            let (b, p) = (barrier.clone(), passed.clone());
            spawn(move || {
                b.wait();
                p.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (b, p) = (barrier.clone(), passed.clone());
            std::thread::spawn(move || {
                b.wait();
                p.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    joinall(greenlets).into_iter().for_each(|r| r.unwrap());
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(passed.load(Ordering::SeqCst), 8);
}

#[test]
fn an_rwlock_writer_waits_for_readers_that_sleep() {
    greenweave_monkey::patch_all();
    let lock = Arc::new(RwLock::new(0));
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let l = lock.clone();
            spawn(move || {
                let g = l.read().unwrap();
                sleep(Duration::from_millis(30));
                *g
            })
        })
        .collect();
    let l = lock.clone();
    let writer = spawn(move || {
        greenweave_runtime::yield_now(); // let the readers in first
        *l.write().unwrap() += 1;
    });
    assert!(joinall(readers).into_iter().all(|r| r.unwrap() == 0));
    writer.join().unwrap();
    assert_eq!(*lock.read().unwrap(), 1);
}

thread_local! {
    /// A std lock in the thread's TLS block, where parking_lot's per-thread words live
    /// too: greenlets of the thread share it like any other.
    static LOCAL_LOCK: Mutex<Vec<u32>> = const { Mutex::new(Vec::new()) };
}

#[test]
fn a_std_mutex_in_a_thread_local_is_waited_for_cooperatively() {
    greenweave_monkey::patch_all();
    let (ticks, tick) = ticker();
    let users: Vec<_> = (0..5)
        .map(|i| {
            spawn(move || {
                LOCAL_LOCK.with(|lock| {
                    let mut guard = lock.lock().unwrap();
                    sleep(Duration::from_millis(10)); // held across a park
                    guard.push(i);
                })
            })
        })
        .collect();
    joinall(users).into_iter().for_each(|r| r.unwrap());
    let mut got = LOCAL_LOCK.with(|lock| lock.lock().unwrap().clone());
    got.sort();
    assert_eq!(got, (0..5).collect::<Vec<_>>());
    common::assert_ticked(&ticks, 10, "greenlets waited for the thread-local mutex");
    tick.kill();
}
