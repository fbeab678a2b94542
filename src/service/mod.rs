//! Warden as a service: the cached engine, the durable store and the change
//! feed behind one write path (authorize, plan, commit, apply, publish) and
//! one read path (be fresh enough, then decide). Nothing here knows gRPC.

pub mod cursor;
pub mod error;
pub mod reads;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dashmap::DashMap;
use tokio::sync::{broadcast, watch, Mutex, MutexGuard};
use tracing::{info, warn};

use crate::cache::Cached;
use crate::engine::simulate::Bound;
use crate::engine::{
    Change, Command, Engine, Error, Limits, MovedBulk, SimWrite, SimulateOptions, Simulation,
    WriteReport, Writer,
};
use crate::store::{Audit, CommitMeta, Store, StoreError, MAX_LOGGED_CHANGES};

pub use error::ServiceError;

/// How fresh a read must be (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Answer from memory as it is.
    #[default]
    MinimizeLatency,
    /// Answer only from state at or past this revision.
    AtLeastAsFresh(u64),
    /// Answer from the latest state in the store.
    FullyConsistent,
}

/// Where a write on the change feed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Committed by this process: to be published to other replicas.
    Local,
    /// Learnt from the store or another replica.
    Remote,
}

/// One committed write, as the change feed carries it.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Organization id.
    pub org_id: String,
    /// The revision it made.
    pub revision: u64,
    /// Its changes (`None`: too large to carry; reload).
    pub changes: Option<Arc<Vec<Change>>>,
    /// Who committed it.
    pub origin: Origin,
    /// Who made it and when (`None` when learnt elsewhere: the store's log
    /// has it).
    pub audit: Option<Audit>,
}

impl Committed {
    /// The feed's message of a write: its changes when the change log
    /// would keep them too, else `None` (reload the organization), so that
    /// a bulk write's change list is dropped once applied rather than kept
    /// in the ring.
    pub fn notice(
        org_id: &str,
        revision: u64,
        changes: Option<Vec<Change>>,
        origin: Origin,
        audit: Option<Audit>,
    ) -> Committed {
        Committed {
            org_id: org_id.to_string(),
            revision,
            changes: changes
                .filter(|c| c.len() <= MAX_LOGGED_CHANGES)
                .map(Arc::new),
            origin,
            audit,
        }
    }
}

/// What a write records besides its command.
#[derive(Debug, Clone, Default)]
pub struct WriteMeta {
    /// The audit's actor for an operator write: the credential's name
    /// (an actor's write is recorded under the actor's user id).
    pub operator: Option<String>,
    /// The SHA-256 of the bootstrap document the write merges.
    pub bootstrap_sha256: Option<String>,
}

/// What a committed write made: its revision and, for a delete, what it
/// removed and moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The organization's revision after the write.
    pub revision: u64,
    /// What the write removed and moved (empty unless it deletes).
    pub report: WriteReport,
}

/// Counters of the service, for metrics and tests.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Organizations brought up to the store from its change log.
    pub catch_ups: AtomicU64,
    /// Organizations reloaded whole from the store.
    pub reloads: AtomicU64,
    /// Writes of other replicas applied from a bus message.
    pub remote_applied: AtomicU64,
}

/// Service settings that are not the engine's limits.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// How long an AT_LEAST_AS_FRESH read waits for its revision.
    pub freshness_timeout: Duration,
    /// Largest Import document, in bytes.
    pub max_document_bytes: usize,
    /// Longest a Simulate (gRPC or the console's What if) may run before it
    /// stops and answers DEADLINE_EXCEEDED.
    pub simulate_timeout: Duration,
}

/// Default bound of a Simulate: under the default request time bound (30
/// s), so the answer names this limit rather than the request's.
pub const DEFAULT_SIMULATE_TIMEOUT: Duration = Duration::from_secs(20);

