//! Applies planned changes to the compiled policy, keeping every reverse
//! index in step and reporting which expanded memberships changed.
//!
//! `apply` trusts its input: changes come from the planner, which has
//! validated them against the same state, or from the change log, which holds
//! only planned changes. A reference that does not resolve is skipped, never
//! a panic.

use rustc_hash::FxHashSet;

use super::change::Change;
use super::expand::Invalidation;
use super::hot::HotFacts;
use super::model::{
    Grantee, GroupDef, ModuleDef, OwnerRef, ProfileDef, RecordDef, RoleDef, ShareDef,
    SharingRuleDef, ShiftDef, UserDef,
};
use super::org::{
    insert_sorted, remove_sorted, ActionIx, GranteeIx, Group, GroupIx, MemberSetIx, Module,
    ModuleIx, ModulePerms, OrgState, Owner, Profile, ProfileIx, RecordIx, Role, RoleIx, Rule,
    ShiftIx, User, UserIx,
};
use super::shifts::compile_shift;

impl OrgState {
    /// Applies one change (not `CreateOrg`/`DeleteOrg`, which the engine
    /// handles), adding what it changed to `inv`.
    pub fn apply(&mut self, change: &Change, inv: &mut Invalidation) {
        match change {
            Change::CreateOrg(settings) | Change::Settings(settings) => {
                self.settings = settings.clone();
            }
            Change::DeleteOrg => inv.whole_org = true,
            Change::PutModule(def) => self.put_module(def),
            Change::DeleteModule { id } => self.delete_module(id),
            Change::PutProfile(def) => self.put_profile(def),
            Change::DeleteProfile { id } => {
                if let Some(ix) = self.profiles.ix(id) {
                    self.profiles.remove(ix);
                }
            }
            Change::PutRole(def) => self.put_role(def, inv),
            Change::DeleteRole { id } => self.delete_role(id, inv),
            Change::PutShift(def) => self.put_shift(def),
            Change::DeleteShift { id } => {
                if let Some(ix) = self.shifts.ix(id) {
                    self.shifts.remove(ix);
                }
            }
            Change::PutUser(def) => self.put_user(def, inv),
            Change::DeleteUser { id } => self.delete_user(id, inv),
            Change::PutGroup(def) => self.put_group(def, inv),
            Change::DeleteGroup { id } => self.delete_group(id, inv),
            Change::PutRecord(def) => self.put_record(def),
            Change::DeleteRecord { module, id } => self.delete_record(module, id),
            Change::PutShare(def) => self.put_share(def),
            Change::DeleteShare {
                module,
                record,
                grantee,
            } => self.delete_share(module, record, grantee),
            Change::PutRule(def) => self.put_rule(def),
            Change::DeleteRule { id } => self.delete_rule(id),
        }
    }

    /// Resolves an owner reference.
    pub fn resolve_owner(&self, owner: &OwnerRef) -> Option<Owner> {
        match owner {
            OwnerRef::User(u) => self.users.ix(u).map(|ix| Owner::User(UserIx(ix))),
            OwnerRef::Group(g) => self.groups.ix(g).map(|ix| Owner::Group(GroupIx(ix))),
        }
    }

    /// Resolves a grantee reference.
    pub fn resolve_grantee(&self, grantee: &Grantee) -> Option<GranteeIx> {
        match grantee {
            Grantee::User(u) => self.users.ix(u).map(|ix| GranteeIx::User(UserIx(ix))),
            Grantee::Group(g) => self.groups.ix(g).map(|ix| GranteeIx::Group(GroupIx(ix))),
            Grantee::Role(r) => self.roles.ix(r).map(|ix| GranteeIx::Role(RoleIx(ix))),
            Grantee::RoleAndSubordinates(r) => self
                .roles
                .ix(r)
                .map(|ix| GranteeIx::RoleAndSubordinates(RoleIx(ix))),
        }
    }

