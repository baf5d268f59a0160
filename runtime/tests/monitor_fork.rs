//! The blocking monitor and `dump_all` across `fork`: the forking thread's hub, rebuilt
//! in the child, is one of the child's hubs (and the parent's other hubs are not), and
//! a fork while another thread starts or stops the monitor leaves the child a monitor
//! it can start and stop.
//!
//! Each child reports through a pipe, not its exit status, which under Valgrind is
//! memcheck's (the parent's other threads' memory is unreachable in a child).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use greenweave_runtime::{monitor, sleep, spawn, yield_now};

#[path = "common/fork.rs"]
mod fork;
use fork::{Child, PATIENCE, child_exits_with, one_fork_at_a_time};

/// A pipe whose write end a child reports one byte on.
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

/// Forks; the child runs `check` and reports the byte it returns. Returns that byte,
/// failing the test if the child hung (it is killed after `PATIENCE`) or sent nothing.
fn in_child(check: impl FnOnce() -> u8) -> u8 {
    let report = Report::new();
    let child = match fork::fork() {
        Some(child) => child,
        None => child_exits_with(|| {
            report.send(check());
            0
        }),
    };
    wait_ignoring_status(child);
    report.received().expect("the child reported")
}

/// Waits for `child` (failing if it hangs); its status is not looked at (see the
/// module docs).
fn wait_ignoring_status(child: Child) {
    let _ = child.wait(PATIENCE);
}

fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

#[test]
fn the_forking_threads_hub_is_the_childs_and_its_parents_other_hubs_are_not() {
    let _one = one_fork_at_a_time();
    // A hub on another thread, with a parked greenlet.
    let (ready, wait) = std::sync::mpsc::channel::<i32>();
    let (done, finish) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let parked = spawn(|| sleep(Duration::from_secs(3600)));
        yield_now();
        ready.send(gettid()).unwrap();
        finish.recv().unwrap();
        parked.kill();
    });
    let other_tid = wait.recv().unwrap();
    // And one on this thread.
    let here = spawn(|| sleep(Duration::from_secs(3600)));
    yield_now();
    let in_parent = monitor::dump_all();
    assert!(in_parent.hubs.iter().any(|h| h.tid == other_tid));
    assert!(in_parent.hubs.iter().any(|h| h.tid == gettid()));

    let code = in_child(|| {
        let hubs = monitor::dump_all().hubs;
        let mut code = 0;
        if hubs.iter().any(|h| h.tid == other_tid) {
            code |= 1;
        }
        if !hubs
            .iter()
            .any(|h| h.tid == gettid() && h.unresponsive.is_none())
        {
            code |= 2;
        }
        if hubs.len() != 1 {
            code |= 4;
        }
        code
    });
    here.kill();
    done.send(()).unwrap();
    other.join().unwrap();
    assert_eq!(
        code, 0,
        "1: the parent's other hub was listed in the child; 2: the child's own hub (the \
         forking thread's, rebuilt) was not, or did not answer; 4: not exactly one hub"
    );
}

#[test]
fn a_fork_while_another_thread_starts_and_stops_the_monitor_leaves_the_child_one() {
    let _one = one_fork_at_a_time();
    yield_now(); // this thread's hub, for `Child::wait`
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) {
                monitor::start(Duration::from_millis(50 + u64::from(rounds % 2)));
                monitor::stop();
                rounds += 1;
            }
            rounds
        })
    };
    for round in 0..20 {
        // A child forked while `churn` held the monitor's lock would never get it.
        let code = in_child(|| {
            monitor::start(Duration::from_millis(20));
            let started = monitor::threshold() == Some(Duration::from_millis(20));
            monitor::stop();
            let stopped = monitor::threshold().is_none();
            u8::from(!started) | (u8::from(!stopped) << 1)
        });
        assert_eq!(
            code, 0,
            "round {round}: 1: the child's monitor did not start; 2: it did not stop"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    assert!(
        rounds > 0,
        "the other thread started and stopped the monitor"
    );
    monitor::stop();
}
