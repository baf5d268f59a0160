//! `greenweave_runtime::local`: per-greenlet storage.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use greenweave_runtime::local::Local;
use greenweave_runtime::{JoinError, joinall, sleep, spawn, yield_now};

/// Counts its drops in the counter it points to.
struct Tracked(&'static AtomicUsize);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn each_of_10_greenlets_sees_only_its_own_value() {
    static NAME: Local<String> = Local::new(String::new);
    let handles: Vec<_> = (0..10)
        .map(|i| {
            spawn(move || {
                NAME.set(format!("greenlet-{i}"));
                for _ in 0..5 {
                    yield_now(); // let the others write theirs
                    assert_eq!(NAME.get(), format!("greenlet-{i}"));
                }
                NAME.with(|name| name.push('!'));
                sleep(Duration::from_millis(5));
                NAME.get()
            })
        })
        .collect();
    let names: Vec<String> = joinall(handles).into_iter().map(Result::unwrap).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("greenlet-{i}!")).collect();
    assert_eq!(names, expected);
    assert_eq!(NAME.get(), "", "main's value is untouched");
}

#[test]
fn init_runs_on_each_greenlets_first_access_only() {
    static INITS: AtomicUsize = AtomicUsize::new(0);
    static COUNTER: Local<u32> = Local::new(|| {
        INITS.fetch_add(1, Ordering::SeqCst);
        100
    });
    assert_eq!(INITS.load(Ordering::SeqCst), 0, "not run before any access");
    let handles: Vec<_> = (0..3)
        .map(|_| {
            spawn(|| {
                let first = COUNTER.get();
                COUNTER.with(|n| *n += 1);
                (first, COUNTER.get())
            })
        })
        .collect();
    for result in joinall(handles) {
        assert_eq!(result.unwrap(), (100, 101));
    }
    assert_eq!(INITS.load(Ordering::SeqCst), 3, "once per greenlet");
    // `set` on a greenlet without a value does not run init.
    spawn(|| COUNTER.set(7)).join().unwrap();
    assert_eq!(INITS.load(Ordering::SeqCst), 3);
}

#[test]
fn a_greenlets_value_is_dropped_when_it_dies() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static SLOT: Local<Option<Tracked>> = Local::new(|| None);

    // Returns normally.
    let h = spawn(|| {
        SLOT.set(Some(Tracked(&DROPS)));
        sleep(Duration::from_millis(5));
    });
    yield_now(); // it stored its value and blocked
    assert_eq!(DROPS.load(Ordering::SeqCst), 0, "alive, so not dropped");
    h.join().unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);

    // Panics.
    let h = spawn(|| {
        SLOT.set(Some(Tracked(&DROPS)));
        panic!("dies");
    });
    assert!(matches!(h.join(), Err(JoinError::Panicked(_))));
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);

    // Killed while blocked.
    let h = spawn(|| {
        SLOT.set(Some(Tracked(&DROPS)));
        sleep(Duration::from_secs(60));
    });
    yield_now();
    h.kill();
    assert!(matches!(h.join(), Err(JoinError::Killed)));
    assert_eq!(DROPS.load(Ordering::SeqCst), 3);
}

#[test]
fn the_main_greenlet_has_its_own_value() {
    static VALUE: Local<&'static str> = Local::new(|| "initial");
    VALUE.set("main's");
    let seen_by_other = spawn(|| {
        let seen = VALUE.get();
        VALUE.set("other's");
        seen
    })
    .join()
    .unwrap();
    assert_eq!(seen_by_other, "initial");
    assert_eq!(VALUE.get(), "main's");
}

#[test]
fn the_main_greenlets_value_is_dropped_when_its_thread_exits() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static SLOT: Local<Option<Tracked>> = Local::new(|| None);
    std::thread::spawn(|| {
        SLOT.set(Some(Tracked(&DROPS)));
        spawn(|| sleep(Duration::from_millis(1))).join().unwrap();
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
    })
    .join()
    .unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
}

#[test]
fn replace_take_and_remove() {
    static LIST: Local<Vec<u8>> = Local::new(|| vec![1]);
    assert_eq!(
        LIST.replace(vec![2]),
        [1],
        "replace on first access returns init"
    );
    assert_eq!(LIST.take(), [2]);
    assert!(LIST.get().is_empty());
    assert_eq!(LIST.remove(), Some(vec![]));
    assert_eq!(LIST.remove(), None);
    assert_eq!(LIST.get(), [1], "init runs again after remove");
}

#[test]
fn with_may_use_other_locals_but_not_itself() {
    static A: Local<u8> = Local::new(|| 1);
    static B: Local<u8> = Local::new(|| 2);
    assert_eq!(A.with(|a| *a + B.get()), 3);
    let nested = panic::catch_unwind(AssertUnwindSafe(|| A.with(|_| A.get())));
    assert!(nested.is_err());
    assert_eq!(A.get(), 1, "still usable afterwards");
}

#[test]
fn a_local_is_send_and_sync_whatever_its_type() {
    fn check<L: Send + Sync>() {}
    check::<Local<std::rc::Rc<u8>>>();
}
