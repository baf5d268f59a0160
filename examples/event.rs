//! The seed's Event example: connectors retry until a checker sets the event.
//!
//! ```python
//! def conn_mysql():
//!     count = 1
//!     while not event.is_set():
//!         print('<%s> attempt %s to connect' % (threading.current_thread().getName(), count))
//!         event.wait(0.5)
//!         count += 1
//!     print('<%s> connected' % threading.current_thread())
//! def check_mysql():
//!     time.sleep(1)
//!     event.set()
//! ```
//!
//! Three connector greenlets wait on one `Event` with a 500 ms timeout, retrying; one
//! checker greenlet sets it after 1.25 s (not 1 s, so it does not coincide with the
//! connectors' third timeout). Each connector makes 3 attempts (at 0, 500 and 1000 ms),
//! then all three wake at once, in the order they started waiting.
//!
//! ```text
//! $ cargo run --example event
//! [   0 ms] <conn-1> attempt 1 to connect
//! [   0 ms] <conn-2> attempt 1 to connect
//! [   0 ms] <conn-3> attempt 1 to connect
//! [ 500 ms] <conn-1> attempt 2 to connect
//! ...
//! [1000 ms] <conn-3> attempt 3 to connect
//! [1250 ms] <check> the database is up: set the event
//! [1250 ms] <conn-1> connected after 3 attempts
//! [1250 ms] <conn-2> connected after 3 attempts
//! [1250 ms] <conn-3> connected after 3 attempts
//! ```

use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave::sync::Event;
use greenweave::{Builder, current_info, joinall, sleep};

fn main() {
    let start = Instant::now();
    let event = Rc::new(Event::new());
    let say = move |what: String| {
        let name = current_info().name.unwrap_or_default();
        println!("[{:4} ms] <{name}> {what}", start.elapsed().as_millis());
    };

    let connectors: Vec<_> = (1..=3)
        .map(|i| {
            let event = event.clone();
            Builder::new().name(format!("conn-{i}")).spawn(move || {
                let mut count = 1;
                while !event.is_set() {
                    say(format!("attempt {count} to connect"));
                    event.wait_timeout(Duration::from_millis(500));
                    count += 1;
                }
                say(format!("connected after {} attempts", count - 1));
                count - 1
            })
        })
        .collect();
    let checker = {
        let event = event.clone();
        Builder::new().name("check").spawn(move || {
            sleep(Duration::from_millis(1250));
            say("the database is up: set the event".to_string());
            event.set();
        })
    };

    for attempts in joinall(connectors) {
        assert_eq!(attempts.expect("a connector panicked"), 3);
    }
    checker.join().expect("the checker panicked");
}
