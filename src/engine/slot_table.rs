//! An id index whose entry address follows from the id's hash alone: an
//! open-addressing table of 8-byte entries, each a 32-bit hash tag and a
//! slot number, probed linearly. A look-up misses once on the entry (its
//! address is the hash's home position, so a batch can prefetch it before
//! it is needed), then once on the slot the entry names, where the id is
//! compared. hashbrown's `HashTable<u32>` needs three dependent reads for
//! the same (control group, bucket, slot): see docs/decisions.md, "Part P:
//! the record id index".
//!
//! The table knows no ids: the caller compares a candidate slot's id
//! (`eq`) and hashes a slot's id again when an entry moves (`hash_of`, on
//! growth and on removal's backward shift), so no id is stored twice.

/// An empty entry. No occupied entry is zero: its tag has its low bit set.
const EMPTY: u64 = 0;

/// The table grows before more than 3 in 5 entries are taken, so probe
/// runs stay short (about 1.5 entries read on a hit at that load) and a
/// probe always ends at an empty entry.
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 5;

/// The smallest table allocated (none is allocated while empty).
const MIN_CAPACITY: usize = 8;

/// Slot numbers hashed by their record's id (see the module's comment).
#[derive(Debug, Clone, Default)]
pub struct SlotTable {
    /// Power-of-two many entries (or none): `tag << 32 | slot`.
    entries: Box<[u64]>,
    /// How many entries are taken.
    len: usize,
}

/// The tag kept of a hash: its high half (the home position uses the low
/// bits, so the tag discriminates among ids of the same home), low bit set
/// so that no entry is [`EMPTY`].
#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}

#[inline(always)]
fn entry_of(tag: u32, slot: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(slot)
}

#[inline(always)]
fn slot_of(entry: u64) -> u32 {
    entry as u32
}

#[inline(always)]
fn tag_in(entry: u64) -> u32 {
    (entry >> 32) as u32
}

impl SlotTable {
    /// How many slot numbers are kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of entries allocated (reported by benchmarks).
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    /// The entry where a probe for `hash` starts (`None` while nothing is
    /// allocated): what a batch prefetches before it needs the look-up.
    #[inline(always)]
    pub fn home_entry(&self, hash: u64) -> Option<&u64> {
        self.entries.get((hash as usize) & self.mask())
    }

    /// The slot the home entry of `hash` names when its tag matches: a
    /// guess (a collision or a displaced entry makes it wrong or `None`),
    /// good only for a prefetch.
    #[inline(always)]
    pub fn guess(&self, hash: u64) -> Option<u32> {
        let entry = *self.home_entry(hash)?;
        (entry != EMPTY && tag_in(entry) == tag_of(hash)).then_some(slot_of(entry))
    }

