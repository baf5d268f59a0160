//! What the blocking monitor costs the hot paths: greenweave's yield, ping-pong and
//! spawn + join, each measured without the monitor and with it running, in the same
//! run (group `monitor`; `_off` and `_on` functions alternate).
//!
//! The monitor runs with a 100 ms threshold (`monitor::start(100 ms)`, what
//! `GREENWEAVE_MONITOR=100ms` gives): its thread wakes every 25 ms and reads two
//! counters of every hub. The hub's side costs the same either way (it counts switches
//! and sleeps for `stats()` whether a monitor reads them or not), so what `_on` adds is
//! the monitor thread itself: its wake-ups, and the cache line it reads, which the hub
//! must take back once per sample. The loops are those of `benches/runtime.rs`
//! (`benches/common/handoff.rs`).
//!
//! Target: every `_on` within 5 % of its `_off`. Figures in BENCHMARKS.md
//! (`cargo run --release -p xtask -- bench-report`). Run with `cargo bench --bench monitor`.

// `criterion_group!` and `criterion_main!` generate public items without doc comments,
// which the workspace's `missing_docs = "deny"` would reject.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use greenweave::monitor;
use greenweave::queue::Channel;

#[path = "common/handoff.rs"]
mod handoff;
use handoff::{greenweave_ping_pong, greenweave_yields};

/// The threshold the `_on` functions run the monitor with.
const THRESHOLD: Duration = Duration::from_millis(100);

/// A timed loop.
type Loop = fn(&mut Bencher<'_>);

/// The three loops, by name.
const LOOPS: [(&str, Loop); 3] = [
    ("yield", |b| b.iter_custom(greenweave_yields)),
    ("ping_pong", |b| {
        b.iter_custom(|iters| greenweave_ping_pong(iters, Channel::new))
    }),
    ("spawn_join", |b| {
        b.iter(|| greenweave::spawn(|| black_box(1)).join().unwrap())
    }),
];

fn monitor_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("monitor");
    // Warm the stack pool and the hub.
    greenweave::spawn(|| 1).join().unwrap();
    for (name, run) in LOOPS {
        monitor::stop();
        group.bench_function(format!("{name}_off"), run);
        monitor::start(THRESHOLD);
        group.bench_function(format!("{name}_on"), run);
        monitor::stop();
    }
    group.finish();
}

#[path = "common/config.rs"]
mod config;

criterion_group! {
    name = benches;
    config = config::standard();
    targets = monitor_cost
}
criterion_main!(benches);
