//! Deterministic organization documents of any size, and the `crm-large`
//! reference data set of SPEC section 7: what the benchmarks, the load
//! generator (`warden-load`) and `warden generate` load.
//!
//! The same parameters always give the same document (a seeded SplitMix64,
//! no clock, no hashing of addresses). The shape is a CRM's: a pyramid of
//! roles under one root with two divisions below it, users spread over the
//! roles and reporting to a user of the parent role, groups nested in
//! levels, records owned mostly by users, sharing rules of every member
//! sort and manual shares to every grantee sort.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::model::{
    AccessLevel, AssignScope, FieldLevel, Grantee, GroupDef, GroupKind, MemberSet, ModuleDef, Owd,
    OwnerRef, ProfileDef, RecordDef, RoleDef, ShareDef, SharingRuleDef, UserDef, UserKind,
};
use crate::engine::{CheckRequest, Limits, OrgDocument};

/// What to generate. Depths count edges, as the engine's limits do: a role
/// depth of 8 is a chain of nine roles from the root down, a group nesting
/// depth of 5 a chain of six groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Organization id.
    pub organization: String,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
    /// Users, guests included.
    pub users: usize,
    /// Fraction of the users who are guests.
    pub guest_share: f64,
    /// Fraction of the members who are inactive (never the administrator).
    pub inactive_share: f64,
    /// Roles.
    pub roles: usize,
    /// Edges from the root role to the deepest role.
    pub role_depth: usize,
    /// Groups.
    pub groups: usize,
    /// Edges in the longest chain of nested groups.
    pub group_depth: usize,
    /// Sharing rules, owner-based and criteria, spread over the modules.
    pub sharing_rules: usize,
    /// Fraction of the sharing rules that are criteria rules.
    pub criteria_share: f64,
    /// Modules (the first five are Leads, Accounts, Contacts, Potentials, HelpDesk).
    pub modules: usize,
    /// Records, spread evenly over the modules.
    pub records: usize,
    /// Fraction of the records that are private.
    pub private_share: f64,
    /// Fraction of the records owned by a group rather than a user.
    pub group_owned_share: f64,
    /// Fraction of the records carrying a `region` attribute (criteria rules match it).
    pub attributed_share: f64,
    /// Manual shares, each a distinct (record, grantee).
    pub manual_shares: usize,
}

impl Params {
    /// The reference data set "crm-large" of SPEC section 7: 10,000 users,
    /// 1,000 roles of depth 8, 2,000 groups nested 5 deep, 200 sharing
    /// rules, 1,000,000 records and 100,000 manual shares.
    pub fn crm_large() -> Params {
        Params {
            organization: "crm-large".into(),
            seed: 0x5eed_c0de,
            users: 10_000,
            guest_share: 0.02,
            inactive_share: 0.005,
            roles: 1_000,
            role_depth: 8,
            groups: 2_000,
            group_depth: 5,
            sharing_rules: 200,
            criteria_share: 0.1,
            modules: 5,
            records: 1_000_000,
            private_share: 0.05,
            group_owned_share: 0.05,
            attributed_share: 0.2,
            manual_shares: 100_000,
        }
    }

    /// A small organization of the same shape, for tests and quick runs.
    pub fn small() -> Params {
        Params {
            organization: "crm-small".into(),
            seed: 0x5eed_c0de,
            users: 200,
            guest_share: 0.05,
            inactive_share: 0.01,
            roles: 40,
            role_depth: 4,
            groups: 30,
            group_depth: 3,
            sharing_rules: 20,
            criteria_share: 0.1,
            modules: 5,
            records: 2_000,
            private_share: 0.05,
            group_owned_share: 0.05,
            attributed_share: 0.2,
            manual_shares: 300,
        }
    }

    /// One of many small organizations, as a multi-tenant deployment holds
    /// them: 100 users, 10 roles, 10 groups, 10 sharing rules, 1,000
    /// records and 100 manual shares, each tenant with its own seed.
    pub fn tenant(index: usize) -> Params {
        Params {
            organization: format!("tenant-{index:05}"),
            seed: 0x7e4a_4e75_u64.wrapping_add(index as u64),
            users: 100,
            guest_share: 0.02,
            inactive_share: 0.01,
            roles: 10,
            role_depth: 3,
            groups: 10,
            group_depth: 2,
            sharing_rules: 10,
            criteria_share: 0.1,
            modules: 3,
            records: 1_000,
            private_share: 0.05,
            group_owned_share: 0.05,
            attributed_share: 0.2,
            manual_shares: 100,
        }
    }

    /// The parameters of a preset (the first tenant's for `tenants`).
    pub fn of(preset: Preset) -> Params {
        match preset {
            Preset::CrmLarge => Params::crm_large(),
            Preset::Small => Params::small(),
            Preset::Tenants => Params::tenant(0),
        }
    }

