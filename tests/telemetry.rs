//! Telemetry against the real server: spans reach an OTLP receiver with the
//! caller's trace as parent, decisions reach it as log records in that
//! trace, `/metrics` counts the calls made, and the decision log writes one
//! JSON line per decision with nothing secret.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{check_req, Server};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::transport::Channel;
use warden::api::pb;
use warden::api::pb::admin_service_client::AdminServiceClient;
use warden::api::pb::check_service_client::CheckServiceClient;

const TOKEN: &str = "tel3metry-s3cret-token";
const ATTRIBUTE_VALUE: &str = "CONFIDENTIAL-REGION-VALUE";

fn document() -> String {
    format!(
        r#"
organization: tel
modules:
  - {{id: Leads, owd: PRIVATE, fields: [name, email]}}
profiles:
  - {{id: rep, modules: {{Leads: [view, create, edit]}}}}
roles:
  - {{id: top, profiles: [rep]}}
  - {{id: reps, parent: top, profiles: [rep]}}
users:
  - {{id: alice, role: reps}}
  - {{id: bob, role: reps}}
records:
  - {{module: Leads, id: L-alice, owner: {{user: alice}}, attributes: {{region: {ATTRIBUTE_VALUE}}}}}
"#
    )
}

fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}

async fn import(channel: Channel) {
    let mut admin = AdminServiceClient::new(channel);
    admin
        .import(authed(pb::ImportRequest {
            document: document(),
            replace: true,
            ..Default::default()
        }))
        .await
        .expect("import the telemetry organization");
}

#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
}

