//! `warden-load`: a load generator for a running `warden serve` on this
//! machine. It draws a deterministic mix of checks from a generated data
//! set (`--preset`, the one the server holds: `--import` loads it first, or
//! start the server with `--bootstrap`), then drives, each for a fixed time
//! and at most `--max-calls` calls: unary `Check` from many concurrent
//! calls over a few HTTP/2 connections, `CheckBulk` of 1,000 checks, and
//! `LookupRecords` for a subject who sees about half of a private module;
//! `--mode health` (part of `all`) drives the gRPC health check the same
//! way, as the floor the transport alone costs. It prints throughput and
//! latency percentiles from an HDR histogram and, with `--server-pid`, the
//! server's CPU per call over each measured window; with `--rounds N` it
//! repeats every phase N times and ends with a table of medians.
//! `--target cerbos` drives a Cerbos PDP instead (`CheckResources`, one
//! resource and one action a call, half of them owned by the principal),
//! for the comparison of scripts/bench-cerbos.sh; `--scale` draws the
//! checks from a scaled data set (scripts/bench-scale.sh).
//! Traffic goes to loopback addresses only.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use warden::api::pb;
use warden::api::pb::admin_service_client::AdminServiceClient;
use warden::api::pb::check_service_client::CheckServiceClient;
use warden::generate::{check_mix, generate, Params, Preset};

/// Drives Check, CheckBulk and LookupRecords against a local warden.
/// A flag given twice takes its last value, so a script's defaults can be
/// overridden by the flags passed after them.
#[derive(Parser, Debug)]
#[command(name = "warden-load", version, about, args_override_self = true)]
struct Args {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Data set the checks are drawn from; the server must hold it.
    #[arg(long, value_enum, default_value_t = Preset::CrmLarge)]
    preset: Preset,
    /// Import the data set first, replacing the organization.
    #[arg(long)]
    import: bool,
    /// What to drive.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Unary Check calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// CheckBulk calls in flight at once.
    #[arg(long, default_value_t = 4)]
    bulk_concurrency: usize,
    /// Checks per CheckBulk call (the server allows up to 1,000).
    #[arg(long, default_value_t = 1000)]
    bulk_size: usize,
    /// Seconds each of Check and CheckBulk is measured.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds of unmeasured traffic before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Most measured calls per phase; a phase ends at this count or at its duration.
    #[arg(long, default_value_t = 10_000_000)]
    max_calls: u64,
    /// Distinct checks in the mix.
    #[arg(long, default_value_t = 100_000)]
    mix: usize,
    /// LookupRecords calls, one after another.
    #[arg(long, default_value_t = 5)]
    lookup_runs: usize,
    /// LookupRecords page size.
    #[arg(long, default_value_t = 10_000)]
    page_size: u32,
    /// Worker threads of this client.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Process id of the server, to report the CPU it used in each phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Times every phase is run, in turn; more than one ends with a table
    /// of medians (a busy machine makes single runs differ by 10–30 %).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The server driven: Warden, or a Cerbos PDP with the owner policy of
    /// scripts/bench-cerbos.sh (health check and CheckResources only).
    #[arg(long, value_enum, default_value_t = Target::Warden)]
    target: Target,
    /// The data set times this factor (`warden generate --scale`): records,
    /// manual shares and nesting depths; the server must hold the same.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

/// Which server `warden-load` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Warden,
    /// A Cerbos PDP: `cerbos.svc.v1.CerbosService/CheckResources`.
    Cerbos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The gRPC health check: the transport's floor.
    Health,
    Check,
    Bulk,
    Lookup,
    /// The health check and Check only: a unary call against its floor
    /// (what scripts/bench-cerbos.sh compares with Cerbos).
    Unary,
    All,
}

/// What one phase measured.
struct Tally {
    latency_us: Histogram<u64>,
    calls: u64,
    decisions: u64,
    errors: u64,
    first_error: Option<String>,
    reasons: BTreeMap<i32, u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)
                .context("latency histogram")?,
            calls: 0,
            decisions: 0,
            errors: 0,
            first_error: None,
            reasons: BTreeMap::new(),
        })
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latency_us
            .add(&other.latency_us)
            .context("merging histograms")?;
        self.calls += other.calls;
        self.decisions += other.decisions;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        for (r, n) in other.reasons {
            *self.reasons.entry(r).or_default() += n;
        }
        Ok(())
    }
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((utime + stime) / 100.0)
}

/// Write system calls a process has made (`syscw` of /proc/PID/io): the
/// server's writes per call show whether responses are coalesced.
fn write_calls(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The server's CPU seconds and write calls at one instant.
fn server_usage(pid: Option<&str>) -> (Option<f64>, Option<u64>) {
    match pid {
        Some(pid) => (cpu_seconds(pid), write_calls(pid)),
        None => (None, None),
    }
}

struct CpuWatch {
    server: Option<String>,
    at_start: (Option<f64>, Option<f64>),
    started: Instant,
}

impl CpuWatch {
    fn start(server_pid: Option<u32>) -> CpuWatch {
        let server = server_pid.map(|p| p.to_string());
        CpuWatch {
            at_start: (server.as_deref().and_then(cpu_seconds), cpu_seconds("self")),
            server,
            started: Instant::now(),
        }
    }

    fn report(&self) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        let used = |before: Option<f64>, now: Option<f64>| match (before, now) {
            (Some(b), Some(n)) if wall > 0.0 => Some((n - b) / wall),
            _ => None,
        };
        let client = used(self.at_start.1, cpu_seconds("self"));
        let server = used(
            self.at_start.0,
            self.server.as_deref().and_then(cpu_seconds),
        );
        let mut out = String::from("cores busy:");
        if let Some(s) = server {
            out.push_str(&format!(" server {s:.2}"));
        }
        if let Some(c) = client {
            out.push_str(&format!(" client {c:.2}"));
        }
        out
    }
}

