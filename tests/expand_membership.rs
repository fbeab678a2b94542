//! The membership questions a check asks of the cached expander
//! (`is_member`, `holds_group`, `reports_to`, `in_role_subtree`) give the
//! answers of the direct expander, which reads them off the whole expanded
//! set, for every pair, through any sequence of writes to groups (nesting
//! one group in several others included), users (role, manager), roles
//! (re-parenting) and deletes, each answered while the caches are warm
//! from the state before the write.

mod common;

use common::rng::Rng;
use common::writes::{small_document, Ids};
use proptest::prelude::*;
use warden::cache::Cached;
use warden::engine::document::changes_of;
use warden::engine::model::*;
use warden::engine::org::{GroupIx, OrgState, RoleIx, UserIx};
use warden::engine::{Command, Direct, Engine, Expand, Limits, OrgDocument};

/// A write that changes what someone is a member of, who is nested where,
/// who reports to whom, or where a role sits.
fn random_write(rng: &mut Rng, doc: &OrgDocument, step: usize) -> Command {
    let Ids {
        roles,
        groups,
        users,
        ..
    } = Ids::of(doc);
    match rng.below(10) {
        // Members and nesting: a group gains or loses users, roles, role
        // subtrees and nested groups (a group then often sits in several
        // containers; a write making a cycle is refused).
        0..=3 if !groups.is_empty() => {
            let mut group = rng.pick(&doc.groups).clone();
            if rng.chance(50) {
                group.users = rng.some(&users, 5);
            } else {
                group.users.push(rng.pick(&users).clone());
            }
            if rng.chance(30) {
                group.roles = vec![rng.pick(&roles).clone()];
            }
            if rng.chance(30) {
                group.roles_and_subordinates = vec![rng.pick(&roles).clone()];
            }
            if rng.chance(60) {
                group.groups.push(rng.pick(&groups).clone());
                group.groups.sort();
                group.groups.dedup();
            } else if rng.chance(30) {
                group.groups.clear();
            }
            Command::PutGroup(group)
        }
        4 if !groups.is_empty() && rng.chance(30) => Command::DeleteGroup {
            id: rng.pick(&groups).clone(),
            transfer_to: Some(OwnerRef::User(rng.pick(&users).clone())),
            cascade: true,
        },
        // A new group nesting two existing ones.
        4 if groups.len() > 1 => {
            let mut group = rng.pick(&doc.groups).clone();
            group.id = format!("membership-group-{step}");
            group.kind = GroupKind::Organization;
            group.owner = None;
            group.groups = vec![rng.pick(&groups).clone(), rng.pick(&groups).clone()];
            group.groups.sort();
            group.groups.dedup();
            Command::PutGroup(group)
        }
        // A user changes manager or role.
        5 | 6 => {
            let mut user = rng.pick(&doc.users).clone();
            if rng.chance(50) {
                user.reports_to = rng.chance(80).then(|| rng.pick(&users).clone());
            } else if user.kind == UserKind::Member {
                user.role = Some(rng.pick(&roles).clone());
            }
            Command::PutUser(user)
        }
        7 => Command::DeleteUser {
            id: rng.pick(&users).clone(),
            transfer_to: Some(OwnerRef::User(rng.pick(&users).clone())),
            cascade: true,
        },
        // A role moves: who is under each role-and-subordinates root changes.
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

/// Every membership answer of `x` equals `Direct`'s, for every pair
/// (`Direct` answers from the whole set, taken once per set here).
fn assert_membership(state: &OrgState, x: &dyn Expand, after: &str) {
    let users: Vec<UserIx> = state.users.iter().map(|(ix, _)| UserIx(ix)).collect();
    let groups: Vec<GroupIx> = state.groups.iter().map(|(ix, _)| GroupIx(ix)).collect();
    let roles: Vec<RoleIx> = state.roles.iter().map(|(ix, _)| RoleIx(ix)).collect();
    for g in &groups {
        let members = Direct.group_members(state, *g);
        for u in &users {
            assert_eq!(
                x.is_member(state, *g, *u),
                members.binary_search(u).is_ok(),
                "user {} member of group {} after {after}",
                state.user_id(*u),
                state.group_id(*g)
            );
        }
        let nested = Direct.group_nested(state, *g);
        for h in &groups {
            assert_eq!(
                x.holds_group(state, *g, *h),
                nested.binary_search(h).is_ok(),
                "group {} holds group {} after {after}",
                state.group_id(*g),
                state.group_id(*h)
            );
        }
    }
    for u in &users {
        let managers = Direct.managers(state, *u);
        for s in &users {
            assert_eq!(
                x.reports_to(state, *u, *s),
                managers.binary_search(s).is_ok(),
                "user {} reports to {} after {after}",
                state.user_id(*u),
                state.user_id(*s)
            );
        }
    }
    for top in &roles {
        let subtree = Direct.role_subtree(state, *top);
        for r in &roles {
            assert_eq!(
                x.in_role_subtree(state, *top, *r),
                subtree.binary_search(r).is_ok(),
                "role {} under {} after {after}",
                state.role_id(*r),
                state.role_id(*top)
            );
        }
    }
}

fn check(engine: &Engine<Cached>, org: &str, after: &str) {
    engine
        .read(org, |state, x| assert_membership(state, x, after))
        .expect("the organization exists");
}

/// The generated organization already nests groups; this asserts the test
/// reaches what it claims to (members through nesting, chains of managers).
#[test]
fn the_generated_organization_nests_groups_and_chains_managers() {
    let doc = small_document();
    let engine = Engine::new(Direct, Limits::default());
    engine.apply(&doc.organization, 1, &changes_of(&doc));
    engine
        .read(&doc.organization, |state, x| {
            let nested = state
                .groups
                .iter()
                .any(|(ix, _)| x.group_nested(state, GroupIx(ix)).len() > 2);
            let chained = state
                .users
                .iter()
                .any(|(ix, _)| x.managers(state, UserIx(ix)).len() > 1);
            assert!(nested, "no group nests two others");
            assert!(chained, "no user has a chain of two managers");
        })
        .expect("the organization exists");
}

/// A group nested in two containers takes the branching walk up; its
/// members are members of both, also right after the nesting is written.
#[test]
fn a_group_in_two_containers_answers_as_direct() {
    let doc = small_document();
    let org = doc.organization.clone();
    let engine = Engine::new(Cached::default(), Limits::default());
    engine.apply(&org, 1, &changes_of(&doc));
    check(&engine, &org, "the load");
    let leaf = doc
        .groups
        .iter()
        .find(|g| g.groups.is_empty() && !g.users.is_empty() && g.kind == GroupKind::Organization)
        .expect("a group nesting none");
    let containers: Vec<GroupDef> = doc
        .groups
        .iter()
        .filter(|g| g.id != leaf.id && g.kind == GroupKind::Organization)
        .filter(|g| !g.groups.contains(&leaf.id))
        .take(2)
        .cloned()
        .collect();
    assert_eq!(containers.len(), 2, "two groups to nest the leaf in");
    for mut container in containers {
        container.groups.push(leaf.id.clone());
        engine
            .execute(&org, &Command::PutGroup(container.clone()))
            .expect("nesting a group that nests none makes no cycle");
        check(
            &engine,
            &org,
            &format!("nesting {} in {}", leaf.id, container.id),
        );
    }
    let branching = engine
        .read(&org, |state, _| {
            let (ix, _) = state.groups.by_id(&leaf.id).expect("the leaf exists");
            state
                .group(GroupIx(ix))
                .map(|g| g.containers.len())
                .unwrap_or(0)
        })
        .expect("the organization exists");
    assert!(branching >= 2, "the leaf sits in {branching} containers");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn cached_membership_equals_direct_through_writes(seed in any::<u64>()) {
        let doc = small_document();
        let org = doc.organization.clone();
        let engine = Engine::new(Cached::default(), Limits::default());
        engine.apply(&org, 1, &changes_of(&doc));
        check(&engine, &org, "the load");
        let mut rng = Rng(seed);
        let mut applied = 0;
        for step in 0..20 {
            let current = engine.export(&org).expect("the organization exists").0;
            let command = random_write(&mut rng, &current, step);
            applied += usize::from(engine.execute(&org, &command).is_ok());
            // Caches were filled by the previous round: a missed
            // invalidation answers from the old policy here.
            check(&engine, &org, &format!("{command:?}"));
        }
        prop_assert!(applied > 0, "no write was accepted");
        prop_assert!(engine.expander().stats().hits > 0, "the cache was never read");
    }
}
