//! The Linux calls the monitor makes: thread ids, a signal aimed at one thread, a
//! signal handler of its own (installed and chained with the greenlet crate's
//! functions, which its overflow handler uses), and what the handler may ask about its
//! stack. Only this file (and the handler in `capture`) touches signals.

use std::io;
use std::time::Duration;

/// The kernel's id of the calling thread. Async-signal-safe.
pub(crate) fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// Sends `signal` to thread `tid` of this process.
pub(crate) fn signal_thread(tid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call on integers; a stale tid is an ESRCH error, and the
    // caller holds the hub registry lock so a registered tid is one of our threads.
    let rc = unsafe { libc::tgkill(libc::getpid(), tid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) use greenweave_greenlet::signal::{InterruptedCalls, chain, install_handler};

/// The instruction pointer the signal interrupted, from the handler's context.
///
/// # Safety
///
/// `context` must be the third argument of a `SA_SIGINFO` handler.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn interrupted_ip(context: *mut libc::c_void) -> usize {
    let context = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid ucontext_t to a SA_SIGINFO handler.
    unsafe { (*context).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
}

/// The instruction pointer the signal interrupted (unknown on this architecture).
///
/// # Safety
///
/// `context` must be the third argument of a `SA_SIGINFO` handler.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn interrupted_ip(_context: *mut libc::c_void) -> usize {
    0
}

/// How long thread `tid` of this process has waited for a CPU while runnable, in all
/// (the second field of `/proc/self/task/TID/schedstat`); `None` if the kernel does
/// not say.
pub(crate) fn runqueue_wait(tid: libc::pid_t) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let nanos: u64 = stat.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// How much stack is left below `sp` (an address in the running signal handler's
/// frame): on the alternate signal stack if the handler runs there, else on the
/// interrupted greenlet's stack, whose lowest usable address is `greenlet_limit`
/// (0 for a thread's own stack: plenty). Async-signal-safe.
pub(crate) fn stack_room(sp: usize, greenlet_limit: usize) -> usize {
    // SAFETY: stack_t is plain data; zeroed is a valid value.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `current` is a valid out-pointer.
    let rc = unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
    if rc == 0 && current.ss_flags & libc::SS_ONSTACK != 0 {
        return sp.saturating_sub(current.ss_sp as usize);
    }
    if greenlet_limit != 0 && sp > greenlet_limit {
        return sp - greenlet_limit;
    }
    usize::MAX
}
