//! `TcpListener`.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use socket2::{Protocol, SockRef, Type};

use super::addr::{ToSocketAddrs, each_addr};
use super::{Direction, Sock, TcpStream, Until, checked_deadline, ip_socket, socket_glue};

/// The backlog of [`TcpListener::bind`].
const DEFAULT_BACKLOG: i32 = 1024;

/// A listening TCP socket whose `accept` parks the greenlet (gevent's listening
/// socket, `std::net::TcpListener`'s API).
///
/// ```
/// use greenweave_runtime::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let client = greenweave_runtime::spawn(move || TcpStream::connect(addr).unwrap());
/// let (_conn, peer) = listener.accept().unwrap(); // the client greenlet runs meanwhile
/// assert_eq!(peer, client.join().unwrap().local_addr().unwrap());
/// ```
///
/// The fd is always non-blocking: `accept` tries `accept4` and parks the greenlet
/// while no connection is queued. [`set_nonblocking(true)`](Self::set_nonblocking)
/// makes this handle's `accept` return `WouldBlock` instead.
pub struct TcpListener {
    pub(super) sock: Sock<std::net::TcpListener>,
}

socket_glue!(TcpListener, std::net::TcpListener);

impl TcpListener {
    /// Binds to `addr` (the first of its addresses that works) with `SO_REUSEADDR` and
    /// a backlog of 1024 (the kernel caps it at `net.core.somaxconn`). Port 0 picks a
    /// free port: see [`local_addr`](Self::local_addr). For another backlog or
    /// `SO_REUSEPORT`, see [`options`](Self::options).
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `PermissionDenied` for a privileged port, a name that does not
    /// resolve.
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        ListenOptions::new().bind(addr)
    }

    /// Options for binding a listener, as [`bind`](Self::bind) does by default
    /// (`File::options` in std): `TcpListener::options().backlog(64).bind(addr)`.
    pub fn options() -> ListenOptions {
        ListenOptions::new()
    }

    /// Accepts a connection, parking until one arrives.
    ///
    /// # Errors
    ///
    /// As `accept4` reports them: `ConnectionAborted` (a client gave up while queued),
    /// out of file descriptors (`EMFILE`, `ENFILE`) or memory, and `InvalidInput` once
    /// the listener was [`shut down`](Self::shutdown).
    #[track_caller]
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_until(Until::Deadline(None))
    }

    /// Like [`accept`](Self::accept), failing with `TimedOut` if no connection arrives
    /// within `timeout` (a zero `timeout` is `InvalidInput`).
    #[track_caller]
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_until(Until::Deadline(checked_deadline(timeout)?))
    }

    #[track_caller]
    fn accept_until(&self, until: Until) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.sock.run(Direction::Read, until, accept_nonblocking)?;
        Ok((
            TcpStream {
                sock: self.sock.accepted(stream)?,
            },
            peer,
        ))
    }

    /// One `accept4` attempt that never parks: `WouldBlock` when nothing is queued.
    pub(crate) fn accept_now(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.sock.try_once(Direction::Read, accept_nonblocking)?;
        Ok((
            TcpStream {
                sock: self.sock.accepted(stream)?,
            },
            peer,
        ))
    }

    /// An endless iterator of [`accept`](Self::accept)ed connections (without their
    /// addresses), as std's.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address it listens on (with the port the kernel picked for port 0).
    ///
    /// # Errors
    ///
    /// As `getsockname` reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.local_addr()
    }

    /// Stops listening (Linux): queued connections are reset, the port is released,
    /// and greenlets parked in [`accept`](Self::accept) on this socket are woken and get
    /// `InvalidInput` (`EINVAL`), as does every later `accept`. This is how a server
    /// stops a greenlet parked in `accept` from another greenlet: dropping the listener
    /// is not possible while that greenlet borrows it.
    ///
    /// # Errors
    ///
    /// As `shutdown` reports them.
    pub fn shutdown(&self) -> io::Result<()> {
        SockRef::from(&self.sock.io).shutdown(Shutdown::Both)
    }

    /// Sets the IP time-to-live of accepted connections' packets.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports them.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.io.set_ttl(ttl)
    }

    /// The IP time-to-live.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports them.
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock.io.ttl()
    }
}

/// How [`TcpListener`] binds: the listen backlog and `SO_REUSEPORT` (see
/// [`TcpListener::options`]). `SO_REUSEADDR` is always set.
///
/// ```
/// use greenweave_runtime::net::TcpListener;
///
/// // Two listeners on one port, say one per worker thread: the kernel spreads new
/// // connections over them.
/// let options = TcpListener::options().backlog(128).reuse_port(true);
/// let first = options.bind("127.0.0.1:0").unwrap();
/// let addr = first.local_addr().unwrap();
/// let second = options.bind(addr).unwrap();
/// assert_eq!(second.local_addr().unwrap(), addr);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    backlog: i32,
    reuse_port: bool,
}

impl ListenOptions {
    /// What [`TcpListener::bind`] uses: a backlog of 1024, no `SO_REUSEPORT`.
    pub fn new() -> ListenOptions {
        ListenOptions {
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
        }
    }

    /// How many connections the kernel queues while none is being accepted (default
    /// 1024; the kernel caps it at `net.core.somaxconn`).
    pub fn backlog(self, backlog: i32) -> ListenOptions {
        ListenOptions { backlog, ..self }
    }

    /// Sets `SO_REUSEPORT` (default off): several sockets, say one per worker thread,
    /// may then listen on the same port, and the kernel spreads new connections over
    /// them.
    pub fn reuse_port(self, reuse_port: bool) -> ListenOptions {
        ListenOptions { reuse_port, ..self }
    }

    /// Binds a listener to `addr` (the first of its addresses that works) with these
    /// options.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::bind`].
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(&self, addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, None, |addr| {
            let socket = ip_socket(addr, Type::STREAM, Protocol::TCP)?;
            socket.set_reuse_address(true)?;
            if self.reuse_port {
                socket.set_reuse_port(true)?;
            }
            socket.bind(&addr.into())?;
            socket.listen(self.backlog)?;
            Ok(TcpListener {
                sock: Sock::new(socket.into()),
            })
        })
    }
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions::new()
    }
}

/// The iterator of [`TcpListener::incoming`]: never returns `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    #[track_caller]
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the connection is non-blocking from
/// the start (no `ioctl` per connection).
fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    let (socket, addr) = SockRef::from(listener).accept4(flags)?;
    let addr = addr
        .as_socket()
        .ok_or_else(|| io::Error::other("accept gave an address that is not IP"))?;
    Ok((socket.into(), addr))
}
