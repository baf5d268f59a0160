//! `UnixDatagram`.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::{Sock, socket_glue, socket_timeouts};

/// A Unix-domain datagram socket whose `recv*` and `send*` park the greenlet (std's
/// `UnixDatagram` API).
///
/// ```
/// use greenweave_runtime::net::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair().unwrap();
/// let reader = greenweave_runtime::spawn(move || {
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).unwrap(); // parks until `a` sends
///     buf[..n].to_vec()
/// });
/// a.send(b"datagram").unwrap();
/// assert_eq!(reader.join().unwrap(), b"datagram");
/// ```
///
/// A send to a receiver whose queue is full parks until it has room when the socket
/// is [`connect`](Self::connect)ed (or made by [`pair`](Self::pair)): the kernel
/// signals that. For `send_to` on an unconnected socket it cannot, so the greenlet is
/// woken and retries on every hub turn until the receiver drains its queue.
pub struct UnixDatagram {
    pub(super) sock: Sock<std::os::unix::net::UnixDatagram>,
}

socket_glue!(UnixDatagram, std::os::unix::net::UnixDatagram);
socket_timeouts!(UnixDatagram);

impl UnixDatagram {
    /// A socket bound to the file `path` (created; not removed on drop).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if `path` exists, or what `bind` reports.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::try_from(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// A socket not bound to any address (it can send, and receive replies only once
    /// connected or bound).
    ///
    /// # Errors
    ///
    /// When out of file descriptors.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::try_from(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// An unnamed pair of connected sockets.
    ///
    /// # Errors
    ///
    /// When out of file descriptors.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::try_from(a)?, UnixDatagram::try_from(b)?))
    }

    /// Sets the default destination of [`send`](Self::send) and the only source
    /// [`recv`](Self::recv) accepts.
    ///
    /// # Errors
    ///
    /// `NotFound` / `ConnectionRefused` if no socket is bound at `path`.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.sock.io.connect(path)
    }

    /// Sends a datagram to the socket bound at `path`, parking while it cannot be
    /// queued (see the type's docs).
    ///
    /// # Errors
    ///
    /// `NotFound` / `ConnectionRefused` if no socket is bound at `path`, or what
    /// `sendto` reports.
    #[track_caller]
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.sock.write(|s| s.send_to(buf, path))
    }

    /// Receives a datagram and its source, parking until one arrives.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout, or what `recvfrom` reports.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.read(|s| s.recv_from(buf))
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected`, or what `send` reports.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(|s| s.send(buf))
    }

    /// Receives a datagram, parking until one arrives.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout, or what `recv` reports.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(|s| s.recv(buf))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname` reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` if not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.peer_addr()
    }

    /// Shuts down the read half, the write half or both.
    ///
    /// # Errors
    ///
    /// As `shutdown` reports them.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.io.shutdown(how)
    }
}
