//! The one deadline path every put, get and join goes through.

use std::time::{Duration, Instant};

use crate::park::WaitQueue;
use crate::task::Describe;
use crate::time::deadline_after;

/// How long a call may wait: the blocking form (`Never`), the `_timeout` form (`At`)
/// and the `try_` form (`Now`) are one code path with three deadlines.
#[derive(Clone, Copy, Debug)]
pub(super) enum Deadline {
    /// Wait as long as it takes.
    Never,
    /// Give up at this instant.
    At(Instant),
    /// Do not wait at all.
    Now,
}

impl Deadline {
    /// `timeout` from now; one too large to represent never expires.
    pub(super) fn after(timeout: Duration) -> Deadline {
        deadline_after(timeout).map_or(Deadline::Never, Deadline::At)
    }

    /// The instant a wait may last until (`None`: for ever), or why there must be no
    /// wait: `Now` never waits, and a passed deadline ends the call.
    #[inline]
    pub(super) fn for_wait(self) -> Result<Option<Instant>, Stop> {
        match self {
            Deadline::Now => Err(Stop::WouldBlock),
            Deadline::At(at) if Instant::now() >= at => Err(Stop::Timeout),
            Deadline::At(at) => Ok(Some(at)),
            Deadline::Never => Ok(None),
        }
    }
}

/// Why an operation gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The queue is closed (and, for a get, empty).
    Closed,
    /// It would have had to wait, under `Deadline::Now`.
    WouldBlock,
    /// The deadline passed.
    Timeout,
}

/// Waits once in `queue` (the caller re-checks its condition afterwards), or says
/// why not: `Now` never waits, a passed deadline ends the call. Kills and `Timeout`s
/// unwind from here; `WaitQueue` keeps its entries consistent when they do.
#[track_caller]
pub(super) fn wait_step(
    queue: &WaitQueue,
    on: &dyn Describe,
    deadline: Deadline,
) -> Result<(), Stop> {
    queue.wait_or_raise(on, deadline.for_wait()?);
    Ok(())
}
