//! A fixed workload of warm checks for counting instructions per decision
//! path (wall-clock timings are noise on a shared machine; instruction
//! counts are not):
//!
//! ```text
//! cargo build --release --example warm_checks
//! valgrind --tool=callgrind --callgrind-out-file=warm.out \
//!     --toggle-collect='warm_checks::run_*' target/release/examples/warm_checks
//! callgrind_annotate --inclusive=yes warm.out | grep run_
//! ```
//!
//! Each `run_<path>` runs `ROUNDS` passes over up to 256 checks the engine
//! decides by that path, on the cached engine warmed as benches/engine.rs
//! warms it, so its inclusive instruction count divided by the number of
//! checks it ran (printed on stderr) is the cost of one warm check.
//! `WARDEN_BENCH_PRESET=small` and `WARDEN_BENCH_SCALE=F` as for the bench.
//!
//! `run_mix_wide` is one pass over the whole mix (50,000 checks drawn from
//! every record): few of its records are in the CPU's caches, so with
//! `--cache-sim=yes` its last-level misses per check show what the record
//! storage costs in memory traffic, which instruction counts do not see.
//! The resident memory printed after the organization is compiled (and the
//! document dropped) is the same program's figure for the state's size.
//!
//! `run_bulk` decides `run_mix`'s checks in batches of 100 consecutive ones
//! through `Engine::check_many` (what CheckBulk calls), and `run_bulk_wide`
//! the whole mix so, one pass: per check, their figures compare with
//! `run_mix` and `run_mix_wide`. `one_subject` runs the mix's checks with
//! each 100's subject made that of its first, one by one
//! (`run_one_subject`) and in batches (`run_bulk_one_subject`).
//!
//! With arguments (`warm_checks owner denied`, `mix_wide`), only the paths named run,
//! so one callgrind run can be given to one path. The allocator is the
//! server's (mimalloc), so `mi_malloc` calls under a `run_*` are the
//! allocations of the checks it ran.

use std::hint::black_box;

/// The server's allocator, so the profile counts its calls.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::{DateTime, Utc};

use warden::cache::Cached;
use warden::engine::document::changes_of;
use warden::engine::model::Reason;
use warden::engine::{CheckRequest, Engine, Limits};
use warden::generate::{check_mix, generate, Params, Preset};

const PER_BUCKET: usize = 256;
const MIX: usize = 50_000;
/// Passes over each bucket; the mix bucket is as long as the others.
const ROUNDS: usize = 20;

struct Work {
    org: String,
    engine: Engine<Cached>,
    now: DateTime<Utc>,
}

impl Work {
    fn run_once(&self, reqs: &[CheckRequest]) -> usize {
        let mut allowed = 0;
        for req in reqs {
            if let Ok((d, _)) = self.engine.check(&self.org, black_box(req), self.now) {
                allowed += usize::from(black_box(d).allowed);
            }
        }
        allowed
    }

    fn run(&self, reqs: &[CheckRequest]) -> usize {
        let mut allowed = 0;
        for _ in 0..ROUNDS {
            for req in reqs {
                if let Ok((d, _)) = self.engine.check(&self.org, black_box(req), self.now) {
                    allowed += usize::from(black_box(d).allowed);
                }
            }
        }
        allowed
    }
}

// One function per path, never inlined, so callgrind reports each apart.
// Each returns its own tag as well: identical bodies would be folded into
// one symbol by the linker, and callgrind would report one run_ for all.
macro_rules! runners {
    ($($name:ident = $tag:literal),*) => {$(
        #[inline(never)]
        fn $name(w: &Work, reqs: &[CheckRequest]) -> usize {
            w.run(reqs) + black_box($tag) - $tag
        }
    )*};
}
runners!(
    run_owner = 1,
    run_group_owner = 2,
    run_hierarchy = 3,
    run_team_lead = 4,
    run_org_default = 5,
    run_sharing_rule = 6,
    run_criteria_rule = 7,
    run_manual_share = 8,
    run_denied = 9,
    run_mix = 10
);

