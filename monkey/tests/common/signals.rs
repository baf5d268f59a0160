//! Installing handlers, counting their runs and sending signals to one thread, for
//! the signal tests. Each test uses a signal of its own: handlers are process-wide,
//! and tests run side by side on threads of one process. Signals are only ever sent
//! to one thread (`pthread_kill`, `raise`), never to the process, which could have
//! another test's thread handle them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libc::c_int;

/// Runs of [`count`] by signal number.
static RUNS: [AtomicUsize; 65] = [const { AtomicUsize::new(0) }; 65];

/// A plain handler counting its runs in [`runs`].
pub extern "C" fn count(sig: c_int) {
    RUNS[sig as usize].fetch_add(1, Ordering::SeqCst);
}

/// How often [`count`] ran for `sig`.
pub fn runs(sig: c_int) -> usize {
    RUNS[sig as usize].load(Ordering::SeqCst)
}

/// The `n`th real-time signal, one per test.
pub fn rt(n: c_int) -> c_int {
    let sig = libc::SIGRTMIN() + n;
    assert!(sig <= libc::SIGRTMAX(), "no real-time signal {n}");
    sig
}

/// An empty `sigaction`.
pub fn empty_action() -> libc::sigaction {
    // SAFETY: all zeroes is a valid `sigaction` (SIG_DFL, empty mask, no flags).
    unsafe { std::mem::zeroed() }
}

/// Installs `handler` for `sig` with `flags` through libc's `sigaction` (the hook when
/// it is linked in); returns what `oldact` said.
pub fn install(sig: c_int, handler: usize, flags: c_int) -> libc::sigaction {
    let mut act = empty_action();
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    let mut old = empty_action();
    // SAFETY: valid action and out-pointer.
    assert_eq!(unsafe { libc::sigaction(sig, &act, &mut old) }, 0);
    old
}

/// What `sigaction` reports for `sig` now.
pub fn current(sig: c_int) -> libc::sigaction {
    let mut old = empty_action();
    // SAFETY: a null action only queries; a valid out-pointer.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0);
    old
}

/// The address of [`count`], as `sa_sigaction` holds it.
pub fn count_address() -> usize {
    count as *const () as usize
}

/// Sends `sig` to the calling thread from another OS thread; returns once it is sent.
pub fn from_another_thread(sig: c_int) {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    std::thread::spawn(move || {
        // SAFETY: `me` is the thread joining this one, alive until the join returns.
        assert_eq!(unsafe { libc::pthread_kill(me, sig) }, 0);
    })
    .join()
    .unwrap();
}

/// Runs other greenlets until each of `ids` is parked (or panics after many turns).
pub fn until_parked(ids: &[u64]) {
    for _ in 0..10_000 {
        let parked = greenweave_runtime::greenlets()
            .iter()
            .filter(|g| ids.contains(&g.id) && g.state == greenweave_runtime::TaskState::Blocked)
            .count();
        if parked == ids.len() {
            return;
        }
        greenweave_runtime::yield_now();
    }
    panic!("greenlets {ids:?} never all parked");
}

/// The calling thread's `errno`.
pub fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// How long a test waits for something that should be immediate before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);
