//! The seed's semaphore example: at most 5 of 20 greenlets in the guarded section.
//!
//! ```python
//! semaphore = threading.BoundedSemaphore(5)
//! def func():
//!     if semaphore.acquire():
//!         print(threading.currentThread().getName() + ' get semaphore')
//!         time.sleep(2)
//!         semaphore.release()
//! for i in range(20):
//!     threading.Thread(target=func).start()
//! ```
//!
//! Twenty greenlets take a permit of a `BoundedSemaphore(5)`, sleep 100 ms and give it
//! back. They run in 4 waves of 5, in spawn order (waiters are woken FIFO), so the
//! whole run takes about 400 ms, and never more than 5 hold a permit at once.
//!
//! ```text
//! $ cargo run --example semaphore
//! [   0 ms] Greenlet-0 get semaphore (1 running)
//! [   0 ms] Greenlet-1 get semaphore (2 running)
//! [   0 ms] Greenlet-2 get semaphore (3 running)
//! [   0 ms] Greenlet-3 get semaphore (4 running)
//! [   0 ms] Greenlet-4 get semaphore (5 running)
//! [ 100 ms] Greenlet-5 get semaphore (1 running)
//! ...
//! [ 100 ms] Greenlet-9 get semaphore (5 running)
//! [ 200 ms] Greenlet-10 get semaphore (1 running)
//! ...
//! [ 300 ms] Greenlet-19 get semaphore (5 running)
//! at most 5 greenlets ran at once; 20 done in 400 ms
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave::sync::BoundedSemaphore;
use greenweave::{Builder, current_info, joinall, sleep};

fn main() {
    let start = Instant::now();
    let semaphore = Rc::new(BoundedSemaphore::new(5));
    let running = Rc::new(Cell::new(0usize));
    let most = Rc::new(Cell::new(0usize));

    let greenlets: Vec<_> = (0..20)
        .map(|i| {
            let (semaphore, running, most) = (semaphore.clone(), running.clone(), most.clone());
            Builder::new().name(format!("Greenlet-{i}")).spawn(move || {
                let _permit = semaphore.access();
                running.set(running.get() + 1);
                most.set(most.get().max(running.get()));
                println!(
                    "[{:4} ms] {} get semaphore ({} running)",
                    start.elapsed().as_millis(),
                    current_info().name.unwrap_or_default(),
                    running.get()
                );
                sleep(Duration::from_millis(100));
                running.set(running.get() - 1);
            })
        })
        .collect();
    for r in joinall(greenlets) {
        r.expect("a greenlet panicked");
    }
    println!(
        "at most {} greenlets ran at once; 20 done in {} ms",
        most.get(),
        start.elapsed().as_millis()
    );
    assert!(most.get() <= 5);
    assert_eq!(semaphore.available(), 5);
}
