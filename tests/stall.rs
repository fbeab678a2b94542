//! No input stalls the server (SPEC section 6), over gRPC against the real
//! `warden serve`: long chains and deep nesting refused at once, documents
//! too large or from the wrong caller refused before they are parsed,
//! connections that never handshake, fall silent or exceed the cap closed,
//! calls beyond the in-flight cap answered RESOURCE_EXHAUSTED, and readers
//! waiting for an unreachable revision costing writes nothing.

mod common;

use std::time::{Duration, Instant};

use common::{check_req, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::{Code, Request};
use warden::api::pb;

const ORG: &str = "stall";

/// A small organization: `ann` (member) owns L1, `root` is its admin.
const SMALL: &str = r#"{
  "organization": "stall",
  "modules": [{"id": "Leads", "owd": "PRIVATE", "fields": ["name"]}],
  "profiles": [{"id": "rep", "modules": {"Leads": ["view", "create", "edit"]}}],
  "roles": [{"id": "staff", "profiles": ["rep"]}],
  "users": [
    {"id": "root", "role": "staff", "admin": true},
    {"id": "ann", "role": "staff"}
  ],
  "records": [{"module": "Leads", "id": "L1", "owner": {"user": "ann"}}]
}"#;

fn import_req(document: String) -> pb::ImportRequest {
    pb::ImportRequest {
        org_id: ORG.into(),
        document,
        ..Default::default()
    }
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// A document of `n` groups, each nesting the next (depth n-1).
fn group_chain(n: usize) -> String {
    let groups: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let nested: Vec<String> = if i + 1 < n {
                vec![format!("g{}", i + 1)]
            } else {
                vec![]
            };
            serde_json::json!({"id": format!("g{i}"), "groups": nested})
        })
        .collect();
    serde_json::json!({"organization": ORG, "groups": groups}).to_string()
}