    /// The same organization with `factor` times its records, manual
    /// shares and nesting depths (roles and groups), each at least one:
    /// how cost grows is measured at 0.1×, 1× and 2× of crm-large. A
    /// factor other than 1 names the organization after it, e.g.
    /// `crm-large-x0.1`.
    pub fn scaled(&self, factor: f64) -> Result<Params, ParamsError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(ParamsError(format!(
                "scale must be a positive number, got {factor}"
            )));
        }
        if factor == 1.0 {
            return Ok(self.clone());
        }
        let times = |n: usize| ((n as f64) * factor).round().max(1.0) as usize;
        let scaled = Params {
            organization: format!("{}-x{factor}", self.organization),
            records: times(self.records),
            manual_shares: times(self.manual_shares),
            role_depth: times(self.role_depth),
            group_depth: times(self.group_depth),
            ..self.clone()
        };
        scaled.validate()?;
        Ok(scaled)
    }

    fn guests(&self) -> usize {
        ((self.users as f64) * self.guest_share).round() as usize
    }

    /// Refuses parameters no valid organization has.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let bad = |m: String| Err(ParamsError(m));
        let limits = Limits::default();
        for (name, share) in [
            ("guest_share", self.guest_share),
            ("inactive_share", self.inactive_share),
            ("criteria_share", self.criteria_share),
            ("private_share", self.private_share),
            ("group_owned_share", self.group_owned_share),
            ("attributed_share", self.attributed_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return bad(format!("{name} must be between 0 and 1, got {share}"));
            }
        }
        if self.users <= self.guests() {
            return bad("at least one user must be a member".into());
        }
        if self.roles < self.role_depth + 1 {
            return bad(format!(
                "a role depth of {} needs at least {} roles",
                self.role_depth,
                self.role_depth + 1
            ));
        }
        if self.role_depth > limits.role_depth {
            return bad(format!(
                "role depth {} exceeds the engine's limit {}",
                self.role_depth, limits.role_depth
            ));
        }
        if self.groups > 0 && self.groups < self.group_depth + 1 {
            return bad(format!(
                "a group nesting depth of {} needs at least {} groups",
                self.group_depth,
                self.group_depth + 1
            ));
        }
        if self.group_depth > limits.group_depth {
            return bad(format!(
                "group nesting depth {} exceeds the engine's limit {}",
                self.group_depth, limits.group_depth
            ));
        }
        if (self.records > 0 || self.sharing_rules > 0) && self.modules == 0 {
            return bad("records and sharing rules need at least one module".into());
        }
        if self.manual_shares > 0 && self.records == 0 {
            return bad("manual shares need records".into());
        }
        Ok(())
    }
}

/// Parameters that no valid organization has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamsError(pub String);

/// The named data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// SPEC section 7's reference data set.
    CrmLarge,
    /// A small organization of the same shape.
    Small,
    /// `--orgs` small organizations ([`Params::tenant`]), one document
    /// each, written into the directory `--out`.
    Tenants,
}

/// How a document is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON (fast to write and to read back).
    Json,
    /// YAML, as scenario files are written.
    Yaml,
}

/// Users and modules that benchmarks and load tests aim at, known by
/// construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landmarks {
    /// The organization's administrator.
    pub admin: String,
    /// An active member of a division role right under the root: a superior
    /// of about half of the users, so it sees about half of a private module.
    pub division_head: String,
    /// The first module whose organization-wide default is PRIVATE.
    pub private_module: String,
    /// The first guest, if there is one.
    pub guest: Option<String>,
}

/// A generated organization.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The document, ready for `Import` or `changes_of`.
    pub document: OrgDocument,
    /// Who and what to aim at.
    pub landmarks: Landmarks,
}

/// SplitMix64: tiny, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}

const MODULE_NAMES: [&str; 10] = [
    "Leads",
    "Accounts",
    "Contacts",
    "Potentials",
    "HelpDesk",
    "Campaigns",
    "Quotes",
    "Invoices",
    "Vendors",
    "Products",
];
const OWDS: [Owd; 5] = [
    Owd::Private,
    Owd::PublicRead,
    Owd::Private,
    Owd::Private,
    Owd::PublicReadWrite,
];
const FIELDS: [&str; 5] = ["name", "email", "phone", "amount", "margin"];
const REGIONS: [&str; 4] = ["EMEA", "AMER", "APAC", "LATAM"];

fn module_name(m: usize) -> String {
    MODULE_NAMES
        .get(m)
        .map_or_else(|| format!("Module{m}"), |n| (*n).to_string())
}

fn record_id(prefix: char, index: usize) -> String {
    format!("{prefix}{index:07}")
}

