//! Spawning greenlets as tasks, joining and killing them.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_greenlet::{self as greenlet, GreenletExit};

use crate::fork::ChildEnd;
use crate::hub;
use crate::task::{Describe, Interrupt, Task, TaskState};
use crate::time::deadline_after;

mod error;
mod many;

pub use error::{JoinError, JoinTimeoutError};
pub use many::{iwait, joinall, killall, wait_any};

/// Spawns greenlets with a name or a stack size.
#[derive(Clone, Debug, Default)]
#[must_use = "a Builder does nothing until `spawn` is called"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Defaults: no name, the thread's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (shown in panics, `greenlets()` and deadlock reports).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Usable stack size in bytes.
    ///
    /// # Panics
    ///
    /// If out of the range the greenlet layer accepts (16 KiB to 1 GiB).
    #[track_caller]
    pub fn stack_size(mut self, size: usize) -> Builder {
        // Validate now, where the caller can see the panic's location.
        let _ = greenlet::Builder::new().stack_size(size);
        self.stack_size = Some(size);
        self
    }

    /// Spawns `f` in a new greenlet; it runs when the spawner next blocks or yields.
    ///
    /// # Panics
    ///
    /// If no stack can be allocated ([`try_spawn`](Self::try_spawn) returns the error).
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.try_spawn(f)
            .unwrap_or_else(|e| panic!("greenweave: cannot spawn a greenlet: {e}"))
    }

    /// Like [`spawn`](Self::spawn), returning an error if no stack can be allocated (out
    /// of memory or of kernel memory mappings).
    #[track_caller]
    pub fn try_spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let location = Location::caller();
        hub::with(|hub| {
            let mut builder = greenlet::Builder::new().parent(&hub.greenlet);
            if let Some(name) = self.name {
                builder = builder.name(name);
            }
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            let g = builder.try_build(move |_| run_task(f))?;
            let task = hub.new_task(g, location);
            task.attach_spawned();
            hub.register(&task);
            hub.schedule(task.clone());
            Ok(JoinHandle {
                task,
                _result: PhantomData,
            })
        })
    }
}

/// The body of every spawned greenlet.
fn run_task<T: 'static>(f: impl FnOnce() -> T) {
    let task = hub::current_task();
    let outcome = if task.kill_posted() {
        // Killed before it started: it never runs.
        drop(f);
        Err(JoinError::Killed)
    } else {
        panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            if payload.is::<GreenletExit>() {
                JoinError::Killed
            } else {
                JoinError::Panicked(payload)
            }
        })
    };
    let here = hub::Here::new();
    let hub = hub::get(&here);
    if hub.fork_root.get() == task.id() {
        // The spawned greenlet that forked, in the child: its return ends the process.
        let end = if outcome.is_ok() {
            ChildEnd::Returned
        } else {
            ChildEnd::Died
        };
        crate::fork::exit_child(end);
    }
    task.finish(smallbox::smallbox!(outcome));
    // Locals may run user destructors; drop them while the greenlet still exists.
    drop(task.take_rare());
    hub.unregister(&task);
    task.joiners.notify_all();
    // Break the greenlet -> task -> greenlet cycle.
    task.detach();
    hub.finish_into_next(&task.greenlet);
}

/// Spawns `f` in a new greenlet (gevent's `spawn`). It starts when the spawner next
/// blocks or yields; [`JoinHandle::join`] returns its value.
///
/// ```
/// let h = greenweave_runtime::spawn(|| 6 * 7);
/// assert_eq!(h.join().unwrap(), 42);
/// ```
///
/// # Panics
///
/// If no stack can be allocated (see [`Builder::try_spawn`]).
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Builder::new().spawn(f)
}

/// Spawns `f` to start after `delay` (gevent's `spawn_later`); killing it before then
/// means it never runs.
#[track_caller]
pub fn spawn_later<F, T>(delay: Duration, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Builder::new().spawn(move || {
        crate::sleep(delay);
        f()
    })
}

/// Owns the right to a spawned greenlet's result (gevent's `Greenlet` object).
/// Dropping it detaches the greenlet, which keeps running.
///
/// A greenlet lives on the thread that spawned it, so its handle cannot leave that
/// thread:
///
/// ```compile_fail
/// let h = greenweave_runtime::spawn(|| 1);
/// std::thread::spawn(move || h.join());
/// ```
pub struct JoinHandle<T> {
    /// The task, which holds the result once it finishes.
    task: Rc<Task>,
    _result: PhantomData<T>,
}

/// What a join waits on, for deadlock reports.
struct JoinWait<'a>(&'a Task);

impl Describe for JoinWait<'_> {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Join
    }

    fn describe(&self, out: &mut String) {
        out.push_str(&format!("join of {}", self.0));
    }
}

impl<T> JoinHandle<T> {
    /// Waits for the greenlet to finish and returns its value.
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the payload if it panicked, [`JoinError::Killed`]
    /// if it was killed.
    ///
    /// # Panics
    ///
    /// If called from the greenlet itself (it would wait forever).
    #[track_caller]
    pub fn join(self) -> Result<T, JoinError>
    where
        T: 'static,
    {
        self.wait_until(None);
        self.take()
    }

