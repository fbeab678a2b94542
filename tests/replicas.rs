//! Two `warden serve` replicas on one PostgreSQL store with Redis between
//! them: freshness on request, staleness bounded by the poll interval with
//! or without Redis, and agreement with a single engine under random writes.

mod common;

use std::time::{Duration, Instant};

use common::rng::Rng;
use common::services::{fresh_postgres_database, Redis};
use common::{check_req, Clients, Server};
use warden::api::pb;
use warden::engine::model::{AccessLevel, Grantee, OwnerRef, RecordDef, ShareDef};
use warden::engine::{CheckRequest, Command, Direct, Engine, Limits, Writer};

const POLL_MS: u64 = 300;
/// How long a replica may lag when a message is lost: the poll interval,
/// plus slack for a loaded machine. Correctness bound, not a speed figure.
const STALENESS_BOUND: Duration = Duration::from_millis(POLL_MS * 20);

const ORG_DOC: &str = r#"
organization: rep
modules:
  - {id: Leads, owd: PRIVATE, fields: [name]}
profiles:
  - {id: all, modules: {Leads: [view, create, edit, delete, share, assign]}}
roles:
  - {id: top, profiles: [all]}
  - {id: mid, parent: top, profiles: [all]}
  - {id: low, parent: mid, profiles: [all]}
users:
  - {id: u0, role: top}
  - {id: u1, role: mid}
  - {id: u2, role: low}
  - {id: u3, role: low}
  - {id: u4, role: mid}
groups:
  - {id: g0, users: [u3]}
  - {id: g1, groups: [g0], users: [u4]}
records:
  - {module: Leads, id: r0, owner: {user: u2}}
  - {module: Leads, id: r1, owner: {user: u3}}
  - {module: Leads, id: r2, owner: {group: g0}}
  - {module: Leads, id: r3, owner: {user: u1}}
  - {module: Leads, id: r4, owner: {group: g1}, private: true}
"#;

const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
const RECORDS: [&str; 5] = ["r0", "r1", "r2", "r3", "r4"];
const ACTIONS: [&str; 3] = ["view", "edit", "delete"];

async fn import(c: &mut Clients) -> String {
    c.admin
        .import(pb::ImportRequest {
            document: ORG_DOC.into(),
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

fn fresh_at(rev: &str) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(rev.into())),
    })
}

fn share_req(record: &str, user: &str, level: pb::AccessLevel) -> pb::ShareRequest {
    pb::ShareRequest {
        org_id: "rep".into(),
        actor: String::new(),
        shares: vec![pb::Share {
            module: "Leads".into(),
            record_id: record.into(),
            grantee: Some(pb::Grantee {
                grantee: Some(pb::grantee::Grantee::UserId(user.into())),
            }),
            level: level as i32,
        }],
    }
}

async fn allowed_at(
    c: &mut Clients,
    subject: &str,
    action: &str,
    record: &str,
    consistency: Option<pb::Consistency>,
) -> bool {
    let mut req = check_req("rep", subject, "Leads", action, record);
    req.consistency = consistency;
    c.check.check(req).await.unwrap().into_inner().allowed
}

/// A check with no consistency, where an organization the replica has not
/// heard of yet counts as "not yet".
async fn allowed_now(c: &mut Clients, subject: &str, action: &str, record: &str) -> Option<bool> {
    let req = check_req("rep", subject, "Leads", action, record);
    match c.check.check(req).await {
        Ok(r) => Some(r.into_inner().allowed),
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => panic!("check failed: {s}"),
    }
}