/// What one run of a phase measured.
struct Measured {
    tally: Tally,
    /// Wall time from the end of the warm-up to the last measured answer.
    elapsed: Duration,
    /// CPU seconds the server used over that same window.
    server_cpu: Option<f64>,
    /// Write system calls the server made over that same window.
    server_writes: Option<u64>,
}

/// Runs `concurrency` workers, each calling `call` in a loop: unmeasured
/// until `warmup` ends, then measured until `duration` more has passed or
/// `max_calls` measured calls have started. `call` gives the reasons of
/// the decisions it got. The server's CPU time is read when the warm-up
/// ends and when the last measured call has been answered, so it covers
/// the measured calls and not the warm-up.
async fn drive<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    max_calls: u64,
    server_pid: Option<u32>,
    call: F,
) -> anyhow::Result<Measured>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<i32>, tonic::Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let started = Arc::new(AtomicU64::new(0));
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let server = server_pid.map(|p| p.to_string());
    let cpu_at_start = {
        let server = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(measure_from)).await;
            server_usage(server.as_deref())
        })
    };
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let call = call.clone();
        let started = started.clone();
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::new()?;
            let mut seq = w as u64;
            let mut last = measure_from;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let measured = now >= measure_from;
                if measured && started.fetch_add(1, Ordering::Relaxed) >= max_calls {
                    break;
                }
                let result = call(w, seq).await;
                seq += concurrency as u64;
                if !measured {
                    continue;
                }
                last = Instant::now();
                tally.calls += 1;
                tally
                    .latency_us
                    .saturating_record((last - now).as_micros() as u64);
                match result {
                    Ok(reasons) => {
                        tally.decisions += reasons.len() as u64;
                        for r in reasons {
                            *tally.reasons.entry(r).or_default() += 1;
                        }
                    }
                    Err(status) => {
                        tally.errors += 1;
                        if tally.first_error.is_none() {
                            tally.first_error = Some(format!("{status}"));
                        }
                    }
                }
            }
            anyhow::Ok((tally, last))
        }));
    }
    let mut total = Tally::new()?;
    let mut finished = measure_from;
    for w in workers {
        let (tally, last) = w.await.context("a worker panicked")??;
        finished = finished.max(last);
        total.merge(tally)?;
    }
    let at_end = server_usage(server.as_deref());
    let at_start = cpu_at_start.await.context("the CPU sampler panicked")?;
    Ok(Measured {
        tally: total,
        elapsed: finished.saturating_duration_since(measure_from),
        server_cpu: at_start.0.zip(at_end.0).map(|(a, b)| b - a),
        server_writes: at_start.1.zip(at_end.1).map(|(a, b)| b.saturating_sub(a)),
    })
}

/// One phase of one round, as the closing table shows it.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    calls_per_sec: f64,
    decisions_per_sec: f64,
    /// Server CPU per call, in µs.
    cpu_us_per_call: Option<f64>,
    /// Server CPU per decision, in µs (bulk calls carry many).
    cpu_us_per_decision: Option<f64>,
    /// Median time of a call, in ms (LookupRecords: the whole stream).
    call_ms: f64,
    /// LookupRecords: median time to the first page, in ms.
    first_page_ms: Option<f64>,
    /// Server write system calls per call.
    writes_per_call: Option<f64>,
    errors: u64,
}

impl Row {
    fn of(m: &Measured) -> Row {
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let t = &m.tally;
        let per = |n: u64| m.server_cpu.filter(|_| n > 0).map(|c| c * 1e6 / n as f64);
        Row {
            calls_per_sec: t.calls as f64 / secs,
            decisions_per_sec: t.decisions as f64 / secs,
            cpu_us_per_call: per(t.calls),
            cpu_us_per_decision: per(t.decisions),
            call_ms: t.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
            first_page_ms: None,
            writes_per_call: m
                .server_writes
                .filter(|_| t.calls > 0)
                .map(|w| w as f64 / t.calls as f64),
            errors: t.errors,
        }
    }
}

/// The median of what `f` gives over the rounds that have it.
fn median(rows: &[Row], f: impl Fn(&Row) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = rows
        .iter()
        .filter_map(f)
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The closing table: medians over the rounds of each phase, and each
/// phase's server CPU per call over the health check's in the same round
/// (a ratio is taken within a round, then its median over the rounds, so
/// that a slow minute of the shared machine moves both sides of it).
fn print_summary(phases: &[(String, Vec<Row>)], health: Option<&[Row]>) {
    let fmt = |x: Option<f64>, digits: usize| match x {
        Some(x) => format!("{x:.digits$}"),
        None => "-".to_string(),
    };
    println!();
    println!(
        "| phase | calls/s | decisions/s | server CPU µs/call | server CPU µs/decision | × health CPU per call | server writes/call | p50 ms/call | first page ms | errors |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, rows) in phases {
        let ratio = health.and_then(|h| {
            let ratios = sorted_ratios(&paired_cpu(rows, h));
            ratios.get(ratios.len() / 2).copied()
        });
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(median(rows, |r| Some(r.calls_per_sec)), 0),
            fmt(median(rows, |r| Some(r.decisions_per_sec)), 0),
            fmt(median(rows, |r| r.cpu_us_per_call), 1),
            fmt(median(rows, |r| r.cpu_us_per_decision), 2),
            fmt(ratio, 2),
            fmt(median(rows, |r| r.writes_per_call), 2),
            fmt(median(rows, |r| Some(r.call_ms)), 2),
            fmt(median(rows, |r| r.first_page_ms), 2),
            rows.iter().map(|r| r.errors).sum::<u64>(),
        );
    }
    println!(
        "(medians over {} round(s); decisions/s of Check and Health count one per call)",
        phases.first().map(|p| p.1.len()).unwrap_or(0)
    );
    if let Some(h) = health {
        for (name, rows) in phases.iter().filter(|(n, _)| n != "Health") {
            if let Some(spread) = RatioSpread::of(rows, h) {
                println!("{name} ÷ Health, server CPU per call: {spread}");
            }
        }
    }
}

