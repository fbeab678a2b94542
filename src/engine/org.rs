//! One organization's policy, compiled: ids interned to dense indexes, each
//! reference resolved, and the reverse indexes a decision and an expansion
//! need (role → users, group → containers, grantee → shares, …).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use chrono_tz::Tz;
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

pub use super::hot::{HotFacts, HotUsers, ProfileSetIx, UserHot};
use super::ids::Interner;
use super::model::{
    AccessLevel, FieldLevel, GroupDef, ModuleDef, ProfileDef, RoleDef, Settings, SharingRuleDef,
    ShiftDef, UserDef,
};
pub use super::records::{Attributes, Record, Records};

macro_rules! index_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
    )*};
}

index_type!(
    /// Interned index of a user.
    UserIx,
    /// Interned index of a role.
    RoleIx,
    /// Interned index of a group.
    GroupIx,
    /// Interned index of a module.
    ModuleIx,
    /// Interned index of a profile.
    ProfileIx,
    /// Interned index of a shift.
    ShiftIx,
    /// Interned index of an action name (see [`ActionIx::STANDARD`]).
    ActionIx,
    /// A record's slot in its module's [`Records`] (another record takes it only after a delete).
    RecordIx,
);

impl ActionIx {
    /// The standard actions, interned first in every organization so their
    /// indexes are fixed: `create`, `view`, `edit`, `delete`, `share`, `assign`.
    pub const STANDARD: [(&'static str, AccessLevel); 6] = [
        ("create", AccessLevel::None),
        ("view", AccessLevel::Read),
        ("edit", AccessLevel::ReadWrite),
        ("delete", AccessLevel::Full),
        ("share", AccessLevel::Full),
        ("assign", AccessLevel::Full),
    ];
    /// `view`, which makes a profile speak for the module's fields.
    pub const VIEW: ActionIx = ActionIx(1);

    /// The fixed index of a standard action, without hashing its name.
    pub fn standard(action: &str) -> Option<ActionIx> {
        let ix = match action {
            "create" => 0,
            "view" => 1,
            "edit" => 2,
            "delete" => 3,
            "share" => 4,
            "assign" => 5,
            _ => return None,
        };
        Some(ActionIx(ix))
    }
}

/// A set of interned actions: one bit per [`ActionIx`], the first 64 inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionSet(SmallVec<[u64; 1]>);

impl ActionSet {
    /// Adds `a`.
    pub fn insert(&mut self, a: ActionIx) {
        let (word, bit) = (a.0 as usize / 64, a.0 % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    /// The first 64 actions' bits.
    pub fn first_word(&self) -> u64 {
        self.0.first().copied().unwrap_or(0)
    }

    /// Whether `a` is in the set.
    pub fn contains(&self, a: ActionIx) -> bool {
        let (word, bit) = (a.0 as usize / 64, a.0 % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

/// Entities of one kind: ids interned, entries by index.
#[derive(Debug, Clone)]
pub struct Table<T> {
    ids: Interner,
    items: Vec<Option<T>>,
    count: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            ids: Interner::default(),
            items: Vec::new(),
            count: 0,
        }
    }
}

impl<T> Table<T> {
    /// The entry at `ix`, if it exists.
    pub fn get(&self, ix: u32) -> Option<&T> {
        self.items.get(ix as usize).and_then(Option::as_ref)
    }

    /// The entry at `ix`, mutably.
    pub fn get_mut(&mut self, ix: u32) -> Option<&mut T> {
        self.items.get_mut(ix as usize).and_then(Option::as_mut)
    }

    /// The index `id` was interned at, whether or not an entry is there
    /// now (the entry is not read).
    #[inline]
    pub fn interned(&self, id: &str) -> Option<u32> {
        self.ids.get(id)
    }

    /// The index of an existing entry named `id`.
    pub fn ix(&self, id: &str) -> Option<u32> {
        self.ids.get(id).filter(|ix| self.get(*ix).is_some())
    }

    /// The existing entry named `id` with its index.
    pub fn by_id(&self, id: &str) -> Option<(u32, &T)> {
        let ix = self.ids.get(id)?;
        self.get(ix).map(|t| (ix, t))
    }

    /// Whether an entry named `id` exists.
    pub fn contains(&self, id: &str) -> bool {
        self.ix(id).is_some()
    }

    /// The id of index `ix`.
    pub fn name(&self, ix: u32) -> &str {
        self.ids.name(ix)
    }

    /// The index `id` has or gets, whether or not an entry exists.
    pub fn intern(&mut self, id: &str) -> u32 {
        let ix = self.ids.intern(id);
        if self.items.len() <= ix as usize {
            self.items.resize_with(ix as usize + 1, || None);
        }
        ix
    }

    /// Stores `item` at `ix`, returning what was there.
    pub fn put(&mut self, ix: u32, item: T) -> Option<T> {
        let slot = &mut self.items[ix as usize];
        let old = slot.replace(item);
        if old.is_none() {
            self.count += 1;
        }
        old
    }

    /// Removes the entry at `ix`.
    pub fn remove(&mut self, ix: u32) -> Option<T> {
        let old = self.items.get_mut(ix as usize).and_then(Option::take);
        if old.is_some() {
            self.count -= 1;
        }
        old
    }

    /// The same ids at the same indexes, each entry mapped by `f`.
    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> Table<U> {
        Table {
            ids: self.ids.clone(),
            items: self.items.iter().map(|t| t.as_ref().map(&f)).collect(),
            count: self.count,
        }
    }

    /// Existing entries with their indexes, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(ix, t)| t.as_ref().map(|t| (ix as u32, t)))
    }

    /// How many entries exist.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no entry exists.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The owner of a record, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A user.
    User(UserIx),
    /// A group.
    Group(GroupIx),
}

/// The grantee of a manual share, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GranteeIx {
    /// One user.
    User(UserIx),
    /// A group's expanded members.
    Group(GroupIx),
    /// A role's users.
    Role(RoleIx),
    /// A role's users and those of the roles below it.
    RoleAndSubordinates(RoleIx),
}

/// A sharing rule's `from` or `to` set, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberSetIx {
    /// A role's users.
    Role(RoleIx),
    /// A role's users and those of the roles below it.
    RoleAndSubordinates(RoleIx),
    /// A group's expanded members (and, as `from`, its nested groups as owners).
    Group(GroupIx),
}

/// A manual share on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Who receives access.
    pub grantee: GranteeIx,
    /// How much.
    pub level: AccessLevel,
}

