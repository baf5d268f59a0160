//! The per-fd state table: what kind of file each fd number refers to, which decides
//! how a hook avoids blocking on it, and (see [`flags`]) the blocking mode and socket
//! timeouts the user gave it.
//!
//! The table is a static array of one atomic word per fd below 65 536 (larger fds are
//! classified afresh on every call and their state asked of the kernel, which is
//! correct, only slower). An entry is filled lazily on the first cooperative call on
//! the fd (`fstat`, plus `getsockopt(SO_TYPE)` and `SO_DOMAIN` for sockets, `isatty`
//! for character devices) or eagerly by the hooks that make fds (`socket`,
//! `socketpair`, `accept*`, `pipe*`, `dup*`, `fcntl(F_DUPFD*)`), and is dropped by
//! `close` (and replaced by `dup2`/`dup3`), so a reused fd number is never confused
//! with the old file. The pass-through path never touches the table.
//!
//! A cooperative call reads its fd's word once, at its start ([`Entry`]), and works
//! from that snapshot for the rest of the call, as the kernel fixes a call's blocking
//! mode and timeout when it starts; a change made meanwhile applies from the next
//! call.
//!
//! Every hook that hands out an fd number, or closes one, also reports it to the
//! runtime ([`notify_closed`](greenweave_runtime::coop::notify_closed)), which retires
//! any epoll registration a hub still keeps for the number (see
//! `greenweave_runtime::io`).
//!
//! An entry can only go stale if an fd is closed behind the hooks' back (a raw
//! `close` syscall, glibc-internal closes such as `fclose`) and its number reused by a
//! call no hook sees either. A stale kind never costs data: a stale socket entry gets
//! `ENOTSOCK` and the fd is classified again (and its registration retired); a stale
//! pipe or device entry reads a regular file correctly with `RWF_NOWAIT`, and is
//! classified again once epoll refuses the file; a stale *plain* entry makes the real,
//! blocking call, as an unpatched program would. A stale blocking mode or timeout
//! changes only whether a call parks and for how long (see [`flags`]).

mod flags;

pub(crate) use flags::{
    Opened, SO_RCVTIMEO_NEW, SO_SNDTIMEO_NEW, set_nonblocking, set_timeout, socket_timeout,
    user_nonblocking,
};

use std::sync::atomic::{AtomicU16, Ordering};

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

    #[inline]
    fn decode(bits: u16) -> Option<Kind> {
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
const KIND_BITS: u16 = 0x000f;
/// A TCP stream (`AF_INET`/`AF_INET6`, `SOCK_STREAM`): a read that returns less than
/// asked has drained the socket.
const TCP: u16 = 0x0010;
/// Set while `connect` has made the description non-blocking for its own use.
const CONNECTING: u16 = 0x8000;

/// One word per fd: the kind, [`TCP`], [`CONNECTING`] and the bits of [`flags`].
static TABLE: [AtomicU16; TABLE_SIZE] = [const { AtomicU16::new(0) }; TABLE_SIZE];

#[inline]
fn slot(fd: c_int) -> Option<&'static AtomicU16> {
    usize::try_from(fd).ok().and_then(|i| TABLE.get(i))
}

/// `fd`'s word (0 for an fd out of the table's range).
#[inline]
fn word(fd: c_int) -> u16 {
    slot(fd).map_or(0, |s| s.load(Ordering::Relaxed))
}

/// Changes `fd`'s word (nothing for an fd out of range).
fn update(fd: c_int, f: impl Fn(u16) -> u16) {
    if let Some(slot) = slot(fd) {
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| Some(f(old)));
    }
}

/// What the table says of one fd, read with one load: its kind, whether it is a TCP
/// stream, and the recorded state of [`flags`]. A hook takes one at its start and
/// works from it for the rest of the call, as the kernel fixes a call's blocking mode
/// and timeout when the call starts; nothing it holds goes stale in a way that costs
/// more than a stale table entry does (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry(u16);

impl Entry {
    /// `fd`'s entry as recorded, without classifying it (kind [`Kind::Plain`] if not
    /// known).
    #[inline]
    pub(crate) fn recorded(fd: c_int) -> Entry {
        Entry(word(fd))
    }

    /// The kind ([`Kind::Plain`] if not known: an fd that is not open).
    #[inline]
    pub(crate) fn kind(self) -> Kind {
        Kind::decode(self.0).unwrap_or(Kind::Plain)
    }

    /// Whether the fd is a TCP stream (see [`TCP`]).
    #[inline]
    pub(crate) fn is_tcp(self) -> bool {
        self.0 & TCP != 0
    }
}

/// `fd`'s entry, its kind classified on first use (see [`kind`]). Preserves `errno`.
#[inline]
pub(crate) fn entry(fd: c_int) -> Entry {
    let found = Entry::recorded(fd);
    if found.0 & KIND_BITS != 0 {
        return found;
    }
    classified(fd)
}

/// The kind of `fd`, classifying it on first use. An fd that is not open comes back as
/// [`Kind::Plain`] (uncached), so the real call reports `EBADF`. Preserves `errno`.
#[inline]
pub(crate) fn kind(fd: c_int) -> Kind {
    entry(fd).kind()
}

