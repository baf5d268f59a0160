//! The stack pool gives memory back: free stacks beyond the warm set that went unused
//! for a whole period of `trim_stack_pool` calls are queued, and `release_idle_stacks`
//! releases them a bounded number at a time (slabs whose stacks are all free are
//! unmapped, the other stacks go cold and are still reused); a thread's exit unmaps
//! every slab.
//!
//! One test in this file: it checks which addresses are mapped, so no other test of the
//! process may map memory meanwhile.

use std::hint::black_box;

use greenweave_greenlet::{
    Builder, Greenlet, HOT_STACKS, current, pooled_stacks, release_idle_stacks, surplus_stacks,
    trim_stack_pool,
};

const SIZE: usize = 64 * 1024;
/// With 16 KiB guards, a slab holds 64 stacks of 64 KiB (the most a slab holds).
const PER_SLAB: usize = 64;
const BURST: usize = 1000;

/// Whether `addr` lies in one of the process's mappings.
fn mapped(addr: usize) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .expect("Linux /proc/self/maps")
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.split_once('-'))
        .any(|(lo, hi)| {
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).unwrap(),
                usize::from_str_radix(hi, 16).unwrap(),
            );
            (lo..hi).contains(&addr)
        })
}

/// `n` greenlets of `SIZE` alive at once, each parked on its own stack; returns them
/// with the address of a local on each stack.
fn park(n: usize) -> Vec<(Greenlet, usize)> {
    let main = current();
    (0..n)
        .map(|_| {
            let m = main.clone();
            let g = Builder::new().stack_size(SIZE).build(move |_| {
                let marker = 0_u8;
                m.switch(black_box(&marker) as *const u8 as usize);
            });
            let addr = g.switch(()).get::<usize>();
            (g, addr)
        })
        .collect()
}

/// Lets every parked greenlet finish, in order: their stacks go back in that order.
fn finish(parked: Vec<(Greenlet, usize)>) {
    for (g, _) in parked {
        g.switch(());
        assert!(g.is_dead());
    }
}

#[test]
fn idle_stacks_beyond_the_warm_set_are_released_and_exit_unmaps_the_rest() {
    // Valgrind keeps its own view of the address space: /proc/self/maps tells nothing
    // about the program's unmapped slabs under it. Everything else is checked.
    let maps = std::env::var_os("RUNNING_UNDER_VALGRIND").is_none();
    if !maps {
        eprintln!("skipped under Valgrind: which addresses are mapped");
    }
    let addrs = std::thread::spawn(move || {
        let burst = park(BURST);
        let addrs: Vec<usize> = burst.iter().map(|(_, a)| *a).collect();
        finish(burst);
        assert_eq!(pooled_stacks(), BURST);
        assert_eq!(surplus_stacks(), BURST - HOT_STACKS);

        assert_eq!(
            trim_stack_pool(),
            0,
            "stacks used since the previous pass (here: since the start) are not queued"
        );
        // Ten stacks are used during this period: the ten on top of the free list.
        finish(park(10));
        let queued = BURST - 10 - HOT_STACKS;
        assert_eq!(
            trim_stack_pool(),
            queued,
            "the bottom {queued} went unused for a whole period"
        );
        assert_eq!(surplus_stacks(), 10);
        assert!(
            !maps || addrs.iter().all(|&a| mapped(a)),
            "queuing makes no system call"
        );
        assert_eq!(release_idle_stacks(100), queued - 100, "a bounded step");
        assert_eq!(release_idle_stacks(usize::MAX), 0);

        // The oldest stacks went back first, so they are the released ones: the slabs
        // they fill entirely are unmapped (also the one split between the two steps),
        // the next one only gives back pages.
        let unmapped_slabs = queued / PER_SLAB;
        let kept = BURST - unmapped_slabs * PER_SLAB;
        for (i, &addr) in addrs.iter().enumerate().filter(|_| maps) {
            assert_eq!(
                mapped(addr),
                i >= unmapped_slabs * PER_SLAB,
                "stack {i}: {} slabs should be unmapped",
                unmapped_slabs
            );
        }
        assert_eq!(pooled_stacks(), kept, "warm, surplus and cold stacks");
        assert_eq!(trim_stack_pool(), 10, "the surplus of ten went unused too");
        assert_eq!(release_idle_stacks(usize::MAX), 0);
        assert_eq!(
            pooled_stacks(),
            kept,
            "their slab holds warm stacks: they went cold"
        );

        // Cold stacks are reused once the warm ones are taken.
        let again = park(kept);
        let reused = again.iter().filter(|(_, a)| addrs.contains(a)).count();
        assert_eq!(reused, kept, "every pooled stack was reused");
        finish(again);

        // A queued stack is still handed out until it is released.
        trim_stack_pool();
        let waiting = trim_stack_pool();
        assert_eq!(waiting, kept - HOT_STACKS);
        let busy = park(HOT_STACKS + 5);
        assert_eq!(
            release_idle_stacks(0),
            waiting - 5,
            "five came off the queue"
        );
        finish(busy);
        addrs
    })
    .join()
    .unwrap();
    for addr in addrs.into_iter().filter(|_| maps) {
        assert!(!mapped(addr), "the thread's exit unmapped every slab");
    }
}