/// A sharing rule, resolved.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule as written.
    pub def: SharingRuleDef,
    /// Owner-based rule: whose records.
    pub from: Option<MemberSetIx>,
    /// Criteria rule: the attributes a record must all have, interned in
    /// the module's [`Records::terms`].
    pub criteria: Attributes,
    /// Who receives access.
    pub to: MemberSetIx,
}

/// A module with its records and its sharing rules.
#[derive(Debug, Clone)]
pub struct Module {
    /// The module as written.
    pub def: ModuleDef,
    /// Field names.
    pub fields: FxHashSet<String>,
    /// The record level each action requires, by [`ActionIx`]: `None` for
    /// an action that is neither standard nor one of the module's custom
    /// actions. Built by [`Module::action_levels`].
    pub action_levels: Vec<Option<AccessLevel>>,
    /// Records: a dense table with its id and owner indexes.
    pub records: Records,
    /// Sharing rules of this module, by id. Written only through
    /// [`Module::insert_rule`] and [`Module::remove_rule`], which keep
    /// `recipients` in step.
    pub rules: BTreeMap<String, Rule>,
    /// The rules of `rules` by recipient, so a check evaluates only the
    /// rules that can reach its subject.
    pub recipients: RuleRecipients,
}

/// What a check needs of one sharing rule, kept under its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    /// The rule's id (ties and recomputation only).
    pub id: String,
    /// The level it gives.
    pub access: AccessLevel,
    /// Owner-based rule: whose records.
    pub from: Option<MemberSetIx>,
    /// Criteria rule: the attributes a record must all have (interned).
    pub criteria: Attributes,
}

