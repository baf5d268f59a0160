//! The `syscall` hook: futex waits park the greenlet, futex wakes from any thread wake
//! parked greenlets. Every other system call number passes straight through.
//!
//! std's `Mutex`, `Condvar`, `RwLock`, `Once`, `Barrier`, mpsc channels and
//! `thread::park`, and parking_lot, wait and wake through glibc's
//! `syscall(SYS_futex, …)`. With [`Area::Threads`](crate::Area::Threads) patched:
//!
//! - `FUTEX_WAIT` / `FUTEX_WAIT_BITSET` (private or shared, relative or absolute
//!   timeout, monotonic or realtime clock) from a greenlet parks the greenlet on the
//!   word, in a table keyed by its address (see `table`). The kernel's contract is
//!   kept: `EAGAIN` if the word no longer holds the expected value (checked under the
//!   lock every waker takes, so no wake-up is lost), `ETIMEDOUT`, `0` when woken.
//! - `FUTEX_WAKE` / `FUTEX_WAKE_BITSET` from *any* thread wakes parked greenlets first
//!   (through their hub's injector if they live on another thread) and passes what is
//!   left of the count to the kernel for threads blocked there; it returns the total.
//! - `FUTEX_REQUEUE` / `FUTEX_CMP_REQUEUE` move parked greenlets as the kernel moves its
//!   waiters; `FUTEX_WAKE_OP` wakes every greenlet parked on either word (a futex wait
//!   may always return early; every caller re-checks). Priority-inheritance futexes and
//!   everything else pass straight through.
//!
//! A futex wait is never interrupted by a kill or a `Timeout`: std's lock loops
//! would retry at once, for ever. The greenlet stays parked until woken (a kill ends
//! the wait as a spurious wake-up, and it waits again) and the interrupt is delivered
//! at its next interruptible blocking call, as a thread blocked in a lock would only
//! see it afterwards. A cycle of greenlets waiting on each other's std locks, in a
//! process with no other thread that could release them, gets the hub's deadlock report
//! on stderr and aborts (a report cannot unwind out of a libc call).
//!
//! Two kinds of words are special:
//! - std's `thread::park` word is one per *thread*, which every greenlet of the thread
//!   would share (mpsc, `reqwest::blocking`'s `park_timeout`). See `parker` for how it
//!   is kept sound.
//! - Words in the thread's static TLS (parking_lot's per-thread queue node) cannot be
//!   shared by greenlets at all: parking_lot links the node into its queue *before* it
//!   waits, and a second greenlet entering a wait would relink the same node. Such
//!   waits block the thread, as without patching (see `tls`).
//!
//! Waits from threads without a hub, from the hub itself, or on a word of a greenlet
//! parked in the kernel are untouched. In a forked child the table forgets every
//! waiter (they were greenlets of the parent; see [`after_fork`]).

mod kernel;
#[cfg(all(test, loom))]
mod loom_tests;
mod parker;
mod raw_lock;
mod table;
mod tls;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use greenweave_runtime::coop::{self, ExternalWake, ThreadWaker};
use libc::{c_int, c_long};

use crate::Area;
use crate::errno::set_errno;
use crate::state::is_patched;
use table::Word;

/// The real function.
pub mod real {
    use libc::c_long;

