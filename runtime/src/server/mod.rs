//! Servers (gevent's `gevent.server`): [`StreamServer`] runs a handler in its own
//! greenlet for every TCP connection; [`DatagramServer`] runs one for every UDP
//! datagram.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use greenweave_runtime::net::TcpStream;
//! use greenweave_runtime::server::StreamServer;
//!
//! // An echo server: one greenlet per connection, all on this thread.
//! let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _peer| {
//!     let mut buf = [0; 1024];
//!     loop {
//!         match conn.read(&mut buf) {
//!             Ok(0) | Err(_) => return,
//!             Ok(n) => if conn.write_all(&buf[..n]).is_err() { return },
//!         }
//!     }
//! })
//! .unwrap();
//! server.start().unwrap();
//! let addr = server.local_addr().unwrap();
//!
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"hello").unwrap();
//! let mut buf = [0; 5];
//! client.read_exact(&mut buf).unwrap();
//! assert_eq!(&buf, b"hello");
//!
//! drop(client);
//! server.stop(Duration::from_secs(1));
//! assert!(!server.is_running());
//! ```
//!
//! # Life cycle
//!
//! A server is configured (`pool`, `max_accept`, `name`, ...), then either
//! [`start`](StreamServer::start)ed (its loop runs in a greenlet of its own, the call
//! returns at once) or run with [`serve_forever`](StreamServer::serve_forever) (which
//! starts it and blocks the calling greenlet until it is stopped).
//! [`stop`](StreamServer::stop) ends it: no more connections are accepted, running
//! handlers get a grace period, then are killed. A stopped server cannot be
//! restarted. Server handles are cheap clones of one server, so a handler can hold one
//! and stop its own server.
//!
//! # Graceful shutdown on Ctrl-C or `SIGTERM`
//!
//! A signal handler must not touch the hub (it may run on any thread, between any two
//! instructions), so let it only *wake a greenlet*, which then calls
//! [`stop`](StreamServer::stop) with a grace period: the listener closes at once (new
//! connections are refused), in-flight handlers get the grace period to finish (then
//! are killed), and `serve_forever` returns, so `main` ends normally (exit status 0).
//! The [`signal-hook`](https://docs.rs/signal-hook) crate's `pipe` module is the
//! handler: it writes a byte to a socket, which a greenlet reads.
//!
//! ```no_run
//! use std::io::Read;
//! use std::time::Duration;
//! use greenweave_runtime::net::{TcpStream, UnixStream};
//! use greenweave_runtime::server::StreamServer;
//! use signal_hook::consts::{SIGINT, SIGTERM};
//!
//! # fn main() -> std::io::Result<()> {
//! let server = StreamServer::bind("127.0.0.1:8000", |conn: TcpStream, _peer| {
//!     // ... serve the connection ...
//! #   drop(conn);
//! })?;
//!
//! let (mut signals, wake) = UnixStream::pair()?;
//! for sig in [SIGINT, SIGTERM] {
//!     signal_hook::low_level::pipe::register(sig, wake.try_clone()?)?;
//! }
//! let stopper = server.clone();
//! greenweave_runtime::spawn(move || {
//!     let _ = signals.read(&mut [0]); // parks until Ctrl-C or SIGTERM
//!     stopper.stop(Duration::from_secs(10)); // in-flight handlers get 10 s
//! });
//!
//! server.serve_forever() // returns once `stop` is done
//! # }
//! ```
//!
//! `signal-hook` installs its handlers with `SA_RESTART`, so blocking transfers
//! (`read`, `write`, `accept`) go on through the signal; `poll`, the sleeps and socket
//! calls with a timeout return `EINTR`, as the kernel has them do (and so do patched
//! ones: see greenweave-monkey's "Signals"; `std::thread::sleep` just sleeps the rest).
//! A second Ctrl-C during the grace period writes
//! another byte, which nobody reads (read again and call `std::process::exit` to
//! make it a hard stop). The test `runtime/tests/server_signal.rs` runs this recipe
//! in a child process and sends it a real `SIGTERM`.
//!
//! # Errors of the accept loop
//!
//! Running out of file descriptors, memory or buffers (`EMFILE`, `ENFILE`, `ENOMEM`,
//! `ENOBUFS`, and any error it does not know) is logged with the `log` crate and
//! backed off: the loop sleeps 10 ms, doubling up to 1 s while the error persists,
//! and resets after a success. Errors that concern one connection only
//! (`ECONNABORTED`, a network error the kernel passes on from the new socket) are
//! skipped. Only a listener that no longer listens (`EINVAL`) ends the loop, and
//! [`serve_forever`](StreamServer::serve_forever) returns that error.
//!
//! A panic in a handler ends that connection only: it is logged (the panic message
//! itself is printed by the panic hook, as for any greenlet) and the server goes on.

mod datagram;
mod stream;

pub use datagram::DatagramServer;
pub use stream::StreamServer;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind};
use std::time::Duration;

use crate::spawn::JoinHandle;
use crate::sync::Event;
use crate::task::Describe;
use crate::timeout::TimeoutFired;

/// Where a server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Configured, not started.
    Idle,
    /// Its loop runs.
    Running,
    /// Its loop ended by itself (a fatal error); handlers may still run.
    Dead,
    /// `stop` is in progress.
    Stopping,
    /// Stopped for good.
    Stopped,
}