    /// Resolves a sharing-rule member set.
    pub fn resolve_member_set(&self, set: &super::model::MemberSet) -> Option<MemberSetIx> {
        use super::model::MemberSet;
        match set {
            MemberSet::Role(r) => self.roles.ix(r).map(|ix| MemberSetIx::Role(RoleIx(ix))),
            MemberSet::RoleAndSubordinates(r) => self
                .roles
                .ix(r)
                .map(|ix| MemberSetIx::RoleAndSubordinates(RoleIx(ix))),
            MemberSet::Group(g) => self.groups.ix(g).map(|ix| MemberSetIx::Group(GroupIx(ix))),
        }
    }

    /// The owner reference of a resolved owner.
    pub fn owner_ref(&self, owner: Owner) -> OwnerRef {
        match owner {
            Owner::User(u) => OwnerRef::User(self.user_id(u).to_string()),
            Owner::Group(g) => OwnerRef::Group(self.group_id(g).to_string()),
        }
    }

    /// The grantee reference of a resolved grantee.
    pub fn grantee_ref(&self, grantee: GranteeIx) -> Grantee {
        match grantee {
            GranteeIx::User(u) => Grantee::User(self.user_id(u).to_string()),
            GranteeIx::Group(g) => Grantee::Group(self.group_id(g).to_string()),
            GranteeIx::Role(r) => Grantee::Role(self.role_id(r).to_string()),
            GranteeIx::RoleAndSubordinates(r) => {
                Grantee::RoleAndSubordinates(self.role_id(r).to_string())
            }
        }
    }

    fn put_module(&mut self, def: &ModuleDef) {
        let ix = self.modules.intern(&def.id);
        let fields = def.fields.iter().cloned().collect();
        let action_levels = Module::action_levels(def, &mut self.actions);
        match self.modules.get_mut(ix) {
            Some(module) => {
                module.def = def.clone();
                module.fields = fields;
                module.action_levels = action_levels;
            }
            None => {
                self.modules.put(
                    ix,
                    Module {
                        def: def.clone(),
                        fields,
                        action_levels,
                        records: Default::default(),
                        rules: Default::default(),
                        recipients: Default::default(),
                    },
                );
            }
        }
    }

    fn delete_module(&mut self, id: &str) {
        let Some(ix) = self.modules.ix(id) else {
            return;
        };
        let module_ix = ModuleIx(ix);
        if let Some(module) = self.modules.remove(ix) {
            for (record_ix, record) in module.records.iter() {
                for share in record.shares.iter() {
                    self.unindex_share(share.grantee, module_ix, record_ix);
                }
            }
            for rule_id in module.rules.keys() {
                self.rule_modules.remove(rule_id);
            }
        }
    }

    fn put_profile(&mut self, def: &ProfileDef) {
        let mut modules: rustc_hash::FxHashMap<ModuleIx, ModulePerms> = Default::default();
        for (module_id, actions) in &def.modules {
            if let Some(m) = self.modules.ix(module_id) {
                let perms = modules.entry(ModuleIx(m)).or_default();
                for action in actions {
                    // Interned even if no module has it yet, so the bit is
                    // already set when a module gains the action.
                    let a = ActionIx::standard(action)
                        .unwrap_or_else(|| ActionIx(self.actions.intern(action)));
                    perms.allowed.insert(a);
                    perms.actions.insert(action.clone());
                }
            }
        }
        for module_id in &def.view_all {
            if let Some(m) = self.modules.ix(module_id) {
                modules.entry(ModuleIx(m)).or_default().view_all = true;
            }
        }
        for module_id in &def.modify_all {
            if let Some(m) = self.modules.ix(module_id) {
                modules.entry(ModuleIx(m)).or_default().modify_all = true;
            }
        }
        for (module_id, fields) in &def.fields {
            if let Some(m) = self.modules.ix(module_id) {
                modules
                    .entry(ModuleIx(m))
                    .or_default()
                    .fields
                    .extend(fields.iter().map(|(f, l)| (f.clone(), *l)));
            }
        }
        let ix = self.profiles.intern(&def.id);
        self.profiles.put(ix, Profile::new(def.clone(), modules));
    }

