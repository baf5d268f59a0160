//! Child-process wait hooks: `waitpid`, `wait4`, `waitid`.
//!
//! std's `Child::wait`, `Command::status` and `Command::output` end in
//! `waitpid(pid, &status, 0)`, which blocks the OS thread, and so every greenlet of its
//! hub, until the child exits. In a greenlet (with [`Area::Process`](crate::Area::Process)
//! patched) a wait for **one specific child** parks the greenlet instead:
//!
//! 1. it asks the kernel first: the real call with the caller's flags plus `WNOHANG`
//!    (the *probe*). Whatever a probe reports (a child's status, or an error such as
//!    `ECHILD` for a pid that is not our child, `EINVAL` for bad flags, `EFAULT`) is
//!    the answer, exactly as the blocking call would have given it;
//! 2. if the child has nothing to report yet, it opens a pidfd for it
//!    (`pidfd_open(2)`), which becomes readable when the child exits, and parks on it
//!    in the hub's reactor;
//! 3. when woken it probes again, and so on until a probe answers. Every probe carries
//!    the caller's own flags, so `WUNTRACED`, `WCONTINUED`, `WNOWAIT`, `__WALL`, …
//!    keep their kernel meaning.
//!
//! Cooperative: `waitpid`/`wait4` with `pid > 0`, and `waitid` with `P_PID` or
//! `P_PIDFD` (on a blocking pidfd), all without `WNOHANG`. These pass straight
//! through, as the kernel gives them: `WNOHANG` (it never blocks), `pid == -1` and
//! `P_ALL` ("any child": no single pidfd says when *some* child changes state, and a
//! child forked meanwhile would be missed), `pid == 0`, `pid < -1` and `P_PGID`
//! (process groups, whose members change under the wait), `P_PIDFD` on an
//! `O_NONBLOCK` pidfd (the kernel answers `EAGAIN`).
//!
//! A readable pidfd means the child has *exited*; it says nothing about stops and
//! continues. So while parked the hook also re-probes on a back-off timer: every 1 ms
//! doubling to 50 ms for waits that report stops or continues (`WUNTRACED`/`WSTOPPED`,
//! `WCONTINUED`), to 1 s for the others. The others need it too: a *tracer* is told of
//! its tracee's ptrace stops even without `WUNTRACED`, and a child may become traced
//! (`PTRACE_TRACEME`) after the wait began, so no check made up front would do. An
//! exit is seen at once, a stop within the back-off interval. Where the pidfd cannot
//! help, the timer alone paces the probes (1 ms doubling to 50 ms): when `pidfd_open`
//! fails (`ENOSYS` before Linux 5.3, `EMFILE`, or `ESRCH` because another thread
//! reaped the child after the first probe; the next probe then reports the kernel's
//! `ECHILD`), and when the pidfd is readable but the child cannot be reaped yet (a
//! zombie whose tracer has not collected it). So no wait ever blocks the hub.
//!
//! A kill or an expired `Timeout` while parked returns -1 with `ECANCELED` /
//! `ETIMEDOUT` and **does not reap the child**: it stays our child, and a later wait
//! still gets its status. (`Command::status` and `output` drop the `Child` on that
//! error, so that child stays a zombie once it exits, until the program waits for any
//! child or ends, as after any other failed wait in std.) Closing the caller's pidfd
//! under a parked `waitid(P_PIDFD, …)` (through the `close` hook) ends it with `EBADF`,
//! as for every hook parked on an fd.
//!
//! `EINTR` stays the kernel's: a probe's result is returned as it is, and the hook
//! never makes one up. A signal handled while the greenlet is parked runs on the hub
//! thread and does not end the wait, as for a wait blocked under `SA_RESTART` (std
//! retries `EINTR` anyway).

use std::time::{Duration, Instant};

use greenweave_runtime::coop::Eintr;
use libc::{c_int, id_t, idtype_t, pid_t, rusage, siginfo_t};

use greenweave_runtime::io::Direction;