/// Each round's server CPU per call of a phase and of the health check in
/// the same round, for the rounds that have both (a health figure above
/// zero, so that every ratio is finite).
fn paired_cpu(rows: &[Row], health: &[Row]) -> Vec<(f64, f64)> {
    rows.iter()
        .zip(health)
        .filter_map(|(r, h)| r.cpu_us_per_call.zip(h.cpu_us_per_call))
        .filter(|(r, h)| r.is_finite() && *h > 0.0)
        .collect()
}

/// The per-round ratios of [`paired_cpu`]'s pairs, in ascending order.
fn sorted_ratios(pairs: &[(f64, f64)]) -> Vec<f64> {
    let mut ratios: Vec<f64> = pairs.iter().map(|(r, h)| r / h).collect();
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// How far a phase's per-round ratio to the health check can be trusted:
/// on a shared host the speed drifts between phases, so one round's ratio
/// means little and the median of many short paired rounds is the figure
/// (`--mode unary --rounds 60 --duration-secs 1`).
struct RatioSpread {
    rounds: usize,
    q1: f64,
    median: f64,
    q3: f64,
    /// The mean CPU per call of the phase over the health check's.
    of_means: f64,
    /// A 95 % interval of the median: the 2.5th and 97.5th percentiles of
    /// the medians of 2,000 resamples of the rounds.
    interval: (f64, f64),
}

impl RatioSpread {
    /// Needs 10 paired rounds; fewer say too little to print.
    fn of(rows: &[Row], health: &[Row]) -> Option<RatioSpread> {
        let pairs = paired_cpu(rows, health);
        if pairs.len() < 10 {
            return None;
        }
        let ratios = sorted_ratios(&pairs);
        let at = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        let total = |f: fn(&(f64, f64)) -> f64| pairs.iter().map(f).sum::<f64>();
        // A fixed xorshift: the same rounds give the same interval.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut medians: Vec<f64> = (0..2000)
            .map(|_| {
                let mut sample: Vec<f64> = (0..ratios.len())
                    .map(|_| ratios[(next() % ratios.len() as u64) as usize])
                    .collect();
                sample.sort_by(f64::total_cmp);
                sample[sample.len() / 2]
            })
            .collect();
        medians.sort_by(f64::total_cmp);
        Some(RatioSpread {
            rounds: ratios.len(),
            q1: at(&ratios, 0.25),
            median: ratios[ratios.len() / 2],
            q3: at(&ratios, 0.75),
            // The rounds' sums: their means over the same count.
            of_means: total(|p| p.0) / total(|p| p.1),
            interval: (at(&medians, 0.025), at(&medians, 0.975)),
        })
    }
}

impl std::fmt::Display for RatioSpread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median of {} rounds {:.3}× (95 % interval {:.3}–{:.3}), quartiles {:.3}–{:.3}, ratio of the means {:.3}×",
            self.rounds, self.median, self.interval.0, self.interval.1, self.q1, self.q3, self.of_means
        )
    }
}

