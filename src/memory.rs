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
//! [`no_huge_pages_from_now`] turns transparent huge pages off for what is
//! faulted in after start-up (docs/decisions.md, "Transparent huge pages:
//! for the loaded state only").
//!
//! The calls are plain FFI calls without pointers: the only `unsafe`
//! blocks of the library, allowed here alone.

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

/// No transparent huge pages for memory this process faults in from now
/// on (`prctl(PR_SET_THP_DISABLE)`); pages already huge stay so. Called
/// once the store's state is loaded, before a `--bootstrap` merge
/// (`--huge-pages load-only`): the loaded record tables keep their huge
/// pages (fewer TLB misses per check; a process-wide off cost CheckBulk
/// 18–30 %), while a LookupRecords' fresh buffers no longer fault in
/// 2 MiB pages with the kernel compacting memory for them (its system
/// time 8–9 → 3–3.5 ms a call; docs/benchmarks.md, fifth session's end),
/// and a bootstrap merge's document and change list fault in none either
/// (a crm-large fill 8.4 / 9.7 / 8.8 → 7.8 / 7.7 / 6.8 s, its system time
/// 1.8–3.0 → 1.0–1.2 s; docs/benchmarks.md, "Part AA"). Returns whether
/// the kernel took the setting.
#[allow(unsafe_code)]
pub fn no_huge_pages_from_now() -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and changes a flag
    // of this process's memory map, nothing Rust owns.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

/// Runs a bulk write to its end, then [`hand_back`]s what it freed (its
/// document and change list are dropped by then). One call at the write's
/// entry point wraps it.
pub async fn handing_back<T>(write: impl std::future::Future<Output = T>) -> T {
    let outcome = write.await;
    hand_back();
    outcome
}
