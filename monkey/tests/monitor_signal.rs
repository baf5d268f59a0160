//! The signal with which the blocking monitor and `dump_all` look at a stuck hub's
//! thread is the runtime's own: in a patched process it ends no greenlet's wait with
//! `EINTR`, as a handler the program installs would (see `signals_eintr.rs`).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use greenweave_runtime::{Builder, monitor, spawn, yield_now};

/// Keeps the hub busy, without a blocking point, until `stop`.
#[inline(never)]
fn busy_until(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::hint::spin_loop();
    }
}

#[test]
fn looking_at_a_stuck_hub_interrupts_none_of_its_patched_calls() {
    greenweave_monkey::patch_all();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, wait_ready) = mpsc::channel();
    let hub = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut writer, reader) = UnixStream::pair().unwrap();
            let fd = reader.as_raw_fd();
            // A call the kernel would interrupt, with or without SA_RESTART.
            let poller = spawn(move || {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let rc = unsafe { libc::poll(&mut p, 1, -1) };
                let err = std::io::Error::last_os_error().raw_os_error();
                drop(reader);
                (rc, if rc < 0 { err } else { None })
            });
            yield_now(); // the poller parks in the patched poll
            let spinner = Builder::new().name("stuck").spawn(move || {
                ready.send(()).unwrap();
                busy_until(&stop);
            });
            spinner.join().unwrap();
            writer.write_all(b"x").unwrap();
            poller.join().unwrap()
        })
    };
    wait_ready.recv().unwrap();
    // The stuck hub cannot answer, so dump_all signals its thread to see who holds it.
    let all = monitor::dump_all();
    stop.store(true, Ordering::Relaxed);
    let polled = hub.join().unwrap();
    let stuck = all
        .hubs
        .iter()
        .find(|h| h.unresponsive.is_some())
        .unwrap_or_else(|| panic!("{all}"));
    let running = stuck.running.as_ref().expect("the signal's handler ran");
    assert_eq!(running.name.as_deref(), Some("stuck"), "{all}");
    assert_eq!(polled, (1, None), "poll returned (rc, errno)");
}
