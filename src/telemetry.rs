//! Telemetry: the tracing subscriber with its OTLP span export, the W3C
//! trace context taken from callers, the metric instruments (exported over
//! OTLP and rendered for Prometheus on `/metrics`) and the decision log
//! (JSON lines on stderr, or OTLP log records).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime};

use clap::ValueEnum;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, ServeConfig};
use crate::engine::decision::{CheckRequest, Decision};
use crate::engine::model::Reason;
use crate::service::Warden;
use crate::store::{StoreError, StoreResult};

/// Where decisions are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DecisionLogSink {
    /// Not at all.
    #[default]
    Off,
    /// One JSON object a line on standard error.
    Stderr,
    /// As an OTLP log record, over the same endpoint as the traces and
    /// carrying the trace and span ids of the Check.
    Otlp,
}

/// Buckets of RPC latency, in seconds: a warm Check is tens of
/// microseconds, an Import of a large organization tens of seconds.
const RPC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Buckets of propagation delay between replicas, in seconds.
const PROPAGATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Whether OTLP metrics are exported: without a meter provider every
/// instrument is a no-op, and the attributes made for it per call (an
/// `rpc` label is a fresh string) would be made for nothing.
static OTLP_METRICS: AtomicBool = AtomicBool::new(false);

/// What serving keeps of telemetry: the providers to flush at shutdown and
/// the observed instruments (dropping them would stop their callbacks).
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
    observed: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// The OTLP endpoint: the flag, else the standard OpenTelemetry variable.
fn otlp_endpoint(config: &ServeConfig) -> Option<String> {
    config
        .otlp_endpoint
        .clone()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
}

fn resource() -> Resource {
    // In Kubernetes HOSTNAME is the pod name: what an operator looks for.
    let instance = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("warden-{}", std::process::id()));
    Resource::builder()
        .with_service_name("warden")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance),
        ])
        .build()
}

/// Installs the tracing subscriber (logs to stderr; spans to OTLP when an
/// endpoint is set) and the metric and decision-log settings. Call once,
/// inside the runtime: the OTLP channels spawn their workers on it.
pub fn init(config: &ServeConfig) -> anyhow::Result<Telemetry> {
    let _ = DECISION_LOG.set(DecisionLog {
        sink: config.decision_log,
        sample: config.decision_log_sample.clamp(0.0, 1.0),
        denials: config.decision_log_denials,
        seen: AtomicU64::new(0),
    });
    let endpoint = otlp_endpoint(config);
    let (tracer, meter, logger) = match &endpoint {
        Some(endpoint) => {
            let resource = resource();
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint}: span exporter: {e}"))?;
            let tracer = SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .with_resource(resource.clone())
                .build();
            let metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint}: metric exporter: {e}"))?;
            let meter = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(metrics).build())
                .with_resource(resource.clone())
                .build();
            // Before any instrument is made: instruments bind to the
            // provider that is global when they are created.
            opentelemetry::global::set_meter_provider(meter.clone());
            OTLP_METRICS.store(true, Ordering::Relaxed);
            // Decision records only: Warden's own logs stay on stderr.
            let logger = if config.decision_log == DecisionLogSink::Otlp {
                let records = opentelemetry_otlp::LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .build()
                    .map_err(|e| {
                        anyhow::anyhow!("--otlp-endpoint {endpoint}: log exporter: {e}")
                    })?;
                let provider = SdkLoggerProvider::builder()
                    .with_batch_exporter(records)
                    .with_resource(resource)
                    .build();
                let _ = DECISION_LOGGER.set(provider.logger("warden"));
                Some(provider)
            } else {
                None
            };
            (Some(tracer), Some(meter), logger)
        }
        None => (None, None, None),
    };

    let log_filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
    };
    // Spans go out whatever the log level; the exporter's own crates are
    // left out so that exporting never produces spans to export.
    let spans = tracer.as_ref().map(|provider| {
        let filter = EnvFilter::new(
            "info,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,h2=off,hyper=off,tonic=off,tower=off",
        );
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("warden"))
            .with_filter(filter)
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    match &endpoint {
        Some(endpoint) => info!(
            endpoint = %endpoint.rsplit('@').next().unwrap_or_default(),
            decisions = logger.is_some(),
            "exporting traces and metrics (and decisions as logs, if asked) over OTLP"
        ),
        None if config.decision_log == DecisionLogSink::Otlp => {
            warn!("--decision-log otlp without an OTLP endpoint: decisions go nowhere");
        }
        None => {}
    }
    Ok(Telemetry {
        tracer,
        meter,
        logger,
        observed: Vec::new(),
    })
}

