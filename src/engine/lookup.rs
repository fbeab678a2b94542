//! Answers derived from the decision: field levels of a record, the query
//! plan of `Filter`, the records a subject may act on, and the users who may
//! act on a record.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rustc_hash::FxHashSet;

use super::decision::{
    decide, field_level, profile_allows, resolve_subject, CheckRequest, ShiftTime, Subject, Trace,
};
use super::described::record_view;
use super::error::{Error, Result};
use super::expand::Expand;
use super::explain::{field_word, Need, TraceStep};
use super::model::{AccessLevel, FieldLevel, OwnerRef, RecordDescription};
use super::org::{Module, ModuleIx, OrgState, Owner, RecordIx};
use super::paths::{cover, record_level, Asker, Plan};
use super::records::{Record, Records};

/// The effective level of every field of a module for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldsAnswer {
    /// Field and level, in the module's field order.
    pub fields: Vec<(String, FieldLevel)>,
    /// The subject's record level (FULL without a record when the profile
    /// speaks, as there is no record to cap it).
    pub record_level: AccessLevel,
    /// With `explain`: per field (same order), why it has its level.
    pub details: Vec<String>,
    /// With `explain` and a record: step 7's paths, as Check explains them
    /// for `edit` (what an EDITABLE field needs).
    pub trace: Vec<TraceStep>,
}

/// A `CheckFields` question.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldsQuery<'a> {
    /// User id.
    pub subject: &'a str,
    /// Module id.
    pub module: &'a str,
    /// Record id, if any.
    pub record: Option<&'a str>,
    /// The record described instead of stored (needs `record`).
    pub described: Option<&'a RecordDescription>,
    /// Whether to say why each field has its level.
    pub explain: bool,
}

/// `CheckFields`: each field's level, capped by the record access (READ →
/// at most READ_ONLY; none → HIDDEN).
pub fn check_fields<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    q: &FieldsQuery<'_>,
    at: DateTime<Utc>,
) -> Result<FieldsAnswer> {
    let (module_ix, module) = org
        .modules
        .by_id(q.module)
        .ok_or_else(|| Error::not_found("module", q.module, "module"))?;
    let module_ix = ModuleIx(module_ix);
    if q.described.is_some() && q.record.is_none() {
        return Err(Error::invalid(
            "record_id",
            "a described record needs the record_id it describes",
        ));
    }
    let record = match q.record {
        Some(id) => Some(
            record_view(org, module, id, Records::id_hash(id), q.described)?
                .ok_or_else(|| Error::not_found("record", id, "record_id"))?,
        ),
        None => None,
    };
    let all = |level: FieldLevel, record_level: AccessLevel, why: &str| FieldsAnswer {
        fields: module
            .def
            .fields
            .iter()
            .map(|f| (f.clone(), level))
            .collect(),
        record_level,
        details: if q.explain {
            module
                .def
                .fields
                .iter()
                .map(|_| format!("{}: {why}", field_word(level)))
                .collect()
        } else {
            Vec::new()
        },
        trace: Vec::new(),
    };
    let mut trace = Trace::new(false);
    let (subject_ix, user) = match resolve_subject(org, q.subject, ShiftTime::At(at), &mut trace) {
        Subject::Decided(reason, true) => {
            return Ok(all(
                FieldLevel::Editable,
                AccessLevel::Full,
                &format!(
                    "'{}' is the organization's administrator ({})",
                    q.subject,
                    reason.as_str()
                ),
            ))
        }
        Subject::Decided(reason, false) => {
            return Ok(all(
                FieldLevel::Hidden,
                AccessLevel::None,
                &format!("'{}' is denied everything ({})", q.subject, reason.as_str()),
            ))
        }
        Subject::User(ix, user) => (ix, user),
    };
    let mut steps = Vec::new();
    let record_level = match &record {
        Some(record) => {
            let asker = Asker::new(org, x, subject_ix, user, module_ix, module);
            let need = Need {
                action: "edit",
                required: AccessLevel::ReadWrite,
            };
            record_level(&asker, record, q.explain.then_some((&need, &mut steps))).level
        }
        None => AccessLevel::Full,
    };
    let cap = match record_level {
        AccessLevel::None => FieldLevel::Hidden,
        AccessLevel::Read => FieldLevel::ReadOnly,
        AccessLevel::ReadWrite | AccessLevel::Full => FieldLevel::Editable,
    };
    let mut fields = Vec::with_capacity(module.def.fields.len());
    let mut details = Vec::new();
    for f in &module.def.fields {
        let by_profile = field_level(org, user, module_ix, f);
        let level = by_profile.min(cap);
        if q.explain {
            let profiles = profiles_on_field(org, user, module_ix, module, f, by_profile);
            details.push(field_detail(profiles, by_profile, cap, record_level));
        }
        fields.push((f.clone(), level));
    }
    Ok(FieldsAnswer {
        fields,
        record_level,
        details,
        trace: steps,
    })
}

