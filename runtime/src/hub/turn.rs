//! One turn of the hub greenlet's loop: maintenance (timers, the reactor,
//! cross-thread wake-ups, signals, memory trim, and the deadlock check when nothing
//! can ever be woken) and a run of the greenlets that are ready. The rules (what a
//! turn runs, when maintenance happens, when it may sleep) are in the `hub` module's
//! docs.

use std::io;
use std::time::{Duration, Instant};

use super::{HubStop, MAINTENANCE_INTERVAL, with};
use crate::coop::Maintenance;
use crate::hub::Hub;
use crate::remote;
use crate::signals;
use crate::task::{Interrupt, TaskState, Wake};
use crate::timer::Action;

impl Hub {
    /// Runs the greenlets that are ready now. Returns `false` if the hub must stop.
    fn run_ready(&self) -> bool {
        let mut budget = self.ready.len();
        self.stats.run_queue_len(budget);
        // Direct switches between tasks (`take_direct`) count runs too: once
        // maintenance is due, the turn ends early.
        while budget > 0 && self.runs_since_maintenance.get() < MAINTENANCE_INTERVAL {
            budget -= 1;
            let Some(task) = self.ready.pop() else {
                break;
            };
            if task.state() != TaskState::Ready {
                continue;
            }
            task.start_running();
            self.stats.count_switch();
            self.ready.prefetch_next();
            let back = task.greenlet.switch(());
            if back.is::<HubStop>() {
                return false;
            }
            self.runs_since_maintenance
                .set(self.runs_since_maintenance.get() + 1);
        }
        true
    }

    /// Fires timers, polls I/O (blocking only if nothing is ready) and runs
    /// cross-thread wake-ups.
    fn maintain(&self) {
        self.runs_since_maintenance.set(0);
        self.run_maintenance_hook(Maintenance::Pass);
        if self.stats.entry.dump_requested() {
            crate::dump::answer_requests(self);
        }
        signals::end_interrupted_waits(self, &self.signals_seen);
        if !self.ready.is_empty()
            && self.timers.borrow().next_deadline().is_none()
            && !self.waits_on_os()
        {
            // Nothing could be due and nothing can arrive from the OS: no clock read
            // (but now and then, for `stats`), no `epoll_wait`.
            self.stats.pass_without_clock();
            self.trim.busy_pass(self);
            return;
        }
        let mut now = Instant::now();
        self.stats.clock_read(now);
        self.fire_timers(now);
        let mut timeout = if !self.ready.is_empty() {
            Some(Duration::ZERO)
        } else if let Some(at) = self.timers.borrow().next_deadline() {
            Some(at.saturating_duration_since(now))
        } else if self.waits_on_os() && !self.only_external_waits_and_alone() {
            None
        } else {
            crate::deadlock::deliver(self);
            return;
        };
        if timeout == Some(Duration::ZERO) {
            self.trim.busy_pass(self);
        } else {
            // Idle: give memory back first, a bounded step at a time (see `trim`); a
            // step that leaves work makes this a look at the reactor, not a sleep.
            timeout = self.trim.before_sleep(self, now, timeout);
        }
        let sleeps = timeout != Some(Duration::ZERO);
        if sleeps {
            self.run_maintenance_hook(Maintenance::BeforeSleep);
            self.stats.sleeping();
        }
        self.poll(timeout);
        if sleeps {
            let before = now;
            now = Instant::now();
            self.stats.woke(before, now);
            self.stats.clock_read(now);
            self.run_maintenance_hook(Maintenance::AfterSleep);
            // A handler that ran during the sleep ended it (the signal, or the hub's
            // waker written by `run_signal_handler`).
            signals::end_interrupted_waits(self, &self.signals_seen);
            self.fire_timers(now);
        }
    }

    fn run_maintenance_hook(&self, phase: Maintenance) {
        if let Some(hook) = self.maintenance_hook.get() {
            hook(phase);
        }
    }

    /// Whether anything can arrive through the reactor: a greenlet waits for an fd,
    /// another thread may wake one of ours, or a signal may end a wait (when signal
    /// handlers that say so are installed; see `signals`).
    fn waits_on_os(&self) -> bool {
        !self.io.borrow().is_empty()
            || self.remote.borrow().outstanding() > 0
            || self.external_waits.get() > 0
            || self.signal_may_wake()
    }

    /// Whether a greenlet waits in a wait a signal may end, and handlers that end such
    /// waits are installed.
    fn signal_may_wake(&self) -> bool {
        self.signal_waits.get() > 0 && signals::expected()
    }

    /// Whether the only hope left is an external wait (a futex) that no other thread
    /// could end, because this process has no other thread. With other threads the
    /// hub waits: any of them may yet release the lock.
    fn only_external_waits_and_alone(&self) -> bool {
        self.io.borrow().is_empty()
            && self.remote.borrow().outstanding() == 0
            && !self.signal_may_wake()
            && self.external_waits.get() > 0
            && crate::sys::process_thread_count() == Some(1)
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let Some(action) = self.timers.borrow_mut().pop_due(now) else {
                break;
            };
            match action {
                Action::Wake(token) => {
                    token.wake(Wake::TimedOut);
                }
                Action::Timeout { task, id } => {
                    if let Some(task) = task.upgrade() {
                        task.interrupt(Interrupt::TimedOut(id));
                    }
                }
            }
        }
    }

    fn poll(&self, timeout: Option<Duration>) {
        let mut events = self.events.borrow_mut();
        if let Err(err) = self.poll.borrow_mut().poll(&mut events, timeout) {
            if err.kind() != io::ErrorKind::Interrupted {
                log::error!(target: crate::log_targets::HUB, "epoll_wait failed: {err}");
            }
            return;
        }
        self.stats.count_epoll(events.iter().count());
        for event in events.iter() {
            let token = event.token();
            if token == remote::WAKER_TOKEN {
                self.remote.borrow().run_pending(self);
            } else {
                crate::io::dispatch(self, event);
            }
        }
    }
}

/// The hub greenlet's body.
pub(super) fn run_hub() {
    loop {
        let keep_going = with(|hub| {
            if hub.ready.is_empty() || hub.runs_since_maintenance.get() >= MAINTENANCE_INTERVAL {
                hub.maintain();
            }
            hub.run_ready()
        });
        if !keep_going {
            return;
        }
    }
}