impl Telemetry {
    /// Observes what the service already counts (cache, catch-ups, sizes
    /// of organizations) through OTLP; `/metrics` reads the same at scrape.
    pub fn observe(&mut self, warden: &Arc<Warden>) {
        if self.meter.is_none() {
            return;
        }
        let meter = opentelemetry::global::meter("warden");
        for (name, description) in OBSERVED_COUNTERS {
            let w = Arc::downgrade(warden);
            let counter = meter
                .u64_observable_counter(otel_name(name))
                .with_description(*description)
                .with_callback(move |o| {
                    if let Some(w) = w.upgrade() {
                        o.observe(observed_counter(&w, name), &[]);
                    }
                })
                .build();
            self.observed.push(Box::new(counter));
        }
        let w = Arc::downgrade(warden);
        let orgs = meter
            .u64_observable_gauge("warden.organizations")
            .with_description("Organizations loaded.")
            .with_callback(move |o| {
                if let Some(w) = w.upgrade() {
                    o.observe(w.engine().org_ids().len() as u64, &[]);
                }
            })
            .build();
        self.observed.push(Box::new(orgs));
        for (name, description, records) in [
            ("warden.records", "Records per organization.", true),
            ("warden.shares", "Manual shares per organization.", false),
        ] {
            let w = Arc::downgrade(warden);
            let gauge = meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |o| {
                    if let Some(w) = w.upgrade() {
                        for (org, (r, s)) in org_sizes(&w) {
                            o.observe(if records { r } else { s }, &[KeyValue::new("org", org)]);
                        }
                    }
                })
                .build();
            self.observed.push(Box::new(gauge));
        }
    }

    /// Flushes and stops the exporters, giving up after `deadline`.
    pub async fn shutdown(self, deadline: Duration) {
        let Telemetry {
            tracer,
            meter,
            logger,
            observed,
        } = self;
        drop(observed);
        // The SDK's shutdown blocks on its export threads.
        let flush = tokio::task::spawn_blocking(move || {
            if let Some(t) = tracer {
                if let Err(e) = t.shutdown_with_timeout(deadline) {
                    warn!(error = %e, "flushing spans failed");
                }
            }
            // Decision records before the last metric points.
            if let Some(l) = logger {
                if let Err(e) = l.shutdown_with_timeout(deadline) {
                    warn!(error = %e, "flushing decision logs failed");
                }
            }
            if let Some(m) = meter {
                if let Err(e) = m.shutdown_with_timeout(deadline) {
                    warn!(error = %e, "flushing metrics failed");
                }
            }
        });
        if tokio::time::timeout(deadline + Duration::from_secs(1), flush)
            .await
            .is_err()
        {
            warn!(?deadline, "telemetry flush deadline passed");
        }
    }
}

// ---------------------------------------------------------------------------
// Metrics

