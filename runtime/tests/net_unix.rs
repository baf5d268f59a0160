//! `greenweave_runtime::net`: Unix-domain stream and datagram sockets.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::net::{UnixDatagram, UnixListener, UnixStream};
use greenweave_runtime::{spawn, yield_now};

/// A fresh directory for socket files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gw-net-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

#[test]
fn unix_echo_between_greenlets_of_one_thread_is_byte_for_byte() {
    let dir = TempDir::new("echo");
    let path = dir.path("echo.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0; 3000];
        loop {
            match conn.read(&mut buf).unwrap() {
                0 => return,
                n => conn.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let data = random_bytes(11, 400 * 1024);
    let client = Rc::new(UnixStream::connect(&path).unwrap());
    let (c, d) = (client.clone(), data.clone());
    let writer = spawn(move || {
        (&*c).write_all(&d).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
    });
    let mut echo = Vec::new();
    (&*client).read_to_end(&mut echo).unwrap();
    writer.join().unwrap();
    server.join().unwrap();
    assert!(echo == data, "the echo differs from what was sent");
}

#[test]
fn a_unix_pair_talks_both_ways_and_shutdown_wakes_a_parked_reader() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let reader = {
        let a = a.clone();
        spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0; 64];
            loop {
                match (&*a).read(&mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        })
    };
    b.write_all(b"one ").unwrap();
    yield_now();
    b.write_all(b"two").unwrap();
    yield_now();
    assert!(!reader.is_finished(), "parked, waiting for more");
    a.shutdown(Shutdown::Read).unwrap();
    assert_eq!(reader.join().unwrap(), b"one two");
}

#[test]
fn a_unix_read_timeout_gives_timed_out() {
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(60))).unwrap();
    let start = Instant::now();
    let err = (&a).read(&mut [0; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(60));
}

#[test]
fn connecting_to_a_missing_unix_socket_fails_with_not_found() {
    let dir = TempDir::new("missing");
    let err = UnixStream::connect(dir.path("nobody.sock")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_unix_datagram_pair_exchanges_datagrams_with_boundaries_kept() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let reader = spawn(move || {
        let mut buf = [0; 64];
        let first = b.recv(&mut buf).unwrap();
        let first = buf[..first].to_vec();
        let second = b.recv(&mut buf).unwrap();
        (first, buf[..second].to_vec())
    });
    yield_now(); // the reader parks before anything is sent
    a.send(b"first").unwrap();
    a.send(b"second").unwrap();
    let (first, second) = reader.join().unwrap();
    assert_eq!(
        (first.as_slice(), second.as_slice()),
        (&b"first"[..], &b"second"[..])
    );
}

#[test]
fn bound_unix_datagram_sockets_reply_with_send_to_and_recv_from() {
    let dir = TempDir::new("dgram");
    let server_path = dir.path("server.sock");
    let client_path = dir.path("client.sock");
    let server = UnixDatagram::bind(&server_path).unwrap();
    let echo = spawn(move || {
        let mut buf = [0; 64];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        let to = from.as_pathname().unwrap().to_owned();
        server.send_to(&buf[..n], to).unwrap();
    });
    let client = UnixDatagram::bind(&client_path).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"ping", &server_path).unwrap();
    let mut buf = [0; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from.as_pathname(), Some(server_path.as_path()));
    echo.join().unwrap();

    let unbound = UnixDatagram::unbound().unwrap();
    unbound.connect(&client_path).unwrap();
    unbound.send(b"via connect").unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"via connect");
}
