//! Check's unary call is read and answered by src/api/unary.rs, not by
//! tonic's streaming path. On the wire it must behave as tonic does: the
//! same answer however the client splits the message into frames, and for
//! every framing fault the same status and message as CheckFields, a
//! method of the same service that tonic serves. Raw HTTP/2 (the h2
//! client) sends what a tonic client never would: split prefixes, bad
//! flags, a body cut short, compressed content.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{import_scenario, scenario_check, Server};
use prost::Message;
use warden::api::pb;

/// What came back: the status (from the headers of a trailers-only answer
/// or from the trailers), the data frames joined, and both header maps.
#[derive(Debug)]
struct Reply {
    status: String,
    message: String,
    headers: http::HeaderMap,
    data: Vec<u8>,
    trailers: Option<http::HeaderMap>,
}

/// How the request body is sent.
struct Outgoing {
    /// Extra request headers.
    headers: Vec<(&'static str, &'static str)>,
    /// DATA frames, in order.
    frames: Vec<Bytes>,
    /// Trailers after the frames (ends the stream).
    trailers: Option<http::HeaderMap>,
    /// Whether the last frame ends the stream (when there are no trailers).
    end: bool,
}

impl Outgoing {
    fn frames(frames: Vec<Bytes>) -> Outgoing {
        Outgoing {
            headers: Vec::new(),
            frames,
            trailers: None,
            end: true,
        }
    }
}

/// gRPC's framing of one message: flag, big-endian length, bytes.
fn framed(flag: u8, message: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(flag);
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

/// `bytes` cut at `cuts` (offsets, increasing).
fn split(bytes: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts {
        out.push(bytes.slice(at..c));
        at = c;
    }
    out.push(bytes.slice(at..));
    out
}

async fn call(addr: &str, method: &str, send: Outgoing) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/warden.v1.CheckService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in &send.headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).unwrap();
    let no_body = send.frames.is_empty() && send.trailers.is_none() && send.end;
    let (response, mut stream) = client.send_request(request, no_body).unwrap();
    let last = send.frames.len();
    for (i, frame) in send.frames.into_iter().enumerate() {
        let end = i + 1 == last && send.trailers.is_none() && send.end;
        stream.send_data(frame, end).unwrap();
    }
    if let Some(trailers) = send.trailers {
        stream.send_trailers(trailers).unwrap();
    }
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("an answer in time")
        .unwrap();
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    let from = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.as_ref().and_then(|t| t.get(name)))
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    drop(stream);
    Reply {
        status: from("grpc-status"),
        message: from("grpc-message"),
        headers: parts.headers,
        data,
        trailers,
    }
}

/// A check that the scenario answers, its encoded message, and the answer
/// the tonic client gets for it.
async fn a_check(server: &Server) -> (Vec<u8>, pb::CheckResponse) {
    let mut c = server.clients().await;
    let scenario = import_scenario(&mut c, "manual-shares-grantees.yaml").await;
    let org = scenario.document.organization.clone();
    let req = scenario_check(org.as_str(), &scenario.checks[0]);
    let expected = c.check.check(req.clone()).await.unwrap().into_inner();
    (req.encode_to_vec(), expected)
}

