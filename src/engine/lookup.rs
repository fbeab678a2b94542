//! Answers derived from the decision: field levels of a record, the query
//! plan of `Filter`, the records a subject may act on, and the users who may
//! act on a record.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashSet;

use super::decision::{
    decide, field_level, module_grant, profile_allows, record_level, resolve_subject, CheckRequest,
    Paths, ShiftTime, Subject, Trace,
};
use super::described::record_view;
use super::error::{Error, Result};
use super::expand::Expand;
use super::model::{AccessLevel, FieldLevel, HierarchyMode, OwnerRef, RecordDescription, UserKind};
use super::org::{GranteeIx, MemberSetIx, Module, ModuleIx, OrgState, Owner, RoleIx, UserIx};

/// The effective level of every field of a module for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldsAnswer {
    /// Field and level, in the module's field order.
    pub fields: Vec<(String, FieldLevel)>,
    /// The subject's record level (FULL without a record when the profile
    /// speaks, as there is no record to cap it).
    pub record_level: AccessLevel,
}

/// `CheckFields`: each field's level, capped by the record access (READ →
/// at most READ_ONLY; none → HIDDEN).
pub fn check_fields<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module_id: &str,
    record_id: Option<&str>,
    described: Option<&RecordDescription>,
    at: DateTime<Utc>,
) -> Result<FieldsAnswer> {
    let (module_ix, module) = org
        .modules
        .by_id(module_id)
        .ok_or_else(|| Error::not_found("module", module_id, "module"))?;
    let module_ix = ModuleIx(module_ix);
    if described.is_some() && record_id.is_none() {
        return Err(Error::invalid(
            "record_id",
            "a described record needs the record_id it describes",
        ));
    }
    let record = match record_id {
        Some(id) => Some(
            record_view(org, module, id, described)?
                .ok_or_else(|| Error::not_found("record", id, "record_id"))?,
        ),
        None => None,
    };
    let all = |level: FieldLevel, record_level: AccessLevel| FieldsAnswer {
        fields: module
            .def
            .fields
            .iter()
            .map(|f| (f.clone(), level))
            .collect(),
        record_level,
    };
    let mut trace = Trace::new(false);
    let (subject_ix, user) = match resolve_subject(org, subject, ShiftTime::At(at), &mut trace) {
        Subject::Decided(_, true) => return Ok(all(FieldLevel::Editable, AccessLevel::Full)),
        Subject::Decided(_, false) => return Ok(all(FieldLevel::Hidden, AccessLevel::None)),
        Subject::User(ix, user) => (ix, user),
    };
    let record_level = match record {
        Some(record) => {
            record_level(
                org,
                x,
                Paths {
                    subject_ix,
                    subject: user,
                    module_ix,
                    module,
                    record,
                },
                &mut trace,
            )
            .level
        }
        None => AccessLevel::Full,
    };
    let cap = match record_level {
        AccessLevel::None => FieldLevel::Hidden,
        AccessLevel::Read => FieldLevel::ReadOnly,
        AccessLevel::ReadWrite | AccessLevel::Full => FieldLevel::Editable,
    };
    let fields = module
        .def
        .fields
        .iter()
        .map(|f| (f.clone(), field_level(org, user, module_ix, f).min(cap)))
        .collect();
    Ok(FieldsAnswer {
        fields,
        record_level,
    })
}

/// `Filter`: the records a subject may act on, as a query plan. A record
/// qualifies when `all`, or its owner is in `owners`, or it is not private
/// and (`public_non_private` or its owner is in `owners_non_private`), or its
/// id is in `record_ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPlan {
    /// Every record.
    pub all: bool,
    /// Owners whose records all qualify.
    pub owners: Vec<OwnerRef>,
    /// Owners whose non-private records qualify.
    pub owners_non_private: Vec<OwnerRef>,
    /// Every non-private record qualifies.
    pub public_non_private: bool,
    /// Records shared one by one (or matched by a criteria rule).
    pub record_ids: Vec<String>,
}

impl FilterPlan {
    /// Whether a record with this owner, privacy and id qualifies.
    pub fn selects(&self, owner: &OwnerRef, private: bool, id: &str) -> bool {
        self.all
            || self.owners.contains(owner)
            || (!private && (self.public_non_private || self.owners_non_private.contains(owner)))
            || self.record_ids.iter().any(|r| r == id)
    }
}

/// The plan in resolved form, before ids are written out.
#[derive(Default)]
struct Plan {
    all: bool,
    owners: FxHashSet<Owner>,
    owners_non_private: FxHashSet<Owner>,
    public_non_private: bool,
    record_ids: BTreeSet<Arc<str>>,
}

