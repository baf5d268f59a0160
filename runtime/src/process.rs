//! Running child processes without blocking the hub (gevent's `gevent.subprocess`).
//!
//! std's `Child::wait`, `Command::status` and `Command::output` block the OS thread,
//! and so every greenlet of its hub, until the child exits. The functions here do the
//! same jobs for std's own [`Command`] and [`Child`] but park only the calling
//! greenlet; other greenlets run meanwhile. No patching is needed.
//!
//! | std                           | here                              | gevent                     |
//! |-------------------------------|-----------------------------------|----------------------------|
//! | `command.status()`            | [`status`]`(&mut command)`        | `subprocess.call`          |
//! | `command.output()`            | [`output`]`(&mut command)`        | `subprocess.run(capture…)` |
//! | `child.wait()`                | [`wait`]`(&mut child)`            | `Popen.wait()`             |
//! | (none)                        | [`wait_timeout`]`(&mut child, d)` | `Popen.wait(timeout)`      |
//! | `child.wait_with_output()`    | [`wait_with_output`]`(child)`     | `Popen.communicate()`      |
//!
//! ```
//! use std::process::Command;
//! use std::time::{Duration, Instant};
//! use greenweave_runtime::{joinall, process, spawn};
//!
//! let start = Instant::now();
//! let runs: Vec<_> = (0..10)
//!     .map(|i| spawn(move || process::status(Command::new("sh").args(["-c", &format!("sleep 0.2; exit {i}")]))))
//!     .collect();
//! for (i, run) in joinall(runs).into_iter().enumerate() {
//!     assert_eq!(run.unwrap().unwrap().code(), Some(i as i32));
//! }
//! assert!(start.elapsed() < Duration::from_secs(2)); // about 0.2 s, not 2 s
//!
//! let mut child = Command::new("sleep").arg("10").spawn().unwrap();
//! assert_eq!(process::wait_timeout(&mut child, Duration::from_millis(20)).unwrap(), None);
//! child.kill().unwrap(); // still ours after the timeout: kill it and reap it
//! assert!(!process::wait(&mut child).unwrap().success());
//! ```
//!
//! # How
//!
//! A wait asks `child.try_wait()` first; if the child is still running it opens a
//! pidfd for it (`pidfd_open(2)`, Linux 5.3+), which becomes readable when the child
//! exits, parks on that in the hub's reactor, and asks `try_wait` again. Without a
//! pidfd (an older kernel, no fds left) it asks on a cooperative back-off timer
//! instead (1 ms doubling to 50 ms). These waits are for the child's *exit*, as std's
//! are. [`output`] and [`wait_with_output`] read stdout and stderr to their ends at
//! the same time (both pipes non-blocking, watched together), so a child may write any
//! amount to both, or close one early and keep running, then wait for it.
//!
//! # Kills, timeouts and the child
//!
//! A kill or an expired [`Timeout`](crate::Timeout) while waiting unwinds, as every
//! Rust-level blocking call does. What becomes of the child:
//!
//! - [`wait`] and [`wait_timeout`] borrow the child and leave it as it is: running (or
//!   exited), still yours to kill and wait for, as gevent's `Popen.wait` does. (If you
//!   then drop the `Child`, std neither kills nor reaps it.)
//! - [`status`], [`output`] and [`wait_with_output`] own the child. If they end
//!   without its exit status (an unwind or an error), they kill it (`SIGKILL`) and
//!   reap it on the [thread pool](crate::threadpool), so neither a running orphan nor
//!   a zombie is left behind; Python's `subprocess.run` and `call` also kill the child
//!   on an exception. So `with_timeout(d, || process::output(&mut command))` is a run
//!   with a time limit.
//!
//! Not covered: feeding stdin (write to `child.stdin` from another greenlet, with
//! the [`io`](crate::io) waits or on the thread pool, then use [`wait_with_output`]),
//! and waits for stops and continues (`WUNTRACED`), which std does not offer either.
//! Spawning itself (`fork`/`posix_spawn` and `exec`) is quick and is done as std does
//! it.

#[allow(unsafe_code)]
mod pidfd;
mod pipes;

use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::io::{Direction, Keep};
use crate::park::raise;
use crate::time::deadline_after;

/// The first pause of the back-off timer used when no pidfd can tell of the exit.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause of that timer.
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// Runs `command` to its end and returns its exit status, parking only this greenlet:
/// `command.status()` for greenlets (gevent's `subprocess.call`). As with std, the
/// child inherits stdin, stdout and stderr unless the command says otherwise.
///
/// # Errors
///
/// As `Command::status`: the spawn's error (`NotFound` for a missing program, …) or
/// the wait's.
///
/// # Panics
///
/// Unwinds with `GreenletExit` if the greenlet is killed, or with a `Timeout`'s
/// payload if one expires, while it waits; the child is then killed and reaped.
#[track_caller]
pub fn status(command: &mut Command) -> io::Result<ExitStatus> {
    let mut child = KillOnDrop(Some(command.spawn()?));
    let status = wait(child.get())?;
    child.disarm();
    Ok(status)
}

