//! std's per-thread `thread::park` word, shared by the greenlets of a thread under
//! `patch_all` (see monkey/src/futex/parker.rs): the two ways sharing it went wrong
//! before the word kept its rule, found with `reqwest::blocking` (crates_http.rs).
//!
//! 1. std's `futex_wait` reads the word *before* making the system call and returns at
//!    once if it does not hold PARKED. A greenlet entering `thread::park()` while
//!    another greenlet of its thread was parked moved the word from PARKED to -2, so
//!    `park`'s loop spun in user space, never reaching the hook, until another thread
//!    unparked: the hub stalled (and hung for ever if only a greenlet could unpark).
//! 2. An `unpark` while greenlets run sets NOTIFIED without a wake system call, and the
//!    next `park`/`park_timeout` of the running greenlet may take that token in user
//!    space: the greenlet it was meant for must still hear of it (here, well before its
//!    5 s timeout).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::watch::{StallMeter, Watchdog};
use greenweave_runtime::{joinall, sleep, spawn};

#[test]
fn two_greenlets_in_recv_without_timeout_do_not_stall_the_hub() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(30), "two recv() greenlets");
    let meter = StallMeter::start();
    let receivers: Vec<_> = (0..2_u64)
        .map(|i| {
            let (tx, rx) = mpsc::channel::<u64>();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                tx.send(i).unwrap();
            });
            // recv() without a timeout: std's mpsc waits in thread::park().
            spawn(move || rx.recv().unwrap())
        })
        .collect();
    let got: Vec<u64> = joinall(receivers).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, vec![0, 1]);
    let stall = meter.stop();
    // Generous for a loaded machine (50 ms failed at load 8); a recv() that blocked the thread would stall it for the sender's whole 300 ms.
    assert!(
        stall.gap < Duration::from_millis(200),
        "the hub stalled: {stall:?}"
    );
}

#[test]
fn a_greenlet_can_feed_two_greenlets_in_recv() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(10), "greenlet-fed recv()");
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel::<u64>()).unzip();
    let receivers: Vec<_> = rxs
        .into_iter()
        .map(|rx| spawn(move || rx.recv().unwrap()))
        .collect();
    let sender = spawn(move || {
        sleep(Duration::from_millis(50));
        for (i, tx) in txs.iter().enumerate() {
            tx.send(i as u64).unwrap();
        }
    });
    sender.join().unwrap();
    let got: Vec<u64> = joinall(receivers).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, vec![0, 1]);
}

#[test]
fn no_unpark_is_lost_among_greenlets_in_park_timeout() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(120), "park_timeout rounds");
    let this_thread = std::thread::current();
    for round in 0..20 {
        let start = Instant::now();
        let waiters: Vec<_> = (0..50_u32)
            .map(|i| {
                let ready = Arc::new(AtomicBool::new(false));
                let (r, unparker) = (ready.clone(), this_thread.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_micros(100 * u64::from(i % 20)));
                    r.store(true, Ordering::SeqCst);
                    unparker.unpark();
                });
                spawn(move || {
                    // What every user of park_timeout does (reqwest's blocking::wait,
                    // mpsc): re-check, with some work between the checks (a future's
                    // poll), then park with a timeout.
                    while !ready.load(Ordering::SeqCst) {
                        let busy = Instant::now();
                        while busy.elapsed() < Duration::from_micros(20) {}
                        std::thread::park_timeout(Duration::from_secs(5));
                    }
                })
            })
            .collect();
        joinall(waiters).into_iter().for_each(|r| r.unwrap());
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "round {round} took {took:?}: an unpark was lost and a greenlet waited out its timeout"
        );
    }
}
