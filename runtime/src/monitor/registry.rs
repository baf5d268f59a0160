//! Every hub of the process, for the blocking monitor and `dump_all`.
//!
//! A hub registers itself when it is made and leaves when it is dropped (its thread
//! exits). What another thread may look at lives in its [`HubEntry`]: atomics only the
//! hub writes (its switch count, its sleeps in `epoll_wait`, its number of greenlets),
//! the thread's identity, and a mailbox for dump requests. Everything else about a hub
//! belongs to its thread, which is why a dump of another hub is *asked for* (see
//! [`request_dump`](HubEntry::request_dump)) rather than read.
//!
//! Signals to a hub's thread are sent while the registry lock is held
//! ([`with_live`]): a thread leaving takes the same lock to unregister, so it cannot
//! have exited (and its thread id cannot have been reused) while a signal is on its
//! way to it.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};

use crate::dump::HubDump;
use crate::remote;

/// The part of a hub that other threads may see.
pub(crate) struct HubEntry {
    /// Process-wide number of the hub, in order of creation.
    pub(crate) serial: u64,
    /// The process the hub is in: after a `fork`, the child's copy of the registry
    /// still lists the parent's hubs, whose threads do not exist there (the forking
    /// thread's hub, rebuilt in the child, becomes the child's: [`adopt_in_child`]).
    pid: AtomicU32,
    /// The kernel's id of the hub's thread (for `tgkill`; see [`tid`](Self::tid)).
    tid: AtomicI32,
    /// The thread's name, or `<unnamed>`.
    pub(crate) thread: String,
    /// The id of the hub's own greenlet.
    pub(crate) hub_greenlet: u64,
    /// Switches into greenlets (see `stats`); written only by the hub's thread.
    pub(crate) switches: AtomicU64,
    /// Sleeps in `epoll_wait` begun plus ended: odd while the hub sleeps. Written only
    /// by the hub's thread.
    pub(crate) sleeps: AtomicU64,
    /// Greenlets registered with the hub; written only by the hub's thread.
    pub(crate) greenlets: AtomicUsize,
    /// The longest run the monitor saw, in nanoseconds (`u64::MAX`: never measured).
    /// Written by the monitor thread.
    pub(crate) longest_run_nanos: AtomicU64,
    /// Set when `requests` has something for the hub to answer.
    requested: AtomicBool,
    requests: Mutex<Vec<mpsc::Sender<HubDump>>>,
    /// Wakes the hub out of `epoll_wait` (replaced when a forked child rebuilds it).
    remote: Mutex<Arc<remote::Shared>>,
}

pub(super) static HUBS: Mutex<Vec<Arc<HubEntry>>> = Mutex::new(Vec::new());
static SERIAL: AtomicU64 = AtomicU64::new(0);

fn hubs() -> MutexGuard<'static, Vec<Arc<HubEntry>>> {
    HUBS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps a hub in the registry; dropping it (with the hub) takes it out.
pub(crate) struct Registration(Arc<HubEntry>);

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.0.is_in_this_process() {
            // A forked child's copy of a parent's hub (dropped at the child's exit):
            // nothing lists it here, and the registry lock may have been held by a
            // parent thread at the fork, which the child does not have to unlock it.
            return;
        }
        hubs().retain(|entry| !Arc::ptr_eq(entry, &self.0));
        // A dump asked of this hub will never come: its requester's receiver sees the
        // senders dropped and stops waiting.
        self.0.take_requests();
    }
}

/// Registers the calling thread's new hub (its own greenlet `hub_greenlet`, its
/// waker `remote`); the entry goes to the hub's counters, the registration into the hub.
pub(crate) fn register(
    hub_greenlet: u64,
    remote: Arc<remote::Shared>,
) -> (Arc<HubEntry>, Registration) {
    let thread = std::thread::current();
    let entry = Arc::new(HubEntry {
        serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        pid: AtomicU32::new(std::process::id()),
        tid: AtomicI32::new(super::sys::gettid()),
        thread: thread.name().unwrap_or("<unnamed>").to_owned(),
        hub_greenlet,
        switches: AtomicU64::new(0),
        sleeps: AtomicU64::new(0),
        greenlets: AtomicUsize::new(0),
        longest_run_nanos: AtomicU64::new(u64::MAX),
        requested: AtomicBool::new(false),
        requests: Mutex::new(Vec::new()),
        remote: Mutex::new(remote),
    });
    list(&entry);
    (entry.clone(), Registration(entry))
}

/// Puts `entry`, of this process, in the registry (once), forgetting what a parent
/// process left behind (see `pid`).
fn list(entry: &Arc<HubEntry>) {
    let mut hubs = hubs();
    hubs.retain(|e| e.is_in_this_process() && !Arc::ptr_eq(e, entry));
    hubs.push(entry.clone());
}

/// Makes the forking thread's hub, rebuilt in a forked child with the waker `remote`
/// (see `fork`), a hub of the child: its entry now names the child's process and
/// thread, and the monitor and `dump_all` see it there as they did in the parent.
/// Runs in the child's fork handler, after the registry's lock was released.
pub(crate) fn adopt_in_child(entry: &Arc<HubEntry>, remote: Arc<remote::Shared>) {
    entry.pid.store(std::process::id(), Ordering::Relaxed);
    entry.tid.store(super::sys::gettid(), Ordering::Relaxed);
    *entry.remote.lock().unwrap_or_else(PoisonError::into_inner) = remote;
    list(entry);
}

/// Every registered hub of this process now.
pub(crate) fn all() -> Vec<Arc<HubEntry>> {
    hubs()
        .iter()
        .filter(|e| e.is_in_this_process())
        .cloned()
        .collect()
}

/// Runs `f` on `entry` if its hub is still registered in this process, with the
/// registry locked (so its thread cannot exit meanwhile: see the module docs). `f`
/// must be quick.
pub(crate) fn with_live<R>(entry: &Arc<HubEntry>, f: impl FnOnce(&HubEntry) -> R) -> Option<R> {
    let hubs = hubs();
    let live = entry.is_in_this_process() && hubs.iter().any(|e| Arc::ptr_eq(e, entry));
    live.then(|| f(entry))
}

impl HubEntry {
    /// The kernel's id of the hub's thread.
    pub(crate) fn tid(&self) -> libc::pid_t {
        self.tid.load(Ordering::Relaxed)
    }

    /// Whether the hub is in this process (not a parent's, in a forked child).
    fn is_in_this_process(&self) -> bool {
        self.pid.load(Ordering::Relaxed) == std::process::id()
    }

    /// Publishes the number of greenlets the hub knows (on the hub's thread).
    #[inline]
    pub(crate) fn set_greenlets(&self, n: usize) {
        self.greenlets.store(n, Ordering::Relaxed);
    }

    /// Asks the hub for a dump of itself: it answers on `reply` at its next
    /// maintenance pass (woken out of `epoll_wait` if it sleeps there).
    pub(crate) fn request_dump(&self, reply: mpsc::Sender<HubDump>) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(reply);
        self.requested.store(true, Ordering::Release);
        self.remote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wake_hub();
    }

    /// Whether a dump was asked for (on the hub's thread, every maintenance pass).
    #[inline]
    pub(crate) fn dump_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// The replies to send a dump to.
    pub(crate) fn take_requests(&self) -> Vec<mpsc::Sender<HubDump>> {
        self.requested.store(false, Ordering::Relaxed);
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
