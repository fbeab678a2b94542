//! Property tests on generated organizations: the derived answers agree
//! with Check record by record, sharing only ever adds access, admins are
//! always allowed and inactive users never, and the cached engine agrees
//! with the direct one through any sequence of writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
mod common;

use common::rng::Rng;
use proptest::prelude::*;
use warden::cache::Cached;
use warden::engine::model::*;
use warden::engine::{CheckRequest, Command, Direct, Engine, Expand, Limits, OrgDocument};

const ORG: &str = "gen";
const ACTIONS: [&str; 5] = ["view", "edit", "delete", "share", "export"];
const LEVELS: [AccessLevel; 3] = [AccessLevel::Read, AccessLevel::ReadWrite, AccessLevel::Full];

fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

/// A random organization: a role forest, users and guests, nested groups of
/// every member sort, profiles, records, shares and rules of both kinds.
fn generate(seed: u64) -> OrgDocument {
    let mut rng = Rng(seed);
    let owds = [
        Owd::Private,
        Owd::PublicRead,
        Owd::PublicReadWrite,
        Owd::PublicFull,
    ];
    let modules: Vec<ModuleDef> = (0..1 + rng.below(2))
        .map(|m| ModuleDef {
            id: format!("M{m}"),
            owd: *rng.pick(&owds),
            hierarchy_access: rng.chance(80),
            fields: vec!["a".into(), "b".into()],
            actions: BTreeMap::from([("export".to_string(), *rng.pick(&LEVELS))]),
        })
        .collect();
    let module_ids: Vec<String> = modules.iter().map(|m| m.id.clone()).collect();
    let profiles: Vec<ProfileDef> = (0..1 + rng.below(3))
        .map(|p| ProfileDef {
            id: format!("p{p}"),
            modules: module_ids
                .iter()
                .map(|m| {
                    let mut acts: Vec<String> = ACTIONS
                        .iter()
                        .filter(|_| rng.chance(75))
                        .map(|a| a.to_string())
                        .collect();
                    acts.push("assign".into());
                    (m.clone(), acts)
                })
                .collect(),
            view_all: rng.some(&module_ids, 10),
            modify_all: rng.some(&module_ids, 5),
            ..ProfileDef::default()
        })
        .collect();
    let profile_ids: Vec<String> = profiles.iter().map(|p| p.id.clone()).collect();
    let plain_profile_ids: Vec<String> = profiles
        .iter()
        .filter(|p| p.view_all.is_empty() && p.modify_all.is_empty())
        .map(|p| p.id.clone())
        .collect();
    let roles: Vec<RoleDef> = (0..2 + rng.below(5))
        .map(|r| RoleDef {
            id: format!("r{r}"),
            parent: if r == 0 || rng.chance(15) {
                None
            } else {
                Some(format!("r{}", rng.below(r)))
            },
            profiles: rng.some(&profile_ids, 60),
            assign_scope: if rng.chance(50) {
                AssignScope::All
            } else {
                AssignScope::SameAndSubordinate
            },
            ..RoleDef::default()
        })
        .collect();
    let role_ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();
    let n_users = 4 + rng.below(7);
    let mut users = Vec::new();
    for u in 0..n_users {
        let guest = u > 1 && rng.chance(15);
        let members: Vec<&UserDef> = users
            .iter()
            .filter(|x: &&UserDef| x.kind == UserKind::Member)
            .collect();
        users.push(UserDef {
            id: format!("u{u}"),
            kind: if guest {
                UserKind::Guest
            } else {
                UserKind::Member
            },
            role: if guest {
                None
            } else {
                Some(rng.pick(&role_ids).clone())
            },
            // view_all and modify_all are never given to a guest.
            profiles: if guest {
                rng.some(&plain_profile_ids, 30)
            } else {
                rng.some(&profile_ids, 30)
            },
            reports_to: if guest || members.is_empty() || rng.chance(30) {
                None
            } else {
                Some(rng.pick(&members).id.clone())
            },
            admin: u > 0 && rng.chance(8),
            active: u == 0 || rng.chance(90),
            ..UserDef::default()
        });
    }
    let user_ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let member_ids: Vec<String> = users
        .iter()
        .filter(|u| u.kind == UserKind::Member)
        .map(|u| u.id.clone())
        .collect();
    let mut groups: Vec<GroupDef> = Vec::new();
    for g in 0..rng.below(6) {
        // A personal group is never nested.
        let earlier: Vec<String> = groups
            .iter()
            .filter(|x| x.kind == GroupKind::Organization)
            .map(|x| x.id.clone())
            .collect();
        let personal = rng.chance(20);
        groups.push(GroupDef {
            id: format!("g{g}"),
            kind: if personal {
                GroupKind::Personal
            } else {
                GroupKind::Organization
            },
            owner: if personal {
                Some(rng.pick(&member_ids).clone())
            } else {
                None
            },
            users: rng.some(&user_ids, 25),
            roles: rng.some(&role_ids, 15),
            roles_and_subordinates: rng.some(&role_ids, 10),
            groups: rng.some(&earlier, 35),
            leads: rng.some(&member_ids, 10),
            ..GroupDef::default()
        });
        if personal {
            // A personal group lists users only and has no leads.
            let g = groups.last_mut().unwrap();
            g.roles.clear();
            g.roles_and_subordinates.clear();
            g.groups.clear();
            g.leads.clear();
        }
    }
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let owner = |rng: &mut Rng| {
        if !group_ids.is_empty() && rng.chance(25) {
            OwnerRef::Group(rng.pick(&group_ids).clone())
        } else {
            OwnerRef::User(rng.pick(&user_ids).clone())
        }
    };
    let regions = ["EMEA", "APAC"];
    let records: Vec<RecordDef> = (0..5 + rng.below(11))
        .map(|i| RecordDef {
            module: rng.pick(&module_ids).clone(),
            id: format!("rec{i}"),
            owner: owner(&mut rng),
            private: rng.chance(20),
            attributes: if rng.chance(50) {
                BTreeMap::from([("region".to_string(), rng.pick(&regions).to_string())])
            } else {
                BTreeMap::new()
            },
        })
        .collect();
    let org_group_ids: Vec<String> = groups
        .iter()
        .filter(|g| g.kind == GroupKind::Organization)
        .map(|g| g.id.clone())
        .collect();
    let member_set = |rng: &mut Rng| match rng.below(3) {
        0 => MemberSet::Role(rng.pick(&role_ids).clone()),
        1 => MemberSet::RoleAndSubordinates(rng.pick(&role_ids).clone()),
        // A personal group is never a rule's `from` set.
        _ if !org_group_ids.is_empty() => MemberSet::Group(rng.pick(&org_group_ids).clone()),
        _ => MemberSet::Role(rng.pick(&role_ids).clone()),
    };
    let sharing_rules: Vec<SharingRuleDef> = (0..rng.below(4))
        .map(|i| {
            let criteria = rng.chance(30);
            SharingRuleDef {
                id: format!("rule{i}"),
                module: rng.pick(&module_ids).clone(),
                from: if criteria {
                    None
                } else {
                    Some(member_set(&mut rng))
                },
                criteria: if criteria {
                    Some(BTreeMap::from([(
                        "region".to_string(),
                        rng.pick(&regions).to_string(),
                    )]))
                } else {
                    None
                },
                to: member_set(&mut rng),
                access: if rng.chance(50) {
                    AccessLevel::Read
                } else {
                    AccessLevel::ReadWrite
                },
            }
        })
        .collect();
    let mut shares = Vec::new();
    for r in &records {
        if rng.chance(30) {
            shares.push(ShareDef {
                module: r.module.clone(),
                record: r.id.clone(),
                grantee: random_grantee(&mut rng, &user_ids, &group_ids, &role_ids),
                level: *rng.pick(&LEVELS),
            });
        }
    }
    shares.sort_by(|a, b| {
        (&a.module, &a.record, &a.grantee).cmp(&(&b.module, &b.record, &b.grantee))
    });
    shares
        .dedup_by(|a, b| (&a.module, &a.record, &a.grantee) == (&b.module, &b.record, &b.grantee));
    OrgDocument {
        organization: ORG.into(),
        settings: Some(
            Settings {
                hierarchy_mode: if rng.chance(50) {
                    HierarchyMode::Role
                } else {
                    HierarchyMode::Reporting
                },
                ..Settings::default()
            }
            .into(),
        ),
        modules,
        profiles,
        roles,
        users,
        groups,
        records,
        shares,
        sharing_rules,
        ..OrgDocument::default()
    }
}

