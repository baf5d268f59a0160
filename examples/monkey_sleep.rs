//! The seed's monkey example: after `monkey.patch_all()`, plain `time.sleep` in
//! greenlets overlaps instead of adding up.
//!
//! ```python
//! from gevent import monkey; monkey.patch_all()
//! def coroutine_work(coroutine_name):
//!     for i in range(10):
//!         print(coroutine_name, i)
//!         time.sleep(random.random())
//! gevent.joinall([gevent.spawn(coroutine_work, "work1"), gevent.spawn(coroutine_work, "work2")])
//! ```
//!
//! Here three greenlets each call the unmodified `std::thread::sleep` for a random
//! 0..1 s. `greenweave::monkey::patch_all()` turns that into a cooperative sleep (its
//! `clock_nanosleep` hook parks the greenlet on a hub timer), so all three finish
//! after the longest sleep, not the sum. It exits non-zero if they did not overlap.
//!
//! `cargo run --release --example monkey_sleep` printed:
//!
//! ```text
//! work1 sleeps 0.127 s
//! work2 sleeps 0.964 s
//! work3 sleeps 0.986 s
//! work1 woke after 0.127 s
//! work2 woke after 0.965 s
//! work3 woke after 0.987 s
//! 3 sleeps adding up to 2.077 s took 0.987 s in all: the longest one, not the sum
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/logging.rs"]
mod logging;

fn main() -> ExitCode {
    greenweave::monkey::patch_all(); // first thing, as in the seed
    logging::init();

    // A few random numbers without a dependency: xorshift64 seeded from the clock.
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        | 1;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 // 0.0..1.0
    };

    let start = Instant::now();
    let sleeps: Vec<Duration> = (0..3).map(|_| Duration::from_secs_f64(random())).collect();
    let workers: Vec<_> = sleeps
        .iter()
        .enumerate()
        .map(|(i, &nap)| {
            let name = format!("work{}", i + 1);
            println!("{name} sleeps {:.3} s", nap.as_secs_f64());
            greenweave::spawn(move || {
                std::thread::sleep(nap); // plain std: the patched libc call parks
                println!("{name} woke after {:.3} s", start.elapsed().as_secs_f64());
            })
        })
        .collect();
    for result in greenweave::joinall(workers) {
        result.expect("a sleeping greenlet failed");
    }

    let total = start.elapsed();
    let sum: Duration = sleeps.iter().sum();
    let longest = sleeps.iter().max().copied().unwrap_or_default();
    println!(
        "{} sleeps adding up to {:.3} s took {:.3} s in all: the longest one, not the sum",
        sleeps.len(),
        sum.as_secs_f64(),
        total.as_secs_f64()
    );
    if total < longest + Duration::from_millis(200) {
        ExitCode::SUCCESS
    } else {
        eprintln!("monkey_sleep: the sleeps did not overlap");
        ExitCode::FAILURE
    }
}
