//! What the report shows: the benchmark groups, their functions, which pairs are
//! compared, and the project's goals.

mod goals;
mod monitor;

pub use goals::GOALS;

/// How a group's per-iteration time reads best.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A latency: the time of one iteration.
    Time,
    /// A server's throughput: iterations per second, named (`"round trips/s"`).
    Rate(&'static str),
}

/// One criterion group and how to present it.
pub struct Group {
    /// Criterion's group name (the directory under `target/criterion`).
    pub name: &'static str,
    /// Section title.
    pub title: &'static str,
    /// The bench target that runs it (`cargo bench --bench BENCH`).
    pub bench: &'static str,
    /// What an iteration is, for the reader.
    pub iteration: &'static str,
    /// Time or rate.
    pub unit: Unit,
    /// Functions in display order with a short description; greenweave's first.
    pub functions: &'static [(&'static str, &'static str)],
    /// greenweave's functions: each gets a ratio column against the others.
    pub subjects: &'static [&'static str],
    /// If not empty, only these (subject, peer) ratios are shown and charted; otherwise
    /// every subject against every other function in the tables, and the first subject
    /// against every function that is not a subject in the chart.
    pub pairs: &'static [(&'static str, &'static str)],
}

impl Group {
    /// Whether the report shows the ratio of `subject` to `peer`.
    pub fn compares(&self, subject: &str, peer: &str) -> bool {
        if self.pairs.is_empty() {
            subject != peer && self.subjects.contains(&subject)
        } else {
            self.pairs.contains(&(subject, peer))
        }
    }

    /// The (subject, peer) pairs the chart shows.
    pub fn charted_pairs(&self) -> Vec<(&'static str, &'static str)> {
        if !self.pairs.is_empty() {
            return self.pairs.to_vec();
        }
        let subject = self.subjects[0];
        self.functions
            .iter()
            .map(|&(peer, _)| peer)
            .filter(|peer| !self.subjects.contains(peer))
            .map(|peer| (subject, peer))
            .collect()
    }
}

/// A goal the report checks.
pub enum Check {
    /// `group/function` takes at most this many nanoseconds.
    MaxNs {
        /// Criterion group.
        group: &'static str,
        /// Function in it.
        function: &'static str,
        /// The bound.
        ns: f64,
    },
    /// `peer`'s time ÷ `subject`'s time (greenweave's speed-up) is at least `factor`.
    MinSpeedup {
        /// Criterion group (both functions are in it).
        group: &'static str,
        /// greenweave's function.
        subject: &'static str,
        /// The peer it is compared with.
        peer: &'static str,
        /// The bound. Below 1 it bounds a slowdown: 1/3 is "at most 3× slower".
        factor: f64,
    },
    /// `subject` costs at most `ns` nanoseconds more than `peer` (same group).
    MaxExtraNs {
        /// Criterion group (both functions are in it).
        group: &'static str,
        /// greenweave's function.
        subject: &'static str,
        /// The baseline it is compared with.
        peer: &'static str,
        /// The bound on the difference of the medians.
        ns: f64,
    },
    /// At least this many greenlets live at once (from the memory table).
    MinLiveGreenlets(u64),
    /// `subject`'s rate ÷ `peer`'s, measured side by side (the median of the rounds'
    /// ratios in `target/reqresp_interleaved.json`), is at least `factor`.
    MinSideBySideSpeedup {
        /// Request–response group (both functions are in it).
        group: &'static str,
        /// greenweave's function.
        subject: &'static str,
        /// The peer it is compared with.
        peer: &'static str,
        /// The bound.
        factor: f64,
    },
    /// `subject` makes at most as many system calls per round trip as `peer` (from
    /// the request–response groups' `strace` counts).
    MaxSyscalls {
        /// Criterion group (both functions are in it).
        group: &'static str,
        /// greenweave's function.
        subject: &'static str,
        /// The peer it is compared with.
        peer: &'static str,
    },
}

/// A goal: its wording and its check.
pub struct Goal {
    /// The goal as the project states it.
    pub text: &'static str,
    /// How it is checked.
    pub check: Check,
}

