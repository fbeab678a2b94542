//! CheckBulk as the server routes it by hand (src/api/bulk_wire.rs): the
//! request converted as it is decoded, the response written from the
//! decisions. Over a real `warden serve`, what a client sees is what the
//! generated service answered: explain traces, the error of the first
//! failing check after every organization is authorized, decode errors of
//! a malformed body, and checks of two organizations at two revisions.

mod common;

use common::{auth, check_req, Server};
use warden::api::pb;

/// Tokens: an operator who may also check, and a checker limited to acme.
const TOKENS: &str = "ops=admin+check\nacme-check=check@acme\n";

fn doc(org: &str) -> String {
    format!(
        "organization: {org}
modules:
  - {{id: Leads, owd: PRIVATE, fields: [name]}}
profiles:
  - id: rep
    modules: {{Leads: [view, create, edit, delete, share, assign]}}
roles:
  - {{id: top, profiles: [rep]}}
  - {{id: reps, parent: top, profiles: [rep]}}
users:
  - {{id: root, role: top, admin: true}}
  - {{id: ann, role: reps}}
  - {{id: bob, role: reps}}
records:
  - {{module: Leads, id: L1, owner: {{user: ann}}}}
  - {{module: Leads, id: L2, owner: {{user: bob}}}}
"
    )
}

/// A server with tokens, acme and globex imported (globex twice, so the
/// two organizations answer at different revisions).
async fn start() -> (Server, common::Clients, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, TOKENS).unwrap();
    let server = Server::start_with(&["--auth-token-file", path.to_str().unwrap()]);
    let mut c = server.clients().await;
    for org in ["acme", "globex", "globex"] {
        c.admin
            .import(auth(
                "ops",
                pb::ImportRequest {
                    document: doc(org),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    (server, c, dir)
}

/// Checks of both organizations, explain on some, allowed and denied.
fn checks() -> Vec<pb::CheckRequest> {
    let mut out = Vec::new();
    for (i, org) in ["acme", "globex", "acme", "globex"].iter().enumerate() {
        for (subject, record) in [
            ("ann", "L1"),
            ("ann", "L2"),
            ("root", "L2"),
            ("nobody", "L1"),
        ] {
            let mut c = check_req(org, subject, "Leads", "view", record);
            c.explain = i % 2 == 0;
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_answers_each_check_as_check_does_traces_and_revisions_included() {
    let (_server, mut c, _dir) = start().await;
    let checks = checks();
    let bulk = c
        .check
        .check_bulk(auth(
            "ops",
            pb::CheckBulkRequest {
                checks: checks.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bulk.results.len(), checks.len());
    let mut revisions = std::collections::BTreeSet::new();
    let mut traces = 0;
    for (check, got) in checks.iter().zip(&bulk.results) {
        let one = c
            .check
            .check(auth("ops", check.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, &one, "{check:?}");
        revisions.insert(got.revision.to_string());
        traces += usize::from(!got.trace.is_empty());
    }
    // Both organizations' revisions, and traces where explain was asked.
    assert_eq!(revisions.len(), 2, "{revisions:?}");
    assert_eq!(traces, checks.iter().filter(|c| c.explain).count());
    let allowed = bulk.results.iter().filter(|r| r.allowed).count();
    assert!(allowed > 0 && allowed < checks.len(), "{allowed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_organization_is_authorized_before_a_check_is_refused_as_invalid() {
    let (_server, mut c, _dir) = start().await;
    // Check 1 is invalid (a timestamp out of range), check 2 names an
    // organization the token may not use: the caller's refusal comes
    // first, as through the generated service.
    let mut invalid = check_req("acme", "ann", "Leads", "view", "L1");
    invalid.at = Some(prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    });
    let request = vec![
        check_req("acme", "ann", "Leads", "view", "L1"),
        invalid.clone(),
        check_req("globex", "ann", "Leads", "view", "L1"),
    ];
    let e = c
        .check
        .check_bulk(auth("acme-check", pb::CheckBulkRequest { checks: request }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().starts_with("checks[2].org_id"),
        "{}",
        e.message()
    );
    // Without it, the invalid check's error, named by its index and field.
    let request = vec![
        check_req("acme", "ann", "Leads", "view", "L1"),
        invalid,
        check_req("acme", "bob", "Leads", "view", "L2"),
    ];
    let e = c
        .check
        .check_bulk(auth("acme-check", pb::CheckBulkRequest { checks: request }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("checks[1].at"), "{}", e.message());
    // No credential at all is refused before anything is decided.
    let e = c
        .check
        .check_bulk(pb::CheckBulkRequest { checks: checks() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_bulk_is_refused_as_prost_refuses_it() {
    use prost::Message;
    let (server, _c, _dir) = start().await;
    // A check whose subject is not UTF-8: sent as raw bytes, since no
    // client message can hold it.
    let good = pb::CheckBulkRequest {
        checks: vec![check_req("acme", "ann", "Leads", "view", "L1")],
    }
    .encode_to_vec();
    let mut bad = good.clone();
    let at = bad.iter().position(|&b| b == b'a').unwrap();
    // The first 'a' is acme's, inside check 0's org_id: make it 0xff.
    bad[at] = 0xff;
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/warden.v1.CheckService/CheckBulk");
    let mut req = tonic::Request::new(bad);
    req.metadata_mut()
        .insert("authorization", "Bearer ops".parse().unwrap());
    let e = grpc
        .unary::<Vec<u8>, Vec<u8>, _>(req, path.clone(), RawCodec)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");
    assert!(
        e.message().contains("CheckRequest.org_id") && e.message().contains("UTF-8"),
        "{}",
        e.message()
    );
    // The same bytes unharmed are answered.
    let mut req = tonic::Request::new(good);
    req.metadata_mut()
        .insert("authorization", "Bearer ops".parse().unwrap());
    grpc.ready().await.unwrap();
    let answer = grpc
        .unary::<Vec<u8>, Vec<u8>, _>(req, path, RawCodec)
        .await
        .unwrap()
        .into_inner();
    let answer = pb::CheckBulkResponse::decode(answer.as_slice()).unwrap();
    assert_eq!(answer.results.len(), 1);
    assert!(answer.results[0].allowed);
}

/// A codec that sends and receives a message's bytes as they are.
#[derive(Default, Clone)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}
