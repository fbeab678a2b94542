//! Engine benchmarks on SPEC section 7's crm-large data set: single Check
//! decisions by the path that decides them, LookupRecords and Filter for a
//! subject who sees about 100,000 records, each on the cached engine (warm)
//! and on the direct one for comparison; and cold checks, right after a
//! write dropped what the check reads (group `cold`).
//!
//! `cargo bench --bench engine` (crm-large: about 10 s of set-up and 1.2
//! GiB while loading); `WARDEN_BENCH_PRESET=small cargo bench --bench
//! engine` for a quick run. Set-up lives in [`fixture`] alone: the data set
//! is generated and loaded once for every benchmark.

#[path = "support/cold.rs"]
mod cold;

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

use warden::cache::Cached;
use warden::engine::decision;
use warden::engine::document::changes_of;
use warden::engine::model::Reason;
use warden::engine::{CheckRequest, Direct, Engine, Expand, Limits};
use warden::generate::{check_mix, generate, Landmarks, Params, Preset};

use cold::{cold_checks, ColdCheck, ColdWrite};

/// The server's allocator (src/main.rs), so the engine's tables sit in
/// memory as they do when served: mimalloc's arenas, which ask the kernel
/// for transparent huge pages. Under glibc's malloc the million-record
/// tables were on 4 KiB pages and a check's random record look-ups paid
/// page walks the server does not (docs/benchmarks.md, "Part AC").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Checks per bucket, cycled through so one request's cache lines do not
/// stand for the path.
const PER_BUCKET: usize = 256;
/// Size of the mix the buckets are drawn from.
const MIX: usize = 50_000;
/// Cold checks per kind of write, cycled through.
const COLD: usize = 64;

/// The decision paths reported separately, in SPEC order, with the reason
/// that puts a check in each.
const BUCKETS: [(&str, Reason); 7] = [
    ("owner", Reason::Owner),
    ("group_owner", Reason::GroupOwner),
    ("hierarchy", Reason::Hierarchy),
    ("org_default", Reason::OrgDefault),
    ("sharing_rule", Reason::SharingRule),
    ("manual_share", Reason::ManualShare),
    ("denied", Reason::InsufficientAccess),
];

struct Fixture {
    org: String,
    engine: Engine<Cached>,
    now: DateTime<Utc>,
    /// Checks of each bucket, in `BUCKETS` order.
    buckets: Vec<Vec<CheckRequest>>,
    /// The whole mix, as the engine sees it in production.
    mix: Vec<CheckRequest>,
    landmarks: Landmarks,
    /// Cold checks after a group write, and after a role re-parent.
    cold: [(&'static str, Vec<ColdCheck>); 2],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(fixture);

fn preset() -> Preset {
    match std::env::var("WARDEN_BENCH_PRESET").as_deref() {
        Ok("small") => Preset::Small,
        _ => Preset::CrmLarge,
    }
}

/// Generates the data set, loads it into a cached engine without
/// validation (as a store load does), runs every check of the mix once so
/// the caches are warm, and sorts the checks by the reason they got.
fn fixture() -> Fixture {
    let started = Instant::now();
    // WARDEN_BENCH_SCALE=F: records, shares and nesting depths times F.
    let scale = std::env::var("WARDEN_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let params = Params::of(preset())
        .scaled(scale)
        .expect("WARDEN_BENCH_SCALE is a positive number");
    let generated = generate(&params).expect("preset parameters are valid");
    let doc = generated.document;
    let org = doc.organization.clone();
    let generated_in = started.elapsed();

    let engine = Engine::new(Cached::default(), Limits::default());
    let loading = Instant::now();
    engine.apply(&org, 1, &changes_of(&doc));
    let loaded_in = loading.elapsed();
    let mix = check_mix(&doc, MIX, 7);

    let now = Utc::now();
    let mut buckets: Vec<Vec<CheckRequest>> = vec![Vec::new(); BUCKETS.len()];
    for req in &mix {
        let (d, _) = engine
            .check(&org, req, now)
            .expect("generated checks are well-formed");
        if let Some(b) = BUCKETS.iter().position(|(_, r)| *r == d.reason) {
            if buckets[b].len() < PER_BUCKET {
                buckets[b].push(req.clone());
            }
        }
    }
    // Taken after the warm-up, so every write below drops warm entries.
    let cold = [
        (
            "group_write",
            cold_checks(&engine, &doc, &mix, ColdWrite::Group, COLD, now),
        ),
        (
            "role_reparent",
            cold_checks(&engine, &doc, &mix, ColdWrite::RoleReparent, COLD, now),
        ),
    ];
    drop(doc);
    let landmarks = generated.landmarks;
    let (visible, _) = engine
        .lookup_records(
            &org,
            &landmarks.division_head,
            &landmarks.private_module,
            "view",
            now,
        )
        .expect("the division head exists");
    eprintln!(
        "fixture: '{org}' generated in {generated_in:.2?}, loaded in {loaded_in:.2?}; \
         {} sees {} records of {}; checks per bucket: {}; cache: {:?}",
        landmarks.division_head,
        visible.len(),
        landmarks.private_module,
        BUCKETS
            .iter()
            .zip(&buckets)
            .map(|((name, _), b)| format!("{name} {}", b.len()))
            .collect::<Vec<_>>()
            .join(", "),
        engine.expander().stats(),
    );
    Fixture {
        org,
        engine,
        now,
        buckets,
        mix,
        landmarks,
        cold,
    }
}

fn check_decisions(c: &mut Criterion) {
    let f = &*FIXTURE;
    let mut group = c.benchmark_group("check");
    for ((name, _), reqs) in BUCKETS.iter().zip(&f.buckets) {
        if reqs.is_empty() {
            eprintln!("no check decided as {name}; skipped");
            continue;
        }
        group.bench_with_input(BenchmarkId::new("cached", name), reqs, |b, reqs| {
            let mut i = 0;
            b.iter(|| {
                let req = &reqs[i % reqs.len()];
                i += 1;
                black_box(f.engine.check(&f.org, black_box(req), f.now))
            })
        });
        group.bench_with_input(BenchmarkId::new("direct", name), reqs, |b, reqs| {
            let mut i = 0;
            b.iter(|| {
                let req = &reqs[i % reqs.len()];
                i += 1;
                black_box(f.engine.read(&f.org, |org, _| {
                    decision::check(org, &Direct, black_box(req), f.now.into())
                }))
            })
        });
    }
    group.bench_function(BenchmarkId::new("cached", "mix"), |b| {
        let mut i = 0;
        b.iter(|| {
            let req = &f.mix[i % f.mix.len()];
            i += 1;
            black_box(f.engine.check(&f.org, black_box(req), f.now))
        })
    });
    group.finish();

    // A check as the server makes one: between two checks a call's ~50k
    // instructions of transport, HTTP/2 and tonic work have pushed the
    // engine's lines out of L1 and L2, so each look-up of a check waits on
    // the next level and nothing of the previous check's work overlaps it
    // (the `cached` benchmarks above run checks back to back, where the CPU
    // overlaps one check's misses with the next). Here a walk over
    // `EVICT` bytes runs between checks, untimed; only the check is timed.
    const EVICT: usize = 1 << 20;
    let mut group = c.benchmark_group("check");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    group.bench_function(BenchmarkId::new("evicted", "mix"), |b| {
        let mut scratch = vec![0u64; EVICT / 8];
        let mut i = 0;
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                for line in scratch.chunks_mut(8) {
                    line[0] = line[0].wrapping_add(1);
                }
                black_box(&scratch);
                let req = &f.mix[i % f.mix.len()];
                i += 1;
                let t = Instant::now();
                let _ = black_box(f.engine.check(&f.org, black_box(req), f.now));
                spent += t.elapsed();
            }
            spent
        })
    });
    group.finish();

    let mut group = c.benchmark_group("check");
    // CheckBulk's engine share: batches of 100 consecutive checks of the
    // mix through `check_many`, as `warden-load --mode bulk` sends them.
    // The time is per batch; its throughput is decisions per second.
    let batches: Vec<Vec<&CheckRequest>> = f.mix.chunks(100).map(|c| c.iter().collect()).collect();
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("bulk", "mix_100"), |b| {
        let mut i = 0;
        b.iter(|| {
            let batch = &batches[i % batches.len()];
            i += 1;
            black_box(f.engine.check_many(&f.org, black_box(batch), f.now))
        })
    });
    group.finish();
}

