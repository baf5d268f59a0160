//! `poll`, `ppoll` and `select` in greenlets: timeouts kept, counts exact, parking
//! instead of blocking.

mod common;
use common::{pipe, ticker};

use std::cell::Cell;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{sleep, spawn};

fn write_fd(fd: RawFd, buf: &[u8]) -> isize {
    // SAFETY: a valid buffer of the length given.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

fn poll_fds(fds: &mut [libc::pollfd], timeout_ms: i32) -> i32 {
    // SAFETY: a valid array of the length given.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
}

fn pfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

#[test]
fn poll_on_one_fd_times_out_after_its_timeout_while_others_run() {
    greenweave_monkey::patch_all();
    let (r, _w) = pipe();
    let (ticks, t) = ticker();
    let start = Instant::now();
    let mut fds = [pfd(r.as_raw_fd(), libc::POLLIN)];
    assert_eq!(poll_fds(&mut fds, 100), 0);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    if !common::valgrind::skip_under_valgrind("the 2 s wall-time bound") {
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
    assert_eq!(fds[0].revents, 0);
    common::assert_ticked(&ticks, 10, "poll waited out its timeout");
    t.kill();
}

#[test]
fn poll_returns_as_soon_as_its_fd_is_ready() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let writer = spawn(move || {
        sleep(Duration::from_millis(20));
        write_fd(w.as_raw_fd(), b"x");
        w
    });
    let start = Instant::now();
    let mut fds = [pfd(r.as_raw_fd(), libc::POLLIN)];
    assert_eq!(poll_fds(&mut fds, 5_000), 1);
    assert_eq!(fds[0].revents, libc::POLLIN);
    assert!(start.elapsed() < Duration::from_secs(2));
    drop(writer.join().unwrap());
}

#[test]
fn poll_on_many_fds_reports_exactly_what_is_ready() {
    greenweave_monkey::patch_all();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (r3, _w3) = pipe();
    let (s1, s2) = UnixStream::pair().unwrap();
    let writer = spawn(move || {
        sleep(Duration::from_millis(20));
        // Both before anything else runs: the poller sees both.
        write_fd(w1.as_raw_fd(), b"a");
        (&s2).write_all(b"b").unwrap();
        (w1, w2, s2)
    });
    let mut fds = [
        pfd(r1.as_raw_fd(), libc::POLLIN),
        pfd(r2.as_raw_fd(), libc::POLLIN),
        pfd(r3.as_raw_fd(), libc::POLLIN | libc::POLLPRI),
        pfd(-1, libc::POLLIN), // ignored, as the kernel does
        pfd(s1.as_raw_fd(), libc::POLLIN),
    ];
    let start = Instant::now();
    assert_eq!(poll_fds(&mut fds, -1), 2);
    assert!(start.elapsed() >= Duration::from_millis(15));
    let revents: Vec<_> = fds.iter().map(|p| p.revents).collect();
    assert_eq!(revents, [libc::POLLIN, 0, 0, 0, libc::POLLIN]);
    drop(writer.join().unwrap());

    // The same fd twice counts twice; a hang-up is reported without being asked for.
    let (r, w) = pipe();
    drop(w);
    let mut fds = [pfd(r.as_raw_fd(), 0), pfd(r.as_raw_fd(), libc::POLLIN)];
    assert_eq!(poll_fds(&mut fds, 1_000), 2);
    assert_eq!(fds[0].revents, libc::POLLHUP);
}

#[test]
fn zero_timeouts_pass_through_and_no_fds_sleep() {
    greenweave_monkey::patch_all();
    let (r, _w) = pipe();
    let (ticks, t) = ticker();
    let mut fds = [pfd(r.as_raw_fd(), libc::POLLIN)];
    assert_eq!(poll_fds(&mut fds, 0), 0);
    assert_eq!(ticks.get(), 0, "a zero-timeout poll parked");
    let start = Instant::now();
    assert_eq!(poll_fds(&mut [], 50), 0);
    assert!(start.elapsed() >= Duration::from_millis(50));
    common::assert_ticked(&ticks, 5, "poll without fds slept");
    // A closed fd: POLLNVAL at once.
    let mut bad = [pfd(1_000_000, libc::POLLIN)];
    assert_eq!(poll_fds(&mut bad, 5_000), 1);
    assert_eq!(bad[0].revents, libc::POLLNVAL);
    t.kill();
}

#[test]
fn ppoll_keeps_its_timeout_and_leaves_it_alone() {
    greenweave_monkey::patch_all();
    let (r, _w) = pipe();
    let (ticks, t) = ticker();
    let mut fds = [pfd(r.as_raw_fd(), libc::POLLIN)];
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 60_000_000,
    };
    let start = Instant::now();
    // SAFETY: valid pointers; no signal mask.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 1, &timeout, std::ptr::null()) };
    assert_eq!(rc, 0);
    assert!(start.elapsed() >= Duration::from_millis(60));
    assert_eq!((timeout.tv_sec, timeout.tv_nsec), (0, 60_000_000));
    common::assert_ticked(&ticks, 5, "ppoll waited out its timeout");
    let bad = libc::timespec {
        tv_sec: 0,
        tv_nsec: 2_000_000_000,
    };
    // SAFETY: valid pointers; the timeout is deliberately out of range.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 1, &bad, std::ptr::null()) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EINVAL)
    );
    t.kill();
}

