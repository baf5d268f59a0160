//! Cooperative sockets (gevent's `gevent.socket`): TCP, UDP and Unix-domain sockets
//! whose blocking calls park the current greenlet instead of the OS thread.
//!
//! ```
//! use std::io::{Read, Write};
//! use greenweave_runtime::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = greenweave_runtime::spawn(move || {
//!     let (mut conn, _) = listener.accept().unwrap(); // parks this greenlet only
//!     let mut buf = [0; 5];
//!     conn.read_exact(&mut buf).unwrap();
//!     conn.write_all(&buf).unwrap();
//! });
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"hello").unwrap();
//! let mut echo = [0; 5];
//! client.read_exact(&mut echo).unwrap();
//! assert_eq!(&echo, b"hello");
//! server.join().unwrap();
//! ```
//!
//! The types mirror `std::net` and `std::os::unix::net` ([`TcpListener`], [`TcpStream`],
//! [`UdpSocket`], [`UnixListener`], [`UnixStream`], [`UnixDatagram`]) and behave the same
//! from the calling greenlet's point of view; meanwhile other greenlets of the thread
//! run.
//!
//! # How they block
//!
//! Underneath, every socket is always in non-blocking mode. A call tries the system
//! call; when the kernel says `EWOULDBLOCK` it parks the greenlet until the fd is
//! readable or writable (see [`io`](crate::io)) and tries again. The fd is registered
//! with the hub at its first wait and stays registered until the handle is dropped;
//! the readiness epoll reported is kept, so a call whose last attempt found nothing
//! parks before trying again, and a read of a TCP stream shorter than its buffer counts
//! as having drained it (`net/sock.rs`). `EINTR` is retried;
//! every other error is returned as the kernel gave it.
//!
//! - **Timeouts** are the socket's own `SO_RCVTIMEO`/`SO_SNDTIMEO`, set with
//!   `set_read_timeout`/`set_write_timeout` as in std: they are shared by
//!   `try_clone`d handles, survive [`into_std`](TcpStream::into_std), and an accepted
//!   connection starts with its listener's. The handles remember what they set (read
//!   from the kernel the first time a call parks, for a socket adopted with its
//!   options), so a call that parks asks the kernel nothing; a timeout set on the fd
//!   behind the handles' back (`setsockopt` through [`AsFd`](std::os::fd::AsFd)) is not
//!   seen. A call that waits that long fails with `ErrorKind::TimedOut` (std gives
//!   `WouldBlock` or `TimedOut` depending on the platform; greenweave always gives
//!   `TimedOut`).
//! - **`set_nonblocking(true)`** makes *that handle* return `WouldBlock` instead of
//!   parking, as std's does; it is a flag of the handle, not shared with clones.
//! - **Kills and `Timeout`s** are delivered while a call is parked: it unwinds, and the
//!   socket stays usable by other greenlets.
//! - **Several greenlets on one socket**: one may read while another writes (`Read` and
//!   `Write` are implemented for `&TcpStream` and `&UnixStream`). If several read at
//!   once, each parks; all are woken on readiness and retry, one gets the data and the
//!   others park again. Interleaving of their data is whatever their calls produce.
//! - **Closing**: a socket cannot be dropped while a greenlet borrows it. To make a
//!   greenlet parked in `read` return, `shutdown(Shutdown::Both)` (or `Read`) the socket
//!   from another greenlet: the read returns `Ok(0)`. A parked `accept` is woken by
//!   [`TcpListener::shutdown`].
//!
//! # Threads
//!
//! The handles are `Send` and `Sync`: they own an fd, and a wait goes through the hub
//! of whichever thread the calling greenlet runs on. Use one socket from one thread at
//! a time, though: two threads' hubs waiting on the same fd each register it with their
//! own epoll and both work, but nothing orders them.
//!
//! # Names
//!
//! Addresses are given as anything implementing [`ToSocketAddrs`] (greenweave's own
//! trait, implemented for the same types as std's). IP literals are parsed directly;
//! host names are resolved without blocking the thread (see [`ToSocketAddrs`]).
//!
//! # Interop
//!
//! `TryFrom<std type>` switches a std socket to non-blocking mode (the only thing that
//! can fail); `into_std` switches it back to blocking. `AsFd`, `AsRawFd`, `IntoRawFd`,
//! `From<T> for OwnedFd` and (unsafe) `FromRawFd` are implemented for every type.

mod addr;
mod lookup;
mod sock;
mod tcp;
mod tcp_listener;
mod udp;
mod unix;
mod unix_datagram;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

