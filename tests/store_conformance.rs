//! The store-conformance suite: every behaviour of a store, written once
//! and run against each backend, SQLite (a temporary file) and PostgreSQL
//! (`WARDEN_TEST_POSTGRES_URL`, set by `bash scripts/test.sh`; each test
//! works in a schema of its own, dropped when it ends). Without that
//! variable the PostgreSQL half of each test says it is skipped and passes.
//!
//! Each test is an `async fn name(backend: &Backend)`; `conformance!` at
//! the end makes `sqlite::name` and `postgres::name` of it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool, SqlitePool};
use warden::document::{parse_document, parse_scenario};
use warden::engine::document::changes_of;
use warden::engine::model::{
    AccessLevel, Grantee, HierarchyMode, MemberSet, ModuleDef, Owd, OwnerRef, RecordDef, Settings,
    ShareDef, SharingRuleDef, UserDef,
};
use warden::engine::{Change, Command, Direct, Engine, Limits};
use warden::store::{
    Audit, CommitMeta, LogEntry, Retention, Store, StoreError, LOG_KEPT, MAX_LOGGED_CHANGES,
};

/// Two modules with records, shares of every grantee sort and rules;
/// roles, users and groups listed children first.
const ACME: &str = r#"
organization: acme
modules:
  - {id: Leads, owd: PRIVATE, fields: [name]}
  - {id: Deals, owd: PUBLIC_READ}
profiles:
  - id: std
    modules: {Leads: [view, edit, share], Deals: [view]}
roles:
  - {id: sales, parent: ceo, profiles: [std]}
  - {id: ceo, profiles: [std]}
users:
  - {id: bob, role: sales, reports_to: alice}
  - {id: alice, role: ceo}
  - {id: carol, role: sales}
groups:
  - {id: outer, groups: [team]}
  - {id: team, users: [bob, carol]}
records:
  - {module: Leads, id: L1, owner: {user: bob}}
  - {module: Leads, id: L2, owner: {group: team}, attributes: {region: EU}}
  - {module: Deals, id: D1, owner: {user: alice}, private: true}
shares:
  - {module: Leads, record: L1, grantee: {user: alice}, level: READ}
  - {module: Leads, record: L1, grantee: {role: sales}, level: READ_WRITE}
  - {module: Leads, record: L2, grantee: {role_and_subordinates: ceo}, level: FULL}
  - {module: Deals, record: D1, grantee: {group: outer}, level: READ}
sharing_rules:
  - {id: r1, module: Leads, from: {role: sales}, to: {group: team}, access: READ}
  - {id: r2, module: Deals, criteria: {stage: won}, to: {role_and_subordinates: ceo}, access: READ_WRITE}
"#;

type Key = (String, String, String, String);

/// The writes that won their revision, with it.
type Wins = Vec<(u64, Vec<Change>)>;

/// The backend a test runs on.
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// The PostgreSQL test cluster, by its URL.
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend, or `None` (saying so) when no cluster is set.
    fn postgres(test: &str) -> Option<Backend> {
        match std::env::var("WARDEN_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!(
                    "{test} on PostgreSQL skipped: WARDEN_TEST_POSTGRES_URL is unset \
                     (scripts/test.sh sets it)"
                );
                None
            }
        }
    }
}

/// `url` with a query parameter added.
fn with_parameter(url: &str, parameter: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
}

/// Where one test's store lives: a SQLite file in a temporary directory,
/// or a PostgreSQL schema of its own (dropped, tables and all, when this
/// goes, whether the test passed or not).
struct Place {
    url: String,
    kind: PlaceKind,
}

enum PlaceKind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin: String, schema: String },
}

impl Place {
    async fn new(backend: &Backend) -> Place {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Place {
                    url: format!("sqlite://{}", dir.path().join("warden.db").display()),
                    kind: PlaceKind::Sqlite { _dir: dir },
                }
            }
            Backend::Postgres(admin) => {
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let mut random = RandomState::new().build_hasher();
                random.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
                random.write_u32(std::process::id());
                let schema = format!("warden_test_{:016x}", random.finish());
                let mut conn = PgConnection::connect(admin)
                    .await
                    .unwrap_or_else(|e| panic!("connect to the test cluster at {admin}: {e}"));
                sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("create the test schema {schema}: {e}"));
                let _ = conn.close().await;
                // Every connection of the store works in the schema: its
                // migrations, tables and queries all land there.
                let url = with_parameter(admin, &format!("options=-c%20search_path%3D{schema}"));
                Place {
                    url,
                    kind: PlaceKind::Postgres {
                        admin: admin.clone(),
                        schema,
                    },
                }
            }
        }
    }

    /// A plain pool on the store's tables, to look at them.
    async fn tables(&self) -> Tables {
        match self.kind {
            PlaceKind::Sqlite { .. } => {
                Tables::Sqlite(SqlitePool::connect(&self.url).await.unwrap())
            }
            PlaceKind::Postgres { .. } => {
                Tables::Postgres(PgPool::connect(&self.url).await.unwrap())
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let PlaceKind::Postgres { admin, schema } = &self.kind else {
            return;
        };
        let admin = admin.clone();
        let schema = schema.clone();
        let name = schema.clone();
        // Drop may run inside the test's runtime: drop the schema from a
        // thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                // A test that failed mid-commit may leave a lock behind:
                // give up rather than hang.
                sqlx::query("SET lock_timeout = '10s'")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test schema {name}: {e}"),
            Err(_) => eprintln!("could not drop test schema {name}"),
        }
    }
}

/// A plain pool on a store's tables.
enum Tables {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Tables {
    /// The keys of an organization's entity rows, in key order.
    async fn rows(&self, org: &str) -> Vec<Key> {
        // Bytewise order in both (SQLite's BINARY, PostgreSQL's "C").
        let sql = "SELECT kind, module, record, id FROM entities WHERE org_id = $1 \
                   ORDER BY kind, module, record, id";
        match self {
            Tables::Sqlite(pool) => sqlx::query_as(sql).bind(org).fetch_all(pool).await,
            Tables::Postgres(pool) => sqlx::query_as(sql).bind(org).fetch_all(pool).await,
        }
        .unwrap()
    }