/// One pass over `reqs`, not `ROUNDS`: see the module's note.
#[inline(never)]
fn run_mix_wide(w: &Work, reqs: &[CheckRequest]) -> usize {
    w.run_once(reqs)
}

/// Checks per `check_many` call, as `warden-load --mode bulk` sends them.
const BATCH: usize = 100;

/// The mix's first checks in batches of `BATCH` consecutive ones through
/// `Engine::check_many` (CheckBulk's engine share), `ROUNDS` passes, so
/// its instructions ÷ checks compare with `run_mix`'s one by one.
#[inline(never)]
fn run_bulk(w: &Work, reqs: &[CheckRequest]) -> usize {
    bulk_rounds(w, reqs)
}

/// `run_bulk`'s body, named apart: callgrind's `--toggle-collect` turns
/// collection off again when one `run_*` calls another.
fn bulk_rounds(w: &Work, reqs: &[CheckRequest]) -> usize {
    let batches: Vec<Vec<&CheckRequest>> = reqs.chunks(BATCH).map(|c| c.iter().collect()).collect();
    let mut allowed = 0;
    for _ in 0..ROUNDS {
        for batch in &batches {
            if let Ok((ds, _)) = w.engine.check_many(&w.org, black_box(batch), w.now) {
                allowed += black_box(ds).iter().filter(|d| d.allowed).count();
            }
        }
    }
    allowed
}

/// `run_bulk` over batches whose checks all name one subject (a list of
/// records shown to one user).
#[inline(never)]
fn run_bulk_one_subject(w: &Work, reqs: &[CheckRequest]) -> usize {
    bulk_rounds(w, reqs) + black_box(11) - 11
}

/// The same checks as `run_bulk_one_subject`, one by one.
#[inline(never)]
fn run_one_subject(w: &Work, reqs: &[CheckRequest]) -> usize {
    w.run(reqs) + black_box(12) - 12
}

/// One pass of `run_bulk` over the whole mix (50,000 checks), for cache
/// misses per decision as `run_mix_wide` counts them one by one.
#[inline(never)]
fn run_bulk_wide(w: &Work, reqs: &[CheckRequest]) -> usize {
    let mut allowed = 0;
    for chunk in reqs.chunks(BATCH) {
        let batch: Vec<&CheckRequest> = chunk.iter().collect();
        if let Ok((ds, _)) = w.engine.check_many(&w.org, black_box(&batch), w.now) {
            allowed += black_box(ds).iter().filter(|d| d.allowed).count();
        }
    }
    allowed
}

type Runner = fn(&Work, &[CheckRequest]) -> usize;

