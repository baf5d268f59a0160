//! The `msghdr` side of the socket hooks: `recvmsg`/`sendmsg` continued across partial
//! transfers, and the socket side of `read`/`write`/`readv`/`writev` (see the `rw`
//! and `sock` modules for the rules).

use libc::{c_int, c_void, iovec, msghdr, ssize_t};

use greenweave_runtime::io::Direction;

use crate::fd::{Entry, Kind};
use crate::iov::{self, Cursor};
use crate::sock::{nowait, one_buffer, peek_all, real};
use crate::wait::{Amount, Call, transfer};

/// The data length of a message header (`None`: null, or iovecs the kernel rejects).
///
/// # Safety
///
/// `msg` is null or a valid message header.
pub(crate) unsafe fn msg_total(msg: *const msghdr) -> Option<usize> {
    // SAFETY: as the caller guarantees.
    let msg = unsafe { msg.as_ref() }?;
    let count = c_int::try_from(msg.msg_iovlen).ok()?;
    // SAFETY: a valid header's iovecs.
    unsafe { iov::total(msg.msg_iov, count) }
}

/// Cooperative `recvmsg` of `total` bytes.
///
/// # Safety
///
/// `msg` is a valid, writable message header whose iovecs total `total` bytes.
pub(crate) unsafe fn recvmsg_coop(
    fd: c_int,
    entry: Entry,
    msg: *mut msghdr,
    total: usize,
    flags: c_int,
) -> ssize_t {
    let mut call =
        Call::with_entry(fd, entry, Direction::Read, Some(libc::SO_RCVTIMEO)).reading_socket(flags);
    let waitall = entry.kind() == Kind::Stream && flags & libc::MSG_WAITALL != 0;
    // SAFETY: the caller's valid header.
    let once = |f| unsafe { real::recvmsg(fd, msg, flags | f) };
    if waitall && flags & libc::MSG_PEEK != 0 {
        return peek_all(&mut call, total, once);
    }
    if !waitall {
        return transfer(&mut call, total, Amount::First, |_, attempt| {
            once(nowait(attempt))
        });
    }
    // SAFETY: the caller's valid header.
    let (mut later, mut cursor) = unsafe { continuation(msg) };
    let op = |done: usize, attempt| {
        if done == 0 {
            return once(nowait(attempt));
        }
        // Linux stops a MSG_WAITALL read after control data (passed fds).
        // SAFETY: the caller's valid header.
        if unsafe { (*msg).msg_controllen } > 0 {
            return 0;
        }
        // SAFETY: the cursor walks the caller's iovecs.
        let (iov, cnt) = unsafe { cursor.at(done) };
        later.msg_iov = iov.cast_mut();
        later.msg_iovlen = cnt as _;
        // SAFETY: `later` is a valid header over the rest of the caller's buffers.
        unsafe { real::recvmsg(fd, &mut later, flags | nowait(attempt)) }
    };
    transfer(&mut call, total, Amount::All, op)
}

/// Cooperative `sendmsg` of `total` bytes.
///
/// # Safety
///
/// `msg` is a valid message header whose iovecs total `total` bytes.
pub(crate) unsafe fn sendmsg_coop(
    fd: c_int,
    entry: Entry,
    msg: *const msghdr,
    total: usize,
    flags: c_int,
) -> ssize_t {
    let mut call = Call::with_entry(fd, entry, Direction::Write, Some(libc::SO_SNDTIMEO));
    // SAFETY: the caller's valid header.
    let once = |f| unsafe { real::sendmsg(fd, msg, flags | f) };
    if entry.kind() != Kind::Stream {
        return transfer(&mut call, total, Amount::First, |_, attempt| {
            once(nowait(attempt))
        });
    }
    // SAFETY: the caller's valid header.
    let (mut later, mut cursor) = unsafe { continuation(msg) };
    // The control data went with the first bytes; the rest goes without.
    let op = |done: usize, attempt| {
        if done == 0 {
            return once(nowait(attempt));
        }
        // SAFETY: the cursor walks the caller's iovecs.
        let (iov, cnt) = unsafe { cursor.at(done) };
        later.msg_iov = iov.cast_mut();
        later.msg_iovlen = cnt as _;
        // SAFETY: `later` is a valid header over the rest of the caller's buffers.
        unsafe { real::sendmsg(fd, &later, flags | nowait(attempt)) }
    };
    transfer(&mut call, total, Amount::All, op)
}