fn print_tally(name: &str, unit: &str, m: &Measured, cpu: &CpuWatch) {
    let (tally, elapsed) = (&m.tally, m.elapsed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let h = &tally.latency_us;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name}: {} calls, {} {unit} in {secs:.2} s = {:.0} {unit}/s ({:.0} calls/s); errors {}",
        tally.calls,
        tally.decisions,
        tally.decisions as f64 / secs,
        tally.calls as f64 / secs,
        tally.errors,
    );
    println!(
        "{name}: call latency ms p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}; {}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        cpu.report(),
    );
    let row = Row::of(m);
    if let (Some(call), Some(decision)) = (row.cpu_us_per_call, row.cpu_us_per_decision) {
        println!(
            "{name}: server CPU {call:.1} µs per call, {decision:.2} µs per decision (measured window)"
        );
    }
    if let Some(e) = &tally.first_error {
        println!("{name}: first error: {e}");
    }
    if !tally.reasons.is_empty() {
        let shares: Vec<String> = tally
            .reasons
            .iter()
            .map(|(r, n)| {
                let name = pb::Reason::try_from(*r)
                    .map(|r| r.as_str_name().trim_start_matches("REASON_").to_string())
                    .unwrap_or_else(|_| r.to_string());
                format!("{name} {:.1}%", 100.0 * *n as f64 / tally.decisions as f64)
            })
            .collect();
        println!("{name}: reasons {}", shares.join(", "));
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(600))
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !args.addr.ip().is_loopback() {
        bail!(
            "--addr {}: warden-load sends traffic to loopback addresses only",
            args.addr
        );
    }
    if args.connections == 0 || args.concurrency == 0 || args.bulk_concurrency == 0 {
        bail!("--connections, --concurrency and --bulk-concurrency must be at least 1");
    }
    if args.bulk_size == 0 || args.mix == 0 {
        bail!("--bulk-size and --mix must be at least 1");
    }

    if args.target == Target::Cerbos {
        return run_cerbos(&args).await;
    }
    let started = Instant::now();
    let generated = generate(&scaled_params(&args)?)?;
    let org = generated.document.organization.clone();
    let landmarks = generated.landmarks.clone();
    println!(
        "data set '{org}': {} users, {} records, {} shares (generated in {:.2?})",
        generated.document.users.len(),
        generated.document.records.len(),
        generated.document.shares.len(),
        started.elapsed()
    );

    let channels = {
        let mut v = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            v.push(connect(args.addr).await?);
        }
        v
    };
    let mut admin = AdminServiceClient::new(channels[0].clone())
        .max_encoding_message_size(1 << 30)
        .max_decoding_message_size(64 << 20);
    if args.import {
        let document = serde_json::to_string(&generated.document)?;
        let bytes = document.len();
        let t = Instant::now();
        let revision = admin
            .import(pb::ImportRequest {
                org_id: org.clone(),
                actor: String::new(),
                document,
                replace: true,
            })
            .await
            .context("Import")?
            .into_inner()
            .revision;
        println!(
            "imported {:.1} MiB of JSON in {:.2?} (revision {revision})",
            bytes as f64 / (1 << 20) as f64,
            t.elapsed()
        );
    }
    let mix: Arc<Vec<pb::CheckRequest>> = Arc::new(
        check_mix(&generated.document, args.mix, 11)
            .into_iter()
            .map(|r| pb::CheckRequest {
                org_id: org.clone().into(),
                subject: r.subject,
                module: r.module,
                action: r.action,
                record_id: r.record.unwrap_or_default(),
                ..Default::default()
            })
            .collect(),
    );
    drop(generated);
    let summary = admin
        .get_organization(pb::GetOrganizationRequest {
            org_id: org.clone(),
            ..Default::default()
        })
        .await
        .with_context(|| {
            format!("organization '{org}' is not on the server: pass --import, or serve with --bootstrap")
        })?
        .into_inner();
    println!("server holds '{org}': {summary:?}");

    let clients: Arc<Vec<CheckServiceClient<Channel>>> = Arc::new(
        channels
            .iter()
            .map(|c| {
                CheckServiceClient::new(c.clone())
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20)
            })
            .collect(),
    );
    let warmup = Duration::from_secs(args.warmup_secs);
    let duration = Duration::from_secs(args.duration_secs);
    let healths: Arc<Vec<HealthClient<Channel>>> = Arc::new(
        channels
            .iter()
            .map(|c| HealthClient::new(c.clone()))
            .collect(),
    );
    let all = args.mode == Mode::All;
    let unary = args.mode == Mode::Unary;
    let mut health_rows = Vec::new();
    let mut check_rows = Vec::new();
    let mut bulk_rows = Vec::new();
    let mut lookup_rows = Vec::new();

    for round in 1..=args.rounds.max(1) {
        if args.rounds > 1 {
            println!("round {round} of {}", args.rounds);
        }
        if all || unary || args.mode == Mode::Health {
            // The server's overall health: the same path through transport
            // and layers as Check, no engine.
            health_rows.push(health_phase(&args, &healths, "Health").await?);
        }

        if all || unary || args.mode == Mode::Check {
            let (clients, mix) = (clients.clone(), mix.clone());
            let cpu = CpuWatch::start(args.server_pid);
            let measured = drive(
                args.concurrency,
                warmup,
                duration,
                args.max_calls,
                args.server_pid,
                move |w, seq| {
                    let mut client = clients[w % clients.len()].clone();
                    let req = mix[(seq % mix.len() as u64) as usize].clone();
                    async move {
                        let answer = client.check(req).await?.into_inner();
                        Ok(vec![answer.reason])
                    }
                },
            )
            .await?;
            print_tally(
                &format!(
                    "Check x{} over {} connections",
                    args.concurrency, args.connections
                ),
                "checks",
                &measured,
                &cpu,
            );
            check_rows.push(Row::of(&measured));
        }

        if all || args.mode == Mode::Bulk {
            let (clients, mix) = (clients.clone(), mix.clone());
            let size = args.bulk_size;
            let cpu = CpuWatch::start(args.server_pid);
            let measured = drive(
                args.bulk_concurrency,
                warmup,
                duration,
                args.max_calls,
                args.server_pid,
                move |w, seq| {
                    let mut client = clients[w % clients.len()].clone();
                    let from = (seq as usize * size) % mix.len();
                    let checks = (0..size)
                        .map(|i| mix[(from + i) % mix.len()].clone())
                        .collect();
                    async move {
                        let answer = client
                            .check_bulk(pb::CheckBulkRequest { checks })
                            .await?
                            .into_inner();
                        Ok(answer.results.iter().map(|r| r.reason).collect())
                    }
                },
            )
            .await?;
            print_tally(
                &format!("CheckBulk({size}) x{}", args.bulk_concurrency),
                "decisions",
                &measured,
                &cpu,
            );
            bulk_rows.push(Row::of(&measured));
        }

        if all || args.mode == Mode::Lookup {
            lookup_rows.push(lookup(&args, &clients[0], &org, &landmarks).await?);
        }
    }

    let mut phases = Vec::new();
    for (name, rows) in [
        ("Health".to_string(), health_rows.clone()),
        (format!("Check x{}", args.concurrency), check_rows),
        (
            format!("CheckBulk({}) x{}", args.bulk_size, args.bulk_concurrency),
            bulk_rows,
        ),
        (
            format!(
                "LookupRecords({} in {})",
                landmarks.division_head, landmarks.private_module
            ),
            lookup_rows,
        ),
    ] {
        if !rows.is_empty() {
            phases.push((name, rows));
        }
    }
    let health = (health_rows.len() == args.rounds.max(1)).then_some(health_rows.as_slice());
    print_summary(&phases, health);
    Ok(())
}

