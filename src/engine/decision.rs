//! The decision of SPEC section 2, step by step in the spec's order, with
//! the reason of the step that decided and, on request, the full trace.

use chrono::{DateTime, Utc};
use compact_str::CompactString;

use super::described::{described_owner, record_view, RecordView};
use super::error::{Error, Result};
use super::expand::Expand;
pub use super::explain::TraceStep;
use super::explain::{field_word, owner_ref, owner_words, refer, Need, Outcome, TraceRef};
use super::model::{AccessLevel, AssignScope, FieldLevel, OwnerRef, Reason, RecordDescription};
use super::org::{ActionIx, Module, ModuleIx, OrgState, Owner, RoleIx, UserHot, UserIx};
use super::paths::{record_level, Asker};
use super::records::Records;

/// A question: may `subject` do `action` in `module` (to `record`, on `field`)?
#[derive(Debug, Clone, Default, PartialEq, Eq)]
///
/// Its ids are `CompactString`s (inline up to 24 bytes): a Check moves them
/// from the decoded message without an allocation (docs/benchmarks.md,
/// "Part E (fourth round)"); build one from `&str` or `String` with `.into()`.
pub struct CheckRequest {
    /// User id.
    pub subject: CompactString,
    /// Module id.
    pub module: CompactString,
    /// Action: standard or one of the module's custom actions.
    pub action: CompactString,
    /// Record id, if the question is about one record.
    pub record: Option<CompactString>,
    /// Field, for `view` or `edit` of one field.
    pub field: Option<CompactString>,
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
    /// The system clock, read only when a shift is evaluated: most
    /// subjects have none, and a read of the clock cost about 0.1 µs of a
    /// Check's server CPU (docs/benchmarks.md, "Part X (tenth round)").
    Clock,
    /// Not at all (LookupSubjects without `on_shift_at`).
    Ignored,
}

impl ShiftTime {
    /// The instant shifts are evaluated at (reads the clock for
    /// [`ShiftTime::Clock`]), if they are.
    fn instant(self) -> Option<DateTime<Utc>> {
        match self {
            ShiftTime::At(at) => Some(at),
            ShiftTime::Clock => Some(Utc::now()),
            ShiftTime::Ignored => None,
        }
    }
}

/// When a check is made, for its shifts: an instant the caller read, or
/// the system clock, read only if a shift is evaluated. A request's own
/// `at` takes the place of either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Now {
    /// This instant.
    At(DateTime<Utc>),
    /// The system clock when it is needed.
    Clock,
}

impl From<DateTime<Utc>> for Now {
    fn from(at: DateTime<Utc>) -> Now {
        Now::At(at)
    }
}

impl Now {
    /// The shift time of a request with `at` (its own instant, if any).
    fn shift_time(self, at: Option<DateTime<Utc>>) -> ShiftTime {
        match (at, self) {
            (Some(at), _) | (None, Now::At(at)) => ShiftTime::At(at),
            (None, Now::Clock) => ShiftTime::Clock,
        }
    }
}

