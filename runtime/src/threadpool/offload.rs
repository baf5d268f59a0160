//! [`Offload`]: a value whose every use blocks its OS thread in a way the hub cannot
//! see (typically: a client that runs its own event loop), kept by a greenlet and used
//! on pool threads.

use std::any::Any;
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use super::{BlockingHandle, ThreadPool, default_pool};

/// A call's result or panic payload, type-erased so that one handle type serves calls
/// of every result type.
type Outcome = std::thread::Result<Box<dyn Any + Send>>;

/// What a call gives back: the value it borrowed, and its outcome.
struct Returned<T> {
    value: T,
    outcome: Outcome,
}

enum Slot<T> {
    /// Here, free.
    Idle(T),
    /// Lent to a call running on a pool thread.
    Busy(BlockingHandle<Returned<T>>),
    /// Gone with a call the pool refused (it was shut down).
    Lost,
}

/// Owns a value that blocks its OS thread whenever it is used, and runs each use on a
/// thread pool while only the calling greenlet parks: gevent's
/// `threadpool.apply(fn, args)` for an object you call many times, like
/// [`blocking::Unblock`](https://docs.rs/blocking) in the smol world.
///
/// It is made for clients that run *their own event loop on the calling thread*: the
/// `postgres` crate's sync `Client` (a tokio `block_on` per call), anything built on a
/// bare `mio::Poll`, a C library with its own `poll` loop. Such a call blocks in
/// `epoll_wait`, which `patch_all` does not make cooperative, so in a greenlet it
/// stalls the whole hub (see [the module docs](super#nested-event-loops)). An
/// `Offload` moves the value to a pool thread for each call and back; the value must
/// be `Send` (not `Sync`: one call at a time).
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use greenweave_runtime::{sleep, spawn, threadpool::Offload};
///
/// // A value that owns an event loop, as a sync database client does.
/// let mut event_loop = Offload::new(mio::Poll::new().unwrap());
///
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let ticker = spawn(move || loop { sleep(Duration::from_millis(1)); t.set(t.get() + 1); });
///
/// // 30 ms inside epoll_wait, on a pool thread: the ticker keeps ticking meanwhile.
/// let ready = event_loop.run(|poll| {
///     let mut events = mio::Events::with_capacity(8);
///     poll.poll(&mut events, Some(Duration::from_millis(30))).map(|()| events.iter().count())
/// });
/// assert_eq!(ready.unwrap(), 0);
/// assert!(ticks.get() >= 3, "the hub ran while the event loop waited");
/// ticker.kill();
/// ```
///
/// With `postgres` (the greenlets that share the pool get concurrent queries):
///
/// ```ignore
/// let url = "host=127.0.0.1 user=postgres";
/// let mut db = Offload::new(spawn_blocking(move || postgres::Client::connect(url, NoTls))?);
/// let n: i32 = db.run(move |c| c.query_one("SELECT $1::int + 1", &[&41]))?.get(0);
/// ```
///
/// # The pool
///
/// Each call holds a pool thread for its whole duration (the value's event loop is
/// blocked in it), so N greenlets calling at once need N pool threads, or the calls
/// queue. [`Offload::new`] uses the [`default_pool`], of [`default_pool_size`] threads
/// (10, or the number of CPUs if more) unless [`set_default_pool_size`] was called
/// first thing; [`Offload::with_pool`] uses a pool of your own, sized for the
/// connections you keep.
///
/// # Kills and timeouts
///
/// A call already running on its thread cannot be stopped (Rust cannot cancel a
/// thread), and the pool thread owns the value until the call returns. So if the
/// waiting greenlet is killed or its [`Timeout`](crate::Timeout) expires, it unwinds
/// at once, as from any blocking call, and the call runs on: the `Offload` stays
/// *busy*. Its next use ([`run`](Self::run), [`get_mut`](Self::get_mut),
/// [`into_inner`](Self::into_inner)) first waits for that call to end and drops its
/// result; dropping the `Offload` lets the call end on its own and drops the value on
/// the pool thread. A call whose caller is interrupted while it still waits for an
/// earlier call never starts. The value is never used by two threads at once and
/// never lost. (That is why an `Offload` owns the value: a call borrowing the
/// greenlet's `&mut T` would have to hold the greenlet until the call ended, so no
/// timeout could be prompt.)
/// (A server-side operation can be cut short by the client's own means: postgres's
/// `Client::cancel_token`, taken before the call.)
///
/// [`default_pool_size`]: super::default_pool_size
/// [`set_default_pool_size`]: super::set_default_pool_size
pub struct Offload<T: Send + 'static> {
    slot: Slot<T>,
    /// `None`: the default pool.
    pool: Option<Arc<ThreadPool>>,
}

