//! Finding what is slow or stuck: the blocking monitor, and dumps of every hub.
//!
//! # The blocking monitor
//!
//! A greenlet that computes, or calls something that blocks the thread, without
//! reaching a blocking point of greenweave's keeps every other greenlet of its thread
//! waiting. [`start`]`(threshold)` (or the environment variable
//! `GREENWEAVE_MONITOR=100ms`, read once, when the process makes its first hub) starts
//! a thread that watches every hub. When one has not switched greenlets for longer
//! than the threshold, and is not asleep waiting for I/O or timers, it reports the
//! stall once, at `warn` level on the log target `greenweave::monitor` (on standard
//! error when no logger is set): the thread, the greenlet that holds the hub (name,
//! id, spawn site), how long so far, and that greenlet's stack at that moment. When
//! the hub switches again, one more line gives the stall's length.
//!
//! What `examples/diagnose.rs` prints (`env_logger`'s format; the first frames, in
//! `clock_gettime`, are elided):
//!
//! ```text
//! [WARN  greenweave::monitor] thread 'main' (tid 4577): greenlet 'thumbnail' (id 7), spawned at examples/diagnose.rs:62:10, has run for 210.7 ms without switching; 5 other greenlets of this hub cannot run meanwhile. Its stack:
//!       ...
//!       4: diagnose::make_thumbnail
//!              at ./examples/diagnose.rs:33
//!       5: diagnose::main::{{closure}}
//!              at ./examples/diagnose.rs:62
//! [WARN  greenweave::monitor] thread 'main' (tid 4577): the stall in greenlet 'thumbnail' (id 7), spawned at examples/diagnose.rs:62:10, ended after about 478.7 ms
//! ```
//!
//! A hub whose only greenlet is the one running is not reported (nothing waits for
//! it), and neither is time its thread spent waiting for a CPU (an overloaded
//! machine). The stack is taken on the stalled thread itself: the monitor sends it
//! `SIGURG` (whose default action is to ignore it, and which programs rarely use; a
//! handler installed before is still called for signals that are not the monitor's),
//! whose handler records the running greenlet and walks the stack into a buffer
//! allocated in advance, and the monitor symbolizes it on its own thread. The walk is
//! libgcc's unwinder, as for std's backtraces: it allocates nothing and, with glibc
//! 2.35 or later and libgcc 12 or later, takes no lock; on older systems it goes
//! through the dynamic loader's lock, which a stall inside `dlopen` would hold. It runs
//! only with 16 KiB of stack to spare (threads with greenlets get a 64 KiB alternate
//! signal stack); otherwise, and for a thread that blocks `SIGURG`, the stall is
//! reported without a stack.
//!
//! The handler is installed with `SA_RESTART`, through the C library's own
//! `sigaction` (past greenweave-monkey's hook): in a patched process it ends no parked
//! greenlet's wait with `EINTR`, as a handler of the program's would. A stall that is
//! a real blocking system call the hooks do not cover is another matter: the kernel
//! restarts most calls after the handler, but `poll`, `select`, `epoll_wait`, the
//! sleeps and socket calls with a timeout fail with `EINTR` after any handler
//! (signal(7)), as with any program that takes signals. Code that retries on `EINTR`,
//! as std does, sees nothing.
//!
//! A forked child has neither the monitor thread nor its parent's hubs: it starts a
//! monitor of its own if it wants one, which watches the child's hubs: the forking
//! thread's hub, which the child rebuilds (see the crate docs' Fork section), and those
//! the child makes. `dump_all` in the child lists the same hubs.
//!
//! Cost: nothing on the hot paths when the monitor is not running: the hub counts
//! switches for [`stats`](crate::stats()) anyway, and the monitor only reads that
//! counter. When it runs, it wakes every sampling period (a quarter of the threshold,
//! between 1 and 50 ms) and reads two words per hub.
//!
//! # Dumps
//!
//! [`dump`](crate::dump()) lists the calling thread's hub; [`dump_all`] lists every hub
//! of the process: each hub answers for itself at its next maintenance pass, and a
//! hub that does not answer (stuck in one greenlet) is looked at as the monitor
//! looks at a stall. [`install_dump_signal`] prints `dump_all` on standard error when
//! the process receives a signal (`SIGQUIT`, as the JVM does, is the usual choice),
//! from a thread of its own, so it works while every hub is stuck.

pub(crate) mod capture;
pub(crate) mod fork;
pub(crate) mod registry;
mod sys;
mod watch;

