//! What a thread's exit does to the greenlets still alive on it: each is killed once,
//! its destructors run (and may block), and one that will not die is abandoned after
//! a grace period instead of holding the thread for ever.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use greenweave_runtime::queue::Queue;
use greenweave_runtime::sync::Event;
use greenweave_runtime::{sleep, spawn, yield_now};

#[path = "common/valgrind.rs"]
mod valgrind;

/// Whether time bounds hold: not under Valgrind, which runs everything 20-50x slower.
fn timed() -> bool {
    !valgrind::skip_under_valgrind("a time bound on the thread's exit")
}

/// Sets its flag when dropped: proves a greenlet's stack was unwound.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Runs `f` on a new thread and returns how long the thread took to exit after `f`.
fn exit_time(f: impl FnOnce() + Send + 'static) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        f();
        tx.send(Instant::now()).unwrap();
    });
    thread.join().expect("the thread exited cleanly");
    rx.recv().unwrap().elapsed()
}

#[test]
fn greenlets_parked_at_thread_exit_are_killed_and_unwound() {
    let (slept, waited, queued, unstarted) = (flag(), flag(), flag(), flag());
    let ran = flag();
    let (s, w, q, u, r) = (
        slept.clone(),
        waited.clone(),
        queued.clone(),
        unstarted.clone(),
        ran.clone(),
    );
    let took = exit_time(move || {
        let _sleeper = spawn(move || {
            let _guard = SetOnDrop(s);
            sleep(Duration::from_secs(3600));
        });
        let event = Rc::new(Event::new());
        let e = event.clone();
        let _waiter = spawn(move || {
            let _guard = SetOnDrop(w);
            e.wait();
        });
        let queue: Rc<Queue<u8>> = Rc::new(Queue::new(0));
        let qq = queue.clone();
        let _getter = spawn(move || {
            let _guard = SetOnDrop(q);
            qq.get()
        });
        yield_now();
        // Spawned last, never started: it must not run at exit, but what it owns drops.
        let guard = SetOnDrop(u);
        let _unstarted = spawn(move || {
            r.store(true, Ordering::SeqCst);
            drop(guard);
        });
    });
    for (name, f) in [
        ("sleep", &slept),
        ("Event", &waited),
        ("Queue::get", &queued),
        ("unstarted", &unstarted),
    ] {
        assert!(
            f.load(Ordering::SeqCst),
            "the greenlet in {name} was not unwound"
        );
    }
    assert!(
        !ran.load(Ordering::SeqCst),
        "an unstarted greenlet ran at exit"
    );
    assert!(
        !timed() || took < Duration::from_millis(900),
        "exit took {took:?}"
    );
}

/// Blocks in its destructor: sleeps, then spawns and joins a greenlet.
struct BlocksOnDrop(Arc<AtomicUsize>);

impl Drop for BlocksOnDrop {
    fn drop(&mut self) {
        sleep(Duration::from_millis(20));
        self.0.fetch_add(1, Ordering::SeqCst);
        let n = self.0.clone();
        spawn(move || n.fetch_add(1, Ordering::SeqCst))
            .join()
            .unwrap();
    }
}

#[test]
fn destructors_may_block_while_the_exit_unwinds_their_greenlet() {
    let steps = Arc::new(AtomicUsize::new(0));
    let s = steps.clone();
    exit_time(move || {
        for _ in 0..3 {
            let s = s.clone();
            spawn(move || {
                let _guard = BlocksOnDrop(s);
                sleep(Duration::from_secs(3600));
            });
        }
        yield_now();
    });
    assert_eq!(
        steps.load(Ordering::SeqCst),
        6,
        "each destructor slept, then spawned and joined"
    );
}

/// Spawns a greenlet (not joined) that blocks for ever, when dropped.
struct SpawnsOnDrop(Arc<AtomicBool>, Arc<AtomicBool>);

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let (ran, guard) = (self.0.clone(), SetOnDrop(self.1.clone()));
        spawn(move || {
            let _guard = guard;
            ran.store(true, Ordering::SeqCst);
            sleep(Duration::from_secs(3600));
        });
    }
}

