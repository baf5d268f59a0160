//! The `log` targets greenweave reports on, so that a logger can pick them out.
//!
//! Every message of greenweave's goes through the [`log`](https://docs.rs/log) facade
//! on one of these targets; the library prints nothing itself, except the blocking
//! monitor's reports when no logger is set, the dump of
//! [`install_dump_signal`](crate::monitor::install_dump_signal), and the panic and
//! stack-overflow reports (see [`config`](crate::config)). With `env_logger`,
//! `RUST_LOG=greenweave=debug` shows them all (a directive names a target prefix), and
//! `RUST_LOG=greenweave::net=debug` one of them.
//!
//! | target | level | what |
//! |---|---|---|
//! | `greenweave::hub` | error | the hub's reactor failed (`epoll_wait`, its cross-thread waker); ending a thread's greenlets at its exit panicked |
//! | `greenweave::monitor` | warn | a stall of the blocking monitor, and its end; a bad `GREENWEAVE_MONITOR` |
//! | `greenweave::net` | error | a server loop ended with an error; a handler panicked (its connection is closed); a handler could not be spawned |
//! | `greenweave::net` | warn | `accept`/`recv` ran out of a resource (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): the server backs off and retries |
//! | `greenweave::net` | debug | a server starts accepting, or stops; `accept`/`recv` failed for one peer (reset, aborted): skipped |
//! | `greenweave::threadpool` | warn | a pool thread could not be started |
//! | `greenweave::sync` | error | a lock or semaphore was released by a greenlet that does not hold it (from a destructor, which cannot panic) |
//! | `greenweave::monkey` | warn | a wait the hooks cannot make cooperative (parking_lot's per-thread queue node), once per process |
//! | `greenweave::greenlet` | warn | the stack-overflow handler or an alternate signal stack could not be installed; a greenlet panicked while being unwound |

/// The hub: its reactor and cross-thread waker.
pub const HUB: &str = "greenweave::hub";
/// The blocking monitor's stall reports.
pub const MONITOR: &str = "greenweave::monitor";
/// Sockets and servers (`net`, `server`).
pub const NET: &str = "greenweave::net";
/// The thread pool (`threadpool`).
pub const THREADPOOL: &str = "greenweave::threadpool";
/// Blocking primitives (`sync`).
pub const SYNC: &str = "greenweave::sync";
/// The libc hooks of `greenweave-monkey`.
pub const MONKEY: &str = "greenweave::monkey";
/// The greenlet layer (`greenweave-greenlet`, which names the target itself, as it
/// cannot depend on this crate).
pub const GREENLET: &str = "greenweave::greenlet";