    crate::real::real_fns! {
        /// libc's `syscall`, with all six argument registers passed on.
        fn syscall(number: c_long, a1: c_long, a2: c_long, a3: c_long, a4: c_long, a5: c_long, a6: c_long) -> c_long;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[syscall as *const ()];

/// Hook for `syscall(2)`. Futex operations as the module docs say; any other number
/// goes to libc's `syscall` with every argument as given.
///
/// libc declares `long syscall(long number, ...)`; on x86_64 a variadic call passes
/// its integer arguments exactly as this seven-argument function receives them (six
/// registers and one stack slot), and libc's own `syscall` reads the same ones.
///
/// # Safety
///
/// As `syscall(2)` with the given number: the arguments must be what that system
/// call expects (for a futex, `a1` points to a readable, aligned 32-bit word).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(
    number: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    if number == libc::SYS_futex && is_patched(Area::Threads) {
        // SAFETY: the caller's futex arguments, as the futex contract requires.
        return unsafe { futex(a1, a2, a3, a4, a5, a6) };
    }
    // SAFETY: the caller's arguments, passed on unchanged. (With the futex path out of
    // line, this compiles to a jump: the pass-through costs a compare and a load.)
    unsafe { real::syscall(number, a1, a2, a3, a4, a5, a6) }
}

/// A patched futex call: ours to handle, or the kernel's.
///
/// # Safety
///
/// The futex contract for the arguments.
#[inline(never)]
unsafe fn futex(a1: c_long, a2: c_long, a3: c_long, a4: c_long, a5: c_long, a6: c_long) -> c_long {
    let call = Futex {
        addr: a1 as usize,
        op: a2 as c_int,
        val: a3 as u32,
        timeout_or_val2: a4,
        addr2: a5 as usize,
        val3: a6 as u32,
    };
    // SAFETY: as the caller guarantees.
    match unsafe { call.run() } {
        Some(result) => result,
        // SAFETY: the caller's futex call, passed on unchanged.
        None => unsafe { real::syscall(libc::SYS_futex, a1, a2, a3, a4, a5, a6) },
    }
}

/// One futex call's arguments.
struct Futex {
    addr: usize,
    op: c_int,
    val: u32,
    timeout_or_val2: c_long,
    addr2: usize,
    val3: u32,
}

/// The futex value std's parker and others use for "parked"; a word compared to it.
const PARKED: u32 = u32::MAX;

impl Futex {
    fn command(&self) -> c_int {
        self.op & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME)
    }

    fn private(&self) -> bool {
        self.op & libc::FUTEX_PRIVATE_FLAG != 0
    }

    /// Handles the call, or `None` to hand it to the kernel unchanged.
    ///
    /// # Safety
    ///
    /// The futex contract for the arguments.
    unsafe fn run(&self) -> Option<c_long> {
        match self.command() {
            libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET => {
                if parker::learning() {
                    return parker::learn(self.addr, self.command(), self.val);
                }
                // SAFETY: as for this function.
                unsafe { self.wait() }
            }
            libc::FUTEX_WAKE | libc::FUTEX_WAKE_BITSET => self.wake(),
            libc::FUTEX_REQUEUE | libc::FUTEX_CMP_REQUEUE | libc::FUTEX_WAKE_OP => {
                self.move_or_wake_both()
            }
            _ => None,
        }
    }

    /// # Safety
    ///
    /// `addr` is a readable, aligned word; a non-null timeout is a readable timespec.
    unsafe fn wait(&self) -> Option<c_long> {
        let command = self.command();
        let bitset = if command == libc::FUTEX_WAIT {
            u32::MAX
        } else {
            self.val3
        };
        // Malformed calls get the kernel's own errors.
        if self.addr == 0 || self.addr % 4 != 0 || bitset == 0 || !coop::can_park() {
            return None;
        }
        if crate::foreign::inside_event_loop() {
            // Inside tokio's `block_on`: block the thread instead (see `foreign`).
            return None;
        }
        // SAFETY: the caller passes a timespec pointer (or null) in this argument.
        let deadline = match unsafe { self.deadline() } {
            Ok(deadline) => deadline,
            Err(()) => return None,
        };
        if command == libc::FUTEX_WAIT && tls::is_thread_local(self.addr) {
            // SAFETY: as for this function.
            return unsafe { self.wait_blocking(deadline) };
        }
        // SAFETY: the caller guarantees the word is readable and aligned; futex words
        // are shared with other threads, hence atomic access.
        let word = unsafe { &*(self.addr as *const AtomicU32) };
        if parker::is_parker_word(self.addr) && self.val == PARKED {
            return Some(parker::wait(word, deadline));
        }
        let result = if self.private() {
            wait_on(word, self.val, bitset, deadline)
        } else {
            wait_shared(word, self.val, bitset, deadline)
        };
        Some(result)
    }

