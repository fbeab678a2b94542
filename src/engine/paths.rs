//! Step 7 of SPEC section 2, each path defined once: the level it gives a
//! subject on one record (Check, CheckFields, LookupSubjects), the records it
//! covers for a subject (Filter, LookupRecords), and why it gave what it
//! gave (explain). `each_path!` visits them in the spec's order, which
//! breaks ties.

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use smallvec::SmallVec;

use super::decision::{module_grant, ModuleGrant};
use super::described::RecordView;
use super::expand::{Expand, HeldGroups};
use super::explain::{
    grantee_ref, owd_word, owner_ref, owner_words, quoted, refer, set_ref, short_of, words, Need,
    TraceRef, TraceStep,
};
use super::model::{AccessLevel, HierarchyMode, Reason, UserKind};
use super::org::{
    Attributes, GranteeIx, GroupIx, MemberSetIx, Module, ModuleIx, OrgState, Owner, RoleIx, Rule,
    RuleEntry, UserHot, UserIx,
};

/// Who asks, in which module: what every path reads, with the subject's
/// groups and profile grant looked up at most once per question.
pub(crate) struct Asker<'a, X: Expand + ?Sized> {
    pub(crate) org: &'a OrgState,
    pub(crate) x: &'a X,
    pub(crate) ix: UserIx,
    /// The subject's hot record: all a decision reads of it.
    pub(crate) hot: UserHot,
    pub(crate) module_ix: ModuleIx,
    pub(crate) module: &'a Module,
    /// Held once per question (see [`HeldGroups`]).
    groups: OnceCell<HeldGroups>,
    grant: OnceCell<ModuleGrant>,
    /// The subject's role and the roles above it, nearest first: walked
    /// once per question, then read by every role-and-subordinates test.
    chain: OnceCell<SmallVec<[RoleIx; 16]>>,
}

impl<'a, X: Expand + ?Sized> Asker<'a, X> {
    /// The subject at `ix`, whose hot record is `hot`, asking about `module`.
    pub(crate) fn new(
        org: &'a OrgState,
        x: &'a X,
        ix: UserIx,
        hot: UserHot,
        module_ix: ModuleIx,
        module: &'a Module,
    ) -> Self {
        Asker {
            org,
            x,
            ix,
            hot,
            module_ix,
            module,
            groups: OnceCell::new(),
            grant: OnceCell::new(),
            chain: OnceCell::new(),
        }
    }

    /// The asker with its profile grant already known (a check computes
    /// it in step 4's pass over the profiles).
    pub(crate) fn with_grant(self, grant: ModuleGrant) -> Self {
        // A fresh cell, so setting it cannot fail.
        let _ = self.grant.set(grant);
        self
    }

    /// The subject's expanded groups, sorted.
    pub(crate) fn groups(&self) -> &[GroupIx] {
        self.groups
            .get_or_init(|| self.x.hold_user_groups(self.org, self.ix))
            .as_slice()
    }

    fn grant(&self) -> ModuleGrant {
        *self
            .grant
            .get_or_init(|| module_grant(self.org, self.hot, self.module_ix))
    }

    fn id(&self) -> &str {
        self.org.user_id(self.ix)
    }

    /// The groups the subject leads (read only when its hot record says
    /// there are some, or to explain).
    fn leads(&self) -> &'a [GroupIx] {
        self.org.user(self.ix).map_or(&[], |u| u.leads.as_slice())
    }

    fn in_group(&self, g: GroupIx) -> bool {
        self.groups().binary_search(&g).is_ok()
    }

    /// The subject's role and the roles above it, as `for_role_and_above`
    /// visits them (empty for a guest): the organization's precomputed
    /// slice, or a walk kept here when role links form a cycle.
    fn role_chain(&self) -> &[RoleIx] {
        let Some(role) = self.hot.role() else {
            return &[];
        };
        if let Some(chain) = self.org.role_chain(role) {
            return chain;
        }
        self.chain.get_or_init(|| {
            let mut chain = SmallVec::new();
            self.org.for_role_and_above(role, |r| chain.push(r));
            chain
        })
    }

    fn in_role_subtree(&self, top: RoleIx) -> bool {
        // Two compares on the role forest's numbering (the same edges
        // the walk follows); the expanded subtree of `top` is a map
        // look-up and may be large.
        self.hot
            .role()
            .is_some_and(|role| self.org.role_within(role, top))
    }

    /// Whether a rule's `to` set contains the subject.
    fn in_set(&self, set: MemberSetIx) -> bool {
        match set {
            MemberSetIx::Role(r) => self.hot.role() == Some(r),
            MemberSetIx::RoleAndSubordinates(r) => self.in_role_subtree(r),
            MemberSetIx::Group(g) => self.in_group(g),
        }
    }

    /// Whether a manual share's grantee includes the subject.
    fn is_grantee(&self, g: GranteeIx) -> bool {
        match g {
            GranteeIx::User(u) => u == self.ix,
            GranteeIx::Group(g) => self.in_group(g),
            GranteeIx::Role(r) => self.hot.role() == Some(r),
            GranteeIx::RoleAndSubordinates(r) => self.in_role_subtree(r),
        }
    }

    fn subject_ref(&self) -> TraceRef {
        refer("user", self.id(), "subject")
    }

    fn module_ref(&self) -> TraceRef {
        refer("module", &self.module.def.id, "module")
    }
}

