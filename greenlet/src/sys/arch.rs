//! Processor-specific helpers: where the stack pointer is, and cache prefetches. Each
//! has a portable fallback, so a new architecture only loses speed, not correctness.

/// The current stack pointer, or an address within the caller's frame where the
/// processor has no cheaper way to say.
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: copies `rsp` into a register: reads no memory, writes none, and
        // leaves the stack and the flags as they were (the options say so).
        unsafe {
            core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
        }
        sp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let marker = 0u8;
        std::ptr::addr_of!(marker) as usize
    }
}

/// Asks the processor to bring the cache line holding `addr` closer (into every cache
/// level), without waiting for it. `addr` need not be mapped: a prefetch never faults.
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `prefetcht0` is a hint: it reads nothing the program can see and
        // cannot fault, whatever the address (SSE, which every x86_64 has).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(addr as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_pointer_is_in_the_callers_frame() {
        let local = 0u64;
        let here = std::hint::black_box(std::ptr::addr_of!(local)) as usize;
        let sp = stack_pointer();
        // The stack grows down: the pointer is at or below our locals, within a frame.
        assert!(sp <= here, "{sp:#x} above a local at {here:#x}");
        assert!(
            here - sp < 4096,
            "{sp:#x} is {} bytes below the frame",
            here - sp
        );
    }

    #[test]
    fn a_prefetch_of_any_address_is_harmless() {
        for addr in [0, 1, 64, usize::MAX, usize::MAX - 63, 0xdead_beef] {
            prefetch(addr);
        }
    }
}
