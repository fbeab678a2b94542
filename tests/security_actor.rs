//! Issue 7 items 1, 2, 3, 4, 7 and the attribute limits, over gRPC against
//! a real `warden serve`: each escalation attempt is refused (and changes
//! nothing: Export is identical before and after), and the legitimate
//! writes next to it are still allowed.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{check_req, Clients, Server};
use tonic::Code;
use warden::api::pb;
use warden::engine::model::OwnerRef;

const ORG: &str = "sec";

/// `secret` and `shared` are private records of `cora` (top role); `erin`
/// (sales, SAME_AND_SUBORDINATE scope) has READ_WRITE on `shared` through a
/// share, owns `E1` and owns the personal group `circle` without being in
/// it; `gwen` is a guest.
const DOC: &str = r#"
organization: sec
modules:
  - {id: Leads, owd: PUBLIC_READ, fields: [name, email]}
profiles:
  - id: rep
    modules: {Leads: [view, create, edit, delete, share, assign]}
roles:
  - {id: ceo, profiles: [rep]}
  - {id: sales, parent: ceo, profiles: [rep], assign_scope: SAME_AND_SUBORDINATE}
users:
  - {id: root, role: ceo, admin: true}
  - {id: cora, role: ceo}
  - {id: erin, role: sales}
  - {id: sam, role: sales}
  - {id: gwen, kind: GUEST, profiles: [rep]}
groups:
  - {id: circle, kind: PERSONAL, owner: erin, users: [sam]}
records:
  - {module: Leads, id: secret, owner: {user: cora}, private: true}
  - {module: Leads, id: shared, owner: {user: cora}, private: true, attributes: {region: EMEA}}
  - {module: Leads, id: E1, owner: {user: erin}}
  - {module: Leads, id: C1, owner: {group: circle}}
shares:
  - {module: Leads, record: shared, grantee: {user: erin}, level: READ_WRITE}
"#;

