//! Futex waits and wakes crossing OS threads and hubs, kills and timeouts reaching a
//! greenlet inside a std wait, and what stays untouched (plain threads, parking_lot).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use greenweave_runtime::{JoinError, sleep, spawn, with_timeout};

/// A counter two parties take turns to bump through a std `Mutex` + `Condvar`: each
/// waits until the count has its parity, so every hand-over is a wait and a wake.
struct Turns {
    count: Mutex<u64>,
    changed: Condvar,
}

impl Turns {
    fn new() -> Arc<Turns> {
        Arc::new(Turns {
            count: Mutex::new(0),
            changed: Condvar::new(),
        })
    }

    /// Takes this party's `rounds` turns (`parity` 0 or 1).
    fn play(&self, parity: u64, rounds: u64) {
        for _ in 0..rounds {
            let guard = self.count.lock().unwrap();
            let mut guard = self
                .changed
                .wait_timeout_while(guard, Duration::from_secs(20), |c| *c % 2 != parity)
                .unwrap()
                .0;
            assert_eq!(
                *guard % 2,
                parity,
                "a wake-up was lost: stuck at {}",
                *guard
            );
            *guard += 1;
            self.changed.notify_all();
        }
    }
}

#[test]
fn ten_thousand_handovers_between_a_greenlet_and_an_os_thread_lose_no_wake_up() {
    greenweave_monkey::patch_all();
    let turns = Turns::new();
    let t = turns.clone();
    let thread = std::thread::spawn(move || t.play(1, 10_000));
    let t = turns.clone();
    spawn(move || t.play(0, 10_000)).join().unwrap();
    thread.join().unwrap();
    assert_eq!(*turns.count.lock().unwrap(), 20_000);
}

#[test]
fn ten_thousand_handovers_between_greenlets_of_two_hubs_lose_no_wake_up() {
    greenweave_monkey::patch_all();
    let turns = Turns::new();
    let t = turns.clone();
    // The other thread runs its side in a greenlet of its own hub.
    let other_hub = std::thread::spawn(move || spawn(move || t.play(1, 10_000)).join().unwrap());
    let t = turns.clone();
    spawn(move || t.play(0, 10_000)).join().unwrap();
    other_hub.join().unwrap();
    assert_eq!(*turns.count.lock().unwrap(), 20_000);
}

#[test]
fn ten_thousand_messages_each_way_between_greenlets_and_a_thread() {
    greenweave_monkey::patch_all();
    let (to_thread, thread_rx) = mpsc::channel::<u64>();
    let (to_greenlet, greenlet_rx) = mpsc::sync_channel::<u64>(0); // rendezvous
    let echo = std::thread::spawn(move || {
        for n in thread_rx {
            to_greenlet.send(n + 1).unwrap();
        }
    });
    let sum = spawn(move || {
        let mut sum = 0;
        for i in 0..10_000 {
            to_thread.send(i).unwrap();
            sum += greenlet_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        }
        sum
    })
    .join()
    .unwrap();
    echo.join().unwrap();
    assert_eq!(sum, (1..=10_000).sum::<u64>());
}

#[test]
fn a_kill_reaches_a_greenlet_waiting_for_a_std_lock_once_it_has_the_lock() {
    greenweave_monkey::patch_all();
    let lock = Arc::new(Mutex::new(0));
    let guard_holder = lock.clone();
    let holder = spawn(move || {
        let mut guard = guard_holder.lock().unwrap();
        sleep(Duration::from_millis(50));
        *guard += 1;
    });
    let l = lock.clone();
    let victim = spawn(move || {
        let mut guard = l.lock().unwrap(); // parks in the futex hook
        *guard += 10;
        drop(guard);
        sleep(Duration::from_secs(10)); // the kill lands here
        unreachable!("the kill was not delivered");
    });
    greenweave_runtime::yield_now(); // both are now in place
    let start = Instant::now();
    victim.kill_nowait();
    holder.join().unwrap();
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
    assert!(start.elapsed() < Duration::from_secs(5));
    // The victim took its turn with the lock before dying, and let it go.
    assert_eq!(*lock.try_lock().expect("the lock was left held"), 11);
}

