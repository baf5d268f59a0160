//! `greenweave_runtime::threadpool::Offload`: a value that owns an event loop (here a
//! bare `mio::Poll`, whose `poll` blocks in `epoll_wait`) used from greenlets.
//! `tests/postgres.rs` at the workspace root does the same with a real database client.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use greenweave_runtime::threadpool::{Offload, ThreadPool};
use greenweave_runtime::{Elapsed, JoinError, sleep, spawn, with_timeout};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits in `poll`'s `epoll_wait` for `timeout` (nothing is registered) and returns
/// the number of events (0).
fn wait_in_event_loop(poll: &mut mio::Poll, timeout: Duration) -> usize {
    let mut events = mio::Events::with_capacity(4);
    poll.poll(&mut events, Some(timeout)).unwrap();
    events.iter().count()
}

/// A greenlet ticking every millisecond, to see how long the hub goes without running
/// it; [`Ticker::stop`] returns the longest gap between ticks (up to the stop).
struct Ticker {
    handle: greenweave_runtime::JoinHandle<()>,
    last: Rc<Cell<Instant>>,
    max_gap: Rc<Cell<Duration>>,
}

impl Ticker {
    fn start() -> Ticker {
        let last = Rc::new(Cell::new(Instant::now()));
        let max_gap = Rc::new(Cell::new(Duration::ZERO));
        let (l, gap) = (last.clone(), max_gap.clone());
        let handle = spawn(move || {
            loop {
                sleep(ms(1));
                gap.set(gap.get().max(l.get().elapsed()));
                l.set(Instant::now());
            }
        });
        Ticker {
            handle,
            last,
            max_gap,
        }
    }

    fn stop(self) -> Duration {
        let gap = self.max_gap.get().max(self.last.get().elapsed());
        self.handle.kill();
        gap
    }
}

#[test]
fn a_bare_event_loop_stalls_the_hub_and_offload_frees_it() {
    if valgrind::skip_under_valgrind("measures the hub's stalls against 100 ms waits") {
        return;
    }
    const LOOPS: u32 = 5;
    const WAIT: Duration = Duration::from_millis(100);
    // Directly: each greenlet's `epoll_wait` blocks the thread, so the waits add up
    // (patch_all changes nothing here: it does not hook epoll_wait).
    let ticker = Ticker::start();
    let start = Instant::now();
    let direct: Vec<_> = (0..LOOPS)
        .map(|_| {
            let mut poll = mio::Poll::new().unwrap();
            spawn(move || wait_in_event_loop(&mut poll, WAIT))
        })
        .collect();
    direct
        .into_iter()
        .for_each(|h| assert_eq!(h.join().unwrap(), 0));
    assert!(
        start.elapsed() >= WAIT * LOOPS - ms(10),
        "{:?}",
        start.elapsed()
    );
    let stall = ticker.stop();
    assert!(
        stall >= WAIT - ms(5),
        "the hub stalled for a whole wait: {stall:?}"
    );

    // Offloaded: the waits overlap on pool threads and the hub keeps running.
    let pool = Arc::new(ThreadPool::new(LOOPS as usize));
    let ticker = Ticker::start();
    let start = Instant::now();
    let offloaded: Vec<_> = (0..LOOPS)
        .map(|_| {
            let mut poll = Offload::with_pool(mio::Poll::new().unwrap(), pool.clone());
            spawn(move || poll.run(|p| wait_in_event_loop(p, WAIT)))
        })
        .collect();
    offloaded
        .into_iter()
        .for_each(|h| assert_eq!(h.join().unwrap(), 0));
    assert!(start.elapsed() < WAIT * 3, "{:?}", start.elapsed());
    let stall = ticker.stop();
    // One wait on the hub's thread would stall it for WAIT.
    assert!(stall < WAIT / 2, "the hub stalled for {stall:?}");
}

#[test]
fn calls_beyond_the_pool_size_queue() {
    let pool = Arc::new(ThreadPool::new(2));
    let start = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let mut value = Offload::with_pool(i, pool.clone());
            spawn(move || value.run(|v| std::thread::sleep(ms(50 + *v))))
        })
        .collect();
    calls.into_iter().for_each(|h| h.join().unwrap());
    // Two threads for four 50 ms calls: two rounds.
    assert!(start.elapsed() >= ms(100), "{:?}", start.elapsed());
    assert_eq!(pool.threads(), 2);
}