/// Default largest Import document: the crm-large reference data set's
/// JSON (77 MiB, 80,780,836 bytes from `warden generate`) plus a margin.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 80 << 20;

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            freshness_timeout: Duration::from_secs(5),
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            simulate_timeout: DEFAULT_SIMULATE_TIMEOUT,
        }
    }
}

/// The engine, the store and the feed.
pub struct Warden {
    engine: Engine<Cached>,
    store: Store,
    /// One write lock per organization: a write (or catch-up) of one
    /// organization never waits for another's, even across store I/O.
    writes: WriteLocks,
    /// Held (before the organization's lock) by a write that puts users
    /// while `max_orgs_per_principal` is set: that limit counts users of
    /// other organizations, so such writes go one at a time.
    principals: Mutex<()>,
    feed: broadcast::Sender<Arc<Committed>>,
    cursors: cursor::Cursors,
    options: ServiceOptions,
    stats: ServiceStats,
    /// Each organization's revision in memory, for readers waiting on it.
    revisions: DashMap<String, watch::Sender<u64>>,
    /// Held while an organization catches up on behalf of its readers, so
    /// that readers share one catch-up rather than queue for their own.
    catch_up_gates: DashMap<String, Arc<Mutex<()>>>,
    /// The latest read of each organization's revision in the store, with
    /// the time that read began, shared by the readers that arrive before
    /// it begins.
    store_revisions: DashMap<String, SharedRead>,
}

/// A store revision read and when it began.
type SharedRead = Arc<Mutex<Option<(tokio::time::Instant, u64)>>>;

/// Retries of a write that lost a revision race to another replica.
const WRITE_ATTEMPTS: usize = 5;

impl Warden {
    /// Opens the store and loads every organization into the engine.
    pub async fn open(
        store: Store,
        limits: Limits,
        options: ServiceOptions,
    ) -> Result<Self, ServiceError> {
        let engine = Engine::new(Cached::default(), limits);
        // Each organization is compiled as its rows stream in: no document
        // or change list of it is ever whole in memory beside its state.
        let orgs = store.load_all_states().await?;
        let count = orgs.len();
        for org in orgs {
            engine.install(org.state);
        }
        crate::memory::hand_back();
        info!(organizations = count, "policy loaded from the store");
        let (feed, _) = broadcast::channel(1024);
        Ok(Warden {
            engine,
            store,
            writes: WriteLocks::default(),
            principals: Mutex::new(()),
            feed,
            cursors: cursor::Cursors::default(),
            options,
            stats: ServiceStats::default(),
            revisions: DashMap::new(),
            catch_up_gates: DashMap::new(),
            store_revisions: DashMap::new(),
        })
    }