/// Splits `extra` over `weights` in proportion (largest remainders first).
fn spread(extra: usize, weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || total <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| extra as f64 * w / total).collect();
    let mut out: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut left = extra - out.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        let ra = exact[*a] - exact[*a].floor();
        let rb = exact[*b] - exact[*b].floor();
        rb.total_cmp(&ra).then(a.cmp(b))
    });
    for i in order.into_iter().cycle() {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// `id` if it names an organization group, else the first organization
/// group after it (wrapping), else `id` (no organization group at all).
fn organization_group(groups: &[GroupDef], id: &str) -> String {
    let at = groups.iter().position(|g| g.id == id).unwrap_or(0);
    groups
        .iter()
        .cycle()
        .skip(at)
        .take(groups.len())
        .find(|g| g.kind != GroupKind::Personal)
        .map_or_else(|| id.to_string(), |g| g.id.clone())
}

/// Roles per level: one root, two divisions, then a pyramid widening by
/// 1.6 a level.
fn role_levels(roles: usize, depth: usize) -> Vec<usize> {
    let mut sizes = vec![1; depth + 1];
    if depth == 0 {
        sizes[0] = roles;
        return sizes;
    }
    let mut extra = roles - (depth + 1);
    if depth == 1 {
        sizes[1] += extra;
        return sizes;
    }
    let second = extra.min(1);
    sizes[1] += second;
    extra -= second;
    let weights: Vec<f64> = (2..=depth).map(|l| 1.6f64.powi(l as i32)).collect();
    for (l, n) in spread(extra, &weights).into_iter().enumerate() {
        sizes[l + 2] += n;
    }
    sizes
}

/// Groups per nesting level (0: nests nothing): each level half the one below.
fn group_levels(groups: usize, depth: usize) -> Vec<usize> {
    let mut sizes = vec![1; depth + 1];
    let weights: Vec<f64> = (0..=depth).map(|l| 0.5f64.powi(l as i32)).collect();
    for (l, n) in spread(groups - (depth + 1), &weights)
        .into_iter()
        .enumerate()
    {
        sizes[l] += n;
    }
    sizes
}

fn starts(sizes: &[usize]) -> Vec<usize> {
    let mut at = 0;
    sizes
        .iter()
        .map(|s| {
            let start = at;
            at += s;
            start
        })
        .collect()
}

fn profiles(modules: &[ModuleDef]) -> Vec<ProfileDef> {
    let ids: Vec<String> = modules.iter().map(|m| m.id.clone()).collect();
    let actions = |m: &ModuleDef, base: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|a| (*a).to_string()).collect();
        v.extend(m.actions.keys().cloned());
        v
    };
    let standard = ["view", "create", "edit", "delete", "share", "assign"];
    let mut sales = ProfileDef {
        id: "sales".into(),
        name: "Sales".into(),
        ..ProfileDef::default()
    };
    let mut support = ProfileDef {
        id: "support".into(),
        name: "Support".into(),
        ..ProfileDef::default()
    };
    let mut auditor = ProfileDef {
        id: "auditor".into(),
        name: "Auditor".into(),
        view_all: ids.clone(),
        ..ProfileDef::default()
    };
    let mut partner = ProfileDef {
        id: "partner".into(),
        name: "Partner".into(),
        ..ProfileDef::default()
    };
    let mut exporter = ProfileDef {
        id: "exporter".into(),
        name: "Export tool".into(),
        ..ProfileDef::default()
    };
    for (i, m) in modules.iter().enumerate() {
        sales.modules.insert(m.id.clone(), actions(m, &standard));
        sales.fields.insert(
            m.id.clone(),
            BTreeMap::from([("margin".to_string(), FieldLevel::ReadOnly)]),
        );
        let support_actions: &[&str] = if m.id == "HelpDesk" {
            &["view", "create", "edit"]
        } else {
            &["view"]
        };
        support.modules.insert(
            m.id.clone(),
            support_actions.iter().map(|a| (*a).to_string()).collect(),
        );
        support.fields.insert(
            m.id.clone(),
            BTreeMap::from([
                ("amount".to_string(), FieldLevel::ReadOnly),
                ("margin".to_string(), FieldLevel::Hidden),
            ]),
        );
        auditor.modules.insert(m.id.clone(), vec!["view".into()]);
        partner
            .modules
            .insert(m.id.clone(), vec!["view".into(), "edit".into()]);
        partner.fields.insert(
            m.id.clone(),
            BTreeMap::from([("margin".to_string(), FieldLevel::Hidden)]),
        );
        if i == 0 {
            exporter.modules.insert(m.id.clone(), vec!["export".into()]);
        }
    }
    vec![sales, support, auditor, partner, exporter]
}

fn modules(count: usize) -> Vec<ModuleDef> {
    (0..count)
        .map(|m| {
            let id = module_name(m);
            let mut actions = BTreeMap::from([
                ("export".to_string(), AccessLevel::Read),
                ("send_mail".to_string(), AccessLevel::ReadWrite),
            ]);
            if id == "Leads" {
                actions.insert("convert".into(), AccessLevel::ReadWrite);
            }
            ModuleDef {
                hierarchy_access: id != "HelpDesk",
                id,
                owd: OWDS[m % OWDS.len()],
                fields: FIELDS.iter().map(|f| (*f).to_string()).collect(),
                actions,
            }
        })
        .collect()
}

