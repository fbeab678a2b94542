//! A fixed workload for instruction counts of the expansion caches
//! (docs/benchmarks.md, "Part B — expansion caches"): wall-clock time is
//! noise on a shared machine, the instructions of a fixed number of checks
//! are not.
//!
//! `expand_mix warm N` runs N checks of the bench mix on a warm cached
//! engine; `expand_mix cold-group N` and `expand_mix cold-role N` run N
//! cold checks (drop what a write dropped, then check). Under callgrind,
//! count only the workload:
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no \
//!   --toggle-collect='expand_mix::run' target/release/examples/expand_mix warm 100000
//! ```
//!
//! The data set is crm-large with a tenth of its records and shares
//! (`WARDEN_MIX_RECORDS`, default 100000), so that loading under valgrind
//! stays minutes: users, roles, groups, rules and depths, which the
//! expansions depend on, are crm-large's.

#[path = "../benches/support/cold.rs"]
mod cold;

use std::hint::black_box;

use chrono::Utc;

use warden::cache::Cached;
use warden::engine::document::changes_of;
use warden::engine::{decision, CheckRequest, Engine, Limits};
use warden::generate::{check_mix, generate, Params};

use cold::{cold_checks, ColdCheck, ColdWrite};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("warm");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let records: usize = std::env::var("WARDEN_MIX_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut params = Params::crm_large();
    params.manual_shares = params.manual_shares * records / params.records.max(1);
    params.records = records;
    let doc = generate(&params)
        .expect("crm-large parameters are valid")
        .document;
    let org = doc.organization.clone();
    let engine = Engine::new(Cached::default(), Limits::default());
    engine.apply(&org, 1, &changes_of(&doc));
    let mix = check_mix(&doc, 50_000, 7);
    let now = Utc::now();
    for req in &mix {
        let _ = black_box(engine.check(&org, req, now));
    }
    let kind = match mode {
        "warm" => None,
        "cold-group" => Some(ColdWrite::Group),
        "cold-role" => Some(ColdWrite::RoleReparent),
        other => {
            eprintln!("unknown mode '{other}': warm, cold-group or cold-role");
            std::process::exit(2);
        }
    };
    let colds = match kind {
        Some(kind) => cold_checks(&engine, &doc, &mix, kind, 64, now),
        None => Vec::new(),
    };
    let before = engine.expander().stats();
    let allowed = run(&engine, &org, &mix, &colds, n, now);
    let after = engine.expander().stats();
    eprintln!(
        "{mode}: {n} checks, {allowed} allowed; {} cold pairs; cache hits {}, misses {}",
        colds.len(),
        after.hits - before.hits,
        after.misses - before.misses,
    );
}

/// The measured part: `n` warm checks of the mix, or `n` cold checks
/// cycling through `colds` (callgrind's inclusive counts split the drop,
/// `Cached::invalidate`, from the check, `decision::check`).
#[inline(never)]
fn run(
    engine: &Engine<Cached>,
    org: &str,
    mix: &[CheckRequest],
    colds: &[ColdCheck],
    n: usize,
    now: chrono::DateTime<Utc>,
) -> usize {
    let mut allowed = 0;
    for i in 0..n {
        let ok = if colds.is_empty() {
            engine.check(org, black_box(&mix[i % mix.len()]), now)
        } else {
            let c = &colds[i % colds.len()];
            engine
                .read(org, |state, x| {
                    warden::engine::Expand::invalidate(x, state, &c.invalidation);
                    decision::check(state, x, black_box(&c.request), now.into()).map(|d| (d, 0))
                })
                .and_then(|r| r)
        };
        if ok.is_ok_and(|(d, _)| d.allowed) {
            allowed += 1;
        }
    }
    allowed
}
