//! Helpers for tests that `fork` (runtime/tests/fork*.rs, monkey/tests/fork.rs): run a
//! closure in a real forked child that reports through its exit status, and wait for
//! the child cooperatively, with a deadline, so a hung child fails the test instead
//! of hanging it. They work under Valgrind (`.ci/valgrind`), which does not know
//! `pidfd_open`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use greenweave_runtime::{JoinHandle, TaskState, greenlets, sleep, spawn, yield_now};

/// Rounds of a fork scenario.
pub const ROUNDS: usize = 100;

/// How long one side waits for something the other side does.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One fork at a time per process: a child must not inherit another test's fork in
/// progress (and [`PARENT_GREENLET_RAN`] is shared).
pub fn one_fork_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Set by the parent's greenlets when their waits end ([`parent_greenlet_ran`]).
/// Reset before every fork ([`new_round`]), so in a child it says whether one of
/// them ran there.
static PARENT_GREENLET_RAN: AtomicBool = AtomicBool::new(false);

/// Starts a scenario round: no parent greenlet has finished its wait yet.
pub fn new_round() {
    PARENT_GREENLET_RAN.store(false, Ordering::SeqCst);
}

/// What a parent's greenlet calls when its wait has ended.
pub fn parent_greenlet_ran() {
    PARENT_GREENLET_RAN.store(true, Ordering::SeqCst);
}

/// A scenario child's exit status: 0, [`PARENT_GREENLET_RAN_IN_CHILD`], or
/// [`CHILD_FAILED`] if its own work (`outcome`) failed.
pub fn child_verdict<T, E>(outcome: Result<T, E>) -> i32 {
    if PARENT_GREENLET_RAN.load(Ordering::SeqCst) {
        PARENT_GREENLET_RAN_IN_CHILD
    } else if outcome.is_err() {
        CHILD_FAILED
    } else {
        0
    }
}

pub const PARENT_GREENLET_RAN_IN_CHILD: i32 = 10;
pub const CHILD_FAILED: i32 = 11;

/// Waits for a scenario child and fails the test with what [`child_verdict`] said.
pub fn expect_clean_exit(child: Child) {
    match child.wait(CHILD_DEADLINE) {
        0 => {}
        PARENT_GREENLET_RAN_IN_CHILD => panic!("a greenlet of the parent ran in the child"),
        CHILD_FAILED => panic!("the child's own greenlets failed"),
        other => panic!("the child failed with status {other}"),
    }
}

/// Yields until `n` greenlets are blocked (parked at their waits).
pub fn settle(n: usize) {
    for _ in 0..1000 {
        if greenlets()
            .iter()
            .filter(|g| g.state == TaskState::Blocked)
            .count()
            >= n
        {
            return;
        }
        yield_now();
    }
    panic!("the greenlets never parked: {:?}", greenlets());
}

/// Writes `msg` on `stream` and reads its echo back.
pub fn exchange<S>(stream: &S, msg: &[u8]) -> std::io::Result<()>
where
    for<'a> &'a S: Read + Write,
{
    let mut stream = stream;
    stream.write_all(msg)?;
    let mut echo = vec![0; msg.len()];
    stream.read_exact(&mut echo)?;
    if echo != msg {
        return Err(std::io::Error::other(format!("echo {echo:?} for {msg:?}")));
    }
    Ok(())
}

/// A parent's greenlet that echoes what it reads on `peer` until end of file (marking
/// each read with [`parent_greenlet_ran`]).
pub fn spawn_echo<S: Read + Write + 'static>(mut peer: S) -> JoinHandle<()> {
    spawn(move || {
        let mut buf = [0; 64];
        loop {
            let n = peer.read(&mut buf).unwrap();
            parent_greenlet_ran();
            if n == 0 {
                break;
            }
            peer.write_all(&buf[..n]).unwrap();
        }
    })
}

/// The start of a shared-socket round: the forking greenlet (main, or a spawned one if
/// `from_spawned`) registers `ours` with its hub by an exchange with the echo greenlet
/// (parked again before the fork), then forks; the child runs `child` with `ours`, the
/// parent gets the child's handle and `ours` back.
pub fn register_then_fork<S: 'static>(
    ours: S,
    from_spawned: bool,
    child: impl FnOnce(S) -> i32 + 'static,
) -> (Child, S)
where
    for<'a> &'a S: Read + Write,
{
    let use_then_fork = move || {
        exchange(&ours, b"before").expect("the exchange before the fork");
        settle(if from_spawned { 2 } else { 1 }); // the echo greenlet (and main)
        new_round();
        match fork() {
            Some(handle) => (handle, ours),
            None => child_exits_with(move || child(ours)),
        }
    };
    if from_spawned {
        spawn(use_then_fork).join().unwrap()
    } else {
        use_then_fork()
    }
}

/// The exit status of a child whose closure panicked (the message may be lost: the
/// child writes nothing itself, to stay clear of locks other test threads held at fork).
pub const CHILD_PANICKED: i32 = 99;

/// How long a child may take before it counts as hung.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(20);

