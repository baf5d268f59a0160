//! Hub statistics: what a hub has been doing, counted as it goes.
//!
//! Every counter costs one increment where the event happens, on the hub's own thread
//! (plain `Cell`s; the one exception is the switch counter, an `AtomicU64` that only
//! the hub writes, with a relaxed load and store, so that the blocking monitor can
//! read it from its own thread). [`stats`] copies them out for the calling thread's
//! hub; [`monitor::dump_all`](crate::monitor::dump_all) shows every hub's.
//!
//! What each counts is on [`Stats`].

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::monitor::registry::HubEntry;

/// What a greenlet parks on, for [`Stats::parks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParkKind {
    /// `sleep`, `sleep_until`, a patched `nanosleep`.
    Timer,
    /// Readiness of a file descriptor (sockets, pipes; patched or not).
    Fd,
    /// A queue's `get`/`put`/`join`, a `Channel`.
    Queue,
    /// `Mutex`, `RLock`, `Semaphore`, `BoundedSemaphore`.
    Lock,
    /// `Event`, `AsyncResult`, `Condvar`.
    Event,
    /// A join: `JoinHandle::join`, `wait_any`, a pool's or a server's wait for its
    /// greenlets.
    Join,
    /// A futex word (std's and parking_lot's locks after `patch_all`, and other
    /// shielded waits of `coop::park_external`).
    Futex,
    /// Work on another OS thread (`spawn_blocking`, `wait_for_thread`).
    Thread,
    /// Anything else.
    Other,
}

impl ParkKind {
    /// Every kind, in the order [`Stats`] shows them.
    pub const ALL: [ParkKind; 9] = [
        ParkKind::Timer,
        ParkKind::Fd,
        ParkKind::Queue,
        ParkKind::Lock,
        ParkKind::Event,
        ParkKind::Join,
        ParkKind::Futex,
        ParkKind::Thread,
        ParkKind::Other,
    ];

    /// A short lower-case name (`"timer"`, `"fd"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ParkKind::Timer => "timer",
            ParkKind::Fd => "fd",
            ParkKind::Queue => "queue",
            ParkKind::Lock => "lock",
            ParkKind::Event => "event",
            ParkKind::Join => "join",
            ParkKind::Futex => "futex",
            ParkKind::Thread => "thread",
            ParkKind::Other => "other",
        }
    }
}

/// The counters a hub keeps (see the module docs), and its coarse clock.
pub(crate) struct Counters {
    /// Shared with the monitor and `dump_all`: the switch counter lives there.
    pub(crate) entry: Arc<HubEntry>,
    spawns: Cell<u64>,
    parks: [Cell<u64>; ParkKind::ALL.len()],
    run_queue_high_water: Cell<usize>,
    epoll_waits: Cell<u64>,
    epoll_events: Cell<u64>,
    epoll_time: Cell<Duration>,
    /// When the hub was made: the origin of `clock`.
    epoch: Instant,
    /// Nanoseconds from `epoch` to the hub's last clock read (see [`Counters::clock`]).
    clock: Cell<u64>,
    /// Maintenance passes that skipped the clock since it was last read.
    unclocked_passes: Cell<u32>,
}

/// Maintenance passes that may skip the clock in a row (a busy hub with no timer and
/// no fd reads it every 16 × 61 greenlet runs at least, so the park times of
/// [`dump`](crate::dump) stay close).
const UNCLOCKED_PASSES: u32 = 16;

impl Counters {
    pub(crate) fn new(entry: Arc<HubEntry>) -> Counters {
        Counters {
            entry,
            spawns: Cell::new(0),
            parks: Default::default(),
            run_queue_high_water: Cell::new(0),
            epoll_waits: Cell::new(0),
            epoll_events: Cell::new(0),
            epoll_time: Cell::new(Duration::ZERO),
            epoch: Instant::now(),
            clock: Cell::new(0),
            unclocked_passes: Cell::new(0),
        }
    }