impl Plan {
    fn covers(&self, owner: Owner, private: bool) -> bool {
        self.all
            || self.owners.contains(&owner)
            || (!private && (self.public_non_private || self.owners_non_private.contains(&owner)))
    }
}

fn plan<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module_id: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<(ModuleIx, Plan)> {
    let (module_ix, module) = org
        .modules
        .by_id(module_id)
        .ok_or_else(|| Error::not_found("module", module_id, "module"))?;
    let module_ix = ModuleIx(module_ix);
    let required = module.required_level(action).ok_or_else(|| {
        Error::invalid(
            "action",
            format!("'{action}' is neither a standard action nor a custom action of module '{module_id}'"),
        )
    })?;
    let mut plan = Plan::default();
    let mut trace = Trace::new(false);
    let (s_ix, s) = match resolve_subject(org, subject, ShiftTime::At(at), &mut trace) {
        Subject::Decided(_, allowed) => {
            plan.all = allowed;
            return Ok((module_ix, plan));
        }
        Subject::User(ix, user) => (ix, user),
    };
    if !profile_allows(org, s, module_ix, action) {
        return Ok((module_ix, plan));
    }
    let grant = module_grant(org, s, module_ix);
    if required == AccessLevel::None
        || grant.modify_all
        || (grant.view_all && required <= AccessLevel::Read)
    {
        plan.all = true;
        return Ok((module_ix, plan));
    }
    let subject_groups = x.user_groups(org, s_ix);

    // Ownership and group ownership.
    plan.owners.insert(Owner::User(s_ix));
    plan.owners
        .extend(subject_groups.iter().map(|g| Owner::Group(*g)));

    // Hierarchy.
    if module.def.hierarchy_access {
        match org.settings.hierarchy_mode {
            HierarchyMode::Role => {
                if let Some(sr) = s.role {
                    for r in x.role_subtree(org, sr).iter().filter(|r| **r != sr) {
                        if let Some(role) = org.role(*r) {
                            plan.owners
                                .extend(role.users.iter().map(|u| Owner::User(*u)));
                        }
                    }
                }
            }
            HierarchyMode::Reporting => {
                plan.owners
                    .extend(org.reports_transitive(s_ix).into_iter().map(Owner::User));
            }
        }
    }

    // Team leads.
    if required <= AccessLevel::ReadWrite {
        for g in &s.leads {
            plan.owners
                .extend(x.group_nested(org, *g).iter().map(|h| Owner::Group(*h)));
            plan.owners
                .extend(x.group_members(org, *g).iter().map(|u| Owner::User(*u)));
        }
    }

    // Organization-wide default.
    if s.def.kind == UserKind::Member && module.def.owd.level() >= required {
        plan.public_non_private = true;
    }

    // Sharing rules and criteria rules.
    let subject_in = |set: MemberSetIx| match set {
        MemberSetIx::Role(r) => s.role == Some(r),
        MemberSetIx::RoleAndSubordinates(r) => s
            .role
            .is_some_and(|sr| x.role_subtree(org, r).binary_search(&sr).is_ok()),
        MemberSetIx::Group(g) => subject_groups.binary_search(&g).is_ok(),
    };
    let mut criteria_rules = Vec::new();
    for rule in module.rules.values() {
        if rule.def.access < required || !subject_in(rule.to) {
            continue;
        }
        match rule.from {
            Some(from) if !plan.public_non_private => {
                add_rule_owners(org, x, from, &mut plan.owners_non_private);
            }
            Some(_) => {}
            None => criteria_rules.push(rule),
        }
    }
    if !criteria_rules.is_empty() && !plan.public_non_private {
        for (id, record) in &module.records {
            if !record.private
                && criteria_rules.iter().any(|rule| {
                    rule.criteria
                        .iter()
                        .all(|(k, v)| record.attributes.get(k) == Some(v))
                })
                && !plan.covers(record.owner, record.private)
            {
                plan.record_ids.insert(id.clone());
            }
        }
    }

    // Manual shares.
    for grantee in subject_grantees(org, x, s_ix, s.role, &subject_groups) {
        let Some(shared) = org.shares_by_grantee.get(&grantee) else {
            continue;
        };
        for (m, id) in shared {
            if *m != module_ix {
                continue;
            }
            let Some(record) = module.records.get(id) else {
                continue;
            };
            let qualifies = record
                .shares
                .iter()
                .any(|sh| sh.grantee == grantee && sh.level >= required);
            if qualifies && !plan.covers(record.owner, record.private) {
                plan.record_ids.insert(id.clone());
            }
        }
    }
    plan.owners_non_private.retain(|o| !plan.owners.contains(o));
    Ok((module_ix, plan))
}

