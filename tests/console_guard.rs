//! The console's JSON API as an anonymous client meets it, on a real
//! server over plain HTTP/1.1 sockets: served through the HTTP guard as
//! AuthZEN is (bearer token, body limit, requests in flight), its request
//! heads bounded in time, and its What if bounded by
//! --simulate-timeout-secs (as gRPC Simulate is) with the work stopped.
//! Nothing here measures speed: every wait is a generous upper bound.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;
use warden::api::pb;
use warden::console::api::MAX_BODY_BYTES;

const ORG: &str = "sharing-rules";
const TOKENS: &str = "console-token=check+admin";

/// Longest any wait here may take before the test fails; generous, as the
/// machine may be busy.
const PATIENCE: Duration = Duration::from_secs(120);

fn scenario() -> PathBuf {
    common::scenario_path("sharing-rules-member-sorts.yaml")
}

fn start(extra: &[&str]) -> (Server, String) {
    let scenario = scenario();
    let mut args = vec!["--bootstrap", scenario.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start_with_console(&args, &[("WARDEN_AUTH_TOKENS", TOKENS)])
}

/// A request head for `path`, with a bearer token and a JSON body length
/// when given.
fn head(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    length: Option<usize>,
) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        h.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(n) = length {
        h.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {n}\r\n"
        ));
    }
    h.push_str("\r\n");
    h
}

/// A response read to its end: status, head and body.
fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {answer:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// One request on a fresh connection: status, head (lower case) and the
/// body as JSON.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut text = head(addr, method, path, token, body.map(str::len));
    text.push_str(body.unwrap_or(""));
    stream.write_all(text.as_bytes()).unwrap();
    let (status, head, body) = read_response(&mut stream);
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, head, json)
}

#[test]
fn an_announced_oversized_body_is_refused_naming_the_limit_before_it_is_sent() {
    let (_server, console) = start(&[]);
    let mut stream = TcpStream::connect(&console).unwrap();
    // The head alone: the body is never sent, the answer comes anyway.
    let text = head(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/check"),
        Some("console-token"),
        Some(MAX_BODY_BYTES + 1),
    );
    stream.write_all(text.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut stream);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 413, "{e}");
    assert_eq!(e["code"], "RESOURCE_EXHAUSTED");
    assert_eq!(e["field"], "body");
    assert_eq!(
        e["message"],
        format!("body: at most {MAX_BODY_BYTES} bytes"),
        "the limit is named"
    );
}

