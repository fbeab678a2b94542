//! The decision of SPEC section 2, step by step in the spec's order, with
//! the reason of the step that decided and, on request, the full trace.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::described::{described_owner, record_view, RecordView};
use super::error::{Error, Result};
use super::expand::Expand;
use super::model::{
    AccessLevel, AssignScope, FieldLevel, HierarchyMode, OwnerRef, Reason, RecordDescription,
    UserKind,
};
use super::org::{
    GranteeIx, GroupIx, MemberSetIx, Module, ModuleIx, OrgState, Owner, User, UserIx,
};

/// A question: may `subject` do `action` in `module` (to `record`, on `field`)?
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckRequest {
    /// User id.
    pub subject: String,
    /// Module id.
    pub module: String,
    /// Action: standard or one of the module's custom actions.
    pub action: String,
    /// Record id, if the question is about one record.
    pub record: Option<String>,
    /// Field, for `view` or `edit` of one field.
    pub field: Option<String>,
    /// When, for shifts (default: now).
    pub at: Option<DateTime<Utc>>,
    /// Whether to return the trace.
    pub explain: bool,
    /// The new owner, for `assign`.
    pub assign_to: Option<OwnerRef>,
    /// The record described in the request instead of stored (needs
    /// `record`); step 6 uses it in place of a stored record of that id.
    pub described: Option<RecordDescription>,
}

/// One evaluated step or path, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// The step or path.
    pub reason: Reason,
    /// The level it gave (NONE for steps that only pass or fail).
    pub level: AccessLevel,
    /// What produced it: the group, role, rule, share or profile.
    pub detail: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// ALLOW or DENY.
    pub allowed: bool,
    /// The step that decided.
    pub reason: Reason,
    /// The subject's record level (FULL for admins, NONE before step 7).
    pub level: AccessLevel,
    /// Every step evaluated, when asked for.
    pub trace: Vec<TraceStep>,
}

/// When shifts are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftTime {
    /// At this instant.
    At(DateTime<Utc>),
    /// Not at all (LookupSubjects without `on_shift_at`).
    Ignored,
}

/// Collects trace steps only when asked to.
pub(crate) struct Trace {
    on: bool,
    steps: Vec<TraceStep>,
}

impl Trace {
    pub(crate) fn new(on: bool) -> Self {
        Trace {
            on,
            steps: Vec::new(),
        }
    }

    pub(crate) fn on(&self) -> bool {
        self.on
    }

    pub(crate) fn add(
        &mut self,
        reason: Reason,
        level: AccessLevel,
        detail: impl FnOnce() -> String,
    ) {
        if self.on {
            self.steps.push(TraceStep {
                reason,
                level,
                detail: detail(),
            });
        }
    }

    fn finish(self, allowed: bool, reason: Reason, level: AccessLevel) -> Decision {
        Decision {
            allowed,
            reason,
            level,
            trace: self.steps,
        }
    }
}

/// The subject of a decision after steps 1 to 3.
pub(crate) enum Subject<'a> {
    /// Decided already (unknown, inactive, outside shift, admin).
    Decided(Reason, bool),
    /// An active user, on shift, not an admin.
    User(UserIx, &'a User),
}

/// Steps 1 to 3: who is asking, are they on shift, are they the admin.
pub(crate) fn resolve_subject<'a>(
    org: &'a OrgState,
    subject: &str,
    shift_time: ShiftTime,
    trace: &mut Trace,
) -> Subject<'a> {
    // Step 1.
    let Some((ix, user)) = org.users.by_id(subject) else {
        trace.add(Reason::UnknownSubject, AccessLevel::None, || {
            format!("no user '{subject}' in organization '{}'", org.id)
        });
        return Subject::Decided(Reason::UnknownSubject, false);
    };
    if !user.def.active {
        trace.add(Reason::InactiveSubject, AccessLevel::None, || {
            format!("user '{subject}' is inactive")
        });
        return Subject::Decided(Reason::InactiveSubject, false);
    }
    // Step 2.
    if org.settings.enforce_shifts && !user.def.admin {
        if let (Some(shift), ShiftTime::At(at)) =
            (user.shift.and_then(|s| org.shifts.get(s.0)), shift_time)
        {
            if !shift.contains(at) {
                trace.add(Reason::OutsideShift, AccessLevel::None, || {
                    format!(
                        "{at} is outside shift '{}' ({})",
                        shift.def.id, shift.def.time_zone
                    )
                });
                return Subject::Decided(Reason::OutsideShift, false);
            }
            trace.add(Reason::OutsideShift, AccessLevel::None, || {
                format!("{at} is inside shift '{}'", shift.def.id)
            });
        }
    }
    // Step 3.
    if user.def.admin {
        trace.add(Reason::Admin, AccessLevel::Full, || {
            format!("user '{subject}' is the organization's administrator")
        });
        return Subject::Decided(Reason::Admin, true);
    }
    Subject::User(UserIx(ix), user)
}

