//! What a check reads to decide the sharing-rule path stays equal to its
//! recomputation through random writes (group membership, role
//! re-parenting, rule create, update and delete, users moving between
//! roles and groups), with the caches warm from the state before each
//! write: the subject's groups as the cached engine copies them out for a
//! check (`hold_user_groups`) equal a fresh expansion, and every check of
//! a record owned by each user and each group, by subjects the rules
//! reach, answers as the uncached engine (`Direct`) does, reason and
//! level included.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::rng::Rng;
use common::writes::random_rule;
use common::writes::{generated, Ids};
use proptest::prelude::*;
use warden::cache::Cached;
use warden::engine::document::changes_of;
use warden::engine::model::*;
use warden::engine::org::{GroupIx, OrgState, RoleIx, UserIx};
use warden::engine::{CheckRequest, Command, Direct, Engine, Expand, Limits, OrgDocument};
use warden::generate::Params;

/// A small generated organization: owner and criteria rules to and from
/// every member sort, a role tree and nested groups.
fn document() -> OrgDocument {
    let params = Params {
        records: 50,
        manual_shares: 10,
        sharing_rules: 40,
        ..Params::small()
    };
    generated(&params)
}

/// A write that changes who a rule's `from` or `to` set holds, or the rules.
fn random_write(rng: &mut Rng, doc: &OrgDocument, step: usize) -> Command {
    let Ids {
        roles,
        groups,
        users,
        modules,
    } = Ids::of(doc);
    match rng.below(10) {
        // Group membership and nesting.
        0 | 1 if !groups.is_empty() => {
            let mut group = rng.pick(&doc.groups).clone();
            if rng.chance(50) {
                group.users = rng.some(&users, 5);
            } else {
                group.users.push(rng.pick(&users).clone());
            }
            if group.kind == GroupKind::Organization {
                if rng.chance(30) {
                    group.roles_and_subordinates = vec![rng.pick(&roles).clone()];
                }
                if rng.chance(50) {
                    group.groups.push(rng.pick(&groups).clone());
                    group.groups.sort();
                    group.groups.dedup();
                } else {
                    group.groups.clear();
                }
            }
            Command::PutGroup(group)
        }
        // A rule created or rewritten (other from, to, access).
        2 | 3 if !modules.is_empty() => random_rule(rng, doc, format!("members-rule-{step}"), 15),
        4 if !doc.sharing_rules.is_empty() => {
            Command::DeleteSharingRule(rng.pick(&doc.sharing_rules).id.clone())
        }
        // A user moves to another role.
        5 | 6 => {
            let mut user = rng.pick(&doc.users).clone();
            if user.kind == UserKind::Member {
                user.role = Some(rng.pick(&roles).clone());
            }
            Command::PutUser(user)
        }
        // A role re-parented.
        _ => {
            let mut role = rng.pick(&doc.roles).clone();
            role.parent = if rng.chance(10) {
                None
            } else {
                Some(rng.pick(&roles).clone())
            };
            Command::PutRole(role)
        }
    }
}

/// A fixed instant, so shifts answer the same in both engines.
fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

/// The subject's groups a cached check copies out equal a fresh expansion.
fn assert_groups(engine: &Engine<Cached>, org: &str, after: &str) {
    engine
        .read(org, |state, x| {
            for (ix, _) in state.users.iter() {
                assert_eq!(
                    x.hold_user_groups(state, UserIx(ix)).as_slice(),
                    &*Direct.user_groups(state, UserIx(ix)),
                    "groups of user {} after {after}",
                    state.user_id(UserIx(ix))
                );
            }
        })
        .expect("the organization exists");
}

