//! Each module's dense record table keeps its indexes in step with its
//! slots: after any sequence of record and share writes (create, move the
//! owner, delete, share, unshare, change attributes, import, delete a user
//! who owns records and holds shares) the id index, the owner index, the
//! free list and the organization's shares-by-grantee index equal their
//! recomputation from the records alone; and a deleted record's slot, taken
//! by a new record, never shows the old record's shares or owner.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use common::rng::Rng;
use proptest::prelude::*;
use warden::engine::document::changes_of;
use warden::engine::model::*;
use warden::engine::org::{GranteeIx, ModuleIx, OrgState, Owner, RecordIx, UserIx};
use warden::engine::plan::RecordWrite;
use warden::engine::{CheckRequest, Command, Direct, Engine, Limits, OrgDocument};
use warden::generate::{generate, Params};

/// A small generated organization with records, shares and criteria rules.
fn document() -> OrgDocument {
    let params = Params {
        records: 200,
        manual_shares: 40,
        ..Params::small()
    };
    generate(&params)
        .expect("the small parameters are valid")
        .document
}

/// Ids of new records come from a small pool, so deleted ids and their
/// slots are taken again.
fn pool_id(rng: &mut Rng) -> String {
    format!("rt-{}", rng.below(24))
}

fn random_owner(rng: &mut Rng, doc: &OrgDocument) -> OwnerRef {
    if !doc.groups.is_empty() && rng.chance(25) {
        OwnerRef::Group(rng.pick(&doc.groups).id.clone())
    } else {
        OwnerRef::User(rng.pick(&doc.users).id.clone())
    }
}

fn random_attributes(rng: &mut Rng) -> BTreeMap<String, String> {
    match rng.below(4) {
        0 => BTreeMap::new(),
        1 => [("region".to_string(), "emea".to_string())].into(),
        2 => [("region".to_string(), "apac".to_string())].into(),
        _ => [
            ("region".to_string(), "emea".to_string()),
            ("tier".to_string(), format!("t{}", rng.below(3))),
        ]
        .into(),
    }
}

fn random_grantee(rng: &mut Rng, doc: &OrgDocument) -> Grantee {
    match rng.below(4) {
        0 if !doc.groups.is_empty() => Grantee::Group(rng.pick(&doc.groups).id.clone()),
        1 if !doc.roles.is_empty() => Grantee::Role(rng.pick(&doc.roles).id.clone()),
        2 if !doc.roles.is_empty() => Grantee::RoleAndSubordinates(rng.pick(&doc.roles).id.clone()),
        _ => Grantee::User(rng.pick(&doc.users).id.clone()),
    }
}

fn random_level(rng: &mut Rng) -> AccessLevel {
    match rng.below(3) {
        0 => AccessLevel::Read,
        1 => AccessLevel::ReadWrite,
        _ => AccessLevel::Full,
    }
}

