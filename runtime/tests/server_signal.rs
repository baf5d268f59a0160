//! The graceful-shutdown recipe of the `server` module docs, with a real `SIGTERM`:
//! a child process runs a `StreamServer`; `signal-hook` turns the signal into a byte
//! on a socket pair, a greenlet reading it stops the server; in-flight handlers
//! finish, new connections are refused, and the process exits 0.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use greenweave_runtime::net::{TcpStream, UnixStream};
use greenweave_runtime::server::StreamServer;
use greenweave_runtime::spawn;

const CHILD_ENV: &str = "GREENWEAVE_SERVER_SIGNAL_CHILD";
const CLIENTS: usize = 3;

/// The server process: the recipe from the module docs, printing its progress.
#[test]
fn child_server_until_sigterm() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only in the child process the parent starts
    }
    // Ctrl-C and SIGTERM each write a byte to `wake`; a greenlet waits on `signals`.
    let (mut signals, wake) = UnixStream::pair().unwrap();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::low_level::pipe::register(sig, wake.try_clone().unwrap()).unwrap();
    }
    let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _peer| {
        let mut byte = [0];
        conn.read_exact(&mut byte).unwrap(); // the request
        conn.write_all(b"A").unwrap(); // accepted: the handler is in flight
        conn.read_exact(&mut byte).unwrap(); // "go": finish the request
        conn.write_all(b"done").unwrap();
    })
    .unwrap();
    let addr = server.listen().unwrap();
    println!("\nlistening {addr}");
    let stopper = server.clone();
    spawn(move || {
        let mut byte = [0];
        if signals.read(&mut byte).unwrap() == 1 {
            println!("stopping");
            // Closes the listener before it parks; waits for the handlers.
            stopper.stop(Duration::from_secs(30));
        }
    });
    server.serve_forever().unwrap();
    println!("stopped, {} handlers left", server.active_connections());
}

fn start_child() -> (Child, BufReader<ChildStdout>) {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .args([
            "--exact",
            "child_server_until_sigterm",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary runs again");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Reads the child's stdout up to a line starting with `prefix`; returns the rest.
fn line_after(stdout: &mut BufReader<ChildStdout>, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the child ended before printing {prefix:?}"
        );
        if let Some(rest) = line.trim_end().strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let (mut child, mut stdout) = start_child();
    let addr: std::net::SocketAddr = line_after(&mut stdout, "listening ").parse().unwrap();

    // Plain blocking clients on this (hub-less) test thread.
    let mut clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            c.write_all(b"r").unwrap();
            let mut ack = [0];
            c.read_exact(&mut ack).unwrap();
            assert_eq!(&ack, b"A");
            c
        })
        .collect();

    // SAFETY: `kill` with a live child's pid and a valid signal number.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    line_after(&mut stdout, "stopping");

    // The in-flight requests complete.
    for c in &mut clients {
        c.write_all(b"g").unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"done");
    }
    // The child printed "stopping" and called `stop` without yielding, so by the time
    // a handler answered, the listener was closed: a new connection is refused (not
    // queued, not served).
    let refused = std::net::TcpStream::connect(addr).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(line_after(&mut stdout, "stopped, "), "0 handlers left");
    let status = child.wait().unwrap();
    assert!(status.success(), "the server process exited with {status}");
}