/// The records a subject may act on, in resolved form: a record qualifies
/// when `all`, or its owner is in `owners`, or it is not private and
/// (`public_non_private` or its owner is in `owners_non_private`), or its
/// id is in `record_ids`.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) all: bool,
    pub(crate) owners: FxHashSet<Owner>,
    pub(crate) owners_non_private: FxHashSet<Owner>,
    pub(crate) public_non_private: bool,
    pub(crate) record_ids: BTreeSet<Arc<str>>,
}

impl Plan {
    /// Whether the owner-level parts already select a record.
    pub(crate) fn covers(&self, owner: Owner, private: bool) -> bool {
        self.all
            || self.owners.contains(&owner)
            || (!private && (self.public_non_private || self.owners_non_private.contains(&owner)))
    }
}

/// One path of step 7.
pub(crate) trait Path {
    /// The most this path can give the subject (a path that cannot beat
    /// the best so far is skipped when nothing is explained).
    fn ceiling<X: Expand + ?Sized>(&self, a: &Asker<'_, X>) -> AccessLevel;

    /// The reason an answer this path decides names.
    fn reason(&self, r: &RecordView<'_>) -> Reason;

    /// The level this path gives the subject on `r`. Parts of the path that
    /// cannot give more than `floor` may be skipped.
    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        floor: AccessLevel,
    ) -> AccessLevel;

    /// Adds to `plan` the records on which this path gives at least `required`.
    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, required: AccessLevel, plan: &mut Plan);

    /// Why this path gives what it gives on `r`, and what would grant more.
    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    );
}

/// Runs `$body` with `$p` bound to each path of step 7, in the spec's order.
macro_rules! each_path {
    ($p:ident => $body:block) => {{
        {
            let $p = &$crate::engine::paths::Ownership;
            $body
        }
        {
            let $p = &$crate::engine::paths::ModifyAll;
            $body
        }
        {
            let $p = &$crate::engine::paths::ViewAll;
            $body
        }
        {
            let $p = &$crate::engine::paths::Hierarchy;
            $body
        }
        {
            let $p = &$crate::engine::paths::TeamLead;
            $body
        }
        {
            let $p = &$crate::engine::paths::OrgDefault;
            $body
        }
        {
            let $p = &$crate::engine::paths::SharingRules;
            $body
        }
        {
            let $p = &$crate::engine::paths::ManualShares;
            $body
        }
    }};
}

/// The highest level of step 7 and the first path that gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Best {
    pub(crate) level: AccessLevel,
    pub(crate) reason: Option<Reason>,
}

impl Best {
    fn offer(&mut self, level: AccessLevel, reason: Reason) {
        // Strictly higher only: on a tie the earlier path keeps the answer.
        if level > self.level {
            self.level = level;
            self.reason = Some(reason);
        }
    }
}