fn add_rule_owners<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    from: MemberSetIx,
    out: &mut FxHashSet<Owner>,
) {
    match from {
        MemberSetIx::Role(r) => {
            if let Some(role) = org.role(r) {
                out.extend(role.users.iter().map(|u| Owner::User(*u)));
            }
        }
        MemberSetIx::RoleAndSubordinates(r) => {
            for sub in x.role_subtree(org, r).iter() {
                if let Some(role) = org.role(*sub) {
                    out.extend(role.users.iter().map(|u| Owner::User(*u)));
                }
            }
        }
        MemberSetIx::Group(g) => {
            out.extend(x.group_members(org, g).iter().map(|u| Owner::User(*u)));
            out.extend(x.group_nested(org, g).iter().map(|h| Owner::Group(*h)));
        }
    }
}

/// Every grantee that includes the subject.
fn subject_grantees<X: Expand + ?Sized>(
    org: &OrgState,
    _x: &X,
    s_ix: UserIx,
    role: Option<RoleIx>,
    groups: &[super::org::GroupIx],
) -> Vec<GranteeIx> {
    let mut out = vec![GranteeIx::User(s_ix)];
    out.extend(groups.iter().map(|g| GranteeIx::Group(*g)));
    if let Some(r) = role {
        out.push(GranteeIx::Role(r));
        out.push(GranteeIx::RoleAndSubordinates(r));
        out.extend(
            org.role_ancestors(r)
                .into_iter()
                .map(GranteeIx::RoleAndSubordinates),
        );
    }
    out
}

/// `Filter` with ids written out, lists sorted.
pub fn filter<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<FilterPlan> {
    let (_, plan) = plan(org, x, subject, module, action, at)?;
    let owners = |set: &FxHashSet<Owner>| {
        let mut v: Vec<OwnerRef> = set.iter().map(|o| org.owner_ref(*o)).collect();
        v.sort();
        v
    };
    if plan.all {
        return Ok(FilterPlan {
            all: true,
            ..FilterPlan::default()
        });
    }
    Ok(FilterPlan {
        all: false,
        owners: owners(&plan.owners),
        owners_non_private: owners(&plan.owners_non_private),
        public_non_private: plan.public_non_private,
        record_ids: plan.record_ids.iter().map(|r| r.to_string()).collect(),
    })
}

/// `LookupRecords`: every record id the subject may act on, sorted; the
/// `Filter` plan evaluated against the module's records.
pub fn lookup_records<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module_id: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<Vec<Arc<str>>> {
    let (module_ix, plan) = plan(org, x, subject, module_id, action, at)?;
    let Some(module) = org.module(module_ix) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Arc<str>> = if plan.all || plan.public_non_private {
        module
            .records
            .iter()
            .filter(|(_, r)| plan.covers(r.owner, r.private))
            .map(|(id, _)| id.clone())
            .collect()
    } else {
        owned_records(module, &plan)
    };
    out.extend(plan.record_ids.iter().cloned());
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn owned_records(module: &Module, plan: &Plan) -> Vec<Arc<str>> {
    let mut out = Vec::new();
    for owner in &plan.owners {
        if let Some(ids) = module.by_owner.get(owner) {
            out.extend(ids.iter().cloned());
        }
    }
    for owner in &plan.owners_non_private {
        if let Some(ids) = module.by_owner.get(owner) {
            out.extend(
                ids.iter()
                    .filter(|id| module.records.get(*id).is_some_and(|r| !r.private))
                    .cloned(),
            );
        }
    }
    out
}

/// `LookupSubjects`: every user who may do `action` to the record, sorted;
/// with `on_shift_at`, only those on shift then (otherwise shifts are not
/// considered).
pub fn lookup_subjects<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    module: &str,
    record: &str,
    action: &str,
    on_shift_at: Option<DateTime<Utc>>,
) -> Result<Vec<String>> {
    let (_, m) = org
        .modules
        .by_id(module)
        .ok_or_else(|| Error::not_found("module", module, "module"))?;
    if !m.records.contains_key(record) {
        return Err(Error::not_found("record", record, "record_id"));
    }
    let shift_time = on_shift_at.map_or(ShiftTime::Ignored, ShiftTime::At);
    let mut out = Vec::new();
    for (_, user) in org.users.iter() {
        let req = CheckRequest {
            subject: user.def.id.clone(),
            module: module.to_string(),
            action: action.to_string(),
            record: Some(record.to_string()),
            ..CheckRequest::default()
        };
        if decide(org, x, &req, shift_time)?.allowed {
            out.push(user.def.id.clone());
        }
    }
    out.sort();
    Ok(out)
}
