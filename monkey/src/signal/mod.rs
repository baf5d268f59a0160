//! Signal handlers: `sigaction`, `signal`, `bsd_signal`, `siginterrupt`.
//!
//! A signal handler that runs while a thread is blocked in a system call makes the
//! call fail with `EINTR`, or restarts it if the handler was installed with
//! `SA_RESTART`; `poll`, `select`, `epoll_wait`, the sleeps and socket calls with a
//! timeout fail with `EINTR` either way (signal(7), "Interruption of system calls and
//! library functions by signal handlers"). A greenlet parked in a patched call is in
//! no system call, so this module makes the same happen to it:
//!
//! - The `sigaction` hook installs a handler as the user gave it (mask, flags), except
//!   that the kernel calls a *trampoline*, which calls the user's handler (one- or
//!   three-argument form, as `SA_SIGINFO` says) and, in a patched process, tells the
//!   hub of the thread it runs on
//!   ([`run_signal_handler`](greenweave_runtime::coop::run_signal_handler)), which
//!   also keeps the handler's own libc calls (a self-pipe `write`) from parking: they
//!   are the real, async-signal-safe ones.
//! - At its next maintenance pass (at once if it was asleep) that hub ends with `EINTR`
//!   the wait of every greenlet that was parked, when the handler ran, in a patched
//!   call the kernel would interrupt (see the table in the crate docs). Each hook
//!   parks with the class its system call has in signal(7): without `SA_RESTART`
//!   every hooked call that parks; with it, only `poll`/`ppoll`/`select`/`pselect`,
//!   `epoll_wait` (opt-in), the sleeps, and socket calls with a `SO_RCVTIMEO`/
//!   `SO_SNDTIMEO` timeout.
//!
//! Everything else the kernel does is kept: a transfer that moved some bytes first
//! returns those; `nanosleep` and `clock_nanosleep` write the time not slept to `rem`,
//! `sleep` returns the seconds left and `select` the time left; an interrupted
//! `connect` goes on in the background, and a later blocking `connect` waits for it.
//! Greenlets that were running or ready when the handler ran, parked in a wait that
//! began later, or parked on another thread are not affected; futex waits (std and
//! parking_lot locks, condvars, channels, joins) and `getaddrinfo` never are: std
//! retries a futex wait that says `EINTR` at once, and a lock has no way to fail.
//!
//! Unpatched, the trampoline only calls the handler (in a forked child it works as in
//! the parent, on the child's fresh hub).
//! `sigaction`'s `oldact` always reports the user's handler and flags, never the
//! trampoline, so chaining to the previous handler (signal-hook, ctrlc) and restoring
//! it work as before. `SIG_DFL` and `SIG_IGN` pass straight through. Installing a
//! handler makes the hubs treat a greenlet parked in a wait some signal can end as
//! something the system may wake (`expect_signals`), so a `pause` is not reported as
//! a deadlock.
//!
//! Not wrapped: the fault signals (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGTRAP`,
//! `SIGSYS`), which the instruction that runs raises, in the running greenlet, never a
//! parked one (and the greenlet crate's stack-overflow handler must stay as it is);
//! handlers installed past the interning table's room (256 distinct handler and flags
//! pairs); and dispositions set other than through these four functions (`sigset`,
//! `sysv_signal`, the raw system call): such handlers run as usual but interrupt no
//! parked greenlet.
//!
//! A signal sent to the process is handled by any one thread that does not block it,
//! as ever: send it to the hub's thread (`pthread_kill`), or block it in the others,
//! to interrupt that hub's greenlets. For a clean shutdown on Ctrl-C or `SIGTERM`, the
//! recipe in `greenweave_runtime::server` (a handler writing to a socket pair a
//! greenlet reads) needs no patching at all.

mod table;

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use libc::{c_int, sighandler_t};

use crate::errno::set_errno;
use table::{Handler, NSIG};

/// The real functions.
pub mod real {
    use libc::c_int;

    crate::real::real_fns! {
        /// libc's `sigaction`.
        fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    sigaction as *const (),
    signal as *const (),
    bsd_signal as *const (),
    siginterrupt as *const (),
];

/// Whether a handler for `sig` is wrapped: a signal number the kernel accepts a handler
/// for, other than the faults (see the module docs).
fn wrapped(sig: c_int) -> bool {
    let valid = usize::try_from(sig).is_ok_and(|sig| (1..NSIG).contains(&sig));
    valid
        && !matches!(
            sig,
            libc::SIGKILL
                | libc::SIGSTOP
                | libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGILL
                | libc::SIGFPE
                | libc::SIGTRAP
                | libc::SIGSYS
        )
}

/// Whether a disposition is a function (not `SIG_DFL`, `SIG_IGN` or `SIG_ERR`).
fn is_function(action: sighandler_t) -> bool {
    !matches!(action, libc::SIG_DFL | libc::SIG_IGN | libc::SIG_ERR)
}

/// Hook for `sigaction(2)`: a handler is installed behind the trampoline (see the
/// module docs); `old` reports the user's handler and flags.
///
/// # Safety
///
/// As `sigaction(2)`: `act` is null or readable, `old` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    if !wrapped(sig) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::sigaction(sig, act, old) };
    }
    let _serial = Serial::enter();
    let previous = table::entry(sig);
    // SAFETY: the caller guarantees `act` is null or readable.
    let mut new = unsafe { act.as_ref() }.copied();
    if let Some(new) = new.as_mut() {
        wrap(sig, new);
    }
    let new_ptr = new.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: our copy of the caller's action (or null) and the caller's `old`.
    let rc = unsafe { real::sigaction(sig, new_ptr, old) };
    if rc != 0 {
        table::restore_entry(sig, previous);
        return rc;
    }
    // SAFETY: the caller guarantees `old` is null or writable; the kernel filled it in.
    if let (Some(old), Some(previous)) = (unsafe { old.as_mut() }, previous) {
        if old.sa_sigaction == table::trampoline_address() {
            old.sa_sigaction = previous.action;
            old.sa_flags = (old.sa_flags & !libc::SA_SIGINFO) | (previous.flags & libc::SA_SIGINFO);
        }
    }
    rc
}

