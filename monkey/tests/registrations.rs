//! The hooks' fd registrations and fd state: kept for the fd's life, never carried
//! over to another file that gets the same number (through `dup2`, `close` and
//! `accept`, a close on another thread), and the user's `O_NONBLOCK` and socket
//! timeouts honoured whenever and however they are set (from the next call on: a call
//! keeps the mode it started with, as in the kernel), for fds the hooks saw made and
//! for fds inherited from the parent process.

mod common;
use common::{pipe, ticker};

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::io::wait_readable;
use greenweave_runtime::{sleep, spawn, yield_now};

fn read_fd(fd: RawFd, buf: &mut [u8]) -> (isize, Option<i32>) {
    // SAFETY: a valid buffer of the length given.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    (
        n,
        (n < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap()),
    )
}

fn write_fd(fd: RawFd, data: &[u8]) {
    // SAFETY: a valid buffer of the length given.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "write to fd {fd}");
}

/// Makes the hub collect every event raised so far: a wait on a pipe made readable
/// last (the kernel queues events in order, synchronously with the writes).
fn collect_events(signal: &(OwnedFd, OwnedFd)) {
    write_fd(signal.1.as_raw_fd(), b"s");
    wait_readable(signal.0.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_fd(signal.0.as_raw_fd(), &mut [0; 4]).0, 1);
}

#[test]
fn dup2_over_a_waited_fd_gives_the_number_to_the_new_file_alone() {
    greenweave_monkey::patch_all();
    const N: RawFd = 1_900;
    let (a_r, a_w) = pipe();
    let (b_r, b_w) = pipe();
    let signal = pipe();
    for _ in 0..10_000 {
        // SAFETY: plain fd arguments; N is this test's.
        assert_eq!(unsafe { libc::dup2(a_r.as_raw_fd(), N) }, N);
        let old_waiter = spawn(|| read_fd(N, &mut [0; 8]));
        yield_now(); // parked on pipe A through N: registered
        // SAFETY: as above.
        assert_eq!(unsafe { libc::dup2(b_r.as_raw_fd(), N) }, N);
        assert_eq!(old_waiter.join().unwrap(), (-1, Some(libc::EBADF)));
        // N is pipe B now: a reader there must wake for B's data only.
        let b_written = Rc::new(Cell::new(false));
        let flag = b_written.clone();
        let reader = spawn(move || {
            let got = read_fd(N, &mut [0; 8]);
            assert!(flag.get(), "a read of fd {N} woke before pipe B had data");
            got
        });
        yield_now();
        write_fd(a_w.as_raw_fd(), b"a");
        collect_events(&signal);
        b_written.set(true);
        write_fd(b_w.as_raw_fd(), b"b");
        assert_eq!(reader.join().unwrap(), (1, None));
        assert_eq!(read_fd(a_r.as_raw_fd(), &mut [0; 8]), (1, None));
    }
    // SAFETY: closing our own fd.
    unsafe { libc::close(N) };
}

