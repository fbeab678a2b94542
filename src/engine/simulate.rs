//! What-if simulation (`AdminService/Simulate`, `warden simulate`): plans a
//! batch of writes on a copy of an organization, exactly as the writes would
//! be planned and authorized one after the other, commits nothing, and
//! reports the access each subject would gain or lose.
//!
//! Only what the batch can affect is compared (its *reach*, see [`Reach`]);
//! a change whose reach is the whole organization (a new or deleted
//! organization, a replacing import, a change of hierarchy mode) falls back
//! to comparing every subject, module and action in full.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::authz::{authorize, Writer};
use super::change::Change;
use super::decision::{
    decide, field_level, resolve_subject, CheckRequest, ShiftTime, Subject, Trace,
};
use super::document::OrgDocument;
use super::error::{bounded, Error, Result};
use super::expand::{Direct, Expand, Invalidation};
use super::ids::check_id;
use super::lookup::plan as access_plan;
use super::model::{
    AccessLevel, FieldLevel, Grantee, GroupDef, MemberSet, ModuleDef, OwnerRef, ProfileDef,
    RoleDef, Settings, SettingsPatch, ShareDef, SharingRuleDef, ShiftDef, UserDef,
};
use super::org::{GroupIx, MemberSetIx, Module, ModuleIx, OrgState, Owner, RoleIx, UserIx};
use super::paths::Plan;
use super::plan::{plan, Command, Limits, RecordWrite};

/// Most writes in one simulated batch.
pub const MAX_WRITES: usize = 100;
/// Record ids listed per gained or lost sample when the request names none.
pub const DEFAULT_SAMPLE: usize = 10;
/// Most record ids listed per sample.
pub const MAX_SAMPLE: usize = 100;
/// Most actions one simulation compares.
pub const MAX_ACTIONS: usize = 16;
/// The actions compared when the request names none.
pub const DEFAULT_ACTIONS: [&str; 3] = ["view", "edit", "delete"];

/// One write of a batch, with who makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWrite {
    /// The writer, authorized as the real write would be.
    pub writer: Writer,
    /// The write.
    pub command: Command,
}

/// What to compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulateOptions {
    /// Actions to compare (empty: view, edit, delete).
    pub actions: Vec<String>,
    /// Record ids per sample (0: [`DEFAULT_SAMPLE`]).
    pub sample_size: usize,
}

/// When a simulation gives up: a deadline, and a flag its caller raises
/// when no one waits for the answer any more. A whole-organization
/// comparison of a large organization runs for minutes; the comparison
/// loops look at this once per subject and module, and stop.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// Stop at this instant (`None`: no deadline).
    pub deadline: Option<Instant>,
    /// Stop when this turns true.
    pub cancelled: Arc<AtomicBool>,
}

impl Bound {
    /// A bound `limit` from now.
    pub fn within(limit: Duration) -> Bound {
        Bound {
            deadline: Instant::now().checked_add(limit),
            cancelled: Arc::default(),
        }
    }

    /// Whether the work must stop.
    pub fn stopped(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Raises the flag when dropped: held by the request that waits for the
    /// answer, so a request dropped (its client gone, its time bound hit)
    /// stops the work it started off the runtime.
    pub fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.cancelled.clone())
    }
}

/// See [`Bound::cancel_on_drop`].
#[derive(Debug)]
pub struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The access of one subject to one module's records for one action, where
/// the batch changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessChange {
    /// User id.
    pub subject: String,
    /// Module id.
    pub module: String,
    /// Action.
    pub action: String,
    /// Records the subject could not act on before and could after.
    pub gained_count: u64,
    /// Records the subject could act on before and could not after.
    pub lost_count: u64,
    /// The first gained record ids, sorted.
    pub gained_sample: Vec<String>,
    /// The first lost record ids, sorted.
    pub lost_sample: Vec<String>,
}

/// A field whose level (without a record) changes for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// User id.
    pub subject: String,
    /// Module id.
    pub module: String,
    /// Field.
    pub field: String,
    /// Level before the batch.
    pub before: FieldLevel,
    /// Level after it.
    pub after: FieldLevel,
}

/// The answer of a simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// The revision the batch was planned on.
    pub revision: u64,
    /// Access changes, by subject, module, then action in the asked order.
    pub changes: Vec<AccessChange>,
    /// Field level changes, by subject, module, field.
    pub field_changes: Vec<FieldChange>,
    /// Whether the batch reached the whole organization (full comparison).
    pub whole_org: bool,
    /// (subject, module) pairs whose access was compared, for the record.
    pub compared: u64,
}

/// Refuses a request too large or malformed, before any planning.
pub fn check_request(
    writes: &[SimWrite],
    options: &SimulateOptions,
    limits: &Limits,
) -> Result<()> {
    if writes.is_empty() {
        return Err(Error::invalid(
            "writes",
            "name at least one write to simulate",
        ));
    }
    if writes.len() > MAX_WRITES {
        return Err(Error::invalid(
            "writes",
            format!(
                "{} writes exceed the limit of {MAX_WRITES} per simulation",
                writes.len()
            ),
        ));
    }
    if options.sample_size > MAX_SAMPLE {
        return Err(Error::invalid(
            "sample_size",
            format!("{} exceeds the limit of {MAX_SAMPLE}", options.sample_size),
        ));
    }
    if options.actions.len() > MAX_ACTIONS {
        return Err(Error::invalid(
            "actions",
            format!(
                "{} actions exceed the limit of {MAX_ACTIONS}",
                options.actions.len()
            ),
        ));
    }
    for (i, a) in options.actions.iter().enumerate() {
        check_id(&format!("actions[{i}]"), a, limits.id_length)?;
        if options.actions[..i].contains(a) {
            return Err(Error::invalid(
                format!("actions[{i}]"),
                format!("'{}' is listed twice", bounded(a)),
            ));
        }
    }
    Ok(())
}

