//! When something is slow or stuck: greenweave's three tools on one small program.
//!
//! A few workers wait on a job queue and a ticker sleeps, while one greenlet makes a
//! thumbnail with CPU work that never reaches a blocking point, so for 500 ms nothing
//! else on the thread runs. The blocking monitor reports that stall (with the
//! culprit's stack) through `log`; then the program prints `dump()`: every greenlet,
//! what it waits on, since when, the line it parked at, and the hub's counters
//! (`stats()`).
//!
//! ```text
//! cargo run --example diagnose
//! GREENWEAVE_MONITOR=100ms cargo run --example <any other>   # the monitor without code
//! RUST_LOG=greenweave=debug cargo run --example echo_server  # everything greenweave says
//! ```
//!
//! Its output is quoted in the README's "When something is slow or stuck".

use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave::queue::Queue;
use greenweave::{Builder, monitor, sleep, spawn};

#[path = "common/logging.rs"]
mod logging;

/// CPU work that never yields: a stand-in for image resizing, JSON of a huge
/// document, a tight retry loop...
#[inline(never)]
fn make_thumbnail(millis: u64) -> u64 {
    let start = Instant::now();
    let mut pixels = 0u64;
    while start.elapsed() < Duration::from_millis(millis) {
        pixels = std::hint::black_box(pixels.wrapping_mul(31).wrapping_add(7));
    }
    pixels
}

fn main() {
    logging::init();
    // Report any greenlet that keeps the hub for more than 100 ms.
    monitor::start(Duration::from_millis(100));

    let jobs: Rc<Queue<u32>> = Rc::new(Queue::new(0));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let jobs = jobs.clone();
            Builder::new().name(format!("worker-{i}")).spawn(move || {
                while let Ok(job) = jobs.get() {
                    sleep(Duration::from_millis(u64::from(job)));
                }
            })
        })
        .collect();
    let ticker = Builder::new().name("ticker").spawn(|| {
        loop {
            sleep(Duration::from_millis(50));
        }
    });
    let thumbnail = Builder::new()
        .name("thumbnail")
        .spawn(|| make_thumbnail(500));
    thumbnail.join().unwrap();

    // Everything the hub has, as it is now, its counters (`stats()`) last (cheap:
    // stacks are symbolized when printed).
    let dump = greenweave::dump();
    // Printing symbolizes main's stack, which takes a while in a debug build: a
    // stall of its own. Stop the monitor first (it reports the thumbnail's stall and
    // its end before it returns).
    monitor::stop();
    print!("{dump}");

    jobs.close();
    ticker.kill();
    for w in workers {
        w.join().unwrap();
    }
    spawn(|| ()).join().unwrap();
}
