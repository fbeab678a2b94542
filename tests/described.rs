//! Records described in the request instead of stored: on generated
//! organizations every answer equals the stored record's, and over gRPC
//! Check, CheckBulk and CheckFields take a description, which wins over a
//! stored record of the same id while that id's manual shares still apply.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{check_req, Server};
use proptest::prelude::*;
use tonic::Code;
use warden::api::pb;
use warden::engine::model::{HierarchyMode, OwnerRef, RecordDef, RecordDescription, Settings};
use warden::engine::{CheckRequest, Command, Direct, Engine, FieldsQuery, Limits, OrgDocument};
use warden::generate::{generate, Params};

const ORG: &str = "gen";
const ACTIONS: [&str; 4] = ["view", "edit", "delete", "share"];

fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

/// A small generated organization of every sort of record, rule and share.
fn organization(seed: u64) -> OrgDocument {
    let params = Params {
        organization: ORG.into(),
        seed,
        users: 16,
        guest_share: 0.15,
        inactive_share: 0.05,
        roles: 6,
        role_depth: 3,
        groups: 5,
        group_depth: 2,
        sharing_rules: 8,
        criteria_share: 0.4,
        modules: 2,
        records: 30,
        private_share: 0.25,
        group_owned_share: 0.25,
        attributed_share: 0.5,
        manual_shares: 12,
    };
    let mut doc = generate(&params).unwrap().document;
    let mode = if seed % 2 == 0 {
        HierarchyMode::Role
    } else {
        HierarchyMode::Reporting
    };
    doc.settings = Some(
        Settings {
            hierarchy_mode: mode,
            ..Settings::default()
        }
        .into(),
    );
    doc
}

fn engine(doc: &OrgDocument) -> Engine {
    let e = Engine::new(Direct, Limits::default());
    e.execute(
        ORG,
        &Command::Import {
            document: doc.clone(),
            replace: true,
        },
    )
    .unwrap_or_else(|err| panic!("generated document refused: {err}"));
    e
}

fn description(r: &RecordDef) -> RecordDescription {
    RecordDescription {
        owner: r.owner.clone(),
        private: r.private,
        attributes: r.attributes.clone(),
    }
}

/// Every record stored with other facts than its own (another owner, the
/// other private flag, other attributes), its shares kept.
fn misstated(doc: &OrgDocument) -> OrgDocument {
    let users: Vec<&str> = doc.users.iter().map(|u| u.id.as_str()).collect();
    let mut out = doc.clone();
    for (i, r) in out.records.iter_mut().enumerate() {
        r.owner = OwnerRef::User(users[i % users.len()].to_string());
        r.private = !r.private;
        r.attributes = BTreeMap::from([("region".to_string(), "nowhere".to_string())]);
    }
    out
}

fn ask(subject: &str, r: &RecordDef, action: &str, d: Option<RecordDescription>) -> CheckRequest {
    CheckRequest {
        subject: subject.into(),
        module: r.module.clone().into(),
        action: action.into(),
        record: Some(r.id.clone().into()),
        described: d,
        ..CheckRequest::default()
    }
}

fn answer(e: &Engine, req: &CheckRequest) -> (bool, &'static str, &'static str) {
    let d = e.check(ORG, req, now()).unwrap().0;
    (d.allowed, d.reason.as_str(), d.level.as_str())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Stored versus described: the same answer, reason and level for every
    /// check, through every path of step 7; with the record absent when it
    /// has no shares, and with a misstated stored record (whose shares are
    /// its id's) when it has.
    #[test]
    fn a_described_record_is_decided_as_the_stored_one(seed in any::<u64>()) {
        let doc = organization(seed);
        let stored = engine(&doc);
        let absent = engine(&OrgDocument { records: Vec::new(), shares: Vec::new(), ..doc.clone() });
        let other = engine(&misstated(&doc));
        for r in &doc.records {
            let shared = doc.shares.iter().any(|s| s.module == r.module && s.record == r.id);
            for u in &doc.users {
                for a in ACTIONS {
                    let want = answer(&stored, &ask(&u.id, r, a, None));
                    let over = answer(&other, &ask(&u.id, r, a, Some(description(r))));
                    prop_assert_eq!(over, want, "over a misstated record: {} {} {}", u.id, a, r.id);
                    if !shared {
                        let alone = answer(&absent, &ask(&u.id, r, a, Some(description(r))));
                        prop_assert_eq!(alone, want, "absent record: {} {} {}", u.id, a, r.id);
                    }
                }
                let d = description(r);
                let q = FieldsQuery { subject: &u.id, module: &r.module, record: Some(&r.id), ..FieldsQuery::default() };
                let fields = stored.check_fields(ORG, &q, now()).unwrap().0;
                let q = FieldsQuery { described: Some(&d), ..q };
                let described = other.check_fields(ORG, &q, now()).unwrap().0;
                prop_assert_eq!(described, fields, "CheckFields {} {}", u.id, r.id);
            }
        }
    }
}

