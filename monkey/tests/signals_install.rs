//! The `sigaction` family of hooks is transparent: `oldact` reports the user's handler
//! and flags (never the trampoline the kernel calls), `SIG_IGN`/`SIG_DFL` pass
//! through, handlers get their arguments and chain as before.

mod common;
use common::signals::{PATIENCE, count_address, current, empty_action, errno, install, rt, runs};

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use greenweave_monkey::original;
use libc::{c_int, c_void, siginfo_t};

/// What the kernel holds for `sig` (the real `sigaction`, past the hook).
fn kernel(sig: c_int) -> libc::sigaction {
    let mut old = empty_action();
    // SAFETY: a null action only queries; a valid out-pointer.
    let rc = unsafe { original::sigaction(sig, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0);
    old
}

/// The `si_value` and `si_signo` the three-argument handler last saw.
static SEEN_VALUE: AtomicUsize = AtomicUsize::new(0);
static SEEN_SIGNO: AtomicI32 = AtomicI32::new(0);

extern "C" fn with_info(sig: c_int, info: *mut siginfo_t, _context: *mut c_void) {
    // SAFETY: an SA_SIGINFO handler gets a valid siginfo from the kernel.
    let info = unsafe { &*info };
    SEEN_SIGNO.store(info.si_signo, Ordering::SeqCst);
    // SAFETY: the signal was queued with a value (pthread_sigqueue).
    SEEN_VALUE.store(
        unsafe { info.si_value() }.sival_ptr as usize,
        Ordering::SeqCst,
    );
    assert_eq!(sig, info.si_signo);
}

fn with_info_address() -> usize {
    with_info as *const () as usize
}

fn raise(sig: c_int) {
    // SAFETY: a handler (or SIG_IGN) is installed for `sig` by the caller.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

#[test]
fn oldact_reports_the_users_handler_and_flags_while_the_kernel_holds_the_trampoline() {
    greenweave_monkey::patch_all();
    let sig = rt(11);
    let mut act = empty_action();
    act.sa_sigaction = with_info_address();
    act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: a valid mask.
    unsafe { libc::sigaddset(&mut act.sa_mask, libc::SIGUSR2) };
    let mut old = empty_action();
    // SAFETY: valid action and out-pointer.
    assert_eq!(unsafe { libc::sigaction(sig, &act, &mut old) }, 0);
    assert_eq!(old.sa_sigaction, libc::SIG_DFL);

    let now = current(sig);
    assert_eq!(now.sa_sigaction, with_info_address());
    assert_eq!(
        now.sa_flags & (libc::SA_SIGINFO | libc::SA_RESTART),
        libc::SA_SIGINFO | libc::SA_RESTART
    );
    // SAFETY: a valid mask.
    assert_eq!(unsafe { libc::sigismember(&now.sa_mask, libc::SIGUSR2) }, 1);
    let real = kernel(sig);
    assert_ne!(
        real.sa_sigaction,
        with_info_address(),
        "the kernel calls the trampoline"
    );
    assert_eq!(
        real.sa_flags & libc::SA_RESTART,
        libc::SA_RESTART,
        "with the user's flags"
    );

    // The handler gets its three arguments.
    let value = libc::sigval {
        sival_ptr: 0x5eed as *mut c_void,
    };
    // SAFETY: this thread, a handler installed.
    let rc = unsafe { libc::pthread_sigqueue(libc::pthread_self(), sig, value) };
    assert_eq!(rc, 0);
    // Delivered before the call returns (Valgrind delivers it a little later).
    let start = std::time::Instant::now();
    while SEEN_SIGNO.load(Ordering::SeqCst) == 0 && start.elapsed() < PATIENCE {
        std::thread::yield_now();
    }
    assert_eq!(SEEN_SIGNO.load(Ordering::SeqCst), sig);
    assert_eq!(SEEN_VALUE.load(Ordering::SeqCst), 0x5eed);

    // A one-argument handler replaces it: oldact says what was there, SA_SIGINFO and
    // all, and the query no longer has SA_SIGINFO (which the kernel's flags keep).
    let old = install(sig, count_address(), 0);
    assert_eq!(old.sa_sigaction, with_info_address());
    assert_ne!(old.sa_flags & libc::SA_SIGINFO, 0);
    let now = current(sig);
    assert_eq!(
        (now.sa_sigaction, now.sa_flags & libc::SA_SIGINFO),
        (count_address(), 0)
    );
    raise(sig);
    assert_eq!(runs(sig), 1);

    // Restoring what oldact gave restores the handler.
    // SAFETY: an action read above.
    let rc = unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    assert_eq!(current(sig).sa_sigaction, with_info_address());
}

#[test]
fn sig_ign_and_sig_dfl_pass_straight_through_and_signal_returns_the_users_handler() {
    greenweave_monkey::patch_all();
    let sig = rt(12);
    // SAFETY: `count` is a valid handler.
    assert_eq!(unsafe { libc::signal(sig, count_address()) }, libc::SIG_DFL);
    let bsd = current(sig);
    assert_ne!(
        bsd.sa_flags & libc::SA_RESTART,
        0,
        "signal() has BSD semantics"
    );
    // SAFETY: a valid mask.
    assert_eq!(unsafe { libc::sigismember(&bsd.sa_mask, sig) }, 1);
    // SAFETY: SIG_IGN is a valid disposition.
    assert_eq!(unsafe { libc::signal(sig, libc::SIG_IGN) }, count_address());
    assert_eq!(current(sig).sa_sigaction, libc::SIG_IGN);
    assert_eq!(kernel(sig).sa_sigaction, libc::SIG_IGN);
    raise(sig); // ignored
    assert_eq!(runs(sig), 0);
    // SAFETY: `count` is a valid handler.
    assert_eq!(unsafe { libc::signal(sig, count_address()) }, libc::SIG_IGN);
    raise(sig);
    assert_eq!(runs(sig), 1);
    // SAFETY: SIG_DFL is a valid disposition.
    assert_eq!(unsafe { libc::signal(sig, libc::SIG_DFL) }, count_address());
    assert_eq!(kernel(sig).sa_sigaction, libc::SIG_DFL);
    // SAFETY: SIG_ERR is refused.
    assert_eq!(unsafe { libc::signal(sig, libc::SIG_ERR) }, libc::SIG_ERR);
    assert_eq!(errno(), libc::EINVAL);
    // SAFETY: an out-of-range signal is refused.
    assert_eq!(unsafe { libc::signal(0, count_address()) }, libc::SIG_ERR);
}

#[test]
fn a_reset_handler_runs_once_and_leaves_the_default() {
    greenweave_monkey::patch_all();
    let sig = rt(13);
    install(sig, count_address(), libc::SA_RESETHAND);
    raise(sig);
    assert_eq!(runs(sig), 1);
    assert_eq!(current(sig).sa_sigaction, libc::SIG_DFL);
    assert_eq!(kernel(sig).sa_sigaction, libc::SIG_DFL);
}

#[test]
fn signal_hook_chains_to_the_handler_it_replaced() {
    greenweave_monkey::patch_all();
    static HOOK_RAN: AtomicUsize = AtomicUsize::new(0);
    let sig = rt(14);
    install(sig, count_address(), 0);
    // SAFETY: the action only touches an atomic.
    let id = unsafe {
        signal_hook::low_level::register(sig, || {
            HOOK_RAN.fetch_add(1, Ordering::SeqCst);
        })
    }
    .unwrap();
    raise(sig);
    assert_eq!((HOOK_RAN.load(Ordering::SeqCst), runs(sig)), (1, 1));
    signal_hook::low_level::unregister(id);
}

#[test]
fn the_trampoline_leaves_errno_alone() {
    greenweave_monkey::patch_all();
    let sig = rt(15);
    install(sig, count_address(), 0);
    // A hub on this thread, so the trampoline has one to wake.
    greenweave_runtime::spawn(|| ()).join().unwrap();
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = libc::EXDEV };
    raise(sig);
    assert_eq!(errno(), libc::EXDEV);
    assert_eq!(runs(sig), 1);
}

#[test]
fn fault_signal_handlers_are_not_wrapped() {
    greenweave_monkey::patch_all();
    // SIGSYS: a fault signal nothing in this process raises.
    let old = install(libc::SIGSYS, count_address(), 0);
    assert_eq!(kernel(libc::SIGSYS).sa_sigaction, count_address());
    // SAFETY: the action read above.
    let rc = unsafe { libc::sigaction(libc::SIGSYS, &old, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

#[test]
fn installing_the_same_handler_again_and_again_uses_no_more_room() {
    greenweave_monkey::patch_all();
    let sig = rt(16);
    for _ in 0..1_000 {
        install(sig, count_address(), 0);
        install(sig, count_address(), libc::SA_RESTART);
        // SAFETY: SIG_IGN is a valid disposition.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // Still wrapped: the kernel calls the trampoline, not the handler itself.
    install(sig, count_address(), 0);
    assert_ne!(kernel(sig).sa_sigaction, count_address());
    raise(sig);
    assert_eq!(runs(sig), 1);
}

/// Whether the last run of [`note_can_park`] could have parked, and the fd it writes to.
static COULD_PARK: AtomicI32 = AtomicI32::new(-1);
static SELF_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn note_can_park(_sig: c_int) {
    COULD_PARK.store(
        i32::from(greenweave_runtime::coop::can_park()),
        Ordering::SeqCst,
    );
    // The self-pipe pattern: the hooked `write`, passing straight through here.
    let fd = SELF_PIPE.load(Ordering::SeqCst);
    // SAFETY: a valid one-byte buffer; `write` is async-signal-safe.
    unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
}

#[test]
fn a_handler_interrupting_a_greenlet_makes_the_real_calls_never_parks() {
    use std::io::Read;
    greenweave_monkey::patch_all();
    let sig = rt(17);
    install(sig, note_can_park as *const () as usize, 0);
    let (mut reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
    SELF_PIPE.store(std::os::fd::AsRawFd::as_raw_fd(&writer), Ordering::SeqCst);
    let raised = greenweave_runtime::spawn(move || {
        let before = greenweave_runtime::coop::can_park();
        raise(sig);
        (before, greenweave_runtime::coop::can_park())
    });
    assert_eq!(raised.join().unwrap(), (true, true));
    assert_eq!(
        COULD_PARK.load(Ordering::SeqCst),
        0,
        "a greenlet could park in the handler"
    );
    let mut byte = [0];
    reader.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"!");
}