/// One forked child, in the parent. Dropped without [`wait`](Child::wait) (a failing
/// test), it kills and reaps the child, so no stray child outlives the test.
pub struct Child {
    pub pid: libc::pid_t,
    reaped: bool,
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Forks. The child runs `child` and exits with the status it returns (through `_exit`,
/// so nothing of the parent's, such as the test harness, runs on in the child);
/// [`CHILD_PANICKED`] if it panics. The parent gets the child's handle.
pub fn fork_child(child: impl FnOnce() -> i32) -> Child {
    match fork() {
        Some(parent_side) => parent_side,
        None => child_exits_with(child),
    }
}

/// Forks: the child's handle in the parent, `None` in the child (which must end with
/// [`child_exits_with`]).
pub fn fork() -> Option<Child> {
    let pid = raw_fork();
    (pid != 0).then(|| Child::of(pid))
}

/// The status of a child that got back into the test's own code (a greenlet of the
/// parent resumed there, say) and tried to fork again.
pub const CHILD_ESCAPED: i32 = 98;

/// `libc::fork()`, from the test process only: a child that somehow runs the test's
/// code again (a regression resuming the parent's greenlets) exits instead of forking,
/// so a broken build fails its tests instead of forking without end.
pub fn raw_fork() -> libc::pid_t {
    static TEST_PROCESS: OnceLock<u32> = OnceLock::new();
    if *TEST_PROCESS.get_or_init(std::process::id) != std::process::id() {
        // SAFETY: ends a child that must not go on.
        unsafe { libc::_exit(CHILD_ESCAPED) };
    }
    // SAFETY: the callers end the child with `_exit` (or greenweave's rules do);
    // greenweave's fork handlers make its hub usable there (what these tests check).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    pid
}

/// In a child: runs `child` and exits with the status it returns, [`CHILD_PANICKED`]
/// if it panics.
pub fn child_exits_with(child: impl FnOnce() -> i32) -> ! {
    let code = panic::catch_unwind(AssertUnwindSafe(child)).unwrap_or(CHILD_PANICKED);
    // SAFETY: ends the child without running the parent's exit handlers.
    unsafe { libc::_exit(code) }
}

impl Child {
    /// The handle of child `pid` (ours).
    pub fn of(pid: libc::pid_t) -> Child {
        Child { pid, reaped: false }
    }

    /// Parks the calling greenlet until the child exits and returns its exit status.
    /// The parent's greenlets run meanwhile: it asks `waitpid` (`WNOHANG`) every
    /// millisecond and sleeps in between (a pidfd would tell at once, but Valgrind does
    /// not know `pidfd_open`).
    ///
    /// # Panics
    ///
    /// If the child is still running after `deadline` (it is killed first) or was
    /// killed by a signal.
    pub fn wait(mut self, deadline: Duration) -> i32 {
        let give_up = Instant::now() + deadline;
        let mut status = 0;
        loop {
            // SAFETY: our own child, not yet reaped; `status` is a valid out-pointer.
            let reaped = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if reaped == self.pid {
                break;
            }
            assert_eq!(reaped, 0, "waitpid: {}", std::io::Error::last_os_error());
            assert!(
                Instant::now() < give_up,
                "the child {} hung: still running after {deadline:?} (killed)",
                self.pid
            );
            sleep(Duration::from_millis(1));
        }
        self.reaped = true;
        assert!(
            libc::WIFEXITED(status),
            "the child {} died of signal {}",
            self.pid,
            libc::WTERMSIG(status)
        );
        libc::WEXITSTATUS(status)
    }
}

/// A pipe whose write end a forked child reports one byte of findings on.
struct Report {
    read: libc::c_int,
    write: libc::c_int,
}

impl Report {
    fn new() -> Report {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid out-array of two ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        Report {
            read: fds[0],
            write: fds[1],
        }
    }

    /// In the child: sends `code`.
    fn send(&self, code: u8) {
        // SAFETY: writes one byte from a live buffer to our pipe's write end.
        let n = unsafe { libc::write(self.write, (&raw const code).cast(), 1) };
        assert_eq!(n, 1);
    }

    /// In the parent, once the child has exited: what it sent, `None` if nothing.
    fn received(self) -> Option<u8> {
        // SAFETY: closing our copy of the write end, which nothing else uses.
        unsafe { libc::close(self.write) };
        let mut code = 0u8;
        // SAFETY: reads at most one byte into a live buffer from the read end; the
        // child has exited and we closed our write end, so this cannot block.
        let n = unsafe { libc::read(self.read, (&raw mut code).cast(), 1) };
        // SAFETY: closing the read end, which nothing else uses.
        unsafe { libc::close(self.read) };
        (n == 1).then_some(code)
    }
}

/// Forks; the child runs `check` and reports the byte it returns through a pipe, for
/// findings that must survive Valgrind, where the exit status is memcheck's (the
/// parent's other threads' memory is unreachable in a child). Returns that byte and
/// the child's exit status, failing the test if the child hung (it is killed after
/// [`PATIENCE`]), died of a signal or sent nothing.
pub fn report_from_child(check: impl FnOnce() -> u8) -> (u8, i32) {
    let report = Report::new();
    let child = match fork() {
        Some(child) => child,
        None => child_exits_with(|| {
            report.send(check());
            0
        }),
    };
    let status = child.wait(PATIENCE);
    (report.received().expect("the child reported"), status)
}
