//! Writes through the engine: every refusal of SPEC section 6 changes
//! nothing, and deletes with transfer_to move ownership in one revision.

use warden::document::parse_document;
use warden::engine::model::*;
use warden::engine::{Command, Direct, Engine, Limits};

const DOC: &str = r#"
organization: w
modules: [{id: Leads, owd: PRIVATE}]
profiles: [{id: p, modules: {Leads: [view, edit, delete]}}]
roles:
  - {id: top, profiles: [p]}
  - {id: mid, parent: top, profiles: [p]}
  - {id: low, parent: mid, profiles: [p]}
shifts: [{id: s, time_zone: UTC, windows: [{days: [MON], start: "09:00", end: "17:00"}]}]
users:
  - {id: boss, role: top}
  - {id: ann, role: mid, reports_to: boss, shift: s}
  - {id: bob, role: low, reports_to: ann}
groups:
  - {id: inner, users: [bob]}
  - {id: outer, groups: [inner], leads: [ann]}
  - {id: mine, kind: PERSONAL, owner: ann, users: [bob]}
records:
  - {module: Leads, id: L1, owner: {user: ann}}
  - {module: Leads, id: L2, owner: {group: inner}}
shares:
  - {module: Leads, record: L1, grantee: {user: bob}, level: READ}
"#;

fn engine() -> Engine {
    let e = Engine::new(Direct, Limits::default());
    e.execute(
        "w",
        &Command::Import {
            document: parse_document(DOC).unwrap(),
            replace: true,
        },
    )
    .unwrap();
    e
}

fn refused(e: &Engine, command: Command, code: &str, text: &str) {
    let before = e.export("w").unwrap();
    let err = e.execute("w", &command).unwrap_err();
    assert_eq!(err.code(), code, "{command:?}: {err}");
    assert!(err.to_string().contains(text), "{command:?}: {err}");
    assert_eq!(
        e.export("w").unwrap(),
        before,
        "{command:?} changed something"
    );
}

#[test]
fn every_refusal_changes_nothing() {
    let e = engine();
    let group = |id: &str, groups: &[&str]| GroupDef {
        id: id.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..GroupDef::default()
    };
    refused(
        &e,
        Command::PutGroup(group("inner", &["outer"])),
        "FAILED_PRECONDITION",
        "cycle",
    );
    refused(
        &e,
        Command::PutGroup(group("inner", &["inner"])),
        "FAILED_PRECONDITION",
        "cycle",
    );
    let role = RoleDef {
        id: "top".into(),
        parent: Some("low".into()),
        ..RoleDef::default()
    };
    refused(
        &e,
        Command::PutRole(role),
        "FAILED_PRECONDITION",
        "role cycle",
    );
    let mut boss = e.user_view("w", "boss").unwrap().0.user;
    boss.reports_to = Some("bob".into());
    refused(
        &e,
        Command::PutUser(boss),
        "FAILED_PRECONDITION",
        "reporting cycle",
    );
    refused(
        &e,
        Command::PutUser(UserDef {
            id: "x".into(),
            role: Some("nope".into()),
            ..UserDef::default()
        }),
        "NOT_FOUND",
        "nope",
    );
    refused(
        &e,
        Command::PutUser(UserDef {
            id: "bad/id".into(),
            role: Some("top".into()),
            ..UserDef::default()
        }),
        "INVALID_ARGUMENT",
        "id",
    );
    refused(
        &e,
        Command::DeleteUser {
            id: "ann".into(),
            transfer_to: None,
            cascade: false,
        },
        "FAILED_PRECONDITION",
        "transfer_to",
    );
    refused(
        &e,
        Command::DeleteUser {
            id: "ann".into(),
            transfer_to: Some(OwnerRef::User("boss".into())),
            cascade: false,
        },
        "FAILED_PRECONDITION",
        "group_lead 'outer/ann'",
    );
    refused(
        &e,
        Command::DeleteGroup {
            id: "inner".into(),
            transfer_to: None,
            cascade: false,
        },
        "FAILED_PRECONDITION",
        "transfer_to",
    );
    refused(
        &e,
        Command::DeleteRole {
            id: "mid".into(),
            transfer_to: None,
            cascade: false,
        },
        "FAILED_PRECONDITION",
        "transfer_to",
    );
    refused(
        &e,
        Command::DeleteRole {
            id: "mid".into(),
            transfer_to: Some("low".into()),
            cascade: false,
        },
        "INVALID_ARGUMENT",
        "transfer_to",
    );
    refused(
        &e,
        Command::DeleteUser {
            id: "ann".into(),
            transfer_to: Some(OwnerRef::Group("inner".into())),
            cascade: false,
        },
        "FAILED_PRECONDITION",
        "personal groups",
    );
    for i in 1..30 {
        e.execute(
            "w",
            &Command::PutShift(ShiftDef {
                id: format!("s{i}"),
                time_zone: "UTC".into(),
                windows: vec![],
            }),
        )
        .unwrap();
    }
    let shift = ShiftDef {
        id: "s30".into(),
        time_zone: "UTC".into(),
        windows: vec![],
    };
    refused(
        &e,
        Command::PutShift(shift),
        "FAILED_PRECONDITION",
        "30 shifts",
    );
    // A bulk share with one bad entry shares nothing.
    let share = |record: &str| ShareDef {
        module: "Leads".into(),
        record: record.into(),
        grantee: Grantee::User("boss".into()),
        level: AccessLevel::Full,
    };
    refused(
        &e,
        Command::Share(vec![share("L2"), share("L9")]),
        "NOT_FOUND",
        "L9",
    );
}

