//! Nobody gains through a write what its actor could not give (SPEC 3a).
//!
//! Random organizations (valid under the model rules of SPEC section 1) take
//! random sequences of Grant writes and personal-group writes by random
//! non-admin actors, each through `Engine::authorize` and then `execute`, as
//! the service does. After every accepted write `W` by actor `A`, for every
//! user `U`, record `R` and action `X` in {view, edit, delete, share} whose
//! Check went from DENY to ALLOW, at least one of these holds:
//!
//! (a) `R` did not exist before `W`, `W` is the SetOwner that creates it, `A`
//!     was allowed `create` on `R`'s module before `W`, and `R`'s owner is
//!     `A` itself, a group, or a user inside `A`'s assign scope (computed
//!     here from the document: `A`'s role has scope ALL, or the owner's role
//!     is `A`'s role or below it);
//! (b) `R` existed before `W`, and the level `X` requires is at most `A`'s
//!     own record level on `R` before `W` (what `A` could give);
//! (c) `W` puts a personal group that `A` owns, and `U` is a user `W` newly
//!     lists in it (the owner decides who is in its circle).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use common::rng::Rng;
use warden::engine::model::*;
use warden::engine::plan::RecordWrite;
use warden::engine::{CheckRequest, Command, Direct, Engine, Limits, OrgDocument};

const ORG: &str = "esc";
const ACTIONS: [&str; 4] = ["view", "edit", "delete", "share"];
const ALL_ACTIONS: [&str; 6] = ["view", "create", "edit", "delete", "share", "assign"];
const LEVELS: [AccessLevel; 3] = [AccessLevel::Read, AccessLevel::ReadWrite, AccessLevel::Full];

fn now() -> DateTime<Utc> {
    "2026-11-30T10:00:00Z".parse().unwrap()
}

fn required(action: &str) -> AccessLevel {
    match action {
        "view" => AccessLevel::Read,
        "edit" => AccessLevel::ReadWrite,
        _ => AccessLevel::Full,
    }
}