    /// Every organization row, live or not.
    async fn org_ids(&self) -> Vec<String> {
        let sql = "SELECT org_id FROM orgs ORDER BY org_id";
        match self {
            Tables::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Tables::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .unwrap()
    }

    /// The revisions of change-log entries logged without their changes.
    async fn unlogged_revisions(&self) -> Vec<i64> {
        let sql = "SELECT revision FROM changelog WHERE changes IS NULL ORDER BY revision";
        match self {
            Tables::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Tables::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .unwrap()
    }

    async fn close(&self) {
        match self {
            Tables::Sqlite(pool) => pool.close().await,
            Tables::Postgres(pool) => pool.close().await,
        }
    }
}

async fn close(store: &Store) {
    store.close().await;
}

/// A store beside an engine that is told every write the store
/// acknowledges: the engine is what the store must give back.
struct Harness {
    store: Store,
    engine: Engine,
    tables: Tables,
    // Last: the store's place goes after every connection to it.
    place: Place,
}

impl Harness {
    async fn new(backend: &Backend) -> Harness {
        let place = Place::new(backend).await;
        let store = Store::open(&place.url).await.unwrap();
        match backend {
            Backend::Sqlite => assert!(matches!(store, Store::Sqlite(_))),
            Backend::Postgres(_) => assert!(matches!(store, Store::Postgres(_))),
        }
        Harness {
            store,
            engine: Engine::new(Direct, Limits::default()),
            tables: place.tables().await,
            place,
        }
    }

    async fn reopen(&mut self) {
        close(&self.store).await;
        self.store = Store::open(&self.place.url).await.unwrap();
    }

    /// Plans a command on the engine, commits it, then applies it.
    async fn run(&self, org: &str, command: Command) -> u64 {
        let changes = self.engine.plan(org, &command).unwrap();
        self.commit(org, &changes).await
    }

    /// Commits changes at the engine's revision, then applies them.
    async fn commit(&self, org: &str, changes: &[Change]) -> u64 {
        let expected = self.engine.revision(org).unwrap_or(0);
        let revision = self.store.commit(org, expected, changes).await.unwrap();
        self.engine.apply(org, revision, changes);
        revision
    }

    async fn import(&self, text: &str) -> (String, u64) {
        let document = parse_document(text).unwrap();
        let org = document.organization.clone();
        let revision = self
            .run(
                &org,
                Command::Import {
                    document,
                    replace: true,
                },
            )
            .await;
        (org, revision)
    }

    /// The store holds exactly what the engine holds, and its document
    /// rebuilds the same organization.
    async fn assert_in_step(&self, org: &str) {
        assert_in_step(&self.store, &self.engine, org).await;
    }

    async fn rows(&self, org: &str) -> Vec<Key> {
        self.tables.rows(org).await
    }

    async fn rows_of_kind(&self, org: &str, kind: &str) -> Vec<Key> {
        let mut rows = self.rows(org).await;
        rows.retain(|r| r.0 == kind);
        rows
    }

    async fn finish(self) {
        close(&self.store).await;
        self.tables.close().await;
    }
}

async fn assert_in_step(store: &Store, engine: &Engine, org: &str) {
    let loaded = store.load_org(org).await.unwrap();
    let Ok((expected, revision)) = engine.export(org) else {
        assert_eq!(loaded, None, "{org} is gone from the engine");
        return;
    };
    let loaded = loaded.unwrap_or_else(|| panic!("{org} missing from the store"));
    assert_eq!(loaded.revision, revision, "{org}: revision");
    assert_eq!(loaded.document, expected, "{org}: document");
    let fresh = Engine::new(Direct, Limits::default());
    fresh.apply(org, loaded.revision, &changes_of(&loaded.document));
    assert_eq!(fresh.export(org).unwrap(), (expected.clone(), revision));
    // The streamed load, as start-up runs it, compiles the same.
    let streamed = store.load_org_state(org).await.unwrap().unwrap();
    assert_eq!(streamed.revision, revision, "{org}: streamed revision");
    let state = warden::engine::document::export(&streamed.state);
    assert_eq!(state, expected, "{org}: streamed state");
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{database}{query}", &base[..authority_end])
}

/// `url` with its user's password set to `password`.
fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        panic!("not a URL: {url}");
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or_default(), host),
        None => ("postgres", authority),
    };
    format!("{scheme}://{user}:{password}@{host}{tail}")
}

fn key(kind: &str, module: &str, record: &str, id: &str) -> Key {
    (kind.into(), module.into(), record.into(), id.into())
}

fn module(id: &str) -> ModuleDef {
    ModuleDef {
        id: id.into(),
        owd: Owd::Private,
        hierarchy_access: true,
        fields: Vec::new(),
        actions: Default::default(),
    }
}

fn record(module: &str, id: &str, owner: &str) -> RecordDef {
    RecordDef {
        module: module.into(),
        id: id.into(),
        owner: OwnerRef::User(owner.into()),
        private: false,
        attributes: Default::default(),
    }
}

fn share(module: &str, record: &str, grantee: Grantee, level: AccessLevel) -> ShareDef {
    ShareDef {
        module: module.into(),
        record: record.into(),
        grantee,
        level,
    }
}

fn user(id: &str) -> UserDef {
    UserDef {
        id: id.into(),
        ..UserDef::default()
    }
}

fn expect_conflict(result: Result<u64, StoreError>, current: u64, what: &str) {
    match result {
        Err(StoreError::Conflict { current: c }) => assert_eq!(c, current, "{what}"),
        other => panic!("{what}: expected a conflict at {current}, got {other:?}"),
    }
}

async fn every_scenario_document_survives_a_reopen(backend: &Backend) {
    let mut h = Harness::new(backend).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut orgs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let scenario = parse_scenario(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if scenario.expect_error.is_some() {
            continue;
        }
        let org = scenario.document.organization.clone();
        h.run(
            &org,
            Command::Import {
                document: scenario.document,
                replace: true,
            },
        )
        .await;
        orgs.push(org);
    }
    assert!(orgs.len() > 10, "scenarios found: {orgs:?}");
    h.reopen().await;
    for org in &orgs {
        h.assert_in_step(org).await;
    }
    let all = h.store.load_all().await.unwrap();
    let names: Vec<&str> = all
        .iter()
        .map(|o| o.document.organization.as_str())
        .collect();
    let mut expected: Vec<&str> = orgs.iter().map(String::as_str).collect();
    expected.sort();
    // In organization order, bytewise.
    assert_eq!(names, expected);
    for loaded in all {
        let org = loaded.document.organization.clone();
        assert_eq!(
            Ok((loaded.document, loaded.revision)),
            h.engine.export(&org).map_err(|e| e.to_string())
        );
    }
    h.finish().await;
}

