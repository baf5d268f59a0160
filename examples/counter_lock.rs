//! The seed's shared-counter race, made correct with a `Mutex` across greenlets.
//!
//! ```python
//! g_num = 0
//! def work1(num):
//!     global g_num
//!     for i in range(num):
//!         mutex.acquire()
//!         g_num += 1
//!         mutex.release()
//! ```
//!
//! Greenlets only switch at blocking calls, so a bare `g_num += 1` cannot race; the race
//! appears when the read and the write of the increment are split by a switch (here a
//! `yield_now()` every 1000 increments, standing in for any blocking call). Ten
//! greenlets do 100,000 increments each: first on a plain `Cell` (updates are lost),
//! then inside a `greenweave::sync::Mutex` (none are).
//!
//! ```text
//! $ cargo run --example counter_lock
//! without a lock: g_num = 100000 (900000 increments lost)
//! with a Mutex:   g_num = 1000000
//! ```
//!
//! The first number is far below 1,000,000 (each greenlet writes back a value read
//! before the others ran); the second is always exactly 1,000,000.

use std::cell::Cell;
use std::rc::Rc;

use greenweave::sync::Mutex;
use greenweave::{joinall, spawn, yield_now};

const GREENLETS: u64 = 10;
const PER_GREENLET: u64 = 100_000;

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    // Unprotected: read, switch, write back a stale value.
    let racy = Rc::new(Cell::new(0u64));
    let workers = (0..GREENLETS).map(|_| {
        let g_num = racy.clone();
        spawn(move || {
            for i in 0..PER_GREENLET {
                let seen = g_num.get();
                if i % 1000 == 0 {
                    yield_now();
                }
                g_num.set(seen + 1);
            }
        })
    });
    for r in joinall(workers.collect::<Vec<_>>()) {
        r.expect("a worker panicked");
    }
    let total = GREENLETS * PER_GREENLET;
    println!(
        "without a lock: g_num = {} ({} increments lost)",
        racy.get(),
        total - racy.get()
    );

    // Protected: the switch happens while holding the lock; others wait for it.
    let g_num = Rc::new(Mutex::new(0u64));
    let workers = (0..GREENLETS).map(|_| {
        let g_num = g_num.clone();
        spawn(move || {
            for i in 0..PER_GREENLET {
                let mut n = g_num.lock();
                let seen = *n;
                if i % 1000 == 0 {
                    yield_now();
                }
                *n = seen + 1;
            }
        })
    });
    for r in joinall(workers.collect::<Vec<_>>()) {
        r.expect("a worker panicked");
    }
    let n = *g_num.lock();
    println!("with a Mutex:   g_num = {n}");
    assert_eq!(n, total);
}
