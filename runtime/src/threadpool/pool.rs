//! [`ThreadPool`]: OS threads sharing one job queue, fed by greenlets of any hub.

use std::collections::VecDeque;
use std::fmt;
use std::panic;
use std::sync::PoisonError;

use super::handle::{self, BlockingHandle};
use crate::remote::{RemoteWaker, wait_for_thread};
use crate::spawn::JoinError;
use crate::thread_sync::{Arc, Condvar, Mutex, MutexGuard, thread};

type Job = Box<dyn handle::Job>;

/// A fixed-size pool of OS threads for work that would block a hub: blocking system
/// calls (file I/O, `getaddrinfo`, a C library) and CPU-bound computation (gevent's
/// `ThreadPool`; `multiprocessing.Pool` for CPU work).
///
/// A greenlet that waits for a job ([`run`](Self::run), [`map`](Self::map),
/// [`BlockingHandle::join`]) parks until it is done; the other greenlets of its thread
/// keep running. The pool is `Send + Sync`: share it (`Arc<ThreadPool>`, a
/// `static`) between greenlets and OS threads, each result goes back to the hub of
/// whoever waits for it. Threads are started on demand, up to [`size`](Self::size),
/// and are named `greenweave-pool-N`.
///
/// Dropping the pool closes it without waiting: jobs already queued still run, then
/// the threads exit on their own. [`shutdown`](Self::shutdown) does the same and parks
/// the caller until they have.
///
/// ```
/// use std::time::{Duration, Instant};
/// use greenweave_runtime::threadpool::ThreadPool;
///
/// let pool = ThreadPool::new(4);
/// let start = Instant::now();
/// // Four blocking sleeps (think: four blocking reads) at once, on four threads.
/// let out = pool.map(|i: u64| { std::thread::sleep(Duration::from_millis(50)); i * 10 }, 0..4);
/// assert_eq!(out, [0, 10, 20, 30]);
/// assert!(start.elapsed() < Duration::from_millis(190));
/// ```
pub struct ThreadPool {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    size: usize,
    pub(super) state: Mutex<State>,
    /// Signalled when a job is queued or the pool closes.
    work: Condvar,
}

pub(super) struct State {
    queue: VecDeque<Job>,
    /// Jobs running now.
    active: usize,
    /// Threads waiting for a job (including ones notified but not yet running).
    idle: usize,
    /// Threads started and not yet exited.
    alive: usize,
    /// Threads ever started (numbers their names).
    started: usize,
    /// Ids of the pool's threads, so `shutdown` can refuse to wait for itself.
    threads: Vec<thread::ThreadId>,
    closed: bool,
    /// Greenlets waiting in `shutdown` for the last thread to exit.
    exit_waiters: Vec<RemoteWaker>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// In a forked child: the pool's threads are gone, all but `me` if it is one of
    /// them (a job that forked, running on in the child). Jobs that were queued are
    /// not run here and never dropped (their handles report them discarded; see
    /// `handle`); jobs running on the other threads are lost with them. New threads
    /// start as jobs come.
    #[cfg(not(loom))]
    pub(super) fn after_fork(&mut self, me: thread::ThreadId) {
        crate::kept::keep(std::mem::take(&mut self.queue));
        crate::kept::keep(std::mem::take(&mut self.exit_waiters));
        let survives = self.threads.contains(&me);
        let n = usize::from(survives);
        self.threads.retain(|&t| t == me);
        (self.active, self.alive, self.started, self.idle) = (n, n, n, 0);
    }
}