async fn every_write_keeps_the_store_in_step_with_the_engine(backend: &Backend) {
    let mut h = Harness::new(backend).await;
    let (org, revision) = h.import(ACME).await;
    assert_eq!(revision, 1);
    h.assert_in_step(&org).await;
    let commands = vec![
        Command::Share(vec![share(
            "Leads",
            "L2",
            Grantee::User("carol".into()),
            AccessLevel::Read,
        )]),
        Command::Unshare(vec![share(
            "Leads",
            "L1",
            Grantee::Role("sales".into()),
            AccessLevel::Read,
        )]),
        // Re-owning keeps the record's shares.
        Command::SetOwner(record("Leads", "L1", "carol").into()),
        Command::PutSharingRule(SharingRuleDef {
            id: "r1".into(),
            module: "Deals".into(),
            from: Some(MemberSet::Role("sales".into())),
            criteria: None,
            to: MemberSet::Group("team".into()),
            access: AccessLevel::Read,
        }),
        Command::DeleteSharingRule("r2".into()),
        Command::DeleteRecord {
            module: "Leads".into(),
            id: "L2".into(),
        },
        Command::DeleteUser {
            id: "bob".into(),
            transfer_to: Some(OwnerRef::User("carol".into())),
            cascade: true,
        },
        Command::PutUser(UserDef {
            role: Some("sales".into()),
            ..user("dave")
        }),
        Command::DeleteModule {
            id: "Deals".into(),
            cascade: true,
        },
        Command::UpdateSettings(
            Settings {
                hierarchy_mode: HierarchyMode::Reporting,
                ..Settings::default()
            }
            .into(),
        ),
        Command::DeleteGroup {
            id: "outer".into(),
            transfer_to: None,
            cascade: true,
        },
        Command::DeleteProfile {
            id: "std".into(),
            cascade: true,
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        let revision = h.run(&org, command).await;
        assert_eq!(revision, i as u64 + 2);
        h.assert_in_step(&org).await;
    }
    h.reopen().await;
    h.assert_in_step(&org).await;
    assert_eq!(
        h.rows_of_kind(&org, "share").await,
        vec![key("share", "Leads", "L1", "user:alice")]
    );
    h.finish().await;
}

/// One commit that writes, deletes and rewrites the same rows: the store
/// ends where running its changes one by one does.
async fn a_write_touching_a_row_several_times_ends_as_its_last_change(backend: &Backend) {
    let h = Harness::new(backend).await;
    let (org, _) = h.import(ACME).await;
    let mut odd = record("Leads", "L9", "alice");
    odd.attributes.insert(
        "note".into(),
        "tab\t newline\n nul\0 quote\" backslash\\ é 😀".into(),
    );
    let moved_rule = |module: &str| SharingRuleDef {
        id: "r3".into(),
        module: module.into(),
        from: None,
        criteria: None,
        to: MemberSet::Role("ceo".into()),
        access: AccessLevel::Read,
    };
    let changes = vec![
        Change::PutRecord(record("Leads", "L9", "bob")),
        Change::PutShare(share(
            "Leads",
            "L9",
            Grantee::User("carol".into()),
            AccessLevel::Read,
        )),
        // Deletes the record and the share just put, and the stored L1's.
        Change::DeleteRecord {
            module: "Leads".into(),
            id: "L9".into(),
        },
        Change::DeleteRecord {
            module: "Leads".into(),
            id: "L1".into(),
        },
        Change::PutRecord(odd.clone()),
        Change::PutRecord(record("Leads", "L1", "carol")),
        Change::PutShare(share(
            "Leads",
            "L1",
            Grantee::Group("team".into()),
            AccessLevel::ReadWrite,
        )),
        Change::PutShare(share(
            "Leads",
            "L1",
            Grantee::Group("team".into()),
            AccessLevel::Full,
        )),
        Change::PutModule(module("Cases")),
        Change::PutRecord(record("Cases", "C1", "alice")),
        Change::PutRule(moved_rule("Cases")),
        Change::PutRule(moved_rule("Leads")),
        Change::PutRule(moved_rule("Cases")),
        Change::DeleteModule { id: "Cases".into() },
        Change::PutModule(module("Cases")),
        Change::PutRecord(record("Cases", "C2", "alice")),
        Change::DeleteRule { id: "r1".into() },
        Change::PutRule(moved_rule("Deals")),
    ];
    assert_eq!(h.commit(&org, &changes).await, 2);
    h.assert_in_step(&org).await;
    assert_eq!(
        h.rows_of_kind(&org, "rule").await,
        vec![
            key("rule", "Deals", "", "r2"),
            key("rule", "Deals", "", "r3")
        ]
    );
    assert_eq!(
        h.rows_of_kind(&org, "record").await,
        vec![
            key("record", "Cases", "C2", ""),
            key("record", "Deals", "D1", ""),
            key("record", "Leads", "L1", ""),
            key("record", "Leads", "L2", ""),
            key("record", "Leads", "L9", ""),
        ]
    );
    assert_eq!(
        h.rows_of_kind(&org, "share").await,
        vec![
            key("share", "Deals", "D1", "group:outer"),
            key("share", "Leads", "L1", "group:team"),
            key("share", "Leads", "L2", "role_and_subordinates:ceo"),
        ]
    );
    let loaded = h.store.load_org(&org).await.unwrap().unwrap();
    assert!(loaded.document.records.contains(&odd));
    let log = h.store.changes_since(&org, 1).await.unwrap();
    assert_eq!(
        log,
        vec![LogEntry {
            revision: 2,
            changes: Some(changes),
            actor: None,
            at: None,
        }]
    );
    h.finish().await;
}

/// Writes of more rows than one statement carries: shares put, some
/// re-put and some deleted, records deleted with their shares, in batches.
async fn bulk_writes_and_deletes_span_batches(backend: &Backend) {
    let h = Harness::new(backend).await;
    let (org, _) = h.import(ACME).await;
    let n = 25_000;
    let records: Vec<Change> = (0..n / 10)
        .map(|i| Change::PutRecord(record("Leads", &format!("B{i:05}"), "alice")))
        .collect();
    h.commit(&org, &records).await;
    let grantee = |i: usize| match i % 3 {
        0 => Grantee::User("bob".into()),
        1 => Grantee::Group("team".into()),
        _ => Grantee::Role("sales".into()),
    };
    let shares: Vec<Change> = (0..n)
        .map(|i| {
            Change::PutShare(share(
                "Leads",
                &format!("B{:05}", i % (n / 10)),
                grantee(i / (n / 10)),
                AccessLevel::Read,
            ))
        })
        .collect();
    h.commit(&org, &shares).await;
    h.assert_in_step(&org).await;
    let mut changes: Vec<Change> = (0..n)
        .filter(|i| i % 2 == 0)
        .map(|i| Change::DeleteShare {
            module: "Leads".into(),
            record: format!("B{:05}", i % (n / 10)),
            grantee: grantee(i / (n / 10)),
        })
        .collect();
    changes.extend(
        (0..n / 10)
            .filter(|i| i % 7 == 0)
            .map(|i| Change::DeleteRecord {
                module: "Leads".into(),
                id: format!("B{i:05}"),
            }),
    );
    changes.push(Change::PutShare(share(
        "Leads",
        "B00001",
        Grantee::User("carol".into()),
        AccessLevel::Full,
    )));
    h.commit(&org, &changes).await;
    h.assert_in_step(&org).await;
    let shares = h.rows_of_kind(&org, "share").await.len();
    let loaded = h.store.load_org(&org).await.unwrap().unwrap();
    assert_eq!(loaded.document.shares.len(), shares);
    assert!(shares > 4 && shares < n, "{shares} shares left");
    h.finish().await;
}

async fn a_stale_expected_revision_conflicts_and_changes_nothing(backend: &Backend) {
    let h = Harness::new(backend).await;
    let (org, _) = h.import(ACME).await;
    let rows_before = h.rows(&org).await;
    let log_before = h.store.changes_since(&org, 0).await.unwrap();
    let write = [Change::PutModule(module("Cases"))];
    for stale in [0, 2, 7] {
        expect_conflict(
            h.store.commit(&org, stale, &write).await,
            1,
            &format!("stale {stale}"),
        );
    }
    expect_conflict(
        h.store
            .commit("nobody", 1, &[Change::CreateOrg(Settings::default())])
            .await,
        0,
        "an organization that does not exist",
    );
    assert_eq!(h.rows(&org).await, rows_before);
    assert_eq!(h.store.changes_since(&org, 0).await.unwrap(), log_before);
    assert_eq!(h.store.revisions().await.unwrap(), vec![(org.clone(), 1)]);
    assert!(h.rows("nobody").await.is_empty());
    assert!(h.store.changes_since("nobody", 0).await.unwrap().is_empty());
    // A refused write leaves no trace, not even an organization row.
    assert_eq!(h.tables.org_ids().await, vec![org.clone()]);
    h.assert_in_step(&org).await;
    // The write goes through at the right revision.
    assert_eq!(h.commit(&org, &write).await, 2);
    h.assert_in_step(&org).await;
    h.finish().await;
}

async fn a_deleted_then_recreated_organization_continues_its_revision(backend: &Backend) {
    let mut h = Harness::new(backend).await;
    let org = "acme";
    assert_eq!(
        h.run(org, Command::CreateOrganization(Settings::default()))
            .await,
        1
    );
    assert_eq!(h.run(org, Command::PutModule(module("Leads"))).await, 2);
    assert_eq!(h.run(org, Command::DeleteOrganization).await, 3);
    assert_eq!(h.store.load_org(org).await.unwrap(), None);
    assert!(h.store.load_all().await.unwrap().is_empty());
    assert!(h.store.revisions().await.unwrap().is_empty());
    assert!(h.rows(org).await.is_empty());
    // Gone means revision 0 to a writer.
    expect_conflict(
        h.store
            .commit(org, 3, &[Change::Settings(Settings::default())])
            .await,
        0,
        "a deleted organization",
    );
    assert_eq!(
        h.run(org, Command::CreateOrganization(Settings::default()))
            .await,
        4
    );
    h.reopen().await;
    h.assert_in_step(org).await;
    assert_eq!(
        h.store.revisions().await.unwrap(),
        vec![(org.to_string(), 4)]
    );
    let log = h.store.changes_since(org, 0).await.unwrap();
    let revisions: Vec<u64> = log.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, vec![1, 2, 3, 4]);
    assert_eq!(log[2].changes, Some(vec![Change::DeleteOrg]));
    assert_eq!(h.rows(org).await, vec![key("settings", "", "", "")]);
    h.finish().await;
}