fn lookups(c: &mut Criterion) {
    let f = &*FIXTURE;
    let (subject, module) = (&f.landmarks.division_head, &f.landmarks.private_module);
    let mut group = c.benchmark_group("lookup_records");
    group.sample_size(10);
    group.bench_function("cached", |b| {
        b.iter(|| {
            black_box(
                f.engine
                    .lookup_records(&f.org, subject, module, "view", f.now),
            )
        })
    });
    group.bench_function("direct", |b| {
        b.iter(|| {
            black_box(f.engine.read(&f.org, |org, _| {
                warden::engine::lookup::lookup_records(org, &Direct, subject, module, "view", f.now)
            }))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("filter");
    group.sample_size(20);
    group.bench_function("cached", |b| {
        b.iter(|| black_box(f.engine.filter(&f.org, subject, module, "view", f.now)))
    });
    group.bench_function("direct", |b| {
        b.iter(|| {
            black_box(f.engine.read(&f.org, |org, _| {
                warden::engine::lookup::filter(org, &Direct, subject, module, "view", f.now)
            }))
        })
    });
    group.finish();
}

/// A check right after a write dropped what it changed: each iteration
/// drops a real write's invalidation (as the write path hands it to the
/// cache) and times one check by a subject the write touched, which has to
/// re-expand what it reads.
fn cold_decisions(c: &mut Criterion) {
    let f = &*FIXTURE;
    let mut group = c.benchmark_group("cold");
    for (name, colds) in &f.cold {
        if colds.is_empty() {
            eprintln!("no cold check for {name}; skipped");
            continue;
        }
        group.bench_with_input(BenchmarkId::new("cached", name), colds, |b, colds| {
            let mut i = 0;
            // Dropping the entries is the write's cost (under its lock),
            // not the check's: it runs in the untimed set-up.
            b.iter_batched(
                || {
                    let c = &colds[i % colds.len()];
                    i += 1;
                    let _ = f
                        .engine
                        .read(&f.org, |org, x| x.invalidate(org, &c.invalidation));
                    &c.request
                },
                |req| black_box(f.engine.check(&f.org, black_box(req), f.now)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = check_decisions, lookups, cold_decisions
}
criterion_main!(benches);
