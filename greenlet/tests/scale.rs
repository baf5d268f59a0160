//! Many greenlets alive at once: ten thousand parked and resumed with their own values,
//! and fifty thousand, which needs guard regions that cost no extra kernel mapping.

use greenweave_greenlet::{Greenlet, Value, current, guard_technique, pooled_stacks};

/// Starts `n` greenlets, each parked in a switch to main holding the number it started
/// with; returns them.
fn park_many(n: usize) -> Vec<Greenlet> {
    let main = current();
    let greenlets: Vec<Greenlet> = (0..n)
        .map(|_| {
            let m = main.clone();
            Greenlet::new(move |v: Value| {
                let mine = v.get::<usize>();
                let extra = m.switch(()).get::<usize>();
                mine * 2 + extra
            })
        })
        .collect();
    for (i, g) in greenlets.iter().enumerate() {
        assert!(g.switch(i).is::<()>(), "greenlet {i} parked");
    }
    greenlets
}

/// Resumes every parked greenlet with 1 and sums what they return.
fn finish_all(greenlets: &[Greenlet]) -> usize {
    greenlets
        .iter()
        .map(|g| g.switch(1_usize).get::<usize>())
        .sum()
}

/// What `finish_all` must return for `n` greenlets from `park_many`.
fn expected_sum(n: usize) -> usize {
    2 * (0..n).sum::<usize>() + n
}

/// Number of memory mappings of this process.
fn mapping_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps is readable on Linux")
        .lines()
        .count()
}

/// Whether to skip a scale test: under Valgrind (`.ci/valgrind` sets the variable),
/// memcheck looks a new stack pointer up in its registered stacks one by one on every
/// switch, and with tens of thousands of greenlets alive a test takes minutes.
fn skip_under_valgrind() -> bool {
    std::env::var_os("RUNNING_UNDER_VALGRIND").is_some()
}

#[test]
fn ten_thousand_greenlets_alive_at_once() {
    if skip_under_valgrind() {
        return;
    }
    const N: usize = 10_000;
    let pooled_before = pooled_stacks();

    let greenlets = park_many(N);
    let pooled_alive = pooled_stacks();
    assert_eq!(pooled_alive, pooled_before.saturating_sub(N));
    assert!(greenlets.iter().all(|g| g.is_active() && !g.is_current()));

    assert_eq!(finish_all(&greenlets), expected_sum(N));
    assert!(greenlets.iter().all(Greenlet::is_dead));
    let pooled_after = pooled_stacks();
    assert_eq!(
        pooled_after,
        pooled_alive + N,
        "every finished greenlet's stack went back to the pool"
    );

    // Past the hot stacks, returned stacks had their pages released; such a stack is
    // the first to be reused, and works.
    let again = park_many(2);
    assert_eq!(pooled_stacks(), pooled_after - 2);
    assert_eq!(finish_all(&again), expected_sum(2));
    assert_eq!(pooled_stacks(), pooled_after);
}

#[test]
fn fifty_thousand_greenlets_alive_at_once() {
    if skip_under_valgrind() {
        return;
    }
    const N: usize = 50_000;
    // The technique is only known once a stack has been made.
    Greenlet::new(|_| ()).switch(());
    let technique = guard_technique();
    eprintln!("guard technique: {technique:?}");
    assert!(
        technique.is_some(),
        "a stack was made, so the technique is known"
    );
    if technique == Some("mprotect") {
        eprintln!(
            "skipping: without MADV_GUARD_INSTALL (Linux 6.13+) every stack costs two kernel \
             mappings, and {N} greenlets would pass the default vm.max_map_count of 65530"
        );
        return;
    }
    let maps_before = mapping_count();

    let greenlets = park_many(N);
    let maps_alive = mapping_count();
    assert!(
        maps_alive < maps_before + N / 10,
        "stacks share mappings: {maps_before} mappings before, {maps_alive} with {N} parked"
    );

    assert_eq!(finish_all(&greenlets), expected_sum(N));
    assert!(greenlets.iter().all(Greenlet::is_dead));
}
