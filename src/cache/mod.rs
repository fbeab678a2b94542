//! Caches of expanded memberships: a dashmap per kind of expansion, keyed
//! by (organization generation, index), wrapped around the engine's direct
//! computation. A write drops exactly the entries its [`Invalidation`]
//! names, under the organization's write lock, so no reader can put back a
//! value computed from the old policy. Membership questions are read in
//! place (no reference count touched), from a user's groups, or answered by
//! walking up the current policy where that is cheaper than any look-up.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use foldhash::fast::RandomState;

use crate::engine::expand::{Direct, Expand, HeldGroups, Invalidation};
use crate::engine::org::{GroupIx, OrgState, RoleIx, UserIx};

/// Counters of cache use, for metrics and tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Answers served from a cache.
    pub hits: AtomicU64,
    /// Answers computed and stored.
    pub misses: AtomicU64,
    /// Entries dropped by writes.
    pub invalidations: AtomicU64,
    /// Whole caches cleared because they reached their bound.
    pub evictions: AtomicU64,
}

/// A snapshot of [`CacheStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Answers served from a cache.
    pub hits: u64,
    /// Answers computed and stored.
    pub misses: u64,
    /// Entries dropped by writes.
    pub invalidations: u64,
    /// Whole caches cleared because they reached their bound.
    pub evictions: u64,
}

type Key = (u64, u32);

/// Keys are two integers of our own making, not chosen by clients, so a
/// fast hash (foldhash: a multiply and a fold per word, good high bits for
/// dashmap's shard choice) replaces std's SipHash, which was about a
/// tenth of a warm check in docs/benchmarks.md (finding 3).
struct Family<T> {
    map: DashMap<Key, Arc<[T]>, RandomState>,
}

impl<T> Family<T> {
    fn new() -> Self {
        Family {
            map: DashMap::with_hasher(RandomState::default()),
        }
    }

    /// The entry at `key`, filled by `compute` on a miss, handed out
    /// shared: for whole sets, where the caller keeps or walks them.
    fn get_or(
        &self,
        key: Key,
        stats: &CacheStats,
        bound: usize,
        compute: impl FnOnce() -> Arc<[T]>,
    ) -> Arc<[T]> {
        if let Some(v) = self.map.get(&key) {
            stats.hits.fetch_add(1, Ordering::Relaxed);
            return Arc::clone(v.value());
        }
        self.fill(key, stats, bound, compute)
    }

    /// `f` of the entry at `key`, filled by `compute` on a miss, read in
    /// place: a hit touches no reference count. `f` runs under the shard's
    /// read lock, so it must not reach back into this family (a miss there
    /// would wait for that lock to write).
    fn read<R>(
        &self,
        key: Key,
        stats: &CacheStats,
        bound: usize,
        compute: impl FnOnce() -> Arc<[T]>,
        f: impl FnOnce(&[T]) -> R,
    ) -> R {
        if let Some(v) = self.map.get(&key) {
            stats.hits.fetch_add(1, Ordering::Relaxed);
            return f(v.value());
        }
        f(&self.fill(key, stats, bound, compute))
    }

    /// As [`Family::read`], with `f` given the entry's shared handle, so
    /// it may keep it.
    fn read_shared<R>(
        &self,
        key: Key,
        stats: &CacheStats,
        bound: usize,
        compute: impl FnOnce() -> Arc<[T]>,
        f: impl FnOnce(&Arc<[T]>) -> R,
    ) -> R {
        if let Some(v) = self.map.get(&key) {
            stats.hits.fetch_add(1, Ordering::Relaxed);
            return f(v.value());
        }
        f(&self.fill(key, stats, bound, compute))
    }

    fn fill(
        &self,
        key: Key,
        stats: &CacheStats,
        bound: usize,
        compute: impl FnOnce() -> Arc<[T]>,
    ) -> Arc<[T]> {
        stats.misses.fetch_add(1, Ordering::Relaxed);
        let value = compute();
        if self.map.len() >= bound {
            self.map.clear();
            stats.evictions.fetch_add(1, Ordering::Relaxed);
        }
        self.map.insert(key, value.clone());
        value
    }