async fn deleting_a_record_takes_its_shares_and_nothing_else(backend: &Backend) {
    let h = Harness::new(backend).await;
    let (org, _) = h.import(ACME).await;
    h.commit(
        &org,
        &[Change::DeleteRecord {
            module: "Leads".into(),
            id: "L1".into(),
        }],
    )
    .await;
    h.assert_in_step(&org).await;
    assert_eq!(
        h.rows_of_kind(&org, "record").await,
        vec![
            key("record", "Deals", "D1", ""),
            key("record", "Leads", "L2", ""),
        ]
    );
    assert_eq!(
        h.rows_of_kind(&org, "share").await,
        vec![
            key("share", "Deals", "D1", "group:outer"),
            key("share", "Leads", "L2", "role_and_subordinates:ceo"),
        ]
    );
    h.finish().await;
}

async fn deleting_a_module_takes_its_records_shares_and_rules(backend: &Backend) {
    let h = Harness::new(backend).await;
    let (org, _) = h.import(ACME).await;
    let others: Vec<Key> = h
        .rows(&org)
        .await
        .into_iter()
        .filter(|(kind, module, _, id)| module != "Leads" && !(kind == "module" && id == "Leads"))
        .collect();
    h.commit(&org, &[Change::DeleteModule { id: "Leads".into() }])
        .await;
    h.assert_in_step(&org).await;
    assert_eq!(h.rows(&org).await, others);
    assert!(others.contains(&key("rule", "Deals", "", "r2")));
    assert!(others.contains(&key("share", "Deals", "D1", "group:outer")));
    h.finish().await;
}

async fn a_replacing_import_leaves_only_the_new_document(backend: &Backend) {
    let h = Harness::new(backend).await;
    let (org, _) = h.import(ACME).await;
    let (_, revision) = h
        .import("organization: acme\nmodules: [{id: Cases}]\nusers: [{id: zed, kind: GUEST}]\n")
        .await;
    assert_eq!(revision, 2);
    h.assert_in_step(&org).await;
    assert_eq!(
        h.rows(&org).await,
        vec![
            key("module", "", "", "Cases"),
            key("settings", "", "", ""),
            key("user", "", "", "zed"),
        ]
    );
    h.finish().await;
}

async fn a_rule_put_in_another_module_moves_there(backend: &Backend) {
    let h = Harness::new(backend).await;
    let (org, _) = h.import(ACME).await;
    let moved = SharingRuleDef {
        id: "r1".into(),
        module: "Deals".into(),
        from: None,
        criteria: Some([("stage".to_string(), "lost".to_string())].into()),
        to: MemberSet::Role("ceo".into()),
        access: AccessLevel::ReadWrite,
    };
    h.commit(&org, &[Change::PutRule(moved.clone())]).await;
    h.assert_in_step(&org).await;
    assert_eq!(
        h.rows_of_kind(&org, "rule").await,
        vec![
            key("rule", "Deals", "", "r1"),
            key("rule", "Deals", "", "r2")
        ]
    );
    let loaded = h.store.load_org(&org).await.unwrap().unwrap();
    assert!(loaded.document.sharing_rules.contains(&moved));
    // And deleting it by id finds it in its new module.
    h.commit(&org, &[Change::DeleteRule { id: "r1".into() }])
        .await;
    assert_eq!(
        h.rows_of_kind(&org, "rule").await,
        vec![key("rule", "Deals", "", "r2")]
    );
    h.assert_in_step(&org).await;
    h.finish().await;
}