/// Reads from a raw connection until the server closes it; the time it
/// took, or `None` if it stayed open for `bound`.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = bound.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn long_group_chains_are_refused_fast_while_checks_keep_answering() {
    let server = Server::start();
    let mut c = server.clients().await;
    c.admin.import(import_req(SMALL.into())).await.unwrap();

    let mut checker = c.check.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let checks = tokio::spawn(async move {
        let mut answered = 0u32;
        let mut slowest = Duration::ZERO;
        while !*stop_rx.borrow_and_update() {
            let started = Instant::now();
            let r = checker
                .check(check_req(ORG, "ann", "Leads", "view", "L1"))
                .await
                .unwrap()
                .into_inner();
            assert!(r.allowed);
            slowest = slowest.max(started.elapsed());
            answered += 1;
        }
        (answered, slowest)
    });

    for (n, depth) in [(3_200, "3199"), (10_000, "9999")] {
        let doc = group_chain(n);
        let started = Instant::now();
        let e = c.admin.import(import_req(doc)).await.unwrap_err();
        let took = started.elapsed();
        println!("{n}-group chain refused in {took:?}");
        assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
        assert!(
            e.message()
                .contains(&format!("group nesting depth {depth} (below 'g0')")),
            "{}",
            e.message()
        );
        // Was ~25 s (3,200) and over 10 minutes (10,000); loose bounds, as
        // the machine running the tests may be busy.
        assert!(took < Duration::from_secs(5), "refused after {took:?}");
    }
    stop_tx.send(true).unwrap();
    let (answered, slowest) = checks.await.unwrap();
    println!("{answered} checks answered meanwhile, slowest {slowest:?}");
    assert!(answered > 0);
    assert!(slowest < Duration::from_secs(2), "a check took {slowest:?}");
    // Nothing of the refused documents was stored.
    let e = c
        .admin
        .get_group(pb::GetGroupRequest {
            org_id: ORG.into(),
            group_id: "g0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wide_document_of_ten_thousand_groups_imports_in_seconds() {
    let server = Server::start();
    let mut c = server.clients().await;
    // 100 groups each nesting 99 others: wide, two levels deep.
    let mut groups = Vec::new();
    for p in 0..100 {
        let leaves: Vec<String> = (0..99).map(|l| format!("leaf-{p}-{l}")).collect();
        groups.push(serde_json::json!({"id": format!("parent-{p}"), "groups": leaves}));
        groups.extend(leaves.iter().map(|l| serde_json::json!({"id": l})));
    }
    let doc = serde_json::json!({"organization": ORG, "groups": groups}).to_string();
    let started = Instant::now();
    c.admin.import(import_req(doc)).await.unwrap();
    let took = started.elapsed();
    println!("10,000-group wide document imported in {took:?}");
    // Loose: a debug build on a shared machine.
    assert!(took < Duration::from_secs(30), "imported in {took:?}");
    let g = c
        .admin
        .get_group(pb::GetGroupRequest {
            org_id: ORG.into(),
            group_id: "parent-7".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.group.unwrap().groups.len(), 99);
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_yaml_is_refused_fast_without_being_parsed() {
    let server = Server::start();
    let mut c = server.clients().await;
    let started = Instant::now();
    let doc = format!("organization: {ORG}\nmodules: {}", "[".repeat(200_000));
    let e = c.admin.import(import_req(doc)).await.unwrap_err();
    let took = started.elapsed();
    println!("200 KB of nested YAML refused in {took:?}");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("document: nested deeper than 64 levels"),
        "{}",
        e.message()
    );
    assert!(took < Duration::from_secs(3), "refused after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_are_refused_by_size_and_caller_before_the_document_is_parsed() {
    let server = Server::start_with(&[
        "--max-document-bytes",
        "4096",
        "--auth-token",
        "adm=admin",
        "--auth-token",
        "chk=check",
        "--auth-token",
        "grn=grant",
    ]);
    let mut c = server.clients().await;
    c.admin
        .import(with_token(import_req(SMALL.into()), "adm"))
        .await
        .unwrap();
    // Not a document at all: any parse would answer INVALID_ARGUMENT.
    let garbage = |len: usize| "\u{7}".repeat(len);

    // Over --max-document-bytes, within the message limit: the handler
    // refuses by size, naming the limit.
    let e = c
        .admin
        .import(with_token(import_req(garbage(5_000)), "adm"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(
        e.message()
            .contains("document: 5000 bytes exceed the limit of 4096 bytes"),
        "{}",
        e.message()
    );
    // Over the message limit too: tonic refuses it while decoding, and the
    // answer is RESOURCE_EXHAUSTED, not OUT_OF_RANGE.
    let e = c
        .admin
        .import(with_token(import_req(garbage(200_000)), "adm"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(
        e.message().contains("exceed the limit of"),
        "{}",
        e.message()
    );

    // Small but unparsable: the caller is refused first.
    let e = c.admin.import(import_req(garbage(100))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    // Even over the message limit: credentials come before the body.
    let e = c
        .admin
        .import(import_req(garbage(200_000)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let e = c
        .admin
        .import(with_token(import_req(garbage(100)), "chk"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let mut by_ann = import_req(garbage(100));
    by_ann.actor = "ann".into();
    let e = c.admin.import(with_token(by_ann, "grn")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    assert!(
        e.message().contains("'ann' is not an administrator"),
        "{}",
        e.message()
    );
    // An admin actor with a grant-only credential.
    let mut by_root = import_req(garbage(100));
    by_root.actor = "root".into();
    let e = c
        .admin
        .import(with_token(by_root.clone(), "grn"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    // An actor needs the organization named in the request.
    by_root.org_id.clear();
    let e = c
        .admin
        .import(with_token(by_root, "adm"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().starts_with("org_id"), "{}", e.message());
    // The admin actor with the admin scope gets as far as the parser.
    let mut by_root = import_req(garbage(100));
    by_root.actor = "root".into();
    let e = c
        .admin
        .import(with_token(by_root, "adm"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("not valid YAML"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_is_resource_exhausted_not_out_of_range() {
    let server = Server::start();
    let mut c = server.clients().await;
    let subject = "a".repeat(5 << 20);
    let e = c
        .check
        .check(check_req(ORG, &subject, "Leads", "view", "L1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(
        e.message()
            .contains("bytes exceed the limit of 4194304 bytes"),
        "{}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_that_never_handshake_or_fall_silent_are_closed() {
    let server = Server::start_with(&["--handshake-timeout-secs", "1", "--idle-timeout-secs", "2"]);
    let mut c = server.clients().await;
    c.admin.import(import_req(SMALL.into())).await.unwrap();

    // Never a byte: closed after the handshake timeout.
    let mut silent = TcpStream::connect(&server.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10))
        .await
        .expect("a connection that never handshakes stays open");
    println!("silent connection closed after {took:?}");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");

    // The HTTP/2 preface and settings, then silence: closed as idle.
    let mut idle = TcpStream::connect(&server.addr).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let took = closed_within(&mut idle, Duration::from_secs(10))
        .await
        .expect("an idle connection stays open");
    println!("idle connection closed after {took:?}");
    assert!(took >= Duration::from_millis(1900), "closed after {took:?}");

    // A client in use keeps its connection.
    let r = c
        .check
        .check(check_req(ORG, "ann", "Leads", "view", "L1"))
        .await
        .unwrap();
    assert!(r.into_inner().allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let server = Server::start_with(&["--max-connections", "2"]);
    // Two connections hold both slots: the server greets each (its HTTP/2
    // settings frame), so each is accepted and served.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&server.addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the server greets an accepted connection")
            .unwrap();
        assert!(n > 0);
        held.push(s);
    }
    let mut third = TcpStream::connect(&server.addr).await.unwrap();
    let took = closed_within(&mut third, Duration::from_secs(5))
        .await
        .expect("a connection beyond --max-connections stays open");
    println!("third connection closed after {took:?}");

    // A slot freed is a slot usable again.
    held.pop();
    let mut health = None;
    for _ in 0..200 {
        let ch = tonic::transport::Channel::from_shared(server.url())
            .unwrap()
            .connect()
            .await;
        if let Ok(ch) = ch {
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
            if let Ok(r) = h
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                health = Some(r.into_inner().status);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        health,
        Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_beyond_the_in_flight_cap_get_resource_exhausted_at_once() {
    let server = Server::start_with(&["--max-in-flight", "4"]);
    let mut c = server.clients().await;
    c.admin.import(import_req(SMALL.into())).await.unwrap();

    // Four Watch streams, each a call in flight until its client drops it.
    let mut watches = Vec::new();
    for _ in 0..4 {
        let w = c
            .admin
            .watch(pb::WatchRequest {
                org_id: ORG.into(),
                after_revision: String::new(),
                checkpoint_seconds: 60,
            })
            .await
            .unwrap()
            .into_inner();
        watches.push(w);
    }
    let started = Instant::now();
    let e = c
        .check
        .check(check_req(ORG, "ann", "Leads", "view", "L1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(e.message().contains("--max-in-flight"), "{}", e.message());
    assert!(started.elapsed() < Duration::from_secs(1));
    // Health probes still answer: full is not dead.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();

    // A stream ended frees its slot.
    drop(watches.pop());
    let mut answer = None;
    for _ in 0..200 {
        match c
            .check
            .check(check_req(ORG, "ann", "Leads", "view", "L1"))
            .await
        {
            Ok(r) => {
                answer = Some(r.into_inner().allowed);
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answer, Some(true));
    // Still no more than four at once.
    let e = c
        .check
        .check_fields(pb::CheckFieldsRequest {
            org_id: ORG.into(),
            subject: "ann".into(),
            module: "Leads".into(),
            ..Default::default()
        })
        .await;
    assert!(e.is_ok(), "{e:?}");
    let _more = c
        .admin
        .watch(pb::WatchRequest {
            org_id: ORG.into(),
            after_revision: String::new(),
            checkpoint_seconds: 60,
        })
        .await
        .unwrap();
    let e = c
        .check
        .check(check_req(ORG, "ann", "Leads", "view", "L1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    drop(watches);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_unreachable_freshness_checks_do_not_slow_writes() {
    let server = Server::start();
    let mut c = server.clients().await;
    c.admin.import(import_req(SMALL.into())).await.unwrap();
    let set_owner = |i: usize| pb::SetOwnerRequest {
        org_id: ORG.into(),
        module: "Leads".into(),
        record_id: format!("W{i}"),
        owner: Some(pb::Owner {
            owner: Some(pb::owner::Owner::UserId("ann".into())),
        }),
        ..Default::default()
    };
    let started = Instant::now();
    c.grant.set_owner(set_owner(0)).await.unwrap();
    let quiet = started.elapsed();

    // The control: the same write among 1,000 plain checks, which cost the
    // server's CPU and nothing else.
    let mut plain = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let mut check = c.check.clone();
        plain.spawn(async move {
            check
                .check(check_req(ORG, "ann", "Leads", "view", "L1"))
                .await
        });
    }
    let started = Instant::now();
    c.grant.set_owner(set_owner(2)).await.unwrap();
    let among_plain = started.elapsed();
    while let Some(answer) = plain.join_next().await {
        assert!(answer.unwrap().unwrap().into_inner().allowed);
    }

    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let mut check = c.check.clone();
        waiters.spawn(async move {
            let mut req = check_req(ORG, "ann", "Leads", "view", "L1");
            req.consistency = Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(
                    "999999".into(),
                )),
            });
            check.check(req).await
        });
    }
    let started = Instant::now();
    let rev = c
        .grant
        .set_owner(set_owner(1))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let busy = started.elapsed();
    let mut refused = 0;
    while let Some(answer) = waiters.join_next().await {
        let e = answer.unwrap().unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
        assert!(e.message().contains("is ahead of"), "{}", e.message());
        refused += 1;
    }
    let all = started.elapsed();
    println!(
        "write alone {quiet:?}; among 1,000 plain checks {among_plain:?}; \
         among 1,000 unreachable freshness checks {busy:?} (all answered in {all:?})"
    );
    assert_eq!(refused, 1_000);
    // Loose, as the machine may be busy: no slower than among plain
    // checks (before, each waiter polled under the write lock for the
    // whole freshness timeout, and the write waited behind them).
    let bound = Duration::from_secs(2).max(among_plain * 2);
    assert!(busy < bound, "the write took {busy:?}, bound {bound:?}");
    // A revision that was reached is still served, fresh.
    let mut req = check_req(ORG, "ann", "Leads", "view", "W1");
    req.consistency = Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(rev)),
    });
    assert!(c.check.check(req).await.unwrap().into_inner().allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn readers_waiting_for_a_stored_revision_share_one_catch_up_and_see_it() {
    // Two servers on one store; the second never polls, so only the
    // readers' own catch-up can bring it the first one's write.
    let a = Server::start();
    let mut ca = a.clients().await;
    ca.admin.import(import_req(SMALL.into())).await.unwrap();
    let b = Server::spawn(&a.store, &["--poll-interval-ms", "600000"]);
    let cb = b.clients().await;
    let rev = ca
        .grant
        .set_owner(pb::SetOwnerRequest {
            org_id: ORG.into(),
            module: "Leads".into(),
            record_id: "FRESH".into(),
            owner: Some(pb::Owner {
                owner: Some(pb::owner::Owner::UserId("ann".into())),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revision;
    let at = |revision: String| {
        let mut req = check_req(ORG, "ann", "Leads", "view", "FRESH");
        req.consistency = Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(revision)),
        });
        req
    };
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let mut check = cb.check.clone();
        let req = at(rev.clone());
        readers.spawn(async move { check.check(req).await });
    }
    let mut allowed = 0;
    while let Some(answer) = readers.join_next().await {
        let r = answer.unwrap().unwrap().into_inner();
        assert!(r.allowed, "{r:?}");
        assert_eq!(r.revision, rev);
        allowed += 1;
    }
    assert_eq!(allowed, 200);
    // One past the store's latest is refused at once, naming both.
    let ahead = (rev.parse::<u64>().unwrap() + 1).to_string();
    let e = cb.check.clone().check(at(ahead.clone())).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains(&format!(
            "revision {ahead} is ahead of organization 'stall''s latest revision {rev}"
        )),
        "{}",
        e.message()
    );
}
