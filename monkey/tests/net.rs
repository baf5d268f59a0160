//! Socket hooks: unmodified `std::net` code in greenlets after patch_all.

mod common;
use common::ticker;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{JoinHandle, joinall, sleep, spawn, with_timeout, yield_now};

/// The bytes client `i` sends: a few KiB of a pattern of its own.
fn message(i: usize) -> Vec<u8> {
    (0..1000 + i * 37).map(|j| (i * 7 + j * 13) as u8).collect()
}

/// An echo handler: copies everything back until end of file.
fn echo(mut conn: TcpStream) {
    let mut buf = [0; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => conn.write_all(&buf[..n]).unwrap(),
        }
    }
}

/// A std echo server in a greenlet: one handler greenlet per connection.
fn serve_echo(listener: TcpListener) -> JoinHandle<()> {
    spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(conn) => drop(spawn(move || echo(conn))),
                Err(_) => return,
            }
        }
    })
}

/// A std listener on a free loopback port with room for `backlog` queued connections
/// (std's `bind` queues 128; more concurrent connects would wait for SYN retransmits).
fn listener_with_backlog(backlog: i32) -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen on our own bound socket (again, with a larger backlog).
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), backlog) }, 0);
    listener
}

#[test]
fn two_hundred_std_clients_and_a_std_server_share_one_thread() {
    greenweave_monkey::patch_all();
    let listener = listener_with_backlog(1024);
    let addr = listener.local_addr().unwrap();
    let server = serve_echo(listener);
    let start = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            spawn(move || {
                let mut conn = TcpStream::connect(addr).unwrap();
                let sent = message(i);
                conn.write_all(&sent).unwrap();
                conn.shutdown(Shutdown::Write).unwrap();
                let mut back = Vec::new();
                conn.read_to_end(&mut back).unwrap();
                assert!(back == sent, "client {i} got other bytes back");
            })
        })
        .collect();
    joinall(clients).into_iter().for_each(|r| r.unwrap());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    server.kill();
}

#[test]
fn a_blocking_read_parks_only_its_greenlet() {
    greenweave_monkey::patch_all();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let (ticks, t) = ticker();
    let writer = spawn(move || {
        sleep(Duration::from_millis(50));
        a.write_all(b"late").unwrap();
    });
    let mut buf = [0; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late");
    common::assert_ticked(&ticks, 5, "reading");
    writer.join().unwrap();
    t.kill();
}

#[test]
fn udp_datagrams_between_greenlets() {
    greenweave_monkey::patch_all();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = rx.local_addr().unwrap();
    let from = tx.local_addr().unwrap();
    let sender = spawn(move || {
        for i in 0..5_u8 {
            sleep(Duration::from_millis(5));
            tx.send_to(&[i; 100], to).unwrap();
        }
    });
    for i in 0..5_u8 {
        let mut buf = [0; 200];
        let (n, peer) = rx.recv_from(&mut buf).unwrap();
        assert_eq!((n, peer), (100, from));
        assert!(buf[..n].iter().all(|&b| b == i));
    }
    sender.join().unwrap();
}

#[test]
fn read_timeouts_give_would_block_after_the_timeout() {
    greenweave_monkey::patch_all();
    let (a, _b) = UnixStream::pair().unwrap();
    let (ticks, t) = ticker();
    a.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let err = (&a).read(&mut [0; 8]).unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    if !common::valgrind::skip_under_valgrind("the 2 s wall-time bound") {
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
    common::assert_ticked(&ticks, 10, "reads waited out their timeouts");

    // SO_RCVTIMEO on a listener times accept out the same way.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 80_000,
    };
    // SAFETY: a valid timeval of the size given, on our own socket.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let start = Instant::now();
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(start.elapsed() >= Duration::from_millis(80));
    t.kill();
}

#[test]
fn a_nonblocking_socket_still_says_would_block_at_once() {
    greenweave_monkey::patch_all();
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap(); // ioctl(FIONBIO)
    let (ticks, t) = ticker();
    let start = Instant::now();
    let err = (&a).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(start.elapsed() < Duration::from_millis(100));
    assert_eq!(ticks.get(), 0, "the call parked");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    // MSG_DONTWAIT on a blocking socket too.
    let (c, _d) = UnixStream::pair().unwrap();
    // SAFETY: a valid buffer of the length given.
    let n = unsafe {
        libc::recv(
            c.as_raw_fd(),
            [0_u8; 8].as_mut_ptr().cast(),
            8,
            libc::MSG_DONTWAIT,
        )
    };
    assert_eq!(n, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EAGAIN)
    );
    assert_eq!(ticks.get(), 0, "a call parked");
    t.kill();
}

