//! The organization document: a whole organization as one value, what
//! `Import` takes, `Export` returns and `warden serve --bootstrap` loads.

use serde::{Deserialize, Serialize};

use super::change::Change;
use super::expand::Invalidation;
use super::model::{
    GroupDef, ModuleDef, ProfileDef, RecordDef, RoleDef, Settings, SettingsPatch, ShareDef,
    SharingRuleDef, ShiftDef, UserDef,
};
use super::org::OrgState;

/// One organization, written out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgDocument {
    /// Organization id.
    pub organization: String,
    /// Settings, read with presence: on a merge only those named change;
    /// on a replace (or a new organization) the others take their defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsPatch>,
    /// Modules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleDef>,
    /// Profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileDef>,
    /// Roles, parents before children.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleDef>,
    /// Shifts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shifts: Vec<ShiftDef>,
    /// Users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserDef>,
    /// Groups, nested ones before those that nest them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupDef>,
    /// Records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordDef>,
    /// Manual shares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareDef>,
    /// Sharing rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sharing_rules: Vec<SharingRuleDef>,
}

/// Writes an organization out as a document, every list sorted so that the
/// same policy always exports the same text; roles parents first, groups
/// nested first, users managers first.
pub fn export(org: &OrgState) -> OrgDocument {
    let mut modules: Vec<ModuleDef> = org.modules.iter().map(|(_, m)| m.def.clone()).collect();
    modules.sort_by(|a, b| a.id.cmp(&b.id));
    let mut profiles: Vec<ProfileDef> = org.profiles.iter().map(|(_, p)| p.def.clone()).collect();
    profiles.sort_by(|a, b| a.id.cmp(&b.id));
    let mut shifts: Vec<ShiftDef> = org.shifts.iter().map(|(_, s)| s.def.clone()).collect();
    shifts.sort_by(|a, b| a.id.cmp(&b.id));

    let roles = topo_sorted(
        org.roles.iter().map(|(_, r)| r.def.clone()).collect(),
        |r| r.id.clone(),
        |r| r.parent.iter().cloned().collect(),
    );
    let users = topo_sorted(
        org.users.iter().map(|(_, u)| u.def.clone()).collect(),
        |u| u.id.clone(),
        |u| u.reports_to.iter().cloned().collect(),
    );
    let groups = topo_sorted(
        org.groups.iter().map(|(_, g)| g.def.clone()).collect(),
        |g| g.id.clone(),
        |g| g.groups.clone(),
    );

    let mut records = Vec::new();
    let mut shares = Vec::new();
    let mut sharing_rules = Vec::new();
    for (_, module) in org.modules.iter() {
        let mut by_id: Vec<_> = module.records.iter().map(|(_, r)| r).collect();
        by_id.sort_unstable_by(|a, b| a.id().cmp(b.id()));
        for record in by_id {
            let id = record.id();
            records.push(RecordDef {
                module: module.def.id.clone(),
                id: id.to_string(),
                owner: org.owner_ref(record.owner),
                private: record.private,
                attributes: record.attributes.to_map(module.records.terms()),
            });
            let mut record_shares: Vec<ShareDef> = record
                .shares
                .iter()
                .map(|s| ShareDef {
                    module: module.def.id.clone(),
                    record: id.to_string(),
                    grantee: org.grantee_ref(s.grantee),
                    level: s.level,
                })
                .collect();
            record_shares.sort_by(|a, b| a.grantee.cmp(&b.grantee));
            shares.extend(record_shares);
        }
        sharing_rules.extend(module.rules.values().map(|r| r.def.clone()));
    }
    records.sort_by(|a, b| (&a.module, &a.id).cmp(&(&b.module, &b.id)));
    shares.sort_by(|a, b| {
        (&a.module, &a.record, &a.grantee).cmp(&(&b.module, &b.record, &b.grantee))
    });
    sharing_rules.sort_by(|a, b| a.id.cmp(&b.id));

    OrgDocument {
        organization: org.id.to_string(),
        settings: Some(SettingsPatch::from(&org.settings)),
        modules,
        profiles,
        roles,
        shifts,
        users,
        groups,
        records,
        shares,
        sharing_rules,
    }
}

