//! Greenlet stacks: the per-thread pool hands a finished greenlet's stack to the next
//! one, sizes are validated and rounded to pages, the default size is per thread, and a
//! small stack still holds a moderate recursion.

use std::hint::black_box;
use std::thread;

use greenweave_greenlet::{
    Builder, DEFAULT_STACK_SIZE, Greenlet, MAX_STACK_SIZE, MIN_STACK_SIZE, Value,
    default_stack_size, pooled_stacks, set_default_stack_size,
};

/// Reports the address of a local: two greenlets running this same function on the same
/// stack see the same address.
fn stack_probe(_: Value) -> usize {
    let marker = 0_u8;
    black_box(&marker) as *const u8 as usize
}

#[test]
fn a_finished_greenlets_stack_is_reused_by_the_next_one() {
    let warm = Greenlet::new(stack_probe);
    let warm_addr = warm.switch(()).get::<usize>();
    let pooled = pooled_stacks();
    assert!(
        pooled >= 1,
        "the warm-up greenlet's stack went back to the pool"
    );

    let g = Greenlet::new(stack_probe);
    assert_eq!(
        pooled_stacks(),
        pooled - 1,
        "creating it took a pooled stack"
    );
    let addr = g.switch(()).get::<usize>();
    assert_eq!(
        pooled_stacks(),
        pooled,
        "its stack went back when it finished"
    );
    assert_eq!(
        addr, warm_addr,
        "the most recently returned stack is reused first"
    );
}

#[test]
fn greenlets_alive_together_have_distinct_stacks() {
    let main = greenweave_greenlet::current();
    let parked: Vec<Greenlet> = (0..4)
        .map(|_| {
            let m = main.clone();
            Greenlet::new(move |_| {
                let marker = 0_u8;
                m.switch(black_box(&marker) as *const u8 as usize);
            })
        })
        .collect();
    let mut addrs: Vec<usize> = parked.iter().map(|g| g.switch(()).get::<usize>()).collect();
    for (i, a) in addrs.iter().enumerate() {
        let main_marker = 0_u8;
        assert_ne!(
            *a,
            black_box(&main_marker) as *const u8 as usize,
            "greenlet {i}"
        );
    }
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 4, "each live greenlet runs on its own stack");
    for g in &parked {
        g.switch(());
    }
}

#[test]
#[should_panic(expected = "out of range")]
fn builder_stack_size_below_the_minimum_panics() {
    let _ = Builder::new().stack_size(MIN_STACK_SIZE - 1);
}

#[test]
#[should_panic(expected = "out of range")]
fn builder_stack_size_above_the_maximum_panics() {
    let _ = Builder::new().stack_size(MAX_STACK_SIZE + 1);
}

#[test]
fn set_default_stack_size_rejects_out_of_range_sizes() {
    let outcome = thread::spawn(|| set_default_stack_size(MIN_STACK_SIZE / 2)).join();
    let err = outcome.expect_err("below the minimum panics");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("out of range"), "message: {msg}");
}

#[test]
fn stack_sizes_are_rounded_up_to_whole_pages() {
    let requested = MIN_STACK_SIZE + 1;
    let g = Builder::new().stack_size(requested).build(|_| ());
    let size = g.stack_size();
    assert!(size > requested, "rounded up: {size}");
    assert_eq!(size % 4096, 0, "a whole number of pages: {size}");
    assert!(
        size - requested < 64 * 1024,
        "by less than one page: {size}"
    );

    let exact = Builder::new().stack_size(64 * 1024).build(|_| ());
    assert_eq!(exact.stack_size(), 64 * 1024);
}

#[test]
fn set_default_stack_size_affects_new_greenlets_on_this_thread_only() {
    // Fresh threads, so other tests on this test thread keep the default.
    let (before, after, made, explicit, existing) = thread::spawn(|| {
        let before = default_stack_size();
        let existing = Greenlet::new(|_| ());
        set_default_stack_size(128 * 1024);
        let made = Greenlet::new(|_| ());
        let explicit = Builder::new().stack_size(64 * 1024).build(|_| ());
        (
            before,
            default_stack_size(),
            made.stack_size(),
            explicit.stack_size(),
            existing.stack_size(),
        )
    })
    .join()
    .expect("no panic");
    assert_eq!(before, DEFAULT_STACK_SIZE);
    assert_eq!(after, 128 * 1024);
    assert_eq!(made, 128 * 1024, "new greenlets get the new default");
    assert_eq!(
        explicit,
        64 * 1024,
        "an explicit size wins over the default"
    );
    assert_eq!(
        existing, DEFAULT_STACK_SIZE,
        "existing greenlets keep theirs"
    );

    let other = thread::spawn(|| (default_stack_size(), Greenlet::new(|_| ()).stack_size()))
        .join()
        .expect("no panic");
    assert_eq!(other, (DEFAULT_STACK_SIZE, DEFAULT_STACK_SIZE));
}

#[test]
fn greenlets_of_different_sizes_coexist_and_pool_separately() {
    let main = greenweave_greenlet::current();
    let sizes = [MIN_STACK_SIZE, 64 * 1024, DEFAULT_STACK_SIZE, 1024 * 1024];
    let parked: Vec<Greenlet> = sizes
        .iter()
        .map(|&size| {
            let m = main.clone();
            Builder::new().stack_size(size).build(move |_| {
                m.switch(());
            })
        })
        .collect();
    for (g, &size) in parked.iter().zip(&sizes) {
        g.switch(());
        assert_eq!(g.stack_size(), size);
    }
    let pooled = pooled_stacks();
    for g in &parked {
        g.switch(());
    }
    assert_eq!(pooled_stacks(), pooled + sizes.len());

    // A greenlet of one of those sizes takes its stack from the matching class.
    let again = Builder::new().stack_size(64 * 1024).build(|_| ());
    assert_eq!(again.stack_size(), 64 * 1024);
    assert_eq!(pooled_stacks(), pooled + sizes.len() - 1);
}

/// Recurses `depth` levels with a 1 KiB frame each; returns the sum of the levels.
fn recurse(depth: usize) -> usize {
    let mut frame = [0_u8; 1024];
    frame[0] = depth as u8;
    black_box(&mut frame);
    if depth == 0 {
        return 0;
    }
    let below = recurse(depth - 1);
    black_box(&frame);
    below + depth
}

#[test]
fn a_64_kib_stack_holds_a_moderate_recursion() {
    let g = Builder::new()
        .stack_size(64 * 1024)
        .build(|v: Value| recurse(v.get::<usize>()));
    assert_eq!(g.switch(32_usize).get::<usize>(), (1..=32).sum::<usize>());
}