#[test]
fn a_chunked_body_growing_past_the_limit_is_refused_naming_it() {
    let (_server, console) = start(&[]);
    let mut stream = TcpStream::connect(&console).unwrap();
    let mut text = format!(
        "POST /api/orgs/{ORG}/simulate HTTP/1.1\r\nHost: {console}\r\nConnection: close\r\n\
         Authorization: Bearer console-token\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    // No length announced: the limit is found while the body is read.
    let chunk = MAX_BODY_BYTES + 1024;
    text.push_str(&format!("{chunk:x}\r\n"));
    stream.write_all(text.as_bytes()).unwrap();
    let filler = vec![b' '; chunk];
    // The server may answer and stop reading before all of it is sent.
    let _ = stream
        .write_all(&filler)
        .and_then(|_| stream.write_all(b"\r\n0\r\n\r\n"));
    let (status, _, body) = read_response(&mut stream);
    let e: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(status, 413, "{e}");
    assert_eq!(e["code"], "RESOURCE_EXHAUSTED");
    assert_eq!(e["field"], "body");
    assert_eq!(
        e["message"],
        format!("body: at most {MAX_BODY_BYTES} bytes")
    );
}

#[test]
fn requests_without_a_valid_token_are_refused_before_their_body_is_read() {
    let (_server, console) = start(&[]);
    for token in [None, Some("not-a-token")] {
        let (status, head, e) = request(&console, "GET", "/api/orgs", token, None);
        assert_eq!(status, 401, "{token:?}: {e}");
        assert_eq!(e["code"], "UNAUTHENTICATED");
        assert_eq!(e["field"], "authorization");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        // An unknown endpoint is no way around the token.
        let (status, _, e) = request(&console, "GET", "/api/nothing-here", token, None);
        assert_eq!((status, e["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    }
    // An anonymous huge body is refused for the token, not read.
    let mut stream = TcpStream::connect(&console).unwrap();
    let text = head(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/simulate"),
        None,
        Some(100 * MAX_BODY_BYTES),
    );
    stream.write_all(text.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!(status, 401, "{body}");
    // The page itself needs no token: it asks for one.
    let mut stream = TcpStream::connect(&console).unwrap();
    stream
        .write_all(head(&console, "GET", "/", None, None).as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut stream).0, 200);
}

#[test]
fn requests_past_the_in_flight_cap_are_refused_and_the_held_one_completes() {
    let (_server, console) = start(&["--max-in-flight", "1"]);
    let check = r#"{"subject":"sp","module":"Leads","action":"view","record_id":"l-s"}"#;
    // A check whose body is half sent holds the one slot while the server
    // waits for the rest.
    let text = head(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/check"),
        Some("console-token"),
        Some(check.len()),
    );
    let hold = || {
        let mut held = TcpStream::connect(&console).unwrap();
        held.write_all(text.as_bytes()).unwrap();
        held.write_all(&check.as_bytes()[..10]).unwrap();
        held
    };
    let mut held = hold();
    // Until the server has read that head, another request may still get
    // the slot: ask until one is refused. Were the held request's head
    // read while such a request had the slot, the held one is the one
    // refused: it is sent again.
    let started = Instant::now();
    let refused = loop {
        let (status, head, e) = request(&console, "GET", "/api/orgs", Some("console-token"), None);
        if status == 429 {
            break (head, e);
        }
        assert_eq!(status, 200, "{e}");
        assert!(started.elapsed() < PATIENCE, "never refused past the cap");
        held.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if closed(&mut held) {
            held = hold();
        }
    };
    held.set_read_timeout(None).unwrap();
    let (head, e) = refused;
    assert_eq!(e["code"], "RESOURCE_EXHAUSTED");
    assert!(
        e["message"].as_str().unwrap().contains("--max-in-flight 1"),
        "{e}"
    );
    assert!(head.contains("retry-after: 1"), "{head}");
    // The held request is answered once its body is complete...
    held.write_all(&check.as_bytes()[10..]).unwrap();
    let (status, _, body) = read_response(&mut held);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    // sp reads l-s through the rule leads-role (tests/console.rs).
    assert_eq!(answer["allowed"], true, "{answer}");
    // ...and its slot is free again.
    let (status, _, e) = request(&console, "GET", "/api/orgs", Some("console-token"), None);
    assert_eq!(status, 200, "{e}");
}

/// Whether the server closed `stream` or refused what it sent: a read
/// that finds its end, an error status (408), or a reset.
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(n) => n == 0 || buf[..n].starts_with(b"HTTP/1.1 4"),
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn a_client_trickling_its_headers_is_cut_off() {
    let (_server, console) = start(&["--handshake-timeout-secs", "1"]);
    let mut stream = TcpStream::connect(&console).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
        .write_all(b"GET /api/orgs HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // A byte every 200 ms keeps the connection from ever being idle; only
    // a bound on the whole head ends it.
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < PATIENCE {
        if stream.write_all(b"X").is_err() || closed(&mut stream) {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickled head held the connection for {PATIENCE:?}");
}

#[test]
fn a_connection_that_sends_nothing_is_closed() {
    let (_server, console) = start(&["--handshake-timeout-secs", "1"]);
    let mut stream = TcpStream::connect(&console).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 64];
    // The end of the stream (0) or a reset: anything but the timeout.
    match stream.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "nothing to answer, yet got {n} bytes"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "still open after {PATIENCE:?}"
        ),
    }
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_over_its_bound_ends_with_the_error_stops_and_changes_nothing() {
    // An organization whose whole comparison (10,000 users, every module)
    // takes minutes; the bound is one second.
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("crm.json");
    let generated = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "generate",
            "--preset",
            "crm-large",
            "--scale",
            "0.01",
            "--out",
        ])
        .arg(&doc)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let org = "crm-large-x0.01";
    let (server, console) = Server::start_with_console(
        &[
            "--bootstrap",
            doc.to_str().unwrap(),
            "--simulate-timeout-secs",
            "1",
        ],
        &[("WARDEN_AUTH_TOKENS", TOKENS)],
    );
    let mut clients = server.clients().await;
    let export = |org: &str| pb::ExportRequest {
        org_id: org.into(),
        ..Default::default()
    };
    let before = clients
        .admin
        .export(authorized(export(org)))
        .await
        .unwrap()
        .into_inner();
    // Deleting the organization reaches every subject: a full comparison.
    let addr = console.clone();
    let (status, _, e) = tokio::task::spawn_blocking(move || {
        request(
            &addr,
            "POST",
            &format!("/api/orgs/{org}/simulate"),
            Some("console-token"),
            Some(r#"{"change": "- delete_organization: {}"}"#),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 503, "{e}");
    assert_eq!(e["code"], "DEADLINE_EXCEEDED");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("--simulate-timeout-secs (1 s)"),
        "the limit is named: {e}"
    );
    // gRPC Simulate obeys the same bound.
    let grpc = clients
        .admin
        .simulate(authorized(pb::SimulateRequest {
            org_id: org.into(),
            writes: vec![pb::Write {
                write: Some(pb::write::Write::DeleteOrganization(
                    pb::DeleteOrganizationRequest {
                        org_id: org.into(),
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(grpc.code(), tonic::Code::DeadlineExceeded, "{grpc:?}");
    assert!(
        grpc.message().contains("--simulate-timeout-secs"),
        "{grpc:?}"
    );
    // The work stopped: over the next seconds the server, otherwise idle,
    // uses far less than the whole core a running comparison would (one
    // comparison step between checks of the bound is milliseconds).
    let ticks_per_second = 100; // USER_HZ on Linux
    let window = Duration::from_secs(4);
    let start_ticks = cpu_ticks(server.pid());
    tokio::time::sleep(window).await;
    let used = cpu_ticks(server.pid()) - start_ticks;
    assert!(
        used < ticks_per_second,
        "the server used {used} ticks of CPU in {window:?} after the simulations ended"
    );
    let after = clients
        .admin
        .export(authorized(export(org)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "a stopped simulation changed nothing");
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", "Bearer console-token".parse().unwrap());
    r
}