/// Step 7: the subject's record level, the highest of every path. With
/// `explain`, every path is evaluated and explains itself into `steps`.
pub(crate) fn record_level<X: Expand + ?Sized>(
    a: &Asker<'_, X>,
    r: &RecordView<'_>,
    explain: Option<(&Need<'_>, &mut Vec<TraceStep>)>,
) -> Best {
    let mut best = Best {
        level: AccessLevel::None,
        reason: None,
    };
    match explain {
        None => each_path!(p => {
            if p.ceiling(a) > best.level {
                best.offer(p.level(a, r, best.level), p.reason(r));
            }
        }),
        Some((need, steps)) => each_path!(p => {
            best.offer(p.level(a, r, AccessLevel::None), p.reason(r));
            p.explain(a, r, need, steps);
        }),
    }
    best
}

/// The records every path covers for `required` (more than NONE).
pub(crate) fn cover<X: Expand + ?Sized>(a: &Asker<'_, X>, required: AccessLevel) -> Plan {
    let mut plan = Plan::default();
    each_path!(p => {
        if !plan.all {
            p.cover(a, required, &mut plan);
        }
    });
    // An owner whose records all qualify need not be listed again for its
    // non-private ones.
    let owners = std::mem::take(&mut plan.owners_non_private);
    plan.owners_non_private = owners
        .into_iter()
        .filter(|o| !plan.owners.contains(o))
        .collect();
    plan
}

/// Ownership and group ownership: FULL (`OWNER`, `GROUP_OWNER`).
pub(crate) struct Ownership;

impl Path for Ownership {
    fn ceiling<X: Expand + ?Sized>(&self, _a: &Asker<'_, X>) -> AccessLevel {
        AccessLevel::Full
    }

    fn reason(&self, r: &RecordView<'_>) -> Reason {
        match r.owner {
            Owner::User(_) => Reason::Owner,
            Owner::Group(_) => Reason::GroupOwner,
        }
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        _floor: AccessLevel,
    ) -> AccessLevel {
        match r.owner {
            Owner::User(u) if u == a.ix => AccessLevel::Full,
            Owner::Group(g) if a.in_group(g) => AccessLevel::Full,
            _ => AccessLevel::None,
        }
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, _required: AccessLevel, plan: &mut Plan) {
        plan.owners.insert(Owner::User(a.ix));
        plan.owners
            .extend(a.groups().iter().map(|g| Owner::Group(*g)));
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        _need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        let level = self.level(a, r, AccessLevel::None);
        let owner = owner_ref(a.org, r.owner, "owner");
        let step = match (r.owner, level > AccessLevel::None) {
            (Owner::User(_), true) => TraceStep::path(
                Reason::Owner,
                level,
                format!("'{}' owns the record", a.id()),
            ),
            (Owner::User(_), false) => TraceStep::path(
                Reason::Owner,
                level,
                format!("not the owner: owner is {}", owner_words(a.org, r.owner)),
            ),
            (Owner::Group(_), true) => TraceStep::path(
                Reason::GroupOwner,
                level,
                format!(
                    "'{}' is a member of {}, which owns the record",
                    a.id(),
                    owner_words(a.org, r.owner)
                ),
            ),
            (Owner::Group(_), false) => TraceStep::path(
                Reason::GroupOwner,
                level,
                format!(
                    "not the owner: owner is {}, and '{}' is not among its members",
                    owner_words(a.org, r.owner),
                    a.id()
                ),
            )
            .missing(
                format!("membership of {}", owner_words(a.org, r.owner)),
                AccessLevel::Full,
                vec![owner.clone()],
            ),
        };
        out.push(step.refer(a.subject_ref()).refer(owner));
    }
}

/// The profiles among the subject's effective ones that have `flag` on the module.
fn profiles_with<X: Expand + ?Sized>(
    a: &Asker<'_, X>,
    flag: impl Fn(&super::org::ModulePerms) -> bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in a.org.effective_profiles(a.hot) {
        if p.modules.get(&a.module_ix).is_some_and(&flag) && !out.contains(&p.def.id) {
            out.push(p.def.id.clone());
        }
    }
    out
}

/// `modify_all` on the module in an effective profile: FULL (`MODIFY_ALL`).
pub(crate) struct ModifyAll;

impl Path for ModifyAll {
    fn ceiling<X: Expand + ?Sized>(&self, _a: &Asker<'_, X>) -> AccessLevel {
        AccessLevel::Full
    }

    fn reason(&self, _r: &RecordView<'_>) -> Reason {
        Reason::ModifyAll
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        _r: &RecordView<'_>,
        _floor: AccessLevel,
    ) -> AccessLevel {
        if a.grant().modify_all {
            AccessLevel::Full
        } else {
            AccessLevel::None
        }
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, _required: AccessLevel, plan: &mut Plan) {
        plan.all |= a.grant().modify_all;
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        _need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        all_flag_step(
            a,
            self.level(a, r, AccessLevel::None),
            "modify_all",
            out,
            |m| m.modify_all,
        );
    }
}

/// `view_all` on the module in an effective profile: READ (`VIEW_ALL`).
pub(crate) struct ViewAll;

impl Path for ViewAll {
    fn ceiling<X: Expand + ?Sized>(&self, _a: &Asker<'_, X>) -> AccessLevel {
        AccessLevel::Read
    }

    fn reason(&self, _r: &RecordView<'_>) -> Reason {
        Reason::ViewAll
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        _r: &RecordView<'_>,
        _floor: AccessLevel,
    ) -> AccessLevel {
        if a.grant().view_all {
            AccessLevel::Read
        } else {
            AccessLevel::None
        }
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, required: AccessLevel, plan: &mut Plan) {
        plan.all |= a.grant().view_all && required <= AccessLevel::Read;
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        let level = self.level(a, r, AccessLevel::None);
        all_flag_step(a, level, "view_all", out, |m| m.view_all);
        if let (Some(step), true) = (out.last_mut(), level > AccessLevel::None) {
            step.detail.push_str(&short_of(level, need));
        }
    }
}

/// The entry of `view_all` or `modify_all`: which profiles have it.
fn all_flag_step<X: Expand + ?Sized>(
    a: &Asker<'_, X>,
    level: AccessLevel,
    flag_name: &str,
    out: &mut Vec<TraceStep>,
    flag: impl Fn(&super::org::ModulePerms) -> bool,
) {
    let reason = if flag_name == "view_all" {
        Reason::ViewAll
    } else {
        Reason::ModifyAll
    };
    let profiles = profiles_with(a, flag);
    let module = &a.module.def.id;
    let mut step = if profiles.is_empty() {
        TraceStep::path(
            reason,
            level,
            format!(
                "no effective profile of '{}' has {flag_name} on '{module}'",
                a.id()
            ),
        )
    } else {
        TraceStep::path(
            reason,
            level,
            format!(
                "profile {} has {flag_name} on '{module}': gives {}",
                quoted(profiles.iter().map(String::as_str)),
                level.as_str()
            ),
        )
    };
    for p in &profiles {
        step = step.refer(refer("profile", p, "profile"));
    }
    out.push(step.refer(a.module_ref()));
}

/// Superiors of the owning user, where the module has hierarchy access:
/// FULL (`HIERARCHY`).
pub(crate) struct Hierarchy;

impl Hierarchy {
    /// Whether the subject is a superior of `o` in the organization's mode.
    fn above<X: Expand + ?Sized>(a: &Asker<'_, X>, o: UserIx) -> bool {
        is_superior(a.org, a.x, a.ix, a.hot, o)
    }
}

/// Whether `s` is a superior of `o` in the organization's hierarchy mode.
pub(crate) fn is_superior<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    s_ix: UserIx,
    s: UserHot,
    o: UserIx,
) -> bool {
    match org.settings.hierarchy_mode {
        HierarchyMode::Role => {
            // The owner's role from its 16-byte hot record.
            let (Some(sr), Some(or)) = (s.role(), org.user_role(o)) else {
                return false;
            };
            // Same answer as `role_subtree(sr)` holding `or`, without an
            // expansion look-up.
            sr != or && org.role_within(or, sr)
        }
        HierarchyMode::Reporting => x.reports_to(org, o, s_ix),
    }
}