#[test]
fn a_waiter_of_a_closed_fd_never_reads_the_connection_accept_gives_its_number() {
    greenweave_monkey::patch_all();
    let dir = std::env::temp_dir().join(format!("gw-reg-accept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("listener");
    let listener = UnixListener::bind(&path).unwrap();
    let mut reused = 0;
    for round in 0..10_000 {
        let client1 = UnixStream::connect(&path).unwrap();
        let (server1, _) = listener.accept().unwrap();
        let n1 = server1.into_raw_fd();
        let old_reader = spawn(move || read_fd(n1, &mut [0; 8]));
        yield_now(); // parked on the first connection
        // Closed under the reader (it is woken, not run yet), and the number handed to
        // the next connection (queued already), whose data is there before the old
        // reader runs.
        let mut client2 = UnixStream::connect(&path).unwrap();
        // SAFETY: closing our own fd.
        assert_eq!(unsafe { libc::close(n1) }, 0);
        let (server2, _) = listener.accept().unwrap();
        reused += usize::from(server2.as_raw_fd() == n1);
        client2.write_all(b"two").unwrap();
        assert_eq!(
            old_reader.join().unwrap(),
            (-1, Some(libc::EBADF)),
            "round {round}: the closed fd's reader"
        );
        let mut buf = [0; 8];
        assert_eq!((&server2).read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"two");
        drop((client1, client2, server2));
    }
    assert!(
        reused >= 5_000,
        "the number was reused in only {reused} rounds"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_close_on_another_thread_retires_this_hubs_registration() {
    greenweave_monkey::patch_all();
    const N: RawFd = 1_950;
    for _ in 0..200 {
        let (r, w) = pipe();
        // SAFETY: plain fd arguments; N is this test's.
        assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), N) }, N);
        drop(r);
        let reader = spawn(|| read_fd(N, &mut [0; 8]));
        yield_now(); // parked: this hub registered N
        write_fd(w.as_raw_fd(), b"x");
        assert_eq!(reader.join().unwrap(), (1, None));
        // Closed through the hook on a thread without a hub...
        std::thread::spawn(|| {
            // SAFETY: closing the fd this test owns.
            assert_eq!(unsafe { libc::close(N) }, 0);
        })
        .join()
        .unwrap();
        // ...and the number taken by a file no hook sees made: an eventfd moved there
        // with raw system calls.
        // SAFETY: raw syscalls making and moving our own fd.
        unsafe {
            let e = libc::syscall(libc::SYS_eventfd2, 0, libc::EFD_CLOEXEC) as RawFd;
            assert!(e >= 0);
            assert_eq!(
                libc::syscall(libc::SYS_dup3, e, N, libc::O_CLOEXEC),
                N as i64
            );
            assert_eq!(libc::syscall(libc::SYS_close, e), 0);
        }
        let reader = spawn(|| {
            let mut count = [0u8; 8];
            read_fd(N, &mut count) // parks: the eventfd is 0
        });
        yield_now();
        let one = 1u64.to_ne_bytes();
        write_fd(N, &one);
        let got = reader
            .join_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("a read of the eventfd at {N} was never woken"));
        assert_eq!(got, (8, None));
        // SAFETY: closing our own fd.
        unsafe { libc::close(N) };
    }
}

/// Writes `data` to `fd` from a greenlet after `delay`.
fn write_later(
    fd: RawFd,
    delay: Duration,
    data: &'static [u8],
) -> greenweave_runtime::JoinHandle<()> {
    spawn(move || {
        sleep(delay);
        write_fd(fd, data);
    })
}

