//! `dump()`: every greenlet of the hub with what it waits on, since when, and the line
//! of the blocking call it parked in.

use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

use greenweave_runtime::net::UnixStream;
use greenweave_runtime::queue::Queue;
use greenweave_runtime::sync::{AsyncResult, Condvar, Event, Mutex, RLock, Semaphore};
use greenweave_runtime::{Builder, JoinHandle, TaskState, dump, killall, sleep, spawn, yield_now};

/// The line of this file holding `marker` in a comment (so the test needs no line
/// numbers that formatting could move).
fn line_of(marker: &str) -> u32 {
    let tag = format!("// park: {marker}");
    let source = include_str!("dump.rs");
    let index = source
        .lines()
        .position(|l| l.trim_end().ends_with(&tag))
        .unwrap_or_else(|| panic!("no line ends with {tag:?}"));
    u32::try_from(index + 1).unwrap()
}

/// A kind of wait: the greenlets parked in it and the line they parked at.
struct Kind {
    marker: &'static str,
    waiting_on: &'static str,
    handles: Vec<JoinHandle<()>>,
}

/// Everything the greenlets below wait on; main holds what keeps them waiting.
struct Waits {
    empty: Queue<u32>,
    full: Queue<u32>,
    mutex: Mutex<()>,
    rlock: RLock,
    semaphore: Semaphore,
    event: Event,
    condvar: Condvar,
    condvar_mutex: Mutex<bool>,
    result: AsyncResult<u32, String>,
    socket: std::cell::RefCell<UnixStream>,
}

const PER_KIND: usize = 1000;

/// `dump()` from a frame of our own, which the running greenlet's stack must show: in
/// a release build (no debug info for inlined functions) the test's closure is inlined
/// into std's start of a thread, and a function ending in the call would jump to
/// `dump` rather than call it (a tail call leaves no frame).
#[inline(never)]
fn dump_from_a_function_of_ours() -> greenweave_runtime::HubDump {
    let dump = dump();
    std::hint::black_box(&dump);
    dump
}

fn small() -> Builder {
    Builder::new().stack_size(64 * 1024)
}

#[test]
fn dump_lists_ten_thousand_parked_greenlets_with_their_park_lines() {
    std::thread::spawn(|| {
        let (socket, mut peer) = UnixStream::pair().unwrap();
        let waits = Rc::new(Waits {
            empty: Queue::new(0),
            full: Queue::new(1),
            mutex: Mutex::new(()),
            rlock: RLock::new(),
            semaphore: Semaphore::new(0),
            event: Event::new(),
            condvar: Condvar::new(),
            condvar_mutex: Mutex::new(false),
            result: AsyncResult::new(),
            socket: std::cell::RefCell::new(socket),
        });
        waits.full.put(0).unwrap();
        let held = waits.mutex.lock();
        let rlock_holder = {
            let w = waits.clone();
            spawn(move || {
                w.rlock.acquire();
                w.event.wait();
                w.rlock.release().unwrap();
            })
        };
        yield_now();
        let mut kinds: Vec<Kind> = Vec::new();
        let mut add = |marker, waiting_on, f: fn(&Waits)| {
            let handles = (0..PER_KIND)
                .map(|i| {
                    let w = waits.clone();
                    small().name(format!("{marker}-{i}")).spawn(move || f(&w))
                })
                .collect();
            kinds.push(Kind {
                marker,
                waiting_on,
                handles,
            });
        };
        add("queue-get", "get on Queue", |w| {
            let _ = w.empty.get(); // park: queue-get
        });
        add("queue-put", "put on Queue", |w| {
            let _ = w.full.put(1); // park: queue-put
        });
        add("mutex", "Mutex", |w| {
            drop(w.mutex.lock()); // park: mutex
        });
        add("rlock", "RLock", |w| {
            w.rlock.acquire(); // park: rlock
            w.rlock.release().unwrap();
        });
        add("semaphore", "Semaphore", |w| {
            w.semaphore.acquire(); // park: semaphore
        });
        add("event", "Event", |w| {
            w.event.wait(); // park: event
        });
        add("condvar", "Condvar", |w| {
            let guard = w.condvar_mutex.lock();
            let _guard = w.condvar.wait(guard); // park: condvar
        });
        add("async-result", "AsyncResult", |w| {
            let _ = w.result.get(); // park: async-result
        });
        add("sleep", "sleep", |_| {
            sleep(Duration::from_secs(3600)); // park: sleep
        });
        add("fd", "readable", |w| {
            let mut byte = [0];
            // Every reader waits on the same socket (borrowed only while it reads).
            let _ = w.socket.borrow().try_clone().unwrap().read(&mut byte); // park: fd
        });
        // Let every one of them run to its blocking call.
        while greenweave_runtime::greenlets()
            .iter()
            .any(|g| g.state == TaskState::Ready)
        {
            yield_now();
        }
        let dump = dump_from_a_function_of_ours();
        assert!(
            dump.greenlets.len() > kinds.len() * PER_KIND,
            "{}",
            dump.greenlets.len()
        );
        for kind in &kinds {
            let line = line_of(kind.marker);
            let mut parked = 0;
            for h in &kind.handles {
                let g = dump.greenlet(h.id()).expect("listed");
                assert_eq!(g.state, TaskState::Blocked, "{}", kind.marker);
                let at = g.parked_at.expect("a blocked greenlet has a park line");
                assert_eq!(
                    (at.file(), at.line()),
                    ("runtime/tests/dump.rs", line),
                    "{} parked at {at}",
                    kind.marker
                );
                let on = g.waiting_on.as_deref().unwrap();
                assert!(on.contains(kind.waiting_on), "{}: {on}", kind.marker);
                let waited = g.waiting_for.expect("since when");
                assert!(waited < Duration::from_secs(60), "{waited:?}");
                parked += 1;
            }
            assert_eq!(parked, PER_KIND);
        }
        // The caller is running, with its stack.
        let me = dump.running.as_ref().expect("the caller runs");
        assert!(
            me.backtrace.mentions("dump_from_a_function_of_ours"),
            "{}",
            me.backtrace
        );
        // And the text says all of it.
        let text = dump.to_string();
        for kind in &kinds {
            let at = format!("at runtime/tests/dump.rs:{}:", line_of(kind.marker));
            assert_eq!(text.matches(&at).count(), PER_KIND, "{}: {at}", kind.marker);
        }
        assert!(
            text.contains("greenlet 'queue-get-0' (id "),
            "{}",
            &text[..2000]
        );
        // Everybody goes.
        drop(held);
        peer.write_all_and_close();
        for kind in kinds {
            killall(&kind.handles);
        }
        waits.event.set();
        rlock_holder.join().unwrap();
    })
    .join()
    .unwrap();
}