fn random_grantee(rng: &mut Rng, users: &[String], groups: &[String], roles: &[String]) -> Grantee {
    match rng.below(4) {
        0 => Grantee::User(rng.pick(users).clone()),
        1 if !groups.is_empty() => Grantee::Group(rng.pick(groups).clone()),
        2 => Grantee::Role(rng.pick(roles).clone()),
        _ => Grantee::RoleAndSubordinates(rng.pick(roles).clone()),
    }
}

fn load<X: Expand>(engine: &Engine<X>, doc: &OrgDocument) {
    engine
        .execute(
            ORG,
            &Command::Import {
                document: doc.clone(),
                replace: true,
            },
        )
        .unwrap_or_else(|e| panic!("generated document refused: {e}\n{doc:#?}"));
}

fn allowed<X: Expand>(
    engine: &Engine<X>,
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
    engine.check(ORG, &req, now()).unwrap().0.allowed
}

/// Every (subject, module, action, record) decision of the organization.
fn all_decisions<X: Expand>(
    engine: &Engine<X>,
    doc: &OrgDocument,
) -> Vec<(String, String, String, String, bool)> {
    let mut out = Vec::new();
    for u in &doc.users {
        for r in &doc.records {
            for a in ACTIONS {
                out.push((
                    u.id.clone(),
                    r.module.clone(),
                    a.to_string(),
                    r.id.clone(),
                    allowed(engine, &u.id, &r.module, a, &r.id),
                ));
            }
        }
    }
    out
}

