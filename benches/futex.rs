//! What the futex hook costs and what it buys.
//!
//! Patching is process-wide and cannot be undone, so the functions run in this order
//! (one criterion target, `futex`):
//!
//! 1. `syscall_hook/original_getppid`: `monkey::original::syscall(SYS_getppid)`, libc's
//!    `syscall` through the cached `dlsym` pointer.
//! 2. `syscall_hook/hook_getppid_unpatched`: `libc::syscall(SYS_getppid)`, which is the
//!    hook (the program's definition wins): a compare of the number, then libc's.
//! 3. `std_mutex/uncontended_unpatched`: lock and unlock of an uncontended
//!    `std::sync::Mutex` (no system call at all).
//! 4. `std_handoff/os_threads`: a `Mutex` + `Condvar` hand-over between two OS threads:
//!    each waits for its turn and hands the turn back; one iteration is a round trip.
//! 5. `patch_all()`.
//! 6. `syscall_hook/hook_getppid_patched` (in a greenlet), `std_mutex/uncontended_patched`
//!    (in a greenlet), and `std_handoff/greenlets`: the same hand-over between two
//!    greenlets of one hub, each wait now parking the greenlet in the futex hook.
//!
//! Targets: the hook's pass-through and an uncontended lock within noise of the real
//! ones (≤ 5 ns); the greenlet hand-over faster than the threads'. Run with
//! `cargo bench --bench futex`.

// `criterion_group!` and `criterion_main!` generate public items without doc comments,
// which the workspace's `missing_docs = "deny"` would reject.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use greenweave::spawn;

fn getppid_original(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        // SAFETY: getppid takes no arguments.
        black_box(unsafe {
            greenweave::monkey::original::syscall(libc::SYS_getppid, 0, 0, 0, 0, 0, 0)
        });
    }
    start.elapsed()
}

fn getppid_hook(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        // SAFETY: getppid takes no arguments.
        black_box(unsafe { libc::syscall(black_box(libc::SYS_getppid)) });
    }
    start.elapsed()
}

fn mutex_uncontended(iters: u64) -> Duration {
    let lock = Mutex::new(0_u64);
    let start = Instant::now();
    for _ in 0..iters {
        *black_box(&lock).lock().unwrap() += 1;
    }
    start.elapsed()
}

/// A turn two parties pass back and forth through a `Mutex` + `Condvar`.
struct Turn {
    count: Mutex<u64>,
    changed: Condvar,
}

impl Turn {
    /// Takes `rounds` turns of parity `side`: waits for its turn, then passes it.
    fn play(&self, side: u64, rounds: u64) {
        let mut count = self.count.lock().unwrap();
        for _ in 0..rounds {
            while *count % 2 != side {
                count = self.changed.wait(count).unwrap();
            }
            *count += 1;
            self.changed.notify_one();
        }
    }
}

/// `iters` round trips between two parties, the other one started by `start_other`.
fn handoff(iters: u64, start_other: impl FnOnce(Arc<Turn>, u64) -> Box<dyn FnOnce()>) -> Duration {
    let turn = Arc::new(Turn {
        count: Mutex::new(0),
        changed: Condvar::new(),
    });
    let start = Instant::now();
    let finish = start_other(turn.clone(), iters);
    turn.play(0, iters);
    finish();
    start.elapsed()
}

fn on_thread(turn: Arc<Turn>, iters: u64) -> Box<dyn FnOnce()> {
    let t = std::thread::spawn(move || turn.play(1, iters));
    Box::new(move || t.join().unwrap())
}

fn on_greenlet(turn: Arc<Turn>, iters: u64) -> Box<dyn FnOnce()> {
    let g = spawn(move || turn.play(1, iters));
    Box::new(move || g.join().unwrap())
}

/// Runs `f` in a greenlet of this thread's hub.
fn in_greenlet(f: fn(u64) -> Duration) -> impl FnMut(u64) -> Duration {
    move |iters| spawn(move || f(iters)).join().unwrap()
}

fn futex(c: &mut Criterion) {
    let mut group = c.benchmark_group("syscall_hook");
    group.bench_function("original_getppid", |b| b.iter_custom(getppid_original));
    group.bench_function("hook_getppid_unpatched", |b| b.iter_custom(getppid_hook));
    group.finish();
    let mut group = c.benchmark_group("std_mutex");
    group.bench_function("uncontended_unpatched", |b| {
        b.iter_custom(mutex_uncontended)
    });
    group.finish();
    let mut group = c.benchmark_group("std_handoff");
    group.bench_function("os_threads", |b| b.iter_custom(|i| handoff(i, on_thread)));
    group.finish();

    greenweave::monkey::patch_all();
    let mut group = c.benchmark_group("syscall_hook");
    group.bench_function("hook_getppid_patched", |b| {
        b.iter_custom(in_greenlet(getppid_hook))
    });
    group.finish();
    let mut group = c.benchmark_group("std_mutex");
    group.bench_function("uncontended_patched", |b| {
        b.iter_custom(in_greenlet(mutex_uncontended))
    });
    group.finish();
    let mut group = c.benchmark_group("std_handoff");
    group.bench_function("greenlets", |b| {
        b.iter_custom(|i| spawn(move || handoff(i, on_greenlet)).join().unwrap())
    });
    group.finish();
}

#[path = "common/config.rs"]
mod config;

criterion_group! {
    name = benches;
    config = config::standard();
    targets = futex
}
criterion_main!(benches);
