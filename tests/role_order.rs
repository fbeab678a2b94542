//! The role forest's precomputed numbering (pre-order spans and each
//! role's chain of superiors, `OrgState::role_order`) stays equal to its
//! recomputation from the parent links through random role writes, and
//! `role_within` / `for_role_and_above` answer exactly as the walks up
//! the tree they replaced (kept as `*_walk`, the oracle here).

mod common;

use common::rng::Rng;
use common::writes::generated;
use proptest::prelude::*;
use warden::engine::model::*;
use warden::engine::org::{RoleIx, RoleOrder};
use warden::engine::{Change, Command, Direct, Engine, Invalidation, Limits, OrgState};
use warden::generate::Params;

/// Asserts the stored numbering against a recomputation and every answer
/// of the numbering against the walks, for every pair of role indexes
/// (including indexes of deleted roles).
fn assert_order_holds(state: &OrgState, after: &str) {
    let stored = state.role_order().clone();
    assert_eq!(
        stored,
        RoleOrder::of(&state.roles),
        "numbering after {after}"
    );
    // One index past the last, so an index with no role is asked too.
    let last = stored.spans.len() as u32 + 1;
    for role in (0..last).map(RoleIx) {
        let mut walked = Vec::new();
        state.for_role_and_above_walk(role, |r| walked.push(r));
        let mut visited = Vec::new();
        state.for_role_and_above(role, |r| visited.push(r));
        assert_eq!(visited, walked, "chain of {role:?} after {after}");
        if stored.acyclic {
            assert_eq!(state.role_chain(role), Some(walked.as_slice()));
        }
        for top in (0..last).map(RoleIx) {
            assert_eq!(
                state.role_within(role, top),
                state.role_within_walk(role, top),
                "{role:?} within {top:?} after {after}"
            );
        }
    }
}

/// A role write: a new role, a re-parent (sometimes under one of its own
/// subordinates, which the plan must refuse: then `true`), a move to the
/// top or a delete.
fn random_role_write(rng: &mut Rng, roles: &[RoleDef], step: usize) -> (Command, bool) {
    let ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();
    let cycle = rng.below(8) == 4;
    if cycle {
        // An attempted cycle: the role under a role below it (or itself).
        let role = rng.pick(roles).clone();
        let below: Vec<&RoleDef> = roles
            .iter()
            .filter(|r| r.parent.as_deref() == Some(role.id.as_str()))
            .collect();
        let parent = if below.is_empty() {
            role.id.clone()
        } else {
            rng.pick(&below).id.clone()
        };
        let command = Command::PutRole(RoleDef {
            parent: Some(parent),
            ..role
        });
        return (command, true);
    }
    let command = match rng.below(7) {
        0 | 1 => Command::PutRole(RoleDef {
            id: format!("new-role-{step}"),
            parent: Some(rng.pick(&ids).clone()),
            ..RoleDef::default()
        }),
        2 => {
            let mut role = rng.pick(roles).clone();
            role.parent = None;
            Command::PutRole(role)
        }
        3 => Command::DeleteRole {
            id: rng.pick(&ids).clone(),
            transfer_to: Some(rng.pick(&ids).clone()),
            cascade: true,
        },
        _ => {
            let mut role = rng.pick(roles).clone();
            role.parent = Some(rng.pick(&ids).clone());
            Command::PutRole(role)
        }
    };
    (command, false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn role_numbering_equals_its_recomputation_and_the_walks(seed in any::<u64>()) {
        let doc = generated(&Params::small());
        let org = doc.organization.clone();
        let engine = Engine::new(Direct, Limits::default());
        engine.apply(&org, 1, &warden::engine::document::changes_of(&doc));
        engine
            .read(&org, |state, _| assert_order_holds(state, "the load"))
            .expect("the organization exists");
        let mut rng = Rng(seed);
        let mut applied = 0;
        for step in 0..30 {
            let current = engine.export(&org).expect("the organization exists").0;
            let (command, cycle) = random_role_write(&mut rng, &current.roles, step);
            let result = engine.execute(&org, &command);
            prop_assert!(!(cycle && result.is_ok()), "a cycle was accepted: {command:?}");
            applied += usize::from(result.is_ok());
            engine
                .read(&org, |state, _| {
                    // The plan refuses cycles: every role stays numbered.
                    assert!(state.role_order().acyclic, "a cycle after {command:?}");
                    assert_order_holds(state, &format!("{command:?}"));
                })
                .expect("the organization exists");
        }
        prop_assert!(applied > 0, "no write was accepted");
    }
}

/// Role links that form a cycle (applied below the plan, which refuses
/// them) leave the roles on it unnumbered, and the answers fall back to
/// the bounded walks.
#[test]
fn a_cycle_falls_back_to_the_walks() {
    let mut state = OrgState::new("o", 0, 0, Settings::default());
    let mut inv = Invalidation::default();
    let role = |id: &str, parent: Option<&str>| {
        Change::PutRole(RoleDef {
            id: id.into(),
            parent: parent.map(Into::into),
            ..RoleDef::default()
        })
    };
    for change in [
        role("a", None),
        role("b", Some("a")),
        role("c", Some("b")),
        role("top", None),
        role("under", Some("top")),
    ] {
        state.apply(&change, &mut inv);
    }
    assert!(state.role_order().acyclic);
    assert_order_holds(&state, "a tree");
    // `a` under `c`: a → b → c → a.
    state.apply(&role("a", Some("c")), &mut inv);
    assert!(!state.role_order().acyclic, "the cycle is seen");
    assert_order_holds(&state, "a cycle");
    let ix = |state: &OrgState, id: &str| RoleIx(state.roles.ix(id).expect("the role exists"));
    // Roles off the cycle keep exact answers.
    assert!(state.role_within(ix(&state, "under"), ix(&state, "top")));
    assert!(!state.role_within(ix(&state, "under"), ix(&state, "a")));
    // Breaking the cycle numbers every role again.
    state.apply(&role("a", None), &mut inv);
    assert!(state.role_order().acyclic);
    assert_order_holds(&state, "the cycle broken");
    assert!(state.role_within(ix(&state, "c"), ix(&state, "a")));
    assert!(!state.role_within(ix(&state, "a"), ix(&state, "c")));
}
