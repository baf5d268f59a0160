//! The seed tutorial's greenlet ping-pong, translated line by line.
//!
//! ```python
//! from greenlet import greenlet
//! def test1():
//!     print(12); gr2.switch(); print(34); gr2.switch()
//! def test2():
//!     print(56); gr1.switch(); print(78)
//! gr1 = greenlet(test1); gr2 = greenlet(test2)
//! gr1.switch()
//! ```
//!
//! Run it with `cargo run --release --example greenlet_switch`; it prints 12, 56, 34, 78,
//! one per line: control moves between the two greenlets only where they `switch`.

use std::cell::OnceCell;
use std::rc::Rc;

use greenweave::greenlet::Greenlet;

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    // gr1 needs gr2 and gr2 needs gr1: each looks the other up when it runs.
    let gr1_cell: Rc<OnceCell<Greenlet>> = Rc::default();
    let gr2_cell: Rc<OnceCell<Greenlet>> = Rc::default();

    let gr2_of_1 = gr2_cell.clone();
    let gr1 = Greenlet::builder().name("gr1").build(move |_| {
        let gr2 = gr2_of_1.get().expect("gr2 exists before gr1 runs");
        println!("12");
        gr2.switch(());
        println!("34");
        gr2.switch(());
    });
    let gr1_of_2 = gr1_cell.clone();
    let gr2 = Greenlet::builder().name("gr2").build(move |_| {
        println!("56");
        gr1_of_2
            .get()
            .expect("gr1 exists before gr2 runs")
            .switch(());
        println!("78");
    });
    let _ = gr1_cell.set(gr1.clone());
    let _ = gr2_cell.set(gr2.clone());

    gr1.switch(());
    // gr2 finished last and returned to its parent (main), which continues here.
    assert!(gr2.is_dead());
    // gr1 is still parked in its second switch; dropping the last handles unwinds it.
    drop((gr1, gr1_cell, gr2_cell));
}