async fn setup() -> (Server, Clients) {
    let server = Server::start();
    let mut c = server.clients().await;
    c.admin
        .import(pb::ImportRequest {
            document: DOC.into(),
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap();
    (server, c)
}

async fn export(c: &mut Clients) -> String {
    c.admin
        .export(pb::ExportRequest {
            org_id: ORG.into(),
            format: "yaml".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .document
}

async fn allowed(c: &mut Clients, subject: &str, action: &str, record: &str) -> (bool, String) {
    let a = c
        .check
        .check(check_req(ORG, subject, "Leads", action, record))
        .await
        .unwrap()
        .into_inner();
    let reason = pb::Reason::try_from(a.reason)
        .map(|r| r.as_str_name().to_string())
        .unwrap_or_default();
    (a.allowed, reason)
}

/// The call failed with `code` and a message containing `words`.
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, words: &str) {
    match r {
        Err(s) => {
            assert_eq!(s.code(), code, "{s:?}");
            assert!(
                s.message().contains(words),
                "'{}' lacks '{words}'",
                s.message()
            );
        }
        Ok(v) => panic!("expected {code:?} naming '{words}', got {v:?}"),
    }
}

fn user(u: &str) -> Option<pb::Owner> {
    Some(pb::Owner {
        owner: Some(pb::owner::Owner::UserId(u.into())),
    })
}

fn group_owner(g: &str) -> Option<pb::Owner> {
    Some(pb::Owner {
        owner: Some(pb::owner::Owner::GroupId(g.into())),
    })
}

fn set_owner(actor: &str, record: &str) -> pb::SetOwnerRequest {
    pb::SetOwnerRequest {
        org_id: ORG.into(),
        actor: actor.into(),
        module: "Leads".into(),
        record_id: record.into(),
        ..Default::default()
    }
}

fn personal(id: &str, owner: &str, users: &[&str]) -> pb::Group {
    pb::Group {
        group_id: id.into(),
        kind: pb::GroupKind::Personal as i32,
        owner_id: owner.into(),
        users: users.iter().map(|u| u.to_string()).collect(),
        ..Default::default()
    }
}

fn put_group(actor: &str, group: pb::Group) -> pb::PutGroupRequest {
    pb::PutGroupRequest {
        org_id: ORG.into(),
        actor: actor.into(),
        group: Some(group),
    }
}

/// Item 1: a personal group with a top role's subtree and its owner as lead
/// gave the owner TEAM_LEAD over every record.
#[tokio::test(flavor = "multi_thread")]
async fn item1_personal_group_cannot_reach_beyond_listed_users() {
    let (_server, mut c) = setup().await;
    let before = export(&mut c).await;

    let mut evil = personal("pg-evil", "erin", &[]);
    evil.roles_and_subordinates = vec!["ceo".into()];
    evil.leads = vec!["erin".into()];
    refused(
        c.admin.put_group(put_group("erin", evil)).await,
        Code::InvalidArgument,
        "roles_and_subordinates",
    );
    let mut lead_only = personal("pg-evil", "erin", &["sam"]);
    lead_only.leads = vec!["erin".into()];
    refused(
        c.admin.put_group(put_group("erin", lead_only)).await,
        Code::InvalidArgument,
        "leads",
    );
    let org_group = pb::Group {
        group_id: "pg-evil".into(),
        roles_and_subordinates: vec!["ceo".into()],
        leads: vec!["erin".into()],
        ..Default::default()
    };
    refused(
        c.admin.put_group(put_group("erin", org_group)).await,
        Code::PermissionDenied,
        "IS_ADMIN",
    );
    refused(
        c.admin
            .put_group(put_group("erin", personal("circle", "cora", &["sam"])))
            .await,
        Code::PermissionDenied,
        "PERSONAL_GROUP_OWNER",
    );
    assert_eq!(export(&mut c).await, before);
    assert_eq!(
        allowed(&mut c, "erin", "edit", "secret").await,
        (false, "REASON_INSUFFICIENT_ACCESS".into())
    );

    // Its owner still manages the circle's users, guests included.
    c.admin
        .put_group(put_group(
            "erin",
            personal("circle", "erin", &["sam", "gwen"]),
        ))
        .await
        .unwrap();
    c.admin
        .put_group(put_group(
            "gwen",
            personal("gwen-circle", "gwen", &["erin"]),
        ))
        .await
        .unwrap();
    assert_ne!(export(&mut c).await, before);
}

/// Item 2: READ_WRITE on a private record made it public.
#[tokio::test(flavor = "multi_thread")]
async fn item2_read_write_cannot_clear_private() {
    let (_server, mut c) = setup().await;
    let before = export(&mut c).await;

    let mut unhide = set_owner("erin", "shared");
    unhide.owner = user("cora");
    unhide.private = Some(false);
    refused(
        c.grant.set_owner(unhide).await,
        Code::PermissionDenied,
        "CLEAR_PRIVATE",
    );
    let mut unhide = set_owner("erin", "shared");
    unhide.private = Some(false);
    refused(
        c.grant.set_owner(unhide).await,
        Code::PermissionDenied,
        "CLEAR_PRIVATE",
    );
    assert_eq!(export(&mut c).await, before);
    assert_eq!(
        allowed(&mut c, "sam", "view", "shared").await,
        (false, "REASON_INSUFFICIENT_ACCESS".into())
    );

    // READ_WRITE still edits what it may: the attributes, keeping the flag.
    let mut edit = set_owner("erin", "shared");
    edit.attributes = HashMap::from([("region".to_string(), "APAC".to_string())]);
    c.grant.set_owner(edit).await.unwrap();
    let after = export(&mut c).await;
    assert!(after.contains("region: APAC"), "{after}");
    assert_eq!(
        allowed(&mut c, "sam", "view", "shared").await,
        (false, "REASON_INSUFFICIENT_ACCESS".into())
    );
    // The owner shares at its own level.
    c.grant
        .share(pb::ShareRequest {
            org_id: ORG.into(),
            actor: "erin".into(),
            shares: vec![pb::Share {
                module: "Leads".into(),
                record_id: "E1".into(),
                grantee: Some(pb::Grantee {
                    grantee: Some(pb::grantee::Grantee::UserId("sam".into())),
                }),
                level: pb::AccessLevel::Full as i32,
            }],
        })
        .await
        .unwrap();
    assert_eq!(
        allowed(&mut c, "sam", "delete", "E1").await,
        (true, "REASON_MANUAL_SHARE".into())
    );
}

/// Item 3: re-owning without restating `private` and `attributes` cleared
/// them, for admins too.
#[tokio::test(flavor = "multi_thread")]
async fn item3_set_owner_changes_only_what_it_names() {
    let (_server, mut c) = setup().await;
    let before = export(&mut c).await;

    let mut reown = set_owner("", "shared");
    reown.owner = user("erin");
    c.grant.set_owner(reown).await.unwrap();
    let after = warden::document::parse_document(&export(&mut c).await).unwrap();
    let shared = after.records.iter().find(|r| r.id == "shared").unwrap();
    assert_eq!(shared.owner, OwnerRef::User("erin".into()));
    assert!(shared.private);
    assert_eq!(
        shared.attributes,
        BTreeMap::from([("region".to_string(), "EMEA".to_string())])
    );
    assert_eq!(
        allowed(&mut c, "sam", "view", "shared").await,
        (false, "REASON_INSUFFICIENT_ACCESS".into())
    );

    // An update_mask changes exactly what it names (private absent: false).
    let mut masked = set_owner("", "shared");
    masked.owner = user("sam");
    masked.update_mask = Some(prost_types::FieldMask {
        paths: vec!["private".into()],
    });
    c.grant.set_owner(masked).await.unwrap();
    assert_eq!(
        allowed(&mut c, "sam", "view", "shared").await,
        (true, "REASON_ORG_DEFAULT".into())
    );
    assert_eq!(
        allowed(&mut c, "erin", "delete", "shared").await,
        (true, "REASON_OWNER".into())
    );

    let before_refusals = export(&mut c).await;
    assert_ne!(before_refusals, before);
    let mut unknown = set_owner("", "shared");
    unknown.update_mask = Some(prost_types::FieldMask {
        paths: vec!["owner_id".into()],
    });
    refused(
        c.grant.set_owner(unknown).await,
        Code::InvalidArgument,
        "update_mask.paths[0]",
    );
    refused(
        c.grant.set_owner(set_owner("", "brand-new")).await,
        Code::InvalidArgument,
        "owner",
    );
    assert_eq!(export(&mut c).await, before_refusals);
}

/// Item 4: create needed only `create`, whoever the owner; a personal-group
/// owner who is not a member took the group's records by deleting it.
#[tokio::test(flavor = "multi_thread")]
// DeleteGroupRequest is growing fields (cascade); the rest stay default.
#[allow(clippy::needless_update)]
async fn item4_create_and_group_delete_respect_the_assign_scope() {
    let (_server, mut c) = setup().await;
    let before = export(&mut c).await;

    let mut above = set_owner("erin", "N1");
    above.owner = user("cora");
    refused(
        c.grant.set_owner(above).await,
        Code::PermissionDenied,
        "ASSIGN_SCOPE",
    );
    let mut for_member = set_owner("gwen", "N2");
    for_member.owner = user("erin");
    refused(
        c.grant.set_owner(for_member).await,
        Code::PermissionDenied,
        "ASSIGN_SCOPE",
    );
    refused(
        c.admin
            .delete_group(pb::DeleteGroupRequest {
                org_id: ORG.into(),
                actor: "erin".into(),
                group_id: "circle".into(),
                transfer_to: user("erin"),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "may not assign Leads/C1 to user 'erin'",
    );
    assert_eq!(export(&mut c).await, before);
    assert_eq!(
        allowed(&mut c, "erin", "delete", "C1").await,
        (false, "REASON_INSUFFICIENT_ACCESS".into())
    );

    // A user with create creates a record it owns, or one for someone in its
    // scope; a guest creates its own or a group's.
    for (actor, record, owner) in [
        ("erin", "N3", user("erin")),
        ("erin", "N4", user("sam")),
        ("gwen", "N5", user("gwen")),
        ("gwen", "N6", group_owner("circle")),
    ] {
        let mut create = set_owner(actor, record);
        create.owner = owner;
        c.grant.set_owner(create).await.unwrap();
    }
    assert_eq!(
        allowed(&mut c, "erin", "delete", "N3").await,
        (true, "REASON_OWNER".into())
    );
    // Assign within scope.
    let mut reassign = set_owner("erin", "E1");
    reassign.owner = user("sam");
    c.grant.set_owner(reassign).await.unwrap();
    assert_eq!(
        allowed(&mut c, "sam", "delete", "E1").await,
        (true, "REASON_OWNER".into())
    );
}

/// Item 7: an admin subject's Check skipped input validation.
#[tokio::test(flavor = "multi_thread")]
async fn item7_an_admins_check_is_validated_like_anyone_elses() {
    let (_server, mut c) = setup().await;
    let before = export(&mut c).await;
    for subject in ["root", "erin"] {
        refused(
            c.check
                .check(check_req(ORG, subject, "Leads", "fly", "E1"))
                .await,
            Code::InvalidArgument,
            "action",
        );
        let mut field = check_req(ORG, subject, "Leads", "view", "E1");
        field.field = "nope".into();
        refused(c.check.check(field).await, Code::InvalidArgument, "field");
        let mut assign = check_req(ORG, subject, "Leads", "assign", "E1");
        assign.assign_to = user("nobody");
        refused(
            c.check.check(assign).await,
            Code::NotFound,
            "assign_to.user_id",
        );
    }
    assert_eq!(
        allowed(&mut c, "root", "delete", "secret").await,
        (true, "REASON_ADMIN".into())
    );
    assert_eq!(export(&mut c).await, before);
}

/// Guests never lead and never hold view_all / modify_all, by any write or
/// document; admins included.
#[tokio::test(flavor = "multi_thread")]
async fn guests_never_lead_nor_read_everything() {
    let (_server, mut c) = setup().await;
    let before = export(&mut c).await;
    let team = pb::Group {
        group_id: "team".into(),
        users: vec!["sam".into()],
        leads: vec!["gwen".into()],
        ..Default::default()
    };
    refused(
        c.admin.put_group(put_group("root", team)).await,
        Code::InvalidArgument,
        "leads[0]",
    );
    let merge = |doc: &str| pb::ImportRequest {
        org_id: ORG.into(),
        document: doc.into(),
        replace: false,
        ..Default::default()
    };
    refused(
        c.admin
            .import(merge(
                "organization: sec\nprofiles:\n  - {id: rep, modules: {Leads: [view]}, view_all: [Leads]}\n",
            ))
            .await,
        Code::InvalidArgument,
        "view_all",
    );
    refused(
        c.admin
            .import(merge(
                "organization: sec\nprofiles:\n  - {id: audit, modules: {Leads: [view]}, modify_all: [Leads]}\nusers:\n  - {id: gwen, kind: GUEST, profiles: [audit]}\n",
            ))
            .await,
        Code::InvalidArgument,
        "profiles[0]",
    );
    assert_eq!(export(&mut c).await, before);
}

/// Attributes are bounded in count, key and value, and a bad key is echoed
/// short.
#[tokio::test(flavor = "multi_thread")]
async fn record_attributes_are_bounded() {
    let (_server, mut c) = setup().await;
    let before = export(&mut c).await;
    let with = |attributes: HashMap<String, String>| {
        let mut r = set_owner("", "E1");
        r.attributes = attributes;
        r
    };
    let many: HashMap<String, String> = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
    refused(
        c.grant.set_owner(with(many)).await,
        Code::InvalidArgument,
        "at most 64 attributes",
    );
    refused(
        c.grant
            .set_owner(with(HashMap::from([("a\0b".into(), "v".into())])))
            .await,
        Code::InvalidArgument,
        "attributes.a\\0b",
    );
    let long_key = "k".repeat(129);
    let r = c
        .grant
        .set_owner(with(HashMap::from([(long_key, "v".into())])))
        .await;
    refused(
        r,
        Code::InvalidArgument,
        &format!("attributes.{}…(129 bytes):", "k".repeat(64)),
    );
    refused(
        c.grant
            .set_owner(with(HashMap::from([("big".into(), "x".repeat(1025))])))
            .await,
        Code::InvalidArgument,
        "attributes.big",
    );
    assert_eq!(export(&mut c).await, before);
    let at_limit: HashMap<String, String> = (0..64)
        .map(|i| (format!("k{i}"), "x".repeat(1024)))
        .collect();
    c.grant.set_owner(with(at_limit)).await.unwrap();
}
