//! A kill or a timeout reaches a hook once, as its errno: a std loop that logs the
//! error and goes on blocks normally at its next call instead of getting the error
//! again and again without ever switching away.

mod common;
use common::ticker;

use std::cell::RefCell;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{sleep, spawn, with_timeout, yield_now};

#[test]
fn a_std_accept_loop_that_logs_ecanceled_survives_its_kill_and_serves_on() {
    greenweave_monkey::patch_all();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let errors = Rc::new(RefCell::new(Vec::new()));
    let accepted = Rc::new(RefCell::new(0_u32));
    let (e, a) = (errors.clone(), accepted.clone());
    // The ordinary server loop: log the error and go on. It stops after its second
    // error, so that a loop spinning on its kill ends (and fails the test) instead of
    // hanging it.
    let server = spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(_) => *a.borrow_mut() += 1,
                Err(err) => {
                    e.borrow_mut().push(err.raw_os_error());
                    if e.borrow().len() == 2 {
                        return;
                    }
                }
            }
        }
    });
    let (ticks, t) = ticker();
    yield_now(); // the server parks in accept
    assert!(
        !server.kill_timeout(Duration::from_millis(50)),
        "the loop caught its kill and lives on"
    );
    assert_eq!(
        *errors.borrow(),
        [Some(libc::ECANCELED)],
        "exactly one error"
    );
    // It parked in accept again: other greenlets run, and it serves.
    let before = ticks.get();
    sleep(Duration::from_millis(20));
    common::assert_ticked(&ticks, before + 1, "the accept loop waited");
    let _client = TcpStream::connect(addr).unwrap();
    let start = Instant::now();
    while *accepted.borrow() == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never accepted");
        sleep(Duration::from_millis(1));
    }
    assert_eq!(errors.borrow().len(), 1);
    // A second kill delivers again.
    assert!(server.kill_timeout(Duration::from_secs(10)));
    assert_eq!(
        *errors.borrow(),
        [Some(libc::ECANCELED), Some(libc::ECANCELED)]
    );
    server.join().unwrap();
    t.kill();
}

#[test]
fn with_timeout_around_a_std_accept_gives_one_etimedout_then_accept_blocks_normally() {
    greenweave_monkey::patch_all();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let outcome = with_timeout(Duration::from_millis(20), || {
        let first = listener.accept().unwrap_err().raw_os_error();
        // The timeout was delivered: this accept waits for a client.
        let client = spawn(move || TcpStream::connect(addr).unwrap());
        let (conn, _) = listener.accept().expect("a normal accept");
        (first, conn, client.join().unwrap())
    });
    let (first, _conn, _client) = outcome.expect("the code caught its timeout");
    assert_eq!(first, Some(libc::ETIMEDOUT));
}

#[test]
fn a_killed_std_read_loop_that_retries_blocks_again_and_reads() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixStream::pair().unwrap();
    let errors = Rc::new(RefCell::new(Vec::new()));
    let e = errors.clone();
    let reader = spawn(move || {
        let mut buf = [0; 8];
        loop {
            match (&b).read(&mut buf) {
                Ok(n) => return buf[..n].to_vec(),
                Err(err) => {
                    e.borrow_mut().push(err.raw_os_error());
                    if e.borrow().len() == 2 {
                        return Vec::new();
                    }
                }
            }
        }
    });
    yield_now();
    assert!(!reader.kill_timeout(Duration::from_millis(20)));
    std::io::Write::write_all(&mut &a, b"hi").unwrap();
    assert_eq!(reader.join().unwrap(), b"hi");
    assert_eq!(*errors.borrow(), [Some(libc::ECANCELED)]);
}