    fn profile_ixs(&self, ids: &[String]) -> Vec<ProfileIx> {
        ids.iter()
            .filter_map(|p| self.profiles.ix(p).map(ProfileIx))
            .collect()
    }

    /// Roles whose `roles_and_subordinates` groups take in users of `roles`'
    /// subtrees: the groups listing any of them, with their containers.
    fn groups_listing_subtrees_of(&self, roles: &[RoleIx]) -> Vec<GroupIx> {
        let mut out = Vec::new();
        for r in roles {
            if let Some(role) = self.role(*r) {
                for g in &role.in_groups_with_subordinates {
                    out.extend(self.group_containers(*g));
                }
            }
        }
        out
    }

    fn put_role(&mut self, def: &RoleDef, inv: &mut Invalidation) {
        let parent = def
            .parent
            .as_deref()
            .and_then(|p| self.roles.ix(p))
            .map(RoleIx);
        let profiles = self.profile_ixs(&def.profiles);
        let ix = RoleIx(self.roles.intern(&def.id));
        let existing = self.roles.get(ix.0).map(|r| r.parent);
        let same_profiles = self.roles.get(ix.0).is_some_and(|r| r.profiles == profiles);
        let moved = existing != Some(parent);
        let mut touched = Vec::new();
        if moved {
            touched.push(ix);
            touched.extend(self.role_ancestors(ix));
        }
        let role = match self.roles.remove(ix.0) {
            Some(mut old) => {
                if old.parent != parent {
                    if let Some(p) = old.parent.and_then(|p| self.roles.get_mut(p.0)) {
                        remove_sorted(&mut p.children, &ix);
                    }
                }
                old.def = def.clone();
                old.parent = parent;
                old.profiles = profiles;
                old
            }
            None => Role {
                def: def.clone(),
                parent,
                profiles,
                children: Vec::new(),
                users: Vec::new(),
                in_groups: Vec::new(),
                in_groups_with_subordinates: Vec::new(),
            },
        };
        self.roles.put(ix.0, role);
        if let Some(p) = parent.and_then(|p| self.roles.get_mut(p.0)) {
            insert_sorted(&mut p.children, ix);
        }
        // The role's profiles are in each of its users' hot records.
        if !same_profiles {
            self.refresh_role_holders(ix);
        }
        if moved {
            // The tree changed shape: number it again on next use.
            self.role_order.take();
            touched.extend(self.role_ancestors(ix));
            let groups = self.groups_listing_subtrees_of(&touched);
            inv.group_members.extend(groups);
            for r in self.role_subtree(ix) {
                if let Some(role) = self.role(r) {
                    inv.user_groups.extend(role.users.iter().copied());
                }
            }
            inv.role_subtree.extend(touched);
        }
    }

    fn delete_role(&mut self, id: &str, inv: &mut Invalidation) {
        let Some(ix) = self.roles.ix(id).map(RoleIx) else {
            return;
        };
        let mut touched = vec![ix];
        touched.extend(self.role_ancestors(ix));
        inv.group_members
            .extend(self.groups_listing_subtrees_of(&touched));
        if let Some(role) = self.roles.remove(ix.0) {
            self.role_order.take();
            if let Some(p) = role.parent.and_then(|p| self.roles.get_mut(p.0)) {
                remove_sorted(&mut p.children, &ix);
            }
            inv.user_groups.extend(role.users.iter().copied());
            // Its users keep naming it but no longer have its profiles.
            self.refresh_role_holders(ix);
        }
        inv.role_subtree.extend(touched);
    }