/// What the effective profiles say of one field, for `explain`: each
/// profile that allows `view` on the module and its word for the field.
fn profiles_on_field(
    org: &OrgState,
    user: super::org::UserHot,
    module_ix: ModuleIx,
    module: &Module,
    field: &str,
    by_profile: FieldLevel,
) -> String {
    let mut viewing = Vec::new();
    let mut naming = Vec::new();
    for p in org.effective_profiles(user) {
        let Some(m) = p.modules.get(&module_ix).filter(|m| m.views()) else {
            continue;
        };
        if viewing.contains(&p.def.id.as_str()) {
            continue;
        }
        viewing.push(p.def.id.as_str());
        match m.fields.get(field) {
            Some(l) => naming.push(format!("'{}' makes it {}", p.def.id, field_word(*l))),
            None => naming.push(format!("'{}' does not name it (EDITABLE)", p.def.id)),
        }
    }
    if viewing.is_empty() {
        format!(
            "no effective profile allows view on '{}', so the field is HIDDEN",
            module.def.id
        )
    } else {
        format!(
            "profiles give {} ({})",
            field_word(by_profile),
            naming.join("; ")
        )
    }
}

/// Why one field has its level: the profiles' level, then the record's cap.
fn field_detail(
    profiles: String,
    by_profile: FieldLevel,
    cap: FieldLevel,
    record: AccessLevel,
) -> String {
    let level = by_profile.min(cap);
    if cap < by_profile {
        format!(
            "{}: {profiles}, capped by record access {} to {}",
            field_word(level),
            record.as_str(),
            field_word(cap)
        )
    } else {
        format!("{}: {profiles}", field_word(level))
    }
}

/// `Filter`: the records a subject may act on, as a query plan. A record
/// qualifies when `all`, or its owner is in `owners`, or it is not private
/// and (`public_non_private` or its owner is in `owners_non_private`), or its
/// id is in `record_ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPlan {
    /// Every record.
    pub all: bool,
    /// Owners whose records all qualify.
    pub owners: Vec<OwnerRef>,
    /// Owners whose non-private records qualify.
    pub owners_non_private: Vec<OwnerRef>,
    /// Every non-private record qualifies.
    pub public_non_private: bool,
    /// Records shared one by one (or matched by a criteria rule).
    pub record_ids: Vec<String>,
}

impl FilterPlan {
    /// Whether a record with this owner, privacy and id qualifies.
    pub fn selects(&self, owner: &OwnerRef, private: bool, id: &str) -> bool {
        self.all
            || self.owners.contains(owner)
            || (!private && (self.public_non_private || self.owners_non_private.contains(owner)))
            || self.record_ids.iter().any(|r| r == id)
    }
}

/// The query plan of a subject (what-if simulation compares two of them).
pub(crate) fn plan<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module_id: &str,
    action: &str,
    shift_time: ShiftTime,
) -> Result<(ModuleIx, Plan)> {
    let (module_ix, module) = org
        .modules
        .by_id(module_id)
        .ok_or_else(|| Error::not_found("module", module_id, "module"))?;
    let module_ix = ModuleIx(module_ix);
    let required = module.required_level(action).ok_or_else(|| {
        Error::invalid(
            "action",
            format!("'{action}' is neither a standard action nor a custom action of module '{module_id}'"),
        )
    })?;
    let mut plan = Plan::default();
    let mut trace = Trace::new(false);
    let (s_ix, s) = match resolve_subject(org, subject, shift_time, &mut trace) {
        Subject::Decided(_, allowed) => {
            plan.all = allowed;
            return Ok((module_ix, plan));
        }
        Subject::User(ix, user) => (ix, user),
    };
    if !profile_allows(org, s, module_ix, action) {
        return Ok((module_ix, plan));
    }
    // An action that needs no record level reaches every record.
    if required == AccessLevel::None {
        plan.all = true;
        return Ok((module_ix, plan));
    }
    let asker = Asker::new(org, x, s_ix, s, module_ix, module);
    Ok((module_ix, cover(&asker, required)))
}

/// `Filter` with ids written out, lists sorted.
pub fn filter<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<FilterPlan> {
    let (_, plan) = plan(org, x, subject, module, action, ShiftTime::At(at))?;
    let owners = |set: &FxHashSet<Owner>| {
        let mut v: Vec<OwnerRef> = set.iter().map(|o| org.owner_ref(*o)).collect();
        v.sort();
        v
    };
    if plan.all {
        return Ok(FilterPlan {
            all: true,
            ..FilterPlan::default()
        });
    }
    Ok(FilterPlan {
        all: false,
        owners: owners(&plan.owners),
        owners_non_private: owners(&plan.owners_non_private),
        public_non_private: plan.public_non_private,
        record_ids: plan.record_ids.iter().map(|r| r.to_string()).collect(),
    })
}

/// `LookupRecords`: every record id the subject may act on, sorted; the
/// `Filter` plan evaluated against the module's records.
pub fn lookup_records<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module_id: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<Vec<Arc<str>>> {
    Ok(record_set(org, x, subject, module_id, action, at)?.to_vec())
}

