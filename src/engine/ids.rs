//! The id rule and the interner that maps ids to dense indexes.

use std::sync::Arc;

use rustc_hash::FxHashMap;

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
#[derive(Debug, Clone, Default)]
pub struct Interner {
    by_name: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Interner {
    /// The index of `name`, if it was ever interned.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The index of `name`, interning it if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(ix) = self.by_name.get(name) {
            return *ix;
        }
        let ix = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.by_name.insert(name, ix);
        ix
    }

    /// The id of index `ix`.
    pub fn name(&self, ix: u32) -> &str {
        self.names.get(ix as usize).map(|n| &**n).unwrap_or("")
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