trait CloseAfter {
    fn write_all_and_close(&mut self);
}

impl CloseAfter for UnixStream {
    fn write_all_and_close(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// Spawns `f`, lets it park, and checks the dump names the line marked `marker`.
fn parks_at(marker: &str, f: impl FnOnce() + 'static) {
    let h = spawn(f);
    for _ in 0..100 {
        if dump().greenlet(h.id()).unwrap().state == TaskState::Blocked {
            break;
        }
        yield_now();
    }
    let dump = dump();
    let g = dump.greenlet(h.id()).unwrap();
    assert_eq!(g.state, TaskState::Blocked, "{marker}: {dump}");
    let at = g.parked_at.unwrap();
    assert_eq!(
        (at.file(), at.line()),
        ("runtime/tests/dump.rs", line_of(marker)),
        "{marker}: parked at {at}, waiting on {:?}",
        g.waiting_on
    );
    h.kill();
}

#[test]
fn every_blocking_call_records_the_line_that_made_it() {
    use greenweave_runtime::net::{TcpListener, UdpSocket};
    use greenweave_runtime::pool::Pool;
    use greenweave_runtime::queue::{Channel, JoinableQueue, LifoQueue, PriorityQueue};
    use greenweave_runtime::{io, joinall, threadpool, wait_any, wait_for_thread, with_timeout};

    std::thread::spawn(|| {
        let forever = || spawn(|| sleep(Duration::from_secs(3600)));
        let target = forever();
        let target_id = target.id();
        parks_at("join", move || {
            let _ = target.join(); // park: join
        });
        let targets = vec![forever(), forever()];
        parks_at("joinall", move || {
            joinall(targets); // park: joinall
        });
        let targets = vec![forever()];
        parks_at("wait_any", move || {
            wait_any(&targets, None); // park: wait_any
        });
        let (go, wait) = std::sync::mpsc::channel::<()>();
        parks_at("spawn_blocking", move || {
            let _ = threadpool::spawn_blocking(move || wait.recv()); // park: spawn_blocking
        });
        go.send(()).unwrap();
        let (go, wait) = std::sync::mpsc::channel::<greenweave_runtime::RemoteWaker>();
        parks_at("wait_for_thread", move || {
            wait_for_thread(|waker| go.send(waker).unwrap()); // park: wait_for_thread
        });
        drop(wait);
        let q: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::new(0));
        q.put(1).unwrap();
        let q2 = q.clone();
        parks_at("joinable", move || {
            q2.join(); // park: joinable
        });
        let channel: Rc<Channel<u32>> = Rc::new(Channel::new());
        parks_at("channel", move || {
            let _ = channel.get(); // park: channel
        });
        let lifo: Rc<LifoQueue<u32>> = Rc::new(LifoQueue::new(0));
        parks_at("lifo-iter", move || {
            for _ in &*lifo {} // park: lifo-iter
        });
        let prio: Rc<PriorityQueue<u32>> = Rc::new(PriorityQueue::new(0));
        parks_at("priority-timeout", move || {
            let _ = prio.get_timeout(Duration::from_secs(3600)); // park: priority-timeout
        });
        let pool = Rc::new(Pool::new(1));
        pool.spawn(|| sleep(Duration::from_secs(3600)));
        let p = pool.clone();
        parks_at("pool-spawn", move || {
            p.spawn(|| ()); // park: pool-spawn
        });
        let p = pool.clone();
        parks_at("pool-join", move || {
            p.join(); // park: pool-join
        });
        pool.kill();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        parks_at("accept", move || {
            let _ = listener.accept(); // park: accept
        });
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        parks_at("recv_from", move || {
            let _ = udp.recv_from(&mut [0; 8]); // park: recv_from
        });
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        parks_at("wait_readable", move || {
            use std::os::fd::AsRawFd;
            let _ = io::wait_readable(a.as_raw_fd(), None); // park: wait_readable
        });
        parks_at("with_timeout", || {
            let _ = with_timeout(Duration::from_secs(3600), || {
                sleep(Duration::from_secs(7200)) // park: with_timeout
            });
        });
        let m: Rc<Mutex<()>> = Rc::new(Mutex::new(()));
        let held = m.lock();
        let m2 = m.clone();
        parks_at("lock_timeout", move || {
            let _ = m2.lock_timeout(Duration::from_secs(3600)); // park: lock_timeout
        });
        drop(held);
        let _ = target_id;
    })
    .join()
    .unwrap();
}
