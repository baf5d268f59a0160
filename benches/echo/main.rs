//! TCP servers under load: echo round trips and the accept rate, greenweave against
//! tokio, may and a thread per connection (only the server differs between the
//! functions of those groups: every server is driven by the same client driver); and
//! request–response clients, greenweave against tokio and OS threads (only the client
//! differs: every client talks to the same server).
//!
//! # The client driver
//!
//! One OS thread with its own greenweave hub (started once for the whole run) holds the
//! client connections, one greenlet per connection while it works. Criterion's thread
//! sends it commands over a `std::sync::mpsc` channel and gets the elapsed time back.
//! Before a server's function is measured the driver opens its connections (at most
//! 100 connecting at once) with `TCP_NODELAY`; they stay open for the whole function and
//! are closed afterwards, so connection setup is never timed.
//!
//! # Groups
//!
//! - `echo`: 100 connections, 64-byte messages. One iteration is one round trip on one
//!   connection: write 64 bytes, read the 64 echoed bytes back (and compare them with
//!   what was sent). The `iters` of a sample are spread evenly over the connections,
//!   which all run at once; the time is from the first write to the last read. So the
//!   median time per iteration is the inverse of the server's throughput: round trips
//!   per second = 1 / time (criterion prints it as `elem/s`).
//! - `echo_4k`: the same with 4 KiB messages.
//! - `echo_1000conns`: the same with 64-byte messages over 1,000 connections.
//! - `echo_cpu`: 100 connections, 4 KiB messages, and a handler that does real CPU
//!   work before each reply: it hashes what it read 200 times (`cpu_work`, about 0.2 ms
//!   per 4 KiB, some 20 times what the client spends on a round trip). The server, not
//!   the client driver, is then the bottleneck, so a second core shows: `workers(2)`
//!   against one hub, beside tokio's `current_thread` and 2-worker multi-thread
//!   runtimes running the same handler.
//! - `reqresp_50`, `reqresp_1000`: request–response *clients* (issue 15): 50 or 1,000
//!   connections, each its own client sending a 64-byte request and reading the
//!   response before the next, against one `greenweave_1hub` echo server in a process
//!   of its own; the client, written four ways (see `reqresp.rs`: unmodified `std::net`
//!   after `patch_all`, `greenweave::net`, tokio `current_thread`, an OS thread per
//!   connection), runs in a process of its own too, started once per function and
//!   driven over a pipe (see `procs.rs`). One iteration is one round trip; the time is
//!   the client's, from its first write to its last read. After the groups, a full
//!   `cargo bench` run measures the four clients again side by side, each command run
//!   by each client in turn for 45 rounds (see `interleaved.rs`), into
//!   `target/reqresp_interleaved.json`, and counts each client's system calls per round
//!   trip with `strace -f -c` (see `syscalls.rs`) into `target/reqresp_syscalls.json`.
//! - `echo_10k`: 10,000 connections, 64-byte echo round trips against the
//!   `greenweave_1hub` and `tokio_current_thread` servers, each in a process of its
//!   own, driven by the `greenweave_net` request–response client in another.
//! - `accept`: one iteration is one connection: connect, wait until the server has
//!   accepted it and closed it (the client reads end-of-file), then close with
//!   `SO_LINGER` 0 (a reset, so that neither side keeps the 4-tuple in `TIME_WAIT` and
//!   the ephemeral ports do not run out). 32 client greenlets connect at once.
//!
//! # The servers
//!
//! Every echo server reads up to 16 KiB into a per-connection heap buffer and writes back
//! what it read, until end-of-file, with `TCP_NODELAY` set on the accepted socket. Every
//! accept-group server closes the connection at once. Each serves on `127.0.0.1` on its
//! own OS thread(s), apart from the client driver's thread.
//!
//! - `greenweave_1hub`: a `StreamServer` on one hub (one OS thread): a greenlet per
//!   connection.
//! - `greenweave_workers2`: `workers(2)`: two hubs on two OS threads, each with its own
//!   `StreamServer` bound to the same port with `reuse_port(true)` (`SO_REUSEPORT`); the
//!   kernel spreads the connections over the two listening sockets by a hash of the
//!   4-tuple, so the split is near, not exactly, half and half. The machine this was
//!   written on has two cores, which the two workers then share with the client
//!   driver's thread.
//! - `tokio_current_thread`: a `current_thread` runtime on one OS thread; an accept loop
//!   that `tokio::spawn`s a task per connection. tokio's cooperative budget (128 units
//!   per task poll) applies to its I/O: a task that could go on reading is made to yield
//!   now and then. It rarely matters here, as each read is followed by a write and the
//!   next read finds the socket empty.
//! - `tokio_multi_thread2`: a multi-thread runtime with 2 worker threads (work
//!   stealing); the accept loop is a spawned task, so all the serving runs on the two
//!   workers (the thread that owns the runtime only waits for the stop signal).
//! - `may`: may coroutines, with may configured as `set_workers(1)` (one scheduler
//!   thread, which also polls epoll; may adds a timer thread of its own) and
//!   `set_worker_pin(false)` (may pins its workers to cores by default; no other server
//!   is pinned). An accept loop coroutine spawns a coroutine per connection (may's
//!   default 32 KiB stacks).
//! - `thread_per_connection`: blocking `std::net`: an accept thread spawns one OS thread
//!   (default 2 MiB stack) per connection.
//!
//! What the figures can and cannot show: the client driver and the server share the
//! machine, and a client round trip costs the same system calls as a server one. On a
//! 2-core machine both sides are busy, so the throughput is that of the closed loop and
//! the ratios understate the differences between servers (they are still ordered), and
//! `greenweave_workers2` and `tokio_multi_thread2` have no spare core to gain from. The
//! std listeners (`may`, `thread_per_connection`) have std's listen backlog of 128,
//! greenweave's and tokio's 1024; that only slows the untimed connection setup (some
//! SYNs are retried when 1,000 connections arrive at a thread-per-connection server).
//!
//! Goals (see BENCHMARKS.md, `cargo run --release -p xtask -- bench-report`): `echo`
//! `greenweave_1hub` ≥ 1.0× `tokio_current_thread`; `greenweave_workers2` ≥ 1.6×
//! `greenweave_1hub`; `echo_cpu` `greenweave_workers2` ≥ 1.7× `greenweave_1hub`; the
//! request–response clients `std_net_patched` and `greenweave_net` ≥ 1.0× `tokio_current_thread` at 50 and 1,000 connections, ≥ 2×
//! `os_threads` at 1,000, with no more system calls per round trip than tokio's;
//! `echo_10k` `greenweave_1hub` ≥ 1.0× `tokio_current_thread`.
//!
//! Run with `cargo bench --bench echo` (a few minutes: 30 functions, each with 0.5 s of
//! warm-up and 10 samples over 2 s (4 s at 10,000 connections), plus setup and the
//! `strace` counts; criterion's `--warm-up-time`, `--measurement-time` and
//! `--sample-size` flags override these defaults).

