//! Which areas are patched, and the check every hook makes first.

use std::sync::atomic::{AtomicU8, Ordering};

/// A group of hooks that can be switched on separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Sockets, pipes and other fds: `read`/`write` families (never on fds 0–2),
    /// `recv*`/`send*` (with `recvmmsg`/`sendmmsg`), `sendfile`/`splice`, `connect`,
    /// `accept*`, `poll`/`ppoll`/`select`/`pselect`, `close` and fd-state tracking
    /// (`socket`, `dup*`, `fcntl`, `ioctl(FIONBIO)`, `setsockopt`, `pipe*`).
    Socket,
    /// `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`.
    Time,
    /// `getaddrinfo` (runs on the thread pool).
    Dns,
    /// Waits on other threads: futex waits and wakes through `syscall` (std and
    /// parking_lot locks, condvars, channels, `Once`, `Barrier`, `thread::park`) and
    /// `pthread_join` (`JoinHandle::join`).
    Threads,
    /// `waitpid`, `wait4`, `waitid` for one child (park on a pidfd until it exits).
    Process,
    /// `epoll_wait`, `epoll_pwait`: a greenlet running its own event loop (plain
    /// `mio`) parks. Opt-in with [`patch_event_loops`], never part of [`patch_all`]:
    /// see the `epoll` module docs for the tokio hazard.
    EventLoop,
}

impl Area {
    const fn bit(self) -> u8 {
        match self {
            Area::Socket => 1,
            Area::Time => 2,
            Area::Dns => 4,
            Area::Threads => 8,
            Area::Process => 16,
            Area::EventLoop => 32,
        }
    }
}

static PATCHED: AtomicU8 = AtomicU8::new(0);

fn patch(area: Area) {
    crate::link_hooks();
    greenweave_runtime::coop::on_fork_child(after_fork);
    PATCHED.fetch_or(area.bit(), Ordering::Release);
}

/// The monkey layer's resets in a forked child, which goes on with the forking greenlet
/// on a fresh hub (the runtime's fork handlers): the futex table forgets the parent's
/// greenlets, and the fd table's recorded modes and timeouts, now of descriptions
/// shared with the parent, are asked of the kernel.
fn after_fork() {
    crate::futex::after_fork();
    crate::fd::reset_after_fork();
}

/// Patches every area but [`Area::EventLoop`] (gevent's `monkey.patch_all()`). Call it
/// first thing in `main`; calling it again is harmless. Until it is called, every hook
/// passes straight through to libc (costing one atomic load), so code that runs before
/// it, and programs that never call it, behave exactly as without this crate.
pub fn patch_all() {
    patch(Area::Socket);
    patch(Area::Time);
    patch(Area::Dns);
    patch(Area::Process);
    patch(Area::Threads);
}

/// Patches waits on other threads only: futexes (std and parking_lot locks, condvars,
/// channels, `thread::park`) and thread joins.
pub fn patch_threads() {
    patch(Area::Threads);
}

/// Patches sockets, pipes and fd polling only.
pub fn patch_socket() {
    patch(Area::Socket);
}

/// Patches sleeping only.
pub fn patch_time() {
    patch(Area::Time);
}

/// Patches name resolution only.
pub fn patch_dns() {
    patch(Area::Dns);
}

/// Patches child-process waits only (`Child::wait`, `Command::status`/`output`).
pub fn patch_process() {
    patch(Area::Process);
}

/// Patches `epoll_wait`/`epoll_pwait` ([`Area::EventLoop`]): a greenlet waiting in
/// its own `mio::Poll` (or any epoll loop) parks until the epoll fd is readable or the
/// timeout passes, so several greenlets can each run an event loop on one thread.
/// Not part of [`patch_all`]: runtimes that keep per-thread state around their
/// `epoll_wait` break when a second greenlet enters them while the first is parked
/// there (tokio: "Cannot start a runtime from within a runtime", as in the `postgres`
/// sync client). Call it only if no such runtime runs in greenlets.
pub fn patch_event_loops() {
    patch(Area::EventLoop);
}

/// Whether `area` is patched.
pub fn is_patched(area: Area) -> bool {
    PATCHED.load(Ordering::Acquire) & area.bit() != 0
}

/// Whether any area is patched.
pub(crate) fn any_patched() -> bool {
    PATCHED.load(Ordering::Acquire) != 0
}

/// The first check of every hook: patching is on for `area`, the caller can park (a
/// greenlet on a thread with a hub, not the hub itself), and it is not inside another
/// runtime's event loop (see `foreign`).
#[inline]
pub(crate) fn cooperative(area: Area) -> bool {
    is_patched(area)
        && greenweave_runtime::coop::can_park()
        // Socket hooks, the hottest, look only when they are about to park (`wait_fd`).
        && (area == Area::Socket || !crate::foreign::inside_event_loop())
}