/// The step of SPEC section 2 a reason belongs to.
fn step_of(reason: Reason) -> u8 {
    match reason {
        Reason::UnknownSubject | Reason::InactiveSubject => 1,
        Reason::OutsideShift => 2,
        Reason::Admin => 3,
        Reason::UnknownModule | Reason::Profile | Reason::Field => 4,
        Reason::UnknownRecord => 6,
        Reason::Owner
        | Reason::GroupOwner
        | Reason::ViewAll
        | Reason::ModifyAll
        | Reason::Hierarchy
        | Reason::TeamLead
        | Reason::OrgDefault
        | Reason::SharingRule
        | Reason::ManualShare
        | Reason::InsufficientAccess => 7,
        Reason::AssignScope => 8,
    }
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

    /// A step built in full, only when explaining.
    #[inline(always)]
    pub(crate) fn push(&mut self, step: impl FnOnce() -> TraceStep) {
        if self.on {
            self.push_built(step);
        }
    }

    /// Builds and keeps a step: out of line and cold, so that the code
    /// that words a step (most checks never run it) does not sit between
    /// the decision's own instructions and cost them instruction-cache
    /// lines (docs/benchmarks.md, "Part X (tenth round)").
    #[cold]
    #[inline(never)]
    fn push_built(&mut self, step: impl FnOnce() -> TraceStep) {
        self.steps.push(step());
    }

    /// The step that decided.
    pub(crate) fn decided(
        &mut self,
        reason: Reason,
        level: AccessLevel,
        detail: impl FnOnce() -> String,
    ) {
        self.push(|| {
            TraceStep::new(step_of(reason), reason, level, detail()).outcome(Outcome::Decided)
        });
    }

    fn steps_mut(&mut self) -> Option<&mut Vec<TraceStep>> {
        self.on.then_some(&mut self.steps)
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
pub(crate) enum Subject {
    /// Decided already (unknown, inactive, outside shift, admin).
    Decided(Reason, bool),
    /// An active user, on shift, not an admin, with its hot record.
    User(UserIx, UserHot),
}

/// Steps 1 to 3: who is asking, are they on shift, are they the admin.
pub(crate) fn resolve_subject(
    org: &OrgState,
    subject: &str,
    shift_time: ShiftTime,
    trace: &mut Trace,
) -> Subject {
    let who = || refer("user", subject, "subject");
    // Step 1.
    // The id's index and the user's dense 16-byte record: the `User`
    // itself, its strings and vectors, are not read.
    let Some((ix, user)) = org.user_hot_by_id(subject) else {
        trace.push(|| {
            TraceStep::new(
                1,
                Reason::UnknownSubject,
                AccessLevel::None,
                format!("no user '{subject}' in organization '{}'", org.id),
            )
            .outcome(Outcome::Decided)
            .refer(who())
        });
        return Subject::Decided(Reason::UnknownSubject, false);
    };
    if !user.active() {
        trace.push(|| {
            TraceStep::new(
                1,
                Reason::InactiveSubject,
                AccessLevel::None,
                format!("user '{subject}' is inactive: inactive users are denied everything"),
            )
            .outcome(Outcome::Decided)
            .refer(who())
        });
        return Subject::Decided(Reason::InactiveSubject, false);
    }
    trace.push(|| {
        TraceStep::new(
            1,
            Reason::UnknownSubject,
            AccessLevel::None,
            format!("user '{subject}' exists and is active"),
        )
        .refer(who())
    });
    // Step 2.
    if org.settings.enforce_shifts && !user.admin() {
        // The shift first: the clock is read only for a subject with one.
        if let Some((shift, at)) = user
            .shift()
            .and_then(|s| org.shifts.get(s.0))
            .and_then(|shift| Some((shift, shift_time.instant()?)))
        {
            let inside = shift.contains(at);
            trace.push(|| {
                let step = TraceStep::new(
                    2,
                    Reason::OutsideShift,
                    AccessLevel::None,
                    shift_words(shift, at, inside),
                )
                .refer(who())
                .refer(refer("shift", &shift.def.id, "shift"));
                if inside {
                    step
                } else {
                    step.outcome(Outcome::Decided)
                }
            });
            if !inside {
                return Subject::Decided(Reason::OutsideShift, false);
            }
        }
    }
    // Step 3.
    if user.admin() {
        trace.decided(Reason::Admin, AccessLevel::Full, || {
            format!("user '{subject}' is the organization's administrator: allowed everything")
        });
        return Subject::Decided(Reason::Admin, true);
    }
    Subject::User(ix, user)
}

/// Step 2 in words: the instant, the local time in the shift's zone and
/// the windows as the document writes them.
fn shift_words(shift: &super::org::Shift, at: DateTime<Utc>, inside: bool) -> String {
    let local = at.with_timezone(&shift.tz);
    let windows: Vec<String> = shift
        .def
        .windows
        .iter()
        .map(|w| {
            let days: Vec<&str> = w.days.iter().map(|d| weekday_word(*d)).collect();
            format!("{} {}-{}", days.join(","), w.start, w.end)
        })
        .collect();
    format!(
        "{} (local {} {} in {}) is {} shift '{}' (windows: {})",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        local.format("%a").to_string().to_uppercase(),
        local.format("%H:%M"),
        shift.def.time_zone,
        if inside { "inside" } else { "outside" },
        shift.def.id,
        if windows.is_empty() {
            "none".to_string()
        } else {
            windows.join("; ")
        }
    )
}

fn weekday_word(d: super::model::Weekday) -> &'static str {
    use super::model::Weekday;
    match d {
        Weekday::Mon => "MON",
        Weekday::Tue => "TUE",
        Weekday::Wed => "WED",
        Weekday::Thu => "THU",
        Weekday::Fri => "FRI",
        Weekday::Sat => "SAT",
        Weekday::Sun => "SUN",
    }
}

/// Step 4 in words: each effective profile and what it allows on the module.
fn profiles_words(org: &OrgState, user: UserHot, module: ModuleIx) -> (String, Vec<TraceRef>) {
    let mut seen: Vec<&str> = Vec::new();
    let mut parts = Vec::new();
    let mut refs = Vec::new();
    for p in org.effective_profiles(user) {
        if seen.contains(&p.def.id.as_str()) {
            continue;
        }
        seen.push(&p.def.id);
        refs.push(refer("profile", &p.def.id, "profile"));
        let allows = match p.modules.get(&module) {
            Some(m) if !m.actions.is_empty() => {
                let mut actions: Vec<&str> = m.actions.iter().map(String::as_str).collect();
                actions.sort_unstable();
                actions.join(", ")
            }
            _ => "nothing".to_string(),
        };
        parts.push(format!("'{}' allows {allows}", p.def.id));
    }
    if parts.is_empty() {
        ("it has no effective profiles".to_string(), refs)
    } else {
        (
            format!("its effective profiles: {}", parts.join("; ")),
            refs,
        )
    }
}

/// Step 4's field level in words: what each effective profile says.
fn field_words(org: &OrgState, user: UserHot, module: ModuleIx, field: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let mut parts = Vec::new();
    for p in org.effective_profiles(user) {
        if seen.contains(&p.def.id.as_str()) {
            continue;
        }
        seen.push(&p.def.id);
        let says = match p.modules.get(&module) {
            Some(m) if m.views() => {
                let level = m.fields.get(field).copied().unwrap_or(FieldLevel::Editable);
                format!("'{}' makes it {}", p.def.id, field_word(level))
            }
            _ => format!("'{}' does not allow view, so says nothing", p.def.id),
        };
        parts.push(says);
    }
    if parts.is_empty() {
        "no effective profiles".to_string()
    } else {
        parts.join("; ")
    }
}

/// What the subject's effective profiles allow on one module.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ModuleGrant {
    pub(crate) view_all: bool,
    pub(crate) modify_all: bool,
}