/// `select` on the given read and write fds; returns the count, the fds left in the
/// sets, and the timeout as left.
fn select(
    read: &[RawFd],
    write: &[RawFd],
    timeout: Option<Duration>,
) -> (i32, Vec<RawFd>, Vec<RawFd>, libc::timeval) {
    // SAFETY: an all-zero fd_set is empty.
    let (mut rs, mut ws): (libc::fd_set, libc::fd_set) = unsafe { std::mem::zeroed() };
    // SAFETY: the fds are below FD_SETSIZE in these tests.
    read.iter()
        .for_each(|&fd| unsafe { libc::FD_SET(fd, &mut rs) });
    // SAFETY: as above.
    write
        .iter()
        .for_each(|&fd| unsafe { libc::FD_SET(fd, &mut ws) });
    let nfds = read.iter().chain(write).max().map_or(0, |m| m + 1);
    let mut tv = timeout.map(|t| libc::timeval {
        tv_sec: t.as_secs() as _,
        tv_usec: t.subsec_micros() as _,
    });
    let tvp = tv.as_mut().map_or(std::ptr::null_mut(), |t| t as *mut _);
    // SAFETY: valid sets and timeout.
    let rc = unsafe { libc::select(nfds, &mut rs, &mut ws, std::ptr::null_mut(), tvp) };
    let is_set = |fd: libc::c_int, set: &libc::fd_set| {
        // SAFETY: `set` is a valid, initialised fd_set and `fd` < FD_SETSIZE.
        unsafe { libc::FD_ISSET(fd, set) }
    };
    let left_r = read.iter().copied().filter(|&fd| is_set(fd, &rs)).collect();
    let left_w = write
        .iter()
        .copied()
        .filter(|&fd| is_set(fd, &ws))
        .collect();
    let tv = tv.unwrap_or(libc::timeval {
        tv_sec: -1,
        tv_usec: -1,
    });
    (rc, left_r, left_w, tv)
}

#[test]
fn select_keeps_timeouts_and_counts_each_set() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let (ticks, t) = ticker();
    let start = Instant::now();
    let (rc, rs, _, tv) = select(&[r.as_raw_fd()], &[], Some(Duration::from_millis(80)));
    assert_eq!((rc, rs.len()), (0, 0));
    assert!(start.elapsed() >= Duration::from_millis(80));
    assert_eq!((tv.tv_sec, tv.tv_usec), (0, 0), "no time left");
    common::assert_ticked(&ticks, 8, "select waited out its timeouts");

    // A socket both readable and writable counts twice.
    let (a, b) = UnixStream::pair().unwrap();
    let writer = spawn(move || {
        sleep(Duration::from_millis(20));
        (&b).write_all(b"x").unwrap();
        b
    });
    let (rc, rs, ws, tv) = select(
        &[a.as_raw_fd(), r.as_raw_fd()],
        &[a.as_raw_fd()],
        Some(Duration::from_secs(5)),
    );
    // The socket is writable at once: no wait.
    assert_eq!((rc, rs, ws), (1, vec![], vec![a.as_raw_fd()]));
    assert!(tv.tv_sec >= 4, "the time left is written back");
    let (rc, rs, _, _) = select(&[a.as_raw_fd(), r.as_raw_fd()], &[], None);
    assert_eq!((rc, rs), (1, vec![a.as_raw_fd()]));
    drop(writer.join().unwrap());
    write_fd(w.as_raw_fd(), b"y");
    let (rc, rs, ws, _) = select(
        &[a.as_raw_fd(), r.as_raw_fd()],
        &[a.as_raw_fd()],
        Some(Duration::from_secs(5)),
    );
    assert_eq!(
        (rc, rs, ws),
        (3, vec![a.as_raw_fd(), r.as_raw_fd()], vec![a.as_raw_fd()])
    );

    // A closed fd in a set: EBADF.
    let closed = {
        let (x, _y) = pipe();
        x.as_raw_fd()
    };
    let (rc, ..) = select(&[closed], &[], Some(Duration::from_secs(1)));
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EBADF)
    );
    t.kill();
}

#[test]
fn a_killed_poller_gets_ecanceled() {
    greenweave_monkey::patch_all();
    let (r1, _w1) = pipe();
    let (r2, _w2) = pipe();
    let fds = [r1.as_raw_fd(), r2.as_raw_fd()];
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let h = spawn(move || {
        let mut set = [pfd(fds[0], libc::POLLIN), pfd(fds[1], libc::POLLIN)];
        let rc = poll_fds(&mut set, -1);
        s.set(Some((rc, std::io::Error::last_os_error().raw_os_error())));
    });
    greenweave_runtime::yield_now();
    h.kill();
    let _ = h.join();
    assert_eq!(seen.get(), Some((-1, Some(libc::ECANCELED))));
}
