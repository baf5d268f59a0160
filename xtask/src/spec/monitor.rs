//! The blocking monitor's cost: its group and goals.

use super::{Check, Goal, Group, Unit};

/// Group `monitor` of `benches/monitor.rs`.
pub const GROUP: Group = Group {
    name: "monitor",
    title: "The blocking monitor's cost",
    bench: "monitor",
    iteration: "one yield, one ping-pong round trip, or one spawn + join, without and with \
                `monitor::start(100 ms)` running (it samples every hub every 25 ms); a ratio \
                below 1 is what the monitor costs",
    unit: Unit::Time,
    functions: &[
        (
            "yield_on",
            "`yield_now` between two greenlets, monitor running",
        ),
        ("yield_off", "the same, no monitor"),
        (
            "ping_pong_on",
            "ping-pong over two `Channel`s, monitor running",
        ),
        ("ping_pong_off", "the same, no monitor"),
        (
            "spawn_join_on",
            "`spawn` + `join` of a trivial greenlet, monitor running",
        ),
        ("spawn_join_off", "the same, no monitor"),
    ],
    subjects: &["yield_on", "ping_pong_on", "spawn_join_on"],
    pairs: &[
        ("yield_on", "yield_off"),
        ("ping_pong_on", "ping_pong_off"),
        ("spawn_join_on", "spawn_join_off"),
    ],
};

/// Yield with the monitor running is within 5 % of its time without.
pub const YIELD: Goal = within_5_percent(
    "yield with the monitor running within 5 % of without",
    "yield_on",
    "yield_off",
);

/// Ping-pong, likewise.
pub const PING_PONG: Goal = within_5_percent(
    "ping-pong with the monitor running within 5 % of without",
    "ping_pong_on",
    "ping_pong_off",
);

/// Spawn + join, likewise.
pub const SPAWN_JOIN: Goal = within_5_percent(
    "spawn + join with the monitor running within 5 % of without",
    "spawn_join_on",
    "spawn_join_off",
);

/// `subject` (monitor running) at most 5 % slower than `peer` (no monitor).
const fn within_5_percent(text: &'static str, subject: &'static str, peer: &'static str) -> Goal {
    Goal {
        text,
        check: Check::MinSpeedup {
            group: "monitor",
            subject,
            peer,
            factor: 1.0 / 1.05,
        },
    }
}
