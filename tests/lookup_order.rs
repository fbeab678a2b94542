//! LookupRecords' ids (part E): sorted, each once, exactly the records
//! Check allows, and the same when read page by page from any point, also
//! after records change owner (the per-owner index the lookup walks).

use chrono::Utc;
use warden::engine::model::{OwnerRef, RecordDef};
use warden::engine::{CheckRequest, Command, Direct, Engine, Limits};
use warden::generate::{generate, Params};

fn engine_with_small_org() -> (Engine, warden::generate::Generated) {
    let generated = generate(&Params::small()).unwrap();
    let engine = Engine::new(Direct, Limits::default());
    engine
        .execute(
            &generated.document.organization,
            &Command::Import {
                document: generated.document.clone(),
                replace: true,
            },
        )
        .unwrap();
    (engine, generated)
}

/// Checks one lookup against Check, record by record, and its pages.
fn assert_lookup_is_exact(engine: &Engine, org: &str, subject: &str, module: &str, action: &str) {
    let now = Utc::now();
    let (ids, revision) = engine
        .lookup_records(org, subject, module, action, now)
        .unwrap();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "{subject} {module} {action}: ids not strictly increasing"
    );
    let (set, set_revision) = engine
        .lookup_record_set(org, subject, module, action, now)
        .unwrap();
    assert_eq!(set_revision, revision);
    // A cursor resumes in the middle of a set nothing was ordered in yet.
    let middle = ids.len() / 2;
    let tail = set.page(middle, ids.len());
    let want_tail: Vec<String> = ids[middle..].iter().map(|s| s.to_string()).collect();
    assert_eq!(tail, want_tail, "{subject} {module} {action}: resumed tail");
    let mut paged = Vec::new();
    while paged.len() < set.len() {
        paged.extend(set.page(paged.len(), 7));
    }
    let want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    assert_eq!(paged, want, "{subject} {module} {action}: pages of 7");
}

fn allowed(
    engine: &Engine,
    org: &str,
    subject: &str,
    module: &str,
    action: &str,
    record: &str,
) -> bool {
    let req = CheckRequest {
        subject: subject.into(),
        module: module.into(),
        action: action.into(),
        record: Some(record.into()),
        ..CheckRequest::default()
    };
    engine.check(org, &req, Utc::now()).unwrap().0.allowed
}

fn assert_matches_check(
    engine: &Engine,
    doc: &warden::engine::OrgDocument,
    subject: &str,
    module: &str,
    action: &str,
) {
    let org = &doc.organization;
    let (ids, _) = engine
        .lookup_records(org, subject, module, action, Utc::now())
        .unwrap();
    let want: Vec<&str> = {
        let mut v: Vec<&str> = doc
            .records
            .iter()
            .filter(|r| r.module == module && allowed(engine, org, subject, module, action, &r.id))
            .map(|r| r.id.as_str())
            .collect();
        v.sort_unstable();
        v
    };
    let got: Vec<&str> = ids.iter().map(|s| &**s).collect();
    assert_eq!(got, want, "{subject} {module} {action}");
}

#[test]
fn lookups_are_sorted_unique_and_exactly_what_check_allows() {
    let (engine, g) = engine_with_small_org();
    let doc = &g.document;
    let org = &doc.organization;
    let l = &g.landmarks;
    let mut subjects: Vec<&str> = doc
        .users
        .iter()
        .step_by(40)
        .map(|u| u.id.as_str())
        .collect();
    subjects.extend([l.division_head.as_str(), l.admin.as_str()]);
    subjects.extend(l.guest.as_deref());
    for subject in &subjects {
        for module in &doc.modules {
            for action in ["view", "edit"] {
                assert_lookup_is_exact(&engine, org, subject, &module.id, action);
                assert_matches_check(&engine, doc, subject, &module.id, action);
            }
        }
    }
}

#[test]
fn records_that_change_owner_are_listed_once_under_their_new_owner() {
    let (engine, g) = engine_with_small_org();
    let doc = &g.document;
    let org = &doc.organization;
    let l = &g.landmarks;
    let (before, _) = engine
        .lookup_records(org, &l.division_head, &l.private_module, "view", Utc::now())
        .unwrap();
    // Give every tenth record of the module to the division head, some of
    // which it already reached through the hierarchy or a share.
    let moved: Vec<&RecordDef> = doc
        .records
        .iter()
        .filter(|r| r.module == l.private_module)
        .step_by(10)
        .collect();
    for r in &moved {
        let def = RecordDef {
            owner: OwnerRef::User(l.division_head.clone()),
            ..(*r).clone()
        };
        engine.execute(org, &Command::SetOwner(def.into())).unwrap();
    }
    let (after, _) = engine
        .lookup_records(org, &l.division_head, &l.private_module, "view", Utc::now())
        .unwrap();
    for r in &moved {
        assert!(after.iter().any(|id| **id == *r.id), "{} not listed", r.id);
    }
    assert!(after.len() >= before.len());
    assert_matches_check(&engine, doc, &l.division_head, &l.private_module, "view");
    assert_lookup_is_exact(&engine, org, &l.division_head, &l.private_module, "view");
}
