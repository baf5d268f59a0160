//! Spawning, joining, killing, introspection and deadlock reports.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use greenweave_runtime::{
    Builder, JoinError, JoinHandle, JoinTimeoutError, TaskState, active_count, current_info,
    greenlets, iwait, joinall, killall, sleep, spawn, spawn_later, wait_any, yield_now,
};

/// Counts drops, to prove destructors ran.
struct DropCounter(Rc<Cell<u32>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

#[test]
fn a_spawned_greenlet_runs_when_the_spawner_blocks_and_join_returns_its_value() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let h = spawn(move || {
        l.borrow_mut().push("child");
        7
    });
    log.borrow_mut().push("main");
    assert_eq!(h.join().unwrap(), 7);
    assert_eq!(*log.borrow(), ["main", "child"]);
}

#[test]
fn a_panic_is_returned_by_join_and_other_greenlets_keep_running() {
    let bad = Builder::new()
        .name("boomer")
        .spawn(|| -> u32 { panic!("boom") });
    let good = spawn(|| {
        sleep(Duration::from_millis(5));
        5
    });
    let err = bad.join().unwrap_err();
    assert_eq!(err.panic_message(), Some("boom"));
    assert!(err.to_string().contains("boom"));
    assert_eq!(good.join().unwrap(), 5);
}

#[test]
fn kill_unwinds_a_sleeping_greenlet_and_runs_its_destructors() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let h = spawn(move || {
        let _guard = DropCounter(d);
        sleep(Duration::from_secs(1000));
    });
    yield_now();
    assert_eq!(drops.get(), 0);
    h.kill();
    assert_eq!(drops.get(), 1);
    assert!(h.is_finished());
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

#[test]
fn kill_unwinds_a_greenlet_blocked_in_join_and_the_joined_one_lives_on() {
    let target = Rc::new(spawn(|| {
        sleep(Duration::from_millis(30));
        "done"
    }));
    let t = target.clone();
    let joiner = spawn(move || t.wait());
    yield_now();
    joiner.kill();
    assert!(matches!(joiner.join(), Err(JoinError::Killed)));
    let target = Rc::try_unwrap(target).expect("the killed joiner dropped its handle");
    assert_eq!(target.join().unwrap(), "done");
}

#[test]
fn a_greenlet_killed_before_it_started_never_runs_but_its_captures_are_dropped() {
    let ran = Rc::new(Cell::new(false));
    let drops = Rc::new(Cell::new(0));
    let (r, guard) = (ran.clone(), DropCounter(drops.clone()));
    let h = spawn(move || {
        let _g = guard;
        r.set(true);
    });
    h.kill();
    assert!(!ran.get());
    assert_eq!(drops.get(), 1);
    assert!(matches!(h.join(), Err(JoinError::Killed)));
}

#[test]
fn kill_nowait_returns_at_once_and_killing_a_finished_greenlet_does_nothing() {
    let h = spawn(|| sleep(Duration::from_secs(1000)));
    yield_now();
    h.kill_nowait();
    assert!(!h.is_finished(), "kill_nowait does not wait");
    h.wait();
    assert!(h.is_finished());
    let done = spawn(|| 1);
    done.wait();
    done.kill();
    assert_eq!(done.join().unwrap(), 1);
}

type HandleCell<T> = Rc<RefCell<Option<JoinHandle<T>>>>;

#[test]
fn a_greenlet_killing_itself_unwinds_at_once_running_its_destructors() {
    let cell: HandleCell<()> = Rc::default();
    let (after, drops) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
    let (c, a, d) = (cell.clone(), after.clone(), drops.clone());
    let h = spawn(move || {
        let _guard = DropCounter(d);
        let me = c.borrow_mut().take().unwrap();
        me.kill();
        a.set(true);
    });
    let id = h.id();
    *cell.borrow_mut() = Some(h);
    while greenlets().iter().any(|g| g.id == id) {
        yield_now();
    }
    assert!(!after.get(), "nothing after kill() ran");
    assert_eq!(drops.get(), 1);
}

#[test]
fn joining_yourself_panics_with_a_message_naming_the_greenlet() {
    let cell: HandleCell<()> = Rc::default();
    let out: Rc<RefCell<Option<String>>> = Rc::default();
    let (c, o) = (cell.clone(), out.clone());
    let h = Builder::new().name("selfish").spawn(move || {
        let me = c.borrow_mut().take().unwrap();
        let msg = panic::catch_unwind(AssertUnwindSafe(|| me.wait()))
            .map_err(panic_text)
            .unwrap_err();
        *o.borrow_mut() = Some(msg);
        *c.borrow_mut() = Some(me);
    });
    *cell.borrow_mut() = Some(h);
    while out.borrow().is_none() {
        yield_now();
    }
    let msg = out.borrow().clone().unwrap();
    assert!(
        msg.contains("greenlet 'selfish'") && msg.contains("cannot join itself"),
        "{msg}"
    );
    cell.borrow_mut().take().unwrap().join().unwrap();
}

