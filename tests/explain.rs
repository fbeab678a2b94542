//! Explanations over gRPC: a denial lists every path of step 7 with why it
//! gave nothing and what would grant access, an allowed answer names the
//! deciding path and the others that gave, steps 1–6 explain themselves,
//! CheckFields says why each field has its level, and no response text
//! carries Rust Debug artefacts.

mod common;

use common::{check_req, scenario_check, scenario_files, Server};
use warden::api::{convert, pb};
use warden::document::parse_scenario;

const DOC: &str = r#"
organization: explain
settings: {enforce_shifts: true}
modules:
  - {id: Leads, owd: PUBLIC_READ, fields: [name, phone]}
profiles:
  - id: rep
    modules: {Leads: [view, create, edit]}
    fields: {Leads: {phone: READ_ONLY}}
roles:
  - {id: boss, profiles: [rep]}
  - {id: sales, parent: boss, profiles: [rep]}
  - {id: support, profiles: [rep]}
shifts:
  - id: day
    time_zone: Europe/Paris
    windows: [{days: [MON, TUE, WED, THU, FRI], start: "09:00", end: "17:00"}]
users:
  - {id: ray, role: sales}
  - {id: mia, role: support}
  - {id: sue, role: support}
  - {id: bob, role: boss}
  - {id: zed, role: support, active: false}
  - {id: owl, role: support, shift: day}
  - {id: pat, kind: GUEST}
groups:
  - {id: east, users: [mia]}
  - {id: helpers, users: [sue]}
records:
  - {module: Leads, id: L1, owner: {user: ray}}
  - {module: Leads, id: L2, owner: {user: ray}, private: true}
shares:
  - {module: Leads, record: L1, grantee: {group: east}, level: READ}
  - {module: Leads, record: L2, grantee: {group: helpers}, level: READ_WRITE}
sharing_rules:
  - {id: sales-to-helpers, module: Leads, from: {role: sales}, to: {group: helpers}, access: READ_WRITE}
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

async fn explain(c: &mut common::Clients, mut r: pb::CheckRequest) -> pb::CheckResponse {
    r.explain = true;
    c.check.check(r).await.unwrap().into_inner()
}

/// The entry of `reason` whose sentence contains `text`.
fn entry<'a>(r: &'a pb::CheckResponse, reason: pb::Reason, text: &str) -> &'a pb::TraceStep {
    r.trace
        .iter()
        .find(|t| t.reason() == reason && t.detail.contains(text))
        .unwrap_or_else(|| panic!("no {reason:?} entry with {text:?} in {:#?}", r.trace))
}

const STEP_7: [pb::Reason; 8] = [
    pb::Reason::Owner,
    pb::Reason::ModifyAll,
    pb::Reason::ViewAll,
    pb::Reason::Hierarchy,
    pb::Reason::TeamLead,
    pb::Reason::OrgDefault,
    pb::Reason::SharingRule,
    pb::Reason::ManualShare,
];

#[tokio::test]
async fn a_denial_lists_every_path_with_why_and_what_would_grant() {
    let (_s, mut c) = server().await;
    let r = explain(&mut c, check_req("explain", "mia", "Leads", "edit", "L1")).await;
    assert!(!r.allowed);
    assert_eq!(r.reason(), pb::Reason::InsufficientAccess);
    for path in STEP_7 {
        assert!(
            r.trace.iter().any(|t| t.step == 7 && t.reason() == path),
            "{path:?} missing from {:#?}",
            r.trace
        );
    }
    let owner = entry(&r, pb::Reason::Owner, "not the owner: owner is user 'ray'");
    assert_eq!(owner.outcome(), pb::TraceOutcome::GaveNothing);
    assert!(owner
        .refs
        .iter()
        .any(|x| x.kind == "user" && x.id == "ray" && x.relation == "owner"));
    entry(
        &r,
        pb::Reason::Hierarchy,
        "'mia' (role 'support') is not above owner 'ray' (role 'sales')",
    );
    entry(&r, pb::Reason::TeamLead, "'mia' leads no group");
    entry(
        &r,
        pb::Reason::ViewAll,
        "no effective profile of 'mia' has view_all on 'Leads'",
    );
    let owd = entry(
        &r,
        pb::Reason::OrgDefault,
        "module 'Leads' defaults to PUBLIC_READ: gives READ, 'edit' needs READ_WRITE",
    );
    assert_eq!(owd.level(), pb::AccessLevel::Read);
    assert_eq!(owd.outcome(), pb::TraceOutcome::Gave);
    // The rule shares L1 (ray is in sales) with helpers, not with mia:
    // joining helpers would grant READ_WRITE.
    let rule = entry(
        &r,
        pb::Reason::SharingRule,
        "no sharing rule of 'Leads' reaches 'mia'",
    );
    let missing = rule.missing.as_ref().expect("what would grant");
    assert!(
        missing.detail.contains("membership of group 'helpers'"),
        "{}",
        missing.detail
    );
    assert_eq!(missing.level(), pb::AccessLevel::ReadWrite);
    let share = entry(
        &r,
        pb::Reason::ManualShare,
        "share to group 'east' gives READ, 'edit' needs READ_WRITE",
    );
    assert_eq!(
        share.missing.as_ref().map(|m| m.level()),
        Some(pb::AccessLevel::ReadWrite)
    );
    let last = r.trace.last().unwrap();
    assert_eq!(last.reason(), pb::Reason::InsufficientAccess);
    assert_eq!(last.outcome(), pb::TraceOutcome::Decided);
    assert!(
        last.detail
            .contains("the highest level of step 7 is READ (ORG_DEFAULT), 'edit' needs READ_WRITE"),
        "{}",
        last.detail
    );
}

