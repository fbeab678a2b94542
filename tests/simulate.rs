//! What-if simulation: on generated organizations the simulated gains and
//! losses equal the difference of LookupRecords before and after the
//! writes are really applied; Simulate commits nothing; a refused batch
//! gets the code the real writes get; the same through gRPC and the CLI.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
mod common;

use common::rng::Rng;
use proptest::prelude::*;
use warden::cache::Cached;
use warden::engine::model::*;
use warden::engine::simulate::{AccessChange, FieldChange, SimWrite};
use warden::engine::{
    Command, Direct, Engine, Expand, FieldsQuery, Limits, OrgDocument, SimulateOptions, Simulation,
    Writer,
};
use warden::generate::{generate, Params};

const ORG: &str = "sim";
const ACTIONS: [&str; 4] = ["view", "edit", "delete", "export"];

fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

/// A small generated organization of the crm-large shape, varied by seed.
fn organization(seed: u64) -> OrgDocument {
    let mut rng = Rng(seed);
    let params = Params {
        organization: ORG.into(),
        seed,
        users: 8 + rng.below(20),
        guest_share: 0.1,
        inactive_share: 0.05,
        roles: 4 + rng.below(6),
        role_depth: 2 + rng.below(2),
        groups: 4 + rng.below(5),
        group_depth: 2,
        sharing_rules: rng.below(8),
        criteria_share: 0.3,
        modules: 2 + rng.below(2),
        records: 20 + rng.below(60),
        private_share: 0.15,
        group_owned_share: 0.15,
        attributed_share: 0.4,
        manual_shares: rng.below(25),
    };
    let mut doc = generate(&params).expect("valid parameters").document;
    // At these small sizes the generator may draw a personal group as a
    // rule's `from` set, which the engine rightly refuses: leave those out.
    let personal: BTreeSet<String> = doc
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Personal)
        .map(|g| g.id.clone())
        .collect();
    doc.sharing_rules
        .retain(|r| !matches!(&r.from, Some(MemberSet::Group(g)) if personal.contains(g)));
    if rng.chance(30) {
        doc.settings = Some(
            Settings {
                hierarchy_mode: HierarchyMode::Reporting,
                ..Settings::default()
            }
            .into(),
        );
    }
    doc
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
        .unwrap_or_else(|e| panic!("generated document refused: {e}"));
}

fn ids(doc: &OrgDocument) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
    (
        doc.users.iter().map(|u| u.id.clone()).collect(),
        doc.groups.iter().map(|g| g.id.clone()).collect(),
        doc.roles.iter().map(|r| r.id.clone()).collect(),
        doc.profiles.iter().map(|p| p.id.clone()).collect(),
    )
}

fn member_set(rng: &mut Rng, groups: &[String], roles: &[String]) -> MemberSet {
    match rng.below(3) {
        0 => MemberSet::Role(rng.pick(roles).clone()),
        1 if !groups.is_empty() => MemberSet::Group(rng.pick(groups).clone()),
        _ => MemberSet::RoleAndSubordinates(rng.pick(roles).clone()),
    }
}

fn grantee(rng: &mut Rng, users: &[String], groups: &[String], roles: &[String]) -> Grantee {
    match rng.below(4) {
        0 => Grantee::User(rng.pick(users).clone()),
        1 if !groups.is_empty() => Grantee::Group(rng.pick(groups).clone()),
        2 => Grantee::Role(rng.pick(roles).clone()),
        _ => Grantee::RoleAndSubordinates(rng.pick(roles).clone()),
    }
}

