//! Waiting for several greenlets: [`joinall`], [`killall`], [`wait_any`], [`iwait`].

use std::time::{Duration, Instant};

use super::{JoinError, JoinHandle};
use crate::park::{self, AnyOf, HoldsQueue, WaitQueue};
use crate::task::Describe;
use crate::time::deadline_after;

/// Joins every handle, in order (gevent's `joinall`).
#[track_caller]
pub fn joinall<T: 'static>(
    handles: impl IntoIterator<Item = JoinHandle<T>>,
) -> Vec<Result<T, JoinError>> {
    // A loop, not `map(JoinHandle::join)`: a `#[track_caller]` function called
    // through `FnMut` reports the closure machinery as its caller.
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.join());
    }
    results
}

/// Kills every greenlet and waits until all have died (gevent's `killall`).
#[track_caller]
pub fn killall<T>(handles: &[JoinHandle<T>]) {
    for h in handles {
        h.kill_nowait();
    }
    for h in handles {
        h.wait();
    }
}

/// What `wait_any` and `iwait` wait on.
struct AnyFinish(usize);

impl Describe for AnyFinish {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Join
    }

    fn describe(&self, out: &mut String) {
        out.push_str(&format!("the first of {} greenlets to finish", self.0));
    }
}

impl<T> HoldsQueue for JoinHandle<T> {
    fn queue(&self) -> &WaitQueue {
        &self.task.joiners
    }
}

/// Waits until at least one of `handles` has finished and returns its index (gevent's
/// `wait(count=1)`): the first finished one in `handles`' order. `None` if `handles`
/// is empty or `timeout` passed first.
///
/// # Panics
///
/// If one of `handles` is the calling greenlet's own (it would wait for itself), and
/// as [`JoinHandle::join`] does when the caller is killed or its `Timeout` expires.
#[track_caller]
pub fn wait_any<T>(handles: &[JoinHandle<T>], timeout: Option<Duration>) -> Option<usize> {
    let deadline = timeout.and_then(deadline_after);
    let first_finished = || handles.iter().position(JoinHandle::is_finished);
    if let Some(i) = first_finished() {
        return Some(i);
    }
    let passed = || deadline.is_some_and(|d| Instant::now() >= d);
    if handles.is_empty() || passed() {
        return None;
    }
    for h in handles {
        h.assert_not_self("wait for");
    }
    // Waits on every handle's joiners at once: none has finished (checked above).
    let any = AnyOf::new(handles, |_| false);
    loop {
        if let Err(interrupt) = any.wait(&AnyFinish(handles.len()), deadline) {
            park::raise(interrupt);
        }
        if let Some(i) = first_finished() {
            return Some(i);
        }
        if passed() {
            return None;
        }
        // Woken without a finish: those woken wait again.
        while let Some(i) = any.pop_ready() {
            any.link(i);
        }
    }
}

/// Yields the handles in the order their greenlets finish (gevent's `iwait`); those
/// already finished come first, in the order given.
///
/// It waits on all the handles at once, registered for as long as the iterator lives,
/// so going through n handles costs O(n) in all, however they finish.
///
/// # Panics
///
/// `next` panics if it has to wait while one of the handles left is the calling
/// greenlet's own (it would wait for itself), and as [`JoinHandle::join`] does when
/// the caller is killed or its `Timeout` expires.
#[track_caller]
pub fn iwait<T>(handles: Vec<JoinHandle<T>>) -> impl Iterator<Item = JoinHandle<T>> {
    let own = handles.iter().position(|h| h.task.greenlet.is_current());
    Iwait {
        left: handles.len(),
        any: AnyOf::new(handles, JoinHandle::is_finished),
        own,
    }
}

/// The iterator [`iwait`] returns.
struct Iwait<T> {
    any: AnyOf<JoinHandle<T>>,
    /// Handles not yielded yet.
    left: usize,
    /// The index of the handle of the greenlet that made the iterator, if it is one.
    own: Option<usize>,
}

impl<T> Iterator for Iwait<T> {
    type Item = JoinHandle<T>;

