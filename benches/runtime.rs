//! The runtime's hot paths, side by side with OS threads and tokio in the same run.
//!
//! - group `spawn_join`: spawn a trivial task and wait for its result.
//!   `greenweave` (`spawn` + `join`, warm stack pool), `std_thread` (`thread::spawn` +
//!   `join`), `tokio_current_thread` (`tokio::spawn` + `.await` on a `current_thread`
//!   runtime, inside one `block_on`).
//! - group `yield`: two tasks yielding to each other; one iteration is one yield.
//!   `greenweave` (`yield_now`), `tokio_current_thread` (`tokio::task::yield_now`).
//!   tokio's cooperative budget does not apply to `yield_now`, which always yields.
//! - group `ping_pong`: one round trip through a rendezvous handoff: send a value to a
//!   partner, which sends it back. `greenweave_channel` (`queue::Channel`), `greenweave_queue1`
//!   (two `Queue(1)`s), `std_sync_channel` (two OS threads on `sync_channel(0)`),
//!   `tokio_mpsc` (two `mpsc::channel(1)` on a `current_thread` runtime).
//!
//! Targets: spawn+join ≤ 150 ns; yield ≤ 20 ns; ping-pong ≤ 50 ns. Figures in
//! BENCHMARKS.md. Run with `cargo bench --bench runtime`.

// `criterion_group!` and `criterion_main!` generate public items without doc comments,
// which the workspace's `missing_docs = "deny"` would reject.
#![allow(missing_docs)]

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use greenweave::queue::{Channel, Queue};

fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
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
    group.finish();
}

fn yields(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield");
    group.bench_function("greenweave", |b| {
        b.iter_custom(|iters| {
            let stop = Rc::new(Cell::new(false));
            let s = stop.clone();
            let partner = greenweave::spawn(move || {
                while !s.get() {
                    greenweave::yield_now();
                }
            });
            greenweave::yield_now(); // let the partner start
            let rounds = iters.div_ceil(2);
            let start = Instant::now();
            for _ in 0..rounds {
                greenweave::yield_now();
            }
            let elapsed = start.elapsed();
            stop.set(true);
            partner.join().unwrap();
            // Each round is two yields: ours and the partner's.
            elapsed.mul_f64(iters as f64 / (2 * rounds) as f64)
        });
    });
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
    group.finish();
}

fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping_pong");
    group.bench_function("greenweave_channel", |b| {
        b.iter_custom(|iters| {
            let (to, from) = (Rc::new(Channel::new()), Rc::new(Channel::new()));
            let (t, f) = (to.clone(), from.clone());
            let partner = greenweave::spawn(move || {
                while let Ok(v) = t.get() {
                    f.put(v).unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                to.put(i).unwrap();
                black_box(from.get().unwrap());
            }
            let elapsed = start.elapsed();
            to.close();
            partner.join().unwrap();
            elapsed
        });
    });
    group.bench_function("greenweave_queue1", |b| {
        b.iter_custom(|iters| {
            let (to, from) = (Rc::new(Queue::new(1)), Rc::new(Queue::new(1)));
            let (t, f) = (to.clone(), from.clone());
            let partner = greenweave::spawn(move || {
                while let Ok(v) = t.get() {
                    f.put(v).unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                to.put(i).unwrap();
                black_box(from.get().unwrap());
            }
            let elapsed = start.elapsed();
            to.close();
            partner.join().unwrap();
            elapsed
        });
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
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = spawn_join, yields, ping_pong
}
criterion_main!(benches);