impl Path for Hierarchy {
    fn ceiling<X: Expand + ?Sized>(&self, a: &Asker<'_, X>) -> AccessLevel {
        if a.module.def.hierarchy_access {
            AccessLevel::Full
        } else {
            AccessLevel::None
        }
    }

    fn reason(&self, _r: &RecordView<'_>) -> Reason {
        Reason::Hierarchy
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        _floor: AccessLevel,
    ) -> AccessLevel {
        match r.owner {
            Owner::User(o) if a.module.def.hierarchy_access && o != a.ix && Self::above(a, o) => {
                AccessLevel::Full
            }
            _ => AccessLevel::None,
        }
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, _required: AccessLevel, plan: &mut Plan) {
        if !a.module.def.hierarchy_access {
            return;
        }
        match a.org.settings.hierarchy_mode {
            HierarchyMode::Role => {
                if let Some(sr) = a.hot.role() {
                    for r in a.x.role_subtree(a.org, sr).iter().filter(|r| **r != sr) {
                        if let Some(role) = a.org.role(*r) {
                            plan.owners
                                .extend(role.users.iter().map(|u| Owner::User(*u)));
                        }
                    }
                }
            }
            HierarchyMode::Reporting => {
                plan.owners
                    .extend(a.org.reports_transitive(a.ix).into_iter().map(Owner::User));
            }
        }
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        _need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        let level = self.level(a, r, AccessLevel::None);
        let module = &a.module.def.id;
        let role_of = |u: Option<RoleIx>| u.map(|r| a.org.role_id(r).to_string());
        let mut refs = vec![a.subject_ref(), owner_ref(a.org, r.owner, "owner")];
        let detail = match r.owner {
            _ if !a.module.def.hierarchy_access => {
                refs.push(a.module_ref());
                format!("module '{module}' has hierarchy_access off: superiors get nothing")
            }
            Owner::Group(_) => format!(
                "owner is {}: the hierarchy reaches only records owned by users",
                owner_words(a.org, r.owner)
            ),
            Owner::User(o) if o == a.ix => {
                format!("'{}' is the owner, not a superior of the owner", a.id())
            }
            Owner::User(o) => {
                let owner_id = a.org.user_id(o);
                match a.org.settings.hierarchy_mode {
                    HierarchyMode::Reporting if level > AccessLevel::None => format!(
                        "owner '{owner_id}' reports to '{}', directly or through a chain",
                        a.id()
                    ),
                    HierarchyMode::Reporting => format!(
                        "owner '{owner_id}' does not report to '{}', directly or through a chain (hierarchy_mode REPORTING)",
                        a.id()
                    ),
                    HierarchyMode::Role => {
                        let owner_role = role_of(a.org.user_role(o));
                        match (role_of(a.hot.role()), owner_role) {
                            (None, _) => format!(
                                "'{}' has no role (a guest): outside every hierarchy",
                                a.id()
                            ),
                            (_, None) => format!(
                                "owner '{owner_id}' has no role (a guest): outside every hierarchy"
                            ),
                            (Some(sr), Some(or)) => {
                                refs.push(refer("role", &sr, "role"));
                                refs.push(refer("role", &or, "role"));
                                if level > AccessLevel::None {
                                    format!(
                                        "'{}' (role '{sr}') is above owner '{owner_id}' (role '{or}')",
                                        a.id()
                                    )
                                } else {
                                    format!(
                                        "'{}' (role '{sr}') is not above owner '{owner_id}' (role '{or}')",
                                        a.id()
                                    )
                                }
                            }
                        }
                    }
                }
            }
        };
        let mut step = TraceStep::path(Reason::Hierarchy, level, detail);
        step.refs = refs;
        out.push(step);
    }
}

/// Leads of a group that owns the record, holds the owning group nested in
/// it, or has the owning user among its expanded members: READ_WRITE
/// (`TEAM_LEAD`).
pub(crate) struct TeamLead;

impl TeamLead {
    fn holds<X: Expand + ?Sized>(a: &Asker<'_, X>, g: GroupIx, owner: Owner) -> bool {
        match owner {
            Owner::Group(h) => a.x.holds_group(a.org, g, h),
            Owner::User(o) => a.x.is_member(a.org, g, o),
        }
    }
}