/// A random write of any kind the simulation reaches differently: users,
/// groups, roles, profiles, modules, settings, records, shares and rules.
fn random_write(rng: &mut Rng, doc: &OrgDocument, step: usize) -> Command {
    let (users, groups, roles, profiles) = ids(doc);
    let org_groups: Vec<String> = doc
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Organization)
        .map(|g| g.id.clone())
        .collect();
    let members: Vec<String> = doc
        .users
        .iter()
        .filter(|u| u.kind == UserKind::Member)
        .map(|u| u.id.clone())
        .collect();
    match rng.below(16) {
        0 | 1 => {
            let mut user = rng.pick(&doc.users).clone();
            if user.kind == UserKind::Member {
                user.role = Some(rng.pick(&roles).clone());
                let others: Vec<&String> = members.iter().filter(|m| **m != user.id).collect();
                user.reports_to = if others.is_empty() || rng.chance(30) {
                    None
                } else {
                    Some((*rng.pick(&others)).clone())
                };
            }
            if rng.chance(20) {
                user.active = !user.active;
            }
            if rng.chance(15) {
                user.profiles = rng.some(&profiles, 30);
            }
            Command::PutUser(user)
        }
        2 | 3 if !doc.groups.is_empty() => {
            let mut group = rng.pick(&doc.groups).clone();
            group.users = rng.some(&users, 30);
            if group.kind == GroupKind::Organization {
                group.roles = rng.some(&roles, 20);
                group.roles_and_subordinates = rng.some(&roles, 15);
                group.groups = rng.some(&org_groups, 25);
                group.leads = rng.some(&members, 15);
            }
            Command::PutGroup(group)
        }
        4 => {
            let mut role = rng.pick(&doc.roles).clone();
            if rng.chance(70) {
                role.parent = if rng.chance(25) {
                    None
                } else {
                    Some(rng.pick(&roles).clone())
                };
            } else {
                role.profiles = rng.some(&profiles, 40);
            }
            Command::PutRole(role)
        }
        5 if !doc.groups.is_empty() => Command::DeleteGroup {
            id: rng.pick(&groups).clone(),
            transfer_to: Some(OwnerRef::User(rng.pick(&users).clone())),
            cascade: rng.chance(80),
        },
        6 => {
            let r = rng.pick(&doc.records).clone();
            let owner = if !groups.is_empty() && rng.chance(30) {
                OwnerRef::Group(rng.pick(&groups).clone())
            } else {
                OwnerRef::User(rng.pick(&users).clone())
            };
            let mut write: warden::engine::plan::RecordWrite = RecordDef { owner, ..r }.into();
            if rng.chance(30) {
                write.private = Some(rng.chance(50));
            }
            Command::SetOwner(write)
        }
        7 => {
            let r = rng.pick(&doc.records).clone();
            Command::Share(vec![ShareDef {
                module: r.module,
                record: r.id,
                grantee: grantee(rng, &users, &groups, &roles),
                level: *rng.pick(&[AccessLevel::Read, AccessLevel::ReadWrite, AccessLevel::Full]),
            }])
        }
        8 if !doc.shares.is_empty() => Command::Unshare(vec![rng.pick(&doc.shares).clone()]),
        9 => {
            let module = rng.pick(&doc.modules).id.clone();
            let criteria = rng.chance(30);
            let id = if !doc.sharing_rules.is_empty() && rng.chance(50) {
                rng.pick(&doc.sharing_rules).id.clone()
            } else {
                format!("sim-rule-{step}")
            };
            Command::PutSharingRule(SharingRuleDef {
                id,
                module,
                from: (!criteria).then(|| member_set(rng, &org_groups, &roles)),
                criteria: criteria
                    .then(|| BTreeMap::from([("region".to_string(), "EMEA".to_string())])),
                to: member_set(rng, &org_groups, &roles),
                access: if rng.chance(50) {
                    AccessLevel::Read
                } else {
                    AccessLevel::ReadWrite
                },
            })
        }
        10 if !doc.sharing_rules.is_empty() => {
            Command::DeleteSharingRule(rng.pick(&doc.sharing_rules).id.clone())
        }
        11 => {
            let mut profile = rng.pick(&doc.profiles).clone();
            for acts in profile.modules.values_mut() {
                if rng.chance(40) {
                    acts.retain(|a| a != "edit");
                } else if rng.chance(40) {
                    acts.push("delete".into());
                    acts.sort();
                    acts.dedup();
                }
            }
            if let Some(m) = doc.modules.first() {
                if rng.chance(30) {
                    profile.fields.insert(
                        m.id.clone(),
                        BTreeMap::from([(
                            m.fields.first().cloned().unwrap_or_default(),
                            FieldLevel::ReadOnly,
                        )]),
                    );
                }
            }
            Command::PutProfile(profile)
        }
        12 => {
            let mut module = rng.pick(&doc.modules).clone();
            module.owd = *rng.pick(&[
                Owd::Private,
                Owd::PublicRead,
                Owd::PublicReadWrite,
                Owd::PublicFull,
            ]);
            module.hierarchy_access = rng.chance(70);
            Command::PutModule(module)
        }
        13 => Command::UpdateSettings(SettingsPatch {
            hierarchy_mode: Some(if rng.chance(50) {
                HierarchyMode::Role
            } else {
                HierarchyMode::Reporting
            }),
            ..SettingsPatch::default()
        }),
        14 => {
            let r = rng.pick(&doc.records);
            Command::DeleteRecord {
                module: r.module.clone(),
                id: r.id.clone(),
            }
        }
        _ => {
            let id = rng.pick(&users).clone();
            let to = users
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
    }
}

