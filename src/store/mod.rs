//! The durable store: entity rows, the change log with the revision of
//! every write, and each organization's revision. SQLite by default (one
//! file), PostgreSQL for several replicas; both behind [`Store`].

pub mod audit;
mod commit;
mod load;
pub mod postgres;
pub mod rows;
pub mod sqlite;
mod statements;

use chrono::{DateTime, Utc};

use crate::engine::{Change, OrgDocument, OrgState};

pub use audit::{Audit, CommitMeta, Retention};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The organization's revision in the store is not the one the write
    /// was planned against: another replica wrote first.
    #[error("revision conflict: the store is at revision {current}")]
    Conflict {
        /// The store's revision (0: the organization does not exist).
        current: u64,
    },
    /// The backend failed (I/O, SQL, corrupt row). Details are for the log.
    #[error("store: {0}")]
    Backend(String),
}

/// Store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// One organization as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedOrg {
    /// Its revision.
    pub revision: u64,
    /// Everything in it.
    pub document: OrgDocument,
}

/// One organization as stored, compiled: what start-up and a reload
/// install, built from the rows as they are read.
#[derive(Debug)]
pub struct LoadedState {
    /// Its revision.
    pub revision: u64,
    /// Its compiled policy.
    pub state: OrgState,
}

impl From<LoadedState> for LoadedOrg {
    fn from(l: LoadedState) -> Self {
        LoadedOrg {
            revision: l.revision,
            document: crate::engine::document::export(&l.state),
        }
    }
}

/// One write in the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The revision the write made.
    pub revision: u64,
    /// Its changes; `None` when the write was too large to log (a replica
    /// that needs it reloads the organization instead).
    pub changes: Option<Vec<Change>>,
    /// Who made it (`None`: not recorded, e.g. logged before the audit).
    pub actor: Option<String>,
    /// When it was committed (`None`: logged before the audit).
    pub at: Option<DateTime<Utc>>,
}

/// A change-log row as both stores select it: revision, changes, actor, time.
type LogRow = (i64, Option<String>, Option<String>, Option<String>);

/// A change-log entry from its stored columns.
fn log_entry(
    revision: u64,
    changes: Option<String>,
    actor: Option<String>,
    at: Option<String>,
) -> StoreResult<LogEntry> {
    let changes = match changes {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
            StoreError::Backend(format!("read the change log: corrupt entry: {e}"))
        })?),
        None => None,
    };
    Ok(LogEntry {
        revision,
        changes,
        actor,
        at: at.as_deref().map(audit::parse_time).transpose()?,
    })
}

/// Change-log entries kept per organization behind its newest, unless
/// `--change-retention` says otherwise.
pub const LOG_KEPT: u64 = 10_000;

/// Writes with more changes than this are logged without their changes.
pub const MAX_LOGGED_CHANGES: usize = 10_000;

/// The store chosen by URL.
pub enum Store {
    /// `sqlite://PATH`.
    Sqlite(sqlite::SqliteStore),
    /// `postgres://…` or `postgresql://…`.
    Postgres(postgres::PostgresStore),
}

