//! Running blocking and CPU-bound work on OS threads without stalling the hub
//! (gevent's `gevent.threadpool`; `multiprocessing.Pool` for CPU work).
//!
//! A hub runs every greenlet of its thread, so a greenlet that makes a blocking system
//! call the hub cannot watch (reading a file: regular files are always "ready" to
//! epoll; `getaddrinfo`; a C library) or computes for a long time stops all of them.
//! [`spawn_blocking`] moves such work to a pool thread and parks only the calling
//! greenlet until it is done; the other greenlets keep running meanwhile.
//!
//! File I/O is the classic case (gevent's long-standing complaint: `open().read()`
//! blocks every greenlet). Here a ticker greenlet keeps ticking while the main greenlet
//! reads a file through the pool:
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use greenweave_runtime::{sleep, spawn, threadpool::spawn_blocking};
//!
//! let path = std::env::temp_dir().join(format!("greenweave-doc-{}.txt", std::process::id()));
//! let p = path.clone();
//! spawn_blocking(move || std::fs::write(p, "hello from a pool thread")).unwrap();
//!
//! let ticks = Rc::new(Cell::new(0));
//! let t = ticks.clone();
//! let ticker = spawn(move || loop { sleep(Duration::from_millis(1)); t.set(t.get() + 1); });
//!
//! let p = path.clone();
//! let text = spawn_blocking(move || {
//!     std::thread::sleep(Duration::from_millis(30)); // a slow disk
//!     std::fs::read_to_string(p)
//! }).unwrap();
//! assert_eq!(text, "hello from a pool thread");
//! assert!(ticks.get() >= 3, "the ticker ran while the file was being read");
//! ticker.kill();
//! spawn_blocking(move || std::fs::remove_file(path)).unwrap();
//! ```
//!
//! - [`spawn_blocking`] runs a closure on the process-wide [`default_pool`] and
//!   returns its value (a panic in it is resumed in the caller).
//! - [`ThreadPool`] is a pool of your own: [`run`](ThreadPool::run),
//!   [`spawn`](ThreadPool::spawn) (returns a [`BlockingHandle`]),
//!   [`map`](ThreadPool::map) for CPU-bound work, [`shutdown`](ThreadPool::shutdown).
//! - [`Offload`] owns a value whose every use blocks (a database client), and runs
//!   each call on a pool thread: see [Nested event loops](#nested-event-loops).
//! - To use more than one core *with greenlets*, run a hub per core: see
//!   [`workers`](crate::workers).
//!
//! Pools are `Send + Sync` and can be fed from any greenlet of any thread; each result
//! is delivered to the hub of the greenlet waiting for it, through a
//! [`RemoteWaker`](crate::RemoteWaker), so a greenlet waiting for the pool is never
//! reported as deadlocked. Killing the waiting greenlet, or a
//! [`Timeout`](crate::Timeout), unwinds it at once; the job itself cannot be stopped
//! and runs to completion on its thread.
//!
//! # Nested event loops
//!
//! Some blocking clients run an event loop of their own on the calling thread for
//! every call: the `postgres` crate's sync `Client` runs a tokio current-thread
//! runtime's `block_on`; others poll a bare `mio::Poll`. Both end up waiting in
//! `epoll_wait`. What happens in a greenlet after `monkey::patch_all()`:
//!
//! - **It is correct, and serial.** `patch_all` does not hook `epoll_wait`, so the
//!   loop blocks the OS thread, and the hub with it, for the whole call: no other
//!   greenlet of the thread runs meanwhile, and a `Timeout` cannot fire during the call
//!   (its timer needs the hub). The loop's own sockets are non-blocking, and the hooks
//!   give their `EAGAIN` back as the kernel does, so every answer is right and nothing
//!   panics, with any number of greenlets each owning a client and calling it in turn.
//!   Measured against a real server (as `tests/postgres.rs` at the workspace root
//!   does), 2 cores: 50 greenlets × one `SELECT pg_sleep(0.3)` take 15.1 s.
//! - **It cannot be made cooperative by hooking `epoll_wait`.** Parking the greenlet
//!   inside the loop would let a second greenlet of the thread enter its own tokio
//!   runtime while the first is still inside `block_on`, and tokio records the current
//!   runtime per OS thread: it panics, "Cannot start a runtime from within a runtime".
//!   (An opt-in `epoll_wait` hook can serve a bare `mio` loop, which keeps no such
//!   record; it is not part of `patch_all`.)
//! - **The recipe: run each call on a pool thread.** [`Offload`] owns the client and
//!   runs every call on a pool thread while only the calling greenlet parks; the pool
//!   thread has no hub, so the client's loop runs there exactly as in a plain program.
//!   The same 50 greenlets take 0.34 s on a 50-thread pool (1.5 s on the default
//!   10-thread pool: the calls queue), and the hub keeps running throughout. Each call
//!   pays a thread hand-off each way (tens of microseconds).
//!
//! ```ignore
//! use std::sync::Arc;
//! use greenweave::threadpool::{Offload, ThreadPool};
//! use postgres::{Client, NoTls};
//!
//! greenweave::monkey::patch_all();
//! let pool = Arc::new(ThreadPool::new(50)); // one thread per client in a call at once
//! let workers: Vec<_> = (0..50).map(|i| {
//!     let pool = pool.clone();
//!     greenweave::spawn(move || {
//!         let url = "host=127.0.0.1 user=postgres";
//!         let client = pool.run(move || Client::connect(url, NoTls)).unwrap();
//!         let mut db = Offload::with_pool(client, pool);
//!         let row = db.run(move |c| c.query_one("SELECT $1::int + 1", &[&i])).unwrap();
//!         row.get::<_, i32>(0)
//!     })
//! }).collect();
//! ```
//!
//! A kill or `Timeout` while a greenlet waits for such a call unwinds the greenlet at
//! once; the call runs on to its end with the client, which the `Offload` gets back
//! (or drops, on the pool thread) afterwards: see [`Offload`].

