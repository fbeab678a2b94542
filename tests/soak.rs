//! A bounded soak test: several clients send mixed Check, CheckBulk, Grant
//! and Admin load to real `warden serve` processes while redis-server is
//! killed (-9) and restarted and a server is killed and restarted on the
//! same store. Every acknowledged write is applied to an in-process engine
//! (the model); every answer given at the revision of the last write must
//! equal the model's. A write that failed without an answer (the server
//! was down) is reconciled from the server's Export: it either landed
//! whole or not at all, and the model follows. Prints the load held, the
//! faults survived and the inputs tried; any mismatch fails the test.
//!
//! One server on SQLite with Redis always runs; two replicas on PostgreSQL
//! with Redis run too when WARDEN_TEST_POSTGRES_URL is set (scripts/test.sh).
//! WARDEN_SOAK_SECS overrides the length of the load phase.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rng::Rng;
use common::services::{fresh_postgres_database, Redis};
use common::{code_name, Server};
use tokio::sync::RwLock;
use tonic::transport::Channel;
use warden::api::convert;
use warden::api::pb;
use warden::api::pb::admin_service_client::AdminServiceClient;
use warden::api::pb::check_service_client::CheckServiceClient;
use warden::api::pb::grant_service_client::GrantServiceClient;
use warden::document::parse_document;
use warden::engine::{CheckRequest, Command, Direct, Engine, Limits, OrgDocument};

/// Seconds of load on SQLite (the whole test takes a little longer).
const SOAK_SECS: u64 = 120;
/// Seconds of load on PostgreSQL (runs beside the SQLite soak).
const SOAK_SECS_POSTGRES: u64 = 90;
/// Concurrent client tasks.
const CLIENTS: usize = 4;
/// Checks per CheckBulk call.
const BULK: usize = 20;
/// How long a server may stay unreachable before the soak gives up.
const RECOVERY: Duration = Duration::from_secs(60);

const ORG: &str = "soak";
const ORG_DOC: &str = r#"
organization: soak
modules:
  - {id: Leads, owd: PRIVATE, fields: [name, phone]}
  - {id: Accounts, owd: PUBLIC_READ, actions: {export: READ}}
profiles:
  - {id: sales, modules: {Leads: [view, create, edit, delete, share, assign], Accounts: [view, edit, share, export]}}
  - {id: reader, modules: {Leads: [view], Accounts: [view]}}
  - {id: audit, modules: {Leads: [view]}, view_all: [Leads]}
roles:
  - {id: ceo, profiles: [sales]}
  - {id: vp, parent: ceo, profiles: [sales]}
  - {id: rep, parent: vp, profiles: [sales], assign_scope: SAME_AND_SUBORDINATE}
  - {id: temp, parent: vp, profiles: [reader]}
users:
  - {id: u0, role: ceo, admin: true}
  - {id: u1, role: vp}
  - {id: u2, role: rep}
  - {id: u3, role: rep}
  - {id: u4, role: temp}
  - {id: u5, role: rep, profiles: [audit]}
  - {id: u6, kind: GUEST, profiles: [reader]}
  - {id: u7, role: temp, active: false}
groups:
  - {id: g0, users: [u2, u6]}
  - {id: g1, groups: [g0], users: [u4], leads: [u1]}
records:
  - {module: Leads, id: r0, owner: {user: u2}}
  - {module: Leads, id: r1, owner: {user: u3}}
  - {module: Leads, id: r2, owner: {group: g0}}
  - {module: Leads, id: r3, owner: {user: u1}, private: true}
  - {module: Leads, id: r4, owner: {group: g1}}
  - {module: Accounts, id: a0, owner: {user: u3}}
  - {module: Accounts, id: a1, owner: {user: u2}, private: true}
shares:
  - {module: Leads, record: r1, grantee: {user: u4}, level: READ}
sharing_rules:
  - {id: reps-to-temps, module: Leads, from: {role: rep}, to: {role: temp}, access: READ}
"#;

const USERS: [&str; 9] = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "ghost"];
const WRITABLE_USERS: [&str; 6] = ["u1", "u2", "u3", "u4", "u5", "u7"];
const ROLES: [&str; 4] = ["ceo", "vp", "rep", "temp"];
const MODULES: [&str; 2] = ["Leads", "Accounts"];
const RECORDS: [&str; 10] = [
    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "a0", "a1", "nowhere",
];
const ACTIONS: [&str; 6] = ["view", "edit", "delete", "share", "export", "create"];

