//! Child-process wait hooks: `waitpid`/`wait4`/`waitid` for one child park the greenlet
//! (std's `Child::wait`, `Command::status`, `Command::output`), with real children.
// Several tests reap their child with a raw `waitpid`/`waitid`, which clippy cannot see.
#![allow(clippy::zombie_processes)]

mod common;
use common::ticker;
use common::valgrind::skip_under_valgrind;

use std::cell::RefCell;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::rc::Rc;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use greenweave_runtime::{joinall, sleep, spawn, with_timeout, yield_now};

/// Tests run on parallel threads of one process: a wait for *any* child (`pid == -1`)
/// could reap another test's child, so that test takes this lock for writing and
/// every other test takes it for reading.
static ANY_CHILD: RwLock<()> = RwLock::new(());

fn own_children_only() -> RwLockReadGuard<'static, ()> {
    greenweave_monkey::patch_all();
    ANY_CHILD.read().unwrap_or_else(PoisonError::into_inner)
}

/// `sh -c script`.
fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

fn spawn_sleeper() -> Child {
    Command::new("sleep").arg("10").spawn().unwrap()
}

fn last_errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

/// `waitpid(pid, &status, options)`: (return value, status, errno if -1).
fn waitpid(pid: u32, options: i32) -> (i32, i32, Option<i32>) {
    let mut status = 0;
    // SAFETY: a valid out-pointer for the status.
    let rc = unsafe { libc::waitpid(pid as i32, &mut status, options) };
    (rc, status, if rc == -1 { last_errno() } else { None })
}

fn sigkill(pid: u32) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
}

#[test]
fn fifty_greenlets_in_command_status_overlap_and_each_gets_its_exit_code() {
    let _lock = own_children_only();
    let (ticks, t) = ticker();
    let start = Instant::now();
    let runs: Vec<_> = (0..50)
        .map(|n| spawn(move || sh(&format!("sleep 0.3; exit {n}")).status().unwrap()))
        .collect();
    for (n, status) in joinall(runs).into_iter().enumerate() {
        assert_eq!(status.unwrap().code(), Some(n as i32));
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    if !common::valgrind::skip_under_valgrind("the 1.5 s bound on fifty overlapping children") {
        assert!(
            elapsed < Duration::from_millis(1500),
            "50 x 0.3 s took {elapsed:?}: serial is 15 s"
        );
    }
    common::assert_ticked(&ticks, 20, "fifty children ran");
    t.kill();
}

#[test]
fn command_output_of_children_closing_their_streams_early_overlaps() {
    let _lock = own_children_only();
    let (ticks, t) = ticker();
    let start = Instant::now();
    let runs: Vec<_> = (0..20)
        .map(|n| {
            spawn(move || {
                let script = if n % 2 == 0 {
                    // stdout ends at once; stderr only when the child is done.
                    format!("echo out{n}; exec >&-; sleep 0.3; echo err >&2; exit {n}")
                } else {
                    // Both end at once: std's output() then sits in waitpid.
                    format!("echo out{n}; exec >&- 2>&-; sleep 0.3; exit {n}")
                };
                sh(&script).output().unwrap()
            })
        })
        .collect();
    for (n, out) in joinall(runs).into_iter().enumerate() {
        let out = out.unwrap();
        assert_eq!(out.status.code(), Some(n as i32));
        assert_eq!(out.stdout, format!("out{n}\n").into_bytes());
        let err: &[u8] = if n % 2 == 0 { b"err\n" } else { b"" };
        assert_eq!(out.stderr, err);
    }
    let elapsed = start.elapsed();
    if !common::valgrind::skip_under_valgrind("the 1.5 s bound on twenty overlapping children") {
        assert!(
            elapsed < Duration::from_millis(1500),
            "20 x 0.3 s took {elapsed:?}"
        );
    }
    common::assert_ticked(&ticks, 20, "the children ran");
    t.kill();
}

#[test]
fn child_wait_parks_while_the_thread_runs_others() {
    let _lock = own_children_only();
    let (ticks, t) = ticker();
    let mut child = sh("sleep 0.2; exit 9").spawn().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(9));
    common::assert_ticked(&ticks, 20, "waiting for the child");
    t.kill();
}

