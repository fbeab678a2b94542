//! A module's records in one dense table: each record in a slot of a `Vec`
//! by [`RecordIx`], its id inline when short, its attributes as interned
//! pairs and its shares in one boxed slice; an id index of slot numbers
//! hashed by the id's bytes ([`SlotTable`]: the entry's address follows
//! from the hash); and the owner index by slot number. A warm check by id
//! reads one entry of the index and one slot, and chases no pointer to
//! compare the id.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use compact_str::CompactString;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use thin_vec::ThinVec;

use super::ids::{same_id, Interner};
use super::model::AccessLevel;
use super::org::{GranteeIx, Owner, RecordIx, Share};
use super::prefetch::prefetch;
use super::slot_table::SlotTable;

/// Attribute → value pairs, both interned in the module's terms and sorted
/// by key: a record's attributes, or a criteria rule's criteria. Comparing
/// two of them compares integers, never strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(Box<[(u32, u32)]>);

impl Attributes {
    /// `pairs` interned in `terms` (a key given twice keeps its last value,
    /// as a map would).
    pub fn intern<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        terms: &mut Interner,
    ) -> Self {
        let mut out: Vec<(u32, u32)> = pairs
            .into_iter()
            .map(|(k, v)| (terms.intern(k), terms.intern(v)))
            .collect();
        out.sort_by_key(|(k, _)| *k);
        out.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        Attributes(out.into_boxed_slice())
    }

    /// The interned pairs, sorted by key.
    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of the interned key `key`.
    pub fn get(&self, key: u32) -> Option<u32> {
        self.0
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|pos| self.0[pos].1)
    }

    /// Whether every pair of `criteria` is one of these.
    pub fn has_all(&self, criteria: &Attributes) -> bool {
        criteria.0.iter().all(|(k, v)| self.get(*k) == Some(*v))
    }

    /// The pairs as names, in key order of interning.
    pub fn named<'a>(&'a self, terms: &'a Interner) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0.iter().map(|(k, v)| (terms.name(*k), terms.name(*v)))
    }

    /// The pairs as a map of names (what a document or a write carries).
    pub fn to_map(&self, terms: &Interner) -> BTreeMap<String, String> {
        self.named(terms)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// A record, resolved and compact: its slot in [`Records`]. A slot is at
/// most a cache line (64 bytes) and aligned to one, so the check that
/// reads a record (id, owner, privacy, shares, attributes) misses once on
/// it, not twice: among a million records the slot is rarely cached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(align(64))]
pub struct Record {
    /// Record id: inline up to 24 bytes, so the id index compares it
    /// without leaving the slot.
    id: CompactString,
    /// Owner.
    pub owner: Owner,
    /// Confidential flag.
    pub private: bool,
    /// Attributes for criteria rules, interned in [`Records::terms`].
    pub attributes: Attributes,
    /// Manual shares, one per grantee (most records have none: an empty
    /// `ThinVec` allocates nothing). A thin vector (one pointer, its length
    /// beside the shares) rather than a boxed slice keeps the slot in one
    /// cache line (see [`Record`]'s alignment).
    pub shares: ThinVec<Share>,
}

impl Record {
    /// The record's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// One module's records: a dense table of slots by [`RecordIx`], an id
/// index and an owner index, written only through the methods here so the
/// indexes stay in step with the slots.
///
/// A deleted record's slot is emptied and its index goes on a free list;
/// the next new record takes it. Whoever keeps a [`RecordIx`] (the shares
/// index of the organization) drops it when the record goes, so a reused
/// slot never carries the old record's shares or owner.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// Slots by record index; `None` is a free slot.
    slots: Vec<Option<Record>>,
    /// Free slots, the most recently freed last.
    free: Vec<u32>,
    /// Slot indexes, hashed by their record's id.
    index: SlotTable,
    /// Records by owner.
    by_owner: FxHashMap<Owner, FxHashSet<RecordIx>>,
    /// Attribute names and values of records and criteria rules. Like the
    /// organization's other interners it only grows: a value's index stays
    /// with it while any rule or record may still name it.
    terms: Interner,
    /// How many slots hold a record.
    len: usize,
    /// The ids in the API's order, built by the first LookupRecords after
    /// the set of ids changed (see [`Records::id_order`]).
    id_order: IdOrderCell,
    /// The last order built, kept when a write emptied `id_order`: the
    /// next one is patched from it in a linear merge instead of sorting
    /// every id again.
    stale_id_order: Option<std::sync::Arc<super::lookup::IdOrder>>,
}

fn hash_id(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

/// The id of the record in `slot`'s hash (0 for a free slot, which the
/// index never names).
fn slot_hash(slots: &[Option<Record>], slot: u32) -> u64 {
    slots
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map_or(0, |r| hash_id(&r.id))
}

impl Records {
    /// An empty table that keeps these terms, so criteria interned against
    /// this one still mean the same (what planning an Import needs).
    pub fn without_records(&self) -> Records {
        Records {
            terms: self.terms.clone(),
            ..Records::default()
        }
    }

    /// The index of the record `id`.
    pub fn ix(&self, id: &str) -> Option<RecordIx> {
        self.ix_hashed(id, hash_id(id))
    }

    /// [`Records::ix`] of an id whose hash ([`Records::id_hash`]) is
    /// known.
    fn ix_hashed(&self, id: &str, hash: u64) -> Option<RecordIx> {
        let slots = &self.slots;
        self.index
            .find(hash, |ix| {
                slots
                    .get(ix as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|r| same_id(&r.id, id))
            })
            .map(RecordIx)
    }

    /// The hash the id index keeps `id` under.
    pub fn id_hash(id: &str) -> u64 {
        hash_id(id)
    }

    /// Starts loading the id index's entry for `hash` (a batch does it a
    /// few checks ahead: the entry's address follows from the hash alone).
    /// Only a hint: nothing is read.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        if let Some(entry) = self.index.home_entry(hash) {
            prefetch(entry);
        }
    }

    /// Reads the id index's entry for `hash` (prefetched earlier, so
    /// arriving) and starts loading the slot it names, the one the look-up
    /// will compare. A guess: a collision costs one wasted line.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        if let Some(slot) = self
            .index
            .guess(hash)
            .and_then(|ix| self.slots.get(ix as usize))
        {
            prefetch(slot);
        }
    }

    /// Bytes the id index allocates (benchmarks report it per record).
    pub fn index_bytes(&self) -> usize {
        self.index.bytes()
    }

    /// The record `id`.
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.get_hashed(id, hash_id(id))
    }

    /// [`Records::get`] of an id whose hash ([`Records::id_hash`]) is
    /// known: a check hashes its record id once, for its prefetches and
    /// its look-up.
    pub fn get_hashed(&self, id: &str, hash: u64) -> Option<&Record> {
        self.ix_hashed(id, hash).and_then(|ix| self.at(ix))
    }

    /// Whether a record `id` exists.
    pub fn contains(&self, id: &str) -> bool {
        self.ix(id).is_some()
    }

    /// The record at `ix`.
    pub fn at(&self, ix: RecordIx) -> Option<&Record> {
        self.slots.get(ix.0 as usize).and_then(Option::as_ref)
    }

    /// How many records exist.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no record exists.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every record with its index, in slot order (not id order).
    pub fn iter(&self) -> impl Iterator<Item = (RecordIx, &Record)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(ix, r)| r.as_ref().map(|r| (RecordIx(ix as u32), r)))
    }

    /// The records `owner` owns, in no order.
    pub fn owned_by(&self, owner: Owner) -> impl Iterator<Item = (RecordIx, &Record)> {
        self.by_owner
            .get(&owner)
            .into_iter()
            .flatten()
            .filter_map(|ix| self.at(*ix).map(|r| (*ix, r)))
    }

    /// How many records `owner` owns.
    pub fn owned_count(&self, owner: Owner) -> usize {
        self.by_owner.get(&owner).map_or(0, FxHashSet::len)
    }

    /// The owner index as kept (for tests that compare it with its
    /// recomputation from the slots).
    pub fn owner_index(&self) -> &FxHashMap<Owner, FxHashSet<RecordIx>> {
        &self.by_owner
    }

    /// The free slots as kept, the next one to be taken last.
    pub fn free_slots(&self) -> &[u32] {
        &self.free
    }

    /// The number of slots, held or free.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The number of entries of the id index.
    pub fn index_len(&self) -> usize {
        self.index.len()
    }

    /// Attribute names and values of this module, interned.
    pub fn terms(&self) -> &Interner {
        &self.terms
    }

    /// `pairs` interned in this module's terms (for criteria rules).
    pub fn intern<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Attributes {
        Attributes::intern(pairs, &mut self.terms)
    }

    /// Adds the record `id` or rewrites its owner, flag and attributes,
    /// keeping its shares: its index. `None` (nothing added) only when the
    /// module already has `u32::MAX` slots, which no index may alias.
    pub fn put(
        &mut self,
        id: &str,
        owner: Owner,
        private: bool,
        attributes: &BTreeMap<String, String>,
    ) -> Option<RecordIx> {
        let attributes = Attributes::intern(
            attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut self.terms,
        );
        if let Some(ix) = self.ix(id) {
            if let Some(record) = self.slots.get_mut(ix.0 as usize).and_then(Option::as_mut) {
                let old_owner = std::mem::replace(&mut record.owner, owner);
                record.private = private;
                record.attributes = attributes;
                if old_owner != owner {
                    self.unindex_owner(old_owner, ix);
                    self.by_owner.entry(owner).or_default().insert(ix);
                }
            }
            return Some(ix);
        }
        let record = Record {
            id: CompactString::from(id),
            owner,
            private,
            attributes,
            shares: ThinVec::new(),
        };
        let ix = match self.free.pop() {
            Some(ix) => {
                let slot = self.slots.get_mut(ix as usize)?;
                *slot = Some(record);
                ix
            }
            None => {
                // A slot number past u32 would alias another record's
                // index; memory runs out long before (72 bytes a slot).
                let ix = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Some(record));
                ix
            }
        };
        let slots = &self.slots;
        self.index
            .insert_unique(hash_id(id), ix, |other| slot_hash(slots, other));
        self.by_owner.entry(owner).or_default().insert(RecordIx(ix));
        self.len += 1;
        self.retire_id_order();
        Some(RecordIx(ix))
    }

    /// Removes the record `id`: its index and the record (with the shares
    /// the caller must drop from the organization's shares index).
    pub fn remove(&mut self, id: &str) -> Option<(RecordIx, Record)> {
        let slots = &self.slots;
        let ix = self.index.remove(
            hash_id(id),
            |ix| {
                slots
                    .get(ix as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|r| r.id == id)
            },
            |other| slot_hash(slots, other),
        )?;
        let record = self.slots.get_mut(ix as usize).and_then(Option::take)?;
        self.unindex_owner(record.owner, RecordIx(ix));
        self.free.push(ix);
        self.len -= 1;
        self.retire_id_order();
        Some((RecordIx(ix), record))
    }

    /// Gives `grantee` `level` on the record at `ix` (replacing its level
    /// if it has one): whether the record exists.
    pub fn put_share(&mut self, ix: RecordIx, grantee: GranteeIx, level: AccessLevel) -> bool {
        let Some(record) = self.slots.get_mut(ix.0 as usize).and_then(Option::as_mut) else {
            return false;
        };
        match record.shares.iter_mut().find(|s| s.grantee == grantee) {
            Some(share) => share.level = level,
            None => {
                record.shares.push(Share { grantee, level });
                record.shares.shrink_to_fit();
            }
        }
        true
    }

    /// Takes `grantee`'s share off the record at `ix`.
    pub fn remove_share(&mut self, ix: RecordIx, grantee: GranteeIx) {
        let Some(record) = self.slots.get_mut(ix.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        if record.shares.iter().any(|s| s.grantee == grantee) {
            record.shares.retain(|s| s.grantee != grantee);
            record.shares.shrink_to_fit();
        }
    }

    fn unindex_owner(&mut self, owner: Owner, ix: RecordIx) {
        if let Some(set) = self.by_owner.get_mut(&owner) {
            set.remove(&ix);
            if set.is_empty() {
                // No empty sets: the index equals its recomputation.
                self.by_owner.remove(&owner);
            }
        }
    }
}

