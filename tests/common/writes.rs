//! Random writes shared by the randomized engine tests (the rule index and
//! what a check reads of the rules stay equal to their recomputation).

use super::rng::Rng;
use warden::engine::model::*;
use warden::engine::{Command, OrgDocument};
use warden::generate::{generate, Params};

/// The document `params` generate (valid parameters are the caller's).
pub fn generated(params: &Params) -> OrgDocument {
    generate(params)
        .expect("the test's parameters are valid")
        .document
}

/// A small generated organization (roles, profiles, nested groups,
/// users, a role tree and reporting chains) with few records: what the
/// random-write tests start from.
pub fn small_document() -> OrgDocument {
    generated(&Params {
        records: 50,
        manual_shares: 10,
        ..Params::small()
    })
}

/// The ids a random write picks from.
pub struct Ids {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub users: Vec<String>,
    pub modules: Vec<String>,
}

impl Ids {
    /// The ids of `doc`'s roles, groups, users and modules.
    pub fn of(doc: &OrgDocument) -> Ids {
        Ids {
            roles: doc.roles.iter().map(|r| r.id.clone()).collect(),
            groups: doc.groups.iter().map(|g| g.id.clone()).collect(),
            users: doc.users.iter().map(|u| u.id.clone()).collect(),
            modules: doc.modules.iter().map(|m| m.id.clone()).collect(),
        }
    }
}

/// A role, a role with its subordinates or a group (a role when there are
/// no groups).
pub fn random_set(rng: &mut Rng, roles: &[String], groups: &[String]) -> MemberSet {
    match rng.below(3) {
        0 => MemberSet::Role(rng.pick(roles).clone()),
        1 => MemberSet::RoleAndSubordinates(rng.pick(roles).clone()),
        _ if !groups.is_empty() => MemberSet::Group(rng.pick(groups).clone()),
        _ => MemberSet::Role(rng.pick(roles).clone()),
    }
}

/// A sharing rule created (id `new_id`) or, half the time, one of `doc`'s
/// rewritten: another module, `from`, `to` and access, and a criteria rule
/// instead of an owner one with a `criteria_percent` chance. `modules`
/// must not be empty.
pub fn random_rule(
    rng: &mut Rng,
    doc: &OrgDocument,
    new_id: String,
    criteria_percent: u64,
) -> Command {
    let Ids {
        roles,
        groups,
        modules,
        ..
    } = Ids::of(doc);
    let id = if !doc.sharing_rules.is_empty() && rng.chance(50) {
        rng.pick(&doc.sharing_rules).id.clone()
    } else {
        new_id
    };
    let criteria = rng.chance(criteria_percent);
    Command::PutSharingRule(SharingRuleDef {
        id,
        module: rng.pick(&modules).clone(),
        from: (!criteria).then(|| random_set(rng, &roles, &groups)),
        criteria: criteria.then(|| [("region".to_string(), "emea".to_string())].into()),
        to: random_set(rng, &roles, &groups),
        access: if rng.chance(50) {
            AccessLevel::Read
        } else {
            AccessLevel::ReadWrite
        },
    })
}