/// Sends bytes `done..total` of a stream message whose first `done` bytes went (a
/// `sendmmsg` that stopped inside it), as a blocking send would: all of them, or the
/// progress made before an error, the socket timeout or an interrupt (-1 if none).
///
/// # Safety
///
/// `msg` is a valid message header whose iovecs total `total >= done` bytes.
pub(crate) unsafe fn sendmsg_rest(
    fd: c_int,
    msg: *const msghdr,
    done: usize,
    total: usize,
    flags: c_int,
) -> ssize_t {
    let mut call = Call::new(fd, Direction::Write, Some(libc::SO_SNDTIMEO));
    // SAFETY: the caller's valid header.
    let (mut later, mut cursor) = unsafe { continuation(msg) };
    let op = |sent: usize, attempt| {
        // SAFETY: the cursor walks the caller's iovecs; `done + sent <= total`.
        let (iov, cnt) = unsafe { cursor.at(done + sent) };
        later.msg_iov = iov.cast_mut();
        later.msg_iovlen = cnt as _;
        // SAFETY: `later` is a valid header over the rest of the caller's buffers.
        unsafe { real::sendmsg(fd, &later, flags | nowait(attempt)) }
    };
    transfer(&mut call, total - done, Amount::All, op)
}

/// A copy of `msg` for continuing a partial transfer (no control data; the caller's
/// address kept) and a cursor over its iovecs.
///
/// # Safety
///
/// `msg` is a valid message header.
unsafe fn continuation(msg: *const msghdr) -> (msghdr, Cursor) {
    // SAFETY: as the caller guarantees.
    let mut later = unsafe { std::ptr::read(msg) };
    later.msg_control = std::ptr::null_mut();
    later.msg_controllen = 0;
    later.msg_flags = 0;
    let cursor = Cursor::new(later.msg_iov, later.msg_iovlen as c_int);
    (later, cursor)
}

/// The socket side of `read`/`write`/`readv`/`writev` (see the `rw` module): `single`
/// is the caller's one buffer for `read`/`write`, else `iov` is used with
/// `recvmsg`/`sendmsg`; `extra` is added to the flags (`MSG_EOR`).
///
/// # Safety
///
/// `iov` holds `iovcnt` valid iovecs totalling `total` bytes (writable for a read).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn socket_io(
    fd: c_int,
    entry: Entry,
    iov: *const iovec,
    iovcnt: c_int,
    total: usize,
    direction: Direction,
    extra: c_int,
    single: Option<(*mut c_void, usize)>,
) -> ssize_t {
    let writing = direction == Direction::Write;
    if let Some((buf, len)) = single {
        // SAFETY: within the caller's buffer, `done <= len`.
        let op = |done: usize, f| unsafe {
            let at = buf.cast::<u8>().add(done).cast::<c_void>();
            if writing {
                real::send(fd, at, len - done, f)
            } else {
                real::recv(fd, at, len - done, f)
            }
        };
        return one_buffer(fd, entry, len, extra, direction, op);
    }
    // SAFETY: an all-zero msghdr is valid (no name, no control).
    let mut msg: msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.cast_mut();
    msg.msg_iovlen = iovcnt as _;
    if writing {
        // SAFETY: a valid header over the caller's iovecs.
        unsafe { sendmsg_coop(fd, entry, &msg, total, extra) }
    } else {
        // SAFETY: as above.
        unsafe { recvmsg_coop(fd, entry, &mut msg, total, extra) }
    }
}
