//! Name resolution hook: `getaddrinfo` (what `std::net::ToSocketAddrs`, `ureq` and C
//! libraries call to resolve a host name).
//!
//! In a greenlet (with [`Area::Dns`](crate::Area::Dns) patched) the lookup runs on the
//! default thread pool and only the calling greenlet waits for it, as gevent's
//! threaded resolver does: a slow DNS server stalls one greenlet, not the hub.
//! Numeric hosts and services, which glibc answers without any lookup, are passed
//! straight through on the calling thread. Elsewhere the real function runs.
//!
//! The list handed back comes from the real `getaddrinfo`, so the real `freeaddrinfo`
//! (not hooked) frees it. The pool job owns copies of its inputs and never writes into
//! the caller's memory: if the caller is killed or times out while it waits
//! (`getaddrinfo` then fails with `EAI_SYSTEM` and `errno` `ECANCELED` or
//! `ETIMEDOUT`), the job's result is freed when the job finishes.

use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;

use greenweave_runtime::Interrupt;
use greenweave_runtime::coop;
use libc::{addrinfo, c_char, c_int};

use crate::Area;
use crate::errno::{errno, set_errno};
use crate::state::cooperative;

/// The real functions.
pub mod real {
    use libc::{addrinfo, c_char, c_int};

    crate::real::real_fns! {
        /// libc's `getaddrinfo`.
        fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[getaddrinfo as *const ()];

/// The four hint fields a caller may set (POSIX: the others must be zero or null).
#[derive(Clone, Copy)]
struct Hints {
    flags: c_int,
    family: c_int,
    socktype: c_int,
    protocol: c_int,
}

impl Hints {
    fn to_addrinfo(self) -> addrinfo {
        addrinfo {
            ai_flags: self.flags,
            ai_family: self.family,
            ai_socktype: self.socktype,
            ai_protocol: self.protocol,
            ai_addrlen: 0,
            ai_addr: std::ptr::null_mut(),
            ai_canonname: std::ptr::null_mut(),
            ai_next: std::ptr::null_mut(),
        }
    }
}

/// A list returned by the real `getaddrinfo`, owned: freed with the real
/// `freeaddrinfo` unless handed out with [`into_raw`](Self::into_raw).
struct AddrInfoList(*mut addrinfo);

// SAFETY: the list is plain heap memory allocated by libc and owned by this value
// alone (nothing else points into it until `into_raw` hands it out), so it may be
// freed or handed out on any thread.
unsafe impl Send for AddrInfoList {}

impl AddrInfoList {
    fn into_raw(self) -> *mut addrinfo {
        let list = self.0;
        std::mem::forget(self);
        list
    }
}

impl Drop for AddrInfoList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: a list from the real getaddrinfo, not handed out, freed once.
            unsafe { libc::freeaddrinfo(self.0) };
        }
    }
}

/// What the pool job gives back: the return code, `errno` after the call (meaningful
/// for `EAI_SYSTEM`) and the list.
struct Lookup {
    code: c_int,
    errno: c_int,
    list: AddrInfoList,
}

/// Runs the real `getaddrinfo` on owned inputs (on a pool thread).
fn lookup(node: Option<CString>, service: Option<CString>, hints: Option<Hints>) -> Lookup {
    let hints = hints.map(Hints::to_addrinfo);
    let mut list = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings or null, a hints struct or null, and an
    // out-pointer to a local: the real function's contract.
    let code = unsafe {
        real::getaddrinfo(
            node.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
            service.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
            hints
                .as_ref()
                .map_or(std::ptr::null(), |h| h as *const addrinfo),
            &mut list,
        )
    };
    let errno = errno();
    Lookup {
        code,
        errno,
        list: AddrInfoList(if code == 0 {
            list
        } else {
            std::ptr::null_mut()
        }),
    }
}

/// Whether glibc answers this without a lookup: a numeric node (or none) and a numeric
/// service (or none), and no canonical name asked for.
fn is_numeric(node: Option<&CStr>, service: Option<&CStr>, hints: Option<Hints>) -> bool {
    let flags = hints.map_or(0, |h| h.flags);
    let node_ok = node.is_none_or(|node| {
        flags & libc::AI_NUMERICHOST != 0
            || node.to_str().is_ok_and(|s| s.parse::<IpAddr>().is_ok())
    });
    let service_ok = service.is_none_or(|service| {
        flags & libc::AI_NUMERICSERV != 0
            || (!service.is_empty() && service.to_bytes().iter().all(u8::is_ascii_digit))
    });
    node_ok && service_ok && flags & libc::AI_CANONNAME == 0
}

/// The `errno` a hook reports for an interrupted wait.
fn interrupt_errno(interrupt: &Interrupt) -> c_int {
    match interrupt {
        Interrupt::Killed => libc::ECANCELED,
        Interrupt::TimedOut(_) => libc::ETIMEDOUT,
        Interrupt::Deadlock(_) => libc::EDEADLK,
    }
}

/// Hook for `getaddrinfo(3)`: in a greenlet, resolves on the thread pool and parks
/// only the calling greenlet meanwhile. The results and return codes are the real
/// function's; a kill or an expired `Timeout` while waiting gives `EAI_SYSTEM` with
/// `errno` `ECANCELED` or `ETIMEDOUT`.
///
/// # Safety
///
/// As `getaddrinfo(3)`: `node` and `service` are null or NUL-terminated, `hints` is
/// null or points to an `addrinfo`, `res` points to writable storage.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if res.is_null() || !cooperative(Area::Dns) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::getaddrinfo(node, service, hints, res) };
    }
    // SAFETY: the caller guarantees `node` is null or NUL-terminated.
    let node_str = (!node.is_null()).then(|| unsafe { CStr::from_ptr(node) });
    // SAFETY: the caller guarantees `service` is null or NUL-terminated.
    let service_str = (!service.is_null()).then(|| unsafe { CStr::from_ptr(service) });
    // SAFETY: the caller guarantees `hints` is null or points to an addrinfo.
    let hints_copy = unsafe { hints.as_ref() }.map(|h| Hints {
        flags: h.ai_flags,
        family: h.ai_family,
        socktype: h.ai_socktype,
        protocol: h.ai_protocol,
    });
    if is_numeric(node_str, service_str, hints_copy) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::getaddrinfo(node, service, hints, res) };
    }
    let (node_owned, service_owned) = (
        node_str.map(CStr::to_owned),
        service_str.map(CStr::to_owned),
    );
    // `run_blocking` panics only if the default pool was shut down or can start no
    // thread; a hook must not unwind, so then resolve here on the hub's thread.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(move || {
        coop::run_blocking(move || lookup(node_owned, service_owned, hints_copy))
    }));
    match outcome {
        Ok(Ok(Ok(done))) => {
            if done.code == 0 {
                // SAFETY: the caller guarantees `res` is writable; the list is handed
                // to the caller, who frees it with freeaddrinfo.
                unsafe { *res = done.list.into_raw() };
            } else if done.code == libc::EAI_SYSTEM {
                set_errno(done.errno);
            }
            done.code
        }
        Ok(Ok(Err(_panic))) => libc::EAI_FAIL,
        Ok(Err(interrupt)) => {
            set_errno(interrupt_errno(&interrupt));
            libc::EAI_SYSTEM
        }
        // SAFETY: the caller's arguments, passed on unchanged.
        Err(_panic) => unsafe { real::getaddrinfo(node, service, hints, res) },
    }
}