impl Path for TeamLead {
    fn ceiling<X: Expand + ?Sized>(&self, a: &Asker<'_, X>) -> AccessLevel {
        // The hot line's flag: the `leads` vector lies in another line.
        if !a.hot.leads() {
            AccessLevel::None
        } else {
            AccessLevel::ReadWrite
        }
    }

    fn reason(&self, _r: &RecordView<'_>) -> Reason {
        Reason::TeamLead
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        _floor: AccessLevel,
    ) -> AccessLevel {
        if a.leads().iter().any(|g| Self::holds(a, *g, r.owner)) {
            AccessLevel::ReadWrite
        } else {
            AccessLevel::None
        }
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, required: AccessLevel, plan: &mut Plan) {
        if required > AccessLevel::ReadWrite {
            return;
        }
        for g in a.leads() {
            plan.owners
                .extend(a.x.group_nested(a.org, *g).iter().map(|h| Owner::Group(*h)));
            plan.owners
                .extend(a.x.group_members(a.org, *g).iter().map(|u| Owner::User(*u)));
        }
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        let owner = owner_words(a.org, r.owner);
        let holding: Vec<GroupIx> = a
            .leads()
            .iter()
            .copied()
            .filter(|g| Self::holds(a, *g, r.owner))
            .collect();
        for g in &holding {
            let level = AccessLevel::ReadWrite;
            out.push(
                TraceStep::path(
                    Reason::TeamLead,
                    level,
                    format!(
                        "'{}' leads group '{}', which holds owner {owner}: gives {}{}",
                        a.id(),
                        a.org.group_id(*g),
                        level.as_str(),
                        short_of(level, need)
                    ),
                )
                .refer(a.subject_ref())
                .refer(refer("group", a.org.group_id(*g), "led_group"))
                .refer(owner_ref(a.org, r.owner, "owner")),
            );
        }
        if !holding.is_empty() {
            return;
        }
        let detail = if a.leads().is_empty() {
            format!("'{}' leads no group", a.id())
        } else {
            format!(
                "'{}' leads {}, none of which holds owner {owner}",
                a.id(),
                quoted(a.leads().iter().map(|g| a.org.group_id(*g)))
            )
        };
        let mut step = TraceStep::path(Reason::TeamLead, AccessLevel::None, detail)
            .refer(a.subject_ref())
            .refer(owner_ref(a.org, r.owner, "owner"));
        for g in a.leads() {
            step = step.refer(refer("group", a.org.group_id(*g), "led_group"));
        }
        if need.required <= AccessLevel::ReadWrite && a.hot.kind() == UserKind::Member {
            let what = match r.owner {
                Owner::Group(_) => format!("lead of {owner} or of a group it is nested in"),
                Owner::User(_) => format!("lead of a group whose members include {owner}"),
            };
            step = step.missing(
                what,
                AccessLevel::ReadWrite,
                vec![owner_ref(a.org, r.owner, "owner")],
            );
        }
        out.push(step);
    }
}

/// The module's organization-wide default, for members and non-private
/// records (`ORG_DEFAULT`).
pub(crate) struct OrgDefault;

const PRIVATE_RECORD: &str = "record is private: org default and sharing rules do not apply";

impl Path for OrgDefault {
    fn ceiling<X: Expand + ?Sized>(&self, a: &Asker<'_, X>) -> AccessLevel {
        if a.hot.kind() == UserKind::Member {
            a.module.def.owd.level()
        } else {
            AccessLevel::None
        }
    }

    fn reason(&self, _r: &RecordView<'_>) -> Reason {
        Reason::OrgDefault
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        _floor: AccessLevel,
    ) -> AccessLevel {
        if r.private {
            AccessLevel::None
        } else {
            self.ceiling(a)
        }
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, required: AccessLevel, plan: &mut Plan) {
        plan.public_non_private |= self.ceiling(a) >= required;
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        let level = self.level(a, r, AccessLevel::None);
        let owd = owd_word(a.module.def.owd);
        let module = &a.module.def.id;
        let detail = if a.hot.kind() == UserKind::Guest {
            format!(
                "'{}' is a guest: organization-wide defaults do not apply to guests",
                a.id()
            )
        } else if r.private {
            PRIVATE_RECORD.to_string()
        } else if level == AccessLevel::None {
            format!("module '{module}' defaults to {owd}: gives nothing")
        } else {
            format!(
                "module '{module}' defaults to {owd}: gives {}{}",
                level.as_str(),
                short_of(level, need)
            )
        };
        out.push(
            TraceStep::path(Reason::OrgDefault, level, detail)
                .refer(a.subject_ref())
                .refer(a.module_ref()),
        );
    }
}

/// Sharing rules and criteria rules of the module, for non-private records
/// (`SHARING_RULE`).
pub(crate) struct SharingRules;

impl SharingRules {
    /// Whether a rule's `from` set or criteria select the record.
    fn matches<X: Expand + ?Sized>(a: &Asker<'_, X>, rule: &Rule, r: &RecordView<'_>) -> bool {
        Self::selects(a, rule.from, &rule.criteria, r)
    }

