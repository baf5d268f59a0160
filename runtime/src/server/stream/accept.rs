//! The accept loop and the handler greenlets of a `StreamServer`.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenweave_greenlet::GreenletExit;

use super::Inner;
use crate::net::{TcpListener, TcpStream};
use crate::server::{Backoff, Failure, State, Waiting, classify, panic_text};
use crate::spawn::Builder;

impl Inner {
    /// Handlers other than the greenlet `me`.
    pub(super) fn others(&self, me: u64) -> usize {
        let handlers = self.handlers.borrow();
        handlers.len() - usize::from(handlers.values().any(|h| h.id() == me))
    }

    fn is_full(&self) -> bool {
        self.max_connections
            .get()
            .is_some_and(|max| self.handlers.borrow().len() >= max)
    }

    #[track_caller]
    pub(super) fn accept_loop(self: &Rc<Inner>, listener: &TcpListener) -> io::Result<()> {
        let name = self.core.name();
        let mut backoff = Backoff::default();
        loop {
            while self.is_full() {
                let on = Waiting {
                    what: "a free handler slot",
                    name: &name,
                };
                self.handler_exited.wait_or_raise(&on, None);
            }
            // One turn: up to `max_accept` attempts (the first parks until a connection
            // is queued, the others only take what is), then let the handlers run.
            let mut attempts = 0;
            while attempts < self.max_accept.get() && !self.is_full() {
                let next = if attempts == 0 {
                    listener.accept()
                } else {
                    listener.accept_now()
                };
                attempts += 1;
                match next {
                    Ok((stream, peer)) => {
                        backoff.reset();
                        self.spawn_handler(stream, peer);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => match classify(&e) {
                        Failure::Skip => {
                            log::debug!(target: crate::log_targets::NET, "{name}: accept: {e}")
                        }
                        Failure::BackOff => {
                            backoff.sleep(&name, "accept", &e);
                            break;
                        }
                        Failure::Fatal if self.core.state.get() == State::Stopping => {
                            return Ok(());
                        }
                        Failure::Fatal => return Err(e),
                    },
                }
            }
            crate::yield_now();
        }
    }

    fn spawn_handler(self: &Rc<Inner>, stream: TcpStream, peer: SocketAddr) {
        let id = self.next_connection.get();
        self.next_connection.set(id + 1);
        let exit = HandlerExit {
            inner: self.clone(),
            id,
        };
        let handler = self.handler.clone();
        let name = self.core.name();
        let spawned = Builder::new()
            .name(format!("{name}: {peer}"))
            .try_spawn(move || {
                let _exit = exit;
                let served = panic::catch_unwind(AssertUnwindSafe(|| handler(stream, peer)));
                if let Err(payload) = served {
                    if payload.is::<GreenletExit>() {
                        panic::resume_unwind(payload);
                    }
                    let why = panic_text(&*payload);
                    log::error!(
                        target: crate::log_targets::NET,
                        "{name}: the handler of {peer} panicked ({why}); connection closed"
                    );
                }
            });
        match spawned {
            Ok(task) => {
                self.handlers.borrow_mut().insert(id, task);
            }
            Err(e) => log::error!(
                target: crate::log_targets::NET,
                "{}: cannot spawn a handler for {peer}: {e}; connection closed",
                self.core.name()
            ),
        }
    }
}

/// Removes a handler from the running set however its greenlet ends (including never
/// starting) and wakes the waiters.
struct HandlerExit {
    inner: Rc<Inner>,
    id: u64,
}

impl Drop for HandlerExit {
    fn drop(&mut self) {
        let handle = self.inner.handlers.borrow_mut().remove(&self.id);
        drop(handle);
        self.inner.handler_exited.notify_all();
    }
}
