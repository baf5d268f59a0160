//! Servers and clients in processes of their own: this bench binary started again in a
//! role (the [`ROLE_ENV`] variable), talking with the bench over its stdin and stdout,
//! one line at a time.
//!
//! - `server NAME`: starts the echo server `NAME` (see [`ECHO_SERVERS`]), prints its
//!   address, and serves until its stdin is closed.
//! - `client KIND CONNS ADDR`: opens `CONNS` connections to `ADDR` as request–response
//!   client `KIND` (see [`reqresp`](super::reqresp)), prints `ready`, then for each
//!   `run N` line makes `N` round trips spread over the connections and prints the
//!   nanoseconds they took; it exits when its stdin is closed.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::*;

/// Set in a child process to the role it plays.
pub(super) const ROLE_ENV: &str = "GREENWEAVE_ECHO_BENCH_ROLE";

/// Plays the role this process was started in, if any; `false` for the bench itself.
pub(super) fn run_role_if_asked() -> bool {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return false;
    };
    let words: Vec<&str> = role.split(' ').collect();
    match words[..] {
        ["server", name] => serve(name),
        ["client", kind, conns, addr] => {
            let kind = reqresp::Kind::from_name(kind);
            let conns = conns.parse().expect("a connection count");
            let addr = addr.parse().expect("a server address");
            reqresp::client_main(kind, conns, addr);
        }
        _ => panic!("{ROLE_ENV}={role:?}: not a role (`server NAME` or `client KIND CONNS ADDR`)"),
    }
    true
}

/// The `server NAME` role.
fn serve(name: &str) {
    let (_, start) = ECHO_SERVERS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no echo server named {name:?}"));
    let server = start();
    println!("{}", server.addr);
    // Serve until the bench closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    // The bench has closed its clients first; nothing is left to finish.
    std::process::exit(0);
}

/// A child process in a role.
pub(super) struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts this binary in `role`.
    pub(super) fn start(role: &str) -> Peer {
        let exe = std::env::current_exe().expect("the bench binary's path");
        let mut command = Command::new(exe);
        let mut child = command
            .env(ROLE_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {role:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line the child prints.
    pub(super) fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("reading the child");
        assert!(n > 0, "the child exited early (see its stderr above)");
        line.trim_end().to_owned()
    }

    /// Sends one line to the child.
    pub(super) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the child's stdin is open");
        writeln!(stdin, "{line}").expect("writing to the child");
        stdin.flush().expect("writing to the child");
    }

    /// Closes the child's stdin (its signal to exit) and waits for it.
    pub(super) fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("waiting for the child");
        assert!(status.success(), "the child failed: {status}");
    }
}

/// An echo server in a process of its own.
pub(super) struct ServerProcess {
    peer: Peer,
    pub(super) addr: SocketAddr,
}

impl ServerProcess {
    pub(super) fn start(name: &str) -> ServerProcess {
        let mut peer = Peer::start(&format!("server {name}"));
        let addr = peer.line().parse().expect("the server prints its address");
        ServerProcess { peer, addr }
    }

    pub(super) fn stop(self) {
        self.peer.finish();
    }
}

/// A request–response client in a process of its own, connected and ready.
pub(super) struct ClientProcess {
    peer: Peer,
}

impl ClientProcess {
    pub(super) fn start(kind: reqresp::Kind, conns: usize, addr: SocketAddr) -> ClientProcess {
        let role = format!("client {} {conns} {addr}", kind.name());
        let mut peer = Peer::start(&role);
        assert_eq!(peer.line(), "ready", "the client connects first");
        ClientProcess { peer }
    }

    /// `iters` round trips spread over the connections; the time they took.
    pub(super) fn run(&mut self, iters: u64) -> Duration {
        self.peer.send(&format!("run {iters}"));
        let nanos: u64 = self
            .peer
            .line()
            .parse()
            .expect("the client prints nanoseconds");
        Duration::from_nanos(nanos)
    }

    /// The client's process id.
    pub(super) fn pid(&self) -> u32 {
        self.peer.child.id()
    }

    pub(super) fn stop(self) {
        self.peer.finish();
    }
}
