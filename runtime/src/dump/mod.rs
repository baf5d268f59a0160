//! A live dump of a hub: every greenlet, what it waits on, since when, and the line
//! where it parked; for the running one, its stack.
//!
//! [`dump`] lists the calling thread's hub (`Display` prints it);
//! [`monitor::dump_all`](crate::monitor::dump_all) lists every hub of the process, and
//! [`monitor::install_dump_signal`](crate::monitor::install_dump_signal) prints that
//! on a signal. A park records two words: the `#[track_caller]` location of the
//! blocking call and the hub's coarse time (see `stats`), so keeping this information
//! costs a blocking call two stores.

mod backtrace;

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

pub use backtrace::{Backtrace, Frame, Symbol};

use crate::hub::{self, Hub};
use crate::stats::Stats;
use crate::task::{GreenletInfo, Task, TaskState};

/// One hub's greenlets at one moment: what [`dump`] returns, and what
/// [`monitor::dump_all`](crate::monitor::dump_all) returns for each hub.
///
/// `Display` prints it for a person to read:
///
/// ```text
/// thread 'main' (tid 4242), 3 greenlets:
///   greenlet 'getter' (id 7), spawned at src/main.rs:20:13
///       blocked for 1.20 s at src/main.rs:22:17, on get on Queue created at src/main.rs:15:13 (empty, maxsize 0)
///   greenlet 'main' (id 1), not spawned by greenweave
///       running
///          0: my_app::report
///                at src/main.rs:40:5
///          1: my_app::main
///                at src/main.rs:31:5
/// ```
#[derive(Clone, Debug)]
pub struct HubDump {
    /// The name of the hub's thread (`<unnamed>` if it has none).
    pub thread: String,
    /// The kernel's id of that thread.
    pub tid: i32,
    /// Every greenlet the hub knows, by id (empty if the hub could not be asked: see
    /// [`unresponsive`](Self::unresponsive)).
    pub greenlets: Vec<GreenletInfo>,
    /// The greenlet running when the dump was taken, with its stack; `None` when the
    /// hub itself answered (between two greenlets).
    pub running: Option<RunningGreenlet>,
    /// The hub's counters, when it answered.
    pub stats: Option<Stats>,
    /// Why the hub did not answer ([`dump_all`](crate::monitor::dump_all) of a hub
    /// stuck in one greenlet); `running` then says which greenlet holds it.
    pub unresponsive: Option<String>,
}

