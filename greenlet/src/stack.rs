//! Per-thread pool of guard-paged stacks.
//!
//! Stacks are carved out of *slabs*: one anonymous mapping holds many stacks, each with
//! a guard region below it (stacks grow down):
//!
//! ```text
//! slab: [guard][stack 0 ........][guard][stack 1 ........] ...
//!               ^limit      base^
//! ```
//!
//! With `MADV_GUARD_INSTALL` (Linux 6.13+) a guard region does not split the mapping,
//! so a slab of dozens of stacks costs the kernel one mapping instead of two per
//! stack, and the `vm.max_map_count` ceiling (65530 by default, ~32,700 greenlets with
//! one mapping plus one `mprotect` guard per stack) moves out of the way. On older
//! kernels the guard falls back to `mprotect`.
//!
//! # Memory policy
//!
//! A stack whose greenlet finished goes back on its size class's free list (LIFO, so
//! the hottest stack is reused first): after warm-up a greenlet costs no system call.
//! Three tiers keep what a burst of greenlets left behind from pinning memory:
//!
//! 1. **Warm set.** The [`HOT_STACKS`] most recently returned free stacks per size
//!    class keep every page they touched: spawn + join never faults.
//! 2. **Returned past the warm set.** A stack returned while the free list already
//!    holds [`HOT_STACKS`] gives back all but its top 8 KiB at once (one `madvise`),
//!    so a shallow greenlet reusing it soon faults no page in.
//! 3. **Idle.** [`mark_idle`](StackPool::mark_idle), called periodically from outside
//!    (the runtime's hub does, at most every 200 ms), moves the free stacks beyond the
//!    warm set that no greenlet took since the previous call to a release queue, and
//!    [`release`](StackPool::release) gives their memory back a bounded number at a
//!    time (see `release`): a slab whose stacks are then all free is unmapped, the
//!    other stacks give back every page and become *cold*. Queued stacks are still
//!    handed out (after the free ones) until released; cold ones after that, before a
//!    new slab is carved. The free list is a stack, so "not taken since the previous
//!    call" is exactly its bottom `low_water` entries (the fewest it held meanwhile):
//!    the pop path only updates that mark, and all the work happens out of line.
//!
//! When the thread exits, the pool releases everything the same way: slabs whose
//! stacks are all back are unmapped, and a slab still holding a live greenlet's stack
//! (one abandoned at exit) keeps only that stack's pages.
//!
//! Each carved stack is registered with Valgrind (`VALGRIND_STACK_REGISTER`, through
//! corosensei's own client request) until its slab is unmapped, so memcheck follows
//! switches between greenlets as stack switches.

use std::cell::{Cell, RefCell};
use std::io;
use std::num::NonZeroUsize;
use std::rc::Rc;

use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};

use crate::sys;

/// Default usable stack size of a greenlet: 256 KiB. Only touched pages use memory, so a
/// parked greenlet typically costs one or two pages of RAM; the size bounds how deep it
/// may recurse (ordinary code, formatting, std I/O and HTTP clients fit comfortably).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The smallest stack size accepted: room for a panic message and its unwinding.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The largest stack size accepted (1 GiB).
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Size of the guard region below each stack. Rust code probes every page of a large
/// frame, so one page would do; a few pages also catch C frames that skip ahead.
const GUARD_SIZE: usize = 16 * 1024;

/// Target size of one slab mapping.
const SLAB_BYTES: usize = 8 << 20;

/// Free stacks kept fully warm per size class; returned stacks past this give their
/// memory back to the kernel, all but their top 8 KiB at once, and entirely once they
/// have gone unused for a whole period of [`trim_stack_pool`](crate::trim_stack_pool)
/// calls and [`release_idle_stacks`](crate::release_idle_stacks) got to them.
pub const HOT_STACKS: usize = 256;

/// Bytes at the top of a pooled stack that stay resident when the rest is released:
/// what a greenlet that does not recurse deeply uses.
const KEEP_RESIDENT: usize = 8 * 1024;

mod release;

/// One mapping holding `count` stacks of one size class.
struct Slab {
    base: *mut u8,
    len: usize,
    /// This slab's entry in its size class's `cold_slabs` while it has cold stacks,
    /// [`NOT_COLD`] otherwise. (The cold list lives there, not here: a slab stays the
    /// size it was, so memory per greenlet does not grow.)
    cold_index: Cell<usize>,
    /// The usable range of each stack carved so far, registered as a stack with
    /// Valgrind for as long as the mapping exists, so that memcheck takes a switch onto
    /// it for a stack switch rather than a huge frame. Outside Valgrind the client
    /// request is a few no-op instructions, made once per carved stack (kept here, not
    /// in the slot, so the slot that every spawn moves stays small).
    valgrind: RefCell<Vec<ValgrindStackRegistration>>,
}

