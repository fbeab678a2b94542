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
//! The call is a plain FFI call without arguments: the one `unsafe` block
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

/// Runs a bulk write to its end, then [`hand_back`]s what it freed (its
/// document and change list are dropped by then). One call at the write's
/// entry point wraps it.
pub async fn handing_back<T>(write: impl std::future::Future<Output = T>) -> T {
    let outcome = write.await;
    hand_back();
    outcome
}
