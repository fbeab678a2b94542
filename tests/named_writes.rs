//! Writes change only what they name (SPEC section 3a, last paragraph), over
//! gRPC against a real `warden serve`: settings are changed by mask or by the
//! fields present, never reset; a delete that others refer to is refused
//! with the list of references unless `cascade: true`, and then answers with
//! exactly what it removed and moved.

mod common;

use common::{export, Server};
use tonic::Code;
use warden::api::pb;
use warden::document::parse_document;
use warden::engine::model::{GroupDef, OwnerRef, RecordDef, UserDef};
use warden::engine::OrgDocument;

const DOC: &str = r#"
organization: nw
settings:
  hierarchy_mode: REPORTING
  enforce_shifts: false
  password_policy: {min_length: 10, require: [digit, upper], max_age_days: 90, forbid_principal: false}
modules:
  - {id: Leads, owd: PRIVATE, fields: [phone]}
  - {id: Deals, owd: PRIVATE}
profiles:
  - {id: std, modules: {Leads: [view, edit], Deals: [view]}, fields: {Leads: {phone: READ_ONLY}}}
  - {id: audit, view_all: [Deals]}
roles:
  - {id: top, profiles: [std]}
  - {id: rep, parent: top, profiles: [std]}
  - {id: spare, parent: top}
shifts:
  - {id: day, time_zone: UTC, windows: [{days: [MON], start: "09:00", end: "17:00"}]}
users:
  - {id: ceo, role: top}
  - {id: ann, role: rep, reports_to: ceo, shift: day, profiles: [audit]}
  - {id: bob, role: rep, reports_to: ann}
groups:
  - {id: team, users: [ann, bob], roles: [rep], leads: [ann]}
  - {id: outer, groups: [team]}
records:
  - {module: Leads, id: L1, owner: {user: ann}}
  - {module: Leads, id: L2, owner: {group: team}}
  - {module: Deals, id: D1, owner: {user: bob}}
shares:
  - {module: Leads, record: L1, grantee: {user: bob}, level: READ}
  - {module: Leads, record: L2, grantee: {user: ann}, level: READ_WRITE}
  - {module: Deals, record: D1, grantee: {group: team}, level: READ}
  - {module: Deals, record: D1, grantee: {role: rep}, level: READ}
sharing_rules:
  - {id: rep-to-top, module: Leads, from: {role: rep}, to: {role: top}, access: READ}
  - {id: team-to-top, module: Deals, from: {group: team}, to: {role_and_subordinates: top}, access: READ}
"#;

