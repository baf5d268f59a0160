//! The real libc functions behind the hooks, resolved once with `dlsym(RTLD_NEXT, …)`.
//!
//! [`real_fns!`] declares, for each hooked function, a module-level `unsafe fn` with
//! the same name and signature that calls the next definition of the symbol in the
//! lookup order (libc's), resolving it on first use and caching the pointer.

use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Looks `name` up with `dlsym(RTLD_NEXT, name)` once and caches it in `slot`.
///
/// # Panics
///
/// Aborts the process if libc has no such symbol (a hook without its real function
/// cannot do anything sensible, and unwinding out of a hook is not allowed).
pub(crate) fn resolve(slot: &AtomicPtr<libc::c_void>, name: &CStr) -> *mut libc::c_void {
    let cached = slot.load(Ordering::Acquire);
    if !cached.is_null() {
        return cached;
    }
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no other preconditions.
    let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if found.is_null() {
        let msg =
            b"greenweave-monkey: dlsym(RTLD_NEXT) found no libc definition for a hooked function\n";
        // The raw system call: libc's `write` is this crate's own hook.
        greenweave_greenlet::raw_write(2, msg);
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }
    slot.store(found, Ordering::Release);
    found
}

/// Declares the real functions: `real_fns! { fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t; … }`
/// generates `pub unsafe fn read(fd, buf, n) -> ssize_t` calling libc's `read`.
macro_rules! real_fns {
    ($( $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty; )*) => {
        $(
            $(#[$meta])*
            ///
            /// # Safety
            ///
            /// The same contract as the libc function of this name.
            #[allow(clippy::missing_safety_doc)]
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                static SLOT: std::sync::atomic::AtomicPtr<libc::c_void> =
                    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
                const NAME: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
                    concat!(stringify!($name), "\0").as_bytes(),
                ) {
                    Ok(name) => name,
                    Err(_) => panic!("function names have no NUL"),
                };
                type Real = unsafe extern "C" fn($($ty),*) -> $ret;
                /// The first call: looks the function up, then makes the call. Out of
                /// line, so the usual path holds nothing across a call and compiles to
                /// a load and a jump; with the C calling convention, so that a hook
                /// (an `extern "C"` function) reaches it with a jump too.
                #[cold]
                #[inline(never)]
                unsafe extern "C" fn first_call($($arg: $ty),*) -> $ret {
                    let ptr = $crate::real::resolve(&SLOT, NAME);
                    // SAFETY: `ptr` is libc's definition of this very symbol, whose C
                    // signature is the one declared here.
                    let f: Real = unsafe { std::mem::transmute(ptr) };
                    // SAFETY: the caller upholds the libc function's contract.
                    unsafe { f($($arg),*) }
                }
                let ptr = SLOT.load(std::sync::atomic::Ordering::Acquire);
                if ptr.is_null() {
                    // SAFETY: the caller upholds the libc function's contract.
                    return unsafe { first_call($($arg),*) };
                }
                // SAFETY: as in `first_call`: SLOT only ever holds that definition.
                let f: Real = unsafe { std::mem::transmute(ptr) };
                // SAFETY: the caller upholds the libc function's contract.
                unsafe { f($($arg),*) }
            }
        )*
    };
}
pub(crate) use real_fns;