#[test]
fn a_timeout_around_a_std_condvar_wait_is_delivered_when_the_wait_ends() {
    greenweave_monkey::patch_all();
    let pair = (Mutex::new(()), Condvar::new());
    let start = Instant::now();
    let outcome = with_timeout(Duration::from_millis(20), || {
        let guard = pair.0.lock().unwrap();
        // Not interruptible (std would retry a failed wait at once): the expiry is at
        // most a spurious wake-up, after which std waits out the rest.
        let (_guard, waited) = pair
            .1
            .wait_timeout_while(guard, Duration::from_millis(150), |_| true)
            .unwrap();
        assert!(waited.timed_out());
        sleep(Duration::from_secs(10)); // the expired Timeout is raised here
    });
    assert!(outcome.is_err(), "the timeout was lost");
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn plain_threads_keep_real_futex_waits() {
    greenweave_monkey::patch_all();
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let woken = Arc::new(AtomicU64::new(0));
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (p, w) = (pair.clone(), woken.clone());
            std::thread::spawn(move || {
                let guard = p.0.lock().unwrap();
                drop(p.1.wait_while(guard, |ready| !*ready).unwrap());
                w.fetch_add(1, Ordering::SeqCst);
                greenweave_runtime::coop::can_park()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    *pair.0.lock().unwrap() = true;
    pair.1.notify_all();
    for w in waiters {
        assert!(
            !w.join().unwrap(),
            "a plain thread got a hub from a futex wait"
        );
    }
    assert_eq!(woken.load(Ordering::SeqCst), 4);
}

#[test]
fn other_system_calls_pass_through_the_hook_with_every_argument() {
    greenweave_monkey::patch_all();
    let in_greenlet = spawn(|| {
        // SAFETY: getpid and gettid take no arguments.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) };
        let mut buf = [0_u8; 16];
        // SAFETY: a writable buffer of the length given.
        let n = unsafe { libc::syscall(libc::SYS_getrandom, buf.as_mut_ptr(), buf.len(), 0) };
        // SAFETY: fd -1 is invalid: the kernel says EBADF.
        let bad = unsafe { libc::syscall(libc::SYS_close, -1) };
        let err = std::io::Error::last_os_error().raw_os_error();
        (pid, n, bad, err)
    })
    .join()
    .unwrap();
    assert_eq!(in_greenlet.0, i64::from(std::process::id() as i32));
    assert_eq!(in_greenlet.1, 16);
    assert_eq!((in_greenlet.2, in_greenlet.3), (-1, Some(libc::EBADF)));
}

#[test]
fn futex_calls_keep_the_kernel_contract_for_values_and_timeouts() {
    greenweave_monkey::patch_all();
    spawn(|| {
        let word = std::sync::atomic::AtomicU32::new(5);
        let wait = |expected: u32, timeout: Option<libc::timespec>| {
            let ts = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _);
            // SAFETY: a live aligned word and a valid (or null) relative timeout.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    expected,
                    ts,
                )
            };
            (rc, std::io::Error::last_os_error().raw_os_error())
        };
        // The word no longer holds the value: EAGAIN at once.
        assert_eq!(wait(4, None), (-1, Some(libc::EAGAIN)));
        // A relative timeout, honoured.
        let start = Instant::now();
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 30_000_000,
        };
        assert_eq!(wait(5, Some(ts)), (-1, Some(libc::ETIMEDOUT)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        // A malformed timeout: the kernel's EINVAL.
        let bad = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000_000,
        };
        assert_eq!(wait(5, Some(bad)), (-1, Some(libc::EINVAL)));
        // A wake with nobody waiting wakes nobody.
        // SAFETY: a live aligned word.
        let woken = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1,
            )
        };
        assert_eq!(woken, 0);
    })
    .join()
    .unwrap();
}

#[test]
fn a_wake_counts_the_greenlets_it_woke_and_wakes_no_more_than_asked() {
    greenweave_monkey::patch_all();
    let word: &'static std::sync::atomic::AtomicU32 =
        Box::leak(Box::new(std::sync::atomic::AtomicU32::new(0)));
    let wait = move || {
        // SAFETY: a live ('static) aligned word, no timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                0,
                0,
            )
        }
    };
    let wake = move |n: i32| {
        // SAFETY: a live aligned word.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                n,
            )
        }
    };
    let waiters: Vec<_> = (0..5).map(|_| spawn(wait)).collect();
    greenweave_runtime::yield_now(); // all five parked
    assert_eq!(wake(2), 2);
    greenweave_runtime::yield_now();
    let finished = waiters.iter().filter(|w| w.is_finished()).count();
    assert_eq!(finished, 2, "a wake of 2 ended {finished} waits");
    assert_eq!(wake(i32::MAX), 3);
    for w in waiters {
        assert_eq!(w.join().unwrap(), 0);
    }
}