impl ThreadPool {
    /// A pool of at most `size` threads (started as jobs arrive).
    ///
    /// ```
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(3);
    /// assert_eq!((pool.size(), pool.threads(), pool.queued(), pool.active()), (3, 0, 0, 0));
    /// ```
    ///
    /// # Panics
    ///
    /// If `size` is 0 (no job could ever run).
    #[track_caller]
    pub fn new(size: usize) -> ThreadPool {
        assert!(
            size > 0,
            "greenweave: ThreadPool::new(0): a thread pool needs at least one thread"
        );
        let pool = ThreadPool {
            inner: Arc::new(Inner {
                size,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    active: 0,
                    idle: 0,
                    alive: 0,
                    started: 0,
                    threads: Vec::new(),
                    closed: false,
                    exit_waiters: Vec::new(),
                }),
                work: Condvar::new(),
            }),
        };
        super::fork::register(&pool.inner);
        pool
    }

    /// Runs `f` on a pool thread and returns its value, parking only the calling
    /// greenlet meanwhile ([`spawn_blocking`](super::spawn_blocking) on this pool).
    ///
    /// ```
    /// use greenweave_runtime::threadpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1);
    /// let name = pool.run(|| std::thread::current().name().map(String::from));
    /// assert_eq!(name.as_deref(), Some("greenweave-pool-0"));
    /// ```
    ///
    /// # Panics
    ///
    /// Resumes `f`'s panic, with its original payload, in the caller. Panics if the
    /// pool was shut down. Unwinds if the greenlet is killed or a `Timeout` expires
    /// while it waits: `f` still runs to completion on its thread.
    #[track_caller]
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(value) => value,
            Err(JoinError::Panicked(payload)) => panic::resume_unwind(payload),
            Err(JoinError::Killed) => panic!("greenweave: a thread-pool job was discarded unrun"),
        }
    }

    /// Queues `f` and returns at once (the pool's `apply_async`); the job starts as soon
    /// as a thread is free. [`BlockingHandle::join`] waits for its value.
    ///
    /// ```
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(2);
    /// let a = pool.spawn(|| 2 + 2);
    /// let b = pool.spawn(|| "four".len());
    /// assert_eq!(a.join().unwrap(), b.join().unwrap());
    /// ```
    ///
    /// # Panics
    ///
    /// If the pool was shut down, or no thread at all can be started.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> BlockingHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, handle) = handle::job(f);
        self.submit(job);
        handle
    }

    /// The most threads the pool runs (the `n` of [`new`](Self::new)).
    ///
    /// ```
    /// assert_eq!(greenweave_runtime::threadpool::ThreadPool::new(8).size(), 8);
    /// ```
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Threads started and not yet exited (they start as jobs arrive).
    ///
    /// ```
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(8);
    /// pool.run(|| ());
    /// assert_eq!(pool.threads(), 1);
    /// ```
    pub fn threads(&self) -> usize {
        self.inner.lock().alive
    }

    /// Jobs waiting for a free thread.
    ///
    /// ```
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(1);
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let busy = pool.spawn(move || rx.recv());
    /// let waiting = pool.spawn(|| ());
    /// while pool.active() == 0 { std::thread::yield_now(); }
    /// assert_eq!(pool.queued(), 1);
    /// tx.send(()).unwrap();
    /// busy.join().unwrap().unwrap();
    /// waiting.join().unwrap();
    /// assert_eq!((pool.queued(), pool.active()), (0, 0));
    /// ```
    pub fn queued(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Jobs running now.
    ///
    /// ```
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(2);
    /// assert_eq!(pool.run(|| 1), 1);
    /// assert_eq!(pool.active(), 0);
    /// ```
    pub fn active(&self) -> usize {
        self.inner.lock().active
    }

    /// Closes the pool and parks the calling greenlet until every thread has exited:
    /// jobs already queued run first, new ones are refused (submitting panics).
    /// Calling it again, or from several greenlets, is fine.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = greenweave_runtime::threadpool::ThreadPool::new(2);
    /// let done = Arc::new(AtomicU32::new(0));
    /// for _ in 0..5 {
    ///     let done = done.clone();
    ///     drop(pool.spawn(move || done.fetch_add(1, Ordering::SeqCst)));
    /// }
    /// pool.shutdown();
    /// assert_eq!(done.load(Ordering::SeqCst), 5);
    /// assert_eq!(pool.threads(), 0);
    /// ```
    ///
    /// # Panics
    ///
    /// If called from one of the pool's own threads (it would wait for itself).
    /// Unwinds if the greenlet is killed or times out while it waits.
    #[track_caller]
    pub fn shutdown(&self) {
        {
            let state = self.close();
            assert!(
                !state.threads.contains(&thread::current().id()),
                "greenweave: ThreadPool::shutdown called from one of the pool's own threads: \
                 it would wait for itself to exit"
            );
            if state.alive == 0 {
                return;
            }
        }
        while self.inner.lock().alive > 0 {
            wait_for_thread(|waker| {
                let mut state = self.inner.lock();
                if state.alive == 0 {
                    drop(state);
                    waker.wake();
                } else {
                    state.exit_waiters.push(waker);
                }
            });
        }
    }

    /// Marks the pool closed and wakes every idle thread so it can exit.
    fn close(&self) -> MutexGuard<'_, State> {
        let mut state = self.inner.lock();
        state.closed = true;
        self.inner.work.notify_all();
        state
    }

    /// Queues `f` with no handle: its value is dropped on the pool thread. If the pool
    /// takes no more jobs (shut down, or no thread can start), `f` is dropped here
    /// unrun. Never panics, so a `Drop` impl can use it.
    pub(crate) fn spawn_detached<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let (job, handle) = handle::job(f);
        drop(handle);
        if let Err((job, _)) = self.try_submit(job) {
            drop(job);
        }
    }

    #[track_caller]
    pub(super) fn submit(&self, job: Job) {
        if let Err((job, refused)) = self.try_submit(job) {
            drop(job);
            match refused {
                Refused::Closed => {
                    panic!("greenweave: this ThreadPool was shut down; it takes no more jobs")
                }
                Refused::NoThread(err) => {
                    panic!("greenweave: cannot start a thread-pool thread: {err}")
                }
            }
        }
    }

    /// Queues `job`, starting a thread for it if need be; a job the pool cannot take
    /// comes back (to be dropped by the caller, outside the pool's lock).
    fn try_submit(&self, job: Job) -> Result<(), (Job, Refused)> {
        let mut state = self.inner.lock();
        if state.closed {
            return Err((job, Refused::Closed));
        }
        // More jobs than idle threads once this one is queued: start a thread (it takes
        // the lock, so it finds the job queued).
        let queued = state.queue.len() + 1;
        if queued > state.idle && state.started < self.inner.size {
            if let Err(err) = self.start_thread(&mut state) {
                if state.alive == 0 {
                    return Err((job, Refused::NoThread(err)));
                }
                // The threads already running will get to the job.
                log::warn!("greenweave: cannot start another thread-pool thread: {err}");
            }
        }
        state.queue.push_back(job);
        if state.idle > 0 {
            self.inner.work.notify_one();
        }
        Ok(())
    }

    fn start_thread(&self, state: &mut State) -> std::io::Result<()> {
        let inner = self.inner.clone();
        let name = format!("greenweave-pool-{}", state.started);
        let handle = thread::Builder::new()
            .name(name)
            .spawn(move || work(&inner))?;
        state.started += 1;
        state.alive += 1;
        state.threads.push(handle.thread().id());
        Ok(())
    }
}

/// Why the pool did not take a job.
enum Refused {
    /// It was shut down.
    Closed,
    /// It has no thread and cannot start one.
    NoThread(std::io::Error),
}

/// A pool thread's body: run jobs until the pool is closed and its queue is empty.
fn work(inner: &Inner) {
    let mut state = inner.lock();
    loop {
        if let Some(mut job) = state.queue.pop_front() {
            state.active += 1;
            drop(state);
            job.run(); // catches the work's panic
            inner.lock().active -= 1;
            job.deliver();
            state = inner.lock();
        } else if state.closed {
            break;
        } else {
            state.idle += 1;
            state = inner
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle -= 1;
        }
    }
    state.alive -= 1;
    let waiters = if state.alive == 0 {
        std::mem::take(&mut state.exit_waiters)
    } else {
        Vec::new()
    };
    drop(state);
    waiters.into_iter().for_each(RemoteWaker::wake);
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        drop(self.close());
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("ThreadPool")
            .field("size", &self.inner.size)
            .field("threads", &state.alive)
            .field("active", &state.active)
            .field("queued", &state.queue.len())
            .field("closed", &state.closed)
            .finish()
    }
}