/// A record or share write on the organization as it is now.
fn random_write(rng: &mut Rng, doc: &OrgDocument) -> Command {
    let modules: Vec<String> = doc.modules.iter().map(|m| m.id.clone()).collect();
    match rng.below(12) {
        // Create (or rewrite, when the pool id exists) a whole record.
        0..=2 => Command::SetOwner(RecordWrite {
            module: rng.pick(&modules).clone(),
            id: pool_id(rng),
            owner: Some(random_owner(rng, doc)),
            private: Some(rng.chance(20)),
            attributes: Some(random_attributes(rng)),
        }),
        // Move an existing record to another owner.
        3 if !doc.records.is_empty() => {
            let r = rng.pick(&doc.records);
            Command::SetOwner(RecordWrite {
                module: r.module.clone(),
                id: r.id.clone(),
                owner: Some(random_owner(rng, doc)),
                private: None,
                attributes: None,
            })
        }
        // Change an existing record's attributes or flag only.
        4 if !doc.records.is_empty() => {
            let r = rng.pick(&doc.records);
            Command::SetOwner(RecordWrite {
                module: r.module.clone(),
                id: r.id.clone(),
                owner: None,
                private: rng.chance(30).then_some(!r.private),
                attributes: Some(random_attributes(rng)),
            })
        }
        5 | 6 if !doc.records.is_empty() => {
            let r = rng.pick(&doc.records);
            Command::DeleteRecord {
                module: r.module.clone(),
                id: r.id.clone(),
            }
        }
        7 | 8 if !doc.records.is_empty() => {
            let shares = (0..1 + rng.below(3))
                .map(|_| {
                    let r = rng.pick(&doc.records);
                    ShareDef {
                        module: r.module.clone(),
                        record: r.id.clone(),
                        grantee: random_grantee(rng, doc),
                        level: random_level(rng),
                    }
                })
                .collect();
            Command::Share(shares)
        }
        9 if !doc.shares.is_empty() => Command::Unshare(vec![rng.pick(&doc.shares).clone()]),
        // Import merges records (new and rewritten) and their shares.
        10 => {
            let mut part = doc.clone();
            part.records.clear();
            part.shares.clear();
            for _ in 0..1 + rng.below(4) {
                let id = pool_id(rng);
                let module = rng.pick(&modules).clone();
                part.records.push(RecordDef {
                    module: module.clone(),
                    id: id.clone(),
                    owner: random_owner(rng, doc),
                    private: rng.chance(20),
                    attributes: random_attributes(rng),
                });
                if rng.chance(50) {
                    part.shares.push(ShareDef {
                        module,
                        record: id,
                        grantee: random_grantee(rng, doc),
                        level: random_level(rng),
                    });
                }
            }
            Command::Import {
                document: part,
                replace: false,
            }
        }
        // A user's deletion moves its records and drops its shares.
        _ if doc.users.len() > 2 => {
            let user = rng.pick(&doc.users).id.clone();
            let to = doc
                .users
                .iter()
                .find(|u| u.id != user)
                .map(|u| u.id.clone())
                .unwrap_or_default();
            Command::DeleteUser {
                id: user,
                transfer_to: Some(OwnerRef::User(to)),
                cascade: true,
            }
        }
        _ => Command::SetOwner(RecordWrite {
            module: rng.pick(&modules).clone(),
            id: pool_id(rng),
            owner: Some(random_owner(rng, doc)),
            private: Some(false),
            attributes: Some(BTreeMap::new()),
        }),
    }
}

/// Asserts every module's table and the shares index against their
/// recomputation from the slots.
fn assert_tables_hold(state: &OrgState, after: &str) {
    let mut shares_expected: BTreeMap<GranteeIx, BTreeSet<(ModuleIx, RecordIx)>> = BTreeMap::new();
    for (m, module) in state.modules.iter() {
        let name = &module.def.id;
        let records = &module.records;
        let mut owners_expected: BTreeMap<Owner, BTreeSet<RecordIx>> = BTreeMap::new();
        let mut held = 0;
        for (ix, r) in records.iter() {
            held += 1;
            assert_eq!(
                records.ix(r.id()),
                Some(ix),
                "id index of '{name}/{}' after {after}",
                r.id()
            );
            owners_expected.entry(r.owner).or_default().insert(ix);
            let grantees: BTreeSet<GranteeIx> = r.shares.iter().map(|s| s.grantee).collect();
            assert_eq!(
                grantees.len(),
                r.shares.len(),
                "one share per grantee on '{name}/{}' after {after}",
                r.id()
            );
            for s in r.shares.iter() {
                shares_expected
                    .entry(s.grantee)
                    .or_default()
                    .insert((ModuleIx(m), ix));
            }
        }
        assert_eq!(records.len(), held, "count of '{name}' after {after}");
        assert_eq!(
            records.index_len(),
            held,
            "id index entries of '{name}' after {after}"
        );
        let free: BTreeSet<u32> = records.free_slots().iter().copied().collect();
        assert_eq!(
            free.len(),
            records.free_slots().len(),
            "a slot freed twice in '{name}' after {after}"
        );
        assert!(
            free.iter().all(|ix| records.at(RecordIx(*ix)).is_none()),
            "a free slot of '{name}' holds a record after {after}"
        );
        assert_eq!(
            held + free.len(),
            records.slot_count(),
            "every slot of '{name}' is held or free after {after}"
        );
        let owners_kept: BTreeMap<Owner, BTreeSet<RecordIx>> = records
            .owner_index()
            .iter()
            .map(|(o, set)| (*o, set.iter().copied().collect()))
            .collect();
        assert_eq!(
            owners_kept, owners_expected,
            "owner index of '{name}' after {after}"
        );
    }
    let shares_kept: BTreeMap<GranteeIx, BTreeSet<(ModuleIx, RecordIx)>> = state
        .shares_by_grantee
        .iter()
        .map(|(g, set)| (*g, set.iter().copied().collect()))
        .collect();
    assert_eq!(
        shares_kept, shares_expected,
        "shares by grantee after {after}"
    );
}

