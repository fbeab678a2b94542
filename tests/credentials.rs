//! Credentials over gRPC against the real server: tokens limited to
//! organizations (reads, checks, lists and writes), the admin scope for
//! admin actors, the bearer scheme in any case, the token file reloaded
//! without a restart; and the error fixes of issue 7 item 10 (malformed
//! org ids, Watch of an unknown org, foreign or exhausted cursors,
//! duplicate document keys, bounded echoes).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{auth, check_req, Clients, Server};
use tokio_stream::StreamExt;
use warden::api::pb;

/// Tokens of the tests: an unlimited operator, and tokens limited to acme.
const TOKENS: &str = "\
# operators
ops=admin

acme-check=check@acme
acme-grant=grant@acme
acme-admin=admin+check@acme
grant-all=grant
";

/// An organization with an admin, two members sharing one principal
/// across organizations, and five records owned by ann.
fn org_doc(org: &str) -> String {
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
  - {{id: ann, role: reps, principal: ann@example}}
  - {{id: bob, role: reps}}
records:
  - {{module: Leads, id: L1, owner: {{user: ann}}}}
  - {{module: Leads, id: L2, owner: {{user: ann}}}}
  - {{module: Leads, id: L3, owner: {{user: ann}}}}
  - {{module: Leads, id: L4, owner: {{user: ann}}}}
  - {{module: Leads, id: L5, owner: {{user: ann}}}}
"
    )
}

