//! Sleeping and yielding.

use std::time::{Duration, Instant};

use crate::hub::{self, Leaving};
use crate::park::{self, raise};
use crate::task::{Describe, Wake};

/// The deadline `timeout` from now, or `None` if it is too far to represent (such a
/// wait never times out).
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

struct Sleeping(Option<Instant>);

impl Describe for Sleeping {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Timer
    }

    fn describe(&self, out: &mut String) {
        let now = Instant::now();
        match self.0 {
            // A sleep past its end: the hub has not run its timers since (a greenlet
            // that keeps the hub, as a dump during a stall shows).
            Some(at) if at <= now => out.push_str(&format!(
                "sleep, due {} ago",
                crate::dump::Seconds(now - at)
            )),
            Some(at) => out.push_str(&format!("sleep ({} left)", crate::dump::Seconds(at - now))),
            None => out.push_str("sleep for ever"),
        }
    }
}

/// Blocks the current greenlet for `duration`, letting others run (gevent's `sleep`).
/// `sleep(Duration::ZERO)` is [`yield_now`]. A duration too large to represent sleeps
/// for ever (until killed or timed out).
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// let a = greenweave_runtime::spawn(|| greenweave_runtime::sleep(Duration::from_millis(50)));
/// let b = greenweave_runtime::spawn(|| greenweave_runtime::sleep(Duration::from_millis(50)));
/// a.join().unwrap();
/// b.join().unwrap();
/// assert!(start.elapsed() < Duration::from_millis(95), "the sleeps overlapped");
/// ```
#[track_caller]
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        yield_now();
        return;
    }
    sleep_until_deadline(deadline_after(duration));
}

/// Blocks the current greenlet until `deadline`.
#[track_caller]
pub fn sleep_until(deadline: Instant) {
    if deadline <= Instant::now() {
        yield_now();
    } else {
        sleep_until_deadline(Some(deadline));
    }
}

#[track_caller]
fn sleep_until_deadline(deadline: Option<Instant>) {
    let on = Sleeping(deadline);
    loop {
        if park::park_or_raise(&on, deadline, |_| {}) == Wake::TimedOut {
            return;
        }
    }
}

/// Lets every other ready greenlet run before the current one continues (gevent's
/// `sleep(0)`). It is a blocking point: a pending kill or timeout is delivered here.
// Inline: a yield whose switch runs in the caller's own frame (a loop that yields)
// returns through no frame of ours when resumed, which saves the mispredicted returns
// that cost about half of a yield otherwise (see docs/DESIGN-NOTES.md).
#[inline]
#[track_caller]
pub fn yield_now() {
    // Straight-line, no closures: one frame between the caller and the switch (see
    // `hub::get`).
    let here = hub::Here::new();
    let (hub, task) = match park::about_to_park(&here) {
        Ok(parts) => parts,
        Err(interrupt) => raise(interrupt),
    };
    task.requeue(hub);
    hub.switch_away(Leaving::Requeued);
    let why = task.resume();
    if let Err(interrupt) = park::ended(&task, why) {
        raise(interrupt);
    }
}