/// A module's sharing rules indexed by their `to` set. A
/// role-and-subordinates recipient is kept under its root role, and a
/// check walks the subject's role and the roles above it: role writes
/// (re-parenting) then need no re-indexing, and group membership is read
/// from the subject's expanded groups at check time for the same reason.
/// Each list is sorted by access, highest first, so a check stops at the
/// first rule that cannot beat what it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleRecipients {
    /// Rules to a role's users.
    pub role: FxHashMap<RoleIx, Vec<RuleEntry>>,
    /// Rules to a role and its subordinates, by the root role.
    pub role_and_subordinates: FxHashMap<RoleIx, Vec<RuleEntry>>,
    /// Rules to a group's expanded members, sorted by group.
    pub group: Vec<(GroupIx, Vec<RuleEntry>)>,
}

impl RuleRecipients {
    /// The index of `rules`, computed from scratch (the reference the
    /// incremental updates are tested against).
    pub fn of(rules: &BTreeMap<String, Rule>) -> Self {
        let mut out = RuleRecipients::default();
        for rule in rules.values() {
            out.add(rule);
        }
        out
    }

    /// The entries of the rules to `set`.
    pub fn entries(&self, set: MemberSetIx) -> &[RuleEntry] {
        let found = match set {
            MemberSetIx::Role(r) => self.role.get(&r),
            MemberSetIx::RoleAndSubordinates(r) => self.role_and_subordinates.get(&r),
            MemberSetIx::Group(g) => self
                .group
                .binary_search_by_key(&g, |(k, _)| *k)
                .ok()
                .map(|pos| &self.group[pos].1),
        };
        found.map(Vec::as_slice).unwrap_or(&[])
    }

    fn list_mut(&mut self, set: MemberSetIx) -> &mut Vec<RuleEntry> {
        match set {
            MemberSetIx::Role(r) => self.role.entry(r).or_default(),
            MemberSetIx::RoleAndSubordinates(r) => self.role_and_subordinates.entry(r).or_default(),
            MemberSetIx::Group(g) => {
                let pos = match self.group.binary_search_by_key(&g, |(k, _)| *k) {
                    Ok(pos) => pos,
                    Err(pos) => {
                        self.group.insert(pos, (g, Vec::new()));
                        pos
                    }
                };
                &mut self.group[pos].1
            }
        }
    }

    fn add(&mut self, rule: &Rule) {
        let entry = RuleEntry {
            id: rule.def.id.clone(),
            access: rule.def.access,
            from: rule.from,
            criteria: rule.criteria.clone(),
        };
        let list = self.list_mut(rule.to);
        // Highest access first, then by id, so the order is the same
        // however the rules arrived.
        let pos = list
            .binary_search_by(|e| {
                entry
                    .access
                    .cmp(&e.access)
                    .then_with(|| e.id.cmp(&entry.id))
            })
            .unwrap_or_else(|p| p);
        list.insert(pos, entry);
    }

    fn remove(&mut self, rule: &Rule) {
        let list = self.list_mut(rule.to);
        list.retain(|e| e.id != rule.def.id);
        if !list.is_empty() {
            return;
        }
        // No empty lists: the index of a module equals its recomputation.
        match rule.to {
            MemberSetIx::Role(r) => {
                self.role.remove(&r);
            }
            MemberSetIx::RoleAndSubordinates(r) => {
                self.role_and_subordinates.remove(&r);
            }
            MemberSetIx::Group(g) => self.group.retain(|(k, _)| *k != g),
        }
    }
}

impl Module {
    /// Adds or replaces the rule `id`, keeping the recipient index in step.
    pub fn insert_rule(&mut self, id: String, rule: Rule) {
        self.remove_rule(&id);
        self.recipients.add(&rule);
        self.rules.insert(id, rule);
    }

    /// Removes the rule `id`, keeping the recipient index in step.
    pub fn remove_rule(&mut self, id: &str) -> Option<Rule> {
        let old = self.rules.remove(id)?;
        self.recipients.remove(&old);
        Some(old)
    }

    /// The record level each interned action requires on a module defined
    /// as `def`, interning its custom actions in `actions`.
    pub fn action_levels(def: &ModuleDef, actions: &mut Interner) -> Vec<Option<AccessLevel>> {
        let mut levels: Vec<Option<AccessLevel>> =
            ActionIx::STANDARD.iter().map(|(_, l)| Some(*l)).collect();
        for (name, level) in &def.actions {
            if ActionIx::standard(name).is_some() {
                // A standard action keeps its standard level, as
                // `required_level` says.
                continue;
            }
            let ix = actions.intern(name) as usize;
            if levels.len() <= ix {
                levels.resize(ix + 1, None);
            }
            levels[ix] = Some(*level);
        }
        levels
    }

