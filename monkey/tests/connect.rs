//! `connect` and `accept` hooks: blocking semantics, timeouts and errors as the kernel
//! gives them, after patch_all.

mod common;
use common::ticker;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use greenweave_runtime::{sleep, spawn};

/// A std listener on a free loopback port with room for `backlog` queued connections.
fn listener_with_backlog(backlog: i32) -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen on our own bound socket (again, with another backlog).
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), backlog) }, 0);
    listener
}

#[test]
fn peek_and_connect_errors_are_the_kernels() {
    greenweave_monkey::patch_all();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        sleep(Duration::from_millis(20));
        conn.write_all(b"hello").unwrap();
        sleep(Duration::from_millis(50));
    });
    let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    let mut buf = [0; 5];
    // A blocking peek parks until data is there, and leaves it there.
    assert_eq!(conn.peek(&mut buf).unwrap(), 5);
    let mut all = [0; 5];
    (&conn).read_exact(&mut all).unwrap();
    assert_eq!((&buf, &all), (b"hello", b"hello"));
    server.join().unwrap();

    // Nobody listens on a port just freed: refused, as the kernel says.
    let free: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = TcpStream::connect(free).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn connect_timeouts_are_kept() {
    greenweave_monkey::patch_all();
    // A listener that never accepts, with the smallest backlog: once its queue is
    // full, the kernel drops further SYNs and a connect waits until it gives up.
    let listener = listener_with_backlog(0);
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let timed_out = (0..8).find_map(|_| {
        let start = Instant::now();
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(conn) => {
                held.push(conn);
                None
            }
            Err(err) => Some((err, start.elapsed())),
        }
    });
    let (err, elapsed) = timed_out.expect("the backlog never filled up");
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    if !common::valgrind::skip_under_valgrind("the 2 s wall-time bound") {
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }

    // A blocking connect with SO_SNDTIMEO: EINPROGRESS when it expires, as on Linux.
    // SAFETY: plain arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: a valid timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let SocketAddr::V4(v4) = addr else {
        unreachable!()
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let start = Instant::now();
    // SAFETY: a valid address of the size given.
    let rc = unsafe {
        libc::connect(
            fd,
            (&raw const sin).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let errno = std::io::Error::last_os_error().raw_os_error();
    assert_eq!((rc, errno), (-1, Some(libc::EINPROGRESS)));
    assert!(start.elapsed() >= Duration::from_millis(100));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    drop(held);
}

#[test]
fn a_unix_connect_to_a_full_backlog_waits_for_room() {
    greenweave_monkey::patch_all();
    let dir = std::env::temp_dir().join(format!("greenweave-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // SAFETY: listen again on our own bound socket, with the smallest backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    // SAFETY: an all-zero sockaddr_un is valid; the path is filled in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr
        .sun_path
        .iter_mut()
        .zip(path.as_os_str().as_encoded_bytes())
    {
        *d = *s as libc::c_char;
    }
    // Queue connections until a non-blocking connect says the queue is full.
    let mut queued = Vec::new();
    loop {
        queued.push(UnixStream::connect(&path).unwrap());
        // SAFETY: plain arguments.
        let probe =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
        let len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: a valid address of the size given.
        let rc = unsafe { libc::connect(probe, (&raw const addr).cast(), len) };
        let full = rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
        if !full {
            // SAFETY: the connected probe is ours alone.
            queued.push(unsafe { UnixStream::from_raw_fd(probe) });
            continue;
        }
        // SAFETY: closing our own fd.
        unsafe { libc::close(probe) };
        break;
    }
    let (ticks, t) = ticker();
    let acceptor = spawn(move || {
        sleep(Duration::from_millis(40));
        let (conn, _) = listener.accept().unwrap(); // makes room
        (listener, conn)
    });
    let start = Instant::now();
    let conn = UnixStream::connect(&path).unwrap(); // blocks (cooperatively) for room
    assert!(
        start.elapsed() >= Duration::from_millis(30),
        "{:?}",
        start.elapsed()
    );
    common::assert_ticked(&ticks, 3, "the connect waited for room in the backlog");
    drop((conn, acceptor.join().unwrap(), queued));
    t.kill();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn accept_on_a_socket_that_does_not_listen_fails_at_once() {
    greenweave_monkey::patch_all();
    let (a, _b) = UnixStream::pair().unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    for (fd, errno) in [
        (a.as_raw_fd(), libc::EINVAL),
        (udp.as_raw_fd(), libc::EOPNOTSUPP),
    ] {
        // SAFETY: null address pointers are allowed.
        let rc = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), 0) };
        assert_eq!(rc, -1);
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(errno));
    }
    assert!(start.elapsed() < Duration::from_secs(1));
}
