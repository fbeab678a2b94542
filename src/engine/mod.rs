//! The decision engine: every organization's compiled policy in memory,
//! decisions and derived answers over it, and the planning and applying of
//! writes. It knows nothing of gRPC, SQL or the network; it is synchronous.

pub mod apply;
pub mod authz;
pub mod change;
pub mod decision;
pub(crate) mod described;
pub mod document;
pub mod error;
pub mod expand;
pub mod explain;
pub mod hot;
pub mod ids;
pub mod lookup;
pub mod model;
pub mod org;
pub mod password;
pub(crate) mod paths;
pub mod plan;
pub(crate) mod prefetch;
pub mod records;
pub mod report;
pub mod shifts;
pub mod simulate;
pub(crate) mod slot_table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

pub use authz::Writer;
pub use change::Change;
pub use decision::{CheckRequest, Decision, Now};
pub use document::OrgDocument;
pub use error::{Error, Result};
pub use expand::{Direct, Expand, Invalidation};
pub use explain::{Missing, Outcome, TraceRef, TraceStep};
pub use lookup::{FieldsAnswer, FieldsQuery, FilterPlan};
pub use org::OrgState;
pub use plan::{Command, ImportPlan, Limits, MovedBulk};
pub use report::{EntityRef, WriteReport};
pub use simulate::{SimWrite, SimulateOptions, Simulation};

/// One organization behind its lock: readers decide, a writer applies.
#[derive(Debug)]
pub struct Org {
    state: RwLock<OrgState>,
}

/// The engine over every organization, with `X` supplying expanded
/// memberships (directly, or through a cache).
pub struct Engine<X: Expand = Direct> {
    orgs: RwLock<FxHashMap<Arc<str>, Arc<Org>>>,
    expand: X,
    limits: Limits,
    generation: AtomicU64,
    writer: Mutex<()>,
}

/// A user as `GetUser` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// The user as written.
    pub user: model::UserDef,
    /// Expanded groups, sorted.
    pub groups: Vec<String>,
    /// Effective profiles (own, then the role's), without repeats.
    pub effective_profiles: Vec<String>,
}

/// Settings and sizes of an organization, for `GetOrganization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSummary {
    /// Settings.
    pub settings: model::Settings,
    /// Users.
    pub users: usize,
    /// Roles.
    pub roles: usize,
    /// Groups.
    pub groups: usize,
    /// Modules.
    pub modules: usize,
    /// Records across modules.
    pub records: usize,
}

/// A group as `GetGroup` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The group as written.
    pub group: model::GroupDef,
    /// Expanded members, sorted.
    pub members: Vec<String>,
}