#[test]
fn join_timeout_hands_the_handle_back_and_a_later_join_succeeds() {
    let h = spawn(|| {
        sleep(Duration::from_millis(40));
        "late"
    });
    let h = match h.join_timeout(Duration::from_millis(5)) {
        Err(JoinTimeoutError::Elapsed(h)) => h,
        other => panic!("expected Elapsed, got {other:?}"),
    };
    assert!(!h.wait_timeout(Duration::from_millis(1)));
    assert_eq!(h.join().unwrap(), "late");
}

#[test]
fn join_timeout_errors_are_std_errors_that_name_the_greenlet() {
    use std::error::Error as _;
    let gate = std::rc::Rc::new(greenweave_runtime::sync::Event::new());
    let g = gate.clone();
    let h = Builder::new().name("slowpoke").spawn(move || g.wait());
    let err: Box<dyn std::error::Error> = match h.join_timeout(Duration::from_millis(1)) {
        Err(e @ JoinTimeoutError::Elapsed(_)) => Box::new(e),
        other => panic!("expected Elapsed, got {other:?}"),
    };
    let msg = err.to_string();
    assert!(
        msg.contains("greenlet 'slowpoke'") && msg.contains("still running"),
        "{msg}"
    );
    assert!(
        err.source().is_none(),
        "an elapsed join has no underlying cause"
    );
    drop(err); // dropping the handle inside detaches the greenlet; it still finishes
    gate.set();

    let victim = spawn(|| sleep(Duration::from_secs(1000)));
    yield_now();
    victim.kill();
    let err = victim.join_timeout(Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.to_string(), "greenlet was killed");
    let source = err.source().expect("a failed join names its cause");
    assert!(matches!(
        source.downcast_ref::<JoinError>(),
        Some(JoinError::Killed)
    ));
}

#[test]
fn joinall_killall_wait_any_and_iwait() {
    if valgrind::skip_under_valgrind(
        "orders greenlets by 5/15/30 ms sleeps, which Valgrind's slowdown breaks",
    ) {
        return;
    }
    let hs: Vec<_> = (0..5).map(|i| spawn(move || i * 10)).collect();
    let values: Vec<i32> = joinall(hs).into_iter().map(Result::unwrap).collect();
    assert_eq!(values, [0, 10, 20, 30, 40]);

    let sleepers: Vec<_> = (0..3)
        .map(|_| spawn(|| sleep(Duration::from_secs(1000))))
        .collect();
    yield_now();
    killall(&sleepers);
    assert!(sleepers.iter().all(|h| h.is_finished()));

    let racers: Vec<_> = [30u64, 5, 15]
        .into_iter()
        .map(|ms| {
            spawn(move || {
                sleep(Duration::from_millis(ms));
                ms
            })
        })
        .collect();
    assert_eq!(wait_any(&racers, None), Some(1));
    let order: Vec<u64> = iwait(racers).map(|h| h.join().unwrap()).collect();
    assert_eq!(order, [5, 15, 30]);
    assert_eq!(wait_any::<()>(&[], None), None);
    let slow = [spawn(|| sleep(Duration::from_millis(200)))];
    assert_eq!(wait_any(&slow, Some(Duration::from_millis(5))), None);
    slow[0].kill();
}

#[test]
fn spawn_later_runs_after_the_delay_and_never_runs_if_killed_first() {
    let start = std::time::Instant::now();
    let h = spawn_later(Duration::from_millis(30), move || start.elapsed());
    assert!(h.join().unwrap() >= Duration::from_millis(30));
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let h = spawn_later(Duration::from_millis(30), move || r.set(true));
    yield_now();
    h.kill();
    sleep(Duration::from_millis(40));
    assert!(!ran.get());
}