    fn selects<X: Expand + ?Sized>(
        a: &Asker<'_, X>,
        from: Option<MemberSetIx>,
        criteria: &Attributes,
        r: &RecordView<'_>,
    ) -> bool {
        match from {
            Some(from) => owner_in(a.org, a.x, from, r.owner),
            None => r.attributes.has_all(criteria, a.module.records.terms()),
        }
    }

    /// Raises `level` to the best rule of `entries` (sorted by access,
    /// highest first) that selects the record and beats `floor`.
    fn best_of<X: Expand + ?Sized>(
        a: &Asker<'_, X>,
        entries: &[RuleEntry],
        r: &RecordView<'_>,
        floor: AccessLevel,
        level: &mut AccessLevel,
    ) {
        for e in entries {
            if e.access <= floor.max(*level) {
                // The rest give no more.
                return;
            }
            if Self::selects(a, e.from, &e.criteria, r) {
                *level = e.access;
                return;
            }
        }
    }

    /// The rule in a sentence: `sharing rule 'r1' (from role 'sales' to group 'desk', READ)`.
    fn words(org: &OrgState, rule: &Rule) -> String {
        let from = match rule.from {
            Some(from) => format!("from {}", words(&set_ref(org, from, "from"))),
            None => {
                // Criteria are interned in their module's terms; named in
                // name order, as written.
                let mut named: Vec<String> = org
                    .rule_modules
                    .get(&rule.def.id)
                    .and_then(|m| org.module(*m))
                    .map(|m| {
                        rule.criteria
                            .named(m.records.terms())
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect()
                    })
                    .unwrap_or_default();
                named.sort_unstable();
                format!("records with {}", named.join(", "))
            }
        };
        format!(
            "sharing rule '{}' ({from} to {}, {})",
            rule.def.id,
            words(&set_ref(org, rule.to, "to")),
            rule.def.access.as_str()
        )
    }

    fn refs(org: &OrgState, rule: &Rule) -> Vec<TraceRef> {
        let mut refs = vec![refer("sharing_rule", &rule.def.id, "rule")];
        if let Some(from) = rule.from {
            refs.push(set_ref(org, from, "from"));
        }
        refs.push(set_ref(org, rule.to, "to"));
        refs
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
        (MemberSetIx::Role(r), Owner::User(o)) => org.user_role(o) == Some(r),
        (MemberSetIx::RoleAndSubordinates(r), Owner::User(o)) => {
            org.user_role(o).is_some_and(|or| org.role_within(or, r))
        }
        (MemberSetIx::Group(g), Owner::User(o)) => x.is_member(org, g, o),
        (MemberSetIx::Group(g), Owner::Group(h)) => x.holds_group(org, g, h),
        (MemberSetIx::Role(_) | MemberSetIx::RoleAndSubordinates(_), Owner::Group(_)) => false,
    }
}

/// The owners a rule's `from` set shares.
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

impl Path for SharingRules {
    fn ceiling<X: Expand + ?Sized>(&self, a: &Asker<'_, X>) -> AccessLevel {
        if a.module.rules.is_empty() {
            AccessLevel::None
        } else {
            // Rules give READ or READ_WRITE.
            AccessLevel::ReadWrite
        }
    }

