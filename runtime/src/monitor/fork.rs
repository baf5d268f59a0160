//! The monitor's record, the hub registry and the stack capture across `fork` (see
//! `crate::fork`): their locks are taken before the fork and released after it, in the
//! parent and in the child, so a child never inherits one held by a thread it does not
//! have (the monitor thread takes the registry's every sampling period, and the
//! capture's for a whole look at a hub; `start` and `stop` hold the record's while
//! they start or join that thread). The child's registry still lists the parent's
//! hubs, which every reader leaves out (each entry carries the process it is in), until
//! the forking thread's hub, rebuilt, takes its place as the child's
//! (`registry::adopt_in_child`).

use std::cell::RefCell;
use std::sync::{Arc, MutexGuard};

use super::Running;
use super::registry::HubEntry;

/// The locks `prepare` took: the record's, then capture's, then the registry's (the
/// order `start` and `capture::take` take them in).
type Held = (
    MutexGuard<'static, Option<Running>>,
    MutexGuard<'static, u64>,
    MutexGuard<'static, Vec<Arc<HubEntry>>>,
);

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// The fork's prepare handler: takes the record's lock, the capture's, then the
/// registry's.
pub(crate) fn prepare() {
    let monitor = crate::fork::lock_for_fork(&super::MONITOR);
    let requests = crate::fork::lock_for_fork(&super::capture::REQUESTS);
    let hubs = crate::fork::lock_for_fork(&super::registry::HUBS);
    // A thread whose thread-locals are gone releases them at once.
    let _ = HELD.try_with(|held| *held.borrow_mut() = Some((monitor, requests, hubs)));
}

/// The parent and child handlers: release what `prepare` took.
pub(crate) fn release() {
    let held = HELD
        .try_with(|held| held.borrow_mut().take())
        .ok()
        .flatten();
    drop(held);
}
