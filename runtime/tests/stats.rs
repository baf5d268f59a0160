//! `stats()`: each counter counts what it names, and a hub that its thread's exit tears
//! down leaves the process's list of hubs (what `dump_all` and the monitor see).

use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use greenweave_runtime::net::UnixStream;
use greenweave_runtime::queue::Queue;
use greenweave_runtime::sync::{Event, Mutex};
use greenweave_runtime::{ParkKind, monitor, sleep, spawn, stats, yield_now};

#[test]
fn every_counter_counts_what_it_names() {
    std::thread::spawn(|| {
        let start = stats();
        assert_eq!(start.longest_run, None, "no monitor ran");

        // 100 greenlets ready at once: spawns, switches, the run queue's high water.
        let handles: Vec<_> = (0..100).map(|_| spawn(yield_now)).collect();
        for h in handles {
            h.join().unwrap();
        }
        let ran = stats().since(&start);
        assert_eq!(ran.spawns, 100, "{ran}");
        // Each ran twice (before and after its yield); the joins switch too.
        assert!(ran.switches >= 200, "{ran}");
        assert!(ran.run_queue_high_water >= 100, "{ran}");

        // One park of each kind greenweave's own primitives make.
        let before = stats();
        let queue = Rc::new(Queue::<u32>::new(0));
        let getter = {
            let queue = queue.clone();
            spawn(move || queue.get().unwrap())
        };
        let mutex = Rc::new(Mutex::new(()));
        let held = mutex.lock();
        let locker = {
            let mutex = mutex.clone();
            spawn(move || drop(mutex.lock()))
        };
        let event = Rc::new(Event::new());
        let waiter = {
            let event = event.clone();
            spawn(move || event.wait())
        };
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let reader = spawn(move || {
            let mut byte = [0];
            b.read_exact(&mut byte).unwrap();
        });
        yield_now(); // each of them parks
        queue.put(7).unwrap();
        drop(held);
        event.set();
        a.write_all(b"x").unwrap();
        assert_eq!(getter.join().unwrap(), 7);
        locker.join().unwrap();
        waiter.join().unwrap();
        reader.join().unwrap();
        sleep(Duration::from_millis(20));
        // Parks even if the other thread wakes it at once (spawn_blocking's job could
        // finish before its caller looks, and then it does not park).
        greenweave_runtime::wait_for_thread(|waker| {
            std::thread::spawn(move || waker.wake());
        });
        let after = stats();
        let parked = after.since(&before);
        for kind in [
            ParkKind::Queue,
            ParkKind::Lock,
            ParkKind::Event,
            ParkKind::Fd,
            ParkKind::Timer,
            ParkKind::Join,
            ParkKind::Thread,
        ] {
            assert!(parked.parks_of(kind) >= 1, "{kind:?}: {parked}");
        }
        assert_eq!(parked.parks_of(ParkKind::Futex), 0, "{parked}");
        assert_eq!(
            parked.total_parks(),
            parked.parks.iter().sum::<u64>(),
            "{parked}"
        );
        // The reader's readiness and the sleep went through epoll_wait; the 20 ms
        // sleep was spent asleep there (nothing else was ready).
        assert!(parked.epoll_waits >= 1, "{parked}");
        assert!(parked.epoll_events >= 1, "{parked}");
        assert!(
            parked.epoll_time >= Duration::from_millis(10),
            "{parked}: {:?}",
            parked.epoll_time
        );
        assert!(parked.epoll_time <= parked.uptime, "{parked}");
        // And the line says them.
        let line = after.to_string();
        for word in [
            "switches ",
            "spawns ",
            "queue ",
            "fd ",
            "timer ",
            "epoll_wait ",
        ] {
            assert!(line.contains(word), "{word}: {line}");
        }
    })
    .join()
    .unwrap();
}

/// The hubs of threads named `name` that `dump_all` lists.
fn listed(name: &str) -> usize {
    monitor::dump_all()
        .hubs
        .iter()
        .filter(|h| h.thread == name)
        .count()
}

#[test]
fn a_hub_leaves_the_list_of_hubs_when_its_thread_exits() {
    for leave_parked in [false, true] {
        let name = format!("stats-exit-{leave_parked}");
        let (made, wait_made) = mpsc::channel();
        let (done, wait_done) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                if leave_parked {
                    // Killed by the thread's exit (see `thread_exit`).
                    spawn(|| sleep(Duration::from_secs(3600)));
                }
                yield_now();
                made.send(()).unwrap();
                // The hub sleeps in epoll_wait (answering dump requests) until told.
                greenweave_runtime::wait_for_thread(|waker| {
                    std::thread::spawn(move || {
                        let _ = wait_done.recv();
                        waker.wake();
                    });
                });
            })
            .unwrap();
        wait_made.recv().unwrap();
        assert_eq!(listed(&name), 1, "the live hub of {name}");
        drop(done);
        thread.join().unwrap();
        assert_eq!(listed(&name), 0, "the exited thread's hub {name}");
    }
}