impl Receiver {
    /// Log records received so far, each with its resource's attributes.
    fn log_records(&self) -> Vec<(LogRecord, Vec<KeyValue>)> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .flat_map(|e| &e.resource_logs)
            .flat_map(|rl| {
                let resource = rl
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                rl.scope_logs
                    .iter()
                    .flat_map(|sl| &sl.log_records)
                    .map(move |r| (r.clone(), resource.clone()))
            })
            .collect()
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.spans.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP/gRPC collector on a free loopback port.
async fn start_receiver() -> (Receiver, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(receiver.clone()))
        .add_service(MetricsServiceServer::new(receiver.clone()))
        .add_service(LogsServiceServer::new(receiver.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    (receiver, format!("http://{addr}"))
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attr(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_spans_and_decision_records_reach_the_collector_in_the_callers_trace() {
    let (receiver, endpoint) = start_receiver().await;
    let server = Server::start_with_env(
        &["--otlp-endpoint", &endpoint, "--decision-log", "otlp"],
        &[
            ("WARDEN_AUTH_TOKENS", &format!("{TOKEN}=check+admin+grant")),
            // Export within the test's patience rather than every 5 s / 60 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    let channel = server.channel().await;
    import(channel.clone()).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut check = CheckServiceClient::new(channel);
    let mut req = authed(check_req("tel", "bob", "Leads", "view", "L-alice"));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    req.metadata_mut()
        .insert("tracestate", "vendor=opaque".parse().unwrap());
    let answer = check.check(req).await.unwrap().into_inner();
    assert!(!answer.allowed);

    let deadline = Instant::now() + Duration::from_secs(20);
    let (span, resource): (Span, Vec<KeyValue>) = loop {
        let found = receiver.spans.lock().unwrap().iter().find_map(|export| {
            export.resource_spans.iter().find_map(|rs| {
                rs.scope_spans
                    .iter()
                    .flat_map(|ss| &ss.spans)
                    .find(|s| s.name == "Check")
                    .map(|s| {
                        (
                            s.clone(),
                            rs.resource
                                .as_ref()
                                .map(|r| r.attributes.clone())
                                .unwrap_or_default(),
                        )
                    })
            })
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no Check span reached the collector"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(hex(&span.trace_id), trace_id, "the caller's trace goes on");
    assert_eq!(
        hex(&span.parent_span_id),
        parent_id,
        "the caller's span is the parent"
    );
    assert_eq!(span.trace_state, "vendor=opaque");
    assert_eq!(string_attr(&span.attributes, "org").as_deref(), Some("tel"));
    assert_eq!(
        string_attr(&span.attributes, "decision").as_deref(),
        Some("DENY")
    );
    assert_eq!(
        string_attr(&span.attributes, "reason").as_deref(),
        Some("INSUFFICIENT_ACCESS")
    );
    assert!(attr(&span.attributes, "revision").is_some());
    // A write's span names its method and the revision it made.
    let import_span = receiver
        .spans
        .lock()
        .unwrap()
        .iter()
        .flat_map(|export| &export.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .find(|s| s.name == "Import")
        .cloned()
        .expect("the Import span reached the collector with the Check's");
    assert_eq!(
        string_attr(&import_span.attributes, "method").as_deref(),
        Some("Import")
    );
    // Revisions are strings in the API and in spans alike.
    assert_eq!(
        string_attr(&import_span.attributes, "revision").as_deref(),
        Some("1"),
        "the first write of a new organization makes revision 1"
    );
    for kv in &span.attributes {
        let text = format!("{:?}", kv.value);
        assert!(!text.contains(TOKEN) && !text.contains(ATTRIBUTE_VALUE));
    }
    // --decision-log otlp: the decision is a log record, not a span event.
    assert!(
        span.events.iter().all(|e| e.name != "decision"),
        "the decision is not duplicated on the span"
    );
    assert_eq!(
        string_attr(&resource, "service.name").as_deref(),
        Some("warden")
    );
    assert!(string_attr(&resource, "service.version").is_some());
    assert!(string_attr(&resource, "service.instance.id").is_some());

    // The decision arrives as a log record in the caller's trace, on the
    // Check span, with the fields of the stderr line as attributes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (record, log_resource) = loop {
        let found = receiver.log_records().into_iter().find(|(r, _)| {
            matches!(
                r.body.as_ref().and_then(|b| b.value.as_ref()),
                Some(Value::StringValue(b)) if b == "decision"
            )
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no decision log record reached the collector"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        hex(&record.trace_id),
        trace_id,
        "the record is in the caller's trace"
    );
    assert_eq!(
        hex(&record.span_id),
        hex(&span.span_id),
        "on the Check span"
    );
    assert!(
        record.time_unix_nano > 0,
        "the decision's time is the record's"
    );
    assert!(record.severity_number > 0);
    let attrs = &record.attributes;
    for (key, want) in [
        ("org", "tel"),
        ("subject", "bob"),
        ("module", "Leads"),
        ("action", "view"),
        ("record", "L-alice"),
        ("reason", "INSUFFICIENT_ACCESS"),
    ] {
        assert_eq!(string_attr(attrs, key).as_deref(), Some(want), "{key}");
    }
    assert_eq!(attr(attrs, "allowed"), Some(&Value::BoolValue(false)));
    assert!(string_attr(attrs, "level").is_some());
    assert!(matches!(attr(attrs, "revision"), Some(Value::IntValue(r)) if *r >= 1));
    for kv in attrs {
        let text = format!("{:?}", kv.value);
        assert!(!text.contains(TOKEN) && !text.contains(ATTRIBUTE_VALUE));
    }
    assert_eq!(
        string_attr(&log_resource, "service.name").as_deref(),
        Some("warden"),
        "the same resource as the traces"
    );
    assert_eq!(
        string_attr(&log_resource, "service.instance.id"),
        string_attr(&resource, "service.instance.id")
    );

    // Metrics go to the same endpoint.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = receiver
            .metrics
            .lock()
            .unwrap()
            .iter()
            .flat_map(|e| &e.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .map(|m| m.name.clone())
            .collect();
        if names.iter().any(|n| n == "warden.decisions")
            && names.iter().any(|n| n == "warden.rpc.calls")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never reached the collector: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts warden with stdout and stderr captured; returns the child, its
/// gRPC address, its metrics address (if asked) and its stderr lines.
fn spawn_captured(args: &[&str]) -> (Child, String, Option<String>, Arc<Mutex<Vec<String>>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());
    // The store's directory lives as long as the process's test.
    std::mem::forget(dir);
    spawn_captured_on(&store, args)
}

/// [`spawn_captured`] on a given store.
fn spawn_captured_on(
    store: &str,
    args: &[&str],
) -> (Child, String, Option<String>, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            store,
            "--log",
            "info",
        ])
        .args(args)
        .env("WARDEN_AUTH_TOKENS", format!("{TOKEN}=check+admin+grant"))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warden serve");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let mut out = BufReader::new(stdout).lines();
    let mut metrics = None;
    let addr = loop {
        match out.next() {
            Some(Ok(line)) => {
                if let Some(m) = line.strip_prefix("warden metrics on http://") {
                    metrics = Some(m.trim_end_matches("/metrics").to_string());
                }
                if let Some(a) = line.strip_prefix("warden listening on ") {
                    break a.to_string();
                }
            }
            _ => panic!(
                "warden serve exited before listening: {:?}",
                lines.lock().unwrap()
            ),
        }
    };
    std::thread::spawn(move || for _ in out {});
    (child, addr, metrics, lines)
}

async fn connect(addr: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(ch) = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            return ch;
        }
        assert!(Instant::now() < deadline, "warden never accepted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn scrape(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// One sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Samples of a Prometheus text exposition: (name, labels, value). Checks
/// each line's shape, so that a malformed line fails the test.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            assert!(
                line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels close");
                let labels = body
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once("=\"").expect("label=\"value\"");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name}"
        );
        samples.push((name, labels, value));
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_endpoint_counts_calls_by_rpc_and_code_and_decisions_by_reason() {
    let (mut child, addr, metrics, _stderr) = spawn_captured(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics.expect("the metrics address is printed");
    let channel = connect(&addr).await;
    import(channel.clone()).await;

    let before = parse_prometheus(&scrape(&metrics, "/metrics").1);
    let mut check = CheckServiceClient::new(channel);
    for _ in 0..3 {
        let a = check
            .check(authed(check_req("tel", "bob", "Leads", "view", "L-alice")))
            .await
            .unwrap()
            .into_inner();
        assert!(!a.allowed);
    }
    let a = check
        .check(authed(check_req(
            "tel", "alice", "Leads", "view", "L-alice",
        )))
        .await
        .unwrap()
        .into_inner();
    assert!(a.allowed);
    let refused = check
        .check(authed(check_req("tel", "alice", "Leads", "fly", "L-alice")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let unauthenticated = check
        .check(check_req("tel", "alice", "Leads", "view", "L-alice"))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    // A stream is counted when it ends, with the code of its trailers.
    let mut pages = check
        .lookup_records(authed(pb::LookupRecordsRequest {
            org_id: "tel".into(),
            subject: "alice".into(),
            module: "Leads".into(),
            action: "view".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    while pages.message().await.unwrap().is_some() {}

    let (head, body) = scrape(&metrics, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let after = parse_prometheus(&body);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let rpc = ("rpc", "CheckService/Check");
    assert_eq!(moved("warden_rpc_calls_total", &[rpc, ("code", "OK")]), 4.0);
    assert_eq!(
        moved(
            "warden_rpc_calls_total",
            &[rpc, ("code", "INVALID_ARGUMENT")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "warden_rpc_calls_total",
            &[rpc, ("code", "UNAUTHENTICATED")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "warden_rpc_calls_total",
            &[("rpc", "CheckService/LookupRecords"), ("code", "OK")]
        ),
        1.0
    );
    assert_eq!(
        moved("warden_rpc_duration_seconds_count", &[rpc]),
        6.0,
        "every call is timed"
    );
    assert_eq!(
        moved(
            "warden_decisions_total",
            &[("reason", "INSUFFICIENT_ACCESS"), ("allowed", "false")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            "warden_decisions_total",
            &[("reason", "OWNER"), ("allowed", "true")]
        ),
        1.0
    );
    assert_eq!(value(&after, "warden_organizations", &[]), 1.0);
    assert_eq!(value(&after, "warden_records", &[("org", "tel")]), 1.0);
    assert!(value(&after, "warden_store_operations_total", &[("op", "commit")]) >= 1.0);
    for name in [
        "warden_cache_hits_total",
        "warden_cache_misses_total",
        "warden_cache_evictions_total",
        "warden_invalidations_total",
        "warden_catch_ups_total",
        "warden_reloads_total",
        "warden_bus_messages_total",
        "warden_bus_gaps_total",
        "warden_store_errors_total",
        "warden_propagation_delay_seconds_count",
    ] {
        assert!(after.iter().any(|(n, _, _)| n == name), "{name} is exposed");
    }
    // No user or record id ever becomes a label.
    for (_, labels, _) in &after {
        for (_, v) in labels {
            assert!(!["alice", "bob", "L-alice"].contains(&v.as_str()), "{v}");
        }
    }
    let (head, _) = scrape(&metrics, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn decision_log_writes_one_json_line_per_decision_without_secrets() {
    let (mut child, addr, _, stderr) = spawn_captured(&["--decision-log", "stderr"]);
    let channel = connect(&addr).await;
    import(channel.clone()).await;
    let mut check = CheckServiceClient::new(channel);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut req = authed(check_req("tel", "bob", "Leads", "view", "L-alice"));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    check.check(req).await.unwrap();
    let mut req = check_req("tel", "alice", "Leads", "edit", "L-alice");
    req.field = "email".into();
    check.check(authed(req)).await.unwrap();
    let bulk = pb::CheckBulkRequest {
        checks: vec![
            check_req("tel", "alice", "Leads", "view", "L-alice"),
            check_req("tel", "nobody", "Leads", "view", "L-alice"),
        ],
    };
    check.check_bulk(authed(bulk)).await.unwrap();

    let decisions = |lines: &[String]| -> Vec<serde_json::Value> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("reason").is_some() && v.get("subject").is_some())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while decisions(&stderr.lock().unwrap()).len() < 4 {
        assert!(Instant::now() < deadline, "the decision lines never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = stderr.lock().unwrap().clone();
    let logged = decisions(&lines);
    assert_eq!(logged.len(), 4, "one line per decision: {logged:?}");
    for line in &logged {
        for field in [
            "time", "trace_id", "org", "subject", "module", "action", "record", "field", "allowed",
            "reason", "level", "revision",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(line["org"], "tel");
        assert!(line["revision"].as_u64().unwrap() >= 1);
        chrono::DateTime::parse_from_rfc3339(line["time"].as_str().unwrap()).unwrap();
    }
    assert_eq!(logged[0]["subject"], "bob");
    assert_eq!(logged[0]["trace_id"], trace_id);
    assert_eq!(logged[0]["allowed"], false);
    assert_eq!(logged[0]["reason"], "INSUFFICIENT_ACCESS");
    assert_eq!(logged[0]["record"], "L-alice");
    assert_eq!(logged[1]["field"], "email");
    assert_eq!(logged[1]["action"], "edit");
    assert_eq!(logged[1]["allowed"], true);
    assert_eq!(logged[1]["level"], "FULL");
    assert_eq!(logged[3]["reason"], "UNKNOWN_SUBJECT");
    for line in &lines {
        assert!(!line.contains(TOKEN), "a token was logged: {line}");
        assert!(
            !line.contains(ATTRIBUTE_VALUE),
            "an attribute value was logged: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sampled_decision_log_still_logs_every_denial_when_asked() {
    let (mut child, addr, _, stderr) = spawn_captured(&[
        "--decision-log",
        "stderr",
        "--decision-log-sample",
        "0",
        "--decision-log-denials",
    ]);
    let channel = connect(&addr).await;
    import(channel.clone()).await;
    let mut check = CheckServiceClient::new(channel);
    for _ in 0..3 {
        check
            .check(authed(check_req(
                "tel", "alice", "Leads", "view", "L-alice",
            )))
            .await
            .unwrap();
        check
            .check(authed(check_req("tel", "bob", "Leads", "view", "L-alice")))
            .await
            .unwrap();
    }
    let count = |allowed: bool| {
        stderr
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("reason").is_some() && v["allowed"] == allowed)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(false) < 3 {
        assert!(Instant::now() < deadline, "denials were not logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(count(false), 3);
    assert_eq!(count(true), 0, "a sample of 0 logs no allowed decision");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flushes_spans_and_decisions_still_waiting_for_their_batch() {
    let (receiver, endpoint) = start_receiver().await;
    let mut server = Server::start_with_env(
        &["--otlp-endpoint", &endpoint, "--decision-log", "otlp"],
        &[
            ("WARDEN_AUTH_TOKENS", &format!("{TOKEN}=check+admin+grant")),
            // Far beyond the test: only the shutdown flush can send the
            // span and the decision record.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "600000"),
        ],
    );
    let channel = server.channel().await;
    import(channel.clone()).await;
    let mut check = CheckServiceClient::new(channel);
    check
        .check(authed(check_req(
            "tel", "alice", "Leads", "view", "L-alice",
        )))
        .await
        .unwrap();
    drop(check);
    let has_check = |r: &Receiver| {
        r.spans
            .lock()
            .unwrap()
            .iter()
            .flat_map(|e| &e.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .any(|s| s.name == "Check")
    };
    assert!(!has_check(&receiver), "exported before its batch was due");
    assert!(
        receiver.log_records().is_empty(),
        "logged before its batch was due"
    );
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        has_check(&receiver),
        "the Check span was flushed at shutdown"
    );
    assert_eq!(
        receiver.log_records().len(),
        1,
        "the decision record was flushed at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bus_messages_and_propagation_delay_are_measured_on_the_receiving_replica() {
    let redis = common::services::Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());
    let url = redis.url();
    let (mut writer, writer_addr, _, _) = spawn_captured_on(&store, &["--redis", &url]);
    // A poll far beyond the test: only the bus can tell the reader.
    let (mut reader, _, metrics, _) = spawn_captured_on(
        &store,
        &[
            "--redis",
            &url,
            "--poll-interval-ms",
            "600000",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let metrics = metrics.expect("the metrics address is printed");
    let channel = connect(&writer_addr).await;
    // The reader subscribes in the background: write until it has heard.
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        import(channel.clone()).await;
        let samples = parse_prometheus(&scrape(&metrics, "/metrics").1);
        if value(&samples, "warden_bus_messages_total", &[]) >= 1.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "the reader never heard the bus");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let delays = value(&samples, "warden_propagation_delay_seconds_count", &[]);
    assert!(delays >= 1.0, "every message carries its publication time");
    let mean = value(&samples, "warden_propagation_delay_seconds_sum", &[]) / delays;
    assert!((0.0..10.0).contains(&mean), "mean delay {mean}");
    for child in [&mut writer, &mut reader] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
