//! The change audit over gRPC (SQLite): every Admin and Grant write
//! recorded with its actor (a user, a named or unnamed token, anonymous),
//! time and revision; ListChanges paging and errors; Watch events stamped;
//! retention; and a bootstrap skipped when its document is unchanged.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{auth, Clients, Server};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use warden::api::pb;

/// A named operator token, an unnamed one, a grant token and an admin token
/// limited to globex.
const TOKENS: &str =
    "ops-secret=admin#ops-team,raw-secret=admin,grant-secret=grant,globex-secret=admin@globex#globex-ops";

const ORG: &str = "organization: acme
modules:
  - {id: Leads, owd: PRIVATE}
profiles:
  - id: rep
    modules: {Leads: [view, create, edit, delete, share, assign]}
roles:
  - {id: reps, profiles: [rep]}
users:
  - {id: root, role: reps, admin: true}
  - {id: ann, role: reps}
";

fn import(org: &str, document: &str) -> pb::ImportRequest {
    pb::ImportRequest {
        org_id: org.into(),
        document: document.into(),
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

fn set_owner(org: &str, actor: &str, record: &str) -> pb::SetOwnerRequest {
    pb::SetOwnerRequest {
        org_id: org.into(),
        actor: actor.into(),
        module: "Leads".into(),
        record_id: record.into(),
        owner: Some(pb::Owner {
            owner: Some(pb::owner::Owner::UserId(actor.into())),
        }),
        ..Default::default()
    }
}

fn list(org: &str, from: &str, size: u32, token: &str) -> pb::ListChangesRequest {
    pb::ListChangesRequest {
        org_id: org.into(),
        from_revision: from.into(),
        page_size: size,
        page_token: token.into(),
    }
}

fn time_of(ts: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let ts = ts.as_ref().expect("a time");
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32).unwrap()
}

/// Every entry of the audit, following the pages.
async fn all_changes(c: &mut Clients, token: Option<&str>, org: &str) -> Vec<pb::ChangeEntry> {
    let mut out = Vec::new();
    let mut page = String::new();
    loop {
        let req = list(org, "", 0, &page);
        let r = match token {
            Some(t) => c.admin.list_changes(auth(t, req)).await,
            None => c.admin.list_changes(req).await,
        }
        .unwrap()
        .into_inner();
        out.extend(r.entries);
        if r.next_page_token.is_empty() {
            return out;
        }
        page = r.next_page_token;
    }
}

fn revisions(entries: &[pb::ChangeEntry]) -> Vec<String> {
    entries.iter().map(|e| e.revision.clone()).collect()
}

#[tokio::test]
async fn writes_by_a_named_token_an_actor_and_an_unnamed_token_are_recorded() {
    let server = Server::start_with_env(&[], &[("WARDEN_AUTH_TOKENS", TOKENS)]);
    let mut c = server.clients().await;
    // The store keeps microseconds: the window starts at a whole one.
    let start = Utc::now() - chrono::Duration::milliseconds(1);
    c.admin
        .import(auth("ops-secret", import("acme", ORG)))
        .await
        .unwrap();
    c.grant
        .set_owner(auth("grant-secret", set_owner("acme", "ann", "L1")))
        .await
        .unwrap();
    c.admin
        .put_module(auth("raw-secret", put_module("acme", "Deals")))
        .await
        .unwrap();
    let end = Utc::now();

    let entries = all_changes(&mut c, Some("ops-secret"), "acme").await;
    assert_eq!(revisions(&entries), ["1", "2", "3"]);
    let fingerprint: String = Sha256::digest(b"raw-secret")
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let actors: Vec<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(
        actors,
        ["ops-team", "ann", format!("token:{fingerprint}").as_str()]
    );
    let mut previous = start;
    for e in &entries {
        let at = time_of(&e.time);
        assert!(previous <= at && at <= end, "{at} outside {start}..{end}");
        previous = at;
        assert!(!e.changes.is_empty(), "{e:?}");
        for change in &e.changes {
            assert_eq!(change.revision, e.revision);
            assert_eq!(change.actor, e.actor);
            assert_eq!(change.time, e.time);
        }
    }
    let record = &entries[1].changes;
    assert_eq!(record.len(), 1);
    assert_eq!(
        (record[0].kind.as_str(), record[0].deleted),
        ("record", false)
    );
    assert!(entries[2]
        .changes
        .iter()
        .any(|ch| ch.kind == "module" && ch.id == "Deals"));
    // The token itself is never recorded.
    assert!(entries.iter().all(|e| !format!("{e:?}").contains("secret")));

    // The audit needs the admin scope.
    let denied = c
        .admin
        .list_changes(auth("grant-secret", list("acme", "", 0, "")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    // And a credential valid for the organization.
    let denied = c
        .admin
        .list_changes(auth("globex-secret", list("acme", "", 0, "")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().starts_with("org_id:"), "{denied:?}");
}

#[tokio::test]
async fn with_authentication_off_writes_are_anonymous_and_bad_requests_are_refused() {
    let server = Server::start();
    let mut c = server.clients().await;
    c.admin
        .create_organization(pb::CreateOrganizationRequest {
            org_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let entries = all_changes(&mut c, None, "acme").await;
    assert_eq!(revisions(&entries), ["1"]);
    assert_eq!(entries[0].actor, "anonymous");

    let unknown = c
        .admin
        .list_changes(list("globex", "", 0, ""))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    for (req, field) in [
        (list("acme", "", 0, "garbage"), "page_token"),
        (list("acme", "", 0, "changes-after:x"), "page_token"),
        (list("acme", "abc", 0, ""), "from_revision"),
        (list("acme", "", 5000, ""), "page_size"),
    ] {
        let e = c.admin.list_changes(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(field), "{e:?}");
    }
}

#[tokio::test]
async fn list_changes_pages_oldest_first_from_a_revision() {
    let server = Server::start();
    let mut c = server.clients().await;
    c.admin.import(import("acme", ORG)).await.unwrap();
    for i in 0..4 {
        c.admin
            .put_module(put_module("acme", &format!("M{i}")))
            .await
            .unwrap();
    }
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .admin
            .list_changes(list("acme", "", 2, &token))
            .await
            .unwrap()
            .into_inner();
        pages.push(revisions(&r.entries));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(pages, [vec!["1", "2"], vec!["3", "4"], vec!["5"]]);

    let r = c
        .admin
        .list_changes(list("acme", "3", 2, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revisions(&r.entries), ["3", "4"]);
    let r = c
        .admin
        .list_changes(list("acme", "3", 2, &r.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revisions(&r.entries), ["5"]);
    assert!(r.next_page_token.is_empty());
    let past = c
        .admin
        .list_changes(list("acme", "6", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(past.entries.is_empty() && past.next_page_token.is_empty());
}

#[tokio::test]
async fn watch_events_carry_actor_and_time() {
    let server = Server::start_with_env(&[], &[("WARDEN_AUTH_TOKENS", TOKENS)]);
    let mut c = server.clients().await;
    c.admin
        .import(auth("ops-secret", import("acme", ORG)))
        .await
        .unwrap();
    let mut stream = c
        .admin
        .watch(auth(
            "ops-secret",
            pb::WatchRequest {
                org_id: "acme".into(),
                after_revision: "0".into(),
                checkpoint_seconds: 60,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let before = Utc::now() - chrono::Duration::milliseconds(1);
    c.grant
        .set_owner(auth("grant-secret", set_owner("acme", "ann", "L7")))
        .await
        .unwrap();
    let after = Utc::now();
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &pb::ChangeEvent| e.revision == "2") {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a Watch event within 10 s")
            .expect("the stream open")
            .unwrap();
        if let Some(pb::watch_response::Event::Change(e)) = next.event {
            seen.push(e);
        }
    }
    // The backlog (revision 1, from the store) and the live write.
    assert!(seen
        .iter()
        .filter(|e| e.revision == "1")
        .all(|e| e.actor == "ops-team" && e.time.is_some()));
    assert!(seen.iter().any(|e| e.revision == "1"));
    let live = seen.iter().find(|e| e.revision == "2").unwrap();
    assert_eq!((live.actor.as_str(), live.kind.as_str()), ("ann", "record"));
    let at = time_of(&live.time);
    assert!(
        before <= at && at <= after,
        "{at} outside {before}..{after}"
    );
}

#[tokio::test]
async fn retention_by_revisions_drops_the_oldest_entries() {
    let server = Server::start_with(&["--change-retention", "3"]);
    let mut c = server.clients().await;
    c.admin.import(import("acme", ORG)).await.unwrap();
    for i in 0..5 {
        c.admin
            .put_module(put_module("acme", &format!("M{i}")))
            .await
            .unwrap();
    }
    let entries = all_changes(&mut c, None, "acme").await;
    assert_eq!(revisions(&entries), ["3", "4", "5", "6"]);
}

#[tokio::test]
async fn a_bad_retention_refuses_to_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--change-retention", "forever"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--change-retention"), "{stderr}");
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn revision_of(c: &mut Clients) -> String {
    c.admin
        .get_organization(pb::GetOrganizationRequest {
            org_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

#[tokio::test]
async fn an_unchanged_bootstrap_is_skipped_and_a_changed_one_merged() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());
    let document = dir.path().join("acme.yaml");
    let log = dir.path().join("warden.log");
    std::fs::write(&document, ORG).unwrap();
    let args = ["--bootstrap", document.to_str().unwrap()];

    let mut first = Server::spawn_logged(&store, &args, &log);
    let mut c = first.clients().await;
    assert_eq!(revision_of(&mut c).await, "1");
    first.terminate();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("bootstrap document merged"), "{said}");

    let mut second = Server::spawn_logged(&store, &args, &log);
    let mut c = second.clients().await;
    assert_eq!(revision_of(&mut c).await, "1");
    second.terminate();
    let said = std::fs::read_to_string(&log).unwrap();
    let skipped = format!(
        "bootstrap document unchanged (sha256 {}); skipped",
        sha256_hex(ORG)
    );
    assert!(said.contains(&skipped), "{said}");
    assert!(!said.contains("bootstrap document merged"), "{said}");

    let changed = format!("{ORG}  - {{id: cid, role: reps}}\n");
    std::fs::write(&document, &changed).unwrap();
    let third = Server::spawn_logged(&store, &args, &log);
    let mut c = third.clients().await;
    assert_eq!(revision_of(&mut c).await, "2");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("bootstrap document merged"), "{said}");
    c.admin
        .get_user(pb::GetUserRequest {
            org_id: "acme".into(),
            user_id: "cid".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let entries = all_changes(&mut c, None, "acme").await;
    assert_eq!(revisions(&entries), ["1", "2"]);
    assert!(
        entries.iter().all(|e| e.actor == "bootstrap"),
        "{entries:?}"
    );
}
