//! What a check reads of its users, dense: one 16-byte [`UserHot`] per user
//! index in one array, and the users' effective-profile lists interned
//! once per distinct list ([`ProfileSets`]).
//!
//! A check reads its subject's record (steps 1 to 4 and the paths) and the
//! record owner's role (the hierarchy path). Kept at 64 bytes inside each
//! heap `User`, 10,000 users were 10,000 scattered lines, each touched
//! about once every 5,000 checks on crm-large and so gone from the core's
//! cache by then; at 16 bytes in one array they are 160 KB, which stays.
//! Written only through [`HotUsers`], on every write that changes what a
//! record copies (user, role and group writes in `apply.rs`); a test holds
//! each record equal to its recomputation ([`HotFacts::of`]) and the set
//! table to the lists the users hold.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::model::UserKind;
use super::org::{ProfileIx, Role, RoleIx, ShiftIx, Table, User, UserIx};

/// A list of effective profiles; four fit inline.
pub type ProfileList = SmallVec<[ProfileIx; 4]>;

/// Index of an interned effective-profile list in [`ProfileSets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProfileSetIx(pub u32);

/// No role, no shift.
const NONE: u32 = u32::MAX;

const EXISTS: u8 = 1;
const ACTIVE: u8 = 1 << 1;
const ADMIN: u8 = 1 << 2;
const GUEST: u8 = 1 << 3;
const LEADS: u8 = 1 << 4;

/// What a check reads of one user, in 16 bytes: flags, role, shift and its
/// interned effective profiles. The manager is not here: the reporting
/// hierarchy is read through the expansion cache, not per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct UserHot {
    role: u32,
    shift: u32,
    profiles: ProfileSetIx,
    flags: u8,
}

// Four records to a line: a field added here must not grow it.
const _: () = assert!(std::mem::size_of::<UserHot>() == 16);

impl UserHot {
    /// The record of an index with no user (never written, or deleted).
    pub const ABSENT: UserHot = UserHot {
        role: NONE,
        shift: NONE,
        profiles: ProfileSetIx(0),
        flags: 0,
    };

    fn flag(self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// Whether a user is at this index.
    pub fn exists(self) -> bool {
        self.flag(EXISTS)
    }

    /// `def.active`.
    pub fn active(self) -> bool {
        self.flag(ACTIVE)
    }

    /// `def.admin`.
    pub fn admin(self) -> bool {
        self.flag(ADMIN)
    }

    /// `def.kind`.
    pub fn kind(self) -> UserKind {
        if self.flag(GUEST) {
            UserKind::Guest
        } else {
            UserKind::Member
        }
    }

    /// Whether the user leads any group.
    pub fn leads(self) -> bool {
        self.flag(LEADS)
    }

    /// The user's role (the index it names, even if deleted since).
    pub fn role(self) -> Option<RoleIx> {
        (self.role != NONE).then_some(RoleIx(self.role))
    }

    /// The user's shift.
    pub fn shift(self) -> Option<ShiftIx> {
        (self.shift != NONE).then_some(ShiftIx(self.shift))
    }

    /// Its effective profiles, as interned.
    pub fn profiles(self) -> ProfileSetIx {
        self.profiles
    }
}

/// A user's hot record spelled out, computed from its cold fields and its
/// role: what [`HotUsers`] stores, and what the tests compare it with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotFacts {
    /// `def.active`.
    pub active: bool,
    /// `def.admin`.
    pub admin: bool,
    /// `def.kind`.
    pub kind: UserKind,
    /// Whether the user leads any group (`leads` is not empty).
    pub leads: bool,
    /// `role`.
    pub role: Option<RoleIx>,
    /// `shift`.
    pub shift: Option<ShiftIx>,
    /// The effective profiles: the user's own, then its role's (when the
    /// role exists), each once, in that order; a profile deleted since
    /// stays listed and is skipped on reading.
    pub profiles: ProfileList,
}

impl HotFacts {
    /// The facts of `user` from its cold fields and its role.
    pub fn of(user: &User, roles: &Table<Role>) -> HotFacts {
        let role_profiles = user
            .role
            .and_then(|r| roles.get(r.0))
            .map(|r| r.profiles.as_slice())
            .unwrap_or(&[]);
        let mut profiles = ProfileList::new();
        for p in user.profiles.iter().chain(role_profiles) {
            // Unions and maxima over the list ignore repeats.
            if !profiles.contains(p) {
                profiles.push(*p);
            }
        }
        HotFacts {
            active: user.def.active,
            admin: user.def.admin,
            kind: user.def.kind,
            leads: !user.leads.is_empty(),
            role: user.role,
            shift: user.shift,
            profiles,
        }
    }
}