/// A histogram with fixed buckets, as Prometheus renders it.
#[derive(Debug, Clone)]
struct Buckets {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (bound, count) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if v <= *bound {
                *count += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

struct Instruments {
    rpc_calls: Counter<u64>,
    rpc_duration: Histogram<f64>,
    decisions: Counter<u64>,
    bus_messages: Counter<u64>,
    bus_gaps: Counter<u64>,
    propagation_delay: Histogram<f64>,
    store_operations: Counter<u64>,
    store_errors: Counter<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Instruments {
            rpc_calls: meter
                .u64_counter("warden.rpc.calls")
                .with_description("gRPC calls answered, by RPC and status code.")
                .build(),
            rpc_duration: meter
                .f64_histogram("warden.rpc.duration")
                .with_unit("s")
                .with_description("Time to answer a gRPC call, by RPC.")
                .with_boundaries(RPC_BUCKETS.to_vec())
                .build(),
            decisions: meter
                .u64_counter("warden.decisions")
                .with_description("Check decisions, by reason and outcome.")
                .build(),
            bus_messages: meter
                .u64_counter("warden.bus.messages")
                .with_description("Change messages received from other replicas.")
                .build(),
            bus_gaps: meter
                .u64_counter("warden.bus.gaps")
                .with_description("Bus messages that skipped revisions (caught up from the store).")
                .build(),
            propagation_delay: meter
                .f64_histogram("warden.propagation.delay")
                .with_unit("s")
                .with_description("From a write's commit on one replica to its application here.")
                .with_boundaries(PROPAGATION_BUCKETS.to_vec())
                .build(),
            store_operations: meter
                .u64_counter("warden.store.operations")
                .with_description("Store operations, by operation.")
                .build(),
            store_errors: meter
                .u64_counter("warden.store.errors")
                .with_description("Store operations that failed (revision races excluded).")
                .build(),
        }
    }
}

/// Reasons counted without a lock: more than the engine has (19), so
/// that a reason added later is still counted here; one beyond this many
/// is counted in [`DecisionCounts::other`].
const REASON_SLOTS: usize = 32;

/// Decisions by reason and outcome. A reason's slot is its variant index;
/// its name is kept on its first count, for rendering.
struct DecisionCounts {
    names: [OnceLock<&'static str>; REASON_SLOTS],
    counts: [[AtomicU64; 2]; REASON_SLOTS],
    other: Mutex<BTreeMap<(&'static str, bool), u64>>,
}

impl DecisionCounts {
    fn new() -> Self {
        DecisionCounts {
            names: [const { OnceLock::new() }; REASON_SLOTS],
            counts: [const { [const { AtomicU64::new(0) }; 2] }; REASON_SLOTS],
            other: Mutex::default(),
        }
    }

    fn count(&self, reason: Reason, allowed: bool, n: u64) {
        let slot = reason as usize;
        match (self.names.get(slot), self.counts.get(slot)) {
            (Some(name), Some(counts)) => {
                name.get_or_init(|| reason.as_str());
                counts[usize::from(allowed)].fetch_add(n, Ordering::Relaxed);
            }
            _ => {
                *self
                    .other
                    .lock()
                    .entry((reason.as_str(), allowed))
                    .or_default() += n
            }
        }
    }

    /// Every (reason, allowed) counted at least once, sorted.
    fn snapshot(&self) -> BTreeMap<(&'static str, bool), u64> {
        let mut all = self.other.lock().clone();
        for (name, counts) in self.names.iter().zip(&self.counts) {
            let Some(name) = name.get() else { continue };
            for (allowed, n) in [(false, &counts[0]), (true, &counts[1])] {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    *all.entry((*name, allowed)).or_default() += n;
                }
            }
        }
        all
    }
}

/// gRPC status names by code number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
const CODE_OK: usize = 0;
const CODE_CANCELLED: usize = 1;
const CODE_UNKNOWN: usize = 2;
const CODE_INTERNAL: usize = 13;

/// One RPC's calls by code and its latency histogram, all atomics: calls
/// on many workers count without waiting for each other.
struct RpcStats {
    label: String,
    codes: [AtomicU64; CODES.len()],
    /// Calls whose time fell in each bucket (not cumulative: one add per
    /// call; rendering sums them).
    buckets: [AtomicU64; RPC_BUCKETS.len()],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl RpcStats {
    fn new(label: String) -> Self {
        RpcStats {
            label,
            codes: [const { AtomicU64::new(0) }; CODES.len()],
            buckets: [const { AtomicU64::new(0) }; RPC_BUCKETS.len()],
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, code: usize, seconds: f64) {
        if let Some(c) = self.codes.get(code) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = RPC_BUCKETS.partition_point(|b| *b < seconds);
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        // Saturating float-to-int cast: a time is never negative or huge.
        self.sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram as Prometheus renders it (cumulative buckets).
    fn duration(&self) -> Buckets {
        let mut b = Buckets::new(RPC_BUCKETS);
        let mut below = 0;
        for (count, n) in b.counts.iter_mut().zip(&self.buckets) {
            below += n.load(Ordering::Relaxed);
            *count = below;
        }
        b.count = self.count.load(Ordering::Relaxed).max(below);
        b.sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        b
    }
}

/// Most gRPC paths remembered, and most RPC labels: a client may send any
/// path, and each stays one entry; beyond these, calls count as "unknown".
const MAX_RPC_PATHS: usize = 512;
const MAX_RPC_LABELS: usize = 256;

/// The counters of each RPC, found by the call's path in a read-locked
/// map, so that a call neither formats its label nor takes a mutex.
#[derive(Default)]
struct RpcRegistry {
    by_path: parking_lot::RwLock<rustc_hash::FxHashMap<String, Arc<RpcStats>>>,
    by_label: Mutex<BTreeMap<String, Arc<RpcStats>>>,
}

impl RpcRegistry {
    fn resolve(&self, path: &str) -> Arc<RpcStats> {
        if let Some(stats) = self.by_path.read().get(path) {
            return stats.clone();
        }
        let mut label = rpc_label(path);
        let stats = {
            let mut labels = self.by_label.lock();
            if labels.len() >= MAX_RPC_LABELS && !labels.contains_key(&label) {
                label = "unknown".to_string();
            }
            labels
                .entry(label.clone())
                .or_insert_with(|| Arc::new(RpcStats::new(label.clone())))
                .clone()
        };
        if label != "unknown" {
            let mut paths = self.by_path.write();
            if paths.len() < MAX_RPC_PATHS {
                paths.insert(path.to_string(), stats.clone());
            }
        }
        stats
    }

    fn snapshot(&self) -> Vec<Arc<RpcStats>> {
        self.by_label.lock().values().cloned().collect()
    }
}

/// The metrics Warden records itself; the rest are read from the
/// service's own counters when scraped or collected.
pub struct Metrics {
    otel: Instruments,
    /// Each RPC's counters, resolved from the call's path once (see
    /// [`RpcRegistry`]): counting a call takes no lock and allocates nothing.
    rpcs: RpcRegistry,
    /// By reason and outcome: one atomic each, indexed by the reason.
    decisions: DecisionCounts,
    bus_messages: AtomicU64,
    bus_gaps: AtomicU64,
    propagation_delay: Mutex<Buckets>,
    store_operations: Mutex<BTreeMap<&'static str, u64>>,
    store_errors: AtomicU64,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics {
        otel: Instruments::new(&opentelemetry::global::meter("warden")),
        rpcs: RpcRegistry::default(),
        decisions: DecisionCounts::new(),
        bus_messages: AtomicU64::new(0),
        bus_gaps: AtomicU64::new(0),
        propagation_delay: Mutex::new(Buckets::new(PROPAGATION_BUCKETS)),
        store_operations: Mutex::default(),
        store_errors: AtomicU64::new(0),
    })
}

impl Metrics {
    /// The counters of the RPC at gRPC path `path`, made on its first call.
    fn rpc_stats(&self, path: &str) -> Arc<RpcStats> {
        self.rpcs.resolve(path)
    }

    /// One answered gRPC call, `code` the index of its status in [`CODES`].
    fn rpc(&self, stats: &RpcStats, code: usize, seconds: f64) {
        stats.observe(code, seconds);
        if !OTLP_METRICS.load(Ordering::Relaxed) {
            return;
        }
        let rpc = KeyValue::new("rpc", stats.label.clone());
        self.otel
            .rpc_calls
            .add(1, &[rpc.clone(), KeyValue::new("code", CODES[code])]);
        self.otel.rpc_duration.record(seconds, &[rpc]);
    }

    /// One decision.
    pub fn decision(&self, reason: Reason, allowed: bool) {
        self.decisions_alike(reason, allowed, 1);
    }

    /// `n` decisions of one reason and outcome (CheckBulk counts its
    /// checks once per call).
    fn decisions_alike(&self, reason: Reason, allowed: bool, n: u64) {
        self.decisions.count(reason, allowed, n);
        if !OTLP_METRICS.load(Ordering::Relaxed) {
            return;
        }
        self.otel.decisions.add(
            n,
            &[
                KeyValue::new("reason", reason.as_str()),
                KeyValue::new("allowed", allowed),
            ],
        );
    }

    /// One change message from another replica, with the time since its
    /// commit when the message carries it.
    pub fn bus_message(&self, delay: Option<f64>) {
        self.bus_messages.fetch_add(1, Ordering::Relaxed);
        self.otel.bus_messages.add(1, &[]);
        if let Some(d) = delay.filter(|d| d.is_finite() && *d >= 0.0) {
            self.propagation_delay.lock().observe(d);
            self.otel.propagation_delay.record(d, &[]);
        }
    }

    /// A bus message that skipped revisions.
    pub fn bus_gap(&self) {
        self.bus_gaps.fetch_add(1, Ordering::Relaxed);
        self.otel.bus_gaps.add(1, &[]);
    }

    /// One store operation and whether it failed.
    pub fn store_operation(&self, op: &'static str, failed: bool) {
        *self.store_operations.lock().entry(op).or_default() += 1;
        self.otel
            .store_operations
            .add(1, &[KeyValue::new("op", op)]);
        if failed {
            self.store_errors.fetch_add(1, Ordering::Relaxed);
            self.otel.store_errors.add(1, &[]);
        }
    }
}

/// Counts a store operation; a lost revision race is the optimistic
/// protocol working, not a failure of the store.
pub fn store_result<T>(op: &'static str, result: &StoreResult<T>) {
    let failed = matches!(result, Err(e) if !matches!(e, StoreError::Conflict { .. }));
    metrics().store_operation(op, failed);
}

/// Counters the service keeps itself, by Prometheus name.
const OBSERVED_COUNTERS: &[(&str, &str)] = &[
    (
        "warden_cache_hits_total",
        "Expansions answered from the cache.",
    ),
    (
        "warden_cache_misses_total",
        "Expansions computed and cached.",
    ),
    (
        "warden_cache_evictions_total",
        "Caches cleared because they reached their bound.",
    ),
    (
        "warden_invalidations_total",
        "Cache entries dropped by writes.",
    ),
    (
        "warden_catch_ups_total",
        "Organizations brought up to the store from its change log.",
    ),
    (
        "warden_reloads_total",
        "Organizations reloaded whole from the store.",
    ),
];

/// `warden_cache_hits_total` → `warden.cache.hits`: OTLP names carry no
/// `_total`; a collector's Prometheus exporter adds it back.
fn otel_name(prometheus: &str) -> String {
    let name = prometheus.trim_end_matches("_total");
    match name.strip_prefix("warden_cache_") {
        Some(rest) => format!("warden.cache.{rest}"),
        None => name.replacen("warden_", "warden.", 1),
    }
}

fn observed_counter(warden: &Warden, name: &str) -> u64 {
    let cache = warden.engine().expander().stats();
    let stats = warden.stats();
    match name {
        "warden_cache_hits_total" => cache.hits,
        "warden_cache_misses_total" => cache.misses,
        "warden_cache_evictions_total" => cache.evictions,
        "warden_invalidations_total" => cache.invalidations,
        "warden_catch_ups_total" => stats.catch_ups.load(Ordering::Relaxed),
        "warden_reloads_total" => stats.reloads.load(Ordering::Relaxed),
        _ => 0,
    }
}

/// Records and manual shares of every organization.
fn org_sizes(warden: &Warden) -> Vec<(String, (u64, u64))> {
    warden
        .engine()
        .org_ids()
        .into_iter()
        .filter_map(|org| {
            let sizes = warden
                .engine()
                .read(&org, |state, _| {
                    let shares: usize = state.shares_by_grantee.values().map(|s| s.len()).sum();
                    (state.record_count() as u64, shares as u64)
                })
                .ok()?;
            Some((org, sizes))
        })
        .collect()
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, b: &Buckets) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, count) in b.bounds.iter().zip(&b.counts) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", b.count);
    let braces = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{l}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {}", braces(labels), b.sum);
    let _ = writeln!(out, "{name}_count{} {}", braces(labels), b.count);
}

/// Every metric in the Prometheus text format (version 0.0.4).
pub fn render(warden: &Warden) -> String {
    let m = metrics();
    let mut out = String::new();
    header(
        &mut out,
        "warden_rpc_calls_total",
        "counter",
        "gRPC calls answered, by RPC and status code.",
    );
    let rpcs = m.rpcs.snapshot();
    for stats in &rpcs {
        let mut codes: Vec<(&str, u64)> = CODES
            .iter()
            .zip(&stats.codes)
            .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        codes.sort_unstable();
        for (code, n) in codes {
            let _ = writeln!(
                out,
                "warden_rpc_calls_total{{rpc=\"{}\",code=\"{code}\"}} {n}",
                escape_label(&stats.label)
            );
        }
    }
    header(
        &mut out,
        "warden_rpc_duration_seconds",
        "histogram",
        "Time to answer a gRPC call, by RPC.",
    );
    for stats in &rpcs {
        let labels = format!("rpc=\"{}\"", escape_label(&stats.label));
        histogram(
            &mut out,
            "warden_rpc_duration_seconds",
            &labels,
            &stats.duration(),
        );
    }
    header(
        &mut out,
        "warden_decisions_total",
        "counter",
        "Check decisions, by reason and outcome.",
    );
    for ((reason, allowed), n) in m.decisions.snapshot() {
        let _ = writeln!(
            out,
            "warden_decisions_total{{reason=\"{reason}\",allowed=\"{allowed}\"}} {n}"
        );
    }
    for (name, help) in OBSERVED_COUNTERS {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", observed_counter(warden, name));
    }
    let plain = [
        (
            "warden_bus_messages_total",
            "Change messages received from other replicas.",
            m.bus_messages.load(Ordering::Relaxed),
        ),
        (
            "warden_bus_gaps_total",
            "Bus messages that skipped revisions (caught up from the store).",
            m.bus_gaps.load(Ordering::Relaxed),
        ),
        (
            "warden_store_errors_total",
            "Store operations that failed (revision races excluded).",
            m.store_errors.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, n) in plain {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {n}");
    }
    header(
        &mut out,
        "warden_propagation_delay_seconds",
        "histogram",
        "From a write's commit on one replica to its application here.",
    );
    histogram(
        &mut out,
        "warden_propagation_delay_seconds",
        "",
        &m.propagation_delay.lock(),
    );
    header(
        &mut out,
        "warden_store_operations_total",
        "counter",
        "Store operations, by operation.",
    );
    for (op, n) in m.store_operations.lock().iter() {
        let _ = writeln!(out, "warden_store_operations_total{{op=\"{op}\"}} {n}");
    }
    let sizes = org_sizes(warden);
    header(
        &mut out,
        "warden_organizations",
        "gauge",
        "Organizations loaded.",
    );
    let _ = writeln!(out, "warden_organizations {}", sizes.len());
    header(
        &mut out,
        "warden_records",
        "gauge",
        "Records per organization.",
    );
    for (org, (records, _)) in &sizes {
        let _ = writeln!(
            out,
            "warden_records{{org=\"{}\"}} {records}",
            escape_label(org)
        );
    }
    header(
        &mut out,
        "warden_shares",
        "gauge",
        "Manual shares per organization.",
    );
    for (org, (_, shares)) in &sizes {
        let _ = writeln!(
            out,
            "warden_shares{{org=\"{}\"}} {shares}",
            escape_label(org)
        );
    }
    out
}

/// Longest request head the metrics endpoint reads.
const MAX_HTTP_REQUEST: usize = 8 * 1024;

/// Serves `GET /metrics` on `listener` until `halt` turns true. A scraper
/// needs no more than HTTP/1.1 with one request per connection.
pub async fn serve_metrics(
    listener: TcpListener,
    warden: Arc<Warden>,
    mut halt: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = halt.changed() => return,
        };
        let warden = warden.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), scrape(stream, &warden)).await;
        });
    }
}

