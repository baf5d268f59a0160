//! The `getaddrinfo` hook: name lookups in greenlets run on the thread pool after
//! patch_all, with the real function's results.

use std::cell::Cell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

use greenweave_runtime::threadpool::BlockingHandle;
use greenweave_runtime::{joinall, spawn, yield_now};

/// `host:port` resolved through std (which calls `getaddrinfo`), sorted.
fn resolve(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = (host, 80).to_socket_addrs()?.collect();
    addrs.sort();
    Ok(addrs)
}

/// The same lookup on a plain OS thread, where the hook passes straight through.
fn resolve_unpatched(host: &'static str) -> std::io::Result<Vec<SocketAddr>> {
    std::thread::spawn(move || {
        assert!(!greenweave_runtime::coop::can_park());
        resolve(host)
    })
    .join()
    .unwrap()
}

/// Keeps every thread of the default pool busy until [`open`](Self::open)ed, so that a
/// lookup started meanwhile stays queued (the pool is first in, first out): it cannot
/// finish unless it runs on the pool, and not before the gate opens.
///
/// One gate at a time in the process: the tests of this file run on threads of their
/// own and share the default pool, and two gates' blockers interleaving in its queue
/// would make "every pool thread is busy" depend on the order they ran in.
struct PoolGate {
    closed: Option<RwLockWriteGuard<'static, ()>>,
    blockers: Vec<BlockingHandle<()>>,
    _only_gate: MutexGuard<'static, ()>,
}

/// Held by the one [`PoolGate`] closed at a time.
static GATES: Mutex<()> = Mutex::new(());

/// The gate itself: write-locked while closed, read by the blockers. One suffices, as
/// one gate at a time is closed ([`GATES`]).
static GATE: RwLock<()> = RwLock::new(());

impl PoolGate {
    fn close() -> PoolGate {
        let only_gate = GATES.lock().unwrap_or_else(PoisonError::into_inner);
        let closed = GATE.write().unwrap_or_else(PoisonError::into_inner);
        let pool = greenweave_runtime::threadpool::default_pool();
        let blockers = (0..pool.size())
            .map(|_| pool.spawn(|| drop(GATE.read())))
            .collect();
        PoolGate {
            closed: Some(closed),
            blockers,
            _only_gate: only_gate,
        }
    }

    fn open(mut self) {
        self.closed = None;
        for blocker in self.blockers.drain(..) {
            blocker.join().unwrap();
        }
    }
}

#[test]
fn fifty_greenlets_resolve_localhost_at_once_with_the_real_results() {
    greenweave_monkey::patch_all();
    let expected = resolve_unpatched("localhost").unwrap();
    assert!(!expected.is_empty());
    let lookups: Vec<_> = (0..50).map(|_| spawn(|| resolve("localhost"))).collect();
    for result in joinall(lookups) {
        assert_eq!(result.unwrap().unwrap(), expected);
    }
}

#[test]
fn a_lookup_runs_on_the_pool_while_the_hub_runs_other_greenlets() {
    greenweave_monkey::patch_all();
    // The lookup can only finish once the pool is free again, and a spinner greenlet
    // frees it after spinning a while: if the lookup blocked the hub's thread (or
    // resolved there), the spinner could not run during it.
    let gate = PoolGate::close();
    let spins = Rc::new(Cell::new(0u64));
    let done = Rc::new(Cell::new(false));
    let spinner = spawn({
        let (spins, done) = (spins.clone(), done.clone());
        let mut gate = Some(gate);
        move || {
            while !done.get() {
                spins.set(spins.get() + 1);
                if spins.get() == 20 {
                    gate.take().expect("opened once").open();
                }
                yield_now();
            }
        }
    });
    let lookup = spawn({
        let (spins, done) = (spins.clone(), done.clone());
        move || {
            let before = spins.get();
            let result = resolve("localhost");
            let during = spins.get() - before;
            done.set(true);
            (result, during)
        }
    });
    let (result, during) = lookup.join().unwrap();
    spinner.join().unwrap();
    assert_eq!(result.unwrap(), resolve_unpatched("localhost").unwrap());
    assert!(
        during >= 10,
        "other greenlets ran only {during} times during the lookup"
    );
}