/// Whether any effective profile allows `action` on the module.
pub(crate) fn profile_allows(
    org: &OrgState,
    user: UserHot,
    module: ModuleIx,
    action: &str,
) -> bool {
    org.action_ix(action)
        .is_some_and(|a| profile_grant(org, user, module, a).0)
}

/// One pass over the effective profiles: whether one allows the interned
/// action `a` on the module, and their `view_all` and `modify_all` there.
pub(crate) fn profile_grant(
    org: &OrgState,
    user: UserHot,
    module: ModuleIx,
    a: ActionIx,
) -> (bool, ModuleGrant) {
    let mut allowed = false;
    let mut grant = ModuleGrant::default();
    for p in org.effective_profiles(user) {
        // The packed bits: no hash look-up into the profile's modules.
        let bits = p.bits(module);
        allowed |= p.allows(bits, module, a);
        grant.view_all |= bits.view_all;
        grant.modify_all |= bits.modify_all;
    }
    (allowed, grant)
}

/// `view_all` and `modify_all` of the effective profiles on a module.
pub(crate) fn module_grant(org: &OrgState, user: UserHot, module: ModuleIx) -> ModuleGrant {
    let mut grant = ModuleGrant::default();
    for p in org.effective_profiles(user) {
        let bits = p.bits(module);
        grant.view_all |= bits.view_all;
        grant.modify_all |= bits.modify_all;
    }
    grant
}

/// A field's level: the most permissive among the effective profiles that
/// allow `view` on the module (a field they do not name is EDITABLE).
pub(crate) fn field_level(
    org: &OrgState,
    user: UserHot,
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
    now: Now,
) -> Result<Decision> {
    decide(org, x, req, now.shift_time(req.at))
}

