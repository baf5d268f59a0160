//! The hub's fd registrations: one epoll registration per fd, kept for the fd's life,
//! with the readiness epoll reported (see the [module docs](super) for the rules).
//!
//! # Generations and epochs
//!
//! Two counters keep a registration from ever serving another file:
//!
//! - Every registration gets a **generation** from its hub, carried in its epoll token
//!   with the fd number. An event whose token is not the current entry's (a file closed
//!   while a dup kept it registered, then its number reused) is ignored.
//! - Every fd number has a process-wide **epoch** (an atomic per number, hashed into
//!   65,536 slots), bumped by [`notify_closed`](super::notify_closed): by the monkey
//!   layer's `close`/`dup2`/`dup3` hooks and fd-creating hooks, and by the net types
//!   when they adopt or drop an fd. An entry remembers the epoch it was made in; a
//!   lookup that finds it changed drops the entry (and its registration) and starts
//!   afresh. That is how a close on *another* thread, whose hub cannot touch this one's
//!   table, still retires this hub's registration. Two numbers sharing a slot only
//!   cost a spurious re-registration.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use mio::unix::SourceFd;
use mio::{Interest, Token};

use super::{Direction, Keep};
use crate::hub::Hub;
use crate::park::WaitQueue;

/// Readiness bits an entry keeps (what the last events said, until an operation that
/// would block clears its direction).
pub(super) const READABLE: u8 = 1;
pub(super) const WRITABLE: u8 = 2;
const READ_CLOSED: u8 = 4;
const WRITE_CLOSED: u8 = 8;
const ERROR: u8 = 16;
/// What an fd whose readiness is unknown is assumed to be: ready both ways (never
/// closed: those bits are never cleared, so only an event may set them).
const UNKNOWN: u8 = READABLE | WRITABLE;

/// The bits that let an operation in `direction` proceed (or fail at once).
pub(super) fn ready_mask(direction: Direction) -> u8 {
    match direction {
        Direction::Read => READABLE | READ_CLOSED | ERROR,
        Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
    }
}

/// The bits an operation that would block in `direction` clears. The closed bits are
/// never cleared: a hang-up is for good, and an operation after it never blocks.
pub(super) fn clear_mask(direction: Direction) -> u8 {
    match direction {
        Direction::Read => READABLE | ERROR,
        Direction::Write => WRITABLE | ERROR,
    }
}

/// Slots of the process-wide epoch table (a power of two).
const EPOCH_SLOTS: usize = 1 << 16;
static EPOCHS: [AtomicU32; EPOCH_SLOTS] = [const { AtomicU32::new(0) }; EPOCH_SLOTS];

fn epoch_slot(fd: RawFd) -> &'static AtomicU32 {
    &EPOCHS[fd as u32 as usize & (EPOCH_SLOTS - 1)]
}

/// `fd`'s current epoch.
pub(super) fn epoch(fd: RawFd) -> u32 {
    epoch_slot(fd).load(Ordering::Acquire)
}

/// Retires every registration of `fd` made so far, in every hub.
pub(super) fn bump_epoch(fd: RawFd) {
    epoch_slot(fd).fetch_add(1, Ordering::AcqRel);
}

/// One registered fd.
pub(crate) struct FdEntry {
    pub(super) fd: RawFd,
    /// The epoll token: the generation in the high 32 bits, the fd in the low ones.
    token: usize,
    /// `fd`'s epoch when this entry was made.
    epoch: u32,
    /// What the events said and no operation has contradicted since.
    pub(super) readiness: Cell<u8>,
    pub(super) readers: WaitQueue,
    pub(super) writers: WaitQueue,
    /// Kept after its waits end (a net type's or a hook's fd), or dropped with its last
    /// waiter (a wait on a raw fd whose close nobody reports).
    pub(super) keep: Cell<bool>,
    /// Set when the entry was retired under its waiters (the fd was closed or its
    /// number reused): their waits end with `EBADF`.
    pub(super) closed: Cell<bool>,
}

