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
