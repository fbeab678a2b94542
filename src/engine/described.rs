//! The record step 7 looks at: a stored record, or one described in the
//! request (SPEC section 3, issue "records described in the request"), with
//! the input rules a description must meet.

use std::collections::BTreeMap;

use super::error::{Error, Result};
use super::ids::{check_id, Interner};
use super::model::{OwnerRef, RecordDescription};
use super::org::{Attributes, Module, OrgState, Owner, Record, Share};
use super::plan::Limits;

/// A record's attributes as step 7 reads them: interned pairs of a stored
/// record with the module's terms, or the names a description carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttributesView<'a> {
    /// A stored record's, interned in `terms`.
    Stored(&'a Attributes, &'a Interner),
    /// A description's, as written.
    Described(&'a BTreeMap<String, String>),
}

impl<'a> AttributesView<'a> {
    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            AttributesView::Stored(a, _) => a.is_empty(),
            AttributesView::Described(m) => m.is_empty(),
        }
    }

    /// Whether the record has every pair of `criteria` (interned in
    /// `terms`, the module's): integers compared for a stored record,
    /// names for a described one.
    pub(crate) fn has_all(&self, criteria: &Attributes, terms: &Interner) -> bool {
        match self {
            AttributesView::Stored(a, _) => a.has_all(criteria),
            AttributesView::Described(m) => criteria
                .named(terms)
                .all(|(k, v)| m.get(k).is_some_and(|have| have == v)),
        }
    }

    /// The pairs as names, in key order.
    pub(crate) fn named(&self) -> Vec<(&'a str, &'a str)> {
        match *self {
            AttributesView::Stored(a, terms) => {
                let mut v: Vec<_> = a.named(terms).collect();
                v.sort_unstable();
                v
            }
            AttributesView::Described(m) => {
                m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
            }
        }
    }
}

/// The facts of one record that step 7 reads, borrowed from a stored
/// record or from the request, so that deciding either costs no copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    /// Record id.
    pub(crate) id: &'a str,
    /// Owner.
    pub(crate) owner: Owner,
    /// Confidential flag.
    pub(crate) private: bool,
    /// Attributes for criteria rules.
    pub(crate) attributes: AttributesView<'a>,
    /// Manual shares stored for this (module, record id): they are keyed by
    /// the id, so they apply to a description of that id too.
    pub(crate) shares: &'a [Share],
    /// Whether the facts came from the request rather than the store.
    pub(crate) described: bool,
}

impl<'a> RecordView<'a> {
    /// A stored record of `module`.
    pub(crate) fn stored(module: &'a Module, record: &'a Record) -> Self {
        RecordView {
            id: record.id(),
            owner: record.owner,
            private: record.private,
            attributes: AttributesView::Stored(&record.attributes, module.records.terms()),
            shares: &record.shares,
            described: false,
        }
    }
}

/// The record a check names: the request's description when there is one
/// (it wins over a stored record of the same id), else the stored record.
/// `Ok(None)` is an unknown record (step 6 denies); a description whose
/// owner names nobody of the organization is bad input. `hash` is the
/// id's ([`super::records::Records::id_hash`]).
pub(crate) fn record_view<'a>(
    org: &OrgState,
    module: &'a Module,
    id: &'a str,
    hash: u64,
    described: Option<&'a RecordDescription>,
) -> Result<Option<RecordView<'a>>> {
    let stored = module.records.get_hashed(id, hash);
    let Some(d) = described else {
        return Ok(stored.map(|r| RecordView::stored(module, r)));
    };
    let owner = described_owner(org, &d.owner)?;
    Ok(Some(RecordView {
        id,
        owner,
        private: d.private,
        attributes: AttributesView::Described(&d.attributes),
        shares: stored.map_or(&[], |r| &r.shares),
        described: true,
    }))
}

/// The owner of a description, resolved. An owner the organization does not
/// have is the caller's mistake, like an unknown `assign_to`: refused, never
/// decided as if nobody owned the record.
pub(crate) fn described_owner(org: &OrgState, owner: &OwnerRef) -> Result<Owner> {
    org.resolve_owner(owner).ok_or_else(|| match owner {
        OwnerRef::User(u) => Error::invalid(
            "record.owner.user_id",
            format!(
                "names no user of organization '{}': '{}'",
                org.id,
                super::error::bounded(u)
            ),
        ),
        OwnerRef::Group(g) => Error::invalid(
            "record.owner.group_id",
            format!(
                "names no group of organization '{}': '{}'",
                org.id,
                super::error::bounded(g)
            ),
        ),
    })
}

/// Rules a description meets whatever the policy: it needs the record id it
/// describes, and its attributes keep the limits of stored records (so a
/// check cannot carry what a write could not).
pub(crate) fn check_description(
    record_id: Option<&str>,
    d: &RecordDescription,
    limits: &Limits,
) -> Result<()> {
    let Some(id) = record_id else {
        return Err(Error::invalid(
            "record_id",
            "a described record needs the record_id it describes",
        ));
    };
    check_id("record_id", id, limits.id_length)?;
    super::plan::check_attributes("record.attributes", &d.attributes, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(attributes: &[(&str, &str)]) -> RecordDescription {
        RecordDescription {
            owner: OwnerRef::User("u".into()),
            private: false,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn field(r: Result<()>) -> String {
        match r {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_description_keeps_the_limits_of_stored_records() {
        let limits = Limits::default();
        let ok = described(&[("region", "EMEA")]);
        assert!(check_description(Some("L1"), &ok, &limits).is_ok());
        assert_eq!(field(check_description(None, &ok, &limits)), "record_id");
        let many: Vec<(String, String)> = (0..=limits.record_attributes)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let many = RecordDescription {
            attributes: many.into_iter().collect(),
            ..ok.clone()
        };
        assert_eq!(
            field(check_description(Some("L1"), &many, &limits)),
            "record.attributes"
        );
        let bad_key = described(&[("a b", "v")]);
        assert_eq!(
            field(check_description(Some("L1"), &bad_key, &limits)),
            "record.attributes.a b"
        );
        let long = "x".repeat(limits.attribute_value_bytes + 1);
        let long_value = described(&[("k", long.as_str())]);
        assert_eq!(
            field(check_description(Some("L1"), &long_value, &limits)),
            "record.attributes.k"
        );
    }
}