    fn drop_keys(&self, generation: u64, ixs: impl Iterator<Item = u32>, stats: &CacheStats) {
        for ix in ixs {
            if self.map.remove(&(generation, ix)).is_some() {
                stats.invalidations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn drop_org(&self, generation: u64, stats: &CacheStats) {
        let before = self.map.len();
        self.map.retain(|k, _| k.0 != generation);
        let dropped = before.saturating_sub(self.map.len());
        stats
            .invalidations
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }
}

/// Expanded memberships served from dashmap caches over [`Direct`].
pub struct Cached {
    role_subtree: Family<RoleIx>,
    group_members: Family<UserIx>,
    user_groups: Family<GroupIx>,
    group_nested: Family<GroupIx>,
    managers: Family<UserIx>,
    bound: usize,
    stats: CacheStats,
}

impl Default for Cached {
    fn default() -> Self {
        Cached::new(1 << 20)
    }
}

impl Cached {
    /// Caches holding at most `bound` entries each.
    pub fn new(bound: usize) -> Self {
        Cached {
            role_subtree: Family::new(),
            group_members: Family::new(),
            user_groups: Family::new(),
            group_nested: Family::new(),
            managers: Family::new(),
            bound: bound.max(1),
            stats: CacheStats::default(),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            hits: self.stats.hits.load(Ordering::Relaxed),
            misses: self.stats.misses.load(Ordering::Relaxed),
            invalidations: self.stats.invalidations.load(Ordering::Relaxed),
            evictions: self.stats.evictions.load(Ordering::Relaxed),
        }
    }

    /// Entries held, across every cache.
    pub fn len(&self) -> usize {
        self.role_subtree.map.len()
            + self.group_members.map.len()
            + self.user_groups.map.len()
            + self.group_nested.map.len()
            + self.managers.map.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn raw<T: Copy + Into<u32>>(v: &[T]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|x| (*x).into())
}

macro_rules! into_u32 {
    ($($t:ty),*) => {$(
        impl From<$t> for u32 {
            fn from(x: $t) -> u32 { x.0 }
        }
    )*};
}
into_u32!(RoleIx, GroupIx, UserIx);

impl Expand for Cached {
    fn role_subtree(&self, org: &OrgState, role: RoleIx) -> Arc<[RoleIx]> {
        self.role_subtree
            .get_or((org.generation, role.0), &self.stats, self.bound, || {
                Direct.role_subtree(org, role)
            })
    }
    fn group_members(&self, org: &OrgState, group: GroupIx) -> Arc<[UserIx]> {
        self.group_members
            .get_or((org.generation, group.0), &self.stats, self.bound, || {
                Direct.group_members(org, group)
            })
    }
    fn user_groups(&self, org: &OrgState, user: UserIx) -> Arc<[GroupIx]> {
        self.user_groups
            .get_or((org.generation, user.0), &self.stats, self.bound, || {
                Direct.user_groups(org, user)
            })
    }
    /// A small set copied under the shard's read lock, a large one shared:
    /// a hit touches no reference count unless the user is in many groups.
    fn hold_user_groups(&self, org: &OrgState, user: UserIx) -> HeldGroups {
        self.user_groups.read_shared(
            (org.generation, user.0),
            &self.stats,
            self.bound,
            || Direct.user_groups(org, user),
            |groups| HeldGroups::of(groups, || Arc::clone(groups)),
        )
    }
    fn group_nested(&self, org: &OrgState, group: GroupIx) -> Arc<[GroupIx]> {
        self.group_nested
            .get_or((org.generation, group.0), &self.stats, self.bound, || {
                Direct.group_nested(org, group)
            })
    }
    fn managers(&self, org: &OrgState, user: UserIx) -> Arc<[UserIx]> {
        self.managers
            .get_or((org.generation, user.0), &self.stats, self.bound, || {
                Direct.managers(org, user)
            })
    }
    /// Read from the member's groups, not the group's members: a user is
    /// in a few groups while a group nesting others may hold thousands of
    /// users, so a check right after a write re-expands only the small
    /// side (`cold` in benches/engine.rs).
    fn is_member(&self, org: &OrgState, group: GroupIx, user: UserIx) -> bool {
        self.user_groups.read(
            (org.generation, user.0),
            &self.stats,
            self.bound,
            || Direct.user_groups(org, user),
            |groups| groups.binary_search(&group).is_ok(),
        )
    }
    /// A walk up the nesting from `nested` (its depth, at most 32 steps by
    /// the limits) beats both a look-up and re-expanding a large group.
    fn holds_group(&self, org: &OrgState, group: GroupIx, nested: GroupIx) -> bool {
        org.group_within(nested, group)
    }
    /// A walk up the reporting chain: as cheap as a look-up, with nothing
    /// to re-expand after a write.
    fn reports_to(&self, org: &OrgState, user: UserIx, superior: UserIx) -> bool {
        org.reports_up_to(user, superior)
    }
    /// A walk up the role tree (its depth, at most 64 steps by the limits).
    fn in_role_subtree(&self, org: &OrgState, top: RoleIx, role: RoleIx) -> bool {
        org.role_within(role, top)
    }
    fn invalidate(&self, org: &OrgState, changed: &Invalidation) {
        let g = org.generation;
        let s = &self.stats;
        if changed.whole_org {
            self.role_subtree.drop_org(g, s);
            self.group_members.drop_org(g, s);
            self.user_groups.drop_org(g, s);
            self.group_nested.drop_org(g, s);
            self.managers.drop_org(g, s);
            return;
        }
        self.role_subtree
            .drop_keys(g, raw(&changed.role_subtree), s);
        self.group_members
            .drop_keys(g, raw(&changed.group_members), s);
        self.user_groups.drop_keys(g, raw(&changed.user_groups), s);
        self.group_nested
            .drop_keys(g, raw(&changed.group_nested), s);
        self.managers.drop_keys(g, raw(&changed.managers), s);
    }
}

impl<T: Eq + Hash> std::fmt::Debug for Family<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Family({} entries)", self.map.len())
    }
}
