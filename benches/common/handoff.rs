//! The greenweave ping-pong shared by `benches/runtime.rs` (group `ping_pong`),
//! `benches/monitor.rs` and `examples/switch_profile.rs` (modes `channel` and
//! `queue1`), so the profiled loop is the benchmarked one; and the yield loop of
//! `benches/runtime.rs` (group `yield`) and `benches/monitor.rs`.
#![allow(dead_code)] // each user takes what it needs

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave::queue::{Channel, Queue};

/// The two handoff queues the greenweave ping-pong runs over.
pub trait Handoff {
    fn put(&self, v: u64);
    fn get(&self) -> Option<u64>;
    fn close(&self);
}

// The wrappers are always inlined so that the loops below compile as if they called
// `Channel::put`/`get` (themselves always inlined) directly, as user code does: a
// wrapper frame around a blocking call would add a mispredicted return per switch
// (see docs/DESIGN-NOTES.md, "A blocking call is one frame deep").
impl Handoff for Channel<u64> {
    #[inline(always)]
    fn put(&self, v: u64) {
        Channel::put(self, v).unwrap();
    }
    #[inline(always)]
    fn get(&self) -> Option<u64> {
        Channel::get(self).ok()
    }
    fn close(&self) {
        Channel::close(self);
    }
}

impl Handoff for Queue<u64> {
    #[inline(always)]
    fn put(&self, v: u64) {
        Queue::put(self, v).unwrap();
    }
    #[inline(always)]
    fn get(&self) -> Option<u64> {
        Queue::get(self).ok()
    }
    fn close(&self) {
        Queue::close(self);
    }
}

/// `iters` round trips between the main greenlet and a partner echoing values back
/// over two queues made by `make`; the time of the round trips alone.
pub fn greenweave_ping_pong<Q: Handoff + 'static>(iters: u64, make: impl Fn() -> Q) -> Duration {
    let (to, from) = (Rc::new(make()), Rc::new(make()));
    let (t, f) = (to.clone(), from.clone());
    let partner = greenweave::spawn(move || {
        while let Some(v) = t.get() {
            f.put(v);
        }
    });
    let start = Instant::now();
    for i in 0..iters {
        to.put(i);
        black_box(from.get().unwrap());
    }
    let elapsed = start.elapsed();
    to.close();
    partner.join().unwrap();
    elapsed
}

/// `iters` yields of the main greenlet with a partner yielding back; the time per
/// yield (each round is two: ours and the partner's).
pub fn greenweave_yields(iters: u64) -> Duration {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let partner = greenweave::spawn(move || {
        while !s.get() {
            greenweave::yield_now();
        }
    });
    greenweave::yield_now(); // let the partner start
    let rounds = iters.div_ceil(2);
    let start = Instant::now();
    for _ in 0..rounds {
        greenweave::yield_now();
    }
    let elapsed = start.elapsed();
    stop.set(true);
    partner.join().unwrap();
    elapsed.mul_f64(iters as f64 / (2 * rounds) as f64)
}
