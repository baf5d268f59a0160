//! `StreamServer`.

mod accept;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Core, FinishStop, State, Waiting};
use crate::net::{ListenOptions, TcpListener, TcpStream, ToSocketAddrs, resolve_all};
use crate::park::WaitQueue;
use crate::spawn::{Builder, JoinHandle};
use crate::time::deadline_after;

type Handler = dyn Fn(TcpStream, SocketAddr);

/// A TCP server running `handler(stream, peer)` in a new greenlet for every accepted
/// connection (gevent's `StreamServer`). See the [module docs](super) for an example
/// and the life cycle.
///
/// Options, set before the server starts: [`pool`](Self::pool) (limit concurrent
/// handlers), [`max_accept`](Self::max_accept), [`reuse_port`](Self::reuse_port),
/// [`backlog`](Self::backlog), [`name`](Self::name).
///
/// The connection is closed when the handler drops its `TcpStream` (normally when it
/// returns). The handle is a cheap clone of the same server; dropping every handle does
/// not stop a started server.
#[derive(Clone)]
pub struct StreamServer {
    inner: Rc<Inner>,
}

struct Inner {
    core: Core,
    handler: Rc<Handler>,
    listen: RefCell<Listen>,
    /// How [`StreamServer::listen`] binds (`Listen::Pending` only).
    options: Cell<ListenOptions>,
    max_connections: Cell<Option<usize>>,
    max_accept: Cell<usize>,
    /// Running handlers, by connection number.
    handlers: RefCell<HashMap<u64, JoinHandle<()>>>,
    next_connection: Cell<u64>,
    /// Woken whenever a handler ends (slot waits, `stop`).
    handler_exited: WaitQueue,
}

enum Listen {
    /// To be bound to one of these when the server starts.
    Pending(Vec<SocketAddr>),
    Bound(Rc<TcpListener>),
    Closed,
}

impl StreamServer {
    /// A server that will listen on `addr` (resolved now; bound by
    /// [`listen`](Self::listen), [`start`](Self::start) or
    /// [`serve_forever`](Self::serve_forever), so that options such as
    /// [`reuse_port`](Self::reuse_port) can be set first).
    ///
    /// # Errors
    ///
    /// If `addr` does not resolve.
    #[track_caller]
    pub fn bind<A, F>(addr: A, handler: F) -> io::Result<StreamServer>
    where
        A: ToSocketAddrs,
        F: Fn(TcpStream, SocketAddr) + 'static,
    {
        let addrs = resolve_all(&addr)?;
        let name = format!("StreamServer({})", addrs[0]);
        Ok(StreamServer::with(
            Listen::Pending(addrs),
            name,
            Rc::new(handler),
        ))
    }

    /// A server accepting on an existing `listener` (bound as you like, e.g. with
    /// [`TcpListener::options`]).
    pub fn new<F>(listener: TcpListener, handler: F) -> StreamServer
    where
        F: Fn(TcpStream, SocketAddr) + 'static,
    {
        // The loop relies on `accept` parking.
        let _ = listener.set_nonblocking(false);
        let name = match listener.local_addr() {
            Ok(addr) => format!("StreamServer({addr})"),
            Err(_) => "StreamServer".to_owned(),
        };
        let listen = Listen::Bound(Rc::new(listener));
        StreamServer::with(listen, name, Rc::new(handler))
    }

    fn with(listen: Listen, name: String, handler: Rc<Handler>) -> StreamServer {
        StreamServer {
            inner: Rc::new(Inner {
                core: Core::new(name),
                handler,
                listen: RefCell::new(listen),
                options: Cell::new(ListenOptions::new()),
                max_connections: Cell::new(None),
                max_accept: Cell::new(100),
                handlers: RefCell::new(HashMap::new()),
                next_connection: Cell::new(0),
                handler_exited: WaitQueue::new(),
            }),
        }
    }

