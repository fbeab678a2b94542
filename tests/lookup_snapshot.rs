//! LookupRecords over a module's shared id order (part L): a lookup reads
//! ranks in an order built once per set of ids, so a write between two
//! pages must not change what the rest of the lookup lists (its pages are
//! of its own revision), and the first lookup after the write must list
//! the records as they are now.

use chrono::Utc;
use warden::engine::model::{OwnerRef, RecordDef};
use warden::engine::{CheckRequest, Command, Direct, Engine, Limits};
use warden::generate::{generate, Params};

fn allowed(engine: &Engine, org: &str, subject: &str, module: &str, record: &str) -> bool {
    let req = CheckRequest {
        subject: subject.into(),
        module: module.into(),
        action: "view".into(),
        record: Some(record.into()),
        ..CheckRequest::default()
    };
    engine.check(org, &req, Utc::now()).unwrap().0.allowed
}

fn pages(set: &warden::engine::lookup::RecordSet, from: usize, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    while from + out.len() < set.len() {
        out.extend(set.page(from + out.len(), page));
    }
    out
}

#[test]
fn pages_after_a_write_are_of_the_lookups_revision_and_the_next_lookup_sees_the_write() {
    let g = generate(&Params::small()).unwrap();
    let doc = &g.document;
    let org = doc.organization.as_str();
    let engine = Engine::new(Direct, Limits::default());
    engine
        .execute(
            org,
            &Command::Import {
                document: doc.clone(),
                replace: true,
            },
        )
        .unwrap();
    let (head, module) = (&g.landmarks.division_head, &g.landmarks.private_module);

    let (all, revision) = engine
        .lookup_records(org, head, module, "view", Utc::now())
        .unwrap();
    let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    assert!(all.len() > 20, "the division head sees many records");
    let (set, set_revision) = engine
        .lookup_record_set(org, head, module, "view", Utc::now())
        .unwrap();
    assert_eq!(set_revision, revision);
    assert!(set.is_ranked(), "a lookup reads the module's shared order");
    let first = set.page(0, 7);
    assert_eq!(first, all[..7].to_vec());

    // Between pages: a listed record deleted, a record created that sorts
    // first and is the division head's, another given to the head.
    let deleted = all[all.len() / 2].clone();
    engine
        .execute(
            org,
            &Command::DeleteRecord {
                module: module.clone(),
                id: deleted.clone(),
            },
        )
        .unwrap();
    let template = doc
        .records
        .iter()
        .find(|r| &r.module == module)
        .expect("the module has records");
    let created = RecordDef {
        id: ".created-first".into(),
        owner: OwnerRef::User(head.clone()),
        ..template.clone()
    };
    engine
        .execute(org, &Command::SetOwner(created.clone().into()))
        .unwrap();
    let moved = doc
        .records
        .iter()
        .find(|r| &r.module == module && !all.contains(&r.id))
        .expect("some record of the module is not the head's");
    engine
        .execute(
            org,
            &Command::SetOwner(
                RecordDef {
                    owner: OwnerRef::User(head.clone()),
                    ..moved.clone()
                }
                .into(),
            ),
        )
        .unwrap();

    // The rest of the lookup is its own revision's, whatever the page size.
    let mut listed = first;
    listed.extend(pages(&set, 7, 5));
    assert_eq!(listed, all, "pages after the writes");
    assert_eq!(pages(&set, 0, all.len()), all, "one page of all");

    // The next lookup lists the records as they are now, sorted.
    let (now, now_revision) = engine
        .lookup_records(org, head, module, "view", Utc::now())
        .unwrap();
    assert!(now_revision > revision);
    let now: Vec<String> = now.iter().map(|s| s.to_string()).collect();
    assert!(now.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    assert_eq!(
        now.first(),
        Some(&created.id),
        "the created record sorts first"
    );
    assert!(!now.contains(&deleted), "the deleted record is gone");
    assert!(now.contains(&moved.id), "the re-owned record is listed");
    let mut want: Vec<String> = all
        .iter()
        .filter(|id| **id != deleted)
        .cloned()
        .chain([created.id.clone(), moved.id.clone()])
        .collect();
    want.sort();
    assert_eq!(now, want);
    for id in &now {
        assert!(allowed(&engine, org, head, module, id), "{id} is allowed");
    }
}