#[test]
fn the_registry_lists_greenlets_with_names_locations_and_waits() {
    // The main greenlet joins the registry once it first uses the runtime.
    let _ = current_info();
    let before = active_count();
    let h = Builder::new()
        .name("napper")
        .spawn(|| sleep(Duration::from_secs(1000)));
    yield_now();
    let list = greenlets();
    let napper = list
        .iter()
        .find(|g| g.name.as_deref() == Some("napper"))
        .expect("napper is listed");
    assert_eq!(napper.state, TaskState::Blocked);
    assert!(napper.spawned_at.unwrap().file().ends_with("tasks.rs"));
    assert!(napper.waiting_on.as_deref().unwrap().starts_with("sleep"));
    assert_eq!(active_count(), before + 1);
    let me = current_info();
    assert_eq!(me.state, TaskState::Running);
    assert_eq!(me.name.as_deref(), Some("main"));
    h.kill();
    assert_eq!(active_count(), before);
}

#[test]
fn a_deadlock_panics_in_main_with_a_report_of_every_blocked_greenlet() {
    let h = Builder::new().name("outer").spawn(|| {
        let inner = Builder::new()
            .name("forever")
            .spawn(|| sleep(Duration::MAX));
        inner.join().unwrap();
    });
    let msg = panic::catch_unwind(AssertUnwindSafe(|| h.wait()))
        .map_err(panic_text)
        .unwrap_err();
    assert!(msg.contains("deadlock"), "{msg}");
    assert!(
        msg.contains("greenlet 'outer'") && msg.contains("waits on join of greenlet 'forever'"),
        "{msg}"
    );
    assert!(
        msg.contains("greenlet 'forever'") && msg.contains("sleep for ever"),
        "{msg}"
    );
    assert!(
        msg.contains("greenlet 'main'") && msg.contains("the thread's main greenlet"),
        "{msg}"
    );
    assert!(
        msg.contains("tasks.rs:"),
        "spawn locations are listed: {msg}"
    );
}

#[test]
fn a_thread_may_exit_with_greenlets_still_parked() {
    let t = std::thread::spawn(|| {
        let _parked = spawn(|| sleep(Duration::from_secs(1000)));
        yield_now();
        active_count()
    });
    assert_eq!(t.join().unwrap(), 2, "the parked greenlet and main");
    let t = std::thread::spawn(|| spawn(|| 3).join().unwrap());
    assert_eq!(t.join().unwrap(), 3);
}

#[test]
fn each_thread_has_its_own_hub() {
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let hs: Vec<_> = (0..50)
                    .map(|j| {
                        spawn(move || {
                            sleep(Duration::from_millis(10));
                            i * 100 + j
                        })
                    })
                    .collect();
                joinall(hs).into_iter().map(Result::unwrap).sum::<i32>()
            })
        })
        .collect();
    let sums: Vec<i32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(sums, [1225, 6225, 11225, 16225]);
}

#[test]
fn throwing_into_the_hub_panics_in_main_with_a_clear_message() {
    let h = spawn(|| {
        let hub = greenweave_greenlet::current()
            .parent()
            .expect("a spawned greenlet's parent is the hub");
        assert_eq!(hub.name().as_deref(), Some("hub"));
        hub.throw(greenweave_greenlet::GreenletExit);
    });
    let msg = panic::catch_unwind(AssertUnwindSafe(|| h.wait()))
        .map_err(panic_text)
        .unwrap_err();
    assert!(
        msg.contains("the hub greenlet was killed") && msg.contains("JoinHandle::kill"),
        "{msg}"
    );
}

#[test]
fn a_joined_greenlets_record_is_reused_with_nothing_of_it_left_over() {
    // The hub keeps the records of joined greenlets for the next spawns: a killed,
    // named greenlet with a pending timeout and a `Local` value must leave nothing to
    // the greenlets spawned after it.
    static MARK: greenweave_runtime::local::Local<u32> =
        greenweave_runtime::local::Local::new(|| 0);
    for round in 0..3 {
        let old = Builder::new().name(format!("old {round}")).spawn(|| {
            MARK.set(7);
            let _late = greenweave_runtime::Timeout::start(Duration::from_secs(3600));
            sleep(Duration::from_secs(3600));
        });
        yield_now();
        let old_id = old.id();
        old.kill();
        assert!(matches!(old.join(), Err(JoinError::Killed)));
        let fresh = spawn(|| {
            let me = current_info();
            // Not killed: it blocks and runs on.
            sleep(Duration::from_millis(1));
            (me, MARK.get())
        });
        let (me, mark) = fresh.join().expect("the new greenlet is not killed");
        assert_eq!(me.name, None, "the name is not inherited");
        assert!(
            me.spawned_at
                .is_some_and(|at| at.file().ends_with("tasks.rs"))
        );
        assert_ne!(me.id, old_id);
        assert_eq!(mark, 0, "the Local value of the old greenlet is gone");
    }
}
