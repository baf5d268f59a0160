//! Registrations kept for an fd's life, and the readiness kept with them: a reused fd
//! number never gets an earlier file's events, a byte or an end-of-file that arrived
//! before a wait is still seen, and timeouts set after first use count.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::io::wait_readable;
use greenweave_runtime::net::{TcpListener, TcpStream, UnixStream};
use greenweave_runtime::spawn;

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into the array we own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2 failed");
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn write_fd(fd: RawFd, data: &[u8]) {
    // SAFETY: a valid buffer of the length given.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "write to fd {fd}");
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> isize {
    // SAFETY: a valid buffer of the length given.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// One round: a socket at `N` is waited on (so the hub registers it), then closed
/// behind the runtime's back while a dup keeps its file open, so its epoll registration
/// lingers. A new socket takes the number. Data for the old file (whose events still
/// carry the old registration's token) must not wake a wait on the new one.
fn stale_registration_round(target: RawFd, signal: &(OwnedFd, OwnedFd)) {
    let (old, old_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let old = unix_at(old, target);
    // Register it: a read that parks until a byte comes.
    let reader = spawn(move || {
        let mut b = [0; 1];
        (&old).read_exact(&mut b).unwrap();
        old
    });
    greenweave_runtime::yield_now(); // parked: registered
    (&old_peer).write_all(b"1").unwrap();
    let old = reader.join().unwrap();
    // Keep the file open under another number, then close `target` behind the
    // runtime's back. The handle stays untouched until the round ends, when it is
    // dropped in place of closing the new file at `target`.
    // SAFETY: a plain fd argument.
    let keep = unsafe { OwnedFd::from_raw_fd(libc::dup(target)) };
    // SAFETY: closing our own fd with the raw syscall, which nothing reports.
    assert_eq!(unsafe { libc::syscall(libc::SYS_close, target) }, 0);

    // The new file at `target`.
    let (new, new_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    new.set_nonblocking(true).unwrap();
    // SAFETY: plain fd arguments.
    assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), target) }, target);
    let new_written = Rc::new(Cell::new(false));
    let flag = new_written.clone();
    let waiter = spawn(move || {
        wait_readable(target, Some(Duration::from_secs(5))).unwrap();
        assert!(
            flag.get(),
            "a wait on the new file at fd {target} was woken before anything was written to it"
        );
        let mut b = [0; 8];
        assert_eq!(read_fd(target, &mut b), 3, "the new file's bytes");
        assert_eq!(&b[..3], b"new");
    });
    greenweave_runtime::yield_now(); // the waiter is parked
    // An event of the old file (its registration's stale token), then a wait that
    // makes the hub collect it before anything happens to the new file.
    (&old_peer).write_all(b"old").unwrap();
    write_fd(signal.1.as_raw_fd(), b"s");
    wait_readable(signal.0.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_fd(signal.0.as_raw_fd(), &mut [0; 4]), 1);
    new_written.set(true);
    (&new_peer).write_all(b"new").unwrap();
    waiter.join().unwrap();
    // The old handle's fd number is the new file's now: dropping it closes that.
    drop((old, keep, new, new_peer, old_peer));
}

#[test]
fn a_reused_fd_number_never_gets_the_old_registrations_events() {
    let signal = pipe();
    for _ in 0..10_000 {
        stale_registration_round(900, &signal);
    }
}

/// `socket` moved to fd number `at` (free), as a greenweave socket.
fn unix_at(socket: std::os::unix::net::UnixStream, at: RawFd) -> UnixStream {
    // SAFETY: plain fd arguments; `at` is free (each test keeps its own numbers).
    assert_eq!(unsafe { libc::dup2(socket.as_raw_fd(), at) }, at);
    drop(socket);
    // SAFETY: `at` is ours; the handle takes it over.
    UnixStream::try_from(unsafe { std::os::unix::net::UnixStream::from_raw_fd(at) }).unwrap()
}

