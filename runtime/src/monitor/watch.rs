//! The monitor thread: samples every hub's switch count and reports stalls.
//!
//! Every sampling period (a quarter of the threshold, between 1 and 50 ms) it reads
//! each hub's switch counter and its count of sleeps in `epoll_wait`. A hub whose
//! counters have not moved, and which is not asleep in `epoll_wait`, has been running
//! one greenlet (or its own loop) since they last moved: once that has lasted longer
//! than the threshold, the monitor takes a [snapshot](super::capture) of the hub's
//! thread and reports the stall, once. When the counters move again it reports the
//! stall's length. Time the thread spent waiting for a CPU (an overloaded machine,
//! read from `/proc/self/task/TID/schedstat`) does not count toward the threshold.
//! A stall is not reported while the hub has no other greenlet,
//! since then nothing is kept waiting (a thread's main greenlet doing long work after
//! its greenlets finished, say).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use super::capture::{self, Captured, Running};
use super::registry::{self, HubEntry};
use super::sys;
use crate::dump::Seconds;

/// How long a snapshot of a stalled hub's thread may take.
const SNAPSHOT_PATIENCE: Duration = Duration::from_millis(500);

/// Tells the monitor thread to stop.
#[derive(Default)]
pub(crate) struct StopFlag {
    stop: Mutex<bool>,
    cv: Condvar,
}

impl StopFlag {
    pub(crate) fn raise(&self) {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }

    /// Waits `period`; `true` if told to stop meanwhile.
    fn wait(&self, period: Duration) -> bool {
        let stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        let (stop, _) = self
            .cv
            .wait_timeout_while(stop, period, |stop| !*stop)
            .unwrap_or_else(PoisonError::into_inner);
        *stop
    }
}

