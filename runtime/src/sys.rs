//! What the runtime asks the operating system directly (Linux; other systems answer
//! "unknown", which every caller treats as the cautious case).

/// How many threads this process has now, if the system says.
#[cfg(target_os = "linux")]
pub(crate) fn process_thread_count() -> Option<usize> {
    // `/proc/self/stat`: "pid (comm) state ppid ...", `num_threads` is the 20th field;
    // `comm` may hold spaces and parentheses, so count from the last ')'.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields from `state` (the 3rd) on: `num_threads` is 17 further.
    after_comm.split_whitespace().nth(17)?.parse().ok()
}

/// How many threads this process has now, if the system says.
#[cfg(not(target_os = "linux"))]
pub(crate) fn process_thread_count() -> Option<usize> {
    None
}

/// An `eventfd`: the hub's waker. mio's `Waker` is one too, but keeps its fd to
/// itself, and a signal handler needs the fd to write to (see `signals`).
pub(crate) struct EventFd(std::os::fd::OwnedFd);

impl EventFd {
    /// A new, non-blocking eventfd.
    pub(crate) fn new() -> std::io::Result<EventFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the fd was just made and is owned by nobody else.
        Ok(EventFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    /// The fd, for registering with the reactor.
    pub(crate) fn raw(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    /// Adds one to the counter, which makes the fd readable and gives an edge-triggered
    /// registration a new event. Async-signal-safe: one `write` through the raw system
    /// call (libc's `write` may be a monkey-layer hook), leaving `errno` alone. The
    /// counter is never read; it would take 2^64 - 2 wake-ups to fill it (`EAGAIN`).
    pub(crate) fn wake(&self) {
        greenweave_greenlet::raw_write(self.raw(), &1u64.to_ne_bytes());
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_thread_count_follows_threads_that_start_and_end() {
        let before = super::process_thread_count().expect("/proc/self/stat is readable");
        assert!(before >= 1);
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || wait.recv().ok());
        let during = super::process_thread_count().unwrap();
        go.send(()).unwrap();
        t.join().unwrap();
        // Other tests' threads come and go meanwhile, so only the direction is checked
        // against a count taken while ours certainly lived.
        assert!(during >= 2, "{during} threads while a second one lived");
    }
}