    /// Recomputes the hot record of every user naming `role`. A scan of
    /// the users' `role` rather than `Role.users`: a role deleted and written
    /// again keeps its index, its former users still name it, and the new
    /// role's `users` does not list them. Role writes are rare; a check
    /// never pays for this.
    fn refresh_role_holders(&mut self, role: RoleIx) {
        let holders: Vec<UserIx> = self
            .users
            .iter()
            .filter(|(_, u)| u.role == Some(role))
            .map(|(u, _)| UserIx(u))
            .collect();
        self.refresh_hot(holders);
    }

    fn put_shift(&mut self, def: &ShiftDef) {
        if let Ok(shift) = compile_shift("shift", def) {
            let ix = self.shifts.intern(&def.id);
            self.shifts.put(ix, shift);
        }
    }

    fn put_user(&mut self, def: &UserDef, inv: &mut Invalidation) {
        let mut def = def.clone();
        if def.principal.is_empty() {
            def.principal = def.id.clone();
        }
        let role = def
            .role
            .as_deref()
            .and_then(|r| self.roles.ix(r))
            .map(RoleIx);
        let reports_to = def
            .reports_to
            .as_deref()
            .and_then(|m| self.users.ix(m))
            .map(UserIx);
        let shift = def
            .shift
            .as_deref()
            .and_then(|s| self.shifts.ix(s))
            .map(ShiftIx);
        let profiles = self.profile_ixs(&def.profiles);
        let ix = UserIx(self.users.intern(&def.id));
        let before_groups = self.user_groups(ix);
        let user = match self.users.remove(ix.0) {
            Some(mut old) => {
                if old.role != role {
                    if let Some(r) = old.role.and_then(|r| self.roles.get_mut(r.0)) {
                        remove_sorted(&mut r.users, &ix);
                    }
                }
                if old.reports_to != reports_to {
                    if let Some(m) = old.reports_to.and_then(|m| self.users.get_mut(m.0)) {
                        remove_sorted(&mut m.reports, &ix);
                    }
                    inv.managers.push(ix);
                    inv.managers.extend(self.reports_transitive_of(&old));
                }
                if self.principals.get(&old.def.principal) == Some(&ix) {
                    self.principals.remove(&old.def.principal);
                }
                old.def = def;
                old.role = role;
                old.profiles = profiles;
                old.reports_to = reports_to;
                old.shift = shift;
                old
            }
            None => {
                inv.managers.push(ix);
                User {
                    def,
                    role,
                    profiles,
                    reports_to,
                    shift,
                    reports: Vec::new(),
                    in_groups: Vec::new(),
                    leads: Vec::new(),
                    owns_groups: Vec::new(),
                }
            }
        };
        self.principals.insert(user.def.principal.clone(), ix);
        self.hot.set(ix, HotFacts::of(&user, &self.roles));
        self.users.put(ix.0, user);
        if let Some(r) = role.and_then(|r| self.roles.get_mut(r.0)) {
            insert_sorted(&mut r.users, ix);
        }
        if let Some(m) = reports_to.and_then(|m| self.users.get_mut(m.0)) {
            insert_sorted(&mut m.reports, ix);
        }
        inv.user_groups.push(ix);
        inv.group_members.extend(before_groups);
        inv.group_members.extend(self.user_groups(ix));
    }

    /// Everyone below `user` in the reporting chain (user detached from the table).
    fn reports_transitive_of(&self, user: &User) -> Vec<UserIx> {
        let mut out = Vec::new();
        for r in &user.reports {
            out.push(*r);
            out.extend(self.reports_transitive(*r));
        }
        out
    }

    fn delete_user(&mut self, id: &str, inv: &mut Invalidation) {
        let Some(ix) = self.users.ix(id).map(UserIx) else {
            return;
        };
        inv.group_members.extend(self.user_groups(ix));
        inv.user_groups.push(ix);
        inv.managers.push(ix);
        if let Some(old) = self.users.remove(ix.0) {
            self.hot.clear(ix);
            inv.managers.extend(self.reports_transitive_of(&old));
            if let Some(r) = old.role.and_then(|r| self.roles.get_mut(r.0)) {
                remove_sorted(&mut r.users, &ix);
            }
            if let Some(m) = old.reports_to.and_then(|m| self.users.get_mut(m.0)) {
                remove_sorted(&mut m.reports, &ix);
            }
            if self.principals.get(&old.def.principal) == Some(&ix) {
                self.principals.remove(&old.def.principal);
            }
        }
    }