impl Drop for Slab {
    fn drop(&mut self) {
        // Deregistered before the memory goes.
        self.valgrind.get_mut().clear();
        // SAFETY: the mapping was made by `map_stacks` with this length, and every
        // stack carved from it held an `Rc<Slab>` (cold ones through `cold_slabs`):
        // the last one is gone, so nothing runs on or points into it any more.
        unsafe { sys::unmap(self.base, self.len) };
    }
}

/// [`Slab::cold_index`] of a slab without cold stacks.
const NOT_COLD: usize = usize::MAX;

/// A slab's cold stacks: free, their pages given back, and holding no reference to the
/// slab each (this entry holds one for all of them).
struct ColdSlab {
    slab: Rc<Slab>,
    /// The cold stacks' `limit`s.
    limits: Vec<usize>,
}

/// A stack's place in a slab, without the pool-returning behaviour of [`PooledStack`].
struct Slot {
    /// Lowest address of the guard region (the stack's `limit`).
    limit: usize,
    /// Highest address of the stack (where it starts growing down from).
    base: usize,
    /// Keeps the mapping alive: every stack carved from a slab, free or in use, holds
    /// one reference (cold ones excepted, see [`ColdSlab`]), and the size class one
    /// more while it carves the slab.
    slab: Rc<Slab>,
}

impl Slot {
    /// Gives back the RAM behind the usable part of the stack, keeping the top `keep`
    /// bytes resident.
    fn release_pages(&self, keep: usize) {
        let size = self.base - self.limit - GUARD_SIZE;
        let keep = keep.min(size);
        // SAFETY: the range lies in the stack's usable part, between its guard and the
        // kept top pages, both page aligned; the stack is free (in the pool or being
        // put there), so nothing on it is needed.
        unsafe { sys::release_pages((self.limit + GUARD_SIZE) as *mut u8, size - keep) };
    }
}

/// A stack taken from the current thread's pool; dropping it gives it back.
pub struct PooledStack {
    slot: Option<Slot>,
}

impl PooledStack {
    #[inline(always)]
    fn slot(&self) -> &Slot {
        self.slot
            .as_ref()
            .expect("a PooledStack holds its slot until dropped")
    }

    /// Lowest address of the guard region below the stack.
    pub fn guard_start(&self) -> usize {
        self.slot().limit
    }

    /// One past the highest address of the guard region.
    pub fn guard_end(&self) -> usize {
        self.slot().limit + GUARD_SIZE
    }

    /// Usable size in bytes.
    pub fn size(&self) -> usize {
        self.slot().base - self.guard_end()
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            crate::thread::with_pool(move |pool| pool.put(slot));
        }
    }
}

// SAFETY: `base` and `limit` bound a read-write range of at least MIN_STACK_SIZE bytes
// (sizes are validated) with a guard region of GUARD_SIZE at its bottom; both are
// page aligned, hence aligned to STACK_ALIGNMENT, and the memory stays mapped while
// the slot's `Rc<Slab>` lives, i.e. at least as long as this value.
unsafe impl Stack for PooledStack {
    // corosensei asks for the base on every resume: keep it a couple of loads.
    #[inline(always)]
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.slot().base).expect("stack base is never null")
    }

    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.slot().limit).expect("stack limit is never null")
    }
}

/// Stacks of one usable size.
struct SizeClass {
    size: usize,
    /// Free stacks, the most recently returned last: the last [`HOT_STACKS`] are the
    /// warm set (see the module docs).
    free: Vec<Slot>,
    /// The fewest entries `free` held since the last
    /// [`mark_idle`](StackPool::mark_idle): its bottom `low_water` entries were not
    /// taken since.
    low_water: usize,
    /// Free stacks that went unused for a whole period, waiting for
    /// [`release`](StackPool::release); handed out when `free` is empty.
    idle: Vec<Slot>,
    /// The slabs holding cold stacks, each with its cold stacks.
    cold_slabs: Vec<ColdSlab>,
    /// The slab being carved, and how many of its stacks are handed out so far.
    carving: Option<(Rc<Slab>, usize)>,
    stacks_per_slab: usize,
}

impl SizeClass {
    fn stride(&self) -> usize {
        self.size + GUARD_SIZE
    }

    /// A stack when the free list is empty: an idle one not released yet, else a cold
    /// one, else a new one carved.
    #[cold]
    fn refill(&mut self) -> io::Result<Slot> {
        if let Some(slot) = self.idle.pop() {
            return Ok(slot);
        }
        match self.take_cold() {
            Some(slot) => Ok(slot),
            None => self.carve(),
        }
    }

