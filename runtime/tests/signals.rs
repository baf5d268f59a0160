//! The runtime's half of signal interruption: `coop::run_signal_handler` ends the
//! waits of the matching `Eintr` class that were parked when it was called, on its own
//! thread only. (The monkey crate's tests send real signals through its hooks.)

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use greenweave_runtime::coop::{self, Eintr};
use greenweave_runtime::io::Direction;
use greenweave_runtime::{JoinHandle, spawn, yield_now};

type Outcome = Result<std::io::Result<()>, greenweave_runtime::Interrupt>;

fn kind(outcome: &Outcome) -> Option<ErrorKind> {
    match outcome {
        Ok(Err(err)) => Some(err.kind()),
        _ => None,
    }
}

fn wait_fd(fd: i32, deadline: Option<Instant>, eintr: Eintr) -> JoinHandle<Outcome> {
    spawn(move || coop::wait_fd(fd, Direction::Read, deadline, eintr))
}

#[test]
fn a_reported_handler_ends_the_parked_waits_of_its_class_and_no_others() {
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let soon = Some(Instant::now() + Duration::from_millis(200));
    let unless_restarted = wait_fd(fd, None, Eintr::UnlessRestarted);
    let never = wait_fd(fd, soon, Eintr::Never);
    let far = Some(Instant::now() + Duration::from_secs(30));
    let always = spawn(move || coop::sleep_until(far, Eintr::Always));
    yield_now(); // all three park

    // An SA_RESTART handler, reported from a running greenlet: only `Always` ends.
    spawn(|| coop::run_signal_handler(true, || ()))
        .join()
        .unwrap();
    let slept = always.join_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(kind(&slept), Some(ErrorKind::Interrupted));
    assert!(!unless_restarted.is_finished());

    // A wait that begins after the report is not ended by it.
    let late = spawn(move || coop::sleep_until(soon, Eintr::Always));
    // A handler without SA_RESTART ends `UnlessRestarted` too.
    coop::run_signal_handler(false, || ());
    let read = unless_restarted
        .join_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(kind(&read), Some(ErrorKind::Interrupted));
    assert!(
        matches!(late.join().unwrap(), Ok(Ok(()))),
        "slept to its deadline"
    );
    // `Never` waits out its deadline.
    assert_eq!(kind(&never.join().unwrap()), Some(ErrorKind::TimedOut));
}

#[test]
fn a_handler_reported_on_another_thread_ends_nothing_here() {
    let soon = Some(Instant::now() + Duration::from_millis(100));
    let sleeper = spawn(move || coop::sleep_until(soon, Eintr::Always));
    yield_now();
    std::thread::spawn(|| coop::run_signal_handler(false, || ()))
        .join()
        .unwrap();
    assert!(
        matches!(sleeper.join().unwrap(), Ok(Ok(()))),
        "slept to its deadline"
    );
}
