//! Process-wide memory and descriptor figures for the leak tests, from `/proc/self`.
#![allow(dead_code)]

/// Resident set size in bytes, after asking the allocator to give its free heap back
/// (`malloc_trim`), so memory that is merely cached by malloc does not count.
pub fn rss_trimmed() -> usize {
    // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
    unsafe { libc::malloc_trim(0) };
    statm_field(1)
}

/// Virtual memory in use, in bytes (adjacent anonymous mappings merge into one line
/// of `/proc/self/maps`, so an unmapped slab can hide from [`mappings`]; not from this).
pub fn virtual_size() -> usize {
    statm_field(0)
}

/// Field `i` of `/proc/self/statm`, in bytes.
fn statm_field(i: usize) -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .expect("statm has seven numeric fields");
    pages * page_size()
}

/// Lines of `/proc/self/maps`: the kernel memory mappings in use.
pub fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("Linux /proc/self/maps")
        .lines()
        .count()
}

/// Open file descriptors (entries of `/proc/self/fd`, not counting the one reading it).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("Linux /proc/self/fd")
        .count()
        .saturating_sub(1)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// The three figures at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub rss: usize,
    pub virt: usize,
    pub mappings: usize,
    pub fds: usize,
}

impl Usage {
    pub fn now() -> Usage {
        Usage {
            rss: rss_trimmed(),
            virt: virtual_size(),
            mappings: mappings(),
            fds: open_fds(),
        }
    }

    /// Panics, naming `what`, if `self` grew from `before` by more than the bounds:
    /// `slack` bytes of resident and of virtual memory, `maps_slack` mappings, no fd.
    #[track_caller]
    pub fn assert_within(&self, before: &Usage, slack: usize, maps_slack: usize, what: &str) {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        eprintln!(
            "{what}: RSS {:.2} -> {:.2} MiB, virtual {:.1} -> {:.1} MiB, mappings {} -> {}, fds {} -> {}",
            mib(before.rss),
            mib(self.rss),
            mib(before.virt),
            mib(self.virt),
            before.mappings,
            self.mappings,
            before.fds,
            self.fds
        );
        assert!(
            self.rss <= before.rss + slack
                && self.virt <= before.virt + slack
                && self.mappings <= before.mappings + maps_slack
                && self.fds <= before.fds,
            "{what} leaked: RSS {:.1} -> {:.1} MiB, virtual {:.1} -> {:.1} MiB (allowed \
             +{:.1} each), mappings {} -> {} (allowed +{maps_slack}), fds {} -> {}",
            mib(before.rss),
            mib(self.rss),
            mib(before.virt),
            mib(self.virt),
            mib(slack),
            before.mappings,
            self.mappings,
            before.fds,
            self.fds,
        );
    }
}

/// Runs `once(i)` for `warm_up` rounds, then for `runs` more, and asserts that the
/// second stretch left RSS and virtual memory within 2 MiB, mappings within 4 and fds
/// where they were. Skipped under Valgrind, whose own memory the figures would measure.
#[track_caller]
pub fn assert_leaves_nothing_behind(
    what: &str,
    warm_up: usize,
    runs: usize,
    mut once: impl FnMut(usize),
) {
    if std::env::var_os("RUNNING_UNDER_VALGRIND").is_some() {
        eprintln!("skipped under Valgrind: RSS and mappings would measure Valgrind's own");
        return;
    }
    for i in 0..warm_up {
        once(i);
    }
    let before = Usage::now();
    for i in 0..runs {
        once(i);
    }
    Usage::now().assert_within(&before, 2 << 20, 4, what);
}
