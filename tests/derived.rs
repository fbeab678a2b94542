//! CheckFields on the shared profiles-and-sharing scenario: each field's
//! level from the union of profiles, capped by the record access.

use chrono::Utc;
use warden::document::parse_scenario;
use warden::engine::model::{AccessLevel, FieldLevel, Reason};
use warden::engine::{Command, Direct, Engine, FieldsQuery, Limits};

fn engine() -> Engine {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/profiles-and-sharing.yaml"
    ))
    .unwrap();
    let e = Engine::new(Direct, Limits::default());
    let document = parse_scenario(&text).unwrap().document;
    e.execute(
        "sharing-demo",
        &Command::Import {
            document,
            replace: true,
        },
    )
    .unwrap();
    e
}

fn fq<'a>(subject: &'a str, module: &'a str, record: Option<&'a str>) -> FieldsQuery<'a> {
    FieldsQuery {
        subject,
        module,
        record,
        ..FieldsQuery::default()
    }
}

fn fields(
    e: &Engine,
    subject: &str,
    record: Option<&str>,
) -> (Vec<(String, FieldLevel)>, AccessLevel) {
    let (a, _) = e
        .check_fields("sharing-demo", &fq(subject, "Accounts", record), Utc::now())
        .unwrap();
    (a.fields, a.record_level)
}

fn levels(v: &[(String, FieldLevel)]) -> Vec<FieldLevel> {
    v.iter().map(|(_, l)| *l).collect()
}

#[test]
fn fields_take_the_union_of_profiles_capped_by_record_access() {
    use FieldLevel::*;
    let e = engine();
    // bo: sales-rep hides bank_account, b2b shows it read-only; bo owns acc-bo.
    let (f, level) = fields(&e, "bo", Some("acc-bo"));
    assert_eq!(
        f.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["name", "phone", "bank_account"]
    );
    assert_eq!(levels(&f), [Editable, Editable, ReadOnly]);
    assert_eq!(level, AccessLevel::Full);
    // sue reads acc-east through a sharing rule: at most READ_ONLY.
    let (f, level) = fields(&e, "sue", Some("acc-east"));
    assert_eq!(levels(&f), [ReadOnly, ReadOnly, Hidden]);
    assert_eq!(level, AccessLevel::Read);
    // sue has no access to acc-west: everything hidden.
    let (f, level) = fields(&e, "sue", Some("acc-west"));
    assert_eq!(levels(&f), [Hidden, Hidden, Hidden]);
    assert_eq!(level, AccessLevel::None);
    // Without a record: the profiles alone.
    let (f, _) = fields(&e, "wes", None);
    assert_eq!(levels(&f), [Editable, Editable, Hidden]);
    // An unknown subject sees nothing.
    let (f, _) = fields(&e, "nobody", None);
    assert_eq!(levels(&f), [Hidden, Hidden, Hidden]);
    // Unknown module or record: NOT_FOUND.
    let err = e
        .check_fields("sharing-demo", &fq("bo", "Nope", None), Utc::now())
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
    let err = e
        .check_fields(
            "sharing-demo",
            &fq("bo", "Accounts", Some("nope")),
            Utc::now(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
}

#[test]
fn explain_names_the_group_rule_and_share_behind_each_path() {
    let e = engine();
    let check = |subject: &str, action: &str, record: &str| {
        let req = warden::engine::CheckRequest {
            subject: subject.into(),
            module: if record.starts_with("ticket") {
                "HelpDesk"
            } else {
                "Accounts"
            }
            .into(),
            action: action.into(),
            record: Some(record.into()),
            explain: true,
            ..Default::default()
        };
        e.check("sharing-demo", &req, Utc::now()).unwrap().0
    };
    let d = check("sue", "view", "acc-east");
    assert!(
        d.trace
            .iter()
            .any(|t| t.detail.starts_with("sharing rule 'east-to-support'")
                && t.detail.ends_with("gives READ")),
        "{:?}",
        d.trace
    );
    let d = check("pat", "edit", "acc-project");
    assert!(
        d.trace
            .iter()
            .any(|t| t.detail.contains("share to group 'partners' gives")),
        "{:?}",
        d.trace
    );
    let d = check("wes", "edit", "ticket-1");
    assert!(
        d.trace
            .iter()
            .any(|t| t.detail.contains("leads group 'desk'")),
        "{:?}",
        d.trace
    );
    let d = check("dana", "view", "acc-east-secret");
    assert!(
        d.trace
            .iter()
            .any(|t| t.reason == Reason::Hierarchy && t.detail.contains("above owner 'erin'")),
        "{:?}",
        d.trace
    );
}