#[test]
fn wnohang_passes_through_and_says_zero_while_the_child_runs() {
    let _lock = own_children_only();
    let child = spawn_sleeper();
    let (ticks, t) = ticker();
    yield_now();
    let before = ticks.get();
    assert_eq!(waitpid(child.id(), libc::WNOHANG), (0, 0, None));
    assert_eq!(ticks.get(), before, "a WNOHANG wait parked");
    sigkill(child.id());
    let (rc, status, _) = waitpid(child.id(), 0);
    assert_eq!(rc, child.id() as i32);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    t.kill();
}

#[test]
fn a_wait_for_any_child_passes_through_and_blocks_the_thread() {
    greenweave_monkey::patch_all();
    let _lock = ANY_CHILD.write().unwrap_or_else(PoisonError::into_inner);
    let child = sh("sleep 0.1").spawn().unwrap();
    let (ticks, t) = ticker();
    yield_now();
    let before = ticks.get();
    let (rc, status, _) = waitpid(u32::MAX, 0); // pid -1
    assert_eq!((rc, libc::WIFEXITED(status)), (child.id() as i32, true));
    assert_eq!(
        ticks.get(),
        before,
        "waitpid(-1) parked instead of blocking"
    );
    t.kill();
}

#[test]
fn waits_for_a_pid_that_is_not_our_child_give_echild_at_once() {
    let _lock = own_children_only();
    let (ticks, t) = ticker();
    yield_now();
    let before = ticks.get();
    // pid 1 exists (a pidfd could be opened for it) but is not our child.
    assert_eq!(waitpid(1, 0), (-1, 0, Some(libc::ECHILD)));
    // SAFETY: a valid siginfo out-pointer.
    let rc = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(libc::P_PID, 1, &mut info, libc::WEXITED)
    };
    assert_eq!((rc, last_errno()), (-1, Some(libc::ECHILD)));
    assert_eq!(ticks.get(), before, "an ECHILD wait parked");
    t.kill();
    // A child already reaped.
    let mut child = sh("exit 0").spawn().unwrap();
    child.wait().unwrap();
    assert_eq!(waitpid(child.id(), 0), (-1, 0, Some(libc::ECHILD)));
}