/// The field of a write's error, prefixed with its place in the batch, so
/// that a refusal names the write as well as the field; the code is the
/// one the write alone would get.
pub fn at_write(i: usize, e: Error) -> Error {
    let path = format!("writes[{i}]");
    match e {
        Error::InvalidArgument { field, rule } => Error::InvalidArgument {
            field: format!("{path}.{field}"),
            rule,
        },
        Error::NotFound { kind, id, field } => Error::NotFound {
            kind,
            id,
            field: if field.is_empty() {
                path
            } else {
                format!("{path}.{field}")
            },
        },
        Error::FailedPrecondition(m) => Error::FailedPrecondition(format!("{path}: {m}")),
        Error::PermissionDenied(m) => Error::PermissionDenied(format!("{path}: {m}")),
        Error::AlreadyExists { kind, id } => Error::AlreadyExists { kind, id },
    }
}

/// Plans the batch on a copy of `before`, each write authorized (when an
/// actor makes it) and planned against the state the writes before it
/// leave, as if committed one after the other. Returns the state after the
/// batch (`None`: the organization is deleted) and every planned change.
pub fn plan_batch(
    before: &OrgState,
    writes: &[SimWrite],
    limits: &Limits,
    now: DateTime<Utc>,
    extra_check: impl Fn(&[Change]) -> Result<()>,
) -> Result<(Option<OrgState>, Vec<Change>)> {
    let org_id = before.id.to_string();
    let mut state = Some(before.clone());
    let mut all = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let step = |state: &Option<OrgState>| -> Result<Vec<Change>> {
            if let Writer::Actor {
                user_id,
                admin_scope,
            } = &w.writer
            {
                let org = state
                    .as_ref()
                    .ok_or_else(|| Error::not_found("organization", org_id.as_str(), "org_id"))?;
                authorize(org, &Direct, user_id, *admin_scope, &w.command, now)?;
            }
            let changes = plan(state.as_ref(), &org_id, &w.command, limits)?;
            extra_check(&changes)?;
            Ok(changes)
        };
        let changes = step(&state).map_err(|e| at_write(i, e))?;
        state = apply_batch_step(state, &org_id, &changes);
        all.extend(changes);
    }
    Ok((state, all))
}

/// Applies one write's changes to the scratch state, as the engine applies
/// them to a live organization.
fn apply_batch_step(state: Option<OrgState>, org_id: &str, changes: &[Change]) -> Option<OrgState> {
    let mut inv = Invalidation::default();
    let (mut state, rest) = match changes.first() {
        Some(Change::DeleteOrg) => return None,
        Some(Change::CreateOrg(settings)) => (
            OrgState::new(org_id, 0, 0, settings.clone()),
            changes.get(1..).unwrap_or_default(),
        ),
        _ => (state?, changes),
    };
    for change in rest {
        state.apply(change, &mut inv);
    }
    Some(state)
}

/// Compares access before and after the batch over its reach, with fresh
/// expanders (`Y`) so that nothing of the live caches is read or filled.
///
/// `Ok(None)`: `bound` stopped the comparison before it was complete.
pub fn compare<Y: Expand + Default>(
    before: &OrgState,
    after: Option<&OrgState>,
    changes: &[Change],
    options: &SimulateOptions,
    bound: &Bound,
) -> Result<Option<Simulation>> {
    let empty;
    let after = match after {
        Some(a) => a,
        None => {
            empty = OrgState::new(&before.id, 0, 0, Settings::default());
            &empty
        }
    };
    let actions = actions_of(before, after, options)?;
    let sample = if options.sample_size == 0 {
        DEFAULT_SAMPLE
    } else {
        options.sample_size
    };
    let xb = Y::default();
    let xa = Y::default();
    let b = Side {
        org: before,
        x: &xb,
    };
    let a = Side { org: after, x: &xa };
    let whole = before.settings.hierarchy_mode != after.settings.hierarchy_mode
        || changes
            .iter()
            .any(|c| matches!(c, Change::CreateOrg(_) | Change::DeleteOrg));
    let mut tally = Tally::new(sample);
    let (compared, field_changes) = if whole {
        (
            full_compare(&b, &a, &actions, &mut tally, bound),
            field_compare(&b, &a, None, bound),
        )
    } else {
        let reach = Reach::of(&b, &a, changes);
        (
            reach.compare(&b, &a, &actions, &mut tally, bound),
            field_compare(&b, &a, Some(&reach), bound),
        )
    };
    if bound.stopped() {
        return Ok(None);
    }
    Ok(Some(Simulation {
        revision: before.revision,
        changes: tally.finish(&actions),
        field_changes,
        whole_org: whole,
        compared,
    }))
}

/// The actions to compare: each must be standard or a custom action of
/// some module before or after the batch.
fn actions_of(
    before: &OrgState,
    after: &OrgState,
    options: &SimulateOptions,
) -> Result<Vec<String>> {
    if options.actions.is_empty() {
        return Ok(DEFAULT_ACTIONS.iter().map(|a| a.to_string()).collect());
    }
    for (i, action) in options.actions.iter().enumerate() {
        let known = [before, after].iter().any(|org| {
            org.modules
                .iter()
                .any(|(_, m)| m.required_level(action).is_some())
        });
        if !known {
            return Err(Error::invalid(
                format!("actions[{i}]"),
                format!(
                    "'{}' is neither a standard action nor a custom action of any module",
                    bounded(action)
                ),
            ));
        }
    }
    Ok(options.actions.clone())
}

/// One state with its expander.
struct Side<'a, X> {
    org: &'a OrgState,
    x: &'a X,
}

