//! Helpers for the direct-switch tests: the resume chain's depth and a drop flag.

use std::cell::Cell;
use std::rc::Rc;

use greenweave_greenlet::Greenlet;

/// Sets a flag when dropped, to prove a greenlet unwound.
pub struct SetOnDrop(pub Rc<Cell<bool>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// How deep the running greenlet sits on the resume chain (main is 0), read through
/// `probe`, an unstarted greenlet: it is one switch away exactly while the running
/// depth is below the limit.
pub fn chain_depth(probe: &Greenlet) -> u32 {
    assert!(!probe.is_started());
    (0..1024)
        .find(|&d| probe.is_one_switch_away(d + 1))
        .expect("the resume chain is less than 1024 greenlets deep")
}