/// `--lookup-runs` LookupRecords calls one after another, each read to its
/// last page: the time to the first page and to the last, and the server's
/// CPU per call over all of them.
async fn lookup(
    args: &Args,
    client: &CheckServiceClient<Channel>,
    org: &str,
    landmarks: &warden::generate::Landmarks,
) -> anyhow::Result<Row> {
    let mut client = client.clone();
    let runs = args.lookup_runs.max(1);
    let mut times = Vec::with_capacity(runs);
    let mut firsts = Vec::with_capacity(runs);
    let mut ids = 0usize;
    let server = args.server_pid.map(|p| p.to_string());
    let before = server_usage(server.as_deref());
    let all_runs = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        let mut stream = client
            .lookup_records(pb::LookupRecordsRequest {
                org_id: org.to_string(),
                subject: landmarks.division_head.clone(),
                module: landmarks.private_module.clone(),
                action: "view".into(),
                page_size: args.page_size,
                ..Default::default()
            })
            .await
            .context("LookupRecords")?
            .into_inner();
        ids = 0;
        let mut first = None;
        while let Some(page) = stream.next().await {
            ids += page.context("LookupRecords page")?.record_ids.len();
            first.get_or_insert_with(|| t.elapsed());
        }
        times.push(t.elapsed());
        firsts.push(first.unwrap_or_else(|| t.elapsed()));
    }
    let wall = all_runs.elapsed();
    let after = server_usage(server.as_deref());
    times.sort();
    firsts.sort();
    let median = times[times.len() / 2];
    let first = firsts[firsts.len() / 2];
    println!(
        "LookupRecords({} in {}, page {}): {ids} ids; median {median:.2?} of {} runs (min {:.2?}, max {:.2?}); first page after {first:.2?} (median)",
        landmarks.division_head,
        landmarks.private_module,
        args.page_size,
        times.len(),
        times[0],
        times[times.len() - 1],
    );
    let cpu_us_per_call = before
        .0
        .zip(after.0)
        .map(|(a, b)| (b - a) * 1e6 / runs as f64);
    Ok(Row {
        calls_per_sec: runs as f64 / wall.as_secs_f64().max(1e-9),
        decisions_per_sec: (ids * runs) as f64 / wall.as_secs_f64().max(1e-9),
        cpu_us_per_call,
        cpu_us_per_decision: cpu_us_per_call.filter(|_| ids > 0).map(|c| c / ids as f64),
        call_ms: median.as_secs_f64() * 1000.0,
        first_page_ms: Some(first.as_secs_f64() * 1000.0),
        writes_per_call: before
            .1
            .zip(after.1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / runs as f64),
        errors: 0,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warden-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The parameters of `--preset` at `--scale`: the data set the server was
/// filled with by `warden generate --preset P --scale F`.
fn scaled_params(args: &Args) -> anyhow::Result<Params> {
    Params::of(args.preset)
        .scaled(args.scale)
        .map_err(|e| anyhow::anyhow!("--scale: {}", e.0))
}

/// The health check of the server at `args.addr`: the transport's floor,
/// measured the same way for Warden and for Cerbos. A health call decides
/// nothing; each counts as one decision, so that its rates and costs read
/// as the other phases' do.
async fn health_phase(
    args: &Args,
    healths: &Arc<Vec<HealthClient<Channel>>>,
    label: &str,
) -> anyhow::Result<Row> {
    let healths = healths.clone();
    let cpu = CpuWatch::start(args.server_pid);
    let mut measured = drive(
        args.concurrency,
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.duration_secs),
        args.max_calls,
        args.server_pid,
        move |w, _| {
            let mut client = healths[w % healths.len()].clone();
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                Ok(Vec::new())
            }
        },
    )
    .await?;
    measured.tally.decisions = measured.tally.calls;
    print_tally(
        &format!(
            "{label} x{} over {} connections",
            args.concurrency, args.connections
        ),
        "calls",
        &measured,
        &cpu,
    );
    Ok(Row::of(&measured))
}

