//! `TcpStream`.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use socket2::{Protocol, SockRef, Type};

use super::addr::{ToSocketAddrs, each_addr};
use super::{
    Direction, Sock, checked_deadline, ip_socket, socket_glue, socket_timeouts, stream_io, wait,
};

/// A TCP connection whose blocking calls park the greenlet (gevent's socket,
/// `std::net::TcpStream`'s API).
///
/// `Read` and `Write` are implemented for `TcpStream` and for `&TcpStream`, so one
/// greenlet can read while another writes through a shared reference (an `Rc`). See
/// the [module docs](super) for timeouts, kills and several greenlets on one socket.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::Shutdown;
/// use std::rc::Rc;
/// use greenweave_runtime::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = Rc::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
/// let (mut server, _) = listener.accept().unwrap();
///
/// // A reader greenlet and a writer greenlet share the client socket.
/// let c = client.clone();
/// let reader = greenweave_runtime::spawn(move || {
///     let mut got = String::new();
///     (&*c).read_to_string(&mut got).unwrap();
///     got
/// });
/// (&*client).write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).unwrap();
/// server.write_all(b"pong").unwrap();
/// server.shutdown(Shutdown::Write).unwrap();
/// assert_eq!(reader.join().unwrap(), "pong");
/// ```
pub struct TcpStream {
    pub(super) sock: Sock<std::net::TcpStream>,
}

socket_glue!(TcpStream, std::net::TcpStream);
socket_timeouts!(TcpStream);

impl TcpStream {
    /// Connects to `addr`, trying each address it resolves to in turn (the first
    /// success wins, else the last error is returned). Parks until the handshake
    /// completes, which may take as long as the kernel's SYN retries (about two
    /// minutes on Linux) when nobody answers: use
    /// [`connect_timeout`](Self::connect_timeout) to bound it.
    ///
    /// # Errors
    ///
    /// As the kernel reports them: `ConnectionRefused`, `TimedOut`, unreachable
    /// networks, or a name that does not resolve.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, None, |addr| connect_one(addr, None))
    }

    /// Like [`connect`](Self::connect), giving up with `ErrorKind::TimedOut` once
    /// `timeout` has passed (resolving a name and every address tried count against
    /// it). A zero `timeout` is an `InvalidInput` error, as in std.
    #[track_caller]
    pub fn connect_timeout<A: ToSocketAddrs>(addr: A, timeout: Duration) -> io::Result<TcpStream> {
        let deadline = checked_deadline(timeout)?;
        each_addr(&addr, deadline, |addr| connect_one(addr, deadline))
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the connection is gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname` reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.local_addr()
    }

    /// Shuts down the read half, the write half or both. Greenlets parked in a read of
    /// this socket (through any handle) are woken and their read returns `Ok(0)`; after
    /// `Shutdown::Write` the peer reads end-of-file but can still send.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.io.shutdown(how)
    }

    /// Reads without removing the data from the queue, parking until some is there.
    ///
    /// # Errors
    ///
    /// As [`read`](std::io::Read::read).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(|s| s.peek(buf))
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports them.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.sock.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports them.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.sock.io.nodelay()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes dropping the socket reset the
    /// connection (the peer gets `ConnectionReset`) instead of closing it gracefully.
    /// A non-zero linger makes `close` block the thread (not just the greenlet): avoid.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports them.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(&self.sock.io).set_linger(linger)
    }

    /// The `SO_LINGER` setting.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports them.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(&self.sock.io).linger()
    }

    /// Sets the IP time-to-live of outgoing packets.
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

/// One non-blocking connect attempt, parked until it completes or `deadline` passes.
#[track_caller]
fn connect_one(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let socket = ip_socket(addr, Type::STREAM, Protocol::TCP)?;
    // Wrapped first, so the registration the handshake's wait makes is the one the
    // stream keeps.
    let conn = TcpStream {
        sock: Sock::new(std::net::TcpStream::from(socket)),
    };
    let stream = &conn.sock.io;
    let started = SockRef::from(stream).connect(&addr.into());
    if let Err(first) = started {
        // Usually EINPROGRESS (std has no stable `ErrorKind` for it) or EINTR: the
        // handshake goes on and the socket turns writable when it ends. A connect that
        // failed at once leaves a closed socket, which reports hang-up (so also ready)
        // at once; `getpeername` then tells the cases apart.
        wait(stream.as_fd(), Direction::Write, deadline).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
            } else {
                e
            }
        })?;
        if let Some(err) = stream.take_error()? {
            return Err(err);
        }
        if stream.peer_addr().is_err() {
            return Err(first);
        }
    }
    Ok(conn)
}

stream_io!(TcpStream, drains: true);
