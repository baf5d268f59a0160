//! 1,000 concurrent TCP connections against a `StreamServer` on the same thread.
//!
//! This binary holds a single test: it counts the process's open fds before and
//! after, which other tests running in parallel threads would disturb.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::net::TcpStream;
use greenweave_runtime::server::StreamServer;
use greenweave_runtime::{spawn, yield_now};

const CONNECTIONS: usize = 1000;

/// Bytes each connection echoes: 64 KiB, or 16 KiB under Valgrind (`.ci/valgrind`
/// sets the variable), where 64 MiB each way takes minutes of its CI step; that is
/// still two writes per connection.
fn bytes() -> usize {
    if std::env::var_os("RUNNING_UNDER_VALGRIND").is_some() {
        16 * 1024
    } else {
        64 * 1024
    }
}

/// Deterministic per-connection data (xorshift64).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn echo(mut conn: TcpStream, _peer: SocketAddr) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// One client: a writer greenlet sends the data while this one reads the echo.
fn client(addr: SocketAddr, seed: u64) -> usize {
    let data = Rc::new(random_bytes(seed, bytes()));
    let stream = Rc::new(TcpStream::connect(addr).unwrap());
    let (s, d) = (stream.clone(), data.clone());
    let writer = spawn(move || {
        for chunk in d.chunks(8 * 1024) {
            (&*s).write_all(chunk).unwrap();
        }
        s.shutdown(Shutdown::Write).unwrap();
    });
    let mut echo = Vec::with_capacity(bytes());
    (&*stream).read_to_end(&mut echo).unwrap();
    writer.join().unwrap();
    let bad = echo.iter().zip(data.iter()).filter(|(a, b)| a != b).count();
    assert_eq!(echo.len(), bytes(), "connection {seed}: short echo");
    assert_eq!(bad, 0, "connection {seed}: {bad} bytes differ");
    echo.len()
}

#[test]
fn a_thousand_connections_echo_64_kib_each_verified_and_every_fd_is_closed() {
    yield_now(); // creates this thread's hub (an epoll fd, an eventfd) before counting
    let before = open_fds();
    let start = Instant::now();
    {
        let (active, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (a, p) = (active.clone(), peak.clone());
        let server = StreamServer::bind("127.0.0.1:0", move |conn, peer| {
            a.set(a.get() + 1);
            p.set(p.get().max(a.get()));
            echo(conn, peer);
            a.set(a.get() - 1);
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<_> = (0..CONNECTIONS as u64)
            .map(|seed| spawn(move || client(addr, seed)))
            .collect();
        let total: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(total, CONNECTIONS * bytes());
        eprintln!("at most {} handlers ran at once", peak.get());
        assert!(
            peak.get() >= CONNECTIONS / 10,
            "the connections were served concurrently (peak {})",
            peak.get()
        );
        server.stop(Duration::from_secs(10));
        assert_eq!(server.active_connections(), 0);
        assert!(server.local_addr().is_none(), "the listener is closed");
    }
    let after = open_fds();
    eprintln!(
        "{CONNECTIONS} connections x {} KiB echoed in {:?}; fds before {before}, after {after}",
        bytes() / 1024,
        start.elapsed()
    );
    assert_eq!(after, before, "every socket was closed");
}