fn current_doc<X: Expand>(engine: &Engine<X>) -> OrgDocument {
    engine.export(ORG).unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn filter_and_lookup_records_agree_with_check(seed in any::<u64>()) {
        let doc = generate(seed);
        let engine = Engine::new(Direct, Limits::default());
        load(&engine, &doc);
        for u in &doc.users {
            for m in &doc.modules {
                for a in ACTIONS {
                    let (ids, _) = engine.lookup_records(ORG, &u.id, &m.id, a, now()).unwrap();
                    let (plan, _) = engine.filter(ORG, &u.id, &m.id, a, now()).unwrap();
                    for r in doc.records.iter().filter(|r| r.module == m.id) {
                        let want = allowed(&engine, &u.id, &m.id, a, &r.id);
                        let listed = ids.iter().any(|i| **i == *r.id);
                        prop_assert_eq!(listed, want, "LookupRecords {} {} {}", u.id, a, r.id);
                        prop_assert_eq!(plan.selects(&r.owner, r.private, &r.id), want, "Filter {} {} {} {:?}", u.id, a, r.id, plan);
                    }
                }
            }
        }
    }

    #[test]
    fn lookup_subjects_agrees_with_check(seed in any::<u64>()) {
        let doc = generate(seed);
        let engine = Engine::new(Direct, Limits::default());
        load(&engine, &doc);
        for r in &doc.records {
            for a in ACTIONS {
                let (subjects, _) = engine.lookup_subjects(ORG, &r.module, &r.id, a, None).unwrap();
                let want: Vec<String> = doc.users.iter().filter(|u| allowed(&engine, &u.id, &r.module, a, &r.id)).map(|u| u.id.clone()).collect();
                let mut want = want;
                want.sort();
                prop_assert_eq!(subjects, want);
            }
        }
    }

    #[test]
    fn admins_always_and_inactive_users_never(seed in any::<u64>()) {
        let doc = generate(seed);
        let engine = Engine::new(Direct, Limits::default());
        load(&engine, &doc);
        for (subject, module, action, record, ok) in all_decisions(&engine, &doc) {
            let user = doc.users.iter().find(|u| u.id == subject).unwrap();
            if !user.active {
                prop_assert!(!ok, "inactive {} allowed {} on {}", subject, action, record);
            } else if user.admin {
                prop_assert!(ok, "admin {} denied {} on {}/{}", subject, action, module, record);
            }
        }
    }

    #[test]
    fn adding_a_share_or_a_rule_never_removes_access(seed in any::<u64>(), extra in any::<u64>()) {
        let doc = generate(seed);
        let engine = Engine::new(Direct, Limits::default());
        load(&engine, &doc);
        let before = all_decisions(&engine, &doc);
        let mut rng = Rng(extra);
        let user_ids: Vec<String> = doc.users.iter().map(|u| u.id.clone()).collect();
        let group_ids: Vec<String> = doc.groups.iter().map(|g| g.id.clone()).collect();
        let role_ids: Vec<String> = doc.roles.iter().map(|r| r.id.clone()).collect();
        let record = rng.pick(&doc.records).clone();
        let grantee = random_grantee(&mut rng, &user_ids, &group_ids, &role_ids);
        // A share to a grantee that has one already replaces it: keep the
        // level at least what it was, so the write only adds.
        let existing = doc.shares.iter()
            .filter(|s| s.module == record.module && s.record == record.id && s.grantee == grantee)
            .map(|s| s.level)
            .max()
            .unwrap_or(AccessLevel::Read);
        engine.execute(ORG, &Command::Share(vec![ShareDef {
            module: record.module.clone(),
            record: record.id.clone(),
            grantee,
            level: (*rng.pick(&LEVELS)).max(existing),
        }])).unwrap();
        engine.execute(ORG, &Command::PutSharingRule(SharingRuleDef {
            id: "extra-rule".into(),
            module: record.module.clone(),
            from: Some(MemberSet::RoleAndSubordinates(rng.pick(&role_ids).clone())),
            criteria: None,
            to: MemberSet::Role(rng.pick(&role_ids).clone()),
            access: AccessLevel::ReadWrite,
        })).unwrap();
        let after = all_decisions(&engine, &doc);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(!b.4 || a.4, "access lost: {:?}", b);
        }
    }

    #[test]
    fn cached_engine_agrees_with_direct_engine_through_writes(seed in any::<u64>(), writes in any::<u64>()) {
        let doc = generate(seed);
        let direct = Engine::new(Direct, Limits::default());
        let cached = Engine::new(Cached::default(), Limits::default());
        load(&direct, &doc);
        load(&cached, &doc);
        let mut rng = Rng(writes);
        let mut applied = 0;
        for step in 0..12 {
            // Warm every cache entry the decisions use, then write.
            let _ = all_decisions(&cached, &current_doc(&cached));
            let command = random_write(&mut rng, &current_doc(&direct), step);
            let a = direct.execute(ORG, &command).map_err(|e| e.to_string());
            let b = cached.execute(ORG, &command).map_err(|e| e.to_string());
            prop_assert_eq!(&a, &b, "write {:?}", command);
            applied += usize::from(a.is_ok());
            let now_doc = current_doc(&direct);
            prop_assert_eq!(all_decisions(&direct, &now_doc), all_decisions(&cached, &now_doc), "after {:?}", command);
            for u in &now_doc.users {
                prop_assert_eq!(direct.user_view(ORG, &u.id).unwrap().0, cached.user_view(ORG, &u.id).unwrap().0);
            }
            for g in &now_doc.groups {
                prop_assert_eq!(direct.group_view(ORG, &g.id).unwrap().0, cached.group_view(ORG, &g.id).unwrap().0);
            }
        }
        prop_assert!(applied > 0, "no write was accepted");
    }
}