    /// The decision engine (reads go straight to it).
    pub fn engine(&self) -> &Engine<Cached> {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Snapshots of LookupRecords results for cursors.
    pub fn cursors(&self) -> &cursor::Cursors {
        &self.cursors
    }

    /// The service counters.
    pub fn stats(&self) -> &ServiceStats {
        &self.stats
    }

    /// The service settings.
    pub fn options(&self) -> &ServiceOptions {
        &self.options
    }

    /// Tells readers waiting on the organization its revision in memory.
    fn note_revision(&self, org_id: &str) {
        let revision = self.engine.revision(org_id).unwrap_or(0);
        if let Some(tx) = self.revisions.get(org_id) {
            tx.send_replace(revision);
        }
    }

    /// A receiver of the organization's revision in memory.
    fn watch_revision(&self, org_id: &str) -> watch::Receiver<u64> {
        let rx = self
            .revisions
            .entry(org_id.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        // Registered before this read, so no later revision is missed.
        self.note_revision(org_id);
        rx
    }

    /// Refuses, before a document is parsed, an Import whose actor could
    /// not make it (not a user, inactive, not an administrator, or an
    /// administrator without the admin scope); the write itself authorizes
    /// it again in full.
    pub fn precheck_import(&self, org_id: &str, writer: &Writer) -> Result<(), ServiceError> {
        let Writer::Actor {
            user_id,
            admin_scope,
        } = writer
        else {
            return Ok(());
        };
        let refusal = self.engine.read(org_id, |org, _| {
            let Some((_, user)) = org.users.by_id(user_id) else {
                return Some(format!(
                    "actor '{user_id}' is not a user of organization '{org_id}'"
                ));
            };
            if !user.def.active {
                Some(format!("actor '{user_id}' is inactive"))
            } else if !user.def.admin {
                Some(format!(
                    "actor '{user_id}' is not an administrator of organization '{org_id}': Import needs one"
                ))
            } else if !admin_scope {
                Some(format!(
                    "actor '{user_id}' is an administrator: acting as one needs a credential with the admin scope"
                ))
            } else {
                None
            }
        })?;
        match refusal {
            Some(m) => Err(Error::PermissionDenied(m).into()),
            None => Ok(()),
        }
    }

    /// Plans a write; an Import (seconds for a large document) is planned
    /// off the async runtime's worker, so other calls keep being served.
    /// Authorizes the writer (an actor by Warden's own rules) and plans the
    /// command against the organization as this process holds it.
    ///
    /// An Import's records and shares are moved from its document into the
    /// change list, not copied (a large document would otherwise be held
    /// twice): the [`MovedBulk`] returned gives them back to the command
    /// before it is planned again.
    fn authorize_and_plan(
        &self,
        org_id: &str,
        writer: &Writer,
        command: &mut Command,
    ) -> Result<(Vec<Change>, Option<MovedBulk>), Error> {
        if let Writer::Actor {
            user_id,
            admin_scope,
        } = writer
        {
            self.engine
                .authorize(org_id, user_id, *admin_scope, command, Utc::now())?;
        }
        let Command::Import { document, replace } = command else {
            return Ok((self.engine.plan(org_id, command)?, None));
        };
        let replace = *replace;
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let plan = if multi_thread {
            tokio::task::block_in_place(|| self.engine.plan_import(org_id, document, replace))
        } else {
            self.engine.plan_import(org_id, document, replace)
        }?;
        let (changes, moved) = plan.take_bulk(document);
        Ok((changes, Some(moved)))
    }

    /// Tells the feed's receivers of a write. A write of more changes
    /// than the change log keeps ([`MAX_LOGGED_CHANGES`]: a bulk Import)
    /// goes as a notice without them, which every receiver takes as
    /// "reload the organization" (as it takes the log's entry of that
    /// write): the ring keeps a message until its slowest receiver has
    /// read it, and a million changes kept there by a lagging Watch would
    /// hold gigabytes after the write is done.
    fn publish(
        &self,
        org_id: &str,
        revision: u64,
        changes: Option<Vec<Change>>,
        origin: Origin,
        audit: Option<Audit>,
    ) {
        self.note_revision(org_id);
        let _ = self.feed.send(Arc::new(Committed::notice(
            org_id, revision, changes, origin, audit,
        )));
    }

    /// A receiver of every write this process commits or learns of.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.feed.subscribe()
    }

    /// Carries out a write: authorizes the actor (if any) by Warden's own
    /// rules, plans, commits to the store, applies to memory and publishes.
    /// Returns the new revision with what the write removed and moved.
    pub async fn write(
        &self,
        org_id: &str,
        writer: &Writer,
        command: Command,
    ) -> Result<WriteOutcome, ServiceError> {
        self.write_with(org_id, writer, command, WriteMeta::default())
            .await
    }

    /// [`Warden::write`], recording in the change log who made the write
    /// (the actor, else `meta.operator`) and when.
    pub async fn write_with(
        &self,
        org_id: &str,
        writer: &Writer,
        mut command: Command,
        meta: WriteMeta,
    ) -> Result<WriteOutcome, ServiceError> {
        let actor = match writer {
            Writer::Actor { user_id, .. } => user_id.clone(),
            Writer::Operator => meta
                .operator
                .clone()
                .unwrap_or_else(|| "operator".to_string()),
        };
        if let Some(outcome) = self
            .write_locked(org_id, writer, &mut command, &meta, &actor, false)
            .await?
        {
            return Ok(outcome);
        }
        // The write puts users under a per-principal limit: again, with the
        // principals lock taken first.
        let _principals = self.principals.lock().await;
        match self
            .write_locked(org_id, writer, &mut command, &meta, &actor, true)
            .await?
        {
            Some(outcome) => Ok(outcome),
            None => Err(ServiceError::Aborted(format!(
                "organization '{org_id}': the write could not take the principals lock; retry"
            ))),
        }
    }

    /// The body of [`Warden::write_with`] under the organization's write
    /// lock. `None`: the write puts users while `max_orgs_per_principal` is
    /// set and `principals_held` is false; nothing was committed.
    async fn write_locked(
        &self,
        org_id: &str,
        writer: &Writer,
        command: &mut Command,
        meta: &WriteMeta,
        actor: &str,
        principals_held: bool,
    ) -> Result<Option<WriteOutcome>, ServiceError> {
        let principal_limit = self.engine.limits().max_orgs_per_principal > 0;
        let lock = self.writes.of(org_id);
        let _serial = lock.lock().await;
        for _ in 0..WRITE_ATTEMPTS {
            let (changes, moved) = match self.authorize_and_plan(org_id, writer, command) {
                Ok(planned) => planned,
                Err(refusal) => {
                    // A refusal is decided on the latest state, never on a
                    // replica that has not yet heard of a write made
                    // elsewhere (an acceptance is: its commit checks the
                    // revision).
                    let stored = self.store.revision(org_id).await?;
                    if stored > self.engine.revision(org_id).unwrap_or(0) {
                        self.catch_up_locked(org_id).await?;
                        continue;
                    }
                    return Err(refusal.into());
                }
            };
            if principal_limit
                && !principals_held
                && changes.iter().any(|c| matches!(c, Change::PutUser(_)))
            {
                // Planned again under the principals lock: whole again.
                give_back(command, moved, changes);
                return Ok(None);
            }
            // Read against the state the changes were planned on, before they apply.
            let report = if command.is_delete() {
                self.engine.report(org_id, &changes)
            } else {
                WriteReport::default()
            };
            let expected = self.engine.revision(org_id).unwrap_or(0);
            let commit = CommitMeta {
                audit: Some(Audit::now(actor)),
                bootstrap_sha256: meta.bootstrap_sha256.clone(),
            };
            match self
                .store
                .commit_with(org_id, expected, &changes, &commit)
                .await
            {
                Ok(revision) => {
                    self.engine.apply(org_id, revision, &changes);
                    self.publish(org_id, revision, Some(changes), Origin::Local, commit.audit);
                    return Ok(Some(WriteOutcome { revision, report }));
                }
                Err(StoreError::Conflict { current }) => {
                    warn!(
                        org = org_id,
                        expected, current, "store is ahead; catching up before retrying the write"
                    );
                    give_back(command, moved, changes);
                    self.catch_up_locked(org_id).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Aborted(format!(
            "organization '{org_id}' kept changing under this write; retry"
        )))
    }

    /// `Simulate`: the access a batch of writes would add or remove,
    /// planned against the organization as this process holds it, with
    /// caches of its own; nothing is committed, published or cached. It
    /// takes seconds on a large organization: call it off the runtime's
    /// workers, with a `bound` from [`Warden::simulate_bound`] taken when
    /// the request arrived (and cancelled if the request is dropped). Past
    /// the bound it stops and answers DEADLINE_EXCEEDED.
    pub fn simulate(
        &self,
        org_id: &str,
        writes: &[SimWrite],
        options: &SimulateOptions,
        bound: &Bound,
    ) -> Result<Simulation, ServiceError> {
        self.engine
            .simulate_within::<Cached>(org_id, writes, options, Utc::now(), bound)?
            .ok_or_else(|| {
                ServiceError::DeadlineExceeded(format!(
                    "simulation: not finished within --simulate-timeout-secs ({} s); \
                     stopped, nothing was changed (simulate a smaller change)",
                    self.options.simulate_timeout.as_secs()
                ))
            })
    }

    /// The bound of a Simulate arriving now: `--simulate-timeout-secs`.
    pub fn simulate_bound(&self) -> Bound {
        Bound::within(self.options.simulate_timeout)
    }

    /// Brings one organization up to the store's state.
    pub async fn catch_up(&self, org_id: &str) -> Result<(), ServiceError> {
        let lock = self.writes.of(org_id);
        let _serial = lock.lock().await;
        self.catch_up_locked(org_id).await
    }

    async fn catch_up_locked(&self, org_id: &str) -> Result<(), ServiceError> {
        let local = self.engine.revision(org_id).unwrap_or(0);
        if local == 0 {
            return self.reload_locked(org_id).await;
        }
        let entries = self.store.changes_since(org_id, local).await?;
        let contiguous = entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.revision == local + 1 + i as u64 && e.changes.is_some());
        if !contiguous {
            return self.reload_locked(org_id).await;
        }
        if entries.is_empty() {
            // Nothing newer in the log: either current, or deleted with its log pruned.
            let live = self.store.revision(org_id).await? > 0;
            if !live {
                self.engine.apply(org_id, local, &[Change::DeleteOrg]);
                self.note_revision(org_id);
            }
            return Ok(());
        }
        self.stats.catch_ups.fetch_add(1, Ordering::Relaxed);
        for entry in entries {
            let changes = entry.changes.unwrap_or_default();
            self.engine.apply(org_id, entry.revision, &changes);
            let audit = entry
                .actor
                .zip(entry.at)
                .map(|(actor, at)| Audit { actor, at });
            self.publish(org_id, entry.revision, Some(changes), Origin::Remote, audit);
        }
        Ok(())
    }

    async fn reload_locked(&self, org_id: &str) -> Result<(), ServiceError> {
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        match self.store.load_org_state(org_id).await? {
            Some(org) => {
                let revision = org.revision;
                self.engine.install(org.state);
                self.publish(org_id, revision, None, Origin::Remote, None);
            }
            None => {
                if self.engine.revision(org_id).is_some() {
                    self.engine.apply(org_id, 0, &[Change::DeleteOrg]);
                    self.note_revision(org_id);
                }
            }
        }
        Ok(())
    }

    /// Applies a write another replica announced: at once when it is the
    /// next revision and carries its changes, else by catching up from the
    /// store (a gap means messages were lost).
    pub async fn apply_remote(
        &self,
        org_id: &str,
        revision: u64,
        changes: Option<Vec<Change>>,
    ) -> Result<(), ServiceError> {
        let lock = self.writes.of(org_id);
        let _serial = lock.lock().await;
        let local = self.engine.revision(org_id).unwrap_or(0);
        if revision <= local {
            return Ok(());
        }
        match changes {
            Some(changes)
                if revision == local + 1
                    && (local > 0 || matches!(changes.first(), Some(Change::CreateOrg(_)))) =>
            {
                self.engine.apply(org_id, revision, &changes);
                self.stats.remote_applied.fetch_add(1, Ordering::Relaxed);
                self.publish(org_id, revision, Some(changes), Origin::Remote, None);
                Ok(())
            }
            _ => {
                if revision > local + 1 {
                    crate::telemetry::metrics().bus_gap();
                }
                self.catch_up_locked(org_id).await
            }
        }
    }

    /// Compares every organization's revision with the store's and catches
    /// up those that differ (new, changed or deleted elsewhere). Returns how
    /// many needed it.
    pub async fn poll(&self) -> Result<usize, ServiceError> {
        let stored: std::collections::HashMap<String, u64> =
            self.store.revisions().await?.into_iter().collect();
        let mut behind: Vec<String> = stored
            .iter()
            .filter(|(org, rev)| self.engine.revision(org) != Some(**rev))
            .map(|(org, _)| org.clone())
            .collect();
        behind.extend(
            self.engine
                .org_ids()
                .into_iter()
                .filter(|o| !stored.contains_key(o)),
        );
        for org in &behind {
            self.catch_up(org).await?;
        }
        Ok(behind.len())
    }

    /// Waits until the organization is as fresh as `consistency` asks, or
    /// fails with a clear error; never answers from older state.
    pub async fn fresh(&self, org_id: &str, consistency: Consistency) -> Result<(), ServiceError> {
        match consistency {
            Consistency::MinimizeLatency => Ok(()),
            Consistency::FullyConsistent => {
                let stored = self.store_revision(org_id).await?;
                let local = self.engine.revision(org_id);
                if Some(stored) == local {
                    return Ok(());
                }
                if stored == 0 {
                    // Deleted elsewhere: drop it here. Never there: nothing
                    // to catch up (and no lock taken for an unknown id).
                    if local.is_some() {
                        self.catch_up(org_id).await?;
                    }
                    return Ok(());
                }
                self.reach_in_time(org_id, stored, "consistency.fully_consistent")
                    .await
            }
            Consistency::AtLeastAsFresh(wanted) => {
                if self.engine.revision(org_id).unwrap_or(0) >= wanted {
                    return Ok(());
                }
                // A revision the store has not reached may never come:
                // answered at once, not waited for.
                let stored = self.store_revision(org_id).await?;
                if wanted > stored {
                    return Err(Error::precondition(format!(
                        "consistency.at_least_as_fresh: revision {wanted} is ahead of organization '{org_id}''s latest revision {stored}"
                    ))
                    .into());
                }
                self.reach_in_time(org_id, wanted, "consistency.at_least_as_fresh")
                    .await
            }
        }
    }

    /// The organization's revision in the store as of a read that began
    /// after this call: every write acknowledged before the call is in it.
    /// Concurrent callers share reads, so a thousand readers cost the store
    /// a few queries, not a thousand.
    async fn store_revision(&self, org_id: &str) -> Result<u64, ServiceError> {
        let arrived = tokio::time::Instant::now();
        if self.engine.revision(org_id).is_none() {
            // Only organizations in memory get a shared read, so unknown
            // ids cannot grow the map.
            return Ok(self.store.revision(org_id).await?);
        }
        let shared = self
            .store_revisions
            .entry(org_id.to_string())
            .or_default()
            .clone();
        let mut last = shared.lock().await;
        if let Some((began, revision)) = *last {
            if began >= arrived {
                return Ok(revision);
            }
        }
        let began = tokio::time::Instant::now();
        let revision = self.store.revision(org_id).await?;
        *last = Some((began, revision));
        Ok(revision)
    }

    /// [`Warden::reach`] within the freshness timeout.
    async fn reach_in_time(
        &self,
        org_id: &str,
        wanted: u64,
        field: &str,
    ) -> Result<(), ServiceError> {
        let timeout = self.options.freshness_timeout;
        match tokio::time::timeout(timeout, self.reach(org_id, wanted)).await {
            Ok(result) => result,
            Err(_) => Err(ServiceError::DeadlineExceeded(format!(
                "{field}: revision {wanted} of '{org_id}' not reached within {timeout:?} (at {})",
                self.engine.revision(org_id).unwrap_or(0)
            ))),
        }
    }

    /// Waits for the organization to reach `wanted` in memory, which the
    /// store has reached: one reader at a time catches up from the store
    /// while the others wait on the revision it sends.
    async fn reach(&self, org_id: &str, wanted: u64) -> Result<(), ServiceError> {
        let mut revision = self.watch_revision(org_id);
        let gate = self
            .catch_up_gates
            .entry(org_id.to_string())
            .or_default()
            .clone();
        loop {
            if *revision.borrow_and_update() >= wanted {
                return Ok(());
            }
            let attempt = gate.try_lock();
            match attempt {
                Ok(_catching_up) => {
                    if self.engine.revision(org_id).unwrap_or(0) < wanted {
                        self.catch_up(org_id).await?;
                    }
                    self.note_revision(org_id);
                }
                Err(_) => {
                    tokio::select! {
                        _ = revision.changed() => {}
                        _ = gate.lock() => {}
                    }
                }
            }
        }
    }
}

/// Gives an Import's moved records and shares back to its command, to be
/// planned again; any other write's changes are simply dropped.
fn give_back(command: &mut Command, moved: Option<MovedBulk>, changes: Vec<Change>) {
    if let (Some(moved), Command::Import { document, .. }) = (moved, command) {
        moved.give_back(changes, document);
    }
}

/// One write lock per organization, created on first use and removed when
/// nobody holds or waits for it, so that ten thousand organizations written
/// once leave nothing behind.
#[derive(Debug, Default)]
struct WriteLocks {
    locks: DashMap<String, Arc<Mutex<()>>>,
}

impl WriteLocks {
    /// The organization's lock, not yet taken: [`OrgLock::lock`] takes it.
    fn of(&self, org_id: &str) -> OrgLock<'_> {
        // Cloned under the map's shard lock, which `OrgLock::drop` also
        // holds while it decides to remove the entry: a lock being handed
        // out is never removed.
        let mutex = self.locks.entry(org_id.to_string()).or_default().clone();
        OrgLock {
            locks: self,
            org_id: org_id.to_string(),
            mutex,
        }
    }

    /// Organizations with a lock held or waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.len()
    }
}