/// `LookupRecords` as a [`RecordSet`]: the ids selected here, under the
/// read lock, as bits in the module's shared order (or copied out), read
/// in order only as pages are asked for.
pub fn record_set<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    subject: &str,
    module_id: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<RecordSet> {
    let (module_ix, plan) = plan(org, x, subject, module_id, action, ShiftTime::At(at))?;
    let Some(module) = org.module(module_ix) else {
        return RecordSetBuilder::default().finish();
    };
    if let Some(set) = ranked_set(&module.records, &plan) {
        return Ok(set);
    }
    copied_set(&module.records, &plan)
}

/// How many ids `plan` can select at most (the vectors are reserved for
/// it, so they are not copied again as they double).
fn most_selected(records: &Records, plan: &Plan) -> usize {
    let most = if plan.all || plan.public_non_private {
        records.len()
    } else {
        plan.owners
            .iter()
            .chain(&plan.owners_non_private)
            .map(|o| records.owned_count(*o))
            .sum::<usize>()
    };
    most.saturating_add(plan.record_ids.len())
}

/// The lookup as a bit per rank in the module's [`IdOrder`]: under the
/// read lock a bit is set per id (no id bytes copied; the bitmap is an
/// eighth of a byte per record of the module), and the bits read in order
/// are the ids in order, so there is no sort at all. `None` (the caller
/// copies the ids instead) when the order cannot be built or a shared id
/// is not a record of the module.
fn ranked_set(records: &Records, plan: &Plan) -> Option<RecordSet> {
    let order = records.id_order()?;
    let mut marks = Marks {
        bits: vec![0; order.len().div_ceil(64)],
        len: 0,
    };
    let rank = |ix: RecordIx| order.rank.get(ix.0 as usize).copied();
    if plan.all || plan.public_non_private {
        for (ix, r) in records.iter() {
            if plan.covers(r.owner, r.private) {
                marks.set(rank(ix)?)?;
            }
        }
    } else {
        // The owner index alone: whose records all qualify needs no
        // read of the record's slot (a cache miss per record).
        let index = records.owner_index();
        for owner in &plan.owners {
            for ix in index.get(owner).into_iter().flatten() {
                marks.set(rank(*ix)?)?;
            }
        }
        for owner in &plan.owners_non_private {
            for (ix, r) in records.owned_by(*owner) {
                if !r.private {
                    marks.set(rank(ix)?)?;
                }
            }
        }
    }
    // A shared record the owner parts already selected has its bit set
    // already: a bit is counted once.
    for id in &plan.record_ids {
        marks.set(rank(records.ix(id)?)?)?;
    }
    Some(RecordSet {
        len: marks.len,
        ids: Ids::Ranked {
            order: Arc::clone(order),
            bits: marks.bits,
        },
    })
}

/// The ranks a lookup selected, a bit each.
struct Marks {
    bits: Vec<u64>,
    /// How many bits are set.
    len: usize,
}

impl Marks {
    /// Sets the bit of rank `r` (`None` past the order's end: a free
    /// slot's rank, which no index should hold).
    fn set(&mut self, r: u32) -> Option<()> {
        let r = r as usize;
        let word = self.bits.get_mut(r / 64)?;
        let bit = 1u64 << (r % 64);
        if *word & bit == 0 {
            *word |= bit;
            self.len += 1;
        }
        Some(())
    }
}

/// The lookup with its ids copied out, sorted as pages ask.
fn copied_set(records: &Records, plan: &Plan) -> Result<RecordSet> {
    let expect = most_selected(records, plan);
    let mut set = RecordSetBuilder {
        bytes: String::new(),
        keys: Vec::with_capacity(expect),
        expect,
    };
    if plan.all || plan.public_non_private {
        for (_, r) in records.iter() {
            if plan.covers(r.owner, r.private) {
                set.push(r.id())?;
            }
        }
    } else {
        // Owners are disjoint (`cover` removes from `owners_non_private`
        // what `owners` has) and a record has one owner, so no id is
        // collected twice.
        for owner in &plan.owners {
            for (_, r) in records.owned_by(*owner) {
                set.push(r.id())?;
            }
        }
        for owner in &plan.owners_non_private {
            for (_, r) in records.owned_by(*owner) {
                if !r.private {
                    set.push(r.id())?;
                }
            }
        }
    }
    // A record shared one by one that the owner parts already selected is
    // not listed again: this replaces a sort and dedup of the whole set.
    for id in &plan.record_ids {
        let covered = records
            .get(id)
            .is_some_and(|r| plan.covers(r.owner, r.private));
        if !covered {
            set.push(id)?;
        }
    }
    set.finish()
}

/// Where one id's bytes are in a [`RecordSet`], with the first 16 bytes as
/// two big-endian integers (zero-padded), so that ordering compares
/// integers and reads the bytes only when those are equal.
#[derive(Debug, Clone, Copy)]
struct IdKey {
    hi: u64,
    lo: u64,
    start: u32,
    len: u32,
}