fn assert_holds(engine: &Engine<Direct>, org: &str, after: &str) {
    engine
        .read(org, |state, _| assert_tables_hold(state, after))
        .expect("the organization exists");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn record_indexes_equal_their_recomputation_through_writes(seed in any::<u64>()) {
        let doc = document();
        let org = doc.organization.clone();
        let engine = Engine::new(Direct, Limits::default());
        engine.apply(&org, 1, &changes_of(&doc));
        assert_holds(&engine, &org, "the load");
        let mut rng = Rng(seed);
        let mut applied = 0;
        for _ in 0..40 {
            let current = engine.export(&org).expect("the organization exists").0;
            let command = random_write(&mut rng, &current);
            applied += usize::from(engine.execute(&org, &command).is_ok());
            assert_holds(&engine, &org, &format!("{command:?}"));
        }
        prop_assert!(applied > 10, "only {applied} writes were accepted");
    }
}

/// The slot index of `module/id`.
fn slot(engine: &Engine<Direct>, org: &str, module: &str, id: &str) -> Option<RecordIx> {
    engine
        .read(org, |state, _| {
            state
                .modules
                .by_id(module)
                .and_then(|(_, m)| m.records.ix(id))
        })
        .expect("the organization exists")
}

#[test]
fn a_reused_slot_never_shows_the_deleted_records_shares_or_owner() {
    let doc = document();
    let org = doc.organization.clone();
    let engine = Engine::new(Direct, Limits::default());
    engine.apply(&org, 1, &changes_of(&doc));
    let module = doc.modules[0].id.clone();
    let (owner, grantee, new_owner) = (
        doc.users[0].id.clone(),
        doc.users[1].id.clone(),
        doc.users[2].id.clone(),
    );
    let put = |id: &str, owner: &str| {
        engine
            .execute(
                &org,
                &Command::SetOwner(RecordWrite {
                    module: module.clone(),
                    id: id.to_string(),
                    owner: Some(OwnerRef::User(owner.to_string())),
                    private: Some(true),
                    attributes: Some(BTreeMap::new()),
                }),
            )
            .expect("the record write is valid")
    };
    put("old-record", &owner);
    engine
        .execute(
            &org,
            &Command::Share(vec![ShareDef {
                module: module.clone(),
                record: "old-record".into(),
                grantee: Grantee::User(grantee.clone()),
                level: AccessLevel::Full,
            }]),
        )
        .expect("the share is valid");
    let old_slot = slot(&engine, &org, &module, "old-record").expect("old-record exists");
    engine
        .execute(
            &org,
            &Command::DeleteRecord {
                module: module.clone(),
                id: "old-record".into(),
            },
        )
        .expect("the delete is valid");
    put("new-record", &new_owner);
    assert_eq!(
        slot(&engine, &org, &module, "new-record"),
        Some(old_slot),
        "the new record takes the freed slot"
    );
    assert_eq!(slot(&engine, &org, &module, "old-record"), None);
    engine
        .read(&org, |state, _| {
            assert_tables_hold(state, "the slot's reuse");
            let (m, table) = state.modules.by_id(&module).expect("the module exists");
            let record = table.records.at(old_slot).expect("the slot is held");
            assert_eq!(record.id(), "new-record");
            assert!(record.shares.is_empty(), "no share of the old record");
            let new_owner_ix = state.users.ix(&new_owner).expect("the user exists");
            assert_eq!(record.owner, Owner::User(UserIx(new_owner_ix)));
            let old_owner = Owner::User(UserIx(state.users.ix(&owner).expect("the user exists")));
            assert!(
                table
                    .records
                    .owned_by(old_owner)
                    .all(|(ix, _)| ix != old_slot),
                "the old owner does not own the slot"
            );
            let shared =
                GranteeIx::User(UserIx(state.users.ix(&grantee).expect("the user exists")));
            assert!(
                !state
                    .shares_by_grantee
                    .get(&shared)
                    .is_some_and(|s| s.contains(&(ModuleIx(m), old_slot))),
                "the old share is not indexed on the slot"
            );
        })
        .expect("the organization exists");
    // The old share's grantee gets nothing from it on the new record.
    let (decision, _) = engine
        .check(
            &org,
            &CheckRequest {
                subject: grantee.into(),
                module: module.clone().into(),
                action: "view".into(),
                record: Some("new-record".into()),
                ..CheckRequest::default()
            },
            Utc::now(),
        )
        .expect("the check is valid");
    assert_ne!(decision.reason, Reason::ManualShare);
}