async fn scrape(mut stream: tokio::net::TcpStream, warden: &Warden) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HTTP_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => respond(&mut stream, "200 OK", &render(warden)).await,
        ("GET", _) => respond(&mut stream, "404 Not Found", "only /metrics is served\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "GET /metrics\n").await,
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

// ---------------------------------------------------------------------------
// RPC layer: caller's trace context, call counts and latency

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The RPC label of a gRPC path: `Service/Method` for Warden's, health
/// and reflection services; anything else is one label, so that made-up
/// paths cannot grow the label set.
fn rpc_label(path: &str) -> String {
    let known = ["/warden.v1.", "/grpc.health.v1.", "/grpc.reflection."];
    if !known.iter().any(|k| path.starts_with(k)) {
        return "unknown".into();
    }
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or("");
    let method = parts.next().unwrap_or("");
    let service = service.rsplit('.').next().unwrap_or(service);
    if method.is_empty() || method.contains('/') || method.len() > 64 {
        return "unknown".into();
    }
    format!("{service}/{method}")
}

/// The index in [`CODES`] of a `grpc-status` value (`UNKNOWN` for any
/// other text).
fn code_index(code: &str) -> usize {
    code.parse::<usize>()
        .ok()
        .filter(|c| *c < CODES.len())
        .unwrap_or(CODE_UNKNOWN)
}

/// What the call layer (`transport::CallGuard`, one layer around every
/// gRPC service) keeps of a call for telemetry: the caller's W3C trace
/// (`traceparent`, `tracestate`) to continue, and the RPC's counters and
/// start to count and time it by code.
pub struct CallTelemetry {
    parent: Option<opentelemetry::Context>,
    rpc: Arc<RpcStats>,
    started: Instant,
}

impl CallTelemetry {
    /// A call's telemetry, from its request head.
    pub fn start(headers: &http::HeaderMap, path: &str) -> Self {
        // Without a `traceparent` there is no caller's span to continue:
        // extracting would only copy the current (empty) context and
        // attach it at every poll of the call, the cost of every untraced
        // call.
        let parent = headers
            .contains_key("traceparent")
            .then(|| TraceContextPropagator::new().extract(&Headers(headers)));
        CallTelemetry {
            parent,
            rpc: metrics().rpc_stats(path),
            started: Instant::now(),
        }
    }

    /// The caller's context to continue, if the call carries one (taken:
    /// the call layer attaches it while the call runs).
    pub fn take_parent(&mut self) -> Option<opentelemetry::Context> {
        self.parent.take()
    }

    /// The response, its body counting the call once its status is known;
    /// `slot` (an in-flight slot) is held until the body ends.
    pub fn respond<B>(
        self,
        response: http::Response<B>,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> http::Response<RpcBody<B>> {
        // An error before any message travels in the headers
        // (trailers-only); otherwise the code comes in the trailers, at
        // the end of the body.
        let code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(code_index);
        response.map(|inner| RpcBody {
            inner,
            rpc: self.rpc,
            started: self.started,
            code,
            counted: false,
            _slot: slot,
        })
    }
}

/// A response body that counts its call once, when the status is known:
/// at the trailers, at the end of the body, or when the body is dropped
/// unfinished (the client went away: `CANCELLED`).
pub struct RpcBody<B> {
    inner: B,
    rpc: Arc<RpcStats>,
    started: Instant,
    /// Index in [`CODES`], when the headers carried the status.
    code: Option<usize>,
    counted: bool,
    /// The call's in-flight slot (`--max-in-flight`), held until the
    /// answer's last message is sent.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<B> RpcBody<B> {
    fn count(&mut self, code: usize) {
        if !self.counted {
            self.counted = true;
            metrics().rpc(&self.rpc, code, self.started.elapsed().as_secs_f64());
        }
    }
}

impl<B> Drop for RpcBody<B> {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(CODE_CANCELLED);
        self.count(code);
    }
}

impl<B> http_body::Body for RpcBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .map_or(CODE_UNKNOWN, code_index);
                    this.count(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.count(CODE_INTERNAL),
            Poll::Ready(None) => {
                let code = this.code.unwrap_or(CODE_OK);
                this.count(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------
// Decision log

/// The logger of `--decision-log otlp`, set when an OTLP endpoint is.
static DECISION_LOGGER: OnceLock<SdkLogger> = OnceLock::new();

struct DecisionLog {
    sink: DecisionLogSink,
    sample: f64,
    denials: bool,
    seen: AtomicU64,
}

static DECISION_LOG: OnceLock<DecisionLog> = OnceLock::new();

impl DecisionLog {
    /// Systematic sampling: the n-th decision is logged when the running
    /// total of `sample` crosses an integer, so the rate holds exactly
    /// without a random source.
    fn sampled(&self, allowed: bool) -> bool {
        if self.denials && !allowed {
            return true;
        }
        if self.sample >= 1.0 {
            return true;
        }
        if self.sample <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample).floor() > (n * self.sample).floor()
    }
}

/// The span context of the current span, else of the caller's context.
fn current_span_context() -> Option<SpanContext> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        return Some(sc);
    }
    let cx = opentelemetry::Context::current();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// Counts a decision and logs it when the decision log asks for it. The
/// line names ids and the outcome only: no attribute values, no tokens.
pub fn decision(org: &str, req: &CheckRequest, d: &Decision, revision: u64) {
    metrics().decision(d.reason, d.allowed);
    log_decision(org, req, d, revision);
}

/// Counts a CheckBulk's decisions, each (reason, outcome) added once per
/// call rather than once per check, and logs each decision as
/// [`decision`] does.
pub fn decisions<'a>(
    answered: impl Iterator<Item = (&'a str, &'a CheckRequest, &'a Decision, u64)>,
) {
    let logging = DECISION_LOG
        .get()
        .is_some_and(|log| log.sink != DecisionLogSink::Off);
    let m = metrics();
    // Tallied by the reason's slot, as `DecisionCounts` keeps them: an
    // index and an add per decision (a list searched per decision cost
    // more than the shared counter's add it saves).
    let mut alike = [[0u64; 2]; REASON_SLOTS];
    let mut reasons: [Option<Reason>; REASON_SLOTS] = [None; REASON_SLOTS];
    for (org, req, d, revision) in answered {
        let slot = d.reason as usize;
        match (alike.get_mut(slot), reasons.get_mut(slot)) {
            (Some(counts), Some(reason)) => {
                *reason = Some(d.reason);
                counts[usize::from(d.allowed)] += 1;
            }
            _ => m.decisions_alike(d.reason, d.allowed, 1),
        }
        if logging {
            log_decision(org, req, d, revision);
        }
    }
    for (counts, reason) in alike.iter().zip(reasons) {
        let Some(reason) = reason else { continue };
        for (allowed, n) in [(false, counts[0]), (true, counts[1])] {
            if n > 0 {
                m.decisions_alike(reason, allowed, n);
            }
        }
    }
}

/// Logs a decision when the decision log asks for it.
fn log_decision(org: &str, req: &CheckRequest, d: &Decision, revision: u64) {
    let Some(log) = DECISION_LOG.get() else {
        return;
    };
    if log.sink == DecisionLogSink::Off || !log.sampled(d.allowed) {
        return;
    }
    let span = current_span_context();
    match log.sink {
        DecisionLogSink::Off => {}
        DecisionLogSink::Stderr => {
            let line = serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "trace_id": span.map(|sc| sc.trace_id().to_string()),
                "org": org,
                "subject": req.subject.as_str(),
                "module": req.module.as_str(),
                "action": req.action.as_str(),
                "record": req.record.as_deref(),
                "field": req.field.as_deref(),
                "allowed": d.allowed,
                "reason": d.reason.as_str(),
                "level": d.level.as_str(),
                "revision": revision,
            });
            // One write per line, so that lines of concurrent calls never interleave.
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("{line}\n").as_bytes());
        }
        DecisionLogSink::Otlp => {
            if let Some(logger) = DECISION_LOGGER.get() {
                logger.emit(decision_record(logger, org, req, d, revision, span));
            }
        }
    }
}