/// Decides a check with shifts evaluated as `shift_time` says.
pub fn decide<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    req: &CheckRequest,
    shift_time: ShiftTime,
) -> Result<Decision> {
    validate_shape(req)?;
    // The module and the action, resolved once for the validation and step 4.
    let resolved = validate_against(org, req)?;
    // The record's two lines (its id-index entry, then its slot) are what a
    // check waits on among many records. The entry's address follows from
    // the id's hash, so its load starts here; the slot's follows from the
    // entry, whose load is read after steps 1–3 to start the slot's
    // (below). Both overlap the subject's look-up instead of following
    // it. Hints only: step 6 looks the record up as before and nothing is
    // decided from them.
    let record_hash = resolved
        .zip(req.record.as_deref())
        .map(|((_, module, _), id)| {
            let hash = Records::id_hash(id);
            module.records.prefetch_entry(hash);
            (&module.records, hash)
        });
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
    // The entry has had steps 1–3 to arrive: start the slot it names.
    if let Some((records, hash)) = record_hash {
        records.prefetch_slot(hash);
    }

    // Step 4.
    let Some((module_ix, module, action)) = resolved else {
        trace.push(|| {
            TraceStep::new(
                4,
                Reason::UnknownModule,
                AccessLevel::None,
                format!("no module '{}' in organization '{}'", req.module, org.id),
            )
            .outcome(Outcome::Decided)
            .refer(refer("module", &req.module, "module"))
        });
        return Ok(trace.finish(false, Reason::UnknownModule, AccessLevel::None));
    };
    let Some(required) = module.required(action) else {
        return Err(unknown_action(req));
    };
    let (allowed_by_profile, grant) = profile_grant(org, subject, module_ix, action);
    trace.push(|| {
        let (profiles, refs) = profiles_words(org, subject, module_ix);
        let verdict = if allowed_by_profile {
            "an effective profile allows"
        } else {
            "no effective profile allows"
        };
        let mut step = TraceStep::new(
            4,
            Reason::Profile,
            AccessLevel::None,
            format!(
                "{verdict} '{}' on '{}' for '{}' ({profiles})",
                req.action, req.module, req.subject
            ),
        )
        .refer(refer("user", &req.subject, "subject"))
        .refer(refer("module", &req.module, "module"));
        step.refs.extend(refs);
        if allowed_by_profile {
            step
        } else {
            step.outcome(Outcome::Decided).missing(
                format!(
                    "an effective profile allowing '{}' on '{}'",
                    req.action, req.module
                ),
                AccessLevel::None,
                vec![refer("module", &req.module, "module")],
            )
        }
    });
    if !allowed_by_profile {
        return Ok(trace.finish(false, Reason::Profile, AccessLevel::None));
    }
    if let Some(field) = &req.field {
        let level = field_level(org, subject, module_ix, field);
        let needed = if req.action == "edit" {
            FieldLevel::Editable
        } else {
            FieldLevel::ReadOnly
        };
        let enough = level >= needed;
        trace.push(|| {
            let mut detail = format!(
                "field '{field}' is {} for '{}' ({})",
                field_word(level),
                req.subject,
                field_words(org, subject, module_ix, field)
            );
            if !enough {
                detail.push_str(&format!(", '{}' needs {}", req.action, field_word(needed)));
            }
            let step = TraceStep::new(4, Reason::Field, AccessLevel::None, detail)
                .refer(refer("field", field, "field"))
                .refer(refer("module", &req.module, "module"));
            if enough {
                step
            } else {
                step.outcome(Outcome::Decided).missing(
                    format!(
                        "an effective profile allowing view on '{}' that makes field '{field}' {}",
                        req.module,
                        field_word(needed)
                    ),
                    AccessLevel::None,
                    vec![refer("field", field, "field")],
                )
            }
        });
        if !enough {
            return Ok(trace.finish(false, Reason::Field, AccessLevel::None));
        }
    }

    // Step 5.
    let Some(record_id) = &req.record else {
        trace.push(|| {
            TraceStep::new(
                5,
                Reason::Profile,
                AccessLevel::None,
                "no record named: the profile decides".to_string(),
            )
            .outcome(Outcome::Decided)
        });
        return Ok(trace.finish(true, Reason::Profile, AccessLevel::None));
    };

    // Step 6: the record described in the request, else the stored one.
    // Hashed once: the prefetches above kept the hash.
    let hash = record_hash.map_or_else(|| Records::id_hash(record_id), |(_, hash)| hash);
    let Some(record) = record_view(org, module, record_id, hash, req.described.as_ref())? else {
        trace.decided(Reason::UnknownRecord, AccessLevel::None, || {
            format!("no record '{record_id}' in '{}'", req.module)
        });
        return Ok(trace.finish(false, Reason::UnknownRecord, AccessLevel::None));
    };
    trace.push(|| record_words(org, &req.module, &record));

    // Step 7.
    let asker = Asker::new(org, x, subject_ix, subject, module_ix, module).with_grant(grant);
    let need = Need {
        action: &req.action,
        required,
    };
    let first_path = trace.steps.len();
    let best = record_level(&asker, &record, trace.steps_mut().map(|s| (&need, s)));
    if required > AccessLevel::None && best.level < required {
        trace.decided(Reason::InsufficientAccess, best.level, || {
            format!(
                "the highest level of step 7 is {}{}, '{}' needs {}",
                best.level.as_str(),
                best.reason
                    .map(|r| format!(" ({})", r.as_str()))
                    .unwrap_or_default(),
                req.action,
                required.as_str()
            )
        });
        return Ok(trace.finish(false, Reason::InsufficientAccess, best.level));
    }
    let reason = best.reason.unwrap_or(Reason::Profile);

    // Step 8.
    if req.action == "assign" {
        let target = req
            .assign_to
            .as_ref()
            .ok_or_else(|| Error::invalid("assign_to", "assign needs the new owner"))?;
        let inside = in_assign_scope(org, x, subject.role(), target)?;
        trace.push(|| {
            let step = TraceStep::new(
                8,
                Reason::AssignScope,
                best.level,
                assign_words(org, &req.subject, subject.role(), target, inside),
            )
            .refer(match target {
                OwnerRef::User(u) => refer("user", u, "target"),
                OwnerRef::Group(g) => refer("group", g, "target"),
            });
            if inside {
                step
            } else {
                step.outcome(Outcome::Decided)
            }
        });
        if !inside {
            return Ok(trace.finish(false, Reason::AssignScope, best.level));
        }
    }
    if trace.on() {
        match best.reason {
            Some(path) => mark_decided(&mut trace.steps[first_path..], path, best.level),
            // An action that needs no record level (create): step 7 gave
            // nothing and the profile of step 4 decides.
            None => trace.push(|| {
                TraceStep::new(
                    7,
                    Reason::Profile,
                    AccessLevel::None,
                    format!(
                        "'{}' needs no record level: the profile decides",
                        req.action
                    ),
                )
                .outcome(Outcome::Decided)
            }),
        }
    }
    Ok(trace.finish(true, reason, best.level))
}

