//! What the monkey layer costs: a hook call that passes through, and `std::net` in
//! greenlets after `patch_all` against greenweave's own sockets.
//!
//! Patching is process-wide and cannot be undone, so the functions run in this order
//! (all in one criterion target, `monkey`):
//!
//! 1. `hook_overhead/original_read`: `greenweave::monkey::original::read` (libc's `read`
//!    through the cached `dlsym` pointer) of 1 byte from a non-empty pipe.
//! 2. `hook_overhead/hook_read_unpatched`: the same through the `read` hook (C's `read`
//!    symbol, which the program's definition wins), before anything is patched: one
//!    atomic load, then the real call.
//! 3. `patched_echo/greenweave_net_unpatched`: echo round trips with greenweave's
//!    sockets, before patching (the native figure).
//! 4. `patch_all()`.
//! 5. `hook_overhead/original_read_plain_thread` and `hook_read_patched_plain_thread`:
//!    1 and the hook, patched, on a long-lived OS thread without a hub (timed there):
//!    the hook's check fails on `can_park`, then the real call.
//! 6. `hook_overhead/hook_read_patched_greenlet`: the hook in a greenlet: the
//!    cooperative path with a ready pipe (fd table lookup, `preadv2(RWF_NOWAIT)`).
//! 7. `patched_echo/std_net_patched`: the same echo with unmodified `std::net`, patched.
//! 8. `patched_echo/greenweave_net_patched`: greenweave's sockets in a patched process
//!    (their calls go through the hooks too, which hand `EAGAIN` straight back).
//!
//! The pipe is refilled with 64 KiB outside the timing whenever it runs dry, so every
//! timed `read` finds a byte. Echo: 100 connections (`TCP_NODELAY`) to a server on the
//! same hub (a greenlet per connection), 64-byte messages; one iteration is one round
//! trip on one connection (write 64 bytes, read the 64 echoed bytes and compare), the
//! iterations of a sample spread over the 100 connections, which all run at once.
//!
//! Targets: hook overhead (2 − 1, and the difference within 5) ≤ 5 ns; `std_net_patched` within 1.5× of
//! `greenweave_net_unpatched`. Run with `cargo bench --bench monkey`.

// `criterion_group!` and `criterion_main!` generate public items without doc comments,
// which the workspace's `missing_docs = "deny"` would reject.
#![allow(missing_docs)]

use std::ffi::{c_char, c_int, c_void};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use greenweave::{JoinHandle, joinall, spawn};

unsafe extern "C" {
    /// C's `read`: the hook, since the program defines the symbol.
    fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    fn pipe(fds: *mut c_int) -> c_int;
    fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
}

#[repr(C)]
struct DlInfo {
    fname: *const c_char,
    fbase: *mut c_void,
    sname: *const c_char,
    saddr: *mut c_void,
}

/// Checks that C's `read` in this program is the hook, not libc's.
fn assert_hook_linked() {
    // `patch_all` is called below, so the hooks are linked into this program.
    let mut info = DlInfo {
        fname: std::ptr::null(),
        fbase: std::ptr::null_mut(),
        sname: std::ptr::null(),
        saddr: std::ptr::null_mut(),
    };
    // SAFETY: a valid out-pointer; the address of a function.
    let found = unsafe { dladdr(read as *const c_void, &mut info) };
    assert!(found != 0 && !info.fname.is_null());
    // SAFETY: dladdr gave a NUL-terminated path.
    let object = unsafe { std::ffi::CStr::from_ptr(info.fname) }.to_string_lossy();
    assert!(
        !object.contains("libc.so"),
        "read resolves to {object}, not the hook"
    );
}

/// A pipe the reads drain and the timing loop refills.
struct Pipe {
    r: c_int,
    w: c_int,
    left: u64,
}

const REFILL: u64 = 65_536;

impl Pipe {
    fn new() -> Pipe {
        let mut fds = [0; 2];
        // SAFETY: a valid out-array of two fds.
        assert_eq!(unsafe { pipe(fds.as_mut_ptr()) }, 0);
        Pipe {
            r: fds[0],
            w: fds[1],
            left: 0,
        }
    }

    /// Times `iters` 1-byte reads with `read_one`, refilling untimed.
    fn time(
        &mut self,
        iters: u64,
        read_one: unsafe fn(c_int, *mut c_void, usize) -> isize,
    ) -> Duration {
        let fill = [7_u8; REFILL as usize];
        let mut byte = [0_u8; 1];
        let mut total = Duration::ZERO;
        let mut todo = iters;
        while todo > 0 {
            if self.left == 0 {
                // SAFETY: a valid buffer of the length given; the pipe is empty.
                let n = unsafe { write(self.w, fill.as_ptr().cast(), fill.len()) };
                assert_eq!(n, REFILL as isize);
                self.left = REFILL;
            }
            let batch = todo.min(self.left);
            let start = Instant::now();
            for _ in 0..batch {
                // SAFETY: a valid 1-byte buffer; the pipe holds at least one byte.
                let n =
                    unsafe { read_one(self.r, std::hint::black_box(byte.as_mut_ptr()).cast(), 1) };
                std::hint::black_box(n);
            }
            total += start.elapsed();
            self.left -= batch;
            todo -= batch;
        }
        total
    }
}

