//! `UdpSocket`.

use std::io;
use std::net::SocketAddr;

use socket2::{Protocol, Type};

use super::addr::{ToSocketAddrs, each_addr, first_addr};
use super::{Sock, ip_socket, socket_glue, socket_timeouts};

/// A UDP socket whose `recv*` and `send*` park the greenlet (std's `UdpSocket` API).
///
/// ```
/// use std::time::Duration;
/// use greenweave_runtime::net::UdpSocket;
///
/// let server = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let addr = server.local_addr().unwrap();
/// let echo = greenweave_runtime::spawn(move || {
///     let mut buf = [0; 1500];
///     let (n, from) = server.recv_from(&mut buf).unwrap(); // parks this greenlet
///     server.send_to(&buf[..n], from).unwrap();
/// });
/// let client = UdpSocket::bind("127.0.0.1:0").unwrap();
/// client.connect(addr).unwrap();
/// client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
/// client.send(b"marco").unwrap();
/// let mut buf = [0; 16];
/// let n = client.recv(&mut buf).unwrap();
/// assert_eq!(&buf[..n], b"marco");
/// echo.join().unwrap();
/// ```
pub struct UdpSocket {
    pub(super) sock: Sock<std::net::UdpSocket>,
}

socket_glue!(UdpSocket, std::net::UdpSocket);
socket_timeouts!(UdpSocket);

impl UdpSocket {
    /// Binds to `addr` (the first of its addresses that works).
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `PermissionDenied`, a name that does not resolve.
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, None, |addr| {
            let socket = ip_socket(addr, Type::DGRAM, Protocol::UDP)?;
            socket.bind(&addr.into())?;
            Ok(UdpSocket {
                sock: Sock::new(socket.into()),
            })
        })
    }

    /// Sets the default destination of [`send`](Self::send) and the only source
    /// [`recv`](Self::recv) accepts (the first of `addr`'s addresses that works).
    ///
    /// # Errors
    ///
    /// A name that does not resolve, or what `connect` reports.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, None, |addr| self.sock.io.connect(addr))
    }

    /// Sends a datagram to `addr` (its first address), parking while the send buffer
    /// is full; returns the bytes sent.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `addr` resolves to nothing, or what `sendto` reports.
    #[track_caller]
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = first_addr(&addr)?;
        self.sock.write(|s| s.send_to(buf, addr))
    }

    /// Receives a datagram, parking until one arrives; returns its length (truncated
    /// to `buf`) and its source.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout, or what `recvfrom` reports.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.read(|s| s.recv_from(buf))
    }

    /// Like [`recv_from`](Self::recv_from), leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](Self::recv_from).
    #[track_caller]
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.read(|s| s.peek_from(buf))
    }

    /// Sends to the [`connect`](Self::connect)ed address.
    ///
    /// # Errors
    ///
    /// `NotConnected`, `ConnectionRefused` (an earlier datagram bounced), or what
    /// `send` reports.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(|s| s.send(buf))
    }

    /// Receives from the [`connect`](Self::connect)ed address, parking until a datagram
    /// arrives.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout, `ConnectionRefused` (an earlier datagram
    /// bounced), or what `recv` reports.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(|s| s.recv(buf))
    }

    /// Like [`recv`](Self::recv), leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(|s| s.peek(buf))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname` reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.local_addr()
    }

    /// The [`connect`](Self::connect)ed address.
    ///
    /// # Errors
    ///
    /// `NotConnected` if not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports them.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.sock.io.set_broadcast(broadcast)
    }

    /// Whether `SO_BROADCAST` is set.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports them.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.sock.io.broadcast()
    }

    /// Sets the IP time-to-live of outgoing datagrams.
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