    /// Runs at most `max` handlers at once (gevent's `spawn=Pool(max)`): while `max`
    /// are running, the server stops accepting (new connections wait in the kernel's
    /// backlog) until one ends.
    ///
    /// # Panics
    ///
    /// If `max` is 0 or the server has started.
    #[track_caller]
    pub fn pool(self, max: usize) -> StreamServer {
        self.inner.core.assert_idle("pool");
        assert!(
            max > 0,
            "greenweave: StreamServer::pool(0) would never serve"
        );
        self.inner.max_connections.set(Some(max));
        self
    }

    /// How many connections the loop accepts in a row before it yields, letting their
    /// handlers (and other greenlets) run (gevent's `max_accept`; default 100).
    ///
    /// # Panics
    ///
    /// If `n` is 0 or the server has started.
    #[track_caller]
    pub fn max_accept(self, n: usize) -> StreamServer {
        self.inner.core.assert_idle("max_accept");
        assert!(
            n > 0,
            "greenweave: StreamServer::max_accept(0) would never accept"
        );
        self.inner.max_accept.set(n);
        self
    }

    /// Sets `SO_REUSEPORT` on the listening socket, so several servers (typically one
    /// per worker thread, see [`workers`](crate::workers)) can listen on one port and
    /// the kernel spreads connections over them.
    ///
    /// # Panics
    ///
    /// If the server has started or was made with [`new`](Self::new) (configure that
    /// listener with [`TcpListener::options`]).
    #[track_caller]
    pub fn reuse_port(self, reuse: bool) -> StreamServer {
        self.assert_pending("reuse_port");
        let options = self.inner.options.get();
        self.inner.options.set(options.reuse_port(reuse));
        self
    }

    /// The listen backlog (default 1024, capped by the kernel at `somaxconn`).
    ///
    /// # Panics
    ///
    /// As [`reuse_port`](Self::reuse_port).
    #[track_caller]
    pub fn backlog(self, backlog: i32) -> StreamServer {
        self.assert_pending("backlog");
        let options = self.inner.options.get();
        self.inner.options.set(options.backlog(backlog));
        self
    }

    /// Names the server in logs and its greenlets (`"NAME: accept"` for the loop,
    /// `"NAME: PEER"` for handlers); the default is `StreamServer(ADDR)`.
    ///
    /// # Panics
    ///
    /// If the server has started.
    #[track_caller]
    pub fn name(self, name: impl Into<String>) -> StreamServer {
        self.inner.core.assert_idle("name");
        *self.inner.core.name.borrow_mut() = name.into();
        self
    }

    #[track_caller]
    fn assert_pending(&self, option: &str) {
        self.inner.core.assert_idle(option);
        assert!(
            matches!(*self.inner.listen.borrow(), Listen::Pending(_)),
            "greenweave: {option}() needs a server made by StreamServer::bind; \
             set it on the TcpListener given to StreamServer::new instead"
        );
    }

    /// Binds the listening socket now, if not done yet, and returns its address
    /// (useful with port 0 before [`start`](Self::start)).
    ///
    /// # Errors
    ///
    /// What binding reports (`AddrInUse`, ...), or an error if the server was stopped.
    pub fn listen(&self) -> io::Result<SocketAddr> {
        let mut listen = self.inner.listen.borrow_mut();
        let listener = match &*listen {
            Listen::Bound(listener) => listener.clone(),
            Listen::Pending(addrs) => {
                let listener = Rc::new(self.inner.options.get().bind(&addrs[..])?);
                *listen = Listen::Bound(listener.clone());
                listener
            }
            Listen::Closed => return Err(io::Error::other("the server was stopped")),
        };
        listener.local_addr()
    }