use std::fmt;
use std::io::{self, Write as _};
use std::sync::{Arc, Mutex, Once, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::dump::{HubDump, RunningGreenlet, Seconds};

pub(crate) use sys::gettid;

/// The running monitor.
pub(super) struct Running {
    threshold: Duration,
    stop: Arc<watch::StopFlag>,
    thread: JoinHandle<()>,
    /// The process it runs in: a forked child inherits this record but not the
    /// thread, and starts its own monitor if it wants one.
    pid: u32,
}

impl Running {
    /// Stops the thread and waits for it (if it is this process's).
    fn stop(self) {
        if self.pid == std::process::id() {
            self.stop.raise();
            let _ = self.thread.join();
        } else {
            // A parent's thread, which this process does not have: nothing to join.
            std::mem::forget(self.thread);
        }
    }
}

pub(super) static MONITOR: Mutex<Option<Running>> = Mutex::new(None);

/// The monitor record, if it belongs to this process (see [`Running::pid`]).
fn this_process(monitor: &Option<Running>) -> Option<&Running> {
    monitor.as_ref().filter(|m| m.pid == std::process::id())
}

/// Starts the blocking monitor for the whole process (see the [module docs](self)):
/// from now on, a hub that runs one greenlet for longer than `threshold` without
/// switching is reported. If the monitor runs already, its threshold becomes
/// `threshold`.
///
/// ```
/// use std::time::Duration;
/// greenweave_runtime::monitor::start(Duration::from_millis(100));
/// assert_eq!(greenweave_runtime::monitor::threshold(), Some(Duration::from_millis(100)));
/// greenweave_runtime::monitor::stop();
/// ```
///
/// # Panics
///
/// If `threshold` is zero (every run would be a stall), or the monitor thread cannot
/// be started.
#[track_caller]
pub fn start(threshold: Duration) {
    assert!(
        !threshold.is_zero(),
        "greenweave: monitor::start(Duration::ZERO) would report every greenlet run; \
         give a threshold such as 100 ms"
    );
    crate::fork::install();
    let mut monitor = MONITOR.lock().unwrap_or_else(PoisonError::into_inner);
    if this_process(&monitor).is_some_and(|m| m.threshold == threshold) {
        return;
    }
    if let Some(old) = monitor.take() {
        old.stop();
    }
    let stop = Arc::new(watch::StopFlag::default());
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("greenweave-monitor".to_owned())
        .spawn(move || watch::run(threshold, flag))
        .unwrap_or_else(|e| panic!("greenweave: cannot start the monitor thread: {e}"));
    *monitor = Some(Running {
        threshold,
        stop,
        thread,
        pid: std::process::id(),
    });
}

/// Stops the blocking monitor; does nothing if it does not run. Before it returns,
/// every stall seen so far has been reported, and so has the end of every reported
/// stall that ended before the call.
pub fn stop() {
    let running = MONITOR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(running) = running {
        running.stop();
    }
}

/// The running monitor's threshold; `None` if it does not run.
pub fn threshold() -> Option<Duration> {
    let monitor = MONITOR.lock().unwrap_or_else(PoisonError::into_inner);
    this_process(&monitor).map(|m| m.threshold)
}

/// Starts the monitor if `GREENWEAVE_MONITOR` asks for it; looks only once per process
/// (when the first hub is made).
pub(crate) fn start_from_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Some(value) = std::env::var_os("GREENWEAVE_MONITOR") else {
            return;
        };
        match parse_threshold(&value.to_string_lossy()) {
            Ok(Some(threshold)) => start(threshold),
            Ok(None) => {}
            Err(why) => report(
                log::Level::Warn,
                &format!("GREENWEAVE_MONITOR={value:?} ignored: {why}"),
            ),
        }
    });
}

/// `GREENWEAVE_MONITOR`'s value: a duration such as `100ms` or `1s`, or `0`/`off`/empty
/// for no monitor.
fn parse_threshold(value: &str) -> Result<Option<Duration>, String> {
    let value = value.trim();
    if value.is_empty() || value == "0" || value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match humantime::parse_duration(value) {
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(format!(
            "{e}; give a threshold such as 100ms, 250ms or 1s (or off)"
        )),
    }
}

/// Reports through `log` on the monitor's target, or on standard error when logging is
/// off (no logger set).
pub(crate) fn report(level: log::Level, message: &str) {
    if log::max_level() == log::LevelFilter::Off {
        let line = format!("[greenweave::monitor {level}] {message}\n");
        let _ = io::stderr().write_all(line.as_bytes());
    } else {
        log::log!(target: crate::log_targets::MONITOR, level, "{message}");
    }
}

/// How long `dump_all` waits for hubs to answer.
const ANSWER_PATIENCE: Duration = Duration::from_millis(250);

/// Every hub of the process, as [`dump_all`] returns them. `Display` prints each.
#[derive(Clone, Debug)]
pub struct ProcessDump {
    /// One dump per hub, in the order the hubs were made.
    pub hubs: Vec<HubDump>,
}

impl fmt::Display for ProcessDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.hubs.len();
        writeln!(
            f,
            "greenweave: {n} hub{} in process {}",
            if n == 1 { "" } else { "s" },
            std::process::id()
        )?;
        for hub in &self.hubs {
            write!(f, "{hub}")?;
        }
        Ok(())
    }
}

