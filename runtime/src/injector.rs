//! The hub's injector: the queue through which other OS threads hand wake-ups to a
//! hub, and the count that tells the hub whether any may still arrive.
//!
//! The protocol (checked by loom, see the tests below):
//!
//! - A wake-up is counted ([`expect`](Injector::expect)) before it can be injected: a
//!   `RemoteWaker` counts itself when it is made, on the hub's thread, before its
//!   greenlet parks; a `ThreadWaker` counts just before it injects (until then the hub
//!   counts the external wait it ends).
//! - [`inject`](Injector::inject) queues the item under the lock, *then* raises the
//!   signal (the hub's eventfd, which ends its `epoll_wait`).
//! - The hub sleeps only while something is outstanding (or an external wait is in
//!   progress), and after every signal [`drain`](Injector::drain)s: it takes the whole
//!   queue, handles each item, and only then uncounts it.
//! - [`forget`](Injector::forget) uncounts a wake-up that will never come (a
//!   `RemoteWaker` dropped unwoken) and raises the signal, so the hub re-checks whether
//!   anything can still wake its greenlets.
//!
//! So an item injected while the hub goes to sleep is seen by the drain its signal
//! triggers, and the hub never concludes that nothing can arrive while an item is
//! queued but not handled.

use crate::thread_sync::{AtomicUsize, Mutex, Ordering};

/// Wakes the hub's thread from any thread: what ends the hub's sleep.
pub(crate) trait Signal: Send + Sync {
    /// Makes the hub's current or next sleep return.
    fn raise(&self);
}

impl Signal for crate::sys::EventFd {
    fn raise(&self) {
        self.wake();
    }
}

/// Wake-ups for one hub, queued by any thread (see the module docs for the protocol).
pub(crate) struct Injector<T, S> {
    signal: S,
    queue: Mutex<Vec<T>>,
    /// Wake-ups counted and not yet handled.
    outstanding: AtomicUsize,
}

impl<T, S: Signal> Injector<T, S> {
    pub(crate) fn new(signal: S) -> Injector<T, S> {
        Injector {
            signal,
            queue: Mutex::new(Vec::new()),
            outstanding: AtomicUsize::new(0),
        }
    }

    /// Wake-ups counted and not yet handled: while this is non-zero the hub may sleep
    /// waiting for them.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Counts a wake-up that will be injected (or forgotten) later.
    pub(crate) fn expect(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Uncounts an expected wake-up that will never be injected, and lets the hub
    /// re-check.
    pub(crate) fn forget(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
        self.signal.raise();
    }

    /// Wakes the hub without queueing anything (a signal handler on the hub's thread
    /// that has interrupted waits to report).
    pub(crate) fn raise(&self) {
        self.signal.raise();
    }

    /// Queues an expected wake-up for the hub and wakes it (from any thread).
    pub(crate) fn inject(&self, item: T) {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(item);
        self.signal.raise();
    }

    /// Handles every queued wake-up (on the hub's thread, after the signal woke it),
    /// uncounting each once handled.
    pub(crate) fn drain(&self, mut handle: impl FnMut(T)) {
        let pending = std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for item in pending {
            handle(item);
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
    }

    #[cfg(all(test, loom))]
    fn signal(&self) -> &S {
        &self.signal
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::{Injector, Signal};
    use crate::loom_model::Event;
    use crate::thread_sync::{Arc, thread};

    /// The hub's eventfd as its `epoll_wait` sees it: a raise ends the current or next
    /// sleep.
    impl Signal for Event {
        fn raise(&self) {
            self.set();
        }
    }

    /// Item values: which come from `ThreadWaker`s (each ends one external wait).
    const EXTERNAL: u32 = 100;

    /// The hub's side, as `Hub::maintain` and `Hub::poll` run it: it sleeps only while
    /// a wake-up may still come (one is outstanding, or an external wait is in
    /// progress), and drains after every signal. Returns the items handled.
    fn hub(injector: &Injector<u32, Event>, mut external_waits: usize) -> Vec<u32> {
        let mut handled = Vec::new();
        while injector.outstanding() > 0 || external_waits > 0 {
            injector.signal().wait_and_reset();
            injector.drain(|item| {
                if item >= EXTERNAL {
                    external_waits -= 1;
                }
                handled.push(item);
            });
        }
        handled.sort_unstable();
        handled
    }

    /// Two `RemoteWaker`s (counted on the hub's thread): one woken from another thread,
    /// one dropped unwoken there. The wake is never lost, the hub stops waiting once
    /// neither can come, and the dropped one brings nothing.
    #[test]
    fn remote_wakes_racing_the_hub_sleep_are_never_lost() {
        loom::model(|| {
            let injector = Arc::new(Injector::new(Event::new()));
            injector.expect();
            injector.expect();
            let woken = {
                let injector = injector.clone();
                thread::spawn(move || injector.inject(1))
            };
            let dropped = {
                let injector = injector.clone();
                thread::spawn(move || injector.forget())
            };
            assert_eq!(hub(&injector, 0), [1]);
            woken.join().unwrap();
            dropped.join().unwrap();
            assert_eq!(injector.outstanding(), 0);
        });
    }

    /// Two `ThreadWaker`s from two threads, each ending one external wait the hub
    /// counts: each counts itself only as it wakes, and the hub sees both.
    #[test]
    fn thread_wakes_from_two_threads_both_arrive() {
        loom::model(|| {
            let injector = Arc::new(Injector::new(Event::new()));
            let wakers: Vec<_> = [EXTERNAL, EXTERNAL + 1]
                .into_iter()
                .map(|item| {
                    let injector = injector.clone();
                    thread::spawn(move || {
                        injector.expect();
                        injector.inject(item);
                    })
                })
                .collect();
            assert_eq!(hub(&injector, 2), [EXTERNAL, EXTERNAL + 1]);
            for waker in wakers {
                waker.join().unwrap();
            }
            assert_eq!(injector.outstanding(), 0);
        });
    }
}