impl IdKey {
    fn new(id: &str, start: u32, len: u32) -> IdKey {
        let mut head = [0u8; 16];
        let n = id.len().min(16);
        if let (Some(to), Some(from)) = (head.get_mut(..n), id.as_bytes().get(..n)) {
            to.copy_from_slice(from);
        }
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = head;
        IdKey {
            hi: u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            lo: u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
            start,
            len,
        }
    }

    /// The first 16 bytes as one integer: its order is theirs.
    fn key(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }

    fn text<'a>(&self, bytes: &'a str) -> &'a str {
        let start = self.start as usize;
        bytes
            .get(start..start + self.len as usize)
            .unwrap_or_default()
    }
}

/// Byte order of the ids (`str`'s order): zero padding cannot invert two
/// prefixes, since a shorter id that is a prefix sorts first either way.
fn id_order(bytes: &str, a: &IdKey, b: &IdKey) -> std::cmp::Ordering {
    a.key()
        .cmp(&b.key())
        .then_with(|| a.text(bytes).cmp(b.text(bytes)))
}

/// Below this many ids a comparison sort is cheaper than a radix sort's
/// fixed cost (a histogram of 16 digits × 256 buckets).
const RADIX_FROM: usize = 256;

/// A set at most this many times the ids asked for so far is sorted
/// whole at once: a radix sort is linear, so selecting the smallest ids
/// first (and again as later pages double them) would cost as much.
const SORT_WHOLE_PAGES: usize = 16;

/// Sorts `keys` in [`id_order`]: by the 16-byte key alone (a radix sort,
/// which skips the bytes every id shares), then by the bytes only inside
/// the runs of equal keys (ids that share their first 16 bytes).
fn sort_ids(bytes: &str, keys: &mut [IdKey]) {
    if keys.len() < RADIX_FROM {
        keys.sort_unstable_by(|a, b| id_order(bytes, a, b));
        return;
    }
    sort_by_head(keys, IdKey::key, |k| k.text(bytes));
}

/// Sorts `keys` by `head` (the id's first 16 bytes as an integer) with a
/// radix sort, then the runs of equal heads by `text` (the whole id).
fn sort_by_head<'a, K: Copy>(keys: &mut [K], head: fn(&K) -> u128, text: impl Fn(&K) -> &'a str) {
    radsort::sort_by_key(keys, head);
    let mut rest = keys;
    while let Some((first, _)) = rest.split_first() {
        let key = head(first);
        let run = rest.iter().take_while(|k| head(k) == key).count();
        let (same, after) = rest.split_at_mut(run);
        if same.len() > 1 {
            same.sort_unstable_by(|a, b| text(a).cmp(text(b)));
        }
        rest = after;
    }
}

/// A record's place while its module's [`IdOrder`] is built: the id's
/// first 16 bytes as an integer (as [`IdKey`]) and its slot, where the
/// whole id is read when two heads tie.
#[derive(Debug, Clone, Copy)]
struct SlotKey {
    head: u128,
    slot: u32,
}

/// A module's ids in the API's order (`str`'s byte order), with each
/// slot's rank in it: built once per set of ids ([`Records::id_order`])
/// and shared by every lookup of the module until a record is created or
/// deleted. A lookup keeps it (an `Arc`) in its snapshot, so its pages
/// read ids of its own revision even after a write replaced the order.
#[derive(Debug)]
pub struct IdOrder {
    /// The ids, concatenated in order.
    bytes: String,
    /// Where each id ends in `bytes`, by rank.
    ends: Vec<u32>,
    /// Rank of the record in each slot (`u32::MAX`: a free slot).
    pub(crate) rank: Vec<u32>,
}