async fn replicas(redis: Option<&Redis>) -> (Server, Server) {
    let store = fresh_postgres_database("replicas").await;
    let poll = POLL_MS.to_string();
    let mut args = vec!["--poll-interval-ms", poll.as_str()];
    let url = redis.map(|r| r.url());
    if let Some(u) = &url {
        args.extend(["--redis", u.as_str()]);
    }
    let a = Server::spawn(&store, &args);
    let b = Server::spawn(&store, &args);
    (a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_as_fresh_sees_a_write_of_the_other_replica_on_the_first_try() {
    let redis = Redis::start();
    let (a, b) = replicas(Some(&redis)).await;
    let (mut ca, mut cb) = (a.clients().await, b.clients().await);
    import(&mut ca).await;
    for i in 0..40 {
        let share = i % 2 == 0;
        let rev = if share {
            ca.grant
                .share(share_req("r0", "u3", pb::AccessLevel::Read))
                .await
        } else {
            ca.grant
                .unshare(pb::UnshareRequest {
                    org_id: "rep".into(),
                    actor: String::new(),
                    shares: share_req("r0", "u3", pb::AccessLevel::Read).shares,
                })
                .await
        }
        .unwrap()
        .into_inner()
        .revision;
        assert_eq!(
            allowed_at(&mut cb, "u3", "view", "r0", fresh_at(&rev)).await,
            share,
            "write {i} at revision {rev}"
        );
    }
}

async fn visible_within(
    c: &mut Clients,
    subject: &str,
    record: &str,
    want: bool,
    bound: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        if allowed_now(c, subject, "view", record).await == Some(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "{subject} view {record} still not {want} after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_the_poll_bounds_staleness() {
    let (a, b) = replicas(None).await;
    let (mut ca, mut cb) = (a.clients().await, b.clients().await);
    import(&mut ca).await;
    visible_within(&mut cb, "u2", "r0", true, STALENESS_BOUND).await;
    for i in 0..5 {
        let share = i % 2 == 0;
        if share {
            ca.grant
                .share(share_req("r3", "u3", pb::AccessLevel::Read))
                .await
                .unwrap();
        } else {
            ca.grant
                .unshare(pb::UnshareRequest {
                    org_id: "rep".into(),
                    actor: String::new(),
                    shares: share_req("r3", "u3", pb::AccessLevel::Read).shares,
                })
                .await
                .unwrap();
        }
        visible_within(&mut cb, "u3", "r3", share, STALENESS_BOUND).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_mid_stream_then_restarted_the_replicas_converge() {
    let mut redis = Redis::start();
    let (a, b) = replicas(Some(&redis)).await;
    let (mut ca, mut cb) = (a.clients().await, b.clients().await);
    import(&mut ca).await;
    visible_within(&mut cb, "u2", "r0", true, STALENESS_BOUND).await;
    for i in 0..12 {
        if i == 4 {
            redis.kill();
        }
        if i == 8 {
            redis.restart();
        }
        let share = i % 2 == 0;
        // Writes go through either replica; Redis being down stops neither writes nor checks.
        let (writer, reader) = if i % 3 == 0 {
            (&mut cb, &mut ca)
        } else {
            (&mut ca, &mut cb)
        };
        // u2 is a peer of r1's owner u3: only the share gives u2 access.
        if share {
            writer
                .grant
                .share(share_req("r1", "u2", pb::AccessLevel::ReadWrite))
                .await
                .unwrap();
        } else {
            writer
                .grant
                .unshare(pb::UnshareRequest {
                    org_id: "rep".into(),
                    actor: String::new(),
                    shares: share_req("r1", "u2", pb::AccessLevel::Read).shares,
                })
                .await
                .unwrap();
        }
        // No stale answer outlives the poll interval, Redis up or down.
        visible_within(reader, "u2", "r1", share, STALENESS_BOUND).await;
    }
    // Both replicas end at the same revision and the same policy.
    let deadline = Instant::now() + STALENESS_BOUND;
    loop {
        let ea = export(&mut ca).await;
        let eb = export(&mut cb).await;
        if ea == eb {
            break;
        }
        assert!(Instant::now() < deadline, "replicas did not converge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn export(c: &mut Clients) -> (String, String) {
    common::export(c, "rep").await
}

/// One random write, as a gRPC call and as the engine command it means.
async fn random_write(rng: &mut Rng, c: &mut Clients) -> (Result<String, tonic::Status>, Command) {
    let record = rng.pick(&RECORDS).to_string();
    let user = rng.pick(&USERS).to_string();
    match rng.next() % 4 {
        0 => {
            let levels = [
                pb::AccessLevel::Read,
                pb::AccessLevel::ReadWrite,
                pb::AccessLevel::Full,
            ];
            let level = levels[(rng.next() % 3) as usize];
            let cmd = Command::Share(vec![ShareDef {
                module: "Leads".into(),
                record: record.clone(),
                grantee: Grantee::User(user.clone()),
                level: match level {
                    pb::AccessLevel::Read => AccessLevel::Read,
                    pb::AccessLevel::ReadWrite => AccessLevel::ReadWrite,
                    _ => AccessLevel::Full,
                },
            }]);
            let r = c.grant.share(share_req(&record, &user, level)).await;
            (r.map(|r| r.into_inner().revision), cmd)
        }
        1 => {
            let cmd = Command::Unshare(vec![ShareDef {
                module: "Leads".into(),
                record: record.clone(),
                grantee: Grantee::User(user.clone()),
                level: AccessLevel::Read,
            }]);
            let r = c
                .grant
                .unshare(pb::UnshareRequest {
                    org_id: "rep".into(),
                    actor: String::new(),
                    shares: share_req(&record, &user, pb::AccessLevel::Read).shares,
                })
                .await;
            (r.map(|r| r.into_inner().revision), cmd)
        }
        2 => {
            let private = rng.next() % 4 == 0;
            let cmd = Command::SetOwner(
                RecordDef {
                    module: "Leads".into(),
                    id: record.clone(),
                    owner: OwnerRef::User(user.clone()),
                    private,
                    attributes: Default::default(),
                }
                .into(),
            );
            let r = c
                .grant
                .set_owner(pb::SetOwnerRequest {
                    org_id: "rep".into(),
                    module: "Leads".into(),
                    record_id: record,
                    owner: Some(pb::Owner {
                        owner: Some(pb::owner::Owner::UserId(user)),
                    }),
                    private: Some(private),
                    ..Default::default()
                })
                .await;
            (r.map(|r| r.into_inner().revision), cmd)
        }
        _ => {
            let members: Vec<String> = USERS
                .iter()
                .filter(|_| rng.next() % 3 == 0)
                .map(|u| u.to_string())
                .collect();
            let def = warden::engine::model::GroupDef {
                id: "g0".into(),
                users: members.clone(),
                ..Default::default()
            };
            let r = c
                .admin
                .put_group(pb::PutGroupRequest {
                    org_id: "rep".into(),
                    actor: String::new(),
                    group: Some(pb::Group {
                        group_id: "g0".into(),
                        users: members,
                        ..Default::default()
                    }),
                })
                .await;
            (r.map(|r| r.into_inner().revision), Command::PutGroup(def))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_writes_across_replicas_agree_with_one_engine() {
    let redis = Redis::start();
    let (a, b) = replicas(Some(&redis)).await;
    let mut clients = [a.clients().await, b.clients().await];
    let reference = Engine::new(Direct, Limits::default());
    reference
        .execute(
            "rep",
            &Command::Import {
                document: warden::document::parse_document(ORG_DOC).unwrap(),
                replace: true,
            },
        )
        .unwrap();
    let mut rev = import(&mut clients[0]).await;
    let now = chrono::Utc::now();
    let mut rng = Rng(0x5EED);
    for step in 0..40 {
        let w = (rng.next() % 2) as usize;
        let (result, command) = random_write(&mut rng, &mut clients[w]).await;
        let expected = reference.execute("rep", &command);
        match (&result, &expected) {
            (Ok(r), Ok(_)) => rev = r.clone(),
            (Err(_), Err(_)) => {}
            other => panic!("step {step}: replica and engine disagree on the write: {other:?}"),
        }
        // Every decision, through either replica, at least as fresh as the last write.
        let r = (rng.next() % 2) as usize;
        let mut checks = Vec::new();
        let mut want = Vec::new();
        for s in USERS {
            for rec in RECORDS {
                for act in ACTIONS {
                    let mut req = check_req("rep", s, "Leads", act, rec);
                    req.consistency = fresh_at(&rev);
                    checks.push(req);
                    let engine_req = CheckRequest {
                        subject: s.into(),
                        module: "Leads".into(),
                        action: act.into(),
                        record: Some(rec.into()),
                        ..Default::default()
                    };
                    want.push(reference.check("rep", &engine_req, now).unwrap().0);
                }
            }
        }
        let got = clients[r]
            .check
            .check_bulk(pb::CheckBulkRequest { checks })
            .await
            .unwrap()
            .into_inner()
            .results;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.allowed, w.allowed, "step {step}, replica {r}, check {i}");
            assert_eq!(
                g.reason,
                warden::api::convert::reason(w.reason) as i32,
                "step {step}, replica {r}, check {i}"
            );
        }
    }
}

/// Two services in this process on one store and one Redis: the counters
/// that metrics will expose move as the caches and the bus work.
#[tokio::test(flavor = "multi_thread")]
async fn counters_count_cache_use_invalidations_remote_writes_and_catch_ups() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use warden::bus::Bus;
    use warden::service::{ServiceOptions, Warden};
    use warden::store::Store;

    let mut redis = Redis::start();
    let url = fresh_postgres_database("counters").await;
    let open = || async {
        Arc::new(
            Warden::open(
                Store::open(&url).await.unwrap(),
                Limits::default(),
                ServiceOptions::default(),
            )
            .await
            .unwrap(),
        )
    };
    let (w1, w2) = (open().await, open().await);
    let (_halt, halt_rx) = tokio::sync::watch::channel(false);
    let bus1 = Arc::new(Bus::new(&redis.url(), "counters").unwrap());
    let bus2 = Arc::new(Bus::new(&redis.url(), "counters").unwrap());
    let (s1, s2) = (bus1.stats(), bus2.stats());
    tokio::spawn(bus1.run(w1.clone(), halt_rx.clone()));
    tokio::spawn(bus2.run(w2.clone(), halt_rx.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while s1.subscriptions.load(Ordering::Relaxed) == 0
        || s2.subscriptions.load(Ordering::Relaxed) == 0
    {
        assert!(Instant::now() < deadline, "buses never subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let doc = warden::document::parse_document(ORG_DOC).unwrap();
    let rev = w1
        .write(
            "rep",
            &Writer::Operator,
            Command::Import {
                document: doc,
                replace: true,
            },
        )
        .await
        .unwrap()
        .revision;
    let until = |w: Arc<Warden>, rev: u64| async move {
        let deadline = Instant::now() + STALENESS_BOUND;
        while w.engine().revision("rep") != Some(rev) {
            assert!(Instant::now() < deadline, "revision {rev} never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    until(w2.clone(), rev).await;
    assert!(s1.published.load(Ordering::Relaxed) >= 1);
    assert!(s2.received.load(Ordering::Relaxed) >= 1);
    assert!(w2.stats().remote_applied.load(Ordering::Relaxed) >= 1);

    // Cache: a miss, then hits for the same expansion.
    let req = CheckRequest {
        subject: "u4".into(),
        module: "Leads".into(),
        action: "view".into(),
        record: Some("r2".into()),
        ..Default::default()
    };
    let cache = w2.engine().expander();
    let before = cache.stats();
    let now = chrono::Utc::now();
    w2.engine().check("rep", &req, now).unwrap();
    let after_first = cache.stats();
    w2.engine().check("rep", &req, now).unwrap();
    let after_second = cache.stats();
    assert!(after_first.misses > before.misses);
    assert!(after_second.hits > after_first.hits);
    assert_eq!(after_second.misses, after_first.misses);

    // A membership write on w1 invalidates exactly-affected entries on w2.
    let group = warden::engine::model::GroupDef {
        id: "g1".into(),
        users: vec!["u4".into(), "u2".into()],
        groups: vec!["g0".into()],
        ..Default::default()
    };
    let rev = w1
        .write("rep", &Writer::Operator, Command::PutGroup(group))
        .await
        .unwrap()
        .revision;
    until(w2.clone(), rev).await;
    assert!(cache.stats().invalidations > after_second.invalidations);

    // Redis down: the write still lands, and the poll catches w2 up.
    redis.kill();
    let catch_ups = w2.stats().catch_ups.load(Ordering::Relaxed);
    let rev = w1
        .write(
            "rep",
            &Writer::Operator,
            Command::DeleteRecord {
                module: "Leads".into(),
                id: "r3".into(),
            },
        )
        .await
        .unwrap()
        .revision;
    assert_eq!(w2.poll().await.unwrap(), 1);
    assert_eq!(w2.engine().revision("rep"), Some(rev));
    assert!(w2.stats().catch_ups.load(Ordering::Relaxed) > catch_ups);
}
