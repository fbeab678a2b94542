//! A profile's packed per-module bits (what a check reads in step 4 and
//! for `view_all`/`modify_all`) say what its `modules` map says, for every
//! module and every interned action, including actions past the 64 the
//! bits hold and modules the profile does not name.

use std::collections::BTreeMap;

use warden::engine::model::*;
use warden::engine::org::{ActionIx, ModuleIx};
use warden::engine::{Change, Invalidation, OrgState};

#[test]
fn packed_bits_answer_as_the_module_map() {
    let mut state = OrgState::new("o", 0, 0, Settings::default());
    let mut inv = Invalidation::default();
    // 80 custom actions on one module, so some are interned past 64.
    let custom: BTreeMap<String, AccessLevel> = (0..80)
        .map(|i| (format!("act{i:02}"), AccessLevel::Read))
        .collect();
    let modules = ["Leads", "Deals", "Notes"];
    for (i, id) in modules.iter().enumerate() {
        state.apply(
            &Change::PutModule(ModuleDef {
                id: (*id).into(),
                owd: Owd::Private,
                hierarchy_access: true,
                fields: Vec::new(),
                actions: if i == 0 {
                    custom.clone()
                } else {
                    BTreeMap::new()
                },
            }),
            &mut inv,
        );
    }
    let some_actions = |step: usize| -> Vec<String> {
        let mut out: Vec<String> = custom
            .keys()
            .enumerate()
            .filter(|(i, _)| i % step == 0)
            .map(|(_, a)| a.clone())
            .collect();
        out.push("view".into());
        out
    };
    let profiles = [
        ProfileDef {
            id: "wide".into(),
            modules: BTreeMap::from([
                ("Leads".into(), some_actions(3)),
                ("Deals".into(), vec!["edit".into(), "view".into()]),
            ]),
            view_all: vec!["Notes".into()],
            modify_all: vec!["Deals".into()],
            ..ProfileDef::default()
        },
        ProfileDef {
            id: "narrow".into(),
            modules: BTreeMap::from([("Notes".into(), vec!["create".into()])]),
            ..ProfileDef::default()
        },
        ProfileDef {
            id: "empty".into(),
            ..ProfileDef::default()
        },
    ];
    for p in &profiles {
        state.apply(&Change::PutProfile(p.clone()), &mut inv);
    }
    let actions = state.actions.len() as u32;
    assert!(actions > 64, "the test needs actions past the packed 64");
    let mut allowed_past_64 = 0;
    for (_, profile) in state.profiles.iter() {
        // One module index past the last: a module no profile names.
        for m in (0..=modules.len() as u32).map(ModuleIx) {
            let map = profile.modules.get(&m);
            let bits = profile.bits(m);
            assert_eq!(bits.view_all, map.is_some_and(|p| p.view_all));
            assert_eq!(bits.modify_all, map.is_some_and(|p| p.modify_all));
            for a in (0..actions).map(ActionIx) {
                let expected = map.is_some_and(|p| p.allowed.contains(a));
                assert_eq!(
                    profile.allows(bits, m, a),
                    expected,
                    "profile {} module {m:?} action {a:?}",
                    profile.def.id
                );
                allowed_past_64 += usize::from(expected && a.0 >= 64);
            }
        }
    }
    assert!(
        allowed_past_64 > 0,
        "an action past 64 is allowed somewhere"
    );
}