    /// A wait that must block the thread (see `tls`): the real call, but a relative
    /// wait longer than [`tls::STALL`] is made in slices, so that a thread stuck there
    /// (most likely on a lock another greenlet of the thread holds) is reported instead
    /// of hanging in silence. A slice that ends is an early return to the caller, who
    /// re-checks and waits again. `None`: pass the call through unchanged.
    ///
    /// # Safety
    ///
    /// As for [`run`](Self::run).
    unsafe fn wait_blocking(&self, deadline: Option<Instant>) -> Option<c_long> {
        let until = Instant::now() + tls::STALL;
        if self.command() != libc::FUTEX_WAIT || deadline.is_some_and(|d| d <= until) {
            return None;
        }
        let slice = libc::timespec {
            tv_sec: tls::STALL.as_secs() as libc::time_t,
            tv_nsec: 0,
        };
        // SAFETY: the caller's wait with a shorter relative timeout of our own.
        let result = unsafe {
            real::syscall(
                libc::SYS_futex,
                self.addr as c_long,
                c_long::from(self.op),
                c_long::from(self.val),
                (&raw const slice) as c_long,
                0,
                0,
            )
        };
        if result == -1 && crate::errno::errno() == libc::ETIMEDOUT {
            tls::report_stall();
            return Some(0);
        }
        tls::stall_over();
        Some(result)
    }

    /// The wait's deadline (`Ok(None)`: none); `Err` for a malformed timeout, which the
    /// kernel reports itself.
    ///
    /// # Safety
    ///
    /// `timeout_or_val2` is null or a readable timespec.
    unsafe fn deadline(&self) -> Result<Option<Instant>, ()> {
        let ts = self.timeout_or_val2 as *const libc::timespec;
        // SAFETY: the caller guarantees it is null or readable.
        let Some(ts) = (unsafe { ts.as_ref() }) else {
            return Ok(None);
        };
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(());
        }
        let given = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        let relative = if self.command() == libc::FUTEX_WAIT {
            given
        } else {
            let clock = if self.op & libc::FUTEX_CLOCK_REALTIME != 0 {
                libc::CLOCK_REALTIME
            } else {
                libc::CLOCK_MONOTONIC
            };
            given.saturating_sub(clock_now(clock))
        };
        // Past the end of `Instant`: as good as no timeout.
        Ok(Instant::now().checked_add(relative))
    }

    fn wake(&self) -> Option<c_long> {
        if !table::global().anyone_parked() {
            return None;
        }
        let bitset = if self.command() == libc::FUTEX_WAKE {
            u32::MAX
        } else {
            self.val3
        };
        let max = self.val.min(i32::MAX as u32) as usize;
        let (woken, shared_word) = table::global().wake(self.addr, max, bitset);
        if woken == 0 {
            return None;
        }
        // What is left of the count goes to threads blocked in the kernel. A thread's
        // own parking word may also have the thread itself blocked there (its hub
        // greenlet, say), which must hear the wake too.
        let rest = if shared_word { 1 } else { max - woken.min(max) };
        let kernel = if rest > 0 {
            // SAFETY: the caller's own wake, with a smaller count.
            let n = unsafe {
                real::syscall(
                    libc::SYS_futex,
                    self.addr as c_long,
                    c_long::from(self.op),
                    rest as c_long,
                    self.timeout_or_val2,
                    self.addr2 as c_long,
                    c_long::from(self.val3),
                )
            };
            n.max(0)
        } else {
            0
        };
        Some(woken.min(max) as c_long + kernel)
    }

    /// Requeues move parked greenlets along with the kernel's waiters; `FUTEX_WAKE_OP`
    /// (whose condition only the kernel evaluates atomically) wakes every greenlet on
    /// both words. Either way the kernel then does its part.
    fn move_or_wake_both(&self) -> Option<c_long> {
        let table = table::global();
        if !table.anyone_parked() {
            return None;
        }
        match self.command() {
            libc::FUTEX_WAKE_OP => {
                table.wake(self.addr, usize::MAX, u32::MAX);
                table.wake(self.addr2, usize::MAX, u32::MAX);
            }
            _ => {
                // SAFETY: CMP_REQUEUE compares the word first; the caller guarantees
                // it is readable.
                let word = unsafe { &*(self.addr as *const AtomicU32) };
                if self.command() == libc::FUTEX_CMP_REQUEUE
                    && word.load(Ordering::SeqCst) != self.val3
                {
                    return None;
                }
                table.wake(self.addr, self.val as usize, u32::MAX);
                table.requeue(self.addr, self.addr2, self.timeout_or_val2.max(0) as usize);
            }
        }
        None
    }
}

/// Parks on a private word until woken, timed out, or (spuriously) interrupted.
fn wait_on(word: &AtomicU32, expected: u32, bitset: u32, deadline: Option<Instant>) -> c_long {
    let addr = word.as_ptr() as usize;
    let Some(joining) =
        table::global().start_wait(addr, || word.load(Ordering::SeqCst) == expected)
    else {
        return fail(libc::EAGAIN);
    };
    park(addr, bitset, Word::Ordinary, joining, deadline, || {}).into_return()
}

