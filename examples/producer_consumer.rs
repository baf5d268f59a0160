//! Producer/consumer over a bounded `JoinableQueue`: the seed's Python `Queue` example
//! (a producer puts, consumers get and call `task_done`, the main code `join`s).
//!
//! One producer puts 20 items on a queue that holds at most 5, so it keeps waiting for
//! room; three consumers take items and spend 10 ms on each; `main` waits with
//! `join()` until every item was taken *and* marked done, then prints a summary. The
//! three consumers work in parallel, so the 20 items take about 70 ms (7 rounds of
//! 10 ms), not 200.
//!
//! ```text
//! $ cargo run --example producer_consumer
//! producer: queued item 0 (1 waiting)
//! producer: queued item 1 (2 waiting)
//! producer: queued item 2 (3 waiting)
//! producer: queued item 3 (4 waiting)
//! producer: queued item 4 (5 waiting)
//! producer: queued item 5 (3 waiting)
//! producer: queued item 6 (4 waiting)
//! producer: queued item 7 (5 waiting)
//! consumer 0: done with item 0
//! consumer 1: done with item 1
//! consumer 2: done with item 2
//! producer: queued item 8 (3 waiting)
//! producer: queued item 9 (4 waiting)
//! producer: queued item 10 (5 waiting)
//! consumer 0: done with item 3
//! ...
//! producer: queued item 19 (5 waiting)
//! producer: all 20 items queued
//! consumer 0: done with item 12
//! ...
//! consumer 0: done with item 18
//! consumer 1: done with item 19
//! all 20 items processed in 77 ms (3 consumers, 10 ms per item)
//!   consumer 0 handled 7 items: [0, 3, 6, 9, 12, 15, 18]
//!   consumer 1 handled 7 items: [1, 4, 7, 10, 13, 16, 19]
//!   consumer 2 handled 6 items: [2, 5, 8, 11, 14, 17]
//! ```
//!
//! Item 4 fills the queue, so the producer waits; the three consumers each take one
//! (their gets were waiting, woken in FIFO order), which makes room for items 5 to 7,
//! and so on: the producer stays at most 5 items ahead.
//!
//! (The milliseconds vary a little; which consumer gets which item follows from the
//! FIFO order of wake-ups and is the same from run to run.)

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave::queue::JoinableQueue;
use greenweave::{sleep, spawn};

const ITEMS: u32 = 20;
const CONSUMERS: usize = 3;
const WORK: Duration = Duration::from_millis(10);

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let start = Instant::now();
    let queue = Rc::new(JoinableQueue::new(5));
    let handled = Rc::new(RefCell::new(vec![Vec::new(); CONSUMERS]));

    for id in 0..CONSUMERS {
        let (queue, handled) = (queue.clone(), handled.clone());
        spawn(move || {
            // Ends when the queue is closed and drained.
            for item in &*queue {
                sleep(WORK);
                println!("consumer {id}: done with item {item}");
                handled.borrow_mut()[id].push(item);
                queue.task_done();
            }
        });
    }

    let producer = spawn({
        let queue = queue.clone();
        move || {
            for item in 0..ITEMS {
                queue.put(item).expect("the queue is open"); // waits while 5 are queued
                println!("producer: queued item {item} ({} waiting)", queue.len());
            }
            println!("producer: all {ITEMS} items queued");
        }
    });

    // `join` returns at once while nothing was put, so first let the producer finish
    // putting, then wait until every item was taken and marked done.
    producer.join().expect("the producer finished");
    queue.join();
    let elapsed = start.elapsed();
    queue.close(); // lets the consumers' loops end

    println!(
        "all {ITEMS} items processed in {} ms ({CONSUMERS} consumers, {} ms per item)",
        elapsed.as_millis(),
        WORK.as_millis()
    );
    for (id, items) in handled.borrow().iter().enumerate() {
        println!("  consumer {id} handled {} items: {items:?}", items.len());
    }
    assert_eq!(
        handled.borrow().iter().map(Vec::len).sum::<usize>(),
        ITEMS as usize
    );
}
