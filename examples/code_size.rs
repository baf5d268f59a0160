//! The code-size probe behind BENCHMARKS.md's "Code size" table.
//!
//! `Queue::put` and `Queue::get` are inlined into their callers down to the greenlet
//! switch (see docs/DESIGN-NOTES.md, "A blocking call is one frame deep"), which buys
//! speed with code at every call site. This program fixes the call sites so that cost
//! can be tracked from commit to commit: `hundred_sites` makes 100 `put` + `get` round
//! trips written out as 100 separate call sites, `one_site` makes one. Both are
//! `#[inline(never)]`, so their symbol sizes in the release binary are the code the
//! sites cost: `(hundred_sites − one_site) ÷ 99` is the bytes one `put` + `get` pair
//! adds where a user writes it.
//!
//! ```text
//! cargo build --release --example code_size
//! nm -S -C target/release/examples/code_size | grep -E 'hundred_sites|one_site'
//! cargo run --release -p xtask -- bench-report    # renders the table
//! ```
//!
//! Run, it drives every site against an echoing greenlet and checks each reply, so the
//! sites measured are sites that work.

use greenweave::queue::Queue;
use greenweave::spawn;

/// Writes its body out ten times.
macro_rules! ten {
    ($($body:tt)*) => {
        $($body)* $($body)* $($body)* $($body)* $($body)*
        $($body)* $($body)* $($body)* $($body)* $($body)*
    };
}

/// 100 `put` + `get` call sites, each sending `n` and adding the echoed reply.
#[inline(never)]
fn hundred_sites(to_echo: &Queue<u64>, from_echo: &Queue<u64>, n: u64) -> u64 {
    let mut sum = 0;
    ten! { ten! {
        to_echo.put(n).expect("the echo greenlet is alive");
        sum += from_echo.get().expect("the echo greenlet is alive");
    } }
    sum
}

/// One `put` + `get` call site: the baseline the hundred are measured against.
#[inline(never)]
fn one_site(to_echo: &Queue<u64>, from_echo: &Queue<u64>, n: u64) -> u64 {
    to_echo.put(n).expect("the echo greenlet is alive");
    from_echo.get().expect("the echo greenlet is alive")
}

fn main() {
    let to_echo = std::rc::Rc::new(Queue::new(1));
    let from_echo = std::rc::Rc::new(Queue::new(1));
    let echo = {
        let (inbox, outbox) = (to_echo.clone(), from_echo.clone());
        spawn(move || {
            let mut served = 0u64;
            while let Ok(n) = inbox.get() {
                if n == u64::MAX {
                    return served;
                }
                outbox.put(n).expect("main is alive");
                served += 1;
            }
            served
        })
    };
    let hundred = hundred_sites(&to_echo, &from_echo, 3);
    let one = one_site(&to_echo, &from_echo, 3);
    to_echo.put(u64::MAX).expect("the echo greenlet is alive");
    let served = echo.join().expect("the echo greenlet finished");
    assert_eq!(
        (hundred, one, served),
        (300, 3, 101),
        "every site round-tripped"
    );
    println!("101 put + get call sites ran; every reply checked");
}
