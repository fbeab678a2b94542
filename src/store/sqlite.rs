//! The SQLite store: one file (or memory), WAL with full sync so nothing
//! acknowledged is lost, writes serialized in the process, each one
//! transaction over the rows of `rows.rs`, the change log and the revision.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::audit::{self, CommitMeta, Retention};
use super::rows::{self, ChunkKey, DocumentBuilder, Row, RowKey, RowOp};
use super::{LoadedOrg, LoadedState, LogEntry, StoreError, StoreResult, MAX_LOGGED_CHANGES};
use crate::engine::document::StateBuilder;
use crate::engine::{Change, OrgState};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits on a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of a file store: readers run beside the one writer (WAL).
const FILE_CONNECTIONS: u32 = 4;
/// Rows written per multi-row insert: a large write makes few round trips
/// to the SQLite thread, with far fewer bind parameters than SQLite allows.
const UPSERT_BATCH: usize = 256;

// Parameters are anonymous (`?`): SQLite looks a numbered one up by a
// linear scan, which a statement of a thousand parameters cannot afford.
const UPSERT_ONE: &str =
    "INSERT OR REPLACE INTO entities (org_id, kind, module, record, id, body) \
     VALUES (?, ?, ?, ?, ?, ?)";
const DELETE_ONE: &str = "DELETE FROM entities \
     WHERE org_id = ? AND kind = ? AND module = ? AND record = ? AND id = ?";
const DELETE_RULE: &str = "DELETE FROM entities WHERE org_id = ? AND kind = ? AND id = ?";
const DELETE_RECORD_SHARES: &str =
    "DELETE FROM entities WHERE org_id = ? AND kind = ? AND module = ? AND record = ?";
const DELETE_MODULE_CONTENTS: &str =
    "DELETE FROM entities WHERE org_id = ? AND kind IN (?, ?, ?) AND module = ?";
const DELETE_ORG: &str = "DELETE FROM entities WHERE org_id = ?";

/// `UPSERT_ONE` for `UPSERT_BATCH` rows.
static UPSERT_MANY: LazyLock<String> = LazyLock::new(|| {
    let values = vec!["(?, ?, ?, ?, ?, ?)"; UPSERT_BATCH];
    format!(
        "INSERT OR REPLACE INTO entities (org_id, kind, module, record, id, body) VALUES {}",
        values.join(", ")
    )
});

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    /// One commit at a time: the revision check and the write must not
    /// interleave with another commit of this process.
    writer: tokio::sync::Mutex<()>,
    retention: Retention,
}