/// Puts the trampoline in place of the handler of `act` (made the entry of `sig`),
/// if it is a function and a slot is left for it. Installing the trampoline itself
/// (an action read past this hook) keeps the entry as it is.
fn wrap(sig: c_int, act: &mut libc::sigaction) {
    let action = act.sa_sigaction;
    if !is_function(action) || action == table::trampoline_address() {
        return;
    }
    let user = Handler {
        action,
        flags: act.sa_flags,
    };
    if table::set_entry(sig, user) {
        act.sa_sigaction = table::trampoline_address();
        act.sa_flags |= libc::SA_SIGINFO;
        greenweave_runtime::coop::expect_signals();
    }
}

/// Signals for which [`siginterrupt`] asked that `signal` leave out `SA_RESTART`
/// (glibc's own record of that is private to it).
static INTERRUPTING: AtomicU64 = AtomicU64::new(0);

/// `sig`'s bit in [`INTERRUPTING`] (`sig` is in `1..NSIG`).
fn bit(sig: c_int) -> u64 {
    1 << (sig - 1)
}

/// Hook for `signal(2)` (glibc's BSD semantics: `SA_RESTART` unless
/// [`siginterrupt`] said otherwise, the signal blocked while its handler runs),
/// through the [`sigaction`] hook. Returns the previous handler, or `SIG_ERR`.
///
/// # Safety
///
/// As `signal(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    if handler == libc::SIG_ERR || !(1..NSIG as c_int).contains(&sig) {
        set_errno(libc::EINVAL);
        return libc::SIG_ERR;
    }
    // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no flags).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    // SAFETY: a valid mask to fill in; `sig` is in range.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaddset(&mut act.sa_mask, sig);
    }
    if INTERRUPTING.load(Ordering::Relaxed) & bit(sig) == 0 {
        act.sa_flags = libc::SA_RESTART;
    }
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid action and out-pointer.
    if unsafe { sigaction(sig, &act, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// Hook for `bsd_signal(3)`: [`signal`].
///
/// # Safety
///
/// As `signal(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: the caller's arguments.
    unsafe { signal(sig, handler) }
}

/// Hook for `siginterrupt(3)`: turns `SA_RESTART` off (`flag` non-zero) or on for
/// `sig`'s current handler and for later [`signal`] calls, through the [`sigaction`]
/// hook (glibc's own would change the flags behind the trampoline's back).
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn siginterrupt(sig: c_int, flag: c_int) -> c_int {
    // SAFETY: a zeroed `sigaction` is a valid value.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    if unsafe { sigaction(sig, std::ptr::null(), &mut act) } != 0 {
        return -1;
    }
    // `sigaction` accepted `sig`, so it is in 1..NSIG.
    if flag != 0 {
        INTERRUPTING.fetch_or(bit(sig), Ordering::Relaxed);
        act.sa_flags &= !libc::SA_RESTART;
    } else {
        INTERRUPTING.fetch_and(!bit(sig), Ordering::Relaxed);
        act.sa_flags |= libc::SA_RESTART;
    }
    // SAFETY: the action just read, with other flags.
    unsafe { sigaction(sig, &act, std::ptr::null_mut()) }
}

/// The pid of the process whose thread is inside [`sigaction`]'s update, 0 for none.
static SERIAL: AtomicI32 = AtomicI32::new(0);

/// Serialises the hook's updates (the entry and the kernel's disposition change
/// together), with every signal blocked on the calling thread meanwhile, so no handler
/// on it can come in between. A spin lock, as no futex wait may happen here (the
/// `syscall` hook could park the greenlet with every signal blocked). It holds the
/// owner's pid: a child forked while another thread held it finds its parent's pid
/// there, and takes it over.
struct Serial {
    mask: libc::sigset_t,
}

impl Serial {
    fn enter() -> Serial {
        // SAFETY: a zeroed sigset_t is a valid value to fill in.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid sets; blocking signals on this thread has no other effect.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut mask);
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let mut holder = 0;
        while let Err(found) =
            SERIAL.compare_exchange_weak(holder, me, Ordering::Acquire, Ordering::Relaxed)
        {
            // Free (0), or held by the process this one was forked from: take it.
            // Held by another thread of ours: let it finish.
            holder = if found == me {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
                0
            } else {
                found
            };
        }
        Serial { mask }
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        SERIAL.store(0, Ordering::Release);
        // SAFETY: the mask saved by `enter`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut()) };
    }
}