/// [`entry`] for an fd whose kind is not recorded: asks the kernel, and records the
/// answer (an fd out of the table's range gets it for this call only).
#[cold]
#[inline(never)]
fn classified(fd: c_int) -> Entry {
    let saved = errno();
    let found = classify(fd);
    set_errno(saved);
    match found {
        Some((kind, tcp)) => {
            let bits = kind as u16 | tcp_bit(tcp);
            update(fd, |old| (old & !(KIND_BITS | TCP)) | bits);
            Entry((word(fd) & !(KIND_BITS | TCP)) | bits)
        }
        None => Entry(Kind::Plain as u16),
    }
}

fn tcp_bit(tcp: bool) -> u16 {
    if tcp { TCP } else { 0 }
}

/// Records that `fd` is of `kind` (a re-classification: keeps everything else).
pub(crate) fn set(fd: c_int, kind: Kind) {
    update(fd, |old| (old & !KIND_BITS) | kind as u16);
}

/// A hook just made `fd`, a new file description (`socket`, `socketpair`, `accept*`,
/// `pipe*`): records what it is; its number may have named another file whose close
/// nobody reported, whose registrations the runtime retires.
pub(crate) fn opened(fd: c_int, kind: Kind, state: Opened) {
    record(fd, kind as u16, state);
}

/// Fills in the entry of `fd`, a new file description of the kind in `kind_bits` (0
/// for not known yet).
fn record(fd: c_int, kind_bits: u16, state: Opened) {
    reported_new(fd);
    if let Some(slot) = slot(fd) {
        let word = kind_bits | tcp_bit(state.tcp) | flags::opened(fd, state);
        slot.store(word, Ordering::Relaxed);
    }
}

/// `new` is a connection `accept*` took from `listener`: its kind, TCP-ness and
/// timeouts are the listener's, its blocking mode the `SOCK_NONBLOCK` given.
pub(crate) fn accepted(listener: c_int, new: c_int, nonblocking: bool) {
    let from = word(listener);
    let state = Opened {
        tcp: from & TCP != 0,
        nonblocking,
        timeouts_of: Some(listener),
    };
    record(new, from & KIND_BITS, state);
}

/// Forgets everything about `fd` (it was closed, or replaced behind the hooks' back).
pub(crate) fn forget(fd: c_int) {
    if let Some(slot) = slot(fd) {
        slot.store(0, Ordering::Relaxed);
    }
}

/// `to` now refers to the same file description as `from` (a dup): it gets the kind
/// and state of `from`, and both are marked shared (see [`flags`]).
pub(crate) fn copy(from: c_int, to: c_int) {
    reported_new(to);
    let from_word = word(from);
    let Some(slot) = slot(to) else { return };
    slot.store(
        flags::copied(from, from_word, to) | (from_word & (KIND_BITS | TCP)),
        Ordering::Relaxed,
    );
}

/// A call found `fd`'s entry stale (closed and reused behind the hooks' back): forgets
/// it, and has the runtime retire the old file's registrations.
pub(crate) fn stale(fd: c_int) {
    forget(fd);
    reported_new(fd);
}

/// Tells the runtime that `fd` names a new file now.
fn reported_new(fd: c_int) {
    greenweave_runtime::coop::notify_closed(fd);
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

/// The child reset of a `fork` (run by `state::after_fork`): every description is shared with
/// the parent, so every recorded blocking mode and timeout is asked of the kernel from
/// then on (see [`flags`]), and no `connect` of another thread is in progress any
/// more. The kinds stay right: the fds are the same files.
pub(crate) fn reset_after_fork() {
    flags::mark_all_shared();
    for slot in &TABLE {
        slot.fetch_and(!CONNECTING, Ordering::Relaxed);
    }
}

/// Whether `connect` has `fd` non-blocking for its own use right now.
pub(crate) fn is_connecting(fd: c_int) -> bool {
    slot(fd).is_some_and(|s| s.load(Ordering::SeqCst) & CONNECTING != 0)
}

/// What `fd` is, from the kernel, and whether it is a TCP stream; `None` if it is not
/// open. May clobber `errno`.
fn classify(fd: c_int) -> Option<(Kind, bool)> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; fstat is not hooked.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => match (
            int_option(fd, libc::SO_TYPE),
            int_option(fd, libc::SO_DOMAIN),
        ) {
            (Some(ty), domain) => {
                let kind = Kind::of_socket_type(ty);
                let inet = matches!(domain, Some(libc::AF_INET | libc::AF_INET6));
                (kind, inet && kind == Kind::Stream)
            }
            (None, _) => (Kind::Plain, false),
        },
        libc::S_IFIFO => (Kind::Fifo, false),
        // SAFETY: isatty only queries the fd (through glibc's internal ioctl).
        libc::S_IFCHR if unsafe { libc::isatty(fd) } == 1 => (Kind::Plain, false),
        // Anonymous inodes (eventfd, timerfd, …) have no file-type bits.
        libc::S_IFCHR | 0 => (Kind::Device, false),
        _ => (Kind::Plain, false),
    })
}

/// An integer `SOL_SOCKET` option of `fd`.
fn int_option(fd: c_int, option: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid out-pointers of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}
