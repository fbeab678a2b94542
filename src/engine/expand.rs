//! Expanded memberships: role subtrees, group members, a user's groups,
//! nested groups and reporting chains, computed from the compiled policy.
//!
//! Decisions reach them only through [`Expand`], so a caching layer can
//! wrap [`Direct`] and drop exactly the entries an [`Invalidation`] names.

use std::sync::Arc;

use rustc_hash::FxHashSet;

use super::org::{GroupIx, OrgState, RoleIx, UserIx};

/// A user's expanded groups held for one question: up to [`HeldGroups::INLINE`]
/// copied inline (crm-large's users are in a few groups), more shared.
/// A check keeps its subject's groups this way rather than as a shared
/// set, so the common case touches no reference count (an atomic
/// increment and decrement per check on a cache line every core reads)
/// and never the heap.
#[derive(Debug, Clone)]
pub enum HeldGroups {
    /// A small set, copied.
    Inline {
        /// How many of `ixs` are the set.
        len: u8,
        /// The set, sorted, in its first `len` slots.
        ixs: [GroupIx; HeldGroups::INLINE],
    },
    /// A large set, shared with the cache.
    Shared(Arc<[GroupIx]>),
}

impl HeldGroups {
    /// The most groups held inline.
    pub const INLINE: usize = 8;

    /// `groups` copied when small, else `shared()`: the caller's handle on
    /// the same set.
    pub fn of(groups: &[GroupIx], shared: impl FnOnce() -> Arc<[GroupIx]>) -> Self {
        if groups.len() <= Self::INLINE {
            let mut ixs = [GroupIx(0); Self::INLINE];
            ixs[..groups.len()].copy_from_slice(groups);
            HeldGroups::Inline {
                // At most INLINE (8), so it fits.
                len: groups.len() as u8,
                ixs,
            }
        } else {
            HeldGroups::Shared(shared())
        }
    }

    /// The groups, sorted.
    pub fn as_slice(&self) -> &[GroupIx] {
        match self {
            HeldGroups::Inline { len, ixs } => ixs.get(..usize::from(*len)).unwrap_or(&[]),
            HeldGroups::Shared(groups) => groups,
        }
    }
}

/// What a write changed in the expanded memberships of one organization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalidation {
    /// Everything of the organization (created, replaced or deleted).
    pub whole_org: bool,
    /// Roles whose subtree changed.
    pub role_subtree: Vec<RoleIx>,
    /// Groups whose expanded members changed.
    pub group_members: Vec<GroupIx>,
    /// Groups whose set of nested groups changed.
    pub group_nested: Vec<GroupIx>,
    /// Users whose set of groups changed.
    pub user_groups: Vec<UserIx>,
    /// Users whose reporting chain changed.
    pub managers: Vec<UserIx>,
}

impl Invalidation {
    /// Whether nothing needs dropping.
    pub fn is_empty(&self) -> bool {
        !self.whole_org
            && self.role_subtree.is_empty()
            && self.group_members.is_empty()
            && self.group_nested.is_empty()
            && self.user_groups.is_empty()
            && self.managers.is_empty()
    }

    /// Sorts and dedupes every list.
    pub fn normalize(&mut self) {
        fn tidy<T: Ord>(v: &mut Vec<T>) {
            v.sort_unstable();
            v.dedup();
        }
        tidy(&mut self.role_subtree);
        tidy(&mut self.group_members);
        tidy(&mut self.group_nested);
        tidy(&mut self.user_groups);
        tidy(&mut self.managers);
    }

    /// Adds what `other` names.
    pub fn merge(&mut self, other: Invalidation) {
        self.whole_org |= other.whole_org;
        self.role_subtree.extend(other.role_subtree);
        self.group_members.extend(other.group_members);
        self.group_nested.extend(other.group_nested);
        self.user_groups.extend(other.user_groups);
        self.managers.extend(other.managers);
    }
}

