//! System calls of a request–response client, counted with `strace -f -c` (which
//! `.ci/run` installs): after the first exchange, a round trip costs the client one
//! `send` and one `recv`, with no read that fails with `EAGAIN`, no `epoll_ctl`, and
//! no `fcntl`/`getsockopt`/`ioctl` to learn the fd's blocking mode or timeout. For
//! unmodified `std::net` after `patch_all`, and for `greenweave::net`.
//!
//! Each test runs itself again under `strace` twice, with different numbers of round
//! trips, and compares the counts, so start-up and connection setup cancel out. The
//! server is a plain OS thread with no hub in the same process (its calls pass straight
//! through the hooks): one blocking `recv` and one `send` per round trip.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::Command;

const CHILD_ENV: &str = "GREENWEAVE_SYSCALLS_CHILD";
const MSG: usize = 64;

/// A blocking echo server on an OS thread without a hub.
fn echo_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_nodelay(true).unwrap();
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            conn.write_all(&buf[..n]).unwrap();
        }
    });
    addr
}

/// `rounds` round trips through a 4 KiB buffered reader, as a client library makes.
fn round_trips<S>(conn: &S, rounds: u64)
where
    for<'a> &'a S: Read + Write,
{
    let mut reader = BufReader::with_capacity(4096, conn);
    let req = [7u8; MSG];
    let mut resp = [0; MSG];
    for _ in 0..rounds {
        (&*conn).write_all(&req).unwrap();
        reader.read_exact(&mut resp).unwrap();
        assert_eq!(resp, req);
    }
    assert!(
        reader.buffer().is_empty(),
        "nothing beyond the responses came"
    );
}

/// The traced child: `rounds` round trips by `kind` (`std` or `net`), in a greenlet.
fn child(kind: &str, rounds: u64) {
    let addr = echo_server();
    match kind {
        "std" => {
            greenweave_monkey::patch_all();
            greenweave_runtime::spawn(move || {
                let conn = std::net::TcpStream::connect(addr).unwrap();
                conn.set_nodelay(true).unwrap();
                round_trips(&conn, rounds);
            })
            .join()
            .unwrap();
        }
        "net" => greenweave_runtime::spawn(move || {
            let conn = greenweave_runtime::net::TcpStream::connect(addr).unwrap();
            conn.set_nodelay(true).unwrap();
            round_trips(&conn, rounds);
        })
        .join()
        .unwrap(),
        _ => panic!("{CHILD_ENV}: unknown kind {kind:?}"),
    }
}

/// (calls, errors) by system call name, from an `strace -c` summary.
fn parse_summary(text: &str) -> BTreeMap<String, (u64, u64)> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(n) = fields.get(3).and_then(|f| f.parse::<u64>().ok()) else {
            continue;
        };
        let errors = match fields.len() {
            5 => 0,
            6 => fields[4].parse().unwrap_or(0),
            _ => continue,
        };
        calls.insert(fields[fields.len() - 1].to_owned(), (n, errors));
    }
    calls
}

/// The system calls of this test run again as a child doing `rounds` round trips.
fn traced(test: &str, kind: &str, rounds: u64) -> BTreeMap<String, (u64, u64)> {
    let out = std::env::temp_dir().join(format!(
        "gw-syscalls-{}-{kind}-{rounds}.txt",
        std::process::id()
    ));
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1"])
        .env(CHILD_ENV, format!("{kind} {rounds}"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run strace ({e}): install it (Debian: apt-get install strace)")
        });
    assert!(status.success(), "the traced child failed: {status}");
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    parse_summary(&text)
}

/// Checks the per-round-trip counts of `kind` (the client's plus the server thread's).
fn check(test: &str, kind: &str) {
    let (short, long) = (200, 2_200);
    let (a, b) = (traced(test, kind, short), traced(test, kind, long));
    let rounds = (long - short) as f64;
    let per = |name: &str| {
        let (x, y) = (
            a.get(name).copied().unwrap_or_default(),
            b.get(name).copied().unwrap_or_default(),
        );
        (
            (y.0 as f64 - x.0 as f64) / rounds,
            (y.1 as f64 - x.1 as f64) / rounds,
        )
    };
    let report = format!("{kind}: short run {a:?}\nlong run {b:?}");
    // One `recv` and one `send` each for the client and for the server, none failing.
    let (recvs, failed) = per("recvfrom");
    assert!(
        (recvs - 2.0).abs() < 0.01,
        "recvfrom {recvs} per round trip\n{report}"
    );
    assert!(
        failed < 0.005,
        "{failed} failed recvfrom per round trip\n{report}"
    );
    let (sends, _) = per("sendto");
    assert!(
        (sends - 2.0).abs() < 0.01,
        "sendto {sends} per round trip\n{report}"
    );
    // No registration and no question about the fd per wait.
    for name in ["epoll_ctl", "fcntl", "getsockopt", "ioctl"] {
        let (n, _) = per(name);
        assert!(n.abs() < 0.005, "{name} {n} per round trip\n{report}");
    }
}

fn child_if_asked() -> bool {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let (kind, rounds) = args.split_once(' ').unwrap();
    child(kind, rounds.parse().unwrap());
    true
}

#[test]
fn a_patched_std_client_makes_one_send_and_one_recv_per_round_trip() {
    if !child_if_asked() {
        check(
            "a_patched_std_client_makes_one_send_and_one_recv_per_round_trip",
            "std",
        );
    }
}

#[test]
fn a_greenweave_net_client_makes_one_send_and_one_recv_per_round_trip() {
    if !child_if_asked() {
        check(
            "a_greenweave_net_client_makes_one_send_and_one_recv_per_round_trip",
            "net",
        );
    }
}