type Access = BTreeMap<(String, String, String), Vec<String>>;

/// LookupRecords of every (subject, module, action) of the organization.
fn access<X: Expand>(
    engine: &Engine<X>,
    users: &BTreeSet<String>,
    modules: &BTreeSet<String>,
) -> Access {
    let mut out = BTreeMap::new();
    for u in users {
        for m in modules {
            for a in ACTIONS {
                let ids = match engine.lookup_records(ORG, u, m, a, now()) {
                    Ok((ids, _)) => ids.iter().map(|i| i.to_string()).collect(),
                    // An unknown module or action here: no access.
                    Err(_) => Vec::new(),
                };
                out.insert((u.clone(), m.clone(), a.to_string()), ids);
            }
        }
    }
    out
}

type Fields = BTreeMap<(String, String, String), FieldLevel>;

fn fields<X: Expand>(
    engine: &Engine<X>,
    users: &BTreeSet<String>,
    modules: &BTreeSet<String>,
) -> Fields {
    let mut out = BTreeMap::new();
    for u in users {
        for m in modules {
            let query = FieldsQuery {
                subject: u,
                module: m,
                record: None,
                described: None,
                explain: false,
            };
            if let Ok((answer, _)) = engine.check_fields(ORG, &query, now()) {
                for (f, level) in answer.fields {
                    out.insert((u.clone(), m.clone(), f), level);
                }
            }
        }
    }
    out
}

/// The changes LookupRecords shows between two states, as Simulate
/// reports them (counts and the first `sample` ids of each side).
fn expected_changes(before: &Access, after: &Access, sample: usize) -> Vec<AccessChange> {
    let keys: BTreeSet<&(String, String, String)> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let b: BTreeSet<&String> = before.get(key).into_iter().flatten().collect();
        let a: BTreeSet<&String> = after.get(key).into_iter().flatten().collect();
        let gained: Vec<String> = a.difference(&b).map(|s| s.to_string()).collect();
        let lost: Vec<String> = b.difference(&a).map(|s| s.to_string()).collect();
        if gained.is_empty() && lost.is_empty() {
            continue;
        }
        out.push(AccessChange {
            subject: key.0.clone(),
            module: key.1.clone(),
            action: key.2.clone(),
            gained_count: gained.len() as u64,
            lost_count: lost.len() as u64,
            gained_sample: gained.into_iter().take(sample).collect(),
            lost_sample: lost.into_iter().take(sample).collect(),
        });
    }
    out
}