/// A dump of every hub of the process (see [`dump`](crate::dump()) for one hub).
///
/// Each other hub answers for itself at its next maintenance pass (woken if it sleeps
/// in `epoll_wait`), so the calling thread waits up to 250 ms; a hub that has not
/// answered by then is stuck in one greenlet (or in a call that blocks its thread),
/// and its entry says so, with that greenlet and its stack taken as the blocking
/// monitor takes them. The calling thread's own hub is listed directly.
pub fn dump_all() -> ProcessDump {
    let hubs = registry::all();
    let me = gettid();
    let (reply, answers) = mpsc::channel::<HubDump>();
    for entry in hubs.iter().filter(|e| e.tid() != me) {
        entry.request_dump(reply.clone());
    }
    drop(reply);
    let mut answered: Vec<HubDump> = Vec::new();
    let waiting = hubs.iter().filter(|e| e.tid() != me).count();
    let deadline = Instant::now() + ANSWER_PATIENCE;
    while answered.len() < waiting {
        let left = deadline.saturating_duration_since(Instant::now());
        match answers.recv_timeout(left) {
            Ok(dump) => answered.push(dump),
            Err(_) => break,
        }
    }
    let mut dumps = Vec::with_capacity(hubs.len());
    for entry in &hubs {
        if entry.tid() == me {
            if let Some(mine) = crate::hub::try_with_existing(|_| crate::dump::dump()) {
                dumps.push(mine);
            }
            continue;
        }
        match answered.iter().position(|d| d.tid == entry.tid()) {
            Some(i) => dumps.push(answered.swap_remove(i)),
            None => dumps.push(unresponsive(entry)),
        }
    }
    ProcessDump { hubs: dumps }
}

/// What can be learnt of a hub that did not answer: who holds it, with its stack.
fn unresponsive(entry: &Arc<registry::HubEntry>) -> HubDump {
    let snapshot = capture::take(entry, Duration::from_millis(500));
    let mut why = format!(
        "it did not switch greenlets within {}",
        Seconds(ANSWER_PATIENCE)
    );
    let running = match snapshot {
        Ok(captured) => {
            if let Some(no_stack) = captured.no_stack() {
                why.push_str(&format!("; no stack: {no_stack}"));
            }
            let snapshot = captured.resolve();
            snapshot.greenlet.map(|g| RunningGreenlet {
                id: g.id,
                name: g.name,
                spawned_at: g.spawned_at,
                is_main: g.is_main,
                backtrace: snapshot.backtrace,
            })
        }
        Err(e) => {
            why.push_str(&format!("; no stack: {e}"));
            None
        }
    };
    HubDump {
        thread: entry.thread.clone(),
        tid: entry.tid(),
        greenlets: Vec::new(),
        running,
        stats: None,
        unresponsive: Some(why),
    }
}

/// Prints [`dump_all`] on standard error whenever the process receives `signal`
/// (`libc::SIGQUIT`, what `Ctrl-\` sends, is the usual choice; the JVM does the same).
/// A thread of its own waits for the signal and makes the dump, so it works even when
/// every hub is stuck. Installing the same signal again does nothing.
///
/// The handler is installed as the program's own would be (signal-hook's, through
/// `sigaction`): in a process patched by greenweave-monkey, the thread that receives
/// the signal has its parked greenlets' interruptible calls (`poll`, the sleeps, ...)
/// fail with `EINTR`, as signal(7) says for any handler. A program that must avoid
/// that blocks the signal in its hub threads, so that another thread takes it.
///
/// # Errors
///
/// If `signal` cannot be caught (`SIGKILL`, `SIGSTOP`, the fault signals that
/// signal-hook refuses), is `SIGURG` (the monitor's own), or the thread cannot start.
pub fn install_dump_signal(signal: i32) -> io::Result<()> {
    static INSTALLED: Mutex<Vec<i32>> = Mutex::new(Vec::new());
    if signal == capture::SIGNAL {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "greenweave: install_dump_signal(SIGURG): SIGURG is the blocking monitor's own \
             signal; use SIGQUIT or SIGUSR1",
        ));
    }
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if installed.contains(&signal) {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([signal])?;
    std::thread::Builder::new()
        .name(format!("greenweave-dump-on-signal-{signal}"))
        .spawn(move || {
            for _ in signals.forever() {
                let text = format!("{}", dump_all());
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
        })?;
    installed.push(signal);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_threshold;

    #[test]
    fn the_environment_threshold_reads_as_a_duration_or_off() {
        assert_eq!(
            parse_threshold("100ms"),
            Ok(Some(Duration::from_millis(100)))
        );
        assert_eq!(parse_threshold(" 1s "), Ok(Some(Duration::from_secs(1))));
        for off in ["", "0", "off", "OFF", "0s"] {
            assert_eq!(parse_threshold(off), Ok(None), "{off:?}");
        }
        for bad in ["100", "fast", "-1ms", "1e3ms"] {
            let err = parse_threshold(bad).unwrap_err();
            assert!(err.contains("such as 100ms"), "{bad:?}: {err}");
        }
    }
}
