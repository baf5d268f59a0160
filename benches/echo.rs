//! TCP servers under load: echo round trips and the accept rate, greenweave against
//! tokio, may and a thread per connection. Only the server differs between the
//! functions of a group: every server is driven by the same client driver.
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
//! `greenweave_1hub`.
//!
//! Run with `cargo bench --bench echo` (about a minute: 20 functions, each with 0.5 s of
//! warm-up and 10 samples over 2 s, plus server setup; criterion's `--warm-up-time`,
//! `--measurement-time` and `--sample-size` flags override these defaults).

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
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use greenweave::net::TcpStream;
use greenweave::server::StreamServer;

/// Size of every server's per-connection read buffer.
const SERVER_BUF: usize = 16 * 1024;
/// Client greenlets connecting at once (for `echo` setup and in `accept`).
const CONNECTING_AT_ONCE: usize = 100;
/// Client greenlets opening and closing connections at once in `accept`.
const ACCEPT_CONCURRENCY: usize = 32;

// ---------------------------------------------------------------------------------
// The client driver.

/// A request to the client driver's thread; each carries where to send its answer.
enum Command {
    /// Open `conns` connections to `addr` (closing any left open).
    Connect {
        addr: SocketAddr,
        conns: usize,
        done: mpsc::Sender<()>,
    },
    /// `rounds` round trips of `size` bytes spread over the open connections.
    Echo {
        rounds: u64,
        size: usize,
        done: mpsc::Sender<Duration>,
    },
    /// Close the open connections.
    Disconnect { done: mpsc::Sender<()> },
    /// Open and close `count` connections to `addr`, `ACCEPT_CONCURRENCY` at once.
    Accept {
        addr: SocketAddr,
        count: u64,
        done: mpsc::Sender<Duration>,
    },
}