/// Generates the organization `params` describe.
pub fn generate(params: &Params) -> Result<Generated, ParamsError> {
    params.validate()?;
    let mut rng = Rng(params.seed);
    let modules = modules(params.modules);
    let profiles = profiles(&modules);

    // Roles: level by level, each role under a parent of the level above,
    // children of one parent contiguous so that each division's subtree is
    // a contiguous half of every level below.
    let role_sizes = role_levels(params.roles, params.role_depth);
    let role_starts = starts(&role_sizes);
    let role_ids: Vec<String> = (0..params.roles).map(|i| format!("r{i:04}")).collect();
    let mut role_level = Vec::with_capacity(params.roles);
    let mut role_parent: Vec<Option<usize>> = Vec::with_capacity(params.roles);
    let mut roles = Vec::with_capacity(params.roles);
    for (level, size) in role_sizes.iter().enumerate() {
        for p in 0..*size {
            let ix = role_starts[level] + p;
            let parent = (level > 0)
                .then(|| role_starts[level - 1] + p * role_sizes[level - 1] / size.max(&1));
            let profiles = if ix % 10 == 9 {
                vec!["support".to_string()]
            } else if ix % 50 == 25 {
                vec!["sales".to_string(), "auditor".to_string()]
            } else {
                vec!["sales".to_string()]
            };
            roles.push(RoleDef {
                id: role_ids[ix].clone(),
                name: format!("Level {level} role {p}"),
                parent: parent.map(|p| role_ids[p].clone()),
                profiles,
                assign_scope: if ix % 4 == 3 {
                    AssignScope::SameAndSubordinate
                } else {
                    AssignScope::All
                },
            });
            role_level.push(level);
            role_parent.push(parent);
        }
    }
    // Roles deep enough that "role and subordinates" stays a team, not a division.
    let deep_roles = role_starts[params.role_depth.saturating_sub(1)]..params.roles;
    let non_root_roles = role_starts[params.role_depth.min(1)]..params.roles;

    // Users: members round-robin over the roles, each reporting to a user of
    // the parent role; guests last.
    let guests = params.guests();
    let members = params.users - guests;
    let user_ids: Vec<String> = (0..params.users).map(|i| format!("u{i:05}")).collect();
    let mut users_by_role: Vec<Vec<usize>> = vec![Vec::new(); params.roles];
    for m in 0..members {
        users_by_role[m % params.roles].push(m);
    }
    let mut users = Vec::with_capacity(params.users);
    for (i, id) in user_ids.iter().enumerate() {
        if i >= members {
            users.push(UserDef {
                id: id.clone(),
                kind: UserKind::Guest,
                profiles: vec!["partner".into()],
                ..UserDef::default()
            });
            continue;
        }
        let role = i % params.roles;
        let reports_to = role_parent[role].and_then(|p| {
            let above = &users_by_role[p];
            (!above.is_empty()).then(|| user_ids[above[i % above.len()]].clone())
        });
        let exporter = rng.chance(0.05);
        let inactive = i != 0 && rng.chance(params.inactive_share);
        users.push(UserDef {
            id: id.clone(),
            kind: UserKind::Member,
            role: Some(role_ids[role].clone()),
            profiles: if exporter {
                vec!["exporter".into()]
            } else {
                Vec::new()
            },
            reports_to,
            admin: i == 0,
            active: !inactive,
            ..UserDef::default()
        });
    }
    let member = |rng: &mut Rng| rng.below(members);

    // Groups: level 0 nests nothing; a group of level l nests one or two of
    // level l - 1, at least one spread evenly so every lower group is used.
    let mut groups = Vec::with_capacity(params.groups);
    let group_ids: Vec<String> = (0..params.groups).map(|i| format!("g{i:04}")).collect();
    if params.groups > 0 {
        let sizes = group_levels(params.groups, params.group_depth);
        let group_starts = starts(&sizes);
        let mut personal_groups = vec![false; params.groups];
        for (level, size) in sizes.iter().enumerate() {
            for p in 0..*size {
                let ix = group_starts[level] + p;
                let mut nested = Vec::new();
                if level > 0 {
                    let below = sizes[level - 1];
                    let first = group_starts[level - 1] + p * below / size;
                    nested.push(first);
                    if below > 1 && rng.chance(0.5) {
                        let other = group_starts[level - 1] + rng.below(below);
                        if other != first {
                            nested.push(other);
                        }
                    }
                    // A personal group is never nested.
                    nested.retain(|g| !personal_groups[*g]);
                }
                let listed = if level == 0 {
                    4 + rng.below(13)
                } else {
                    rng.below(5)
                };
                let mut listed_users: Vec<usize> = (0..listed).map(|_| member(&mut rng)).collect();
                // Personal groups list users only and are never nested, so
                // only level 0 (which nests nothing) has them, and not the
                // first group, which every chain of nesting starts from.
                let personal = rng.chance(0.05) && level == 0 && p > 0;
                personal_groups[ix] = personal;
                let owner = personal.then(|| member(&mut rng));
                if personal && guests > 0 {
                    for _ in 0..1 + rng.below(2) {
                        listed_users.push(members + rng.below(guests));
                    }
                }
                listed_users.sort_unstable();
                listed_users.dedup();
                let listed_roles = if rng.chance(0.1) {
                    vec![role_ids[non_root_roles.start + rng.below(non_root_roles.len())].clone()]
                } else {
                    Vec::new()
                };
                let listed_subtrees = if rng.chance(0.05) {
                    vec![role_ids[deep_roles.start + rng.below(deep_roles.len())].clone()]
                } else {
                    Vec::new()
                };
                let leads = if rng.chance(0.3) {
                    vec![user_ids[member(&mut rng)].clone()]
                } else {
                    Vec::new()
                };
                groups.push(GroupDef {
                    id: group_ids[ix].clone(),
                    name: format!("Level {level} team {p}"),
                    description: String::new(),
                    kind: if personal {
                        GroupKind::Personal
                    } else {
                        GroupKind::Organization
                    },
                    owner: owner.map(|o| user_ids[o].clone()),
                    users: listed_users.iter().map(|u| user_ids[*u].clone()).collect(),
                    roles: if personal { Vec::new() } else { listed_roles },
                    roles_and_subordinates: if personal {
                        Vec::new()
                    } else {
                        listed_subtrees
                    },
                    groups: nested.iter().map(|g| group_ids[*g].clone()).collect(),
                    leads: if personal { Vec::new() } else { leads },
                });
            }
        }
    }

    // Records: round-robin over the modules, owned by a member or a group.
    let prefixes: Vec<char> = modules
        .iter()
        .map(|m| m.id.chars().next().unwrap_or('R'))
        .collect();
    let module_ids: Vec<String> = modules.iter().map(|m| m.id.clone()).collect();
    let mut records = Vec::with_capacity(params.records);
    for k in 0..params.records {
        let m = k % params.modules;
        let owner = if params.groups > 0 && rng.chance(params.group_owned_share) {
            OwnerRef::Group(group_ids[rng.below(params.groups)].clone())
        } else {
            OwnerRef::User(user_ids[member(&mut rng)].clone())
        };
        let private = rng.chance(params.private_share);
        let attributes = if rng.chance(params.attributed_share) {
            BTreeMap::from([(
                "region".to_string(),
                REGIONS[rng.below(REGIONS.len())].to_string(),
            )])
        } else {
            BTreeMap::new()
        };
        records.push(RecordDef {
            module: module_ids[m].clone(),
            id: record_id(prefixes[m], k / params.modules),
            owner,
            private,
            attributes,
        });
    }

    // Sharing rules: round-robin over the modules, every member sort.
    let member_set = |rng: &mut Rng| -> MemberSet {
        match rng.below(10) {
            0..=3 => MemberSet::Role(
                role_ids[non_root_roles.start + rng.below(non_root_roles.len())].clone(),
            ),
            4..=6 => MemberSet::RoleAndSubordinates(
                role_ids[non_root_roles.start + rng.below(non_root_roles.len())].clone(),
            ),
            _ if params.groups > 0 => MemberSet::Group(group_ids[rng.below(params.groups)].clone()),
            _ => MemberSet::Role(role_ids[rng.below(params.roles)].clone()),
        }
    };
    let mut sharing_rules = Vec::with_capacity(params.sharing_rules);
    for i in 0..params.sharing_rules {
        let criteria = rng.chance(params.criteria_share);
        // A personal group is never a rule's `from`: the next organization
        // group takes its place, with no extra draw, so documents without
        // such a pick (crm-large's) stay the same.
        let from = (!criteria).then(|| match member_set(&mut rng) {
            MemberSet::Group(g) => MemberSet::Group(organization_group(&groups, &g)),
            other => other,
        });
        let criteria = criteria.then(|| {
            BTreeMap::from([(
                "region".to_string(),
                REGIONS[rng.below(REGIONS.len())].to_string(),
            )])
        });
        sharing_rules.push(SharingRuleDef {
            id: format!("rule{i:04}"),
            module: module_ids[i % params.modules].clone(),
            from,
            criteria,
            to: member_set(&mut rng),
            access: if rng.chance(0.7) {
                AccessLevel::Read
            } else {
                AccessLevel::ReadWrite
            },
        });
    }

    // Manual shares: distinct (record, grantee), every grantee sort.
    let mut shares = Vec::with_capacity(params.manual_shares);
    let mut taken: FxHashSet<(usize, u8, usize)> = FxHashSet::default();
    let mut attempts = 0usize;
    while shares.len() < params.manual_shares && attempts < params.manual_shares * 4 + 16 {
        attempts += 1;
        let k = rng.below(params.records);
        let (kind, ix, grantee) = match rng.below(20) {
            0..=13 => {
                let u = rng.below(params.users);
                (0u8, u, Grantee::User(user_ids[u].clone()))
            }
            14..=16 if params.groups > 0 => {
                let g = rng.below(params.groups);
                (1, g, Grantee::Group(group_ids[g].clone()))
            }
            17 | 18 => {
                let r = non_root_roles.start + rng.below(non_root_roles.len());
                (2, r, Grantee::Role(role_ids[r].clone()))
            }
            _ => {
                let r = deep_roles.start + rng.below(deep_roles.len());
                (3, r, Grantee::RoleAndSubordinates(role_ids[r].clone()))
            }
        };
        if !taken.insert((k, kind, ix)) {
            continue;
        }
        let level = match rng.below(10) {
            0..=5 => AccessLevel::Read,
            6..=8 => AccessLevel::ReadWrite,
            _ => AccessLevel::Full,
        };
        shares.push(ShareDef {
            module: records[k].module.clone(),
            record: records[k].id.clone(),
            grantee,
            level,
        });
    }

    let division = if params.role_depth > 0 { 1 } else { 0 };
    let division_head = users_by_role[division]
        .iter()
        .copied()
        .find(|u| *u != 0 && users[*u].active)
        .or_else(|| (1..members).find(|u| users[*u].active))
        .unwrap_or(0);
    let landmarks = Landmarks {
        admin: user_ids[0].clone(),
        division_head: user_ids[division_head].clone(),
        private_module: modules
            .iter()
            .find(|m| m.owd == Owd::Private)
            .or(modules.first())
            .map(|m| m.id.clone())
            .unwrap_or_default(),
        guest: (guests > 0).then(|| user_ids[members].clone()),
    };
    let document = OrgDocument {
        organization: params.organization.clone(),
        settings: None,
        modules,
        profiles,
        roles,
        shifts: Vec::new(),
        users,
        groups,
        records,
        shares,
        sharing_rules,
    };
    Ok(Generated {
        document,
        landmarks,
    })
}

