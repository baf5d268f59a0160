//! How many greenlets fit, how fast they come and go, and what an idle one costs.
//!
//! `cargo run --release --example scale -- [N] [SLEEP_MS]` (defaults: 100000, 200)
//! spawns N greenlets that each sleep SLEEP_MS and finish, and prints:
//!
//! - the time to spawn them all and the time until every one has finished;
//! - the resident memory (from `/proc/self/statm`) per *parked* greenlet: RSS once all
//!   N are asleep, minus RSS before, divided by N;
//! - the kernel memory mappings in use (`/proc/self/maps` lines), to show the stack
//!   slabs stay far below `vm.max_map_count` (65530 here).
//!
//! The greenlets all sleep at once, so the total should be close to SLEEP_MS, not
//! N × SLEEP_MS. It runs two waves: the first maps fresh stacks (each costs page
//! faults, which are slow on virtual machines), the second reuses the stack pool. For
//! the second wave the RSS figure is what the pool had not kept resident already.

use std::time::{Duration, Instant};

use clap::Parser;

/// Spawns N sleeping greenlets twice and reports time and memory per greenlet.
#[derive(Parser)]
struct Args {
    /// Greenlets per wave (1 to 1000000).
    #[arg(default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    n: u32,
    /// How long each sleeps, in milliseconds (at most a minute).
    #[arg(default_value_t = 200, value_parser = clap::value_parser!(u64).range(..=60_000))]
    sleep_ms: u64,
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm field 2");
    pages * 4096
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let args = Args::parse();
    let (n, sleep_ms) = (args.n as usize, args.sleep_ms);

    // Warm the hub so its own stack and buffers are not counted.
    greenweave::spawn(|| ()).join().unwrap();
    for wave in ["cold", "warm"] {
        run_wave(wave, n, sleep_ms);
    }
    println!(
        "guard technique     {}",
        greenweave::greenlet::guard_technique().unwrap_or("none")
    );
}

/// Spawns `n` sleepers, measures, and joins them. The first wave maps fresh stacks (page
/// faults); the second reuses the pool.
fn run_wave(wave: &str, n: usize, sleep_ms: u64) {
    let rss_before = rss_bytes();
    let maps_before = mappings();
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            greenweave::spawn(move || {
                greenweave::sleep(Duration::from_millis(sleep_ms));
                i
            })
        })
        .collect();
    let spawned = start.elapsed();
    // Let every greenlet run up to its sleep.
    greenweave::yield_now();
    let rss_parked = rss_bytes();
    let maps_parked = mappings();
    let parked = start.elapsed();

    let mut finished = 0;
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().expect("no greenlet fails"), i);
        finished += 1;
    }
    let total = start.elapsed();

    let per_greenlet = rss_parked.saturating_sub(rss_before) as f64 / n as f64;
    println!("{wave} wave: {n} greenlets");
    println!(
        "spawn all           {:.1} ms ({:.0} ns each)",
        ms(spawned),
        spawned.as_nanos() as f64 / n as f64
    );
    println!("all parked after    {:.1} ms", ms(parked));
    println!(
        "all finished after  {:.1} ms (each slept {sleep_ms} ms)",
        ms(total)
    );
    println!("RSS per parked      {:.2} KiB", per_greenlet / 1024.0);
    println!("kernel mappings     {maps_before} before, {maps_parked} with all parked");
    assert_eq!(finished, n);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
