//! What the loom tests put in place of things loom cannot model (an eventfd under
//! `epoll_wait`, a parked greenlet): a one-bit event on loom's mutex and condvar.

use crate::thread_sync::{Condvar, Mutex};

/// A flag one thread sets and another waits for and clears.
pub(crate) struct Event {
    set: Mutex<bool>,
    changed: Condvar,
}

impl Event {
    pub(crate) fn new() -> Event {
        Event {
            set: Mutex::new(false),
            changed: Condvar::new(),
        }
    }

    /// Sets the flag and wakes the waiter.
    pub(crate) fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.changed.notify_all();
    }

    /// Waits until the flag is set, then clears it.
    pub(crate) fn wait_and_reset(&self) {
        let mut set = self.set.lock().unwrap();
        while !*set {
            set = self.changed.wait(set).unwrap();
        }
        *set = false;
    }
}