    /// The record level the interned action `a` requires: `None` when it
    /// is neither standard nor one of the module's custom actions.
    pub fn required(&self, a: ActionIx) -> Option<AccessLevel> {
        self.action_levels.get(a.0 as usize).copied().flatten()
    }

    /// The record level `action` requires: `None` when the action is
    /// neither standard nor one of the module's custom actions.
    pub fn required_level(&self, action: &str) -> Option<AccessLevel> {
        match action {
            "create" => Some(AccessLevel::None),
            "view" => Some(AccessLevel::Read),
            "edit" => Some(AccessLevel::ReadWrite),
            "delete" | "share" | "assign" => Some(AccessLevel::Full),
            custom => self.def.actions.get(custom).copied(),
        }
    }
}

/// What one profile allows on one module.
#[derive(Debug, Clone, Default)]
pub struct ModulePerms {
    /// Allowed actions.
    pub actions: FxHashSet<String>,
    /// `actions`, interned: what a check tests.
    pub allowed: ActionSet,
    /// Read every record.
    pub view_all: bool,
    /// Full access to every record.
    pub modify_all: bool,
    /// Field levels it names.
    pub fields: FxHashMap<String, FieldLevel>,
}

impl ModulePerms {
    /// Whether the profile allows `view` on the module (and so speaks for its fields).
    pub fn views(&self) -> bool {
        self.allowed.contains(ActionIx::VIEW)
    }
}

/// A profile, resolved.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile as written.
    pub def: ProfileDef,
    /// Per module.
    pub modules: FxHashMap<ModuleIx, ModulePerms>,
    /// What a check reads of `modules`, packed by module index (built by
    /// [`Profile::new`]): one vector index instead of a hash look-up
    /// into a large `ModulePerms` per effective profile.
    pub bits: Vec<ModuleBits>,
}

/// What a check reads of one profile on one module: the first 64
/// interned actions as a bit set, `view_all` and `modify_all`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModuleBits {
    /// Bit `a` set: action `a` (below 64) is allowed.
    pub actions: u64,
    /// Read every record.
    pub view_all: bool,
    /// Full access to every record.
    pub modify_all: bool,
}

impl Profile {
    /// A profile with its packed per-module bits.
    pub fn new(def: ProfileDef, modules: FxHashMap<ModuleIx, ModulePerms>) -> Profile {
        let len = modules.keys().map(|m| m.0 as usize + 1).max().unwrap_or(0);
        let mut bits = vec![ModuleBits::default(); len];
        for (m, perms) in &modules {
            bits[m.0 as usize] = ModuleBits {
                actions: perms.allowed.first_word(),
                view_all: perms.view_all,
                modify_all: perms.modify_all,
            };
        }
        Profile { def, modules, bits }
    }

    /// The packed grant on module `m` (nothing for a module it does not name).
    pub fn bits(&self, m: ModuleIx) -> ModuleBits {
        self.bits.get(m.0 as usize).copied().unwrap_or_default()
    }

    /// Whether the profile allows action `a` on module `m`, given
    /// `bits == self.bits(m)`: actions past the packed 64 are read from
    /// `modules`.
    pub fn allows(&self, bits: ModuleBits, m: ModuleIx, a: ActionIx) -> bool {
        if a.0 < 64 {
            bits.actions & (1 << a.0) != 0
        } else {
            self.modules.get(&m).is_some_and(|p| p.allowed.contains(a))
        }
    }
}

/// A role, resolved, with its reverse indexes.
#[derive(Debug, Clone)]
pub struct Role {
    /// The role as written.
    pub def: RoleDef,
    /// Parent.
    pub parent: Option<RoleIx>,
    /// Profiles.
    pub profiles: Vec<ProfileIx>,
    /// Child roles (index).
    pub children: Vec<RoleIx>,
    /// Users holding this role (index).
    pub users: Vec<UserIx>,
    /// Groups listing this role in `roles` (index).
    pub in_groups: Vec<GroupIx>,
    /// Groups listing this role in `roles_and_subordinates` (index).
    pub in_groups_with_subordinates: Vec<GroupIx>,
}