impl<X: Expand> Side<'_, X> {
    fn users_of_role_subtree(&self, role: RoleIx, out: &mut FxHashSet<UserIx>) {
        for r in self.x.role_subtree(self.org, role).iter() {
            if let Some(role) = self.org.role(*r) {
                out.extend(role.users.iter().copied());
            }
        }
    }

    /// The users of a rule's `from` or `to` set.
    fn set_users(&self, set: MemberSetIx, out: &mut FxHashSet<UserIx>) {
        match set {
            MemberSetIx::Role(r) => {
                if let Some(role) = self.org.role(r) {
                    out.extend(role.users.iter().copied());
                }
            }
            MemberSetIx::RoleAndSubordinates(r) => self.users_of_role_subtree(r, out),
            MemberSetIx::Group(g) => out.extend(self.x.group_members(self.org, g).iter().copied()),
        }
    }

    fn grantee_users(&self, grantee: &Grantee, out: &mut FxHashSet<UserIx>) {
        let set = match grantee {
            Grantee::User(u) => {
                out.extend(self.org.users.ix(u).map(UserIx));
                return;
            }
            Grantee::Group(g) => MemberSet::Group(g.clone()),
            Grantee::Role(r) => MemberSet::Role(r.clone()),
            Grantee::RoleAndSubordinates(r) => MemberSet::RoleAndSubordinates(r.clone()),
        };
        if let Some(set) = self.org.resolve_member_set(&set) {
            self.set_users(set, out);
        }
    }

    /// Whether the user is in a rule's `from` set (its records are shared).
    fn in_set(&self, user: UserIx, groups: &[GroupIx], set: MemberSetIx) -> bool {
        let role = self.org.user(user).and_then(|u| u.role);
        match set {
            MemberSetIx::Role(r) => role == Some(r),
            MemberSetIx::RoleAndSubordinates(r) => {
                role.is_some_and(|ur| self.x.in_role_subtree(self.org, r, ur))
            }
            MemberSetIx::Group(g) => groups.binary_search(&g).is_ok(),
        }
    }

    /// The subjects whose access reads `user` as an owner: its superiors
    /// (by role and by reporting line), the leads of its groups, and, per
    /// module, those a sharing rule shares its records with.
    fn observers(&self, user: UserIx, reach: &mut Reach) {
        let Some(u) = self.org.user(user) else {
            return;
        };
        if let Some(role) = u.role {
            for above in self.org.role_ancestors(role) {
                if let Some(r) = self.org.role(above) {
                    reach.subjects.extend(r.users.iter().copied());
                }
            }
        }
        reach
            .subjects
            .extend(self.x.managers(self.org, user).iter().copied());
        let groups = self.x.user_groups(self.org, user);
        for g in groups.iter() {
            if let Some(group) = self.org.group(*g) {
                reach.subjects.extend(group.leads.iter().copied());
            }
        }
        for (m, module) in self.org.modules.iter() {
            for rule in module.rules.values() {
                if let Some(from) = rule.from {
                    if self.in_set(user, &groups, from) {
                        let to = reach.by_module.entry(ModuleIx(m)).or_default();
                        self.set_users(rule.to, to);
                    }
                }
            }
        }
    }

    /// What a change to group `group` reaches in this state: the members
    /// of it and of every group containing it (their groups change), the
    /// leads of those groups, and those sharing rules from those groups
    /// share with (their members and nested groups are owners).
    fn group_reach(
        &self,
        group: GroupIx,
        members: &mut FxHashMap<GroupIx, Vec<UserIx>>,
        reach: &mut Reach,
    ) {
        for g in self.org.group_containers(group) {
            let Some(node) = self.org.group(g) else {
                continue;
            };
            members.entry(g).or_default();
            reach.subjects.extend(node.leads.iter().copied());
            for (m, module) in self.org.modules.iter() {
                for rule in module.rules.values() {
                    if rule.from == Some(MemberSetIx::Group(g)) {
                        let to = reach.by_module.entry(ModuleIx(m)).or_default();
                        self.set_users(rule.to, to);
                    }
                }
            }
        }
    }

    fn holders_of_profile(&self, profile: &str, out: &mut FxHashSet<UserIx>) {
        let Some(p) = self.org.profiles.ix(profile) else {
            return;
        };
        for (ix, user) in self.org.users.iter() {
            let holds = user.profiles.iter().any(|x| x.0 == p)
                || user
                    .role
                    .and_then(|r| self.org.role(r))
                    .is_some_and(|r| r.profiles.iter().any(|x| x.0 == p));
            if holds {
                out.insert(UserIx(ix));
            }
        }
    }

    /// The records `subject` may do `action` to, as a plan over owners
    /// (`None`: the module or action does not exist here).
    fn plan(&self, subject: &str, module: &str, action: &str) -> Option<Plan> {
        let (_, m) = self.org.modules.by_id(module)?;
        m.required_level(action)?;
        access_plan(
            self.org,
            self.x,
            subject,
            module,
            action,
            ShiftTime::Ignored,
        )
        .ok()
        .map(|(_, p)| p)
    }

    fn allowed(&self, subject: &str, module: &str, record: &str, action: &str) -> bool {
        let Some((_, m)) = self.org.modules.by_id(module) else {
            return false;
        };
        if m.required_level(action).is_none() || !m.records.contains(record) {
            return false;
        }
        let req = CheckRequest {
            subject: subject.into(),
            module: module.into(),
            action: action.into(),
            record: Some(record.into()),
            ..CheckRequest::default()
        };
        // A refused check is no access: an error never becomes ALLOW.
        decide(self.org, self.x, &req, ShiftTime::Ignored).is_ok_and(|d| d.allowed)
    }

    /// Every record id `subject` may do `action` to, sorted.
    fn record_ids(&self, subject: &str, module: &str, action: &str) -> Vec<Arc<str>> {
        let (Some(plan), Some((_, m))) = (
            self.plan(subject, module, action),
            self.org.modules.by_id(module),
        ) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<str>> = m
            .records
            .iter()
            .map(|(_, r)| r)
            .filter(|r| plan.covers(r.owner, r.private) || plan.record_ids.contains(r.id()))
            .map(|r| Arc::from(r.id()))
            .collect();
        out.sort_unstable();
        out
    }

    fn fields(&self, subject: &str, module: &str) -> Vec<(String, FieldLevel)> {
        let Some((m, def)) = self.org.modules.by_id(module) else {
            return Vec::new();
        };
        let mut trace = Trace::new(false);
        let fixed = match resolve_subject(self.org, subject, ShiftTime::Ignored, &mut trace) {
            Subject::Decided(_, true) => Some(FieldLevel::Editable),
            Subject::Decided(_, false) => Some(FieldLevel::Hidden),
            Subject::User(_, user) => {
                return def
                    .def
                    .fields
                    .iter()
                    .map(|f| (f.clone(), field_level(self.org, user, ModuleIx(m), f)))
                    .collect()
            }
        };
        let level = fixed.unwrap_or(FieldLevel::Hidden);
        def.def.fields.iter().map(|f| (f.clone(), level)).collect()
    }
}