#[tokio::test]
async fn a_private_record_says_why_defaults_and_rules_do_not_apply() {
    let (_s, mut c) = server().await;
    let r = explain(&mut c, check_req("explain", "mia", "Leads", "view", "L2")).await;
    assert!(!r.allowed);
    let private = "record is private: org default and sharing rules do not apply";
    entry(&r, pb::Reason::OrgDefault, private);
    entry(&r, pb::Reason::SharingRule, private);
    let share = entry(
        &r,
        pb::Reason::ManualShare,
        "shares to group 'helpers' do not include 'mia'",
    );
    assert!(share
        .missing
        .as_ref()
        .is_some_and(|m| m.detail.contains("membership of group 'helpers'")));
}

#[tokio::test]
async fn an_allowed_answer_names_the_deciding_path_and_the_others_that_gave() {
    let (_s, mut c) = server().await;
    let r = explain(&mut c, check_req("explain", "bob", "Leads", "edit", "L1")).await;
    assert!(r.allowed);
    assert_eq!(r.reason(), pb::Reason::Hierarchy);
    let decided: Vec<&pb::TraceStep> = r
        .trace
        .iter()
        .filter(|t| t.outcome() == pb::TraceOutcome::Decided)
        .collect();
    assert_eq!(decided.len(), 1, "{:#?}", r.trace);
    assert_eq!(decided[0].reason(), pb::Reason::Hierarchy);
    assert!(decided[0]
        .detail
        .contains("'bob' (role 'boss') is above owner 'ray' (role 'sales')"));
    let owd = entry(
        &r,
        pb::Reason::OrgDefault,
        "defaults to PUBLIC_READ: gives READ",
    );
    assert_eq!(owd.outcome(), pb::TraceOutcome::Gave);
    // Steps that passed before step 7 are there too.
    let profile = entry(
        &r,
        pb::Reason::Profile,
        "an effective profile allows 'edit'",
    );
    assert_eq!(profile.outcome(), pb::TraceOutcome::Passed);
    let record = entry(
        &r,
        pb::Reason::UnknownRecord,
        "record 'L1' of 'Leads' is stored",
    );
    assert_eq!(record.step, 6);
}

#[tokio::test]
async fn the_steps_before_the_record_explain_themselves() {
    let (_s, mut c) = server().await;
    let decided = |r: &pb::CheckResponse| {
        let last = r.trace.last().unwrap().clone();
        assert_eq!(last.outcome(), pb::TraceOutcome::Decided, "{:#?}", r.trace);
        assert_eq!(last.reason(), r.reason());
        last
    };
    let r = explain(&mut c, check_req("explain", "zed", "Leads", "view", "L1")).await;
    assert!(decided(&r).detail.contains("user 'zed' is inactive"));
    // Saturday in Paris: outside the weekday shift.
    let mut req = check_req("explain", "owl", "Leads", "view", "L1");
    req.at = Some(convert::timestamp("2026-11-28T10:00:00Z".parse().unwrap()));
    let r = explain(&mut c, req).await;
    assert_eq!(r.reason(), pb::Reason::OutsideShift);
    let shift = decided(&r).detail;
    assert!(shift.contains("local SAT 11:00 in Europe/Paris"), "{shift}");
    assert!(shift.contains("is outside shift 'day'"), "{shift}");
    assert!(shift.contains("MON,TUE,WED,THU,FRI 09:00-17:00"), "{shift}");
    let r = explain(&mut c, check_req("explain", "pat", "Leads", "view", "L1")).await;
    assert_eq!(r.reason(), pb::Reason::Profile);
    let profile = decided(&r);
    assert!(
        profile
            .detail
            .contains("no effective profile allows 'view' on 'Leads' for 'pat' (it has no effective profiles)"),
        "{}",
        profile.detail
    );
    assert!(profile.missing.is_some());
    let r = explain(&mut c, check_req("explain", "mia", "Leads", "delete", "L1")).await;
    assert!(decided(&r)
        .detail
        .contains("its effective profiles: 'rep' allows create, edit, view"));
    let mut req = check_req("explain", "mia", "Leads", "edit", "L1");
    req.field = "phone".into();
    let r = explain(&mut c, req).await;
    assert_eq!(r.reason(), pb::Reason::Field);
    let field = decided(&r).detail;
    assert!(
        field.contains("field 'phone' is READ_ONLY for 'mia' ('rep' makes it READ_ONLY), 'edit' needs EDITABLE"),
        "{field}"
    );
    let r = explain(&mut c, check_req("explain", "mia", "Leads", "view", "L9")).await;
    assert!(decided(&r).detail.contains("no record 'L9' in 'Leads'"));
}