/// What the subject's effective profiles allow on one module.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ModuleGrant {
    pub(crate) view_all: bool,
    pub(crate) modify_all: bool,
}

/// Whether any effective profile allows `action` on the module.
pub(crate) fn profile_allows(org: &OrgState, user: &User, module: ModuleIx, action: &str) -> bool {
    org.effective_profiles(user).any(|p| {
        p.modules
            .get(&module)
            .is_some_and(|m| m.actions.contains(action))
    })
}

/// `view_all` and `modify_all` of the effective profiles on a module.
pub(crate) fn module_grant(org: &OrgState, user: &User, module: ModuleIx) -> ModuleGrant {
    let mut grant = ModuleGrant::default();
    for p in org.effective_profiles(user) {
        if let Some(m) = p.modules.get(&module) {
            grant.view_all |= m.view_all;
            grant.modify_all |= m.modify_all;
        }
    }
    grant
}

/// A field's level: the most permissive among the effective profiles that
/// allow `view` on the module (a field they do not name is EDITABLE).
pub(crate) fn field_level(
    org: &OrgState,
    user: &User,
    module: ModuleIx,
    field: &str,
) -> FieldLevel {
    org.effective_profiles(user)
        .filter_map(|p| p.modules.get(&module))
        .filter(|m| m.views())
        .map(|m| m.fields.get(field).copied().unwrap_or(FieldLevel::Editable))
        .max()
        .unwrap_or(FieldLevel::Hidden)
}

/// Decides a check: SPEC section 2, in order. `now` stands in for a missing `at`.
pub fn check<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    req: &CheckRequest,
    now: DateTime<Utc>,
) -> Result<Decision> {
    decide(org, x, req, ShiftTime::At(req.at.unwrap_or(now)))
}

