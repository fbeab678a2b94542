//! The SQLite store: one file (or memory), WAL with full sync so nothing
//! acknowledged is lost, writes serialized in the process, each one
//! transaction over the rows of `rows.rs`, the change log and the revision.
//! The commit algorithm is `commit.rs`'s; here are its SQLite statements.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::audit::{CommitMeta, Retention};
use super::commit::{self, failed, to_revision, Deletes, Dialect, Key, LogWrite, OrgRow};
use super::load::{self, Chunk, ChunkRow, LiveOrg};
use super::rows::{self, ChunkKey, DocumentBuilder};
use super::statements;
use super::{LoadedState, LogEntry, StoreResult};
use crate::engine::Change;

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
    writer: Arc<Mutex<()>>,
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
            writer: Arc::new(Mutex::new(())),
            retention: Retention::default(),
        })
    }

    /// Every live organization, compiled as its rows stream in, read from
    /// one snapshot (the walk is `load.rs`'s).
    pub async fn load_all_states(&self) -> StoreResult<Vec<LoadedState>> {
        load::load_all_states(self).await
    }

    /// One live organization, compiled as its rows stream in, if it
    /// exists, read from one snapshot.
    pub async fn load_org_state(&self, org_id: &str) -> StoreResult<Option<LoadedState>> {
        load::load_org_state(self, org_id).await
    }

    /// The revision of every live organization, by organization id.
    pub async fn revisions(&self) -> StoreResult<Vec<(String, u64)>> {
        let rows = sqlx::query_as(statements::REVISIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read revisions"))?;
        statements::revisions(rows)
    }

    /// The revision of one live organization (0: it does not exist).
    pub async fn revision(&self, org_id: &str) -> StoreResult<u64> {
        let row = sqlx::query_scalar(statements::REVISION)
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("read the revision"))?;
        statements::revision(row)
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
        commit::commit(self, org_id, expected, changes, meta, self.retention).await
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
        let (after, limit) = statements::page_bounds(after, limit);
        let rows = sqlx::query_as(statements::CHANGES_PAGE)
            .bind(org_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read the change log"))?;
        statements::log_entries(rows)
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The SHA-256 of the bootstrap document last merged into a live
    /// organization, if any.
    pub async fn bootstrap_sha256(&self, org_id: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar(statements::BOOTSTRAP_SHA256)
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("read the bootstrap hash"))
    }
}

/// An open SQLite write transaction, with this process's turn to write.
pub(super) struct SqliteTx {
    // Declared first, dropped first: the transaction ends before the turn.
    tx: Transaction<'static, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

/// SQLite's side of the commit algorithm of `commit.rs`: the database's
/// write lock taken when the transaction begins, statements prepared once
/// per connection, multi-row inserts, and no generations (every row of an
/// organization is deleted in place).
impl Dialect for SqliteStore {
    type Tx = SqliteTx;

    async fn begin(&self) -> StoreResult<SqliteTx> {
        let op = "commit";
        // One commit of this process at a time: the others wait here, not
        // in SQLite's busy loop.
        let turn = self.writer.clone().lock_owned().await;
        // IMMEDIATE: take the write lock before reading the revision, so
        // another process cannot write between the check and the write.
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed(op))?;
        Ok(SqliteTx { tx, _turn: turn })
    }

    async fn lock_org(&self, tx: &mut SqliteTx, org_id: &str) -> StoreResult<OrgRow> {
        let op = "commit";
        let row: Option<(i64, bool)> =
            sqlx::query_as("SELECT revision, live FROM orgs WHERE org_id = ?")
                .bind(org_id)
                .fetch_optional(&mut *tx.tx)
                .await
                .map_err(failed(op))?;
        Ok(match row {
            Some((revision, live)) => OrgRow {
                revision: to_revision(revision, op)?,
                live,
                generation: 0,
            },
            None => OrgRow {
                revision: 0,
                live: false,
                generation: 0,
            },
        })
    }

