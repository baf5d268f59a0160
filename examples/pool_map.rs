//! The seed's process pool (`multiprocessing.Pool`), done with a greenlet `Pool(4)`.
//!
//! ```python
//! from multiprocessing import Pool
//! def foo(x):
//!     time.sleep(2)
//!     print('Task %s result is: %s' % (x, x * x))
//! p = Pool(4)              # at most 4 workers at once
//! for i in range(5):
//!     p.apply_async(foo, args=(i,))
//! p.close(); p.join()
//! ```
//!
//! Done as `Pool.map(foo, range(16))`, with `foo` sleeping 100 ms and returning `x * x`:
//! 16 jobs, at most 4 at once, is four rounds. `cargo run --release --example pool_map`
//! prints the squares of 0..16 in input order and an elapsed time of about 400 ms (not
//! the 1.6 s the sleeps add up to); then the same with the seed's spelling,
//! `apply_async` in a loop and `join`, again about 400 ms.

use std::time::{Duration, Instant};

use greenweave::pool::Pool;

fn foo(x: u64) -> u64 {
    greenweave::sleep(Duration::from_millis(100));
    x * x
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let pool = Pool::new(4);

    let start = Instant::now();
    let squares = pool.map(foo, 0..16);
    println!("map: {squares:?}");
    println!("elapsed: {} ms", start.elapsed().as_millis());

    // The seed's other spelling: apply_async in a loop, then join the pool. Each
    // apply_async blocks while 4 jobs are in flight, like a full multiprocessing pool.
    let start = Instant::now();
    let jobs: Vec<_> = (0..16).map(|x| pool.apply_async(move || foo(x))).collect();
    pool.join();
    let squares: Vec<u64> = jobs.into_iter().map(|h| h.join().unwrap()).collect();
    println!("apply_async: {squares:?}");
    println!("elapsed: {} ms", start.elapsed().as_millis());
}
