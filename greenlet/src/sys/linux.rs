//! Linux system calls used by the stack pool and the overflow reporter.
//!
//! Everything platform-specific in this crate lives here: anonymous mappings, guard
//! regions (`MADV_GUARD_INSTALL`, with an `mprotect` fallback), the per-thread alternate
//! signal stack, the installation of greenweave's own signal handlers (past any libc
//! hook), and a raw `write` system call for reports made where a libc hook must not
//! run (a signal handler, a fatal error path).

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};

/// `madvise` advice that turns a range into a guard region without splitting the
/// mapping (Linux 6.13+). Not yet exported by the `libc` crate.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The size of a memory page.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Reserves `len` bytes of read-write anonymous memory for stacks. Pages are only
/// backed by RAM once touched (`MAP_NORESERVE`).
pub fn map_stacks(len: usize) -> io::Result<*mut u8> {
    // An anonymous private mapping at an address of the kernel's choosing.
    // SAFETY: a new mapping touches no existing memory.
    let ptr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(ptr.cast())
    }
}

/// Releases a mapping made by [`map_stacks`].
///
/// # Safety
///
/// `ptr..ptr+len` must be exactly a mapping returned by [`map_stacks`] that nothing
/// uses any more.
pub unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is our own unused mapping.
    let rc = unsafe { libc::munmap(ptr.cast(), len) };
    debug_assert_eq!(rc, 0, "munmap of a stack slab failed");
}

/// How guard pages are made on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardKind {
    /// `madvise(MADV_GUARD_INSTALL)`: no extra kernel mapping per stack.
    Madvise,
    /// `mprotect(PROT_NONE)`: splits the mapping, two kernel mappings per stack.
    Mprotect,
}

const GUARD_UNKNOWN: u8 = 0;
const GUARD_MADVISE: u8 = 1;
const GUARD_MPROTECT: u8 = 2;
static GUARD_KIND: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);

/// Turns `ptr..ptr+len` (page aligned, inside a [`map_stacks`] mapping) into a guard
/// region: any access faults with `SIGSEGV`.
///
/// # Safety
///
/// The range must be page aligned, lie inside one of our stack mappings, and hold
/// nothing anyone will read or write.
pub unsafe fn install_guard(ptr: *mut u8, len: usize) -> io::Result<GuardKind> {
    if GUARD_KIND.load(Ordering::Relaxed) != GUARD_MPROTECT {
        // SAFETY: the caller guarantees the range is an unused part of our mapping.
        let rc = unsafe { libc::madvise(ptr.cast(), len, MADV_GUARD_INSTALL) };
        if rc == 0 {
            GUARD_KIND.store(GUARD_MADVISE, Ordering::Relaxed);
            return Ok(GuardKind::Madvise);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
        // Kernel older than 6.13: fall back for good.
        GUARD_KIND.store(GUARD_MPROTECT, Ordering::Relaxed);
    }
    // SAFETY: as above; PROT_NONE on an unused range of our own mapping.
    let rc = unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_NONE) };
    if rc == 0 {
        Ok(GuardKind::Mprotect)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The guard technique in use, once a stack has been made.
pub fn guard_kind() -> Option<GuardKind> {
    match GUARD_KIND.load(Ordering::Relaxed) {
        GUARD_MADVISE => Some(GuardKind::Madvise),
        GUARD_MPROTECT => Some(GuardKind::Mprotect),
        _ => None,
    }
}

/// Size of the alternate signal stack we install on threads that have none, or a
/// smaller one.
pub const ALTSTACK_SIZE: usize = 64 * 1024;

/// An alternate signal stack this crate installed; removed when the thread exits.
pub struct AltStack {
    base: *mut u8,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let disable = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: ALTSTACK_SIZE,
        };
        // The alternate stack is turned off before it is unmapped, on the thread that
        // installed it.
        // SAFETY: the mapping is our own and nothing else uses it.
        unsafe {
            libc::sigaltstack(&disable, ptr::null_mut());
            unmap(self.base, self.len);
        }
    }
}