/// The distinct effective-profile lists the users hold, each once, counted
/// by holder: a list no user holds any more is dropped and its index
/// reused, so writes cannot grow the table past one list per user. Index 0
/// is the empty list, always present.
#[derive(Debug, Clone)]
pub struct ProfileSets {
    lists: Vec<ProfileList>,
    holders: Vec<u32>,
    by_list: FxHashMap<ProfileList, u32>,
    free: Vec<u32>,
}

impl Default for ProfileSets {
    fn default() -> Self {
        let mut by_list = FxHashMap::default();
        by_list.insert(ProfileList::new(), 0);
        ProfileSets {
            lists: vec![ProfileList::new()],
            holders: vec![0],
            by_list,
            free: Vec::new(),
        }
    }
}

impl ProfileSets {
    /// The list at `ix` (empty for an index never given out).
    pub fn get(&self, ix: ProfileSetIx) -> &[ProfileIx] {
        self.lists.get(ix.0 as usize).map_or(&[], |l| l.as_slice())
    }

    /// The index of `list`, with one more holder.
    fn hold(&mut self, list: ProfileList) -> ProfileSetIx {
        let ix = match self.by_list.get(&list) {
            Some(&ix) => ix,
            None => self.add(list),
        };
        // The empty list is never dropped, so it is not counted.
        if ix != 0 {
            if let Some(n) = self.holders.get_mut(ix as usize) {
                *n += 1;
            }
        }
        ProfileSetIx(ix)
    }

