//! Turns a greenlet stack overflow into a report instead of a bare `SIGSEGV`.
//!
//! A `SIGSEGV` handler (installed once per process, on the alternate signal stack)
//! checks whether the faulting address lies in the guard region of the greenlet
//! running on the faulting thread. If so it prints, without allocating,
//!
//! ```text
//! greenlet 'name' (id 7) has overflowed its stack of 262144 bytes
//! fatal runtime error: stack overflow, aborting
//! ```
//!
//! and aborts, as std does for threads. Any other fault is passed to the handler that
//! was installed before (std's, which reports thread stack overflows) or to the
//! default action.

use std::sync::{Mutex, OnceLock, PoisonError};

use crate::sys;
use crate::thread;

static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Whether the application said no to the handler (see [`set_overflow_handler`]);
/// taken around every decision to install.
static REFUSED: Mutex<bool> = Mutex::new(false);

/// Chooses whether greenweave installs its `SIGSEGV` handler (and gives threads with
/// greenlets a 64 KiB alternate signal stack) when the process makes its first
/// greenlet stack; the default is yes. Say no before that, for an application that
/// handles `SIGSEGV` or alternate signal stacks itself: a greenlet that overflows its
/// stack then gets whatever the previous handler (std's, if any) does with a fault
/// in a guard page it does not know, typically a plain segmentation fault.
///
/// Returns `false` if the choice came too late: the handler is installed already
/// (saying yes then is no change, and returns `true`).
pub fn set_overflow_handler(install: bool) -> bool {
    let mut refused = REFUSED.lock().unwrap_or_else(PoisonError::into_inner);
    if PREVIOUS.get().is_some() {
        return install;
    }
    *refused = !install;
    true
}

/// Whether the handler may be installed (the application did not refuse it).
pub(crate) fn wanted() -> bool {
    !*REFUSED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the handler once per process, unless the application refused it.
pub(crate) fn install_handler() {
    let refused = REFUSED.lock().unwrap_or_else(PoisonError::into_inner);
    if *refused {
        return;
    }
    PREVIOUS.get_or_init(|| {
        match sys::install_handler(libc::SIGSEGV, on_segv, sys::InterruptedCalls::Fail) {
            Ok(previous) => previous,
            Err(err) => {
                log::warn!(
                    target: crate::LOG_TARGET,
                    "greenlet stack overflows will not be reported: {err}"
                );
                // SAFETY: an all-zero sigaction is SIG_DFL with no flags.
                unsafe { std::mem::zeroed() }
            }
        }
    });
    drop(refused);
}

extern "C" fn on_segv(signum: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel hands a SA_SIGINFO handler a valid siginfo_t.
    let addr = unsafe { (*info).si_addr() } as usize;
    thread::peek_current(|cur| {
        let Some(cur) = cur else { return };
        let (guard_start, guard_end, size) = cur.stack_bounds;
        if !(guard_start..guard_end).contains(&addr) {
            return;
        }
        let mut digits = [0u8; 20];
        sys::write_stderr(b"\ngreenlet ");
        // SAFETY: the faulting thread is stopped in greenlet code, not inside a rename
        // (which does not recurse deeply enough to overflow).
        if let Some(name) = unsafe { cur.name_unchecked() } {
            sys::write_stderr(b"'");
            sys::write_stderr(name.as_bytes());
            sys::write_stderr(b"' ");
        }
        sys::write_stderr(b"(id ");
        sys::write_stderr(decimal(cur.id, &mut digits));
        sys::write_stderr(b") has overflowed its stack of ");
        sys::write_stderr(decimal(size as u64, &mut digits));
        sys::write_stderr(
            b" bytes\nhelp: give it a larger stack with Builder::stack_size or set_default_stack_size\n\
              fatal runtime error: stack overflow, aborting\n",
        );
        sys::abort();
    });
    if let Some(previous) = PREVIOUS.get() {
        // SAFETY: we are the SIGSEGV handler, passing on our own arguments.
        if !unsafe { sys::chain(previous, signum, info, context) } {
            // Restore the default action and return: the faulting instruction runs
            // again and the process dies of SIGSEGV as it would have without us.
            // SAFETY: resetting a signal's disposition to SIG_DFL is always valid.
            unsafe { libc::signal(signum, libc::SIG_DFL) };
        }
    }
}

/// Formats `n` in decimal into `buf` without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_formats_without_allocating() {
        let mut buf = [0u8; 20];
        assert_eq!(super::decimal(0, &mut buf), b"0");
        assert_eq!(super::decimal(262144, &mut buf), b"262144");
        assert_eq!(super::decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