    fn index_group(&mut self, ix: GroupIx, group: &Group, add: bool) {
        let edit = |v: &mut Vec<GroupIx>| {
            if add {
                insert_sorted(v, ix)
            } else {
                remove_sorted(v, &ix)
            }
        };
        for u in &group.users {
            if let Some(user) = self.users.get_mut(u.0) {
                edit(&mut user.in_groups);
            }
        }
        for u in &group.leads {
            if let Some(user) = self.users.get_mut(u.0) {
                edit(&mut user.leads);
                let leads = !user.leads.is_empty();
                self.hot.set_leads(*u, leads);
            }
        }
        if let Some(user) = group.owner.and_then(|u| self.users.get_mut(u.0)) {
            edit(&mut user.owns_groups);
        }
        for r in &group.roles {
            if let Some(role) = self.roles.get_mut(r.0) {
                edit(&mut role.in_groups);
            }
        }
        for r in &group.roles_and_subordinates {
            if let Some(role) = self.roles.get_mut(r.0) {
                edit(&mut role.in_groups_with_subordinates);
            }
        }
        for g in &group.groups {
            if let Some(nested) = self.groups.get_mut(g.0) {
                edit(&mut nested.containers);
            }
        }
    }

    fn put_group(&mut self, def: &GroupDef, inv: &mut Invalidation) {
        let users = |ids: &[String]| -> Vec<UserIx> {
            ids.iter()
                .filter_map(|u| self.users.ix(u).map(UserIx))
                .collect()
        };
        let roles = |ids: &[String]| -> Vec<RoleIx> {
            ids.iter()
                .filter_map(|r| self.roles.ix(r).map(RoleIx))
                .collect()
        };
        let mut group = Group {
            def: def.clone(),
            owner: def
                .owner
                .as_deref()
                .and_then(|u| self.users.ix(u))
                .map(UserIx),
            users: users(&def.users),
            roles: roles(&def.roles),
            roles_and_subordinates: roles(&def.roles_and_subordinates),
            groups: def
                .groups
                .iter()
                .filter_map(|g| self.groups.ix(g).map(GroupIx))
                .collect(),
            leads: users(&def.leads),
            containers: Vec::new(),
        };
        let ix = GroupIx(self.groups.intern(&def.id));
        let members_before = self.group_members(ix);
        if let Some(old) = self.groups.remove(ix.0) {
            self.index_group(ix, &old, false);
            group.containers = old.containers;
        }
        self.index_group(ix, &group, true);
        self.groups.put(ix.0, group);
        let containers = self.group_containers(ix);
        inv.group_nested.extend(containers.iter().copied());
        inv.group_members.extend(containers);
        inv.user_groups.extend(members_before);
        inv.user_groups.extend(self.group_members(ix));
    }

    fn delete_group(&mut self, id: &str, inv: &mut Invalidation) {
        let Some(ix) = self.groups.ix(id).map(GroupIx) else {
            return;
        };
        let containers = self.group_containers(ix);
        inv.group_nested.extend(containers.iter().copied());
        inv.group_members.extend(containers);
        inv.user_groups.extend(self.group_members(ix));
        if let Some(old) = self.groups.remove(ix.0) {
            self.index_group(ix, &old, false);
            for c in &old.containers {
                if let Some(container) = self.groups.get_mut(c.0) {
                    container.groups.retain(|g| *g != ix);
                }
            }
        }
    }

    fn put_record(&mut self, def: &RecordDef) {
        let Some(owner) = self.resolve_owner(&def.owner) else {
            return;
        };
        let Some(module) = self
            .modules
            .ix(&def.module)
            .and_then(|m| self.modules.get_mut(m))
        else {
            return;
        };
        // A rewrite keeps the record's slot and shares. A table already at
        // u32::MAX slots adds nothing: the record stays unknown and denied.
        let _ = module
            .records
            .put(&def.id, owner, def.private, &def.attributes);
    }

