//! `fork` in a program that uses greenweave: the mechanism behind the crate docs'
//! "Fork" section (which states what a child sees).
//!
//! A forked child must share nothing live with the parent's hubs: a copy of an epoll fd
//! refers to the same kernel object, so a child waiting in it takes the parent's
//! readiness events (and the parent the child's); a waker's eventfd is shared the same
//! way; and the parent's greenlets must never run in the child.
//!
//! The work is done by `pthread_atfork` handlers, registered when the first hub or
//! thread pool is made (or a reset is registered), so a plain `libc::fork()` is enough;
//! nothing needs patching. `posix_spawn` and std's `Command` (which uses it) run no
//! fork handlers, which is right: the child execs at once.
//!
//! - **prepare** (in the parent, before the fork): takes the locks of every thread pool
//!   (see `threadpool::fork`), so no pool is half-changed by a thread that will not
//!   exist in the child, and those of the monitor's record, the hub registry and the
//!   stack capture (see `monitor::fork`), which the monitor thread and
//!   `monitor::start`/`stop` take. The **parent** handler releases them, and so does
//!   the child's.
//! - **child**, on the forking thread, on whatever greenlet called `fork`: the resets
//!   listed in [`in_child`], the one list of them. Other crates add theirs with
//!   [`on_child`] (`coop::on_fork_child`): the monkey layer resets its futex table, and
//!   any per-fd state it keeps, there.
//!
//! Handles that cross threads (a hub's injector, a thread pool job's result slot)
//! record the fork [`generation`] they were made in; seen from a later generation they
//! belong to threads that do not exist, and are inert (see `remote` and
//! `threadpool::handle`).

mod hub;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, TryLockError};

/// How many forks separate this process from the first one that used greenweave (0 in
/// it; bumped in every child). Cross-thread handles record it when made, and a handle
/// from an earlier generation refers to a thread that does not exist here.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current fork generation (see [`GENERATION`]).
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Whether this process is the child of a fork made after greenweave was first used.
pub(crate) fn in_forked_child() -> bool {
    generation() != 0
}

static INSTALL: Once = Once::new();

/// Registers the fork handlers (once per process): called when the first hub or
/// thread pool is made.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: the three handlers are `extern "C"` functions that never unwind
        // (`guarded` catches any panic and aborts).
        let err = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if err != 0 {
            log::error!(
                "greenweave: pthread_atfork failed ({}): a forked child would share its \
                 parent's hub",
                std::io::Error::from_raw_os_error(err)
            );
        }
    });
}

/// Most resets other crates may register with [`on_child`].
const MAX_RESETS: usize = 16;

/// The registered resets, as `fn()` addresses (0: free). Lock-free, so the child
/// handler reads it without a lock that a vanished thread might hold.
static RESETS: [AtomicUsize; MAX_RESETS] = [const { AtomicUsize::new(0) }; MAX_RESETS];

/// Has `reset` run in every forked child, after the runtime's own resets (the hub of
/// the forking thread is fresh by then). For process-global state of another crate
/// that names threads or greenlets of the parent, or that a thread which does not
/// exist in the child may have locked (the monkey layer's futex table, its per-fd
/// state). `reset` runs inside `fork`, on the forking thread, with no other thread in
/// the process: it must not block or take a lock, and must not panic (a panic there
/// aborts the child). Registering the same function again does nothing.
///
/// # Panics
///
/// If more than 16 different resets are registered.
#[track_caller]
pub fn on_child(reset: fn()) {
    install();
    let addr = reset as usize;
    for slot in &RESETS {
        match slot.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(taken) if taken == addr => return,
            Err(_) => {}
        }
    }
    panic!("greenweave: more than {MAX_RESETS} fork resets registered (coop::on_fork_child)");
}

/// Everything reset in a forked child, in order: the one list of it.
fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // Pools first: they only need their own locks, which the prepare handler holds.
    crate::threadpool::fork::in_child();
    crate::monitor::fork::release();
    // The forking thread's hub. What it replaced (the inherited epoll and waker fds)
    // is closed last, once every reset has run and every hook sees fresh state.
    let replaced = hub::rebuild();
    for slot in &RESETS {
        let addr = slot.load(Ordering::Acquire);
        if addr == 0 {
            break;
        }
        // SAFETY: only `on_child` stores here, and only the address of a `fn()`.
        let reset: fn() = unsafe { std::mem::transmute::<usize, fn()>(addr) };
        reset();
    }
    drop(replaced);
}

unsafe extern "C" fn prepare() {
    guarded("prepare", || {
        crate::threadpool::fork::prepare();
        crate::monitor::fork::prepare();
    });
}

unsafe extern "C" fn parent() {
    guarded("parent", || {
        crate::monitor::fork::release();
        crate::threadpool::fork::release();
    });
}

/// Locks `mutex` for a fork handler without ever waiting in `lock()`: under
/// `greenweave-monkey`'s futex hooks a contended `lock()` could park the forking
/// greenlet inside `fork` and run others there. For locks held only briefly.
pub(crate) fn lock_for_fork<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
}

unsafe extern "C" fn child() {
    guarded("child", in_child);
}

/// Runs a fork handler; a panic cannot unwind through `fork`, so it aborts with a
/// message instead.
fn guarded(which: &str, f: fn()) {
    if panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        greenweave_greenlet::raw_write(
            2,
            format!("greenweave: the {which} fork handler panicked; aborting\n").as_bytes(),
        );
        std::process::abort();
    }
}

/// How a forked child's main greenlet (the spawned greenlet that forked) ended, for
/// [`exit_child`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildEnd {
    /// It returned, or nothing is left to run: exit status 0, as when `main` returns.
    Returned,
    /// It panicked or was killed: exit status 101, as when `main` panics.
    Died,
}

/// Ends a forked child as a program whose `main` returned or panicked.
pub(crate) fn exit_child(end: ChildEnd) -> ! {
    std::process::exit(match end {
        ChildEnd::Returned => 0,
        ChildEnd::Died => 101,
    })
}