    /// The position of the entry for `hash` whose slot `eq` accepts.
    #[inline(always)]
    fn position(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
        let mask = self.mask();
        let tag = tag_of(hash);
        let mut pos = (hash as usize) & mask;
        // Ends: the load bound leaves empty entries, and `get` is `None`
        // only for an unallocated table.
        loop {
            let entry = *self.entries.get(pos)?;
            if entry == EMPTY {
                return None;
            }
            if tag_in(entry) == tag && eq(slot_of(entry)) {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// The slot for `hash` that `eq` accepts (it compares the slot's id).
    #[inline(always)]
    pub fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let pos = self.position(hash, eq)?;
        self.entries.get(pos).map(|&e| slot_of(e))
    }

    /// Keeps `slot` under `hash`; the caller knows no entry of `hash`
    /// accepts the same id. `hash_of` gives a kept slot's hash (growth
    /// places every entry again).
    pub fn insert_unique(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        if (self.len + 1) * LOAD_DEN > self.entries.len() * LOAD_NUM {
            self.grow(&hash_of);
        }
        Self::place(&mut self.entries, hash, slot);
        self.len += 1;
    }

    /// Puts the entry in the first empty position from its home.
    fn place(entries: &mut [u64], hash: u64, slot: u32) {
        let mask = entries.len().wrapping_sub(1);
        let mut pos = (hash as usize) & mask;
        // Ends at an empty entry: callers keep the load below one.
        while let Some(entry) = entries.get_mut(pos) {
            if *entry == EMPTY {
                *entry = entry_of(tag_of(hash), slot);
                return;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Twice the entries (at least [`MIN_CAPACITY`]), every kept slot
    /// placed again from its id's hash.
    fn grow(&mut self, hash_of: &impl Fn(u32) -> u64) {
        let capacity = (self.entries.len() * 2).max(MIN_CAPACITY);
        let mut entries = vec![EMPTY; capacity].into_boxed_slice();
        for &entry in self.entries.iter().filter(|&&e| e != EMPTY) {
            let slot = slot_of(entry);
            Self::place(&mut entries, hash_of(slot), slot);
        }
        self.entries = entries;
    }

    /// Removes the entry for `hash` that `eq` accepts: its slot. The
    /// entries after it in its run move back into the hole when their home
    /// allows (backward shift), so no tombstone is left and a probe still
    /// ends at the first empty entry. `hash_of` gives a kept slot's hash.
    pub fn remove(
        &mut self,
        hash: u64,
        eq: impl FnMut(u32) -> bool,
        hash_of: impl Fn(u32) -> u64,
    ) -> Option<u32> {
        let pos = self.position(hash, eq)?;
        let mask = self.mask();
        let removed = slot_of(*self.entries.get(pos)?);
        let mut hole = pos;
        let mut next = (pos + 1) & mask;
        loop {
            let entry = match self.entries.get(next) {
                Some(&e) if e != EMPTY => e,
                _ => break,
            };
            let home = (hash_of(slot_of(entry)) as usize) & mask;
            // The entry may fill the hole when the hole lies on its probe
            // path: from its home to where it is now.
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                if let Some(h) = self.entries.get_mut(hole) {
                    *h = entry;
                }
                hole = next;
            }
            next = (next + 1) & mask;
        }
        if let Some(h) = self.entries.get_mut(hole) {
            *h = EMPTY;
        }
        self.len -= 1;
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Keys whose hash is chosen, so collisions and wrap-around are forced.
    fn check_against_model(hashes: &[u64], ops: &[(bool, usize)]) {
        let mut table = SlotTable::default();
        let mut model: HashMap<u32, u64> = HashMap::new();
        // Slot k stands for key k; its hash is hashes[k].
        let hash_of = |slot: u32| hashes[slot as usize];
        for &(insert, key) in ops {
            let key = key % hashes.len();
            let slot = key as u32;
            let hash = hashes[key];
            if insert {
                if model.contains_key(&slot) {
                    continue;
                }
                table.insert_unique(hash, slot, hash_of);
                model.insert(slot, hash);
            } else {
                let got = table.remove(hash, |s| s == slot, hash_of);
                assert_eq!(got, model.remove(&slot).map(|_| slot));
            }
            assert_eq!(table.len(), model.len());
            for (k, &h) in hashes.iter().enumerate() {
                let k = k as u32;
                let found = table.find(h, |s| s == k);
                assert_eq!(found, model.contains_key(&k).then_some(k), "key {k}");
            }
        }
    }

    #[test]
    fn colliding_and_wrapping_keys_are_found_through_removals() {
        // Many keys share a home and tag; some sit at the table's end so
        // runs wrap to the start.
        let hashes: Vec<u64> = (0..40u64)
            .map(|k| match k % 4 {
                0 => 7,
                1 => 7 | (k << 40),
                2 => u64::MAX - (k % 3),
                _ => k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            })
            .collect();
        let ops: Vec<(bool, usize)> = (0..400usize)
            .map(|i| ((i * 7) % 5 != 0, (i * 13) % 40))
            .collect();
        check_against_model(&hashes, &ops);
    }

    #[test]
    fn an_empty_table_finds_nothing_and_allocates_nothing() {
        let mut t = SlotTable::default();
        assert_eq!(t.find(3, |_| true), None);
        assert_eq!(t.guess(3), None);
        assert_eq!(t.remove(3, |_| true, |_| 3), None);
        assert_eq!(t.bytes(), 0);
    }
}