// `criterion_group!` and `criterion_main!` generate public items without doc comments,
// which the workspace's `missing_docs = "deny"` would reject.
#![allow(missing_docs)]

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group};
use greenweave::net::TcpStream;
use greenweave::server::StreamServer;

mod client;
mod interleaved;
mod procs;
mod reqresp;
mod servers;
mod syscalls;

use client::*;
use procs::{ClientProcess, ServerProcess};
use servers::*;

/// Size of every server's per-connection read buffer.
const SERVER_BUF: usize = 16 * 1024;
/// Client greenlets connecting at once (for `echo` setup and in `accept`).
const CONNECTING_AT_ONCE: usize = 100;
/// Client greenlets opening and closing connections at once in `accept`.
const ACCEPT_CONCURRENCY: usize = 32;

// ---------------------------------------------------------------------------------
// The benches.

type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// One echo group: each of `servers`, `conns` connections, `size`-byte messages.
fn echo_group(
    mut group: Group,
    client: &ClientDriver,
    (conns, size): (usize, usize),
    servers: &[ServerPeer],
) {
    group.throughput(Throughput::Elements(1));
    group.sampling_mode(SamplingMode::Flat);
    for &(name, start) in servers {
        let server = start();
        client.connect(server.addr, conns);
        group.bench_function(name, |b| b.iter_custom(|iters| client.echo(iters, size)));
        client.disconnect();
        server.stop();
    }
    group.finish();
}