impl FdEntry {
    /// Whether the readiness bits let an operation in `direction` be tried.
    pub(super) fn ready(&self, direction: Direction) -> bool {
        self.readiness.get() & ready_mask(direction) != 0
    }

    /// An operation in `direction` would block: forget that it was ready.
    pub(super) fn clear(&self, direction: Direction) {
        self.readiness
            .set(self.readiness.get() & !clear_mask(direction));
    }

    pub(super) fn queue(&self, direction: Direction) -> &WaitQueue {
        match direction {
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        }
    }

    fn has_waiters(&self) -> bool {
        !self.readers.is_empty() || !self.writers.is_empty()
    }
}

/// The registered fds of one hub, by fd number.
#[derive(Default)]
pub(crate) struct IoTable {
    by_fd: Vec<Option<Rc<FdEntry>>>,
    /// The last generation handed out.
    generation: u32,
    /// Greenlets parked on an fd right now.
    pub(super) parked: usize,
}

impl IoTable {
    /// Whether no greenlet waits for an fd (registrations without waiters do not
    /// count: nothing waits for their events).
    pub(crate) fn is_empty(&self) -> bool {
        self.parked == 0
    }

    /// Gives back the memory of a burst of fds once they are gone (a trim pass): the
    /// vacant tail of the table goes.
    pub(crate) fn shrink(&mut self) {
        let used = self
            .by_fd
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        if crate::trim::oversized(self.by_fd.capacity(), used) {
            self.by_fd.truncate(used);
            self.by_fd.shrink_to_fit();
        }
    }

    /// The entry of `fd`, whatever its epoch.
    fn slot(&self, fd: RawFd) -> Option<&Rc<FdEntry>> {
        self.by_fd.get(usize::try_from(fd).ok()?)?.as_ref()
    }

    /// The entry of `fd` if it is current; `Err(())` if there is one from an earlier
    /// epoch, which the caller must retire ([`retire`]).
    pub(super) fn current(&self, fd: RawFd) -> Result<Option<&Rc<FdEntry>>, ()> {
        match self.slot(fd) {
            Some(entry) if entry.epoch != epoch(fd) => Err(()),
            found => Ok(found),
        }
    }

    fn take(&mut self, fd: RawFd) -> Option<Rc<FdEntry>> {
        self.by_fd.get_mut(usize::try_from(fd).ok()?)?.take()
    }

    fn insert(&mut self, entry: Rc<FdEntry>) {
        let at = entry.fd as usize;
        if self.by_fd.len() <= at {
            self.by_fd.resize(at + 1, None);
        }
        self.by_fd[at] = Some(entry);
    }

    fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        self.generation
    }
}

/// Registers `fd` with the hub's epoll (edge-triggered, read and write interest) and
/// enters it in the table, its readiness unknown except that `direction` was just
/// found not ready; `keep` says whether it stays after this wait. The caller holds no
/// borrow of the table.
pub(super) fn register(
    hub: &Hub,
    fd: RawFd,
    direction: Direction,
    keep: Keep,
) -> io::Result<Rc<FdEntry>> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    let mut table = hub.io.borrow_mut();
    let generation = table.next_generation();
    let token = (generation as usize) << 32 | fd as u32 as usize;
    let interest = Interest::READABLE | Interest::WRITABLE;
    let poll = hub.poll.borrow();
    let registry = poll.registry();
    match registry.register(&mut SourceFd(&fd), Token(token), interest) {
        // Still registered from an entry that left the table without its
        // `EPOLL_CTL_DEL` (retired while the table was busy): take it over.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            registry.reregister(&mut SourceFd(&fd), Token(token), interest)?;
        }
        other => other?,
    }
    drop(poll);
    let entry = Rc::new(FdEntry {
        fd,
        token,
        epoch: epoch(fd),
        readiness: Cell::new(UNKNOWN & !clear_mask(direction)),
        readers: WaitQueue::new(),
        writers: WaitQueue::new(),
        keep: Cell::new(keep == Keep::Registered),
        closed: Cell::new(false),
    });
    table.insert(entry.clone());
    Ok(entry)
}