fn expected_fields(before: &Fields, after: &Fields) -> Vec<FieldChange> {
    let keys: BTreeSet<&(String, String, String)> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let b = before.get(k).copied().unwrap_or(FieldLevel::Hidden);
            let a = after.get(k).copied().unwrap_or(FieldLevel::Hidden);
            (b != a).then(|| FieldChange {
                subject: k.0.clone(),
                module: k.1.clone(),
                field: k.2.clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}

/// Actions ordered as the request named them, so rows compare in the
/// simulation's own order (subject, module, action as asked).
fn in_request_order(mut v: Vec<AccessChange>) -> Vec<AccessChange> {
    let rank = |a: &str| ACTIONS.iter().position(|x| *x == a).unwrap_or(usize::MAX);
    v.sort_by(|x, y| {
        (&x.subject, &x.module, rank(&x.action)).cmp(&(&y.subject, &y.module, rank(&y.action)))
    });
    v
}

fn names(doc: &OrgDocument) -> (BTreeSet<String>, BTreeSet<String>) {
    (
        doc.users.iter().map(|u| u.id.clone()).collect(),
        doc.modules.iter().map(|m| m.id.clone()).collect(),
    )
}

fn options(sample: usize) -> SimulateOptions {
    SimulateOptions {
        actions: ACTIONS.iter().map(|a| a.to_string()).collect(),
        sample_size: sample,
    }
}

/// Simulates `commands` on `engine`, then applies them for real one by
/// one, and checks the simulation against LookupRecords and CheckFields
/// before and after, and that the simulation itself changed nothing.
fn simulate_then_apply<X: Expand>(
    engine: &Engine<X>,
    commands: &[Command],
    actor: Option<&str>,
    sample: usize,
) -> Result<Option<Simulation>, TestCaseError> {
    let doc = engine.export(ORG).unwrap().0;
    let revision = engine.revision(ORG);
    let writer = match actor {
        Some(user) => Writer::Actor {
            user_id: user.to_string(),
            admin_scope: false,
        },
        None => Writer::Operator,
    };
    let writes: Vec<SimWrite> = commands
        .iter()
        .map(|c| SimWrite {
            writer: writer.clone(),
            command: c.clone(),
        })
        .collect();
    let (users_b, modules_b) = names(&doc);
    let access_b = access(engine, &users_b, &modules_b);
    let fields_b = fields(engine, &users_b, &modules_b);
    let simulated = engine.simulate::<Direct>(ORG, &writes, &options(sample), now());
    // Nothing is committed by a simulation, accepted or refused.
    prop_assert_eq!(engine.revision(ORG), revision);
    prop_assert_eq!(&engine.export(ORG).unwrap().0, &doc);
    let mut real = Ok(());
    for c in commands {
        // The real write path: the actor (if any) authorized against the
        // organization as the writes before left it, then the write.
        let done = match actor {
            Some(user) => engine
                .authorize(ORG, user, false, c, now())
                .and_then(|()| engine.execute(ORG, c)),
            None => engine.execute(ORG, c),
        };
        if let Err(e) = done {
            real = Err(e);
            break;
        }
    }
    let sim = match (simulated, real) {
        (Ok(sim), Ok(())) => sim,
        (Err(s), Err(r)) => {
            prop_assert_eq!(s.code(), r.code(), "simulated {} / real {}", s, r);
            return Ok(None);
        }
        (s, r) => {
            return Err(TestCaseError::fail(format!(
                "simulation {:?} but the real writes {:?}",
                s.map(|_| "accepted"),
                r
            )))
        }
    };
    prop_assert_eq!(sim.revision, revision.unwrap_or(0));
    let after_doc = engine.export(ORG).map(|d| d.0).unwrap_or_default();
    let (mut users, mut modules) = names(&after_doc);
    users.extend(users_b.iter().cloned());
    modules.extend(modules_b.iter().cloned());
    let access_b = access_with(&access_b, &users, &modules);
    let access_a = access(engine, &users, &modules);
    let fields_a = fields(engine, &users, &modules);
    let want = expected_changes(&access_b, &access_a, sample);
    prop_assert_eq!(
        in_request_order(want),
        sim.changes.clone(),
        "after {:?}",
        commands
    );
    prop_assert_eq!(
        expected_fields(&fields_b, &fields_a),
        sim.field_changes.clone()
    );
    Ok(Some(sim))
}

/// `before` extended with empty answers for subjects and modules that only
/// exist after.
fn access_with(before: &Access, users: &BTreeSet<String>, modules: &BTreeSet<String>) -> Access {
    let mut out = before.clone();
    for u in users {
        for m in modules {
            for a in ACTIONS {
                out.entry((u.clone(), m.clone(), a.to_string()))
                    .or_default();
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn simulated_changes_equal_the_lookup_difference_of_the_real_writes(
        seed in any::<u64>(),
        writes in any::<u64>(),
        count in 1usize..4,
        sample in 1usize..6,
    ) {
        let doc = organization(seed);
        let engine = Engine::new(Direct, Limits::default());
        load(&engine, &doc);
        let mut rng = Rng(writes);
        for round in 0..3 {
            let current = engine.export(ORG).unwrap().0;
            let commands: Vec<Command> = (0..count).map(|i| random_write(&mut rng, &current, round * 10 + i)).collect();
            // Sometimes made by a user of the organization, authorized by SPEC 3a.
            let actor = rng.chance(30).then(|| rng.pick(&current.users).id.clone());
            simulate_then_apply(&engine, &commands, actor.as_deref(), sample)?;
        }
    }

    #[test]
    fn the_cached_engine_simulates_as_the_direct_one(seed in any::<u64>(), writes in any::<u64>()) {
        let doc = organization(seed);
        let direct = Engine::new(Direct, Limits::default());
        let cached = Engine::new(Cached::default(), Limits::default());
        load(&direct, &doc);
        load(&cached, &doc);
        let mut rng = Rng(writes);
        let current = direct.export(ORG).unwrap().0;
        let commands: Vec<SimWrite> = (0..3).map(|i| SimWrite { writer: Writer::Operator, command: random_write(&mut rng, &current, i) }).collect();
        let a = direct.simulate::<Direct>(ORG, &commands, &options(5), now());
        let b = cached.simulate::<Cached>(ORG, &commands, &options(5), now());
        prop_assert_eq!(a, b);
    }
}

// ---------------------------------------------------------------------------
// Through the real server and the real binary.

use common::{auth, Clients, Server};
use tokio_stream::StreamExt;
use warden::api::pb;

const TOKENS: &str = "ops=admin+check\ngranter=grant\n";

/// A sales organization: a rule shares east's accounts with support, a
/// desk group led by wes, records of several owners, one private.
const DOC: &str = "organization: acme
modules:
  - {id: Accounts, owd: PRIVATE, fields: [name, phone]}
  - {id: Contacts, owd: PUBLIC_READ, fields: [name]}
profiles:
  - id: rep
    modules: {Accounts: [view, create, edit, delete, share, assign], Contacts: [view, edit]}
  - id: viewer
    modules: {Accounts: [view]}
    fields: {Accounts: {phone: HIDDEN}}
roles:
  - {id: boss, profiles: [rep]}
  - {id: east, parent: boss, profiles: [rep]}
  - {id: west, parent: boss, profiles: [rep]}
  - {id: support, parent: boss, profiles: [viewer]}
users:
  - {id: dana, role: boss}
  - {id: erin, role: east}
  - {id: eli, role: east}
  - {id: wes, role: west}
  - {id: sue, role: support}
  - {id: sid, role: support}
groups:
  - {id: desk, users: [sue], leads: [wes]}
records:
  - {module: Accounts, id: a1, owner: {user: erin}}
  - {module: Accounts, id: a2, owner: {user: eli}}
  - {module: Accounts, id: a3, owner: {user: erin}, private: true}
  - {module: Accounts, id: a4, owner: {user: wes}}
  - {module: Accounts, id: a5, owner: {user: sid}}
  - {module: Contacts, id: c1, owner: {user: sue}}
sharing_rules:
  - {id: east-to-support, module: Accounts, from: {role: east}, to: {role: support}, access: READ}
";

async fn start() -> (Server, Clients, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, TOKENS).unwrap();
    let server = Server::start_with(&["--auth-token-file", path.to_str().unwrap()]);
    let mut c = server.clients().await;
    c.admin
        .import(auth(
            "ops",
            pb::ImportRequest {
                document: DOC.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    (server, c, dir)
}

async fn exported(c: &mut Clients) -> (String, String) {
    let e = c
        .admin
        .export(auth(
            "ops",
            pb::ExportRequest {
                org_id: "acme".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (e.document, e.revision)
}

/// LookupRecords over gRPC of every subject of DOC, both modules, view/edit/delete.
async fn grpc_access(c: &mut Clients) -> Access {
    let mut out = BTreeMap::new();
    for u in ["dana", "erin", "eli", "wes", "sue", "sid"] {
        for m in ["Accounts", "Contacts"] {
            for a in ["view", "edit", "delete"] {
                let mut stream = c
                    .check
                    .lookup_records(auth(
                        "ops",
                        pb::LookupRecordsRequest {
                            org_id: "acme".into(),
                            subject: u.into(),
                            module: m.into(),
                            action: a.into(),
                            page_size: 1000,
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                let mut ids = Vec::new();
                while let Some(page) = stream.next().await {
                    ids.extend(page.unwrap().record_ids);
                }
                ids.sort();
                out.insert((u.to_string(), m.to_string(), a.to_string()), ids);
            }
        }
    }
    out
}

fn rule_write(to: pb::MemberSet) -> pb::Write {
    pb::Write {
        write: Some(pb::write::Write::PutSharingRule(
            pb::PutSharingRuleRequest {
                org_id: String::new(),
                actor: String::new(),
                rule: Some(pb::SharingRule {
                    rule_id: "east-to-support".into(),
                    module: "Accounts".into(),
                    from: Some(pb::MemberSet {
                        set: Some(pb::member_set::Set::RoleId("east".into())),
                    }),
                    to: Some(to),
                    access: pb::AccessLevel::ReadWrite as i32,
                    ..Default::default()
                }),
            },
        )),
    }
}

fn to_west() -> pb::MemberSet {
    pb::MemberSet {
        set: Some(pb::member_set::Set::RoleId("west".into())),
    }
}

fn desk_write() -> pb::Write {
    pb::Write {
        write: Some(pb::write::Write::PutGroup(pb::PutGroupRequest {
            group: Some(pb::Group {
                group_id: "desk".into(),
                users: vec!["sue".into(), "sid".into()],
                leads: vec!["wes".into()],
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

fn as_changes(r: &pb::SimulateResponse) -> Vec<AccessChange> {
    r.changes
        .iter()
        .map(|c| AccessChange {
            subject: c.subject.clone(),
            module: c.module.clone(),
            action: c.action.clone(),
            gained_count: c.gained_count,
            lost_count: c.lost_count,
            gained_sample: c.gained_sample.clone(),
            lost_sample: c.lost_sample.clone(),
        })
        .collect()
}

#[tokio::test]
async fn simulate_over_grpc_matches_the_real_writes_and_commits_nothing() {
    let (_server, mut c, _dir) = start().await;
    let before_doc = exported(&mut c).await;
    let before = grpc_access(&mut c).await;
    let answer = c
        .admin
        .simulate(auth(
            "ops",
            pb::SimulateRequest {
                org_id: "acme".into(),
                writes: vec![rule_write(to_west()), desk_write()],
                sample_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Nothing committed: the same document at the same revision.
    assert_eq!(exported(&mut c).await, before_doc);
    assert_eq!(answer.revision, before_doc.1);
    assert!(!answer.whole_org);
    // Now for real, and LookupRecords tells what changed.
    let real = rule_write(to_west());
    let Some(pb::write::Write::PutSharingRule(r)) = real.write else {
        unreachable!()
    };
    c.admin
        .put_sharing_rule(auth(
            "ops",
            pb::PutSharingRuleRequest {
                org_id: "acme".into(),
                ..r
            },
        ))
        .await
        .unwrap();
    let Some(pb::write::Write::PutGroup(g)) = desk_write().write else {
        unreachable!()
    };
    c.admin
        .put_group(auth(
            "ops",
            pb::PutGroupRequest {
                org_id: "acme".into(),
                ..g
            },
        ))
        .await
        .unwrap();
    let after = grpc_access(&mut c).await;
    let want = expected_changes(&before, &after, 1);
    assert!(!want.is_empty(), "the writes change access");
    let rank = |a: &str| ["view", "edit", "delete"].iter().position(|x| *x == a);
    let mut want = want;
    want.sort_by(|x, y| {
        (&x.subject, &x.module, rank(&x.action)).cmp(&(&y.subject, &y.module, rank(&y.action)))
    });
    assert_eq!(as_changes(&answer), want);
}

#[tokio::test]
async fn a_refused_simulation_gets_the_code_of_the_real_write() {
    let (_server, mut c, _dir) = start().await;
    let before_doc = exported(&mut c).await;
    let simulate = |token: &'static str, writes: Vec<pb::Write>| {
        auth(
            token,
            pb::SimulateRequest {
                org_id: "acme".into(),
                writes,
                ..Default::default()
            },
        )
    };
    // An admin write without an actor needs the admin scope.
    let sim = c
        .admin
        .simulate(simulate("granter", vec![rule_write(to_west())]))
        .await
        .unwrap_err();
    let Some(pb::write::Write::PutSharingRule(r)) = rule_write(to_west()).write else {
        unreachable!()
    };
    let real = c
        .admin
        .put_sharing_rule(auth(
            "granter",
            pb::PutSharingRuleRequest {
                org_id: "acme".into(),
                ..r
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(sim.code(), tonic::Code::PermissionDenied, "{sim:?}");
    assert_eq!(sim.code(), real.code());

    // An actor's share is decided by SPEC 3a: sue may not share erin's record.
    let share = pb::ShareRequest {
        org_id: "acme".into(),
        actor: "sue".into(),
        shares: vec![pb::Share {
            module: "Accounts".into(),
            record_id: "a1".into(),
            grantee: Some(pb::Grantee {
                grantee: Some(pb::grantee::Grantee::UserId("sid".into())),
            }),
            level: pb::AccessLevel::Read as i32,
        }],
    };
    let sim = c
        .admin
        .simulate(simulate(
            "granter",
            vec![pb::Write {
                write: Some(pb::write::Write::Share(share.clone())),
            }],
        ))
        .await
        .unwrap_err();
    let real = c.grant.share(auth("granter", share)).await.unwrap_err();
    assert_eq!(sim.code(), tonic::Code::PermissionDenied, "{sim:?}");
    assert_eq!(sim.code(), real.code());
    assert!(sim.message().contains("writes[0]"), "{}", sim.message());

    // A write planned after another sees it: deleting the group the first
    // write deletes is NOT_FOUND, as the second real write would be.
    let delete_desk = || pb::Write {
        write: Some(pb::write::Write::DeleteGroup(pb::DeleteGroupRequest {
            group_id: "desk".into(),
            cascade: true,
            ..Default::default()
        })),
    };
    let sim = c
        .admin
        .simulate(simulate("ops", vec![delete_desk(), delete_desk()]))
        .await
        .unwrap_err();
    assert_eq!(sim.code(), tonic::Code::NotFound, "{sim:?}");
    assert!(sim.message().contains("writes[1]"), "{}", sim.message());

    // Bounds, each naming its field.
    let too_many = c
        .admin
        .simulate(auth(
            "ops",
            pb::SimulateRequest {
                org_id: "acme".into(),
                writes: vec![desk_write(); 101],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert!(
        too_many.message().starts_with("writes"),
        "{}",
        too_many.message()
    );
    let big_sample = c
        .admin
        .simulate(auth(
            "ops",
            pb::SimulateRequest {
                org_id: "acme".into(),
                writes: vec![desk_write()],
                sample_size: 1_000_000,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(big_sample.code(), tonic::Code::InvalidArgument);
    assert!(
        big_sample.message().starts_with("sample_size"),
        "{}",
        big_sample.message()
    );
    let empty = c
        .admin
        .simulate(simulate("ops", vec![pb::Write { write: None }]))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert!(
        empty.message().starts_with("writes[0]"),
        "{}",
        empty.message()
    );
    // Nothing of any of it was committed.
    assert_eq!(exported(&mut c).await, before_doc);
}

#[test]
fn the_cli_prints_the_engines_simulation_and_names_a_refused_write() {
    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("acme.yaml");
    std::fs::write(&doc_path, DOC).unwrap();
    let changes = "\
- put_sharing_rule:
    rule: {id: east-to-support, module: Accounts, from: {role: east}, to: {role: west}, access: READ_WRITE}
- put_group: {group: {id: desk, users: [sue, sid], leads: [wes]}}
";
    let changes_path = dir.path().join("changes.yaml");
    std::fs::write(&changes_path, changes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["simulate"])
        .arg(&doc_path)
        .arg(&changes_path)
        .args(["--actions", "view,edit", "--sample", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same simulation in the engine, from the same files.
    let engine = Engine::new(Direct, Limits::default());
    engine
        .execute(
            "acme",
            &Command::Import {
                document: warden::document::parse_document(DOC).unwrap(),
                replace: true,
            },
        )
        .unwrap();
    let writes: Vec<warden::engine::simulate::WriteDoc> =
        warden::document::parse_typed(changes, "writes").unwrap();
    let sim = engine
        .simulate::<Direct>(
            "acme",
            &writes
                .into_iter()
                .map(|w| w.into_sim_write())
                .collect::<Vec<_>>(),
            &SimulateOptions {
                actions: vec!["view".into(), "edit".into()],
                sample_size: 2,
            },
            now(),
        )
        .unwrap();
    assert!(!sim.changes.is_empty(), "the changes change access");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        warden::cli::simulation_table(&sim)
    );

    // A refused write: non-zero, naming the write and the field.
    std::fs::write(
        &changes_path,
        "- put_group: {group: {id: desk, users: [sue]}}\n- put_user: {user: {id: zed, role: nowhere}}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["simulate"])
        .arg(&doc_path)
        .arg(&changes_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("writes[1].role"), "{err}");
    assert!(err.contains("NOT_FOUND"), "{err}");
}