/// Decides a check with shifts evaluated as `shift_time` says.
pub fn decide<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    req: &CheckRequest,
    shift_time: ShiftTime,
) -> Result<Decision> {
    validate_shape(req)?;
    validate_against(org, req)?;
    let mut trace = Trace::new(req.explain);

    // Steps 1–3.
    let (subject_ix, subject) = match resolve_subject(org, &req.subject, shift_time, &mut trace) {
        Subject::Decided(reason, allowed) => {
            let level = if allowed {
                AccessLevel::Full
            } else {
                AccessLevel::None
            };
            return Ok(trace.finish(allowed, reason, level));
        }
        Subject::User(ix, user) => (ix, user),
    };

    // Step 4.
    let Some((module_ix, module)) = org.modules.by_id(&req.module) else {
        trace.add(Reason::UnknownModule, AccessLevel::None, || {
            format!("no module '{}'", req.module)
        });
        return Ok(trace.finish(false, Reason::UnknownModule, AccessLevel::None));
    };
    let module_ix = ModuleIx(module_ix);
    let Some(required) = module.required_level(&req.action) else {
        return Err(unknown_action(req));
    };
    if !profile_allows(org, subject, module_ix, &req.action) {
        trace.add(Reason::Profile, AccessLevel::None, || {
            format!(
                "no effective profile allows '{}' on '{}'",
                req.action, req.module
            )
        });
        return Ok(trace.finish(false, Reason::Profile, AccessLevel::None));
    }
    trace.add(Reason::Profile, AccessLevel::None, || {
        format!(
            "an effective profile allows '{}' on '{}'",
            req.action, req.module
        )
    });
    if let Some(field) = &req.field {
        let level = field_level(org, subject, module_ix, field);
        let needed = if req.action == "edit" {
            FieldLevel::Editable
        } else {
            FieldLevel::ReadOnly
        };
        if level < needed {
            trace.add(Reason::Field, AccessLevel::None, || {
                format!(
                    "field '{field}' is {level:?}, '{}' needs {needed:?}",
                    req.action
                )
            });
            return Ok(trace.finish(false, Reason::Field, AccessLevel::None));
        }
        trace.add(Reason::Field, AccessLevel::None, || {
            format!("field '{field}' is {level:?}")
        });
    }

    // Step 5.
    let Some(record_id) = &req.record else {
        return Ok(trace.finish(true, Reason::Profile, AccessLevel::None));
    };

    // Step 6: the record described in the request, else the stored one.
    let Some(record) = record_view(org, module, record_id, req.described.as_ref())? else {
        trace.add(Reason::UnknownRecord, AccessLevel::None, || {
            format!("no record '{record_id}' in '{}'", req.module)
        });
        return Ok(trace.finish(false, Reason::UnknownRecord, AccessLevel::None));
    };
    trace.add(Reason::UnknownRecord, AccessLevel::None, || {
        let source = if record.described {
            "described in the request"
        } else {
            "stored"
        };
        format!(
            "record '{}' of '{}' is {source}: owner {}{}",
            record.id,
            req.module,
            owner_words(org, record.owner),
            if record.private { ", private" } else { "" }
        )
    });

    // Step 7.
    let best = record_level(
        org,
        x,
        Paths {
            subject_ix,
            subject,
            module_ix,
            module,
            record,
        },
        &mut trace,
    );
    if required > AccessLevel::None && best.level < required {
        return Ok(trace.finish(false, Reason::InsufficientAccess, best.level));
    }
    let reason = best.reason.unwrap_or(Reason::Profile);

    // Step 8.
    if req.action == "assign" {
        let target = req
            .assign_to
            .as_ref()
            .ok_or_else(|| Error::invalid("assign_to", "assign needs the new owner"))?;
        if !in_assign_scope(org, x, subject, target)? {
            trace.add(Reason::AssignScope, best.level, || {
                format!("{target:?} is outside the assign scope of the subject's role")
            });
            return Ok(trace.finish(false, Reason::AssignScope, best.level));
        }
    }
    Ok(trace.finish(true, reason, best.level))
}

/// Refuses requests whose shape is wrong whatever the policy says.
fn validate_shape(req: &CheckRequest) -> Result<()> {
    if req.subject.is_empty() {
        return Err(Error::invalid("subject", "must not be empty"));
    }
    if req.module.is_empty() {
        return Err(Error::invalid("module", "must not be empty"));
    }
    if req.action.is_empty() {
        return Err(Error::invalid("action", "must not be empty"));
    }
    if req.field.is_some() && req.action != "view" && req.action != "edit" {
        return Err(Error::invalid("field", "only view and edit take a field"));
    }
    if req.assign_to.is_some() && req.action != "assign" {
        return Err(Error::invalid(
            "assign_to",
            "only the assign action takes assign_to",
        ));
    }
    if req.described.is_some() && req.record.is_none() {
        return Err(Error::invalid(
            "record_id",
            "a described record needs the record_id it describes",
        ));
    }
    if req.action == "assign" && req.record.is_some() && req.assign_to.is_none() {
        return Err(Error::invalid("assign_to", "assign needs the new owner"));
    }
    Ok(())
}

/// Refuses input the policy shows is wrong, before any step decides, so an
/// administrator's check (decided at step 3) is refused exactly like anyone
/// else's: an action the module does not have, a field it does not have, an
/// `assign_to` that names no user or group. With an unknown module there is
/// nothing to hold the action and field against; step 4 decides.
fn validate_against(org: &OrgState, req: &CheckRequest) -> Result<()> {
    if let Some((_, module)) = org.modules.by_id(&req.module) {
        if module.required_level(&req.action).is_none() {
            return Err(unknown_action(req));
        }
        if let Some(field) = &req.field {
            if !module.fields.contains(field) {
                return Err(Error::invalid(
                    "field",
                    format!("module '{}' has no field '{field}'", req.module),
                ));
            }
        }
    }
    if let Some(d) = &req.described {
        described_owner(org, &d.owner)?;
    }
    if let Some(target) = &req.assign_to {
        if org.resolve_owner(target).is_none() {
            return Err(match target {
                OwnerRef::User(u) => Error::not_found("user", u.clone(), "assign_to.user_id"),
                OwnerRef::Group(g) => Error::not_found("group", g.clone(), "assign_to.group_id"),
            });
        }
    }
    Ok(())
}