impl<T: Send + 'static> Offload<T> {
    /// Wraps `value`; its calls run on the [`default_pool`].
    ///
    /// ```
    /// let mut words = greenweave_runtime::threadpool::Offload::new(vec!["a"]);
    /// words.run(|w| w.push("b"));
    /// assert_eq!(words.into_inner(), ["a", "b"]);
    /// ```
    pub fn new(value: T) -> Offload<T> {
        Offload {
            slot: Slot::Idle(value),
            pool: None,
        }
    }

    /// Wraps `value`; its calls run on `pool` (share one pool between all the values
    /// that may be in use at once, sized for them).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use greenweave_runtime::threadpool::{Offload, ThreadPool};
    ///
    /// let pool = Arc::new(ThreadPool::new(2));
    /// let mut counter = Offload::with_pool(0_u64, pool.clone());
    /// assert_eq!(counter.run(|n| { *n += 1; *n }), 1);
    /// assert_eq!(pool.threads(), 1);
    /// ```
    pub fn with_pool(value: T, pool: Arc<ThreadPool>) -> Offload<T> {
        Offload {
            slot: Slot::Idle(value),
            pool: Some(pool),
        }
    }

    fn pool(&self) -> &ThreadPool {
        match &self.pool {
            Some(pool) => pool,
            None => default_pool(),
        }
    }

    /// Runs `f` with the value on a pool thread and returns its result; only the
    /// calling greenlet parks meanwhile. Waits first for a call an interrupted caller
    /// left running.
    ///
    /// ```
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    /// use greenweave_runtime::threadpool::Offload;
    ///
    /// let mut text = Offload::new(String::from("event"));
    /// let thread = text.run(|t| { t.push_str(" loop"); std::thread::current().name().map(String::from) });
    /// assert!(thread.unwrap().starts_with("greenweave-pool-"));
    ///
    /// // A panic comes back to the caller; the value stays (as a `&mut` would leave it).
    /// let err = catch_unwind(AssertUnwindSafe(|| text.run(|_| panic!("no such table"))));
    /// assert_eq!(err.unwrap_err().downcast_ref::<&str>(), Some(&"no such table"));
    /// assert_eq!(text.run(|t| t.clone()), "event loop");
    /// ```
    ///
    /// # Panics
    ///
    /// Resumes `f`'s panic, with its original payload. Unwinds with `GreenletExit` if
    /// the greenlet is killed, or with the timeout's payload if a `Timeout` expires,
    /// while it waits: the call runs on and the `Offload` stays busy until it ends (see
    /// [Kills and timeouts](Self#kills-and-timeouts)). Panics if the pool was shut
    /// down, and from then on, since the value went with the refused call.
    #[track_caller]
    pub fn run<F, R>(&mut self, f: F) -> R
    where
        F: FnOnce(&mut T) -> R + Send + 'static,
        R: Send + 'static,
    {
        let mut value = self.take();
        let call = move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(&mut value)))
                .map(|result| Box::new(result) as Box<dyn Any + Send>);
            Returned { value, outcome }
        };
        // The slot is `Lost` until `spawn` returns: it panics only if the pool refuses
        // the call, which then drops the value with it.
        self.slot = Slot::Busy(self.pool().spawn(call));
        match self.finish() {
            Some(Ok(result)) => match result.downcast::<R>() {
                Ok(result) => *result,
                Err(_) => unreachable!("greenweave: Offload: a call returned another type"),
            },
            Some(Err(payload)) => panic::resume_unwind(payload),
            None => unreachable!("greenweave: Offload: the call just started has no outcome"),
        }
    }

    /// The value, for a use that does not block (a getter, a cheap check); waits first
    /// for a call an interrupted caller left running.
    ///
    /// ```
    /// let mut v = greenweave_runtime::threadpool::Offload::new(vec![1, 2]);
    /// v.get_mut().push(3);
    /// assert_eq!(v.run(|v| v.len()), 3);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`run`](Self::run) when it waits; if the value was lost to a pool that was
    /// shut down.
    #[track_caller]
    pub fn get_mut(&mut self) -> &mut T {
        self.finish();
        match &mut self.slot {
            Slot::Idle(value) => value,
            _ => lost(),
        }
    }

    /// Unwraps the value; waits first for a call an interrupted caller left running.
    ///
    /// ```
    /// let mut n = greenweave_runtime::threadpool::Offload::new(41);
    /// n.run(|n| *n += 1);
    /// assert_eq!(n.into_inner(), 42);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`get_mut`](Self::get_mut).
    #[track_caller]
    pub fn into_inner(mut self) -> T {
        self.take()
    }

    /// Takes the value out (leaving the slot `Lost`), after any call in progress.
    #[track_caller]
    fn take(&mut self) -> T {
        // An earlier call whose caller was interrupted: nobody waits for its result.
        drop(self.finish());
        match mem::replace(&mut self.slot, Slot::Lost) {
            Slot::Idle(value) => value,
            _ => lost(),
        }
    }

    /// Waits for the call in progress, if any, puts the value back and returns the
    /// call's outcome. An interrupt while waiting unwinds and leaves the call in place.
    #[track_caller]
    fn finish(&mut self) -> Option<Outcome> {
        let Slot::Busy(handle) = &self.slot else {
            return None;
        };
        if let Err(interrupt) = handle.wait_or_interrupt() {
            crate::park::raise(interrupt);
        }
        let Slot::Busy(handle) = mem::replace(&mut self.slot, Slot::Lost) else {
            unreachable!("greenweave: Offload: the slot changed while waiting");
        };
        // The call has finished: joining does not wait. A `ThreadPool` runs every job
        // it accepted and the call catches `f`'s panic, so this is always `Ok`.
        let Ok(Ok(Returned { value, outcome })) = handle.join_or_interrupt() else {
            unreachable!("greenweave: Offload: a finished call gave no value back");
        };
        self.slot = Slot::Idle(value);
        Some(outcome)
    }
}

#[track_caller]
fn lost() -> ! {
    panic!(
        "greenweave: this Offload lost its value: a call was refused because its thread \
         pool was shut down"
    )
}

impl<T: Send + 'static> Drop for Offload<T> {
    /// Drops the value on the pool too (its destructor may run its event loop:
    /// `postgres::Client` says goodbye to the server) and returns at once; a busy
    /// value is dropped on its pool thread when its call ends. If the pool was shut
    /// down, the value is dropped here.
    fn drop(&mut self) {
        if let Slot::Idle(value) = mem::replace(&mut self.slot, Slot::Lost) {
            self.pool().spawn_detached(move || drop(value));
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Offload<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.slot {
            Slot::Idle(_) => "idle",
            Slot::Busy(handle) if handle.is_finished() => "finished",
            Slot::Busy(_) => "busy",
            Slot::Lost => "lost",
        };
        f.debug_struct("Offload")
            .field("type", &std::any::type_name::<T>())
            .field("state", &state)
            .finish()
    }
}