/// The cell of [`Records::id_order`]: emptied by every write that adds or
/// removes an id (a rewrite of a record keeps its id and slot, so its
/// order).
type IdOrderCell = std::sync::OnceLock<std::sync::Arc<super::lookup::IdOrder>>;

impl Records {
    /// The module's ids in the API's order with a rank per slot, built
    /// once per set of ids (sorted whole at the module's first
    /// LookupRecords; after creates or deletes, the next lookup patches
    /// the moved-aside order: the new ids sorted and merged in one linear
    /// pass; nothing per write) and shared, so a lookup marks a bit per id
    /// instead of copying it and does not sort the ids again. `None` when the ids do not fit its u32 offsets.
    pub fn id_order(&self) -> Option<&std::sync::Arc<super::lookup::IdOrder>> {
        if let Some(order) = self.id_order.get() {
            return Some(order);
        }
        let built = super::lookup::IdOrder::of(self, self.stale_id_order.as_deref())?;
        Some(self.id_order.get_or_init(|| std::sync::Arc::new(built)))
    }

    /// A create or delete changed the ids: the order is moved aside (O(1);
    /// a lookup's snapshot may still hold it) for the next build to patch.
    fn retire_id_order(&mut self) {
        if let Some(order) = self.id_order.take() {
            self.stale_id_order = Some(order);
        }
    }

