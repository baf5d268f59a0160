//! What a forked child sees (the crate docs' "Fork" section): the parent's other
//! greenlets are gone (their handles read as killed, nothing wakes them), the forking
//! greenlet's `Timeout` stays armed, thread pools start afresh, a spawned greenlet
//! that forked is the child's `main`, and a fork from inside the hub ends the child
//! once the hub has nothing to do.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use greenweave_runtime::net::UnixStream;
use greenweave_runtime::sync::Event;
use greenweave_runtime::threadpool::{ThreadPool, spawn_blocking};
use greenweave_runtime::{
    Elapsed, JoinError, coop, greenlets, sleep, spawn, wait_any, with_timeout, yield_now,
};

#[path = "common/fork.rs"]
mod forking;
use forking::{CHILD_DEADLINE, Child, PATIENCE, one_fork_at_a_time};

/// Child statuses: 0, or the number of the first check that failed.
fn checks(list: &[bool]) -> i32 {
    list.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
}

#[test]
fn the_parents_greenlets_are_gone_in_the_child_and_their_handles_read_as_killed() {
    let _one = one_fork_at_a_time();
    let ran = Rc::new(Cell::new(false));
    let event = Rc::new(Event::new());
    let (r, e) = (ran.clone(), event.clone());
    let parked = spawn(move || {
        e.wait();
        r.set(true);
    });
    let finished = spawn(|| 7);
    yield_now(); // `parked` parks, `finished` finishes
    let r = ran.clone();
    let unstarted = spawn(move || r.set(true));
    let Some(child) = forking::fork() else {
        forking::child_exits_with(|| {
            event.set(); // would wake `parked` in the parent
            sleep(Duration::from_millis(5));
            let start = Instant::now();
            parked.kill();
            checks(&[
                !ran.get(),
                start.elapsed() < Duration::from_secs(1),
                parked.is_finished(),
                wait_any(std::slice::from_ref(&parked), None) == Some(0),
                matches!(parked.join(), Err(JoinError::Killed)),
                matches!(unstarted.join(), Err(JoinError::Killed)),
                finished.join().ok() == Some(7),
                // Only the forking greenlet (main) is left.
                greenlets().len() == 1,
                !ran.get(),
            ])
        })
    };
    assert_eq!(child.wait(CHILD_DEADLINE), 0, "failed check (1-based)");
    // The parent is untouched.
    assert!(!parked.is_finished());
    event.set();
    parked.join().unwrap();
    assert_eq!(finished.join().unwrap(), 7);
    unstarted.join().unwrap();
}

#[test]
fn the_forking_greenlets_timeout_stays_armed_in_the_child() {
    let _one = one_fork_at_a_time();
    let parent = std::process::id();
    let start = Instant::now();
    let outcome = with_timeout(Duration::from_millis(50), || {
        // The child leaves through `_exit` below.
        let pid = forking::raw_fork();
        if pid == 0 {
            // The child goes on inside the same `with_timeout`, which still bounds it.
            sleep(Duration::from_secs(30));
        }
        pid
    });
    if std::process::id() != parent {
        let bounded = outcome == Err(Elapsed) && start.elapsed() < Duration::from_secs(10);
        // SAFETY: ends the child.
        unsafe { libc::_exit(if bounded { 0 } else { 1 }) };
    }
    let pid = outcome.expect("the parent's body returns at once");
    assert_eq!(Child::of(pid).wait(CHILD_DEADLINE), 0);
}

#[test]
fn thread_pools_start_afresh_in_the_child_and_jobs_of_the_parent_read_as_discarded() {
    let _one = one_fork_at_a_time();
    let pool = ThreadPool::new(1);
    for _ in 0..100 {
        // The default pool and a pool of our own, each busy with a job that waits for
        // the parent's gate; the second job on our pool waits in its queue.
        let (open_default, gate) = mpsc::channel::<()>();
        let busy_default = spawn(move || spawn_blocking(move || gate.recv().is_ok()));
        let (open_pool, gate) = mpsc::channel::<()>();
        let running = pool.spawn(move || gate.recv().is_ok());
        let queued = pool.spawn(|| 5);
        while pool.active() == 0 {
            yield_now();
        }
        let Some(child) = forking::fork() else {
            forking::child_exits_with(|| {
                checks(&[
                    spawn_blocking(|| 6 * 7) == 42,
                    running.is_finished(),
                    matches!(running.join(), Err(JoinError::Killed)),
                    matches!(queued.join(), Err(JoinError::Killed)),
                    pool.run(|| 1) == 1,
                    pool.threads() == 1,
                ])
            })
        };
        open_default.send(()).unwrap();
        open_pool.send(()).unwrap();
        assert!(busy_default.join().unwrap());
        assert!(running.join().unwrap());
        assert_eq!(queued.join().unwrap(), 5);
        assert_eq!(child.wait(CHILD_DEADLINE), 0, "failed check (1-based)");
    }
}