impl<X: Expand> Engine<X> {
    /// An engine with no organizations.
    pub fn new(expand: X, limits: Limits) -> Self {
        Engine {
            orgs: RwLock::new(FxHashMap::default()),
            expand,
            limits,
            generation: AtomicU64::new(1),
            writer: Mutex::new(()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The source of expanded memberships.
    pub fn expander(&self) -> &X {
        &self.expand
    }

    fn org(&self, org_id: &str) -> Option<Arc<Org>> {
        self.orgs.read().get(org_id).cloned()
    }

    /// Checks the id rule on an `org_id` a request names, so that an empty
    /// or malformed id is bad input rather than an unknown organization.
    pub fn check_org_id(&self, org_id: &str) -> Result<()> {
        ids::check_id("org_id", org_id, self.limits.id_length)
    }

    /// Runs `f` over an organization's policy under its read lock.
    pub fn read<R>(&self, org_id: &str, f: impl FnOnce(&OrgState, &X) -> R) -> Result<R> {
        // Every stored organization's id passed the id rule when it was
        // created, so the rule is checked only when the look-up misses: a
        // malformed id is still bad input rather than an unknown
        // organization, and a warm check does not re-validate its org id.
        let Some(org) = self.org(org_id) else {
            self.check_org_id(org_id)?;
            return Err(Error::not_found("organization", org_id, "org_id"));
        };
        let state = org.state.read();
        Ok(f(&state, &self.expand))
    }

    /// [`Engine::read`] for Check and CheckBulk: the organization map's
    /// read lock is held while `f` runs instead of cloning the
    /// organization's `Arc` (two atomic writes on a shared counter per
    /// check). `f` must not read the map again (a queued writer would
    /// block it): the decision code never does.
    fn read_for_checks<R>(&self, org_id: &str, f: impl FnOnce(&OrgState, &X) -> R) -> Result<R> {
        let orgs = self.orgs.read();
        let Some(org) = orgs.get(org_id) else {
            drop(orgs);
            self.check_org_id(org_id)?;
            return Err(Error::not_found("organization", org_id, "org_id"));
        };
        let state = org.state.read();
        Ok(f(&state, &self.expand))
    }

    /// The organization's revision, if it exists.
    pub fn revision(&self, org_id: &str) -> Option<u64> {
        self.org(org_id).map(|o| o.state.read().revision)
    }

    /// Every organization id, sorted.
    pub fn org_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.orgs.read().keys().map(|k| k.to_string()).collect();
        ids.sort();
        ids
    }

    /// `Check`: the decision and the revision it was made at. `now` is an
    /// instant or [`Now::Clock`] (the clock read only if a shift is
    /// evaluated); the request's own `at` takes its place.
    pub fn check(
        &self,
        org_id: &str,
        req: &CheckRequest,
        now: impl Into<Now>,
    ) -> Result<(Decision, u64)> {
        let now = now.into();
        if let Some(d) = &req.described {
            described::check_description(req.record.as_deref(), d, &self.limits)?;
        }
        self.read_for_checks(org_id, |org, x| {
            decision::check(org, x, req, now).map(|d| (d, org.revision))
        })?
    }

    /// Checks of one organization, each decided as [`Engine::check`]
    /// decides it, under one look-up and one read lock of the
    /// organization (CheckBulk: not one per check), so that all are
    /// decided at the one revision returned. Stops at the first check that
    /// fails, returning its position in `reqs` with the error; an unknown
    /// or malformed organization is the error of the first check.
    pub fn check_many(
        &self,
        org_id: &str,
        reqs: &[&CheckRequest],
        now: DateTime<Utc>,
    ) -> std::result::Result<(Vec<Decision>, u64), (usize, Error)> {
        // Descriptions are checked before the read, as `check` does; only
        // those before a failing one can be answered anyway.
        let bad_description = reqs.iter().enumerate().find_map(|(i, req)| {
            let d = req.described.as_ref()?;
            described::check_description(req.record.as_deref(), d, &self.limits)
                .err()
                .map(|e| (i, e))
        });
        let bad_description = match bad_description {
            // The first check fails before its organization is read.
            Some((0, e)) => return Err((0, e)),
            other => other,
        };
        let limit = bad_description.as_ref().map_or(reqs.len(), |(i, _)| *i);
        let decided = self
            .read_for_checks(org_id, |org, x| {
                let mut out = Vec::with_capacity(limit);
                // Pipelined: the id index's entry of the check `AHEAD`
                // on is prefetched from its id's hash, and the next
                // check's slot from its entry (which has arrived by then),
                // so a batch's record misses overlap instead of following
                // one another. Only hints: each check below decides alone,
                // in SPEC order, as `check` does.
                let mut ahead: [Option<(&records::Records, u64)>; RING] = [None; RING];
                let mut modules = Vec::new();
                for (i, req) in reqs.iter().take(limit).enumerate().take(AHEAD) {
                    ahead[i % RING] = record_look_up(org, &mut modules, req);
                    if let Some((records, hash)) = ahead[i % RING] {
                        records.prefetch_entry(hash);
                    }
                }
                for (i, req) in reqs.iter().take(limit).enumerate() {
                    if let Some(later) = reqs.get(i + AHEAD).filter(|_| i + AHEAD < limit) {
                        let look_up = record_look_up(org, &mut modules, later);
                        if let Some((records, hash)) = look_up {
                            records.prefetch_entry(hash);
                        }
                        ahead[(i + AHEAD) % RING] = look_up;
                    }
                    if let Some((records, hash)) = ahead[(i + 1) % RING] {
                        if i + 1 < limit {
                            records.prefetch_slot(hash);
                        }
                    }
                    match decision::check(org, x, req, Now::At(now)) {
                        Ok(d) => out.push(d),
                        Err(e) => return Err((i, e)),
                    }
                }
                Ok((out, org.revision))
            })
            .map_err(|e| (0, e))??;
        match bad_description {
            Some(failed) => Err(failed),
            None => Ok(decided),
        }
    }

    /// `CheckFields`: a description stands for the record named, as in `Check`.
    pub fn check_fields(
        &self,
        org_id: &str,
        q: &FieldsQuery<'_>,
        at: DateTime<Utc>,
    ) -> Result<(FieldsAnswer, u64)> {
        if let Some(d) = q.described {
            described::check_description(q.record, d, &self.limits)?;
        }
        self.read(org_id, |org, x| {
            lookup::check_fields(org, x, q, at).map(|a| (a, org.revision))
        })?
    }

    /// `Filter`.
    pub fn filter(
        &self,
        org_id: &str,
        subject: &str,
        module: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<(FilterPlan, u64)> {
        self.read(org_id, |org, x| {
            lookup::filter(org, x, subject, module, action, at).map(|p| (p, org.revision))
        })?
    }

    /// `LookupRecords`: every record id, sorted, at one revision.
    pub fn lookup_records(
        &self,
        org_id: &str,
        subject: &str,
        module: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<(Vec<Arc<str>>, u64)> {
        let (set, revision) = self.lookup_record_set(org_id, subject, module, action, at)?;
        Ok((set.to_vec(), revision))
    }

    /// `LookupRecords` for paging: the ids copied out under the read lock,
    /// put in order as pages are asked for ([`lookup::RecordSet`]).
    pub fn lookup_record_set(
        &self,
        org_id: &str,
        subject: &str,
        module: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<(lookup::RecordSet, u64)> {
        self.read(org_id, |org, x| {
            lookup::record_set(org, x, subject, module, action, at).map(|r| (r, org.revision))
        })?
    }

    /// `LookupSubjects`.
    pub fn lookup_subjects(
        &self,
        org_id: &str,
        module: &str,
        record: &str,
        action: &str,
        on_shift_at: Option<DateTime<Utc>>,
    ) -> Result<(Vec<String>, u64)> {
        self.read(org_id, |org, x| {
            lookup::lookup_subjects(org, x, module, record, action, on_shift_at)
                .map(|s| (s, org.revision))
        })?
    }

    /// `ValidatePassword` for a user of the organization.
    pub fn validate_password(
        &self,
        org_id: &str,
        user_id: &str,
        password: &str,
        set_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<password::PasswordVerdict> {
        self.read(org_id, |org, _| {
            let (_, user) = org
                .users
                .by_id(user_id)
                .ok_or_else(|| Error::not_found("user", user_id, "user_id"))?;
            Ok(password::validate_password(
                org.settings.password_policy.as_ref(),
                &user.def.principal,
                password,
                set_at,
                now,
            ))
        })?
    }

    /// `GetUser`: the user with its expanded groups.
    pub fn user_view(&self, org_id: &str, user_id: &str) -> Result<(UserView, u64)> {
        self.read(org_id, |org, x| {
            let (ix, user) = org
                .users
                .by_id(user_id)
                .ok_or_else(|| Error::not_found("user", user_id, "user_id"))?;
            let groups = x
                .user_groups(org, org::UserIx(ix))
                .iter()
                .map(|g| org.group_id(*g).to_string())
                .collect();
            let mut effective_profiles: Vec<String> = Vec::new();
            let hot = org.hot.get(org::UserIx(ix)).unwrap_or(org::UserHot::ABSENT);
            for p in org.effective_profiles(hot) {
                if !effective_profiles.contains(&p.def.id) {
                    effective_profiles.push(p.def.id.clone());
                }
            }
            Ok((
                UserView {
                    user: user.def.clone(),
                    groups,
                    effective_profiles,
                },
                org.revision,
            ))
        })?
    }

    /// `GetGroup`: the group with its expanded members.
    pub fn group_view(&self, org_id: &str, group_id: &str) -> Result<(GroupView, u64)> {
        self.read(org_id, |org, x| {
            let (ix, group) = org
                .groups
                .by_id(group_id)
                .ok_or_else(|| Error::not_found("group", group_id, "group_id"))?;
            let members = x
                .group_members(org, org::GroupIx(ix))
                .iter()
                .map(|u| org.user_id(*u).to_string())
                .collect();
            Ok((
                GroupView {
                    group: group.def.clone(),
                    members,
                },
                org.revision,
            ))
        })?
    }

    /// Every user as written, sorted by id.
    pub fn users(&self, org_id: &str) -> Result<(Vec<model::UserDef>, u64)> {
        self.read(org_id, |org, _| {
            let mut v: Vec<_> = org.users.iter().map(|(_, u)| u.def.clone()).collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            (v, org.revision)
        })
    }

    /// Every role as written, parents before children.
    pub fn roles(&self, org_id: &str) -> Result<(Vec<model::RoleDef>, u64)> {
        self.read(org_id, |org, _| {
            let roles = org.roles.iter().map(|(_, r)| r.def.clone()).collect();
            let sorted = document::topo_sorted(
                roles,
                |r| r.id.clone(),
                |r| r.parent.iter().cloned().collect(),
            );
            (sorted, org.revision)
        })
    }

    /// Every group as written, sorted by id.
    pub fn groups(&self, org_id: &str) -> Result<(Vec<model::GroupDef>, u64)> {
        self.read(org_id, |org, _| {
            let mut v: Vec<_> = org.groups.iter().map(|(_, g)| g.def.clone()).collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            (v, org.revision)
        })
    }

    /// Every sharing rule as written, sorted by id.
    pub fn sharing_rules(&self, org_id: &str) -> Result<(Vec<model::SharingRuleDef>, u64)> {
        self.read(org_id, |org, _| {
            let mut v: Vec<_> = org
                .modules
                .iter()
                .flat_map(|(_, m)| m.rules.values().map(|r| r.def.clone()))
                .collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            (v, org.revision)
        })
    }

    /// Every module as written, sorted by id (the console's module list).
    pub fn modules(&self, org_id: &str) -> Result<(Vec<model::ModuleDef>, u64)> {
        self.read(org_id, |org, _| {
            let mut v: Vec<_> = org.modules.iter().map(|(_, m)| m.def.clone()).collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            (v, org.revision)
        })
    }

    /// Up to `limit` record ids of a module starting with `prefix`, sorted,
    /// and whether more matched (a module may hold a million records: a
    /// picker asks for a page by prefix, never for all).
    pub fn record_ids(
        &self,
        org_id: &str,
        module_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<(Vec<String>, bool, u64)> {
        self.read(org_id, |org, _| {
            let (_, module) = org
                .modules
                .by_id(module_id)
                .ok_or_else(|| Error::not_found("module", module_id, "module"))?;
            let mut ids: Vec<&str> = module
                .records
                .iter()
                .map(|(_, r)| r.id())
                .filter(|id| id.starts_with(prefix))
                .collect();
            ids.sort_unstable();
            let more = ids.len() > limit;
            ids.truncate(limit);
            Ok((
                ids.into_iter().map(str::to_string).collect(),
                more,
                org.revision,
            ))
        })?
    }

    /// The users a sharing rule's `from` or `to` set stands for, sorted
    /// (a role's users, with its subordinates' for `role_and_subordinates`,
    /// a group's expanded members), and for a group the groups nested in
    /// it, whose records a `from` group also shares.
    pub fn member_set_reach(
        &self,
        org_id: &str,
        set: &model::MemberSet,
    ) -> Result<(Vec<String>, Vec<String>)> {
        self.read(org_id, |org, x| {
            let Some(resolved) = org.resolve_member_set(set) else {
                return (Vec::new(), Vec::new());
            };
            let mut users: Vec<String> = Vec::new();
            let mut groups: Vec<String> = Vec::new();
            match resolved {
                org::MemberSetIx::Role(r) => {
                    if let Some(role) = org.role(r) {
                        users.extend(role.users.iter().map(|u| org.user_id(*u).to_string()));
                    }
                }
                org::MemberSetIx::RoleAndSubordinates(r) => {
                    for sub in x.role_subtree(org, r).iter() {
                        if let Some(role) = org.role(*sub) {
                            users.extend(role.users.iter().map(|u| org.user_id(*u).to_string()));
                        }
                    }
                }
                org::MemberSetIx::Group(g) => {
                    users.extend(
                        x.group_members(org, g)
                            .iter()
                            .map(|u| org.user_id(*u).to_string()),
                    );
                    groups.extend(
                        x.group_nested(org, g)
                            .iter()
                            .map(|h| org.group_id(*h).to_string()),
                    );
                }
            }
            users.sort();
            users.dedup();
            groups.sort();
            (users, groups)
        })
    }

    /// The manual shares of one record.
    pub fn shares(
        &self,
        org_id: &str,
        module: &str,
        record: &str,
    ) -> Result<(Vec<model::ShareDef>, u64)> {
        self.read(org_id, |org, _| {
            let (_, m) = org
                .modules
                .by_id(module)
                .ok_or_else(|| Error::not_found("module", module, "module"))?;
            let r = m.records.get(record).ok_or_else(|| {
                Error::not_found("record", format!("{module}/{record}"), "record_id")
            })?;
            let mut v: Vec<model::ShareDef> = r
                .shares
                .iter()
                .map(|s| model::ShareDef {
                    module: module.to_string(),
                    record: record.to_string(),
                    grantee: org.grantee_ref(s.grantee),
                    level: s.level,
                })
                .collect();
            v.sort_by(|a, b| a.grantee.cmp(&b.grantee));
            Ok((v, org.revision))
        })?
    }

    /// Settings and sizes of an organization.
    pub fn summary(&self, org_id: &str) -> Result<(OrgSummary, u64)> {
        self.read(org_id, |org, _| {
            (
                OrgSummary {
                    settings: org.settings.clone(),
                    users: org.users.len(),
                    roles: org.roles.len(),
                    groups: org.groups.len(),
                    modules: org.modules.len(),
                    records: org.record_count(),
                },
                org.revision,
            )
        })
    }

    /// `Export`: the whole organization as a document.
    pub fn export(&self, org_id: &str) -> Result<(OrgDocument, u64)> {
        self.read(org_id, |org, _| (document::export(org), org.revision))
    }

    /// `ListOrganizations`: the organizations where `principal` is a user,
    /// with that user's id (every organization when `principal` is empty).
    pub fn list_organizations(&self, principal: &str) -> Vec<(String, String)> {
        let orgs: Vec<Arc<Org>> = self.orgs.read().values().cloned().collect();
        let mut out: Vec<(String, String)> = orgs
            .iter()
            .filter_map(|o| {
                let state = o.state.read();
                if principal.is_empty() {
                    return Some((state.id.to_string(), String::new()));
                }
                state
                    .principals
                    .get(principal)
                    .map(|u| (state.id.to_string(), state.user_id(*u).to_string()))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether `actor` may carry out `command` in the organization.
    pub fn authorize(
        &self,
        org_id: &str,
        actor: &str,
        admin_scope: bool,
        command: &Command,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.read(org_id, |org, x| {
            authz::authorize(org, x, actor, admin_scope, command, now)
        })?
    }

    /// Validates `command` and plans the changes that carry it out.
    pub fn plan(&self, org_id: &str, command: &Command) -> Result<Vec<Change>> {
        let changes = match self.org(org_id) {
            Some(org) => {
                let state = org.state.read();
                plan::plan(Some(&state), org_id, command, &self.limits)?
            }
            None => plan::plan(None, org_id, command, &self.limits)?,
        };
        self.check_principal_limit(org_id, &changes)?;
        Ok(changes)
    }

    /// [`Engine::plan`] of an Import whose records and shares are left in
    /// `document` for the writer to move into the change list
    /// ([`ImportPlan::take_bulk`]) rather than copy.
    pub fn plan_import(
        &self,
        org_id: &str,
        document: &OrgDocument,
        replace: bool,
    ) -> Result<ImportPlan> {
        let plan = match self.org(org_id) {
            Some(org) => {
                let state = org.state.read();
                plan::plan_import_moving(Some(&state), org_id, document, replace, &self.limits)?
            }
            None => plan::plan_import_moving(None, org_id, document, replace, &self.limits)?,
        };
        // Users are never among the records and shares left out.
        self.check_principal_limit(org_id, &plan.changes)?;
        Ok(plan)
    }

    /// What planned `changes` of a delete remove and move, read against the
    /// organization as it is before they apply (empty for an unknown one).
    pub fn report(&self, org_id: &str, changes: &[Change]) -> WriteReport {
        self.read(org_id, |org, _| report::report(org, changes))
            .unwrap_or_default()
    }

    fn check_principal_limit(&self, org_id: &str, changes: &[Change]) -> Result<()> {
        let limit = self.limits.max_orgs_per_principal;
        if limit == 0 {
            return Ok(());
        }
        for change in changes {
            let Change::PutUser(def) = change else {
                continue;
            };
            let principal = if def.principal.is_empty() {
                &def.id
            } else {
                &def.principal
            };
            let elsewhere = self
                .list_organizations(principal)
                .into_iter()
                .filter(|(o, _)| o != org_id)
                .count();
            if elsewhere + 1 > limit {
                return Err(Error::precondition(format!(
                    "principal '{principal}' is already a user in {elsewhere} organizations (max_orgs_per_principal = {limit})"
                )));
            }
        }
        Ok(())
    }

    /// Applies planned changes as the organization's `revision`, all at
    /// once for readers, and drops what they changed from the expander.
    pub fn apply(&self, org_id: &str, revision: u64, changes: &[Change]) -> Invalidation {
        let mut inv = Invalidation::default();
        let mut rest = changes;
        match changes.first() {
            Some(Change::DeleteOrg) => {
                if let Some(old) = self.orgs.write().remove(org_id) {
                    let state = old.state.read();
                    self.expand.invalidate(&state, &whole());
                }
                return whole();
            }
            Some(Change::CreateOrg(settings)) => {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                let mut fresh = OrgState::new(org_id, generation, revision, settings.clone());
                for change in &changes[1..] {
                    fresh.apply(change, &mut inv);
                }
                fresh.revision = revision;
                // Numbered here, on the writer, so no check pays for it.
                fresh.role_order();
                let new = Arc::new(Org {
                    state: RwLock::new(fresh),
                });
                if let Some(old) = self.orgs.write().insert(Arc::from(org_id), new) {
                    let state = old.state.read();
                    self.expand.invalidate(&state, &whole());
                }
                return whole();
            }
            _ => {}
        }
        let Some(org) = self.org(org_id) else {
            return inv;
        };
        let mut state = org.state.write();
        while let Some((change, tail)) = rest.split_first() {
            state.apply(change, &mut inv);
            rest = tail;
        }
        state.revision = revision;
        // Numbered here, under the write lock, so no check pays for it.
        state.role_order();
        inv.normalize();
        if !inv.is_empty() {
            self.expand.invalidate(&state, &inv);
        }
        inv
    }

    /// Installs a whole organization (loaded from a store at start-up).
    pub fn install(&self, mut state: OrgState) {
        state.generation = self.generation.fetch_add(1, Ordering::Relaxed);
        // Numbered before readers see the state, so no check pays for it.
        state.role_order();
        let id = state.id.clone();
        let new = Arc::new(Org {
            state: RwLock::new(state),
        });
        if let Some(old) = self.orgs.write().insert(id, new) {
            let state = old.state.read();
            self.expand.invalidate(&state, &whole());
        }
    }

    /// `Simulate`: plans `writes` as one batch on a copy of the
    /// organization (each authorized and planned as the real write would
    /// be, against the state the writes before it leave) and compares the
    /// access before and after over what the batch can reach. Nothing is
    /// committed; the live state and its caches are neither changed nor
    /// read through (`Y` supplies fresh expanders for both copies).
    pub fn simulate<Y: Expand + Default>(
        &self,
        org_id: &str,
        writes: &[SimWrite],
        options: &SimulateOptions,
        now: DateTime<Utc>,
    ) -> Result<Simulation> {
        // Without a bound nothing stops the comparison.
        self.simulate_within::<Y>(org_id, writes, options, now, &simulate::Bound::default())?
            .ok_or_else(|| Error::FailedPrecondition("the simulation was stopped".into()))
    }

    /// [`Engine::simulate`] that gives up (`Ok(None)`) when `bound` says so.
    pub fn simulate_within<Y: Expand + Default>(
        &self,
        org_id: &str,
        writes: &[SimWrite],
        options: &SimulateOptions,
        now: DateTime<Utc>,
        bound: &simulate::Bound,
    ) -> Result<Option<Simulation>> {
        simulate::check_request(writes, options, &self.limits)?;
        // The copy is taken under the read lock; the rest runs without it.
        let before = self.read(org_id, |org, _| org.clone())?;
        let (after, changes) = simulate::plan_batch(&before, writes, &self.limits, now, |c| {
            self.check_principal_limit(org_id, c)
        })?;
        if bound.stopped() {
            return Ok(None);
        }
        simulate::compare::<Y>(&before, after.as_ref(), &changes, options, bound)
    }

    /// Plans and applies a command at the next revision, for an engine
    /// that is its own store (scenarios, tests). Returns the new revision.
    pub fn execute(&self, org_id: &str, command: &Command) -> Result<u64> {
        let _serial = self.writer.lock();
        let changes = self.plan(org_id, command)?;
        let revision = self.revision(org_id).unwrap_or(0) + 1;
        self.apply(org_id, revision, &changes);
        Ok(revision)
    }
}

fn whole() -> Invalidation {
    Invalidation {
        whole_org: true,
        ..Invalidation::default()
    }
}

/// An engine answering through `x` that holds the one organization of a
/// YAML document, imported as a whole: the fixture of the engine's unit
/// tests.
#[cfg(test)]
pub(crate) fn engine_of<X: Expand>(x: X, yaml: &str) -> Engine<X> {
    let document = crate::document::parse_document(yaml).unwrap();
    let org = document.organization.clone();
    let engine = Engine::new(x, Limits::default());
    engine
        .execute(
            &org,
            &Command::Import {
                document,
                replace: true,
            },
        )
        .unwrap();
    engine
}

/// How many checks ahead a batch prefetches the id index's entry: enough
/// for the entry to arrive while the checks between are decided.
const AHEAD: usize = 4;
/// The ring of look-ups started ahead (a power of two above `AHEAD`).
const RING: usize = 8;

/// The records table and id hash a check's record look-up will use, when
/// it names a stored module and a record (a prefetch's address only).
/// `modules` remembers the modules a batch named (a batch names few), so
/// the prefetch does not look each module up again by its hashed name.
fn record_look_up<'a>(
    org: &'a OrgState,
    modules: &mut Vec<(&'a str, Option<&'a records::Records>)>,
    req: &'a CheckRequest,
) -> Option<(&'a records::Records, u64)> {
    let id = req.record.as_deref()?;
    let name = req.module.as_str();
    let records = match modules.iter().find(|(known, _)| *known == name) {
        Some((_, records)) => *records,
        None => {
            let records = org.modules.by_id(name).map(|(_, m)| &m.records);
            // Bounded: a batch of many modules looks the rest up each time.
            if modules.len() < MODULES_REMEMBERED {
                modules.push((name, records));
            }
            records
        }
    };
    Some((records?, records::Records::id_hash(id)))
}

/// How many modules a batch's prefetches remember.
const MODULES_REMEMBERED: usize = 8;