    /// Stores a list not held yet, in a freed index if there is one.
    fn add(&mut self, list: ProfileList) -> u32 {
        let ix = match self.free.pop() {
            Some(ix) => {
                if let Some(slot) = self.lists.get_mut(ix as usize) {
                    slot.clone_from(&list);
                }
                ix
            }
            None => {
                self.lists.push(list.clone());
                self.holders.push(0);
                u32::try_from(self.lists.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_list.insert(list, ix);
        ix
    }

    /// One holder fewer for `ix`; the list goes when none is left.
    fn release(&mut self, ix: ProfileSetIx) {
        if ix.0 == 0 {
            return;
        }
        let Some(n) = self.holders.get_mut(ix.0 as usize) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            if let Some(list) = self.lists.get_mut(ix.0 as usize) {
                self.by_list.remove(list);
                list.clear();
            }
            self.free.push(ix.0);
        }
    }

    /// How many non-empty lists are held.
    pub fn live(&self) -> usize {
        self.by_list.len() - 1
    }

    /// How many holders list `ix` has.
    pub fn holders(&self, ix: ProfileSetIx) -> u32 {
        self.holders.get(ix.0 as usize).copied().unwrap_or(0)
    }
}

/// Every user's [`UserHot`] by index, and the lists they point to.
#[derive(Debug, Clone, Default)]
pub struct HotUsers {
    records: Vec<UserHot>,
    sets: ProfileSets,
}

impl HotUsers {
    /// The record of the user at `ix`, if there is one.
    #[inline]
    pub fn get(&self, ix: UserIx) -> Option<UserHot> {
        self.records
            .get(ix.0 as usize)
            .copied()
            .filter(|h| h.exists())
    }

    /// The effective profiles of a record.
    #[inline]
    pub fn profiles(&self, hot: UserHot) -> &[ProfileIx] {
        self.sets.get(hot.profiles)
    }

    /// The interned lists.
    pub fn sets(&self) -> &ProfileSets {
        &self.sets
    }

    /// Writes the record of the user at `ix`.
    pub fn set(&mut self, ix: UserIx, facts: HotFacts) {
        let profiles = self.sets.hold(facts.profiles);
        let flags = EXISTS
            | if facts.active { ACTIVE } else { 0 }
            | if facts.admin { ADMIN } else { 0 }
            | if facts.kind == UserKind::Guest {
                GUEST
            } else {
                0
            }
            | if facts.leads { LEADS } else { 0 };
        let hot = UserHot {
            role: facts.role.map_or(NONE, |r| r.0),
            shift: facts.shift.map_or(NONE, |s| s.0),
            profiles,
            flags,
        };
        self.put(ix, hot);
    }

    /// Marks the index as holding no user.
    pub fn clear(&mut self, ix: UserIx) {
        if (ix.0 as usize) < self.records.len() {
            self.put(ix, UserHot::ABSENT);
        }
    }

    /// Sets whether the user at `ix` leads a group.
    pub fn set_leads(&mut self, ix: UserIx, leads: bool) {
        if let Some(hot) = self.records.get_mut(ix.0 as usize) {
            if hot.exists() {
                hot.flags = if leads {
                    hot.flags | LEADS
                } else {
                    hot.flags & !LEADS
                };
            }
        }
    }

    fn put(&mut self, ix: UserIx, hot: UserHot) {
        let at = ix.0 as usize;
        if self.records.len() <= at {
            self.records.resize(at + 1, UserHot::ABSENT);
        }
        if let Some(slot) = self.records.get_mut(at) {
            let old = std::mem::replace(slot, hot);
            if old.exists() {
                self.sets.release(old.profiles);
            }
        }
    }

    /// The stored record of `ix` spelled out, for comparison with
    /// [`HotFacts::of`].
    pub fn facts(&self, ix: UserIx) -> Option<HotFacts> {
        let hot = self.get(ix)?;
        Some(HotFacts {
            active: hot.active(),
            admin: hot.admin(),
            kind: hot.kind(),
            leads: hot.leads(),
            role: hot.role(),
            shift: hot.shift(),
            profiles: self.profiles(hot).iter().copied().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(profiles: &[u32], role: Option<u32>) -> HotFacts {
        HotFacts {
            active: true,
            role: role.map(RoleIx),
            profiles: profiles.iter().map(|p| ProfileIx(*p)).collect(),
            ..HotFacts::default()
        }
    }

    #[test]
    fn users_with_the_same_profiles_share_one_list() {
        let mut hot = HotUsers::default();
        hot.set(UserIx(0), facts(&[1, 2], Some(3)));
        hot.set(UserIx(5), facts(&[1, 2], None));
        let (a, b) = (
            hot.get(UserIx(0)).expect("written"),
            hot.get(UserIx(5)).expect("written"),
        );
        assert_eq!(a.profiles(), b.profiles());
        assert_eq!(hot.sets().live(), 1);
        assert_eq!(hot.sets().holders(a.profiles()), 2);
        assert_eq!(a.role(), Some(RoleIx(3)));
        assert_eq!(b.role(), None);
        assert!(hot.get(UserIx(3)).is_none(), "a gap holds no user");
        assert_eq!(hot.facts(UserIx(5)), Some(facts(&[1, 2], None)));
    }

    #[test]
    fn a_list_no_user_holds_is_dropped_and_its_index_reused() {
        let mut hot = HotUsers::default();
        hot.set(UserIx(0), facts(&[1], None));
        hot.set(UserIx(1), facts(&[1], None));
        let first = hot.get(UserIx(0)).expect("written").profiles();
        hot.set(UserIx(0), facts(&[2], None));
        assert_eq!(hot.sets().live(), 2);
        hot.clear(UserIx(1));
        assert!(hot.get(UserIx(1)).is_none(), "cleared");
        assert_eq!(hot.sets().live(), 1, "[1] has no holder left");
        hot.set(UserIx(1), facts(&[7, 8], None));
        assert_eq!(
            hot.get(UserIx(1)).expect("written").profiles(),
            first,
            "the freed index is reused"
        );
        assert_eq!(
            hot.profiles(hot.get(UserIx(1)).expect("written")),
            &[ProfileIx(7), ProfileIx(8)]
        );
        // Rewriting the same facts many times holds nothing more.
        for _ in 0..100 {
            hot.set(UserIx(0), facts(&[2], None));
        }
        assert_eq!(hot.sets().live(), 2);
        assert_eq!(
            hot.sets()
                .holders(hot.get(UserIx(0)).expect("written").profiles()),
            1
        );
    }

    #[test]
    fn leads_is_set_and_cleared_only_on_a_user() {
        let mut hot = HotUsers::default();
        hot.set(UserIx(0), facts(&[], None));
        hot.set_leads(UserIx(0), true);
        assert!(hot.get(UserIx(0)).expect("written").leads());
        hot.set_leads(UserIx(0), false);
        assert!(!hot.get(UserIx(0)).expect("written").leads());
        hot.clear(UserIx(0));
        hot.set_leads(UserIx(0), true);
        assert!(hot.get(UserIx(0)).is_none(), "no user appears by leading");
    }
}
