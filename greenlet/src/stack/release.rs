//! Giving pooled stacks' memory back to the kernel, out of the spawn path and a bounded
//! amount at a time (see the parent module's memory policy).
//!
//! Stacks that went unused for a whole period wait in a size class's `idle` queue.
//! [`SizeClass::release`] takes up to a budget of them, sorts them by address and
//! looks at each slab's share: if those stacks are the slab's last references (every
//! other stack of the slab is cold), the slab is unmapped; otherwise their pages are
//! released, one `madvise` per run of neighbours, and they become cold. Cold stacks
//! are listed per slab (the slab knows its entry), so deciding that a slab is wholly
//! free never scans the pool: the work is proportional to the stacks released.

use std::rc::Rc;

use super::{ColdSlab, GUARD_SIZE, HOT_STACKS, NOT_COLD, SizeClass, Slot};
use crate::sys;

impl SizeClass {
    /// Queues for release the free stacks beyond the warm set that were not taken
    /// since the previous call; returns how many wait in the queue.
    pub(super) fn mark_idle(&mut self) -> usize {
        let idle = self
            .low_water
            .min(self.free.len())
            .saturating_sub(HOT_STACKS);
        if idle > 0 {
            // The bottom of the free list, without copying it.
            let warm = self.free.split_off(idle);
            let aged = std::mem::replace(&mut self.free, warm);
            if self.idle.is_empty() {
                self.idle = aged;
            } else {
                self.idle.extend(aged);
            }
        }
        self.low_water = self.free.len();
        self.idle.len()
    }

    /// Gives back the memory of up to `budget` queued stacks; returns how many it took.
    pub(super) fn release(&mut self, budget: usize) -> usize {
        let n = budget.min(self.idle.len());
        if n > 0 {
            let chunk = self.idle.split_off(self.idle.len() - n);
            self.release_slots(chunk);
        }
        n
    }

    /// Thread exit: gives back the memory of every free stack.
    pub(super) fn release_all(&mut self) {
        let mut all = std::mem::take(&mut self.free);
        all.append(&mut self.idle);
        self.release_slots(all);
    }

    /// A cold stack, if there is one (its pages come back zeroed as it is used).
    pub(super) fn take_cold(&mut self) -> Option<Slot> {
        let entry = self.cold_slabs.last_mut()?;
        let limit = entry
            .limits
            .pop()
            .expect("a slab in `cold_slabs` has cold stacks");
        let slab = if entry.limits.is_empty() {
            // Its `cold_slabs` reference becomes the slot's.
            let entry = self.cold_slabs.pop().expect("just looked at");
            entry.slab.cold_index.set(NOT_COLD);
            entry.slab
        } else {
            entry.slab.clone()
        };
        Some(Slot {
            limit,
            base: limit + self.stride(),
            slab,
        })
    }

    /// Unmaps the slabs whose last references are among `slots` (free stacks of this
    /// class, off every list), and makes the other stacks cold.
    fn release_slots(&mut self, mut slots: Vec<Slot>) {
        // By address: each slab's stacks together, neighbours next to each other.
        slots.sort_unstable_by_key(|slot| slot.limit);
        let mut pages = PageRelease::default();
        let mut slots = slots.into_iter().peekable();
        while let Some(first) = slots.next() {
            let slab = Rc::as_ptr(&first.slab);
            let mut group = vec![first];
            while let Some(next) = slots.next_if(|slot| Rc::as_ptr(&slot.slab) == slab) {
                group.push(next);
            }
            let has_cold = group[0].slab.cold_index.get() != NOT_COLD;
            let carving = self
                .carving
                .as_ref()
                .is_some_and(|(c, _)| Rc::as_ptr(c) == slab);
            let others =
                Rc::strong_count(&group[0].slab) - usize::from(has_cold) - usize::from(carving);
            if group.len() == others {
                // No stack of the slab is in use, warm or queued: unmap it.
                if has_cold {
                    self.forget_cold(&group[0]);
                }
                if carving {
                    self.carving = None;
                }
                drop(group);
            } else {
                for slot in &group {
                    pages.add(slot);
                }
                self.make_cold(group);
            }
        }
        // The runs' slabs are held by `cold_slabs` now.
        pages.flush();
    }

    /// Records `group`, free stacks of one slab, as cold, and drops their slots.
    fn make_cold(&mut self, group: Vec<Slot>) {
        let slab = &group[0].slab;
        let mut index = slab.cold_index.get();
        if index == NOT_COLD {
            index = self.cold_slabs.len();
            slab.cold_index.set(index);
            self.cold_slabs.push(ColdSlab {
                slab: slab.clone(),
                limits: Vec::new(),
            });
        }
        let limits = &mut self.cold_slabs[index].limits;
        limits.extend(group.iter().map(|slot| slot.limit));
    }

    /// Drops the cold stacks of `slot`'s slab, which is about to be unmapped.
    fn forget_cold(&mut self, slot: &Slot) {
        let index = slot.slab.cold_index.replace(NOT_COLD);
        let removed = self.cold_slabs.swap_remove(index);
        debug_assert!(Rc::ptr_eq(&removed.slab, &slot.slab));
        if let Some(moved) = self.cold_slabs.get(index) {
            moved.slab.cold_index.set(index);
        }
    }
}

/// Gives back the pages of whole free stacks, one system call per run of neighbours
/// (added in address order) instead of one per stack: a run's range spans the guard
/// regions between its stacks, which releasing pages leaves in place (guard markers
/// and `PROT_NONE` both survive `MADV_DONTNEED`).
#[derive(Default)]
struct PageRelease {
    /// The pending run: its lowest usable address and one past its highest.
    run: Option<(usize, usize)>,
}

impl PageRelease {
    fn add(&mut self, slot: &Slot) {
        match &mut self.run {
            Some((_, end)) if *end == slot.limit => *end = slot.base,
            _ => {
                self.flush();
                self.run = Some((slot.limit + GUARD_SIZE, slot.base));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((start, end)) = self.run.take() {
            // The run covers whole free stacks, each joined only when its guard starts
            // where the previous one's stack ended (they are added in address order),
            // and the guard regions between them, which hold nothing and stay guards.
            // SAFETY: so it is ours and unused; page aligned and mapped: each of these
            // stacks is cold, so `cold_slabs` holds its slab and none is handed out.
            unsafe { sys::release_pages(start as *mut u8, end - start) };
        }
    }
}