/// Source of expanded memberships for decisions. Every set is sorted.
///
/// Two kinds of question: the whole set (listings, Filter and
/// LookupRecords, Simulate), handed out shared; and whether one member is
/// in a set (what a check asks), answered without handing out a set, so a
/// cache need not touch a reference count per question, and may answer
/// from the smaller side (a user's groups rather than a group's members).
pub trait Expand: Send + Sync {
    /// The role and every role below it.
    fn role_subtree(&self, org: &OrgState, role: RoleIx) -> Arc<[RoleIx]>;
    /// The expanded members of a group.
    fn group_members(&self, org: &OrgState, group: GroupIx) -> Arc<[UserIx]>;
    /// The groups whose expanded members include the user.
    fn user_groups(&self, org: &OrgState, user: UserIx) -> Arc<[GroupIx]>;
    /// `user_groups` as a check holds them for its subject (see
    /// [`HeldGroups`]): a cache copies a small set from its entry in place.
    fn hold_user_groups(&self, org: &OrgState, user: UserIx) -> HeldGroups {
        let groups = self.user_groups(org, user);
        HeldGroups::of(&groups, || groups.clone())
    }
    /// The group and every group nested in it, at any depth.
    fn group_nested(&self, org: &OrgState, group: GroupIx) -> Arc<[GroupIx]>;
    /// The users the user reports to, directly or through a chain.
    fn managers(&self, org: &OrgState, user: UserIx) -> Arc<[UserIx]>;
    /// Whether `user` is among the expanded members of `group`.
    fn is_member(&self, org: &OrgState, group: GroupIx, user: UserIx) -> bool;
    /// Whether `nested` is `group` or nested in it, at any depth.
    fn holds_group(&self, org: &OrgState, group: GroupIx, nested: GroupIx) -> bool;
    /// Whether `user` reports to `superior`, directly or through a chain.
    fn reports_to(&self, org: &OrgState, user: UserIx, superior: UserIx) -> bool;
    /// Whether `role` is `top` or below it.
    fn in_role_subtree(&self, org: &OrgState, top: RoleIx, role: RoleIx) -> bool;
    /// Drops what a write changed; called with the organization's new state
    /// while writers are held off.
    fn invalidate(&self, org: &OrgState, changed: &Invalidation);
}

/// Computes every expansion from the policy on each call: the reference
/// that caches are checked against. Membership is answered from the very
/// set it asks about, by definition.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

impl Expand for Direct {
    fn role_subtree(&self, org: &OrgState, role: RoleIx) -> Arc<[RoleIx]> {
        org.role_subtree(role).into()
    }
    fn group_members(&self, org: &OrgState, group: GroupIx) -> Arc<[UserIx]> {
        org.group_members(group).into()
    }
    fn user_groups(&self, org: &OrgState, user: UserIx) -> Arc<[GroupIx]> {
        org.user_groups(user).into()
    }
    fn group_nested(&self, org: &OrgState, group: GroupIx) -> Arc<[GroupIx]> {
        org.group_nested(group).into()
    }
    fn managers(&self, org: &OrgState, user: UserIx) -> Arc<[UserIx]> {
        org.managers(user).into()
    }
    fn is_member(&self, org: &OrgState, group: GroupIx, user: UserIx) -> bool {
        org.group_members(group).binary_search(&user).is_ok()
    }
    fn holds_group(&self, org: &OrgState, group: GroupIx, nested: GroupIx) -> bool {
        org.group_nested(group).binary_search(&nested).is_ok()
    }
    fn reports_to(&self, org: &OrgState, user: UserIx, superior: UserIx) -> bool {
        org.managers(user).binary_search(&superior).is_ok()
    }
    fn in_role_subtree(&self, org: &OrgState, top: RoleIx, role: RoleIx) -> bool {
        org.role_subtree(top).binary_search(&role).is_ok()
    }
    fn invalidate(&self, _org: &OrgState, _changed: &Invalidation) {}
}

