//! `read`, `write`, `readv`, `writev`.
//!
//! What a cooperative call does depends on the fd's [kind](crate::fd::Kind):
//!
//! - **Sockets** go through the socket hooks' paths: `read` is `recv(fd, buf, n, 0)`,
//!   `readv` is `recvmsg`, `write` is `send` (with `MSG_EOR` on a `SOCK_SEQPACKET`
//!   socket, as the kernel's `write` adds), `writev` is `sendmsg`, each made
//!   non-blocking per call with `MSG_DONTWAIT`; the kernel treats these pairs alike.
//!   Zero-length calls pass straight through (a zero-length `read` on a datagram
//!   socket returns 0 at once, where `recv` would wait for and eat a datagram).
//! - **Pipes, FIFOs, non-tty character devices and anonymous inodes** (eventfd,
//!   timerfd, …) are tried with `preadv2`/`pwritev2(…, -1, RWF_NOWAIT)`: the same call
//!   at the current position, failing with `EAGAIN` instead of blocking, for this call
//!   only (other users of the file description see nothing). If the kernel refuses
//!   `RWF_NOWAIT` for the file (`EOPNOTSUPP`: named FIFOs on Linux 6.x, old kernels)
//!   the fd is remembered as *polled*: the hook polls it with a zero timeout and makes
//!   the real call only once it is ready, which a ready fd with a single reader or
//!   writer serves without blocking; writes to a polled FIFO go in `PIPE_BUF`-sized
//!   pieces, each of which a writable pipe takes whole.
//! - **Regular files, directories, block devices and ttys** pass through.
//! - **The standard streams, fds 0, 1 and 2, always pass through**, whatever they
//!   refer to (see below).
//!
//! A blocking write to a pipe or stream socket transfers everything before it
//! returns, as the kernel's does; reads return as soon as anything is there.
//!
//! # Why stdio never parks
//!
//! std writes `print!`/`println!` while holding stdout's lock, a *reentrant* lock owned
//! by the OS thread, with a `RefCell` borrow of the buffer held across the `write`
//! (stderr likewise). Were that `write` to park on a full pipe, the next greenlet of
//! the same thread to print would re-enter the lock (same thread, so it is granted)
//! and panic with `RefCell already borrowed`. glibc's `FILE` locks (`printf`,
//! `fgets(stdin)`) are recursive and thread-owned too, and a second greenlet would
//! corrupt the stream's buffer instead. The lock is not ours to take over, and
//! everyone holding it is on the same thread, so the only sound choice is never to
//! park inside it: `read`, `write`, `readv` and `writev` on fds 0, 1 and 2 make the
//! real call. The cost: while a slow reader drains a full stdout pipe (`prog | less`,
//! a supervisor's log pipe), the whole thread waits, as without patching.
//!
//! Reads from stdin pass through as well. glibc's `stdin` `FILE` lock (`fgets`,
//! `scanf`) is recursive and thread-owned, like stdout's: a second greenlet would
//! re-enter it and corrupt the buffer under a parked reader. std's `Stdin` is a
//! `Mutex<BufReader>` held across the `read`: a parked reader would make every other
//! greenlet of the thread that touches stdin wait on that mutex, sound only while
//! futex waits are cooperative too ([`Area::Threads`](crate::Area::Threads)), a
//! thread-wide deadlock otherwise. To read stdin without stalling the thread, wait for
//! it first: `greenweave_runtime::io::wait_readable(0, None)` (or a `poll` on fd 0,
//! which is cooperative), then read; with a single reader of a pipe the read finds
//! data.
//!
//! The rule is by fd number, not by file: a `dup` of stdout is an ordinary pipe or
//! socket fd and parks as usual (nothing of std's holds a lock over it). `recv`/`send`
//! on fds 0–2 (a socket handed over as stdio, used as a socket) stay cooperative:
//! neither std's nor glibc's stdio makes those calls.

use libc::{c_int, c_void, iovec, size_t, ssize_t};

use greenweave_runtime::io::Direction;

use crate::errno::{errno, preserving_errno, set_errno};
use crate::fd::{self, Kind};
use crate::iov::{self, Cursor};
use crate::msg;
use crate::poll::ready;
use crate::wait::{Amount, Attempt, Call, cooperative_socket, transfer};

/// The real functions.
pub mod real {
    use libc::{c_int, c_void, iovec, size_t, ssize_t};