/// Marks the deciding path's first entry (the first that gave the best
/// level under the answer's reason) DECIDED; the others that gave stay GAVE.
fn mark_decided(steps: &mut [TraceStep], reason: Reason, level: AccessLevel) {
    if let Some(step) = steps
        .iter_mut()
        .find(|s| s.reason == reason && s.level == level && s.outcome == Outcome::Gave)
    {
        step.outcome = Outcome::Decided;
    }
}

/// Step 6 in words: where the record came from and its facts.
fn record_words(org: &OrgState, module: &str, record: &RecordView<'_>) -> TraceStep {
    let source = if record.described {
        "described in the request"
    } else {
        "stored"
    };
    let mut facts = vec![format!("owner {}", owner_words(org, record.owner))];
    if record.private {
        facts.push("private".into());
    }
    if !record.attributes.is_empty() {
        let attributes: Vec<String> = record
            .attributes
            .named()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        facts.push(format!("attributes {}", attributes.join(", ")));
    }
    TraceStep::new(
        6,
        Reason::UnknownRecord,
        AccessLevel::None,
        format!(
            "record '{}' of '{module}' is {source}: {}",
            record.id,
            facts.join(", ")
        ),
    )
    .refer(refer(
        "record",
        record.id,
        if record.described {
            "described_record"
        } else {
            "record"
        },
    ))
    .refer(owner_ref(org, record.owner, "owner"))
}

