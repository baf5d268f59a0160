//! `greenweave_runtime::net`: TCP sockets between greenlets of one thread.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::net::{TcpListener, TcpStream};
use greenweave_runtime::{JoinError, spawn, wait_any, with_timeout, yield_now};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Deterministic test data (xorshift64).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A connected (client, server-side) pair over loopback.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

fn is_nonblocking(fd: i32) -> bool {
    // SAFETY: F_GETFL only reads the flags of an fd we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn echo_between_greenlets_of_one_thread_is_byte_for_byte() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0; 4096];
        let mut echoed = 0;
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                return echoed;
            }
            conn.write_all(&buf[..n]).unwrap();
            echoed += n;
        }
    });
    let data = random_bytes(7, 512 * 1024);
    let client = Rc::new(TcpStream::connect(addr).unwrap());
    // Writing 512 KiB before reading would fill both socket buffers: a second greenlet
    // writes while this one reads, through shared references.
    let (c, d) = (client.clone(), data.clone());
    let writer = spawn(move || {
        (&*c).write_all(&d).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
    });
    let mut echo = Vec::new();
    (&*client).read_to_end(&mut echo).unwrap();
    writer.join().unwrap();
    assert_eq!(server.join().unwrap(), data.len());
    assert!(echo == data, "the echo differs from what was sent");
}

#[test]
fn a_peer_that_resets_gives_connection_reset() {
    let (mut client, server) = tcp_pair();
    server.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(server.linger().unwrap(), Some(Duration::ZERO));
    let reader = spawn(move || {
        let mut buf = [0; 16];
        client.read(&mut buf).map_err(|e| e.kind())
    });
    yield_now(); // the reader parks
    drop(server); // SO_LINGER 0: close sends RST
    assert_eq!(reader.join().unwrap(), Err(ErrorKind::ConnectionReset));
}

#[test]
fn after_a_half_close_the_peer_reads_eof_and_can_still_write_back() {
    let (mut client, mut server) = tcp_pair();
    client.write_all(b"request").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"request");
    server.write_all(b"response").unwrap();
    drop(server);
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"response");
    assert!(client.write_all(b"x").is_err() || client.write_all(b"y").is_err());
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap(); // the listener is dropped: nobody listens there now
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    let err = TcpStream::connect_timeout(addr, Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn connect_timeout_to_a_listener_with_a_full_backlog_times_out() {
    // Linux drops SYNs while a listener's accept queue is full, so a connection beyond
    // backlog + 1 stays in SYN_SENT: a blackhole on loopback.
    let listener = TcpListener::options()
        .backlog(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        let start = Instant::now();
        match TcpStream::connect_timeout(addr, ms(200)) {
            Ok(stream) => held.push(stream),
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
                let took = start.elapsed();
                assert!(took >= ms(200), "gave up after {took:?}");
                assert!(took < Duration::from_secs(5), "took {took:?}");
                assert!(
                    !held.is_empty(),
                    "the backlog held {} connections",
                    held.len()
                );
                return;
            }
        }
    }
    eprintln!(
        "skipped: the kernel completed all {} handshakes to a backlog-1 listener \
         (no SYN drops on this system), so there is no loopback blackhole",
        held.len()
    );
}