    async fn delete_rows(
        &self,
        tx: &mut SqliteTx,
        org_id: &str,
        _generation: i64,
        deletes: &Deletes,
    ) -> StoreResult<()> {
        let conn: &mut SqliteConnection = &mut tx.tx;
        let deleted = failed("commit: delete rows");
        if deletes.org {
            sqlx::query(DELETE_ORG)
                .bind(org_id)
                .execute(&mut *conn)
                .await
                .map_err(deleted)?;
            return Ok(());
        }
        for (kind, module, record, id) in &deletes.rows {
            sqlx::query(DELETE_ONE)
                .bind(org_id)
                .bind(*kind)
                .bind(module)
                .bind(record)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: delete rows"))?;
        }
        for id in &deletes.rules {
            sqlx::query(DELETE_RULE)
                .bind(org_id)
                .bind(rows::RULE)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: delete rows"))?;
        }
        for (module, record) in &deletes.record_shares {
            sqlx::query(DELETE_RECORD_SHARES)
                .bind(org_id)
                .bind(rows::SHARE)
                .bind(module)
                .bind(record)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: delete rows"))?;
        }
        for module in &deletes.module_contents {
            sqlx::query(DELETE_MODULE_CONTENTS)
                .bind(org_id)
                .bind(rows::RECORD)
                .bind(rows::SHARE)
                .bind(rows::RULE)
                .bind(module)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: delete rows"))?;
        }
        Ok(())
    }

    async fn upsert_rows(
        &self,
        tx: &mut SqliteTx,
        org_id: &str,
        _generation: i64,
        rows: Vec<(Key, String)>,
        _fresh: bool,
    ) -> StoreResult<()> {
        let conn: &mut SqliteConnection = &mut tx.tx;
        let mut rows = rows.into_iter();
        let mut full_batches = rows.len() / UPSERT_BATCH;
        let bind_batch = |rows: &mut std::vec::IntoIter<(Key, String)>| {
            let mut query = sqlx::query(UPSERT_MANY.as_str());
            for ((kind, module, record, id), body) in rows.by_ref().take(UPSERT_BATCH) {
                query = query
                    .bind(org_id)
                    .bind(kind)
                    .bind(module)
                    .bind(record)
                    .bind(id)
                    .bind(body);
            }
            query
        };
        let mut pending = (full_batches > 0).then(|| bind_batch(&mut rows));
        while let Some(query) = pending.take() {
            full_batches -= 1;
            // The SQLite thread runs this batch while this one binds the
            // next: the first poll of `execute` hands the batch over, then
            // the binding runs before the answer is awaited.
            let more = full_batches > 0;
            let (written, next) = futures::join!(query.execute(&mut *conn), async {
                more.then(|| bind_batch(&mut rows))
            });
            written.map_err(failed("commit: write rows"))?;
            pending = next;
        }
        // The rest one by one: one statement text, prepared once.
        for ((kind, module, record, id), body) in rows {
            sqlx::query(UPSERT_ONE)
                .bind(org_id)
                .bind(kind)
                .bind(module)
                .bind(record)
                .bind(id)
                .bind(body)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: write a row"))?;
        }
        Ok(())
    }

