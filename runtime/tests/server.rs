//! `greenweave_runtime::server`: StreamServer and DatagramServer.

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::net::{TcpListener, TcpStream, UdpSocket};
use greenweave_runtime::server::{DatagramServer, StreamServer};
use greenweave_runtime::sync::Event;
use greenweave_runtime::{JoinError, sleep, spawn, yield_now};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Records how a handler ended when dropped: returned, or unwound (killed).
struct Outcome(Rc<RefCell<Vec<&'static str>>>);

impl Drop for Outcome {
    fn drop(&mut self) {
        let how = if std::thread::panicking() {
            "unwound"
        } else {
            "returned"
        };
        self.0.borrow_mut().push(how);
    }
}

/// A count of started handlers and an event for "all have started".
fn starter() -> (Rc<Cell<usize>>, Rc<Event>) {
    (Rc::new(Cell::new(0)), Rc::new(Event::new()))
}

/// Counts a started handler; sets `all` once `n` have started.
fn started(count: &Cell<usize>, all: &Event, n: usize) {
    count.set(count.get() + 1);
    if count.get() == n {
        all.set();
    }
}

fn read_byte(conn: &mut TcpStream) -> Option<u8> {
    let mut b = [0];
    match conn.read(&mut b) {
        Ok(1) => Some(b[0]),
        _ => None,
    }
}

#[test]
fn stop_waits_for_handlers_up_to_the_timeout_then_kills_the_rest() {
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let (count, all) = starter();
    let (o, c, a) = (outcomes.clone(), count.clone(), all.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
        let _outcome = Outcome(o.clone());
        started(&c, &a, 4);
        if read_byte(&mut conn) == Some(b'q') {
            sleep(ms(50)); // finishes within the grace period
            conn.write_all(b"done").unwrap();
        }
        // Silent clients: parked in read until killed.
    })
    .unwrap();
    server.start().unwrap();
    assert!(server.is_running());
    let addr = server.local_addr().unwrap();
    let mut silent: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut quick = TcpStream::connect(addr).unwrap();
    all.wait();
    assert_eq!(server.active_connections(), 4);

    quick.write_all(b"q").unwrap();
    let start = Instant::now();
    server.stop(ms(300));
    let took = start.elapsed();
    assert!(
        took >= ms(300),
        "stop waited for the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!server.is_running());
    assert_eq!(server.active_connections(), 0);
    let mut ended = outcomes.borrow().clone();
    ended.sort_unstable();
    assert_eq!(ended, ["returned", "unwound", "unwound", "unwound"]);

    let mut reply = Vec::new();
    quick.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"done");
    for s in &mut silent {
        assert_eq!(
            s.read(&mut [0; 4]).unwrap(),
            0,
            "the killed handler closed it"
        );
    }
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::ConnectionRefused,
        "the listener is closed"
    );
    server.stop(ms(10)); // a second stop does nothing
}

#[test]
fn a_handler_panic_ends_its_connection_only() {
    let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
        let mut buf = [0; 64];
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            assert!(buf[0] != b'!', "the client asked for a panic");
            conn.write_all(&buf[..n]).unwrap();
        }
    })
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let mut before = TcpStream::connect(addr).unwrap();
    before.write_all(b"hi").unwrap();
    let mut buf = [0; 2];
    before.read_exact(&mut buf).unwrap();

    let mut victim = TcpStream::connect(addr).unwrap();
    victim.write_all(b"!").unwrap();
    let mut rest = Vec::new();
    let _ = victim.read_to_end(&mut rest); // EOF (or a reset): the handler is gone
    assert!(rest.is_empty());

    for stream in [&mut before, &mut TcpStream::connect(addr).unwrap()] {
        stream.write_all(b"ok").unwrap();
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    }
    assert!(server.is_running());
    drop(before);
    server.stop(Duration::from_secs(5));
}