/// Every node reachable from `stack` through `next` (which answers `None`
/// for an id that names no node: it is left out), each once, sorted: one
/// depth-first walk with one visited set, however many starts.
fn reach<'a, T>(mut stack: Vec<T>, next: impl Fn(T) -> Option<&'a [T]>) -> Vec<T>
where
    T: Copy + Ord + std::hash::Hash + 'a,
{
    let mut out = Vec::new();
    let mut seen = FxHashSet::default();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let Some(more) = next(n) {
            out.push(n);
            stack.extend(more.iter().copied());
        }
    }
    sorted(out)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v.dedup();
    v
}

impl OrgState {
    /// The role and every role below it, sorted.
    pub fn role_subtree(&self, role: RoleIx) -> Vec<RoleIx> {
        reach(vec![role], |r| {
            self.role(r).map(|node| node.children.as_slice())
        })
    }

    /// The strict ancestors of a role, nearest first.
    pub fn role_ancestors(&self, role: RoleIx) -> Vec<RoleIx> {
        let mut out = Vec::new();
        let mut at = self.role(role).and_then(|r| r.parent);
        while let Some(r) = at {
            if out.contains(&r) || r == role {
                break;
            }
            out.push(r);
            at = self.role(r).and_then(|n| n.parent);
        }
        out
    }

    /// The group and every group nested in it, sorted.
    pub fn group_nested(&self, group: GroupIx) -> Vec<GroupIx> {
        self.walk_groups(group, |g| &g.groups)
    }

    /// The group and every group it is nested in, at any depth, sorted.
    pub fn group_containers(&self, group: GroupIx) -> Vec<GroupIx> {
        self.walk_groups(group, |g| &g.containers)
    }

    fn walk_groups(
        &self,
        group: GroupIx,
        next: impl Fn(&super::org::Group) -> &Vec<GroupIx>,
    ) -> Vec<GroupIx> {
        reach(vec![group], |g| {
            self.group(g).map(|node| next(node).as_slice())
        })
    }

    /// The expanded members of a group, sorted.
    pub fn group_members(&self, group: GroupIx) -> Vec<UserIx> {
        let mut out = Vec::new();
        for g in self.group_nested(group) {
            let Some(node) = self.group(g) else { continue };
            out.extend(node.users.iter().copied());
            for r in &node.roles {
                if let Some(role) = self.role(*r) {
                    out.extend(role.users.iter().copied());
                }
            }
            for top in &node.roles_and_subordinates {
                for r in self.role_subtree(*top) {
                    if let Some(role) = self.role(r) {
                        out.extend(role.users.iter().copied());
                    }
                }
            }
        }
        sorted(out)
    }

    /// The groups whose expanded members include the user, sorted: the
    /// groups listing the user, its role, or a role-and-subordinates root
    /// at or above its role, and every group they are nested in. This is
    /// what a check re-expands after a write, so it is one walk up from
    /// all of them together, with one visited set, rather than a walk and
    /// a sorted vector per group.
    pub fn user_groups(&self, user: UserIx) -> Vec<GroupIx> {
        let Some(u) = self.user(user) else {
            return Vec::new();
        };
        let mut stack: Vec<GroupIx> = u.in_groups.clone();
        if let Some(role_ix) = u.role {
            if let Some(role) = self.role(role_ix) {
                stack.extend(role.in_groups.iter().copied());
                stack.extend(role.in_groups_with_subordinates.iter().copied());
            }
            // The strict ancestors, as `role_ancestors` walks them, without
            // collecting them; bounded by the number of roles, so a cycle
            // cannot loop forever (`role_ancestors` stops at a repeat; a
            // repeat here only pushes groups already seen).
            let mut at = self.role(role_ix).and_then(|r| r.parent);
            for _ in 0..self.roles.len() {
                let Some(r) = at.filter(|r| *r != role_ix) else {
                    break;
                };
                let Some(above) = self.role(r) else { break };
                stack.extend(above.in_groups_with_subordinates.iter().copied());
                at = above.parent;
            }
        }
        reach(stack, |g| {
            self.group(g).map(|node| node.containers.as_slice())
        })
    }