/// A deterministic mix of `count` checks over a document, aimed so that
/// every path of SPEC section 2 step 7 occurs: record owners, direct
/// members of owning groups, owners' managers, users a sharing rule or a
/// manual share reaches, and random users (mostly denied, or the
/// organization-wide default). Four in five view, one in five edit.
pub fn check_mix(doc: &OrgDocument, count: usize, seed: u64) -> Vec<CheckRequest> {
    let mut rng = Rng(seed);
    if doc.records.is_empty() || doc.users.is_empty() {
        return Vec::new();
    }
    let users: FxHashMap<&str, &UserDef> = doc.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let groups: FxHashMap<&str, &GroupDef> =
        doc.groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let mut users_by_role: FxHashMap<&str, Vec<&str>> = FxHashMap::default();
    for u in &doc.users {
        if let Some(r) = &u.role {
            users_by_role
                .entry(r.as_str())
                .or_default()
                .push(u.id.as_str());
        }
    }
    let mut by_owner: FxHashMap<(&str, &str), Vec<usize>> = FxHashMap::default();
    for (k, r) in doc.records.iter().enumerate() {
        if let OwnerRef::User(u) = &r.owner {
            by_owner
                .entry((r.module.as_str(), u.as_str()))
                .or_default()
                .push(k);
        }
    }
    let owner_rules: Vec<&SharingRuleDef> = doc
        .sharing_rules
        .iter()
        .filter(|r| r.from.is_some())
        .collect();
    let user_shares: Vec<&ShareDef> = doc
        .shares
        .iter()
        .filter(|s| matches!(s.grantee, Grantee::User(_)))
        .collect();
    let mut shared_records: FxHashMap<(&str, &str), usize> = user_shares
        .iter()
        .map(|s| ((s.module.as_str(), s.record.as_str()), usize::MAX))
        .collect();
    for (k, r) in doc.records.iter().enumerate() {
        if let Some(slot) = shared_records.get_mut(&(r.module.as_str(), r.id.as_str())) {
            *slot = k;
        }
    }
    shared_records.retain(|_, k| *k != usize::MAX);
    let some_user_of = |set: &MemberSet, rng: &mut Rng| -> Option<&str> {
        let pool: &[&str] = match set {
            MemberSet::Role(r) | MemberSet::RoleAndSubordinates(r) => {
                users_by_role.get(r.as_str())?
            }
            MemberSet::Group(g) => {
                let g = groups.get(g.as_str())?;
                return (!g.users.is_empty()).then(|| g.users[rng.below(g.users.len())].as_str());
            }
        };
        (!pool.is_empty()).then(|| pool[rng.below(pool.len())])
    };
    let random_record = |rng: &mut Rng| &doc.records[rng.below(doc.records.len())];
    let random_user = |rng: &mut Rng| doc.users[rng.below(doc.users.len())].id.as_str();

    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let aimed: Option<(&str, &RecordDef)> = match rng.below(20) {
            // The owner.
            0..=3 => {
                let r = random_record(&mut rng);
                match &r.owner {
                    OwnerRef::User(u) => Some((u.as_str(), r)),
                    OwnerRef::Group(_) => None,
                }
            }
            // A direct member of the owning group.
            4 | 5 => (0..64).find_map(|_| {
                let r = random_record(&mut rng);
                let OwnerRef::Group(g) = &r.owner else {
                    return None;
                };
                let g = groups.get(g.as_str())?;
                (!g.users.is_empty()).then(|| (g.users[rng.below(g.users.len())].as_str(), r))
            }),
            // The owner's manager.
            6..=9 => (0..64).find_map(|_| {
                let r = random_record(&mut rng);
                let OwnerRef::User(o) = &r.owner else {
                    return None;
                };
                let m = users.get(o.as_str())?.reports_to.as_deref()?;
                Some((m, r))
            }),
            // Someone a sharing rule reaches, on a record of its `from` set.
            10..=12 if !owner_rules.is_empty() => (0..64).find_map(|_| {
                let rule = owner_rules[rng.below(owner_rules.len())];
                let owner = some_user_of(rule.from.as_ref()?, &mut rng)?;
                let owned = by_owner.get(&(rule.module.as_str(), owner))?;
                let r = &doc.records[owned[rng.below(owned.len())]];
                Some((some_user_of(&rule.to, &mut rng)?, r))
            }),
            // The user a manual share names.
            13..=15 if !user_shares.is_empty() => {
                let s = user_shares[rng.below(user_shares.len())];
                let Grantee::User(u) = &s.grantee else {
                    continue;
                };
                shared_records
                    .get(&(s.module.as_str(), s.record.as_str()))
                    .map(|k| (u.as_str(), &doc.records[*k]))
            }
            _ => None,
        };
        let (subject, record) = match aimed {
            Some(a) => a,
            None => (random_user(&mut rng), random_record(&mut rng)),
        };
        out.push(CheckRequest {
            subject: subject.into(),
            module: record.module.clone().into(),
            action: if rng.chance(0.2) { "edit" } else { "view" }.into(),
            record: Some(record.id.clone().into()),
            ..CheckRequest::default()
        });
    }
    out
}