/// A user, resolved, with its reverse indexes. What a check reads of it
/// is copied into [`OrgState::hot`].
#[derive(Debug, Clone)]
pub struct User {
    /// The user as written (principal filled in).
    pub def: UserDef,
    /// Role.
    pub role: Option<RoleIx>,
    /// Direct profiles.
    pub profiles: Vec<ProfileIx>,
    /// Manager.
    pub reports_to: Option<UserIx>,
    /// Shift.
    pub shift: Option<ShiftIx>,
    /// Direct reports (index).
    pub reports: Vec<UserIx>,
    /// Groups listing this user in `users` (index).
    pub in_groups: Vec<GroupIx>,
    /// Groups this user leads (index).
    pub leads: Vec<GroupIx>,
    /// Personal groups this user owns (index).
    pub owns_groups: Vec<GroupIx>,
}

/// A group, resolved, with its reverse index.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group as written.
    pub def: GroupDef,
    /// Owner of a personal group.
    pub owner: Option<UserIx>,
    /// Listed users.
    pub users: Vec<UserIx>,
    /// Listed roles.
    pub roles: Vec<RoleIx>,
    /// Listed roles with subordinates.
    pub roles_and_subordinates: Vec<RoleIx>,
    /// Nested groups.
    pub groups: Vec<GroupIx>,
    /// Leads.
    pub leads: Vec<UserIx>,
    /// Groups that list this one in `groups` (index).
    pub containers: Vec<GroupIx>,
}

/// A weekly window in minutes since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `d` set: the window starts on day `d` (0 = Monday).
    pub days: u8,
    /// Start minute.
    pub start: u16,
    /// End minute (may be at or before start: runs past midnight).
    pub end: u16,
}

/// A shift, resolved.
#[derive(Debug, Clone)]
pub struct Shift {
    /// The shift as written.
    pub def: ShiftDef,
    /// Its time zone.
    pub tz: Tz,
    /// Its windows.
    pub windows: Vec<Window>,
}

/// One organization's compiled policy.
#[derive(Debug, Clone)]
pub struct OrgState {
    /// Organization id.
    pub id: Arc<str>,
    /// Distinguishes this instance from an earlier organization of the same
    /// id in caches keyed by index.
    pub generation: u64,
    /// Revision of the last write applied.
    pub revision: u64,
    /// Settings.
    pub settings: Settings,
    /// Modules.
    pub modules: Table<Module>,
    /// Profiles.
    pub profiles: Table<Profile>,
    /// Roles.
    pub roles: Table<Role>,
    /// Users.
    pub users: Table<User>,
    /// What a check reads of each user, dense by index (see [`HotUsers`]).
    pub hot: HotUsers,
    /// Groups.
    pub groups: Table<Group>,
    /// Shifts.
    pub shifts: Table<Shift>,
    /// Action names of every module and profile, interned once for the
    /// organization (standard ones first, at their fixed indexes); an index
    /// stays with its name, so profiles' action sets never need re-indexing.
    pub actions: Interner,
    /// Sharing rule id → its module.
    pub rule_modules: FxHashMap<String, ModuleIx>,
    /// Principal → user.
    pub principals: FxHashMap<String, UserIx>,
    /// Grantee → the records shared with it.
    pub shares_by_grantee: FxHashMap<GranteeIx, FxHashSet<(ModuleIx, RecordIx)>>,
    /// The role forest numbered for checks (see [`RoleOrder`]): emptied by
    /// every role write (`put_role`, `delete_role`) and computed again on
    /// first use; the engine's write path computes it before readers see
    /// the new state, so a check never pays for it.
    pub role_order: OnceLock<RoleOrder>,
}

impl OrgState {
    /// An empty organization.
    pub fn new(id: &str, generation: u64, revision: u64, settings: Settings) -> Self {
        OrgState {
            id: Arc::from(id),
            generation,
            revision,
            settings,
            modules: Table::default(),
            profiles: Table::default(),
            roles: Table::default(),
            users: Table::default(),
            hot: HotUsers::default(),
            groups: Table::default(),
            shifts: Table::default(),
            actions: standard_actions(),
            rule_modules: FxHashMap::default(),
            principals: FxHashMap::default(),
            shares_by_grantee: FxHashMap::default(),
            role_order: OnceLock::new(),
        }
    }

