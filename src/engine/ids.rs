//! The id rule and the interner that maps ids to dense indexes.

use std::hash::BuildHasher;

use compact_str::CompactString;
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::error::{Error, Result};

/// Checks the id rule: 1 to `max_len` characters of `[A-Za-z0-9._:@-]`.
pub fn check_id(field: &str, id: &str, max_len: usize) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(field, "id must not be empty"));
    }
    if id.len() > max_len {
        return Err(Error::invalid(
            field,
            format!("id must be at most {max_len} characters, got {}", id.len()),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')))
    {
        return Err(Error::invalid(
            field,
            format!("id may contain only A-Z a-z 0-9 . _ : @ -, found {bad:?}"),
        ));
    }
    Ok(())
}

/// Maps the ids of one kind to dense `u32` indexes. An index, once given,
/// stays with its id for the life of the organization, so cached sets of
/// indexes never point at another entity after a delete and re-create.
///
/// The hash table's entries hold the id itself, inline when it has at most
/// 24 bytes (`CompactString`), beside its index: a look-up compares the id
/// in the bucket it probes and chases no pointer to a heap block (an
/// `Arc<str>` key cost a dependent cache miss per compare). `names` keeps a
/// second copy by index for [`Interner::name`]; ids are short and few next
/// to records, so the copy costs little memory.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    by_name: HashTable<(CompactString, u32)>,
    names: Vec<CompactString>,
}

/// Whether two ids are equal: their bytes compared in at most two
/// (overlapping) word loads each when short, as most ids are, without the
/// call into `memcmp` that `==` on slices makes (a look-up compares an id
/// or two; the call and its length dispatch cost more than the compare).
#[inline]
pub fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Reads `W` bytes at `at` (the caller keeps `at + W <= n`).
    fn word<const W: usize>(s: &[u8], at: usize) -> [u8; W] {
        let mut w = [0u8; W];
        if let Some(src) = s.get(at..at + W) {
            w.copy_from_slice(src);
        }
        w
    }
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=8 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        9..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        _ => a == b,
    }
}

/// The hash of an id: Fx, as the record id index uses.
fn hash_name(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

impl Interner {
    /// The index of `name`, if it was ever interned.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.by_name
            .find(hash_name(name), |(n, _)| same_id(n, name))
            .map(|&(_, ix)| ix)
    }

    /// The index of `name`, interning it if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hash = hash_name(name);
        if let Some(&(_, ix)) = self.by_name.find(hash, |(n, _)| same_id(n, name)) {
            return ix;
        }
        let ix = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name = CompactString::from(name);
        self.names.push(name.clone());
        self.by_name
            .insert_unique(hash, (name, ix), |(n, _)| hash_name(n));
        ix
    }

    /// The id of index `ix`.
    pub fn name(&self, ix: u32) -> &str {
        self.names
            .get(ix as usize)
            .map_or("", CompactString::as_str)
    }

    /// How many ids were interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rule_accepts_allowed_characters() {
        assert!(check_id("id", "alice@acme.example:1_2-3", 128).is_ok());
    }

    #[test]
    fn id_rule_refuses_empty_long_and_bad_characters() {
        assert!(check_id("id", "", 128).is_err());
        assert!(check_id("id", &"a".repeat(129), 128).is_err());
        let err = check_id("users[0].id", "bad id", 128).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().starts_with("users[0].id: id may contain"));
    }

    #[test]
    fn same_id_agrees_with_equality_at_every_length() {
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_id(&a, &a.clone()), "{a}");
            // One byte changed at each position, and one byte more.
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_id(&a, &b), "{a} vs {b}");
            }
            assert!(!same_id(&a, &format!("{a}x")));
        }
    }

    #[test]
    fn interner_keeps_indexes_stable() {
        let mut i = Interner::default();
        let a = i.intern("a");
        let b = i.intern("b");
        assert_eq!(i.intern("a"), a);
        assert_ne!(a, b);
        assert_eq!(i.name(b), "b");
        assert_eq!(i.get("c"), None);
    }
}
