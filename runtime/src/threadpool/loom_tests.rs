//! Model checks (loom) of the pool's hand-offs: a job handed to a pool thread through
//! the queue and condvar, and its outcome handed back through its slot, under every
//! interleaving. The waiting side is a thread parked on an event where the runtime
//! parks a greenlet (`park_for_thread`); all else is the pool's own code.

use super::ThreadPool;
use super::handle::{self, Waiter};
use crate::loom_model::Event;
use crate::spawn::JoinError;
use crate::thread_sync::{Arc, thread};

/// A waiting thread's waiter: the event it parks on.
struct Parked(Arc<Event>);

impl Waiter for Parked {
    fn wake(self) {
        self.0.set();
    }
}

/// What `park_for_thread` does for a greenlet: registers a fresh waiter and parks
/// until it is woken.
fn park(register: &mut dyn FnMut(Parked)) -> Result<(), ()> {
    let event = Arc::new(Event::new());
    register(Parked(event.clone()));
    event.wait_and_reset();
    Ok(())
}

/// Submits `f` to `pool` and returns what a joining thread gets back.
fn run_on(pool: &ThreadPool, f: impl FnOnce() -> u32 + Send + 'static) -> u32 {
    let (job, slot) = handle::job_for::<_, _, Parked>(f);
    pool.submit(job);
    slot.wait(park).unwrap();
    slot.take_outcome()
        .expect("the wait returns once the outcome is in")
        .unwrap()
}

#[test]
fn a_job_and_its_result_cross_to_a_pool_thread_and_back() {
    loom::model(|| {
        let pool = ThreadPool::new(1);
        assert_eq!(run_on(&pool, || 6 * 7), 42);
        // Closing lets the pool thread exit (loom checks that every thread ends).
        drop(pool);
    });
}

/// The second job is queued while the only thread may be between jobs, idle, or
/// notified but not yet running: it is never left in the queue.
#[test]
fn jobs_queued_back_to_back_on_one_thread_all_run() {
    loom::model(|| {
        let pool = ThreadPool::new(1);
        let (first, first_slot) = handle::job_for::<_, _, Parked>(|| 1);
        let (second, second_slot) = handle::job_for::<_, _, Parked>(|| 2);
        pool.submit(first);
        pool.submit(second);
        second_slot.wait(park).unwrap();
        first_slot.wait(park).unwrap();
        assert_eq!(first_slot.take_outcome().unwrap().unwrap(), 1);
        assert_eq!(second_slot.take_outcome().unwrap().unwrap(), 2);
        drop(pool);
    });
}

/// Two callers on two threads share a pool of two: each gets its own result.
#[test]
fn two_callers_each_get_their_own_result() {
    loom::model(|| {
        let pool = Arc::new(ThreadPool::new(2));
        let other = {
            let pool = pool.clone();
            thread::spawn(move || run_on(&pool, || 2))
        };
        assert_eq!(run_on(&pool, || 1), 1);
        assert_eq!(other.join().unwrap(), 2);
    });
}

/// A job dropped unrun (a pool that could not take it) still wakes its waiter, with
/// `Killed`, whichever side comes first.
#[test]
fn a_discarded_job_wakes_its_waiter() {
    loom::model(|| {
        let (job, slot) = handle::job_for::<_, _, Parked>(|| 0_u32);
        let discard = thread::spawn(move || drop(job));
        slot.wait(park).unwrap();
        assert!(matches!(slot.take_outcome(), Some(Err(JoinError::Killed))));
        discard.join().unwrap();
    });
}
