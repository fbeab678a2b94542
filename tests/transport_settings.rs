//! How the hot paths carry calls, observed from a client: CheckBulk pays
//! its fixed costs once per call (docs/decisions.md, "Transport and
//! per-call costs") and must still fail exactly as checks answered one
//! after another did, with the first failing check in request order.

mod common;

use common::{check_req, Server};
use warden::api::pb;

/// A check whose `at` is no timestamp: refused while converting, before
/// any organization is read.
fn unconvertible(org: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        at: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        }),
        ..check_req(org, "ann", "Leads", "view", "L1")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_bulk_fails_with_the_first_failing_check_in_request_order() {
    let server = Server::start();
    let mut c = server.clients().await;

    // A check refused by the engine (no such organization) before one
    // refused at conversion: the engine's refusal, at index 0, although
    // conversion of the whole call runs first.
    let e = c
        .check
        .check_bulk(pb::CheckBulkRequest {
            checks: vec![
                check_req("absent", "ann", "Leads", "view", "L1"),
                unconvertible("absent"),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{}", e.message());
    assert!(e.message().starts_with("checks[0]."), "{}", e.message());

    // The other way round: the conversion's refusal, at index 0, naming
    // the field.
    let e = c
        .check
        .check_bulk(pb::CheckBulkRequest {
            checks: vec![
                unconvertible("absent"),
                check_req("absent", "ann", "Leads", "view", "L1"),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    assert!(e.message().starts_with("checks[0].at"), "{}", e.message());

    // Two runs of checks on different organizations: the first run's
    // organization is the one named.
    let e = c
        .check
        .check_bulk(pb::CheckBulkRequest {
            checks: vec![
                check_req("absent-a", "ann", "Leads", "view", "L1"),
                check_req("absent-b", "ann", "Leads", "view", "L1"),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        e.message().starts_with("checks[0].") && e.message().contains("absent-a"),
        "{}",
        e.message()
    );
}