impl IdOrder {
    /// The order of `records`' ids; `None` when their bytes or count
    /// outgrow u32 offsets (the caller copies the ids instead). With an
    /// order built before some creates and deletes (`stale`), the ids it
    /// still holds at the same slots keep their relative order: only the
    /// new ones are sorted, then merged in one linear pass.
    pub fn of(records: &Records, stale: Option<&IdOrder>) -> Option<IdOrder> {
        let text = |k: &SlotKey| records.at(RecordIx(k.slot)).map_or("", Record::id);
        let key = |ix: RecordIx, r: &Record| SlotKey {
            head: IdKey::new(r.id(), 0, 0).key(),
            slot: ix.0,
        };
        // Old ranks still held by the same id in the same slot, by old
        // rank (`u32::MAX`: gone); every other record is new.
        let mut kept = vec![u32::MAX; stale.map_or(0, IdOrder::len)];
        let mut fresh = Vec::new();
        for (ix, r) in records.iter() {
            let old = stale.and_then(|o| {
                let rank = *o.rank.get(ix.0 as usize)?;
                (o.id(rank) == r.id()).then_some(rank)
            });
            match old.and_then(|rank| kept.get_mut(rank as usize)) {
                Some(slot) => *slot = ix.0,
                None => fresh.push(key(ix, r)),
            }
        }
        if fresh.len() < RADIX_FROM {
            fresh.sort_unstable_by(|a, b| a.head.cmp(&b.head).then_with(|| text(a).cmp(text(b))));
        } else {
            sort_by_head(&mut fresh, |k| k.head, text);
        }
        let total: usize = records.iter().map(|(_, r)| r.id().len()).sum();
        u32::try_from(total).ok()?;
        let mut order = IdOrder {
            bytes: String::with_capacity(total),
            ends: Vec::with_capacity(records.len()),
            rank: vec![u32::MAX; records.slot_count()],
        };
        let mut old = kept.iter().filter(|s| **s != u32::MAX).peekable();
        let mut new = fresh.iter().map(|k| k.slot).peekable();
        loop {
            // The smaller of the next kept id and the next new id.
            let slot = match (old.peek(), new.peek()) {
                (Some(&&o), Some(&n)) => {
                    let id_of = |slot: u32| records.at(RecordIx(slot)).map_or("", Record::id);
                    if id_of(o) < id_of(n) {
                        old.next();
                        o
                    } else {
                        new.next();
                        n
                    }
                }
                (Some(&&o), None) => {
                    old.next();
                    o
                }
                (None, Some(&n)) => {
                    new.next();
                    n
                }
                (None, None) => break,
            };
            let id = records.at(RecordIx(slot)).map_or("", Record::id);
            *order.rank.get_mut(slot as usize)? = u32::try_from(order.ends.len()).ok()?;
            order.bytes.push_str(id);
            order.ends.push(u32::try_from(order.bytes.len()).ok()?);
        }
        Some(order)
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of rank `r` (empty past the end, which no lookup asks).
    pub fn id(&self, r: u32) -> &str {
        let r = r as usize;
        let start = match r.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(r).copied().unwrap_or(start);
        self.bytes
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

/// Collects the ids of a [`RecordSet`].
#[derive(Default)]
struct RecordSetBuilder {
    bytes: String,
    keys: Vec<IdKey>,
    /// How many ids may come (0: unknown). The bytes are reserved from it
    /// at the first id, so they are not copied again as the buffer
    /// doubles (5.8 M instructions of a 97,712-id lookup's reallocations).
    expect: usize,
}

impl RecordSetBuilder {
    fn push(&mut self, id: &str) -> Result<()> {
        if self.bytes.capacity() == 0 && self.expect > 1 {
            // Ids of one module are mostly of one length; a longer one
            // later grows the buffer as before. Reserved but untouched
            // pages of the buffer cost no resident memory.
            self.bytes
                .reserve(self.expect.saturating_mul(id.len().saturating_add(4)));
        }
        // Offsets are u32 to keep a key at 24 bytes; a set that outgrows
        // them is refused rather than cut short.
        let end = self.bytes.len().saturating_add(id.len());
        let (Ok(start), Ok(len), Ok(_)) = (
            u32::try_from(self.bytes.len()),
            u32::try_from(id.len()),
            u32::try_from(end),
        ) else {
            return Err(Error::invalid(
                "module",
                "the records found hold more than 4 GiB of ids; ask with a narrower action or module",
            ));
        };
        self.keys.push(IdKey::new(id, start, len));
        self.bytes.push_str(id);
        Ok(())
    }

    fn finish(self) -> Result<RecordSet> {
        Ok(RecordSet {
            len: self.keys.len(),
            ids: Ids::Copied {
                bytes: self.bytes,
                order: Mutex::new(Order {
                    keys: self.keys,
                    sorted: 0,
                }),
            },
        })
    }
}

/// The ids of one lookup, complete and unique: a bit per id in the
/// module's shared [`IdOrder`] (kept alive by the set, so its pages are of
/// the lookup's revision), or, when no order can be built, copied once
/// into one buffer (no reference count or allocation per id) and sorted
/// lazily: a page puts in order only what it needs, so the first page
/// goes out after one linear selection instead of a sort of the whole set.
#[derive(Debug)]
pub struct RecordSet {
    len: usize,
    ids: Ids,
}

/// Where a [`RecordSet`]'s ids are.
#[derive(Debug)]
enum Ids {
    /// Copied out of the organization, ordered as pages ask.
    Copied { bytes: String, order: Mutex<Order> },
    /// A bit per rank in the module's shared order: set bits, read from
    /// the lowest, are the ids in order.
    Ranked { order: Arc<IdOrder>, bits: Vec<u64> },
}

#[derive(Debug)]
struct Order {
    keys: Vec<IdKey>,
    /// `keys[..sorted]` are the smallest ids, in order.
    sorted: usize,
}

impl RecordSet {
    /// A set of the given ids (tests and tools; a lookup builds its own).
    /// Repeated ids are kept once.
    pub fn from_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<RecordSet> {
        let mut seen = FxHashSet::default();
        let mut set = RecordSetBuilder::default();
        for id in ids {
            if seen.insert(id) {
                set.push(id)?;
            }
        }
        set.finish()
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids of `offset..offset + count` in sorted order (fewer at the end).
    pub fn page(&self, offset: usize, count: usize) -> Vec<String> {
        let mut out = Vec::new();
        self.each_in_page(offset, count, |id| out.push(id.to_string()));
        out
    }

    /// Calls `each` on the ids of `offset..offset + count` in sorted order
    /// (fewer at the end), borrowed from the set: a page encoded straight
    /// into its message copies each id once, with no `String` per id.
    pub fn each_in_page(&self, offset: usize, count: usize, mut each: impl FnMut(&str)) {
        let start = offset.min(self.len);
        let end = offset.saturating_add(count).min(self.len);
        match &self.ids {
            Ids::Copied { .. } => self.with_sorted(start, end, |bytes, keys| {
                for k in keys {
                    each(k.text(bytes));
                }
            }),
            Ids::Ranked { order, bits } => {
                // Words before the page are skipped by their count of
                // bits (a page of a 200,000-record module reads 3,125
                // words at most), then the page's bits are read in order.
                let (mut skip, mut left) = (start, end - start);
                for (at, word) in bits.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    let ones = word.count_ones() as usize;
                    if skip >= ones {
                        skip -= ones;
                        continue;
                    }
                    let mut w = *word;
                    for _ in 0..skip {
                        w &= w - 1;
                    }
                    skip = 0;
                    while w != 0 && left > 0 {
                        let rank = at * 64 + w.trailing_zeros() as usize;
                        each(order.id(rank as u32));
                        w &= w - 1;
                        left -= 1;
                    }
                }
            }
        }
    }

    /// The bytes of all ids together (a page's buffer is sized from it;
    /// for ranks, estimated from the module's average id).
    pub fn id_bytes(&self) -> usize {
        match &self.ids {
            Ids::Copied { bytes, .. } => bytes.len(),
            Ids::Ranked { order, .. } => {
                (order.bytes.len() / order.len().max(1)).saturating_mul(self.len)
            }
        }
    }

    /// Every id, sorted.
    pub fn to_vec(&self) -> Vec<Arc<str>> {
        let mut out = Vec::with_capacity(self.len);
        self.each_in_page(0, self.len, |id| out.push(Arc::from(id)));
        out
    }

    /// Whether the ids are ranks in a module's shared order (tests).
    pub fn is_ranked(&self) -> bool {
        matches!(self.ids, Ids::Ranked { .. })
    }

    /// Runs `f` on the sorted keys of `start..end` of copied ids, ordering
    /// first as much as that needs.
    fn with_sorted<R>(&self, start: usize, end: usize, f: impl FnOnce(&str, &[IdKey]) -> R) -> R {
        let Ids::Copied { bytes, order } = &self.ids else {
            return f("", &[]);
        };
        let mut order = order.lock();
        if end > order.sorted {
            // A set of a few pages is sorted whole; a larger one selects
            // the smallest ids it needs, at least doubling what is in
            // order, so paging through it costs a few linear selections
            // in all, not one a page, and its first page does not wait
            // for the whole set.
            let target = if self.len <= end.saturating_mul(SORT_WHOLE_PAGES) {
                self.len
            } else {
                end.max(order.sorted.saturating_mul(2)).min(self.len)
            };
            let done = order.sorted;
            let bytes = bytes.as_str();
            if let Some(rest) = order.keys.get_mut(done..) {
                let take = target - done;
                if take < rest.len() {
                    rest.select_nth_unstable_by(take, |a, b| id_order(bytes, a, b));
                }
                if let Some(head) = rest.get_mut(..take) {
                    sort_ids(bytes, head);
                }
            }
            order.sorted = target;
        }
        let keys = order.keys.get(start..end).unwrap_or_default();
        f(bytes, keys)
    }
}

/// `LookupSubjects`: every user who may do `action` to the record, sorted;
/// with `on_shift_at`, only those on shift then (otherwise shifts are not
/// considered).
pub fn lookup_subjects<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    module: &str,
    record: &str,
    action: &str,
    on_shift_at: Option<DateTime<Utc>>,
) -> Result<Vec<String>> {
    let (_, m) = org
        .modules
        .by_id(module)
        .ok_or_else(|| Error::not_found("module", module, "module"))?;
    if !m.records.contains(record) {
        return Err(Error::not_found("record", record, "record_id"));
    }
    let shift_time = on_shift_at.map_or(ShiftTime::Ignored, ShiftTime::At);
    let mut out = Vec::new();
    for (_, user) in org.users.iter() {
        let req = CheckRequest {
            subject: user.def.id.as_str().into(),
            module: module.into(),
            action: action.into(),
            record: Some(record.into()),
            ..CheckRequest::default()
        };
        if decide(org, x, &req, shift_time)?.allowed {
            out.push(user.def.id.clone());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paged(set: &RecordSet, page: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < set.len() {
            let got = set.page(offset, page);
            assert!(!got.is_empty(), "a page inside the set is never empty");
            offset += got.len();
            out.extend(got);
        }
        out
    }

    #[test]
    fn ids_sharing_their_first_16_bytes_or_prefixes_sort_as_str() {
        let ids = [
            "L0000002",
            "L000000",
            "",
            "account-0000000000000002",
            "account-0000000000000001",
            "account-000000000000000",
            "account-0000000000000001\u{0}",
            "Zebra",
            "zebra",
            "é",
            "L0000001",
        ];
        let set = RecordSet::from_ids(ids).unwrap();
        let mut want: Vec<&str> = ids.to_vec();
        want.sort_unstable();
        assert_eq!(paged(&set, 3), want);
        let all: Vec<String> = set.to_vec().iter().map(|s| s.to_string()).collect();
        assert_eq!(all, want);
    }

    #[test]
    fn the_radix_sort_keeps_str_order_where_keys_tie() {
        // More ids than RADIX_FROM, most of them sharing their first 16
        // bytes, and pairs equal but for zero padding ("x" and "x\0").
        let mut ids: Vec<String> = (0..RADIX_FROM * 2)
            .map(|i| format!("account-00000000{}", (i * 7919) % 1000))
            .collect();
        ids.extend((0..100).map(|i| format!("L{i:03}")));
        ids.extend((0..100).map(|i| format!("L{i:03}\u{0}")));
        assert_pages_sorted(&ids);
    }

    #[test]
    fn the_radix_sort_orders_ids_of_every_shape() {
        // Ids differing in their last 3 bytes, in 6, and in more than 8
        // (the radix sort skips the bytes every id shares).
        let narrow: Vec<String> = (0..1000)
            .map(|i| format!("L000{:03}", (i * 7) % 1000))
            .collect();
        let middle: Vec<String> = (0..1000)
            .map(|i| format!("L{:07}", (i * 7919) % 1_000_000))
            .collect();
        let wide: Vec<String> = (0..1000)
            .map(|i| format!("{}-{:010}", ["a", "Zz", "zz"][i % 3], (i * 7919) % 100_000))
            .collect();
        for ids in [narrow, middle, wide] {
            assert_pages_sorted(&ids);
        }
    }

    /// Pages of 10 (selections) and one page of all (a whole sort) of the
    /// ids, reversed, equal their sorted unique list.
    fn assert_pages_sorted(ids: &[String]) {
        let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
        want.sort_unstable();
        want.dedup();
        let set = RecordSet::from_ids(ids.iter().rev().map(String::as_str)).unwrap();
        assert_eq!(paged(&set, 10), want, "selections on a set of many pages");
        let whole = RecordSet::from_ids(ids.iter().map(String::as_str)).unwrap();
        assert_eq!(paged(&whole, want.len()), want, "one whole sort");
    }

    #[test]
    fn pages_past_the_end_are_empty_and_repeats_are_kept_once() {
        let set = RecordSet::from_ids(["b", "a", "b"]).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.page(1, 10), vec!["b".to_string()]);
        assert!(set.page(2, 10).is_empty());
        assert!(set.page(usize::MAX, usize::MAX).is_empty());
    }

    fn owner(n: u32) -> Owner {
        Owner::User(crate::engine::org::UserIx(n))
    }

    /// The module order's ids equal a sort of the table's ids from
    /// scratch, and each slot's rank names its own record.
    fn assert_order_is_a_sort(t: &Records) {
        let order = t.id_order().expect("small ids fit u32 offsets");
        let mut want: Vec<&str> = t.iter().map(|(_, r)| r.id()).collect();
        want.sort_unstable();
        let got: Vec<&str> = (0..order.len() as u32).map(|r| order.id(r)).collect();
        assert_eq!(got, want);
        for (ix, r) in t.iter() {
            assert_eq!(order.id(order.rank[ix.0 as usize]), r.id());
        }
        for free in t.free_slots() {
            assert_eq!(order.rank[*free as usize], u32::MAX);
        }
    }

    #[test]
    fn creates_and_deletes_empty_the_module_order_and_rewrites_keep_it() {
        let none = std::collections::BTreeMap::new();
        let mut t = Records::default();
        t.put("b", owner(1), false, &none);
        t.put("a", owner(1), false, &none);
        assert_order_is_a_sort(&t);
        t.put("b", owner(2), true, &none);
        assert!(t.id_order_built(), "a rewrite keeps the ids and slots");
        t.put("c", owner(1), false, &none);
        assert!(!t.id_order_built(), "a create changes the ids");
        assert_order_is_a_sort(&t);
        t.remove("a");
        assert!(!t.id_order_built(), "a delete changes the ids");
        assert_order_is_a_sort(&t);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Creates, rewrites and deletes (slots freed and reused) between
        /// lookups: each time, the order a lookup reads is a sort of the
        /// table's ids from scratch, and a ranked lookup pages as the
        /// copied one.
        #[test]
        fn the_module_order_equals_a_sort_after_random_writes(
            writes in proptest::collection::vec(
                (0u8..4, "(L0000|account-00000000)?[0-9]{0,3}\\x00?[a-b]{0,2}"),
                0..700,
            ),
            every in 1usize..200,
            page in 1usize..300,
        ) {
            let none = std::collections::BTreeMap::new();
            let mut t = Records::default();
            for (i, (op, id)) in writes.iter().enumerate() {
                match op {
                    0 => { t.remove(id); }
                    n => { t.put(id, owner(u32::from(*n)), *n == 2, &none); }
                }
                if i % every == 0 {
                    assert_order_is_a_sort(&t);
                }
            }
            assert_order_is_a_sort(&t);
            let shared: Vec<&str> = t.iter().map(|(_, r)| r.id()).step_by(5).collect();
            for plan in [
                Plan { all: true, ..Plan::default() },
                Plan { public_non_private: true, ..Plan::default() },
                Plan {
                    owners: [owner(1)].into_iter().collect(),
                    owners_non_private: [owner(2)].into_iter().collect(),
                    record_ids: shared.iter().map(|id| Arc::from(*id)).collect(),
                    ..Plan::default()
                },
            ] {
                let ranked = ranked_set(&t, &plan).expect("every id is a record");
                prop_assert!(ranked.is_ranked());
                let copied = copied_set(&t, &plan).unwrap();
                prop_assert!(!copied.is_ranked());
                let want = paged(&copied, t.len().max(1));
                prop_assert_eq!(paged(&ranked, page), want.clone());
                prop_assert_eq!(ranked.to_vec(), copied.to_vec());
            }
        }
    }

    #[test]
    fn a_ranked_lookup_keeps_its_order_after_the_module_changes() {
        // A cursor's snapshot holds the order it was taken from: a write
        // empties the module's cell, but not the snapshot's `Arc`.
        let none = std::collections::BTreeMap::new();
        let mut t = Records::default();
        for i in 0..300 {
            t.put(&format!("r{i:03}"), owner(1), false, &none);
        }
        let plan = Plan {
            all: true,
            ..Plan::default()
        };
        let set = ranked_set(&t, &plan).unwrap();
        let first = set.page(0, 10);
        t.remove("r005");
        t.put("a-first", owner(1), false, &none);
        t.put("r999", owner(1), false, &none);
        let want: Vec<String> = (0..300).map(|i| format!("r{i:03}")).collect();
        assert_eq!(first, want[..10].to_vec());
        assert_eq!(paged(&set, 7), want);
        assert_order_is_a_sort(&t);
    }

    proptest! {
        /// Whatever the page size and whichever page is read first (a
        /// cursor resumes in the middle), the pages are the sorted ids.
        #[test]
        fn any_paging_gives_the_sorted_ids(
            ids in proptest::collection::btree_set("[a-c]{0,3}[0-9]{0,20}", 0..300),
            page in 1usize..50,
            jump in 0usize..300,
        ) {
            let mut shuffled: Vec<&str> = ids.iter().map(String::as_str).collect();
            shuffled.reverse();
            let turn = jump.min(shuffled.len());
            shuffled.rotate_left(turn);
            let set = RecordSet::from_ids(shuffled).unwrap();
            let want: Vec<String> = ids.iter().cloned().collect();
            let at = jump.min(want.len());
            prop_assert_eq!(set.page(at, page), want[at..(at + page).min(want.len())].to_vec());
            prop_assert_eq!(paged(&set, page), want);
        }
    }

    proptest! {
        // Each case draws up to 1,500 ids: fewer cases keep it quick.
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Sets large enough for the radix sort, where many ids share
        /// their first 16 bytes (so order falls to the bytes) or differ
        /// only by zero padding, paged whole and through selections:
        /// every page equals a full sort of the ids.
        #[test]
        fn large_sets_with_equal_keys_page_as_a_full_sort(
            ids in proptest::collection::btree_set(
                "(account-00000000|account-0000000|L000)?[0-9]{0,3}\\x00?[a-b]{0,2}",
                RADIX_FROM..1500,
            ),
            page in 1usize..400,
            jump in 0usize..3000,
        ) {
            let mut shuffled: Vec<&str> = ids.iter().map(String::as_str).collect();
            shuffled.reverse();
            let turn = jump.min(shuffled.len());
            shuffled.rotate_left(turn);
            let want: Vec<String> = ids.iter().cloned().collect();
            let set = RecordSet::from_ids(shuffled.iter().copied()).unwrap();
            let at = jump.min(want.len());
            prop_assert_eq!(set.page(at, page), want[at..(at + page).min(want.len())].to_vec());
            prop_assert_eq!(paged(&set, page), want.clone());
            let whole = RecordSet::from_ids(shuffled).unwrap();
            let all: Vec<String> = whole.to_vec().iter().map(|s| s.to_string()).collect();
            prop_assert_eq!(all, want);
        }
    }
}