/// One decision as an OTLP log record: the fields of the stderr line as
/// attributes, the time as its timestamp, the Check's span as its context.
fn decision_record(
    logger: &SdkLogger,
    org: &str,
    req: &CheckRequest,
    d: &Decision,
    revision: u64,
    span: Option<SpanContext>,
) -> opentelemetry_sdk::logs::SdkLogRecord {
    let mut record = logger.create_log_record();
    let now = SystemTime::now();
    record.set_timestamp(now);
    record.set_observed_timestamp(now);
    let (severity, text) = if d.allowed {
        (Severity::Info, "INFO")
    } else {
        (Severity::Warn, "WARN")
    };
    record.set_severity_number(severity);
    record.set_severity_text(text);
    record.set_event_name("warden.decision");
    record.set_body(AnyValue::from("decision"));
    if let Some(sc) = span {
        record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
    }
    record.add_attributes([
        ("org", AnyValue::from(org.to_string())),
        ("subject", AnyValue::from(req.subject.to_string())),
        ("module", AnyValue::from(req.module.to_string())),
        ("action", AnyValue::from(req.action.to_string())),
        ("allowed", AnyValue::from(d.allowed)),
        ("reason", AnyValue::from(d.reason.as_str())),
        ("level", AnyValue::from(d.level.as_str())),
        (
            "revision",
            AnyValue::Int(i64::try_from(revision).unwrap_or(i64::MAX)),
        ),
    ]);
    if let Some(r) = &req.record {
        record.add_attribute("record", r.to_string());
    }
    if let Some(f) = &req.field {
        record.add_attribute("field", f.to_string());
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_labels_are_bounded() {
        assert_eq!(
            rpc_label("/warden.v1.CheckService/Check"),
            "CheckService/Check"
        );
        assert_eq!(rpc_label("/grpc.health.v1.Health/Check"), "Health/Check");
        assert_eq!(rpc_label("/evil.Service/x123"), "unknown");
        assert_eq!(
            rpc_label(&format!("/warden.v1.X/{}", "m".repeat(100))),
            "unknown"
        );
    }

    #[test]
    fn sampling_keeps_the_rate_and_every_denial_when_asked() {
        let log = DecisionLog {
            sink: DecisionLogSink::Stderr,
            sample: 0.25,
            denials: true,
            seen: AtomicU64::new(0),
        };
        let allowed = (0..1000).filter(|_| log.sampled(true)).count();
        assert_eq!(allowed, 250);
        assert!((0..100).all(|_| log.sampled(false)));
        let none = DecisionLog {
            sample: 0.0,
            denials: false,
            ..log
        };
        assert_eq!((0..100).filter(|_| none.sampled(false)).count(), 0);
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut b = Buckets::new(&[0.1, 1.0]);
        b.observe(0.05);
        b.observe(0.5);
        b.observe(5.0);
        let mut out = String::new();
        histogram(&mut out, "h", "rpc=\"x\"", &b);
        assert!(out.contains("h_bucket{rpc=\"x\",le=\"0.1\"} 1\n"));
        assert!(out.contains("h_bucket{rpc=\"x\",le=\"1\"} 2\n"));
        assert!(out.contains("h_bucket{rpc=\"x\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("h_count{rpc=\"x\"} 3\n"));
    }

    #[test]
    fn rpc_counts_render_by_code_with_cumulative_buckets() {
        let stats = RpcStats::new("CheckService/Check".into());
        stats.observe(CODE_OK, 0.00005);
        stats.observe(CODE_OK, 0.002);
        stats.observe(code_index("7"), 60.0);
        stats.observe(code_index("not a code"), 0.002);
        assert_eq!(stats.codes[CODE_OK].load(Ordering::Relaxed), 2);
        assert_eq!(stats.codes[7].load(Ordering::Relaxed), 1);
        assert_eq!(stats.codes[CODE_UNKNOWN].load(Ordering::Relaxed), 1);
        let b = stats.duration();
        // 0.0001 holds the first call; 0.0025 the two 2 ms calls too; the
        // 60 s call is only in +Inf.
        assert_eq!(b.counts[0], 1);
        assert_eq!(b.counts[4], 3);
        assert_eq!(*b.counts.last().unwrap(), 3);
        assert_eq!(b.count, 4);
        assert!((b.sum - 60.00405).abs() < 1e-6);
    }

    #[test]
    fn rpc_paths_resolve_to_one_entry_per_label_and_stay_bounded() {
        let registry = RpcRegistry::default();
        let a = registry.resolve("/warden.v1.CheckService/Check");
        let b = registry.resolve("/warden.v1.CheckService/Check");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.label, "CheckService/Check");
        let evil = registry.resolve("/evil.Service/x");
        assert_eq!(evil.label, "unknown");
        for i in 0..2 * MAX_RPC_LABELS {
            registry.resolve(&format!("/warden.v1.Made/up{i}"));
        }
        assert!(registry.by_label.lock().len() <= MAX_RPC_LABELS);
        assert!(registry.by_path.read().len() <= MAX_RPC_PATHS);
        // Labels made before the bound was reached keep their own entry.
        assert!(Arc::ptr_eq(
            &a,
            &registry.resolve("/warden.v1.CheckService/Check")
        ));
    }

    #[test]
    fn decisions_count_by_reason_and_outcome() {
        let d = DecisionCounts::new();
        d.count(Reason::Owner, true, 1);
        d.count(Reason::Owner, true, 1);
        d.count(Reason::InsufficientAccess, false, 1);
        // A CheckBulk adds its alike decisions at once.
        d.count(Reason::SharingRule, true, 5);
        let all = d.snapshot();
        assert_eq!(all.get(&("OWNER", true)), Some(&2));
        assert_eq!(all.get(&("INSUFFICIENT_ACCESS", false)), Some(&1));
        assert_eq!(all.get(&("SHARING_RULE", true)), Some(&5));
        assert_eq!(all.get(&("OWNER", false)), None);
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
