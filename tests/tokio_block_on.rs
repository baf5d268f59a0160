//! tokio's `block_on` in greenlets after `patch_all`: tokio keeps the runtime a thread
//! has entered in a thread-local, which the greenlets of the thread share, so a hook
//! that parked a greenlet inside `block_on` would let another greenlet enter tokio and
//! panic. Inside a tokio runtime the hooks block the thread instead: correct, serial.

use std::sync::Arc;
use std::time::{Duration, Instant};

use greenweave::{joinall, spawn};

#[test]
fn greenlets_blocking_on_a_multi_thread_runtime_do_not_panic() {
    greenweave::monkey::patch_all();
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let start = Instant::now();
    let callers: Vec<_> = (0..4_u32)
        .map(|i| {
            let rt = rt.clone();
            // `block_on` waits on tokio's per-thread condvar: a futex wait the hook
            // would otherwise park.
            spawn(move || {
                rt.block_on(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    i * 2
                })
            })
        })
        .collect();
    let got: Vec<u32> = joinall(callers).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, [0, 2, 4, 6]);
    // One at a time: each call held the thread.
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn greenlets_with_a_current_thread_runtime_each_do_not_panic() {
    greenweave::monkey::patch_all();
    let callers: Vec<_> = (0..4_u64)
        .map(|i| {
            spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    // A blocking std sleep inside async code, the classic mistake: it
                    // must not park this greenlet inside the runtime either.
                    std::thread::sleep(Duration::from_millis(10));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    i
                })
            })
        })
        .collect();
    let got: Vec<u64> = joinall(callers).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, [0, 1, 2, 3]);
}
