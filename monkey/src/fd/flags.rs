//! The blocking mode (`O_NONBLOCK`) and socket timeouts (`SO_RCVTIMEO`,
//! `SO_SNDTIMEO`) the user gave each fd, kept by the hooks that see them change, so
//! that a hook about to park makes no system call to learn them.
//!
//! # Where the values come from
//!
//! - The call that made the fd: `socket`, `socketpair`, `accept4` and `pipe2` say
//!   whether it is non-blocking (`SOCK_NONBLOCK`, `O_NONBLOCK`) and a new socket or
//!   pipe has no timeouts; an accepted connection has its listener's (Linux copies
//!   them).
//! - The hooks that change them: `fcntl(F_SETFL)`, `ioctl(FIONBIO)` (std's
//!   `set_nonblocking`), and `setsockopt` of `SO_RCVTIMEO`/`SO_SNDTIMEO` (std's
//!   `set_read_timeout`/`set_write_timeout`).
//! - The kernel (`F_GETFL`, `getsockopt`), asked once, the first time a hook needs a
//!   value it has no record of: an fd the hooks never saw made (inherited from the
//!   parent process, created by a raw system call or a call with no hook, such as
//!   `eventfd`).
//!
//! # Shared descriptions
//!
//! `O_NONBLOCK` belongs to the file description and the timeouts to the socket, both
//! shared by every dup of the fd. The hooks record a change under the number it was
//! made through, so an fd made by `dup`, `dup2`, `dup3` or `fcntl(F_DUPFD*)`, and the
//! fd it copies, are marked *shared*: for them the kernel is asked every time, as
//! before this table existed. In the child of a `fork` every fd is shared with the
//! parent: [`reset_after_fork`] marks them all.
//!
//! What is not seen: a change made through a number the hooks do not know shares the
//! description (a dup made by a raw system call, or inherited alongside), by another
//! process sharing it (after `fork`, `SCM_RIGHTS`), or by a raw system call. A stale
//! record changes only whether a hook parks or returns `EAGAIN`, and how long it
//! parks: every attempt a hook makes is non-blocking whatever the record says, so the
//! thread never blocks on a stale `O_NONBLOCK`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libc::c_int;

use super::{Entry, TABLE_SIZE, is_connecting, slot, update, word};
use crate::errno::{errno, set_errno};

/// The user's `O_NONBLOCK` is recorded in [`NONBLOCK`].
const NB_KNOWN: u16 = 0x0020;
/// The user's `O_NONBLOCK`.
const NONBLOCK: u16 = 0x0040;
/// `SO_RCVTIMEO` is recorded in [`RCVTIMEO`].
const RCV_KNOWN: u16 = 0x0080;
/// `SO_SNDTIMEO` is recorded in [`SNDTIMEO`].
const SND_KNOWN: u16 = 0x0100;
/// The description is shared with fds whose changes may not be recorded here: ask the
/// kernel.
pub(super) const SHARED: u16 = 0x0200;
/// What a dup inherits of its original's state bits.
const RECORDED: u16 = NB_KNOWN | NONBLOCK | RCV_KNOWN | SND_KNOWN;

/// Timeouts in microseconds, 0 for none (at least 1 for any timeout).
static RCVTIMEO: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(0) }; TABLE_SIZE];
static SNDTIMEO: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(0) }; TABLE_SIZE];

/// The value array and known-bit of a timeout option (`None` for other options).
#[inline]
fn timeout_slot(fd: c_int, option: c_int) -> Option<(&'static AtomicU64, u16)> {
    let index = usize::try_from(fd).ok().filter(|&i| i < TABLE_SIZE)?;
    match option {
        libc::SO_RCVTIMEO | SO_RCVTIMEO_NEW => Some((&RCVTIMEO[index], RCV_KNOWN)),
        libc::SO_SNDTIMEO | SO_SNDTIMEO_NEW => Some((&SNDTIMEO[index], SND_KNOWN)),
        _ => None,
    }
}

/// The 64-bit-time variants of the timeout options (`SO_RCVTIMEO_NEW`,
/// `SO_SNDTIMEO_NEW`; `struct __kernel_sock_timeval`, two `i64`s).
pub(crate) const SO_RCVTIMEO_NEW: c_int = 66;
pub(crate) const SO_SNDTIMEO_NEW: c_int = 67;

fn encode(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| {
        u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1)
    })
}

#[inline]
fn decode(micros: u64) -> Option<Duration> {
    (micros != 0).then(|| Duration::from_micros(micros))
}

/// What a hook that made an fd knows of its state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opened {
    /// A TCP stream.
    pub(crate) tcp: bool,
    /// Made with `SOCK_NONBLOCK` / `O_NONBLOCK`.
    pub(crate) nonblocking: bool,
    /// The fd whose timeouts it has (an accepted connection: its listener); `None`
    /// for none (a new socket or pipe).
    pub(crate) timeouts_of: Option<c_int>,
}