#[test]
fn with_pool_2_a_third_connection_waits_until_a_handler_finishes() {
    let active = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    let (count, two) = starter();
    let (a, p, c, t) = (active.clone(), peak.clone(), count.clone(), two.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
        a.set(a.get() + 1);
        p.set(p.get().max(a.get()));
        started(&c, &t, 2);
        let id = read_byte(&mut conn).unwrap();
        conn.write_all(&[id]).unwrap();
        a.set(a.get() - 1);
    })
    .unwrap()
    .pool(2);
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let mut clients: Vec<_> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    two.wait();
    let mut third = TcpStream::connect(addr).unwrap(); // completes in the kernel's backlog
    third.write_all(&[3]).unwrap();
    third.set_read_timeout(Some(ms(100))).unwrap();
    let err = third.read(&mut [0]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "not handled while 2 run");
    assert_eq!((active.get(), server.active_connections()), (2, 2));

    clients[0].write_all(&[1]).unwrap(); // the first handler finishes...
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0];
    third.read_exact(&mut b).unwrap(); // ...and the third is served
    assert_eq!(b, [3]);
    clients[0].read_exact(&mut b).unwrap();
    assert_eq!(b, [1]);
    clients[1].write_all(&[2]).unwrap();
    clients[1].read_exact(&mut b).unwrap();
    assert_eq!(b, [2]);
    assert_eq!(peak.get(), 2, "never more than 2 handlers at once");
    server.stop(Duration::from_secs(5));
}

/// The number of handlers the first handler to run sees: the loop's first batch.
fn first_batch(max_accept: Option<usize>) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Five connections wait in the backlog before the server starts.
    let clients: Vec<_> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let seen = Rc::new(Cell::new(None));
    let slot: Rc<RefCell<Option<StreamServer>>> = Rc::default();
    let (s, sl) = (seen.clone(), slot.clone());
    let mut server = StreamServer::new(listener, move |_conn: TcpStream, _| {
        if s.get().is_none() {
            s.set(Some(sl.borrow().as_ref().unwrap().active_connections()));
        }
    });
    if let Some(n) = max_accept {
        server = server.max_accept(n);
    }
    *slot.borrow_mut() = Some(server.clone());
    server.start().unwrap();
    while seen.get().is_none() {
        yield_now();
    }
    server.stop(Duration::from_secs(5));
    drop(clients);
    slot.borrow_mut().take();
    seen.get().unwrap()
}

#[test]
fn max_accept_bounds_how_many_connections_are_accepted_before_handlers_run() {
    assert_eq!(first_batch(Some(2)), 2);
    assert_eq!(first_batch(Some(1)), 1);
    assert_eq!(first_batch(None), 5, "the default (100) takes all five");
}

#[test]
fn a_handler_can_stop_its_own_server_and_serve_forever_returns() {
    let slot: Rc<RefCell<Option<StreamServer>>> = Rc::default();
    let sl = slot.clone();
    let server = StreamServer::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
        if read_byte(&mut conn) == Some(b's') {
            let server = sl.borrow().clone().unwrap();
            server.stop(ms(50));
            conn.write_all(b"stopped").unwrap(); // left alone by its own stop
        }
    })
    .unwrap()
    .name("stoppable");
    *slot.borrow_mut() = Some(server.clone());
    let addr = server.listen().unwrap();
    let client = spawn(move || {
        let mut idle = TcpStream::connect(addr).unwrap(); // killed by the stop
        let mut stopper = TcpStream::connect(addr).unwrap();
        stopper.write_all(b"s").unwrap();
        let mut reply = Vec::new();
        stopper.read_to_end(&mut reply).unwrap();
        assert_eq!(idle.read(&mut [0]).unwrap(), 0);
        reply
    });
    server.serve_forever().unwrap();
    assert!(!server.is_running());
    assert_eq!(client.join().unwrap(), b"stopped");
    slot.borrow_mut().take();
}

