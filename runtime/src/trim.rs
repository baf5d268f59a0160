//! Giving memory back after a burst: the stack pool's idle stacks, and the buffers a
//! burst of greenlets grew (the task registry, the run queue, the fd table).
//!
//! A *trim pass* runs at most every [`TRIM_PERIOD`]: when the hub is about to sleep,
//! and every [`BUSY_CHECK`] maintenance passes of a hub that never sleeps (one clock
//! read then). It queues the pooled stacks that went unused for a whole period (see
//! `greenweave_greenlet::trim_stack_pool`), so a load that rises and falls keeps its
//! stacks warm, and shrinks buffers holding less than a quarter of their capacity.
//!
//! The queued stacks' memory goes back in bounded steps, since unmapping and
//! releasing pages is kernel work of a few microseconds per stack: an idle hub
//! releases [`IDLE_STEP`] stacks (about a millisecond), then looks at its reactor
//! without sleeping and goes on, so an event that arrives meanwhile waits at most one
//! step; a busy hub releases [`BUSY_STEP`] every [`BUSY_CHECK`] maintenance passes. A
//! sleeping hub that still pools stacks beyond the warm set cuts its sleep short for
//! the next pass, so the memory of a burst comes back within about two periods of the
//! hub going idle, even if nothing else happens.
//!
//! None of this is on the spawn, join or switch paths: a maintenance pass that does not
//! sleep costs one counter update here.

use std::cell::Cell;
use std::time::{Duration, Instant};

use greenweave_greenlet as greenlet;

use crate::hub::Hub;

/// The shortest time between two trim passes, and so how long a pooled stack must go
/// unused before its memory is given back (one to two periods).
pub(crate) const TRIM_PERIOD: Duration = Duration::from_millis(200);

/// Maintenance passes without a sleep between two looks at the clock for a trim pass.
const BUSY_CHECK: u32 = 1024;

/// Queued stacks released per step by an idle hub: about a millisecond of work.
const IDLE_STEP: usize = 512;

/// Queued stacks released every [`BUSY_CHECK`] maintenance passes by a busy hub.
const BUSY_STEP: usize = 64;

/// A buffer is shrunk when its capacity is above this many slots and more than four
/// times what it holds.
pub(crate) const SHRINK_ABOVE: usize = 1024;

/// Whether a buffer of `capacity` slots holding `len` is worth shrinking.
pub(crate) fn oversized(capacity: usize, len: usize) -> bool {
    capacity > SHRINK_ABOVE && capacity / 4 > len
}

/// When the hub next gives memory back.
pub(crate) struct Trim {
    next: Cell<Instant>,
    busy_passes: Cell<u32>,
}

impl Trim {
    pub(crate) fn new() -> Trim {
        Trim {
            next: Cell::new(Instant::now()),
            busy_passes: Cell::new(0),
        }
    }

    /// A maintenance pass that does not sleep: every [`BUSY_CHECK`]-th one runs a trim
    /// pass if one is due and releases a few queued stacks.
    #[inline]
    pub(crate) fn busy_pass(&self, hub: &Hub) {
        let passes = self.busy_passes.get() + 1;
        if passes < BUSY_CHECK {
            self.busy_passes.set(passes);
            return;
        }
        self.busy_passes.set(0);
        self.run_if_due(hub, Instant::now());
        greenlet::release_idle_stacks(BUSY_STEP);
    }

    /// The hub is about to sleep for `timeout` (`None`: until woken): runs a trim pass if
    /// one is due and a release step; returns the timeout, zero while queued stacks
    /// remain (a look at the reactor, then the next step), cut short to the next pass
    /// while stacks beyond the warm set are still pooled.
    pub(crate) fn before_sleep(
        &self,
        hub: &Hub,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Option<Duration> {
        self.run_if_due(hub, now);
        if greenlet::release_idle_stacks(IDLE_STEP) > 0 {
            return Some(Duration::ZERO);
        }
        if greenlet::surplus_stacks() == 0 {
            return timeout;
        }
        let until_next = self.next.get().saturating_duration_since(now);
        Some(timeout.map_or(until_next, |t| t.min(until_next)))
    }

    #[cold]
    fn run_if_due(&self, hub: &Hub, now: Instant) {
        if now < self.next.get() {
            return;
        }
        self.next.set(now + TRIM_PERIOD);
        greenlet::trim_stack_pool();
        hub.shrink_buffers();
    }
}

#[cfg(test)]
mod tests {
    use crate::{hub, spawn, yield_now};

    #[test]
    fn a_trim_pass_gives_back_the_registry_and_run_queue_a_burst_grew() {
        std::thread::spawn(|| {
            yield_now(); // the main greenlet's record comes first: the burst's can all go
            let burst: Vec<_> = (0..5000).map(|i| spawn(move || i)).collect();
            let here = hub::Here::new();
            let hub = hub::get(&here);
            assert!(hub.tasks.borrow().capacity() >= 5000);
            assert!(hub.ready.capacity() >= 5000);
            for (i, h) in burst.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), i);
            }
            hub.shrink_buffers();
            assert!(
                hub.tasks.borrow().capacity() <= super::SHRINK_ABOVE,
                "registry capacity {}",
                hub.tasks.borrow().capacity()
            );
            assert!(
                hub.ready.capacity() <= 16,
                "run queue {}",
                hub.ready.capacity()
            );
            // Still in working order.
            assert_eq!(spawn(|| 7).join().unwrap(), 7);
        })
        .join()
        .unwrap();
    }
}
