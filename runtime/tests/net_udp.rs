//! `greenweave_runtime::net::UdpSocket`.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use greenweave_runtime::net::UdpSocket;
use greenweave_runtime::{spawn, yield_now};

#[test]
fn send_to_and_recv_from_round_trip_between_greenlets() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let echo = spawn(move || {
        let mut buf = [0; 1500];
        for _ in 0..3 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let reply: Vec<u8> = buf[..n].iter().rev().copied().collect();
            server.send_to(&reply, from).unwrap();
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for msg in [&b"abc"[..], b"hello", b"x"] {
        client.send_to(msg, server_addr).unwrap();
        let mut buf = [0; 1500];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, server_addr);
        let expected: Vec<u8> = msg.iter().rev().copied().collect();
        assert_eq!(&buf[..n], expected.as_slice());
    }
    echo.join().unwrap();
}

#[test]
fn recv_times_out_with_timed_out_after_at_least_the_timeout() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(80)))
        .unwrap();
    assert_eq!(
        socket.read_timeout().unwrap(),
        Some(Duration::from_millis(80))
    );
    let start = Instant::now();
    let err = socket.recv_from(&mut [0; 16]).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(took >= Duration::from_millis(80), "after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn connected_sockets_use_send_recv_and_peek() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    let reader = spawn(move || {
        let mut buf = [0; 32];
        let peeked = b.peek(&mut buf).unwrap(); // parks until the datagram arrives
        let (again, from) = b.peek_from(&mut buf).unwrap();
        let n = b.recv(&mut buf).unwrap();
        assert_eq!((peeked, again), (n, n));
        (buf[..n].to_vec(), from)
    });
    yield_now();
    a.send(b"connected").unwrap();
    let (data, from) = reader.join().unwrap();
    assert_eq!(data, b"connected");
    assert_eq!(from, a.local_addr().unwrap());
}

#[test]
fn broadcast_ttl_and_std_interop() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_broadcast(true).unwrap();
    assert!(socket.broadcast().unwrap());
    socket.set_ttl(7).unwrap();
    assert_eq!(socket.ttl().unwrap(), 7);
    let std_socket = socket.into_std().unwrap();
    assert_eq!(std_socket.ttl().unwrap(), 7);
    let again = UdpSocket::try_from(std_socket).unwrap();
    assert!(again.take_error().unwrap().is_none());
}
