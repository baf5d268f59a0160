//! Memory comes back after a burst: 200,000 greenlets live at once, all parked on one
//! `Event`, then released and joined; after a second of idling the process's
//! resident memory is back under 64 MiB (the stack pool keeps only its warm set).
//!
//! One test per process: the figures are process-wide.

#[path = "common/memory.rs"]
mod memory;
#[path = "common/valgrind.rs"]
mod valgrind;

use std::rc::Rc;
use std::time::Duration;

use greenweave_runtime::sync::Event;
use greenweave_runtime::{sleep, spawn, yield_now};

const BURST: usize = 200_000;
const CEILING: usize = 64 << 20;

#[test]
fn memory_of_a_burst_of_200_000_greenlets_returns_within_a_second_of_idle() {
    if valgrind::skip_under_valgrind(
        "RSS would measure Valgrind's own memory, and 200,000 greenlets take many minutes under it",
    ) {
        return;
    }
    let event = Rc::new(Event::new());
    let handles: Vec<_> = (0..BURST)
        .map(|_| {
            let e = event.clone();
            spawn(move || e.wait())
        })
        .collect();
    yield_now();
    let peak = memory::rss_trimmed();
    assert!(
        peak > CEILING,
        "the burst should need more than the ceiling ({} MiB at the peak)",
        peak >> 20
    );
    event.set();
    for h in handles {
        h.join().expect("the greenlet finished");
    }
    drop(event);
    // A second of idling on the hub, then the figure.
    sleep(Duration::from_secs(1));
    let rss = memory::rss_trimmed();
    eprintln!(
        "burst of {BURST}: peak {} MiB, {} MiB after a second of idle",
        peak >> 20,
        rss >> 20
    );
    assert!(
        rss < CEILING,
        "RSS still {} MiB a second after the burst ended (peak {} MiB)",
        rss >> 20,
        peak >> 20
    );
}
