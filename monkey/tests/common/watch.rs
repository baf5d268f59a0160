//! Watching a test from outside its hub: the longest stall of the hub, and a watchdog
//! that turns a hang (a thread blocked in the kernel, which no greenlet can undo) into
//! a failure.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use greenweave_runtime::{JoinHandle, sleep, spawn};

/// A greenlet sleeping 1 ms at a time until killed, recording the longest gap between
/// two of its wake-ups: how long the hub was kept from running greenlets.
pub struct StallMeter {
    longest: Rc<Cell<(Duration, Duration)>>,
    ticks: Rc<Cell<u64>>,
    greenlet: JoinHandle<()>,
}

/// The longest gap between two ticks, and when it ended (since the meter started).
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    /// How long the gap was.
    pub gap: Duration,
    /// When it ended, from the start of the meter.
    pub at: Duration,
    /// How many ticks the meter counted.
    pub ticks: u64,
}

impl StallMeter {
    /// Starts the meter on this thread's hub.
    pub fn start() -> StallMeter {
        let longest = Rc::new(Cell::new((Duration::ZERO, Duration::ZERO)));
        let ticks = Rc::new(Cell::new(0));
        let (l, t) = (longest.clone(), ticks.clone());
        let greenlet = spawn(move || {
            let start = Instant::now();
            let mut last = start;
            loop {
                sleep(Duration::from_millis(1));
                let now = Instant::now();
                if now - last > l.get().0 {
                    l.set((now - last, now - start));
                }
                t.set(t.get() + 1);
                last = now;
            }
        });
        StallMeter {
            longest,
            ticks,
            greenlet,
        }
    }

    /// Stops the meter; returns the longest gap between two ticks.
    pub fn stop(self) -> Stall {
        self.greenlet.kill();
        let (gap, at) = self.longest.get();
        Stall {
            gap,
            at,
            ticks: self.ticks.get(),
        }
    }
}

/// Ends the process with a message if not dropped within its time: a test whose thread
/// blocks in the kernel (the regression these tests catch) fails instead of hanging.
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    /// Arms a watchdog for `limit`, naming `what` in its message.
    pub fn arm(limit: Duration, what: &'static str) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        // A plain thread with no hub: its wait passes straight through to the kernel.
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                // Straight to fd 2: the test harness captures `eprintln!`.
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!("watchdog: {what} still running after {limit:?}: hung\n").as_bytes(),
                );
                std::process::exit(3);
            }
        });
        Watchdog { _disarm: disarm }
    }
}
