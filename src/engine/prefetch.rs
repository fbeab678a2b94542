//! A software prefetch: asks the CPU to start bringing a cache line into
//! L1 without waiting for it, so a look-up whose address is known early
//! (an id table's entry from the id's hash; a record's slot from that
//! entry) overlaps its memory latency with the work of another check
//! (docs/decisions.md, "Part P: the record id index").
//!
//! A prefetch never faults, never reads memory into a register and never
//! changes what a program computes: a wrong or stale address costs at most
//! one wasted line fetch. That is why the one `unsafe` block here is sound
//! for any pointer, and why the helper is safe to call with any reference.

/// Hints that the line holding `*p` will be read soon (into every cache
/// level: `_MM_HINT_T0`). A no-op where no prefetch instruction is wired.
#[inline(always)]
pub fn prefetch<T: ?Sized>(p: &T) {
    prefetch_ptr((p as *const T).cast::<u8>());
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch_ptr(p: *const u8) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: PREFETCHT0 is a hint: it does not dereference `p` in the
    // language's sense, cannot fault on any address, and SSE (which has
    // it) is part of the x86_64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_ptr(_p: *const u8) {}