    /// The interned index of `action`, standard or custom (not necessarily
    /// an action of any given module: see [`Module::required`]).
    pub fn action_ix(&self, action: &str) -> Option<ActionIx> {
        ActionIx::standard(action).or_else(|| self.actions.get(action).map(ActionIx))
    }

    /// The user at `ix`.
    pub fn user(&self, ix: UserIx) -> Option<&User> {
        self.users.get(ix.0)
    }

    /// The role at `ix`.
    pub fn role(&self, ix: RoleIx) -> Option<&Role> {
        self.roles.get(ix.0)
    }

    /// The group at `ix`.
    pub fn group(&self, ix: GroupIx) -> Option<&Group> {
        self.groups.get(ix.0)
    }

    /// The module at `ix`.
    pub fn module(&self, ix: ModuleIx) -> Option<&Module> {
        self.modules.get(ix.0)
    }

    /// The id of a user.
    pub fn user_id(&self, ix: UserIx) -> &str {
        self.users.name(ix.0)
    }

    /// The id of a role.
    pub fn role_id(&self, ix: RoleIx) -> &str {
        self.roles.name(ix.0)
    }

    /// The id of a group.
    pub fn group_id(&self, ix: GroupIx) -> &str {
        self.groups.name(ix.0)
    }

    /// The id of a module.
    pub fn module_id(&self, ix: ModuleIx) -> &str {
        self.modules.name(ix.0)
    }