/// `--target cerbos`: the health check and `CheckResources` of a Cerbos
/// PDP holding the owner policy of scripts/bench-cerbos.sh, with the same
/// connections, calls in flight, warm-up, duration and rounds as Warden's
/// Check. Every answer is checked against what the policy must decide, so
/// the figures are of real decisions; a wrong answer or a failed call is
/// an error, and any error fails the run after the table.
async fn run_cerbos(args: &Args) -> anyhow::Result<()> {
    if matches!(args.mode, Mode::Bulk | Mode::Lookup) {
        bail!("--target cerbos drives the health check and CheckResources only: --mode health, check, unary or all");
    }
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(connect(args.addr).await?);
    }
    let healths: Arc<Vec<HealthClient<Channel>>> = Arc::new(
        channels
            .iter()
            .map(|c| HealthClient::new(c.clone()))
            .collect(),
    );
    let clients: Arc<Vec<tonic::client::Grpc<Channel>>> = Arc::new(
        channels
            .iter()
            .map(|c| tonic::client::Grpc::new(c.clone()))
            .collect(),
    );
    let mix: Arc<Vec<cerbos::Call>> =
        Arc::new((0..args.mix as u64).map(cerbos::Call::new).collect());
    // One allowed and one denied call before any measurement: a policy
    // that did not load fails here, with Cerbos's answer, not as a table
    // of errors.
    for call in mix.iter().take(2) {
        cerbos::check(&mut clients[0].clone(), call)
            .await
            .with_context(|| format!("CheckResources of {call}"))?;
    }
    println!(
        "Cerbos at {}: {} distinct calls, half of them on the principal's own lead",
        args.addr,
        mix.len()
    );
    let (mut health_rows, mut check_rows) = (Vec::new(), Vec::new());
    let all = matches!(args.mode, Mode::All | Mode::Unary);
    let mut errors = 0;
    for round in 1..=args.rounds.max(1) {
        if args.rounds > 1 {
            println!("round {round} of {}", args.rounds);
        }
        if all || args.mode == Mode::Health {
            health_rows.push(health_phase(args, &healths, "Cerbos health").await?);
        }
        if all || args.mode == Mode::Check {
            let (clients, mix) = (clients.clone(), mix.clone());
            let cpu = CpuWatch::start(args.server_pid);
            let mut measured = drive(
                args.concurrency,
                Duration::from_secs(args.warmup_secs),
                Duration::from_secs(args.duration_secs),
                args.max_calls,
                args.server_pid,
                move |w, seq| {
                    let mut client = clients[w % clients.len()].clone();
                    let mix = mix.clone();
                    async move {
                        let call = &mix[(seq % mix.len() as u64) as usize];
                        Ok(vec![cerbos::check(&mut client, call).await? as i32])
                    }
                },
            )
            .await?;
            // The tally's reasons hold Cerbos effects here, not Warden's
            // reasons: shown apart, under their own names.
            let effects = std::mem::take(&mut measured.tally.reasons);
            let label = format!(
                "Cerbos CheckResources x{} over {} connections",
                args.concurrency, args.connections
            );
            print_tally(&label, "checks", &measured, &cpu);
            println!("{label}: {}", cerbos::effect_shares(&effects));
            errors += measured.tally.errors;
            check_rows.push(Row::of(&measured));
        }
    }
    let mut phases = Vec::new();
    if !health_rows.is_empty() {
        phases.push(("Health".to_string(), health_rows.clone()));
    }
    if !check_rows.is_empty() {
        phases.push((
            format!("Cerbos CheckResources x{}", args.concurrency),
            check_rows,
        ));
    }
    let health = (health_rows.len() == args.rounds.max(1)).then_some(health_rows.as_slice());
    print_summary(&phases, health);
    if errors > 0 {
        bail!("{errors} CheckResources calls failed or got an answer other than the owner policy's (first error above)");
    }
    Ok(())
}

/// The few messages of Cerbos's public API (cerbos/cerbos,
/// api/public/cerbos/{request,response,engine,effect}/v1, as of 0.55) that
/// a `CheckResources` call sends and reads, written with their field
/// numbers; the fields not listed here are skipped when decoding, as
/// protobuf allows, and never sent.
mod cerbos {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt;

    use prost_types::value::Kind;
    use prost_types::Value;
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic::transport::Channel;

    /// The method of `cerbos.svc.v1.CerbosService`.
    pub const CHECK_RESOURCES: &str = "/cerbos.svc.v1.CerbosService/CheckResources";
    /// The resource kind of the owner policy.
    pub const KIND: &str = "lead";
    /// Distinct principals the calls are spread over.
    const PRINCIPALS: u64 = 1_000;

    /// `cerbos.effect.v1.Effect`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
    #[repr(i32)]
    pub enum Effect {
        Unspecified = 0,
        Allow = 1,
        Deny = 2,
        NoMatch = 3,
    }