/// Counters printed at the end.
#[derive(Default)]
struct Stats {
    checks: AtomicU64,
    bulks: AtomicU64,
    decisions: AtomicU64,
    set_owner: AtomicU64,
    share: AtomicU64,
    unshare: AtomicU64,
    put_group: AtomicU64,
    put_user: AtomicU64,
    acknowledged: AtomicU64,
    refused_alike: AtomicU64,
    unavailable: AtomicU64,
    unanswered_writes: AtomicU64,
    landed_unacknowledged: AtomicU64,
    lost_unacknowledged: AtomicU64,
    redis_kills: AtomicU64,
    server_restarts: AtomicU64,
    mismatches: AtomicU64,
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Clients of one server.
#[derive(Clone)]
struct Link {
    check: CheckServiceClient<Channel>,
    grant: GrantServiceClient<Channel>,
    admin: AdminServiceClient<Channel>,
}

async fn link(server: &Server) -> Link {
    let c = server.clients().await;
    Link {
        check: c.check,
        grant: c.grant,
        admin: c.admin,
    }
}

/// The model: an engine that saw every write the servers acknowledged,
/// and the server revision it stands for.
struct Model {
    engine: Engine<Direct>,
    revision: String,
}

fn engine_from(doc: OrgDocument) -> Engine<Direct> {
    let engine = Engine::new(Direct, Limits::default());
    engine
        .execute(
            ORG,
            &Command::Import {
                document: doc,
                replace: true,
            },
        )
        .expect("the model loads the document");
    engine
}

fn model_export(engine: &Engine<Direct>) -> OrgDocument {
    engine.export(ORG).expect("the model holds the org").0
}

/// A write as the model applies it: authorized like the server when it
/// names an actor.
fn model_write(engine: &Engine<Direct>, actor: &str, command: &Command) -> Result<u64, String> {
    if !actor.is_empty() {
        engine
            .authorize(ORG, actor, true, command, chrono::Utc::now())
            .map_err(|e| e.code().to_string())?;
    }
    engine
        .execute(ORG, command)
        .map_err(|e| e.code().to_string())
}

/// Everything the clients share.
struct Soak {
    name: &'static str,
    links: Vec<std::sync::RwLock<Link>>,
    model: RwLock<Model>,
    stats: Stats,
    end: Instant,
}

impl Soak {
    fn link(&self, i: usize) -> Link {
        self.links[i % self.links.len()]
            .read()
            .expect("link lock")
            .clone()
    }
}

fn fresh_at(rev: &str) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(rev.into())),
    })
}

fn owner(rng: &mut Rng) -> pb::Owner {
    let o = if rng.chance(25) {
        pb::owner::Owner::GroupId(rng.pick(&["g0", "g1"]).to_string())
    } else {
        pb::owner::Owner::UserId(rng.pick(&WRITABLE_USERS).to_string())
    };
    pb::Owner { owner: Some(o) }
}

fn record_of(rng: &mut Rng) -> (&'static str, &'static str) {
    let record = *rng.pick(&RECORDS);
    let module = if record.starts_with('a') {
        "Accounts"
    } else {
        *rng.pick(&MODULES)
    };
    (module, record)
}

fn check_req(rng: &mut Rng, revision: &str) -> pb::CheckRequest {
    let (module, record) = record_of(rng);
    let action = *rng.pick(&ACTIONS);
    pb::CheckRequest {
        org_id: ORG.into(),
        subject: rng.pick(&USERS).to_string().into(),
        module: module.into(),
        action: action.into(),
        record_id: if action == "create" || rng.chance(10) {
            Default::default()
        } else {
            record.into()
        },
        consistency: fresh_at(revision),
        ..Default::default()
    }
}

/// The model's answer to a check, as (allowed, reason) or a status name.
fn model_check(engine: &Engine<Direct>, req: &pb::CheckRequest) -> Result<(bool, i32), String> {
    let (org, r, _) = convert::check_from(req.clone()).map_err(|e| e.code().to_string())?;
    let r: CheckRequest = r;
    engine
        .check(&org, &r, chrono::Utc::now())
        .map(|(d, _)| (d.allowed, convert::reason(d.reason) as i32))
        .map_err(|e| e.code().to_string())
}

