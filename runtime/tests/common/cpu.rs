//! Keeping a hub busy for a measured amount of CPU time.

use std::time::Duration;

/// Burns `d` of the thread's CPU time without reaching a blocking point (of the
/// greenlets': it offers the CPU to other threads as it goes).
///
/// CPU time, not wall time: on a loaded machine the thread waits for a CPU part of the
/// time, which the blocking monitor rightly does not count as the greenlet's doing.
/// The `sched_yield`s let the monitor's thread run under Valgrind, whose scheduler
/// (after the process has forked) may otherwise leave the spinning thread running
/// alone; they switch no greenlet.
#[inline(never)]
pub fn spin_without_yielding(d: Duration) -> u64 {
    let start = thread_cpu_time();
    let mut n = 0u64;
    while thread_cpu_time().saturating_sub(start) < d {
        n = std::hint::black_box(n.wrapping_add(1));
        std::thread::yield_now();
    }
    n
}

/// The calling thread's CPU time.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