use crate::Area;
use crate::errno::{errno, preserving_errno, set_errno};
use crate::state::cooperative;
use crate::wait::{Stop, sleep_until, wait_fd_once};

/// The real functions.
pub mod real {
    use libc::{c_int, id_t, idtype_t, pid_t, rusage, siginfo_t};

    crate::real::real_fns! {
        /// libc's `waitpid`.
        fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t;
        /// libc's `wait4`.
        fn wait4(pid: pid_t, status: *mut c_int, options: c_int, usage: *mut rusage) -> pid_t;
        /// libc's `waitid`.
        fn waitid(idtype: idtype_t, id: id_t, info: *mut siginfo_t, options: c_int) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    waitpid as *const (),
    wait4 as *const (),
    waitid as *const (),
];

/// The longest pause between probes of a wait that reports stops or continues, or that
/// has no pidfd to say when the child exits.
const TIMER_POLL_MAX: Duration = Duration::from_millis(50);
/// The longest pause between probes of any other wait (for ptrace stops).
const EXIT_POLL_MAX: Duration = Duration::from_secs(1);

/// What a parked wait waits on.
enum Target {
    /// A child by pid: the hook opens (and closes) a pidfd for it.
    Pid(pid_t),
    /// The caller's own pidfd (`waitid(P_PIDFD, …)`): waited on, never closed.
    Pidfd(c_int),
}

/// A pidfd the hook opened, closed on drop.
struct OwnedPidfd(c_int);

impl OwnedPidfd {
    /// `pidfd_open(pid, 0)`, or `None` with `errno` set.
    fn open(pid: pid_t) -> Option<OwnedPidfd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1 (the
        // `syscall` hook passes every non-futex number straight through).
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then(|| OwnedPidfd(fd as c_int))
    }
}

impl Drop for OwnedPidfd {
    fn drop(&mut self) {
        // No greenlet waits on it any more (the wait deregistered it), and nobody else
        // knows this fd: the real close suffices.
        // SAFETY: closing the fd this value owns, once.
        unsafe { crate::ctl::real::close(self.0) };
    }
}

/// Whether a wait with these flags reports stops or continues (not only exits).
fn reports_stops(options: c_int) -> bool {
    options & (libc::WUNTRACED | libc::WCONTINUED) != 0
}

/// The cooperative wait shared by the three hooks.
///
/// `probe()` makes the real call with `WNOHANG` added and returns `Some(result)` when
/// that is the answer (a status, or an error), `None` when the child has nothing to
/// report yet.
fn park_until_reported(
    target: Target,
    options: c_int,
    mut probe: impl FnMut() -> Option<c_int>,
) -> c_int {
    if let Some(answer) = probe() {
        return answer;
    }
    let (_owned, mut pidfd) = match target {
        Target::Pid(pid) => match OwnedPidfd::open(pid) {
            Some(owned) => {
                let fd = owned.0;
                (Some(owned), Some(fd))
            }
            None => (None, None),
        },
        Target::Pidfd(fd) => (None, Some(fd)),
    };
    let mut pause = Duration::from_millis(1);
    loop {
        // Without a pidfd to say "exited", the timer paces every probe.
        let longest = if reports_stops(options) || pidfd.is_none() {
            TIMER_POLL_MAX
        } else {
            EXIT_POLL_MAX
        };
        let until = Instant::now().checked_add(pause);
        pause = (pause * 2).min(longest);
        let woken = match pidfd {
            // Restarted after an `SA_RESTART` handler, as `wait4` is. The pidfd is
            // registered for this wait only (the hook closes it behind the `close` hook).
            Some(fd) => wait_fd_once(fd, Direction::Read, until, Eintr::UnlessRestarted),
            None => sleep_until(until, Eintr::UnlessRestarted),
        };
        match woken {
            // The child exited. Should the probe have nothing to reap even so (a zombie
            // its tracer has not collected yet), the pidfd would stay readable: from
            // here on the timer alone paces the probes.
            Ok(()) => pidfd = None,
            Err(Stop::TimedOut) => {}
            Err(Stop::Fail(errno)) => {
                set_errno(errno);
                return -1;
            }
            Err(Stop::Unwatchable) => pidfd = None,
        }
        if let Some(answer) = probe() {
            return answer;
        }
    }
}

/// Hook for `waitpid(2)`: a wait for one child parks the greenlet until it has
/// something to report (see the module docs for which waits, and why).
///
/// # Safety
///
/// As `waitpid(2)`: `status` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    // SAFETY: `wait4` with no rusage is `waitpid`, with the caller's arguments.
    unsafe { wait_for_pid(pid, status, options, None) }
}

