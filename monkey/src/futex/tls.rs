//! Futex words in the calling thread's static TLS block, which greenlets of the thread
//! cannot share: parking_lot's per-thread queue node (`ThreadData`), which
//! parking_lot links into a lock's wait queue *before* it waits on the node's word.
//! A second greenlet of the thread entering a parking_lot wait while the first is
//! parked would relink the same node (a corrupted queue) before any system call we
//! could see, so these waits are never made cooperative: they block the thread, as
//! without patching. One that blocks it for a second while other greenlets wait to
//! run is reported through `log` (target `greenweave::monkey`), naming the greenlet:
//! a parking_lot lock held by another greenlet of the thread across a park is a
//! deadlock that would otherwise hang in silence.
//!
//! Only plain `FUTEX_WAIT`s there count (parking_lot's form): std's locks wait with
//! `FUTEX_WAIT_BITSET`, so a std `Mutex` inside a `thread_local!`, which greenlets of
//! the thread can share like any other, stays cooperative.
//!
//! The executable's TLS block (where every Rust `thread_local!` of the program lives)
//! sits right below the thread pointer on x86_64; its size is read once from the
//! program headers.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The size of the executable's TLS block, rounded up; `usize::MAX` until read.
static EXE_TLS_SIZE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Whether `addr` lies in the calling thread's static TLS block of the executable.
pub(super) fn is_thread_local(addr: usize) -> bool {
    let size = exe_tls_size();
    if size == 0 {
        return false;
    }
    match thread_pointer() {
        Some(tp) => addr < tp && addr >= tp.saturating_sub(size),
        None => false,
    }
}

/// How long a thread-local wait may block the thread before it is reported.
pub(super) const STALL: Duration = Duration::from_secs(1);

thread_local! {
    /// Whether this thread's current stall has been reported.
    static REPORTED: Cell<bool> = const { Cell::new(false) };
}

/// A thread-local wait has blocked the thread for [`STALL`]: says so (once per stall,
/// through `log`), naming the greenlet, if other greenlets of the thread are kept
/// from running.
pub(super) fn report_stall() {
    if REPORTED.replace(true) || !greenweave_runtime::coop::can_park() {
        return;
    }
    let others = greenweave_runtime::active_count().saturating_sub(1);
    if others == 0 {
        return;
    }
    let me = greenweave_runtime::current_info();
    log::warn!(
        target: "greenweave::monkey",
        "greenweave-monkey: greenlet {} (id {}) has blocked its thread for {:?} in a wait on a \
         per-thread futex word (parking_lot's queue node), which greenlets cannot share; {} \
         other greenlet(s) of the thread cannot run meanwhile. If another greenlet of this \
         thread holds the lock, the thread is deadlocked: use std::sync or greenweave::sync \
         locks there, or run the code on the thread pool (greenweave::threadpool)",
        me.name.as_deref().map_or_else(|| "<unnamed>".to_owned(), |n| format!("'{n}'")),
        me.id,
        STALL,
        others,
    );
}

/// The thread's thread-local wait ended (woken, or the caller's own timeout).
pub(super) fn stall_over() {
    REPORTED.set(false);
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn thread_pointer() -> Option<usize> {
    let tp: usize;
    // SAFETY: on x86_64 Linux, %fs points at the thread's control block, whose first
    // word is its own address (the TLS ABI); reading it has no side effect.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags));
    }
    Some(tp)
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn thread_pointer() -> Option<usize> {
    None
}

fn exe_tls_size() -> usize {
    let known = EXE_TLS_SIZE.load(Ordering::Relaxed);
    if known != usize::MAX {
        return known;
    }
    // Racing threads compute the same value; no lock (a lock could wait on a futex).
    let size = read_exe_tls_size();
    EXE_TLS_SIZE.store(size, Ordering::Relaxed);
    size
}

#[cfg(target_os = "linux")]
fn read_exe_tls_size() -> usize {
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr hands a valid info record; `out` is our usize.
        unsafe {
            let info = &*info;
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum));
            for header in headers {
                if header.p_type == libc::PT_TLS {
                    let align = (header.p_align as usize).max(1);
                    let size = (header.p_memsz as usize).div_ceil(align) * align;
                    // Room for the alignment padding the loader may put above it.
                    *out.cast::<usize>() = size + align;
                }
            }
        }
        1 // the first object is the executable: stop there
    }
    let mut size = 0_usize;
    // SAFETY: the callback matches dl_iterate_phdr's contract and writes only `size`.
    unsafe { libc::dl_iterate_phdr(Some(first_object), (&raw mut size).cast()) };
    size
}

#[cfg(not(target_os = "linux"))]
fn read_exe_tls_size() -> usize {
    0
}
