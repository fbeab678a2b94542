//! The one commit algorithm of the SQL stores: a write's changes reduced to
//! the net effect on the entity rows of `rows.rs` (the deletes to run
//! against the rows as they were, then each key's last upsert), the
//! expected-revision check, the revision bump, the change-log entry with
//! its actor and time, retention, and the bootstrap hash, all in one
//! transaction. What differs between SQLite and PostgreSQL (SQL text, the
//! lock that makes check-then-write one step, bulk insert, generations) is
//! behind [`Dialect`]; nothing of the algorithm is written twice.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use super::audit::{self, CommitMeta, Retention};
use super::load::{Chunk, LiveOrg};
use super::rows::{self, RowOp};
use super::{StoreError, StoreResult, MAX_LOGGED_CHANGES};
use crate::engine::Change;

/// A row's key: kind, module, record, id.
pub(super) type Key = (&'static str, String, String, String);

/// An organization's row as a commit finds it, locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OrgRow {
    /// Its revision (a tombstone's counts too); 0 when never seen.
    pub revision: u64,
    /// Whether it exists.
    pub live: bool,
    /// Its generation (PostgreSQL; always 0 in SQLite, which has none).
    pub generation: i64,
}

/// The change-log entry and revision a commit writes.
pub(super) struct LogWrite<'a> {
    /// The organization.
    pub org_id: &'a str,
    /// The revision the write makes.
    pub revision: i64,
    /// Whether the organization exists after it.
    pub live: bool,
    /// The generation its rows are filed under after it.
    pub generation: i64,
    /// The changes as JSON (`None`: too large to log).
    pub changes: Option<String>,
    /// Who wrote.
    pub actor: Option<&'a str>,
    /// When, as stored.
    pub at: Option<String>,
    /// Entries of lower revision than this are pruned...
    pub prune_below: i64,
    /// ...that are also older than this (stored time), or of unknown time;
    /// `None`: whatever their age.
    pub prune_before: Option<String>,
}

/// What differs between the SQL backends in a commit. Each method is one
/// step of [`commit`], run inside the transaction `begin` opens.
///
/// Static dispatch: each store calls `commit` with its own dialect, so the
/// methods keep their backend's typed connection and statements (sqlx's
/// `Any` driver has neither PostgreSQL arrays nor COPY, which large writes
/// need).
pub(super) trait Dialect: Sync {
    /// An open write transaction.
    type Tx: Send;