#[test]
fn invalid_flags_give_the_kernels_einval_without_parking() {
    let _lock = own_children_only();
    let mut child = spawn_sleeper();
    // WNOWAIT is waitid's, not waitpid's.
    assert_eq!(
        waitpid(child.id(), libc::WNOWAIT),
        (-1, 0, Some(libc::EINVAL))
    );
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn killing_a_greenlet_mid_wait_leaves_the_child_unreaped_for_a_later_wait() {
    let _lock = own_children_only();
    let child = spawn_sleeper();
    let pid = child.id();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let waiter = spawn(move || {
        let mut child = child;
        *s.borrow_mut() = Some(child.wait().unwrap_err().raw_os_error());
        sleep(Duration::from_millis(1)); // delivered once: this sleeps
    });
    yield_now(); // the waiter parks
    waiter.kill();
    waiter.join().unwrap();
    assert_eq!(*seen.borrow(), Some(Some(libc::ECANCELED)));
    // The Child was dropped unreaped: the child is still running, and still ours.
    assert_eq!(waitpid(pid, libc::WNOHANG), (0, 0, None));
    sigkill(pid);
    let (rc, status, _) = waitpid(pid, 0);
    assert_eq!((rc, libc::WTERMSIG(status)), (pid as i32, libc::SIGKILL));
    // No zombie left behind.
    assert_eq!(waitpid(pid, libc::WNOHANG), (-1, 0, Some(libc::ECHILD)));
}

#[test]
fn a_timeout_around_child_wait_gives_etimedout_and_the_child_stays_ours() {
    let _lock = own_children_only();
    let mut child = spawn_sleeper();
    let seen = RefCell::new(None);
    let start = Instant::now();
    let outcome = with_timeout(Duration::from_millis(50), || {
        *seen.borrow_mut() = Some(child.wait().unwrap_err().raw_os_error());
        sleep(Duration::from_millis(1)); // delivered once: this sleeps
    });
    assert_eq!(
        outcome,
        Ok(()),
        "the code went on after its timeout's errno"
    );
    assert_eq!(seen.into_inner(), Some(Some(libc::ETIMEDOUT)));
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(child.try_wait().unwrap(), None, "still running");
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn wuntraced_and_wcontinued_waits_see_stops_and_continues() {
    let _lock = own_children_only();
    let child = spawn_sleeper();
    let pid = child.id();
    let (ticks, t) = ticker();
    let signaller = spawn(move || {
        for signal in [libc::SIGSTOP, libc::SIGCONT, libc::SIGKILL] {
            sleep(Duration::from_millis(50));
            // SAFETY: signalling our own child.
            assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
        }
    });
    let start = Instant::now();
    let (rc, status, _) = waitpid(pid, libc::WUNTRACED);
    assert_eq!(rc, pid as i32);
    assert!(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGSTOP);
    let (rc, status, _) = waitpid(pid, libc::WCONTINUED);
    assert_eq!(rc, pid as i32);
    assert!(libc::WIFCONTINUED(status), "{status:#x}");
    // SAFETY: a valid status out-pointer; no rusage.
    let rc = unsafe { libc::wait4(pid as i32, &mut 0, 0, std::ptr::null_mut()) };
    assert_eq!(rc, pid as i32);
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    common::assert_ticked(&ticks, 20, "waiting for the child");
    signaller.join().unwrap();
    t.kill();
}

#[test]
fn waitid_by_pid_and_by_pidfd_park_and_report_the_exit() {
    let _lock = own_children_only();
    let (ticks, t) = ticker();
    let child = sh("sleep 0.1; exit 7").spawn().unwrap();
    // SAFETY: siginfo_t is plain data; a valid out-pointer.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOWAIT; // report, but leave it to reap
    // SAFETY: as above.
    let rc = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) };
    assert_eq!(rc, 0);
    // SAFETY: the kernel filled in a SIGCHLD siginfo.
    let (pid, code) = unsafe { (info.si_pid(), info.si_status()) };
    assert_eq!((pid, code), (child.id() as i32, 7));
    common::assert_ticked(&ticks, 20, "waiting for the child");
    if skip_under_valgrind("waitid(P_PIDFD): Valgrind does not implement pidfd_open") {
        // Still reaped, by pid (WNOWAIT left it to reap).
        let (rc, status, _) = waitpid(child.id(), 0);
        assert_eq!((rc, libc::WEXITSTATUS(status)), (child.id() as i32, 7));
        t.kill();
        return;
    }
    // Still there to reap (WNOWAIT): through a pidfd this time, with no siginfo.
    // SAFETY: pidfd_open on our own child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) } as i32;
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a null siginfo is allowed; `pidfd` is open.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd as u32,
            std::ptr::null_mut(),
            libc::WEXITED,
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(
        waitpid(child.id(), libc::WNOHANG),
        (-1, 0, Some(libc::ECHILD))
    );
    // SAFETY: closing the pidfd we opened.
    unsafe { libc::close(pidfd) };
    t.kill();
}

#[test]
fn a_plain_os_thread_waits_as_usual() {
    let _lock = own_children_only();
    let thread = std::thread::spawn(|| {
        let status = sh("sleep 0.05; exit 5").status().unwrap();
        (status.code(), greenweave_runtime::coop::can_park())
    });
    assert_eq!(thread.join().unwrap(), (Some(5), false));
}