#[test]
fn killing_a_greenlet_parked_in_recv_ends_the_recv_with_ecanceled_once() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixStream::pair().unwrap();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let h = spawn(move || {
        let err = (&b).read(&mut [0; 8]).unwrap_err();
        s.set(err.raw_os_error());
        sleep(Duration::from_millis(1)); // delivered once: this sleeps
    });
    yield_now();
    h.kill();
    h.join().unwrap();
    assert_eq!(seen.get(), Some(libc::ECANCELED));
    drop(a);
}

#[test]
fn an_expired_timeout_ends_a_recv_with_etimedout() {
    greenweave_monkey::patch_all();
    let (_a, b) = UnixStream::pair().unwrap();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let start = Instant::now();
    let outcome = with_timeout(Duration::from_millis(30), || {
        let err = (&b).read(&mut [0; 8]).unwrap_err();
        s.set(err.raw_os_error());
        sleep(Duration::from_millis(1)); // delivered once: this sleeps
    });
    assert_eq!(
        outcome,
        Ok(()),
        "the code went on after its timeout's errno"
    );
    assert_eq!(seen.get(), Some(libc::ETIMEDOUT));
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn closing_an_fd_wakes_its_waiter_with_ebadf() {
    greenweave_monkey::patch_all();
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two fds.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    assert_eq!(rc, 0);
    let fd = fds[0];
    let waiter = spawn(move || {
        let mut buf = [0_u8; 8];
        // SAFETY: a valid buffer of the length given.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        (n, std::io::Error::last_os_error().raw_os_error())
    });
    yield_now();
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(fd);
        libc::close(fds[1]);
    }
    assert_eq!(waiter.join().unwrap(), (-1, Some(libc::EBADF)));
}

#[test]
fn a_blocking_send_sends_everything_and_waitall_gets_everything() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixStream::pair().unwrap();
    let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let expected = big.clone();
    let reader = spawn(move || {
        let mut got = vec![0_u8; expected.len()];
        let mut at = 0;
        while at < got.len() {
            let chunk = (got.len() - at).min(100_000);
            // One MSG_WAITALL recv fills its whole chunk, however the data arrives.
            // SAFETY: a valid buffer of the length given.
            let n = unsafe {
                libc::recv(
                    b.as_raw_fd(),
                    got[at..].as_mut_ptr().cast(),
                    chunk,
                    libc::MSG_WAITALL,
                )
            };
            assert_eq!(n, chunk as isize);
            at += chunk;
        }
        assert!(got == expected);
    });
    // One write call: the hook keeps going until all 4 MiB are in, as the kernel would.
    // SAFETY: a valid buffer of the length given.
    let n = unsafe { libc::write(a.as_raw_fd(), big.as_ptr().cast(), big.len()) };
    assert_eq!(n, big.len() as isize);
    reader.join().unwrap();
}

#[test]
fn vectored_socket_calls_and_messages() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixStream::pair().unwrap();
    let writer = spawn(move || {
        sleep(Duration::from_millis(10));
        let parts = [
            std::io::IoSlice::new(b"head-"),
            std::io::IoSlice::new(b"tail"),
        ];
        assert_eq!((&a).write_vectored(&parts).unwrap(), 9); // writev
        sleep(Duration::from_millis(10));
        let data = *b"message";
        let mut iov = libc::iovec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        // SAFETY: an all-zero msghdr is valid; it then points at one valid iovec.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: a valid message header.
        assert_eq!(unsafe { libc::sendmsg(a.as_raw_fd(), &msg, 0) }, 7);
    });
    let (mut x, mut y) = ([0_u8; 5], [0_u8; 4]);
    let mut parts = [
        std::io::IoSliceMut::new(&mut x),
        std::io::IoSliceMut::new(&mut y),
    ];
    assert_eq!((&b).read_vectored(&mut parts).unwrap(), 9); // readv parks
    assert_eq!((&x, &y), (b"head-", b"tail"));
    let mut buf = [0_u8; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; it then points at one valid iovec.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: a valid message header.
    let n = unsafe { libc::recvmsg(b.as_raw_fd(), &mut msg, 0) }; // parks
    assert_eq!(&buf[..n as usize], b"message");
    writer.join().unwrap();
}

#[test]
fn seqpacket_records_keep_their_boundaries() {
    greenweave_monkey::patch_all();
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two fds.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
    assert_eq!(rc, 0);
    let [a, b] = fds;
    let writer = spawn(move || {
        for record in [&b"one"[..], b"two-two", b"three"] {
            sleep(Duration::from_millis(2));
            // SAFETY: a valid buffer of the length given.
            let n = unsafe { libc::write(a, record.as_ptr().cast(), record.len()) };
            assert_eq!(n, record.len() as isize);
        }
    });
    for expected in [&b"one"[..], b"two-two", b"three"] {
        let mut buf = [0_u8; 64];
        // SAFETY: a valid buffer of the length given.
        let n = unsafe { libc::read(b, buf.as_mut_ptr().cast(), buf.len()) }; // parks
        assert_eq!(&buf[..n as usize], expected);
    }
    writer.join().unwrap();
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(a);
        libc::close(b);
    }
}