/// Makes sure the calling thread has an alternate signal stack of at least
/// [`ALTSTACK_SIZE`], so the `SIGSEGV` handler can run after a greenlet overflowed its
/// stack and the runtime's monitor can walk a greenlet's stack from a signal handler
/// (which takes about 8 KiB in a debug build). Threads without one (C threads), or
/// with a smaller one (std gives its threads `SIGSTKSZ`, 8 KiB, which the kernel's
/// signal frame alone fills a good part of), get one, returned to be dropped when the
/// thread exits; a smaller one it replaces stays with its owner, unused.
pub fn ensure_altstack() -> Option<AltStack> {
    // SAFETY: querying the current alternate stack into a zeroed stack_t.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `current` is a valid out-pointer.
    let rc = unsafe { libc::sigaltstack(ptr::null(), &mut current) };
    let enabled = current.ss_flags & libc::SS_DISABLE == 0;
    let running_on_it = current.ss_flags & libc::SS_ONSTACK != 0;
    if rc != 0 || running_on_it || (enabled && current.ss_size >= ALTSTACK_SIZE) {
        return None;
    }
    let len = ALTSTACK_SIZE + page_size();
    let base = map_stacks(len).ok()?;
    // SAFETY: the first page of our fresh mapping becomes the alt stack's guard.
    if unsafe { install_guard(base, page_size()) }.is_err() {
        log::warn!(target: crate::LOG_TARGET, "could not guard the alternate signal stack");
    }
    let stack = libc::stack_t {
        // SAFETY: page_size() < len, so the offset stays inside the mapping.
        ss_sp: unsafe { base.add(page_size()) }.cast(),
        ss_flags: 0,
        ss_size: ALTSTACK_SIZE,
    };
    // SAFETY: `stack` describes memory we own for as long as the AltStack lives.
    if unsafe { libc::sigaltstack(&stack, ptr::null_mut()) } != 0 {
        // SAFETY: the mapping was never handed out.
        unsafe { unmap(base, len) };
        return None;
    }
    Some(AltStack { base, len })
}

/// Signature of a `SA_SIGINFO` handler.
pub type SigInfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
/// A signal handler registered without `SA_SIGINFO`.
type PlainHandler = extern "C" fn(libc::c_int);

/// The C library's own `sigaction`.
type SigactionFn =
    unsafe extern "C" fn(libc::c_int, *const libc::sigaction, *mut libc::sigaction) -> libc::c_int;

/// The C library's `sigaction`, never a function of that name linked into the program
/// itself: greenweave-monkey's hook would wrap the handler so that it ends the waits
/// of the thread's parked greenlets with `EINTR`, which greenweave's own handlers must
/// not do (they are not the program's, and the program expects no signal).
fn libc_sigaction() -> SigactionFn {
    static REAL: std::sync::OnceLock<SigactionFn> = std::sync::OnceLock::new();
    *REAL.get_or_init(|| {
        // RTLD_NEXT looks past the calling object (the program, with any hook) into
        // the libraries after it.
        // SAFETY: a NUL-terminated name.
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, c"sigaction".as_ptr()) };
        if found.is_null() {
            libc::sigaction
        } else {
            // SAFETY: libc's `sigaction` has exactly this signature.
            unsafe { std::mem::transmute::<*mut libc::c_void, SigactionFn>(found) }
        }
    })
}

/// What becomes of a system call a signal handler interrupted, for [`install_handler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptedCalls {
    /// It restarts once the handler returns (`SA_RESTART`), as if no signal came.
    Restart,
    /// It fails with `EINTR`.
    Fail,
}

