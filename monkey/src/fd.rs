//! The per-fd state table: what kind of file each fd number refers to, which decides
//! how a hook avoids blocking on it.
//!
//! The table is a static array of one atomic byte per fd below 65 536 (larger fds are
//! classified afresh on every call, which is correct, only slower). An entry is filled
//! lazily on the first cooperative call on the fd (`fstat`, plus `getsockopt(SO_TYPE)`
//! for sockets, `isatty` for character devices) or eagerly by the hooks that make fds
//! (`socket`, `socketpair`, `accept*`, `pipe*`, `dup*`, `fcntl(F_DUPFD*)`), and is
//! dropped by `close` (and replaced by `dup2`/`dup3`), so a reused fd number is never
//! confused with the old file. The pass-through path never touches the table.
//!
//! Only the *kind* is cached. Whether the user made a file description non-blocking,
//! and its `SO_RCVTIMEO`/`SO_SNDTIMEO`, are read from the kernel (`F_GETFL`,
//! `getsockopt`) at the moment a hook would park, so changes made through another fd
//! sharing the description, through raw syscalls or by another process are always
//! seen; no `ioctl(FIONBIO)`/`setsockopt` tracking is needed.
//!
//! An entry can only go stale if an fd is closed behind the hooks' back (a raw
//! `close` syscall, glibc-internal closes such as `fclose`) and its number reused. A
//! stale entry never costs data: a stale socket entry gets `ENOTSOCK` and the fd is
//! classified again; a stale pipe or device entry reads a regular file correctly with
//! `RWF_NOWAIT`, and is classified again once epoll refuses the file; a stale *plain*
//! entry makes the real, blocking call, as an unpatched program would.

use std::sync::atomic::{AtomicU8, Ordering};

use libc::c_int;

use crate::errno::{errno, set_errno};

/// How a hook treats an fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Regular files, directories, block devices, ttys, and fds that are not open:
    /// the real call, always (epoll cannot watch regular files; ttys are left alone).
    Plain = 1,
    /// A `SOCK_STREAM` socket: per-call `MSG_DONTWAIT`; blocking sends send it all.
    Stream = 2,
    /// A `SOCK_SEQPACKET` socket: per-call `MSG_DONTWAIT`, one record per call.
    SeqPacket = 3,
    /// Any other socket (`SOCK_DGRAM`, `SOCK_RAW`, …): per-call `MSG_DONTWAIT`.
    Datagram = 4,
    /// A pipe or FIFO: `preadv2`/`pwritev2` with `RWF_NOWAIT`; blocking writes write
    /// it all.
    Fifo = 5,
    /// A pipe or FIFO whose kernel refused `RWF_NOWAIT` (named FIFOs on Linux 6.x):
    /// poll for readiness, then the real call; writes go in `PIPE_BUF` pieces, each
    /// of which a ready pipe takes without blocking.
    FifoPolled = 6,
    /// A character device that is not a tty, or an anonymous inode (eventfd,
    /// timerfd, signalfd, inotify): `RWF_NOWAIT`, one transfer per call.
    Device = 7,
    /// A device that refused `RWF_NOWAIT`: poll for readiness, then the real call.
    DevicePolled = 8,
}

impl Kind {
    /// Whether this is a socket kind.
    pub(crate) fn is_socket(self) -> bool {
        matches!(self, Kind::Stream | Kind::SeqPacket | Kind::Datagram)
    }

    /// The kind of a socket of type `ty` (as given to `socket(2)`, flags allowed).
    pub(crate) fn of_socket_type(ty: c_int) -> Kind {
        match ty & 0xf {
            libc::SOCK_STREAM => Kind::Stream,
            libc::SOCK_SEQPACKET => Kind::SeqPacket,
            _ => Kind::Datagram,
        }
    }

    fn decode(bits: u8) -> Option<Kind> {
        Some(match bits & KIND_BITS {
            1 => Kind::Plain,
            2 => Kind::Stream,
            3 => Kind::SeqPacket,
            4 => Kind::Datagram,
            5 => Kind::Fifo,
            6 => Kind::FifoPolled,
            7 => Kind::Device,
            8 => Kind::DevicePolled,
            _ => return None,
        })
    }
}

