//! The hub's timers: deadline order, O(log n) insert and cancel.

use std::collections::BTreeMap;
use std::rc::Weak;
use std::time::Instant;

use crate::park::WaitToken;
use crate::task::Task;

/// What happens when a timer fires.
pub(crate) enum Action {
    /// End a park with `Wake::TimedOut` (stale tokens are ignored).
    Wake(WaitToken),
    /// Deliver the expiry of `Timeout` `id` to `task` at its blocking point.
    Timeout { task: Weak<Task>, id: u64 },
}

/// Identifies a timer for cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    at: Instant,
    seq: u64,
}

/// Timers ordered by deadline, then by creation (so equal deadlines fire FIFO).
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, Action>,
    next_seq: u64,
}

impl Timers {
    pub(crate) const fn new() -> Timers {
        Timers {
            map: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn insert(&mut self, at: Instant, action: Action) -> TimerKey {
        let key = TimerKey {
            at,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.map.insert(key, action);
        key
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) {
        self.map.remove(&key);
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map.first_key_value().map(|(k, _)| k.at)
    }

    /// Keeps only the timers whose action `keep` accepts, with their keys (so their
    /// owners can still cancel them); the others are kept for ever, never dropped (in
    /// a forked child they name greenlets left behind, see `fork`).
    pub(crate) fn keep_only(&mut self, keep: impl Fn(&Action) -> bool) {
        let mut left = Vec::new();
        for (key, action) in std::mem::take(&mut self.map) {
            if keep(&action) {
                self.map.insert(key, action);
            } else {
                left.push(action);
            }
        }
        crate::kept::keep(left);
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Action> {
        match self.map.first_key_value() {
            Some((k, _)) if k.at <= now => self.map.pop_first().map(|(_, a)| a),
            _ => None,
        }
    }
}