    /// The effective profiles of a user, from its hot record: its own,
    /// then its role's, each once (the interned list: no role look-up and
    /// no profile vectors on the heap).
    pub fn effective_profiles(&self, hot: UserHot) -> impl Iterator<Item = &Profile> + '_ {
        self.hot
            .profiles(hot)
            .iter()
            .filter_map(|p| self.profiles.get(p.0))
    }

    /// The user named `id` and its hot record, read without touching the
    /// `User` itself (step 1's look-up).
    #[inline]
    pub fn user_hot_by_id(&self, id: &str) -> Option<(UserIx, UserHot)> {
        let ix = UserIx(self.users.interned(id)?);
        Some((ix, self.hot.get(ix)?))
    }

    /// The role of the user at `ix`, from its hot record (a record
    /// owner's role, read by the hierarchy path and rules' `from` sets).
    #[inline]
    pub fn user_role(&self, ix: UserIx) -> Option<RoleIx> {
        self.hot.get(ix).and_then(UserHot::role)
    }

    /// Sets the hot record of each of `users` from its cold fields.
    pub(crate) fn refresh_hot(&mut self, users: impl IntoIterator<Item = UserIx>) {
        for u in users {
            match self.users.get(u.0) {
                Some(user) => {
                    let facts = HotFacts::of(user, &self.roles);
                    self.hot.set(u, facts);
                }
                None => self.hot.clear(u),
            }
        }
    }

    /// A copy of the organization without its records and shares: what
    /// planning an Import checks its policy entities against, without
    /// copying a million records it does not need.
    pub fn clone_without_records(&self) -> OrgState {
        // Same indexes as the original: profiles and rules refer to modules by index.
        let modules = self.modules.map(|module| Module {
            def: module.def.clone(),
            fields: module.fields.clone(),
            action_levels: module.action_levels.clone(),
            records: module.records.without_records(),
            rules: module.rules.clone(),
            recipients: module.recipients.clone(),
        });
        OrgState {
            id: self.id.clone(),
            generation: self.generation,
            revision: self.revision,
            settings: self.settings.clone(),
            modules,
            profiles: self.profiles.clone(),
            roles: self.roles.clone(),
            users: self.users.clone(),
            hot: self.hot.clone(),
            groups: self.groups.clone(),
            shifts: self.shifts.clone(),
            actions: self.actions.clone(),
            rule_modules: self.rule_modules.clone(),
            principals: self.principals.clone(),
            shares_by_grantee: FxHashMap::default(),
            role_order: self.role_order.clone(),
        }
    }

    /// The role forest's numbering, computed now if a role write emptied it.
    pub fn role_order(&self) -> &RoleOrder {
        self.role_order.get_or_init(|| RoleOrder::of(&self.roles))
    }

    /// Whether `role` is `top` or below it, as `role_subtree(top)` would
    /// say: two integer compares on the role forest's pre-order numbers
    /// (the walk up the tree was a look-up of a large `Role` per step).
    /// Falls back to the walk when role links form a cycle, which the
    /// numbering cannot represent (plans refuse cycles; the walk stays
    /// bounded).
    pub fn role_within(&self, role: RoleIx, top: RoleIx) -> bool {
        let order = self.role_order();
        if order.acyclic {
            order.within(role, top)
        } else {
            self.role_within_walk(role, top)
        }
    }

    /// `role` and the roles above it, nearest first, as
    /// `for_role_and_above` visits them: one precomputed slice, or `None`
    /// when role links form a cycle (then walk with `for_role_and_above`).
    pub fn role_chain(&self, role: RoleIx) -> Option<&[RoleIx]> {
        let order = self.role_order();
        order.acyclic.then(|| order.chain(role))
    }

    /// Calls `f` with `role` and each role above it, nearest first, along
    /// the edges `role_within` follows.
    pub fn for_role_and_above(&self, role: RoleIx, mut f: impl FnMut(RoleIx)) {
        match self.role_chain(role) {
            Some(chain) => chain.iter().copied().for_each(f),
            None => self.for_role_and_above_walk(role, &mut f),
        }
    }

    /// [`OrgState::role_within`] by walking up from `role`: the fallback
    /// for cyclic role links and the oracle the numbering is tested
    /// against. A step is taken only where the parent lists the role as a
    /// child, the edge `role_subtree` follows.
    pub fn role_within_walk(&self, role: RoleIx, top: RoleIx) -> bool {
        let Some(mut node) = self.role(role) else {
            return false;
        };
        let mut at = role;
        // Bounded by the number of roles, so a cycle cannot loop forever.
        for _ in 0..=self.roles.len() {
            if at == top {
                return true;
            }
            let Some(parent) = node.parent else {
                return false;
            };
            match self.role(parent) {
                Some(p) if p.children.binary_search(&at).is_ok() => {
                    at = parent;
                    node = p;
                }
                _ => return false,
            }
        }
        false
    }

    /// [`OrgState::for_role_and_above`] by walking up from `role` (the
    /// fallback for cyclic role links and the test oracle).
    pub fn for_role_and_above_walk(&self, role: RoleIx, mut f: impl FnMut(RoleIx)) {
        let Some(mut node) = self.role(role) else {
            return;
        };
        let mut at = role;
        for _ in 0..=self.roles.len() {
            f(at);
            let Some(parent) = node.parent else {
                return;
            };
            match self.role(parent) {
                Some(p) if p.children.binary_search(&at).is_ok() => {
                    at = parent;
                    node = p;
                }
                _ => return,
            }
        }
    }

    /// Number of records across modules.
    pub fn record_count(&self) -> usize {
        self.modules.iter().map(|(_, m)| m.records.len()).sum()
    }
}

/// The role forest numbered once per role write, so a check answers "is
/// this role at or below that one" with two compares and reads a role's
/// chain of superiors as one slice. Edges are those the walks follow: a
/// role hangs below its parent only where the parent exists and lists it
/// as a child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleOrder {
    /// Per role index: its pre-order number, the end of its subtree's
    /// numbers and where its chain lies in `chains` ([`RoleSpan::NONE`]
    /// for an index with no role).
    pub spans: Vec<RoleSpan>,
    /// Every role's chain (itself, then its parent, … up to its root),
    /// back to back.
    pub chains: Vec<RoleIx>,
    /// Whether every role was numbered: `false` when role links form a
    /// cycle (the roles on it, and below it, have no root), and then the
    /// walks answer instead.
    pub acyclic: bool,
}

/// One role's place in [`RoleOrder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSpan {
    /// Pre-order number.
    pub pre: u32,
    /// One past the last pre-order number of its subtree.
    pub end: u32,
    /// Start of its chain in [`RoleOrder::chains`].
    pub chain: u32,
    /// Length of its chain.
    pub len: u32,
}