#[test]
fn deletes_transfer_ownership_in_one_revision() {
    let e = engine();
    let rev = e.revision("w").unwrap();
    let delete_ann = Command::DeleteUser {
        id: "ann".into(),
        transfer_to: Some(OwnerRef::User("boss".into())),
        cascade: true,
    };
    let report = e.report("w", &e.plan("w", &delete_ann).unwrap());
    let listed = |refs: &[warden::engine::EntityRef]| {
        let mut v: Vec<String> = refs
            .iter()
            .map(|r| format!("{} {} {}", r.kind, r.id, r.to.as_deref().unwrap_or("-")))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        listed(&report.removed),
        ["group_lead outer/ann -", "user ann -"],
        "ann's lead entry goes with her"
    );
    assert_eq!(
        listed(&report.moved),
        [
            "group mine user:boss",
            "record Leads/L1 user:boss",
            "user bob reports_to:boss"
        ]
    );
    let new = e.execute("w", &delete_ann).unwrap();
    assert_eq!(new, rev + 1);
    let doc = e.export("w").unwrap().0;
    let l1 = doc.records.iter().find(|r| r.id == "L1").unwrap();
    assert_eq!(l1.owner, OwnerRef::User("boss".into()));
    let mine = doc.groups.iter().find(|g| g.id == "mine").unwrap();
    assert_eq!(mine.owner.as_deref(), Some("boss"));
    let outer = doc.groups.iter().find(|g| g.id == "outer").unwrap();
    assert!(outer.leads.is_empty());
    let bob = doc.users.iter().find(|u| u.id == "bob").unwrap();
    assert_eq!(
        bob.reports_to.as_deref(),
        Some("boss"),
        "ann's reports move to ann's manager"
    );

    e.execute(
        "w",
        &Command::DeleteGroup {
            id: "inner".into(),
            transfer_to: Some(OwnerRef::Group("outer".into())),
            cascade: true,
        },
    )
    .unwrap();
    let doc = e.export("w").unwrap().0;
    let l2 = doc.records.iter().find(|r| r.id == "L2").unwrap();
    assert_eq!(l2.owner, OwnerRef::Group("outer".into()));
    assert!(doc
        .groups
        .iter()
        .all(|g| !g.groups.contains(&"inner".to_string())));

    e.execute(
        "w",
        &Command::DeleteRole {
            id: "mid".into(),
            transfer_to: Some("top".into()),
            cascade: true,
        },
    )
    .unwrap();
    let doc = e.export("w").unwrap().0;
    let low = doc.roles.iter().find(|r| r.id == "low").unwrap();
    assert_eq!(low.parent.as_deref(), Some("top"));
}