/// What a batch can affect, stated so that it is sound: a subject's access
/// to a module's records depends only on (1) the subject itself (active,
/// admin, kind, role, profiles, groups), (2) the module, its rules and the
/// profiles' permissions on it, (3) the owners its paths read (its own
/// groups, the users below it, the members and nested groups of the groups
/// it leads, the `from` sets of the rules it is in) and (4) the records
/// with their shares. So the subjects to compare are those whose own facts
/// changed, those reading as an owner a user whose facts changed (its
/// superiors before and after, the leads of its groups, the `to` sets of
/// rules whose `from` set holds it), the leads and rule subjects of every
/// group whose members or nesting changed, the `to` sets of changed rules,
/// the holders of changed profiles, and everyone for a changed module.
/// Records whose owner, flag, attributes or shares changed are compared
/// record by record for every subject they may concern.
#[derive(Default)]
struct Reach {
    /// Subjects compared on every module.
    subjects: FxHashSet<UserIx>,
    /// Subjects compared on one module.
    by_module: FxHashMap<ModuleIx, FxHashSet<UserIx>>,
    /// Modules compared for every subject.
    modules: FxHashSet<ModuleIx>,
    /// Subjects whose field levels may change.
    field_subjects: FxHashSet<UserIx>,
    /// Changed records: `None` when every subject may be concerned, else
    /// the members of the grantees whose shares changed.
    records: BTreeMap<(ModuleIx, Arc<str>), Option<FxHashSet<UserIx>>>,
}

impl Reach {
    fn of<X: Expand>(b: &Side<'_, X>, a: &Side<'_, X>, changes: &[Change]) -> Reach {
        let mut reach = Reach::default();
        let sides = [b, a];
        // The users whose role moves, or whose own facts change: they are
        // compared themselves and through the subjects that read them.
        let mut moved: FxHashSet<UserIx> = FxHashSet::default();
        let mut groups: FxHashMap<GroupIx, Vec<UserIx>> = FxHashMap::default();
        for change in changes {
            match change {
                Change::CreateOrg(_) | Change::DeleteOrg | Change::Settings(_) => {}
                // Shifts are not compared: access is compared as if every
                // subject were on shift.
                Change::PutShift(_) | Change::DeleteShift { .. } => {}
                Change::PutModule(def) => reach.module(b, a, &def.id),
                Change::DeleteModule { id } => reach.module(b, a, id),
                Change::PutProfile(def) => reach.profile(b, a, &def.id),
                Change::DeleteProfile { id } => reach.profile(b, a, id),
                Change::PutRole(def) => reach.role(b, a, &def.id, &mut moved),
                Change::DeleteRole { id } => reach.role(b, a, id, &mut moved),
                Change::PutUser(def) => reach.user(b, a, &def.id, &mut moved),
                Change::DeleteUser { id } => reach.user(b, a, id, &mut moved),
                Change::PutGroup(def) => reach.group(b, a, &def.id, &mut groups),
                Change::DeleteGroup { id } => reach.group(b, a, id, &mut groups),
                Change::PutRecord(def) => reach.record(b, a, &def.module, &def.id, None),
                Change::DeleteRecord { module, id } => reach.record(b, a, module, id, None),
                Change::PutShare(def) => {
                    reach.record(b, a, &def.module, &def.record, Some(&def.grantee))
                }
                Change::DeleteShare {
                    module,
                    record,
                    grantee,
                } => reach.record(b, a, module, record, Some(grantee)),
                Change::PutRule(def) => reach.rule(b, a, &def.id),
                Change::DeleteRule { id } => reach.rule(b, a, id),
            }
        }
        reach.subjects.extend(moved.iter().copied());
        for user in &moved {
            for side in sides {
                side.observers(*user, &mut reach);
            }
        }
        // Members who joined or left a group (or one containing it) are
        // compared themselves: their groups changed.
        for (g, _) in groups {
            let mb = b.x.group_members(b.org, g);
            let ma = a.x.group_members(a.org, g);
            let before: FxHashSet<UserIx> = mb.iter().copied().collect();
            let after: FxHashSet<UserIx> = ma.iter().copied().collect();
            reach
                .subjects
                .extend(before.symmetric_difference(&after).copied());
        }
        reach
    }

    fn module<X: Expand>(&mut self, b: &Side<'_, X>, a: &Side<'_, X>, id: &str) {
        for side in [b, a] {
            if let Some(m) = side.org.modules.ix(id) {
                self.modules.insert(ModuleIx(m));
            }
        }
    }