impl RoleSpan {
    /// The span of an index with no role (or a role not numbered).
    pub const NONE: RoleSpan = RoleSpan {
        pre: u32::MAX,
        end: 0,
        chain: 0,
        len: 0,
    };
}

impl RoleOrder {
    /// The numbering of `roles`, by a depth-first pass from each root.
    pub fn of(roles: &Table<Role>) -> RoleOrder {
        let mut spans = vec![RoleSpan::NONE; roles.items.len()];
        let mut chains: Vec<RoleIx> = Vec::new();
        let mut next = 0u32;
        let mut numbered = 0usize;
        // The edge `c` → `p` the walks take.
        let hangs_below = |c: RoleIx, p: RoleIx| {
            roles
                .get(p.0)
                .is_some_and(|pr| pr.children.binary_search(&c).is_ok())
        };
        let mut stack: Vec<(RoleIx, usize)> = Vec::new();
        for (ix, role) in roles.iter() {
            let root = RoleIx(ix);
            if role.parent.is_some_and(|p| hangs_below(root, p)) {
                continue;
            }
            stack.push((root, 0));
            Self::enter(&mut spans, &mut chains, &mut next, root, None);
            numbered += 1;
            while let Some((at, cursor)) = stack.last_mut() {
                let (at, pos) = (*at, *cursor);
                let children = roles.get(at.0).map_or(&[][..], |r| r.children.as_slice());
                let Some(&child) = children.get(pos) else {
                    spans[at.0 as usize].end = next;
                    stack.pop();
                    continue;
                };
                if let Some((_, cursor)) = stack.last_mut() {
                    *cursor += 1;
                }
                let is_edge = roles.get(child.0).is_some_and(|c| c.parent == Some(at));
                // A role has one parent, so it is entered at most once;
                // the second test only guards against a corrupt list.
                if is_edge && spans[child.0 as usize].pre == u32::MAX {
                    Self::enter(&mut spans, &mut chains, &mut next, child, Some(at));
                    numbered += 1;
                    stack.push((child, 0));
                }
            }
        }
        RoleOrder {
            spans,
            chains,
            acyclic: numbered == roles.len(),
        }
    }

    fn enter(
        spans: &mut [RoleSpan],
        chains: &mut Vec<RoleIx>,
        next: &mut u32,
        role: RoleIx,
        parent: Option<RoleIx>,
    ) {
        let start = chains.len();
        chains.push(role);
        let mut len = 1;
        if let Some(p) = parent {
            let ps = spans[p.0 as usize];
            let from = ps.chain as usize;
            chains.extend_from_within(from..from + ps.len as usize);
            len += ps.len;
        }
        spans[role.0 as usize] = RoleSpan {
            pre: *next,
            end: *next + 1,
            chain: start as u32,
            len,
        };
        *next += 1;
    }

    fn span(&self, role: RoleIx) -> RoleSpan {
        self.spans
            .get(role.0 as usize)
            .copied()
            .unwrap_or(RoleSpan::NONE)
    }

    /// Whether `role` is numbered and `top` or below it.
    pub fn within(&self, role: RoleIx, top: RoleIx) -> bool {
        let (r, t) = (self.span(role), self.span(top));
        r.pre != u32::MAX && t.pre <= r.pre && r.pre < t.end
    }

    /// `role` and the roles above it, nearest first (empty for no role).
    pub fn chain(&self, role: RoleIx) -> &[RoleIx] {
        let s = self.span(role);
        let from = s.chain as usize;
        self.chains.get(from..from + s.len as usize).unwrap_or(&[])
    }
}

/// An action interner holding the standard actions at their fixed indexes.
fn standard_actions() -> Interner {
    let mut actions = Interner::default();
    for (name, _) in ActionIx::STANDARD {
        actions.intern(name);
    }
    actions
}

/// Inserts `v` into a sorted vector if absent.
pub(crate) fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(pos) = v.binary_search(&x) {
        v.insert(pos, x);
    }
}

/// Removes `x` from a sorted vector if present.
pub(crate) fn remove_sorted<T: Ord>(v: &mut Vec<T>, x: &T) {
    if let Ok(pos) = v.binary_search(x) {
        v.remove(pos);
    }
}