/// Re-arms `entry`'s registration (`EPOLL_CTL_MOD`), which makes epoll report its
/// current readiness afresh.
pub(super) fn rearm(hub: &Hub, entry: &FdEntry) -> io::Result<()> {
    let interest = Interest::READABLE | Interest::WRITABLE;
    hub.poll
        .borrow()
        .registry()
        .reregister(&mut SourceFd(&entry.fd), Token(entry.token), interest)
}

/// Takes `fd`'s entry out of the table and epoll (if it is `only`, when given) and
/// wakes its waiters, whose waits end with `EBADF`. Does nothing if the table is busy
/// (a close made from inside the hub's own bookkeeping; the epoch still retires it).
pub(super) fn retire(hub: &Hub, fd: RawFd, only: Option<&Rc<FdEntry>>) {
    let Ok(mut table) = hub.io.try_borrow_mut() else {
        return;
    };
    if let Some(only) = only {
        if !table.slot(fd).is_some_and(|e| Rc::ptr_eq(e, only)) {
            return;
        }
    }
    let Some(entry) = table.take(fd) else { return };
    drop(table);
    // While the fd is open this drops the registration (after a close epoll has
    // dropped it already, unless a dup keeps the file open: then it lingers until
    // that closes, and its events are ignored for their stale generation).
    let _ = hub.poll.borrow().registry().deregister(&mut SourceFd(&fd));
    entry.closed.set(true);
    entry.readers.notify_all();
    entry.writers.notify_all();
}

/// After a wait on `entry` ended: a transient entry (`keep` unset) leaves the table and
/// epoll with its last waiter.
pub(super) fn leave(hub: &Hub, entry: &Rc<FdEntry>) {
    if entry.keep.get() || entry.closed.get() || entry.has_waiters() {
        return;
    }
    let mut table = hub.io.borrow_mut();
    if table.slot(entry.fd).is_some_and(|e| Rc::ptr_eq(e, entry)) {
        table.take(entry.fd);
        drop(table);
        let _ = hub
            .poll
            .borrow()
            .registry()
            .deregister(&mut SourceFd(&entry.fd));
    }
}

/// Records one epoll event in its entry and wakes the waiters it concerns.
pub(crate) fn dispatch(hub: &Hub, event: &mio::event::Event) {
    let token = event.token().0;
    let fd = (token & 0xffff_ffff) as u32 as RawFd;
    let entry = {
        let table = hub.io.borrow();
        match table.slot(fd) {
            // An event of an earlier registration of this number: not ours any more.
            Some(entry) if entry.token == token => entry.clone(),
            _ => return,
        }
    };
    let mut bits = 0;
    if event.is_readable() {
        bits |= READABLE;
    }
    if event.is_writable() {
        bits |= WRITABLE;
    }
    if event.is_read_closed() {
        bits |= READ_CLOSED;
    }
    if event.is_write_closed() {
        bits |= WRITE_CLOSED;
    }
    if event.is_error() {
        bits |= ERROR;
    }
    entry.readiness.set(entry.readiness.get() | bits);
    if bits & ready_mask(Direction::Read) != 0 {
        entry.readers.notify_all();
    }
    if bits & ready_mask(Direction::Write) != 0 {
        entry.writers.notify_all();
    }
}

/// Forgets every registration of `hub` without a system call or a wake-up: for the
/// child of a `fork`, whose inherited epoll instance is the parent's (an
/// `EPOLL_CTL_DEL` there would remove the parent's registration of the shared file).
/// Waiters are not woken: in the child only the forking greenlet goes on, and it is
/// not parked (it is inside `fork`).
pub(super) fn reset_after_fork(hub: &Hub) {
    // Kept, not dropped: the waiters' records belong to greenlets that will never run
    // again in this process. (Never borrowed here: `fork` is not called from inside the
    // table's own bookkeeping.)
    crate::kept::keep(std::mem::take(&mut *hub.io.borrow_mut()));
}
