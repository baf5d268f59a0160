//! The runtime's hot paths, side by side with OS threads, tokio, may and crossbeam in
//! the same run. Every group holds all its peers as functions, so one run measures them
//! on the same machine state; every side does the same work per iteration, and warm-up
//! (criterion's, plus any untimed setup named below) is excluded the same way.
//!
//! - group `spawn_join`: spawn a trivial task and wait for its result.
//!   `greenweave` (`spawn` + `join`, warm stack pool), `std_thread` (`thread::spawn` +
//!   `join`), `tokio_current_thread` (`tokio::spawn` + `.await` on a `current_thread`
//!   runtime, inside one `block_on`), `may` (`coroutine::spawn` + `join` from inside a
//!   coroutine, so both run on may's one worker thread).
//! - group `yield`: two tasks yielding to each other; one iteration is one yield.
//!   `greenweave` (`yield_now`), `tokio_current_thread` (`tokio::task::yield_now`;
//!   tokio's cooperative budget does not apply to `yield_now`, which always yields),
//!   `may` (`coroutine::yield_now`, two coroutines on may's one worker),
//!   `std_thread_2` (`std::thread::yield_now`, i.e. `sched_yield`, in two OS threads
//!   both pinned to the same CPU so that each yield can hand the CPU to the partner; if
//!   pinning fails they run unpinned and a yield is then only a system call).
//! - group `ping_pong`: one round trip through a handoff: send a value to a partner,
//!   which sends it back. `greenweave_channel` (`queue::Channel`), `greenweave_queue1`
//!   (two `Queue(1)`s), `std_sync_channel` (two OS threads on `sync_channel(0)`),
//!   `crossbeam_bounded0` (two OS threads on `crossbeam_channel::bounded(0)`),
//!   `tokio_mpsc` (two `mpsc::channel(1)` on a `current_thread` runtime), `may_mpsc`
//!   (two coroutines on may's one worker, two `may::sync::mpsc::channel`s: may's mpsc is
//!   unbounded, but a round trip keeps at most one value in flight, so it is the same
//!   exchange).
//! - group `spawn_blocking`: run a trivial closure on a thread pool and wait for its
//!   value. `greenweave` (`threadpool::spawn_blocking` from the main greenlet: the
//!   greenlet parks, the hub sleeps in `epoll_wait` until the pool thread wakes it),
//!   `tokio` (`tokio::task::spawn_blocking(..).await` inside `block_on` on a
//!   `current_thread` runtime). One untimed call first starts a pool thread on each.
//!
//! may is configured with `may::config().set_workers(1)` (one scheduler thread; may also
//! runs a timer thread of its own) and `set_worker_pin(false)` (may pins its workers to
//! cores by default; nothing else here is pinned, except `std_thread_2` as said). may
//! coroutines are measured from inside a coroutine: the timed loop runs on may's worker,
//! and only the elapsed time comes back to criterion's thread.
//!
//! Targets: spawn+join ≤ 150 ns; yield ≤ 20 ns; ping-pong ≤ 50 ns, ≥ 5× faster than
//! may and ≥ 10× faster than tokio. Figures in BENCHMARKS.md
//! (`cargo run --release -p xtask -- bench-report`). Run with `cargo bench --bench runtime`.

// `criterion_group!` and `criterion_main!` generate public items without doc comments,
// which the workspace's `missing_docs = "deny"` would reject.
#![allow(missing_docs)]

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use greenweave::queue::{Channel, Queue};

#[path = "common/handoff.rs"]
mod handoff;
use handoff::{greenweave_ping_pong, greenweave_yields};

fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Sets may up for the single-thread comparisons; must run before may's first use (its
/// scheduler starts then and reads the configuration once).
fn may_single_worker() {
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
}