impl SqliteStore {
    /// Opens (creating if missing) the database a URL names, `sqlite://PATH`
    /// or `sqlite::memory:`, and brings its schema up to date.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(failed(&format!("open {url:?}")))?
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool_options = if in_memory {
            // The database lives as long as a connection to it: keep one,
            // forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                // A large write leaves a large WAL behind; give the space back.
                .pragma("journal_size_limit", (64 * 1024 * 1024).to_string());
            SqlitePoolOptions::new().max_connections(FILE_CONNECTIONS)
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(failed(&format!("open {url:?}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(failed(&format!("migrate {url:?}")))?;
        Ok(SqliteStore {
            pool,
            writer: tokio::sync::Mutex::new(()),
            retention: Retention::default(),
        })
    }

    /// Every live organization with its revision and contents, read from
    /// one snapshot.
    pub async fn load_all(&self) -> StoreResult<Vec<LoadedOrg>> {
        let op = "load organizations";
        let mut tx = self.pool.begin().await.map_err(failed(op))?;
        let orgs: Vec<(String, i64)> =
            sqlx::query_as("SELECT org_id, revision FROM orgs WHERE live = 1 ORDER BY org_id")
                .fetch_all(&mut *tx)
                .await
                .map_err(failed(op))?;
        let mut out = Vec::with_capacity(orgs.len());
        for (org_id, revision) in orgs {
            out.push(LoadedOrg {
                revision: to_revision(revision, op)?,
                document: load_document(&mut tx, &org_id).await?,
            });
        }
        tx.commit().await.map_err(failed(op))?;
        Ok(out)
    }

    /// One live organization, if it exists, read from one snapshot.
    pub async fn load_org(&self, org_id: &str) -> StoreResult<Option<LoadedOrg>> {
        let op = "load organization";
        let mut tx = self.pool.begin().await.map_err(failed(op))?;
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM orgs WHERE org_id = ? AND live = 1")
                .bind(org_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed(op))?;
        let Some(revision) = revision else {
            return Ok(None);
        };
        let document = load_document(&mut tx, org_id).await?;
        tx.commit().await.map_err(failed(op))?;
        Ok(Some(LoadedOrg {
            revision: to_revision(revision, op)?,
            document,
        }))
    }

    /// Every live organization, compiled as its rows stream in, read from
    /// one snapshot.
    pub async fn load_all_states(&self) -> StoreResult<Vec<LoadedState>> {
        let op = "load organizations";
        let mut tx = self.pool.begin().await.map_err(failed(op))?;
        let orgs: Vec<(String, i64)> =
            sqlx::query_as("SELECT org_id, revision FROM orgs WHERE live = 1 ORDER BY org_id")
                .fetch_all(&mut *tx)
                .await
                .map_err(failed(op))?;
        let mut out = Vec::with_capacity(orgs.len());
        for (org_id, revision) in orgs {
            let revision = to_revision(revision, op)?;
            out.push(LoadedState {
                revision,
                state: load_state(&mut tx, &org_id, revision).await?,
            });
        }
        tx.commit().await.map_err(failed(op))?;
        Ok(out)
    }

    /// One live organization, compiled as its rows stream in, if it
    /// exists, read from one snapshot.
    pub async fn load_org_state(&self, org_id: &str) -> StoreResult<Option<LoadedState>> {
        let op = "load organization";
        let mut tx = self.pool.begin().await.map_err(failed(op))?;
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM orgs WHERE org_id = ? AND live = 1")
                .bind(org_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed(op))?;
        let Some(revision) = revision else {
            return Ok(None);
        };
        let revision = to_revision(revision, op)?;
        let state = load_state(&mut tx, org_id, revision).await?;
        tx.commit().await.map_err(failed(op))?;
        Ok(Some(LoadedState { revision, state }))
    }

    /// The revision of every live organization, by organization id.
    pub async fn revisions(&self) -> StoreResult<Vec<(String, u64)>> {
        let op = "read revisions";
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT org_id, revision FROM orgs WHERE live = 1 ORDER BY org_id")
                .fetch_all(&self.pool)
                .await
                .map_err(failed(op))?;
        rows.into_iter()
            .map(|(org, revision)| Ok((org, to_revision(revision, op)?)))
            .collect()
    }

    /// The revision of one live organization (0: it does not exist).
    pub async fn revision(&self, org_id: &str) -> StoreResult<u64> {
        let op = "read the revision";
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT revision FROM orgs WHERE org_id = ? AND live = 1")
                .bind(org_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed(op))?;
        row.map_or(Ok(0), |(revision,)| to_revision(revision, op))
    }

    /// Sets how much of each organization's change log is kept.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    /// Stores a write in one transaction if the organization is still at
    /// `expected` (0: it does not exist), and returns its new revision.
    pub async fn commit(
        &self,
        org_id: &str,
        expected: u64,
        changes: &[Change],
    ) -> StoreResult<u64> {
        self.commit_with(org_id, expected, changes, &CommitMeta::default())
            .await
    }

    /// [`SqliteStore::commit`] recording the write's actor and time, and
    /// the bootstrap document it merges, in the same transaction.
    pub async fn commit_with(
        &self,
        org_id: &str,
        expected: u64,
        changes: &[Change],
        meta: &CommitMeta,
    ) -> StoreResult<u64> {
        let op = "commit";
        let _serial = self.writer.lock().await;
        // IMMEDIATE: take the write lock before reading the revision, so
        // another process cannot write between the check and the write.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed(op))?;
        let row: Option<(i64, bool)> =
            sqlx::query_as("SELECT revision, live FROM orgs WHERE org_id = ?")
                .bind(org_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed(op))?;
        let (stored, live) = match row {
            Some((revision, live)) => (to_revision(revision, op)?, live),
            None => (0, false),
        };
        let current = if live { stored } else { 0 };
        if current != expected {
            return Err(StoreError::Conflict { current });
        }
        // A tombstone's revision counts: a re-created organization goes on
        // from it, so no revision ever names two states.
        let revision = stored + 1;

        let mut writer = RowWriter::new(org_id);
        let mut live_after = true;
        for change in changes {
            match change {
                Change::DeleteOrg => live_after = false,
                Change::CreateOrg(_) => live_after = true,
                _ => {}
            }
            for row_op in rows::row_ops(change)? {
                writer.apply(&mut tx, row_op).await?;
            }
        }
        writer.flush(&mut tx).await?;

        let logged = if changes.len() > MAX_LOGGED_CHANGES {
            None
        } else {
            Some(
                serde_json::to_string(changes)
                    .map_err(failed("commit: encode the change log entry"))?,
            )
        };
        let revision_value = to_sql(revision, op)?;
        let now = chrono::Utc::now();
        sqlx::query(
            "INSERT INTO changelog (org_id, revision, changes, actor, written_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(org_id)
        .bind(revision_value)
        .bind(logged)
        .bind(meta.audit.as_ref().map(|a| a.actor.as_str()))
        .bind(meta.audit.as_ref().map(|a| audit::time_text(a.at)))
        .execute(&mut *tx)
        .await
        .map_err(failed("commit: append to the change log"))?;
        sqlx::query(
            "INSERT INTO orgs (org_id, revision, live) VALUES (?, ?, ?) \
             ON CONFLICT (org_id) DO UPDATE SET revision = excluded.revision, live = excluded.live",
        )
        .bind(org_id)
        .bind(revision_value)
        .bind(live_after)
        .execute(&mut *tx)
        .await
        .map_err(failed("commit: bump the revision"))?;
        // Pruning by age keeps the newest entry whatever its age, and
        // treats an entry of unknown time (logged before the audit) as old.
        let prune = match (
            self.retention.oldest_revision(revision),
            self.retention.oldest_time(now),
        ) {
            (Some(oldest), _) => {
                sqlx::query("DELETE FROM changelog WHERE org_id = ? AND revision < ?")
                    .bind(org_id)
                    .bind(to_sql(oldest, op)?)
            }
            (None, oldest) => sqlx::query(
                "DELETE FROM changelog WHERE org_id = ? AND revision < ? \
                 AND (written_at IS NULL OR written_at < ?)",
            )
            .bind(org_id)
            .bind(revision_value)
            .bind(oldest),
        };
        prune
            .execute(&mut *tx)
            .await
            .map_err(failed("commit: prune the change log"))?;
        if !live_after {
            sqlx::query("DELETE FROM bootstrap WHERE org_id = ?")
                .bind(org_id)
                .execute(&mut *tx)
                .await
                .map_err(failed("commit: forget the bootstrap document"))?;
        } else if let Some(sha256) = &meta.bootstrap_sha256 {
            sqlx::query(
                "INSERT INTO bootstrap (org_id, sha256, revision) VALUES (?, ?, ?) \
                 ON CONFLICT (org_id) DO UPDATE SET sha256 = excluded.sha256, \
                 revision = excluded.revision",
            )
            .bind(org_id)
            .bind(sha256)
            .bind(revision_value)
            .execute(&mut *tx)
            .await
            .map_err(failed("commit: record the bootstrap document"))?;
        }
        tx.commit().await.map_err(failed(op))?;
        Ok(revision)
    }

    /// The change log of an organization after `after`, oldest first.
    pub async fn changes_since(&self, org_id: &str, after: u64) -> StoreResult<Vec<LogEntry>> {
        self.changes_page(org_id, after, u64::MAX).await
    }

    /// At most `limit` entries of the change log after `after`, oldest first.
    pub async fn changes_page(
        &self,
        org_id: &str,
        after: u64,
        limit: u64,
    ) -> StoreResult<Vec<LogEntry>> {
        let op = "read the change log";
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows: Vec<super::LogRow> = sqlx::query_as(
            "SELECT revision, changes, actor, written_at FROM changelog \
             WHERE org_id = ? AND revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(org_id)
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(failed(op))?;
        rows.into_iter()
            .map(|(revision, changes, actor, at)| {
                super::log_entry(to_revision(revision, op)?, changes, actor, at)
            })
            .collect()
    }

    /// The SHA-256 of the bootstrap document last merged into a live
    /// organization, if any.
    pub async fn bootstrap_sha256(&self, org_id: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT b.sha256 FROM bootstrap b JOIN orgs o ON o.org_id = b.org_id \
             WHERE b.org_id = ? AND o.live = 1",
        )
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("read the bootstrap hash"))
    }
}

/// Runs the row operations of one commit, gathering consecutive upserts
/// into multi-row inserts; every statement is one of a fixed few, prepared
/// once per connection and reused.
struct RowWriter<'a> {
    org_id: &'a str,
    pending: Vec<Row>,
}

impl<'a> RowWriter<'a> {
    fn new(org_id: &'a str) -> Self {
        RowWriter {
            org_id,
            pending: Vec::new(),
        }
    }

    async fn apply(&mut self, conn: &mut SqliteConnection, op: RowOp) -> StoreResult<()> {
        if let RowOp::Upsert(row) = op {
            self.pending.push(row);
            if self.pending.len() == UPSERT_BATCH {
                self.flush(conn).await?;
            }
            return Ok(());
        }
        // Deletes must see every upsert before them.
        self.flush(conn).await?;
        let org_id = self.org_id;
        let query = match op {
            RowOp::Upsert(_) => return Ok(()),
            RowOp::Delete(RowKey {
                kind,
                module,
                record,
                id,
            }) => sqlx::query(DELETE_ONE)
                .bind(org_id)
                .bind(kind)
                .bind(module)
                .bind(record)
                .bind(id),
            RowOp::DeleteRule { id } => sqlx::query(DELETE_RULE)
                .bind(org_id)
                .bind(rows::RULE)
                .bind(id),
            RowOp::DeleteRecordShares { module, record } => sqlx::query(DELETE_RECORD_SHARES)
                .bind(org_id)
                .bind(rows::SHARE)
                .bind(module)
                .bind(record),
            RowOp::DeleteModuleContents { module } => sqlx::query(DELETE_MODULE_CONTENTS)
                .bind(org_id)
                .bind(rows::RECORD)
                .bind(rows::SHARE)
                .bind(rows::RULE)
                .bind(module),
            RowOp::DeleteOrg => sqlx::query(DELETE_ORG).bind(org_id),
        };
        query
            .execute(&mut *conn)
            .await
            .map_err(failed("commit: delete rows"))?;
        Ok(())
    }

    async fn flush(&mut self, conn: &mut SqliteConnection) -> StoreResult<()> {
        if self.pending.len() == UPSERT_BATCH {
            let mut query = sqlx::query(UPSERT_MANY.as_str());
            for row in self.pending.drain(..) {
                query = query
                    .bind(self.org_id)
                    .bind(row.key.kind)
                    .bind(row.key.module)
                    .bind(row.key.record)
                    .bind(row.key.id)
                    .bind(row.body);
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: write rows"))?;
            return Ok(());
        }
        for row in self.pending.drain(..) {
            sqlx::query(UPSERT_ONE)
                .bind(self.org_id)
                .bind(row.key.kind)
                .bind(row.key.module)
                .bind(row.key.record)
                .bind(row.key.id)
                .bind(row.body)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: write a row"))?;
        }
        Ok(())
    }
}

async fn load_document(
    conn: &mut SqliteConnection,
    org_id: &str,
) -> StoreResult<crate::engine::OrgDocument> {
    let op = "load organization rows";
    let mut builder = DocumentBuilder::new(org_id);
    let mut rows =
        sqlx::query_as::<_, (String, String)>("SELECT kind, body FROM entities WHERE org_id = ?")
            .bind(org_id)
            .fetch(conn);
    while let Some((kind, body)) = rows.try_next().await.map_err(failed(op))? {
        builder.add(&kind, &body)?;
    }
    Ok(builder.finish())
}

/// The small kinds of an organization, each found through the primary key.
const LOAD_SMALL_SQL: &str =
    "SELECT kind, body FROM entities WHERE org_id = ? AND kind IN (?, ?, ?, ?, ?, ?, ?, ?)";

/// A chunk of the load: at most `LOAD_CHUNK` record bodies of one module
/// after a record id, joined by newlines, with their count and last id.
/// SQLite walks the primary key and joins them itself, so a million rows
/// cross the driver as a few dozen texts.
const LOAD_RECORDS_SQL: &str = "SELECT group_concat(body, char(10)), count(*), max(record) \
     FROM (SELECT record, body FROM entities \
     WHERE org_id = ? AND kind = ? AND module = ? AND record > ? \
     ORDER BY record LIMIT ?)";

/// The same for shares, after a `(record, grantee key)`; the last key comes
/// back joined by `KEY_SEPARATOR`.
const LOAD_SHARES_SQL: &str = "SELECT group_concat(body, char(10)), count(*), \
     max(record || char(1) || id) FROM (SELECT record, id, body FROM entities \
     WHERE org_id = ? AND kind = ? AND module = ? AND (record, id) > (?, ?) \
     ORDER BY record, id LIMIT ?)";

/// Reads one organization's rows straight into its compiled state: the
/// small kinds into a document first, then each module's records and
/// shares in chunks, each body applied as soon as it is decoded.
async fn load_state(
    conn: &mut SqliteConnection,
    org_id: &str,
    revision: u64,
) -> StoreResult<OrgState> {
    let op = "load organization rows";
    let mut small = DocumentBuilder::new(org_id);
    {
        let mut query = sqlx::query_as::<_, (String, String)>(LOAD_SMALL_SQL).bind(org_id);
        for kind in rows::SMALL_KINDS {
            query = query.bind(kind);
        }
        let mut rows = query.fetch(&mut *conn);
        while let Some((kind, body)) = rows.try_next().await.map_err(failed(op))? {
            small.add(&kind, &body)?;
        }
    }
    let small = small.finish();
    let modules: Vec<String> = small.modules.iter().map(|m| m.id.clone()).collect();
    let mut builder = StateBuilder::new(small, revision);
    for kind in rows::STREAMED {
        for module in &modules {
            let mut after = ChunkKey::default();
            loop {
                let query = if kind == rows::RECORD {
                    sqlx::query_as(LOAD_RECORDS_SQL)
                        .bind(org_id)
                        .bind(kind)
                        .bind(module)
                        .bind(&after.record)
                } else {
                    sqlx::query_as(LOAD_SHARES_SQL)
                        .bind(org_id)
                        .bind(kind)
                        .bind(module)
                        .bind(&after.record)
                        .bind(&after.id)
                };
                let (bodies, count, last): (Option<String>, i64, Option<String>) = query
                    .bind(rows::LOAD_CHUNK)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(failed(op))?;
                if let Some(bodies) = &bodies {
                    rows::load_chunk(&mut builder, kind, bodies)?;
                }
                match last {
                    Some(last) if count == rows::LOAD_CHUNK => after = ChunkKey::parse(&last)?,
                    _ => break,
                }
            }
        }
    }
    Ok(builder.finish())
}

/// Maps a backend error to `StoreError::Backend`, naming the operation.
fn failed<E: std::fmt::Display>(op: &str) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{op}: {e}"))
}

fn to_revision(value: i64, op: &str) -> StoreResult<u64> {
    u64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("{op}: negative revision {value} in the store")))
}