    /// Opens the write transaction.
    fn begin(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;

    /// Locks the organization's row against every other writer (of any
    /// process) until the transaction ends, and reads it.
    fn lock_org(
        &self,
        tx: &mut Self::Tx,
        org_id: &str,
    ) -> impl Future<Output = StoreResult<OrgRow>> + Send;

    /// Runs the deletes of a write against the rows as they were.
    /// `generation` is the one the organization's rows are filed under
    /// after the write.
    fn delete_rows(
        &self,
        tx: &mut Self::Tx,
        org_id: &str,
        generation: i64,
        deletes: &Deletes,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Inserts or replaces rows, each key once, in key order. `fresh`: the
    /// organization's rows were all deleted first, so no key exists yet.
    fn upsert_rows(
        &self,
        tx: &mut Self::Tx,
        org_id: &str,
        generation: i64,
        rows: Vec<(Key, String)>,
        fresh: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Appends the change-log entry, sets the organization's revision,
    /// liveness and generation, and prunes the log as `entry` says; the
    /// pruning never takes the new entry.
    fn log_write(
        &self,
        tx: &mut Self::Tx,
        entry: LogWrite<'_>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Records the bootstrap document's hash at `revision`, or (`None`)
    /// forgets it.
    fn set_bootstrap(
        &self,
        tx: &mut Self::Tx,
        org_id: &str,
        recorded: Option<(&str, i64)>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Commits the transaction.
    fn commit_tx(&self, tx: Self::Tx) -> impl Future<Output = StoreResult<()>> + Send;

    /// Rolls the transaction back (releasing its locks at once).
    fn rollback_tx(&self, tx: Self::Tx) -> impl Future<Output = ()> + Send;

    // The streamed load of `load.rs`: each method one step of its walk.

    /// A read-only transaction every read of one load goes through, so the
    /// organizations and their rows are as of one moment.
    type Snapshot: Send;

    /// Opens the load's snapshot.
    fn begin_snapshot(&self) -> impl Future<Output = StoreResult<Self::Snapshot>> + Send;

    /// The live organizations by id, or (`only`) the one named if it is
    /// live.
    fn live_orgs(
        &self,
        snapshot: &mut Self::Snapshot,
        only: Option<&str>,
    ) -> impl Future<Output = StoreResult<Vec<LiveOrg>>> + Send;

    /// Adds every row of the small kinds ([`rows::SMALL_KINDS`]) of `org`
    /// to `into`, in any order.
    fn load_small(
        &self,
        snapshot: &mut Self::Snapshot,
        org: &LiveOrg,
        into: &mut rows::DocumentBuilder,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// At most [`rows::LOAD_CHUNK`] rows of `kind` (a record or share) of
    /// one module of `org` after `after`, in key order, their bodies joined
    /// by the database.
    fn load_chunk(
        &self,
        snapshot: &mut Self::Snapshot,
        org: &LiveOrg,
        kind: &'static str,
        module: &str,
        after: &rows::ChunkKey,
    ) -> impl Future<Output = StoreResult<Chunk>> + Send;

    /// Ends the load's snapshot.
    fn end_snapshot(
        &self,
        snapshot: Self::Snapshot,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Stores a write in one transaction if the organization is still at
/// `expected` (0: it does not exist), and returns its new revision.
pub(super) async fn commit<D: Dialect>(
    dialect: &D,
    org_id: &str,
    expected: u64,
    changes: &[Change],
    meta: &CommitMeta,
    retention: Retention,
) -> StoreResult<u64> {
    // The log entry and the rows are prepared before the transaction
    // starts: the organization stays locked no longer than it must.
    let logged = if changes.len() > MAX_LOGGED_CHANGES {
        None
    } else {
        Some(
            serde_json::to_string(changes)
                .map_err(failed("commit: encode the change log entry"))?,
        )
    };
    let chunks = Chunks::of(changes);
    let planned = Planned {
        org_id,
        expected,
        net: NetRows::of(chunks.first)?,
        rest: chunks.rest,
        live_after: chunks.live_after,
        logged,
        meta,
        retention,
    };
    let mut tx = dialect.begin().await?;
    match write(dialect, &mut tx, planned).await {
        Ok(revision) => {
            dialect.commit_tx(tx).await?;
            Ok(revision)
        }
        Err(e) => {
            dialect.rollback_tx(tx).await;
            Err(e)
        }
    }
}

/// Changes per chunk of a large write: rows are made, written and dropped
/// a chunk at a time, so that a bulk Import never holds all its rows
/// (about as large as its changes) at once.
pub(super) const CHUNK_CHANGES: usize = 32_768;

/// A write's changes split for [`commit`]: the first chunk, turned into
/// rows before the transaction starts, and the rest (empty for a write of
/// at most [`CHUNK_CHANGES`] changes, or one that creates or deletes the
/// organization after its first change, which stays one chunk).
struct Chunks<'a> {
    first: &'a [Change],
    rest: &'a [Change],
    /// Whether the organization exists after the whole write.
    live_after: bool,
}

impl<'a> Chunks<'a> {
    fn of(changes: &'a [Change]) -> Self {
        let org_level = |c: &Change| matches!(c, Change::CreateOrg(_) | Change::DeleteOrg);
        // Chunks run in order, each as its deletes then its net upserts:
        // the same rows as running every operation in order. Only the
        // generation (chosen once, from whether the organization's rows
        // are all deleted) needs the whole write: kept simple by chunking
        // only writes that do that, if at all, first.
        let chunked = changes.len() > CHUNK_CHANGES && !changes.iter().skip(1).any(org_level);
        let live_after = !matches!(
            changes.iter().rev().find(|c| org_level(c)),
            Some(Change::DeleteOrg)
        );
        let (first, rest) = if chunked {
            changes.split_at(CHUNK_CHANGES)
        } else {
            (changes, &changes[changes.len()..])
        };
        Chunks {
            first,
            rest,
            live_after,
        }
    }
}

/// A write as prepared before its transaction starts.
struct Planned<'a> {
    org_id: &'a str,
    /// The revision it was planned against (0: no organization).
    expected: u64,
    /// The rows of the first chunk of changes.
    net: NetRows,
    /// The changes after the first chunk, turned into rows in the
    /// transaction.
    rest: &'a [Change],
    /// Whether the organization exists after the write.
    live_after: bool,
    /// The changes as JSON (`None`: too large to log).
    logged: Option<String>,
    meta: &'a CommitMeta,
    retention: Retention,
}

/// The body of [`commit`], inside its transaction.
async fn write<D: Dialect>(dialect: &D, tx: &mut D::Tx, planned: Planned<'_>) -> StoreResult<u64> {
    let Planned {
        org_id,
        expected,
        mut net,
        rest,
        live_after,
        logged,
        meta,
        retention,
    } = planned;
    let op = "commit";
    let found = dialect.lock_org(tx, org_id).await?;
    let current = if found.live { found.revision } else { 0 };
    if current != expected {
        return Err(StoreError::Conflict { current });
    }
    // A tombstone's revision counts: a re-created organization goes on
    // from it, so no revision ever names two states.
    let revision = found.revision + 1;
    let revision_value = to_sql(revision, op)?;
    // A write that empties the organization files its rows under a new
    // generation, its own revision (PostgreSQL: they never meet the rows
    // it deletes in the primary key).
    let generation = if net.deletes.org {
        revision_value
    } else {
        found.generation
    };

    let mut fresh = if net.deletes.org {
        Some(FreshKeys::default())
    } else {
        None
    };
    let mut chunks = rest.chunks(CHUNK_CHANGES);
    loop {
        dialect
            .delete_rows(tx, org_id, generation, &net.deletes)
            .await?;
        let upserts = net.take_upserts();
        drop(net);
        if !upserts.is_empty() {
            // Only the first chunk deletes the organization's rows: a later
            // one is still "fresh" (no key of it exists) unless a key of it
            // came in an earlier chunk.
            let new_keys = fresh.as_mut().is_some_and(|f| f.all_new(&upserts));
            dialect
                .upsert_rows(tx, org_id, generation, upserts, new_keys)
                .await?;
        }
        let Some(next) = chunks.next() else { break };
        net = NetRows::of(next)?;
    }

    // By age, pruning keeps the new entry whatever its age and treats an
    // entry of unknown time (logged before the audit) as old.
    let now = chrono::Utc::now();
    let audit = meta.audit.as_ref();
    let prune_below = retention.oldest_revision(revision).unwrap_or(revision);
    dialect
        .log_write(
            tx,
            LogWrite {
                org_id,
                revision: revision_value,
                live: live_after,
                generation,
                changes: logged,
                actor: audit.map(|a| a.actor.as_str()),
                at: audit.map(|a| audit::time_text(a.at)),
                prune_below: to_sql(prune_below, op)?,
                prune_before: retention.oldest_time(now),
            },
        )
        .await?;
    if !live_after {
        dialect.set_bootstrap(tx, org_id, None).await?;
    } else if let Some(sha256) = &meta.bootstrap_sha256 {
        dialect
            .set_bootstrap(tx, org_id, Some((sha256, revision_value)))
            .await?;
    }
    Ok(revision)
}

/// The keys a write has upserted since it deleted every row of its
/// organization, as hashes: a chunk whose keys are all new may be inserted
/// without conflict handling (PostgreSQL's COPY). A hash seen before (a
/// key repeated, or two keys colliding) only sends that chunk through the
/// slower upsert.
#[derive(Default)]
struct FreshKeys {
    seen: rustc_hash::FxHashSet<u64>,
}

impl FreshKeys {
    /// Whether no key of `rows` came before; records them either way.
    fn all_new(&mut self, rows: &[(Key, String)]) -> bool {
        use std::hash::BuildHasher;
        let hasher = rustc_hash::FxBuildHasher;
        self.seen.reserve(rows.len());
        let mut new = true;
        for (key, _) in rows {
            new &= self.seen.insert(hasher.hash_one(key));
        }
        new
    }
}

/// The deletes of a write, each to run against the rows as they were
/// before it (deletes commute, so their order does not matter).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Deletes {
    /// Every row of the organization (every other delete is then moot).
    pub org: bool,
    /// Rows by key.
    pub rows: Vec<Key>,
    /// Sharing rules by id, whichever module files them.
    pub rules: Vec<String>,
    /// Every share of these (module, record)s.
    pub record_shares: Vec<(String, String)>,
    /// Every record, share and rule of these modules.
    pub module_contents: Vec<String>,
}

/// The net effect of a write's row operations: the deletes to run against
/// the rows as they were before the write, then the rows to upsert. A
/// delete takes back the upserts before it that it matches (they never
/// reach the database), so deleting first and upserting last leaves every
/// row as running the operations one by one would.
#[derive(Default)]
pub(super) struct NetRows {
    /// Whether the organization exists after the write.
    pub live_after: bool,
    /// The deletes.
    pub deletes: Deletes,
    /// The upserts since the last delete, in order. A large write is
    /// mostly upserts: they are sorted once at the end, not kept in a map.
    appended: Vec<(Key, String)>,
    /// The last body upserted under each key before the last delete.
    upserts: BTreeMap<Key, String>,
    /// The modules each pending rule upsert is filed under, by rule id.
    pending_rules: HashMap<String, Vec<String>>,
}

impl NetRows {
    /// The net effect of a write's changes.
    pub fn of(changes: &[Change]) -> StoreResult<NetRows> {
        let mut net = NetRows {
            live_after: true,
            ..NetRows::default()
        };
        for change in changes {
            match change {
                Change::DeleteOrg => net.live_after = false,
                Change::CreateOrg(_) => net.live_after = true,
                _ => {}
            }
            for row_op in rows::row_ops(change)? {
                net.push(row_op);
            }
        }
        Ok(net)
    }

    fn push(&mut self, op: RowOp) {
        if let RowOp::Upsert(row) = op {
            let key = row.key;
            if key.kind == rows::RULE {
                self.pending_rules
                    .entry(key.id.clone())
                    .or_default()
                    .push(key.module.clone());
            }
            self.appended
                .push(((key.kind, key.module, key.record, key.id), row.body));
            return;
        }
        // A delete takes back what it matches among the upserts before it.
        self.upserts.extend(self.appended.drain(..));
        let deletes = &mut self.deletes;
        match op {
            RowOp::Upsert(_) => {}
            RowOp::Delete(key) => {
                let key = (key.kind, key.module, key.record, key.id);
                self.upserts.remove(&key);
                if !deletes.org {
                    deletes.rows.push(key);
                }
            }
            RowOp::DeleteRule { id } => {
                for module in self.pending_rules.remove(&id).unwrap_or_default() {
                    self.upserts
                        .remove(&(rows::RULE, module, String::new(), id.clone()));
                }
                if !deletes.org {
                    deletes.rules.push(id);
                }
            }
            RowOp::DeleteRecordShares { module, record } => {
                self.take_back(rows::SHARE, &module, Some(&record));
                if !self.deletes.org {
                    self.deletes.record_shares.push((module, record));
                }
            }
            RowOp::DeleteModuleContents { module } => {
                for kind in [rows::RECORD, rows::SHARE, rows::RULE] {
                    self.take_back(kind, &module, None);
                }
                if !self.deletes.org {
                    self.deletes.module_contents.push(module);
                }
            }
            RowOp::DeleteOrg => {
                *self = NetRows {
                    live_after: self.live_after,
                    deletes: Deletes {
                        org: true,
                        ..Deletes::default()
                    },
                    ..NetRows::default()
                };
            }
        }
    }

    /// Drops the pending upserts of one kind under a module (and record).
    fn take_back(&mut self, kind: &'static str, module: &str, record: Option<&str>) {
        let start: Key = (
            kind,
            module.to_string(),
            record.unwrap_or_default().to_string(),
            String::new(),
        );
        let matched: Vec<Key> = self
            .upserts
            .range(start..)
            .map(|(key, _)| key)
            .take_while(|key| key.0 == kind && key.1 == module && record.is_none_or(|r| key.2 == r))
            .cloned()
            .collect();
        for key in matched {
            self.upserts.remove(&key);
        }
    }

    /// The rows to upsert, in key order, each key once with its last body.
    pub fn take_upserts(&mut self) -> Vec<(Key, String)> {
        let mut appended = std::mem::take(&mut self.appended);
        if !self.upserts.is_empty() {
            self.upserts.extend(appended);
            return std::mem::take(&mut self.upserts).into_iter().collect();
        }
        // Sorted by position, not in place: a row is a key of four strings
        // and a body (112 bytes), an index 4; sorting the rows themselves
        // cost an Import more than reading its JSON. Stable: the upserts of
        // one key stay in the order they came, so the last one wins below.
        let Ok(len) = u32::try_from(appended.len()) else {
            appended.sort_by(|a, b| a.0.cmp(&b.0));
            let rows = appended.len();
            return dedup_sorted(appended.into_iter(), rows);
        };
        let mut order: Vec<u32> = (0..len).collect();
        order.sort_by(|&a, &b| appended[a as usize].0.cmp(&appended[b as usize].0));
        // Same size as the rows (a String is never null): collected in place.
        let mut slots: Vec<Option<(Key, String)>> = appended.into_iter().map(Some).collect();
        let capacity = slots.len();
        let rows = order
            .into_iter()
            .filter_map(|i| slots.get_mut(i as usize).and_then(Option::take));
        dedup_sorted(rows, capacity)
    }
}

/// Rows in key order, each key once with the body that came last.
fn dedup_sorted(rows: impl Iterator<Item = (Key, String)>, len: usize) -> Vec<(Key, String)> {
    let mut out: Vec<(Key, String)> = Vec::with_capacity(len);
    for (key, body) in rows {
        match out.last_mut() {
            Some(last) if last.0 == key => last.1 = body,
            _ => out.push((key, body)),
        }
    }
    out
}

/// Maps a backend error to `StoreError::Backend`, naming the operation.
/// Past `open`, sqlx errors carry no part of a URL.
pub(super) fn failed<E: std::fmt::Display>(op: &str) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{op}: {e}"))
}

/// A stored revision, refused if negative (a corrupt store).
pub(super) fn to_revision(value: i64, op: &str) -> StoreResult<u64> {
    u64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("{op}: negative revision {value} in the store")))
}

/// A revision as both stores keep it (a signed 64-bit integer).
pub(super) fn to_sql(revision: u64, op: &str) -> StoreResult<i64> {
    i64::try_from(revision)
        .map_err(|_| StoreError::Backend(format!("{op}: revision {revision} out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::{
        AccessLevel, Grantee, MemberSet, ModuleDef, Owd, OwnerRef, RecordDef, Settings, ShareDef,
        SharingRuleDef,
    };

    fn record(module: &str, id: &str) -> Change {
        Change::PutRecord(RecordDef {
            module: module.into(),
            id: id.into(),
            owner: OwnerRef::User("alice".into()),
            private: false,
            attributes: Default::default(),
        })
    }

    fn share(module: &str, record: &str, user: &str) -> Change {
        Change::PutShare(ShareDef {
            module: module.into(),
            record: record.into(),
            grantee: Grantee::User(user.into()),
            level: AccessLevel::Read,
        })
    }

    fn rule(id: &str, module: &str) -> Change {
        Change::PutRule(SharingRuleDef {
            id: id.into(),
            module: module.into(),
            from: None,
            criteria: None,
            to: MemberSet::Role("ceo".into()),
            access: AccessLevel::Read,
        })
    }

    fn net_of(changes: &[Change]) -> NetRows {
        NetRows::of(changes).unwrap()
    }

    /// The keys `take_upserts` gives, as `kind/module/record/id`.
    fn upserted(net: &mut NetRows) -> Vec<String> {
        net.take_upserts()
            .into_iter()
            .map(|((k, m, r, i), _)| format!("{k}/{m}/{r}/{i}"))
            .collect()
    }

    fn private(module: &str, id: &str) -> Change {
        let mut change = record(module, id);
        if let Change::PutRecord(def) = &mut change {
            def.private = true;
        }
        change
    }

    #[test]
    fn upserts_come_sorted_and_the_last_of_a_key_wins() {
        let mut net = net_of(&[
            record("Leads", "L2"),
            record("Leads", "L1"),
            private("Leads", "L2"),
            share("Leads", "L1", "bob"),
            record("Deals", "D1"),
            record("Leads", "L2"),
            private("Leads", "L1"),
        ]);
        let upserts = net.take_upserts();
        let keys: Vec<String> = upserts
            .iter()
            .map(|((k, m, r, i), _)| format!("{k}/{m}/{r}/{i}"))
            .collect();
        assert_eq!(
            keys,
            [
                "record/Deals/D1/",
                "record/Leads/L1/",
                "record/Leads/L2/",
                "share/Leads/L1/user:bob"
            ]
        );
        assert!(
            upserts[1].1.contains("\"private\":true"),
            "{}",
            upserts[1].1
        );
        assert!(!upserts[2].1.contains("private"), "{}", upserts[2].1);
    }

    #[test]
    fn upserts_on_both_sides_of_a_delete_keep_their_order() {
        let mut net = net_of(&[
            private("Leads", "L1"),
            record("Leads", "L2"),
            Change::DeleteRecord {
                module: "Leads".into(),
                id: "L2".into(),
            },
            record("Leads", "L1"),
            private("Leads", "L3"),
        ]);
        let upserts = net.take_upserts();
        let keys: Vec<&str> = upserts.iter().map(|((_, _, r, _), _)| r.as_str()).collect();
        assert_eq!(keys, ["L1", "L3"]);
        assert!(!upserts[0].1.contains("private"), "{}", upserts[0].1);
    }

    #[test]
    fn deletes_take_back_the_upserts_before_them_only() {
        let mut net = net_of(&[
            record("Leads", "L1"),
            share("Leads", "L1", "bob"),
            share("Leads", "L10", "bob"),
            record("Leads", "L2"),
            Change::DeleteRecord {
                module: "Leads".into(),
                id: "L1".into(),
            },
            // Put again after its delete: stays.
            share("Leads", "L1", "carol"),
            rule("r1", "Leads"),
            rule("r2", "Deals"),
            record("Deals", "D1"),
            Change::DeleteModule { id: "Deals".into() },
            // Moves r1 to Cases: its Leads upsert goes.
            rule("r1", "Cases"),
        ]);
        assert_eq!(
            upserted(&mut net),
            [
                "record/Leads/L2/",
                "rule/Cases//r1",
                "share/Leads/L1/user:carol",
                "share/Leads/L10/user:bob",
            ]
        );
        assert!(net.live_after);
        let deletes = &net.deletes;
        assert!(!deletes.org);
        assert_eq!(
            deletes.rows,
            vec![
                ("record", "Leads".into(), "L1".into(), String::new()),
                ("module", String::new(), String::new(), "Deals".into()),
            ]
        );
        assert_eq!(deletes.record_shares, vec![("Leads".into(), "L1".into())]);
        assert_eq!(deletes.module_contents, vec!["Deals".to_string()]);
        assert_eq!(deletes.rules, ["r1", "r2", "r1"].map(String::from));
    }

    #[test]
    fn deleting_the_organization_forgets_everything_before() {
        let mut net = net_of(&[
            Change::PutModule(ModuleDef {
                id: "Leads".into(),
                owd: Owd::Private,
                hierarchy_access: true,
                fields: Vec::new(),
                actions: Default::default(),
            }),
            record("Leads", "L1"),
            Change::DeleteRecord {
                module: "Leads".into(),
                id: "L9".into(),
            },
            Change::CreateOrg(Settings::default()),
            record("Leads", "L2"),
            Change::DeleteRecord {
                module: "Leads".into(),
                id: "L3".into(),
            },
        ]);
        assert!(net.live_after);
        assert!(net.deletes.org);
        assert!(net.deletes.rows.is_empty());
        assert!(net.deletes.record_shares.is_empty());
        assert_eq!(upserted(&mut net), ["record/Leads/L2/", "settings///"]);
    }

    #[test]
    fn a_deleted_organization_is_not_live_after() {
        let net = net_of(&[Change::DeleteOrg]);
        assert!(!net.live_after);
        assert!(net.deletes.org);
    }
}