/// The state bits of a new fd `fd` (its timeouts stored).
pub(super) fn opened(fd: c_int, state: Opened) -> u16 {
    let mut bits = NB_KNOWN | if state.nonblocking { NONBLOCK } else { 0 };
    let from = state.timeouts_of.map(|of| (of, word(of)));
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let Some((slot, known)) = timeout_slot(fd, option) else {
            continue;
        };
        let value = match from {
            None => Some(0),
            // A recorded, unshared value of the listener; else unknown (asked later).
            Some((of, of_word)) if of_word & (known | SHARED) == known => {
                timeout_slot(of, option).map(|(s, _)| s.load(Ordering::Relaxed))
            }
            Some(_) => None,
        };
        if let Some(value) = value {
            slot.store(value, Ordering::Relaxed);
            bits |= known;
        }
    }
    bits
}

/// The state bits of `to`, now a dup of `from` (whose word is `from_word`): its
/// recorded state, shared; `from` is marked shared too.
pub(super) fn copied(from: c_int, from_word: u16, to: c_int) -> u16 {
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        if let (Some((src, _)), Some((dst, _))) =
            (timeout_slot(from, option), timeout_slot(to, option))
        {
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
    update(from, |old| old | SHARED);
    (from_word & RECORDED) | SHARED
}

/// Records the user's `O_NONBLOCK` on `fd` (a successful `F_SETFL` or `FIONBIO`).
pub(crate) fn set_nonblocking(fd: c_int, on: bool) {
    update(fd, |old| {
        let old = old | NB_KNOWN;
        if on { old | NONBLOCK } else { old & !NONBLOCK }
    });
}

/// Records a socket timeout `option` of `fd` (a successful `setsockopt`).
pub(crate) fn set_timeout(fd: c_int, option: c_int, timeout: Option<Duration>) {
    if let Some((slot, known)) = timeout_slot(fd, option) {
        slot.store(encode(timeout), Ordering::Relaxed);
        update(fd, |old| old | known);
    }
}

impl Entry {
    /// The user's `O_NONBLOCK` if it is recorded and the description not shared: what
    /// a hook may act on without asking the kernel.
    #[inline]
    pub(crate) fn cached_nonblocking(self) -> Option<bool> {
        (self.0 & (NB_KNOWN | SHARED) == NB_KNOWN).then_some(self.0 & NONBLOCK != 0)
    }
}

/// Whether the user made `fd`'s description non-blocking: the record, or the kernel's
/// answer (recorded unless shared). `Err(errno)` if the fd is not open.
pub(crate) fn user_nonblocking(fd: c_int) -> Result<bool, c_int> {
    if let Some(known) = Entry::recorded(fd).cached_nonblocking() {
        return Ok(known);
    }
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { crate::ctl::real::fcntl(fd, libc::F_GETFL, 0) };
    if flags < 0 {
        return Err(errno());
    }
    // While `connect` (on another thread) has the description non-blocking for
    // itself, the flag is not the user's (whose is then off: `connect` leaves a
    // user-non-blocking socket alone).
    let on = flags & libc::O_NONBLOCK != 0 && !is_connecting(fd);
    if word(fd) & SHARED == 0 {
        set_nonblocking(fd, on);
    }
    Ok(on)
}

/// `fd`'s socket timeout `option` (`SO_RCVTIMEO`/`SO_SNDTIMEO`): the record in
/// `entry` (`fd`'s, taken at the start of the call), or the kernel's answer (recorded
/// unless shared); `None` if unset (or not a socket). Preserves `errno`.
#[inline]
pub(crate) fn socket_timeout(fd: c_int, entry: Entry, option: c_int) -> Option<Duration> {
    let slot = timeout_slot(fd, option);
    if let Some((slot, known)) = slot {
        if entry.0 & (known | SHARED) == known {
            return decode(slot.load(Ordering::Relaxed));
        }
    }
    asked_timeout(fd, entry, option, slot)
}

/// [`socket_timeout`] when the entry has no usable record: asks the kernel.
#[cold]
#[inline(never)]
fn asked_timeout(
    fd: c_int,
    entry: Entry,
    option: c_int,
    slot: Option<(&'static AtomicU64, u16)>,
) -> Option<Duration> {
    let asked = kernel_timeout(fd, option);
    if let Some((slot, known)) = slot {
        if entry.0 & SHARED == 0 {
            slot.store(encode(asked), Ordering::Relaxed);
            update(fd, |old| old | known);
        }
    }
    asked
}

/// `fd`'s socket timeout from the kernel, `None` if unset (or not a socket).
fn kernel_timeout(fd: c_int, option: c_int) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    let saved = errno();
    // SAFETY: `tv` and `len` are valid out-pointers of the sizes given.
    let rc =
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, option, (&raw mut tv).cast(), &mut len) };
    set_errno(saved);
    if rc != 0 || (tv.tv_sec <= 0 && tv.tv_usec <= 0) {
        return None;
    }
    Some(Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
}

/// For the child of a `fork`: every description is now shared with the parent, so
/// every fd's state is asked of the kernel from here on (the kinds stay right).
pub(super) fn mark_all_shared() {
    for fd in 0..TABLE_SIZE as c_int {
        if let Some(slot) = slot(fd) {
            if slot.load(Ordering::Relaxed) != 0 {
                slot.fetch_or(SHARED, Ordering::Relaxed);
            }
        }
    }
}
