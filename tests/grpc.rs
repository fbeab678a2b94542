//! The gRPC service end to end: a real `warden serve` on a loopback port
//! with its own SQLite file, called with tonic clients.

mod common;

use std::collections::HashMap;

use common::{check_req, code_name, export, scenario_check, scenario_files, Server};
use tokio_stream::StreamExt;
use warden::api::pb;
use warden::document::{parse_scenario, Expect};

fn consistency_at(rev: &str) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(
            rev.to_string(),
        )),
    })
}

fn reason_name(r: i32) -> String {
    pb::Reason::try_from(r)
        .map(|r| r.as_str_name().trim_start_matches("REASON_").to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_imported_and_checked_over_grpc() {
    let server = Server::start();
    let mut c = server.clients().await;
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario = parse_scenario(&text).unwrap();
        let imported = c
            .admin
            .import(pb::ImportRequest {
                document: text.clone(),
                replace: true,
                ..Default::default()
            })
            .await;
        if let Some(want) = &scenario.expect_error {
            match imported {
                Err(s)
                    if code_name(s.code()) == want.code
                        && s.message()
                            .to_lowercase()
                            .contains(&want.message.to_lowercase()) =>
                {
                    ran += 1
                }
                other => failures.push(format!(
                    "{}: expected {} {:?}, got {other:?}",
                    file.display(),
                    want.code,
                    want.message
                )),
            }
            continue;
        }
        let revision = imported
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .into_inner()
            .revision;
        let org = &scenario.document.organization;
        for (i, check) in scenario.checks.iter().enumerate() {
            let req = pb::CheckRequest {
                consistency: consistency_at(&revision),
                explain: i % 2 == 0,
                ..scenario_check(org, check)
            };
            let resp = c.check.check(req).await.unwrap().into_inner();
            let want_allowed = check.expect == Expect::Allow;
            let reason_ok = check
                .reason
                .is_none_or(|r| r.as_str() == reason_name(resp.reason));
            if resp.allowed != want_allowed || !reason_ok {
                failures.push(format!(
                    "{} checks[{i}]: got allowed={} {}",
                    file.display(),
                    resp.allowed,
                    reason_name(resp.reason)
                ));
            }
            ran += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran > 700, "only {ran} checks ran");
}

/// A small organization built through the API, one call per kind.
async fn build_org(c: &mut common::Clients) -> String {
    let org = "acme";
    c.admin
        .create_organization(pb::CreateOrganizationRequest {
            org_id: org.into(),
            settings: None,
        })
        .await
        .unwrap();
    c.admin
        .put_module(pb::PutModuleRequest {
            org_id: org.into(),
            module: Some(pb::Module {
                id: "Leads".into(),
                owd: pb::Owd::Private as i32,
                fields: vec!["name".into(), "email".into()],
                actions: HashMap::from([("export".into(), pb::AccessLevel::Read as i32)]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    c.admin
        .put_profile(pb::PutProfileRequest {
            org_id: org.into(),
            profile: Some(pb::Profile {
                id: "sales".into(),
                modules: HashMap::from([(
                    "Leads".into(),
                    pb::ActionList {
                        actions: [
                            "view", "create", "edit", "delete", "share", "assign", "export",
                        ]
                        .map(String::from)
                        .to_vec(),
                    },
                )]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for (id, parent) in [("boss", ""), ("rep", "boss")] {
        c.admin
            .put_role(pb::PutRoleRequest {
                org_id: org.into(),
                role: Some(pb::Role {
                    id: id.into(),
                    parent_id: parent.into(),
                    profile_ids: vec!["sales".into()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for (id, role, admin) in [
        ("ceo", "boss", false),
        ("ann", "rep", false),
        ("bob", "rep", false),
        ("root", "boss", true),
    ] {
        c.admin
            .put_user(pb::PutUserRequest {
                org_id: org.into(),
                user: Some(pb::User {
                    user_id: id.into(),
                    role_id: role.into(),
                    is_admin: admin,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    c.admin
        .put_group(pb::PutGroupRequest {
            org_id: org.into(),
            group: Some(pb::Group {
                group_id: "team".into(),
                users: vec!["ann".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for (id, owner) in [("L1", "ann"), ("L2", "bob"), ("L3", "ann")] {
        c.grant
            .set_owner(pb::SetOwnerRequest {
                org_id: org.into(),
                module: "Leads".into(),
                record_id: id.into(),
                owner: Some(pb::Owner {
                    owner: Some(pb::owner::Owner::UserId(owner.into())),
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    org.to_string()
}

async fn allowed(
    c: &mut common::Clients,
    org: &str,
    subject: &str,
    action: &str,
    record: &str,
) -> bool {
    c.check
        .check(check_req(org, subject, "Leads", action, record))
        .await
        .unwrap()
        .into_inner()
        .allowed
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_writes_name_the_rule_and_change_nothing() {
    let server = Server::start();
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;
    let before = export(&mut c, &org).await;

    // INVALID_ARGUMENT naming the field.
    let e = c
        .admin
        .put_user(pb::PutUserRequest {
            org_id: org.clone(),
            user: Some(pb::User {
                user_id: "bad id".into(),
                role_id: "rep".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("id: "), "{}", e.message());

    // NOT_FOUND naming the id.
    let e = c
        .admin
        .put_user(pb::PutUserRequest {
            org_id: org.clone(),
            user: Some(pb::User {
                user_id: "cat".into(),
                role_id: "no-such-role".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("no-such-role"));

    // FAILED_PRECONDITION: a role cycle, a group cycle, an orphaning delete, a 31st shift.
    let e = c
        .admin
        .put_role(pb::PutRoleRequest {
            org_id: org.clone(),
            role: Some(pb::Role {
                id: "boss".into(),
                parent_id: "rep".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("cycle"));
    c.admin
        .put_group(pb::PutGroupRequest {
            org_id: org.clone(),
            group: Some(pb::Group {
                group_id: "outer".into(),
                groups: vec!["team".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = c
        .admin
        .put_group(pb::PutGroupRequest {
            org_id: org.clone(),
            group: Some(pb::Group {
                group_id: "team".into(),
                groups: vec!["outer".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("cycle"));
    c.admin
        .delete_group(pb::DeleteGroupRequest {
            org_id: org.clone(),
            group_id: "outer".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let after_outer = export(&mut c, &org).await;
    assert_eq!(
        after_outer.0, before.0,
        "the group was created and deleted again"
    );

    let e = c
        .admin
        .delete_user(pb::DeleteUserRequest {
            org_id: org.clone(),
            user_id: "ann".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("transfer_to"));

    for i in 0..30 {
        c.admin
            .put_shift(pb::PutShiftRequest {
                org_id: org.clone(),
                shift: Some(pb::Shift {
                    shift_id: format!("s{i}"),
                    time_zone: "UTC".into(),
                    windows: vec![],
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let with_shifts = export(&mut c, &org).await;
    let e = c
        .admin
        .put_shift(pb::PutShiftRequest {
            org_id: org.clone(),
            shift: Some(pb::Shift {
                shift_id: "s30".into(),
                time_zone: "UTC".into(),
                windows: vec![],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("30 shifts"));
    assert_eq!(
        export(&mut c, &org).await,
        with_shifts,
        "a refused write changed something"
    );

    // Unknown org on a check is NOT_FOUND, never an ALLOW.
    let e = c
        .check
        .check(check_req("nope", "ann", "Leads", "view", "L1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // Bad check input names the field.
    let e = c
        .check
        .check(check_req(&org, "ann", "Leads", "fly", "L1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("action:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn crud_of_every_kind_and_transfer_on_delete() {
    let server = Server::start();
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;

    // Reads of what was written.
    let users = c
        .admin
        .list_users(pb::ListUsersRequest {
            org_id: org.clone(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        users
            .users
            .iter()
            .map(|u| u.user_id.as_str())
            .collect::<Vec<_>>(),
        ["ann", "bob", "ceo", "root"]
    );
    let roles = c
        .admin
        .list_roles(pb::ListRolesRequest {
            org_id: org.clone(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        roles
            .roles
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["boss", "rep"]
    );
    let ann = c
        .admin
        .get_user(pb::GetUserRequest {
            org_id: org.clone(),
            user_id: "ann".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ann.groups, ["team"]);
    assert_eq!(ann.effective_profile_ids, ["sales"]);
    let team = c
        .admin
        .get_group(pb::GetGroupRequest {
            org_id: org.clone(),
            group_id: "team".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(team.members, ["ann"]);

    // Shares, listed and removed.
    let share = pb::Share {
        module: "Leads".into(),
        record_id: "L2".into(),
        grantee: Some(pb::Grantee {
            grantee: Some(pb::grantee::Grantee::GroupId("team".into())),
        }),
        level: pb::AccessLevel::ReadWrite as i32,
    };
    assert!(!allowed(&mut c, &org, "ann", "edit", "L2").await);
    c.grant
        .share(pb::ShareRequest {
            org_id: org.clone(),
            shares: vec![share.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(allowed(&mut c, &org, "ann", "edit", "L2").await);
    let listed = c
        .grant
        .list_shares(pb::ListSharesRequest {
            org_id: org.clone(),
            module: "Leads".into(),
            record_id: "L2".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.shares, vec![share.clone()]);
    c.grant
        .unshare(pb::UnshareRequest {
            org_id: org.clone(),
            shares: vec![share],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!allowed(&mut c, &org, "ann", "edit", "L2").await);

    // A sharing rule: rep's records readable by the boss role (already superiors) and by reps.
    c.admin
        .put_sharing_rule(pb::PutSharingRuleRequest {
            org_id: org.clone(),
            rule: Some(pb::SharingRule {
                rule_id: "reps-read".into(),
                module: "Leads".into(),
                from: Some(pb::MemberSet {
                    set: Some(pb::member_set::Set::RoleId("rep".into())),
                }),
                to: Some(pb::MemberSet {
                    set: Some(pb::member_set::Set::RoleId("rep".into())),
                }),
                access: pb::AccessLevel::Read as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(allowed(&mut c, &org, "bob", "view", "L1").await);
    let rules = c
        .admin
        .list_sharing_rules(pb::ListSharingRulesRequest {
            org_id: org.clone(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rules.rules.len(), 1);
    c.admin
        .delete_sharing_rule(pb::DeleteSharingRuleRequest {
            org_id: org.clone(),
            rule_id: "reps-read".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!allowed(&mut c, &org, "bob", "view", "L1").await);

    // Transfer on delete: ann's records go to bob, atomically.
    let answer = c
        .admin
        .delete_user(pb::DeleteUserRequest {
            org_id: org.clone(),
            user_id: "ann".into(),
            transfer_to: Some(pb::Owner {
                owner: Some(pb::owner::Owner::UserId("bob".into())),
            }),
            cascade: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let moved: Vec<(&str, &str)> = answer
        .moved
        .iter()
        .filter(|m| m.kind == "record")
        .map(|m| (m.id.as_str(), m.to.as_str()))
        .collect();
    assert!(
        moved.contains(&("Leads/L1", "user:bob")) && moved.contains(&("Leads/L3", "user:bob")),
        "the answer lists ann's records as moved to bob: {moved:?}"
    );
    assert_eq!(
        answer
            .removed
            .last()
            .map(|r| (r.kind.as_str(), r.id.as_str())),
        Some(("user", "ann"))
    );
    assert!(allowed(&mut c, &org, "bob", "delete", "L1").await);
    assert!(allowed(&mut c, &org, "bob", "delete", "L3").await);
    let team = c
        .admin
        .get_group(pb::GetGroupRequest {
            org_id: org.clone(),
            group_id: "team".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(team.members.is_empty());

    // A group owning records: deleting it needs transfer_to.
    c.grant
        .set_owner(pb::SetOwnerRequest {
            org_id: org.clone(),
            module: "Leads".into(),
            record_id: "L1".into(),
            owner: Some(pb::Owner {
                owner: Some(pb::owner::Owner::GroupId("team".into())),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = c
        .admin
        .delete_group(pb::DeleteGroupRequest {
            org_id: org.clone(),
            group_id: "team".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    c.admin
        .delete_group(pb::DeleteGroupRequest {
            org_id: org.clone(),
            group_id: "team".into(),
            transfer_to: Some(pb::Owner {
                owner: Some(pb::owner::Owner::UserId("ceo".into())),
            }),
            cascade: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let check = c
        .check
        .check(check_req(&org, "ceo", "Leads", "delete", "L1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason_name(check.reason), "OWNER");

    // Role delete with transfer; profile, shift and module deletes; record delete.
    c.admin
        .delete_role(pb::DeleteRoleRequest {
            org_id: org.clone(),
            role_id: "rep".into(),
            transfer_to: "boss".into(),
            cascade: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let bob = c
        .admin
        .get_user(pb::GetUserRequest {
            org_id: org.clone(),
            user_id: "bob".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bob.user.unwrap().role_id, "boss");
    c.grant
        .delete_record(pb::DeleteRecordRequest {
            org_id: org.clone(),
            module: "Leads".into(),
            record_id: "L2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = c
        .check
        .check(check_req(&org, "bob", "Leads", "view", "L2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason_name(r.reason), "UNKNOWN_RECORD");
    let answer = c
        .admin
        .delete_profile(pb::DeleteProfileRequest {
            org_id: org.clone(),
            profile_id: "sales".into(),
            cascade: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        answer
            .removed
            .iter()
            .any(|r| r.kind == "role_profile" || r.kind == "user_profile"),
        "the answer lists who held the profile: {:?}",
        answer.removed
    );
    let r = c
        .check
        .check(check_req(&org, "bob", "Leads", "view", "L3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason_name(r.reason), "PROFILE");
    let answer = c
        .admin
        .delete_module(pb::DeleteModuleRequest {
            org_id: org.clone(),
            module_id: "Leads".into(),
            cascade: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        answer
            .removed
            .iter()
            .any(|r| r.kind == "record" && r.id == "Leads/L3"),
        "the answer lists the module's records: {:?}",
        answer.removed
    );
    let r = c
        .check
        .check(check_req(&org, "bob", "Leads", "view", "L3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason_name(r.reason), "UNKNOWN_MODULE");
    let summary = c
        .admin
        .get_organization(pb::GetOrganizationRequest {
            org_id: org.clone(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.record_count, 0);
    c.admin
        .delete_organization(pb::DeleteOrganizationRequest {
            org_id: org.clone(),
            actor: String::new(),
        })
        .await
        .unwrap();
    let e = c
        .admin
        .get_organization(pb::GetOrganizationRequest {
            org_id: org,
            consistency: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_lost_across_kill_and_restart() {
    let mut server = Server::start();
    let dir = server.take_dir();
    let store = server.store_url();
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;
    let before = export(&mut c, &org).await;
    server.kill();
    drop(c);

    let server = Server::spawn(&store, &[]);
    let mut c = server.clients().await;
    assert_eq!(export(&mut c, &org).await, before);
    assert!(allowed(&mut c, &org, "ceo", "delete", "L1").await);
    assert!(!allowed(&mut c, &org, "bob", "view", "L1").await);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_bulk_answers_in_order_and_bounds_its_size() {
    let server = Server::start();
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;
    let checks = vec![
        check_req(&org, "ann", "Leads", "edit", "L1"),
        check_req(&org, "bob", "Leads", "edit", "L1"),
        check_req(&org, "ceo", "Leads", "delete", "L2"),
        check_req(&org, "root", "Leads", "delete", "L2"),
        check_req(&org, "nobody", "Leads", "view", "L1"),
    ];
    let r = c
        .check
        .check_bulk(pb::CheckBulkRequest {
            checks: checks.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(bool, String)> = r
        .results
        .iter()
        .map(|x| (x.allowed, reason_name(x.reason)))
        .collect();
    assert_eq!(
        got,
        vec![
            (true, "OWNER".to_string()),
            (false, "INSUFFICIENT_ACCESS".to_string()),
            (true, "HIERARCHY".to_string()),
            (true, "ADMIN".to_string()),
            (false, "UNKNOWN_SUBJECT".to_string()),
        ]
    );
    let too_many = vec![check_req(&org, "ann", "Leads", "view", "L1"); 1001];
    let e = c
        .check
        .check_bulk(pb::CheckBulkRequest { checks: too_many })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("checks:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn lookups_and_filter_agree_with_check_over_grpc() {
    let server = Server::start();
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;
    // Enough records to span several pages.
    for i in 0..2500 {
        c.grant
            .set_owner(pb::SetOwnerRequest {
                org_id: org.clone(),
                module: "Leads".into(),
                record_id: format!("R{i:05}"),
                owner: Some(pb::Owner {
                    owner: Some(pb::owner::Owner::UserId(if i % 3 == 0 {
                        "bob".into()
                    } else {
                        "ann".into()
                    })),
                }),
                private: Some(i % 5 == 0),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let all_ids: Vec<String> = {
        let mut v: Vec<String> = (0..2500).map(|i| format!("R{i:05}")).collect();
        v.extend(["L1", "L2", "L3"].map(String::from));
        v
    };
    for subject in ["ann", "bob", "ceo"] {
        let mut stream = c
            .check
            .lookup_records(pb::LookupRecordsRequest {
                org_id: org.clone(),
                subject: subject.into(),
                module: "Leads".into(),
                action: "edit".into(),
                page_size: 700,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut listed = Vec::new();
        let mut pages = 0;
        while let Some(page) = stream.next().await {
            listed.extend(page.unwrap().record_ids);
            pages += 1;
        }
        let plan = c
            .check
            .filter(pb::FilterRequest {
                org_id: org.clone(),
                subject: subject.into(),
                module: "Leads".into(),
                action: "edit".into(),
                consistency: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut expected = Vec::new();
        for id in &all_ids {
            if allowed(&mut c, &org, subject, "edit", id).await {
                expected.push(id.clone());
            }
        }
        expected.sort();
        assert_eq!(listed, expected, "LookupRecords for {subject}");
        if expected.len() > 700 {
            assert!(pages > 1);
        }
        // The plan selects the same records: everything here is owned by users.
        let owners: Vec<String> = plan
            .owners
            .iter()
            .filter_map(|o| match &o.owner {
                Some(pb::owner::Owner::UserId(u)) => Some(u.clone()),
                _ => None,
            })
            .collect();
        let by_plan = plan.all
            || !owners.is_empty()
            || plan.public_non_private
            || !plan.record_ids.is_empty();
        assert_eq!(by_plan, !expected.is_empty());
    }

    // A cursor resumes after the page it came with, at the same revision.
    let mut stream = c
        .check
        .lookup_records(pb::LookupRecordsRequest {
            org_id: org.clone(),
            subject: "ceo".into(),
            module: "Leads".into(),
            action: "view".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    drop(stream);
    // A write in between does not change what the cursor continues with.
    c.grant
        .delete_record(pb::DeleteRecordRequest {
            org_id: org.clone(),
            module: "Leads".into(),
            record_id: "R02499".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut rest = c
        .check
        .lookup_records(pb::LookupRecordsRequest {
            org_id: org.clone(),
            subject: "ceo".into(),
            module: "Leads".into(),
            action: "view".into(),
            page_size: 1000,
            cursor: first.cursor.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids = first.record_ids.clone();
    while let Some(page) = rest.next().await {
        let page = page.unwrap();
        assert_eq!(page.revision, first.revision);
        ids.extend(page.record_ids);
    }
    let mut all_sorted = all_ids.clone();
    all_sorted.sort();
    assert_eq!(ids, all_sorted, "the cursor continued its own snapshot");

    // LookupSubjects agrees with Check.
    let mut s = c
        .check
        .lookup_subjects(pb::LookupSubjectsRequest {
            org_id: org.clone(),
            module: "Leads".into(),
            record_id: "L1".into(),
            action: "delete".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut users = Vec::new();
    while let Some(p) = s.next().await {
        users.extend(p.unwrap().user_ids);
    }
    assert_eq!(users, ["ann", "ceo", "root"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_changes_after_a_revision_with_checkpoints() {
    let server = Server::start();
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;
    let (_, rev) = export(&mut c, &org).await;
    let mut watch = c
        .admin
        .watch(pb::WatchRequest {
            org_id: org.clone(),
            after_revision: "2".into(),
            checkpoint_seconds: 1,
        })
        .await
        .unwrap()
        .into_inner();
    // Backlog: revisions 3.. up to the current one, in order.
    let mut seen = Vec::new();
    while seen.last().map(|r: &u64| r.to_string()) != Some(rev.clone()) {
        match watch.next().await.unwrap().unwrap().event.unwrap() {
            pb::watch_response::Event::Change(ch) => seen.push(ch.revision.parse().unwrap()),
            pb::watch_response::Event::Checkpoint(_) => {}
        }
    }
    assert_eq!(seen.first(), Some(&3));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    // A live write arrives next, then a checkpoint at the latest revision.
    let w = c
        .grant
        .delete_record(pb::DeleteRecordRequest {
            org_id: org.clone(),
            module: "Leads".into(),
            record_id: "L3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got_change = false;
    loop {
        match watch.next().await.unwrap().unwrap().event.unwrap() {
            pb::watch_response::Event::Change(ch) => {
                assert_eq!(ch.revision, w.revision);
                assert_eq!(
                    (ch.kind.as_str(), ch.id.as_str(), ch.deleted),
                    ("record", "Leads/L3", true)
                );
                got_change = true;
            }
            pb::watch_response::Event::Checkpoint(cp) => {
                if got_change {
                    assert_eq!(cp.revision, w.revision);
                    break;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn actors_are_authorized_by_wardens_own_rules() {
    let server = Server::start();
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;
    let share = |record: &str| pb::Share {
        module: "Leads".into(),
        record_id: record.into(),
        grantee: Some(pb::Grantee {
            grantee: Some(pb::grantee::Grantee::UserId("bob".into())),
        }),
        level: pb::AccessLevel::Read as i32,
    };
    // ann owns L1 (share allowed), not L2.
    c.grant
        .share(pb::ShareRequest {
            org_id: org.clone(),
            actor: "ann".into(),
            shares: vec![share("L1")],
        })
        .await
        .unwrap();
    let e = c
        .grant
        .share(pb::ShareRequest {
            org_id: org.clone(),
            actor: "ann".into(),
            shares: vec![share("L2")],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    // Administration needs is_admin.
    let put = |actor: &str| pb::PutModuleRequest {
        org_id: org.clone(),
        actor: actor.into(),
        module: Some(pb::Module {
            id: "Cases".into(),
            ..Default::default()
        }),
    };
    assert_eq!(
        c.admin.put_module(put("ann")).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    c.admin.put_module(put("root")).await.unwrap();
    // The owner of a personal group manages it.
    let group = |actor: &str, users: Vec<String>| pb::PutGroupRequest {
        org_id: org.clone(),
        actor: actor.into(),
        group: Some(pb::Group {
            group_id: "anns-friends".into(),
            kind: pb::GroupKind::Personal as i32,
            owner_id: "ann".into(),
            users,
            ..Default::default()
        }),
    };
    c.admin
        .put_group(group("ann", vec!["bob".into()]))
        .await
        .unwrap();
    assert_eq!(
        c.admin
            .put_group(group("bob", vec![]))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_carry_scopes() {
    let server = Server::start_with(&["--auth-token", "c-token=check,a-token=admin"]);
    let ch = server.channel().await;
    let with = |token: &'static str| {
        move |mut req: tonic::Request<()>| {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            Ok(req)
        }
    };
    let mut admin =
        pb::admin_service_client::AdminServiceClient::with_interceptor(ch.clone(), with("a-token"));
    admin
        .create_organization(pb::CreateOrganizationRequest {
            org_id: "o".into(),
            settings: None,
        })
        .await
        .unwrap();
    let mut check =
        pb::check_service_client::CheckServiceClient::with_interceptor(ch.clone(), with("c-token"));
    let r = check
        .check(check_req("o", "nobody", "M", "view", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed);
    let mut wrong =
        pb::admin_service_client::AdminServiceClient::with_interceptor(ch.clone(), with("c-token"));
    let e = wrong
        .create_organization(pb::CreateOrganizationRequest {
            org_id: "p".into(),
            settings: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let mut none = pb::check_service_client::CheckServiceClient::new(ch);
    let e = none
        .check(check_req("o", "nobody", "M", "view", ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_principal_in_at_most_max_orgs() {
    let server = Server::start_with(&["--max-orgs-per-principal", "1"]);
    let mut c = server.clients().await;
    for org in ["a", "b"] {
        let doc = format!(
            "organization: {org}\nroles: [{{id: r}}]\nusers: [{{id: u-{org}, role: r, principal: pat@x.example}}]\n"
        );
        let r = c
            .admin
            .import(pb::ImportRequest {
                document: doc,
                ..Default::default()
            })
            .await;
        if org == "a" {
            r.unwrap();
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.code(), tonic::Code::FailedPrecondition);
            assert!(e.message().contains("pat@x.example"));
        }
    }
    let orgs = c
        .admin
        .list_organizations(pb::ListOrganizationsRequest {
            principal: "pat@x.example".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        orgs.organizations,
        vec![pb::OrganizationRef {
            org_id: "a".into(),
            user_id: "u-a".into()
        }]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reflection_and_sigterm() {
    let mut server = Server::start();
    let ch = server.channel().await;
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut resp = reflection
        .server_reflection_info(tokio_stream::once(req))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.next().await.unwrap().unwrap();
    let Some(
        tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(
            list,
        ),
    ) = msg.message_response
    else {
        panic!("not a list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "warden.v1.CheckService",
        "warden.v1.GrantService",
        "warden.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == s), "{s} missing from {names:?}");
    }
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

/// The README's grpcurl walk-through, call for call.
#[tokio::test(flavor = "multi_thread")]
async fn readme_walk_through() {
    let server = Server::start();
    let mut c = server.clients().await;
    c.admin
        .create_organization(pb::CreateOrganizationRequest {
            org_id: "acme".into(),
            settings: None,
        })
        .await
        .unwrap();
    c.admin
        .put_module(pb::PutModuleRequest {
            org_id: "acme".into(),
            module: Some(pb::Module {
                id: "Leads".into(),
                owd: pb::Owd::Private as i32,
                fields: vec!["name".into(), "email".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    c.admin
        .put_profile(pb::PutProfileRequest {
            org_id: "acme".into(),
            profile: Some(pb::Profile {
                id: "sales".into(),
                modules: HashMap::from([(
                    "Leads".into(),
                    pb::ActionList {
                        actions: ["view", "create", "edit", "delete"]
                            .map(String::from)
                            .to_vec(),
                    },
                )]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for (id, parent) in [("manager", ""), ("rep", "manager")] {
        c.admin
            .put_role(pb::PutRoleRequest {
                org_id: "acme".into(),
                role: Some(pb::Role {
                    id: id.into(),
                    parent_id: parent.into(),
                    profile_ids: vec!["sales".into()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for (id, role) in [("mia", "manager"), ("ray", "rep")] {
        c.admin
            .put_user(pb::PutUserRequest {
                org_id: "acme".into(),
                user: Some(pb::User {
                    user_id: id.into(),
                    role_id: role.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let w = c
        .grant
        .set_owner(pb::SetOwnerRequest {
            org_id: "acme".into(),
            module: "Leads".into(),
            record_id: "L1".into(),
            owner: Some(pb::Owner {
                owner: Some(pb::owner::Owner::UserId("ray".into())),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.revision, "8");
    let mut req = check_req("acme", "mia", "Leads", "edit", "L1");
    req.explain = true;
    req.consistency = consistency_at(&w.revision);
    let r = c.check.check(req).await.unwrap().into_inner();
    assert!(r.allowed);
    assert_eq!(reason_name(r.reason), "HIERARCHY");
    assert_eq!(r.level, pb::AccessLevel::Full as i32);
    let details: Vec<&str> = r.trace.iter().map(|t| t.detail.as_str()).collect();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("an effective profile allows 'edit' on 'Leads'")),
        "{details:?}"
    );
    assert!(
        details.contains(&"'mia' (role 'manager') is above owner 'ray' (role 'rep')"),
        "{details:?}"
    );

    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/profiles-and-sharing.yaml"
    ))
    .unwrap();
    c.admin
        .import(pb::ImportRequest {
            document: doc,
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let e = c
        .admin
        .export(pb::ExportRequest {
            org_id: "sharing-demo".into(),
            format: "yaml".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    let reparsed = warden::document::parse_document(&e.document).unwrap();
    assert_eq!(reparsed.organization, "sharing-demo");
    assert_eq!(reparsed.users.len(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revision_ahead_of_the_store_is_refused_at_once_not_a_stale_answer() {
    let server = Server::start_with(&["--freshness-timeout-ms", "300"]);
    let mut c = server.clients().await;
    let org = build_org(&mut c).await;
    let mut req = check_req(&org, "ann", "Leads", "view", "L1");
    req.consistency = consistency_at("999999");
    let e = c.check.check(req.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message()
            .starts_with("consistency.at_least_as_fresh: revision 999999 is ahead"),
        "{}",
        e.message()
    );
    req.consistency = consistency_at("not-a-number");
    let e = c.check.check(req.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    req.consistency = Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    });
    assert!(c.check.check(req).await.unwrap().into_inner().allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_merges_a_document_at_start_up_and_again_on_restart() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/groups-as-owners.yaml"
    );
    let mut server = Server::start_with(&["--bootstrap", file]);
    let dir = server.take_dir();
    let store = server.store_url();
    let mut c = server.clients().await;
    let r = c
        .check
        .check(check_req(
            "groups-demo",
            "person1",
            "Events",
            "edit",
            "meeting-1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.allowed);
    assert_eq!(reason_name(r.reason), "GROUP_OWNER");
    // A record added at run time survives a restart that merges the bootstrap again.
    c.grant
        .set_owner(pb::SetOwnerRequest {
            org_id: "groups-demo".into(),
            module: "Leads".into(),
            record_id: "lead-9".into(),
            owner: Some(pb::Owner {
                owner: Some(pb::owner::Owner::UserId("person3".into())),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    server.kill();
    drop(c);
    let server = Server::spawn(&store, &["--bootstrap", file]);
    let mut c = server.clients().await;
    let r = c
        .check
        .check(check_req(
            "groups-demo",
            "person3",
            "Leads",
            "delete",
            "lead-9",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason_name(r.reason), "OWNER");
    drop(dir);
}

#[test]
fn a_bad_bootstrap_file_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "organization: x\nusers: [{id: a, rol: r}]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "error"])
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("w.db").display()))
        .arg("--bootstrap")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("users[0]") && stderr.contains("rol"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_clients_that_trust_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (ca, ca_key, csr, cert, key, ext) = (
        p("ca.pem"),
        p("ca.key"),
        p("leaf.csr"),
        p("cert.pem"),
        p("key.pem"),
        p("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<String>> = vec![
        [
            &["req", "-x509"][..],
            &ec[..],
            &[
                "-days",
                "1",
                "-subj",
                "/CN=test-ca",
                "-keyout",
                &ca_key,
                "-out",
                &ca,
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec[..],
            &["-subj", "/CN=localhost", "-keyout", &key, "-out", &csr],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = Server::start_with(&["--tls-cert", &cert, "--tls-key", &key]);
    let pem = std::fs::read(&ca).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
        .domain_name("localhost");
    let ch = tonic::transport::Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = pb::admin_service_client::AdminServiceClient::new(ch);
    let r = admin
        .create_organization(pb::CreateOrganizationRequest {
            org_id: "tls".into(),
            settings: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.revision, "1");
    // Plain text to a TLS port fails rather than being served.
    let plain = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let mut c = pb::admin_service_client::AdminServiceClient::new(ch);
        assert!(c
            .get_organization(pb::GetOrganizationRequest {
                org_id: "tls".into(),
                consistency: None
            })
            .await
            .is_err());
    }
}