#[test]
fn a_read_timeout_gives_timed_out_after_at_least_the_timeout() {
    let (client, _server) = tcp_pair();
    client.set_read_timeout(Some(ms(100))).unwrap();
    assert_eq!(client.read_timeout().unwrap(), Some(ms(100)));
    let clone = client.try_clone().unwrap();
    assert_eq!(
        clone.read_timeout().unwrap(),
        Some(ms(100)),
        "shared by clones"
    );
    let start = Instant::now();
    let err = (&client).read(&mut [0; 8]).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(took >= ms(100), "timed out after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        client
            .set_read_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn a_write_timeout_gives_timed_out_once_the_buffers_are_full() {
    let (client, _server) = tcp_pair();
    client.set_write_timeout(Some(ms(100))).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut sent = 0usize;
    let start = Instant::now();
    let err = loop {
        match (&client).write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(sent > 0, "the buffers took some data first");
    assert!(start.elapsed() >= ms(100));
}

#[test]
fn two_greenlets_reading_one_socket_each_get_one_of_two_writes() {
    let (client, mut server) = tcp_pair();
    let client = Rc::new(client);
    let got = Rc::new(RefCell::new(Vec::new()));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let (c, got) = (client.clone(), got.clone());
            spawn(move || {
                let mut buf = [0; 16];
                let n = (&*c).read(&mut buf).unwrap();
                got.borrow_mut().push((i, buf[..n].to_vec()));
            })
        })
        .collect();
    yield_now(); // both park in read
    server.write_all(b"x").unwrap();
    let first = wait_any(&readers, Some(Duration::from_secs(5))).expect("one reader got it");
    for _ in 0..3 {
        yield_now();
    }
    let second = 1 - first;
    assert!(
        !readers[second].is_finished(),
        "the other reader woke, found nothing and parked again"
    );
    server.write_all(b"y").unwrap();
    for r in readers {
        r.join().unwrap();
    }
    let got = got.borrow();
    assert_eq!(*got, [(first, b"x".to_vec()), (second, b"y".to_vec())]);
}

#[test]
fn shutdown_wakes_a_greenlet_parked_in_read_which_reads_eof() {
    let (client, _server) = tcp_pair();
    let client = Rc::new(client);
    let c = client.clone();
    let reader = spawn(move || (&*c).read(&mut [0; 16]).unwrap());
    yield_now();
    assert!(!reader.is_finished(), "parked in read");
    client.shutdown(Shutdown::Both).unwrap();
    assert_eq!(reader.join().unwrap(), 0);
}

#[test]
fn a_greenlet_killed_while_parked_in_read_unwinds_and_the_socket_still_works() {
    let (client, mut server) = tcp_pair();
    let client = Rc::new(client);
    let c = client.clone();
    let reader = spawn(move || (&*c).read(&mut [0; 16]).unwrap());
    yield_now();
    reader.kill();
    assert!(matches!(reader.join(), Err(JoinError::Killed)));
    assert_eq!(
        Rc::strong_count(&client),
        1,
        "the killed greenlet dropped its Rc"
    );

    let c = client.clone();
    let next = spawn(move || {
        let mut buf = [0; 16];
        let n = (&*c).read(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    server.write_all(b"after").unwrap();
    assert_eq!(next.join().unwrap(), b"after");
}

#[test]
fn a_timeout_interrupts_a_parked_read_and_the_socket_still_works() {
    let (client, mut server) = tcp_pair();
    let start = Instant::now();
    let outcome = with_timeout(ms(50), || (&client).read(&mut [0; 4]));
    assert!(outcome.is_err(), "the Timeout fired: {outcome:?}");
    assert!(start.elapsed() >= ms(50));
    server.write_all(b"ok").unwrap();
    let mut buf = [0; 2];
    (&client).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ok");
}

#[test]
fn accept_timeout_times_out_and_shutdown_wakes_a_parked_accept() {
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let start = Instant::now();
    let err = listener.accept_timeout(ms(50)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= ms(50));

    let l = listener.clone();
    let acceptor = spawn(move || l.accept().map(|_| ()).map_err(|e| e.kind()));
    yield_now();
    assert!(!acceptor.is_finished(), "parked in accept");
    listener.shutdown().unwrap();
    assert_eq!(acceptor.join().unwrap(), Err(ErrorKind::InvalidInput));
}

#[test]
fn incoming_yields_connections_as_they_arrive() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients = spawn(move || {
        (0..3u8)
            .map(|i| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&[i]).unwrap();
                s
            })
            .collect::<Vec<_>>()
    });
    let mut seen: Vec<u8> = listener
        .incoming()
        .take(3)
        .map(|s| {
            let mut b = [0];
            s.unwrap().read_exact(&mut b).unwrap();
            b[0]
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2]);
    drop(clients.join().unwrap());
}

#[test]
fn connect_resolves_a_host_name_and_tries_each_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // "localhost" may list ::1 first, where nobody listens: the next address is tried.
    let client = TcpStream::connect(("localhost", port)).unwrap();
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    let text = format!("localhost:{port}");
    let again = TcpStream::connect_timeout(text.as_str(), Duration::from_secs(5)).unwrap();
    assert_eq!(again.peer_addr().unwrap().port(), port);
    let err = TcpStream::connect("no-port-here").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn set_nonblocking_makes_this_handle_return_would_block() {
    let (client, mut server) = tcp_pair();
    client.set_nonblocking(true).unwrap();
    let err = (&client).read(&mut [0; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    let clone = client.try_clone().unwrap();
    server.write_all(b"z").unwrap();
    let mut b = [0];
    (&clone).read_exact(&mut b).unwrap(); // the clone parks as usual
    assert_eq!(&b, b"z");
}

#[test]
fn std_interop_keeps_the_socket_and_switches_blocking_mode() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = std_listener.local_addr().unwrap();
    let listener = TcpListener::try_from(std_listener).unwrap();
    assert!(is_nonblocking(listener.as_raw_fd()));
    let std_client = std::net::TcpStream::connect(addr).unwrap(); // the kernel completes it
    std_client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let client = TcpStream::try_from(std_client).unwrap();
    assert_eq!(client.read_timeout().unwrap(), Some(Duration::from_secs(5)));
    let (server, _) = listener.accept().unwrap();

    // Raw fd round trip.
    let fd = server.into_raw_fd();
    // SAFETY: `fd` came from `into_raw_fd` just above and is owned by nobody else.
    let mut server = unsafe { TcpStream::from_raw_fd(fd) };
    assert!(is_nonblocking(server.as_raw_fd()));
    server.write_all(b"raw").unwrap();

    let mut std_back = client.into_std().unwrap();
    assert!(!is_nonblocking(std_back.as_raw_fd()));
    let mut buf = [0; 3];
    std_back.read_exact(&mut buf).unwrap(); // a plain blocking read: the data is there
    assert_eq!(&buf, b"raw");
    assert_eq!(
        std_back.read_timeout().unwrap(),
        Some(Duration::from_secs(5)),
        "the timeout is the socket's own"
    );
}

#[test]
fn peek_nodelay_addresses_and_take_error() {
    let (client, mut server) = tcp_pair();
    client.set_nodelay(true).unwrap();
    assert!(client.nodelay().unwrap());
    assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
    let c = Rc::new(client);
    let peeker = {
        let c = c.clone();
        spawn(move || {
            let mut buf = [0; 8];
            let n = c.peek(&mut buf).unwrap(); // parks until data
            buf[..n].to_vec()
        })
    };
    server.write_all(b"peek").unwrap();
    assert_eq!(peeker.join().unwrap(), b"peek");
    let mut buf = [0; 4];
    (&*c).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"peek", "peek left the data queued");
    assert!(c.take_error().unwrap().is_none());
    assert!(format!("{c:?}").contains("TcpStream"));
}

#[test]
fn sockets_are_send_and_sync_and_work_from_another_threads_hub() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TcpStream>();
    send_sync::<TcpListener>();
    send_sync::<greenweave_runtime::net::UdpSocket>();
    send_sync::<greenweave_runtime::net::UnixStream>();
    send_sync::<greenweave_runtime::net::UnixListener>();
    send_sync::<greenweave_runtime::net::UnixDatagram>();

    let (client, mut server) = tcp_pair();
    let other = std::thread::spawn(move || {
        // This thread's own hub parks the read; a second greenlet runs meanwhile.
        let ticker = spawn(|| {
            greenweave_runtime::sleep(ms(10));
            "ticked"
        });
        let mut buf = [0; 5];
        (&client).read_exact(&mut buf).unwrap();
        (buf, ticker.join().unwrap())
    });
    greenweave_runtime::sleep(ms(50));
    server.write_all(b"hello").unwrap();
    assert_eq!(other.join().unwrap(), (*b"hello", "ticked"));
}