pub use addr::ToSocketAddrs;
pub(crate) use addr::resolve_all;
pub use lookup::lookup_host;
pub use tcp::TcpStream;
pub use tcp_listener::{Incoming, ListenOptions, TcpListener};
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};
pub use unix_datagram::UnixDatagram;

use socket2::{Domain, Protocol, Socket, Type};

pub(crate) use crate::io::Direction;
use crate::io::Keep;
use crate::park::raise;
use crate::time::deadline_after;
pub(crate) use sock::Sock;

/// How long a socket call may park when the kernel says it would block.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Until {
    /// The socket's own `SO_RCVTIMEO` (reads) or `SO_SNDTIMEO` (writes), as last set
    /// through one of its handles, looked up only when the call is about to park.
    SocketTimeout,
    /// A fixed deadline (`None`: for ever).
    Deadline(Option<Instant>),
}

/// Parks until `fd` is ready in `direction` or `deadline` passes (`TimedOut`);
/// unwinds on interrupts.
#[track_caller]
pub(crate) fn wait(
    fd: BorrowedFd<'_>,
    direction: Direction,
    deadline: Option<Instant>,
) -> io::Result<()> {
    match crate::io::wait(fd.as_raw_fd(), direction, deadline, Keep::Registered) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => Err(timed_out(direction)),
        Ok(Err(e)) => Err(e),
        Err(interrupt) => raise(interrupt),
    }
}

fn timed_out(direction: Direction) -> io::Error {
    let what = match direction {
        Direction::Read => "socket read timed out",
        Direction::Write => "socket write timed out",
    };
    io::Error::new(ErrorKind::TimedOut, what)
}

/// A new non-blocking socket of type `ty` (`STREAM` or `DGRAM`) for an IP address of
/// `addr`'s family.
fn ip_socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    Socket::new(Domain::for_address(addr), ty.nonblocking(), Some(protocol))
}

/// The deadline of a `*_timeout` call, rejecting a zero duration as std does.
pub(crate) fn checked_deadline(timeout: Duration) -> io::Result<Option<Instant>> {
    if timeout.is_zero() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(deadline_after(timeout))
}