async fn the_change_log_reads_in_order_and_a_huge_write_is_logged_empty(backend: &Backend) {
    let h = Harness::new(backend).await;
    let store = &h.store;
    let org = "acme";
    let writes = vec![
        vec![
            Change::CreateOrg(Settings::default()),
            Change::PutModule(module("Leads")),
            Change::PutUser(user("alice")),
        ],
        vec![Change::PutRecord(record("Leads", "L1", "alice"))],
        vec![Change::PutShare(share(
            "Leads",
            "L1",
            Grantee::RoleAndSubordinates("ceo".into()),
            AccessLevel::Read,
        ))],
    ];
    for (i, changes) in writes.iter().enumerate() {
        assert_eq!(
            store.commit(org, i as u64, changes).await.unwrap(),
            i as u64 + 1
        );
    }
    let records = |n: usize| -> Vec<Change> {
        (0..n)
            .map(|i| Change::PutRecord(record("Leads", &format!("bulk-{i}"), "alice")))
            .collect()
    };
    let largest_logged = records(MAX_LOGGED_CHANGES);
    let too_large = records(MAX_LOGGED_CHANGES + 1);
    assert_eq!(store.commit(org, 3, &largest_logged).await.unwrap(), 4);
    assert_eq!(store.commit(org, 4, &too_large).await.unwrap(), 5);

    let log = store.changes_since(org, 0).await.unwrap();
    let revisions: Vec<u64> = log.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, vec![1, 2, 3, 4, 5]);
    for (entry, changes) in log.iter().zip(&writes) {
        assert_eq!(entry.changes.as_ref(), Some(changes));
    }
    assert_eq!(log[3].changes.as_ref(), Some(&largest_logged));
    assert_eq!(log[4].changes, None);
    assert_eq!(h.tables.unlogged_revisions().await, vec![5]);
    let tail = store.changes_since(org, 2).await.unwrap();
    assert_eq!(tail, log[2..].to_vec());
    assert!(store.changes_since(org, 5).await.unwrap().is_empty());
    assert!(store.changes_since(org, u64::MAX).await.unwrap().is_empty());
    assert!(store.changes_since("other", 0).await.unwrap().is_empty());
    // The unlogged write is in the rows all the same.
    let loaded = store.load_org(org).await.unwrap().unwrap();
    assert_eq!(loaded.revision, 5);
    assert_eq!(loaded.document.records.len(), 1 + MAX_LOGGED_CHANGES + 1);
    h.finish().await;
}

async fn the_change_log_keeps_the_last_ten_thousand_writes(backend: &Backend) {
    let h = Harness::new(backend).await;
    let store = &h.store;
    let org = "acme";
    let write = [Change::Settings(Settings::default())];
    store
        .commit(org, 0, &[Change::CreateOrg(Settings::default())])
        .await
        .unwrap();
    let last = LOG_KEPT + 5;
    for revision in 1..last {
        store.commit(org, revision, &write).await.unwrap();
    }
    let log = store.changes_since(org, 0).await.unwrap();
    assert_eq!(log.first().map(|e| e.revision), Some(last - LOG_KEPT));
    assert_eq!(log.last().map(|e| e.revision), Some(last));
    assert_eq!(log.len() as u64, LOG_KEPT + 1);
    h.finish().await;
}

async fn revisions_list_live_organizations_only(backend: &Backend) {
    let h = Harness::new(backend).await;
    let store = &h.store;
    let create = [Change::CreateOrg(Settings::default())];
    for org in ["b", "a", "c", "B"] {
        store.commit(org, 0, &create).await.unwrap();
    }
    store
        .commit("b", 1, &[Change::PutModule(module("Leads"))])
        .await
        .unwrap();
    store.commit("a", 1, &[Change::DeleteOrg]).await.unwrap();
    // Bytewise order, whatever the database's locale.
    assert_eq!(
        store.revisions().await.unwrap(),
        vec![
            ("B".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 1)
        ]
    );
    let loaded: Vec<String> = store
        .load_all()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.document.organization)
        .collect();
    assert_eq!(loaded, vec!["B", "b", "c"]);
    assert_eq!(store.load_org("a").await.unwrap(), None);
    h.finish().await;
}

async fn a_bad_url_is_a_backend_error_without_the_password(backend: &Backend) {
    let urls = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            vec![format!(
                "sqlite://{}",
                dir.path().join("no/such/dir/warden.db").display()
            )]
        }
        Backend::Postgres(admin) => vec![
            "postgres://warden:hunter2secret@127.0.0.1:1/warden".to_string(),
            with_password(
                &with_database(admin, "warden_no_such_database"),
                "hunter2secret",
            ),
            "postgresql://warden:hunter2secret@127.0.0.1:notaport/warden".to_string(),
        ],
    };
    for url in urls {
        match Store::open(&url).await {
            Err(StoreError::Backend(message)) => {
                assert!(message.starts_with("open"), "{message}");
                assert!(!message.contains("hunter2"), "{message}");
            }
            Err(other) => panic!("{url}: expected a backend error, got {other:?}"),
            Ok(_) => panic!("{url}: expected a backend error"),
        }
    }
    match Store::open("mysql://root:hunter2secret@db/warden").await {
        Err(StoreError::Backend(message)) => assert!(!message.contains("hunter2"), "{message}"),
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(_) => panic!("expected a backend error"),
    }
}

async fn replicas_opening_one_database_at_once_migrate_it_once(backend: &Backend) {
    let place = Place::new(backend).await;
    let opened = futures::future::join_all((0..4).map(|_| Store::open(&place.url))).await;
    let stores: Vec<Store> = opened.into_iter().map(Result::unwrap).collect();
    stores[0]
        .commit("acme", 0, &[Change::CreateOrg(Settings::default())])
        .await
        .unwrap();
    for store in &stores {
        assert_eq!(
            store.revisions().await.unwrap(),
            vec![("acme".to_string(), 1)]
        );
        close(store).await;
    }
}

