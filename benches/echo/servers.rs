//! The echo servers under test: greenweave and its peers.

use super::*;

// ---------------------------------------------------------------------------------
// The servers.

/// What a server does with each connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Echo until end-of-file.
    Echo,
    /// Close at once (the `accept` group).
    Close,
    /// Echo until end-of-file, after [`cpu_work`] on each read (the `echo_cpu` group).
    Work,
}

/// Passes of [`cpu_work`] over each read's bytes.
pub(super) const WORK_PASSES: u64 = 200;

/// The `echo_cpu` handlers' work: hashes `bytes` [`WORK_PASSES`] times (SipHash, std's
/// default hasher), about 0.2 ms for 4 KiB, so that a request costs the server far more
/// CPU than the client. The work is per byte, so a message read in pieces costs the
/// same as one read whole.
pub(super) fn cpu_work(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hash = 0;
    for pass in 0..WORK_PASSES {
        let mut hasher =
            std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
        hasher.write_u64(pass ^ hash);
        hasher.write(bytes);
        hash = hasher.finish();
    }
    std::hint::black_box(hash)
}

/// A one-shot stop signal any thread can wait for.
#[derive(Default)]
pub(super) struct StopFlag {
    pub(super) stopped: Mutex<bool>,
    pub(super) cv: Condvar,
}

impl StopFlag {
    pub(super) fn set(&self) {
        *self.stopped.lock().unwrap() = true;
        self.cv.notify_all();
    }

    pub(super) fn wait(&self) {
        drop(
            self.cv
                .wait_while(self.stopped.lock().unwrap(), |s| !*s)
                .unwrap(),
        );
    }
}

/// A server running on its own thread(s), stopped by `stop`.
pub(super) struct RunningServer {
    pub(super) addr: SocketAddr,
    pub(super) stop: Box<dyn FnOnce()>,
}

impl RunningServer {
    pub(super) fn stop(self) {
        (self.stop)();
    }
}

pub(super) fn greenweave_handler(mode: Mode) -> impl Fn(TcpStream, SocketAddr) + 'static {
    move |mut conn: TcpStream, _peer| {
        if mode == Mode::Close {
            return;
        }
        let _ = conn.set_nodelay(true);
        let mut buf = vec![0; SERVER_BUF];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            if mode == Mode::Work {
                cpu_work(&buf[..n]);
            }
            if conn.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    }
}

/// `StreamServer`s on `workers` hubs (one thread each, `SO_REUSEPORT` if more than one).
pub(super) fn greenweave_server(workers: usize, mode: Mode) -> RunningServer {
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
                if mode == Mode::Work {
                    cpu_work(&buf[..n]);
                }
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A tokio server: `current_thread` (`workers == None`) or multi-thread.
pub(super) fn tokio_server(workers: Option<usize>, mode: Mode) -> RunningServer {
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
pub(super) fn may_single_worker() {
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
}

/// Spawns a may coroutine.
pub(super) fn may_go<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    may_single_worker();
    // may's `spawn` asks for two things: (1) no thread-local reference held across a
    // blocking point (these closures hold none, and with one worker nothing migrates);
    // (2) the coroutine fits its 32 KiB stack (buffers are on the heap, no recursion).
    // SAFETY: both hold, as just said.
    unsafe { may::coroutine::spawn(f) }
}

/// Waits (up to 10 s) until `live` is 0: the handlers of a stopping server finishing.
pub(super) fn wait_zero(live: &AtomicUsize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Decrements a live-handler count when dropped.
pub(super) struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    pub(super) fn new(live: &Arc<AtomicUsize>) -> LiveGuard {
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
pub(super) fn blocking_echo(mut conn: impl Read + Write, mode: Mode) {
    let mut buf = vec![0; SERVER_BUF];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if mode == Mode::Work {
            cpu_work(&buf[..n]);
        }
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A may server: an accept-loop coroutine spawning a coroutine per connection.
pub(super) fn may_server(mode: Mode) -> RunningServer {
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
                if mode != Mode::Close {
                    let _ = conn.set_nodelay(true);
                    blocking_echo(conn, mode);
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
pub(super) fn thread_per_connection_server(mode: Mode) -> RunningServer {
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
                if mode != Mode::Close {
                    let _ = conn.set_nodelay(true);
                    blocking_echo(conn, mode);
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
pub(super) type ServerPeer = (&'static str, fn() -> RunningServer);

/// Every echo server, by function name.
pub(super) const ECHO_SERVERS: [ServerPeer; 6] = [
    ("greenweave_1hub", || greenweave_server(1, Mode::Echo)),
    ("greenweave_workers2", || greenweave_server(2, Mode::Echo)),
    ("tokio_current_thread", || tokio_server(None, Mode::Echo)),
    ("tokio_multi_thread2", || tokio_server(Some(2), Mode::Echo)),
    ("may", || may_server(Mode::Echo)),
    ("thread_per_connection", || {
        thread_per_connection_server(Mode::Echo)
    }),
];

/// The servers of the `echo_cpu` group: one core against two.
pub(super) const CPU_SERVERS: [ServerPeer; 4] = [
    ("greenweave_1hub", || greenweave_server(1, Mode::Work)),
    ("greenweave_workers2", || greenweave_server(2, Mode::Work)),
    ("tokio_current_thread", || tokio_server(None, Mode::Work)),
    ("tokio_multi_thread2", || tokio_server(Some(2), Mode::Work)),
];