    fn profile<X: Expand>(&mut self, b: &Side<'_, X>, a: &Side<'_, X>, id: &str) {
        let mut holders = FxHashSet::default();
        for side in [b, a] {
            side.holders_of_profile(id, &mut holders);
        }
        self.field_subjects.extend(holders.iter().copied());
        self.subjects.extend(holders);
    }

    fn role<X: Expand>(
        &mut self,
        b: &Side<'_, X>,
        a: &Side<'_, X>,
        id: &str,
        moved: &mut FxHashSet<UserIx>,
    ) {
        let parent = |side: &Side<'_, X>| side.org.roles.by_id(id).map(|(_, r)| r.parent);
        let (pb, pa) = (parent(b), parent(a));
        for side in [b, a] {
            let Some(r) = side.org.roles.ix(id) else {
                continue;
            };
            if let Some(role) = side.org.role(RoleIx(r)) {
                // Its profiles reach its users.
                self.subjects.extend(role.users.iter().copied());
                self.field_subjects.extend(role.users.iter().copied());
            }
            if pb != pa {
                // A move changes who is below whom for the whole subtree.
                side.users_of_role_subtree(RoleIx(r), moved);
            }
        }
    }

    fn user<X: Expand>(
        &mut self,
        b: &Side<'_, X>,
        a: &Side<'_, X>,
        id: &str,
        moved: &mut FxHashSet<UserIx>,
    ) {
        for side in [b, a] {
            if let Some(u) = side.org.users.ix(id) {
                self.field_subjects.insert(UserIx(u));
                moved.insert(UserIx(u));
            }
        }
    }

    fn group<X: Expand>(
        &mut self,
        b: &Side<'_, X>,
        a: &Side<'_, X>,
        id: &str,
        groups: &mut FxHashMap<GroupIx, Vec<UserIx>>,
    ) {
        for side in [b, a] {
            if let Some(g) = side.org.groups.ix(id) {
                side.group_reach(GroupIx(g), groups, self);
            }
        }
    }

    fn record<X: Expand>(
        &mut self,
        b: &Side<'_, X>,
        a: &Side<'_, X>,
        module: &str,
        id: &str,
        grantee: Option<&Grantee>,
    ) {
        let Some(m) = a
            .org
            .modules
            .ix(module)
            .or_else(|| b.org.modules.ix(module))
        else {
            return;
        };
        let entry = self
            .records
            .entry((ModuleIx(m), Arc::from(id)))
            .or_insert_with(|| Some(FxHashSet::default()));
        match (grantee, entry.as_mut()) {
            (Some(grantee), Some(users)) => {
                for side in [b, a] {
                    side.grantee_users(grantee, users);
                }
            }
            (Some(_), None) => {}
            (None, _) => *entry = None,
        }
    }

    fn rule<X: Expand>(&mut self, b: &Side<'_, X>, a: &Side<'_, X>, id: &str) {
        for side in [b, a] {
            let Some(m) = side.org.rule_modules.get(id).copied() else {
                continue;
            };
            let Some(rule) = side.org.module(m).and_then(|module| module.rules.get(id)) else {
                continue;
            };
            let to = self.by_module.entry(m).or_default();
            side.set_users(rule.to, to);
        }
    }

    /// Compares the reach; returns how many (subject, module) pairs.
    fn compare<X: Expand>(
        &self,
        b: &Side<'_, X>,
        a: &Side<'_, X>,
        actions: &[String],
        tally: &mut Tally,
        bound: &Bound,
    ) -> u64 {
        let everyone = all_users(b.org, a.org);
        let mut compared = 0u64;
        for m in all_modules(b.org, a.org) {
            let name = a.org.module_id(m).to_string();
            let mb = b.org.module(m);
            let ma = a.org.module(m);
            let changed: FxHashSet<&str> = self
                .records
                .range((m, Arc::from(""))..)
                .take_while(|((mm, _), _)| *mm == m)
                .map(|((_, id), _)| &**id)
                .collect();
            let subjects: Vec<UserIx> = if self.modules.contains(&m) {
                everyone.clone()
            } else {
                let mut s: FxHashSet<UserIx> = self.subjects.clone();
                if let Some(extra) = self.by_module.get(&m) {
                    s.extend(extra.iter().copied());
                }
                let mut v: Vec<UserIx> = s.into_iter().collect();
                v.sort_unstable();
                v
            };
            for u in &subjects {
                if bound.stopped() {
                    return compared;
                }
                compared += 1;
                let subject = a.org.user_id(*u).to_string();
                for (ai, action) in actions.iter().enumerate() {
                    let pb = mb.and_then(|_| b.plan(&subject, &name, action));
                    let pa = ma.and_then(|_| a.plan(&subject, &name, action));
                    diff_plans(mb, pb.as_ref(), ma, pa.as_ref(), &changed, |id, gained| {
                        tally.add(&subject, &name, ai, id, gained)
                    });
                }
            }
            // Changed records, each for every subject it may concern.
            let in_module: FxHashSet<UserIx> = subjects.iter().copied().collect();
            for ((mm, id), concerned) in self.records.range((m, Arc::from(""))..) {
                if *mm != m {
                    break;
                }
                let who: Vec<UserIx> = match concerned {
                    None => everyone.clone(),
                    Some(users) => {
                        let mut v: Vec<UserIx> = users.union(&in_module).copied().collect();
                        v.sort_unstable();
                        v
                    }
                };
                for u in who {
                    if bound.stopped() {
                        return compared;
                    }
                    let subject = a.org.user_id(u).to_string();
                    for (ai, action) in actions.iter().enumerate() {
                        let was = b.allowed(&subject, &name, id, action);
                        let is = a.allowed(&subject, &name, id, action);
                        if was != is {
                            tally.add(&subject, &name, ai, id, is);
                        }
                    }
                }
            }
        }
        compared
    }
}

