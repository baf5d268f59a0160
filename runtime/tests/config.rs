//! The process-wide hooks are the application's choice: installed by default, left
//! alone after `Config::apply` says no, and a refusal that comes too late is an
//! error. Each case runs in a child process of its own (the hooks are per process).

use std::process::{Command, Output};

use greenweave_runtime::config::Config;
use greenweave_runtime::{Builder, spawn};

const MODE: &str = "GREENWEAVE_CONFIG_CHILD";

/// The current `SIGSEGV` handler's address and the alternate signal stack's size.
fn signal_setup() -> (usize, usize) {
    // SAFETY: sigaction and stack_t are plain data; zeroed are valid values.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `action` is a valid out-pointer.
    let rc = unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut action) };
    assert_eq!(rc, 0);
    // SAFETY: as above.
    let mut stack: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `stack` is a valid out-pointer.
    let rc = unsafe { libc::sigaltstack(std::ptr::null(), &mut stack) };
    assert_eq!(rc, 0);
    (action.sa_sigaction, stack.ss_size)
}

/// Makes a hub and greenlets on this thread; a named one panics.
fn use_greenweave() {
    let failed = Builder::new()
        .name("fails-on-purpose")
        .spawn(|| panic!("on purpose"))
        .join();
    assert!(failed.is_err());
    spawn(|| ()).join().unwrap();
}

/// Runs in the child process, as the parent's `mode` says.
#[test]
fn child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    match mode.as_str() {
        "default" => {
            let before = signal_setup();
            use_greenweave();
            let after = signal_setup();
            println!("\nhandler changed: {}", before.0 != after.0);
            println!("altstack: {}", after.1);
        }
        "refused" => {
            Config::new()
                .panic_hook(false)
                .stack_overflow_handler(false)
                .apply()
                .unwrap();
            let before = signal_setup();
            use_greenweave();
            let after = signal_setup();
            println!("\nhandler changed: {}", before.0 != after.0);
            println!("altstack changed: {}", before.1 != after.1);
            // The monitor's look at a stuck hub still names the greenlet, but on
            // std's small alternate stack it does not walk the stack.
            let (spinning, spin) = std::sync::mpsc::channel();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            let stuck = std::thread::spawn(move || {
                spawn(|| greenweave_runtime::sleep(std::time::Duration::from_millis(1)));
                Builder::new()
                    .name("stuck")
                    .spawn(move || {
                        spinning.send(()).unwrap();
                        while !flag.load(std::sync::atomic::Ordering::Relaxed) {}
                    })
                    .join()
                    .unwrap();
            });
            spin.recv().unwrap();
            let all = greenweave_runtime::monitor::dump_all();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            stuck.join().unwrap();
            println!("dump: {}", all.to_string().replace('\n', " | "));
        }
        "late" => {
            use_greenweave();
            let err = Config::new().panic_hook(false).apply().unwrap_err();
            println!("\nerror: {err}");
            let err = Config::new()
                .stack_overflow_handler(false)
                .apply()
                .unwrap_err();
            println!("error: {err}");
            // Saying yes late is no change, so no error.
            Config::new().apply().unwrap();
            println!("yes: ok");
        }
        other => panic!("unknown mode {other}"),
    }
}

fn run(mode: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = Command::new(exe)
        .env(MODE, mode)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .output()
        .expect("the test binary runs again");
    assert!(out.status.success(), "{mode}: {out:?}");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn by_default_both_hooks_are_installed() {
    if std::env::var_os(MODE).is_some() {
        return;
    }
    let out = run("default");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains("in greenlet 'fails-on-purpose' (id ") && stderr.contains("on purpose"),
        "the panic hook names the greenlet: {stderr}"
    );
    assert!(stdout.contains("handler changed: true"), "{stdout}");
    let altstack: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("altstack: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(altstack >= 64 * 1024, "{stdout}");
}

#[test]
fn refused_hooks_are_left_alone() {
    if std::env::var_os(MODE).is_some() {
        return;
    }
    let out = run("refused");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains("on purpose"),
        "std's hook still reports: {stderr}"
    );
    assert!(
        !stderr.contains("in greenlet '"),
        "no greenlet line: {stderr}"
    );
    assert!(stdout.contains("handler changed: false"), "{stdout}");
    assert!(stdout.contains("altstack changed: false"), "{stdout}");
    assert!(
        stdout.contains("greenlet 'stuck'")
            && stdout.contains("no stack: the signal handler had too little stack left"),
        "{stdout}"
    );
}

#[test]
fn a_refusal_after_the_hooks_are_in_is_an_error_that_says_so() {
    if std::env::var_os(MODE).is_some() {
        return;
    }
    let stdout = text(&run("late").stdout);
    assert!(
        stdout.contains("error: greenweave: the panic hook was installed already (by the first hub); call Config::apply at the start of main"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: greenweave: the stack-overflow handler (SIGSEGV) was installed already (by the first greenlet stack)"),
        "{stdout}"
    );
    assert!(stdout.contains("yes: ok"), "{stdout}");
}
