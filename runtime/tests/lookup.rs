//! `greenweave_runtime::net::lookup_host`: DNS on the thread pool. No network needed:
//! `localhost` comes from /etc/hosts and `.invalid` names are refused by any resolver.

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use greenweave_runtime::net::lookup_host;
use greenweave_runtime::threadpool::default_pool;
use greenweave_runtime::{joinall, spawn};

#[test]
fn ip_literals_resolve_directly_without_the_pool() {
    let v4 = lookup_host("10.1.2.3", 53, None).unwrap();
    assert_eq!(v4, [SocketAddr::from(([10, 1, 2, 3], 53))]);
    let v6 = lookup_host("::1", 443, None).unwrap();
    assert_eq!(v6, ["[::1]:443".parse().unwrap()]);
    let bracketed = lookup_host("[fe80::1]", 8080, Some(Duration::ZERO)).unwrap();
    assert_eq!(bracketed, ["[fe80::1]:8080".parse().unwrap()]);
}

#[test]
fn localhost_resolves_to_loopback_with_the_port() {
    let addrs = lookup_host("localhost", 8080, Some(Duration::from_secs(10))).unwrap();
    assert!(!addrs.is_empty());
    assert!(
        addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080)
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.ip() == std::net::IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
}

#[test]
fn many_greenlets_resolve_at_once() {
    let done = Rc::new(Cell::new(0));
    let lookups: Vec<_> = (0..20)
        .map(|i| {
            let done = done.clone();
            spawn(move || {
                let addrs = lookup_host("localhost", i, None).unwrap();
                assert!(addrs.iter().all(|a| a.port() == i));
                done.set(done.get() + 1);
            })
        })
        .collect();
    joinall(lookups).into_iter().for_each(Result::unwrap);
    assert_eq!(done.get(), 20);
}

#[test]
fn an_invalid_name_fails_or_times_out() {
    let start = Instant::now();
    let result = lookup_host("no-such-host.invalid", 80, Some(Duration::from_secs(3)));
    let err = result.expect_err("the .invalid TLD never resolves");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!err.to_string().is_empty());
}

#[test]
fn a_lookup_that_outlasts_its_timeout_gives_timed_out() {
    // Keep every default-pool thread busy so the lookup's job waits in the queue (FIFO:
    // behind the blockers) until after the timeout.
    let pool = default_pool();
    let (release, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let blockers: Vec<_> = (0..pool.size())
        .map(|_| {
            let rx = rx.clone();
            pool.spawn(move || {
                let _ = rx.lock().unwrap().recv();
            })
        })
        .collect();
    let start = Instant::now();
    let err = lookup_host("localhost", 80, Some(Duration::from_millis(50))).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(release);
    blockers.into_iter().for_each(|b| b.join().unwrap());
    // The pool is free again and the same lookup succeeds.
    assert!(
        !lookup_host("localhost", 80, Some(Duration::from_secs(10)))
            .unwrap()
            .is_empty()
    );
}