/// Hook for `wait4(2)`: as [`waitpid`], also filling in `usage`.
///
/// # Safety
///
/// As `wait4(2)`: `status` and `usage` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    usage: *mut rusage,
) -> pid_t {
    // SAFETY: the caller's arguments.
    unsafe { wait_for_pid(pid, status, options, Some(usage)) }
}

/// `waitpid` (`usage: None`) or `wait4`.
///
/// # Safety
///
/// `status` and `usage` are null or writable.
unsafe fn wait_for_pid(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    usage: Option<*mut rusage>,
) -> pid_t {
    let call = |options: c_int| match usage {
        // SAFETY: the caller's pointers, valid or null as it guarantees.
        Some(usage) => unsafe { real::wait4(pid, status, options, usage) },
        // SAFETY: as above.
        None => unsafe { real::waitpid(pid, status, options) },
    };
    if pid <= 0 || options & libc::WNOHANG != 0 || !cooperative(Area::Process) {
        return call(options);
    }
    preserving_errno(|| {
        park_until_reported(
            Target::Pid(pid),
            options,
            // Nothing to report is a 0 return (and nothing written to status/usage).
            || Some(call(options | libc::WNOHANG)).filter(|&r| r != 0),
        )
    })
}

/// Hook for `waitid(2)`: a `P_PID` or `P_PIDFD` wait parks the greenlet until the child
/// has something to report (see the module docs for which waits, and why).
///
/// # Safety
///
/// As `waitid(2)`: `info` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn waitid(
    idtype: idtype_t,
    id: id_t,
    info: *mut siginfo_t,
    options: c_int,
) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let call =
        |info: *mut siginfo_t, options: c_int| unsafe { real::waitid(idtype, id, info, options) };
    if options & libc::WNOHANG != 0 || !cooperative(Area::Process) {
        return call(info, options);
    }
    let target = match idtype {
        libc::P_PID if id > 0 && id <= pid_t::MAX as id_t => Target::Pid(id as pid_t),
        libc::P_PIDFD if id <= c_int::MAX as id_t && !nonblocking(id as c_int) => {
            Target::Pidfd(id as c_int)
        }
        _ => return call(info, options),
    };
    // With no `info` the caller cannot tell "nothing yet" from a report: probe into a
    // local one (the caller asked for no details, so none are lost).
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    let mut local: siginfo_t = unsafe { std::mem::zeroed() };
    let probe_info = if info.is_null() { &raw mut local } else { info };
    let probe = || {
        let rc = call(probe_info, options | libc::WNOHANG);
        // With WNOHANG and nothing to report the kernel returns 0 and zeroes si_pid.
        // SAFETY: `probe_info` is the caller's writable siginfo or our local one, which
        // the kernel has just written (rc == 0).
        let reported = rc != 0 || unsafe { (*probe_info).si_pid() } != 0;
        reported.then_some(rc)
    };
    preserving_errno(|| park_until_reported(target, options, probe))
}

/// Whether the user made `fd` non-blocking (a non-blocking pidfd makes a wait without
/// `WNOHANG` fail with `EAGAIN`, so such a wait passes straight through). An fd that
/// is not open also passes through: the kernel reports `EBADF`.
fn nonblocking(fd: c_int) -> bool {
    let saved = errno();
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { crate::ctl::real::fcntl(fd, libc::F_GETFL, 0) };
    set_errno(saved);
    flags < 0 || flags & libc::O_NONBLOCK != 0
}
