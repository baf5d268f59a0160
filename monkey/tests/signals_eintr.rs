//! Signal handlers interrupt patched calls as they interrupt system calls (signal(7)):
//! a greenlet parked in a call the kernel would interrupt gets `EINTR` when a handler
//! runs on its thread; `SA_RESTART` keeps the restartable ones waiting.

mod common;
use common::signals::{
    PATIENCE, count_address, errno, from_another_thread, install, rt, runs, until_parked,
};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greenweave_runtime::sync::Event;
use greenweave_runtime::{JoinHandle, sleep, spawn};
use libc::c_int;

/// A greenlet making a blocking libc call, with what it returned and `errno`.
fn call(f: impl FnOnce() -> isize + 'static) -> JoinHandle<(isize, c_int)> {
    spawn(move || {
        let rc = f();
        (rc, if rc < 0 { errno() } else { 0 })
    })
}

fn read_on(fd: c_int) -> JoinHandle<(isize, c_int)> {
    // SAFETY: a valid buffer for `read`.
    call(move || unsafe { libc::read(fd, [0u8; 8].as_mut_ptr().cast(), 8) })
}

fn poll_on(fd: c_int) -> JoinHandle<(isize, c_int)> {
    call(move || {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, -1) as isize }
    })
}

fn accept_on(fd: c_int) -> JoinHandle<(isize, c_int)> {
    // SAFETY: null address pointers are allowed.
    call(move || unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) as isize })
}

/// A `nanosleep` of `secs`: what it returned, `errno` and the time `rem` says is left.
fn nanosleep_for(secs: i64) -> JoinHandle<(c_int, c_int, Duration)> {
    spawn(move || {
        let req = libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let mut rem = libc::timespec {
            tv_sec: -1,
            tv_nsec: 0,
        };
        // SAFETY: valid timespecs.
        let rc = unsafe { libc::nanosleep(&req, &mut rem) };
        let err = if rc < 0 { errno() } else { 0 };
        let left = Duration::new(rem.tv_sec.max(0) as u64, rem.tv_nsec as u32);
        (rc, err, left)
    })
}

fn finished<T: 'static>(h: JoinHandle<T>, what: &str) -> T {
    match h.join_timeout(PATIENCE) {
        Ok(value) => value,
        Err(_) => panic!("{what} was not interrupted: still parked after {PATIENCE:?}"),
    }
}