type ReadFn = unsafe fn(c_int, *mut c_void, usize) -> isize;

/// A long-lived OS thread that never uses greenweave (so it has no hub), timing reads
/// of its own pipe on request.
struct PlainThread {
    requests: std::sync::mpsc::Sender<(u64, ReadFn)>,
    times: std::sync::mpsc::Receiver<Duration>,
}

impl PlainThread {
    fn start() -> PlainThread {
        let (requests, rx) = std::sync::mpsc::channel::<(u64, ReadFn)>();
        let (tx, times) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut pipe = Pipe::new();
            for (iters, read_one) in rx {
                tx.send(pipe.time(iters, read_one)).unwrap();
            }
        });
        PlainThread { requests, times }
    }

    fn time(&self, iters: u64, read_one: ReadFn) -> Duration {
        self.requests.send((iters, read_one)).unwrap();
        self.times.recv().unwrap()
    }
}

/// The hook, through C's symbol.
unsafe fn hook_read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    // SAFETY: as the caller guarantees.
    unsafe { read(fd, buf, count) }
}

/// libc's `read`, bypassing the hook.
unsafe fn original_read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    // SAFETY: as the caller guarantees.
    unsafe { greenweave::monkey::original::read(fd, buf, count) }
}

const CONNS: usize = 100;
const MSG: usize = 64;

/// An echo server on this hub: an accept loop and a greenlet per connection.
macro_rules! echo_server {
    ($listener:expr) => {{
        let listener = $listener;
        let addr = listener.local_addr().unwrap();
        let server = spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                conn.set_nodelay(true).unwrap();
                drop(spawn(move || {
                    let mut buf = vec![0_u8; 16 * 1024];
                    loop {
                        match (&conn).read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => (&conn).write_all(&buf[..n]).unwrap(),
                        }
                    }
                }));
            }
        });
        (addr, server)
    }};
}

/// `iters` round trips spread over `conns`, all at once; the connections come back.
fn round_trips<S: 'static>(conns: Vec<S>, iters: u64) -> (Vec<S>, Duration)
where
    for<'a> &'a S: Read + Write,
{
    let n = conns.len() as u64;
    let start = Instant::now();
    let clients: Vec<JoinHandle<S>> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let mine = iters / n + u64::from((i as u64) < iters % n);
            spawn(move || {
                let msg = [i as u8; MSG];
                let mut back = [0_u8; MSG];
                for _ in 0..mine {
                    (&conn).write_all(&msg).unwrap();
                    (&conn).read_exact(&mut back).unwrap();
                    assert_eq!(back, msg);
                }
                conn
            })
        })
        .collect();
    let conns = joinall(clients).into_iter().map(Result::unwrap).collect();
    (conns, start.elapsed())
}

fn bench_echo<S: 'static>(
    c: &mut Criterion,
    name: &str,
    addr: SocketAddr,
    connect: impl Fn(SocketAddr) -> S,
) where
    for<'a> &'a S: Read + Write,
{
    let mut conns: Vec<S> = (0..CONNS).map(|_| connect(addr)).collect();
    let mut group = c.benchmark_group("patched_echo");
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (back, elapsed) = round_trips(std::mem::take(&mut conns), iters);
            conns = back;
            elapsed
        })
    });
    group.finish();
}

fn monkey(c: &mut Criterion) {
    assert_hook_linked();
    let mut pipe = Pipe::new();
    let mut group = c.benchmark_group("hook_overhead");
    group.bench_function("original_read", |b| {
        b.iter_custom(|iters| pipe.time(iters, original_read))
    });
    group.bench_function("hook_read_unpatched", |b| {
        b.iter_custom(|iters| pipe.time(iters, hook_read))
    });
    group.finish();

    let (gw_addr, gw_server) =
        echo_server!(greenweave::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let gw_connect = |addr| {
        let conn = greenweave::net::TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        conn
    };
    bench_echo(c, "greenweave_net_unpatched", gw_addr, gw_connect);

    greenweave::monkey::patch_all();
    let mut group = c.benchmark_group("hook_overhead");
    let plain = PlainThread::start();
    group.bench_function("original_read_plain_thread", |b| {
        b.iter_custom(|iters| plain.time(iters, original_read))
    });
    group.bench_function("hook_read_patched_plain_thread", |b| {
        b.iter_custom(|iters| plain.time(iters, hook_read))
    });
    group.bench_function("hook_read_patched_greenlet", |b| {
        b.iter_custom(|iters| {
            let mut p = std::mem::replace(
                &mut pipe,
                Pipe {
                    r: -1,
                    w: -1,
                    left: 0,
                },
            );
            let (p, elapsed) = spawn(move || {
                let elapsed = p.time(iters, hook_read);
                (p, elapsed)
            })
            .join()
            .unwrap();
            pipe = p;
            elapsed
        })
    });
    group.finish();

    let (std_addr, std_server) = echo_server!(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let std_connect = |addr| {
        let conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        conn
    };
    bench_echo(c, "std_net_patched", std_addr, std_connect);
    bench_echo(c, "greenweave_net_patched", gw_addr, gw_connect);
    std_server.kill();
    gw_server.kill();
}

#[path = "common/config.rs"]
mod config;

criterion_group! {
    name = benches;
    config = config::standard();
    targets = monkey
}
criterion_main!(benches);