#[test]
fn o_nonblock_and_timeouts_set_after_first_use_are_honoured() {
    greenweave_monkey::patch_all();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (fd, peer) = (server.as_raw_fd(), client.as_raw_fd());
    let mut buf = [0; 64];
    // First use: a read that parks, then a short read (the hub marks it drained).
    let w = write_later(peer, Duration::from_millis(10), b"one");
    assert_eq!((&server).read(&mut buf).unwrap(), 3);
    w.join().unwrap();

    // ioctl(FIONBIO) (std's set_nonblocking): the kernel's EAGAIN, at once.
    server.set_nonblocking(true).unwrap();
    let w = write_later(peer, Duration::from_millis(100), b"two");
    let start = Instant::now();
    assert_eq!(
        (&server).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert!(start.elapsed() < Duration::from_millis(90), "parked");
    // fcntl(F_SETFL) back to blocking: parks until the data comes.
    // SAFETY: F_GETFL/F_SETFL on our own fd.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK), 0);
    }
    assert_eq!((&server).read(&mut buf).unwrap(), 3);
    w.join().unwrap();
    // fcntl(F_SETFL, O_NONBLOCK): EAGAIN again.
    // SAFETY: as above.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
    }
    assert_eq!(
        (&server).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    server.set_nonblocking(false).unwrap();

    // SO_RCVTIMEO (std's set_read_timeout) after first use: the read gives up after
    // it, having parked (the ticker ran), not blocked the thread.
    server
        .set_read_timeout(Some(Duration::from_millis(40)))
        .unwrap();
    let (ticks, t) = ticker();
    let start = Instant::now();
    assert_eq!(
        (&server).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert!(start.elapsed() >= Duration::from_millis(40));
    common::assert_ticked(&ticks, 1, "the read waited out its timeout");
    t.kill();
    // Cleared: it parks until the data comes again.
    server.set_read_timeout(None).unwrap();
    let w = write_later(peer, Duration::from_millis(60), b"three");
    assert_eq!((&server).read(&mut buf).unwrap(), 5);
    w.join().unwrap();
}

const INHERITED_ENV: &str = "GREENWEAVE_REGISTRATIONS_INHERITED";

/// The child of `an_inherited_fd_is_handled`: three sockets it never saw made.
fn inherited_child(fds: &str) {
    greenweave_monkey::patch_all();
    let fds: Vec<RawFd> = fds.split(',').map(|f| f.parse().unwrap()).collect();
    let [blocking, nonblocking, timed] = fds[..] else {
        panic!("three fds expected")
    };
    let mut buf = [0; 16];
    // Blocking: parks (the ticker runs) until the parent writes, 100 ms in.
    let (ticks, t) = ticker();
    let start = Instant::now();
    assert_eq!(read_fd(blocking, &mut buf), (4, None));
    assert!(start.elapsed() >= Duration::from_millis(50));
    common::assert_ticked(&ticks, 1, "the read of the inherited fd waited");
    // The parent made it non-blocking: the kernel's EAGAIN, at once.
    let start = Instant::now();
    assert_eq!(read_fd(nonblocking, &mut buf), (-1, Some(libc::EAGAIN)));
    assert!(start.elapsed() < Duration::from_millis(50));
    // The parent set SO_RCVTIMEO to 40 ms: EAGAIN after it, parked meanwhile.
    let before = ticks.get();
    let start = Instant::now();
    assert_eq!(read_fd(timed, &mut buf), (-1, Some(libc::EAGAIN)));
    assert!(start.elapsed() >= Duration::from_millis(40));
    common::assert_ticked(
        &ticks,
        before + 1,
        "the read waited out the inherited timeout",
    );
    t.kill();
}

/// A connected pair the child inherits one end of (no `CLOEXEC`): (child's, parent's).
fn inheritable_pair() -> (OwnedFd, UnixStream) {
    let mut sv = [0; 2];
    // SAFETY: a valid out-array of two fds.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: both fds were just made and are owned by nobody else.
    unsafe {
        libc::fcntl(sv[1], libc::F_SETFD, libc::FD_CLOEXEC);
        (OwnedFd::from_raw_fd(sv[0]), UnixStream::from_raw_fd(sv[1]))
    }
}

#[test]
fn an_inherited_fd_is_handled() {
    if let Ok(fds) = std::env::var(INHERITED_ENV) {
        inherited_child(&fds);
        return;
    }
    greenweave_monkey::patch_all();
    let (blocking, blocking_peer) = inheritable_pair();
    let (nonblocking, _nonblocking_peer) = inheritable_pair();
    let (timed, _timed_peer) = inheritable_pair();
    // SAFETY: F_SETFL with an int argument on our own fd.
    unsafe { libc::fcntl(nonblocking.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 40_000,
    };
    // SAFETY: a valid timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            timed.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let fds = [&blocking, &nonblocking, &timed]
        .map(|f| f.as_raw_fd().to_string())
        .join(",");
    let child = Command::new(std::env::current_exe().unwrap())
        .env(INHERITED_ENV, fds)
        .args([
            "--exact",
            "an_inherited_fd_is_handled",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    (&blocking_peer).write_all(b"late").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the child failed (its output is above)"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// `recv` on `fd` into a small buffer: (bytes, errno).
fn recv_fd(fd: RawFd) -> (isize, Option<i32>) {
    let mut buf = [0_u8; 8];
    // SAFETY: a valid buffer of the length given.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    (
        n,
        (n < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap()),
    )
}

#[test]
fn a_blocking_call_keeps_the_blocking_mode_it_started_with() {
    greenweave_monkey::patch_all();
    // As in the kernel, which fixes a call's blocking mode when the call starts: two
    // receivers park in blocking calls, the socket is made non-blocking under them,
    // and one byte wakes both. The one that finds nothing left waits on, as a thread
    // blocked in `recv` would, instead of failing with the new mode's EAGAIN.
    for _ in 0..100 {
        let (ours, peer) = UnixStream::pair().unwrap();
        let fd = ours.as_raw_fd();
        let first = spawn(move || recv_fd(fd));
        let second = spawn(move || recv_fd(fd));
        yield_now(); // both parked in their blocking recv
        ours.set_nonblocking(true).unwrap();
        (&peer).write_all(b"a").unwrap();
        // Both woke for it; one took it, and the other parked again.
        while !(first.is_finished() || second.is_finished()) {
            yield_now();
        }
        (&peer).write_all(b"b").unwrap();
        assert_eq!(first.join().unwrap(), (1, None));
        assert_eq!(second.join().unwrap(), (1, None));
        // New calls see the new mode.
        assert_eq!(recv_fd(fd), (-1, Some(libc::EAGAIN)));
    }
}