/// Installs `handler` for `signal` (run on the alternate signal stack if the thread
/// has one; `interrupted` says what becomes of the system calls it interrupts) and
/// returns the action it replaced, so the handler can pass signals that are not its
/// own on. Installed with the C library's own `sigaction`, past any hook of that name
/// (greenweave-monkey's would make the handler end parked greenlets' waits with
/// `EINTR`).
pub fn install_handler(
    signal: libc::c_int,
    handler: SigInfoHandler,
    interrupted: InterruptedCalls,
) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction structs are plain data; zeroed is a valid empty value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    if interrupted == InterruptedCalls::Restart {
        action.sa_flags |= libc::SA_RESTART;
    }
    // SAFETY: sa_mask is a valid sigset_t inside `action`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: as above.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // The handler is an extern "C" fn with the SA_SIGINFO signature.
    // SAFETY: both pointers are valid, and so is the handler (above).
    if unsafe { libc_sigaction()(signal, &action, &mut previous) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(previous)
}

/// Hands a signal that is not ours to the handler that was installed before ours;
/// returns `false`, having done nothing, when that was `SIG_DFL` or `SIG_IGN`.
///
/// # Safety
///
/// Must be called from inside a signal handler with that handler's arguments.
pub unsafe fn chain(
    previous: &libc::sigaction,
    signum: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) -> bool {
    let prev = previous.sa_sigaction;
    if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
        return false;
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // We pass on the arguments we were given.
        // SAFETY: a handler registered with SA_SIGINFO has this signature.
        let f: SigInfoHandler = unsafe { std::mem::transmute::<usize, SigInfoHandler>(prev) };
        f(signum, info, context);
    } else {
        // SAFETY: a handler registered without SA_SIGINFO takes just the signal.
        let f: PlainHandler = unsafe { std::mem::transmute::<usize, PlainHandler>(prev) };
        f(signum);
    }
    true
}

/// Writes `bytes` to standard error without allocating (async-signal-safe), with the
/// raw system call (see [`raw_write`]).
pub fn write_stderr(bytes: &[u8]) {
    raw_write(2, bytes);
}

/// Writes all of `bytes` to `fd` with the `write` system call itself, never through the
/// C library's `write` symbol: once greenweave-monkey is linked, that symbol is its
/// hook, which must not be entered from a signal handler or an error path. Retries on
/// `EINTR` and after partial writes; gives up silently on any other error (there is
/// nowhere left to report it). Async-signal-safe: no allocation, no lock, no `errno`.
pub fn raw_write(fd: libc::c_int, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = sys_write(fd, rest);
        if n == -(libc::EINTR as isize) {
            continue;
        }
        if n <= 0 {
            return;
        }
        rest = &rest[(n as usize).min(rest.len())..];
    }
}

/// One `write` system call: the byte count, or `-errno`.
#[cfg(target_arch = "x86_64")]
fn sys_write(fd: libc::c_int, bytes: &[u8]) -> isize {
    let ret: isize;
    // The x86_64 Linux system-call convention: the number in rax, the arguments in
    // rdi, rsi, rdx; the kernel returns in rax and clobbers rcx and r11 (declared).
    // `write` only reads `bytes.len()` bytes at `bytes.as_ptr()`, a live slice.
    // SAFETY: it touches no other memory of ours and no stack (`nostack`).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_write as isize => ret,
            in("rdi") fd as isize,
            in("rsi") bytes.as_ptr(),
            in("rdx") bytes.len(),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// One `write` call: the byte count, or `-errno`. Other architectures go through
/// libc's `write` until their system-call instruction is added above (so there the
/// monkey hook is reached; it passes writes to fds 0–2 straight through).
#[cfg(not(target_arch = "x86_64"))]
fn sys_write(fd: libc::c_int, bytes: &[u8]) -> isize {
    // SAFETY: writing from a valid slice.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        -(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO) as isize)
    } else {
        n
    }
}

/// Ends the process at once (async-signal-safe).
pub fn abort() -> ! {
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Gives the RAM behind `ptr..ptr+len` back to the kernel; the range stays mapped and
/// reads as zeroes when touched again. Guard regions elsewhere in the mapping stay.
///
/// # Safety
///
/// The range must be page aligned, inside one of our mappings, and hold nothing
/// anyone still needs.
pub unsafe fn release_pages(ptr: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe { libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED) };
}
