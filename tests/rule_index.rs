//! The per-module index of sharing rules by recipient stays equal to its
//! recomputation from the rules, and the upward role walk a check uses
//! instead of an expanded subtree gives the subtree's answer, through any
//! sequence of writes to rules, roles, groups and modules.

mod common;

use common::rng::Rng;
use common::writes::random_rule;
use common::writes::{generated, Ids};
use proptest::prelude::*;
use warden::engine::document::changes_of;
use warden::engine::model::*;
use warden::engine::org::{RoleIx, RuleRecipients};
use warden::engine::{Command, Direct, Engine, Limits, OrgDocument};
use warden::generate::Params;

/// A small generated organization: every member sort in rules, a role
/// tree, nested groups and criteria rules.
fn document() -> OrgDocument {
    let params = Params {
        records: 200,
        manual_shares: 40,
        ..Params::small()
    };
    generated(&params)
}

/// A write that changes rules, the role tree, groups or modules.
fn random_write(rng: &mut Rng, doc: &OrgDocument, step: usize) -> Command {
    let Ids {
        roles,
        groups,
        modules,
        ..
    } = Ids::of(doc);
    match rng.below(10) {
        // New rules and rewritten ones (other recipient, access, from).
        0..=2 if !modules.is_empty() => random_rule(rng, doc, format!("idx-rule-{step}"), 20),
        3 if !doc.sharing_rules.is_empty() => {
            Command::DeleteSharingRule(rng.pick(&doc.sharing_rules).id.clone())
        }
        // Re-parenting changes who is under a role-and-subordinates root.
        4 | 5 => {
            let mut role = rng.pick(&doc.roles).clone();
            role.parent = if rng.chance(20) {
                None
            } else {
                Some(rng.pick(&roles).clone())
            };
            Command::PutRole(role)
        }
        6 => Command::DeleteRole {
            id: rng.pick(&roles).clone(),
            transfer_to: Some(rng.pick(&roles).clone()),
            cascade: true,
        },
        7 if !groups.is_empty() => Command::DeleteGroup {
            id: rng.pick(&groups).clone(),
            transfer_to: Some(OwnerRef::User(rng.pick(&doc.users).id.clone())),
            cascade: true,
        },
        8 if modules.len() > 1 && rng.chance(30) => Command::DeleteModule {
            id: rng.pick(&modules).clone(),
            cascade: true,
        },
        _ => {
            let mut role = rng.pick(&doc.roles).clone();
            role.parent = Some(rng.pick(&roles).clone());
            Command::PutRole(role)
        }
    }
}

/// Asserts the index of every module against its recomputation, and the
/// role walk against the expanded subtree for every pair of roles.
fn assert_index_holds(engine: &Engine<Direct>, org: &str, after: &str) {
    engine
        .read(org, |state, _| {
            for (_, module) in state.modules.iter() {
                assert_eq!(
                    module.recipients,
                    RuleRecipients::of(&module.rules),
                    "index of module '{}' after {after}",
                    module.def.id
                );
            }
            let roles: Vec<RoleIx> = state.roles.iter().map(|(ix, _)| RoleIx(ix)).collect();
            for top in &roles {
                let subtree = state.role_subtree(*top);
                for role in &roles {
                    assert_eq!(
                        state.role_within(*role, *top),
                        subtree.binary_search(role).is_ok(),
                        "role {} within {} after {after}",
                        state.role_id(*role),
                        state.role_id(*top)
                    );
                }
            }
        })
        .expect("the organization exists");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn recipient_index_equals_its_recomputation_through_writes(seed in any::<u64>()) {
        let doc = document();
        let org = doc.organization.clone();
        let engine = Engine::new(Direct, Limits::default());
        engine.apply(&org, 1, &changes_of(&doc));
        assert_index_holds(&engine, &org, "the load");
        let mut rng = Rng(seed);
        let mut applied = 0;
        for step in 0..25 {
            let current = engine.export(&org).expect("the organization exists").0;
            let command = random_write(&mut rng, &current, step);
            applied += usize::from(engine.execute(&org, &command).is_ok());
            assert_index_holds(&engine, &org, &format!("{command:?}"));
        }
        prop_assert!(applied > 0, "no write was accepted");
    }
}