#[test]
fn a_timeout_returns_at_once_and_the_next_use_waits_for_the_call() {
    if valgrind::skip_under_valgrind("needs the 150 ms call still running after two 20 ms timeouts")
    {
        return;
    }
    let mut log = Offload::new(Vec::new());
    let start = Instant::now();
    let late = with_timeout(ms(20), || {
        log.run(|l| {
            std::thread::sleep(ms(150));
            l.push("slow");
        })
    });
    assert_eq!(late, Err(Elapsed));
    assert!(start.elapsed() < ms(120), "{:?}", start.elapsed());
    // Interrupted again while waiting for that call: still nothing lost.
    assert_eq!(with_timeout(ms(20), || log.get_mut().len()), Err(Elapsed));
    log.run(|l| l.push("next"));
    assert!(start.elapsed() >= ms(140));
    assert_eq!(log.into_inner(), ["slow", "next"]);
}

#[test]
fn interrupted_calls_never_overlap_and_apply_at_most_once_in_order() {
    // Each call takes 3 ms; each caller gives up after 1 ms, so the next caller either
    // gives up while waiting for the previous call (and its own never starts) or
    // starts its call once the previous one has ended.
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut applied = Offload::new(Vec::new());
    for i in 0..20 {
        let (running, most) = (running.clone(), most.clone());
        let _ = with_timeout(ms(1), || {
            applied.run(move |a| {
                most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                std::thread::sleep(ms(3));
                a.push(i);
                running.fetch_sub(1, SeqCst);
            })
        });
    }
    let applied = applied.into_inner();
    assert_eq!(most.load(SeqCst), 1, "two calls ran at once");
    assert!(!applied.is_empty());
    assert!(applied.windows(2).all(|w| w[0] < w[1]), "{applied:?}");
}

/// Reports the name of the thread it is dropped on.
struct DropReporter(mpsc::Sender<Option<String>>);

impl Drop for DropReporter {
    fn drop(&mut self) {
        let _ = self.0.send(std::thread::current().name().map(String::from));
    }
}

fn dropped_on(rx: &mpsc::Receiver<Option<String>>) -> String {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the value was never dropped")
        .unwrap_or_default()
}

#[test]
fn killing_the_caller_mid_call_drops_the_value_on_the_pool_when_the_call_ends() {
    let (tx, rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let caller = spawn(move || {
        let mut value = Offload::new(DropReporter(tx));
        value.run(move |_| {
            started_tx.send(()).unwrap();
            std::thread::sleep(ms(100));
        });
    });
    // Let the caller run until its call has started on the pool.
    while started_rx.try_recv().is_err() {
        sleep(ms(1));
    }
    let start = Instant::now();
    caller.kill();
    assert!(start.elapsed() < ms(80), "{:?}", start.elapsed());
    assert!(matches!(caller.join(), Err(JoinError::Killed)));
    assert!(rx.try_recv().is_err(), "dropped while its call still ran");
    assert!(dropped_on(&rx).starts_with("greenweave-pool-"));
}

#[test]
fn dropping_an_idle_offload_drops_the_value_on_the_pool() {
    let (tx, rx) = mpsc::channel();
    drop(Offload::new(DropReporter(tx)));
    assert!(dropped_on(&rx).starts_with("greenweave-pool-"));
}

#[test]
fn a_shut_down_pool_loses_the_value_with_a_clear_panic() {
    let pool = Arc::new(ThreadPool::new(1));
    let (tx, rx) = mpsc::channel();
    let mut value = Offload::with_pool(DropReporter(tx), pool.clone());
    pool.shutdown();
    let refused = panic::catch_unwind(AssertUnwindSafe(|| value.run(|_| ())));
    assert!(refused.is_err());
    // The refused call took the value down with it, here.
    assert_eq!(dropped_on(&rx), std::thread::current().name().unwrap());
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        value.get_mut();
    }))
    .unwrap_err();
    let text = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(text.contains("lost its value"), "{text}");
    drop(value); // a lost value: nothing to drop, no panic

    // An idle value whose pool is gone is dropped where the Offload is.
    let (tx, rx) = mpsc::channel();
    drop(Offload::with_pool(DropReporter(tx), pool));
    assert_eq!(dropped_on(&rx), std::thread::current().name().unwrap());
}