#[test]
fn without_sa_restart_every_parked_call_returns_eintr_and_other_waits_go_on() {
    greenweave_monkey::patch_all();
    let sig = rt(1);
    install(sig, count_address(), 0);
    let (a, mut b) = UnixStream::pair().unwrap();
    let (c, _d) = UnixStream::pair().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let lock = Arc::new(Mutex::new(()));
    let held = lock.lock().unwrap();
    let event = Rc::new(Event::new());

    let reader = read_on(a.as_raw_fd());
    let poller = poll_on(c.as_raw_fd());
    let acceptor = accept_on(listener.as_raw_fd());
    let sleeper = nanosleep_for(10);
    // SAFETY: a valid status out-pointer.
    let reaper = call(move || unsafe { libc::waitpid(pid, &mut 0, 0) as isize });
    // Waits no signal interrupts: a futex (a std lock) and a runtime event.
    let locker = spawn({
        let lock = lock.clone();
        move || drop(lock.lock().unwrap())
    });
    let ev = event.clone();
    let waiter = spawn(move || ev.wait());
    let all = [&reader, &poller, &acceptor, &reaper].map(JoinHandle::id);
    until_parked(&[&all[..], &[sleeper.id(), locker.id(), waiter.id()]].concat());

    let start = Instant::now();
    from_another_thread(sig);
    for (h, what) in [
        (reader, "read"),
        (poller, "poll"),
        (acceptor, "accept"),
        (reaper, "waitpid"),
    ] {
        assert_eq!(finished(h, what), (-1, libc::EINTR), "{what}");
    }
    let (rc, err, left) = finished(sleeper, "nanosleep");
    assert_eq!((rc, err), (-1, libc::EINTR));
    let slept = start.elapsed();
    assert!(
        left <= Duration::from_secs(10) && left + slept >= Duration::from_millis(9_900),
        "rem {left:?} after {slept:?} of a 10 s sleep"
    );
    assert_eq!(runs(sig), 1, "the handler ran once");

    // The futex and event waits go on, and end as they should.
    sleep(Duration::from_millis(1)); // a maintenance pass after the signal
    assert!(!locker.is_finished() && !waiter.is_finished());
    drop(held);
    event.set();
    finished(locker, "the lock");
    finished(waiter, "the event");

    // A call that parks after the handler ran is not interrupted by it.
    let late = spawn(move || {
        let mut buf = [0u8; 4];
        (&a).read(&mut buf).map(|n| buf[..n].to_vec())
    });
    until_parked(&[late.id()]);
    sleep(Duration::from_millis(1));
    b.write_all(b"late").unwrap();
    assert_eq!(finished(late, "late read").unwrap(), b"late");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The `SA_RESTART` cases, with a handler installed by `install_handler`, which
/// returns a count of the handler's runs.
fn sa_restart_keeps_transfers_waiting(sig: c_int, handler_runs: impl Fn() -> usize) {
    let (a, mut b) = UnixStream::pair().unwrap();
    let (c, _d) = UnixStream::pair().unwrap();
    let (timed, _e) = UnixStream::pair().unwrap();
    timed
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    let reader = read_on(a.as_raw_fd());
    let acceptor = accept_on(listener.as_raw_fd());
    let poller = poll_on(c.as_raw_fd());
    let sleeper = nanosleep_for(10);
    // SAFETY: a plain argument.
    let seconds = call(|| unsafe { libc::sleep(30) } as isize);
    let fd = timed.as_raw_fd();
    // SAFETY: a valid buffer.
    let recv = call(move || unsafe { libc::recv(fd, [0u8; 8].as_mut_ptr().cast(), 8, 0) });
    let cfd = c.as_raw_fd();
    let selecter = spawn(move || {
        // SAFETY: a zeroed fd_set is empty; `cfd` is below FD_SETSIZE in a test.
        let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::FD_SET(cfd, &mut set) };
        let mut tv = libc::timeval {
            tv_sec: 30,
            tv_usec: 0,
        };
        // SAFETY: a valid set and timeout.
        let rc = unsafe {
            libc::select(
                cfd + 1,
                &mut set,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut tv,
            )
        };
        (rc, errno(), tv.tv_sec)
    });
    until_parked(&[
        reader.id(),
        acceptor.id(),
        poller.id(),
        sleeper.id(),
        seconds.id(),
        recv.id(),
        selecter.id(),
    ]);

    from_another_thread(sig);
    // Never restarted: poll, select, the sleeps, a socket with a timeout.
    assert_eq!(finished(poller, "poll"), (-1, libc::EINTR));
    assert_eq!(finished(recv, "recv with SO_RCVTIMEO"), (-1, libc::EINTR));
    let (rc, err, left) = finished(sleeper, "nanosleep");
    assert_eq!((rc, err), (-1, libc::EINTR));
    assert!(left > Duration::from_secs(5), "rem {left:?}");
    let (left_secs, _) = finished(seconds, "sleep");
    assert!(
        (25..=30).contains(&left_secs),
        "sleep(30) returned {left_secs}"
    );
    let (rc, err, tv_left) = finished(selecter, "select");
    assert_eq!((rc, err), (-1, libc::EINTR));
    assert!((20..30).contains(&tv_left), "select left {tv_left} s");

    // Restarted: the read and the accept wait on, and complete.
    sleep(Duration::from_millis(1)); // a maintenance pass after the signal
    assert!(!reader.is_finished() && !acceptor.is_finished());
    b.write_all(b"data").unwrap();
    assert_eq!(finished(reader, "read"), (4, 0));
    let _conn = TcpStream::connect(addr).unwrap();
    let (fd, err) = finished(acceptor, "accept");
    assert!(fd >= 0, "accept failed: errno {err}");
    // SAFETY: the accepted fd is ours.
    unsafe { libc::close(fd as c_int) };
    assert_eq!(handler_runs(), 1, "the handler ran once");
}

#[test]
fn with_sa_restart_transfers_wait_on_while_polls_sleeps_and_timed_sockets_get_eintr() {
    greenweave_monkey::patch_all();
    let sig = rt(2);
    install(sig, count_address(), libc::SA_RESTART);
    sa_restart_keeps_transfers_waiting(sig, || runs(sig));
}

#[test]
fn a_signal_hook_handler_is_an_sa_restart_handler() {
    greenweave_monkey::patch_all();
    static RAN: AtomicUsize = AtomicUsize::new(0);
    let sig = rt(3);
    // SAFETY: the action only touches an atomic, which is async-signal-safe.
    unsafe {
        signal_hook::low_level::register(sig, || {
            RAN.fetch_add(1, Ordering::SeqCst);
        })
    }
    .unwrap();
    sa_restart_keeps_transfers_waiting(sig, || RAN.load(Ordering::SeqCst));
}

#[test]
fn a_greenlet_raising_a_signal_interrupts_the_parked_ones_but_not_itself() {
    greenweave_monkey::patch_all();
    let sig = rt(4);
    install(sig, count_address(), 0);
    let parked = nanosleep_for(10);
    until_parked(&[parked.id()]);
    let raiser = spawn(move || {
        // SAFETY: a handler is installed.
        assert_eq!(unsafe { libc::raise(sig) }, 0);
        // Running when the handler ran: its own next sleep is whole.
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        start.elapsed()
    });
    let (rc, err, _) = finished(parked, "the parked nanosleep");
    assert_eq!((rc, err), (-1, libc::EINTR));
    assert!(finished(raiser, "the raiser") >= Duration::from_millis(30));
    assert_eq!(runs(sig), 1);
}