/// The sampling period for a threshold.
pub(crate) fn period(threshold: Duration) -> Duration {
    (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

/// The monitor thread's body: samples every `period`, and hands what it finds to a
/// reporter thread, which symbolizes stacks and logs (symbolizing may take long the
/// first time, as it reads the binary's debug info, and must not delay the samples
/// that time stalls).
pub(crate) fn run(threshold: Duration, stop: Arc<StopFlag>) {
    let period = period(threshold);
    let (events, inbox) = mpsc::channel::<Event>();
    let reporter = std::thread::Builder::new()
        .name("greenweave-monitor-report".to_owned())
        .spawn(move || {
            for event in inbox {
                event.report();
            }
        });
    let reporter = match reporter {
        Ok(reporter) => reporter,
        Err(e) => {
            super::report(
                log::Level::Error,
                &format!("cannot start the monitor's reporter thread: {e}; no monitor"),
            );
            return;
        }
    };
    let mut watches: HashMap<u64, Watch> = HashMap::new();
    loop {
        let stopping = stop.wait(period);
        let now = Instant::now();
        let hubs = registry::all();
        watches.retain(|serial, _| hubs.iter().any(|h| h.serial == *serial));
        for entry in &hubs {
            watches
                .entry(entry.serial)
                .or_insert_with(|| Watch::new(entry))
                .observe(entry, now, threshold, &events);
        }
        // The pass after the stop request still runs: a stall that ended before
        // `stop()` gets its closing line.
        if stopping {
            break;
        }
    }
    // Everything sent is reported before `stop()` returns.
    drop(events);
    let _ = reporter.join();
}

/// What the reporter thread logs, in order.
enum Event {
    /// A stall began.
    Stall {
        entry: Arc<HubEntry>,
        who: String,
        busy: Duration,
        others: usize,
        captured: Result<Captured, capture::Failure>,
    },
    /// The stall of `entry`'s hub, held by `who`, ended after `lasted`.
    End {
        entry: Arc<HubEntry>,
        who: String,
        lasted: Duration,
    },
}

impl Event {
    fn report(self) {
        let message = match self {
            Event::Stall {
                entry,
                who,
                busy,
                others,
                captured,
            } => {
                let trace = match captured {
                    Ok(captured) => match captured.no_stack() {
                        None => captured.resolve().backtrace.to_string(),
                        Some(why) => format!("    (no stack: {why})\n"),
                    },
                    Err(why) => format!("    (no stack: {why})\n"),
                };
                format!(
                    "{}: {who} has run for {} without switching; {others} other greenlet{} of \
                     this hub cannot run meanwhile. Its stack:\n{}",
                    thread(&entry),
                    Seconds(busy),
                    if others == 1 { "" } else { "s" },
                    trace.trim_end(),
                )
            }
            Event::End { entry, who, lasted } => format!(
                "{}: the stall in {who} ended after about {}",
                thread(&entry),
                Seconds(lasted)
            ),
        };
        super::report(log::Level::Warn, &message);
    }
}

/// What the monitor knows of one hub.
struct Watch {
    switches: u64,
    sleeps: u64,
    /// When the counters were first seen at their present values with the hub awake
    /// (`None` while it sleeps in `epoll_wait`).
    busy_since: Option<Instant>,
    /// The thread's time spent waiting for a CPU when the run was first seen going
    /// on: a run that lasts because the machine is overloaded is no stall.
    waited_before: Option<Duration>,
    stall: Option<Stall>,
}

/// A stall in progress.
struct Stall {
    /// Who holds the hub, for the closing line; `None` for a stall not reported.
    reported: Option<String>,
}

impl Watch {
    fn new(entry: &HubEntry) -> Watch {
        Watch {
            switches: entry.switches.load(Ordering::Relaxed),
            sleeps: entry.sleeps.load(Ordering::Relaxed),
            busy_since: None,
            waited_before: None,
            stall: None,
        }
    }

    fn observe(
        &mut self,
        entry: &Arc<HubEntry>,
        now: Instant,
        threshold: Duration,
        events: &mpsc::Sender<Event>,
    ) {
        let switches = entry.switches.load(Ordering::Relaxed);
        let sleeps = entry.sleeps.load(Ordering::Relaxed);
        let moved = switches != self.switches || sleeps != self.sleeps;
        let asleep = sleeps % 2 == 1;
        if moved || asleep {
            if let (Some(stall), Some(since)) = (self.stall.take(), self.busy_since) {
                if let Some(who) = stall.reported {
                    let _ = events.send(Event::End {
                        entry: entry.clone(),
                        who,
                        lasted: now - since,
                    });
                }
            }
            self.switches = switches;
            self.sleeps = sleeps;
            self.busy_since = (!asleep).then_some(now);
            self.waited_before = None;
            return;
        }
        let Some(since) = self.busy_since else {
            // Awake now with nothing run since it slept: the run starts now.
            self.busy_since = Some(now);
            return;
        };
        if self.waited_before.is_none() {
            self.waited_before = sys::runqueue_wait(entry.tid());
        }
        let busy = now - since;
        let longest = &entry.longest_run_nanos;
        let nanos = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX - 1);
        let old = longest.load(Ordering::Relaxed);
        if old == u64::MAX || nanos > old {
            longest.store(nanos, Ordering::Relaxed);
        }
        if busy > threshold && self.stall.is_none() && self.ran(entry, busy) > threshold {
            let captured = capture::take(entry, SNAPSHOT_PATIENCE);
            // The kernel adds a wait for a CPU to the thread's count only when the
            // wait ends, and the signal handler ran as the thread got a CPU back: a
            // thread that was only waiting for one has switched by now, or its count
            // now says it waited.
            let moved = entry.switches.load(Ordering::Relaxed) != self.switches
                || entry.sleeps.load(Ordering::Relaxed) != self.sleeps;
            let busy = since.elapsed();
            if !moved && self.ran(entry, busy) > threshold {
                self.stall = Some(Stall {
                    reported: stalled(entry, busy, captured, events),
                });
            }
        }
    }

    /// How much of `busy` the hub's thread ran or blocked, as opposed to waiting for a
    /// CPU (the machine is overloaded, not the hub).
    fn ran(&self, entry: &HubEntry, busy: Duration) -> Duration {
        let preempted = match (self.waited_before, sys::runqueue_wait(entry.tid())) {
            (Some(before), Some(now)) => now.saturating_sub(before),
            _ => Duration::ZERO,
        };
        busy.saturating_sub(preempted)
    }
}

/// `thread 'name' (tid N)`.
fn thread(entry: &HubEntry) -> String {
    format!("thread '{}' (tid {})", entry.thread, entry.tid())
}

/// Has a stalled hub reported with what `captured` saw, unless the greenlet that holds
/// it keeps nobody waiting; returns who holds it if it was reported.
fn stalled(
    entry: &Arc<HubEntry>,
    busy: Duration,
    captured: Result<Captured, capture::Failure>,
    events: &mpsc::Sender<Event>,
) -> Option<String> {
    let (who, others) = match &captured {
        Ok(captured) => {
            let greenlets = captured.greenlets();
            let counted = captured.running_is_registered() && greenlets > 0;
            (
                holder(entry, captured.running()),
                greenlets - usize::from(counted),
            )
        }
        Err(_) => (
            "a greenlet".to_owned(),
            entry.greenlets.load(Ordering::Relaxed),
        ),
    };
    if others == 0 {
        return None;
    }
    let _ = events.send(Event::Stall {
        entry: entry.clone(),
        who: who.clone(),
        busy,
        others,
        captured,
    });
    Some(who)
}

/// `greenlet 'name' (id 7), spawned at f.rs:1:2`, the thread's main greenlet, or the
/// hub's own loop.
fn holder(entry: &HubEntry, running: Option<Running>) -> String {
    let Some(g) = running else {
        return "code outside any greenlet".to_owned();
    };
    if g.id == entry.hub_greenlet {
        return format!(
            "the hub's own loop (greenlet id {}: timers, I/O or a destructor it runs)",
            g.id
        );
    }
    let mut who = match &g.name {
        Some(name) => format!("greenlet '{name}' (id {})", g.id),
        None => format!("greenlet id {}", g.id),
    };
    match g.spawned_at {
        Some(at) => who.push_str(&format!(", spawned at {at},")),
        None if g.is_main => who.push_str(", the thread's main greenlet,"),
        None => who.push_str(", not spawned by greenweave,"),
    }
    who
}
