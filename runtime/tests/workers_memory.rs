//! `workers(2)` called 500 times leaves RSS, mappings and fds where they were: each
//! worker thread's hub gives back its stacks, slabs, reactor and task records.
//!
//! One test per process: the figures are process-wide.

#[path = "common/memory.rs"]
mod memory;

use greenweave_runtime::{spawn, workers};

fn two_workers() {
    let sums = workers(2, |i| {
        let h: Vec<_> = (0..10).map(|j| spawn(move || i + j)).collect();
        h.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    assert_eq!(sums, [45, 55]);
}

#[test]
fn five_hundred_workers_calls_leave_no_memory_mappings_or_fds_behind() {
    memory::assert_leaves_nothing_behind("500 workers(2) calls", 50, 500, |_| two_workers());
}