/// Imports DOC as organization `org`.
async fn import(c: &mut common::Clients, org: &str) {
    c.admin
        .import(pb::ImportRequest {
            org_id: org.into(),
            document: DOC.replace("organization: nw", &format!("organization: {org}")),
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn exported(c: &mut common::Clients, org: &str) -> OrgDocument {
    parse_document(&export(c, org).await.0).unwrap()
}

async fn settings(c: &mut common::Clients, org: &str) -> pb::Settings {
    c.admin
        .get_organization(pb::GetOrganizationRequest {
            org_id: org.into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap()
}

/// The password policy DOC sets, as GetOrganization answers it.
fn doc_policy() -> pb::PasswordPolicy {
    pb::PasswordPolicy {
        min_length: Some(10),
        require: vec![pb::CharClass::Digit as i32, pb::CharClass::Upper as i32],
        max_age_days: Some(90),
        forbid_principal: Some(false),
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

/// Entity references as sorted "kind id" or "kind id → to" lines.
fn lines(refs: &[pb::EntityRef]) -> Vec<String> {
    let mut v: Vec<String> = refs
        .iter()
        .map(|r| {
            if r.to.is_empty() {
                format!("{} {}", r.kind, r.id)
            } else {
                format!("{} {} → {}", r.kind, r.id, r.to)
            }
        })
        .collect();
    v.sort();
    v
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn update_settings_changes_only_the_fields_present() {
    let server = Server::start();
    let mut c = server.clients().await;
    import(&mut c, "present").await;

    c.admin
        .update_settings(pb::UpdateSettingsRequest {
            org_id: "present".into(),
            settings: Some(pb::Settings {
                enforce_shifts: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let s = settings(&mut c, "present").await;
    assert_eq!(s.enforce_shifts, Some(true));
    assert_eq!(
        s.hierarchy_mode,
        Some(pb::HierarchyMode::Reporting as i32),
        "the hierarchy mode was not named and stays"
    );
    assert_eq!(
        s.password_policy,
        Some(doc_policy()),
        "the password policy was not named and stays"
    );

    // A policy given in part is merged rule by rule.
    c.admin
        .update_settings(pb::UpdateSettingsRequest {
            org_id: "present".into(),
            settings: Some(pb::Settings {
                password_policy: Some(pb::PasswordPolicy {
                    min_length: Some(14),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let s = settings(&mut c, "present").await;
    assert_eq!(
        s.password_policy,
        Some(pb::PasswordPolicy {
            min_length: Some(14),
            ..doc_policy()
        })
    );
    assert_eq!(s.enforce_shifts, Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn update_settings_with_a_mask_changes_only_the_masked_fields() {
    let server = Server::start();
    let mut c = server.clients().await;
    import(&mut c, "masked").await;
    let given = pb::Settings {
        hierarchy_mode: Some(pb::HierarchyMode::Role as i32),
        enforce_shifts: Some(true),
        password_policy: Some(pb::PasswordPolicy {
            min_length: Some(4),
            max_age_days: Some(7),
            ..Default::default()
        }),
    };
    c.admin
        .update_settings(pb::UpdateSettingsRequest {
            org_id: "masked".into(),
            settings: Some(given.clone()),
            update_mask: mask(&["hierarchy_mode", "password_policy.min_length"]),
            ..Default::default()
        })
        .await
        .unwrap();
    let s = settings(&mut c, "masked").await;
    assert_eq!(s.hierarchy_mode, Some(pb::HierarchyMode::Role as i32));
    assert_eq!(
        s.enforce_shifts,
        Some(false),
        "enforce_shifts is not masked"
    );
    assert_eq!(
        s.password_policy,
        Some(pb::PasswordPolicy {
            min_length: Some(4),
            ..doc_policy()
        }),
        "only min_length of the policy is masked"
    );

    // A masked field left unset takes its default: the mask clears the policy.
    c.admin
        .update_settings(pb::UpdateSettingsRequest {
            org_id: "masked".into(),
            settings: None,
            update_mask: mask(&["password_policy"]),
            ..Default::default()
        })
        .await
        .unwrap();
    let s = settings(&mut c, "masked").await;
    assert_eq!(s.password_policy, None);
    assert_eq!(s.hierarchy_mode, Some(pb::HierarchyMode::Role as i32));

    // An unknown path is refused, naming update_mask, and changes nothing.
    let before = export(&mut c, "masked").await;
    let e = c
        .admin
        .update_settings(pb::UpdateSettingsRequest {
            org_id: "masked".into(),
            settings: Some(given),
            update_mask: mask(&["enforce_shifts", "password_policy.colour"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("update_mask.paths[1]"),
        "{}",
        e.message()
    );
    assert_eq!(export(&mut c, "masked").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_settings_naming_nothing_is_refused_never_a_reset() {
    let server = Server::start();
    let mut c = server.clients().await;
    import(&mut c, "nothing").await;
    let before = export(&mut c, "nothing").await;
    for settings in [None, Some(pb::Settings::default())] {
        let e = c
            .admin
            .update_settings(pb::UpdateSettingsRequest {
                org_id: "nothing".into(),
                settings,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.message(), "settings: name at least one setting to change");
        assert_eq!(export(&mut c, "nothing").await, before);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_import_with_partial_settings_keeps_the_others() {
    let server = Server::start();
    let mut c = server.clients().await;
    import(&mut c, "merge").await;
    c.admin
        .import(pb::ImportRequest {
            org_id: "merge".into(),
            document: "organization: merge\nsettings: {enforce_shifts: true, password_policy: {min_length: 12}}\n".into(),
            replace: false,
            ..Default::default()
        })
        .await
        .unwrap();
    let s = settings(&mut c, "merge").await;
    assert_eq!(s.enforce_shifts, Some(true));
    assert_eq!(s.hierarchy_mode, Some(pb::HierarchyMode::Reporting as i32));
    assert_eq!(
        s.password_policy,
        Some(pb::PasswordPolicy {
            min_length: Some(12),
            ..doc_policy()
        })
    );

    // An unknown setting is still refused, and changes nothing.
    let before = export(&mut c, "merge").await;
    let e = c
        .admin
        .import(pb::ImportRequest {
            org_id: "merge".into(),
            document: "organization: merge\nsettings: {enforce_shift: true}\n".into(),
            replace: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert_eq!(export(&mut c, "merge").await, before);

    // Replace keeps its meaning: what the document leaves out takes its default.
    c.admin
        .import(pb::ImportRequest {
            org_id: "merge".into(),
            document: "organization: merge\nsettings: {enforce_shifts: true}\n".into(),
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let s = settings(&mut c, "merge").await;
    assert_eq!(s.enforce_shifts, Some(true));
    assert_eq!(s.hierarchy_mode, Some(pb::HierarchyMode::Role as i32));
    assert_eq!(s.password_policy, None);
}

/// One delete of DOC's entities: refused without cascade (listing
/// `references`), then carried out with cascade, answering `removed` and
/// `moved` exactly.
struct Case {
    org: &'static str,
    removed: Vec<String>,
    moved: Vec<String>,
}

async fn refused_then_cascaded<F, Fut>(c: &mut common::Clients, case: Case, mut delete: F)
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<pb::WriteResponse>, tonic::Status>>,
{
    import(c, case.org).await;
    let before = export(c, case.org).await;
    let e = delete(false).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    // The refusal names every reference (everything cascade removes but the
    // entity, which it names first) and counts them.
    for line in &case.removed {
        let (kind, id) = line.split_once(' ').unwrap();
        let named = format!("{kind} '{id}'");
        assert!(
            e.message().contains(&named),
            "{}: the refusal names {named}: {}",
            case.org,
            e.message()
        );
    }
    let count = format!("referred to by {} entries", case.removed.len() - 1);
    assert!(e.message().contains(&count), "{}", e.message());
    assert!(e.message().contains("cascade: true"), "{}", e.message());
    assert_eq!(
        export(c, case.org).await,
        before,
        "{}: a refused delete changes nothing",
        case.org
    );

    let answer = delete(true).await.unwrap().into_inner();
    assert_eq!(
        lines(&answer.removed),
        case.removed,
        "{}: removed",
        case.org
    );
    assert_eq!(lines(&answer.moved), case.moved, "{}: moved", case.org);
    assert_ne!(export(c, case.org).await.1, before.1);
}

fn user_owner(id: &str) -> Option<pb::Owner> {
    Some(pb::Owner {
        owner: Some(pb::owner::Owner::UserId(id.into())),
    })
}

fn group<'a>(doc: &'a OrgDocument, id: &str) -> &'a GroupDef {
    doc.groups.iter().find(|g| g.id == id).unwrap()
}

fn user<'a>(doc: &'a OrgDocument, id: &str) -> &'a UserDef {
    doc.users.iter().find(|u| u.id == id).unwrap()
}

fn record<'a>(doc: &'a OrgDocument, module: &str, id: &str) -> Option<&'a RecordDef> {
    doc.records
        .iter()
        .find(|r| r.module == module && r.id == id)
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_role_with_references_needs_cascade_and_lists_them() {
    let server = Server::start();
    let mut c = server.clients().await;
    let case = Case {
        org: "del-role",
        removed: sorted(&[
            "group_member team/roles/rep",
            "share Deals/D1/role:rep",
            "sharing_rule rep-to-top",
            "role rep",
        ]),
        moved: sorted(&["user ann → role:top", "user bob → role:top"]),
    };
    let admin = c.admin.clone();
    refused_then_cascaded(&mut c, case, |cascade| {
        let mut admin = admin.clone();
        async move {
            admin
                .delete_role(pb::DeleteRoleRequest {
                    org_id: "del-role".into(),
                    role_id: "rep".into(),
                    transfer_to: "top".into(),
                    cascade,
                    ..Default::default()
                })
                .await
        }
    })
    .await;
    let doc = exported(&mut c, "del-role").await;
    assert!(doc.roles.iter().all(|r| r.id != "rep"));
    assert!(group(&doc, "team").roles.is_empty());
    assert!(doc.sharing_rules.iter().all(|r| r.id != "rep-to-top"));
    assert_eq!(user(&doc, "bob").role.as_deref(), Some("top"));
    assert_eq!(doc.shares.len(), 3, "only the share to the role went");

    // A role nothing refers to goes without cascade, answering itself.
    let answer = c
        .admin
        .delete_role(pb::DeleteRoleRequest {
            org_id: "del-role".into(),
            role_id: "spare".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lines(&answer.removed), ["role spare"]);
    assert!(answer.moved.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_group_with_references_needs_cascade_and_lists_them() {
    let server = Server::start();
    let mut c = server.clients().await;
    let case = Case {
        org: "del-group",
        removed: sorted(&[
            "group_member outer/groups/team",
            "share Deals/D1/group:team",
            "sharing_rule team-to-top",
            "group team",
        ]),
        moved: sorted(&["record Leads/L2 → user:ceo"]),
    };
    let admin = c.admin.clone();
    refused_then_cascaded(&mut c, case, |cascade| {
        let mut admin = admin.clone();
        async move {
            admin
                .delete_group(pb::DeleteGroupRequest {
                    org_id: "del-group".into(),
                    group_id: "team".into(),
                    transfer_to: user_owner("ceo"),
                    cascade,
                    ..Default::default()
                })
                .await
        }
    })
    .await;
    let doc = exported(&mut c, "del-group").await;
    assert!(doc.groups.iter().all(|g| g.id != "team"));
    assert!(group(&doc, "outer").groups.is_empty());
    assert_eq!(
        record(&doc, "Leads", "L2").map(|r| &r.owner),
        Some(&OwnerRef::User("ceo".into()))
    );
    assert!(doc.sharing_rules.iter().all(|r| r.id != "team-to-top"));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_user_with_references_needs_cascade_and_lists_them() {
    let server = Server::start();
    let mut c = server.clients().await;
    let case = Case {
        org: "del-user",
        removed: sorted(&[
            "group_member team/users/ann",
            "group_lead team/ann",
            "share Leads/L2/user:ann",
            "user ann",
        ]),
        moved: sorted(&["record Leads/L1 → user:ceo", "user bob → reports_to:ceo"]),
    };
    let admin = c.admin.clone();
    refused_then_cascaded(&mut c, case, |cascade| {
        let mut admin = admin.clone();
        async move {
            admin
                .delete_user(pb::DeleteUserRequest {
                    org_id: "del-user".into(),
                    user_id: "ann".into(),
                    transfer_to: user_owner("ceo"),
                    cascade,
                    ..Default::default()
                })
                .await
        }
    })
    .await;
    let doc = exported(&mut c, "del-user").await;
    assert!(doc.users.iter().all(|u| u.id != "ann"));
    let team = group(&doc, "team");
    assert_eq!(team.users, ["bob"]);
    assert!(team.leads.is_empty());
    assert_eq!(user(&doc, "bob").reports_to.as_deref(), Some("ceo"));
    assert_eq!(
        record(&doc, "Leads", "L1").map(|r| &r.owner),
        Some(&OwnerRef::User("ceo".into()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_module_with_references_needs_cascade_and_lists_them() {
    let server = Server::start();
    let mut c = server.clients().await;
    let case = Case {
        org: "del-module",
        removed: sorted(&[
            "profile_entry std/modules/Deals",
            "profile_entry audit/view_all/Deals",
            "sharing_rule team-to-top",
            "share Deals/D1/group:team",
            "share Deals/D1/role:rep",
            "record Deals/D1",
            "module Deals",
        ]),
        moved: vec![],
    };
    let admin = c.admin.clone();
    refused_then_cascaded(&mut c, case, |cascade| {
        let mut admin = admin.clone();
        async move {
            admin
                .delete_module(pb::DeleteModuleRequest {
                    org_id: "del-module".into(),
                    module_id: "Deals".into(),
                    cascade,
                    ..Default::default()
                })
                .await
        }
    })
    .await;
    let doc = exported(&mut c, "del-module").await;
    assert!(doc.modules.iter().all(|m| m.id != "Deals"));
    assert!(record(&doc, "Deals", "D1").is_none());
    assert!(doc.shares.iter().all(|s| s.module != "Deals"));
    assert!(doc
        .profiles
        .iter()
        .all(|p| !p.modules.contains_key("Deals") && !p.view_all.contains(&"Deals".into())));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_profile_with_references_needs_cascade_and_lists_them() {
    let server = Server::start();
    let mut c = server.clients().await;
    let case = Case {
        org: "del-profile",
        removed: sorted(&[
            "role_profile top/std",
            "role_profile rep/std",
            "profile std",
        ]),
        moved: vec![],
    };
    let admin = c.admin.clone();
    refused_then_cascaded(&mut c, case, |cascade| {
        let mut admin = admin.clone();
        async move {
            admin
                .delete_profile(pb::DeleteProfileRequest {
                    org_id: "del-profile".into(),
                    profile_id: "std".into(),
                    cascade,
                    ..Default::default()
                })
                .await
        }
    })
    .await;
    let doc = exported(&mut c, "del-profile").await;
    assert!(doc.profiles.iter().all(|p| p.id != "std"));
    assert!(doc.roles.iter().all(|r| r.profiles.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_shift_with_references_needs_cascade_and_lists_them() {
    let server = Server::start();
    let mut c = server.clients().await;
    let case = Case {
        org: "del-shift",
        removed: sorted(&["user_shift ann/day", "shift day"]),
        moved: vec![],
    };
    let admin = c.admin.clone();
    refused_then_cascaded(&mut c, case, |cascade| {
        let mut admin = admin.clone();
        async move {
            admin
                .delete_shift(pb::DeleteShiftRequest {
                    org_id: "del-shift".into(),
                    shift_id: "day".into(),
                    cascade,
                    ..Default::default()
                })
                .await
        }
    })
    .await;
    let doc = exported(&mut c, "del-shift").await;
    assert!(doc.shifts.is_empty());
    assert_eq!(user(&doc, "ann").shift, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_record_takes_its_shares_and_says_so() {
    let server = Server::start();
    let mut c = server.clients().await;
    import(&mut c, "del-record").await;
    let answer = c
        .grant
        .delete_record(pb::DeleteRecordRequest {
            org_id: "del-record".into(),
            module: "Leads".into(),
            record_id: "L1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        lines(&answer.removed),
        sorted(&["share Leads/L1/user:bob", "record Leads/L1"])
    );
    let doc = exported(&mut c, "del-record").await;
    assert!(record(&doc, "Leads", "L1").is_none());
    assert!(doc.shares.iter().all(|s| s.record != "L1"));

    // Unshare answers the shares it removed, and nothing for one that was not there.
    let share = |record: &str, user: &str| pb::Share {
        module: "Leads".into(),
        record_id: record.into(),
        grantee: Some(pb::Grantee {
            grantee: Some(pb::grantee::Grantee::UserId(user.into())),
        }),
        level: pb::AccessLevel::Read as i32,
    };
    let answer = c
        .grant
        .unshare(pb::UnshareRequest {
            org_id: "del-record".into(),
            shares: vec![share("L2", "ann"), share("L2", "bob")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lines(&answer.removed), ["share Leads/L2/user:ann"]);

    // Writes that remove nothing answer with nothing.
    let answer = c
        .admin
        .update_settings(pb::UpdateSettingsRequest {
            org_id: "del-record".into(),
            settings: Some(pb::Settings {
                enforce_shifts: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.removed.is_empty() && answer.moved.is_empty());
}