/// Arguments of `warden generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Which data set.
    #[arg(long, value_enum, default_value_t = Preset::CrmLarge)]
    pub preset: Preset,
    /// File to write the organization document to.
    #[arg(long)]
    pub out: PathBuf,
    /// Document format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Multiplies the preset's records, manual shares and nesting depths
    /// (e.g. 0.1 or 2 of crm-large).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// How many organizations the `tenants` preset writes.
    #[arg(long, default_value_t = 10_000)]
    pub orgs: usize,
}

/// Writes a document in `format`.
pub fn write_document(
    doc: &OrgDocument,
    format: Format,
    out: impl Write,
) -> Result<(), std::io::Error> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    match format {
        Format::Json => serde_json::to_writer(&mut out, doc).map_err(std::io::Error::other)?,
        Format::Yaml => serde_yaml_ng::to_writer(&mut out, doc).map_err(std::io::Error::other)?,
    }
    out.flush()
}

/// `warden generate`: writes a preset's document, a file `warden serve
/// --bootstrap` or `Import` takes.
pub fn run(args: &GenerateArgs) -> ExitCode {
    if args.preset == Preset::Tenants {
        return run_tenants(args);
    }
    let started = Instant::now();
    let params = match Params::of(args.preset).scaled(args.scale) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warden generate: --scale: {e}");
            return ExitCode::FAILURE;
        }
    };
    let generated = match generate(&params) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("warden generate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let doc = &generated.document;
    let generated_in = started.elapsed();
    let written =
        std::fs::File::create(&args.out).and_then(|file| write_document(doc, args.format, file));
    if let Err(e) = written {
        eprintln!("warden generate: {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "{}: organization '{}' with {} users, {} roles, {} groups, {} sharing rules, {} records, {} manual shares (generated in {:.2?}, written in {:.2?})",
        args.out.display(),
        doc.organization,
        doc.users.len(),
        doc.roles.len(),
        doc.groups.len(),
        doc.sharing_rules.len(),
        doc.records.len(),
        doc.shares.len(),
        generated_in,
        started.elapsed() - generated_in,
    );
    ExitCode::SUCCESS
}

/// The file a tenant's document is written to in `--out`.
pub fn tenant_file(index: usize, format: Format) -> String {
    let extension = match format {
        Format::Json => "json",
        Format::Yaml => "yaml",
    };
    format!("tenant-{index:05}.{extension}")
}

/// `warden generate --preset tenants`: one document per organization in
/// the directory `--out` (created if missing), which `warden serve
/// --bootstrap DIR` merges.
fn run_tenants(args: &GenerateArgs) -> ExitCode {
    let started = Instant::now();
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("warden generate: {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    for index in 0..args.orgs {
        let generated = match Params::tenant(index)
            .scaled(args.scale)
            .and_then(|p| generate(&p))
        {
            Ok(g) => g,
            Err(e) => {
                eprintln!("warden generate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let path = args.out.join(tenant_file(index, args.format));
        let written = std::fs::File::create(&path)
            .and_then(|file| write_document(&generated.document, args.format, file));
        if let Err(e) = written {
            eprintln!("warden generate: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    eprintln!(
        "{}: {} organizations of {} users and {} records each (in {:.2?})",
        args.out.display(),
        args.orgs,
        Params::tenant(0).users,
        Params::tenant(0).records,
        started.elapsed()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::document::changes_of;
    use crate::engine::model::Reason;
    use crate::engine::{Command, Direct, Engine};
    use chrono::Utc;

    fn depth_of(parents: &FxHashMap<&str, Vec<&str>>, id: &str) -> usize {
        parents
            .get(id)
            .map(|ps| {
                ps.iter()
                    .map(|p| 1 + depth_of(parents, p))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    #[test]
    fn crm_large_is_the_data_set_of_the_spec() {
        let p = Params::crm_large();
        assert_eq!(p.users, 10_000);
        assert_eq!(p.roles, 1_000);
        assert_eq!(p.role_depth, 8);
        assert_eq!(p.groups, 2_000);
        assert_eq!(p.group_depth, 5);
        assert_eq!(p.sharing_rules, 200);
        assert_eq!(p.records, 1_000_000);
        assert_eq!(p.manual_shares, 100_000);
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(Params::of(Preset::CrmLarge), p);
        let levels = role_levels(p.roles, p.role_depth);
        assert_eq!(levels.len(), 9);
        assert_eq!(levels[..2], [1, 2]);
        assert_eq!(levels.iter().sum::<usize>(), 1_000);
        let groups = group_levels(p.groups, p.group_depth);
        assert_eq!(groups.len(), 6);
        assert_eq!(groups.iter().sum::<usize>(), 2_000);
    }

    #[test]
    fn the_small_preset_imports_with_validation_and_has_the_asked_shape() {
        let params = Params::small();
        let generated = generate(&params).unwrap();
        let doc = &generated.document;
        assert_eq!(doc.users.len(), params.users);
        assert_eq!(doc.roles.len(), params.roles);
        assert_eq!(doc.groups.len(), params.groups);
        assert_eq!(doc.sharing_rules.len(), params.sharing_rules);
        assert_eq!(doc.records.len(), params.records);
        assert_eq!(doc.shares.len(), params.manual_shares);
        assert_eq!(doc.modules.len(), params.modules);

        let role_parents: FxHashMap<&str, Vec<&str>> = doc
            .roles
            .iter()
            .map(|r| (r.id.as_str(), r.parent.iter().map(String::as_str).collect()))
            .collect();
        let role_depth = doc
            .roles
            .iter()
            .map(|r| depth_of(&role_parents, &r.id))
            .max();
        assert_eq!(role_depth, Some(params.role_depth));
        let nested: FxHashMap<&str, Vec<&str>> = doc
            .groups
            .iter()
            .map(|g| (g.id.as_str(), g.groups.iter().map(String::as_str).collect()))
            .collect();
        let group_depth = doc.groups.iter().map(|g| depth_of(&nested, &g.id)).max();
        assert_eq!(group_depth, Some(params.group_depth));

        let engine = Engine::new(Direct, Limits::default());
        let org = &doc.organization;
        let revision = engine
            .execute(
                org,
                &Command::Import {
                    document: doc.clone(),
                    replace: true,
                },
            )
            .unwrap();
        assert_eq!(revision, 1);
        let summary = engine.summary(org).unwrap().0;
        assert_eq!(summary.records, params.records);

        // Loading without validation gives the same organization.
        let unchecked = Engine::new(Direct, Limits::default());
        unchecked.apply(org, 1, &changes_of(doc));
        assert_eq!(
            unchecked.export(org).unwrap().0,
            engine.export(org).unwrap().0
        );
    }

    #[test]
    fn generation_is_deterministic_and_the_mix_reaches_every_path() {
        let params = Params::small();
        let a = generate(&params).unwrap();
        let b = generate(&params).unwrap();
        assert_eq!(a.document, b.document);
        assert_eq!(a.landmarks, b.landmarks);

        let doc = &a.document;
        let engine = Engine::new(Direct, Limits::default());
        engine.apply(&doc.organization, 1, &changes_of(doc));
        let mix = check_mix(doc, 3_000, 1);
        assert_eq!(mix, check_mix(doc, 3_000, 1));
        let now = Utc::now();
        let mut reasons = FxHashSet::default();
        for req in &mix {
            let (d, _) = engine.check(&doc.organization, req, now).unwrap();
            reasons.insert(d.reason);
        }
        for reason in [
            Reason::Owner,
            Reason::GroupOwner,
            Reason::Hierarchy,
            Reason::SharingRule,
            Reason::ManualShare,
            Reason::OrgDefault,
            Reason::InsufficientAccess,
        ] {
            assert!(reasons.contains(&reason), "no check decided by {reason:?}");
        }

        // The division head sees a large share of the private module.
        let l = &a.landmarks;
        let (ids, _) = engine
            .lookup_records(
                &doc.organization,
                &l.division_head,
                &l.private_module,
                "view",
                now,
            )
            .unwrap();
        let in_module = doc
            .records
            .iter()
            .filter(|r| r.module == l.private_module)
            .count();
        assert!(
            ids.len() * 4 > in_module && ids.len() < in_module,
            "{} of {in_module}",
            ids.len()
        );
    }

    #[test]
    fn tenants_are_small_distinct_and_import() {
        let a = generate(&Params::tenant(0)).unwrap().document;
        let b = generate(&Params::tenant(1)).unwrap().document;
        assert_eq!(a.organization, "tenant-00000");
        assert_eq!(b.organization, "tenant-00001");
        assert_eq!(a.users.len(), 100);
        assert_eq!(a.records.len(), 1_000);
        assert_eq!(a.shares.len(), 100);
        // Each tenant has its own seed: the same shape, other choices.
        assert_ne!(a.records, b.records);
        // Every tenant's document is valid, whatever its seed drew.
        let engine = Engine::new(Direct, Limits::default());
        let more = (2..40).map(|i| generate(&Params::tenant(i)).unwrap().document);
        for doc in [a, b].into_iter().chain(more) {
            let org = doc.organization.clone();
            let command = Command::Import {
                document: doc,
                replace: true,
            };
            assert_eq!(engine.execute(&org, &command), Ok(1));
            assert_eq!(engine.summary(&org).unwrap().0.records, 1_000);
        }
        assert_eq!(tenant_file(7, Format::Json), "tenant-00007.json");
    }

    #[test]
    fn scaling_multiplies_records_shares_and_depths() {
        let base = Params::crm_large();
        assert_eq!(base.scaled(1.0).unwrap(), base);
        let tenth = base.scaled(0.1).unwrap();
        assert_eq!(tenth.organization, "crm-large-x0.1");
        assert_eq!(tenth.records, 100_000);
        assert_eq!(tenth.manual_shares, 10_000);
        assert_eq!(tenth.role_depth, 1);
        assert_eq!(tenth.group_depth, 1);
        assert_eq!(tenth.users, base.users);
        let double = base.scaled(2.0).unwrap();
        assert_eq!(double.organization, "crm-large-x2");
        assert_eq!(double.records, 2_000_000);
        assert_eq!(double.manual_shares, 200_000);
        assert_eq!(double.role_depth, 16);
        assert_eq!(double.group_depth, 10);
        assert!(base.scaled(0.0).is_err());
        assert!(base.scaled(f64::NAN).is_err());
        // A scaled small organization is generated with those depths.
        let doc = generate(&Params::small().scaled(2.0).unwrap())
            .unwrap()
            .document;
        assert_eq!(doc.records.len(), 4_000);
        let parents: FxHashMap<&str, Vec<&str>> = doc
            .roles
            .iter()
            .map(|r| (r.id.as_str(), r.parent.iter().map(String::as_str).collect()))
            .collect();
        let deepest = doc
            .roles
            .iter()
            .map(|r| depth_of(&parents, &r.id))
            .max()
            .unwrap();
        assert_eq!(deepest, 8);
    }

    #[test]
    fn impossible_parameters_are_refused() {
        let mut p = Params::small();
        p.roles = 3;
        assert!(generate(&p).is_err());
        let mut p = Params::small();
        p.guest_share = 1.0;
        assert!(generate(&p).is_err());
        let mut p = Params::small();
        p.private_share = 1.5;
        assert!(generate(&p).is_err());
    }
}
