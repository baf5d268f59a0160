//! The blocking monitor: a greenlet that keeps its hub for longer than the threshold
//! is reported once, by name, with a stack that shows where it is; a hub that sleeps
//! or switches is not reported.
//!
//! The tests share one process-wide monitor and logger, so they run one at a time
//! (`SERIAL`) and look only at the records about their own thread.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use greenweave_runtime::{Builder, monitor, sleep, spawn, yield_now};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::spin_without_yielding;
#[path = "common/fork.rs"]
mod fork;
use fork::report_from_child;
#[path = "common/valgrind.rs"]
mod valgrind;

/// One log record: level, target, message.
type Record = (log::Level, String, String);

struct Collect(Mutex<Vec<Record>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

static LOGGER: Collect = Collect(Mutex::new(Vec::new()));
static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes the tests and makes sure the logger is ours.
fn setup() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    guard
}

/// The monitor's records about the calling thread so far.
fn my_reports() -> Vec<Record> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let marker = format!("(tid {tid})");
    LOGGER
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(_, target, msg)| target == "greenweave::monitor" && msg.contains(&marker))
        .cloned()
        .collect()
}

#[test]
fn a_greenlet_spinning_300ms_is_reported_once_with_its_stack_and_its_end() {
    let _serial = setup();
    // Each test runs on a fresh thread, so this hub is new and its records are ours.
    std::thread::spawn(|| {
        monitor::start(Duration::from_millis(50));
        let waiting = spawn(|| sleep(Duration::from_millis(10)));
        let spinner = Builder::new()
            .name("spinner")
            .spawn(|| spin_without_yielding(Duration::from_millis(300)));
        spinner.join().unwrap();
        waiting.join().unwrap();
        // Reports everything it saw, the end of the stall included, before it returns.
        monitor::stop();
        let reports = my_reports();
        let stalls: Vec<_> = reports
            .iter()
            .filter(|(_, _, m)| m.contains("without switching"))
            .collect();
        assert_eq!(stalls.len(), 1, "one report per stall: {reports:#?}");
        let (level, _, report) = stalls[0];
        assert_eq!(*level, log::Level::Warn);
        assert!(
            report.contains("greenlet 'spinner'")
                && report.contains("spawned at runtime/tests/monitor.rs"),
            "names the greenlet and its spawn site: {report}"
        );
        assert!(
            report.contains("spin_without_yielding"),
            "the stack shows the spinning function: {report}"
        );
        let ends: Vec<_> = reports
            .iter()
            .filter(|(_, _, m)| m.contains("ended after"))
            .collect();
        assert_eq!(ends.len(), 1, "{reports:#?}");
        assert!(ends[0].2.contains("'spinner'"), "{}", ends[0].2);
        assert_eq!(reports.len(), 2, "nothing else: {reports:#?}");
    })
    .join()
    .unwrap();
}