fn unknown_action(req: &CheckRequest) -> Error {
    Error::invalid(
        "action",
        format!(
            "'{}' is neither a standard action nor a custom action of module '{}'",
            req.action, req.module
        ),
    )
}

/// What step 7 looks at.
#[derive(Clone, Copy)]
pub(crate) struct Paths<'a> {
    pub(crate) subject_ix: UserIx,
    pub(crate) subject: &'a User,
    pub(crate) module_ix: ModuleIx,
    pub(crate) module: &'a Module,
    pub(crate) record: RecordView<'a>,
}

/// The highest level of step 7 and the first path that gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Best {
    pub(crate) level: AccessLevel,
    pub(crate) reason: Option<Reason>,
}

impl Best {
    fn offer(&mut self, level: AccessLevel, reason: Reason) {
        if level > self.level {
            self.level = level;
            self.reason = Some(reason);
        }
    }

    /// Whether a path that gives at most `max` could change the answer.
    fn worth(&self, max: AccessLevel, trace: &Trace) -> bool {
        trace.on() || max > self.level
    }
}

/// Step 7: the subject's record level, the highest of every path.
pub(crate) fn record_level<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    p: Paths<'_>,
    trace: &mut Trace,
) -> Best {
    let mut best = Best {
        level: AccessLevel::None,
        reason: None,
    };
    let mut groups: Option<Arc<[GroupIx]>> = None;
    let mut subject_groups = |x: &X| -> Arc<[GroupIx]> {
        groups
            .get_or_insert_with(|| x.user_groups(org, p.subject_ix))
            .clone()
    };
    let owner = p.record.owner;

    // Ownership.
    match owner {
        Owner::User(u) if u == p.subject_ix => {
            trace.add(Reason::Owner, AccessLevel::Full, || {
                "the subject owns the record".into()
            });
            best.offer(AccessLevel::Full, Reason::Owner);
        }
        Owner::Group(g) if subject_groups(x).binary_search(&g).is_ok() => {
            trace.add(Reason::GroupOwner, AccessLevel::Full, || {
                format!(
                    "group '{}' owns the record and has the subject as a member",
                    org.group_id(g)
                )
            });
            best.offer(AccessLevel::Full, Reason::GroupOwner);
        }
        _ => {}
    }
    if best.level == AccessLevel::Full && !trace.on() {
        return best;
    }

    // view_all / modify_all.
    let grant = module_grant(org, p.subject, p.module_ix);
    if grant.modify_all {
        trace.add(Reason::ModifyAll, AccessLevel::Full, || {
            format!(
                "an effective profile has modify_all on '{}'",
                p.module.def.id
            )
        });
        best.offer(AccessLevel::Full, Reason::ModifyAll);
    } else if grant.view_all {
        trace.add(Reason::ViewAll, AccessLevel::Read, || {
            format!("an effective profile has view_all on '{}'", p.module.def.id)
        });
        best.offer(AccessLevel::Read, Reason::ViewAll);
    }

    // Hierarchy.
    if p.module.def.hierarchy_access && best.worth(AccessLevel::Full, trace) {
        if let Owner::User(o) = owner {
            if o != p.subject_ix && is_superior(org, x, p.subject_ix, p.subject, o) {
                trace.add(Reason::Hierarchy, AccessLevel::Full, || {
                    format!("the subject is a superior of owner '{}'", org.user_id(o))
                });
                best.offer(AccessLevel::Full, Reason::Hierarchy);
            }
        }
    }

    // Team leads.
    if best.worth(AccessLevel::ReadWrite, trace) {
        for g in &p.subject.leads {
            let holds = match owner {
                Owner::Group(h) => x.group_nested(org, *g).binary_search(&h).is_ok(),
                Owner::User(o) => x.group_members(org, *g).binary_search(&o).is_ok(),
            };
            if holds {
                trace.add(Reason::TeamLead, AccessLevel::ReadWrite, || {
                    format!(
                        "the subject leads group '{}', which holds the owner",
                        org.group_id(*g)
                    )
                });
                best.offer(AccessLevel::ReadWrite, Reason::TeamLead);
                if !trace.on() {
                    break;
                }
            }
        }
    }

    // Organization-wide default.
    let owd = p.module.def.owd.level();
    if p.subject.def.kind == UserKind::Member && !p.record.private && owd > AccessLevel::None {
        trace.add(Reason::OrgDefault, owd, || {
            format!(
                "module '{}' defaults to {:?}",
                p.module.def.id, p.module.def.owd
            )
        });
        best.offer(owd, Reason::OrgDefault);
    }

    // Sharing rules and criteria rules.
    if !p.record.private {
        for rule in p.module.rules.values() {
            if !best.worth(rule.def.access, trace) {
                continue;
            }
            let matches = match rule.from {
                Some(from) => owner_in(org, x, from, owner),
                None => rule
                    .criteria
                    .iter()
                    .all(|(k, v)| p.record.attributes.get(k) == Some(v)),
            };
            if matches && subject_in(org, x, rule.to, p.subject, &mut subject_groups) {
                trace.add(Reason::SharingRule, rule.def.access, || {
                    format!("sharing rule '{}'", rule.def.id)
                });
                best.offer(rule.def.access, Reason::SharingRule);
            }
        }
    }

    // Manual shares.
    for share in p.record.shares {
        if !best.worth(share.level, trace) {
            continue;
        }
        let includes = match share.grantee {
            GranteeIx::User(u) => u == p.subject_ix,
            GranteeIx::Group(g) => subject_groups(x).binary_search(&g).is_ok(),
            GranteeIx::Role(r) => p.subject.role == Some(r),
            GranteeIx::RoleAndSubordinates(r) => p
                .subject
                .role
                .is_some_and(|sr| x.role_subtree(org, r).binary_search(&sr).is_ok()),
        };
        if includes {
            trace.add(Reason::ManualShare, share.level, || {
                format!("manual share to {:?}", org.grantee_ref(share.grantee))
            });
            best.offer(share.level, Reason::ManualShare);
        }
    }
    best
}