/// Calls `out(id, gained)` for every record, outside `changed`, that one
/// plan selects and the other does not. Only records whose owner is in one
/// plan's owner sets and not the other's, or listed in one plan's ids and
/// not the other's, can differ while the coverage flags agree; when the
/// flags differ, every record is a candidate.
fn diff_plans(
    mb: Option<&Module>,
    pb: Option<&Plan>,
    ma: Option<&Module>,
    pa: Option<&Plan>,
    changed: &FxHashSet<&str>,
    mut out: impl FnMut(&str, bool),
) {
    let empty = Plan::default();
    let (pb, pa) = (pb.unwrap_or(&empty), pa.unwrap_or(&empty));
    let selects = |m: Option<&Module>, p: &Plan, id: &str| {
        m.and_then(|m| m.records.get(id))
            .is_some_and(|r| p.covers(r.owner, r.private) || p.record_ids.contains(id))
    };
    let mut visit = |id: &str| {
        if changed.contains(id) {
            return;
        }
        let was = selects(mb, pb, id);
        let is = selects(ma, pa, id);
        if was != is {
            out(id, is);
        }
    };
    if pb.all != pa.all || pb.public_non_private != pa.public_non_private {
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for m in [mb, ma].into_iter().flatten() {
            for (_, r) in m.records.iter() {
                if seen.insert(r.id()) {
                    visit(r.id());
                }
            }
        }
        return;
    }
    if pb.all {
        return;
    }
    let mut owners: FxHashSet<Owner> = pb
        .owners
        .symmetric_difference(&pa.owners)
        .copied()
        .collect();
    owners.extend(
        pb.owners_non_private
            .symmetric_difference(&pa.owners_non_private),
    );
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    for owner in owners {
        for m in [mb, ma].into_iter().flatten() {
            for (_, r) in m.records.owned_by(owner) {
                if seen.insert(r.id()) {
                    visit(r.id());
                }
            }
        }
    }
    for id in pb.record_ids.symmetric_difference(&pa.record_ids) {
        if seen.insert(id) {
            visit(id);
        }
    }
}