/// The groups, in report order.
pub const GROUPS: &[Group] = &[
    Group {
        name: "switch",
        title: "Greenlet switch",
        bench: "switch",
        iteration: "one round trip main → g → main (two context switches), or one whole \
                    short-lived greenlet / thread",
        unit: Unit::Time,
        functions: &[
            (
                "greenlet_switch_round_trip",
                "`g.switch(())` to a greenlet that switches straight back",
            ),
            (
                "greenlet_create_run_finish",
                "`Greenlet::new`, one switch in, it returns, handle dropped (warm stack pool)",
            ),
            (
                "corosensei_resume_suspend",
                "raw corosensei `resume` of a coroutine that suspends: the floor",
            ),
            (
                "os_thread_handoff_condvar",
                "the same round trip between two OS threads, `Mutex` + `Condvar`",
            ),
            (
                "os_thread_handoff_sync_channel",
                "the same between two OS threads over two `sync_channel(0)`",
            ),
            (
                "thread_spawn_join",
                "`std::thread::spawn` of a trivial closure + `join`",
            ),
        ],
        subjects: &["greenlet_switch_round_trip", "greenlet_create_run_finish"],
        pairs: &[
            ("greenlet_switch_round_trip", "corosensei_resume_suspend"),
            ("greenlet_switch_round_trip", "os_thread_handoff_condvar"),
            (
                "greenlet_switch_round_trip",
                "os_thread_handoff_sync_channel",
            ),
            ("greenlet_create_run_finish", "thread_spawn_join"),
        ],
    },
    Group {
        name: "yield",
        title: "Yield",
        bench: "runtime",
        iteration: "one yield, with a partner task yielding back",
        unit: Unit::Time,
        functions: &[
            ("greenweave", "`yield_now` between two greenlets on one hub"),
            (
                "tokio_current_thread",
                "`tokio::task::yield_now` between two local tasks",
            ),
            (
                "may",
                "`may::coroutine::yield_now` between two coroutines, one may worker",
            ),
            (
                "std_thread_2",
                "`std::thread::yield_now` in two OS threads pinned to one CPU",
            ),
        ],
        subjects: &["greenweave"],
        pairs: &[],
    },
    Group {
        name: "spawn_join",
        title: "Spawn and join",
        bench: "runtime",
        iteration: "spawn a trivial task and wait for its result",
        unit: Unit::Time,
        functions: &[
            ("greenweave", "`spawn` + `join` (warm stack pool)"),
            ("std_thread", "`thread::spawn` + `join`"),
            (
                "tokio_current_thread",
                "`tokio::spawn` + `.await`, `current_thread` runtime",
            ),
            (
                "may",
                "`coroutine::spawn` + `join` inside a coroutine, one may worker",
            ),
        ],
        subjects: &["greenweave"],
        pairs: &[],
    },
    Group {
        name: "ping_pong",
        title: "Ping-pong",
        bench: "runtime",
        iteration: "one round trip: send a value to a partner, which sends it back",
        unit: Unit::Time,
        functions: &[
            (
                "greenweave_channel",
                "two `queue::Channel`s (rendezvous), one hub",
            ),
            ("greenweave_queue1", "two `Queue(1)`s, one hub"),
            (
                "std_sync_channel",
                "two OS threads, two `std::sync::mpsc::sync_channel(0)`",
            ),
            (
                "crossbeam_bounded0",
                "two OS threads, two `crossbeam_channel::bounded(0)`",
            ),
            (
                "tokio_mpsc",
                "two tasks, two `tokio::sync::mpsc::channel(1)`, `current_thread`",
            ),
            (
                "may_mpsc",
                "two coroutines, two `may::sync::mpsc::channel`s, one may worker",
            ),
        ],
        subjects: &["greenweave_channel", "greenweave_queue1"],
        pairs: &[],
    },
    Group {
        name: "spawn_blocking",
        title: "spawn_blocking",
        bench: "runtime",
        iteration: "run a trivial closure on the blocking pool and wait for its value",
        unit: Unit::Time,
        functions: &[
            (
                "greenweave",
                "`threadpool::spawn_blocking` from the main greenlet",
            ),
            (
                "tokio",
                "`tokio::task::spawn_blocking(..).await`, `current_thread` runtime",
            ),
        ],
        subjects: &["greenweave"],
        pairs: &[],
    },
    Group {
        name: "echo",
        title: "Echo server: 100 connections, 64 B",
        bench: "echo",
        iteration: "one 64-byte round trip on one of 100 connections, all busy at once; \
                    the rate is the server's round trips per second",
        unit: Unit::Rate("round trips/s"),
        functions: ECHO_FUNCTIONS,
        subjects: &["greenweave_1hub", "greenweave_workers2"],
        pairs: &[],
    },
    Group {
        name: "echo_4k",
        title: "Echo server: 100 connections, 4 KiB",
        bench: "echo",
        iteration: "one 4 KiB round trip on one of 100 connections",
        unit: Unit::Rate("round trips/s"),
        functions: ECHO_FUNCTIONS,
        subjects: &["greenweave_1hub", "greenweave_workers2"],
        pairs: &[],
    },
    Group {
        name: "echo_1000conns",
        title: "Echo server: 1,000 connections, 64 B",
        bench: "echo",
        iteration: "one 64-byte round trip on one of 1,000 connections",
        unit: Unit::Rate("round trips/s"),
        functions: ECHO_FUNCTIONS,
        subjects: &["greenweave_1hub", "greenweave_workers2"],
        pairs: &[],
    },
    Group {
        name: "echo_cpu",
        title: "Echo server with CPU work: 100 connections, 4 KiB, 200 hashes per read",
        bench: "echo",
        iteration: "one 4 KiB round trip on one of 100 connections; before replying, the \
                    handler hashes what it read 200 times (about 0.2 ms), so the server, not \
                    the client, is the bottleneck and a second core shows",
        unit: Unit::Rate("round trips/s"),
        functions: CPU_FUNCTIONS,
        subjects: &["greenweave_1hub", "greenweave_workers2"],
        pairs: &[
            ("greenweave_workers2", "greenweave_1hub"),
            ("greenweave_1hub", "tokio_current_thread"),
            ("greenweave_workers2", "tokio_multi_thread2"),
        ],
    },
    Group {
        name: "accept",
        title: "Accept rate",
        bench: "echo",
        iteration: "one connection: connect, the server accepts and closes it, the client \
                    sees end-of-file (32 clients at once)",
        unit: Unit::Rate("connections/s"),
        functions: &[
            (
                "greenweave",
                "`StreamServer` on one hub: a greenlet per connection",
            ),
            (
                "tokio_current_thread",
                "`TcpListener` accept loop, a task per connection, `current_thread`",
            ),
        ],
        subjects: &["greenweave"],
        pairs: &[],
    },
    Group {
        name: "reqresp_50",
        title: "Request–response clients: 50 connections, 64 B, server in another process",
        bench: "echo",
        iteration: "one 64-byte request and its 64-byte response on one of 50 connections, \
                    each its own client, all busy at once, against a `StreamServer` in \
                    another process; the rate is the client's round trips per second",
        unit: Unit::Rate("round trips/s"),
        functions: REQRESP_FUNCTIONS,
        subjects: &["std_net_patched", "greenweave_net"],
        pairs: REQRESP_PAIRS,
    },
    Group {
        name: "reqresp_1000",
        title: "Request–response clients: 1,000 connections, 64 B, server in another process",
        bench: "echo",
        iteration: "one 64-byte request and its response on one of 1,000 connections",
        unit: Unit::Rate("round trips/s"),
        functions: REQRESP_FUNCTIONS,
        subjects: &["std_net_patched", "greenweave_net"],
        pairs: REQRESP_PAIRS,
    },
    Group {
        name: "echo_10k",
        title: "Echo server: 10,000 connections, 64 B, client in another process",
        bench: "echo",
        iteration: "one 64-byte round trip on one of 10,000 connections, driven by a \
                    `greenweave::net` client in another process",
        unit: Unit::Rate("round trips/s"),
        functions: &[
            (
                "greenweave_1hub",
                "`StreamServer` on one hub (one OS thread)",
            ),
            (
                "tokio_current_thread",
                "accept loop + a task per connection, `current_thread` runtime",
            ),
        ],
        subjects: &["greenweave_1hub"],
        pairs: &[],
    },
    Group {
        name: "hook_overhead",
        title: "libc hook overhead (`greenweave-monkey`)",
        bench: "monkey",
        iteration: "`read` of 1 byte from a non-empty pipe",
        unit: Unit::Time,
        functions: &[
            (
                "hook_read_unpatched",
                "`libc::read` through the hook, before `patch_all` (main thread)",
            ),
            (
                "original_read",
                "`monkey::original::read`, the real libc function (main thread)",
            ),
            (
                "hook_read_patched_plain_thread",
                "through the hook after `patch_all`, on a thread without a hub",
            ),
            (
                "original_read_plain_thread",
                "the real function on that thread",
            ),
            (
                "hook_read_patched_greenlet",
                "through the hook after `patch_all`, in a greenlet (cooperative path, data ready)",
            ),
        ],
        subjects: &["hook_read_unpatched", "hook_read_patched_plain_thread"],
        pairs: &[
            ("hook_read_unpatched", "original_read"),
            (
                "hook_read_patched_plain_thread",
                "original_read_plain_thread",
            ),
        ],
    },
    Group {
        name: "patched_echo",
        title: "Patched `std::net` vs `greenweave::net` (100 connections, 64 B echo)",
        bench: "monkey",
        iteration: "one 64-byte round trip on one of 100 connections",
        unit: Unit::Time,
        functions: &[
            (
                "std_net_patched",
                "unmodified `std::net` client and server after `patch_all`",
            ),
            (
                "greenweave_net_unpatched",
                "`greenweave::net` in a process that never patched",
            ),
            (
                "greenweave_net_patched",
                "`greenweave::net` after `patch_all`",
            ),
        ],
        subjects: &["std_net_patched"],
        pairs: &[("std_net_patched", "greenweave_net_unpatched")],
    },
    Group {
        name: "syscall_hook",
        title: "`syscall` hook pass-through (`greenweave-monkey`, futex area)",
        bench: "futex",
        iteration: "`syscall(SYS_getppid)`, a number the hook passes through",
        unit: Unit::Time,
        functions: &[
            (
                "hook_getppid_unpatched",
                "`libc::syscall` through the hook, before `patch_all`",
            ),
            (
                "original_getppid",
                "`monkey::original::syscall`, libc's real `syscall`",
            ),
            (
                "hook_getppid_patched",
                "through the hook after `patch_all`, in a greenlet",
            ),
        ],
        subjects: &["hook_getppid_unpatched", "hook_getppid_patched"],
        pairs: &[
            ("hook_getppid_unpatched", "original_getppid"),
            ("hook_getppid_patched", "original_getppid"),
        ],
    },
    Group {
        name: "std_mutex",
        title: "Uncontended `std::sync::Mutex` before and after `patch_all`",
        bench: "futex",
        iteration: "one lock + unlock (no system call)",
        unit: Unit::Time,
        functions: &[
            ("uncontended_patched", "after `patch_all`, in a greenlet"),
            ("uncontended_unpatched", "before `patch_all`"),
        ],
        subjects: &["uncontended_patched"],
        pairs: &[("uncontended_patched", "uncontended_unpatched")],
    },
    Group {
        name: "std_handoff",
        title: "std `Mutex` + `Condvar` hand-over: greenlets (patched) vs OS threads",
        bench: "futex",
        iteration: "one round trip: wait for the turn, pass it, and back",
        unit: Unit::Time,
        functions: &[
            (
                "greenlets",
                "two greenlets of one hub after `patch_all` (waits park in the futex hook)",
            ),
            ("os_threads", "two OS threads, the kernel's futex"),
        ],
        subjects: &["greenlets"],
        pairs: &[("greenlets", "os_threads")],
    },
    monitor::GROUP,
];