#[test]
fn a_socket_dropped_on_another_thread_leaves_no_registration_behind() {
    const FD: RawFd = 950;
    for _ in 0..1_000 {
        let (a, a_peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = unix_at(a, FD);
        // Registered with this thread's hub by a parked read.
        let reader = spawn(move || {
            let mut b = [0; 1];
            (&a).read_exact(&mut b).unwrap();
            a
        });
        greenweave_runtime::yield_now(); // parked: registered
        (&a_peer).write_all(b"x").unwrap();
        let a = reader.join().unwrap();
        // Dropped (closed) on a thread with no hub.
        std::thread::spawn(move || drop(a)).join().unwrap();
        // A new socket gets the number.
        let (b, b_peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let b = unix_at(b, FD);
        let reader = spawn(move || {
            let mut buf = [0; 2];
            (&b).read_exact(&mut buf).unwrap(); // parks on a fresh registration
            buf
        });
        greenweave_runtime::yield_now();
        (&b_peer).write_all(b"ok").unwrap();
        let got = reader
            .join_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("a read on the reused fd {FD} was never woken"));
        assert_eq!(&got, b"ok");
    }
}

#[test]
fn a_byte_sent_before_the_first_read_is_read_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (&client).write_all(b"early").unwrap();
    std::thread::sleep(Duration::from_millis(20)); // it is in the server's buffer
    let mut buf = [0; 16];
    assert_eq!((&server).read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"early");
}

#[test]
fn data_then_end_of_file_are_both_read_after_a_short_read() {
    for together in [true, false] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let reader = spawn(move || {
            let mut buf = [0; 4096];
            // Short (3 of 4,096 bytes): the read readiness is cleared...
            let n = (&server).read(&mut buf).unwrap();
            let first = buf[..n].to_vec();
            // ...but an end of file that came with it, or later, still ends the next.
            let start = Instant::now();
            let eof = (&server).read(&mut buf).unwrap();
            (first, eof, start.elapsed())
        });
        greenweave_runtime::yield_now(); // parked
        (&client).write_all(b"abc").unwrap();
        if !together {
            greenweave_runtime::sleep(Duration::from_millis(10));
        }
        client.shutdown(Shutdown::Write).unwrap();
        let (first, eof, waited) = reader
            .join_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("the end of file after a short read was never seen"));
        assert_eq!(first, b"abc");
        assert_eq!(eof, 0);
        assert!(waited < Duration::from_secs(2));
    }
}

#[test]
fn timeouts_set_after_first_use_and_through_a_clone_are_honoured() {
    let (a, b) = UnixStream::pair().unwrap();
    // First use: a read that parks, then gets a byte.
    let reader = spawn(move || {
        let mut buf = [0; 1];
        (&a).read_exact(&mut buf).unwrap();
        a
    });
    greenweave_runtime::yield_now(); // parked
    (&b).write_all(b"1").unwrap();
    let a = reader.join().unwrap();
    // Set through a clone: shared by the socket's handles, as the kernel's is.
    let clone = a.try_clone().unwrap();
    clone
        .set_read_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    let start = Instant::now();
    let err = (&a).read(&mut [0; 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(30));
    // And cleared again: the read parks until data comes.
    a.set_read_timeout(None).unwrap();
    let writer = spawn(move || {
        greenweave_runtime::sleep(Duration::from_millis(50));
        (&b).write_all(b"2").unwrap();
    });
    let mut buf = [0; 1];
    (&clone).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"2");
    writer.join().unwrap();
}

#[test]
fn a_raw_fd_handed_out_keeps_working_with_its_new_owner() {
    let (a, b) = UnixStream::pair().unwrap();
    let reader = spawn(move || {
        let mut buf = [0; 1];
        (&a).read_exact(&mut buf).unwrap(); // parks: registers it
        a.into_raw_fd()
    });
    greenweave_runtime::yield_now();
    (&b).write_all(b"1").unwrap();
    let fd = reader.join().unwrap();
    // SAFETY: the fd was handed out to us and is open.
    let again = unsafe { UnixStream::from_raw_fd(fd) };
    let writer = spawn(move || {
        greenweave_runtime::sleep(Duration::from_millis(20));
        (&b).write_all(b"2").unwrap();
        b
    });
    let mut buf = [0; 1];
    (&again).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"2");
    drop(writer.join().unwrap());
}