    crate::real::real_fns! {
        /// libc's `read`.
        fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
        /// libc's `write`.
        fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t;
        /// libc's `readv`.
        fn readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t;
        /// libc's `writev`.
        fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    read as *const (),
    write as *const (),
    readv as *const (),
    writev as *const (),
];

/// Whether `fd` is one of the standard streams, which never park (see the module docs).
#[inline]
fn is_stdio(fd: c_int) -> bool {
    (0..=2).contains(&fd)
}

/// The most a pipe takes atomically, and so without blocking once it is writable.
const PIPE_BUF: usize = libc::PIPE_BUF;

/// Hook for `read(2)`.
///
/// # Safety
///
/// As `read(2)`: `buf` is writable for `count` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    if is_stdio(fd) || count == 0 || !cooperative_socket() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::read(fd, buf, count) };
    }
    let iov = iovec {
        iov_base: buf,
        iov_len: count,
    };
    // SAFETY: one iovec describing the caller's buffer.
    preserving_errno(|| unsafe {
        transfer_coop(fd, &iov, 1, count, Direction::Read, Some((buf, count)))
    })
}

/// Hook for `write(2)`. A blocking write to a pipe or stream socket writes it all.
///
/// # Safety
///
/// As `write(2)`: `buf` is readable for `count` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if is_stdio(fd) || count == 0 || !cooperative_socket() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::write(fd, buf, count) };
    }
    let iov = iovec {
        iov_base: buf.cast_mut(),
        iov_len: count,
    };
    // SAFETY: one iovec describing the caller's buffer (only read from).
    preserving_errno(|| unsafe {
        transfer_coop(
            fd,
            &iov,
            1,
            count,
            Direction::Write,
            Some((buf.cast_mut(), count)),
        )
    })
}

/// Hook for `readv(2)`.
///
/// # Safety
///
/// As `readv(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    let coop = !is_stdio(fd) && cooperative_socket();
    // SAFETY: `iov` holds `iovcnt` iovecs, as the caller guarantees.
    let total = match coop.then(|| unsafe { iov::total(iov, iovcnt) }) {
        Some(Some(total)) if total > 0 => total,
        // SAFETY: the caller's arguments, passed on unchanged.
        _ => return unsafe { real::readv(fd, iov, iovcnt) },
    };
    // SAFETY: as above.
    preserving_errno(|| unsafe { transfer_coop(fd, iov, iovcnt, total, Direction::Read, None) })
}

/// Hook for `writev(2)`. A blocking write to a pipe or stream socket writes it all.
///
/// # Safety
///
/// As `writev(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    let coop = !is_stdio(fd) && cooperative_socket();
    // SAFETY: `iov` holds `iovcnt` iovecs, as the caller guarantees.
    let total = match coop.then(|| unsafe { iov::total(iov, iovcnt) }) {
        Some(Some(total)) if total > 0 => total,
        // SAFETY: the caller's arguments, passed on unchanged.
        _ => return unsafe { real::writev(fd, iov, iovcnt) },
    };
    // SAFETY: as above.
    preserving_errno(|| unsafe { transfer_coop(fd, iov, iovcnt, total, Direction::Write, None) })
}

