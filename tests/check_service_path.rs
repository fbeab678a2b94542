//! The Check service path over a real `warden serve`: a CheckBulk counts
//! its decisions once per call (by reason and outcome, added together), and
//! the counts stay exact: `warden_decisions_total` moves by what the call
//! answered, check for check, and the answers are Check's.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use common::{import_scenario, Server};
use warden::api::pb;

/// `warden_decisions_total` by (reason, allowed) from `/metrics`.
fn decisions(metrics: &str) -> BTreeMap<(String, String), f64> {
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("warden_decisions_total{reason=\"") else {
            continue;
        };
        let (reason, rest) = rest.split_once("\",allowed=\"").unwrap();
        let (allowed, value) = rest.split_once("\"} ").unwrap();
        out.insert(
            (reason.to_string(), allowed.to_string()),
            value.parse().unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn check_bulk_counts_every_decision_by_reason_and_outcome_exactly() {
    // A free port for the metrics listener (the harness reads only the
    // gRPC address from the server's output).
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let server = Server::start_with(&["--metrics-listen", &metrics]);
    let mut c = server.clients().await;
    let scenario = import_scenario(&mut c, "manual-shares-grantees.yaml").await;
    let org = scenario.document.organization.clone();

    // The scenario's checks that Check answers (not refused), with
    // Check's answer to each.
    let mut checks = Vec::new();
    let mut answers = Vec::new();
    for spec in &scenario.checks {
        let r = spec.request();
        let req = pb::CheckRequest {
            org_id: org.as_str().into(),
            subject: r.subject,
            module: r.module,
            action: r.action,
            record_id: r.record.unwrap_or_default(),
            field: r.field.unwrap_or_default(),
            ..Default::default()
        };
        if spec.described.is_some() || spec.at.is_some() || spec.assign_to.is_some() {
            continue;
        }
        if let Ok(answer) = c.check.check(req.clone()).await {
            checks.push(req);
            answers.push(answer.into_inner());
        }
    }
    assert!(checks.len() >= 4, "the scenario has checks to answer");
    // Each check three times: alike decisions in one call.
    let bulk: Vec<pb::CheckRequest> = (0..3).flat_map(|_| checks.clone()).collect();

    let before = decisions(&metrics);
    let results = c
        .check
        .check_bulk(pb::CheckBulkRequest {
            checks: bulk.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let after = decisions(&metrics);

    assert_eq!(results.len(), bulk.len());
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        let one = &answers[i % answers.len()];
        assert_eq!(
            (r.allowed, r.reason, r.level),
            (one.allowed, one.reason, one.level),
            "checks[{i}] answered as Check answers it"
        );
        *expected
            .entry((
                r.reason()
                    .as_str_name()
                    .trim_start_matches("REASON_")
                    .to_string(),
                r.allowed.to_string(),
            ))
            .or_default() += 1.0;
    }
    assert!(expected.len() >= 2, "more than one reason: {expected:?}");
    let mut moved: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (key, n) in &after {
        let d = n - before.get(key).copied().unwrap_or(0.0);
        if d != 0.0 {
            moved.insert(key.clone(), d);
        }
    }
    assert_eq!(moved, expected);
}