/// Every user index of either state (the scratch state only adds indexes).
fn all_users(b: &OrgState, a: &OrgState) -> Vec<UserIx> {
    let mut v: Vec<UserIx> = b
        .users
        .iter()
        .chain(a.users.iter())
        .map(|(ix, _)| UserIx(ix))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn all_modules(b: &OrgState, a: &OrgState) -> Vec<ModuleIx> {
    let mut v: Vec<ModuleIx> = b
        .modules
        .iter()
        .chain(a.modules.iter())
        .map(|(ix, _)| ModuleIx(ix))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The full comparison, by ids (the states may not share indexes): every
/// subject, module and action of either state.
fn full_compare<X: Expand>(
    b: &Side<'_, X>,
    a: &Side<'_, X>,
    actions: &[String],
    tally: &mut Tally,
    bound: &Bound,
) -> u64 {
    let mut users: BTreeSet<String> = BTreeSet::new();
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for side in [b, a] {
        users.extend(side.org.users.iter().map(|(_, u)| u.def.id.clone()));
        modules.extend(side.org.modules.iter().map(|(_, m)| m.def.id.clone()));
    }
    let mut compared = 0u64;
    for subject in &users {
        for module in &modules {
            if bound.stopped() {
                return compared;
            }
            compared += 1;
            for (ai, action) in actions.iter().enumerate() {
                let before = b.record_ids(subject, module, action);
                let after = a.record_ids(subject, module, action);
                let (mut i, mut j) = (0, 0);
                while i < before.len() || j < after.len() {
                    match (before.get(i), after.get(j)) {
                        (Some(x), Some(y)) if x == y => {
                            i += 1;
                            j += 1;
                        }
                        (Some(x), Some(y)) if x < y => {
                            tally.add(subject, module, ai, x, false);
                            i += 1;
                        }
                        (Some(x), None) => {
                            tally.add(subject, module, ai, x, false);
                            i += 1;
                        }
                        (_, Some(y)) => {
                            tally.add(subject, module, ai, y, true);
                            j += 1;
                        }
                        (None, None) => break,
                    }
                }
            }
        }
    }
    compared
}

/// Field levels (without a record) of the subjects the batch may change
/// them for: every subject of a changed module, and the subjects whose
/// own facts or profiles changed (`None`: everyone on every module).
fn field_compare<X: Expand>(
    b: &Side<'_, X>,
    a: &Side<'_, X>,
    reach: Option<&Reach>,
    bound: &Bound,
) -> Vec<FieldChange> {
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    let mut users: BTreeSet<String> = BTreeSet::new();
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for side in [b, a] {
        users.extend(side.org.users.iter().map(|(_, u)| u.def.id.clone()));
        modules.extend(side.org.modules.iter().map(|(_, m)| m.def.id.clone()));
    }
    match reach {
        None => {
            for u in &users {
                for m in &modules {
                    pairs.insert((u.clone(), m.clone()));
                }
            }
        }
        Some(reach) => {
            for m in &reach.modules {
                let module = a.org.module_id(*m).to_string();
                for u in &users {
                    pairs.insert((u.clone(), module.clone()));
                }
            }
            for u in &reach.field_subjects {
                let user = a.org.user_id(*u).to_string();
                for m in &modules {
                    pairs.insert((user.clone(), m.clone()));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (subject, module) in pairs {
        if bound.stopped() {
            break;
        }
        let before: BTreeMap<String, FieldLevel> =
            b.fields(&subject, &module).into_iter().collect();
        let after: BTreeMap<String, FieldLevel> = a.fields(&subject, &module).into_iter().collect();
        let mut names: BTreeSet<&String> = before.keys().collect();
        names.extend(after.keys());
        for field in names {
            let was = before.get(field).copied().unwrap_or(FieldLevel::Hidden);
            let is = after.get(field).copied().unwrap_or(FieldLevel::Hidden);
            if was != is {
                out.push(FieldChange {
                    subject: subject.clone(),
                    module: module.clone(),
                    field: field.clone(),
                    before: was,
                    after: is,
                });
            }
        }
    }
    out
}

/// Counts and bounded samples per (subject, module, action).
struct Tally {
    sample: usize,
    rows: BTreeMap<(String, String, usize), Row>,
}

#[derive(Default)]
struct Row {
    gained: u64,
    lost: u64,
    gained_sample: BTreeSet<Arc<str>>,
    lost_sample: BTreeSet<Arc<str>>,
}

impl Tally {
    fn new(sample: usize) -> Self {
        Tally {
            sample,
            rows: BTreeMap::new(),
        }
    }

    /// Counts one record once (each record is visited once per key).
    fn add(&mut self, subject: &str, module: &str, action: usize, id: &str, gained: bool) {
        let row = self
            .rows
            .entry((subject.to_string(), module.to_string(), action))
            .or_default();
        let (count, sample) = if gained {
            (&mut row.gained, &mut row.gained_sample)
        } else {
            (&mut row.lost, &mut row.lost_sample)
        };
        *count += 1;
        // Keep the smallest ids: the sample is the head of the sorted list.
        sample.insert(Arc::from(id));
        if sample.len() > self.sample {
            sample.pop_last();
        }
    }

    fn finish(self, actions: &[String]) -> Vec<AccessChange> {
        self.rows
            .into_iter()
            .map(|((subject, module, action), row)| AccessChange {
                subject,
                module,
                action: actions.get(action).cloned().unwrap_or_default(),
                gained_count: row.gained,
                lost_count: row.lost,
                gained_sample: row.gained_sample.iter().map(|s| s.to_string()).collect(),
                lost_sample: row.lost_sample.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }
}

/// A write as a changes file writes it (`warden simulate`): the shape of
/// the protobuf `Write` oneof, one key named after the RPC in snake case,
/// its body the request's fields with the document's entity shapes, e.g.
/// `- put_sharing_rule: {rule: {id: r1, module: Leads, from: {role: sales},
/// to: {group: support}, access: READ}}`. `org_id` is the document's; an
/// `actor` is authorized as the real write would authorize it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WriteDoc {
    /// `CreateOrganization`.
    CreateOrganization {
        /// Settings.
        #[serde(default)]
        settings: Settings,
    },
    /// `UpdateSettings`: the settings named change.
    UpdateSettings {
        /// The settings to change.
        settings: SettingsPatch,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteOrganization`.
    DeleteOrganization {
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `PutModule`.
    PutModule {
        /// The module.
        module: ModuleDef,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteModule`.
    DeleteModule {
        /// Module id.
        module_id: String,
        /// Remove what refers to it.
        #[serde(default)]
        cascade: bool,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `PutUser`.
    PutUser {
        /// The user.
        user: UserDef,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteUser`.
    DeleteUser {
        /// User id.
        user_id: String,
        /// New owner of what it owns.
        #[serde(default)]
        transfer_to: Option<OwnerRef>,
        /// Remove what refers to it.
        #[serde(default)]
        cascade: bool,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `PutRole`.
    PutRole {
        /// The role.
        role: RoleDef,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteRole`.
    DeleteRole {
        /// Role id.
        role_id: String,
        /// Role taking its users and sub-roles.
        #[serde(default)]
        transfer_to: Option<String>,
        /// Remove what refers to it.
        #[serde(default)]
        cascade: bool,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `PutProfile`.
    PutProfile {
        /// The profile.
        profile: ProfileDef,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteProfile`.
    DeleteProfile {
        /// Profile id.
        profile_id: String,
        /// Remove it from roles and users.
        #[serde(default)]
        cascade: bool,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `PutGroup`.
    PutGroup {
        /// The group.
        group: GroupDef,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteGroup`.
    DeleteGroup {
        /// Group id.
        group_id: String,
        /// New owner of its records.
        #[serde(default)]
        transfer_to: Option<OwnerRef>,
        /// Remove what refers to it.
        #[serde(default)]
        cascade: bool,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `PutSharingRule`.
    PutSharingRule {
        /// The rule.
        rule: SharingRuleDef,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteSharingRule`.
    DeleteSharingRule {
        /// Rule id.
        rule_id: String,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `PutShift`.
    PutShift {
        /// The shift.
        shift: ShiftDef,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteShift`.
    DeleteShift {
        /// Shift id.
        shift_id: String,
        /// Clear it from users.
        #[serde(default)]
        cascade: bool,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `Import`.
    Import {
        /// The document.
        document: OrgDocument,
        /// Replace everything.
        #[serde(default)]
        replace: bool,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `SetOwner`: what is absent is kept.
    SetOwner {
        /// Module id.
        module: String,
        /// Record id.
        record_id: String,
        /// New owner.
        #[serde(default)]
        owner: Option<OwnerRef>,
        /// New private flag.
        #[serde(default)]
        private: Option<bool>,
        /// New attributes, replacing the old ones whole.
        #[serde(default)]
        attributes: Option<BTreeMap<String, String>>,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `DeleteRecord`.
    DeleteRecord {
        /// Module id.
        module: String,
        /// Record id.
        record_id: String,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `Share`.
    Share {
        /// The shares.
        shares: Vec<ShareDef>,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
    /// `Unshare` (levels are ignored).
    Unshare {
        /// The shares to remove.
        shares: Vec<UnshareDef>,
        /// Acting user.
        #[serde(default)]
        actor: Option<String>,
    },
}

/// A share to remove: a share without its level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnshareDef {
    /// Module id.
    pub module: String,
    /// Record id.
    pub record: String,
    /// Grantee.
    pub grantee: Grantee,
    /// Ignored.
    #[serde(default)]
    pub level: Option<AccessLevel>,
}

impl WriteDoc {
    /// The write with its writer: the named actor (with every scope, as the
    /// operator running the simulation holds them), else the operator.
    pub fn into_sim_write(self) -> SimWrite {
        let (actor, command) = match self {
            WriteDoc::CreateOrganization { settings } => {
                (None, Command::CreateOrganization(settings))
            }
            WriteDoc::UpdateSettings { settings, actor } => {
                (actor, Command::UpdateSettings(settings))
            }
            WriteDoc::DeleteOrganization { actor } => (actor, Command::DeleteOrganization),
            WriteDoc::PutModule { module, actor } => (actor, Command::PutModule(module)),
            WriteDoc::DeleteModule {
                module_id,
                cascade,
                actor,
            } => (
                actor,
                Command::DeleteModule {
                    id: module_id,
                    cascade,
                },
            ),
            WriteDoc::PutUser { user, actor } => (actor, Command::PutUser(user)),
            WriteDoc::DeleteUser {
                user_id,
                transfer_to,
                cascade,
                actor,
            } => (
                actor,
                Command::DeleteUser {
                    id: user_id,
                    transfer_to,
                    cascade,
                },
            ),
            WriteDoc::PutRole { role, actor } => (actor, Command::PutRole(role)),
            WriteDoc::DeleteRole {
                role_id,
                transfer_to,
                cascade,
                actor,
            } => (
                actor,
                Command::DeleteRole {
                    id: role_id,
                    transfer_to,
                    cascade,
                },
            ),
            WriteDoc::PutProfile { profile, actor } => (actor, Command::PutProfile(profile)),
            WriteDoc::DeleteProfile {
                profile_id,
                cascade,
                actor,
            } => (
                actor,
                Command::DeleteProfile {
                    id: profile_id,
                    cascade,
                },
            ),
            WriteDoc::PutGroup { group, actor } => (actor, Command::PutGroup(group)),
            WriteDoc::DeleteGroup {
                group_id,
                transfer_to,
                cascade,
                actor,
            } => (
                actor,
                Command::DeleteGroup {
                    id: group_id,
                    transfer_to,
                    cascade,
                },
            ),
            WriteDoc::PutSharingRule { rule, actor } => (actor, Command::PutSharingRule(rule)),
            WriteDoc::DeleteSharingRule { rule_id, actor } => {
                (actor, Command::DeleteSharingRule(rule_id))
            }
            WriteDoc::PutShift { shift, actor } => (actor, Command::PutShift(shift)),
            WriteDoc::DeleteShift {
                shift_id,
                cascade,
                actor,
            } => (
                actor,
                Command::DeleteShift {
                    id: shift_id,
                    cascade,
                },
            ),
            WriteDoc::Import {
                document,
                replace,
                actor,
            } => (actor, Command::Import { document, replace }),
            WriteDoc::SetOwner {
                module,
                record_id,
                owner,
                private,
                attributes,
                actor,
            } => (
                actor,
                Command::SetOwner(RecordWrite {
                    module,
                    id: record_id,
                    owner,
                    private,
                    attributes,
                }),
            ),
            WriteDoc::DeleteRecord {
                module,
                record_id,
                actor,
            } => (
                actor,
                Command::DeleteRecord {
                    module,
                    id: record_id,
                },
            ),
            WriteDoc::Share { shares, actor } => (actor, Command::Share(shares)),
            WriteDoc::Unshare { shares, actor } => (
                actor,
                Command::Unshare(
                    shares
                        .into_iter()
                        .map(|s| ShareDef {
                            module: s.module,
                            record: s.record,
                            grantee: s.grantee,
                            level: s.level.unwrap_or(AccessLevel::Read),
                        })
                        .collect(),
                ),
            ),
        };
        let writer = match actor {
            Some(user_id) => Writer::Actor {
                user_id,
                admin_scope: true,
            },
            None => Writer::Operator,
        };
        SimWrite { writer, command }
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use crate::engine::Engine;

    fn engine() -> Engine<Direct> {
        crate::engine::engine_of(
            Direct,
            "organization: acme\n\
             modules: [{id: Accounts, owd: PRIVATE}]\n\
             profiles: [{id: rep, modules: {Accounts: [view, edit]}}]\n\
             roles: [{id: boss, profiles: [rep]}]\n\
             users: [{id: ann, role: boss}, {id: bob, role: boss}]\n\
             records: [{module: Accounts, id: a1, owner: {user: ann}}]\n",
        )
    }

    fn delete_org() -> Vec<SimWrite> {
        vec![SimWrite {
            writer: Writer::Operator,
            command: Command::DeleteOrganization,
        }]
    }

    #[test]
    fn a_raised_flag_or_a_past_deadline_stops_the_comparison_without_an_answer() {
        let engine = engine();
        let options = SimulateOptions::default();
        let now = Utc::now();
        let open = engine
            .simulate_within::<Direct>("acme", &delete_org(), &options, now, &Bound::default())
            .unwrap();
        assert!(open.is_some_and(|s| s.whole_org && s.compared > 0));
        let cancelled = Bound::default();
        drop(cancelled.cancel_on_drop());
        let stopped = engine
            .simulate_within::<Direct>("acme", &delete_org(), &options, now, &cancelled)
            .unwrap();
        assert_eq!(stopped, None, "a dropped request's flag stops it");
        let past = Bound::within(Duration::ZERO);
        let stopped = engine
            .simulate_within::<Direct>("acme", &delete_org(), &options, now, &past)
            .unwrap();
        assert_eq!(stopped, None, "a deadline passed stops it");
        // The live organization is as it was.
        assert_eq!(engine.revision("acme"), Some(1));
    }
}