/// A claim on one organization's write lock. Its guard borrows it, so the
/// guard always goes first; then the entry goes too if this was its last
/// claim.
struct OrgLock<'a> {
    locks: &'a WriteLocks,
    org_id: String,
    mutex: Arc<Mutex<()>>,
}

impl OrgLock<'_> {
    /// Waits for the organization's write lock.
    async fn lock(&self) -> MutexGuard<'_, ()> {
        self.mutex.lock().await
    }
}

impl Drop for OrgLock<'_> {
    fn drop(&mut self) {
        // Two references, the map's and this claim's: no other claim holds
        // or waits for the lock, and none can be handed out meanwhile.
        self.locks.locks.remove_if(&self.org_id, |_, mutex| {
            Arc::ptr_eq(mutex, &self.mutex) && Arc::strong_count(mutex) == 2
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_locks_of_ten_thousand_organizations_leave_nothing_behind() {
        let locks = WriteLocks::default();
        for i in 0..10_000 {
            let lock = locks.of(&format!("org-{i}"));
            let _guard = lock.lock().await;
            assert_eq!(locks.len(), 1);
        }
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn one_organization_one_lock_and_others_are_free() {
        let locks = WriteLocks::default();
        let held = locks.of("a");
        let guard = held.lock().await;
        // Another claim on the same organization shares its lock: taken.
        let waiting = locks.of("a");
        assert!(waiting.mutex.try_lock().is_err());
        // Another organization's lock is free.
        let other = locks.of("b");
        assert!(other.mutex.try_lock().is_ok());
        drop(other);
        assert_eq!(locks.len(), 1);
        // The first claim goes while the second still waits: the entry stays.
        drop(guard);
        drop(held);
        assert_eq!(locks.len(), 1);
        let third = locks.of("a");
        assert!(Arc::ptr_eq(&third.mutex, &waiting.mutex));
        let guard = waiting.lock().await;
        assert!(third.mutex.try_lock().is_err());
        drop(guard);
        drop(waiting);
        drop(third);
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn a_claim_dropped_while_waiting_leaves_nothing_behind() {
        let locks = WriteLocks::default();
        let held = locks.of("a");
        let guard = held.lock().await;
        {
            let waiting = locks.of("a");
            let attempt = waiting.lock();
            // Abandoned before the lock was free (a cancelled call).
            drop(attempt);
        }
        drop(guard);
        drop(held);
        assert_eq!(locks.len(), 0);
    }
}