#[cfg(not(loom))]
#[allow(unsafe_code)]
pub(crate) mod fork;
/// No forks under loom (its model checks of the pool make pools of loom's types).
#[cfg(loom)]
pub(crate) mod fork {
    pub(crate) fn prepare() {}
    pub(crate) fn release() {}
    pub(crate) fn in_child() {}
    pub(super) fn register<T>(_pool: &T) {}
}
mod handle;
#[cfg(all(test, loom))]
mod loom_tests;
mod map;
mod offload;
mod pool;

pub use handle::BlockingHandle;
pub(crate) use handle::oneshot;
pub use offload::Offload;
pub use pool::ThreadPool;

use std::sync::{Mutex, OnceLock, PoisonError};

/// The default pool's size unless [`set_default_pool_size`] says otherwise: gevent's 10,
/// or the number of CPUs if that is more.
///
/// ```
/// assert!(greenweave_runtime::threadpool::default_pool_size() >= 10);
/// ```
pub fn default_pool_size() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    cpus.max(10)
}

/// Set by `set_default_pool_size`; `started` once the default pool exists.
struct Config {
    size: Option<usize>,
    started: bool,
}

static CONFIG: Mutex<Config> = Mutex::new(Config {
    size: None,
    started: false,
});
static DEFAULT: OnceLock<ThreadPool> = OnceLock::new();

/// Sets the size of the [`default_pool`]; it takes effect only before the pool is first
/// used (by [`spawn_blocking`], [`default_pool`], DNS lookups). Returns whether it did.
///
/// ```
/// use greenweave_runtime::threadpool::{default_pool, set_default_pool_size};
///
/// assert!(set_default_pool_size(32)); // first thing in main()
/// assert_eq!(default_pool().size(), 32);
/// assert!(!set_default_pool_size(4)); // too late: the pool exists
/// assert_eq!(default_pool().size(), 32);
/// ```
///
/// # Panics
///
/// If `size` is 0.
#[track_caller]
#[must_use = "the size is not applied if the default pool already exists"]
pub fn set_default_pool_size(size: usize) -> bool {
    assert!(
        size > 0,
        "greenweave: set_default_pool_size(0): a thread pool needs at least one thread"
    );
    let mut config = CONFIG.lock().unwrap_or_else(PoisonError::into_inner);
    if config.started {
        return false;
    }
    config.size = Some(size);
    true
}

/// The process-wide pool [`spawn_blocking`] uses, created on first use with
/// [`set_default_pool_size`]'s size or [`default_pool_size`]. Its threads start as
/// jobs arrive and live as long as the process.
///
/// Shutting it down makes every later [`spawn_blocking`] panic: don't.
///
/// ```
/// let pool = greenweave_runtime::threadpool::default_pool();
/// assert_eq!(pool.run(|| 1 + 1), 2);
/// ```
pub fn default_pool() -> &'static ThreadPool {
    if let Some(pool) = DEFAULT.get() {
        return pool;
    }
    // Made under `CONFIG`'s lock, which the fork handlers hold across a fork: a child
    // never inherits a default pool half made by a thread that does not exist there.
    let mut config = CONFIG.lock().unwrap_or_else(PoisonError::into_inner);
    DEFAULT.get_or_init(|| {
        config.started = true;
        ThreadPool::new(config.size.unwrap_or_else(default_pool_size))
    })
}

/// Runs `f` on the [`default_pool`] and returns its value; only the calling greenlet
/// waits, the others of its thread keep running (gevent's
/// `get_hub().threadpool.apply`). Use it for anything that blocks in a way the hub
/// cannot see: file I/O, DNS, `std::process::Command::output`, a blocking C library,
/// or a long computation.
///
/// ```
/// use greenweave_runtime::threadpool::spawn_blocking;
///
/// let len = spawn_blocking(|| std::fs::read("Cargo.toml").map(|bytes| bytes.len()));
/// assert!(len.unwrap() > 0);
/// ```
///
/// A panic in `f` is caught on the pool thread and resumed in the caller with its
/// original payload:
///
/// ```
/// use std::panic::{catch_unwind, AssertUnwindSafe};
/// use greenweave_runtime::threadpool::spawn_blocking;
///
/// let err = catch_unwind(AssertUnwindSafe(|| spawn_blocking(|| panic!("disk on fire")))).unwrap_err();
/// assert_eq!(err.downcast_ref::<&str>(), Some(&"disk on fire"));
/// ```
///
/// A job that needs the pool itself (calling `spawn_blocking` from inside `f`) can
/// deadlock once every pool thread waits that way: keep jobs leaf-level.
///
/// # Panics
///
/// Resumes `f`'s panic. Unwinds with `GreenletExit` if the greenlet is killed, or with
/// the timeout's payload if a [`Timeout`](crate::Timeout) expires while it waits; `f`
/// still runs to completion on its thread and its value is dropped there.
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    default_pool().run(f)
}