    fn next(&mut self) -> Option<JoinHandle<T>> {
        loop {
            if let Some(i) = self.any.pop_ready() {
                if self.any.get(i).is_some_and(JoinHandle::is_finished) {
                    self.left -= 1;
                    return self.any.take(i);
                }
                // Woken without a finish: it waits again.
                self.any.link(i);
                continue;
            }
            if self.left == 0 {
                return None;
            }
            if let Some(own) = self.own.and_then(|i| self.any.get(i)) {
                own.assert_not_self("wait for");
            }
            if let Err(interrupt) = self.any.wait(&AnyFinish(self.left), None) {
                park::raise(interrupt);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::rc::Rc;

    use super::*;
    use crate::sync::Event;
    use crate::task::Task;
    use crate::{spawn, yield_now};

    /// A greenlet that finishes with `value` once `gate` is set.
    fn gated(gate: &Rc<Event>, value: u32) -> JoinHandle<u32> {
        let gate = gate.clone();
        spawn(move || {
            gate.wait();
            value
        })
    }

    fn joiners(tasks: &[Rc<Task>]) -> Vec<usize> {
        tasks.iter().map(|t| t.joiners.len()).collect()
    }

    fn tasks<T>(handles: &[JoinHandle<T>]) -> Vec<Rc<Task>> {
        handles.iter().map(|h| h.task.clone()).collect()
    }

    #[test]
    fn iwait_yields_the_finished_first_then_in_finishing_order_even_when_moved() {
        let gates: Vec<Rc<Event>> = (0..3).map(|_| Rc::new(Event::new())).collect();
        gates[1].set();
        let hs: Vec<_> = (0..3).map(|i| gated(&gates[i], i as u32)).collect();
        yield_now(); // 1 finishes, 0 and 2 park
        let ts = tasks(&hs);
        let mut it = iwait(hs);
        assert_eq!(
            joiners(&ts),
            [1, 0, 1],
            "iwait waits on the unfinished only"
        );
        assert_eq!(it.next().unwrap().join().unwrap(), 1);
        gates[2].set();
        assert_eq!(it.next().unwrap().join().unwrap(), 2);
        let mut moved = Box::new(it);
        gates[0].set();
        assert_eq!(moved.next().unwrap().join().unwrap(), 0);
        assert!(moved.next().is_none());
        assert_eq!(joiners(&ts), [0, 0, 0]);
    }

    #[test]
    fn an_iwait_dropped_early_or_killed_in_next_leaves_every_joiners_queue() {
        let gate = Rc::new(Event::new());
        let hs: Vec<_> = (0..3).map(|i| gated(&gate, i)).collect();
        yield_now();
        let ts = tasks(&hs);
        drop(iwait(hs));
        assert_eq!(joiners(&ts), [0, 0, 0]);

        let hs: Vec<_> = (0..3).map(|i| gated(&gate, i)).collect();
        let ts = tasks(&hs);
        let iterating = spawn(move || iwait(hs).count());
        yield_now();
        assert_eq!(joiners(&ts), [1, 1, 1]);
        iterating.kill();
        assert_eq!(joiners(&ts), [0, 0, 0], "the unwind dropped the iterator");
        gate.set();
        yield_now();
        assert!(ts.iter().all(|t| t.state() == crate::TaskState::Done));
    }

    #[test]
    fn iwait_refuses_to_wait_for_its_own_greenlet() {
        let own: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
        let message = Rc::new(RefCell::new(String::new()));
        let (o, m) = (own.clone(), message.clone());
        *own.borrow_mut() = Some(spawn(move || {
            let me = o.borrow_mut().take().expect("main handed over the handle");
            let caught = catch_unwind(AssertUnwindSafe(|| iwait(vec![me]).next().is_some()));
            let payload = caught.expect_err("waiting for itself panics");
            *m.borrow_mut() = payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
        }));
        yield_now();
        assert!(
            message.borrow().contains("cannot wait for itself"),
            "{}",
            message.borrow()
        );
    }

    #[test]
    fn wait_any_answers_the_first_finished_in_slice_order_and_leaves_no_waiter() {
        let done = [spawn(|| 0), spawn(|| 1)];
        yield_now();
        assert_eq!(wait_any(&done, None), Some(0), "finished already");

        let gate = Rc::new(Event::new());
        let g = gate.clone();
        let late = spawn(move || {
            g.wait();
            yield_now(); // finishes after `early` although woken first
            0
        });
        let hs = [late, gated(&gate, 1)];
        yield_now();
        let setter = spawn(move || gate.set());
        assert_eq!(
            wait_any(&hs, None),
            Some(0),
            "slice order, not finishing order"
        );
        setter.join().unwrap();

        let pending = [
            gated(&Rc::new(Event::new()), 2),
            gated(&Rc::new(Event::new()), 3),
        ];
        yield_now();
        let ts = tasks(&pending);
        assert_eq!(wait_any(&pending, Some(Duration::from_millis(2))), None);
        assert_eq!(
            joiners(&ts),
            [0, 0],
            "a timed-out wait_any leaves no waiter"
        );
        killall(&pending);
    }
}