/// A shared (inter-process) word: wakes from other processes reach the kernel, not
/// us, so the wait also looks at the word every 20 ms and returns (a spurious wake-up
/// to the caller, who re-checks) once it changed.
fn wait_shared(word: &AtomicU32, expected: u32, bitset: u32, deadline: Option<Instant>) -> c_long {
    const LOOK_EVERY: Duration = Duration::from_millis(20);
    loop {
        let slice_end = Instant::now() + LOOK_EVERY;
        let slice = deadline.map_or(slice_end, |d| d.min(slice_end));
        let result = wait_on(word, expected, bitset, Some(slice));
        let slice_over = result == -1 && crate::errno::errno() == libc::ETIMEDOUT;
        if !slice_over || deadline.is_some_and(|d| Instant::now() >= d) {
            return result;
        }
        if word.load(Ordering::SeqCst) != expected {
            return 0;
        }
    }
}

/// How a greenlet's futex wait ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// A wake took it off the table (even if its deadline passed as well).
    Woken,
    TimedOut,
    /// A kill or `Timeout` of the greenlet ended the park: an early return.
    Spurious,
}

impl Ended {
    fn into_return(self) -> c_long {
        match self {
            Ended::Woken | Ended::Spurious => 0,
            Ended::TimedOut => fail(libc::ETIMEDOUT),
        }
    }
}

/// Joins the table (unlocking the bucket), runs `joined`, and parks; leaves the table
/// afterwards.
fn park(
    addr: usize,
    bitset: u32,
    word: Word,
    joining: table::Joining<'_, ThreadWaker>,
    deadline: Option<Instant>,
    joined: impl FnOnce(),
) -> Ended {
    let mut id = 0;
    let describe = |out: &mut String| {
        out.push_str(&format!(
            "futex word {addr:#x} (a std lock, condvar, channel, Once or thread::park, \
             patched)"
        ))
    };
    let woken = coop::park_external(&describe, deadline, |waker| {
        id = joining.join(bitset, word, waker);
        joined();
    });
    let still_queued = table::global().leave(addr, id);
    match woken {
        ExternalWake::Deadlock(report) if still_queued => deadlock(&report),
        _ if !still_queued => Ended::Woken,
        ExternalWake::TimedOut => Ended::TimedOut,
        _ => Ended::Spurious,
    }
}

/// A futex deadlock cannot unwind out of `syscall`: report and abort, as Go does.
fn deadlock(report: &str) -> ! {
    let message = format!(
        "{report}\ngreenweave-monkey: the greenlet chosen to report this deadlock is parked in a \
         futex wait (a std lock, condvar or channel), which cannot unwind out of libc; aborting. \
         Take such locks in one order everywhere, or use greenweave::sync::Mutex, whose \
         deadlock report unwinds in the blocked greenlet.\n"
    );
    greenweave_greenlet::raw_write(2, message.as_bytes());
    std::process::abort();
}

/// Sets `errno` and returns -1.
fn fail(errno: c_int) -> c_long {
    set_errno(errno);
    -1
}

/// `clock`'s current time since its epoch.
fn clock_now(clock: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and out-pointer.
    unsafe { libc::clock_gettime(clock, &mut now) };
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Run in every forked child (registered with `coop::on_fork_child` when patching):
/// the greenlets parked in the table, and this thread's count of greenlets on its
/// parking word, belong to the parent.
pub(crate) fn after_fork() {
    // (Under loom the hooks, and so forks, do not run.)
    #[cfg(not(loom))]
    table::global().forget_all_after_fork();
    parker::forget_parked_after_fork();
}

/// Waits, cooperatively when the caller can park, until `word` no longer holds
/// `expected` (or spuriously): greenweave's own waits on other threads (`pthread_join`).
pub(crate) fn wait_word(word: &AtomicU32, expected: u32) {
    if is_patched(Area::Threads) && coop::can_park() {
        wait_on(word, expected, u32::MAX, None);
    } else {
        kernel::wait(word, expected);
    }
}

/// Wakes every waiter of `word`, greenlets and threads (call after changing it).
pub(crate) fn wake_word(word: &AtomicU32) {
    table::global().wake(word.as_ptr() as usize, usize::MAX, u32::MAX);
    kernel::wake(word, i32::MAX);
}