#[test]
fn a_greenlet_spawned_during_the_exit_is_killed_at_its_blocking_point() {
    let (ran, unwound) = (flag(), flag());
    let (r, u) = (ran.clone(), unwound.clone());
    let took = exit_time(move || {
        spawn(move || {
            let _guard = SpawnsOnDrop(r, u);
            sleep(Duration::from_secs(3600));
        });
        yield_now();
    });
    assert!(
        ran.load(Ordering::SeqCst),
        "it ran up to its blocking point"
    );
    assert!(
        unwound.load(Ordering::SeqCst),
        "then it was killed and unwound"
    );
    assert!(
        !timed() || took < Duration::from_millis(900),
        "exit took {took:?}"
    );
}

#[test]
fn a_greenlet_that_survives_its_kill_is_abandoned_after_the_grace_period() {
    let kills = Arc::new(AtomicUsize::new(0));
    let unwound = flag();
    let (k, u) = (kills.clone(), unwound.clone());
    let took = exit_time(move || {
        spawn(move || {
            let _guard = SetOnDrop(u);
            loop {
                // Catches every kill and blocks again.
                if catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_millis(5)))).is_err() {
                    k.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        yield_now();
    });
    assert_eq!(kills.load(Ordering::SeqCst), 1, "the exit kills once");
    assert!(
        !unwound.load(Ordering::SeqCst),
        "it was abandoned, not unwound"
    );
    assert!(
        took >= Duration::from_millis(900),
        "the exit waited the grace period"
    );
    assert!(
        !timed() || took < Duration::from_secs(10),
        "the exit waited the grace period (1 s), not {took:?}"
    );
    // The process goes on: other threads use greenlets as before.
    std::thread::spawn(|| spawn(|| 7).join().unwrap())
        .join()
        .unwrap();
}

#[test]
fn a_forked_child_that_exits_leaves_the_parents_waits_alone() {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [r, w] = fds;
    let reader = spawn(move || {
        greenweave_runtime::io::wait_readable(r, Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 5];
        // SAFETY: reading into a live buffer of its length.
        unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) }
    });
    yield_now(); // registered with this hub's epoll instance
    // SAFETY: the child exits at once; `exit` runs this thread's thread-local
    // destructors, the hub's teardown among them, which must leave the waits that the
    // parent's epoll instance (shared with the child) holds alone.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: ends the child process.
        unsafe { libc::exit(0) };
    }
    assert!(child > 0);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    // Under Valgrind too: what the child left behind is kept reachable, not leaked.
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 0);
    // SAFETY: writing from a live buffer.
    assert_eq!(unsafe { libc::write(w, b"after".as_ptr().cast(), 5) }, 5);
    assert_eq!(reader.join().unwrap(), 5, "the parent's reader was woken");
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(r);
        libc::close(w);
    }
}

/// The scenarios below run in a child process (this test binary again), because they
/// end it: `std::process::exit` runs the calling thread's thread-local destructors.
const CHILD: &str = "GREENWEAVE_THREAD_EXIT_CHILD";

fn run_child(scenario: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "exit_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, scenario)
        .output()
        .expect("the test binary runs")
}

#[test]
fn exit_child() {
    let Ok(scenario) = std::env::var(CHILD) else {
        return; // only a child process runs a scenario
    };
    struct Says(&'static str);
    impl Drop for Says {
        fn drop(&mut self) {
            eprintln!("{}", self.0);
        }
    }
    spawn(|| {
        let _guard = Says("parked greenlet unwound");
        sleep(Duration::from_secs(3600));
    });
    yield_now();
    match scenario.as_str() {
        "from-main" => std::process::exit(3),
        "from-greenlet" => {
            spawn(|| std::process::exit(4)).join().unwrap();
        }
        _ => unreachable!("unknown scenario {scenario}"),
    }
}

#[test]
fn process_exit_from_the_main_greenlet_unwinds_the_parked_greenlets() {
    let out = run_child("from-main");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("parked greenlet unwound"), "{stderr}");
}

#[test]
fn process_exit_from_a_spawned_greenlet_abandons_the_others_and_exits_cleanly() {
    let out = run_child("from-greenlet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(!stderr.contains("parked greenlet unwound"), "{stderr}");
}