/// Step 8 in words.
fn assign_words(
    org: &OrgState,
    subject: &str,
    role: Option<RoleIx>,
    target: &OwnerRef,
    inside: bool,
) -> String {
    let target_words = match target {
        OwnerRef::User(u) => format!("user '{u}'"),
        OwnerRef::Group(g) => format!("group '{g}'"),
    };
    let Some(role) = role.and_then(|r| org.role(r)) else {
        return if inside {
            format!("{target_words} is a group: a guest may assign to groups")
        } else {
            format!(
                "'{subject}' is a guest: no role, so it may assign only to groups, not to {target_words}"
            )
        };
    };
    let scope = match role.def.assign_scope {
        AssignScope::All => "ALL",
        AssignScope::SameAndSubordinate => "SAME_AND_SUBORDINATE",
    };
    format!(
        "{target_words} is {} the assign scope of role '{}' ({scope})",
        if inside { "inside" } else { "outside" },
        role.def.id
    )
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
/// Returns the module with the action interned, when the module exists.
fn validate_against<'o>(
    org: &'o OrgState,
    req: &CheckRequest,
) -> Result<Option<(ModuleIx, &'o Module, ActionIx)>> {
    let mut resolved = None;
    if let Some((module_ix, module)) = org.modules.by_id(&req.module) {
        let Some(action) = org
            .action_ix(&req.action)
            .filter(|a| module.required(*a).is_some())
        else {
            return Err(unknown_action(req));
        };
        resolved = Some((ModuleIx(module_ix), module, action));
        if let Some(field) = &req.field {
            if !module.fields.contains(field.as_str()) {
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
    Ok(resolved)
}

#[cold]
#[inline(never)]
fn unknown_action(req: &CheckRequest) -> Error {
    Error::invalid(
        "action",
        format!(
            "'{}' is neither a standard action nor a custom action of module '{}'",
            req.action, req.module
        ),
    )
}

/// Step 8: whether the new owner is inside the assign scope of the
/// subject's role (`None`: a guest's).
pub(crate) fn in_assign_scope<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject_role: Option<RoleIx>,
    target: &OwnerRef,
) -> Result<bool> {
    let target = org.resolve_owner(target).ok_or_else(|| match target {
        OwnerRef::User(u) => Error::not_found("user", u.clone(), "assign_to.user_id"),
        OwnerRef::Group(g) => Error::not_found("group", g.clone(), "assign_to.group_id"),
    })?;
    let Owner::User(t) = target else {
        return Ok(true);
    };
    let Some(role_ix) = subject_role else {
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
            .is_some_and(|tr| x.in_role_subtree(org, role_ix, tr))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Direct, Engine};

    fn engine() -> Engine<Direct> {
        crate::engine::engine_of(
            Direct,
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

    /// With no `at` and [`Now::Clock`], a subject's shift is evaluated at
    /// the clock's time (read only then): windows built around this
    /// moment, two hours either side, and one five hours away.
    #[test]
    fn the_clock_is_read_for_a_subject_with_a_shift() {
        let now = Utc::now();
        let hm = |t: DateTime<Utc>| t.format("%H:%M").to_string();
        let hours = chrono::Duration::hours;
        let all_days = "[MON, TUE, WED, THU, FRI, SAT, SUN]";
        let e = crate::engine::engine_of(
            crate::engine::Direct,
            &format!(
                r#"
organization: t
settings: {{enforce_shifts: true}}
modules:
  - {{id: Leads, owd: PUBLIC_READ, fields: [name]}}
profiles:
  - id: rep
    modules: {{Leads: [view]}}
roles:
  - {{id: staff, profiles: [rep]}}
shifts:
  - {{id: now, time_zone: UTC, windows: [{{days: {all_days}, start: "{}", end: "{}"}}]}}
  - {{id: later, time_zone: UTC, windows: [{{days: {all_days}, start: "{}", end: "{}"}}]}}
users:
  - {{id: on, role: staff, shift: now}}
  - {{id: off, role: staff, shift: later}}
  - {{id: free, role: staff}}
  - {{id: boss, role: staff}}
records:
  - {{module: Leads, id: L1, owner: {{user: boss}}}}
"#,
                hm(now - hours(2)),
                hm(now + hours(2)),
                hm(now + hours(5)),
                hm(now + hours(7)),
            ),
        );
        let decided = |subject: &str, when: Now| {
            let d = e
                .check("t", &ask(subject, "Leads", "view"), when)
                .unwrap()
                .0;
            (d.allowed, d.reason)
        };
        for when in [Now::Clock, Now::At(now)] {
            assert_eq!(decided("on", when), (true, Reason::OrgDefault));
            assert_eq!(decided("off", when), (false, Reason::OutsideShift));
            assert_eq!(decided("free", when), (true, Reason::OrgDefault));
        }
        // A request's own time wins over the clock.
        let at_later = CheckRequest {
            at: Some(now + hours(6)),
            ..ask("off", "Leads", "view")
        };
        let d = e.check("t", &at_later, Now::Clock).unwrap().0;
        assert_eq!((d.allowed, d.reason), (true, Reason::OrgDefault));
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
