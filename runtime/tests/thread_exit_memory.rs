//! A thread that used greenweave gives everything back when it exits: 2,000 short-lived
//! threads that spawn and join greenlets, a third of them leaving one parked on a
//! sleep and a third on an `Event`, leave RSS, mappings and fds where they were.
//!
//! One test per process: the figures are process-wide.

#[path = "common/memory.rs"]
mod memory;

use std::time::Duration;

use greenweave_runtime::sync::Event;
use greenweave_runtime::{sleep, spawn, yield_now};

/// One short-lived thread: a joined greenlet, and maybe one left parked at exit.
fn short_lived_thread(i: usize) {
    std::thread::spawn(move || {
        assert_eq!(spawn(move || i * 2).join().unwrap(), i * 2);
        match i % 3 {
            0 => {}
            1 => {
                let _sleeper = spawn(|| sleep(Duration::from_secs(3600)));
                yield_now();
            }
            _ => {
                let event = std::rc::Rc::new(Event::new());
                let e = event.clone();
                let _waiter = spawn(move || e.wait());
                yield_now();
            }
        }
    })
    .join()
    .expect("the thread ran");
}

#[test]
fn two_thousand_short_lived_threads_leave_no_memory_mappings_or_fds_behind() {
    memory::assert_leaves_nothing_behind(
        "2,000 threads that used greenweave",
        200,
        2_000,
        short_lived_thread,
    );
}