/// A write that changes memberships, roles, reporting lines or ownership.
fn random_write(rng: &mut Rng, doc: &OrgDocument, step: usize) -> Command {
    let user_ids: Vec<String> = doc.users.iter().map(|u| u.id.clone()).collect();
    let group_ids: Vec<String> = doc.groups.iter().map(|g| g.id.clone()).collect();
    let role_ids: Vec<String> = doc.roles.iter().map(|r| r.id.clone()).collect();
    match rng.below(9) {
        0 | 1 => {
            let mut user = rng.pick(&doc.users).clone();
            if user.kind == UserKind::Member {
                user.role = Some(rng.pick(&role_ids).clone());
                let others: Vec<&UserDef> = doc
                    .users
                    .iter()
                    .filter(|u| u.id != user.id && u.kind == UserKind::Member)
                    .collect();
                user.reports_to = if others.is_empty() || rng.chance(30) {
                    None
                } else {
                    Some(rng.pick(&others).id.clone())
                };
            }
            Command::PutUser(user)
        }
        2 | 3 if !doc.groups.is_empty() => {
            let mut group = rng.pick(&doc.groups).clone();
            group.users = rng.some(&user_ids, 30);
            group.roles = rng.some(&role_ids, 20);
            group.roles_and_subordinates = rng.some(&role_ids, 15);
            let org_group_ids: Vec<String> = doc
                .groups
                .iter()
                .filter(|g| g.kind == GroupKind::Organization)
                .map(|g| g.id.clone())
                .collect();
            group.groups = rng.some(&org_group_ids, 25);
            let member_ids: Vec<String> = doc
                .users
                .iter()
                .filter(|u| u.kind == UserKind::Member)
                .map(|u| u.id.clone())
                .collect();
            group.leads = rng.some(&member_ids, 15);
            if group.kind == GroupKind::Personal {
                group.roles.clear();
                group.roles_and_subordinates.clear();
                group.groups.clear();
                group.leads.clear();
            }
            Command::PutGroup(group)
        }
        4 => {
            let mut role = rng.pick(&doc.roles).clone();
            role.parent = if rng.chance(25) {
                None
            } else {
                Some(rng.pick(&role_ids).clone())
            };
            Command::PutRole(role)
        }
        5 => Command::PutRole(RoleDef {
            id: format!("new-role-{step}"),
            parent: Some(rng.pick(&role_ids).clone()),
            ..RoleDef::default()
        }),
        6 if !doc.groups.is_empty() => Command::DeleteGroup {
            id: rng.pick(&group_ids).clone(),
            transfer_to: Some(OwnerRef::User(rng.pick(&user_ids).clone())),
            // Mostly the cascade; sometimes a refusal, which both engines must agree on.
            cascade: rng.chance(80),
        },
        7 if doc.users.len() > 2 => {
            let id = rng.pick(&user_ids).clone();
            let to = user_ids
                .iter()
                .find(|u| **u != id)
                .cloned()
                .map(OwnerRef::User);
            Command::DeleteUser {
                id,
                transfer_to: to,
                cascade: rng.chance(80),
            }
        }
        _ => {
            let r = rng.pick(&doc.records).clone();
            let owner = if !group_ids.is_empty() && rng.chance(40) {
                OwnerRef::Group(rng.pick(&group_ids).clone())
            } else {
                OwnerRef::User(rng.pick(&user_ids).clone())
            };
            Command::SetOwner(RecordDef { owner, ..r }.into())
        }
    }
}
