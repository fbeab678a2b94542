//! Answers derived from the decision: field levels of a record, the query
//! plan of `Filter`, the records a subject may act on, and the users who may
//! act on a record.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashSet;

use super::decision::{
    decide, field_level, profile_allows, resolve_subject, CheckRequest, ShiftTime, Subject, Trace,
};
use super::described::record_view;
use super::error::{Error, Result};
use super::expand::Expand;
use super::explain::{field_word, Need, TraceStep};
use super::model::{AccessLevel, FieldLevel, OwnerRef, RecordDescription};
use super::org::{Module, ModuleIx, OrgState, Owner};
use super::paths::{cover, record_level, Asker, Plan};

/// The effective level of every field of a module for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldsAnswer {
    /// Field and level, in the module's field order.
    pub fields: Vec<(String, FieldLevel)>,
    /// The subject's record level (FULL without a record when the profile
    /// speaks, as there is no record to cap it).
    pub record_level: AccessLevel,
    /// With `explain`: per field (same order), why it has its level.
    pub details: Vec<String>,
    /// With `explain` and a record: step 7's paths, as Check explains them
    /// for `edit` (what an EDITABLE field needs).
    pub trace: Vec<TraceStep>,
}

/// A `CheckFields` question.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldsQuery<'a> {
    /// User id.
    pub subject: &'a str,
    /// Module id.
    pub module: &'a str,
    /// Record id, if any.
    pub record: Option<&'a str>,
    /// The record described instead of stored (needs `record`).
    pub described: Option<&'a RecordDescription>,
    /// Whether to say why each field has its level.
    pub explain: bool,
}

/// `CheckFields`: each field's level, capped by the record access (READ →
/// at most READ_ONLY; none → HIDDEN).
pub fn check_fields<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    q: &FieldsQuery<'_>,
    at: DateTime<Utc>,
) -> Result<FieldsAnswer> {
    let (module_ix, module) = org
        .modules
        .by_id(q.module)
        .ok_or_else(|| Error::not_found("module", q.module, "module"))?;
    let module_ix = ModuleIx(module_ix);
    if q.described.is_some() && q.record.is_none() {
        return Err(Error::invalid(
            "record_id",
            "a described record needs the record_id it describes",
        ));
    }
    let record = match q.record {
        Some(id) => Some(
            record_view(org, module, id, q.described)?
                .ok_or_else(|| Error::not_found("record", id, "record_id"))?,
        ),
        None => None,
    };
    let all = |level: FieldLevel, record_level: AccessLevel, why: &str| FieldsAnswer {
        fields: module
            .def
            .fields
            .iter()
            .map(|f| (f.clone(), level))
            .collect(),
        record_level,
        details: if q.explain {
            module
                .def
                .fields
                .iter()
                .map(|_| format!("{}: {why}", field_word(level)))
                .collect()
        } else {
            Vec::new()
        },
        trace: Vec::new(),
    };
    let mut trace = Trace::new(false);
    let (subject_ix, user) = match resolve_subject(org, q.subject, ShiftTime::At(at), &mut trace) {
        Subject::Decided(reason, true) => {
            return Ok(all(
                FieldLevel::Editable,
                AccessLevel::Full,
                &format!(
                    "'{}' is the organization's administrator ({})",
                    q.subject,
                    reason.as_str()
                ),
            ))
        }
        Subject::Decided(reason, false) => {
            return Ok(all(
                FieldLevel::Hidden,
                AccessLevel::None,
                &format!("'{}' is denied everything ({})", q.subject, reason.as_str()),
            ))
        }
        Subject::User(ix, user) => (ix, user),
    };
    let mut steps = Vec::new();
    let record_level = match &record {
        Some(record) => {
            let asker = Asker::new(org, x, subject_ix, user, module_ix, module);
            let need = Need {
                action: "edit",
                required: AccessLevel::ReadWrite,
            };
            record_level(&asker, record, q.explain.then_some((&need, &mut steps))).level
        }
        None => AccessLevel::Full,
    };
    let cap = match record_level {
        AccessLevel::None => FieldLevel::Hidden,
        AccessLevel::Read => FieldLevel::ReadOnly,
        AccessLevel::ReadWrite | AccessLevel::Full => FieldLevel::Editable,
    };
    let mut fields = Vec::with_capacity(module.def.fields.len());
    let mut details = Vec::new();
    for f in &module.def.fields {
        let by_profile = field_level(org, user, module_ix, f);
        let level = by_profile.min(cap);
        if q.explain {
            let profiles = profiles_on_field(org, user, module_ix, module, f, by_profile);
            details.push(field_detail(profiles, by_profile, cap, record_level));
        }
        fields.push((f.clone(), level));
    }
    Ok(FieldsAnswer {
        fields,
        record_level,
        details,
        trace: steps,
    })
}

/// What the effective profiles say of one field, for `explain`: each
/// profile that allows `view` on the module and its word for the field.
fn profiles_on_field(
    org: &OrgState,
    user: &super::org::User,
    module_ix: ModuleIx,
    module: &Module,
    field: &str,
    by_profile: FieldLevel,
) -> String {
    let mut viewing = Vec::new();
    let mut naming = Vec::new();
    for p in org.effective_profiles(user) {
        let Some(m) = p.modules.get(&module_ix).filter(|m| m.views()) else {
            continue;
        };
        if viewing.contains(&p.def.id.as_str()) {
            continue;
        }
        viewing.push(p.def.id.as_str());
        match m.fields.get(field) {
            Some(l) => naming.push(format!("'{}' makes it {}", p.def.id, field_word(*l))),
            None => naming.push(format!("'{}' does not name it (EDITABLE)", p.def.id)),
        }
    }
    if viewing.is_empty() {
        format!(
            "no effective profile allows view on '{}', so the field is HIDDEN",
            module.def.id
        )
    } else {
        format!(
            "profiles give {} ({})",
            field_word(by_profile),
            naming.join("; ")
        )
    }
}

/// Why one field has its level: the profiles' level, then the record's cap.
fn field_detail(
    profiles: String,
    by_profile: FieldLevel,
    cap: FieldLevel,
    record: AccessLevel,
) -> String {
    let level = by_profile.min(cap);
    if cap < by_profile {
        format!(
            "{}: {profiles}, capped by record access {} to {}",
            field_word(level),
            record.as_str(),
            field_word(cap)
        )
    } else {
        format!("{}: {profiles}", field_word(level))
    }
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
    // An action that needs no record level reaches every record.
    if required == AccessLevel::None {
        plan.all = true;
        return Ok((module_ix, plan));
    }
    let asker = Asker::new(org, x, s_ix, s, module_ix, module);
    Ok((module_ix, cover(&asker, required)))
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