/// The greenlet that was running when a dump was taken.
#[derive(Clone, Debug)]
pub struct RunningGreenlet {
    /// Its id.
    pub id: u64,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Where it was spawned (`None` for a thread's main greenlet and raw greenlets).
    pub spawned_at: Option<&'static Location<'static>>,
    /// Whether it is the thread's main greenlet.
    pub is_main: bool,
    /// Its stack at that moment, innermost frame first.
    pub backtrace: Backtrace,
}

/// Every greenlet of the calling thread's hub, for a person to read (`Display`) or a
/// program to look at; the caller, which is running, comes with its stack.
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::{queue::Queue, spawn, yield_now, TaskState};
///
/// let q: Rc<Queue<u32>> = Rc::new(Queue::new(0));
/// let q2 = q.clone();
/// let get_line = line!() + 1;
/// let getter = spawn(move || q2.get());
/// yield_now(); // the getter parks in `get`
/// let dump = greenweave_runtime::dump();
/// let parked = dump.greenlets.iter().find(|g| g.id == getter.id()).unwrap();
/// assert_eq!(parked.state, TaskState::Blocked);
/// assert!(parked.waiting_on.as_deref().unwrap().starts_with("get on Queue"));
/// assert_eq!(parked.parked_at.unwrap().line(), get_line); // where `q2.get()` is
/// println!("{dump}");
/// q.put(1).unwrap();
/// assert_eq!(getter.join().unwrap(), Ok(1));
/// ```
pub fn dump() -> HubDump {
    // The stack is walked now and symbolized only when looked at.
    let backtrace = Backtrace::here();
    hub::with(|hub| {
        let mut dump = of_hub(hub);
        let me = greenweave_greenlet::current();
        let task = Task::current_borrowed(hub);
        dump.running = Some(RunningGreenlet {
            id: me.id(),
            name: me.name().as_deref().map(str::to_owned),
            spawned_at: task.and_then(|t| t.location),
            is_main: me.is_main(),
            backtrace,
        });
        dump
    })
}

/// A dump of `hub` taken on its own thread, without a running greenlet.
pub(crate) fn of_hub(hub: &Hub) -> HubDump {
    let now = Instant::now();
    let mut greenlets: Vec<GreenletInfo> = hub
        .tasks()
        .iter()
        .map(|t| GreenletInfo::of(t, &hub.stats, now))
        .collect();
    greenlets.sort_by_key(|g| g.id);
    let entry = &hub.stats.entry;
    HubDump {
        thread: entry.thread.clone(),
        tid: entry.tid(),
        greenlets,
        running: None,
        stats: Some(hub.stats.snapshot(hub.task_count())),
        unresponsive: None,
    }
}

/// Answers the dump requests other threads left for `hub` (at a maintenance pass).
pub(crate) fn answer_requests(hub: &Hub) {
    let replies = hub.stats.entry.take_requests();
    if replies.is_empty() {
        return;
    }
    let dump = of_hub(hub);
    for reply in replies {
        // The requester may have given up waiting: nothing to do then.
        let _ = reply.send(dump.clone());
    }
}

impl HubDump {
    /// The greenlet with this id, if the dump lists it.
    pub fn greenlet(&self, id: u64) -> Option<&GreenletInfo> {
        self.greenlets.iter().find(|g| g.id == id)
    }
}

impl fmt::Display for HubDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "thread '{}' (tid {})", self.thread, self.tid)?;
        if let Some(why) = &self.unresponsive {
            writeln!(f, ": the hub did not answer: {why}")?;
        } else {
            let n = self.greenlets.len();
            writeln!(f, ", {n} greenlet{}:", if n == 1 { "" } else { "s" })?;
        }
        let running_id = self.running.as_ref().map(|r| r.id);
        if let Some(running) = &self.running {
            if self.greenlet(running.id).is_none() {
                write_running(f, running)?;
            }
        }
        for g in &self.greenlets {
            write_greenlet(f, g)?;
            if running_id == Some(g.id) {
                if let Some(running) = &self.running {
                    write!(f, "{:6}", running.backtrace)?;
                }
            }
        }
        if let Some(stats) = &self.stats {
            writeln!(f, "  stats: {stats}")?;
        }
        Ok(())
    }
}

/// `greenlet 'name' (id 3)`.
fn write_name(f: &mut fmt::Formatter<'_>, id: u64, name: Option<&str>) -> fmt::Result {
    match name {
        Some(name) => write!(f, "greenlet '{name}' (id {id})"),
        None => write!(f, "greenlet id {id}"),
    }
}

/// `, spawned at f.rs:1:2`, `, the thread's main greenlet` or `, not spawned by
/// greenweave`.
fn write_origin(f: &mut fmt::Formatter<'_>, at: Option<&Location<'_>>, main: bool) -> fmt::Result {
    match at {
        Some(at) => write!(f, ", spawned at {at}"),
        None if main => f.write_str(", the thread's main greenlet"),
        None => f.write_str(", not spawned by greenweave"),
    }
}

fn write_greenlet(f: &mut fmt::Formatter<'_>, g: &GreenletInfo) -> fmt::Result {
    f.write_str("  ")?;
    write_name(f, g.id, g.name.as_deref())?;
    write_origin(f, g.spawned_at, g.is_main)?;
    f.write_str("\n      ")?;
    match g.state {
        TaskState::Blocked => {
            f.write_str("blocked")?;
            if let Some(waited) = g.waiting_for {
                write!(f, " for {}", Seconds(waited))?;
            }
            if let Some(at) = g.parked_at {
                write!(f, " at {at}")?;
            }
            if let Some(on) = &g.waiting_on {
                write!(f, ", on {on}")?;
            }
            writeln!(f)
        }
        TaskState::Ready => writeln!(f, "ready to run"),
        TaskState::Running => writeln!(f, "running"),
        TaskState::Done => writeln!(f, "finished"),
    }
}

fn write_running(f: &mut fmt::Formatter<'_>, r: &RunningGreenlet) -> fmt::Result {
    f.write_str("  ")?;
    write_name(f, r.id, r.name.as_deref())?;
    write_origin(f, r.spawned_at, r.is_main)?;
    writeln!(f, "\n      running")?;
    write!(f, "{:6}", r.backtrace)
}

/// A duration as seconds with two decimals (`1.20 s`), or milliseconds below one.
pub(crate) struct Seconds(pub(crate) Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs_f64();
        if secs < 1.0 {
            write!(f, "{:.1} ms", secs * 1e3)
        } else {
            write!(f, "{secs:.2} s")
        }
    }
}