impl Store {
    /// Opens the store a URL names (`sqlite://PATH`, `sqlite::memory:`,
    /// `postgres://…`, `postgresql://…`), creating it (SQLite) and running
    /// migrations as needed.
    pub async fn open(url: &str) -> StoreResult<Store> {
        if url.starts_with("sqlite:") {
            return Ok(Store::Sqlite(sqlite::SqliteStore::open(url).await?));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Store::Postgres(postgres::PostgresStore::open(url).await?));
        }
        // Only the scheme: the rest may hold a password.
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(StoreError::Backend(format!(
            "unsupported store URL scheme {scheme:?}: use sqlite://PATH or postgres://…"
        )))
    }

    /// Every live organization with its revision and contents as a
    /// document: the streamed load, exported (start-up uses the states).
    pub async fn load_all(&self) -> StoreResult<Vec<LoadedOrg>> {
        Ok(self
            .load_all_states()
            .await?
            .into_iter()
            .map(LoadedOrg::from)
            .collect())
    }

    /// One live organization as a document, if it exists.
    pub async fn load_org(&self, org_id: &str) -> StoreResult<Option<LoadedOrg>> {
        Ok(self.load_org_state(org_id).await?.map(LoadedOrg::from))
    }

    /// Every live organization, compiled as its rows stream in (no
    /// document of it is built).
    pub async fn load_all_states(&self) -> StoreResult<Vec<LoadedState>> {
        let result = match self {
            Store::Sqlite(s) => s.load_all_states().await,
            Store::Postgres(s) => s.load_all_states().await,
        };
        crate::telemetry::store_result("load_all", &result);
        result
    }

    /// One live organization, compiled as its rows stream in, if it exists.
    pub async fn load_org_state(&self, org_id: &str) -> StoreResult<Option<LoadedState>> {
        let result = match self {
            Store::Sqlite(s) => s.load_org_state(org_id).await,
            Store::Postgres(s) => s.load_org_state(org_id).await,
        };
        crate::telemetry::store_result("load_org", &result);
        result
    }

    /// The revision of every live organization.
    pub async fn revisions(&self) -> StoreResult<Vec<(String, u64)>> {
        let result = match self {
            Store::Sqlite(s) => s.revisions().await,
            Store::Postgres(s) => s.revisions().await,
        };
        crate::telemetry::store_result("revisions", &result);
        result
    }

    /// The revision of one live organization (0: it does not exist), read
    /// without listing every organization.
    pub async fn revision(&self, org_id: &str) -> StoreResult<u64> {
        let result = match self {
            Store::Sqlite(s) => s.revision(org_id).await,
            Store::Postgres(s) => s.revision(org_id).await,
        };
        crate::telemetry::store_result("revision", &result);
        result
    }

    /// Stores a planned write in one transaction: the entity rows, the
    /// change-log entry and the new revision, after checking the
    /// organization is still at `expected` (0: it must not exist). Durable
    /// when it returns; returns the new revision.
    pub async fn commit(
        &self,
        org_id: &str,
        expected: u64,
        changes: &[Change],
    ) -> StoreResult<u64> {
        let result = match self {
            Store::Sqlite(s) => s.commit(org_id, expected, changes).await,
            Store::Postgres(s) => s.commit(org_id, expected, changes).await,
        };
        crate::telemetry::store_result("commit", &result);
        result
    }

    /// [`Store::commit`] recording who wrote and when, and the bootstrap
    /// document the write merges, in the same transaction.
    pub async fn commit_with(
        &self,
        org_id: &str,
        expected: u64,
        changes: &[Change],
        meta: &CommitMeta,
    ) -> StoreResult<u64> {
        let result = match self {
            Store::Sqlite(s) => s.commit_with(org_id, expected, changes, meta).await,
            Store::Postgres(s) => s.commit_with(org_id, expected, changes, meta).await,
        };
        crate::telemetry::store_result("commit", &result);
        result
    }

    /// Closes every connection of the store (a reopen then starts afresh).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }

    /// Sets how much of each organization's change log is kept.
    pub fn set_retention(&mut self, retention: Retention) {
        match self {
            Store::Sqlite(s) => s.set_retention(retention),
            Store::Postgres(s) => s.set_retention(retention),
        }
    }

    /// The SHA-256 of the bootstrap document last merged into a live
    /// organization, if any.
    pub async fn bootstrap_sha256(&self, org_id: &str) -> StoreResult<Option<String>> {
        let result = match self {
            Store::Sqlite(s) => s.bootstrap_sha256(org_id).await,
            Store::Postgres(s) => s.bootstrap_sha256(org_id).await,
        };
        crate::telemetry::store_result("bootstrap_sha256", &result);
        result
    }

    /// The change log of an organization after `after`, oldest first. An
    /// empty answer while the organization is ahead means the log was
    /// pruned: reload.
    pub async fn changes_since(&self, org_id: &str, after: u64) -> StoreResult<Vec<LogEntry>> {
        let result = match self {
            Store::Sqlite(s) => s.changes_since(org_id, after).await,
            Store::Postgres(s) => s.changes_since(org_id, after).await,
        };
        crate::telemetry::store_result("changes_since", &result);
        result
    }

    /// At most `limit` entries of the change log after `after`, oldest first.
    pub async fn changes_page(
        &self,
        org_id: &str,
        after: u64,
        limit: u64,
    ) -> StoreResult<Vec<LogEntry>> {
        let result = match self {
            Store::Sqlite(s) => s.changes_page(org_id, after, limit).await,
            Store::Postgres(s) => s.changes_page(org_id, after, limit).await,
        };
        crate::telemetry::store_result("changes_page", &result);
        result
    }
}