/// An owner as an explanation names it: `user 'ray'`, `group 'east'`.
pub(crate) fn owner_words(org: &OrgState, owner: Owner) -> String {
    match owner {
        Owner::User(u) => format!("user '{}'", org.user_id(u)),
        Owner::Group(g) => format!("group '{}'", org.group_id(g)),
    }
}

/// Whether `s` is a superior of `o` in the organization's hierarchy mode.
pub(crate) fn is_superior<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    s_ix: UserIx,
    s: &User,
    o: UserIx,
) -> bool {
    match org.settings.hierarchy_mode {
        HierarchyMode::Role => {
            let (Some(sr), Some(or)) = (s.role, org.user(o).and_then(|u| u.role)) else {
                return false;
            };
            sr != or && x.role_subtree(org, sr).binary_search(&or).is_ok()
        }
        HierarchyMode::Reporting => x.managers(org, o).binary_search(&s_ix).is_ok(),
    }
}

/// Whether a sharing rule's `to` set contains the subject.
fn subject_in<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    set: MemberSetIx,
    subject: &User,
    subject_groups: &mut impl FnMut(&X) -> Arc<[GroupIx]>,
) -> bool {
    match set {
        MemberSetIx::Role(r) => subject.role == Some(r),
        MemberSetIx::RoleAndSubordinates(r) => subject
            .role
            .is_some_and(|sr| x.role_subtree(org, r).binary_search(&sr).is_ok()),
        MemberSetIx::Group(g) => subject_groups(x).binary_search(&g).is_ok(),
    }
}

/// Whether a record's owner falls in a sharing rule's `from` set.
pub(crate) fn owner_in<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    set: MemberSetIx,
    owner: Owner,
) -> bool {
    match (set, owner) {
        (MemberSetIx::Role(r), Owner::User(o)) => org.user(o).and_then(|u| u.role) == Some(r),
        (MemberSetIx::RoleAndSubordinates(r), Owner::User(o)) => org
            .user(o)
            .and_then(|u| u.role)
            .is_some_and(|or| x.role_subtree(org, r).binary_search(&or).is_ok()),
        (MemberSetIx::Group(g), Owner::User(o)) => {
            x.group_members(org, g).binary_search(&o).is_ok()
        }
        (MemberSetIx::Group(g), Owner::Group(h)) => {
            x.group_nested(org, g).binary_search(&h).is_ok()
        }
        (MemberSetIx::Role(_) | MemberSetIx::RoleAndSubordinates(_), Owner::Group(_)) => false,
    }
}