    fn delete_record(&mut self, module_id: &str, id: &str) {
        let Some(m) = self.modules.ix(module_id) else {
            return;
        };
        let Some(module) = self.modules.get_mut(m) else {
            return;
        };
        let Some((ix, record)) = module.records.remove(id) else {
            return;
        };
        // The slot goes to the next new record: nothing may point at it.
        for share in record.shares.iter() {
            self.unindex_share(share.grantee, ModuleIx(m), ix);
        }
    }

    fn unindex_share(&mut self, grantee: GranteeIx, module: ModuleIx, record: RecordIx) {
        if let Some(set) = self.shares_by_grantee.get_mut(&grantee) {
            set.remove(&(module, record));
            if set.is_empty() {
                self.shares_by_grantee.remove(&grantee);
            }
        }
    }

    fn put_share(&mut self, def: &ShareDef) {
        let Some(grantee) = self.resolve_grantee(&def.grantee) else {
            return;
        };
        let Some(m) = self.modules.ix(&def.module) else {
            return;
        };
        let Some(module) = self.modules.get_mut(m) else {
            return;
        };
        let Some(ix) = module.records.ix(&def.record) else {
            return;
        };
        if module.records.put_share(ix, grantee, def.level) {
            self.shares_by_grantee
                .entry(grantee)
                .or_default()
                .insert((ModuleIx(m), ix));
        }
    }

    fn delete_share(&mut self, module_id: &str, record_id: &str, grantee: &Grantee) {
        let Some(grantee) = self.resolve_grantee(grantee) else {
            return;
        };
        let Some(m) = self.modules.ix(module_id) else {
            return;
        };
        let Some(module) = self.modules.get_mut(m) else {
            return;
        };
        let Some(ix) = module.records.ix(record_id) else {
            return;
        };
        module.records.remove_share(ix, grantee);
        self.unindex_share(grantee, ModuleIx(m), ix);
    }

    fn put_rule(&mut self, def: &SharingRuleDef) {
        let from = def.from.as_ref().and_then(|f| self.resolve_member_set(f));
        let Some(to) = self.resolve_member_set(&def.to) else {
            return;
        };
        let Some(m) = self.modules.ix(&def.module).map(ModuleIx) else {
            return;
        };
        self.delete_rule(&def.id);
        if let Some(module) = self.modules.get_mut(m.0) {
            // Interned with the module's record attributes, so matching a
            // record compares integers.
            let criteria = module.records.intern(
                def.criteria
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            module.insert_rule(
                def.id.clone(),
                Rule {
                    def: def.clone(),
                    from,
                    criteria,
                    to,
                },
            );
            self.rule_modules.insert(def.id.clone(), m);
        }
    }

    fn delete_rule(&mut self, id: &str) {
        if let Some(m) = self.rule_modules.remove(id) {
            if let Some(module) = self.modules.get_mut(m.0) {
                module.remove_rule(id);
            }
        }
    }

    /// The record ids shared with `grantee`, by module, sorted (for deletes
    /// that must remove them).
    pub fn shares_of(&self, grantee: GranteeIx) -> Vec<(ModuleIx, &str)> {
        let mut out: Vec<(ModuleIx, &str)> = self
            .shares_by_grantee
            .get(&grantee)
            .into_iter()
            .flatten()
            .filter_map(|(m, ix)| {
                let record = self.module(*m)?.records.at(*ix)?;
                Some((*m, record.id()))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Users holding any of the given roles.
    pub fn users_of_roles(&self, roles: &[RoleIx]) -> FxHashSet<UserIx> {
        roles
            .iter()
            .filter_map(|r| self.role(*r))
            .flat_map(|r| r.users.iter().copied())
            .collect()
    }
}
