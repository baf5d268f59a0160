//! `pselect` in greenlets (and `ppoll`'s signal mask): a null mask parks like `select`,
//! a mask passes straight through so the race-free wait for a signal keeps working.

mod common;
use common::{pipe, ticker};

use std::cell::Cell;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{sleep, spawn, with_timeout, yield_now};

fn write_fd(fd: RawFd, buf: &[u8]) -> isize {
    // SAFETY: a valid buffer of the length given.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

fn errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

fn ts(ms: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    }
}

/// `pselect` for reading on `fd`; returns (rc, whether `fd` is still in the set).
fn pselect_read(
    fd: RawFd,
    timeout: Option<&libc::timespec>,
    mask: Option<&libc::sigset_t>,
) -> (i32, bool) {
    // SAFETY: an all-zero fd_set is a valid empty set; FD_SET within FD_SETSIZE.
    let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is below FD_SETSIZE in these tests.
    unsafe { libc::FD_SET(fd, &mut set) };
    let timeout = timeout.map_or(std::ptr::null(), |t| t as *const _);
    let mask = mask.map_or(std::ptr::null(), |m| m as *const _);
    let null = std::ptr::null_mut();
    // SAFETY: a valid set for `fd + 1` fds; timeout and mask null or valid.
    let rc = unsafe { libc::pselect(fd + 1, &mut set, null, null, timeout, mask) };
    // SAFETY: as above.
    (rc, unsafe { libc::FD_ISSET(fd, &set) })
}

fn empty_mask() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid set.
    unsafe { libc::sigemptyset(&mut set) };
    set
}

#[test]
fn pselect_parks_until_its_fd_is_readable_and_leaves_its_timeout_alone() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let (ticks, t) = ticker();
    let writer = spawn(move || {
        sleep(Duration::from_millis(50));
        write_fd(w.as_raw_fd(), b"x");
    });
    let timeout = ts(5000);
    assert_eq!(pselect_read(r.as_raw_fd(), Some(&timeout), None), (1, true));
    assert_eq!((timeout.tv_sec, timeout.tv_nsec), (5, 0));
    common::assert_ticked(&ticks, 5, "pselect waited for its fd");
    writer.join().unwrap();
    t.kill();
}

#[test]
fn fifty_overlapping_pselect_timeouts_run_at_once() {
    greenweave_monkey::patch_all();
    let start = Instant::now();
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            spawn(|| {
                let (r, _w) = pipe();
                pselect_read(r.as_raw_fd(), Some(&ts(300)), None)
            })
        })
        .collect();
    for w in waiters {
        assert_eq!(w.join().unwrap(), (0, false));
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    if !common::valgrind::skip_under_valgrind("the 1.5 s wall-time bound") {
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }
}

#[test]
fn bad_pselect_arguments_get_the_kernels_errors() {
    greenweave_monkey::patch_all();
    let (r, _w) = pipe();
    let bad = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000_000,
    };
    assert_eq!(pselect_read(r.as_raw_fd(), Some(&bad), None).0, -1);
    assert_eq!(errno(), Some(libc::EINVAL));
    let null = std::ptr::null_mut();
    // SAFETY: no sets; a negative count the kernel refuses.
    let rc = unsafe { libc::pselect(-1, null, null, null, &ts(10), std::ptr::null()) };
    assert_eq!((rc, errno()), (-1, Some(libc::EINVAL)));
}

#[test]
fn a_killed_or_timed_out_pselect_gets_an_errno() {
    greenweave_monkey::patch_all();
    let (r, _w) = pipe();
    let fd = r.as_raw_fd();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let h = spawn(move || {
        let rc = pselect_read(fd, None, None).0;
        s.set(Some((rc, errno())));
        sleep(Duration::from_millis(1)); // delivered once: this sleeps
    });
    yield_now();
    h.kill();
    h.join().unwrap();
    assert_eq!(seen.get(), Some((-1, Some(libc::ECANCELED))));

    let s = seen.clone();
    let outcome = with_timeout(Duration::from_millis(30), || {
        let rc = pselect_read(fd, None, None).0;
        s.set(Some((rc, errno())));
        sleep(Duration::from_millis(1)); // delivered once: this sleeps
    });
    assert_eq!(
        outcome,
        Ok(()),
        "the code went on after its timeout's errno"
    );
    assert_eq!(seen.get(), Some((-1, Some(libc::ETIMEDOUT))));
}

#[test]
fn a_signal_mask_makes_pselect_and_ppoll_pass_through() {
    greenweave_monkey::patch_all();
    let (r, _w) = pipe();
    let (ticks, t) = ticker();
    yield_now(); // the ticker is now asleep on the hub
    let mask = empty_mask();
    let start = Instant::now();
    assert_eq!(
        pselect_read(r.as_raw_fd(), Some(&ts(100)), Some(&mask)).0,
        0
    );
    let mut fds = [libc::pollfd {
        fd: r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd, a valid timeout and mask.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 1, &ts(100), &mask) };
    assert_eq!(rc, 0);
    assert!(start.elapsed() >= Duration::from_millis(200));
    // The thread was blocked: nothing else ran.
    assert_eq!(ticks.get(), 0);
    t.kill();
}

extern "C" fn on_usr1(_: libc::c_int) {}

#[test]
fn pselect_with_a_mask_is_interrupted_by_the_signal_it_unblocks() {
    greenweave_monkey::patch_all();
    // SAFETY: installing a handler that does nothing; blocking SIGUSR1 on this
    // thread only, so the signal stays pending until pselect's mask lets it in.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_usr1 as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
        let mut block = empty_mask();
        libc::sigaddset(&mut block, libc::SIGUSR1);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &block, std::ptr::null_mut()),
            0
        );
    }
    let (r, _w) = pipe();
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    let signaller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: the test thread is alive: it waits in pselect until this signal.
        unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
    });
    spawn(|| ()).join().unwrap(); // this thread has a hub: pselect could park
    let start = Instant::now();
    let (rc, _) = pselect_read(r.as_raw_fd(), Some(&ts(5000)), Some(&empty_mask()));
    assert_eq!((rc, errno()), (-1, Some(libc::EINTR)));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    signaller.join().unwrap();
}