fn server_answer(r: &Result<pb::CheckResponse, tonic::Status>) -> Result<(bool, i32), String> {
    match r {
        Ok(a) => Ok((a.allowed, a.reason)),
        Err(s) => Err(code_name(s.code()).to_string()),
    }
}

/// A read that failed on its way, not by the server's answer: the server
/// was killed or restarted under it (the connection was reset or refused).
fn lost_in_transport(s: &tonic::Status) -> bool {
    let message = s.message().to_ascii_lowercase();
    match s.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown | tonic::Code::Cancelled => [
            "transport",
            "connection",
            "h2 protocol",
            "broken pipe",
            "reset",
            "canceled",
            "cancelled",
        ]
        .iter()
        .any(|w| message.contains(w)),
        _ => false,
    }
}

/// A failure that says nothing about whether the call took effect.
fn unanswered(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Internal
            | tonic::Code::Aborted
    )
}

impl Soak {
    fn mismatch(&self, what: String) {
        count(&self.stats.mismatches);
        eprintln!("[{}] MISMATCH {what}", self.name);
    }

    async fn one_check(&self, rng: &mut Rng, i: usize) {
        let model = self.model.read().await;
        let req = check_req(rng, &model.revision);
        let mut link = self.link(i);
        let got = link.check.check(req.clone()).await.map(|r| r.into_inner());
        if let Err(s) = &got {
            if lost_in_transport(s) {
                count(&self.stats.unavailable);
                drop(model);
                // The server is restarting: do not spin on a closed port.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        }
        count(&self.stats.checks);
        count(&self.stats.decisions);
        self.compare(&model, &req, &got);
    }

    async fn one_bulk(&self, rng: &mut Rng, i: usize) {
        let model = self.model.read().await;
        let checks: Vec<pb::CheckRequest> =
            (0..BULK).map(|_| check_req(rng, &model.revision)).collect();
        let mut link = self.link(i);
        let got = link
            .check
            .check_bulk(pb::CheckBulkRequest {
                checks: checks.clone(),
            })
            .await;
        let results = match got {
            Ok(r) => r.into_inner().results,
            Err(s) if lost_in_transport(&s) => {
                count(&self.stats.unavailable);
                drop(model);
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
            Err(s) => {
                // A bulk fails whole only when a check in it is invalid.
                let any_refused = checks
                    .iter()
                    .any(|c| model_check(&model.engine, c).is_err());
                if !any_refused {
                    self.mismatch(format!(
                        "CheckBulk failed ({s}) where the model refuses none"
                    ));
                }
                count(&self.stats.bulks);
                return;
            }
        };
        count(&self.stats.bulks);
        if results.len() != checks.len() {
            self.mismatch(format!(
                "CheckBulk answered {} of {}",
                results.len(),
                checks.len()
            ));
            return;
        }
        for (req, res) in checks.iter().zip(results) {
            count(&self.stats.decisions);
            self.compare(&model, req, &Ok(res));
        }
    }

    fn compare(
        &self,
        model: &Model,
        req: &pb::CheckRequest,
        got: &Result<pb::CheckResponse, tonic::Status>,
    ) {
        let want = model_check(&model.engine, req);
        let have = server_answer(got);
        if want != have {
            let status = got
                .as_ref()
                .err()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            self.mismatch(format!(
                "{} {} {} {}/{}: server {have:?}{status}, model {want:?} at revision {}",
                req.subject, req.action, req.module, req.module, req.record_id, model.revision
            ));
        }
        if let Ok(a) = got {
            if a.revision != model.revision {
                self.mismatch(format!(
                    "answered at revision {} while the last write was {}",
                    a.revision, model.revision
                ));
            }
        }
    }

    /// One random write; returns the actor and command the model applies,
    /// with the server's answer.
    async fn send_write(
        &self,
        rng: &mut Rng,
        link: &mut Link,
    ) -> (
        String,
        Result<Command, String>,
        Result<String, tonic::Status>,
    ) {
        let actor = if rng.chance(20) {
            rng.pick(&WRITABLE_USERS).to_string()
        } else {
            String::new()
        };
        let (module, record) = record_of(rng);
        let answer = |r: Result<tonic::Response<pb::WriteResponse>, tonic::Status>| {
            r.map(|r| r.into_inner().revision)
        };
        match rng.below(10) {
            0..=2 => {
                count(&self.stats.set_owner);
                let req = pb::SetOwnerRequest {
                    org_id: ORG.into(),
                    actor: actor.clone(),
                    module: module.into(),
                    record_id: record.into(),
                    owner: Some(owner(rng)),
                    ..Default::default()
                };
                let command = convert::record_from(req.clone())
                    .map(Command::SetOwner)
                    .map_err(|e| e.code().to_string());
                (actor, command, answer(link.grant.set_owner(req).await))
            }
            3..=5 => {
                let share = pb::Share {
                    module: module.into(),
                    record_id: record.into(),
                    grantee: Some(pb::Grantee {
                        grantee: Some(if rng.chance(30) {
                            pb::grantee::Grantee::RoleId(rng.pick(&ROLES).to_string())
                        } else {
                            pb::grantee::Grantee::UserId(rng.pick(&USERS).to_string())
                        }),
                    }),
                    level: *rng.pick(&[
                        pb::AccessLevel::Read as i32,
                        pb::AccessLevel::ReadWrite as i32,
                        pb::AccessLevel::Full as i32,
                    ]),
                };
                if rng.chance(65) {
                    count(&self.stats.share);
                    let command = convert::share_from("shares[0]", share.clone(), true)
                        .map(|s| Command::Share(vec![s]))
                        .map_err(|e| e.code().to_string());
                    let req = pb::ShareRequest {
                        org_id: ORG.into(),
                        actor: actor.clone(),
                        shares: vec![share],
                    };
                    (actor, command, answer(link.grant.share(req).await))
                } else {
                    count(&self.stats.unshare);
                    let command = convert::share_from("shares[0]", share.clone(), false)
                        .map(|s| Command::Unshare(vec![s]))
                        .map_err(|e| e.code().to_string());
                    let req = pb::UnshareRequest {
                        org_id: ORG.into(),
                        actor: actor.clone(),
                        shares: vec![share],
                    };
                    (actor, command, answer(link.grant.unshare(req).await))
                }
            }
            6..=7 => {
                count(&self.stats.put_group);
                let id = *rng.pick(&["g0", "g1"]);
                let group = pb::Group {
                    group_id: id.into(),
                    users: rng
                        .some(&WRITABLE_USERS, 30)
                        .iter()
                        .map(|u| u.to_string())
                        .collect(),
                    groups: if id == "g1" && rng.chance(60) {
                        vec!["g0".into()]
                    } else {
                        Vec::new()
                    },
                    leads: rng
                        .some(&["u1", "u3"], 30)
                        .iter()
                        .map(|u| u.to_string())
                        .collect(),
                    ..Default::default()
                };
                let command = convert::group_from(Some(group.clone()))
                    .map(Command::PutGroup)
                    .map_err(|e| e.code().to_string());
                let req = pb::PutGroupRequest {
                    org_id: ORG.into(),
                    group: Some(group),
                    ..Default::default()
                };
                (
                    String::new(),
                    command,
                    answer(link.admin.put_group(req).await),
                )
            }
            _ => {
                count(&self.stats.put_user);
                let id = *rng.pick(&["u2", "u3", "u4", "u7"]);
                let user = pb::User {
                    user_id: id.into(),
                    role_id: rng.pick(&ROLES).to_string(),
                    profile_ids: rng
                        .some(&["reader", "audit"], 20)
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                    active: Some(!rng.chance(15)),
                    ..Default::default()
                };
                let command = convert::user_from(Some(user.clone()))
                    .map(Command::PutUser)
                    .map_err(|e| e.code().to_string());
                let req = pb::PutUserRequest {
                    org_id: ORG.into(),
                    user: Some(user),
                    ..Default::default()
                };
                (
                    String::new(),
                    command,
                    answer(link.admin.put_user(req).await),
                )
            }
        }
    }

    async fn one_write(&self, rng: &mut Rng, i: usize) {
        let mut model = self.model.write().await;
        let mut link = self.link(i);
        let (actor, command, got) = self.send_write(rng, &mut link).await;
        let command = match command {
            Ok(c) => c,
            Err(code) => {
                // Conversion refused it: the server must have refused it alike.
                match &got {
                    Err(s) if code_name(s.code()) == code => count(&self.stats.refused_alike),
                    other => self.mismatch(format!("unconvertible write answered {other:?}")),
                }
                return;
            }
        };
        match got {
            Ok(revision) => match model_write(&model.engine, &actor, &command) {
                Ok(_) => {
                    count(&self.stats.acknowledged);
                    model.revision = revision;
                }
                Err(code) => {
                    self.mismatch(format!(
                        "server acknowledged {command:?} by '{actor}', model refuses {code}"
                    ));
                    self.resync(&mut model).await;
                }
            },
            Err(s) if unanswered(&s) => {
                count(&self.stats.unanswered_writes);
                self.reconcile(&mut model, &actor, &command).await;
            }
            Err(s) => {
                let probe = engine_from(model_export(&model.engine));
                match model_write(&probe, &actor, &command) {
                    Err(code) if code == code_name(s.code()) => count(&self.stats.refused_alike),
                    other => self.mismatch(format!(
                        "server refused {command:?} by '{actor}' with {} ({}), model: {other:?}",
                        code_name(s.code()),
                        s.message()
                    )),
                }
            }
        }
    }

    /// The server's current document and revision, waiting for it to be back.
    async fn server_state(&self) -> (OrgDocument, String) {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let mut link = self.link(0);
            let r = link
                .admin
                .export(pb::ExportRequest {
                    org_id: ORG.into(),
                    consistency: Some(pb::Consistency {
                        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
                    }),
                    ..Default::default()
                })
                .await;
            if let Ok(r) = r {
                let r = r.into_inner();
                let doc = parse_document(&r.document).expect("the server's export parses");
                return (doc, r.revision);
            }
            assert!(
                Instant::now() < deadline,
                "[{}] the server never came back",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A write that got no answer landed whole or not at all.
    async fn reconcile(&self, model: &mut Model, actor: &str, command: &Command) {
        let (server, revision) = self.server_state().await;
        let before = model_export(&model.engine);
        if server == before {
            count(&self.stats.lost_unacknowledged);
            model.revision = revision;
            return;
        }
        let applied = engine_from(before);
        if model_write(&applied, actor, command).is_ok() && model_export(&applied) == server {
            count(&self.stats.landed_unacknowledged);
            model.engine = applied;
            model.revision = revision;
            return;
        }
        self.mismatch(format!(
            "after an unanswered {command:?} the server holds neither the old state nor the write"
        ));
        model.engine = engine_from(server);
        model.revision = revision;
    }

    /// Takes the server's state as the model's after a mismatch, so one
    /// disagreement is counted once rather than in every later answer.
    async fn resync(&self, model: &mut Model) {
        let (server, revision) = self.server_state().await;
        model.engine = engine_from(server);
        model.revision = revision;
    }

    async fn client(self: Arc<Self>, seed: u64, i: usize) {
        let mut rng = Rng(seed);
        while Instant::now() < self.end {
            match rng.below(100) {
                0..=54 => self.one_check(&mut rng, i).await,
                55..=74 => self.one_bulk(&mut rng, i).await,
                _ => self.one_write(&mut rng, i).await,
            }
        }
    }
}

/// Runs the clients against `servers` (restarting `servers[restart]` and
/// killing Redis on the way); returns after the load phase, with the
/// model checked against the final Export.
async fn soak(
    name: &'static str,
    secs: u64,
    mut servers: Vec<Server>,
    restart: usize,
    redis: &mut Redis,
) {
    let secs = std::env::var("WARDEN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(secs);
    let mut links = Vec::new();
    for s in &servers {
        links.push(std::sync::RwLock::new(link(s).await));
    }
    let mut first = links[0].read().expect("link lock").clone();
    let revision = first
        .admin
        .import(pb::ImportRequest {
            document: ORG_DOC.into(),
            replace: true,
            ..Default::default()
        })
        .await
        .expect("import the soak organization")
        .into_inner()
        .revision;
    let start = Instant::now();
    let soak = Arc::new(Soak {
        name,
        links,
        model: RwLock::new(Model {
            engine: engine_from(parse_document(ORG_DOC).expect("soak document")),
            revision,
        }),
        stats: Stats::default(),
        end: start + Duration::from_secs(secs),
    });
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(soak.clone().client(0x50A4 + i as u64 * 7919, i)))
        .collect();

    // Faults, at fixed fractions of the load phase.
    let at = |fraction: f64| start + Duration::from_secs_f64(secs as f64 * fraction);
    tokio::time::sleep_until(at(0.25).into()).await;
    redis.kill();
    count(&soak.stats.redis_kills);
    tokio::time::sleep_until(at(0.40).into()).await;
    redis.restart();
    tokio::time::sleep_until(at(0.55).into()).await;
    let victim = &mut servers[restart];
    let store = victim.store_url();
    let args = victim.args.clone();
    let dir = victim.take_dir();
    victim.kill();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fresh = Server::spawn(&store, &args);
    let new_link = link(&fresh).await;
    *soak.links[restart].write().expect("link lock") = new_link;
    servers[restart] = fresh;
    count(&soak.stats.server_restarts);
    tokio::time::sleep_until(at(0.75).into()).await;
    redis.kill();
    count(&soak.stats.redis_kills);
    tokio::time::sleep_until(at(0.80).into()).await;
    redis.restart();

    for t in tasks {
        t.await.expect("client task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    {
        let model = soak.model.read().await;
        let (server, revision) = soak.server_state().await;
        if server != model_export(&model.engine) {
            soak.mismatch(format!(
                "final Export at revision {revision} differs from the model"
            ));
        }
    }
    drop(dir);

    let s = &soak.stats;
    let calls = get(&s.checks)
        + get(&s.bulks)
        + get(&s.set_owner)
        + get(&s.share)
        + get(&s.unshare)
        + get(&s.put_group)
        + get(&s.put_user);
    let writes =
        get(&s.set_owner) + get(&s.share) + get(&s.unshare) + get(&s.put_group) + get(&s.put_user);
    println!(
        "soak [{name}] {elapsed:.0}s, {CLIENTS} clients: calls: Check {}, CheckBulk {} ({} decisions in all), \
         SetOwner {}, Share {}, Unshare {}, PutGroup {}, PutUser {}; {:.0} calls/s held, {:.0} decisions/s",
        get(&s.checks),
        get(&s.bulks),
        get(&s.decisions),
        get(&s.set_owner),
        get(&s.share),
        get(&s.unshare),
        get(&s.put_group),
        get(&s.put_user),
        calls as f64 / elapsed,
        get(&s.decisions) as f64 / elapsed,
    );
    println!(
        "soak [{name}] writes: {} acknowledged, {} refused alike by server and model, {} unanswered \
         ({} landed, {} did not); {} reads unavailable; faults survived: {} redis kills, \
         {} server restarts; inputs tried: {} decisions + {writes} writes; mismatches: {}",
        get(&s.acknowledged),
        get(&s.refused_alike),
        get(&s.unanswered_writes),
        get(&s.landed_unacknowledged),
        get(&s.lost_unacknowledged),
        get(&s.unavailable),
        get(&s.redis_kills),
        get(&s.server_restarts),
        get(&s.decisions),
        get(&s.mismatches),
    );
    assert_eq!(
        get(&s.mismatches),
        0,
        "[{name}] answers differ from the model"
    );
    assert_eq!(get(&s.server_restarts), 1);
    assert_eq!(get(&s.redis_kills), 2);
    // A soak that made no real load proves nothing.
    assert!(get(&s.decisions) >= 1000, "[{name}] too few decisions");
    assert!(
        get(&s.acknowledged) >= 50,
        "[{name}] too few acknowledged writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_one_server_on_sqlite_with_redis() {
    let mut redis = Redis::start();
    let url = redis.url();
    let server = Server::start_with(&["--redis", &url]);
    soak("sqlite", SOAK_SECS, vec![server], 0, &mut redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_two_replicas_on_postgres_with_redis() {
    if std::env::var("WARDEN_TEST_POSTGRES_URL").is_err() {
        eprintln!("soak on PostgreSQL skipped: WARDEN_TEST_POSTGRES_URL is unset (scripts/test.sh sets it)");
        return;
    }
    let mut redis = Redis::start();
    let url = redis.url();
    let store = fresh_postgres_database("soak").await;
    let args = ["--redis", url.as_str(), "--poll-interval-ms", "300"];
    let a = Server::spawn(&store, &args);
    let b = Server::spawn(&store, &args);
    soak("postgres", SOAK_SECS_POSTGRES, vec![a, b], 1, &mut redis).await;
}