    /// Whether `group` is `top` or nested in it at any depth: the answer of
    /// `group_nested(top)` holding `group`, found by walking up from
    /// `group` through its containers, so it costs the depth of the nesting
    /// rather than the size of `top`'s expansion, and reads only the
    /// current policy (nothing to invalidate). A step up is taken only
    /// where the container lists the group, the edge `group_nested` follows.
    pub fn group_within(&self, group: GroupIx, top: GroupIx) -> bool {
        let mut at = group;
        // A chain (one container each, the usual shape) needs no memory;
        // bounded by the number of groups, so a cycle cannot loop forever.
        for _ in 0..=self.groups.len() {
            let Some(node) = self.group(at) else {
                return false;
            };
            if at == top {
                return true;
            }
            match node.containers.as_slice() {
                [] => return false,
                [up] if self.nests(*up, at) => at = *up,
                [_] => return false,
                _ => return self.group_within_branching(at, top),
            }
        }
        false
    }

    /// `group_within` where a group sits in several containers: a search
    /// up that visits each group once.
    fn group_within_branching(&self, group: GroupIx, top: GroupIx) -> bool {
        let mut stack = vec![group];
        let mut seen = FxHashSet::default();
        while let Some(g) = stack.pop() {
            let Some(node) = self.group(g) else { continue };
            if g == top {
                return true;
            }
            if !seen.insert(g) {
                continue;
            }
            stack.extend(
                node.containers
                    .iter()
                    .copied()
                    .filter(|c| self.nests(*c, g)),
            );
        }
        false
    }

    /// Whether `container` lists `group` among its nested groups.
    fn nests(&self, container: GroupIx, group: GroupIx) -> bool {
        self.group(container)
            .is_some_and(|c| c.groups.contains(&group))
    }

    /// Whether `superior` is in `user`'s reporting chain: the answer of
    /// `managers(user)` holding `superior`, walking the chain without
    /// collecting it.
    pub fn reports_up_to(&self, user: UserIx, superior: UserIx) -> bool {
        let mut at = self.user(user).and_then(|u| u.reports_to);
        // Bounded by the number of users, so a cycle cannot loop forever.
        for _ in 0..=self.users.len() {
            let Some(m) = at else {
                return false;
            };
            // `managers` stops where the chain comes back to the user.
            if m == user {
                return false;
            }
            if m == superior {
                return true;
            }
            at = self.user(m).and_then(|u| u.reports_to);
        }
        false
    }

    /// The users a user reports to, directly or through a chain, sorted.
    pub fn managers(&self, user: UserIx) -> Vec<UserIx> {
        let mut out = Vec::new();
        let mut at = self.user(user).and_then(|u| u.reports_to);
        while let Some(m) = at {
            if m == user || out.contains(&m) {
                break;
            }
            out.push(m);
            at = self.user(m).and_then(|u| u.reports_to);
        }
        sorted(out)
    }

    /// Everyone who reports to the user, directly or through a chain, sorted.
    pub fn reports_transitive(&self, user: UserIx) -> Vec<UserIx> {
        let mut out = Vec::new();
        let mut stack: Vec<UserIx> = self
            .user(user)
            .map(|u| u.reports.clone())
            .unwrap_or_default();
        let mut seen = FxHashSet::default();
        while let Some(u) = stack.pop() {
            if u == user || !seen.insert(u) {
                continue;
            }
            out.push(u);
            if let Some(node) = self.user(u) {
                stack.extend(node.reports.iter().copied());
            }
        }
        sorted(out)
    }
}