#[test]
fn killing_the_serve_forever_greenlet_stops_the_server() {
    let server = StreamServer::bind("127.0.0.1:0", |_conn: TcpStream, _| {}).unwrap();
    let addr = server.listen().unwrap();
    let s = server.clone();
    let serving = spawn(move || s.serve_forever());
    yield_now();
    assert!(server.is_running());
    serving.kill();
    assert!(matches!(serving.join(), Err(JoinError::Killed)));
    for _ in 0..100 {
        if server.local_addr().is_none() && !server.is_running() {
            break;
        }
        yield_now();
    }
    assert!(
        !server.is_running(),
        "stopped by the greenlet serve_forever left"
    );
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn a_listener_that_stops_listening_ends_serve_forever_with_its_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = listener.try_clone().unwrap();
    let server = StreamServer::new(listener, |_conn: TcpStream, _| {});
    server.start().unwrap();
    yield_now(); // parked in accept
    other.shutdown().unwrap();
    let err = server.serve_forever().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!server.is_running());
    server.stop(ms(10));
}

#[test]
fn reuse_port_lets_two_servers_share_a_port() {
    let first = StreamServer::bind("127.0.0.1:0", |_c: TcpStream, _| {})
        .unwrap()
        .reuse_port(true);
    let addr = first.listen().unwrap();
    let second = StreamServer::bind(addr, |_c: TcpStream, _| {})
        .unwrap()
        .reuse_port(true);
    assert_eq!(second.listen().unwrap(), addr);
    let third = StreamServer::bind(addr, |_c: TcpStream, _| {}).unwrap();
    assert_eq!(third.listen().unwrap_err().kind(), ErrorKind::AddrInUse);
    first.stop(ms(10));
    second.stop(ms(10));
}

#[test]
fn start_twice_or_after_stop_is_an_error_and_options_after_start_panic() {
    let server = StreamServer::bind("127.0.0.1:0", |_c: TcpStream, _| {}).unwrap();
    server.start().unwrap();
    assert!(server.start().is_err());
    let late = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.clone().pool(3)));
    assert!(late.is_err(), "pool() after start panics");
    server.stop(ms(10));
    assert!(server.start().is_err());
    assert!(server.listen().is_err());
}

#[test]
fn datagram_server_echoes_and_survives_a_handler_panic() {
    let server = DatagramServer::bind(
        "127.0.0.1:0",
        |sock: &UdpSocket, data: &[u8], from: SocketAddr| {
            assert!(data != b"panic", "asked to panic");
            sock.send_to(data, from).unwrap();
        },
    )
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0; 64];
    for msg in [&b"one"[..], b"panic", b"two"] {
        client.send_to(msg, addr).unwrap();
        if msg == b"panic" {
            continue;
        }
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (msg, addr));
    }
    assert!(server.is_running());
    server.stop();
    assert!(!server.is_running());
    client.send_to(b"late", addr).unwrap();
    client.set_read_timeout(Some(ms(50))).unwrap();
    assert!(
        client.recv_from(&mut buf).is_err(),
        "nobody answers any more"
    );
}

#[test]
fn datagram_serve_forever_returns_when_a_handler_stops_the_server() {
    let slot: Rc<RefCell<Option<DatagramServer>>> = Rc::default();
    let sl = slot.clone();
    let server = DatagramServer::bind("127.0.0.1:0", move |sock: &UdpSocket, data: &[u8], from| {
        sock.send_to(data, from).unwrap();
        if data == b"bye" {
            sl.borrow().as_ref().unwrap().stop();
        }
    })
    .unwrap();
    *slot.borrow_mut() = Some(server.clone());
    let addr = server.local_addr().unwrap();
    let client = spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(addr).unwrap();
        let mut buf = [0; 8];
        for msg in [&b"hello"[..], b"bye"] {
            sock.send(msg).unwrap();
            let n = sock.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], msg);
        }
    });
    server.serve_forever().unwrap();
    client.join().unwrap();
    assert!(!server.is_running());
    slot.borrow_mut().take();
}
