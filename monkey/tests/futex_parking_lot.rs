//! parking_lot under `patch_all`: its per-thread waits cannot be shared by greenlets
//! (its thread-local queue node is linked into the lock's queue before the wait), so
//! they block the thread, stay correct, and a long one is reported.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, mpsc};
use std::time::Duration;

use common::ticker;
use greenweave_runtime::{Builder, joinall, spawn};

/// A parking_lot mutex an OS thread holds for `hold`, with a channel that says when
/// it has it.
fn held_by_a_thread(hold: Duration) -> (Arc<parking_lot::Mutex<u32>>, std::thread::JoinHandle<()>) {
    let lock = Arc::new(parking_lot::Mutex::new(0));
    let (locked, is_locked) = mpsc::channel();
    let l = lock.clone();
    let holder = std::thread::spawn(move || {
        let _guard = l.lock();
        locked.send(()).unwrap();
        std::thread::sleep(hold);
    });
    is_locked.recv().unwrap();
    (lock, holder)
}

#[test]
fn parking_lot_waits_block_the_thread_and_lose_nothing() {
    greenweave_monkey::patch_all();
    let (ticks, tick) = ticker();
    let (lock, holder) = held_by_a_thread(Duration::from_millis(100));
    let frozen = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let (lock, ticks, frozen) = (lock.clone(), ticks.clone(), frozen.clone());
            spawn(move || {
                let before = ticks.get();
                *lock.lock() += 1;
                // A wait that blocks the thread lets no other greenlet run meanwhile.
                if ticks.get() == before {
                    frozen.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    joinall(waiters).into_iter().for_each(|r| r.unwrap());
    holder.join().unwrap();
    assert_eq!(*lock.lock(), 5, "a waiter was lost");
    assert_eq!(
        frozen.load(Ordering::SeqCst),
        5,
        "a parking_lot wait was made cooperative"
    );
    tick.kill();
}

/// Warnings logged under the `greenweave::monkey` target.
static WARNINGS: StdMutex<Vec<String>> = StdMutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.target() == "greenweave::monkey"
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) && record.level() == log::Level::Warn {
            WARNINGS.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

#[test]
fn a_parking_lot_wait_that_stalls_the_thread_is_reported_by_name() {
    greenweave_monkey::patch_all();
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let (_ticks, tick) = ticker();
    let (lock, holder) = held_by_a_thread(Duration::from_millis(1500));
    let waiter = Builder::new()
        .name("stuck-on-parking-lot")
        .spawn(move || *lock.lock() += 1);
    waiter.join().unwrap();
    holder.join().unwrap();
    tick.kill();
    let warnings = WARNINGS.lock().unwrap();
    let report = warnings
        .iter()
        .find(|w| w.contains("'stuck-on-parking-lot'"))
        .unwrap_or_else(|| panic!("no stall report naming the greenlet in {warnings:?}"));
    assert!(
        report.contains("parking_lot") && report.contains("cannot run"),
        "{report}"
    );
}