#[test]
fn hubs_that_sleep_or_keep_switching_are_not_reported() {
    let _serial = setup();
    std::thread::spawn(|| {
        monitor::start(Duration::from_millis(50));
        // Asleep in epoll_wait for six thresholds: idle, not stalled.
        let sleeper = spawn(|| sleep(Duration::from_millis(300)));
        sleeper.join().unwrap();
        // Busy for six thresholds, but switching all the time.
        let start = Instant::now();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                spawn(move || {
                    while start.elapsed() < Duration::from_millis(300) {
                        spin_without_yielding(Duration::from_micros(200));
                        yield_now();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        monitor::stop();
        assert_eq!(my_reports(), Vec::<Record>::new());
    })
    .join()
    .unwrap();
}

#[test]
fn a_main_greenlet_working_alone_is_not_reported() {
    let _serial = setup();
    std::thread::spawn(|| {
        monitor::start(Duration::from_millis(50));
        // The hub exists (a greenlet ran and finished), but nobody waits for it.
        spawn(|| ()).join().unwrap();
        spin_without_yielding(Duration::from_millis(200));
        monitor::stop();
        assert_eq!(my_reports(), Vec::<Record>::new());
    })
    .join()
    .unwrap();
}

#[test]
fn the_longest_run_is_measured_while_the_monitor_runs() {
    let _serial = setup();
    std::thread::spawn(|| {
        assert_eq!(greenweave_runtime::stats().longest_run, None);
        monitor::start(Duration::from_millis(40));
        let h = spawn(|| spin_without_yielding(Duration::from_millis(120)));
        h.join().unwrap();
        monitor::stop();
        let longest = greenweave_runtime::stats().longest_run.expect("measured");
        assert!(longest <= Duration::from_secs(5), "{longest:?}");
        if !valgrind::skip_under_valgrind(
            "the 60 ms lower bound: Valgrind runs one thread at a time, so the monitor \
             samples the spinning hub only when its scheduler lets the monitor run",
        ) {
            assert!(longest >= Duration::from_millis(60), "{longest:?}");
        }
    })
    .join()
    .unwrap();
}

#[test]
#[should_panic(expected = "monitor::start(Duration::ZERO)")]
fn a_zero_threshold_is_refused() {
    monitor::start(Duration::ZERO);
}

/// The calling thread's alternate signal stack: (size, enabled).
fn altstack() -> (usize, bool) {
    // SAFETY: stack_t is plain data; zeroed is a valid value.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `current` is a valid out-pointer.
    let rc = unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
    assert_eq!(rc, 0);
    (current.ss_size, current.ss_flags & libc::SS_DISABLE == 0)
}

#[test]
fn the_stack_walk_fits_in_the_alternate_signal_stack_a_hub_thread_has() {
    const SIZE: usize = 64 * 1024;
    let _serial = setup();
    // std gives its threads a small alternate stack; a thread with greenlets gets a
    // larger one, where the capture's handler runs.
    std::thread::spawn(|| {
        spawn(|| ()).join().unwrap();
        let (size, enabled) = altstack();
        assert!(enabled && size >= SIZE, "{size} bytes, enabled: {enabled}");
    })
    .join()
    .unwrap();
    // How much of it a capture uses: a painted one of that size, installed first, is
    // kept, and the capture's footprint is what is no longer painted.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let mut stack = vec![0xA5u8; SIZE];
        let ss = libc::stack_t {
            ss_sp: stack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: SIZE,
        };
        // SAFETY: stack_t is plain data; zeroed is a valid value.
        let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: `stack` outlives its use as the alternate stack (restored below).
        assert_eq!(unsafe { libc::sigaltstack(&ss, &mut old) }, 0);
        let waiting = spawn(|| sleep(Duration::from_millis(1)));
        let spinner = spawn(move || {
            tx.send(()).unwrap();
            spin_without_yielding(Duration::from_millis(400))
        });
        spinner.join().unwrap();
        waiting.join().unwrap();
        // SAFETY: restoring the previous alternate stack.
        assert_eq!(unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) }, 0);
        let skip = valgrind::skip_under_valgrind(
            "the alternate stack's footprint: Valgrind marks what a signal frame used as \
             undefined once the handler returns, and its frames are not the kernel's",
        );
        (!skip).then(|| SIZE - stack.iter().take_while(|&&b| b == 0xA5).count())
    });
    rx.recv().unwrap();
    // The spinning hub does not answer, so dump_all looks at it with the signal.
    let all = monitor::dump_all();
    let used = t.join().unwrap();
    let stuck = all
        .hubs
        .iter()
        .find(|h| h.unresponsive.is_some())
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        stuck
            .running
            .as_ref()
            .is_some_and(|r| r.backtrace.mentions("spin_without_yielding")),
        "{all}"
    );
    // The kernel's signal frame included; about 8 KiB in a debug build.
    if let Some(used) = used {
        assert!(
            used > 0 && used < SIZE / 2,
            "{used} bytes of the alternate stack"
        );
    }
}

#[test]
fn a_forked_child_has_neither_the_monitor_nor_its_parents_hubs() {
    let _serial = setup();
    monitor::start(Duration::from_millis(50));
    let (ready, wait) = std::sync::mpsc::channel::<()>();
    let (done, finish) = std::sync::mpsc::channel::<()>();
    let hub = std::thread::spawn(move || {
        let parked = spawn(|| sleep(Duration::from_secs(3600)));
        yield_now();
        ready.send(()).unwrap();
        finish.recv().unwrap();
        parked.kill();
    });
    wait.recv().unwrap();
    assert!(!monitor::dump_all().hubs.is_empty());
    let (code, status) = report_from_child(|| {
        let mut code = 0u8;
        if monitor::threshold().is_some() {
            code |= 1;
        }
        if !monitor::dump_all().hubs.is_empty() {
            code |= 2;
        }
        monitor::start(Duration::from_millis(50));
        if monitor::threshold() != Some(Duration::from_millis(50)) {
            code |= 4;
        }
        monitor::stop();
        code
    });
    done.send(()).unwrap();
    hub.join().unwrap();
    monitor::stop();
    if !valgrind::skip_under_valgrind(
        "the forked child's exit status, which is memcheck's: the parent's other threads' \
         memory is unreachable in the child",
    ) {
        assert_eq!(status, 0);
    }
    assert_eq!(
        code, 0,
        "1: the parent's monitor seemed to run; 2: the parent's hubs were listed; 4: no new monitor"
    );
}
