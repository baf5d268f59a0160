//! The seed's mutexA/mutexB deadlock, on greenlets, and the report greenweave gives.
//!
//! ```python
//! class MyThread1(threading.Thread):
//!     def run(self):
//!         mutexA.acquire(); print(self.name+'----do1---up----'); time.sleep(1)
//!         mutexB.acquire()  # blocks: the other thread holds mutexB
//! class MyThread2(threading.Thread):
//!     def run(self):
//!         mutexB.acquire(); print(self.name+'----do2---up----'); time.sleep(1)
//!         mutexA.acquire()  # blocks: the other thread holds mutexA
//! ```
//!
//! In Python the program hangs. In greenweave, once every greenlet is blocked and
//! nothing can wake any of them, the blocked `main` (joining) panics with a report of
//! who waits on what. This example catches that panic, prints the report, then kills
//! Thread-1: its unwinding releases mutexA, so Thread-2 finishes. It exits with code 0.
//! (The sleeps are 100 ms instead of 1 s.)
//!
//! ```text
//! $ cargo run --example deadlock
//! Thread-1----do1---up----
//! Thread-2----do2---up----
//! main caught the panic:
//! greenweave: deadlock: every greenlet on this thread is blocked and nothing can wake any of them (...).
//! Blocked greenlets:
//!   - greenlet 'Thread-1' (id 3) spawned at examples/deadlock.rs:48:41, waits on Mutex created at examples/deadlock.rs:44:27, held by greenlet 'Thread-2' (id 4)
//!   - greenlet 'Thread-2' (id 4) spawned at examples/deadlock.rs:58:41, waits on Mutex created at examples/deadlock.rs:43:27, held by greenlet 'Thread-1' (id 3)
//!   - greenlet 'main' (id 1), the thread's main greenlet, waits on join of greenlet 'Thread-1' (id 3)
//! killing Thread-1 releases mutexA:
//! Thread-2----do2---down----
//! Thread-2 finished
//! ```

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use greenweave::sync::Mutex;
use greenweave::{Builder, sleep};

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let mutex_a = Rc::new(Mutex::new(()));
    let mutex_b = Rc::new(Mutex::new(()));

    let t1 = {
        let (mutex_a, mutex_b) = (mutex_a.clone(), mutex_b.clone());
        Builder::new().name("Thread-1").spawn(move || {
            let _a = mutex_a.lock();
            println!("Thread-1----do1---up----");
            sleep(Duration::from_millis(100));
            let _b = mutex_b.lock();
            println!("Thread-1----do1---down----");
        })
    };
    let t2 = {
        let (mutex_a, mutex_b) = (mutex_a.clone(), mutex_b.clone());
        Builder::new().name("Thread-2").spawn(move || {
            let _b = mutex_b.lock();
            println!("Thread-2----do2---up----");
            sleep(Duration::from_millis(100));
            let _a = mutex_a.lock();
            println!("Thread-2----do2---down----");
        })
    };

    // The report is the panic message; keep the default hook from printing it too.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| t1.wait()));
    panic::set_hook(hook);

    let payload = outcome.expect_err("the two greenlets deadlock");
    let report = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or("<no message>");
    println!("main caught the panic:\n{report}");

    println!("killing Thread-1 releases mutexA:");
    t1.kill();
    t2.join().expect("Thread-2 finishes once mutexA is free");
    println!("Thread-2 finished");
}
