//! Handing memory back to the operating system after a bulk load.
//!
//! The server's allocator is mimalloc (`src/main.rs`). It keeps the pages a
//! start-up load or a bulk Import freed (the chunks of row text, the parsed
//! document, the planned change list, the commit's rows) for reuse, and
//! purges them only a delay after they are freed and only when the thread
//! that owns them calls into the allocator again. A server that goes idle
//! after a fill would hold the fill's peak as its resident set for as long
//! as it runs. [`hand_back`] purges now what is free (docs/decisions.md,
//! "Memory handed back after loading").
//!
//! [`no_huge_pages`] chooses, once at start, that the process runs
//! without transparent huge pages (docs/decisions.md, "Allocator: no
//! transparent huge pages").
//!
//! The calls are plain FFI calls without pointers: the only `unsafe` blocks
//! of the library, allowed here alone.

/// Returns to the operating system the memory mimalloc holds free: the
/// calling thread's free pages, and every arena's purgeable memory (the
/// arenas are program-wide). Costs one walk of the calling thread's pages
/// (milliseconds after a million-row load); call it once after a load or
/// a bulk write, never per request. Without mimalloc as the global
/// allocator (the library's tests) it has nothing to collect.
#[allow(unsafe_code)]
pub fn hand_back() {
    // SAFETY: `mi_collect` takes no pointer and may be called from any
    // thread at any time; it touches only mimalloc's own bookkeeping.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// mimalloc v3's `mi_option_allow_thp` (its `mi_option_t` enum in
/// mimalloc.h of libmimalloc-sys 0.1.49, which names no Rust constant for
/// it): checked against the header with a C `_Static_assert` when chosen.
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Turns transparent huge pages off for the whole process, as
/// `MIMALLOC_ALLOW_THP=0` does: mimalloc no longer advises the kernel to
/// back its arenas with huge pages, and `PR_SET_THP_DISABLE` keeps the
/// kernel from doing so even where it was advised before this call (the
/// arenas mimalloc reserved before `main`). A fresh 2 MiB huge page costs a
/// fault that zeroes 2 MiB: LookupRecords' large, short-lived buffers spent
/// 9–11 ms of system time per call in such faults, 1 ms without
/// (docs/benchmarks.md, "Part J (fifth round)"). Call it first in `main`,
/// once. Returns whether the kernel took the setting (it is an
/// optimisation; the server runs either way).
#[allow(unsafe_code)]
pub fn no_huge_pages() -> bool {
    // SAFETY: `mi_option_set` takes an option number and a value, no
    // pointer; an option mimalloc does not know is ignored by it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
    // SAFETY: PR_SET_THP_DISABLE takes integers only and changes a flag
    // of this process's memory map, nothing Rust owns.
    let set = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    set == 0
}

/// Runs a bulk write to its end, then [`hand_back`]s what it freed (its
/// document and change list are dropped by then). One call at the write's
/// entry point wraps it.
pub async fn handing_back<T>(write: impl std::future::Future<Output = T>) -> T {
    let outcome = write.await;
    hand_back();
    outcome
}