const DOC: &str = r#"
organization: acme
modules:
  - {id: Leads, owd: PRIVATE, fields: [name, email]}
profiles:
  - id: rep
    modules: {Leads: [view, create, edit, delete, share]}
    fields: {Leads: {email: READ_ONLY}}
roles:
  - {id: boss, profiles: [rep]}
  - {id: sales, parent: boss, profiles: [rep]}
users:
  - {id: ann, role: sales}
  - {id: ray, role: sales}
  - {id: mia, role: boss}
  - {id: sue, role: sales}
groups:
  - {id: east, users: [sue]}
records:
  - {module: Leads, id: L1, owner: {user: ann}}
shares:
  - {module: Leads, record: L1, grantee: {group: east}, level: READ}
"#;

async fn server() -> (Server, common::Clients) {
    let s = Server::start();
    let mut c = s.clients().await;
    c.admin
        .import(pb::ImportRequest {
            document: DOC.into(),
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap();
    (s, c)
}

fn described(owner: pb::owner::Owner) -> pb::RecordDescription {
    pb::RecordDescription {
        owner: Some(pb::Owner { owner: Some(owner) }),
        ..Default::default()
    }
}

fn user(id: &str) -> pb::owner::Owner {
    pb::owner::Owner::UserId(id.into())
}

fn with(mut r: pb::CheckRequest, d: pb::RecordDescription) -> pb::CheckRequest {
    r.record = Some(d);
    r
}

#[tokio::test]
async fn check_decides_a_record_that_is_not_stored_and_says_so() {
    let (_s, mut c) = server().await;
    let unknown = c
        .check
        .check(check_req("acme", "ray", "Leads", "delete", "L7"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.reason(), pb::Reason::UnknownRecord);
    let mut req = with(
        check_req("acme", "ray", "Leads", "delete", "L7"),
        described(user("ray")),
    );
    req.explain = true;
    let r = c.check.check(req).await.unwrap().into_inner();
    assert!(r.allowed);
    assert_eq!(r.reason(), pb::Reason::Owner);
    assert_eq!(r.level(), pb::AccessLevel::Full);
    assert!(
        r.trace
            .iter()
            .any(|t| t.detail.contains("'L7'") && t.detail.contains("described in the request")),
        "{:?}",
        r.trace
    );
    // Hierarchy applies to the description: mia's role is above ray's.
    let r = c
        .check
        .check(with(
            check_req("acme", "mia", "Leads", "edit", "L7"),
            described(user("ray")),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.allowed, r.reason()), (true, pb::Reason::Hierarchy));
}

#[tokio::test]
async fn check_bulk_takes_a_description_per_check() {
    let (_s, mut c) = server().await;
    let checks = vec![
        with(
            check_req("acme", "ann", "Leads", "view", "L8"),
            described(user("ann")),
        ),
        with(
            check_req("acme", "ray", "Leads", "view", "L8"),
            described(user("ann")),
        ),
        check_req("acme", "ann", "Leads", "view", "L8"),
        check_req("acme", "ann", "Leads", "view", "L1"),
    ];
    let results = c
        .check
        .check_bulk(pb::CheckBulkRequest { checks })
        .await
        .unwrap()
        .into_inner()
        .results;
    let got: Vec<(bool, pb::Reason)> = results.iter().map(|r| (r.allowed, r.reason())).collect();
    assert_eq!(
        got,
        [
            (true, pb::Reason::Owner),
            (false, pb::Reason::InsufficientAccess),
            (false, pb::Reason::UnknownRecord),
            (true, pb::Reason::Owner),
        ]
    );
}

#[tokio::test]
async fn check_fields_caps_fields_by_the_described_record() {
    let (_s, mut c) = server().await;
    let fields = |record: &str, d: Option<pb::RecordDescription>| pb::CheckFieldsRequest {
        org_id: "acme".into(),
        subject: "ray".into(),
        module: "Leads".into(),
        record_id: record.into(),
        record: d,
        ..Default::default()
    };
    let own = c
        .check
        .check_fields(fields("L9", Some(described(user("ray")))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.record_level(), pb::AccessLevel::Full);
    let levels: Vec<pb::FieldLevel> = own.fields.iter().map(|f| f.level()).collect();
    assert_eq!(levels, [pb::FieldLevel::Editable, pb::FieldLevel::ReadOnly]);
    let other = c
        .check
        .check_fields(fields("L9", Some(described(user("ann")))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.record_level(), pb::AccessLevel::None);
    assert!(other
        .fields
        .iter()
        .all(|f| f.level() == pb::FieldLevel::Hidden));
    // Without the description the record is unknown.
    let err = c.check.check_fields(fields("L9", None)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // A description needs the id it describes.
    let err = c
        .check
        .check_fields(fields("", Some(described(user("ray")))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("record_id"), "{}", err.message());
}

#[tokio::test]
async fn a_description_wins_over_the_stored_record_and_its_shares_apply() {
    let (_s, c) = server().await;
    let ask = |subject: &str, action: &str, d: Option<pb::RecordDescription>| {
        let mut r = check_req("acme", subject, "Leads", action, "L1");
        r.record = d;
        r
    };
    let check = |r: pb::CheckRequest| {
        let mut client = c.check.clone();
        async move {
            let r = client.check(r).await.unwrap().into_inner();
            (r.allowed, r.reason())
        }
    };
    // Stored: ann owns L1.
    assert_eq!(
        check(ask("ann", "delete", None)).await,
        (true, pb::Reason::Owner)
    );
    // Described as ray's: ray owns it for this check, ann does not.
    assert_eq!(
        check(ask("ray", "delete", Some(described(user("ray"))))).await,
        (true, pb::Reason::Owner)
    );
    assert_eq!(
        check(ask("ann", "view", Some(described(user("ray"))))).await,
        (false, pb::Reason::InsufficientAccess)
    );
    // The share of L1 to group east (sue) still applies, even private.
    let mut private = described(user("ray"));
    private.private = true;
    assert_eq!(
        check(ask("sue", "view", Some(private.clone()))).await,
        (true, pb::Reason::ManualShare)
    );
    assert_eq!(
        check(ask("sue", "edit", Some(private))).await,
        (false, pb::Reason::InsufficientAccess)
    );
    // The stored record is untouched by the checks.
    assert_eq!(
        check(ask("ann", "delete", None)).await,
        (true, pb::Reason::Owner)
    );
}

#[tokio::test]
async fn an_owner_the_organization_does_not_have_is_bad_input() {
    let (_s, mut c) = server().await;
    for subject in ["ann", "nobody"] {
        let err = c
            .check
            .check(with(
                check_req("acme", subject, "Leads", "view", "L5"),
                described(user("ghost")),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().contains("record.owner.user_id"),
            "{}",
            err.message()
        );
    }
    let err = c
        .check
        .check(with(
            check_req("acme", "ann", "Leads", "view", "L5"),
            described(pb::owner::Owner::GroupId("ghosts".into())),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("record.owner.group_id"),
        "{}",
        err.message()
    );
    // No owner at all, and no record id.
    let err = c
        .check
        .check(with(
            check_req("acme", "ann", "Leads", "view", "L5"),
            pb::RecordDescription::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("record.owner"), "{}", err.message());
    let err = c
        .check
        .check(with(
            check_req("acme", "ann", "Leads", "view", ""),
            described(user("ann")),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("record_id"), "{}", err.message());
    // Attributes keep the limits of stored records.
    let mut bad = described(user("ann"));
    bad.attributes.insert("no spaces".into(), "x".into());
    let err = c
        .check
        .check(with(check_req("acme", "ann", "Leads", "view", "L5"), bad))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("record.attributes"),
        "{}",
        err.message()
    );
}
