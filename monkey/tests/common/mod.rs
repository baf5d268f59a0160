//! Helpers shared by the monkey test files.
#![allow(dead_code)]

use std::cell::Cell;
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use greenweave_runtime::{JoinHandle, sleep, spawn};

/// A greenlet counting 1 ms ticks until killed: proof that the thread kept running
/// other greenlets while one was parked in a hook.
pub fn ticker() -> (Rc<Cell<u32>>, JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let h = spawn(move || {
        loop {
            sleep(Duration::from_millis(1));
            t.set(t.get() + 1);
        }
    });
    (ticks, h)
}

/// Whether to check a bound on a [`ticker`]'s count: a time bound (1 ms ticks), so not
/// under Valgrind, whose slowdown leaves a few ticks where natively there are dozens.
pub fn tick_bounds_checked() -> bool {
    !valgrind::skip_under_valgrind("the bound on the ticker's count (1 ms ticks)")
}

/// Asserts that a [`ticker`] ticked at least `at_least` times while `during` went on:
/// the thread kept running other greenlets instead of blocking in the wait. Checked
/// only where [`tick_bounds_checked`] says so.
#[track_caller]
pub fn assert_ticked(ticks: &Cell<u32>, at_least: u32, during: &str) {
    if tick_bounds_checked() {
        let n = ticks.get();
        assert!(
            n >= at_least,
            "only {n} ticks (at least {at_least} expected) while {during}: the wait blocked \
             the thread instead of parking its greenlet"
        );
    }
}

/// A blocking pipe: (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the two fds were just made and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

pub mod http_server;
pub mod signals;
#[path = "../../../runtime/tests/common/valgrind.rs"]
pub mod valgrind;
pub mod watch;
