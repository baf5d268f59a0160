//! `map`, `imap`, `imap_unordered`: a function over an input, as pool jobs.
//!
//! The caller's iterator drives everything; no feeder greenlet. Each job, when it
//! ends (returns, panics, is killed, or is dropped unrun), appends its input index to
//! a completion log shared with the iterator and wakes it. The iterator starts new jobs
//! whenever it runs and a slot is free, collects the ended jobs' results, and yields
//! the next one in input order (`imap`) or the oldest (`imap_unordered`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::{Pool, Waiting, resume};
use crate::park::WaitQueue;
use crate::spawn::JoinHandle;

impl Pool {
    /// Runs `f` on every item of `input` as pool jobs (at most `size` at once) and
    /// returns the results in input order (gevent's `map`).
    ///
    /// ```
    /// let pool = greenweave_runtime::pool::Pool::new(3);
    /// let lengths = pool.map(|s: &str| s.len(), ["a", "bb", "ccc", "dddd"]);
    /// assert_eq!(lengths, [1, 2, 3, 4]);
    /// ```
    ///
    /// # Panics
    ///
    /// As soon as `f` panics, the other jobs are killed and waited for, then the panic
    /// resumes in the caller with the original payload. Panics if a job was killed by someone
    /// else (e.g. [`kill`](Pool::kill)). If the caller unwinds while waiting (killed,
    /// timed out), its jobs are killed.
    #[track_caller]
    pub fn map<I, F, R>(&self, f: F, input: I) -> Vec<R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Feed::new(self, f, input.into_iter(), Order::Input, usize::MAX).collect()
    }

    /// Like [`map`](Self::map), lazily: an iterator yielding the results in input
    /// order, each as soon as it and those before it are done (gevent's `imap`).
    ///
    /// Jobs start while the iterator is advanced: at most `size` run at once, and at
    /// most `size` finished results wait for the reader before no new job starts. A
    /// [`Group`](super::Group) has no such limits: the first `next()` starts a job
    /// for every item, so give it a finite input. Dropping the iterator kills the
    /// jobs still outstanding.
    ///
    /// A job's panic resumes from the first `next()` after it happened (results not
    /// yet yielded are dropped), the other jobs killed, as for [`map`](Self::map).
    ///
    /// ```
    /// use std::time::Duration;
    /// use greenweave_runtime::{pool::Pool, sleep};
    /// let pool = Pool::new(2);
    /// let slow_first = |ms: u64| { sleep(Duration::from_millis(ms)); ms };
    /// let out: Vec<u64> = pool.imap(slow_first, [30, 10, 20]).collect();
    /// assert_eq!(out, [30, 10, 20]);
    /// ```
    #[track_caller]
    pub fn imap<I, F, R>(&self, f: F, input: I) -> impl Iterator<Item = R> + use<I, F, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        let buffered = self.size().unwrap_or(usize::MAX);
        Feed::new(self, f, input.into_iter(), Order::Input, buffered)
    }

    /// Like [`imap`](Self::imap), yielding results in the order the jobs finish
    /// (gevent's `imap_unordered`). Same limits, cancellation and panics.
    ///
    /// ```
    /// use std::time::Duration;
    /// use greenweave_runtime::{pool::Pool, sleep};
    /// let pool = Pool::new(3);
    /// let nap = |ms: u64| { sleep(Duration::from_millis(ms)); ms };
    /// let out: Vec<u64> = pool.imap_unordered(nap, [60, 10, 35]).collect();
    /// assert_eq!(out, [10, 35, 60]);
    /// ```
    #[track_caller]
    pub fn imap_unordered<I, F, R>(&self, f: F, input: I) -> impl Iterator<Item = R> + use<I, F, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        let buffered = self.size().unwrap_or(usize::MAX);
        Feed::new(self, f, input.into_iter(), Order::Completion, buffered)
    }
}

/// What the jobs of one `Feed` share with it.
struct Log {
    /// Input indexes of jobs that ended, in the order they ended, not yet collected.
    ended: RefCell<VecDeque<u64>>,
    /// The iterator's caller, waiting for a job to end.
    waiter: WaitQueue,
}

/// Captured by each job: logs its end when dropped, however the job ends.
struct LogOnDrop {
    log: Rc<Log>,
    index: u64,
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.log.ended.borrow_mut().push_back(self.index);
        self.log.waiter.notify_one();
    }
}

/// The order a [`Feed`] yields its results in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// The input's (`map`, `imap`).
    Input,
    /// The order the jobs ended in (`imap_unordered`).
    Completion,
}

/// The iterator behind `map`, `imap` and `imap_unordered`.
struct Feed<It: Iterator, R> {
    pool: Pool,
    /// `None` once exhausted.
    input: Option<It>,
    f: Rc<dyn Fn(It::Item) -> R>,
    order: Order,
    /// Finished results allowed to wait for the reader before no new job starts.
    max_buffered: usize,
    /// Jobs started and not yet ended, by input index.
    jobs: HashMap<u64, JoinHandle<R>>,
    /// Results not yet yielded, with their input index, in the order the jobs ended.
    ready: VecDeque<(u64, R)>,
    log: Rc<Log>,
    next_in: u64,
    /// `imap`: the input index to yield next.
    next_out: u64,
}