#[test]
fn a_signal_handled_on_another_thread_interrupts_only_that_threads_greenlets() {
    greenweave_monkey::patch_all();
    let sig = rt(5);
    install(sig, count_address(), 0);
    let (a, mut b) = UnixStream::pair().unwrap();
    let reader = read_on(a.as_raw_fd());
    until_parked(&[reader.id()]);
    // Another hub thread with a parked sleeper, and the signal sent to it.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        let sleeper = nanosleep_for(10);
        until_parked(&[sleeper.id()]);
        // SAFETY: pthread_self has no preconditions.
        tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
        finished(sleeper, "the other thread's nanosleep")
    });
    let tid = tid_rx.recv().unwrap();
    // SAFETY: the other thread waits in its sleeper until interrupted.
    assert_eq!(unsafe { libc::pthread_kill(tid, sig) }, 0);
    let (rc, err, _) = other.join().unwrap();
    assert_eq!((rc, err), (-1, libc::EINTR));
    assert_eq!(runs(sig), 1);
    sleep(Duration::from_millis(1)); // a maintenance pass here, after the signal
    assert!(
        !reader.is_finished(),
        "a read on this thread was interrupted"
    );
    b.write_all(b"ok").unwrap();
    assert_eq!(finished(reader, "read"), (2, 0));
}

unsafe extern "C" {
    /// glibc's `siginterrupt(3)` (not in the `libc` crate).
    fn siginterrupt(sig: c_int, flag: c_int) -> c_int;
}

#[test]
fn siginterrupt_takes_sa_restart_away_from_a_signal_handler() {
    greenweave_monkey::patch_all();
    let sig = rt(6);
    // SAFETY: `count` is a valid handler.
    let previous = unsafe { libc::signal(sig, count_address()) };
    assert_eq!(previous, libc::SIG_DFL);
    assert_ne!(common::signals::current(sig).sa_flags & libc::SA_RESTART, 0);
    // SAFETY: plain arguments.
    assert_eq!(unsafe { siginterrupt(sig, 1) }, 0);
    let now = common::signals::current(sig);
    assert_eq!(now.sa_sigaction, count_address());
    assert_eq!(now.sa_flags & libc::SA_RESTART, 0);
    let (a, _b) = UnixStream::pair().unwrap();
    let reader = read_on(a.as_raw_fd());
    until_parked(&[reader.id()]);
    from_another_thread(sig);
    assert_eq!(finished(reader, "read"), (-1, libc::EINTR));
}

#[test]
fn a_pause_with_poll_waits_for_a_signal_instead_of_reporting_a_deadlock() {
    greenweave_monkey::patch_all();
    let sig = rt(7);
    install(sig, count_address(), 0);
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    // Signals until the pause is over: the first may come before the main greenlet
    // parks (then it interrupts nothing), so one that comes while it waits is sure.
    let sender = std::thread::spawn(move || {
        while !d.load(Ordering::SeqCst) {
            // SAFETY: the main thread lives until it joins this one.
            unsafe { libc::pthread_kill(me, sig) };
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // The main greenlet parks (this thread has a hub), and nothing else on the hub
    // could ever wake it.
    spawn(|| ()).join().unwrap();
    // SAFETY: no fds, no timeout: the `pause` idiom.
    let rc = unsafe { libc::poll(std::ptr::null_mut(), 0, -1) };
    let err = errno();
    done.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    assert_eq!((rc, err), (-1, libc::EINTR));
    assert!(runs(sig) >= 1);
}

#[test]
fn an_interrupted_connect_goes_on_and_a_second_connect_waits_for_it() {
    greenweave_monkey::patch_all();
    let sig = rt(8);
    install(sig, count_address(), 0);
    // A listener that never accepts, with the smallest backlog: once its queue is full
    // the kernel drops further SYNs, and a connect waits for a retransmission.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen again on our own bound socket, with another backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
        queued.push(conn);
        assert!(queued.len() < 16, "the backlog never filled up");
    }
    let connector = spawn(move || {
        // SAFETY: plain arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: a valid address of the length given.
        let connect = || unsafe { libc::connect(fd, (&raw const to).cast(), len) };
        let first = (connect(), errno());
        let rc = connect();
        let second = (rc, if rc < 0 { errno() } else { 0 });
        (fd, first, second)
    });
    until_parked(&[connector.id()]);
    from_another_thread(sig);
    // Interrupted: the first connect says EINTR, the connection goes on; the second
    // waits for it. Room in the backlog lets the next SYN retransmission through.
    until_parked(&[connector.id()]);
    let waiting = queued.len();
    let accepted = spawn(move || {
        // The queued connections first, then the one the connect made.
        (0..=waiting).try_for_each(|_| listener.accept().map(|_| ()))
    });
    let (fd, first, second) = connector
        .join_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("the second connect never completed"));
    assert_eq!(first, (-1, libc::EINTR));
    assert_eq!(second, (0, 0), "the second connect waits for the first");
    finished(accepted, "accept").unwrap();
    // SAFETY: our socket.
    unsafe { libc::close(fd) };
    assert_eq!(runs(sig), 1);
}