fn main() {
    let preset = match std::env::var("WARDEN_BENCH_PRESET").as_deref() {
        Ok("small") => Preset::Small,
        _ => Preset::CrmLarge,
    };
    let scale = std::env::var("WARDEN_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let params = match Params::of(preset).scaled(scale) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let generated = match generate(&params) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let doc = generated.document;
    let org = doc.organization.clone();
    let engine = Engine::new(Cached::default(), Limits::default());
    engine.apply(&org, 1, &changes_of(&doc));
    let mix = check_mix(&doc, MIX, 7);
    drop(doc);
    eprintln!("compiled, document dropped: {}", memory());
    let w = Work {
        org,
        engine,
        now: Utc::now(),
    };

    let names = [
        "owner",
        "group_owner",
        "hierarchy",
        "team_lead",
        "org_default",
        "sharing_rule",
        "criteria_rule",
        "manual_share",
        "denied",
    ];
    let mut buckets: Vec<Vec<CheckRequest>> = vec![Vec::new(); names.len()];
    for req in &mix {
        let Ok((d, _)) = w.engine.check(&w.org, req, w.now) else {
            continue;
        };
        let b = match d.reason {
            Reason::Owner => 0,
            Reason::GroupOwner => 1,
            Reason::Hierarchy => 2,
            Reason::TeamLead => 3,
            Reason::OrgDefault => 4,
            Reason::SharingRule => {
                // A criteria rule's words name the attributes it selects
                // ("records with k=v"); an owner rule's name its from set.
                let explained = CheckRequest {
                    explain: true,
                    ..req.clone()
                };
                match w.engine.check(&w.org, &explained, w.now) {
                    Ok((d, _))
                        if d.trace.iter().any(|s| {
                            s.reason == Reason::SharingRule
                                && s.level == d.level
                                && s.detail.contains("records with")
                        }) =>
                    {
                        6
                    }
                    _ => 5,
                }
            }
            Reason::ManualShare => 7,
            Reason::InsufficientAccess => 8,
            _ => continue,
        };
        if buckets[b].len() < PER_BUCKET {
            buckets[b].push(req.clone());
        }
    }
    let mix_part: Vec<CheckRequest> = mix.iter().take(PER_BUCKET * 9).cloned().collect();
    // One pass over every request (not ROUNDS over a few), so most records
    // it reads are not in the CPU's caches, as in a server's random traffic.
    let only: Vec<String> = std::env::args().skip(1).collect();
    if only.is_empty() || only.iter().any(|o| o == "mix_wide") {
        let allowed = run_mix_wide(&w, &mix);
        eprintln!(
            "run_mix_wide: {} checks (1 pass), {allowed} allowed",
            mix.len()
        );
    }
    if only.is_empty() || only.iter().any(|o| o == "bulk_wide") {
        let allowed = run_bulk_wide(&w, &mix);
        eprintln!(
            "run_bulk_wide: {} checks (1 pass, batches of {BATCH}), {allowed} allowed",
            mix.len()
        );
    }

    let runners: [Runner; 10] = [
        run_owner,
        run_group_owner,
        run_hierarchy,
        run_team_lead,
        run_org_default,
        run_sharing_rule,
        run_criteria_rule,
        run_manual_share,
        run_denied,
        run_mix,
    ];
    for (i, run) in runners.iter().enumerate() {
        let (name, reqs) = match names.get(i) {
            Some(name) => (*name, &buckets[i]),
            None => ("mix", &mix_part),
        };
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let allowed = run(&w, reqs);
        eprintln!(
            "run_{name}: {} checks ({} requests x {ROUNDS}), {allowed} allowed",
            reqs.len() * ROUNDS,
            reqs.len()
        );
    }
    // The same checks as `run_mix`, in batches: the difference per check
    // is what deciding a batch together saves (or costs).
    if only.is_empty() || only.iter().any(|o| o == "bulk") {
        let allowed = run_bulk(&w, &mix_part);
        eprintln!(
            "run_bulk: {} checks ({} requests in batches of {BATCH} x {ROUNDS}), {allowed} allowed",
            mix_part.len() * ROUNDS,
            mix_part.len()
        );
    }
    // The mix's checks with each batch's subject the subject of its first.
    let one_subject: Vec<CheckRequest> = mix_part
        .chunks(BATCH)
        .flat_map(|c| {
            let subject = c[0].subject.clone();
            c.iter().map(move |r| CheckRequest {
                subject: subject.clone(),
                ..r.clone()
            })
        })
        .collect();
    if only.is_empty() || only.iter().any(|o| o == "one_subject") {
        let by_one = run_one_subject(&w, &one_subject);
        let batched = run_bulk_one_subject(&w, &one_subject);
        eprintln!(
            "run_one_subject / run_bulk_one_subject: {} checks each ({} requests, one subject per {BATCH}, x {ROUNDS}), {by_one} / {batched} allowed",
            one_subject.len() * ROUNDS,
            one_subject.len()
        );
    }
}

/// This process's resident and peak resident memory, from /proc (Linux).
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    };
    format!("VmRSS {}, VmHWM {}", field("VmRSS:"), field("VmHWM:"))
}