/// The groups whose functions have system-call counts (`target/reqresp_syscalls.json`).
pub const SYSCALL_GROUPS: &[&str] = &["reqresp_50", "reqresp_1000"];

/// The clients of the request–response groups.
const REQRESP_FUNCTIONS: &[(&str, &str)] = &[
    (
        "std_net_patched",
        "unmodified blocking `std::net` after `patch_all`, a greenlet per connection",
    ),
    (
        "greenweave_net",
        "`greenweave::net::TcpStream`, a greenlet per connection",
    ),
    (
        "tokio_current_thread",
        "`tokio::net::TcpStream`, a task per connection, `current_thread` runtime",
    ),
    (
        "os_threads",
        "blocking `std::net`, an OS thread per connection",
    ),
];

/// The servers of the `echo_cpu` group (the first four echo servers): one core against
/// two, greenweave and tokio.
const CPU_FUNCTIONS: &[(&str, &str)] = ECHO_FUNCTIONS.split_at(4).0;

/// The ratios the request–response groups show.
const REQRESP_PAIRS: &[(&str, &str)] = &[
    ("std_net_patched", "tokio_current_thread"),
    ("std_net_patched", "os_threads"),
    ("greenweave_net", "tokio_current_thread"),
    ("greenweave_net", "os_threads"),
];

/// The servers of the three echo groups.
const ECHO_FUNCTIONS: &[(&str, &str)] = &[
    (
        "greenweave_1hub",
        "`StreamServer` on one hub (one OS thread)",
    ),
    (
        "greenweave_workers2",
        "`workers(2)`: two hubs, a `StreamServer` each, `SO_REUSEPORT`",
    ),
    (
        "tokio_current_thread",
        "accept loop + a task per connection, `current_thread` runtime",
    ),
    (
        "tokio_multi_thread2",
        "the same on a multi-thread runtime with 2 workers",
    ),
    (
        "may",
        "accept coroutine + a coroutine per connection, one may worker",
    ),
    (
        "thread_per_connection",
        "blocking `std::net`, an OS thread per connection",
    ),
];
