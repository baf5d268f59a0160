//! The seed's `threading.local()` ("a ThreadLocal object binds each thread's own data"),
//! per greenlet.
//!
//! ```python
//! import threading, time
//! local = threading.local()
//! def worker(name):
//!     local.name = name          # every thread sees only its own `name`
//!     time.sleep(0.1)
//!     print(threading.current_thread().name, "reads back", local.name)
//! ts = [threading.Thread(target=worker, args=(n,), name=n) for n in ("alice", "bob", "carol")]
//! for t in ts: t.start()
//! for t in ts: t.join()
//! ```
//!
//! `cargo run --example greenlet_local` prints, for each of three greenlets, the name
//! it stored and read back after sleeping while the others stored theirs (alice, bob,
//! carol, each paired with its own name), then the main greenlet's own value, which
//! the workers never touched: `main reads back "main"`.

use std::time::Duration;

use greenweave::local::Local;

/// One `String` per greenlet, empty until that greenlet sets it.
static NAME: Local<String> = Local::new(String::new);

fn worker(name: &'static str) {
    NAME.set(name.to_owned());
    // While this greenlet sleeps, the others store their own names.
    greenweave::sleep(Duration::from_millis(100));
    println!("greenlet {name:?} reads back {:?}", NAME.get());
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    NAME.set("main".to_owned());
    let workers: Vec<_> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| greenweave::spawn(move || worker(name)))
        .collect();
    for result in greenweave::joinall(workers) {
        result.expect("no worker panics");
    }
    println!("main reads back {:?}", NAME.get());
}