    fn carve(&mut self) -> io::Result<Slot> {
        let stride = self.stride();
        let (slab, used) = match self.carving.take() {
            Some((slab, used)) if used < self.stacks_per_slab => (slab, used),
            _ => {
                let len = stride * self.stacks_per_slab;
                let base = sys::map_stacks(len)?;
                let slab = Slab {
                    base,
                    len,
                    valgrind: RefCell::new(Vec::with_capacity(self.stacks_per_slab)),
                    cold_index: Cell::new(NOT_COLD),
                };
                (Rc::new(slab), 0)
            }
        };
        let offset = used * stride;
        // SAFETY: offset + stride <= len, so the guard range lies inside the fresh,
        // unused part of the slab; page-aligned because size and GUARD_SIZE are.
        let limit = unsafe { slab.base.add(offset) };
        // SAFETY: as above; nothing lives in the guard range.
        if let Err(err) = unsafe { sys::install_guard(limit, GUARD_SIZE) } {
            self.carving = Some((slab, used));
            return Err(err);
        }
        let usable = limit as usize + GUARD_SIZE;
        slab.valgrind
            .borrow_mut()
            .push(ValgrindStackRegistration::new(usable as *mut u8, self.size));
        let slot = Slot {
            limit: limit as usize,
            base: limit as usize + stride,
            slab: slab.clone(),
        };
        self.carving = Some((slab, used + 1));
        Ok(slot)
    }
}

/// The per-thread pool: a handful of size classes, most programs use one.
pub(crate) struct StackPool {
    classes: Vec<SizeClass>,
}

impl StackPool {
    pub(crate) const fn new() -> StackPool {
        StackPool {
            classes: Vec::new(),
        }
    }

    /// A stack of at least `size` usable bytes (already validated and page rounded).
    #[inline]
    pub(crate) fn get(&mut self, size: usize) -> io::Result<PooledStack> {
        let class = match self.classes.iter().position(|c| c.size == size) {
            Some(i) => &mut self.classes[i],
            None => {
                let stacks_per_slab = (SLAB_BYTES / (size + GUARD_SIZE)).clamp(1, 64);
                self.classes.push(SizeClass {
                    size,
                    free: Vec::new(),
                    low_water: 0,
                    idle: Vec::new(),
                    cold_slabs: Vec::new(),
                    carving: None,
                    stacks_per_slab,
                });
                self.classes.last_mut().expect("just pushed")
            }
        };
        let slot = match class.free.pop() {
            Some(slot) => {
                // All the bookkeeping `trim` needs from this path (see the module docs).
                let left = class.free.len();
                if left < class.low_water {
                    class.low_water = left;
                }
                slot
            }
            None => class.refill()?,
        };
        Ok(PooledStack { slot: Some(slot) })
    }

    #[inline]
    fn put(&mut self, slot: Slot) {
        let size = slot.base - slot.limit - GUARD_SIZE;
        let Some(class) = self.classes.iter_mut().find(|c| c.size == size) else {
            return;
        };
        if class.free.len() >= HOT_STACKS {
            // Give back what a deep call chain dirtied, but keep the top pages that every
            // greenlet touches, so reusing this stack for a shallow greenlet costs no
            // page fault (a fault on fresh memory costs microseconds on VMs).
            slot.release_pages(KEEP_RESIDENT);
        }
        class.free.push(slot);
    }

    /// Number of free stacks held, over all size classes (warm, idle and cold).
    pub(crate) fn free_stacks(&self) -> usize {
        self.classes
            .iter()
            .map(|c| {
                let cold: usize = c.cold_slabs.iter().map(|s| s.limits.len()).sum();
                c.free.len() + c.idle.len() + cold
            })
            .sum()
    }

    /// Free stacks beyond the warm set, over all size classes, not yet marked idle:
    /// what later [`mark_idle`](Self::mark_idle) calls may queue for release.
    pub(crate) fn surplus(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.free.len().saturating_sub(HOT_STACKS))
            .sum()
    }

    /// Queues for release the free stacks beyond the warm set that no greenlet took
    /// since the previous call, in every size class; returns how many wait.
    pub(crate) fn mark_idle(&mut self) -> usize {
        self.classes.iter_mut().map(SizeClass::mark_idle).sum()
    }

    /// Gives back the memory of up to `max` queued stacks (whole slabs at a time where
    /// they are all free); returns how many still wait.
    pub(crate) fn release(&mut self, max: usize) -> usize {
        let mut budget = max;
        let mut waiting = 0;
        for class in &mut self.classes {
            budget -= class.release(budget);
            waiting += class.idle.len();
        }
        waiting
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        // Thread exit: unmap every slab whose stacks are all back, and release the
        // pages of the free stacks in the others (kept mapped by a live stack).
        for class in &mut self.classes {
            class.release_all();
        }
    }
}

/// Rounds a requested stack size up to whole pages and checks its bounds.
#[track_caller]
pub(crate) fn validate_stack_size(size: usize) -> usize {
    assert!(
        (MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&size),
        "greenlet stack size {size} bytes is out of range: use {MIN_STACK_SIZE}..={MAX_STACK_SIZE} bytes"
    );
    let page = sys::page_size();
    size.div_ceil(page) * page
}