#[test]
fn an_unknown_name_fails_quickly_in_a_greenlet_as_on_a_plain_thread() {
    greenweave_monkey::patch_all();
    let start = Instant::now();
    let patched = spawn(|| resolve("no-such-host.invalid")).join().unwrap();
    let plain = resolve_unpatched("no-such-host.invalid");
    assert!(patched.is_err(), "{patched:?}");
    assert!(plain.is_err(), "{plain:?}");
    assert_eq!(
        patched.unwrap_err().kind(),
        plain.unwrap_err().kind(),
        "the same error as the unpatched lookup"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn numeric_hosts_and_the_main_greenlet_resolve_too() {
    greenweave_monkey::patch_all();
    // The main greenlet of a thread with a hub parks as well.
    spawn(|| ()).join().unwrap();
    assert_eq!(
        resolve("localhost").unwrap(),
        resolve_unpatched("localhost").unwrap()
    );
    // A numeric host goes straight to libc, same answer.
    let numeric = spawn(|| resolve("127.0.0.1")).join().unwrap().unwrap();
    assert_eq!(numeric, ["127.0.0.1:80".parse().unwrap()]);
}

#[test]
fn getaddrinfo_called_directly_fills_in_a_list_that_freeaddrinfo_frees() {
    greenweave_monkey::patch_all();
    spawn(|| {
        let mut hints: libc::addrinfo = {
            // SAFETY: addrinfo is plain data; all-zero is its documented "no hints".
            unsafe { std::mem::zeroed() }
        };
        hints.ai_family = libc::AF_INET;
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut list = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings, a valid hints struct and out-pointer.
        let code =
            unsafe { libc::getaddrinfo(c"localhost".as_ptr(), c"80".as_ptr(), &hints, &mut list) };
        assert_eq!(code, 0);
        assert!(!list.is_null());
        // SAFETY: a list the call above just returned.
        let first = unsafe { &*list };
        assert_eq!(first.ai_family, libc::AF_INET);
        assert_eq!(first.ai_socktype, libc::SOCK_STREAM);
        // SAFETY: the list came from getaddrinfo and is freed once.
        unsafe { libc::freeaddrinfo(list) };
    })
    .join()
    .unwrap();
}

#[test]
fn a_killed_lookup_fails_with_ecanceled_once() {
    greenweave_monkey::patch_all();
    let seen = Rc::new(Cell::new(None));
    // The gate closes first: closing it may wait (a contended lock of the pool's is a
    // cooperative futex wait under patch_all), and the lookup must start after it.
    let gate = PoolGate::close();
    let h = spawn({
        let seen = seen.clone();
        move || {
            let mut list = std::ptr::null_mut();
            // SAFETY: a NUL-terminated string and a valid out-pointer.
            let code = unsafe {
                libc::getaddrinfo(
                    c"localhost".as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    &mut list,
                )
            };
            let errno = std::io::Error::last_os_error().raw_os_error();
            seen.set(Some((code, errno, list.is_null())));
            // The errno delivered the kill: a later sleep sleeps.
            greenweave_runtime::sleep(Duration::from_millis(1));
        }
    });
    // Let the greenlet start its lookup and park (queued behind the busy pool), then
    // kill it: it returns on its own after the error.
    yield_now();
    h.kill();
    h.join().unwrap();
    gate.open();
    let (code, errno, null) = seen.get().expect("the lookup returned");
    assert_eq!(code, libc::EAI_SYSTEM);
    assert_eq!(errno, Some(libc::ECANCELED));
    assert!(null, "nothing written on an interrupted lookup");
}

#[test]
fn a_timed_out_lookup_fails_with_etimedout() {
    greenweave_monkey::patch_all();
    // The gate closes before the lookup starts (see the test above).
    let gate = PoolGate::close();
    let lookup = spawn(|| {
        // The pool is busy, so the lookup waits until the timeout expires.
        greenweave_runtime::with_timeout(Duration::from_millis(20), || {
            let mut list = std::ptr::null_mut();
            // SAFETY: a NUL-terminated string and a valid out-pointer.
            let code = unsafe {
                libc::getaddrinfo(
                    c"localhost".as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    &mut list,
                )
            };
            (code, std::io::Error::last_os_error().raw_os_error())
        })
    });
    let out = lookup.join().unwrap();
    gate.open();
    assert_eq!(out, Ok((libc::EAI_SYSTEM, Some(libc::ETIMEDOUT))));
}
