//! Per-organization write locks, on a real server: a write held up in the
//! store holds up its own organization only, and writes to one
//! organization still go one at a time (every revision once, no update
//! lost). Completion order is observed, never durations.

mod common;

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use common::{Clients, Server};
use sqlx::{Connection, PgConnection};
use warden::api::pb;

fn create(org: &str) -> pb::CreateOrganizationRequest {
    pb::CreateOrganizationRequest {
        org_id: org.into(),
        ..Default::default()
    }
}

fn put_module(org: &str, id: &str) -> pb::PutModuleRequest {
    pb::PutModuleRequest {
        org_id: org.into(),
        module: Some(pb::Module {
            id: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The revision a write answered.
fn revision(response: tonic::Response<pb::WriteResponse>) -> u64 {
    response.into_inner().revision.parse().unwrap()
}

/// The modules of an organization, from its export.
async fn modules(c: &mut Clients, org: &str) -> BTreeSet<String> {
    let (document, _) = common::export(c, org).await;
    let document: serde_json::Value = serde_json::from_str(&document).unwrap();
    document["modules"]
        .as_array()
        .map(|modules| {
            modules
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A PostgreSQL schema of its own on the test cluster, dropped with this.
struct Schema {
    admin: String,
    name: String,
    /// The store URL whose connections work in the schema.
    url: String,
}

impl Schema {
    async fn new(admin: &str) -> Schema {
        let mut random = RandomState::new().build_hasher();
        random.write_u32(std::process::id());
        let name = format!("warden_locks_{:016x}", random.finish());
        let mut conn = PgConnection::connect(admin).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let separator = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{separator}options=-c%20search_path%3D{name}");
        Schema {
            admin: admin.to_string(),
            name,
            url,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside the test's runtime: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query("SET lock_timeout = '10s'")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// A write to organization `a`, held in the store by a row lock this test
/// takes, does not hold up a write to organization `b`: `b`'s completes
/// while `a`'s is still waiting. PostgreSQL, where a test can hold one
/// organization's row; a SQLite commit locks the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_held_in_the_store_holds_up_only_its_own_organization() {
    let Ok(admin) = std::env::var("WARDEN_TEST_POSTGRES_URL") else {
        eprintln!(
            "write locks on PostgreSQL skipped: WARDEN_TEST_POSTGRES_URL is unset \
             (scripts/test.sh sets it)"
        );
        return;
    };
    let schema = Schema::new(&admin).await;
    let server = Server::spawn(&schema.url, &[]);
    let mut c = server.clients().await;
    for org in ["a", "b"] {
        c.admin.create_organization(create(org)).await.unwrap();
    }

    // Hold organization a's row, as a slow commit of another replica would.
    let mut blocker = PgConnection::connect(&schema.url).await.unwrap();
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut blocker)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("SELECT revision FROM orgs WHERE org_id = 'a' FOR UPDATE")
        .execute(&mut blocker)
        .await
        .unwrap();

    let mut held_client = c.admin.clone();
    let held = tokio::spawn(async move { held_client.put_module(put_module("a", "First")).await });
    // Wait until the server's commit of a's write waits on that row: from
    // then on it holds a's write lock until this test lets go.
    let mut watcher = PgConnection::connect(&schema.url).await.unwrap();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        )
        .bind(blocker_pid)
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(!held.is_finished(), "a's write finished past a held row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second write to a queues behind the first.
    let mut queued_client = c.admin.clone();
    let queued =
        tokio::spawn(async move { queued_client.put_module(put_module("a", "Second")).await });

    // b's write completes while a's is held. The timeout only turns a
    // regression (one lock for every organization) into a failure rather
    // than a hang.
    let b = tokio::time::timeout(
        Duration::from_secs(120),
        c.admin.put_module(put_module("b", "Other")),
    )
    .await
    .expect("b's write waited for a's: one lock serializes every organization");
    assert_eq!(revision(b.unwrap()), 2);
    assert!(
        !held.is_finished(),
        "a's write finished while its row was held"
    );
    assert!(!queued.is_finished(), "a's second write overtook its first");

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    let first = revision(held.await.unwrap().unwrap());
    let second = revision(queued.await.unwrap().unwrap());
    let mut revisions = [first, second];
    revisions.sort_unstable();
    assert_eq!(revisions, [2, 3]);
    assert_eq!(
        modules(&mut c, "a").await,
        BTreeSet::from(["First".to_string(), "Second".to_string()])
    );
    let _ = blocker.close().await;
    let _ = watcher.close().await;
    drop(server);
}

/// Many writers on one organization, beside writers on another: every
/// revision is answered once, each writer's revisions increase, and every
/// write is in the organization (no update lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_to_one_organization_stay_serialized() {
    let server = Server::start();
    let mut c = server.clients().await;
    for org in ["a", "b"] {
        c.admin.create_organization(create(org)).await.unwrap();
    }
    const WRITERS: usize = 8;
    const WRITES: usize = 6;
    let tasks: Vec<_> = (0..2 * WRITERS)
        .map(|writer| {
            let mut admin = c.admin.clone();
            let org = if writer % 2 == 0 { "a" } else { "b" };
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for write in 0..WRITES {
                    let response = admin
                        .put_module(put_module(org, &format!("M{writer}-{write}")))
                        .await
                        .unwrap();
                    revisions.push(revision(response));
                }
                (org, revisions)
            })
        })
        .collect();
    let mut answered = std::collections::BTreeMap::<&str, Vec<u64>>::new();
    for task in tasks {
        let (org, revisions) = task.await.unwrap();
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "{org}: one writer's revisions go back: {revisions:?}"
        );
        answered.entry(org).or_default().extend(revisions);
    }
    let per_org = (WRITERS * WRITES) as u64;
    for (org, mut revisions) in answered {
        revisions.sort_unstable();
        // Revision 1 created it; each write then made exactly one more.
        assert_eq!(revisions, (2..=per_org + 1).collect::<Vec<_>>(), "{org}");
        let expected: BTreeSet<String> = (0..2 * WRITERS)
            .filter(|w| (w % 2 == 0) == (org == "a"))
            .flat_map(|w| (0..WRITES).map(move |i| format!("M{w}-{i}")))
            .collect();
        assert_eq!(modules(&mut c, org).await, expected, "{org}");
    }
}

/// The per-principal limit counts users of other organizations: imports
/// of several organizations at once, each naming one principal, still let
/// exactly one of them have it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_principal_limit_holds_across_organizations_written_at_once() {
    let server = Server::start_with(&["--max-orgs-per-principal", "1"]);
    let c = server.clients().await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let mut admin = c.admin.clone();
            tokio::spawn(async move {
                let document = format!(
                    "organization: org-{i}\nroles: [{{id: r}}]\n\
                     users: [{{id: u{i}, role: r, principal: pat@x.example}}]\n"
                );
                admin
                    .import(pb::ImportRequest {
                        document,
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
                assert!(e.message().contains("pat@x.example"), "{e:?}");
            }
        }
    }
    assert_eq!(accepted, 1, "one organization may have the principal");
}

/// The organization's revision as the server holds it (`None`: it does not
/// exist).
async fn held_revision(c: &mut Clients, org: &str) -> Option<u64> {
    match c
        .admin
        .get_organization(pb::GetOrganizationRequest {
            org_id: org.into(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => Some(r.into_inner().revision.parse().unwrap()),
        Err(e) => {
            assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
            None
        }
    }
}

/// Creates and deletes of one organization racing each other: every
/// accepted write makes exactly the next revision (through the deletes'
/// tombstones), a refusal is the one the state then called for, and what
/// the server holds is what its store gives back after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_and_deletes_of_one_organization_stay_in_step() {
    let mut server = Server::start();
    let dir = server.take_dir();
    let store = server.store_url();
    let c = server.clients().await;
    let mut accepted = Vec::new();
    for _round in 0..10 {
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let mut admin = c.admin.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        admin.create_organization(create("x")).await
                    } else {
                        admin
                            .delete_organization(pb::DeleteOrganizationRequest {
                                org_id: "x".into(),
                                ..Default::default()
                            })
                            .await
                    }
                })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                Ok(response) => accepted.push(revision(response)),
                Err(e) => assert!(
                    matches!(e.code(), tonic::Code::AlreadyExists | tonic::Code::NotFound),
                    "{e:?}"
                ),
            }
        }
    }
    accepted.sort_unstable();
    let last = accepted.len() as u64;
    assert!(last > 0, "no write was accepted");
    assert_eq!(accepted, (1..=last).collect::<Vec<_>>());
    let mut c = c;
    let before = held_revision(&mut c, "x").await;
    if let Some(revision) = before {
        assert_eq!(revision, last, "a live organization is at the last write");
    }
    drop(c);
    server.kill();

    let server = Server::spawn(&store, &[]);
    let mut c = server.clients().await;
    assert_eq!(held_revision(&mut c, "x").await, before);
    drop(server);
    drop(dir);
}
