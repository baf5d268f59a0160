//! Zero, huge and out-of-range arguments to the public builders and constructors: each
//! is either accepted with a documented meaning, returned as an error, or a panic that
//! names the argument at the caller's line (never an index/overflow panic inside
//! greenweave, never a hang).

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::Duration;

use greenweave_runtime::pool::Pool;
use greenweave_runtime::queue::{JoinableQueue, LifoQueue, PriorityQueue, Queue};
use greenweave_runtime::server::{DatagramServer, StreamServer};
use greenweave_runtime::sync::{BoundedSemaphore, Semaphore};
use greenweave_runtime::threadpool::{ThreadPool, set_default_pool_size};
use greenweave_runtime::{Builder, Timeout, sleep, spawn, spawn_later, with_timeout, workers};

thread_local! {
    static LAST_PANIC: RefCell<Option<(String, u32, String)>> = const { RefCell::new(None) };
}

/// Runs `f`, which must panic in this file (at the caller's line, not inside greenweave)
/// with a message containing each of `names`.
#[track_caller]
fn assert_panics_here<R>(names: &[&str], f: impl FnOnce() -> R) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let loc = info.location().unwrap();
            LAST_PANIC.set(Some((loc.file().to_owned(), loc.line(), msg)));
            default(info);
        }));
    });
    LAST_PANIC.set(None);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    assert!(result.is_err(), "expected a panic naming {names:?}");
    let (file, at, msg) = LAST_PANIC.take().expect("the hook saw the panic");
    assert!(
        file.ends_with("bad_config.rs"),
        "the panic points at the caller, not at {file}:{at}: {msg}"
    );
    for name in names {
        assert!(msg.contains(name), "the message names {name:?}: {msg}");
    }
}

#[test]
fn zero_sizes_panic_at_the_caller_naming_the_argument() {
    assert_panics_here(&["Pool::new(0)"], || Pool::new(0));
    assert_panics_here(&["ThreadPool::new(0)"], || ThreadPool::new(0));
    assert_panics_here(&["set_default_pool_size(0)"], || set_default_pool_size(0));
    assert_panics_here(&["stack size", "0"], || Builder::new().stack_size(0));
    let max = usize::MAX.to_string();
    let huge = || Builder::new().stack_size(usize::MAX);
    assert_panics_here(&["stack size", &max], huge);
    let small = || greenweave_greenlet::set_default_stack_size(1);
    assert_panics_here(&["stack size", "1 bytes"], small);
    let server = || StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
    assert_panics_here(&["pool(0)"], || server().pool(0));
    assert_panics_here(&["max_accept(0)"], || server().max_accept(0));
}

#[test]
fn huge_durations_mean_never() {
    assert_eq!(with_timeout(Duration::MAX, || 5), Ok(5));
    let t = Timeout::start(Duration::MAX);
    sleep(Duration::from_millis(1));
    drop(t);
    let sleeper = spawn(|| sleep(Duration::MAX));
    let later = spawn_later(Duration::MAX, || unreachable!());
    sleep(Duration::from_millis(1));
    sleeper.kill();
    later.kill();
    assert!(sleeper.is_finished() && later.is_finished());
}

#[test]
fn zero_and_huge_capacities() {
    // 0 is documented as unbounded; usize::MAX must not try to reserve it.
    for maxsize in [0, usize::MAX] {
        let q = Queue::new(maxsize);
        q.put(1).unwrap();
        assert_eq!(q.get().unwrap(), 1);
        let q = LifoQueue::new(maxsize);
        q.put(1).unwrap();
        assert_eq!(q.get().unwrap(), 1);
        let q = PriorityQueue::new(maxsize);
        q.put(1).unwrap();
        assert_eq!(q.get().unwrap(), 1);
        let q = JoinableQueue::new(maxsize);
        q.put(1).unwrap();
        assert_eq!(q.get().unwrap(), 1);
    }
    let s = Semaphore::new(usize::MAX);
    assert!(s.try_acquire());
    s.release();
    let overflow = || s.release(); // one past usize::MAX
    assert_panics_here(&["Semaphore", "usize::MAX"], overflow);
    let b = BoundedSemaphore::new(0);
    assert!(!b.try_acquire());
    assert!(b.release().is_err());
    assert!(workers(0, |i| i).is_empty());
    let d = DatagramServer::bind("127.0.0.1:0", |_, _, _| {}).unwrap();
    d.stop();
}

#[test]
fn socket_timeouts_zero_is_an_error_and_huge_is_never() {
    use std::io::{ErrorKind, Read};

    use greenweave_runtime::net::{TcpListener, TcpStream};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let zero = TcpStream::connect_timeout(addr, Duration::ZERO).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);
    let zero = listener.accept_timeout(Duration::ZERO).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);

    let mut conn = TcpStream::connect_timeout(addr, Duration::MAX).unwrap();
    let (_peer, _) = listener.accept_timeout(Duration::MAX).unwrap();
    let zero = conn.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);
    conn.set_read_timeout(Some(Duration::MAX)).unwrap();
    // Parks (nothing to read) rather than failing or panicking.
    let read = with_timeout(Duration::from_millis(20), || conn.read(&mut [0; 8]));
    assert!(read.is_err(), "the read parked until the Timeout: {read:?}");
}