    /// `cerbos.engine.v1.Principal`: id and roles.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Principal {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, repeated, tag = "3")]
        pub roles: Vec<String>,
    }

    /// `cerbos.engine.v1.Resource`: kind, id and attributes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(string, tag = "1")]
        pub kind: String,
        #[prost(string, tag = "3")]
        pub id: String,
        #[prost(map = "string, message", tag = "4")]
        pub attr: HashMap<String, Value>,
    }

    /// `cerbos.request.v1.CheckResourcesRequest.ResourceEntry`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceEntry {
        #[prost(string, repeated, tag = "1")]
        pub actions: Vec<String>,
        #[prost(message, optional, tag = "2")]
        pub resource: Option<Resource>,
    }

    /// `cerbos.request.v1.CheckResourcesRequest`: principal and resources.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckResourcesRequest {
        #[prost(message, optional, tag = "3")]
        pub principal: Option<Principal>,
        #[prost(message, repeated, tag = "4")]
        pub resources: Vec<ResourceEntry>,
    }

    /// `cerbos.response.v1.CheckResourcesResponse`: the results.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckResourcesResponse {
        #[prost(message, repeated, tag = "2")]
        pub results: Vec<ResultEntry>,
    }

    /// `cerbos.response.v1.CheckResourcesResponse.ResultEntry`: which
    /// resource, and the effect of each action asked.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResultEntry {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<ResultResource>,
        #[prost(map = "string, enumeration(Effect)", tag = "2")]
        pub actions: HashMap<String, i32>,
    }

    /// `cerbos.response.v1.CheckResourcesResponse.ResultEntry.Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResultResource {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub kind: String,
    }

    /// One call of the mix and the answer the owner policy must give.
    #[derive(Clone, Debug)]
    pub struct Call {
        pub request: CheckResourcesRequest,
        pub principal: String,
        pub resource_id: String,
        pub action: &'static str,
        pub expected: Effect,
    }

    impl Call {
        /// The `seq`th call: principal `user-N` (N = seq mod 1,000) asks
        /// for one action on lead `lead-seq`. An even `seq` is the
        /// principal's own lead (the owner policy allows it), an odd one is
        /// the next principal's (denied): half and half, as Warden's mix
        /// has both. `view` and `edit` alternate in pairs.
        pub fn new(seq: u64) -> Call {
            let principal = format!("user-{}", seq % PRINCIPALS);
            let owner = if seq % 2 == 0 {
                principal.clone()
            } else {
                format!("user-{}", (seq + 1) % PRINCIPALS)
            };
            let resource_id = format!("lead-{seq}");
            let action = if (seq / 2) % 2 == 0 { "view" } else { "edit" };
            let request = CheckResourcesRequest {
                principal: Some(Principal {
                    id: principal.clone(),
                    roles: vec!["user".into()],
                }),
                resources: vec![ResourceEntry {
                    actions: vec![action.into()],
                    resource: Some(Resource {
                        kind: KIND.into(),
                        id: resource_id.clone(),
                        attr: HashMap::from([(
                            "owner".to_string(),
                            Value {
                                kind: Some(Kind::StringValue(owner)),
                            },
                        )]),
                    }),
                }],
            };
            Call {
                request,
                principal,
                resource_id,
                action,
                expected: if seq % 2 == 0 {
                    Effect::Allow
                } else {
                    Effect::Deny
                },
            }
        }
    }

    impl fmt::Display for Call {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "{} {} {} {}",
                self.principal, self.action, KIND, self.resource_id
            )
        }
    }

    /// The effect Cerbos gave the call's one action on its one resource,
    /// if it is the owner policy's: any other answer (another effect, a
    /// missing action, another resource, more or fewer results) is an
    /// error, so that nothing but the expected decision is counted.
    pub fn verify(call: &Call, response: &CheckResourcesResponse) -> Result<Effect, String> {
        let [result] = response.results.as_slice() else {
            return Err(format!(
                "{}: {} results for one resource",
                call,
                response.results.len()
            ));
        };
        match &result.resource {
            Some(r) if r.id == call.resource_id && r.kind == KIND => {}
            Some(r) => return Err(format!("{call}: the result is for {} {}", r.kind, r.id)),
            None => return Err(format!("{call}: the result names no resource")),
        }
        let raw = *result
            .actions
            .get(call.action)
            .ok_or_else(|| format!("{call}: no effect for action '{}'", call.action))?;
        let effect = Effect::try_from(raw).map_err(|_| format!("{call}: unknown effect {raw}"))?;
        if effect != call.expected {
            return Err(format!(
                "{call}: Cerbos answered {effect:?}, the owner policy gives {:?}",
                call.expected
            ));
        }
        Ok(effect)
    }

    /// One `CheckResources` call, its answer verified.
    pub async fn check(
        client: &mut tonic::client::Grpc<Channel>,
        call: &Call,
    ) -> Result<Effect, tonic::Status> {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
        let response: CheckResourcesResponse = client
            .unary(
                tonic::Request::new(call.request.clone()),
                PathAndQuery::from_static(CHECK_RESOURCES),
                tonic_prost::ProstCodec::default(),
            )
            .await?
            .into_inner();
        verify(call, &response).map_err(|e| tonic::Status::internal(format!("wrong answer: {e}")))
    }

    /// "effects ALLOW 50.0%, DENY 50.0%" of the calls answered.
    pub fn effect_shares(effects: &BTreeMap<i32, u64>) -> String {
        let total: u64 = effects.values().sum();
        let shares: Vec<String> = effects
            .iter()
            .map(|(e, n)| {
                let name = Effect::try_from(*e)
                    .map(|e| format!("{e:?}").to_uppercase())
                    .unwrap_or_else(|_| e.to_string());
                format!("{name} {:.1}%", 100.0 * *n as f64 / total.max(1) as f64)
            })
            .collect();
        format!("effects {}", shares.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::cerbos::*;
    use prost::Message;
    use std::collections::{BTreeMap, HashMap};

    /// A length-delimited field: tag byte of `field` (wire type 2), length, bytes.
    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![field << 3 | 2, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn cpu_rows(us: &[f64]) -> Vec<super::Row> {
        us.iter()
            .map(|&c| super::Row {
                cpu_us_per_call: Some(c),
                ..super::Row::default()
            })
            .collect()
    }

    #[test]
    fn ratio_spread_needs_ten_rounds_and_reads_the_paired_ratios() {
        let health = cpu_rows(&[10.0; 12]);
        assert!(super::RatioSpread::of(&cpu_rows(&[11.0; 9]), &health).is_none());
        // Ratios 1.0, 1.1, ..., 2.1 in a shuffled order, paired by round.
        let check: Vec<f64> = [5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6]
            .iter()
            .map(|&i| 10.0 + i as f64)
            .collect();
        let s = super::RatioSpread::of(&cpu_rows(&check), &health).expect("12 rounds");
        assert_eq!(s.rounds, 12);
        assert!((s.median - 1.6).abs() < 1e-9, "{}", s.median);
        assert!(
            (s.q1 - 1.3).abs() < 1e-9 && (s.q3 - 1.8).abs() < 1e-9,
            "{s}"
        );
        assert!((s.of_means - 1.55).abs() < 1e-9, "{}", s.of_means);
        assert!(s.interval.0 <= s.median && s.median <= s.interval.1, "{s}");
        assert!(s.interval.0 >= 1.0 && s.interval.1 <= 2.1, "{s}");
        // Every round the same: nothing to be unsure of.
        let flat = super::RatioSpread::of(&cpu_rows(&[11.0; 12]), &health).expect("12 rounds");
        assert!((flat.interval.0 - 1.1).abs() < 1e-9 && (flat.interval.1 - 1.1).abs() < 1e-9);
    }

    #[test]
    fn cerbos_request_messages_use_the_field_numbers_of_its_api() {
        // engine.v1.Principal: id = 1, roles = 3.
        let principal = Principal {
            id: "u".into(),
            roles: vec!["r".into()],
        };
        assert_eq!(
            principal.encode_to_vec(),
            concat(&[ld(1, b"u"), ld(3, b"r")])
        );
        // engine.v1.Resource: kind = 1, id = 3, attr = 4 (a map entry of
        // key = 1 and a google.protobuf.Value whose string_value is 3).
        let resource = Resource {
            kind: "k".into(),
            id: "i".into(),
            attr: HashMap::from([(
                "owner".to_string(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("u".into())),
                },
            )]),
        };
        let attr_entry = concat(&[ld(1, b"owner"), ld(2, &ld(3, b"u"))]);
        assert_eq!(
            resource.encode_to_vec(),
            concat(&[ld(1, b"k"), ld(3, b"i"), ld(4, &attr_entry)])
        );
        // request.v1.CheckResourcesRequest: principal = 3, resources = 4;
        // its ResourceEntry: actions = 1, resource = 2.
        let request = CheckResourcesRequest {
            principal: Some(principal.clone()),
            resources: vec![ResourceEntry {
                actions: vec!["view".into()],
                resource: Some(resource.clone()),
            }],
        };
        let entry = concat(&[ld(1, b"view"), ld(2, &resource.encode_to_vec())]);
        assert_eq!(
            request.encode_to_vec(),
            concat(&[ld(3, &principal.encode_to_vec()), ld(4, &entry)])
        );
    }

    /// The bytes of a CheckResourcesResponse with one result for `kind`
    /// `id` and `actions`, led by a request_id (1) and followed by a
    /// cerbos_call_id (3) that the hand-written messages do not declare.
    fn response_bytes(kind: &str, id: &str, actions: &[(&str, u8)]) -> Vec<u8> {
        let mut result = ld(1, &concat(&[ld(1, id.as_bytes()), ld(2, kind.as_bytes())]));
        for (action, effect) in actions {
            // A map entry: key = 1, value = 2 as a varint.
            let entry = concat(&[ld(1, action.as_bytes()), vec![2 << 3, *effect]]);
            result.extend(ld(2, &entry));
        }
        concat(&[ld(1, b"req"), ld(2, &result), ld(3, b"01M8P1JGE3785")])
    }

    fn decode(bytes: &[u8]) -> CheckResourcesResponse {
        CheckResourcesResponse::decode(bytes).expect("a valid response")
    }

    #[test]
    fn the_mix_is_half_own_leads_allowed_and_half_others_denied() {
        let calls: Vec<Call> = (0..1000).map(Call::new).collect();
        let allowed = calls.iter().filter(|c| c.expected == Effect::Allow).count();
        assert_eq!(allowed, 500);
        for call in &calls {
            let resource = call.request.resources[0].resource.as_ref().unwrap();
            let owner = match &resource.attr["owner"].kind {
                Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
                other => panic!("owner is {other:?}"),
            };
            let principal = &call.request.principal.as_ref().unwrap().id;
            // Allowed exactly when the principal owns the lead: the owner
            // policy's condition.
            assert_eq!(
                owner == *principal,
                call.expected == Effect::Allow,
                "{call}"
            );
            assert_eq!(call.request.resources.len(), 1);
            assert_eq!(call.request.resources[0].actions, vec![call.action]);
        }
        assert!(calls.iter().any(|c| c.action == "edit"));
        assert!(calls.iter().any(|c| c.action == "view"));
    }

    #[test]
    fn the_expected_effect_is_counted() {
        let own = Call::new(0);
        assert_eq!(own.expected, Effect::Allow);
        let bytes = response_bytes("lead", &own.resource_id, &[(own.action, 1)]);
        assert_eq!(verify(&own, &decode(&bytes)), Ok(Effect::Allow));
        let other = Call::new(1);
        assert_eq!(other.expected, Effect::Deny);
        let bytes = response_bytes("lead", &other.resource_id, &[(other.action, 2)]);
        assert_eq!(verify(&other, &decode(&bytes)), Ok(Effect::Deny));
    }

    #[test]
    fn any_other_answer_is_an_error() {
        let own = Call::new(0);
        let other = Call::new(1);
        let id = own.resource_id.as_str();
        let cases = [
            // Denied where the owner policy allows, allowed where it
            // denies, no match, an unknown effect.
            (&own, response_bytes("lead", id, &[(own.action, 2)])),
            (
                &other,
                response_bytes("lead", &other.resource_id, &[(other.action, 1)]),
            ),
            (&own, response_bytes("lead", id, &[(own.action, 3)])),
            (&own, response_bytes("lead", id, &[(own.action, 9)])),
            // Another action, another resource, another kind.
            (&own, response_bytes("lead", id, &[("delete", 1)])),
            (&own, response_bytes("lead", "lead-7", &[(own.action, 1)])),
            (&own, response_bytes("contact", id, &[(own.action, 1)])),
            // No result at all.
            (&own, ld(1, b"req")),
        ];
        for (i, (call, bytes)) in cases.iter().enumerate() {
            assert!(verify(call, &decode(bytes)).is_err(), "case {i}");
        }
        // Two results for one resource.
        let mut two = decode(&response_bytes("lead", id, &[(own.action, 1)]));
        two.results.push(two.results[0].clone());
        assert!(verify(&own, &two).is_err());
    }

    #[test]
    fn effect_shares_name_the_effects() {
        let effects = BTreeMap::from([(1, 3), (2, 1)]);
        assert_eq!(effect_shares(&effects), "effects ALLOW 75.0%, DENY 25.0%");
    }
}