/// fds at or above this are not cached.
const TABLE_SIZE: usize = 1 << 16;
/// The bits of an entry holding the kind (0: not known).
const KIND_BITS: u8 = 0x0f;
/// Set while `connect` has made the description non-blocking for its own use.
const CONNECTING: u8 = 0x80;

static TABLE: [AtomicU8; TABLE_SIZE] = [const { AtomicU8::new(0) }; TABLE_SIZE];

fn slot(fd: c_int) -> Option<&'static AtomicU8> {
    usize::try_from(fd).ok().and_then(|i| TABLE.get(i))
}

/// The kind of `fd`, classifying it on first use. An fd that is not open comes back as
/// [`Kind::Plain`] (uncached), so the real call reports `EBADF`. Preserves `errno`.
pub(crate) fn kind(fd: c_int) -> Kind {
    let slot = slot(fd);
    if let Some(kind) = slot.and_then(|s| Kind::decode(s.load(Ordering::Relaxed))) {
        return kind;
    }
    let saved = errno();
    let found = classify(fd);
    set_errno(saved);
    match found {
        Some(kind) => {
            set(fd, kind);
            kind
        }
        None => Kind::Plain,
    }
}

/// Records that `fd` is of `kind` (keeps the connecting mark).
pub(crate) fn set(fd: c_int, kind: Kind) {
    if let Some(slot) = slot(fd) {
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some((old & CONNECTING) | kind as u8)
        });
    }
}

/// Forgets everything about `fd` (it was closed or replaced).
pub(crate) fn forget(fd: c_int) {
    if let Some(slot) = slot(fd) {
        slot.store(0, Ordering::Relaxed);
    }
}

/// `to` now refers to the same file description as `from` (a dup): copies the kind if
/// it is known, else forgets `to`.
pub(crate) fn copy(from: c_int, to: c_int) {
    let kind = slot(from).map_or(0, |s| s.load(Ordering::Relaxed) & KIND_BITS);
    if let Some(slot) = slot(to) {
        slot.store(kind, Ordering::Relaxed);
    }
}

/// Marks `fd` as made non-blocking by `connect` for the length of the call (so
/// `F_GETFL` hides the flag from everyone meanwhile).
pub(crate) fn set_connecting(fd: c_int, on: bool) {
    if let Some(slot) = slot(fd) {
        if on {
            slot.fetch_or(CONNECTING, Ordering::SeqCst);
        } else {
            slot.fetch_and(!CONNECTING, Ordering::SeqCst);
        }
    }
}

/// Whether `connect` has `fd` non-blocking for its own use right now.
pub(crate) fn is_connecting(fd: c_int) -> bool {
    slot(fd).is_some_and(|s| s.load(Ordering::SeqCst) & CONNECTING != 0)
}

/// What `fd` is, from the kernel; `None` if it is not open. May clobber `errno`.
fn classify(fd: c_int) -> Option<Kind> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; fstat is not hooked.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => {
            let mut ty: c_int = 0;
            let mut len = size_of::<c_int>() as libc::socklen_t;
            // SAFETY: `ty` and `len` are valid out-pointers of the sizes given.
            let ok = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_TYPE,
                    (&raw mut ty).cast(),
                    &mut len,
                )
            } == 0;
            if ok {
                Kind::of_socket_type(ty)
            } else {
                Kind::Plain
            }
        }
        libc::S_IFIFO => Kind::Fifo,
        // SAFETY: isatty only queries the fd (through glibc's internal ioctl).
        libc::S_IFCHR if unsafe { libc::isatty(fd) } == 1 => Kind::Plain,
        // Anonymous inodes (eventfd, timerfd, …) have no file-type bits.
        libc::S_IFCHR | 0 => Kind::Device,
        _ => Kind::Plain,
    })
}