/// The users of a rule's `to` set, expanded from scratch.
fn members(state: &OrgState, set: &MemberSet) -> Vec<String> {
    let in_roles = |roles: &[RoleIx]| -> Vec<String> {
        state
            .users
            .iter()
            .filter(|(_, u)| u.role.is_some_and(|r| roles.contains(&r)))
            .map(|(ix, _)| state.user_id(UserIx(ix)).to_string())
            .collect()
    };
    match set {
        MemberSet::Role(id) => state
            .roles
            .ix(id)
            .map(|r| in_roles(&[RoleIx(r)]))
            .unwrap_or_default(),
        MemberSet::RoleAndSubordinates(id) => state
            .roles
            .ix(id)
            .map(|r| in_roles(&state.role_subtree(RoleIx(r))))
            .unwrap_or_default(),
        MemberSet::Group(id) => state
            .groups
            .ix(id)
            .map(|g| {
                state
                    .group_members(GroupIx(g))
                    .into_iter()
                    .map(|u| state.user_id(u).to_string())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Every rule's module, asked by a few users its `to` set holds (and one
/// anybody) about a record described with each user and each group as its
/// owner: the cached engine answers as the direct one. Returns how many
/// answers the sharing-rule path gave.
fn assert_checks(
    cached: &Engine<Cached>,
    direct: &Engine<Direct>,
    doc: &OrgDocument,
    rng: &mut Rng,
    after: &str,
) -> usize {
    let org = &doc.organization;
    let owners: Vec<OwnerRef> = doc
        .users
        .iter()
        .map(|u| OwnerRef::User(u.id.clone()))
        .chain(doc.groups.iter().map(|g| OwnerRef::Group(g.id.clone())))
        .collect();
    let mut by_rule = 0;
    for rule in &doc.sharing_rules {
        let reached = direct
            .read(org, |state, _| members(state, &rule.to))
            .expect("the organization exists");
        for i in 0..3 {
            let subject = if i < 2 && !reached.is_empty() {
                rng.pick(&reached).clone()
            } else {
                rng.pick(&doc.users).id.clone()
            };
            for owner in &owners {
                let req = CheckRequest {
                    subject: subject.clone().into(),
                    module: rule.module.clone().into(),
                    action: if rng.chance(50) { "view" } else { "edit" }.into(),
                    record: Some("members-probe".into()),
                    described: Some(RecordDescription {
                        owner: owner.clone(),
                        private: false,
                        attributes: rule.criteria.clone().unwrap_or_default(),
                    }),
                    ..CheckRequest::default()
                };
                let want = direct.check(org, &req, at()).map(|(d, _)| d);
                let got = cached.check(org, &req, at()).map(|(d, _)| d);
                assert_eq!(got, want, "{req:?} after {after}");
                by_rule += usize::from(matches!(&want, Ok(d) if d.reason == Reason::SharingRule));
            }
        }
    }
    by_rule
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn rule_members_and_checks_equal_a_recomputation_through_writes(seed in any::<u64>()) {
        let doc = document();
        let org = doc.organization.clone();
        let cached = Engine::new(Cached::default(), Limits::default());
        let direct = Engine::new(Direct, Limits::default());
        cached.apply(&org, 1, &changes_of(&doc));
        direct.apply(&org, 1, &changes_of(&doc));
        let mut rng = Rng(seed);
        assert_groups(&cached, &org, "the load");
        let mut by_rule = assert_checks(&cached, &direct, &doc, &mut rng, "the load");
        let mut applied = 0;
        for step in 0..10 {
            let current = direct.export(&org).expect("the organization exists").0;
            let command = random_write(&mut rng, &current, step);
            let accepted = direct.execute(&org, &command).is_ok();
            prop_assert_eq!(
                cached.execute(&org, &command).is_ok(),
                accepted,
                "the engines disagree on {:?}",
                command
            );
            applied += usize::from(accepted);
            let after = format!("{command:?}");
            let current = direct.export(&org).expect("the organization exists").0;
            assert_groups(&cached, &org, &after);
            by_rule += assert_checks(&cached, &direct, &current, &mut rng, &after);
        }
        prop_assert!(applied > 0, "no write was accepted");
        // The comparison covers the path it is about.
        prop_assert!(by_rule > 0, "no check was decided by a sharing rule");
    }
}
