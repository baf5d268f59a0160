//! Bounded and unbounded sets of greenlets (gevent's `gevent.pool`): [`Pool`] and
//! [`Group`].
//!
//! A [`Pool`] runs at most `size` greenlets at once; [`Pool::spawn`] blocks the caller
//! while it is full, so a loop that spawns a job per input never has more than `size`
//! in flight. A [`Group`] is a pool without a limit: it only keeps track of its
//! greenlets, so they can be joined or killed together.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use greenweave_runtime::{pool::Pool, sleep};
//!
//! let pool = Pool::new(4);
//! let start = Instant::now();
//! let squares = pool.map(|n: u64| { sleep(Duration::from_millis(20)); n * n }, 0..8);
//! assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
//! // two rounds of four, not eight sleeps in a row
//! assert!(start.elapsed() < Duration::from_millis(150));
//! ```
//!
//! Results and panics are never lost: [`spawn`](Pool::spawn) hands back the
//! [`JoinHandle`](crate::JoinHandle); [`map`](Pool::map), [`imap`](Pool::imap),
//! [`imap_unordered`](Pool::imap_unordered) and [`apply`](Pool::apply) wait for their
//! jobs and resume a job's panic in the caller. Pools are per-thread, like everything
//! the hub runs; a pool cannot be sent to another OS thread:
//!
//! ```compile_fail
//! let pool = greenweave_runtime::pool::Pool::new(2);
//! std::thread::spawn(move || pool.len());
//! ```

mod map;
mod members;
mod wait;

pub use members::Full;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::panic::{self, Location};
use std::rc::Rc;

use crate::park::WaitQueue;
use crate::spawn::JoinError;
use crate::task::{Describe, Task};

/// A set of greenlets of which at most `size` run at once (gevent's `Pool`).
///
/// Clones are handles to the same pool, so spawned greenlets can spawn into it too.
/// Members free their slot when they finish, however that happens (return, panic,
/// kill, killed before they started). Dropping the last handle does not stop the
/// members.
#[derive(Clone)]
pub struct Pool {
    inner: Rc<Inner>,
}

struct Inner {
    /// `None` for a [`Group`].
    size: Option<usize>,
    created_at: &'static Location<'static>,
    /// Live members, by a pool-local id.
    members: RefCell<HashMap<u64, Member>>,
    next_member: Cell<u64>,
    /// Greenlets waiting for a free slot (blocking `spawn`, `wait_available`).
    slot_freed: WaitQueue,
    /// Greenlets waiting for members to exit (`join`, `kill`); woken on every exit.
    member_exited: WaitQueue,
}

#[derive(Default)]
struct Member {
    /// Set once the member's greenlet has started.
    task: Option<Rc<Task>>,
    /// `Pool::kill` asked it to die.
    killed: bool,
}

/// What a pool's waiters wait on, for deadlock reports.
enum Waiting<'a> {
    Slot(&'a Inner),
    Exit(&'a Inner),
    /// A `map`/`imap` caller waiting for one of its jobs.
    Job(&'a Inner),
}

impl Describe for Waiting<'_> {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Join
    }

    fn describe(&self, out: &mut String) {
        let (what, inner) = match self {
            Waiting::Slot(inner) => ("a free slot in ", inner),
            Waiting::Exit(inner) => ("members to finish in ", inner),
            Waiting::Job(inner) => ("a map job to finish in ", inner),
        };
        out.push_str(what);
        inner.describe_pool(out);
        out.push_str(&format!(" ({} running)", inner.running()));
    }
}

impl Inner {
    fn describe_pool(&self, out: &mut String) {
        match self.size {
            Some(n) => out.push_str(&format!("Pool({n}) created at {}", self.created_at)),
            None => out.push_str(&format!("Group created at {}", self.created_at)),
        }
    }

    fn running(&self) -> usize {
        self.members.borrow().len()
    }

    fn is_full(&self) -> bool {
        self.size.is_some_and(|n| self.running() >= n)
    }

    /// Wakes one more slot waiter if a slot is still free: a woken waiter that leaves
    /// a slot unused (or finds two free) must not strand the others.
    fn pass_on_slot(&self) {
        if !self.is_full() && !self.slot_freed.is_empty() {
            self.slot_freed.notify_one();
        }
    }
}