    /// Whether [`Records::id_order`] is built (tests: writes empty it).
    pub fn id_order_built(&self) -> bool {
        self.id_order.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::org::UserIx;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_freed_slot_is_reused_without_the_old_shares_or_owner() {
        let mut t = Records::default();
        let a = t
            .put("a", Owner::User(UserIx(1)), false, &attrs(&[]))
            .unwrap();
        assert!(t.put_share(a, GranteeIx::User(UserIx(2)), AccessLevel::Read));
        assert_eq!(
            t.remove("a").map(|(ix, r)| (ix, r.shares.len())),
            Some((a, 1))
        );
        let b = t
            .put("b", Owner::User(UserIx(3)), false, &attrs(&[]))
            .unwrap();
        assert_eq!(b, a, "the freed slot is taken first");
        let r = t.get("b").expect("b was put");
        assert!(r.shares.is_empty());
        assert_eq!(r.owner, Owner::User(UserIx(3)));
        assert!(t.get("a").is_none());
        assert_eq!(t.owned_count(Owner::User(UserIx(1))), 0);
        assert_eq!(t.owned_count(Owner::User(UserIx(3))), 1);
    }

    #[test]
    fn rewriting_a_record_keeps_its_slot_and_shares_and_moves_its_owner() {
        let mut t = Records::default();
        let a = t
            .put("a", Owner::User(UserIx(1)), false, &attrs(&[("k", "v")]))
            .unwrap();
        t.put_share(a, GranteeIx::User(UserIx(2)), AccessLevel::Read);
        let again = t
            .put("a", Owner::User(UserIx(5)), true, &attrs(&[]))
            .unwrap();
        assert_eq!(again, a);
        let r = t.get("a").expect("a was put");
        assert_eq!(r.shares.len(), 1);
        assert!(r.private && r.attributes.is_empty());
        assert_eq!(t.owned_count(Owner::User(UserIx(1))), 0);
        assert_eq!(t.owned_count(Owner::User(UserIx(5))), 1);
    }

    #[test]
    fn criteria_match_interned_attributes() {
        let mut t = Records::default();
        t.put(
            "a",
            Owner::User(UserIx(1)),
            false,
            &attrs(&[("region", "emea"), ("tier", "1")]),
        );
        let emea = t.intern([("region", "emea")]);
        let apac = t.intern([("region", "apac")]);
        let r = t.get("a").expect("a was put");
        assert!(r.attributes.has_all(&emea));
        assert!(!r.attributes.has_all(&apac));
        assert_eq!(
            r.attributes.to_map(t.terms()),
            attrs(&[("region", "emea"), ("tier", "1")])
        );
    }

    #[test]
    fn a_slot_stays_compact() {
        // Every warm check reads one slot: a million records are a million
        // slots, and a wider slot is more memory and more cache lines.
        let size = std::mem::size_of::<Option<Record>>();
        assert!(size <= 64, "a record's slot is {size} bytes");
        // Aligned to a line, so no slot straddles two.
        assert_eq!(std::mem::align_of::<Option<Record>>(), 64);
    }

    #[test]
    fn long_ids_are_found_too() {
        let mut t = Records::default();
        let long = "x".repeat(100);
        let ix = t.put(&long, Owner::User(UserIx(1)), false, &attrs(&[]));
        assert_eq!(t.ix(&long), ix);
        assert!(ix.is_some());
        assert_eq!(t.ix(&"x".repeat(99)), None);
    }
}