/// One step of [`the_id_index_agrees_with_a_map_through_growth_and_deletes`].
#[derive(Debug, Clone)]
enum IndexOp {
    Put(usize),
    Remove(usize),
}

/// Ids of the index model: short ones (inline in the slot) and long ones
/// (on the heap), many sharing a prefix so that only their tails differ.
fn model_id(n: usize) -> String {
    if n % 7 == 0 {
        format!("{}-{n}", "long-record-id-".repeat(3))
    } else {
        format!("r{n}")
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The id index (slot numbers hashed by id, entries removed by
    /// backward shift) against a map of id → slot: through growth from
    /// empty and runs of deletes, every record is found at its slot after
    /// every step, removed ids are not found, and no two ids share a slot.
    #[test]
    fn the_id_index_agrees_with_a_map_through_growth_and_deletes(
        ops in proptest::collection::vec(
            prop_oneof![
                3 => (0usize..600).prop_map(IndexOp::Put),
                2 => (0usize..600).prop_map(IndexOp::Remove),
            ],
            1..1500,
        )
    ) {
        use std::collections::HashMap;
        use warden::engine::records::Records;

        let mut records = Records::default();
        let mut model: HashMap<String, RecordIx> = HashMap::new();
        let owner = Owner::User(UserIx(0));
        for (step, op) in ops.iter().enumerate() {
            match op {
                IndexOp::Put(n) => {
                    let id = model_id(*n);
                    let ix = records.put(&id, owner, false, &BTreeMap::new());
                    prop_assert!(ix.is_some());
                    if let (Some(ix), Some(known)) = (ix, model.get(&id)) {
                        prop_assert_eq!(ix, *known, "a rewrite keeps the slot");
                    }
                    if let Some(ix) = ix {
                        model.insert(id, ix);
                    }
                }
                IndexOp::Remove(n) => {
                    let id = model_id(*n);
                    let removed = records.remove(&id).map(|(ix, _)| ix);
                    prop_assert_eq!(removed, model.remove(&id));
                }
            }
            prop_assert_eq!(records.index_len(), model.len());
            prop_assert_eq!(records.len(), model.len());
            // Every step, not only the end: a backward shift that moved an
            // entry out of its probe path would lose it here.
            for n in 0..600 {
                let id = model_id(n);
                prop_assert_eq!(records.ix(&id), model.get(&id).copied(), "{} after step {}", id, step);
                prop_assert_eq!(records.contains(&id), model.contains_key(&id));
            }
            let distinct: BTreeSet<RecordIx> = model.values().copied().collect();
            prop_assert_eq!(distinct.len(), model.len(), "two ids share a slot");
        }
    }
}
