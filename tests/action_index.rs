//! The interned actions a check reads (each module's level per action
//! index, each profile's allowed set as bits) stay equal to a
//! recomputation from the definitions, and answer as the names do, through
//! any sequence of writes to modules' custom actions and to profiles.

mod common;

use common::rng::Rng;
use proptest::prelude::*;
use warden::engine::document::changes_of;
use warden::engine::model::*;
use warden::engine::org::{ActionIx, ActionSet, Module, OrgState};
use warden::engine::{Command, Direct, Engine, Limits, OrgDocument};
use warden::generate::{generate, Params};

/// Custom action names the writes pick from; `convert` and `export` are
/// the generator's own, the rest are new to the organization.
const CUSTOM: [&str; 6] = [
    "export",
    "send_mail",
    "convert",
    "merge",
    "print",
    "archive",
];

fn document() -> OrgDocument {
    let params = Params {
        records: 100,
        manual_shares: 10,
        ..Params::small()
    };
    generate(&params)
        .expect("the small parameters are valid")
        .document
}

fn random_level(rng: &mut Rng) -> AccessLevel {
    match rng.below(3) {
        0 => AccessLevel::Read,
        1 => AccessLevel::ReadWrite,
        _ => AccessLevel::Full,
    }
}

/// A write that changes a module's custom actions, a profile's actions,
/// or removes one of either.
fn random_write(rng: &mut Rng, doc: &OrgDocument, step: usize) -> Command {
    let modules: Vec<String> = doc.modules.iter().map(|m| m.id.clone()).collect();
    match rng.below(8) {
        0..=2 if !doc.modules.is_empty() => {
            let mut module = rng.pick(&doc.modules).clone();
            module.actions.clear();
            for name in CUSTOM {
                if rng.chance(40) {
                    module.actions.insert(name.to_string(), random_level(rng));
                }
            }
            Command::PutModule(module)
        }
        3 if modules.len() > 1 => Command::DeleteModule {
            id: rng.pick(&modules).clone(),
            cascade: true,
        },
        4 if !doc.profiles.is_empty() => Command::DeleteProfile {
            id: rng.pick(&doc.profiles).id.clone(),
            cascade: true,
        },
        _ if !doc.modules.is_empty() => {
            let mut profile = if doc.profiles.is_empty() || rng.chance(30) {
                ProfileDef {
                    id: format!("p-{step}"),
                    ..ProfileDef::default()
                }
            } else {
                rng.pick(&doc.profiles).clone()
            };
            let module = rng.pick(&doc.modules);
            let mut actions: Vec<String> = ActionIx::STANDARD
                .iter()
                .map(|(name, _)| name.to_string())
                .chain(module.actions.keys().cloned())
                .filter(|_| rng.chance(50))
                .collect();
            actions.sort();
            actions.dedup();
            profile.modules.insert(module.id.clone(), actions);
            Command::PutProfile(profile)
        }
        _ => Command::DeleteProfile {
            id: "none".into(),
            cascade: true,
        },
    }
}

/// Every action name the organization could be asked about: standard,
/// custom ones of any module or of the pool, and one nobody has.
fn names(state: &OrgState) -> Vec<String> {
    let mut out: Vec<String> = ActionIx::STANDARD
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(CUSTOM.iter().map(|n| n.to_string()))
        .chain(
            state
                .modules
                .iter()
                .flat_map(|(_, m)| m.def.actions.keys().cloned()),
        )
        .collect();
    out.push("never-defined".into());
    out.sort();
    out.dedup();
    out
}

fn assert_interned_hold(engine: &Engine<Direct>, org: &str, after: &str) {
    engine
        .read(org, |state, _| {
            let names = names(state);
            for (_, module) in state.modules.iter() {
                let mut actions = state.actions.clone();
                assert_eq!(
                    module.action_levels,
                    Module::action_levels(&module.def, &mut actions),
                    "levels of module '{}' after {after}",
                    module.def.id
                );
                assert_eq!(
                    actions.len(),
                    state.actions.len(),
                    "module '{}' has an action the organization never interned, after {after}",
                    module.def.id
                );
                for name in &names {
                    assert_eq!(
                        state.action_ix(name).and_then(|a| module.required(a)),
                        module.required_level(name),
                        "level of '{name}' on '{}' after {after}",
                        module.def.id
                    );
                }
            }
            for (_, profile) in state.profiles.iter() {
                for (module, perms) in &profile.modules {
                    let mut recomputed = ActionSet::default();
                    for name in &perms.actions {
                        let a = state
                            .action_ix(name)
                            .expect("a profile's actions are interned");
                        recomputed.insert(a);
                    }
                    assert_eq!(
                        perms.allowed,
                        recomputed,
                        "actions of profile '{}' on '{}' after {after}",
                        profile.def.id,
                        state.module_id(*module)
                    );
                    for name in &names {
                        assert_eq!(
                            state
                                .action_ix(name)
                                .is_some_and(|a| perms.allowed.contains(a)),
                            perms.actions.contains(name),
                            "'{name}' in profile '{}' on '{}' after {after}",
                            profile.def.id,
                            state.module_id(*module)
                        );
                    }
                }
            }
        })
        .expect("the organization exists");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn interned_actions_equal_their_recomputation_through_writes(seed in any::<u64>()) {
        let doc = document();
        let org = doc.organization.clone();
        let engine = Engine::new(Direct, Limits::default());
        engine.apply(&org, 1, &changes_of(&doc));
        assert_interned_hold(&engine, &org, "the load");
        let mut rng = Rng(seed);
        let mut applied = 0;
        for step in 0..30 {
            let current = engine.export(&org).expect("the organization exists").0;
            let command = random_write(&mut rng, &current, step);
            applied += usize::from(engine.execute(&org, &command).is_ok());
            assert_interned_hold(&engine, &org, &format!("{command:?}"));
        }
        prop_assert!(applied > 0, "no write was accepted");
    }
}