    /// The address the server listens on; `None` before it is bound (see
    /// [`listen`](Self::listen)) and after it is stopped.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &*self.inner.listen.borrow() {
            Listen::Bound(listener) => listener.local_addr().ok(),
            _ => None,
        }
    }

    /// Binds (if needed) and starts accepting in a new greenlet; returns at once.
    ///
    /// # Errors
    ///
    /// What binding reports, or an error if the server is running or was stopped.
    #[track_caller]
    pub fn start(&self) -> io::Result<()> {
        if let Some(e) = self.inner.core.start_error() {
            return Err(e);
        }
        self.listen()?;
        let Listen::Bound(listener) = &*self.inner.listen.borrow() else {
            unreachable!("listen() bound the socket");
        };
        let listener = listener.clone();
        if let Ok(addr) = listener.local_addr() {
            log::debug!(target: crate::log_targets::NET, "{}: accepting on {addr}", self.inner.core.name());
        }
        let inner = self.inner.clone();
        self.inner.core.launch("accept", move || {
            inner.core.run_loop(|| inner.accept_loop(&listener));
        })
    }

    /// Starts the server if needed and blocks the calling greenlet until it is
    /// stopped (by [`stop`](Self::stop) from another greenlet, or a handler).
    ///
    /// If the calling greenlet is killed (or a `Timeout` expires) meanwhile, the
    /// server is stopped by a new greenlet with a grace period of 1 s, as gevent does.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), or the error that ended the accept loop (a listener
    /// that stopped listening).
    #[track_caller]
    pub fn serve_forever(&self) -> io::Result<()> {
        if self.inner.core.state.get() == State::Idle {
            self.start()?;
        }
        let guard = StopOnUnwind(self);
        let result = self.inner.core.wait_done();
        std::mem::forget(guard);
        result
    }

    /// Stops the server: closes the listening socket (queued connections are reset,
    /// the port is released), waits up to `timeout` for running handlers to finish,
    /// then kills the rest and waits until they have unwound (a handler that catches
    /// the kill and carries on is waited for). Does nothing on a server already
    /// stopped. May be called from one of the server's own handlers (that one is left
    /// alone).
    ///
    /// # Panics
    ///
    /// Unwinds if the calling greenlet is killed while it waits (the server is then
    /// marked stopped; handlers not killed yet run on).
    #[track_caller]
    pub fn stop(&self, timeout: Duration) {
        let inner = &self.inner;
        match inner.core.state.get() {
            State::Stopping | State::Stopped => return,
            State::Idle | State::Running | State::Dead => {}
        }
        inner.core.state.set(State::Stopping);
        log::debug!(
            target: crate::log_targets::NET,
            "{}: stopping; {} handlers get {timeout:?} to finish",
            inner.core.name(),
            inner.handlers.borrow().len()
        );
        let _finish = FinishStop(&inner.core);
        let listen = std::mem::replace(&mut *inner.listen.borrow_mut(), Listen::Closed);
        if let Listen::Bound(listener) = &listen {
            // Wakes the loop if it is parked in accept, and releases the port now.
            let _ = listener.shutdown();
        }
        drop(listen);
        let task = inner.core.task.borrow_mut().take();
        if let Some(task) = task {
            task.kill();
        }
        let me = crate::hub::current_task().id();
        let deadline = deadline_after(timeout);
        let on = Waiting {
            what: "handlers to finish",
            name: &inner.core.name(),
        };
        while inner.others(me) > 0 && deadline.is_none_or(|d| Instant::now() < d) {
            inner.handler_exited.wait_or_raise(&on, deadline);
        }
        while inner.others(me) > 0 {
            for handler in inner.handlers.borrow().values() {
                if handler.id() != me {
                    handler.kill_nowait();
                }
            }
            inner.handler_exited.wait_or_raise(&on, None);
        }
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.inner.core.is_running()
    }

    /// How many handlers are running.
    pub fn active_connections(&self) -> usize {
        self.inner.handlers.borrow().len()
    }
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("name", &self.inner.core.name())
            .field("state", &self.inner.core.state.get())
            .field("local_addr", &self.local_addr())
            .field("active_connections", &self.active_connections())
            .finish()
    }
}

/// Stops the server from a new greenlet if `serve_forever`'s caller unwinds.
struct StopOnUnwind<'a>(&'a StreamServer);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        let server = self.0.clone();
        // Spawning does not block, so it is allowed while unwinding.
        let _ = Builder::new()
            .name(format!("{}: stop", server.inner.core.name()))
            .try_spawn(move || server.stop(Duration::from_secs(1)));
    }
}