    /// Like [`join`](Self::join), giving up after `timeout`; the handle comes back in
    /// [`JoinTimeoutError::Elapsed`].
    #[track_caller]
    pub fn join_timeout(self, timeout: Duration) -> Result<T, JoinTimeoutError<T>>
    where
        T: 'static,
    {
        if self.wait_until(deadline_after(timeout)) {
            self.take().map_err(JoinTimeoutError::Join)
        } else {
            Err(JoinTimeoutError::Elapsed(self))
        }
    }

    /// Waits for the greenlet to finish without taking its result.
    #[track_caller]
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Waits up to `timeout`; returns whether it finished.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_after(timeout))
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        while !self.is_finished() {
            self.assert_not_self("join");
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.task
                .joiners
                .wait_or_raise(&JoinWait(&self.task), deadline);
        }
        true
    }

    fn take(self) -> Result<T, JoinError>
    where
        T: 'static,
    {
        // A finished greenlet stored its result, unless a fork left it behind (it
        // reads as killed in the child; see `fork`).
        let Some(result) = self.task.take_result() else {
            return Err(JoinError::Killed);
        };
        let result = match result.downcast::<Result<T, JoinError>>() {
            Ok(result) => result.into_inner(),
            Err(_) => unreachable!("a JoinHandle<T>'s task stores a Result<T, JoinError>"),
        };
        let task = self.task;
        hub::try_with_existing(move |hub| hub.recycle(task));
        result
    }

    #[track_caller]
    fn assert_not_self(&self, what: &str) {
        assert!(
            !self.task.greenlet.is_current(),
            "greenweave: {} cannot {what} itself: it would wait for ever; \
             {what} it from another greenlet",
            self.task
        );
    }

    /// Kills the greenlet and waits until it has died (gevent's default `kill`).
    ///
    /// The kill is delivered **once**, at the greenlet's current or next blocking point:
    /// a Rust-level blocking call unwinds with [`GreenletExit`], running destructors
    /// (which may block normally); a patched libc call inside a hook (`greenweave-monkey`)
    /// fails with `ECANCELED` instead. A greenlet that has not started never runs.
    /// A greenlet that catches the unwind (`catch_unwind`) or handles the error and goes
    /// on is not killed again: it runs normally, and this call waits until it finishes
    /// on its own, for ever if it never does (use [`kill_timeout`](Self::kill_timeout)
    /// to bound the wait); a later kill is delivered again. Killing a finished greenlet
    /// does nothing. Killing the current greenlet unwinds it at once with
    /// `GreenletExit` (once: catching it leaves nothing pending).
    ///
    /// ```
    /// use std::time::Duration;
    /// use greenweave_runtime::{sleep, spawn, yield_now};
    ///
    /// let h = spawn(|| sleep(Duration::from_secs(1000)));
    /// yield_now(); // it starts and parks in its sleep
    /// h.kill();
    /// assert!(h.is_finished());
    /// ```
    ///
    /// # Panics
    ///
    /// Unwinds with `GreenletExit` if the caller is itself killed while it waits (or
    /// with the payload of a [`Timeout`](crate::Timeout) of the caller that expires).
    #[track_caller]
    pub fn kill(&self) {
        self.kill_timeout(Duration::MAX);
    }

    /// Kills the greenlet as [`kill`](Self::kill) does, waiting at most `timeout` for
    /// it to die (gevent's `kill(timeout=...)`); returns whether it has died. `false`
    /// means it caught the kill and lives on, or has not reached a blocking point yet;
    /// the kill was delivered or stays pending either way. A `timeout` too large to be
    /// a deadline waits for ever; zero only sends the kill (and says whether the
    /// greenlet had already finished).
    ///
    /// ```
    /// use std::panic::catch_unwind;
    /// use std::time::Duration;
    /// use greenweave_runtime::{sleep, spawn, yield_now};
    ///
    /// let stubborn = spawn(|| loop {
    ///     // Catches its kills and goes on.
    ///     let _ = catch_unwind(|| sleep(Duration::from_millis(1)));
    /// });
    /// yield_now();
    /// assert!(!stubborn.kill_timeout(Duration::from_millis(10)));
    /// assert!(!stubborn.is_finished());
    /// ```
    ///
    /// # Panics
    ///
    /// As [`kill`](Self::kill).
    #[track_caller]
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        if self.task.greenlet.is_current() {
            // Delivered here, now: nothing stays pending.
            panic::resume_unwind(Box::new(GreenletExit));
        }
        self.kill_nowait();
        self.wait_until(deadline_after(timeout))
    }

    /// Asks the greenlet to die at its current or next blocking point and returns at
    /// once (see [`kill`](Self::kill) for how the kill is delivered).
    pub fn kill_nowait(&self) {
        self.task.interrupt(Interrupt::Killed);
    }

    /// Whether the greenlet has finished (returned, panicked or was killed).
    pub fn is_finished(&self) -> bool {
        self.task.state() == TaskState::Done
    }

    /// The greenlet's name.
    pub fn name(&self) -> Option<&str> {
        self.task.name.as_deref()
    }

    /// The greenlet's unique id.
    pub fn id(&self) -> u64 {
        self.task.id()
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinHandle({})", self.task)
    }
}