/// The writes of one contender: a record every contender overwrites, so
/// that the final state depends on the order of the winners, and one of
/// its own.
fn contender_write(round: u64, contender: usize) -> Vec<Change> {
    let mut hot = record(
        "Leads",
        "hot",
        if contender % 2 == 0 { "alice" } else { "bob" },
    );
    hot.attributes.insert(
        "writer".into(),
        format!("round {round} contender {contender}"),
    );
    vec![
        Change::PutRecord(hot),
        Change::PutRecord(record("Leads", &format!("r{round}-c{contender}"), "alice")),
        Change::PutShare(share(
            "Leads",
            "hot",
            Grantee::User(if contender % 2 == 0 { "bob" } else { "alice" }.into()),
            AccessLevel::Read,
        )),
    ]
}

fn seed() -> Vec<Change> {
    vec![
        Change::CreateOrg(Settings::default()),
        Change::PutModule(module("Leads")),
        Change::PutUser(user("alice")),
        Change::PutUser(user("bob")),
    ]
}

/// Two stores on one database create the same new organizations at once:
/// one creation wins each, the others see it.
async fn racing_replicas_create_an_organization_once(backend: &Backend) {
    let place = Place::new(backend).await;
    let stores = [
        Arc::new(Store::open(&place.url).await.unwrap()),
        Arc::new(Store::open(&place.url).await.unwrap()),
    ];
    for round in 0..20 {
        let org = format!("new-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        let tasks: Vec<_> = (0..4)
            .map(|contender| {
                let store = stores[contender % 2].clone();
                let barrier = barrier.clone();
                let org = org.clone();
                tokio::spawn(async move {
                    let mut changes = seed();
                    changes.push(Change::PutModule(module(&format!("by-{contender}"))));
                    barrier.wait().await;
                    let result = store.commit(&org, 0, &changes).await;
                    (changes, result)
                })
            })
            .collect();
        let mut won = Vec::new();
        for task in tasks {
            let (changes, result) = task.await.unwrap();
            match result {
                Ok(revision) => {
                    assert_eq!(revision, 1);
                    won.push(changes);
                }
                other => expect_conflict(other, 1, &org),
            }
        }
        assert_eq!(won.len(), 1, "{org}: one creation");
        let engine = Engine::new(Direct, Limits::default());
        engine.apply(&org, 1, &won[0]);
        for store in &stores {
            assert_in_step(store, &engine, &org).await;
        }
    }
    for store in &stores {
        close(store).await;
    }
}

/// Two stores (two replicas) on one database; in every round four tasks,
/// two per store, commit on the same expected revision at once.
async fn racing_replicas_commit_exactly_one_write_per_revision(backend: &Backend) {
    let place = Place::new(backend).await;
    let stores = [
        Arc::new(Store::open(&place.url).await.unwrap()),
        Arc::new(Store::open(&place.url).await.unwrap()),
    ];
    let engine = Engine::new(Direct, Limits::default());
    let org = "race";
    let seed = seed();
    assert_eq!(stores[0].commit(org, 0, &seed).await.unwrap(), 1);
    engine.apply(org, 1, &seed);
    const CONTENDERS: usize = 4;
    let mut winners = Vec::new();
    for round in 1..=25u64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(CONTENDERS));
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|contender| {
                let store = stores[contender % 2].clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let changes = contender_write(round, contender);
                    barrier.wait().await;
                    let result = store.commit(org, round, &changes).await;
                    (changes, result)
                })
            })
            .collect();
        let mut won = Vec::new();
        for task in tasks {
            let (changes, result) = task.await.unwrap();
            match result {
                Ok(revision) => {
                    assert_eq!(revision, round + 1);
                    won.push(changes);
                }
                other => expect_conflict(other, round + 1, &format!("round {round}")),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: one winner");
        let changes = won.remove(0);
        engine.apply(org, round + 1, &changes);
        winners.push(changes);
    }
    for store in &stores {
        assert_in_step(store, &engine, org).await;
    }
    let log = stores[1].changes_since(org, 1).await.unwrap();
    let expected: Vec<LogEntry> = winners
        .into_iter()
        .enumerate()
        .map(|(i, changes)| LogEntry {
            revision: i as u64 + 2,
            changes: Some(changes),
            actor: None,
            at: None,
        })
        .collect();
    assert_eq!(log, expected);
    for store in &stores {
        close(store).await;
    }
}