    fn reason(&self, _r: &RecordView<'_>) -> Reason {
        Reason::SharingRule
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        floor: AccessLevel,
    ) -> AccessLevel {
        let mut level = AccessLevel::None;
        if r.private {
            return level;
        }
        // Only the rules whose `to` set holds the subject: those to its
        // role, to a role-and-subordinates root at or above its role, and
        // to one of its groups.
        let index = &a.module.recipients;
        if let Some(role) = a.hot.role() {
            if let Some(entries) = index.role.get(&role) {
                Self::best_of(a, entries, r, floor, &mut level);
            }
            if !index.role_and_subordinates.is_empty() {
                for top in a.role_chain() {
                    if let Some(entries) = index.role_and_subordinates.get(top) {
                        Self::best_of(a, entries, r, floor, &mut level);
                    }
                }
            }
        }
        // The subject's groups are fetched only if a rule to a group could
        // still raise the level; then they are walked against the index
        // (both sorted) from the smaller side: a user is in a few groups,
        // a module's rules reach a dozen, and a binary search of the
        // subject's groups per indexed group was a fifth of a denied check.
        let bar = floor.max(level);
        if index
            .group
            .iter()
            .any(|(_, entries)| entries.first().is_some_and(|e| e.access > bar))
        {
            let groups = a.groups();
            if groups.len() <= index.group.len() {
                for g in groups {
                    if let Ok(pos) = index.group.binary_search_by_key(g, |(k, _)| *k) {
                        Self::best_of(a, &index.group[pos].1, r, floor, &mut level);
                    }
                }
            } else {
                for (g, entries) in &index.group {
                    if a.in_group(*g) {
                        Self::best_of(a, entries, r, floor, &mut level);
                    }
                }
            }
        }
        level
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, required: AccessLevel, plan: &mut Plan) {
        let mut criteria_rules = Vec::new();
        for rule in a.module.rules.values() {
            if rule.def.access < required || !a.in_set(rule.to) {
                continue;
            }
            match rule.from {
                // The organization-wide default already selects every
                // non-private record.
                Some(from) if !plan.public_non_private => {
                    add_rule_owners(a.org, a.x, from, &mut plan.owners_non_private);
                }
                Some(_) => {}
                None => criteria_rules.push(rule),
            }
        }
        if criteria_rules.is_empty() || plan.public_non_private {
            return;
        }
        for (_, record) in a.module.records.iter() {
            let view = RecordView::stored(a.module, record);
            if !record.private
                && criteria_rules
                    .iter()
                    .any(|rule| Self::matches(a, rule, &view))
                && !plan.covers(record.owner, record.private)
            {
                plan.record_ids.insert(Arc::from(record.id()));
            }
        }
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        let module = &a.module.def.id;
        if r.private {
            out.push(
                TraceStep::path(
                    Reason::SharingRule,
                    AccessLevel::None,
                    PRIVATE_RECORD.into(),
                )
                .refer(refer("record", r.id, "record")),
            );
            return;
        }
        if a.module.rules.is_empty() {
            out.push(
                TraceStep::path(
                    Reason::SharingRule,
                    AccessLevel::None,
                    format!("module '{module}' has no sharing rules"),
                )
                .refer(a.module_ref()),
            );
            return;
        }
        let mut reaching = 0;
        let mut best = AccessLevel::None;
        for rule in a.module.rules.values().filter(|rule| a.in_set(rule.to)) {
            reaching += 1;
            let rule_words = Self::words(a.org, rule);
            let step = if Self::matches(a, rule, r) {
                let level = rule.def.access;
                best = best.max(level);
                TraceStep::path(
                    Reason::SharingRule,
                    level,
                    format!(
                        "{rule_words} shares the record with '{}': gives {}{}",
                        a.id(),
                        level.as_str(),
                        short_of(level, need)
                    ),
                )
            } else {
                let why = match rule.from {
                    Some(_) => format!(
                        "owner {} is not in its from set",
                        owner_words(a.org, r.owner)
                    ),
                    None => "the record's attributes do not match its criteria".to_string(),
                };
                TraceStep::path(
                    Reason::SharingRule,
                    AccessLevel::None,
                    format!(
                        "{rule_words} reaches '{}' but not this record: {why}",
                        a.id()
                    ),
                )
            };
            let mut step = step.refer(a.subject_ref());
            step.refs.extend(Self::refs(a.org, rule));
            out.push(step);
        }
        if best >= need.required {
            return;
        }
        // Rules that share this record with others: joining their `to` set
        // is what would grant access through this path.
        let granting = a.module.rules.values().find(|rule| {
            !a.in_set(rule.to) && rule.def.access >= need.required && Self::matches(a, rule, r)
        });
        let detail = if reaching == 0 {
            format!("no sharing rule of '{module}' reaches '{}'", a.id())
        } else {
            format!("no other sharing rule of '{module}' reaches '{}'", a.id())
        };
        let mut step = TraceStep::path(Reason::SharingRule, AccessLevel::None, detail)
            .refer(a.subject_ref())
            .refer(a.module_ref());
        if let Some(rule) = granting {
            let to = set_ref(a.org, rule.to, "to");
            step = step.missing(
                format!(
                    "membership of {} ({} gives {})",
                    words(&to),
                    format_args!("sharing rule '{}'", rule.def.id),
                    rule.def.access.as_str()
                ),
                rule.def.access,
                vec![to, refer("sharing_rule", &rule.def.id, "rule")],
            );
        }
        out.push(step);
    }
}

/// Manual shares of the record whose grantee includes the subject
/// (`MANUAL_SHARE`).
pub(crate) struct ManualShares;

impl ManualShares {
    /// Every grantee that includes the subject.
    fn grantees<X: Expand + ?Sized>(a: &Asker<'_, X>) -> Vec<GranteeIx> {
        let mut out = vec![GranteeIx::User(a.ix)];
        out.extend(a.groups().iter().map(|g| GranteeIx::Group(*g)));
        if let Some(r) = a.hot.role() {
            out.push(GranteeIx::Role(r));
            out.push(GranteeIx::RoleAndSubordinates(r));
            out.extend(
                a.org
                    .role_ancestors(r)
                    .into_iter()
                    .map(GranteeIx::RoleAndSubordinates),
            );
        }
        out
    }
}

impl Path for ManualShares {
    fn ceiling<X: Expand + ?Sized>(&self, _a: &Asker<'_, X>) -> AccessLevel {
        AccessLevel::Full
    }

    fn reason(&self, _r: &RecordView<'_>) -> Reason {
        Reason::ManualShare
    }

