//! `DatagramServer`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenweave_greenlet::GreenletExit;

use super::{Backoff, Core, Failure, FinishStop, State, classify, panic_text};
use crate::net::{ToSocketAddrs, UdpSocket};
use crate::spawn::Builder;

type Handler = dyn Fn(&UdpSocket, &[u8], SocketAddr);

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;

/// A UDP server calling `handler(socket, datagram, source)` for every datagram
/// (gevent's `DatagramServer`); the handler replies with `socket.send_to`.
///
/// ```
/// use std::time::Duration;
/// use greenweave_runtime::net::UdpSocket;
/// use greenweave_runtime::server::DatagramServer;
///
/// let server = DatagramServer::bind("127.0.0.1:0", |sock: &UdpSocket, data: &[u8], from| {
///     sock.send_to(&data.to_ascii_uppercase(), from).unwrap();
/// })
/// .unwrap();
/// server.start().unwrap();
///
/// let client = UdpSocket::bind("127.0.0.1:0").unwrap();
/// client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
/// client.send_to(b"hello", server.local_addr().unwrap()).unwrap();
/// let mut buf = [0; 16];
/// let (n, _) = client.recv_from(&mut buf).unwrap();
/// assert_eq!(&buf[..n], b"HELLO");
/// server.stop();
/// ```
///
/// The handler runs in the server's receive greenlet, one datagram after the other:
/// the next datagram is read once it returns, so datagrams are handled in order and
/// without a greenlet per packet. A handler that blocks (parks) holds up the server
/// meanwhile (the kernel queues what arrives, up to the socket's receive buffer);
/// spawn a greenlet from the handler for slow work. A handler panic is logged and the
/// server goes on; receive errors are handled as the stream server's accept errors
/// (see the [module docs](super)).
#[derive(Clone)]
pub struct DatagramServer {
    inner: Rc<Inner>,
}

struct Inner {
    core: Core,
    handler: Rc<Handler>,
    socket: Rc<UdpSocket>,
}

impl DatagramServer {
    /// A server on a new UDP socket bound to `addr` (bound now).
    ///
    /// # Errors
    ///
    /// What [`UdpSocket::bind`] reports.
    #[track_caller]
    pub fn bind<A, F>(addr: A, handler: F) -> io::Result<DatagramServer>
    where
        A: ToSocketAddrs,
        F: Fn(&UdpSocket, &[u8], SocketAddr) + 'static,
    {
        Ok(DatagramServer::new(UdpSocket::bind(addr)?, handler))
    }

    /// A server receiving on an existing `socket`.
    pub fn new<F>(socket: UdpSocket, handler: F) -> DatagramServer
    where
        F: Fn(&UdpSocket, &[u8], SocketAddr) + 'static,
    {
        // The loop relies on `recv_from` parking.
        let _ = socket.set_nonblocking(false);
        let name = match socket.local_addr() {
            Ok(addr) => format!("DatagramServer({addr})"),
            Err(_) => "DatagramServer".to_owned(),
        };
        DatagramServer {
            inner: Rc::new(Inner {
                core: Core::new(name),
                handler: Rc::new(handler),
                socket: Rc::new(socket),
            }),
        }
    }

    /// Names the server in logs and its greenlet; the default is
    /// `DatagramServer(ADDR)`.
    ///
    /// # Panics
    ///
    /// If the server has started.
    #[track_caller]
    pub fn name(self, name: impl Into<String>) -> DatagramServer {
        self.inner.core.assert_idle("name");
        *self.inner.core.name.borrow_mut() = name.into();
        self
    }

    /// The socket's address.
    ///
    /// # Errors
    ///
    /// As `getsockname` reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.socket.local_addr()
    }

    /// The server's socket (to send from it outside the handler).
    pub fn socket(&self) -> &UdpSocket {
        &self.inner.socket
    }

    /// Starts receiving in a new greenlet; returns at once.
    ///
    /// # Errors
    ///
    /// If the server is running or was stopped, or no greenlet can be spawned.
    #[track_caller]
    pub fn start(&self) -> io::Result<()> {
        if let Some(e) = self.inner.core.start_error() {
            return Err(e);
        }
        let inner = self.inner.clone();
        self.inner.core.launch("recv", move || {
            inner.core.run_loop(|| inner.recv_loop());
        })
    }

    /// Starts the server if needed and blocks the calling greenlet until it is
    /// stopped. If the calling greenlet unwinds meanwhile (killed, a `Timeout`), the
    /// server is stopped.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), or the error that ended the receive loop.
    #[track_caller]
    pub fn serve_forever(&self) -> io::Result<()> {
        if self.inner.core.state.get() == State::Idle {
            self.start()?;
        }
        let guard = StopOnUnwind(self);
        let result = self.inner.core.wait_done();
        std::mem::forget(guard);
        result
    }

    /// Stops the server: the receive greenlet is killed (a handler parked in it
    /// unwinds) and waited for. Called from the handler itself, it stops the server
    /// once the handler returns. The socket is closed when the last handle is
    /// dropped. Does nothing on a stopped server.
    #[track_caller]
    pub fn stop(&self) {
        let core = &self.inner.core;
        match core.state.get() {
            State::Stopping | State::Stopped => return,
            State::Idle | State::Running | State::Dead => {}
        }
        core.state.set(State::Stopping);
        let task = core.task.borrow_mut().take();
        if let Some(task) = &task {
            if task.id() == crate::hub::current_task().id() {
                // The handler stops its own server: the loop ends after it returns.
                return;
            }
        }
        let _finish = FinishStop(core);
        if let Some(task) = task {
            task.kill();
        }
    }

    /// Whether the server is receiving.
    pub fn is_running(&self) -> bool {
        self.inner.core.is_running()
    }
}

impl fmt::Debug for DatagramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramServer")
            .field("name", &self.inner.core.name())
            .field("state", &self.inner.core.state.get())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// Stops the server if `serve_forever`'s caller unwinds (stopping a datagram server
/// does not block unless called from elsewhere, so a greenlet does it).
struct StopOnUnwind<'a>(&'a DatagramServer);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        let server = self.0.clone();
        let _ = Builder::new()
            .name(format!("{}: stop", server.inner.core.name()))
            .try_spawn(move || server.stop());
    }
}

impl Inner {
    #[track_caller]
    fn recv_loop(&self) -> io::Result<()> {
        let name = self.core.name();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut backoff = Backoff::default();
        while self.core.state.get() == State::Running {
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    backoff.reset();
                    let data = &buf[..n];
                    let served = panic::catch_unwind(AssertUnwindSafe(|| {
                        (self.handler)(&self.socket, data, from);
                    }));
                    if let Err(payload) = served {
                        if payload.is::<GreenletExit>() {
                            panic::resume_unwind(payload);
                        }
                        let why = panic_text(&*payload);
                        log::error!(
                            target: crate::log_targets::NET,
                            "{name}: the handler panicked on a datagram from {from} ({why})"
                        );
                    }
                }
                Err(e) => match classify(&e) {
                    Failure::Skip => {
                        log::debug!(target: crate::log_targets::NET, "{name}: recv: {e}")
                    }
                    Failure::BackOff => backoff.sleep(&name, "recv", &e),
                    Failure::Fatal => return Err(e),
                },
            }
        }
        // Only a handler's own `stop` gets here: finish it.
        if self.core.state.get() == State::Stopping {
            self.core.finish_stop();
        }
        Ok(())
    }
}