/// Eight writers on two stores, each committing as fast as it can on the
/// revision it last read: every revision is won once, nothing is lost,
/// and applying the winners in revision order gives what the store holds.
async fn free_running_writers_on_two_replicas_serialize(backend: &Backend) {
    let place = Place::new(backend).await;
    let stores = [
        Arc::new(Store::open(&place.url).await.unwrap()),
        Arc::new(Store::open(&place.url).await.unwrap()),
    ];
    let org = "race";
    assert_eq!(stores[0].commit(org, 0, &seed()).await.unwrap(), 1);
    const WRITES: usize = 150;
    const WRITERS: usize = 8;
    let wins: Arc<Mutex<Wins>> = Arc::default();
    let conflicts = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = stores[writer % 2].clone();
            let wins = wins.clone();
            let conflicts = conflicts.clone();
            tokio::spawn(async move {
                let mut attempt = 0;
                while wins.lock().unwrap().len() < WRITES {
                    attempt += 1;
                    let revisions = store.revisions().await.unwrap();
                    let expected = revisions
                        .iter()
                        .find(|(o, _)| o == org)
                        .map(|(_, r)| *r)
                        .unwrap();
                    let changes = contender_write(attempt, writer);
                    match store.commit(org, expected, &changes).await {
                        Ok(revision) => {
                            assert_eq!(revision, expected + 1);
                            wins.lock().unwrap().push((revision, changes));
                        }
                        Err(StoreError::Conflict { current }) => {
                            assert!(current > expected, "{current} after {expected}");
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("writer {writer}: {e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut wins = std::mem::take(&mut *wins.lock().unwrap());
    wins.sort_by_key(|(revision, _)| *revision);
    let revisions: Vec<u64> = wins.iter().map(|(r, _)| *r).collect();
    let last = wins.len() as u64 + 1;
    assert_eq!(revisions, (2..=last).collect::<Vec<_>>());
    assert!(
        conflicts.load(Ordering::Relaxed) > 0,
        "the writers never met: the test raced nothing"
    );
    let engine = Engine::new(Direct, Limits::default());
    engine.apply(org, 1, &seed());
    for (revision, changes) in &wins {
        engine.apply(org, *revision, changes);
    }
    for store in &stores {
        assert_in_step(store, &engine, org).await;
    }
    let log = stores[0].changes_since(org, 1).await.unwrap();
    let expected: Vec<LogEntry> = wins
        .into_iter()
        .map(|(revision, changes)| LogEntry {
            revision,
            changes: Some(changes),
            actor: None,
            at: None,
        })
        .collect();
    assert_eq!(log, expected);
    for store in &stores {
        close(store).await;
    }
}

/// crm-large's records and shares in one replacing import, twice (the
/// second replaces the first), then loaded back.
async fn a_million_record_import_commits_in_seconds(backend: &Backend) {
    let place = Place::new(backend).await;
    let store = Store::open(&place.url).await.unwrap();
    let mut changes = vec![
        Change::CreateOrg(Settings::default()),
        Change::PutModule(module("Leads")),
        Change::PutUser(user("alice")),
        Change::PutUser(user("bob")),
    ];
    changes.extend((0..1_000_000).map(|i| {
        let mut def = record("Leads", &format!("L{i:07}"), "alice");
        def.attributes.insert("region".into(), "EU".into());
        Change::PutRecord(def)
    }));
    changes.extend((0..100_000).map(|i| {
        Change::PutShare(share(
            "Leads",
            &format!("L{:07}", i * 10),
            Grantee::User("bob".into()),
            AccessLevel::Read,
        ))
    }));
    let mut expected = 0;
    for attempt in ["first", "replacing"] {
        let start = Instant::now();
        expected = store.commit("big", expected, &changes).await.unwrap();
        eprintln!(
            "{attempt} commit of 1,000,000 records and 100,000 shares: {:.2?}",
            start.elapsed()
        );
    }
    let start = Instant::now();
    let loaded = store.load_org("big").await.unwrap().unwrap();
    eprintln!("load: {:.2?}", start.elapsed());
    assert_eq!(loaded.revision, 2);
    assert_eq!(loaded.document.records.len(), 1_000_000);
    assert_eq!(loaded.document.shares.len(), 100_000);
    // Unsharing them all is one write too.
    let unshare: Vec<Change> = loaded
        .document
        .shares
        .iter()
        .map(|s| Change::DeleteShare {
            module: s.module.clone(),
            record: s.record.clone(),
            grantee: s.grantee.clone(),
        })
        .collect();
    let start = Instant::now();
    assert_eq!(store.commit("big", 2, &unshare).await.unwrap(), 3);
    eprintln!("commit of 100,000 unshares: {:.2?}", start.elapsed());
    close(&store).await;
}

/// The audit columns of migration 0002: actor and time kept with each
/// entry, retention by age, and the bootstrap hash written with its commit
/// and forgotten with the organization.
async fn the_log_records_actor_and_time_and_the_bootstrap_hash(backend: &Backend) {
    let mut h = Harness::new(backend).await;
    h.store
        .set_retention(Retention::Age(std::time::Duration::from_secs(3600)));
    let org = "acme";
    let at = |hours_ago: i64, sha256: Option<&str>| CommitMeta {
        audit: Some(Audit {
            actor: format!("actor-{hours_ago}"),
            at: chrono::Utc::now() - chrono::Duration::hours(hours_ago),
        }),
        bootstrap_sha256: sha256.map(str::to_string),
    };
    let create = [Change::CreateOrg(Settings::default())];
    let write = [Change::Settings(Settings::default())];
    let store = &h.store;
    assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
    store
        .commit_with(org, 0, &create, &at(3, Some("abc")))
        .await
        .unwrap();
    assert_eq!(
        store.bootstrap_sha256(org).await.unwrap().as_deref(),
        Some("abc")
    );
    let log = store.changes_since(org, 0).await.unwrap();
    assert_eq!(log.len(), 1, "the newest entry stays whatever its age");
    assert_eq!(log[0].actor.as_deref(), Some("actor-3"));
    // A conflicting write records neither its entry nor its hash.
    assert!(store
        .commit_with(org, 9, &write, &at(0, Some("def")))
        .await
        .is_err());
    store
        .commit_with(org, 1, &write, &at(2, None))
        .await
        .unwrap();
    store.commit(org, 2, &write).await.unwrap();
    store
        .commit_with(org, 3, &write, &at(0, None))
        .await
        .unwrap();
    let log = store.changes_since(org, 0).await.unwrap();
    assert_eq!(log.iter().map(|e| e.revision).collect::<Vec<_>>(), [4]);
    assert_eq!(log[0].actor.as_deref(), Some("actor-0"));
    let age = chrono::Utc::now() - log[0].at.unwrap();
    assert!(age < chrono::Duration::minutes(1), "{age}");
    assert_eq!(
        store.bootstrap_sha256(org).await.unwrap().as_deref(),
        Some("abc")
    );
    store.commit(org, 4, &[Change::DeleteOrg]).await.unwrap();
    assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
    h.finish().await;
}
async fn the_log_records_actor_and_time_and_keeps_what_retention_says(backend: &Backend) {
    let mut h = Harness::new(backend).await;
    h.store
        .set_retention(Retention::Age(Duration::from_secs(3600)));
    let org = "acme";
    let at = |hours_ago: i64| CommitMeta {
        audit: Some(Audit {
            actor: format!("actor-{hours_ago}"),
            at: chrono::Utc::now() - chrono::Duration::hours(hours_ago),
        }),
        bootstrap_sha256: None,
    };
    let create = [Change::CreateOrg(Settings::default())];
    let write = [Change::Settings(Settings::default())];
    let store = &h.store;
    store.commit_with(org, 0, &create, &at(3)).await.unwrap();
    // The newest entry stays whatever its age.
    let log = store.changes_since(org, 0).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].actor.as_deref(), Some("actor-3"));
    store.commit_with(org, 1, &write, &at(2)).await.unwrap();
    store.commit(org, 2, &write).await.unwrap();
    store.commit_with(org, 3, &write, &at(0)).await.unwrap();
    // Older than an hour, or of unknown time: pruned.
    let log = store.changes_since(org, 0).await.unwrap();
    assert_eq!(log.iter().map(|e| e.revision).collect::<Vec<_>>(), [4]);
    let entry = &log[0];
    assert_eq!(entry.actor.as_deref(), Some("actor-0"));
    let age = chrono::Utc::now() - entry.at.unwrap();
    assert!(age < chrono::Duration::minutes(1), "{age}");
    h.finish().await;
}

async fn the_bootstrap_hash_is_kept_with_its_write_and_forgotten_with_the_org(backend: &Backend) {
    let h = Harness::new(backend).await;
    let store = &h.store;
    let org = "acme";
    let with_hash = CommitMeta {
        audit: None,
        bootstrap_sha256: Some("abc".into()),
    };
    assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
    store
        .commit_with(
            org,
            0,
            &[Change::CreateOrg(Settings::default())],
            &with_hash,
        )
        .await
        .unwrap();
    assert_eq!(
        store.bootstrap_sha256(org).await.unwrap().as_deref(),
        Some("abc")
    );
    // A refused write records nothing.
    let other = CommitMeta {
        bootstrap_sha256: Some("def".into()),
        ..with_hash.clone()
    };
    assert!(store
        .commit_with(org, 7, &[Change::Settings(Settings::default())], &other)
        .await
        .is_err());
    assert_eq!(
        store.bootstrap_sha256(org).await.unwrap().as_deref(),
        Some("abc")
    );
    store.commit(org, 1, &[Change::DeleteOrg]).await.unwrap();
    assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
    // Re-created, it holds no bootstrap document until one is merged.
    store
        .commit(org, 0, &[Change::CreateOrg(Settings::default())])
        .await
        .unwrap();
    assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
    h.finish().await;
}

/// What only SQLite has: a store in memory.
mod sqlite_only {
    use super::*;

    #[tokio::test]
    async fn memory_stores_persist_between_calls_and_are_separate() {
        let first = Store::open("sqlite::memory:").await.unwrap();
        let second = Store::open("sqlite::memory:").await.unwrap();
        first
            .commit("acme", 0, &[Change::CreateOrg(Settings::default())])
            .await
            .unwrap();
        let loaded = first.load_org("acme").await.unwrap().unwrap();
        assert_eq!(loaded.revision, 1);
        assert_eq!(loaded.document.settings, Some(Settings::default().into()));
        assert!(second.revisions().await.unwrap().is_empty());
    }
}

/// More rows than a load chunk holds, in several modules, with a record id
/// that is a prefix of others, so the streamed load's chunks end mid-module
/// and between shares of one record.
async fn a_streamed_load_reads_every_chunk_of_records_and_shares(backend: &Backend) {
    let h = Harness::new(backend).await;
    let org = "paged";
    let per_module = warden::store::rows::LOAD_CHUNK as usize + 7;
    let mut changes = vec![
        Change::CreateOrg(Settings::default()),
        Change::PutModule(module("Alpha")),
        Change::PutModule(module("Beta")),
        Change::PutUser(user("alice")),
        Change::PutUser(user("bob")),
        Change::PutUser(user("carol")),
    ];
    for m in ["Alpha", "Beta"] {
        changes.push(Change::PutRecord(record(m, "R", "alice")));
        for i in 0..per_module {
            changes.push(Change::PutRecord(record(m, &format!("R{i}"), "bob")));
        }
        for i in 0..per_module / 2 {
            for grantee in ["alice", "carol"] {
                changes.push(Change::PutShare(share(
                    m,
                    &format!("R{i}"),
                    Grantee::User(grantee.into()),
                    AccessLevel::Read,
                )));
            }
        }
    }
    h.commit(org, &changes).await;
    h.assert_in_step(org).await;
    let loaded = h.store.load_org_state(org).await.unwrap().unwrap();
    assert_eq!(loaded.state.record_count(), 2 * (per_module + 1));
    let shares = warden::engine::document::export(&loaded.state).shares.len();
    assert_eq!(shares, 2 * 2 * (per_module / 2));
    assert!(h.store.load_org_state("nobody").await.unwrap().is_none());
    // Start-up's load of every organization walks the same chunks: beside
    // the large one, a small live one and a deleted one (not loaded).
    h.commit(
        "small",
        &[
            Change::CreateOrg(Settings::default()),
            Change::PutModule(module("Alpha")),
            Change::PutUser(user("dave")),
            Change::PutRecord(record("Alpha", "S1", "dave")),
        ],
    )
    .await;
    h.commit(
        "gone",
        &[
            Change::CreateOrg(Settings::default()),
            Change::PutModule(module("Alpha")),
        ],
    )
    .await;
    h.commit("gone", &[Change::DeleteOrg]).await;
    let all = h.store.load_all_states().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|l| &*l.state.id).collect();
    assert_eq!(ids, ["paged", "small"], "live organizations, by id");
    for loaded in &all {
        let id: &str = &loaded.state.id;
        let (expected, revision) = h.engine.export(id).unwrap();
        assert_eq!(loaded.revision, revision, "{id}: revision");
        assert_eq!(
            warden::engine::document::export(&loaded.state),
            expected,
            "{id}: every row read back"
        );
    }
    h.finish().await;
}

/// `sqlite::NAME` and `postgres::NAME` for each conformance test `NAME`,
/// and `postgres::NAME` alone for the tests after `postgres_only:`.
macro_rules! conformance {
    (
        both: [$($(#[$attr:meta])* $name:ident),* $(,)?],
        postgres_only: [$($(#[$pg_attr:meta])* $pg_name:ident),* $(,)?] $(,)?
    ) => {
        mod sqlite {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Backend::Sqlite).await;
                }
            )*
        }

        mod postgres {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(backend) = super::Backend::postgres(stringify!($name)) {
                        super::$name(&backend).await;
                    }
                }
            )*
            $(
                $(#[$pg_attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $pg_name() {
                    if let Some(backend) = super::Backend::postgres(stringify!($pg_name)) {
                        super::$pg_name(&backend).await;
                    }
                }
            )*
        }
    };
}

conformance! {
    both: [
        every_scenario_document_survives_a_reopen,
        every_write_keeps_the_store_in_step_with_the_engine,
        a_write_touching_a_row_several_times_ends_as_its_last_change,
        bulk_writes_and_deletes_span_batches,
        a_stale_expected_revision_conflicts_and_changes_nothing,
        a_deleted_then_recreated_organization_continues_its_revision,
        deleting_a_record_takes_its_shares_and_nothing_else,
        deleting_a_module_takes_its_records_shares_and_rules,
        a_replacing_import_leaves_only_the_new_document,
        a_rule_put_in_another_module_moves_there,
        the_change_log_reads_in_order_and_a_huge_write_is_logged_empty,
        the_change_log_keeps_the_last_ten_thousand_writes,
        revisions_list_live_organizations_only,
        a_bad_url_is_a_backend_error_without_the_password,
        racing_replicas_create_an_organization_once,
        racing_replicas_commit_exactly_one_write_per_revision,
        free_running_writers_on_two_replicas_serialize,
        the_log_records_actor_and_time_and_the_bootstrap_hash,
        the_log_records_actor_and_time_and_keeps_what_retention_says,
        the_bootstrap_hash_is_kept_with_its_write_and_forgotten_with_the_org,
        a_streamed_load_reads_every_chunk_of_records_and_shares,
        #[ignore = "timing: cargo test --release --test store_conformance -- --ignored --nocapture"]
        a_million_record_import_commits_in_seconds,
    ],
    postgres_only: [
        // SQLite is one process's store: its migrations take no lock.
        replicas_opening_one_database_at_once_migrate_it_once,
    ],
}