/// The response message of an OK reply: one framed CheckResponse.
fn answer_of(reply: &Reply) -> pb::CheckResponse {
    assert_eq!(reply.status, "0", "{reply:?}");
    assert_eq!(reply.data[0], 0, "not compressed");
    let len = u32::from_be_bytes(reply.data[1..5].try_into().unwrap()) as usize;
    assert_eq!(reply.data.len(), 5 + len, "one message");
    pb::CheckResponse::decode(&reply.data[5..]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_answers_the_same_however_the_message_is_split_into_frames() {
    let server = Server::start();
    let (message, expected) = a_check(&server).await;
    let whole = framed(0, &message);
    let n = whole.len();
    let splits: Vec<Vec<usize>> = vec![
        vec![],
        vec![1],
        vec![4],
        vec![5],
        vec![7],
        vec![n - 1],
        vec![2, 5, 9],
        (1..n).collect(),
    ];
    for cuts in splits {
        let reply = call(
            &server.addr,
            "Check",
            Outgoing::frames(split(&whole, &cuts)),
        )
        .await;
        assert_eq!(answer_of(&reply), expected, "cuts {cuts:?}");
        assert_eq!(
            reply.headers.get("content-type").unwrap(),
            "application/grpc"
        );
        let trailers = reply.trailers.as_ref().expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert_eq!(trailers.len(), 1, "only grpc-status: {trailers:?}");
    }
    // An empty frame before, and request trailers after, change nothing.
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-anything", "1".parse().unwrap());
    let reply = call(
        &server.addr,
        "Check",
        Outgoing {
            headers: vec![("grpc-encoding", "identity")],
            frames: vec![Bytes::new(), whole.clone()],
            trailers: Some(trailers),
            end: true,
        },
    )
    .await;
    assert_eq!(answer_of(&reply), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_answers_its_first_message_and_drains_the_rest_as_tonic_does() {
    let server = Server::start();
    let (message, expected) = a_check(&server).await;
    let mut two = BytesMut::new();
    two.put_slice(&framed(0, &message));
    two.put_slice(&framed(0, &pb::CheckRequest::default().encode_to_vec()));
    let reply = call(&server.addr, "Check", Outgoing::frames(vec![two.freeze()])).await;
    assert_eq!(answer_of(&reply), expected);
    // A second message that does not decode fails the call, as it does
    // on a method tonic serves.
    let mut bad = BytesMut::new();
    bad.put_slice(&framed(0, &message));
    bad.put_slice(&framed(0, &[0x0a, 0x05, b'x']));
    let ours = call(
        &server.addr,
        "Check",
        Outgoing::frames(vec![bad.clone().freeze()]),
    )
    .await;
    let tonic = call(
        &server.addr,
        "CheckFields",
        Outgoing::frames(vec![bad.freeze()]),
    )
    .await;
    assert_eq!(ours.status, "13", "{ours:?}");
    assert_eq!(ours.status, tonic.status);
    assert!(ours.data.is_empty(), "no message with an error");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_framing_fault_is_answered_as_tonic_answers_it() {
    let server = Server::start();
    // A message both methods decode (fields 1 to 4 are strings in both).
    let message = pb::CheckRequest {
        org_id: "nowhere".into(),
        subject: "u".into(),
        module: "m".into(),
        action: "view".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let whole = framed(0, &message);
    let mut too_long = BytesMut::new();
    too_long.put_u8(0);
    too_long.put_u32(4 * 1024 * 1024 + 1);
    let cases: Vec<(&str, Outgoing)> = vec![
        ("no message", Outgoing::frames(vec![])),
        ("an empty frame only", Outgoing::frames(vec![Bytes::new()])),
        (
            "a prefix cut short",
            Outgoing::frames(vec![whole.slice(..3)]),
        ),
        (
            "a message cut short",
            Outgoing::frames(vec![whole.slice(..whole.len() - 1)]),
        ),
        (
            "compressed flag without grpc-encoding",
            Outgoing::frames(vec![framed(1, &message)]),
        ),
        (
            "an invalid flag",
            Outgoing::frames(vec![framed(2, &message)]),
        ),
        (
            "over 4 MiB",
            Outgoing::frames(vec![too_long.clone().freeze()]),
        ),
        (
            "compressed content",
            Outgoing {
                headers: vec![("grpc-encoding", "gzip")],
                ..Outgoing::frames(vec![whole.clone()])
            },
        ),
        (
            "an unknown encoding",
            Outgoing {
                headers: vec![("grpc-encoding", "snappy")],
                ..Outgoing::frames(vec![whole.clone()])
            },
        ),
    ];
    for (name, send) in cases {
        let same = Outgoing {
            headers: send.headers.clone(),
            frames: send.frames.clone(),
            trailers: None,
            end: send.end,
        };
        let ours = call(&server.addr, "Check", send).await;
        let tonic = call(&server.addr, "CheckFields", same).await;
        assert_ne!(ours.status, "0", "{name}: refused: {ours:?}");
        assert_eq!(
            (&ours.status, &ours.message),
            (&tonic.status, &tonic.message),
            "{name}"
        );
        assert_eq!(
            ours.headers.get("grpc-accept-encoding"),
            tonic.headers.get("grpc-accept-encoding"),
            "{name}"
        );
        assert!(ours.data.is_empty(), "{name}: no message with an error");
    }
    // A length over the limit is refused from its prefix, before the body
    // ends (the stream is left open here): by the transport's message
    // limit in front of both methods.
    let open = || Outgoing {
        end: false,
        ..Outgoing::frames(vec![too_long.clone().freeze()])
    };
    let ours = call(&server.addr, "Check", open()).await;
    let tonic = call(&server.addr, "CheckFields", open()).await;
    assert_ne!(ours.status, "0", "refused: {ours:?}");
    assert_eq!(
        (&ours.status, &ours.message),
        (&tonic.status, &tonic.message)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_stops_mid_message_is_cut_off_by_the_request_timeout() {
    // The prefix and half the message, then nothing (the stream stays
    // open): the call layer's deadline answers, as it does for a method
    // tonic serves.
    let server = Server::start_with(&["--request-timeout-secs", "1"]);
    let message = pb::CheckRequest {
        org_id: "nowhere".into(),
        subject: "u".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let whole = framed(0, &message);
    let stalled = || Outgoing {
        end: false,
        ..Outgoing::frames(vec![whole.slice(..whole.len() / 2)])
    };
    let started = std::time::Instant::now();
    let ours = call(&server.addr, "Check", stalled()).await;
    let waited = started.elapsed();
    let tonic = call(&server.addr, "CheckFields", stalled()).await;
    assert_ne!(ours.status, "0", "{ours:?}");
    assert_eq!(
        (&ours.status, &ours.message),
        (&tonic.status, &tonic.message)
    );
    assert!(
        waited < Duration::from_secs(8),
        "answered by the deadline: {waited:?}"
    );
}