/// The cooperative read or write of `total > 0` bytes described by `iov`; `single` is
/// the caller's one buffer for `read`/`write` (so the real call made is the one the
/// caller made).
///
/// # Safety
///
/// `iov` holds `iovcnt` valid iovecs totalling `total` bytes, writable for a read.
unsafe fn transfer_coop(
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    total: usize,
    direction: Direction,
    single: Option<(*mut c_void, usize)>,
) -> ssize_t {
    let writing = direction == Direction::Write;
    // SAFETY: the caller's buffers and iovecs, as guaranteed.
    let real_call = |iov: *const iovec, cnt: c_int| unsafe {
        match (single, writing) {
            (Some((buf, n)), false) => real::read(fd, buf, n),
            (Some((buf, n)), true) => real::write(fd, buf, n),
            (None, false) => real::readv(fd, iov, cnt),
            (None, true) => real::writev(fd, iov, cnt),
        }
    };
    for _ in 0..2 {
        let entry = fd::entry(fd);
        let kind = entry.kind();
        let n = match kind {
            Kind::Plain => return real_call(iov, iovcnt),
            Kind::Stream | Kind::SeqPacket | Kind::Datagram => {
                let eor = if kind == Kind::SeqPacket && writing {
                    libc::MSG_EOR
                } else {
                    0
                };
                // SAFETY: as above.
                unsafe { msg::socket_io(fd, entry, iov, iovcnt, total, direction, eor, single) }
            }
            // SAFETY: as above.
            Kind::Fifo | Kind::Device => unsafe { nowait(fd, kind, iov, iovcnt, total, direction) },
            // SAFETY: as above.
            Kind::FifoPolled | Kind::DevicePolled => unsafe {
                polled(fd, kind, iov, iovcnt, total, direction)
            },
        };
        match (n, errno()) {
            // The entry was stale (the fd was closed behind the hooks' back and its
            // number reused): classify again.
            (-1, libc::ENOTSOCK) if kind.is_socket() => fd::stale(fd),
            // The kernel has no RWF_NOWAIT for this file: poll it from now on.
            (-1, libc::EOPNOTSUPP) if matches!(kind, Kind::Fifo | Kind::Device) => {
                let polled = if kind == Kind::Fifo {
                    Kind::FifoPolled
                } else {
                    Kind::DevicePolled
                };
                fd::set(fd, polled);
            }
            _ => return n,
        }
    }
    real_call(iov, iovcnt)
}

/// A pipe or device with `RWF_NOWAIT`: `preadv2`/`pwritev2` at the current position.
///
/// # Safety
///
/// As [`transfer_coop`].
unsafe fn nowait(
    fd: c_int,
    kind: Kind,
    iov: *const iovec,
    iovcnt: c_int,
    total: usize,
    direction: Direction,
) -> ssize_t {
    let writing = direction == Direction::Write;
    let mut call = Call::new(fd, direction, None);
    let mut cursor = Cursor::new(iov, iovcnt);
    // SAFETY: the cursor walks the caller's valid iovecs.
    let op = |done, attempt| unsafe {
        let (iov, cnt) = cursor.at(done);
        match (attempt, writing) {
            (Attempt::NonBlocking, true) => libc::pwritev2(fd, iov, cnt, -1, libc::RWF_NOWAIT),
            (Attempt::NonBlocking, false) => libc::preadv2(fd, iov, cnt, -1, libc::RWF_NOWAIT),
            // epoll refused the file: the entry may be stale (see `fd`), so ask again
            // next time.
            (Attempt::Blocking, _) => {
                fd::stale(fd);
                if writing {
                    real::writev(fd, iov, cnt)
                } else {
                    real::readv(fd, iov, cnt)
                }
            }
        }
    };
    // A blocking pipe write writes everything; device writes are one transfer.
    let amount = if writing && kind == Kind::Fifo {
        Amount::All
    } else {
        Amount::First
    };
    transfer(&mut call, total, amount, op)
}

/// A pipe or device without `RWF_NOWAIT`: poll with a zero timeout, then the real call.
///
/// # Safety
///
/// As [`transfer_coop`].
unsafe fn polled(
    fd: c_int,
    kind: Kind,
    iov: *const iovec,
    iovcnt: c_int,
    total: usize,
    direction: Direction,
) -> ssize_t {
    let writing = direction == Direction::Write;
    let mut call = Call::new(fd, direction, None);
    let fifo_write = writing && kind == Kind::FifoPolled;
    let events = if writing { libc::POLLOUT } else { libc::POLLIN };
    let mut cursor = Cursor::new(iov, iovcnt);
    let mut scratch = Vec::new();
    // SAFETY: the cursor walks the caller's valid iovecs.
    let op = |done, attempt| unsafe {
        if attempt == Attempt::NonBlocking && !ready(fd, events) {
            set_errno(libc::EAGAIN);
            return -1;
        }
        if !writing {
            let (iov, cnt) = cursor.at(done);
            return real::readv(fd, iov, cnt);
        }
        // At most PIPE_BUF bytes, which a writable pipe takes without blocking.
        let (iov, cnt) = if fifo_write && attempt == Attempt::NonBlocking {
            cursor.limited(done, PIPE_BUF, &mut scratch)
        } else {
            cursor.at(done)
        };
        real::writev(fd, iov, cnt)
    };
    let amount = if fifo_write {
        Amount::All
    } else {
        Amount::First
    };
    transfer(&mut call, total, amount, op)
}