    fn level<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        floor: AccessLevel,
    ) -> AccessLevel {
        let mut level = AccessLevel::None;
        for share in r.shares {
            if share.level > floor.max(level) && a.is_grantee(share.grantee) {
                level = share.level;
            }
        }
        level
    }

    fn cover<X: Expand + ?Sized>(&self, a: &Asker<'_, X>, required: AccessLevel, plan: &mut Plan) {
        for grantee in Self::grantees(a) {
            let Some(shared) = a.org.shares_by_grantee.get(&grantee) else {
                continue;
            };
            for (m, ix) in shared {
                if *m != a.module_ix {
                    continue;
                }
                let Some(record) = a.module.records.at(*ix) else {
                    continue;
                };
                let qualifies = record
                    .shares
                    .iter()
                    .any(|sh| sh.grantee == grantee && sh.level >= required);
                if qualifies && !plan.covers(record.owner, record.private) {
                    plan.record_ids.insert(Arc::from(record.id()));
                }
            }
        }
    }

    fn explain<X: Expand + ?Sized>(
        &self,
        a: &Asker<'_, X>,
        r: &RecordView<'_>,
        need: &Need<'_>,
        out: &mut Vec<TraceStep>,
    ) {
        let module = &a.module.def.id;
        if r.shares.is_empty() {
            let stored = if r.described { " stored for" } else { " on" };
            out.push(
                TraceStep::path(
                    Reason::ManualShare,
                    AccessLevel::None,
                    format!("no manual shares{stored} '{module}/{}'", r.id),
                )
                .refer(refer("record", r.id, "record")),
            );
            return;
        }
        let mut best = AccessLevel::None;
        let mut others: Vec<TraceRef> = Vec::new();
        let mut granting: Option<(TraceRef, AccessLevel)> = None;
        for share in r.shares {
            let grantee = grantee_ref(a.org, share.grantee, "grantee");
            if a.is_grantee(share.grantee) {
                best = best.max(share.level);
                let mut step = TraceStep::path(
                    Reason::ManualShare,
                    share.level,
                    format!(
                        "share to {} gives {}{}",
                        words(&grantee),
                        share.level.as_str(),
                        short_of(share.level, need)
                    ),
                )
                .refer(a.subject_ref())
                .refer(grantee.clone());
                if share.level < need.required {
                    step = step.missing(
                        format!(
                            "a share of {} to {}",
                            need.required.as_str(),
                            words(&grantee)
                        ),
                        need.required,
                        vec![grantee],
                    );
                }
                out.push(step);
            } else {
                let joinable = !matches!(share.grantee, GranteeIx::User(_));
                if joinable && share.level >= need.required && granting.is_none() {
                    granting = Some((grantee.clone(), share.level));
                }
                others.push(grantee);
            }
        }
        if others.is_empty() || best >= need.required {
            return;
        }
        let mut step = TraceStep::path(
            Reason::ManualShare,
            AccessLevel::None,
            format!(
                "shares to {} do not include '{}'",
                others.iter().map(words).collect::<Vec<_>>().join(", "),
                a.id()
            ),
        )
        .refer(a.subject_ref());
        step.refs.extend(others);
        if let Some((grantee, level)) = granting {
            step = step.missing(
                format!(
                    "membership of {} (its share gives {})",
                    words(&grantee),
                    level.as_str()
                ),
                level,
                vec![grantee],
            );
        }
        out.push(step);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use crate::cache::Cached;
    use crate::engine::model::Reason;
    use crate::engine::{CheckRequest, Direct, Engine, Expand};

    /// Two rules to groups in Leads; `erin` is in one group (fewer than
    /// the rules' groups: her groups are walked against the index), `zoe`
    /// in three (more: the index is walked against her groups), each
    /// reached by the rule to the group listed last among hers.
    fn engine<X: Expand>(x: X) -> Engine<X> {
        crate::engine::engine_of(
            x,
            r#"
organization: t
modules:
  - {id: Leads, owd: PRIVATE}
profiles:
  - id: rep
    modules: {Leads: [view, edit]}
roles:
  - {id: staff, profiles: [rep]}
users:
  - {id: owner, role: staff}
  - {id: erin, role: staff}
  - {id: zoe, role: staff}
groups:
  - {id: a-none, users: [zoe]}
  - {id: b-none, users: [zoe]}
  - {id: c-desk, users: [erin, zoe]}
  - {id: d-other, users: [owner]}
sharing_rules:
  - {id: to-desk, module: Leads, from: {role: staff}, to: {group: c-desk}, access: READ}
  - {id: to-other, module: Leads, from: {role: staff}, to: {group: d-other}, access: READ_WRITE}
records:
  - {module: Leads, id: L1, owner: {user: owner}}
"#,
        )
    }

    fn decided<X: Expand>(e: &Engine<X>, subject: &str, action: &str) -> (bool, Reason) {
        let req = CheckRequest {
            subject: subject.into(),
            module: "Leads".into(),
            action: action.into(),
            record: Some("L1".into()),
            ..CheckRequest::default()
        };
        let d = e.check("t", &req, Utc::now()).unwrap().0;
        (d.allowed, d.reason)
    }

    #[test]
    fn group_rules_reach_subjects_in_fewer_and_in_more_groups_than_the_index() {
        let cached = engine(Cached::default());
        let direct = engine(Direct);
        for subject in ["erin", "zoe"] {
            for e in [
                &decided(&cached, subject, "view"),
                &decided(&direct, subject, "view"),
            ] {
                assert_eq!(*e, (true, Reason::SharingRule), "{subject} view");
            }
            // The READ_WRITE rule goes to a group neither is in.
            assert_eq!(
                decided(&cached, subject, "edit"),
                (false, Reason::InsufficientAccess),
                "{subject} edit"
            );
        }
    }
}