/// Step 8: whether the new owner is inside the subject role's assign scope.
pub(crate) fn in_assign_scope<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &User,
    target: &OwnerRef,
) -> Result<bool> {
    let target = org.resolve_owner(target).ok_or_else(|| match target {
        OwnerRef::User(u) => Error::not_found("user", u.clone(), "assign_to.user_id"),
        OwnerRef::Group(g) => Error::not_found("group", g.clone(), "assign_to.group_id"),
    })?;
    let Owner::User(t) = target else {
        return Ok(true);
    };
    let Some(role_ix) = subject.role else {
        // A guest has no role and so no scope: groups only.
        return Ok(false);
    };
    let scope = org
        .role(role_ix)
        .map(|r| r.def.assign_scope)
        .unwrap_or(AssignScope::SameAndSubordinate);
    match scope {
        AssignScope::All => Ok(true),
        AssignScope::SameAndSubordinate => Ok(org
            .user(t)
            .and_then(|u| u.role)
            .is_some_and(|tr| x.role_subtree(org, role_ix).binary_search(&tr).is_ok())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Command, Direct, Engine, Limits};

    fn engine() -> Engine<Direct> {
        let document = crate::document::parse_document(
            r#"
organization: t
modules:
  - {id: Leads, owd: PRIVATE, fields: [name]}
profiles:
  - id: rep
    modules: {Leads: [view, edit, assign]}
roles:
  - {id: staff, profiles: [rep]}
users:
  - {id: root, role: staff, admin: true}
  - {id: erin, role: staff}
records:
  - {module: Leads, id: L1, owner: {user: erin}}
"#,
        )
        .unwrap();
        let engine = Engine::new(Direct, Limits::default());
        engine
            .execute(
                "t",
                &Command::Import {
                    document,
                    replace: true,
                },
            )
            .unwrap();
        engine
    }

    fn ask(subject: &str, module: &str, action: &str) -> CheckRequest {
        CheckRequest {
            subject: subject.into(),
            module: module.into(),
            action: action.into(),
            record: Some("L1".into()),
            ..CheckRequest::default()
        }
    }

    fn field_of(r: Result<(Decision, u64)>) -> String {
        match r {
            Err(Error::InvalidArgument { field, .. }) => field,
            Err(Error::NotFound { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn bad_input_is_refused_for_every_subject_before_any_step() {
        let e = engine();
        let now = Utc::now();
        for subject in ["root", "erin", "nobody"] {
            let fly = ask(subject, "Leads", "fly");
            assert_eq!(field_of(e.check("t", &fly, now)), "action");
            let field = CheckRequest {
                field: Some("nope".into()),
                ..ask(subject, "Leads", "view")
            };
            assert_eq!(field_of(e.check("t", &field, now)), "field");
            let assign = CheckRequest {
                assign_to: Some(OwnerRef::User("ghost".into())),
                ..ask(subject, "Leads", "assign")
            };
            assert_eq!(field_of(e.check("t", &assign, now)), "assign_to.user_id");
        }
    }

    #[test]
    fn valid_input_keeps_the_decision_order() {
        let e = engine();
        let now = Utc::now();
        let decided = |req: CheckRequest| {
            let d = e.check("t", &req, now).unwrap().0;
            (d.allowed, d.reason)
        };
        assert_eq!(
            decided(ask("root", "Leads", "delete")),
            (true, Reason::Admin)
        );
        // An unknown module holds no actions to check against: steps 3 and 4 decide.
        assert_eq!(decided(ask("root", "Deals", "fly")), (true, Reason::Admin));
        assert_eq!(
            decided(ask("erin", "Deals", "fly")),
            (false, Reason::UnknownModule)
        );
        assert_eq!(
            decided(ask("nobody", "Leads", "view")),
            (false, Reason::UnknownSubject)
        );
    }
}
