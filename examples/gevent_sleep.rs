//! The seed's gevent example: two greenlets that sleep cooperatively.
//!
//! ```python
//! import gevent, time
//! def fun1(): print(1); gevent.sleep(2); print(2)
//! def fun2(): print(3); gevent.sleep(1); print(4)
//! start = time.time()
//! gevent.joinall([gevent.spawn(fun1), gevent.spawn(fun2)])
//! print("time:", time.time() - start)   # 1, 3, 4, 2 in about 2 s
//! ```
//!
//! `cargo run --release --example gevent_sleep` prints 1, 3, 4, 2 and a time of about
//! 2 s (the longest sleep), not 3 s (the sum): while one greenlet sleeps the other runs.

use std::time::{Duration, Instant};

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let start = Instant::now();
    let fun1 = greenweave::spawn(|| {
        println!("1");
        greenweave::sleep(Duration::from_secs(2));
        println!("2");
    });
    let fun2 = greenweave::spawn(|| {
        println!("3");
        greenweave::sleep(Duration::from_secs(1));
        println!("4");
    });
    for result in greenweave::joinall([fun1, fun2]) {
        result.expect("neither greenlet panics");
    }
    println!("time: {:.2} s", start.elapsed().as_secs_f64());
}
