//! `UnixListener` and `UnixStream`.

use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use super::{Direction, Sock, Until, socket_glue, socket_timeouts, stream_io};

/// A Unix-domain stream socket whose blocking calls park the greenlet (std's
/// `UnixStream` API). `Read` and `Write` are implemented for `UnixStream` and
/// `&UnixStream`.
///
/// ```
/// use std::io::{Read, Write};
/// use greenweave_runtime::net::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// let echo = greenweave_runtime::spawn(move || {
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).unwrap(); // parks until `a` writes
///     b.write_all(&buf).unwrap();
/// });
/// a.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// a.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// echo.join().unwrap();
/// ```
pub struct UnixStream {
    pub(super) sock: Sock<std::os::unix::net::UnixStream>,
}

socket_glue!(UnixStream, std::os::unix::net::UnixStream);
socket_timeouts!(UnixStream);

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// A Unix-domain connect completes at once or fails, except when the listener's
    /// backlog is full: the kernel then says `EAGAIN` and offers nothing to wait on, so
    /// the greenlet sleeps (1 ms, doubling up to 64 ms) and tries again until the
    /// listener makes room.
    ///
    /// # Errors
    ///
    /// `NotFound` if nothing is at `path`, `ConnectionRefused` if nobody listens there.
    #[track_caller]
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let mut pause = Duration::from_millis(1);
        loop {
            match socket.connect(&addr) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    crate::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(64));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(UnixStream {
            sock: Sock::new(socket.into()),
        })
    }

    /// An unnamed pair of connected sockets.
    ///
    /// # Errors
    ///
    /// When out of file descriptors.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::try_from(a)?, UnixStream::try_from(b)?))
    }

    /// The local address (unnamed for a connecting socket).
    ///
    /// # Errors
    ///
    /// As `getsockname` reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As `getpeername` reports them.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.peer_addr()
    }

    /// Shuts down the read half, the write half or both; greenlets parked in a read of
    /// this socket are woken and read `Ok(0)`.
    ///
    /// # Errors
    ///
    /// As `shutdown` reports them.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.io.shutdown(how)
    }
}

stream_io!(UnixStream, drains: false);

/// A listening Unix-domain socket whose `accept` parks the greenlet (std's
/// `UnixListener` API).
///
/// ```
/// use greenweave_runtime::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("gw-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("sock");
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path).unwrap();
/// let p = path.clone();
/// let client = greenweave_runtime::spawn(move || UnixStream::connect(p).unwrap());
/// let (_conn, _addr) = listener.accept().unwrap();
/// client.join().unwrap();
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct UnixListener {
    pub(super) sock: Sock<std::os::unix::net::UnixListener>,
}

socket_glue!(UnixListener, std::os::unix::net::UnixListener);

impl UnixListener {
    /// Creates the socket file at `path` and listens on it (the file is not removed
    /// when the listener is dropped, as with std).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if `path` exists, or what `bind` reports.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::try_from(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Accepts a connection, parking until one arrives.
    ///
    /// # Errors
    ///
    /// As `accept4` reports them (out of file descriptors, ...).
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self
            .sock
            .run(Direction::Read, Until::Deadline(None), |l| l.accept())?;
        stream.set_nonblocking(true)?;
        Ok((
            UnixStream {
                sock: self.sock.accepted(stream)?,
            },
            addr,
        ))
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// As `getsockname` reports them.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io.local_addr()
    }
}

/// The iterator of [`UnixListener::incoming`]: never returns `None`.
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    #[track_caller]
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}