impl Pool {
    /// A pool running at most `size` greenlets at once.
    ///
    /// ```
    /// let pool = greenweave_runtime::pool::Pool::new(10);
    /// assert_eq!((pool.size(), pool.free_count(), pool.len()), (Some(10), 10, 0));
    /// ```
    ///
    /// # Panics
    ///
    /// If `size` is 0 (nothing could ever run).
    #[track_caller]
    pub fn new(size: usize) -> Pool {
        assert!(
            size > 0,
            "greenweave: Pool::new(0): a pool needs at least one slot"
        );
        Pool::with_size(Some(size), Location::caller())
    }

    fn with_size(size: Option<usize>, created_at: &'static Location<'static>) -> Pool {
        Pool {
            inner: Rc::new(Inner {
                size,
                created_at,
                members: RefCell::new(HashMap::new()),
                next_member: Cell::new(0),
                slot_freed: WaitQueue::new(),
                member_exited: WaitQueue::new(),
            }),
        }
    }

    /// The limit: `Some(size)` for a pool, `None` for a [`Group`].
    ///
    /// ```
    /// use greenweave_runtime::pool::{Group, Pool};
    /// assert_eq!(Pool::new(5).size(), Some(5));
    /// assert_eq!(Group::new().size(), None);
    /// ```
    pub fn size(&self) -> Option<usize> {
        self.inner.size
    }

    /// How many members are running (started or about to).
    ///
    /// ```
    /// let pool = greenweave_runtime::pool::Pool::new(3);
    /// let h = pool.spawn(|| ());
    /// assert_eq!(pool.len(), 1);
    /// h.join().unwrap();
    /// assert_eq!(pool.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.running()
    }

    /// Whether no member is running.
    ///
    /// ```
    /// assert!(greenweave_runtime::pool::Pool::new(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots: how many greenlets could be spawned without blocking
    /// (`usize::MAX` for a [`Group`]).
    ///
    /// ```
    /// let pool = greenweave_runtime::pool::Pool::new(3);
    /// let _h = pool.spawn(|| ());
    /// assert_eq!(pool.free_count(), 2);
    /// ```
    pub fn free_count(&self) -> usize {
        match self.inner.size {
            Some(n) => n.saturating_sub(self.len()),
            None => usize::MAX,
        }
    }

    /// Whether [`spawn`](Self::spawn) would block (never, for a [`Group`]).
    ///
    /// ```
    /// let pool = greenweave_runtime::pool::Pool::new(1);
    /// let h = pool.spawn(|| ());
    /// assert!(pool.is_full());
    /// h.join().unwrap();
    /// assert!(!pool.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.inner.describe_pool(&mut s);
        write!(f, "{s}, {} running", self.len())
    }
}

/// A [`Pool`] without a limit (gevent's `Group`): it keeps track of its greenlets so
/// they can be joined, killed or mapped over together; `spawn` never blocks.
///
/// It dereferences to [`Pool`] for every verb (`spawn`, `join`, `kill`, `map`, ...).
///
/// ```
/// use greenweave_runtime::pool::Group;
/// let group = Group::new();
/// let a = group.spawn(|| 1);
/// let b = group.spawn(|| 2);
/// assert_eq!(group.len(), 2);
/// group.join();
/// assert_eq!(a.join().unwrap() + b.join().unwrap(), 3);
/// assert_eq!(group.map(|x: i32| x + 1, [1, 2, 3]), [2, 3, 4]);
/// ```
#[derive(Clone)]
pub struct Group(Pool);

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Group {
    /// An empty group.
    ///
    /// ```
    /// let group = greenweave_runtime::pool::Group::new();
    /// assert!(group.is_empty() && group.size().is_none());
    /// ```
    #[track_caller]
    pub fn new() -> Group {
        Group(Pool::with_size(None, Location::caller()))
    }
}

impl Default for Group {
    #[track_caller]
    fn default() -> Group {
        Group::new()
    }
}

impl Deref for Group {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.0
    }
}

/// Turns a job's failure into the caller's panic.
fn resume(error: JoinError) -> ! {
    match error {
        JoinError::Panicked(payload) => panic::resume_unwind(payload),
        JoinError::Killed => {
            panic!("greenweave: a pool job was killed before it produced its value")
        }
    }
}