#[tokio::test]
async fn check_fields_says_why_each_field_is_hidden_or_read_only() {
    let (_s, mut c) = server().await;
    let ask = |subject: &str, record: &str| pb::CheckFieldsRequest {
        org_id: "explain".into(),
        subject: subject.into(),
        module: "Leads".into(),
        record_id: record.into(),
        explain: true,
        ..Default::default()
    };
    let r = c
        .check
        .check_fields(ask("mia", "L1"))
        .await
        .unwrap()
        .into_inner();
    let detail = |name: &str| {
        r.fields
            .iter()
            .find(|f| f.field == name)
            .map(|f| f.detail.clone())
            .unwrap()
    };
    assert_eq!(
        detail("name"),
        "READ_ONLY: profiles give EDITABLE ('rep' does not name it (EDITABLE)), capped by record access READ to READ_ONLY"
    );
    assert_eq!(
        detail("phone"),
        "READ_ONLY: profiles give READ_ONLY ('rep' makes it READ_ONLY)"
    );
    assert!(r.trace.iter().any(|t| t.reason() == pb::Reason::OrgDefault));
    let r = c
        .check
        .check_fields(ask("mia", "L2"))
        .await
        .unwrap()
        .into_inner();
    assert!(r
        .fields
        .iter()
        .all(|f| f.detail.starts_with("HIDDEN:")
            && f.detail.contains("capped by record access NONE")));
    let r = c
        .check
        .check_fields(ask("pat", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(r.fields.iter().all(|f| f.detail
        == "HIDDEN: no effective profile allows view on 'Leads', so the field is HIDDEN"));
    // Without explain, no details.
    let mut quiet = ask("mia", "L1");
    quiet.explain = false;
    let r = c.check.check_fields(quiet).await.unwrap().into_inner();
    assert!(r.fields.iter().all(|f| f.detail.is_empty()) && r.trace.is_empty());
}

/// Text Rust's Debug formatting would leave, and enum words in CamelCase.
const ARTEFACTS: [&str; 16] = [
    "Group(",
    "User(",
    "Role(",
    "Some(",
    "None",
    "{",
    "}",
    "\"",
    "PublicRead",
    "PublicFull",
    "ReadWrite",
    "ReadOnly",
    "Editable",
    "RoleAndSubordinates",
    "SameAndSubordinate",
    "Hidden",
];

fn texts(t: &pb::TraceStep) -> Vec<String> {
    let mut out = vec![t.detail.clone()];
    out.extend(
        t.refs
            .iter()
            .flat_map(|r| [r.kind.clone(), r.id.clone(), r.relation.clone()]),
    );
    if let Some(m) = &t.missing {
        out.push(m.detail.clone());
        out.extend(
            m.refs
                .iter()
                .flat_map(|r| [r.kind.clone(), r.id.clone(), r.relation.clone()]),
        );
    }
    out
}

#[tokio::test]
async fn no_explanation_of_any_scenario_check_carries_debug_text() {
    let s = Server::start();
    let mut c = s.clients().await;
    let mut seen = 0;
    let mut bad = Vec::new();
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario = parse_scenario(&text).unwrap();
        if scenario.expect_error.is_some() {
            continue;
        }
        c.admin
            .import(pb::ImportRequest {
                document: text.clone(),
                replace: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let org = &scenario.document.organization;
        for (i, check) in scenario.checks.iter().enumerate() {
            let req = pb::CheckRequest {
                explain: true,
                ..scenario_check(org, check)
            };
            let r = c.check.check(req).await.unwrap().into_inner();
            let at = format!("{} checks[{i}]", file.display());
            // The trace agrees with the answer: one DECIDED entry, naming the reason.
            let decided: Vec<&pb::TraceStep> = r
                .trace
                .iter()
                .filter(|t| t.outcome() == pb::TraceOutcome::Decided)
                .collect();
            if decided.len() != 1 || decided[0].reason != r.reason {
                bad.push(format!(
                    "{at}: decided entries {decided:?} for {:?}",
                    r.reason()
                ));
            }
            // Step 7's entries gave at most the answer's level, and one gave it.
            let step7: Vec<&pb::TraceStep> = r
                .trace
                .iter()
                .filter(|t| t.step == 7 && t.reason() != pb::Reason::InsufficientAccess)
                .collect();
            if let Some(top) = step7.iter().map(|t| t.level).max() {
                if top != r.level {
                    bad.push(format!(
                        "{at}: paths gave up to {top}, answer level {}",
                        r.level
                    ));
                }
            }
            for t in &r.trace {
                seen += 1;
                for text in texts(t) {
                    if let Some(a) = ARTEFACTS.iter().find(|a| text.contains(**a)) {
                        bad.push(format!("{at}: {a:?} in {text:?}"));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(seen > 2000, "only {seen} trace entries");
}

mod engine_level {
    //! On generated organizations: explaining never changes an answer, and
    //! the trace agrees with it.

    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use warden::engine::model::Reason;
    use warden::engine::{CheckRequest, Command, Direct, Engine, Limits, Outcome};
    use warden::generate::{generate, Params};

    const ORG: &str = "gen";

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn engine(seed: u64) -> (Engine, warden::engine::OrgDocument) {
        let params = Params {
            organization: ORG.into(),
            seed,
            users: 14,
            roles: 5,
            role_depth: 3,
            groups: 5,
            group_depth: 2,
            sharing_rules: 8,
            criteria_share: 0.4,
            modules: 2,
            records: 24,
            private_share: 0.25,
            group_owned_share: 0.25,
            attributed_share: 0.5,
            manual_shares: 12,
            ..Params::small()
        };
        let doc = generate(&params).unwrap().document;
        let e = Engine::new(Direct, Limits::default());
        e.execute(
            ORG,
            &Command::Import {
                document: doc.clone(),
                replace: true,
            },
        )
        .unwrap();
        (e, doc)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn explaining_changes_no_answer_and_the_trace_agrees_with_it(seed in any::<u64>()) {
            let (e, doc) = engine(seed);
            for r in &doc.records {
                for u in &doc.users {
                    for action in ["view", "edit", "delete"] {
                        let quiet = CheckRequest {
                            subject: u.id.clone().into(),
                            module: r.module.clone().into(),
                            action: action.into(),
                            record: Some(r.id.clone().into()),
                            ..CheckRequest::default()
                        };
                        let loud = CheckRequest { explain: true, ..quiet.clone() };
                        let q = e.check(ORG, &quiet, now()).unwrap().0;
                        let l = e.check(ORG, &loud, now()).unwrap().0;
                        let at = format!("{} {action} {}", u.id, r.id);
                        prop_assert!(q.trace.is_empty());
                        prop_assert_eq!((q.allowed, q.reason, q.level), (l.allowed, l.reason, l.level), "{}", at);
                        let decided: Vec<_> = l.trace.iter().filter(|t| t.outcome == Outcome::Decided).collect();
                        prop_assert_eq!(decided.len(), 1, "{} {:?}", at, l.trace);
                        prop_assert_eq!(decided[0].reason, l.reason, "{}", at);
                        let paths: Vec<_> = l.trace.iter()
                            .filter(|t| t.step == 7 && t.reason != Reason::InsufficientAccess)
                            .collect();
                        if !paths.is_empty() {
                            // Every path of step 7 speaks, and the best of them is the answer's level.
                            prop_assert_eq!(paths.iter().map(|t| t.level).max(), Some(l.level), "{}", at);
                            for reason in [Reason::ModifyAll, Reason::ViewAll, Reason::Hierarchy, Reason::TeamLead,
                                           Reason::OrgDefault, Reason::SharingRule, Reason::ManualShare] {
                                prop_assert!(paths.iter().any(|t| t.reason == reason), "{} lacks {:?}", at, reason);
                            }
                        }
                    }
                }
            }
        }
    }
}