fn echo(c: &mut Criterion) {
    let client = ClientDriver::start();
    echo_group(c.benchmark_group("echo"), &client, (100, 64), &ECHO_SERVERS);
    echo_group(
        c.benchmark_group("echo_4k"),
        &client,
        (100, 4096),
        &ECHO_SERVERS,
    );
    let group = c.benchmark_group("echo_1000conns");
    echo_group(group, &client, (1000, 64), &ECHO_SERVERS);
    echo_group(
        c.benchmark_group("echo_cpu"),
        &client,
        (100, 4096),
        &CPU_SERVERS,
    );
}

fn accept(c: &mut Criterion) {
    let client = ClientDriver::start();
    let mut group = c.benchmark_group("accept");
    group
        .throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat);
    let servers: [ServerPeer; 2] = [
        ("greenweave", || greenweave_server(1, Mode::Close)),
        ("tokio_current_thread", || tokio_server(None, Mode::Close)),
    ];
    for (name, start) in servers {
        let server = start();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| client.accept(server.addr, iters))
        });
        server.stop();
    }
    group.finish();
}

/// The request–response groups: name and connections.
const REQRESP_GROUPS: [(&str, usize); 2] = [("reqresp_50", 50), ("reqresp_1000", 1000)];
/// The server every request–response client talks to (in a process of its own).
const REQRESP_SERVER: &str = "greenweave_1hub";

fn reqresp(c: &mut Criterion) {
    let server = ServerProcess::start(REQRESP_SERVER);
    for (name, conns) in REQRESP_GROUPS {
        let mut group = c.benchmark_group(name);
        group
            .throughput(Throughput::Elements(1))
            .sampling_mode(SamplingMode::Flat);
        for kind in reqresp::KINDS {
            let mut client = ClientProcess::start(kind, conns, server.addr);
            group.bench_function(kind.name(), |b| b.iter_custom(|iters| client.run(iters)));
            client.stop();
        }
        group.finish();
    }
    server.stop();
    if measuring_reqresp_extras() {
        interleaved::measure_and_save(REQRESP_SERVER, &REQRESP_GROUPS);
        syscalls::count_and_save(REQRESP_SERVER, &REQRESP_GROUPS);
    }
}

/// Whether this run also measures the clients side by side (`interleaved`) and counts
/// their system calls: a full `cargo bench` run (not `cargo test --benches`) whose
/// filter, if any, selects the request–response groups.
fn measuring_reqresp_extras() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    args.iter().any(|a| a == "--bench")
        && (filters.is_empty()
            || filters
                .iter()
                .any(|f| "reqresp".contains(f.as_str()) || f.contains("reqresp")))
}

/// Echo servers at 10,000 connections, driven by a client in another process.
fn echo_10k(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo_10k");
    group
        .throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(4));
    for name in ["greenweave_1hub", "tokio_current_thread"] {
        let server = ServerProcess::start(name);
        let kind = reqresp::Kind::GreenweaveNet;
        let mut client = ClientProcess::start(kind, ECHO_10K_CONNS, server.addr);
        group.bench_function(name, |b| b.iter_custom(|iters| client.run(iters)));
        client.stop();
        server.stop();
    }
    group.finish();
}

/// Connections of the `echo_10k` group.
const ECHO_10K_CONNS: usize = 10_000;

fn config() -> Criterion {
    // Defaults for a plain `cargo bench` (20 functions, about a minute in all);
    // command-line flags override them. Each sample takes many iterations, so 10 samples
    // give a stable median.
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = echo, accept, reqresp, echo_10k
}

fn main() {
    // A server or client process this bench started (see `procs`).
    if procs::run_role_if_asked() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