/// Runs `command` to its end, collecting all of its stdout and stderr, parking only
/// this greenlet: `command.output()` for greenlets.
///
/// stdout and stderr are always captured (this sets them to [`Stdio::piped`]). stdin
/// is what the command says, inherited by default as in Python's `subprocess.run`;
/// std's `output` makes it null, so set `.stdin(Stdio::null())` for that.
///
/// # Errors
///
/// The spawn's error, or a read's or the wait's.
///
/// # Panics
///
/// Unwinds with `GreenletExit` if the greenlet is killed, or with a `Timeout`'s
/// payload if one expires, while it waits; the child is then killed and reaped.
#[track_caller]
pub fn output(command: &mut Command) -> io::Result<Output> {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_with_output(child)
}

/// Waits for `child` to exit and returns its status, parking only this greenlet:
/// `child.wait()` for greenlets (gevent's `Popen.wait()`). As std's `wait`, it first
/// closes the child's stdin, if piped, so a child reading it sees its end; a child
/// that has already been waited for returns its status at once.
///
/// # Errors
///
/// As `Child::wait`: the kernel's error, e.g. `ECHILD` if something else reaped the
/// child (a `waitpid(-1, …)` elsewhere in the program).
///
/// # Panics
///
/// Unwinds with `GreenletExit` if the greenlet is killed, or with a `Timeout`'s
/// payload if one expires, while it waits; the child is left as it is.
#[track_caller]
pub fn wait(child: &mut Child) -> io::Result<ExitStatus> {
    drop(child.stdin.take());
    loop {
        if let Some(status) = wait_until(child, None)? {
            return Ok(status);
        }
    }
}

/// Waits at most `timeout` for `child` to exit (gevent's `Popen.wait(timeout)`, the
/// `wait-timeout` crate's `wait_timeout`): `Ok(Some(status))` if it did, `Ok(None)` if
/// it is still running when the time is up, in which case it is left running, still
/// yours to wait for again or kill. Unlike [`wait`] it leaves the child's stdin open.
/// A zero timeout asks once without parking (`child.try_wait()`).
///
/// # Errors
///
/// As [`wait`].
///
/// # Panics
///
/// As [`wait`]: the child is left as it is.
#[track_caller]
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    wait_until(child, deadline_after(timeout))
}

/// Reads all of `child`'s stdout and stderr (those that are piped) and waits for it
/// to exit, parking only this greenlet: `child.wait_with_output()` for greenlets
/// (gevent's `Popen.communicate()`). The child's stdin, if piped, is closed first.
/// Both streams are read at the same time, so the child may write any amount to
/// either, or close one early and go on running.
///
/// # Errors
///
/// A read's error or the wait's; the child is then killed and reaped.
///
/// # Panics
///
/// Unwinds with `GreenletExit` if the greenlet is killed, or with a `Timeout`'s
/// payload if one expires, while it waits; the child is then killed and reaped.
#[track_caller]
pub fn wait_with_output(child: Child) -> io::Result<Output> {
    let mut owned = KillOnDrop(Some(child));
    let child = owned.get();
    drop(child.stdin.take());
    let (stdout, stderr) = pipes::read_both(child.stdout.take(), child.stderr.take())?;
    let status = wait(child)?;
    owned.disarm();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Parks until `child` exits (`Some`) or `deadline` passes (`None`).
#[track_caller]
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    // The child is ours and unreaped, so its pid cannot be reused under the pidfd.
    let pidfd = pidfd::open(child.id()).ok();
    let mut watching = pidfd.as_ref().map(AsRawFd::as_raw_fd);
    let mut pause = FIRST_PAUSE;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Ok(None);
        }
        match watching {
            Some(fd) => {
                let ready = crate::io::wait(fd, Direction::Read, deadline, Keep::Once);
                match ready.unwrap_or_else(|interrupt| raise(interrupt)) {
                    // Exited. Should `try_wait` not reap it even so (a zombie its
                    // tracer has not collected yet), the pidfd would stay readable:
                    // from here on the timer paces the questions.
                    Ok(()) => watching = None,
                    Err(err) if err.kind() == ErrorKind::TimedOut => {}
                    // epoll cannot watch it: ask on the timer.
                    Err(_) => watching = None,
                }
            }
            None => {
                let mut until = now + pause;
                if let Some(deadline) = deadline {
                    until = until.min(deadline);
                }
                crate::sleep_until(until);
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
    }
}

/// A child this module owns: killed and reaped unless [`disarm`](Self::disarm)ed,
/// so an unwind or an error leaves neither a running orphan nor a zombie.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().expect("only disarm takes the child")
    }

    /// The child has been waited for: nothing to clean up.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let _ = child.kill();
        if !matches!(child.try_wait(), Ok(None)) {
            return; // reaped (or not ours to reap any more)
        }
        // Dying takes the kernel a moment: reap it where blocking is harmless. This
        // may run during an unwind, so a refusal (a pool shut down) must not panic
        // out of here; the zombie is then left to the end of the program.
        let reap = move || {
            crate::threadpool::default_pool().spawn(move || {
                let _ = child.wait();
            });
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(reap));
    }
}