/// Set by the parent's main greenlet after its join: in a child, it must never run.
static MAIN_RESUMED: AtomicBool = AtomicBool::new(false);

/// How the child's main greenlet (a spawned greenlet that forked) ends.
#[derive(Clone, Copy)]
enum End {
    Return,
    Panic,
    /// `std::process::exit(7)`, from the spawned greenlet.
    Exit,
}

/// A spawned greenlet forks; in the child it ends as `end` says after it spawned and
/// joined a greenlet of its own. Returns the child's exit status and what it wrote to
/// the pipe.
fn fork_from_a_greenlet_that_ends(end: End) -> (i32, String) {
    let (mut theirs, mut ours) = UnixStream::pair().unwrap();
    let parent = std::process::id();
    let forker = spawn(move || {
        // In the child this greenlet returns (the child then exits) or panics.
        let pid = forking::raw_fork();
        if pid == 0 {
            let helper = spawn(|| {
                sleep(Duration::from_millis(1));
                "helper"
            });
            let said = helper.join().unwrap();
            theirs.write_all(said.as_bytes()).unwrap();
            match end {
                End::Return => {}
                End::Panic => panic!("the child's main greenlet fails"),
                End::Exit => std::process::exit(7),
            }
        }
        pid
    });
    let pid = forker.join().unwrap();
    if std::process::id() != parent {
        // The parent's main greenlet, resumed in the child: must never happen.
        MAIN_RESUMED.store(true, Ordering::SeqCst);
        // SAFETY: ends the child.
        unsafe { libc::_exit(77) };
    }
    let status = Child::of(pid).wait(CHILD_DEADLINE);
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut said = [0; 6];
    ours.read_exact(&mut said).unwrap();
    (status, String::from_utf8_lossy(&said).into_owned())
}

#[test]
fn a_spawned_greenlet_that_forked_is_the_childs_main() {
    let _one = one_fork_at_a_time();
    let helper = String::from("helper");
    assert_eq!(
        fork_from_a_greenlet_that_ends(End::Return),
        (0, helper.clone())
    );
    assert_eq!(
        fork_from_a_greenlet_that_ends(End::Panic),
        (101, helper.clone())
    );
    assert_eq!(fork_from_a_greenlet_that_ends(End::Exit), (7, helper));
    assert!(!MAIN_RESUMED.load(Ordering::SeqCst));
}

static HOOK_FORKED: AtomicI32 = AtomicI32::new(0);

/// A maintenance hook (it runs on the hub greenlet) that forks once.
fn fork_in_the_hub(_: coop::Maintenance) {
    if HOOK_FORKED.load(Ordering::SeqCst) == 0 {
        HOOK_FORKED.store(-1, Ordering::SeqCst);
        // The child goes on in the hub, which ends it (status 0).
        let pid = forking::raw_fork();
        if pid != 0 {
            HOOK_FORKED.store(pid, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_fork_from_inside_the_hub_ends_the_child_once_the_hub_is_idle() {
    let _one = one_fork_at_a_time();
    let sleeper = spawn(|| sleep(Duration::from_millis(5)));
    coop::on_maintenance(fork_in_the_hub);
    while HOOK_FORKED.load(Ordering::SeqCst) <= 0 {
        sleep(Duration::from_millis(1));
    }
    coop::on_maintenance(|_| {});
    sleeper.join().unwrap();
    let pid = HOOK_FORKED.load(Ordering::SeqCst);
    assert_eq!(Child::of(pid).wait(CHILD_DEADLINE), 0);
}