    /// A greenlet is switched to.
    #[inline(always)]
    pub(crate) fn count_switch(&self) {
        let switches = &self.entry.switches;
        // Only this thread writes it: a load and a store, no read-modify-write.
        switches.store(switches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn count_spawn(&self) {
        self.spawns.set(self.spawns.get() + 1);
    }

    #[inline(always)]
    pub(crate) fn count_park(&self, kind: ParkKind) {
        let counter = &self.parks[kind as usize];
        counter.set(counter.get() + 1);
    }

    /// The run queue is `len` long at the start of a turn.
    #[inline]
    pub(crate) fn run_queue_len(&self, len: usize) {
        if len > self.run_queue_high_water.get() {
            self.run_queue_high_water.set(len);
        }
    }

    /// One `epoll_wait` returned `events` events.
    #[inline]
    pub(crate) fn count_epoll(&self, events: usize) {
        self.epoll_waits.set(self.epoll_waits.get() + 1);
        self.epoll_events
            .set(self.epoll_events.get() + events as u64);
    }

    /// The hub is about to sleep in `epoll_wait`: the monitor must not take that for
    /// a stall (the sleep count becomes odd until [`woke`](Self::woke)).
    #[inline]
    pub(crate) fn sleeping(&self) {
        self.bump_sleeps();
    }

    /// The hub is back from a sleep in `epoll_wait` that began at `since`; `now` is
    /// the time it read on waking.
    #[inline]
    pub(crate) fn woke(&self, since: Instant, now: Instant) {
        self.bump_sleeps();
        self.epoll_time
            .set(self.epoll_time.get() + now.saturating_duration_since(since));
    }

    fn bump_sleeps(&self) {
        let sleeps = &self.entry.sleeps;
        sleeps.store(sleeps.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// The hub read the clock: `now` becomes its coarse time.
    #[inline]
    pub(crate) fn clock_read(&self, now: Instant) {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        self.clock.set(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.unclocked_passes.set(0);
    }

    /// A maintenance pass that had no reason to read the clock: it reads it anyway
    /// every [`UNCLOCKED_PASSES`] passes, so the coarse time never falls far behind.
    #[inline]
    pub(crate) fn pass_without_clock(&self) {
        let passes = self.unclocked_passes.get() + 1;
        if passes >= UNCLOCKED_PASSES {
            self.clock_read(Instant::now());
        } else {
            self.unclocked_passes.set(passes);
        }
    }

    /// The hub's coarse time: the time of its last clock read, as nanoseconds from its
    /// epoch. One word, cheap to copy into a park (see [`since`](Self::since)).
    #[inline(always)]
    pub(crate) fn clock(&self) -> u64 {
        self.clock.get()
    }

    /// How long ago the coarse time `stamp` was, at `now`.
    pub(crate) fn since(&self, stamp: u64, now: Instant) -> Duration {
        let at = self.epoch + Duration::from_nanos(stamp);
        now.saturating_duration_since(at)
    }

    /// A copy of the counters, with `greenlets` live greenlets.
    pub(crate) fn snapshot(&self, greenlets: usize) -> Stats {
        let mut parks = [0; ParkKind::ALL.len()];
        for (out, counter) in parks.iter_mut().zip(&self.parks) {
            *out = counter.get();
        }
        let longest = self.entry.longest_run_nanos.load(Ordering::Relaxed);
        Stats {
            greenlets,
            switches: self.entry.switches.load(Ordering::Relaxed),
            spawns: self.spawns.get(),
            parks,
            run_queue_high_water: self.run_queue_high_water.get(),
            epoll_waits: self.epoll_waits.get(),
            epoll_events: self.epoll_events.get(),
            epoll_time: self.epoll_time.get(),
            longest_run: (longest != u64::MAX).then(|| Duration::from_nanos(longest)),
            uptime: self.epoch.elapsed(),
        }
    }
}

/// A hub's counters at one moment, from [`stats`]. `Display` prints them on one
/// line; [`Stats::since`] gives the difference from an earlier snapshot, for rates.
///
/// Every counter costs one increment where the event happens, on the hub's own
/// thread.
///
/// | counter | counted when |
/// |---|---|
/// | `switches` | a greenlet is switched to (by the hub loop or directly by another) |
/// | `spawns` | a greenlet is spawned |
/// | `parks` | a greenlet parks, by [`ParkKind`] |
/// | `run_queue_high_water` | the run queue is longest at the start of a hub turn |
/// | `epoll_waits`, `epoll_events` | the hub calls `epoll_wait`, and what it returns |
/// | `epoll_time` | the hub sleeps in `epoll_wait` (calls with a non-zero timeout) |
/// | `longest_run` | measured by the blocking monitor while it runs (see below) |
///
/// The longest run of one greenlet between two switches would need a clock read per
/// switch, which costs more than a switch. It is measured by the
/// [blocking monitor](crate::monitor) instead, when it runs: the longest time it saw
/// a hub busy without a switch, a lower bound at the monitor's sampling period (a
/// quarter of its threshold, between 1 and 50 ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Greenlets the hub knows now (as [`active_count`](crate::active_count)).
    pub greenlets: usize,
    /// Switches into greenlets, by the hub loop or directly from one to another.
    pub switches: u64,
    /// Greenlets spawned.
    pub spawns: u64,
    /// Parks by kind, indexed by `ParkKind as usize`; see [`parks_of`](Self::parks_of).
    pub parks: [u64; ParkKind::ALL.len()],
    /// The longest the run queue was at the start of a hub turn.
    pub run_queue_high_water: usize,
    /// Calls to `epoll_wait`.
    pub epoll_waits: u64,
    /// Events those calls returned.
    pub epoll_events: u64,
    /// Time spent asleep in `epoll_wait` (calls with a non-zero timeout).
    pub epoll_time: Duration,
    /// The longest the [monitor](crate::monitor) saw the hub busy without a switch (a
    /// lower bound, to its sampling period); `None` while no monitor ran.
    pub longest_run: Option<Duration>,
    /// Time since the hub was made.
    pub uptime: Duration,
}

impl Stats {
    /// Parks of one kind.
    pub fn parks_of(&self, kind: ParkKind) -> u64 {
        self.parks[kind as usize]
    }

    /// Parks of every kind.
    pub fn total_parks(&self) -> u64 {
        self.parks.iter().sum()
    }

    /// What happened between `earlier` and `self` (snapshots of the same hub): the
    /// counters' differences, and `uptime` the time between them. `greenlets`,
    /// `run_queue_high_water` and `longest_run` stay `self`'s, as they are not sums.
    pub fn since(&self, earlier: &Stats) -> Stats {
        let mut parks = self.parks;
        for (now, before) in parks.iter_mut().zip(earlier.parks) {
            *now = now.saturating_sub(before);
        }
        Stats {
            greenlets: self.greenlets,
            switches: self.switches.saturating_sub(earlier.switches),
            spawns: self.spawns.saturating_sub(earlier.spawns),
            parks,
            run_queue_high_water: self.run_queue_high_water,
            epoll_waits: self.epoll_waits.saturating_sub(earlier.epoll_waits),
            epoll_events: self.epoll_events.saturating_sub(earlier.epoll_events),
            epoll_time: self.epoll_time.saturating_sub(earlier.epoll_time),
            longest_run: self.longest_run,
            uptime: self.uptime.saturating_sub(earlier.uptime),
        }
    }
}

impl fmt::Display for Stats {
    /// `greenlets 12, switches 5300, spawns 40, parks 2600 (fd 2500, timer 100),
    /// run queue <= 7, epoll_wait 1200 calls 2400 events 0.81 s asleep, longest run
    /// 3.0 ms, over 1.00 s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "greenlets {}, switches {}, spawns {}, parks {}",
            self.greenlets,
            self.switches,
            self.spawns,
            self.total_parks()
        )?;
        let mut kinds = ParkKind::ALL
            .iter()
            .filter(|&&k| self.parks_of(k) > 0)
            .peekable();
        if kinds.peek().is_some() {
            f.write_str(" (")?;
            for (i, kind) in kinds.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{} {}", kind.name(), self.parks_of(*kind))?;
            }
            f.write_str(")")?;
        }
        write!(
            f,
            ", run queue <= {}, epoll_wait {} calls {} events {:.2} s asleep",
            self.run_queue_high_water,
            self.epoll_waits,
            self.epoll_events,
            self.epoll_time.as_secs_f64()
        )?;
        if let Some(longest) = self.longest_run {
            write!(f, ", longest run {}", crate::dump::Seconds(longest))?;
        }
        write!(f, ", over {:.2} s", self.uptime.as_secs_f64())
    }
}

/// The calling thread's hub's counters (making the hub if the thread has none).
///
/// ```
/// let before = greenweave_runtime::stats();
/// greenweave_runtime::spawn(|| greenweave_runtime::yield_now()).join().unwrap();
/// let after = greenweave_runtime::stats();
/// assert_eq!(after.since(&before).spawns, 1);
/// assert!(after.switches > before.switches);
/// ```
pub fn stats() -> Stats {
    crate::hub::with(|hub| hub.stats.snapshot(hub.task_count()))
}
