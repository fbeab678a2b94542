//! Warden as a service: the cached engine, the durable store and the change
//! feed behind one write path (authorize, plan, commit, apply, publish) and
//! one read path (be fresh enough, then decide). Nothing here knows gRPC.

pub mod cursor;
pub mod error;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, Mutex};
use tracing::{info, warn};

use crate::cache::Cached;
use crate::engine::document::changes_of;
use crate::engine::{Change, Command, Engine, Limits, WriteReport, Writer};
use crate::store::{Store, StoreError};

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
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            freshness_timeout: Duration::from_secs(5),
        }
    }
}

/// The engine, the store and the feed.
pub struct Warden {
    engine: Engine<Cached>,
    store: Store,
    writes: Mutex<()>,
    feed: broadcast::Sender<Arc<Committed>>,
    cursors: cursor::Cursors,
    options: ServiceOptions,
    stats: ServiceStats,
}

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
        let orgs = store.load_all().await?;
        for org in &orgs {
            engine.apply(
                &org.document.organization,
                org.revision,
                &changes_of(&org.document),
            );
        }
        info!(organizations = orgs.len(), "policy loaded from the store");
        let (feed, _) = broadcast::channel(1024);
        Ok(Warden {
            engine,
            store,
            writes: Mutex::new(()),
            feed,
            cursors: cursor::Cursors::default(),
            options,
            stats: ServiceStats::default(),
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

    fn publish(
        &self,
        org_id: &str,
        revision: u64,
        changes: Option<Arc<Vec<Change>>>,
        origin: Origin,
    ) {
        let _ = self.feed.send(Arc::new(Committed {
            org_id: org_id.to_string(),
            revision,
            changes,
            origin,
        }));
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
        let _serial = self.writes.lock().await;
        for _ in 0..WRITE_ATTEMPTS {
            if let Writer::Actor {
                user_id,
                admin_scope,
            } = writer
            {
                self.engine
                    .authorize(org_id, user_id, *admin_scope, &command, Utc::now())?;
            }
            let changes = self.engine.plan(org_id, &command)?;
            // Read against the state the changes were planned on, before they apply.
            let report = if command.is_delete() {
                self.engine.report(org_id, &changes)
            } else {
                WriteReport::default()
            };
            let expected = self.engine.revision(org_id).unwrap_or(0);
            match self.store.commit(org_id, expected, &changes).await {
                Ok(revision) => {
                    self.engine.apply(org_id, revision, &changes);
                    self.publish(org_id, revision, Some(Arc::new(changes)), Origin::Local);
                    return Ok(WriteOutcome { revision, report });
                }
                Err(StoreError::Conflict { current }) => {
                    warn!(
                        org = org_id,
                        expected, current, "store is ahead; catching up before retrying the write"
                    );
                    self.catch_up_locked(org_id).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Aborted(format!(
            "organization '{org_id}' kept changing under this write; retry"
        )))
    }

    /// Brings one organization up to the store's state.
    pub async fn catch_up(&self, org_id: &str) -> Result<(), ServiceError> {
        let _serial = self.writes.lock().await;
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
            let live = self
                .store
                .revisions()
                .await?
                .into_iter()
                .any(|(o, _)| o == org_id);
            if !live {
                self.engine.apply(org_id, local, &[Change::DeleteOrg]);
            }
            return Ok(());
        }
        self.stats.catch_ups.fetch_add(1, Ordering::Relaxed);
        for entry in entries {
            let changes = entry.changes.unwrap_or_default();
            self.engine.apply(org_id, entry.revision, &changes);
            self.publish(
                org_id,
                entry.revision,
                Some(Arc::new(changes)),
                Origin::Remote,
            );
        }
        Ok(())
    }

    async fn reload_locked(&self, org_id: &str) -> Result<(), ServiceError> {
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        match self.store.load_org(org_id).await? {
            Some(org) => {
                self.engine
                    .apply(org_id, org.revision, &changes_of(&org.document));
                self.publish(org_id, org.revision, None, Origin::Remote);
            }
            None => {
                if self.engine.revision(org_id).is_some() {
                    self.engine.apply(org_id, 0, &[Change::DeleteOrg]);
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
        let _serial = self.writes.lock().await;
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
                self.publish(org_id, revision, Some(Arc::new(changes)), Origin::Remote);
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
                let stored = self
                    .store
                    .revisions()
                    .await?
                    .into_iter()
                    .find(|(o, _)| o == org_id)
                    .map(|(_, r)| r);
                if stored != self.engine.revision(org_id) {
                    self.catch_up(org_id).await?;
                }
                Ok(())
            }
            Consistency::AtLeastAsFresh(wanted) => {
                if self.engine.revision(org_id).unwrap_or(0) >= wanted {
                    return Ok(());
                }
                let deadline = tokio::time::Instant::now() + self.options.freshness_timeout;
                loop {
                    self.catch_up(org_id).await?;
                    let have = self.engine.revision(org_id).unwrap_or(0);
                    if have >= wanted {
                        return Ok(());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ServiceError::DeadlineExceeded(format!(
                            "consistency.at_least_as_fresh: revision {wanted} of '{org_id}' not reached within {:?} (at {have})",
                            self.options.freshness_timeout
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}