/// `AsFd`, `AsRawFd`, `IntoRawFd`, `From<T> for OwnedFd`, `FromRawFd`,
/// `TryFrom<std type>`, `into_std`, `set_nonblocking` and `Debug` for a socket type
/// wrapping `Sock<$std>` in a field `sock`.
/// `Read` and `Write` for a stream socket type and for shared references to it (so one
/// greenlet can read while another writes), all through its `Sock`'s retry loop.
/// `drains: true` (TCP) lets a read shorter than its buffer clear the read readiness.
macro_rules! stream_io {
    ($ty:ident, drains: $drains:expr) => {
        impl ::std::io::Read for &$ty {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                let len = buf.len();
                self.sock
                    .read_stream($drains, len, |mut s| ::std::io::Read::read(&mut s, buf))
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                let len = bufs.iter().map(|b| b.len()).sum();
                self.sock.read_stream($drains, len, |mut s| {
                    ::std::io::Read::read_vectored(&mut s, bufs)
                })
            }
        }

        impl ::std::io::Write for &$ty {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.sock
                    .write(|mut s| ::std::io::Write::write(&mut s, buf))
            }

            #[track_caller]
            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.sock
                    .write(|mut s| ::std::io::Write::write_vectored(&mut s, bufs))
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }

        impl ::std::io::Read for $ty {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                (&*self).read(buf)
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl ::std::io::Write for $ty {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                (&*self).write(buf)
            }

            #[track_caller]
            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use stream_io;

macro_rules! socket_glue {
    ($ty:ident, $std:ty) => {
        impl ::std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(&self.sock.io)
            }
        }

        impl ::std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                ::std::os::fd::AsRawFd::as_raw_fd(&self.sock.io)
            }
        }

        impl ::std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> ::std::os::fd::RawFd {
                ::std::os::fd::IntoRawFd::into_raw_fd(self.sock.io)
            }
        }

        impl From<$ty> for ::std::os::fd::OwnedFd {
            fn from(socket: $ty) -> ::std::os::fd::OwnedFd {
                socket.sock.io.into()
            }
        }

        #[allow(unsafe_code)]
        impl ::std::os::fd::FromRawFd for $ty {
            #[doc = concat!("Takes ownership of `fd` and switches it to non-blocking mode.")]
            ///
            /// # Safety
            ///
            #[doc = concat!("`fd` must be an open socket of the kind `", stringify!($std),
                "` wraps, owned by nobody else (it is closed when the result is dropped).")]
            /// Switching a valid fd to non-blocking mode cannot fail.
            unsafe fn from_raw_fd(fd: ::std::os::fd::RawFd) -> $ty {
                // SAFETY: the caller guarantees `fd` is an open socket of this kind that
                // we now own, which is exactly `from_raw_fd`'s contract for the std type.
                let io = unsafe { <$std as ::std::os::fd::FromRawFd>::from_raw_fd(fd) };
                let made = io.set_nonblocking(true);
                debug_assert!(made.is_ok(), "fcntl(O_NONBLOCK) failed: {made:?}");
                $ty {
                    sock: $crate::net::Sock::new(io),
                }
            }
        }

        impl TryFrom<$std> for $ty {
            type Error = ::std::io::Error;

            #[doc = concat!("Adopts a `", stringify!($std), "`, switching it to non-blocking mode (its timeouts and other options are kept).")]
            fn try_from(socket: $std) -> ::std::io::Result<$ty> {
                socket.set_nonblocking(true)?;
                Ok($ty {
                    sock: $crate::net::Sock::new(socket),
                })
            }
        }

        impl $ty {
            #[doc = concat!("The `", stringify!($std), "` underneath, switched back to blocking mode (timeouts and other options are kept).")]
            ///
            /// # Errors
            ///
            /// If the fd's mode cannot be changed (the socket is then closed).
            pub fn into_std(self) -> ::std::io::Result<$std> {
                let socket = self.sock.io;
                socket.set_nonblocking(false)?;
                Ok(socket)
            }

            /// With `true`, calls on *this handle* return `ErrorKind::WouldBlock` instead
            /// of parking the greenlet (std's non-blocking mode); `false` (the default)
            /// parks. The fd itself is always non-blocking, so clones made with
            /// `try_clone` keep their own setting.
            ///
            /// # Errors
            ///
            /// None: the `Result` mirrors std's signature.
            pub fn set_nonblocking(&self, nonblocking: bool) -> ::std::io::Result<()> {
                self.sock.set_nonblocking(nonblocking);
                Ok(())
            }

            /// A new handle to the same socket (`dup`). What is set on the socket
            /// itself (its timeouts, for one) is shared with the new handle; the
            /// [`set_nonblocking`](Self::set_nonblocking) flag belongs to each handle
            /// and starts off (parking) on the new one.
            ///
            /// # Errors
            ///
            /// When out of file descriptors.
            pub fn try_clone(&self) -> ::std::io::Result<$ty> {
                Ok($ty {
                    sock: self.sock.dup(self.sock.io.try_clone()?),
                })
            }

            /// Takes the pending socket error (`SO_ERROR`), if any.
            ///
            /// # Errors
            ///
            /// As `getsockopt` reports them.
            pub fn take_error(&self) -> ::std::io::Result<Option<::std::io::Error>> {
                self.sock.io.take_error()
            }
        }

        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.sock.io, f)
            }
        }
    };
}
pub(crate) use socket_glue;

/// The four timeout methods of the sockets that carry data ([`TcpStream`],
/// [`UdpSocket`], [`UnixStream`], [`UnixDatagram`]), as std has them.
macro_rules! socket_timeouts {
    ($ty:ident) => {
        impl $ty {
            /// Sets `SO_RCVTIMEO`: how long a read or receive may park before failing
            /// with `TimedOut` (`None`: for ever). Shared with `try_clone`d handles.
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a zero duration, as in std.
            pub fn set_read_timeout(
                &self,
                timeout: Option<::std::time::Duration>,
            ) -> ::std::io::Result<()> {
                self.sock.set_timeout($crate::net::Direction::Read, timeout)
            }

            /// Sets `SO_SNDTIMEO`: how long a write or send may park before failing
            /// with `TimedOut` (`None`: for ever). Shared with `try_clone`d handles.
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a zero duration, as in std.
            pub fn set_write_timeout(
                &self,
                timeout: Option<::std::time::Duration>,
            ) -> ::std::io::Result<()> {
                self.sock
                    .set_timeout($crate::net::Direction::Write, timeout)
            }

            /// The read timeout.
            ///
            /// # Errors
            ///
            /// As `getsockopt` reports them.
            pub fn read_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
                self.sock.io.read_timeout()
            }

            /// The write timeout.
            ///
            /// # Errors
            ///
            /// As `getsockopt` reports them.
            pub fn write_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
                self.sock.io.write_timeout()
            }
        }
    };
}
pub(crate) use socket_timeouts;