fn to_sql(revision: u64, op: &str) -> StoreResult<i64> {
    i64::try_from(revision)
        .map_err(|_| StoreError::Backend(format!("{op}: revision {revision} out of range")))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::document::{parse_document, parse_scenario};
    use crate::engine::document::{changes_of, export};
    use crate::engine::model::{AccessLevel, Owd};
    use crate::engine::model::{
        Grantee, HierarchyMode, MemberSet, ModuleDef, OwnerRef, RecordDef, Settings, ShareDef,
        SharingRuleDef, UserDef,
    };
    use crate::engine::{Command, Direct, Engine, Limits, OrgDocument};
    use crate::store::LOG_KEPT;

    /// Two modules with records, shares of every grantee sort and rules;
    /// roles, users and groups listed children first.
    const ACME: &str = r#"
organization: acme
modules:
  - {id: Leads, owd: PRIVATE, fields: [name]}
  - {id: Deals, owd: PUBLIC_READ}
profiles:
  - id: std
    modules: {Leads: [view, edit, share], Deals: [view]}
roles:
  - {id: sales, parent: ceo, profiles: [std]}
  - {id: ceo, profiles: [std]}
users:
  - {id: bob, role: sales, reports_to: alice}
  - {id: alice, role: ceo}
  - {id: carol, role: sales}
groups:
  - {id: outer, groups: [team]}
  - {id: team, users: [bob, carol]}
records:
  - {module: Leads, id: L1, owner: {user: bob}}
  - {module: Leads, id: L2, owner: {group: team}, attributes: {region: EU}}
  - {module: Deals, id: D1, owner: {user: alice}, private: true}
shares:
  - {module: Leads, record: L1, grantee: {user: alice}, level: READ}
  - {module: Leads, record: L1, grantee: {role: sales}, level: READ_WRITE}
  - {module: Leads, record: L2, grantee: {role_and_subordinates: ceo}, level: FULL}
  - {module: Deals, record: D1, grantee: {group: outer}, level: READ}
sharing_rules:
  - {id: r1, module: Leads, from: {role: sales}, to: {group: team}, access: READ}
  - {id: r2, module: Deals, criteria: {stage: won}, to: {role_and_subordinates: ceo}, access: READ_WRITE}
"#;

    type Key = (String, String, String, String);

    /// A store in a temporary file beside an engine that is told every
    /// write the store acknowledges: the engine is what the store must
    /// give back.
    struct Harness {
        dir: tempfile::TempDir,
        store: SqliteStore,
        engine: Engine,
    }

    impl Harness {
        async fn new() -> Harness {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&url_of(&dir)).await.unwrap();
            Harness {
                dir,
                store,
                engine: Engine::new(Direct, Limits::default()),
            }
        }

        async fn reopen(&mut self) {
            self.store.pool.close().await;
            self.store = SqliteStore::open(&url_of(&self.dir)).await.unwrap();
        }

        /// Plans a command on the engine, commits it, then applies it.
        async fn run(&self, org: &str, command: Command) -> u64 {
            let changes = self.engine.plan(org, &command).unwrap();
            self.commit(org, &changes).await
        }

        /// Commits changes at the engine's revision, then applies them.
        async fn commit(&self, org: &str, changes: &[Change]) -> u64 {
            let expected = self.engine.revision(org).unwrap_or(0);
            let revision = self.store.commit(org, expected, changes).await.unwrap();
            self.engine.apply(org, revision, changes);
            revision
        }

        async fn import(&self, text: &str) -> (String, u64) {
            let document = parse_document(text).unwrap();
            let org = document.organization.clone();
            let revision = self
                .run(
                    &org,
                    Command::Import {
                        document,
                        replace: true,
                    },
                )
                .await;
            (org, revision)
        }

        /// The store holds exactly what the engine holds, and its document
        /// rebuilds the same organization.
        async fn assert_in_step(&self, org: &str) {
            let loaded = self.store.load_org(org).await.unwrap();
            let Ok((expected, revision)) = self.engine.export(org) else {
                assert_eq!(loaded, None, "{org} is gone from the engine");
                return;
            };
            let loaded = loaded.unwrap_or_else(|| panic!("{org} missing from the store"));
            assert_eq!(loaded.revision, revision, "{org}: revision");
            assert_eq!(loaded.document, expected, "{org}: document");
            let fresh = Engine::new(Direct, Limits::default());
            fresh.apply(org, loaded.revision, &changes_of(&loaded.document));
            assert_eq!(fresh.export(org).unwrap(), (expected.clone(), revision));
            // The streamed load, as start-up runs it, compiles the same.
            let streamed = self.store.load_org_state(org).await.unwrap().unwrap();
            assert_eq!(streamed.revision, revision, "{org}: streamed revision");
            assert_eq!(export(&streamed.state), expected, "{org}: streamed state");
        }

        async fn rows(&self, org: &str) -> Vec<Key> {
            sqlx::query_as(
                "SELECT kind, module, record, id FROM entities WHERE org_id = ? \
                 ORDER BY kind, module, record, id",
            )
            .bind(org)
            .fetch_all(&self.store.pool)
            .await
            .unwrap()
        }

        async fn rows_of_kind(&self, org: &str, kind: &str) -> Vec<Key> {
            let mut rows = self.rows(org).await;
            rows.retain(|r| r.0 == kind);
            rows
        }
    }

    fn url_of(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}", dir.path().join("warden.db").display())
    }

    fn key(kind: &str, module: &str, record: &str, id: &str) -> Key {
        (kind.into(), module.into(), record.into(), id.into())
    }

    fn module(id: &str) -> ModuleDef {
        ModuleDef {
            id: id.into(),
            owd: Owd::Private,
            hierarchy_access: true,
            fields: Vec::new(),
            actions: Default::default(),
        }
    }

    fn record(module: &str, id: &str, owner: &str) -> RecordDef {
        RecordDef {
            module: module.into(),
            id: id.into(),
            owner: OwnerRef::User(owner.into()),
            private: false,
            attributes: Default::default(),
        }
    }

    fn share(module: &str, record: &str, grantee: Grantee, level: AccessLevel) -> ShareDef {
        ShareDef {
            module: module.into(),
            record: record.into(),
            grantee,
            level,
        }
    }

    fn user(id: &str) -> UserDef {
        UserDef {
            id: id.into(),
            ..UserDef::default()
        }
    }

    #[tokio::test]
    async fn every_scenario_document_survives_a_reopen() {
        let mut h = Harness::new().await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
        let mut orgs = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let scenario = parse_scenario(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if scenario.expect_error.is_some() {
                continue;
            }
            let org = scenario.document.organization.clone();
            h.run(
                &org,
                Command::Import {
                    document: scenario.document,
                    replace: true,
                },
            )
            .await;
            orgs.push(org);
        }
        assert!(orgs.len() > 10, "scenarios found: {orgs:?}");
        h.reopen().await;
        for org in &orgs {
            h.assert_in_step(org).await;
        }
        let all = h.store.load_all().await.unwrap();
        let mut names: Vec<&str> = all
            .iter()
            .map(|o| o.document.organization.as_str())
            .collect();
        let mut expected: Vec<&str> = orgs.iter().map(String::as_str).collect();
        expected.sort();
        names.sort();
        assert_eq!(names, expected);
        for loaded in all {
            let org = loaded.document.organization.clone();
            assert_eq!(
                Ok((loaded.document, loaded.revision)),
                h.engine.export(&org).map_err(|e| e.to_string())
            );
        }
        let states = h.store.load_all_states().await.unwrap();
        assert_eq!(states.len(), orgs.len());
        for loaded in states {
            let org = loaded.state.id.to_string();
            assert_eq!(
                Ok((export(&loaded.state), loaded.revision)),
                h.engine.export(&org).map_err(|e| e.to_string())
            );
        }
    }

    #[tokio::test]
    async fn every_write_keeps_the_store_in_step_with_the_engine() {
        let mut h = Harness::new().await;
        let (org, revision) = h.import(ACME).await;
        assert_eq!(revision, 1);
        h.assert_in_step(&org).await;
        let commands = vec![
            Command::Share(vec![share(
                "Leads",
                "L2",
                Grantee::User("carol".into()),
                AccessLevel::Read,
            )]),
            Command::Unshare(vec![share(
                "Leads",
                "L1",
                Grantee::Role("sales".into()),
                AccessLevel::Read,
            )]),
            // Re-owning keeps the record's shares.
            Command::SetOwner(record("Leads", "L1", "carol").into()),
            Command::PutSharingRule(SharingRuleDef {
                id: "r1".into(),
                module: "Deals".into(),
                from: Some(MemberSet::Role("sales".into())),
                criteria: None,
                to: MemberSet::Group("team".into()),
                access: AccessLevel::Read,
            }),
            Command::DeleteSharingRule("r2".into()),
            Command::DeleteRecord {
                module: "Leads".into(),
                id: "L2".into(),
            },
            Command::DeleteUser {
                id: "bob".into(),
                transfer_to: Some(OwnerRef::User("carol".into())),
                cascade: true,
            },
            Command::PutUser(UserDef {
                role: Some("sales".into()),
                ..user("dave")
            }),
            Command::DeleteModule {
                id: "Deals".into(),
                cascade: true,
            },
            Command::UpdateSettings(
                Settings {
                    hierarchy_mode: HierarchyMode::Reporting,
                    ..Settings::default()
                }
                .into(),
            ),
            Command::DeleteGroup {
                id: "outer".into(),
                transfer_to: None,
                cascade: true,
            },
            Command::DeleteProfile {
                id: "std".into(),
                cascade: true,
            },
        ];
        for (i, command) in commands.into_iter().enumerate() {
            let revision = h.run(&org, command).await;
            assert_eq!(revision, i as u64 + 2);
            h.assert_in_step(&org).await;
        }
        h.reopen().await;
        h.assert_in_step(&org).await;
        assert_eq!(
            h.rows_of_kind(&org, rows::SHARE).await,
            vec![key(rows::SHARE, "Leads", "L1", "user:alice")]
        );
    }

    #[tokio::test]
    async fn a_stale_expected_revision_conflicts_and_changes_nothing() {
        let h = Harness::new().await;
        let (org, _) = h.import(ACME).await;
        let rows_before = h.rows(&org).await;
        let log_before = h.store.changes_since(&org, 0).await.unwrap();
        let write = [Change::PutModule(module("Cases"))];
        for stale in [0, 2, 7] {
            match h.store.commit(&org, stale, &write).await {
                Err(StoreError::Conflict { current }) => assert_eq!(current, 1),
                other => panic!("expected a conflict at {stale}, got {other:?}"),
            }
        }
        match h
            .store
            .commit("nobody", 1, &[Change::CreateOrg(Settings::default())])
            .await
        {
            Err(StoreError::Conflict { current }) => assert_eq!(current, 0),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(h.rows(&org).await, rows_before);
        assert_eq!(h.store.changes_since(&org, 0).await.unwrap(), log_before);
        assert_eq!(h.store.revisions().await.unwrap(), vec![(org.clone(), 1)]);
        assert!(h.rows("nobody").await.is_empty());
        assert!(h.store.changes_since("nobody", 0).await.unwrap().is_empty());
        h.assert_in_step(&org).await;
        // The write goes through at the right revision.
        assert_eq!(h.commit(&org, &write).await, 2);
        h.assert_in_step(&org).await;
    }

    #[tokio::test]
    async fn a_deleted_then_recreated_organization_continues_its_revision() {
        let mut h = Harness::new().await;
        let org = "acme";
        assert_eq!(
            h.run(org, Command::CreateOrganization(Settings::default()))
                .await,
            1
        );
        assert_eq!(h.run(org, Command::PutModule(module("Leads"))).await, 2);
        assert_eq!(h.run(org, Command::DeleteOrganization).await, 3);
        assert_eq!(h.store.load_org(org).await.unwrap(), None);
        assert!(h.store.load_all().await.unwrap().is_empty());
        assert!(h.store.revisions().await.unwrap().is_empty());
        assert!(h.rows(org).await.is_empty());
        // Gone means revision 0 to a writer.
        match h
            .store
            .commit(org, 3, &[Change::Settings(Settings::default())])
            .await
        {
            Err(StoreError::Conflict { current }) => assert_eq!(current, 0),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            h.run(org, Command::CreateOrganization(Settings::default()))
                .await,
            4
        );
        h.reopen().await;
        h.assert_in_step(org).await;
        assert_eq!(
            h.store.revisions().await.unwrap(),
            vec![(org.to_string(), 4)]
        );
        let log = h.store.changes_since(org, 0).await.unwrap();
        let revisions: Vec<u64> = log.iter().map(|e| e.revision).collect();
        assert_eq!(revisions, vec![1, 2, 3, 4]);
        assert_eq!(log[2].changes, Some(vec![Change::DeleteOrg]));
        assert_eq!(h.rows(org).await, vec![key(rows::SETTINGS, "", "", "")]);
    }

    #[tokio::test]
    async fn deleting_a_record_takes_its_shares_and_nothing_else() {
        let h = Harness::new().await;
        let (org, _) = h.import(ACME).await;
        h.commit(
            &org,
            &[Change::DeleteRecord {
                module: "Leads".into(),
                id: "L1".into(),
            }],
        )
        .await;
        h.assert_in_step(&org).await;
        assert_eq!(
            h.rows_of_kind(&org, rows::RECORD).await,
            vec![
                key(rows::RECORD, "Deals", "D1", ""),
                key(rows::RECORD, "Leads", "L2", ""),
            ]
        );
        assert_eq!(
            h.rows_of_kind(&org, rows::SHARE).await,
            vec![
                key(rows::SHARE, "Deals", "D1", "group:outer"),
                key(rows::SHARE, "Leads", "L2", "role_and_subordinates:ceo"),
            ]
        );
    }

    #[tokio::test]
    async fn deleting_a_module_takes_its_records_shares_and_rules() {
        let h = Harness::new().await;
        let (org, _) = h.import(ACME).await;
        let others: Vec<Key> = h
            .rows(&org)
            .await
            .into_iter()
            .filter(|(kind, module, _, id)| {
                module != "Leads" && !(kind == rows::MODULE && id == "Leads")
            })
            .collect();
        h.commit(&org, &[Change::DeleteModule { id: "Leads".into() }])
            .await;
        h.assert_in_step(&org).await;
        assert_eq!(h.rows(&org).await, others);
        assert!(others.contains(&key(rows::RULE, "Deals", "", "r2")));
        assert!(others.contains(&key(rows::SHARE, "Deals", "D1", "group:outer")));
    }

    #[tokio::test]
    async fn a_replacing_import_leaves_only_the_new_document() {
        let h = Harness::new().await;
        let (org, _) = h.import(ACME).await;
        let (_, revision) = h
            .import("organization: acme\nmodules: [{id: Cases}]\nusers: [{id: zed, kind: GUEST}]\n")
            .await;
        assert_eq!(revision, 2);
        h.assert_in_step(&org).await;
        assert_eq!(
            h.rows(&org).await,
            vec![
                key(rows::MODULE, "", "", "Cases"),
                key(rows::SETTINGS, "", "", ""),
                key(rows::USER, "", "", "zed"),
            ]
        );
    }

    #[tokio::test]
    async fn a_rule_put_in_another_module_moves_there() {
        let h = Harness::new().await;
        let (org, _) = h.import(ACME).await;
        let moved = SharingRuleDef {
            id: "r1".into(),
            module: "Deals".into(),
            from: None,
            criteria: Some([("stage".to_string(), "lost".to_string())].into()),
            to: MemberSet::Role("ceo".into()),
            access: AccessLevel::ReadWrite,
        };
        h.commit(&org, &[Change::PutRule(moved.clone())]).await;
        h.assert_in_step(&org).await;
        assert_eq!(
            h.rows_of_kind(&org, rows::RULE).await,
            vec![
                key(rows::RULE, "Deals", "", "r1"),
                key(rows::RULE, "Deals", "", "r2")
            ]
        );
        let loaded = h.store.load_org(&org).await.unwrap().unwrap();
        assert!(loaded.document.sharing_rules.contains(&moved));
        // And deleting it by id finds it in its new module.
        h.commit(&org, &[Change::DeleteRule { id: "r1".into() }])
            .await;
        assert_eq!(
            h.rows_of_kind(&org, rows::RULE).await,
            vec![key(rows::RULE, "Deals", "", "r2")]
        );
        h.assert_in_step(&org).await;
    }

    #[tokio::test]
    async fn the_change_log_reads_in_order_and_a_huge_write_is_logged_empty() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let org = "acme";
        let writes = vec![
            vec![
                Change::CreateOrg(Settings::default()),
                Change::PutModule(module("Leads")),
                Change::PutUser(user("alice")),
            ],
            vec![Change::PutRecord(record("Leads", "L1", "alice"))],
            vec![Change::PutShare(share(
                "Leads",
                "L1",
                Grantee::RoleAndSubordinates("ceo".into()),
                AccessLevel::Read,
            ))],
        ];
        for (i, changes) in writes.iter().enumerate() {
            assert_eq!(
                store.commit(org, i as u64, changes).await.unwrap(),
                i as u64 + 1
            );
        }
        let records = |n: usize| -> Vec<Change> {
            (0..n)
                .map(|i| Change::PutRecord(record("Leads", &format!("bulk-{i}"), "alice")))
                .collect()
        };
        let largest_logged = records(MAX_LOGGED_CHANGES);
        let too_large = records(MAX_LOGGED_CHANGES + 1);
        assert_eq!(store.commit(org, 3, &largest_logged).await.unwrap(), 4);
        assert_eq!(store.commit(org, 4, &too_large).await.unwrap(), 5);

        let log = store.changes_since(org, 0).await.unwrap();
        let revisions: Vec<u64> = log.iter().map(|e| e.revision).collect();
        assert_eq!(revisions, vec![1, 2, 3, 4, 5]);
        for (entry, changes) in log.iter().zip(&writes) {
            assert_eq!(entry.changes.as_ref(), Some(changes));
        }
        assert_eq!(log[3].changes.as_ref(), Some(&largest_logged));
        assert_eq!(log[4].changes, None);
        let tail = store.changes_since(org, 2).await.unwrap();
        assert_eq!(tail, log[2..].to_vec());
        assert!(store.changes_since(org, 5).await.unwrap().is_empty());
        assert!(store.changes_since(org, u64::MAX).await.unwrap().is_empty());
        // The unlogged write is in the rows all the same.
        let loaded = store.load_org(org).await.unwrap().unwrap();
        assert_eq!(loaded.revision, 5);
        assert_eq!(loaded.document.records.len(), 1 + MAX_LOGGED_CHANGES + 1);
    }

    #[tokio::test]
    async fn the_change_log_keeps_the_last_ten_thousand_writes() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let org = "acme";
        let write = [Change::Settings(Settings::default())];
        store
            .commit(org, 0, &[Change::CreateOrg(Settings::default())])
            .await
            .unwrap();
        let last = LOG_KEPT + 5;
        for revision in 1..last {
            store.commit(org, revision, &write).await.unwrap();
        }
        let log = store.changes_since(org, 0).await.unwrap();
        assert_eq!(log.first().map(|e| e.revision), Some(last - LOG_KEPT));
        assert_eq!(log.last().map(|e| e.revision), Some(last));
        assert_eq!(log.len() as u64, LOG_KEPT + 1);
    }

    #[tokio::test]
    async fn the_log_records_actor_and_time_and_keeps_what_retention_says() {
        use crate::store::{Audit, CommitMeta, Retention};
        let mut store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.set_retention(Retention::Age(Duration::from_secs(3600)));
        let org = "acme";
        let at = |hours_ago: i64| CommitMeta {
            audit: Some(Audit {
                actor: format!("actor-{hours_ago}"),
                at: chrono::Utc::now() - chrono::Duration::hours(hours_ago),
            }),
            bootstrap_sha256: None,
        };
        let create = [Change::CreateOrg(Settings::default())];
        let write = [Change::Settings(Settings::default())];
        store.commit_with(org, 0, &create, &at(3)).await.unwrap();
        // The newest entry stays whatever its age.
        let log = store.changes_since(org, 0).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].actor.as_deref(), Some("actor-3"));
        store.commit_with(org, 1, &write, &at(2)).await.unwrap();
        store.commit(org, 2, &write).await.unwrap();
        store.commit_with(org, 3, &write, &at(0)).await.unwrap();
        // Older than an hour, or of unknown time: pruned.
        let log = store.changes_since(org, 0).await.unwrap();
        assert_eq!(log.iter().map(|e| e.revision).collect::<Vec<_>>(), [4]);
        let entry = &log[0];
        assert_eq!(entry.actor.as_deref(), Some("actor-0"));
        let age = chrono::Utc::now() - entry.at.unwrap();
        assert!(age < chrono::Duration::minutes(1), "{age}");
    }

    #[tokio::test]
    async fn the_bootstrap_hash_is_kept_with_its_write_and_forgotten_with_the_org() {
        use crate::store::CommitMeta;
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let org = "acme";
        let with_hash = CommitMeta {
            audit: None,
            bootstrap_sha256: Some("abc".into()),
        };
        assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
        store
            .commit_with(
                org,
                0,
                &[Change::CreateOrg(Settings::default())],
                &with_hash,
            )
            .await
            .unwrap();
        assert_eq!(
            store.bootstrap_sha256(org).await.unwrap().as_deref(),
            Some("abc")
        );
        // A refused write records nothing.
        let other = CommitMeta {
            bootstrap_sha256: Some("def".into()),
            ..with_hash.clone()
        };
        assert!(store
            .commit_with(org, 7, &[Change::Settings(Settings::default())], &other)
            .await
            .is_err());
        assert_eq!(
            store.bootstrap_sha256(org).await.unwrap().as_deref(),
            Some("abc")
        );
        store.commit(org, 1, &[Change::DeleteOrg]).await.unwrap();
        assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
        // Re-created, it holds no bootstrap document until one is merged.
        store
            .commit(org, 0, &[Change::CreateOrg(Settings::default())])
            .await
            .unwrap();
        assert_eq!(store.bootstrap_sha256(org).await.unwrap(), None);
    }

    #[tokio::test]
    async fn revisions_list_live_organizations_only() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let create = [Change::CreateOrg(Settings::default())];
        for org in ["a", "b", "c"] {
            store.commit(org, 0, &create).await.unwrap();
        }
        store
            .commit("b", 1, &[Change::PutModule(module("Leads"))])
            .await
            .unwrap();
        store.commit("a", 1, &[Change::DeleteOrg]).await.unwrap();
        assert_eq!(
            store.revisions().await.unwrap(),
            vec![("b".to_string(), 2), ("c".to_string(), 1)]
        );
        let loaded: Vec<String> = store
            .load_all()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.document.organization)
            .collect();
        assert_eq!(loaded, vec!["b", "c"]);
        assert_eq!(store.load_org("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_stores_persist_between_calls_and_are_separate() {
        let first = SqliteStore::open("sqlite::memory:").await.unwrap();
        let second = SqliteStore::open("sqlite::memory:").await.unwrap();
        first
            .commit("acme", 0, &[Change::CreateOrg(Settings::default())])
            .await
            .unwrap();
        let loaded = first.load_org("acme").await.unwrap().unwrap();
        assert_eq!(loaded.revision, 1);
        assert_eq!(loaded.document.settings, Some(Settings::default().into()));
        assert!(second.revisions().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_bad_url_is_a_backend_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}",
            dir.path().join("no/such/dir/warden.db").display()
        );
        match SqliteStore::open(&url).await {
            Err(StoreError::Backend(message)) => assert!(message.starts_with("open"), "{message}"),
            Err(other) => panic!("expected a backend error, got {other:?}"),
            Ok(_) => panic!("expected a backend error"),
        }
    }

    #[tokio::test]
    async fn a_streamed_load_reads_every_chunk_of_records_and_shares() {
        let h = Harness::new().await;
        let org = "paged";
        // More rows than a chunk holds, in several modules, with a record
        // id that is a prefix of others, so chunks end mid-module and
        // between shares of one record.
        let per_module = rows::LOAD_CHUNK as usize + 7;
        let mut changes = vec![
            Change::CreateOrg(Settings::default()),
            Change::PutModule(module("Alpha")),
            Change::PutModule(module("Beta")),
            Change::PutUser(user("alice")),
            Change::PutUser(user("bob")),
            Change::PutUser(user("carol")),
        ];
        for m in ["Alpha", "Beta"] {
            changes.push(Change::PutRecord(record(m, "R", "alice")));
            for i in 0..per_module {
                changes.push(Change::PutRecord(record(m, &format!("R{i}"), "bob")));
            }
            for i in 0..per_module / 2 {
                for grantee in ["alice", "carol"] {
                    changes.push(Change::PutShare(share(
                        m,
                        &format!("R{i}"),
                        Grantee::User(grantee.into()),
                        AccessLevel::Read,
                    )));
                }
            }
        }
        h.commit(org, &changes).await;
        h.assert_in_step(org).await;
        let loaded = h.store.load_org_state(org).await.unwrap().unwrap();
        assert_eq!(loaded.state.record_count(), 2 * (per_module + 1));
        let shares: usize = export(&loaded.state).shares.len();
        assert_eq!(shares, 2 * 2 * (per_module / 2));
        assert!(h.store.load_org_state("nobody").await.unwrap().is_none());
    }

    /// crm-large's records and shares in one replacing import, twice (the
    /// second replaces the first), then loaded back.
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "timing: cargo test --release --lib store -- --ignored --nocapture"]
    async fn a_million_record_import_commits_in_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&url_of(&dir)).await.unwrap();
        let mut changes = vec![
            Change::CreateOrg(Settings::default()),
            Change::PutModule(module("Leads")),
            Change::PutUser(user("alice")),
            Change::PutUser(user("bob")),
        ];
        changes.extend((0..1_000_000).map(|i| {
            let mut def = record("Leads", &format!("L{i:07}"), "alice");
            def.attributes.insert("region".into(), "EU".into());
            Change::PutRecord(def)
        }));
        changes.extend((0..100_000).map(|i| {
            Change::PutShare(share(
                "Leads",
                &format!("L{:07}", i * 10),
                Grantee::User("bob".into()),
                AccessLevel::Read,
            ))
        }));
        let mut expected = 0;
        for attempt in ["first", "replacing"] {
            let start = Instant::now();
            expected = store.commit("big", expected, &changes).await.unwrap();
            eprintln!(
                "{attempt} commit of 1,000,000 records and 100,000 shares: {:.2?}",
                start.elapsed()
            );
        }
        let start = Instant::now();
        let loaded = store.load_org("big").await.unwrap().unwrap();
        eprintln!("load: {:.2?}", start.elapsed());
        assert_eq!(loaded.revision, 2);
        assert_eq!(loaded.document.records.len(), 1_000_000);
        assert_eq!(loaded.document.shares.len(), 100_000);
        let _: &OrgDocument = &loaded.document;
    }
}