/// Spawns a may coroutine.
fn may_go<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    may_single_worker();
    // may's `spawn` asks for two things: (1) no thread-local reference held across a
    // blocking point (these closures hold none, and with one worker nothing migrates);
    // (2) the coroutine fits its 32 KiB stack (a few small frames, no recursion).
    // SAFETY: both hold, as just said.
    unsafe { may::coroutine::spawn(f) }
}

/// Runs `f` in a may coroutine and returns its value: timed loops run on may's worker.
fn in_may<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    may_go(f).join().expect("the may coroutine does not panic")
}

/// The first CPU this process may run on, to pin both `std_thread_2` threads to.
fn first_allowed_cpu() -> Option<usize> {
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    // SAFETY: `set` was filled in by the kernel; `CPU_ISSET` only reads it.
    (0..libc::CPU_SETSIZE as usize).find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
}

/// Pins the calling thread to `cpu`; returns whether it worked.
fn pin_to(cpu: usize) -> bool {
    // SAFETY: as in `first_allowed_cpu`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < `CPU_SETSIZE` (it came from `first_allowed_cpu`); writes `set` only.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; 0 is the calling thread.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0 }
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    // Warm the stack pool and the hub.
    greenweave::spawn(|| 1).join().unwrap();
    group.bench_function("greenweave", |b| {
        b.iter(|| greenweave::spawn(|| black_box(1)).join().unwrap());
    });
    group.bench_function("std_thread", |b| {
        b.iter(|| thread::spawn(|| black_box(1)).join().unwrap());
    });
    let rt = tokio_current_thread();
    group.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    tokio::spawn(async { black_box(1) }).await.unwrap();
                }
                start.elapsed()
            })
        });
    });
    // Warm may's scheduler and coroutine pool.
    in_may(|| may_go(|| 1).join().unwrap());
    group.bench_function("may", |b| {
        b.iter_custom(|iters| {
            in_may(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(may_go(|| black_box(1)).join().unwrap());
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

fn yields(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield");
    group.bench_function("greenweave", |b| b.iter_custom(greenweave_yields));
    let rt = tokio_current_thread();
    group.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let stop = Rc::new(Cell::new(false));
                let s = stop.clone();
                let local = tokio::task::LocalSet::new();
                local
                    .run_until(async move {
                        let partner = tokio::task::spawn_local(async move {
                            while !s.get() {
                                tokio::task::yield_now().await;
                            }
                        });
                        tokio::task::yield_now().await;
                        let rounds = iters.div_ceil(2);
                        let start = Instant::now();
                        for _ in 0..rounds {
                            tokio::task::yield_now().await;
                        }
                        let elapsed = start.elapsed();
                        stop.set(true);
                        partner.await.unwrap();
                        elapsed.mul_f64(iters as f64 / (2 * rounds) as f64)
                    })
                    .await
            })
        });
    });
    group.bench_function("may", |b| {
        b.iter_custom(|iters| {
            in_may(move || {
                let stop = Arc::new(AtomicBool::new(false));
                let s = stop.clone();
                let partner = may_go(move || {
                    while !s.load(Ordering::Relaxed) {
                        may::coroutine::yield_now();
                    }
                });
                may::coroutine::yield_now();
                let rounds = iters.div_ceil(2);
                let start = Instant::now();
                for _ in 0..rounds {
                    may::coroutine::yield_now();
                }
                let elapsed = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                partner.join().unwrap();
                elapsed.mul_f64(iters as f64 / (2 * rounds) as f64)
            })
        });
    });
    let cpu = first_allowed_cpu();
    group.bench_function("std_thread_2", |b| {
        b.iter_custom(|iters| {
            // Both threads are new (criterion's thread stays unpinned), pinned to one CPU.
            let stop = Arc::new(AtomicBool::new(false));
            let started = Arc::new(AtomicBool::new(false));
            let (s, st) = (stop.clone(), started.clone());
            let partner = thread::spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                st.store(true, Ordering::Release);
                while !s.load(Ordering::Relaxed) {
                    thread::yield_now();
                }
            });
            let measurer = thread::spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                while !started.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                let rounds = iters.div_ceil(2);
                let start = Instant::now();
                for _ in 0..rounds {
                    thread::yield_now();
                }
                let elapsed = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                elapsed.mul_f64(iters as f64 / (2 * rounds) as f64)
            });
            let elapsed = measurer.join().unwrap();
            partner.join().unwrap();
            elapsed
        });
    });
    group.finish();
}

fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping_pong");
    group.bench_function("greenweave_channel", |b| {
        b.iter_custom(|iters| greenweave_ping_pong(iters, Channel::new))
    });
    group.bench_function("greenweave_queue1", |b| {
        b.iter_custom(|iters| greenweave_ping_pong(iters, || Queue::new(1)))
    });
    group.bench_function("std_sync_channel", |b| {
        b.iter_custom(|iters| {
            let (to_tx, to_rx) = sync_channel::<u64>(0);
            let (from_tx, from_rx) = sync_channel::<u64>(0);
            let partner = thread::spawn(move || {
                while let Ok(v) = to_rx.recv() {
                    from_tx.send(v).unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                to_tx.send(i).unwrap();
                black_box(from_rx.recv().unwrap());
            }
            let elapsed = start.elapsed();
            drop(to_tx);
            partner.join().unwrap();
            elapsed
        });
    });
    let rt = tokio_current_thread();
    group.bench_function("tokio_mpsc", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let (to_tx, mut to_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let (from_tx, mut from_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let partner = tokio::spawn(async move {
                    while let Some(v) = to_rx.recv().await {
                        from_tx.send(v).await.unwrap();
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    to_tx.send(i).await.unwrap();
                    black_box(from_rx.recv().await.unwrap());
                }
                let elapsed = start.elapsed();
                drop(to_tx);
                partner.await.unwrap();
                elapsed
            })
        });
    });
    group.bench_function("crossbeam_bounded0", |b| {
        b.iter_custom(|iters| {
            let (to_tx, to_rx) = crossbeam_channel::bounded::<u64>(0);
            let (from_tx, from_rx) = crossbeam_channel::bounded::<u64>(0);
            let partner = thread::spawn(move || {
                while let Ok(v) = to_rx.recv() {
                    from_tx.send(v).unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                to_tx.send(i).unwrap();
                black_box(from_rx.recv().unwrap());
            }
            let elapsed = start.elapsed();
            drop(to_tx);
            partner.join().unwrap();
            elapsed
        });
    });
    group.bench_function("may_mpsc", |b| {
        b.iter_custom(|iters| {
            in_may(move || {
                let (to_tx, to_rx) = may::sync::mpsc::channel::<u64>();
                let (from_tx, from_rx) = may::sync::mpsc::channel::<u64>();
                let partner = may_go(move || {
                    while let Ok(v) = to_rx.recv() {
                        from_tx.send(v).unwrap();
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    to_tx.send(i).unwrap();
                    black_box(from_rx.recv().unwrap());
                }
                let elapsed = start.elapsed();
                drop(to_tx);
                partner.join().unwrap();
                elapsed
            })
        });
    });
    group.finish();
}

fn spawn_blocking(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_blocking");
    // Start a pool thread on each side first.
    greenweave::threadpool::spawn_blocking(|| 1);
    group.bench_function("greenweave", |b| {
        b.iter(|| greenweave::threadpool::spawn_blocking(|| black_box(1)));
    });
    let rt = tokio_current_thread();
    rt.block_on(async { tokio::task::spawn_blocking(|| 1).await.unwrap() });
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tokio::task::spawn_blocking(|| black_box(1)).await.unwrap());
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

#[path = "common/config.rs"]
mod config;

criterion_group! {
    name = benches;
    config = config::standard();
    targets = spawn_join, yields, ping_pong, spawn_blocking
}
criterion_main!(benches);
