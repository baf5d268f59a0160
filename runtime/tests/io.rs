//! fd readiness waits on real pipes and sockets.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use greenweave_runtime::io::{Direction, wait_readable, wait_writable};
use greenweave_runtime::{JoinError, sleep, spawn, yield_now};

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into the array we own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2 failed");
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

#[test]
fn a_reader_parks_until_a_writer_greenlet_fills_the_pipe() {
    let (mut rx, mut tx) = pipe();
    let mut buf = [0u8; 16];
    assert_eq!(rx.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    let writer = spawn(move || {
        sleep(Duration::from_millis(20));
        tx.write_all(b"hello").unwrap();
    });
    wait_readable(rx.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
    let n = rx.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    writer.join().unwrap();
}

#[test]
fn a_wait_times_out_with_timed_out_and_the_fd_can_be_waited_on_again() {
    let (mut rx, mut tx) = pipe();
    let start = Instant::now();
    let err = wait_readable(rx.as_raw_fd(), Some(Duration::from_millis(20))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(20));
    tx.write_all(b"x").unwrap();
    wait_readable(rx.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(rx.read(&mut b).unwrap(), 1);
}

#[test]
fn one_greenlet_reads_while_another_writes_the_same_socket() {
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let fd = a.as_raw_fd();
    let reader = spawn(move || {
        wait_readable(fd, Some(Duration::from_secs(5))).unwrap();
        "read side woke"
    });
    let writer = spawn(move || {
        wait_writable(fd, Some(Duration::from_secs(5))).unwrap();
        "write side woke"
    });
    assert_eq!(writer.join().unwrap(), "write side woke");
    assert!(!reader.is_finished(), "nothing to read yet");
    b.write_all(b"!").unwrap();
    assert_eq!(reader.join().unwrap(), "read side woke");
    drop(a);
}

#[test]
fn many_greenlets_wait_on_one_fd_and_all_wake() {
    let (rx, mut tx) = pipe();
    let fd = rx.as_raw_fd();
    let waiters: Vec<_> = (0..10)
        .map(|_| spawn(move || wait_readable(fd, Some(Duration::from_secs(5)))))
        .collect();
    yield_now();
    tx.write_all(b"go").unwrap();
    for w in waiters {
        w.join().unwrap().unwrap();
    }
    drop(rx);
}

#[test]
fn killing_a_greenlet_parked_on_an_fd_unwinds_it_and_the_fd_stays_usable() {
    let (mut rx, mut tx) = pipe();
    let fd = rx.as_raw_fd();
    let parked = spawn(move || wait_readable(fd, None));
    yield_now();
    parked.kill();
    assert!(matches!(parked.join(), Err(JoinError::Killed)));
    tx.write_all(b"y").unwrap();
    wait_readable(fd, Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(rx.read(&mut b).unwrap(), 1);
}

#[test]
fn a_reused_fd_number_is_not_confused_with_the_closed_one() {
    let (rx, _tx) = pipe();
    let old = rx.as_raw_fd();
    let err = wait_readable(old, Some(Duration::from_millis(5))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // Atomically close the old pipe's read end and put a new pipe's there, under the
    // same number (no other thread can grab the number in between).
    let (rx2, mut tx2) = pipe();
    // SAFETY: both fds are open and ours; dup2 replaces `old` in place.
    assert_eq!(unsafe { libc::dup2(rx2.as_raw_fd(), old) }, old);
    drop(rx2);
    tx2.write_all(b"z").unwrap();
    wait_readable(old, Some(Duration::from_secs(5))).unwrap();
    let mut rx = rx;
    let mut b = [0u8; 1];
    assert_eq!(
        rx.read(&mut b).unwrap(),
        1,
        "reads the new pipe through the reused number"
    );
}

#[test]
fn fds_epoll_cannot_watch_give_the_kernels_error() {
    let file = File::open("/proc/self/status").unwrap();
    let err = wait_readable(file.as_raw_fd(), Some(Duration::from_secs(1))).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EPERM),
        "regular files are always ready: {err}"
    );
    let closed = {
        let (rx, _tx) = pipe();
        rx.as_raw_fd()
    };
    let err = wait_writable(closed, Some(Duration::from_secs(1))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
}

#[test]
fn closing_an_fd_under_its_waiters_wakes_them_with_ebadf() {
    let (rx, _tx) = pipe();
    let fd = rx.as_raw_fd();
    let waiters: Vec<_> = (0..3)
        .map(|_| spawn(move || wait_readable(fd, Some(Duration::from_secs(5)))))
        .collect();
    yield_now();
    greenweave_runtime::io::notify_closed(fd);
    drop(rx);
    for w in waiters {
        let err = w.join().unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    }
    // A new fd with the same number starts afresh.
    let (mut rx2, mut tx2) = pipe();
    tx2.write_all(b"!").unwrap();
    wait_readable(rx2.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(rx2.read(&mut b).unwrap(), 1);
}

#[test]
fn coop_waits_report_interrupts_as_values_instead_of_unwinding() {
    use greenweave_runtime::{Interrupt, coop};
    let (rx, _tx) = pipe();
    let fd = rx.as_raw_fd();
    let parked = spawn(move || {
        let first = coop::wait_fd(fd, Direction::Read, None, coop::Eintr::Never);
        // Returning the kill delivered it: the next blocking call blocks normally.
        let after = std::panic::catch_unwind(|| sleep(Duration::from_millis(1))).is_err();
        (first.err(), after)
    });
    yield_now();
    parked.kill_nowait();
    // The greenlet took its kill as a value and returned normally.
    let (first, unwound_after) = parked.join().unwrap();
    assert_eq!(first, Some(Interrupt::Killed));
    assert!(!unwound_after, "a kill is delivered once");
    let value = coop::run_blocking(|| 6 * 7).unwrap().unwrap();
    assert_eq!(value, 42);
    let panicked = coop::run_blocking(|| -> u8 { panic!("in the pool") }).unwrap();
    assert!(panicked.is_err());
}