fn write_tokens(path: &Path, text: &str) {
    // Written beside and renamed over, as an operator (or a Secret
    // mount) replaces it: the server never sees half a file.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A server reading its tokens from a file, with acme and globex imported.
async fn start() -> (Server, Clients, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    write_tokens(&path, TOKENS);
    let server = Server::start_with(&["--auth-token-file", path.to_str().unwrap()]);
    let mut c = server.clients().await;
    for org in ["acme", "globex"] {
        c.admin
            .import(auth(
                "ops",
                pb::ImportRequest {
                    document: org_doc(org),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    (server, c, dir)
}

async fn export(c: &mut Clients, org: &str) -> String {
    c.admin
        .export(auth(
            "ops",
            pb::ExportRequest {
                org_id: org.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .document
}

fn assert_denied_for_org<T: std::fmt::Debug>(r: Result<T, tonic::Status>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
    assert!(
        e.message().contains("org_id") && e.message().contains("globex"),
        "{what}: {}",
        e.message()
    );
}

fn owner(user: &str) -> Option<pb::Owner> {
    Some(pb::Owner {
        owner: Some(pb::owner::Owner::UserId(user.into())),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_limited_check_token_reads_and_lists_only_its_organizations() {
    let (_server, mut c, _dir) = start().await;
    let t = "acme-check";

    let own = c
        .check
        .check(auth(t, check_req("acme", "ann", "Leads", "view", "L1")))
        .await
        .unwrap()
        .into_inner();
    assert!(own.allowed);
    assert_denied_for_org(
        c.check
            .check(auth(t, check_req("globex", "ann", "Leads", "view", "L1")))
            .await,
        "Check",
    );
    // A bulk call is refused whole when any check names another organization.
    let bulk = c
        .check
        .check_bulk(auth(
            t,
            pb::CheckBulkRequest {
                checks: vec![
                    check_req("acme", "ann", "Leads", "view", "L1"),
                    check_req("globex", "ann", "Leads", "view", "L1"),
                ],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bulk.code(), tonic::Code::PermissionDenied);
    assert!(
        bulk.message().starts_with("checks[1].org_id"),
        "{}",
        bulk.message()
    );
    assert_denied_for_org(
        c.check
            .check_fields(auth(
                t,
                pb::CheckFieldsRequest {
                    org_id: "globex".into(),
                    subject: "ann".into(),
                    module: "Leads".into(),
                    ..Default::default()
                },
            ))
            .await,
        "CheckFields",
    );
    assert_denied_for_org(
        c.check
            .lookup_records(auth(
                t,
                pb::LookupRecordsRequest {
                    org_id: "globex".into(),
                    subject: "ann".into(),
                    module: "Leads".into(),
                    action: "view".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        "LookupRecords",
    );
    assert_denied_for_org(
        c.check
            .lookup_subjects(auth(
                t,
                pb::LookupSubjectsRequest {
                    org_id: "globex".into(),
                    module: "Leads".into(),
                    record_id: "L1".into(),
                    action: "view".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        "LookupSubjects",
    );
    assert_denied_for_org(
        c.check
            .filter(auth(
                t,
                pb::FilterRequest {
                    org_id: "globex".into(),
                    subject: "ann".into(),
                    module: "Leads".into(),
                    action: "view".into(),
                    ..Default::default()
                },
            ))
            .await,
        "Filter",
    );
    assert_denied_for_org(
        c.check
            .validate_password(auth(
                t,
                pb::ValidatePasswordRequest {
                    org_id: "globex".into(),
                    user_id: "ann".into(),
                    password: "Secret-123".into(),
                    ..Default::default()
                },
            ))
            .await,
        "ValidatePassword",
    );
    assert_denied_for_org(
        c.grant
            .list_shares(auth(
                t,
                pb::ListSharesRequest {
                    org_id: "globex".into(),
                    module: "Leads".into(),
                    record_id: "L1".into(),
                    ..Default::default()
                },
            ))
            .await,
        "ListShares",
    );

    // Admin reads: its own organization yes, the other no.
    let users = c
        .admin
        .list_users(auth(
            t,
            pb::ListUsersRequest {
                org_id: "acme".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(users.len(), 3);
    assert_denied_for_org(
        c.admin
            .list_users(auth(
                t,
                pb::ListUsersRequest {
                    org_id: "globex".into(),
                    ..Default::default()
                },
            ))
            .await,
        "ListUsers",
    );
    assert_denied_for_org(
        c.admin
            .get_user(auth(
                t,
                pb::GetUserRequest {
                    org_id: "globex".into(),
                    user_id: "ann".into(),
                    ..Default::default()
                },
            ))
            .await,
        "GetUser",
    );
    assert_denied_for_org(
        c.admin
            .get_organization(auth(
                t,
                pb::GetOrganizationRequest {
                    org_id: "globex".into(),
                    ..Default::default()
                },
            ))
            .await,
        "GetOrganization",
    );

    // Lists name only the token's organizations, with or without a principal.
    for principal in ["", "ann@example"] {
        let list = |token: &'static str| {
            auth(
                token,
                pb::ListOrganizationsRequest {
                    principal: principal.into(),
                    ..Default::default()
                },
            )
        };
        let limited: Vec<String> = c
            .admin
            .list_organizations(list(t))
            .await
            .unwrap()
            .into_inner()
            .organizations
            .into_iter()
            .map(|o| o.org_id)
            .collect();
        assert_eq!(limited, ["acme"], "principal {principal:?}");
        let everywhere = c
            .admin
            .list_organizations(list("ops"))
            .await
            .unwrap()
            .into_inner()
            .organizations;
        assert_eq!(everywhere.len(), 2, "principal {principal:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_limited_admin_token_cannot_export_watch_import_or_create_elsewhere() {
    let (_server, mut c, _dir) = start().await;
    let t = "acme-admin";
    let before = export(&mut c, "globex").await;

    assert_denied_for_org(
        c.admin
            .export(auth(
                t,
                pb::ExportRequest {
                    org_id: "globex".into(),
                    ..Default::default()
                },
            ))
            .await,
        "Export",
    );
    assert_denied_for_org(
        c.admin
            .watch(auth(
                t,
                pb::WatchRequest {
                    org_id: "globex".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        "Watch",
    );
    assert_denied_for_org(
        c.admin
            .import(auth(
                t,
                pb::ImportRequest {
                    org_id: "globex".into(),
                    document: org_doc("globex"),
                    replace: true,
                    ..Default::default()
                },
            ))
            .await,
        "Import naming org_id",
    );
    // Without org_id the document would name the organization, but only
    // once parsed: an org-limited token must name it first.
    let e = c
        .admin
        .import(auth(
            t,
            pb::ImportRequest {
                document: org_doc("globex"),
                replace: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().starts_with("org_id:"), "{}", e.message());
    // Even an unparseable document gets that answer, not a parse error.
    let e = c
        .admin
        .import(auth(
            t,
            pb::ImportRequest {
                document: "{{{ not a document".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert_denied_for_org(
        c.admin
            .delete_organization(auth(
                t,
                pb::DeleteOrganizationRequest {
                    org_id: "globex".into(),
                    ..Default::default()
                },
            ))
            .await,
        "DeleteOrganization",
    );
    let e = c
        .admin
        .create_organization(auth(
            t,
            pb::CreateOrganizationRequest {
                org_id: "newco".into(),
                settings: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("newco"), "{}", e.message());
    assert_eq!(export(&mut c, "globex").await, before, "globex unchanged");

    // Its own organization it administers.
    c.admin
        .import(auth(
            t,
            pb::ImportRequest {
                org_id: "acme".into(),
                document: org_doc("acme"),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let mut watch = c
        .admin
        .watch(auth(
            t,
            pb::WatchRequest {
                org_id: "acme".into(),
                after_revision: "0".into(),
                checkpoint_seconds: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(watch.next().await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_limited_grant_token_cannot_write_another_org_even_as_its_admin() {
    let (_server, mut c, _dir) = start().await;
    let before = export(&mut c, "globex").await;
    // Naming globex's administrator as actor does not lift the organization limit.
    assert_denied_for_org(
        c.grant
            .set_owner(auth(
                "acme-grant",
                pb::SetOwnerRequest {
                    org_id: "globex".into(),
                    actor: "root".into(),
                    module: "Leads".into(),
                    record_id: "L1".into(),
                    owner: owner("bob"),
                    ..Default::default()
                },
            ))
            .await,
        "SetOwner",
    );
    assert_denied_for_org(
        c.admin
            .put_user(auth(
                "acme-grant",
                pb::PutUserRequest {
                    org_id: "globex".into(),
                    actor: "root".into(),
                    user: Some(pb::User {
                        user_id: "bob".into(),
                        role_id: "top".into(),
                        is_admin: true,
                        ..Default::default()
                    }),
                },
            ))
            .await,
        "PutUser",
    );
    assert_denied_for_org(
        c.grant
            .share(auth(
                "acme-grant",
                pb::ShareRequest {
                    org_id: "globex".into(),
                    actor: "ann".into(),
                    shares: vec![pb::Share {
                        module: "Leads".into(),
                        record_id: "L1".into(),
                        grantee: Some(pb::Grantee {
                            grantee: Some(pb::grantee::Grantee::UserId("bob".into())),
                        }),
                        level: pb::AccessLevel::Read as i32,
                    }],
                },
            ))
            .await,
        "Share",
    );
    assert_eq!(export(&mut c, "globex").await, before, "globex unchanged");
    // In its own organization a non-admin actor writes by its own rules.
    c.grant
        .set_owner(auth(
            "acme-grant",
            pb::SetOwnerRequest {
                org_id: "acme".into(),
                actor: "ann".into(),
                module: "Leads".into(),
                record_id: "L9".into(),
                owner: owner("ann"),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_token_naming_an_admin_actor_is_refused_without_the_admin_scope() {
    let (_server, mut c, _dir) = start().await;
    let before = export(&mut c, "acme").await;
    let make_bob_admin = |token: &str| {
        auth(
            token,
            pb::PutUserRequest {
                org_id: "acme".into(),
                actor: "root".into(),
                user: Some(pb::User {
                    user_id: "bob".into(),
                    role_id: "top".into(),
                    is_admin: true,
                    ..Default::default()
                }),
            },
        )
    };
    let e = c
        .admin
        .put_user(make_bob_admin("grant-all"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("admin scope"), "{}", e.message());
    assert_eq!(export(&mut c, "acme").await, before, "nothing changed");
    // The same write with the admin scope goes through.
    c.admin.put_user(make_bob_admin("ops")).await.unwrap();
    assert_ne!(export(&mut c, "acme").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_case_insensitive() {
    let (_server, mut c, _dir) = start().await;
    for header in [
        "bearer acme-check",
        "BEARER acme-check",
        "bEaReR \t acme-check",
    ] {
        let mut req = tonic::Request::new(check_req("acme", "ann", "Leads", "view", "L1"));
        req.metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let r = c.check.check(req).await;
        assert!(r.unwrap().into_inner().allowed, "{header:?}");
    }
    for header in ["Basic acme-check", "Bearer", "acme-check"] {
        let mut req = tonic::Request::new(check_req("acme", "ann", "Leads", "view", "L1"));
        req.metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let e = c.check.check(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{header:?}");
    }
}

/// Polls `probe` until it returns true, failing after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !probe().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_file_is_reloaded_on_change_without_restart() {
    let (_server, c, dir) = start().await;
    let path = dir.path().join("tokens");
    let code_of = |mut c: pb::check_service_client::CheckServiceClient<_>, token: &'static str| async move {
        match c
            .check(auth(token, check_req("acme", "ann", "Leads", "view", "L1")))
            .await
        {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.code(),
        }
    };
    assert_eq!(
        code_of(c.check.clone(), "fresh").await,
        tonic::Code::Unauthenticated
    );
    write_tokens(&path, "ops=admin\nfresh=check@acme\n");
    eventually(Duration::from_secs(15), "the new token accepted", || {
        let c = c.check.clone();
        async move { code_of(c, "fresh").await == tonic::Code::Ok }
    })
    .await;
    // acme-check was removed with the same change.
    assert_eq!(
        code_of(c.check.clone(), "acme-check").await,
        tonic::Code::Unauthenticated
    );
    // A file that does not parse keeps the tokens in force. Its refusal
    // cannot be observed over gRPC, so the test gives the server more than
    // two polls (a change is applied once it stayed the same for one).
    write_tokens(&path, "ops=admin\nfresh=check@acme\nbroken=root\n");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(code_of(c.check.clone(), "fresh").await, tonic::Code::Ok);
    assert_eq!(
        code_of(c.check.clone(), "broken").await,
        tonic::Code::Unauthenticated
    );
}

// --- item 10 -----------------------------------------------------------

/// A server without tokens, with acme imported.
async fn open_server() -> (Server, Clients) {
    let server = Server::start();
    let mut c = server.clients().await;
    c.admin
        .import(pb::ImportRequest {
            document: org_doc("acme"),
            ..Default::default()
        })
        .await
        .unwrap();
    (server, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_org_id_is_invalid_argument_not_not_found() {
    let (_server, mut c) = open_server().await;
    for org in ["", "bad org", "a/b"] {
        let e = c
            .check
            .check(check_req(org, "ann", "Leads", "view", "L1"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{org:?}");
        assert!(e.message().starts_with("org_id: "), "{}", e.message());
        let e = c
            .admin
            .list_users(pb::ListUsersRequest {
                org_id: org.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{org:?}");
        assert!(e.message().starts_with("org_id: "), "{}", e.message());
        // Also when a revision is awaited: refused before any wait.
        let mut req = check_req(org, "ann", "Leads", "view", "L1");
        req.consistency = Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeastAsFresh("99".into())),
        });
        let started = Instant::now();
        let e = c.check.check(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{org:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // A well-formed unknown organization stays NOT_FOUND.
    let e = c
        .check
        .check(check_req("nowhere", "ann", "Leads", "view", "L1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_on_an_unknown_organization_is_not_found() {
    let (_server, mut c) = open_server().await;
    let e = c
        .admin
        .watch(pb::WatchRequest {
            org_id: "nowhere".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("'nowhere'"), "{}", e.message());
    let e = c
        .admin
        .watch(pb::WatchRequest::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

async fn first_page(
    c: &mut Clients,
    subject: &str,
    cursor: &str,
) -> Result<Vec<pb::LookupRecordsResponse>, tonic::Status> {
    let mut stream = c
        .check
        .lookup_records(pb::LookupRecordsRequest {
            org_id: "acme".into(),
            subject: subject.into(),
            module: "Leads".into(),
            action: "view".into(),
            page_size: 2,
            cursor: cursor.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut pages = Vec::new();
    while let Some(p) = stream.next().await {
        pages.push(p?);
    }
    Ok(pages)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_of_another_lookup_or_past_the_end_is_invalid_argument() {
    let (_server, mut c) = open_server().await;
    let pages = first_page(&mut c, "ann", "").await.unwrap();
    assert_eq!(pages.len(), 3, "five records in pages of two");
    let cursor = pages[0].cursor.clone();
    // Its own lookup resumes it.
    let rest = first_page(&mut c, "ann", &cursor).await.unwrap();
    let ids: Vec<String> = rest.into_iter().flat_map(|p| p.record_ids).collect();
    assert_eq!(ids, ["L3", "L4", "L5"]);
    // Another subject's lookup (root sees the same records) refuses it.
    let e = first_page(&mut c, "root", &cursor).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("cursor: "), "{}", e.message());
    // A cursor moved past the end of its lookup.
    let mut parts: Vec<&str> = cursor.split('.').collect();
    parts[2] = "999";
    let past = parts.join(".");
    let e = first_page(&mut c, "ann", &past).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("cursor: points at record 999 of a lookup of 5"),
        "{}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_keys_in_an_imported_document_are_refused_by_path() {
    let (_server, mut c) = open_server().await;
    let before = c
        .admin
        .export(pb::ExportRequest {
            org_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .document;
    let doc = org_doc("acme").replace(
        "  - {id: bob, role: reps}",
        "  - {id: bob, role: reps, admin: false, admin: true}",
    );
    let e = c
        .admin
        .import(pb::ImportRequest {
            document: doc,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("users[2].admin: duplicate key `admin`"),
        "{}",
        e.message()
    );
    let json = r#"{"organization": "acme", "organization": "globex"}"#;
    let e = c
        .admin
        .import(pb::ImportRequest {
            document: json.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().starts_with("organization: duplicate key"),
        "{}",
        e.message()
    );
    let after = c
        .admin
        .export(pb::ExportRequest {
            org_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .document;
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_megabyte_id_is_never_echoed_whole() {
    let (_server, mut c) = open_server().await;
    let huge = "u".repeat(1 << 20);
    let e = c
        .admin
        .get_user(pb::GetUserRequest {
            org_id: "acme".into(),
            user_id: huge.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().len() < 256, "{} bytes", e.message().len());
    assert!(e.message().contains("…(1048576 bytes)"), "{}", e.message());
    let e = c
        .admin
        .list_users(pb::ListUsersRequest {
            org_id: huge,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().len() < 256, "{} bytes", e.message().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_tokens_carry_organization_limits_beside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    write_tokens(&path, "ops=admin\n");
    let server = Server::start_with_env(
        &["--auth-token-file", path.to_str().unwrap()],
        &[("WARDEN_AUTH_TOKENS", "env-acme=check@acme,env-all=check")],
    );
    let mut c = server.clients().await;
    for org in ["acme", "globex"] {
        c.admin
            .import(auth(
                "ops",
                pb::ImportRequest {
                    document: org_doc(org),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    let check = |token: &str, org: &str| auth(token, check_req(org, "ann", "Leads", "view", "L1"));
    assert!(c.check.check(check("env-acme", "acme")).await.is_ok());
    assert_denied_for_org(c.check.check(check("env-acme", "globex")).await, "Check");
    assert!(c.check.check(check("env-all", "globex")).await.is_ok());
}