/// The client side of every bench: a greenweave hub on its own thread.
struct ClientDriver {
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ClientDriver {
    fn start() -> ClientDriver {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("echo-client-driver".into())
            .spawn(move || driver_main(&rx))
            .expect("start the client driver");
        ClientDriver {
            commands: Some(tx),
            thread: Some(thread),
        }
    }

    /// Sends a command made with a fresh answer channel and waits for the answer.
    fn call<T>(&self, command: impl FnOnce(mpsc::Sender<T>) -> Command) -> T {
        let (tx, rx) = mpsc::channel();
        self.commands
            .as_ref()
            .expect("driver running")
            .send(command(tx))
            .expect("the client driver is alive");
        rx.recv().expect("the client driver answers")
    }

    fn connect(&self, addr: SocketAddr, conns: usize) {
        self.call(|done| Command::Connect { addr, conns, done });
    }

    fn echo(&self, rounds: u64, size: usize) -> Duration {
        self.call(|done| Command::Echo { rounds, size, done })
    }

    fn disconnect(&self) {
        self.call(|done| Command::Disconnect { done });
    }

    fn accept(&self, addr: SocketAddr, count: u64) -> Duration {
        self.call(|done| Command::Accept { addr, count, done })
    }
}

impl Drop for ClientDriver {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The driver thread: runs commands until the sender is dropped. It blocks its OS
/// thread in `recv` between commands, when none of its greenlets has work.
fn driver_main(commands: &mpsc::Receiver<Command>) {
    let mut conns: Vec<Rc<TcpStream>> = Vec::new();
    while let Ok(command) = commands.recv() {
        match command {
            Command::Connect {
                addr,
                conns: n,
                done,
            } => {
                conns.clear();
                conns = open_connections(addr, n);
                let _ = done.send(());
            }
            Command::Echo { rounds, size, done } => {
                let _ = done.send(echo_rounds(&conns, rounds, size));
            }
            Command::Disconnect { done } => {
                for c in conns.drain(..) {
                    let _ = c.shutdown(Shutdown::Both);
                }
                let _ = done.send(());
            }
            Command::Accept { addr, count, done } => {
                let _ = done.send(connect_close(addr, count));
            }
        }
    }
}

fn open_connections(addr: SocketAddr, n: usize) -> Vec<Rc<TcpStream>> {
    let connectors = CONNECTING_AT_ONCE.min(n);
    let jobs: Vec<_> = (0..connectors)
        .map(|j| {
            // Connector j opens connections j, j + connectors, ...
            let mine = (j..n).step_by(connectors).count();
            greenweave::spawn(move || {
                (0..mine)
                    .map(|_| {
                        let c = TcpStream::connect(addr).expect("connect to the server");
                        c.set_nodelay(true).expect("TCP_NODELAY");
                        c
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    greenweave::joinall(jobs)
        .into_iter()
        .flat_map(|r| r.expect("connector greenlets do not panic"))
        .map(Rc::new)
        .collect()
}

/// `rounds` round trips spread over `conns` (all at once); the time they took.
fn echo_rounds(conns: &[Rc<TcpStream>], rounds: u64, size: usize) -> Duration {
    let n = conns.len() as u64;
    let (per, extra) = (rounds / n, rounds % n);
    let msg: Rc<[u8]> = (0..size).map(|i| (i * 7 + 1) as u8).collect();
    let start = Instant::now();
    let jobs: Vec<_> = conns
        .iter()
        .enumerate()
        .filter_map(|(i, conn)| {
            let k = per + u64::from((i as u64) < extra);
            (k > 0).then(|| {
                let (conn, msg) = (conn.clone(), msg.clone());
                greenweave::spawn(move || -> io::Result<()> {
                    let mut buf = vec![0; msg.len()];
                    for _ in 0..k {
                        (&*conn).write_all(&msg)?;
                        (&*conn).read_exact(&mut buf)?;
                        assert!(buf[..] == msg[..], "the server echoed other bytes");
                    }
                    Ok(())
                })
            })
        })
        .collect();
    for result in greenweave::joinall(jobs) {
        result
            .expect("client greenlets do not panic")
            .expect("echo round trip");
    }
    start.elapsed()
}

/// Opens and closes `count` connections, `ACCEPT_CONCURRENCY` at a time.
fn connect_close(addr: SocketAddr, count: u64) -> Duration {
    let left = Rc::new(Cell::new(count));
    let start = Instant::now();
    let jobs: Vec<_> = (0..ACCEPT_CONCURRENCY.min(count as usize))
        .map(|_| {
            let left = left.clone();
            greenweave::spawn(move || -> io::Result<()> {
                while left.get() > 0 {
                    left.set(left.get() - 1);
                    let c = TcpStream::connect(addr)?;
                    // End-of-file (or a reset): the server accepted and closed it.
                    let _ = (&c).read(&mut [0; 1]);
                    c.set_linger(Some(Duration::ZERO))?;
                }
                Ok(())
            })
        })
        .collect();
    for result in greenweave::joinall(jobs) {
        result
            .expect("client greenlets do not panic")
            .expect("connect");
    }
    start.elapsed()
}

// ---------------------------------------------------------------------------------
// The servers.

/// What a server does with each connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Echo until end-of-file.
    Echo,
    /// Close at once (the `accept` group).
    Close,
}

/// A one-shot stop signal any thread can wait for.
#[derive(Default)]
struct StopFlag {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopFlag {
    fn set(&self) {
        *self.stopped.lock().unwrap() = true;
        self.cv.notify_all();
    }

    fn wait(&self) {
        drop(
            self.cv
                .wait_while(self.stopped.lock().unwrap(), |s| !*s)
                .unwrap(),
        );
    }
}

/// A server running on its own thread(s), stopped by `stop`.
struct RunningServer {
    addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
}

impl RunningServer {
    fn stop(self) {
        (self.stop)();
    }
}

fn greenweave_handler(mode: Mode) -> impl Fn(TcpStream, SocketAddr) + 'static {
    move |mut conn: TcpStream, _peer| {
        if mode == Mode::Close {
            return;
        }
        let _ = conn.set_nodelay(true);
        let mut buf = vec![0; SERVER_BUF];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            if conn.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    }
}

/// `StreamServer`s on `workers` hubs (one thread each, `SO_REUSEPORT` if more than one).
fn greenweave_server(workers: usize, mode: Mode) -> RunningServer {
    // Worker 0 binds port 0 and publishes the port; the others bind the same one.
    let port: Arc<(Mutex<Option<SocketAddr>>, Condvar)> = Arc::default();
    let stop = Arc::new(StopFlag::default());
    let (ready_tx, ready_rx) = mpsc::channel();
    let serve = {
        let stop = stop.clone();
        move |i: usize| {
            let addr = if i == 0 {
                "127.0.0.1:0".parse().unwrap()
            } else {
                let (slot, cv) = &*port;
                cv.wait_while(slot.lock().unwrap(), |a| a.is_none())
                    .unwrap()
                    .expect("worker 0 published its address")
            };
            let server = StreamServer::bind(addr, greenweave_handler(mode))
                .expect("resolve")
                .reuse_port(workers > 1);
            let addr = server.listen().expect("bind the greenweave server");
            if i == 0 {
                *port.0.lock().unwrap() = Some(addr);
                port.1.notify_all();
            }
            server.start().expect("start the greenweave server");
            ready_tx.send(addr).unwrap();
            // Park the main greenlet (the hub serves meanwhile) until told to stop.
            let stop = stop.clone();
            greenweave::threadpool::spawn_blocking(move || stop.wait());
            server.stop(Duration::from_secs(5));
        }
    };
    let thread = thread::spawn(move || {
        if workers == 1 {
            serve(0);
        } else {
            greenweave::workers(workers, serve);
        }
    });
    let addr = ready_rx.recv().expect("the greenweave server starts");
    for _ in 1..workers {
        ready_rx.recv().expect("every worker starts");
    }
    RunningServer {
        addr,
        stop: Box::new(move || {
            stop.set();
            thread.join().unwrap();
        }),
    }
}

async fn tokio_serve(listener: tokio::net::TcpListener, mode: Mode) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if mode == Mode::Close {
                return;
            }
            let _ = conn.set_nodelay(true);
            let mut buf = vec![0; SERVER_BUF];
            while let Ok(n @ 1..) = conn.read(&mut buf).await {
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A tokio server: `current_thread` (`workers == None`) or multi-thread.
fn tokio_server(workers: Option<usize>, mode: Mode) -> RunningServer {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        let rt = match workers {
            None => tokio::runtime::Builder::new_current_thread(),
            Some(n) => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n);
                b
            }
        }
        .enable_all()
        .build()
        .expect("tokio runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the tokio server");
            ready_tx.send(listener.local_addr().unwrap()).unwrap();
            // On the multi-thread runtime a spawned task runs on the workers; on the
            // current-thread one everything runs on this thread either way.
            let accept = tokio::spawn(tokio_serve(listener, mode));
            let _ = stop_rx.await;
            accept.abort();
        });
        // Dropping the runtime drops any task left (none: the clients have closed).
        drop(rt);
    });
    let addr = ready_rx.recv().expect("the tokio server starts");
    RunningServer {
        addr,
        stop: Box::new(move || {
            let _ = stop_tx.send(());
            thread.join().unwrap();
        }),
    }
}

/// Sets may up for the single-thread comparisons; must run before may's first use.
fn may_single_worker() {
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
}

/// Spawns a may coroutine.
fn may_go<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    may_single_worker();
    // SAFETY: may's `spawn` asks for two things. (1) No thread-local reference held
    // across a blocking point, since a coroutine may resume on another worker: these
    // closures hold none (the socket calls keep no borrowed thread-local), and with one
    // worker nothing migrates anyway. (2) The coroutine must fit its stack (may's
    // default, 32 KiB): the buffers are on the heap and there is no recursion.
    unsafe { may::coroutine::spawn(f) }
}

/// Waits (up to 10 s) until `live` is 0: the handlers of a stopping server finishing.
fn wait_zero(live: &AtomicUsize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Decrements a live-handler count when dropped.
struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    fn new(live: &Arc<AtomicUsize>) -> LiveGuard {
        live.fetch_add(1, Ordering::AcqRel);
        LiveGuard(live.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Echoes on a blocking-style stream (may's or std's) until end-of-file.
fn blocking_echo(mut conn: impl Read + Write) {
    let mut buf = vec![0; SERVER_BUF];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A may server: an accept-loop coroutine spawning a coroutine per connection.
fn may_server(mode: Mode) -> RunningServer {
    let (ready_tx, ready_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicUsize::new(0));
    let (s, l) = (stop.clone(), live.clone());
    let accept = may_go(move || {
        let listener = may::net::TcpListener::bind("127.0.0.1:0").expect("bind the may server");
        ready_tx.send(listener.local_addr().unwrap()).unwrap();
        for conn in listener.incoming() {
            if s.load(Ordering::Acquire) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let guard = LiveGuard::new(&l);
            may_go(move || {
                let _guard = guard;
                if mode == Mode::Echo {
                    let _ = conn.set_nodelay(true);
                    blocking_echo(conn);
                }
            });
        }
    });
    let addr = ready_rx.recv().expect("the may server starts");
    RunningServer {
        addr,
        stop: Box::new(move || {
            stop.store(true, Ordering::Release);
            // Wake the accept loop so that it sees the flag.
            drop(std::net::TcpStream::connect(addr));
            accept.join().unwrap();
            wait_zero(&live);
        }),
    }
}

/// Blocking `std::net`: an accept thread and an OS thread per connection.
fn thread_per_connection_server(mode: Mode) -> RunningServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the std server");
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicUsize::new(0));
    let (s, l) = (stop.clone(), live.clone());
    let accept = thread::spawn(move || {
        for conn in listener.incoming() {
            if s.load(Ordering::Acquire) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let guard = LiveGuard::new(&l);
            thread::spawn(move || {
                let _guard = guard;
                if mode == Mode::Echo {
                    let _ = conn.set_nodelay(true);
                    blocking_echo(conn);
                }
            });
        }
    });
    RunningServer {
        addr,
        stop: Box::new(move || {
            stop.store(true, Ordering::Release);
            drop(std::net::TcpStream::connect(addr));
            accept.join().unwrap();
            wait_zero(&live);
        }),
    }
}

/// A server peer: its function name and how to start it.
type ServerPeer = (&'static str, fn() -> RunningServer);

/// Every echo server, by function name.
const ECHO_SERVERS: [ServerPeer; 6] = [
    ("greenweave_1hub", || greenweave_server(1, Mode::Echo)),
    ("greenweave_workers2", || greenweave_server(2, Mode::Echo)),
    ("tokio_current_thread", || tokio_server(None, Mode::Echo)),
    ("tokio_multi_thread2", || tokio_server(Some(2), Mode::Echo)),
    ("may", || may_server(Mode::Echo)),
    ("thread_per_connection", || {
        thread_per_connection_server(Mode::Echo)
    }),
];

// ---------------------------------------------------------------------------------
// The benches.

type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// One echo group: every server, `conns` connections, `size`-byte messages.
fn echo_group(mut group: Group, client: &ClientDriver, conns: usize, size: usize) {
    group.throughput(Throughput::Elements(1));
    group.sampling_mode(SamplingMode::Flat);
    for (name, start) in ECHO_SERVERS {
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
    echo_group(c.benchmark_group("echo"), &client, 100, 64);
    echo_group(c.benchmark_group("echo_4k"), &client, 100, 4096);
    echo_group(c.benchmark_group("echo_1000conns"), &client, 1000, 64);
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
    targets = echo, accept
}
criterion_main!(benches);