/// Sorts items by id, then moves each after the items it depends on (that
/// are in the list). Items caught in a cycle keep their id order at the end.
/// Each item goes in the round of its longest chain of dependencies, found
/// by one depth-first pass, so a long chain sorts in linear time.
pub fn topo_sorted<T>(
    mut items: Vec<T>,
    id: impl Fn(&T) -> String,
    deps: impl Fn(&T) -> Vec<String>,
) -> Vec<T> {
    items.sort_by_key(|t| id(t));
    let ids: Vec<String> = items.iter().map(&id).collect();
    let mut position: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        position.entry(id.as_str()).or_insert(i);
    }
    let edges: Vec<Vec<usize>> = items
        .iter()
        .map(|t| {
            deps(t)
                .iter()
                .filter_map(|d| position.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    // `None`: in a cycle, or behind one; such items are never ready.
    let mut round: Vec<Option<usize>> = vec![Some(0); items.len()];
    let mut state = vec![0u8; items.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..items.len() {
        if state[root] != 0 {
            continue;
        }
        state[root] = 1;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            match edges[node].get(top.1).copied() {
                Some(to) => {
                    top.1 += 1;
                    match state[to] {
                        0 => {
                            state[to] = 1;
                            stack.push((to, 0));
                        }
                        1 => round[node] = None,
                        _ => {}
                    }
                }
                None => {
                    if round[node].is_some() {
                        round[node] = edges[node]
                            .iter()
                            .try_fold(0, |r, d| round[*d].map(|d| r.max(d + 1)));
                    }
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }
    let mut ranked: Vec<(usize, T)> = round
        .into_iter()
        .map(|r| r.unwrap_or(usize::MAX))
        .zip(items)
        .collect();
    // Stable: within a round, items keep their id order.
    ranked.sort_by_key(|(r, _)| *r);
    ranked.into_iter().map(|(_, t)| t).collect()
}

/// The whole settings a document gives a new organization: those it names,
/// defaults for the rest.
pub fn settings_of(doc: &OrgDocument) -> Settings {
    doc.settings
        .as_ref()
        .map(|patch| patch.apply(&Settings::default()))
        .unwrap_or_default()
}

/// Builds an organization's compiled state straight from its entities,
/// each taken by value and applied as it comes: what a store load does, so
/// that no whole document and no cloned change list sit beside the state.
/// The small kinds come first, in one document (references resolve in
/// dependency order); records and shares may then be streamed in any
/// order, records before the shares that name them. Nothing is validated:
/// the entities come from the store, which holds only planned changes.
#[derive(Debug)]
pub struct StateBuilder {
    state: OrgState,
    rules: Vec<SharingRuleDef>,
}

impl StateBuilder {
    /// An organization at `revision` holding everything `doc` lists (the
    /// document is consumed; its records and shares, if any, are applied
    /// too).
    pub fn new(doc: OrgDocument, revision: u64) -> Self {
        let settings = settings_of(&doc);
        let mut builder = StateBuilder {
            state: OrgState::new(&doc.organization, 0, revision, settings),
            rules: Vec::new(),
        };
        let OrgDocument {
            modules,
            profiles,
            roles,
            shifts,
            users,
            groups,
            records,
            shares,
            sharing_rules,
            ..
        } = doc;
        let roles = topo_sorted(
            roles,
            |r| r.id.clone(),
            |r| r.parent.iter().cloned().collect(),
        );
        let users = topo_sorted(
            users,
            |u| u.id.clone(),
            |u| u.reports_to.iter().cloned().collect(),
        );
        let groups = topo_sorted(groups, |g| g.id.clone(), |g| g.groups.clone());
        let small = modules
            .into_iter()
            .map(Change::PutModule)
            .chain(profiles.into_iter().map(Change::PutProfile))
            .chain(roles.into_iter().map(Change::PutRole))
            .chain(shifts.into_iter().map(Change::PutShift))
            .chain(users.into_iter().map(Change::PutUser))
            .chain(groups.into_iter().map(Change::PutGroup));
        for change in small {
            builder.apply(change);
        }
        records.into_iter().for_each(|r| builder.record(r));
        shares.into_iter().for_each(|s| builder.share(s));
        // Rules name no record: they are applied last, as `changes_of`
        // orders them, whatever records and shares are streamed meanwhile.
        builder.rules = sharing_rules;
        builder
    }

    fn apply(&mut self, change: Change) {
        // Nothing caches a state under construction: what changed is moot.
        let mut ignored = Invalidation::default();
        self.state.apply(&change, &mut ignored);
    }

    /// Adds one record (its owner and module must be in already).
    pub fn record(&mut self, def: RecordDef) {
        self.apply(Change::PutRecord(def));
    }

    /// Adds one manual share (its record must be in already).
    pub fn share(&mut self, def: ShareDef) {
        self.apply(Change::PutShare(def));
    }

    /// The compiled organization.
    pub fn finish(mut self) -> OrgState {
        for rule in std::mem::take(&mut self.rules) {
            self.apply(Change::PutRule(rule));
        }
        self.state
    }
}

/// A document's organization at `revision`, built without copying it.
pub fn state_of(doc: OrgDocument, revision: u64) -> OrgState {
    StateBuilder::new(doc, revision).finish()
}

/// The changes that build a document's organization from nothing, in an
/// order where every reference exists when it is applied: what a store
/// replays at start-up. Nothing is validated here; the document came from
/// the store, which holds only planned changes.
pub fn changes_of(doc: &OrgDocument) -> Vec<Change> {
    let mut out = Vec::new();
    out.push(Change::CreateOrg(settings_of(doc)));
    out.extend(doc.modules.iter().cloned().map(Change::PutModule));
    out.extend(doc.profiles.iter().cloned().map(Change::PutProfile));
    out.extend(
        topo_sorted(
            doc.roles.clone(),
            |r| r.id.clone(),
            |r| r.parent.iter().cloned().collect(),
        )
        .into_iter()
        .map(Change::PutRole),
    );
    out.extend(doc.shifts.iter().cloned().map(Change::PutShift));
    out.extend(
        topo_sorted(
            doc.users.clone(),
            |u| u.id.clone(),
            |u| u.reports_to.iter().cloned().collect(),
        )
        .into_iter()
        .map(Change::PutUser),
    );
    out.extend(
        topo_sorted(doc.groups.clone(), |g| g.id.clone(), |g| g.groups.clone())
            .into_iter()
            .map(Change::PutGroup),
    );
    out.extend(doc.records.iter().cloned().map(Change::PutRecord));
    out.extend(doc.shares.iter().cloned().map(Change::PutShare));
    out.extend(doc.sharing_rules.iter().cloned().map(Change::PutRule));
    out
}