/// What both servers share: name, state, the loop greenlet and its outcome.
struct Core {
    name: RefCell<String>,
    state: Cell<State>,
    /// The loop greenlet, while it may be alive.
    task: RefCell<Option<JoinHandle<()>>>,
    /// Set once the server is stopped or its loop has died: what `serve_forever` waits
    /// for.
    done: Event,
    /// The error the loop died of.
    error: RefCell<Option<io::Error>>,
}

impl Core {
    fn new(name: String) -> Core {
        Core {
            name: RefCell::new(name),
            state: Cell::new(State::Idle),
            task: RefCell::new(None),
            done: Event::new(),
            error: RefCell::new(None),
        }
    }

    fn name(&self) -> String {
        self.name.borrow().clone()
    }

    /// Panics unless the server is still being configured.
    #[track_caller]
    fn assert_idle(&self, option: &str) {
        assert!(
            self.state.get() == State::Idle,
            "greenweave: {option}() must be called before the server is started"
        );
    }

    fn is_running(&self) -> bool {
        self.state.get() == State::Running
    }

    /// The error `start` gives when the server cannot be (re)started.
    fn start_error(&self) -> Option<io::Error> {
        match self.state.get() {
            State::Idle => None,
            State::Running => Some(io::Error::other("the server is already running")),
            State::Dead | State::Stopping | State::Stopped => Some(io::Error::other(
                "the server was stopped and cannot be restarted",
            )),
        }
    }

    /// Spawns the loop greenlet ("<server name>: <what>") running `body`, and marks the
    /// server running.
    fn launch(&self, what: &str, body: impl FnOnce() + 'static) -> io::Result<()> {
        let name = format!("{}: {what}", self.name());
        let task = crate::spawn::Builder::new().name(name).try_spawn(body)?;
        *self.task.borrow_mut() = Some(task);
        self.state.set(State::Running);
        Ok(())
    }

    /// Runs the loop `body` in the loop greenlet; records how it ended.
    fn run_loop(&self, body: impl FnOnce() -> io::Result<()>) {
        let exit = LoopExit(self);
        if let Err(e) = body() {
            log::error!("{}: server loop failed: {e}", self.name());
            *self.error.borrow_mut() = Some(e);
        }
        drop(exit);
    }

    /// Blocks until the server is stopped or its loop died; returns the loop's error.
    #[track_caller]
    fn wait_done(&self) -> io::Result<()> {
        self.done.wait();
        match self.error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ends a `stop`.
    fn finish_stop(&self) {
        self.state.set(State::Stopped);
        self.done.set();
    }
}

/// Ends a `stop` when dropped, even if its greenlet is killed while it waits (so
/// `serve_forever` never waits for a stop that will not finish).
struct FinishStop<'a>(&'a Core);

impl Drop for FinishStop<'_> {
    fn drop(&mut self) {
        self.0.finish_stop();
    }
}

/// Marks the loop as ended, however its greenlet ends (return, error, or a kill that
/// did not come from `stop`, which finishes the job itself).
struct LoopExit<'a>(&'a Core);

impl Drop for LoopExit<'_> {
    fn drop(&mut self) {
        if self.0.state.get() == State::Running {
            self.0.state.set(State::Dead);
            self.0.done.set();
        }
    }
}

/// What a failed `accept`/`recv` means for the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// One connection's (or datagram's) problem: go on at once.
    Skip,
    /// Out of a resource: log, back off, try again.
    BackOff,
    /// The socket is unusable: end the loop.
    Fatal,
}

fn classify(e: &io::Error) -> Failure {
    match e.kind() {
        ErrorKind::ConnectionAborted
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionRefused
        | ErrorKind::Interrupted
        | ErrorKind::PermissionDenied
        | ErrorKind::TimedOut
        | ErrorKind::NetworkDown
        | ErrorKind::NetworkUnreachable
        | ErrorKind::HostUnreachable
        | ErrorKind::Unsupported => Failure::Skip,
        ErrorKind::InvalidInput => Failure::Fatal,
        // EMFILE, ENFILE, ENOBUFS, ENOMEM, EPROTO, and whatever else may pass.
        _ => Failure::BackOff,
    }
}

/// The sleep between retries of a resource error: 10 ms, doubling up to 1 s.
#[derive(Debug, Default)]
struct Backoff(Option<Duration>);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_millis(1000);

    fn reset(&mut self) {
        self.0 = None;
    }

    /// Logs `e` and sleeps.
    #[track_caller]
    fn sleep(&mut self, name: &str, what: &str, e: &io::Error) {
        let pause = self.0.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        self.0 = Some(pause);
        log::warn!("{name}: {what} failed: {e}; retrying in {pause:?}");
        crate::sleep(pause);
    }
}

/// The text of a panic payload, for the log.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else if payload.is::<TimeoutFired>() {
        "an uncaught Timeout"
    } else {
        "a non-string payload"
    }
}

/// A server wait, for deadlock reports.
struct Waiting<'a> {
    what: &'static str,
    name: &'a str,
}

impl Describe for Waiting<'_> {
    fn describe(&self, out: &mut String) {
        out.push_str(self.what);
        out.push_str(" of ");
        out.push_str(self.name);
    }
}
