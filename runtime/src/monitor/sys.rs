//! The Linux calls the monitor makes: thread ids, a signal aimed at one thread, and a
//! signal handler of its own. Only this file (and the handler in `capture`) touches
//! signals.

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

/// Signature of a `SA_SIGINFO` handler.
pub(crate) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Installs `handler` for `signal` (on the alternate signal stack if the thread has
/// one, restarting interrupted system calls) and returns the action it replaced.
pub(crate) fn install_handler(
    signal: libc::c_int,
    handler: Handler,
) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction structs are plain data; zeroed is a valid empty value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t inside `action`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: as above.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; the handler has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(signal, &action, &mut previous) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(previous)
}

/// Hands a signal that was not for us to the handler installed before ours (nothing
/// for `SIG_DFL`/`SIG_IGN`: the capture signal's default action is to ignore it).
///
/// # Safety
///
/// Must be called from inside a signal handler, with that handler's arguments.
pub(crate) unsafe fn chain(
    previous: &libc::sigaction,
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let prev = previous.sa_sigaction;
    if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
        return;
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: registered with SA_SIGINFO, so it has this signature; we pass the
        // arguments we were given.
        let f: Handler = unsafe { std::mem::transmute::<usize, Handler>(prev) };
        f(signal, info, context);
    } else {
        // SAFETY: a handler registered without SA_SIGINFO takes just the signal.
        let f: extern "C" fn(libc::c_int) =
            unsafe { std::mem::transmute::<usize, extern "C" fn(libc::c_int)>(prev) };
        f(signal);
    }
}

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
