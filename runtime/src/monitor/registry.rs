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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};

use crate::dump::HubDump;
use crate::remote;

/// The part of a hub that other threads may see.
pub(crate) struct HubEntry {
    /// Process-wide number of the hub, in order of creation.
    pub(crate) serial: u64,
    /// The process that made it: after a `fork`, the child's copy of the registry
    /// still lists the parent's hubs, whose threads do not exist there.
    pid: u32,
    /// The kernel's id of the hub's thread (for `tgkill`).
    pub(crate) tid: libc::pid_t,
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
    /// Wakes the hub out of `epoll_wait`.
    remote: Arc<remote::Shared>,
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
        if self.0.pid != std::process::id() {
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
        pid: std::process::id(),
        tid: super::sys::gettid(),
        thread: thread.name().unwrap_or("<unnamed>").to_owned(),
        hub_greenlet,
        switches: AtomicU64::new(0),
        sleeps: AtomicU64::new(0),
        greenlets: AtomicUsize::new(0),
        longest_run_nanos: AtomicU64::new(u64::MAX),
        requested: AtomicBool::new(false),
        requests: Mutex::new(Vec::new()),
        remote,
    });
    let mut hubs = hubs();
    // Forget what a parent process left behind (see `pid`).
    hubs.retain(|e| e.pid == entry.pid);
    hubs.push(entry.clone());
    (entry.clone(), Registration(entry))
}

/// Every registered hub of this process now.
pub(crate) fn all() -> Vec<Arc<HubEntry>> {
    let pid = std::process::id();
    hubs().iter().filter(|e| e.pid == pid).cloned().collect()
}

/// Runs `f` on `entry` if its hub is still registered in this process, with the
/// registry locked (so its thread cannot exit meanwhile: see the module docs). `f`
/// must be quick.
pub(crate) fn with_live<R>(entry: &Arc<HubEntry>, f: impl FnOnce(&HubEntry) -> R) -> Option<R> {
    let hubs = hubs();
    let live = entry.pid == std::process::id() && hubs.iter().any(|e| Arc::ptr_eq(e, entry));
    live.then(|| f(entry))
}

impl HubEntry {
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
        self.remote.wake_hub();
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