/// A random organization that keeps the model rules: personal groups list
/// users only, are never nested nor a rule's `from`; guests never lead and
/// never hold view_all / modify_all.
fn generate(rng: &mut Rng) -> OrgDocument {
    let owds = [
        Owd::Private,
        Owd::PublicRead,
        Owd::PublicReadWrite,
        Owd::PublicFull,
        Owd::PublicFull,
    ];
    let modules: Vec<ModuleDef> = (0..1 + rng.below(2))
        .map(|m| ModuleDef {
            id: format!("M{m}"),
            owd: *rng.pick(&owds),
            hierarchy_access: rng.chance(70),
            fields: vec!["a".into()],
            actions: BTreeMap::new(),
        })
        .collect();
    let module_ids: Vec<String> = modules.iter().map(|m| m.id.clone()).collect();
    let all = |ids: &[String]| -> BTreeMap<String, Vec<String>> {
        ids.iter()
            .map(|m| {
                (
                    m.clone(),
                    ALL_ACTIONS.iter().map(|a| a.to_string()).collect(),
                )
            })
            .collect()
    };
    let mut profiles = vec![ProfileDef {
        id: "full".into(),
        modules: all(&module_ids),
        ..ProfileDef::default()
    }];
    profiles.push(ProfileDef {
        id: "some".into(),
        modules: module_ids
            .iter()
            .map(|m| {
                let acts = ALL_ACTIONS
                    .iter()
                    .filter(|_| rng.chance(60))
                    .map(|a| a.to_string())
                    .collect();
                (m.clone(), acts)
            })
            .collect(),
        ..ProfileDef::default()
    });
    profiles.push(ProfileDef {
        id: "audit".into(),
        modules: all(&module_ids),
        view_all: rng.some(&module_ids, 50),
        modify_all: rng.some(&module_ids, 20),
        ..ProfileDef::default()
    });
    let roles: Vec<RoleDef> = (0..2 + rng.below(3))
        .map(|r| RoleDef {
            id: format!("r{r}"),
            parent: (r > 0 && rng.chance(80)).then(|| format!("r{}", rng.below(r))),
            profiles: vec![if rng.chance(70) { "full" } else { "some" }.into()],
            assign_scope: if rng.chance(40) {
                AssignScope::All
            } else {
                AssignScope::SameAndSubordinate
            },
            ..RoleDef::default()
        })
        .collect();
    let role_ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();
    let mut users = Vec::new();
    for u in 0..5 + rng.below(5) {
        let guest = u > 0 && rng.chance(20);
        users.push(UserDef {
            id: format!("u{u}"),
            kind: if guest {
                UserKind::Guest
            } else {
                UserKind::Member
            },
            role: (!guest).then(|| rng.pick(&role_ids).clone()),
            profiles: if guest {
                rng.some(&["full".to_string(), "some".to_string()], 50)
            } else if rng.chance(15) {
                vec!["audit".into()]
            } else {
                Vec::new()
            },
            admin: u == 0,
            active: u == 0 || rng.chance(92),
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
    for g in 0..1 + rng.below(5) {
        let personal = rng.chance(45);
        let nestable: Vec<String> = groups
            .iter()
            .filter(|x| x.kind == GroupKind::Organization)
            .map(|x| x.id.clone())
            .collect();
        groups.push(if personal {
            GroupDef {
                id: format!("g{g}"),
                kind: GroupKind::Personal,
                owner: Some(rng.pick(&user_ids).clone()),
                users: rng.some(&user_ids, 35),
                ..GroupDef::default()
            }
        } else {
            GroupDef {
                id: format!("g{g}"),
                users: rng.some(&user_ids, 30),
                roles: rng.some(&role_ids, 15),
                roles_and_subordinates: rng.some(&role_ids, 10),
                groups: rng.some(&nestable, 30),
                leads: rng.some(&member_ids, 20),
                ..GroupDef::default()
            }
        });
    }
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let org_group_ids: Vec<String> = groups
        .iter()
        .filter(|g| g.kind == GroupKind::Organization)
        .map(|g| g.id.clone())
        .collect();
    let records: Vec<RecordDef> = (0..4 + rng.below(8))
        .map(|i| RecordDef {
            module: rng.pick(&module_ids).clone(),
            id: format!("rec{i}"),
            owner: random_owner(rng, &user_ids, &group_ids),
            private: rng.chance(30),
            attributes: random_attributes(rng),
        })
        .collect();
    let mut shares: BTreeMap<(String, String, Grantee), AccessLevel> = BTreeMap::new();
    for r in &records {
        for _ in 0..rng.below(3) {
            let grantee = random_grantee(rng, &user_ids, &group_ids, &role_ids);
            shares.insert(
                (r.module.clone(), r.id.clone(), grantee),
                *rng.pick(&LEVELS),
            );
        }
    }
    let member_set = |rng: &mut Rng, groups: &[String]| match rng.below(3) {
        0 => MemberSet::Role(rng.pick(&role_ids).clone()),
        1 => MemberSet::RoleAndSubordinates(rng.pick(&role_ids).clone()),
        _ if !groups.is_empty() => MemberSet::Group(rng.pick(groups).clone()),
        _ => MemberSet::Role(rng.pick(&role_ids).clone()),
    };
    let sharing_rules: Vec<SharingRuleDef> = (0..rng.below(4))
        .map(|i| {
            let criteria = rng.chance(40);
            SharingRuleDef {
                id: format!("rule{i}"),
                module: rng.pick(&module_ids).clone(),
                from: (!criteria).then(|| member_set(rng, &org_group_ids)),
                criteria: criteria
                    .then(|| BTreeMap::from([("region".to_string(), "EMEA".to_string())])),
                to: member_set(rng, &group_ids),
                access: if rng.chance(50) {
                    AccessLevel::Read
                } else {
                    AccessLevel::ReadWrite
                },
            }
        })
        .collect();
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
        shares: shares
            .into_iter()
            .map(|((module, record, grantee), level)| ShareDef {
                module,
                record,
                grantee,
                level,
            })
            .collect(),
        sharing_rules,
        ..OrgDocument::default()
    }
}

fn random_owner(rng: &mut Rng, users: &[String], groups: &[String]) -> OwnerRef {
    if !groups.is_empty() && rng.chance(30) {
        OwnerRef::Group(rng.pick(groups).clone())
    } else {
        OwnerRef::User(rng.pick(users).clone())
    }
}

fn random_attributes(rng: &mut Rng) -> BTreeMap<String, String> {
    if rng.chance(50) {
        BTreeMap::from([(
            "region".to_string(),
            rng.pick(&["EMEA", "APAC"]).to_string(),
        )])
    } else {
        BTreeMap::new()
    }
}

fn random_grantee(rng: &mut Rng, users: &[String], groups: &[String], roles: &[String]) -> Grantee {
    match rng.below(4) {
        0 | 1 => Grantee::User(rng.pick(users).clone()),
        2 if !groups.is_empty() => Grantee::Group(rng.pick(groups).clone()),
        2 => Grantee::Role(rng.pick(roles).clone()),
        _ => Grantee::RoleAndSubordinates(rng.pick(roles).clone()),
    }
}

/// A Grant or personal-group write an actor might try, legitimate or not.
fn random_write(rng: &mut Rng, doc: &OrgDocument, actor: &str, step: usize) -> Command {
    let user_ids: Vec<String> = doc.users.iter().map(|u| u.id.clone()).collect();
    let group_ids: Vec<String> = doc.groups.iter().map(|g| g.id.clone()).collect();
    let role_ids: Vec<String> = doc.roles.iter().map(|r| r.id.clone()).collect();
    let own_groups: Vec<&GroupDef> = doc
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Personal && g.owner.as_deref() == Some(actor))
        .collect();
    let record = (!doc.records.is_empty()).then(|| rng.pick(&doc.records).clone());
    match (rng.below(8), record) {
        (0 | 1, Some(r)) => Command::SetOwner(RecordWrite {
            module: r.module,
            id: r.id,
            owner: rng
                .chance(35)
                .then(|| random_owner(rng, &user_ids, &group_ids)),
            private: rng.chance(60).then(|| rng.chance(30)),
            attributes: rng.chance(30).then(|| random_attributes(rng)),
        }),
        (2, _) => Command::SetOwner(RecordWrite {
            module: rng.pick(&doc.modules).id.clone(),
            id: format!("new{step}"),
            owner: Some(if rng.chance(40) {
                OwnerRef::User(actor.to_string())
            } else {
                random_owner(rng, &user_ids, &group_ids)
            }),
            private: rng.chance(50).then(|| rng.chance(30)),
            attributes: rng.chance(30).then(|| random_attributes(rng)),
        }),
        (3, Some(r)) => Command::Share(vec![ShareDef {
            module: r.module,
            record: r.id,
            grantee: random_grantee(rng, &user_ids, &group_ids, &role_ids),
            level: *rng.pick(&LEVELS),
        }]),
        (4, _) if !doc.shares.is_empty() => Command::Unshare(vec![rng.pick(&doc.shares).clone()]),
        (5, Some(r)) => Command::DeleteRecord {
            module: r.module,
            id: r.id,
        },
        (6, _) => {
            let mut group = match own_groups.first() {
                Some(g) if rng.chance(70) => (*g).clone(),
                _ if rng.chance(30) && !doc.groups.is_empty() => rng.pick(&doc.groups).clone(),
                _ => GroupDef {
                    id: format!("circle{step}"),
                    kind: GroupKind::Personal,
                    owner: Some(actor.to_string()),
                    ..GroupDef::default()
                },
            };
            group.users = rng.some(&user_ids, 40);
            if rng.chance(10) {
                group.owner = Some(rng.pick(&user_ids).clone());
            }
            if rng.chance(10) {
                group.leads = vec![actor.to_string()];
            }
            Command::PutGroup(group)
        }
        _ if !doc.groups.is_empty() => {
            let id = match own_groups.first() {
                Some(g) if rng.chance(70) => g.id.clone(),
                _ => rng.pick(&group_ids).clone(),
            };
            Command::DeleteGroup {
                id,
                transfer_to: Some(random_owner(rng, &user_ids, &group_ids)),
                cascade: rng.chance(70),
            }
        }
        _ => Command::Unshare(Vec::new()),
    }
}

type Key = (String, String, String, &'static str);

/// Every (user, module, record, action) that is allowed.
fn allowed_set(engine: &Engine<Direct>, doc: &OrgDocument) -> BTreeSet<Key> {
    let mut out = BTreeSet::new();
    for u in &doc.users {
        for r in &doc.records {
            for a in ACTIONS {
                let req = CheckRequest {
                    subject: u.id.clone().into(),
                    module: r.module.clone().into(),
                    action: a.into(),
                    record: Some(r.id.clone().into()),
                    ..CheckRequest::default()
                };
                if engine.check(ORG, &req, now()).unwrap().0.allowed {
                    out.insert((u.id.clone(), r.module.clone(), r.id.clone(), a));
                }
            }
        }
    }
    out
}

/// The actor's own record level: the step-7 level any action its profiles
/// allow reports (NONE when they allow none).
fn own_level(engine: &Engine<Direct>, actor: &str, module: &str, record: &str) -> AccessLevel {
    ["view", "create", "edit", "delete", "share"]
        .iter()
        .map(|a| {
            let req = CheckRequest {
                subject: actor.into(),
                module: module.into(),
                action: a.to_string().into(),
                record: Some(record.into()),
                ..CheckRequest::default()
            };
            engine.check(ORG, &req, now()).unwrap().0.level
        })
        .max()
        .unwrap_or(AccessLevel::None)
}

/// Step 8 for a new record's owner, from the document alone.
fn in_scope_by_model(doc: &OrgDocument, actor: &str, owner: &OwnerRef) -> bool {
    let OwnerRef::User(target) = owner else {
        return true;
    };
    if target == actor {
        return true;
    }
    let role_of = |u: &str| {
        doc.users
            .iter()
            .find(|x| x.id == u)
            .and_then(|x| x.role.clone())
    };
    let Some(actor_role) = role_of(actor) else {
        return false;
    };
    let role = doc.roles.iter().find(|r| r.id == actor_role).unwrap();
    if role.assign_scope == AssignScope::All {
        return true;
    }
    let Some(mut r) = role_of(target) else {
        return false;
    };
    loop {
        if r == actor_role {
            return true;
        }
        match doc
            .roles
            .iter()
            .find(|x| x.id == r)
            .and_then(|x| x.parent.clone())
        {
            Some(p) => r = p,
            None => return false,
        }
    }
}

#[derive(Default)]
struct Tally {
    accepted: BTreeMap<&'static str, usize>,
    refused: usize,
    gains: usize,
}

fn kind(command: &Command) -> &'static str {
    match command {
        Command::SetOwner(w) if w.owner.is_some() && w.private.is_none() => "set_owner",
        Command::SetOwner(_) => "set_owner_fields",
        Command::Share(_) => "share",
        Command::Unshare(_) => "unshare",
        Command::DeleteRecord { .. } => "delete_record",
        Command::PutGroup(_) => "put_group",
        Command::DeleteGroup { .. } => "delete_group",
        _ => "other",
    }
}

fn run(seed: u64, writes: usize, tally: &mut Tally) {
    let mut rng = Rng(seed);
    let engine = Engine::new(Direct, Limits::default());
    let document = generate(&mut rng);
    engine
        .execute(
            ORG,
            &Command::Import {
                document,
                replace: true,
            },
        )
        .unwrap_or_else(|e| panic!("seed {seed}: generated document refused: {e}"));
    for step in 0..writes {
        let doc = engine.export(ORG).unwrap().0;
        let actors: Vec<&UserDef> = doc.users.iter().filter(|u| !u.admin).collect();
        let actor = rng.pick(&actors).id.clone();
        let command = random_write(&mut rng, &doc, &actor, step);
        let before = allowed_set(&engine, &doc);
        if engine
            .authorize(ORG, &actor, false, &command, now())
            .and_then(|_| engine.execute(ORG, &command))
            .is_err()
        {
            tally.refused += 1;
            continue;
        }
        *tally.accepted.entry(kind(&command)).or_default() += 1;
        let after_doc = engine.export(ORG).unwrap().0;
        let after = allowed_set(&engine, &after_doc);
        let before_engine = Engine::new(Direct, Limits::default());
        let mut gains = after.difference(&before).peekable();
        if gains.peek().is_some() {
            before_engine
                .execute(
                    ORG,
                    &Command::Import {
                        document: doc.clone(),
                        replace: true,
                    },
                )
                .unwrap();
        }
        for (user, module, record, action) in gains {
            tally.gains += 1;
            let existed = doc
                .records
                .iter()
                .any(|r| r.module == *module && r.id == *record);
            let newly_listed = match &command {
                Command::PutGroup(g) if g.owner.as_deref() == Some(actor.as_str()) => {
                    let old: Vec<String> = doc
                        .groups
                        .iter()
                        .find(|x| x.id == g.id)
                        .map(|x| x.users.clone())
                        .unwrap_or_default();
                    g.users.contains(user) && !old.contains(user)
                }
                _ => false,
            };
            let explained = if !existed {
                match &command {
                    Command::SetOwner(w) if w.module == *module && w.id == *record => {
                        let create = CheckRequest {
                            subject: actor.clone().into(),
                            module: module.clone().into(),
                            action: "create".into(),
                            ..CheckRequest::default()
                        };
                        let may_create =
                            before_engine.check(ORG, &create, now()).unwrap().0.allowed;
                        may_create
                            && w.owner
                                .as_ref()
                                .is_some_and(|o| in_scope_by_model(&doc, &actor, o))
                    }
                    _ => false,
                }
            } else {
                required(action) <= own_level(&before_engine, &actor, module, record)
            };
            assert!(
                explained || newly_listed,
                "seed {seed}, step {step}: {actor} wrote {command:?}\n\
                 and {user} gained {action} on {module}/{record}, which {actor} could not give"
            );
        }
    }
}

#[test]
fn no_write_by_a_non_admin_gives_more_than_its_actor_could() {
    let mut tally = Tally::default();
    for seed in 0..100u64 {
        run(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xE5CA_1A7E,
            30,
            &mut tally,
        );
    }
    println!(
        "accepted {:?}, refused {}, gains checked {}",
        tally.accepted, tally.refused, tally.gains
    );
    // The run must exercise every kind of write and see access change hands.
    for k in [
        "set_owner",
        "set_owner_fields",
        "share",
        "unshare",
        "delete_record",
        "put_group",
        "delete_group",
    ] {
        assert!(
            tally.accepted.get(k).copied().unwrap_or(0) >= 5,
            "too few accepted {k}: {:?}",
            tally.accepted
        );
    }
    assert!(
        tally.refused > 100 && tally.gains > 100,
        "refused {}, gains {}",
        tally.refused,
        tally.gains
    );
}