impl<It: Iterator, R: 'static> Feed<It, R>
where
    It::Item: 'static,
{
    fn new<F>(pool: &Pool, f: F, input: It, order: Order, max_buffered: usize) -> Self
    where
        F: Fn(It::Item) -> R + 'static,
    {
        Feed {
            pool: pool.clone(),
            input: Some(input),
            f: Rc::new(f),
            order,
            max_buffered,
            jobs: HashMap::new(),
            ready: VecDeque::new(),
            log: Rc::new(Log {
                ended: RefCell::new(VecDeque::new()),
                waiter: WaitQueue::new(),
            }),
            next_in: 0,
            next_out: 0,
        }
    }

    /// Starts jobs while a slot is free and the reader is not too far behind.
    fn refill(&mut self) {
        while !self.pool.is_full() && self.ready.len() < self.max_buffered {
            let Some(item) = self.input.as_mut().and_then(Iterator::next) else {
                self.input = None;
                return;
            };
            self.start(item);
        }
    }

    /// Starts a job for `item`; the caller has checked that a slot is free.
    fn start(&mut self, item: It::Item) {
        let index = self.next_in;
        self.next_in += 1;
        let f = self.f.clone();
        let logged = LogOnDrop {
            log: self.log.clone(),
            index,
        };
        let handle = self.pool.spawn_member(move || {
            let _logged = logged;
            f(item)
        });
        self.jobs.insert(index, handle);
    }

    /// Moves the results of the jobs that ended since the last look into `ready`. A
    /// failed job fails the whole iterator at once: the other jobs are killed and its
    /// panic resumes here, without waiting for the results before it.
    fn collect_ended(&mut self) {
        let ended: Vec<u64> = self.log.ended.borrow_mut().drain(..).collect();
        for index in ended {
            let handle = self
                .jobs
                .remove(&index)
                .expect("an ended job was outstanding");
            // It logged its end as its last act, so this returns at once; `join` still
            // makes sure its greenlet has fully finished.
            match handle.join() {
                Ok(value) => self.ready.push_back((index, value)),
                Err(error) => {
                    self.cancel();
                    resume(error);
                }
            }
        }
    }

    /// Where in `ready` the result to yield next is, if it is there.
    fn pick(&self) -> Option<usize> {
        if self.order == Order::Input {
            self.ready.iter().position(|&(i, _)| i == self.next_out)
        } else if self.ready.is_empty() {
            None
        } else {
            Some(0)
        }
    }

    /// Kills every outstanding job and waits until they are gone.
    fn cancel(&mut self) {
        let jobs: Vec<JoinHandle<R>> = self.jobs.drain().map(|(_, h)| h).collect();
        crate::spawn::killall(&jobs);
    }
}

impl<It: Iterator, R: 'static> Iterator for Feed<It, R>
where
    It::Item: 'static,
{
    type Item = R;

    #[track_caller]
    fn next(&mut self) -> Option<R> {
        loop {
            self.collect_ended();
            if let Some(pos) = self.pick() {
                let (_, value) = self.ready.remove(pos).expect("picked from ready");
                if self.order == Order::Input {
                    self.next_out += 1;
                }
                self.refill();
                return Some(value);
            }
            self.refill();
            if self.jobs.is_empty() {
                let Some(item) = self.input.as_mut().and_then(Iterator::next) else {
                    self.input = None;
                    return None;
                };
                // The pool is full with other users' jobs: wait for a slot.
                self.pool.wait_for_slot(None);
                self.start(item);
                continue;
            }
            while self.log.ended.borrow().is_empty() {
                self.log
                    .waiter
                    .wait_or_raise(&Waiting::Job(&self.pool.inner), None);
            }
        }
    }
}

impl<It: Iterator, R> Drop for Feed<It, R> {
    fn drop(&mut self) {
        // Must not block: this may run while the caller unwinds from a kill.
        for handle in self.jobs.values() {
            handle.kill_nowait();
        }
    }
}

/// A job the caller waits for; killed if the caller stops waiting (unwinds).
pub(super) struct KillOnDrop<T>(Option<JoinHandle<T>>);

impl<T: 'static> KillOnDrop<T> {
    pub(super) fn new(handle: JoinHandle<T>) -> Self {
        KillOnDrop(Some(handle))
    }

    /// Waits for the job; its value, or its panic resumed here.
    #[track_caller]
    pub(super) fn join(mut self) -> T {
        let handle = self.0.as_ref().expect("joined once");
        handle.wait();
        let handle = self.0.take().expect("joined once");
        handle.join().unwrap_or_else(|e| resume(e))
    }
}

impl<T> Drop for KillOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.kill_nowait();
        }
    }
}