    async fn log_write(&self, tx: &mut SqliteTx, entry: LogWrite<'_>) -> StoreResult<()> {
        let conn: &mut SqliteConnection = &mut tx.tx;
        sqlx::query(
            "INSERT INTO changelog (org_id, revision, changes, actor, written_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(entry.org_id)
        .bind(entry.revision)
        .bind(entry.changes)
        .bind(entry.actor)
        .bind(entry.at)
        .execute(&mut *conn)
        .await
        .map_err(failed("commit: append to the change log"))?;
        sqlx::query(
            "INSERT INTO orgs (org_id, revision, live) VALUES (?, ?, ?) \
             ON CONFLICT (org_id) DO UPDATE SET revision = excluded.revision, live = excluded.live",
        )
        .bind(entry.org_id)
        .bind(entry.revision)
        .bind(entry.live)
        .execute(&mut *conn)
        .await
        .map_err(failed("commit: bump the revision"))?;
        sqlx::query(
            "DELETE FROM changelog WHERE org_id = ?1 AND revision < ?2 \
             AND (?3 IS NULL OR written_at IS NULL OR written_at < ?3)",
        )
        .bind(entry.org_id)
        .bind(entry.prune_below)
        .bind(entry.prune_before)
        .execute(&mut *conn)
        .await
        .map_err(failed("commit: prune the change log"))?;
        Ok(())
    }

    async fn set_bootstrap(
        &self,
        tx: &mut SqliteTx,
        org_id: &str,
        recorded: Option<(&str, i64)>,
    ) -> StoreResult<()> {
        let conn: &mut SqliteConnection = &mut tx.tx;
        let Some((sha256, revision)) = recorded else {
            sqlx::query(statements::FORGET_BOOTSTRAP)
                .bind(org_id)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: forget the bootstrap document"))?;
            return Ok(());
        };
        sqlx::query(statements::RECORD_BOOTSTRAP)
            .bind(org_id)
            .bind(sha256)
            .bind(revision)
            .execute(&mut *conn)
            .await
            .map_err(failed("commit: record the bootstrap document"))?;
        Ok(())
    }

    async fn commit_tx(&self, tx: SqliteTx) -> StoreResult<()> {
        tx.tx.commit().await.map_err(failed("commit"))
    }

    async fn rollback_tx(&self, tx: SqliteTx) {
        // A failed rollback leaves the connection for the pool to discard.
        let _ = tx.tx.rollback().await;
    }

    type Snapshot = Transaction<'static, Sqlite>;

    async fn begin_snapshot(&self) -> StoreResult<Self::Snapshot> {
        // A deferred read transaction: its first read fixes the snapshot
        // (WAL), and it takes no write lock.
        self.pool.begin().await.map_err(failed(LOAD))
    }

    async fn live_orgs(
        &self,
        snapshot: &mut Self::Snapshot,
        only: Option<&str>,
    ) -> StoreResult<Vec<LiveOrg>> {
        let rows: Vec<(String, i64)> = match only {
            None => {
                sqlx::query_as(statements::REVISIONS)
                    .fetch_all(&mut **snapshot)
                    .await
            }
            Some(org_id) => {
                sqlx::query_as(LIVE_ORG)
                    .bind(org_id)
                    .fetch_all(&mut **snapshot)
                    .await
            }
        }
        .map_err(failed(LOAD))?;
        // SQLite has no generations: every row is filed under 0.
        Ok(rows
            .into_iter()
            .map(|(org_id, revision)| LiveOrg::from((org_id, revision, 0)))
            .collect())
    }

    async fn load_small(
        &self,
        snapshot: &mut Self::Snapshot,
        org: &LiveOrg,
        into: &mut DocumentBuilder,
    ) -> StoreResult<()> {
        let mut query = sqlx::query_as::<_, (String, String)>(LOAD_SMALL_SQL).bind(&org.org_id);
        for kind in rows::SMALL_KINDS {
            query = query.bind(kind);
        }
        let mut rows = query.fetch(&mut **snapshot);
        while let Some((kind, body)) = rows.try_next().await.map_err(failed(LOAD))? {
            into.add(&kind, &body)?;
        }
        Ok(())
    }

    async fn load_chunk(
        &self,
        snapshot: &mut Self::Snapshot,
        org: &LiveOrg,
        kind: &'static str,
        module: &str,
        after: &ChunkKey,
    ) -> StoreResult<Chunk> {
        let query = if kind == rows::RECORD {
            sqlx::query_as(LOAD_RECORDS_SQL)
                .bind(&org.org_id)
                .bind(kind)
                .bind(module)
                .bind(&after.record)
        } else {
            sqlx::query_as(LOAD_SHARES_SQL)
                .bind(&org.org_id)
                .bind(kind)
                .bind(module)
                .bind(&after.record)
                .bind(&after.id)
        };
        let row: ChunkRow = query
            .bind(rows::LOAD_CHUNK)
            .fetch_one(&mut **snapshot)
            .await
            .map_err(failed(LOAD))?;
        Ok(row.into())
    }

    async fn end_snapshot(&self, snapshot: Self::Snapshot) -> StoreResult<()> {
        snapshot.commit().await.map_err(failed(LOAD))
    }
}
/// What a load's failures say.
const LOAD: &str = "load organizations";

/// One organization's revision, if it is live.
const LIVE_ORG: &str = "SELECT org_id, revision FROM orgs WHERE org_id = ? AND live = 1";

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
