//! The project's goals: each a check of one group's figures, in report order.

use super::{Check, Goal, monitor};

/// The project's goals, in report order.
pub const GOALS: &[Goal] = &[
    Goal {
        text: "greenlet switch ≤ 3× raw corosensei",
        check: Check::MinSpeedup {
            group: "switch",
            subject: "greenlet_switch_round_trip",
            peer: "corosensei_resume_suspend",
            factor: 1.0 / 3.0,
        },
    },
    Goal {
        text: "greenlet switch ≥ 500× faster than an OS-thread handoff (Condvar)",
        check: Check::MinSpeedup {
            group: "switch",
            subject: "greenlet_switch_round_trip",
            peer: "os_thread_handoff_condvar",
            factor: 500.0,
        },
    },
    Goal {
        text: "greenlet switch ≥ 500× faster than an OS-thread handoff (sync_channel)",
        check: Check::MinSpeedup {
            group: "switch",
            subject: "greenlet_switch_round_trip",
            peer: "os_thread_handoff_sync_channel",
            factor: 500.0,
        },
    },
    Goal {
        text: "greenlet create + run + finish ≤ 150 ns",
        check: Check::MaxNs {
            group: "switch",
            function: "greenlet_create_run_finish",
            ns: 150.0,
        },
    },
    Goal {
        text: "greenlet create + run + finish ≥ 100× faster than thread spawn + join",
        check: Check::MinSpeedup {
            group: "switch",
            subject: "greenlet_create_run_finish",
            peer: "thread_spawn_join",
            factor: 100.0,
        },
    },
    Goal {
        text: "spawn + join ≤ 150 ns",
        check: Check::MaxNs {
            group: "spawn_join",
            function: "greenweave",
            ns: 150.0,
        },
    },
    Goal {
        text: "yield ≤ 20 ns",
        check: Check::MaxNs {
            group: "yield",
            function: "greenweave",
            ns: 20.0,
        },
    },
    Goal {
        text: "ping-pong ≤ 50 ns",
        check: Check::MaxNs {
            group: "ping_pong",
            function: "greenweave_channel",
            ns: 50.0,
        },
    },
    Goal {
        text: "ping-pong ≥ 5× faster than may",
        check: Check::MinSpeedup {
            group: "ping_pong",
            subject: "greenweave_channel",
            peer: "may_mpsc",
            factor: 5.0,
        },
    },
    Goal {
        text: "ping-pong ≥ 10× faster than tokio",
        check: Check::MinSpeedup {
            group: "ping_pong",
            subject: "greenweave_channel",
            peer: "tokio_mpsc",
            factor: 10.0,
        },
    },
    Goal {
        text: "echo (one hub) ≥ 1.0× tokio current_thread",
        check: Check::MinSpeedup {
            group: "echo",
            subject: "greenweave_1hub",
            peer: "tokio_current_thread",
            factor: 1.0,
        },
    },
    Goal {
        text: "echo `workers(2)` ≥ 1.6× one hub",
        check: Check::MinSpeedup {
            group: "echo",
            subject: "greenweave_workers2",
            peer: "greenweave_1hub",
            factor: 1.6,
        },
    },
    Goal {
        text: "echo with CPU work: `workers(2)` ≥ 1.7× one hub",
        check: Check::MinSpeedup {
            group: "echo_cpu",
            subject: "greenweave_workers2",
            peer: "greenweave_1hub",
            factor: 1.7,
        },
    },
    Goal {
        text: "request–response, 50 clients: patched `std::net` ≥ 1.0× tokio current_thread",
        check: Check::MinSideBySideSpeedup {
            group: "reqresp_50",
            subject: "std_net_patched",
            peer: "tokio_current_thread",
            factor: 1.0,
        },
    },
    Goal {
        text: "request–response, 50 clients: `greenweave::net` ≥ 1.0× tokio current_thread",
        check: Check::MinSideBySideSpeedup {
            group: "reqresp_50",
            subject: "greenweave_net",
            peer: "tokio_current_thread",
            factor: 1.0,
        },
    },
    Goal {
        text: "request–response, 50 clients: patched `std::net` system calls per round trip ≤ tokio's",
        check: Check::MaxSyscalls {
            group: "reqresp_50",
            subject: "std_net_patched",
            peer: "tokio_current_thread",
        },
    },
    Goal {
        text: "request–response, 50 clients: `greenweave::net` system calls per round trip ≤ tokio's",
        check: Check::MaxSyscalls {
            group: "reqresp_50",
            subject: "greenweave_net",
            peer: "tokio_current_thread",
        },
    },
    Goal {
        text: "request–response, 1,000 clients: patched `std::net` ≥ 1.0× tokio current_thread",
        check: Check::MinSideBySideSpeedup {
            group: "reqresp_1000",
            subject: "std_net_patched",
            peer: "tokio_current_thread",
            factor: 1.0,
        },
    },
    Goal {
        text: "request–response, 1,000 clients: `greenweave::net` ≥ 1.0× tokio current_thread",
        check: Check::MinSideBySideSpeedup {
            group: "reqresp_1000",
            subject: "greenweave_net",
            peer: "tokio_current_thread",
            factor: 1.0,
        },
    },
    Goal {
        text: "request–response, 1,000 clients: patched `std::net` ≥ 2× OS threads",
        check: Check::MinSideBySideSpeedup {
            group: "reqresp_1000",
            subject: "std_net_patched",
            peer: "os_threads",
            factor: 2.0,
        },
    },
    Goal {
        text: "request–response, 1,000 clients: `greenweave::net` ≥ 2× OS threads",
        check: Check::MinSideBySideSpeedup {
            group: "reqresp_1000",
            subject: "greenweave_net",
            peer: "os_threads",
            factor: 2.0,
        },
    },
    Goal {
        text: "request–response, 1,000 clients: patched `std::net` system calls per round trip ≤ tokio's",
        check: Check::MaxSyscalls {
            group: "reqresp_1000",
            subject: "std_net_patched",
            peer: "tokio_current_thread",
        },
    },
    Goal {
        text: "request–response, 1,000 clients: `greenweave::net` system calls per round trip ≤ tokio's",
        check: Check::MaxSyscalls {
            group: "reqresp_1000",
            subject: "greenweave_net",
            peer: "tokio_current_thread",
        },
    },
    Goal {
        text: "echo at 10,000 connections (client in another process) ≥ 1.0× tokio current_thread",
        check: Check::MinSpeedup {
            group: "echo_10k",
            subject: "greenweave_1hub",
            peer: "tokio_current_thread",
            factor: 1.0,
        },
    },
    Goal {
        text: "≥ 100,000 live greenlets",
        check: Check::MinLiveGreenlets(100_000),
    },
    Goal {
        text: "libc hook, unpatched: ≤ 5 ns more than the real `read`",
        check: Check::MaxExtraNs {
            group: "hook_overhead",
            subject: "hook_read_unpatched",
            peer: "original_read",
            ns: 5.0,
        },
    },
    Goal {
        text: "`syscall` hook, unpatched: ≤ 5 ns more than libc's `syscall`",
        check: Check::MaxExtraNs {
            group: "syscall_hook",
            subject: "hook_getppid_unpatched",
            peer: "original_getppid",
            ns: 5.0,
        },
    },
    Goal {
        text: "uncontended std `Mutex` after `patch_all`: ≤ 1 ns more than before",
        check: Check::MaxExtraNs {
            group: "std_mutex",
            subject: "uncontended_patched",
            peer: "uncontended_unpatched",
            ns: 1.0,
        },
    },
    Goal {
        text: "std `Condvar` hand-over between greenlets ≥ 10× faster than between OS threads",
        check: Check::MinSpeedup {
            group: "std_handoff",
            subject: "greenlets",
            peer: "os_threads",
            factor: 10.0,
        },
    },
    Goal {
        text: "patched `std::net` echo within 1.5× of `greenweave::net`",
        check: Check::MinSpeedup {
            group: "patched_echo",
            subject: "std_net_patched",
            peer: "greenweave_net_unpatched",
            factor: 1.0 / 1.5,
        },
    },
    monitor::YIELD,
    monitor::PING_PONG,
    monitor::SPAWN_JOIN,
];
