//! The PostgreSQL store, shared by several replicas: the tables of the
//! SQLite store plus generations (`migrations/postgres/`, shipped in the
//! binary), each write one transaction that holds its organization's row
//! locked from the revision check to the commit, so two replicas never both
//! write on the same revision. The commit algorithm is `commit.rs`'s; here
//! are its PostgreSQL statements: a write's net row effect sent as a few
//! array-bound statements whatever its size, and the rows of a write that
//! empties the organization first (an import) streamed into a new
//! generation by binary COPY.

use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::audit::{CommitMeta, Retention};
use super::commit::{self, failed, to_revision, Deletes, Dialect, Key, LogWrite, OrgRow};
use super::load::{self, Chunk, ChunkRow, LiveOrg};
use super::rows::{self, ChunkKey, DocumentBuilder};
use super::statements;
use super::{LoadedState, LogEntry, StoreError, StoreResult};
use crate::engine::Change;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections per replica: a commit holds one for its transaction, loads
/// and polls take the others.
const CONNECTIONS: u32 = 8;
/// How long connecting, or waiting for a free connection, may take.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections beyond this are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Rows per array-bound statement: a million-row write makes about a
/// hundred round trips, each a few megabytes.
const BATCH: usize = 10_000;

/// One transaction for every load: every organization as of one moment.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

// Every statement on entity rows names the organization's generation: the
// whole primary key is then usable, and a new generation's rows never
// collide with the old ones the same transaction deletes.
const UPSERT_ROWS: &str =
    "INSERT INTO entities (org_id, generation, kind, module, record, id, body) \
     SELECT $1, $2, t.kind, t.module, t.record, t.id, t.body \
     FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
       AS t(kind, module, record, id, body) \
     ON CONFLICT (org_id, generation, kind, module, record, id) \
     DO UPDATE SET body = EXCLUDED.body";
/// Rows into a generation that has none yet, with unique keys.
const COPY_ROWS: &str = "COPY entities (org_id, generation, kind, module, record, id, body) \
     FROM STDIN (FORMAT binary)";
/// The binary COPY signature, flags and header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Bytes of COPY data per message.
const COPY_CHUNK: usize = 1 << 20;
// Deletes by key find their rows one key at a time, in the primary key,
// then delete them by address: a join the planner may choose would hash
// the whole organization per batch, or worse, loop over it per key, when
// it has no statistics on rows this very transaction wrote. The rows stay
// where they are found: every writer of the organization waits for its lock.
const DELETE_ROWS: &str = "DELETE FROM entities WHERE ctid = ANY (ARRAY( \
       SELECT found.ctid \
       FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[]) AS d(kind, module, record, id) \
       CROSS JOIN LATERAL ( \
         SELECT e.ctid FROM entities e \
         WHERE e.org_id = $1 AND e.generation = $2 AND e.kind = d.kind \
           AND e.module = d.module AND e.record = d.record AND e.id = d.id \
         OFFSET 0 \
       ) AS found))";
const DELETE_RULES: &str = "DELETE FROM entities \
     WHERE org_id = $1 AND generation = $2 AND kind = $3 AND id = ANY($4::text[])";
const DELETE_RECORD_SHARES: &str = "DELETE FROM entities WHERE ctid = ANY (ARRAY( \
       SELECT found.ctid \
       FROM UNNEST($4::text[], $5::text[]) AS d(module, record) \
       CROSS JOIN LATERAL ( \
         SELECT e.ctid FROM entities e \
         WHERE e.org_id = $1 AND e.generation = $2 AND e.kind = $3 \
           AND e.module = d.module AND e.record = d.record \
         OFFSET 0 \
       ) AS found))";
const DELETE_MODULE_CONTENTS: &str = "DELETE FROM entities \
     WHERE org_id = $1 AND generation = $2 AND kind = ANY($3::text[]) AND module = ANY($4::text[])";
/// Every row of the organization, of every generation.
const DELETE_ORG: &str = "DELETE FROM entities WHERE org_id = $1";

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
    retention: Retention,
}

impl PostgresStore {
    /// Connects to the database a URL names (`postgres://USER:PASSWORD@HOST:PORT/DB`,
    /// or `postgresql://…`) and brings its schema up to date. Several
    /// replicas may open one database at once: migrations take a lock.
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let secrets = Secrets::of(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| secrets.backend("open the PostgreSQL store: bad URL", e))?
            .application_name("warden");
        let target = describe(&options);
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(IDLE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| secrets.backend(&format!("open {target}"), e))?;
        if let Err(e) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(secrets.backend(&format!("migrate {target}"), e));
        }
        Ok(PostgresStore {
            pool,
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

    /// Sets how much of each organization's change log is kept.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    /// [`PostgresStore::commit`] recording the write's actor and time, and
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

    /// The SHA-256 of the bootstrap document last merged into a live
    /// organization, if any.
    pub async fn bootstrap_sha256(&self, org_id: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar(statements::BOOTSTRAP_SHA256)
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("read the bootstrap hash"))
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// PostgreSQL's side of the commit algorithm of `commit.rs`: the
/// organization's row locked `FOR UPDATE`, array-bound deletes and upserts
/// into its generation, a COPY into a new generation, and the log entry,
/// revision and pruning in one statement.
impl Dialect for PostgresStore {
    type Tx = Transaction<'static, Postgres>;

    async fn begin(&self) -> StoreResult<Self::Tx> {
        self.pool.begin().await.map_err(failed("commit"))
    }

    async fn lock_org(&self, tx: &mut Self::Tx, org_id: &str) -> StoreResult<OrgRow> {
        let locked = "commit: lock the organization";
        // Every writer of the organization, in any replica, takes its row's
        // lock first; an organization never seen gets a tombstone to lock,
        // which this transaction turns live or takes away with it.
        sqlx::query(
            "INSERT INTO orgs (org_id, revision, live, generation) VALUES ($1, 0, FALSE, 0) \
             ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org_id)
        .execute(&mut **tx)
        .await
        .map_err(failed(locked))?;
        let (revision, live, generation): (i64, bool, i64) = sqlx::query_as(
            "SELECT revision, live, generation FROM orgs WHERE org_id = $1 FOR UPDATE",
        )
        .bind(org_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(failed(locked))?;
        Ok(OrgRow {
            revision: to_revision(revision, "commit")?,
            live,
            generation,
        })
    }

    async fn delete_rows(
        &self,
        tx: &mut Self::Tx,
        org_id: &str,
        generation: i64,
        deletes: &Deletes,
    ) -> StoreResult<()> {
        let conn: &mut PgConnection = tx;
        let deleted = "commit: delete rows";
        if deletes.org {
            sqlx::query(DELETE_ORG)
                .bind(org_id)
                .execute(&mut *conn)
                .await
                .map_err(failed(deleted))?;
        }
        for chunk in deletes.rows.chunks(BATCH) {
            let mut kinds = Vec::with_capacity(chunk.len());
            let mut modules = Vec::with_capacity(chunk.len());
            let mut records = Vec::with_capacity(chunk.len());
            let mut ids = Vec::with_capacity(chunk.len());
            for (kind, module, record, id) in chunk {
                kinds.push(*kind);
                modules.push(module.as_str());
                records.push(record.as_str());
                ids.push(id.as_str());
            }
            sqlx::query(DELETE_ROWS)
                .bind(org_id)
                .bind(generation)
                .bind(kinds)
                .bind(modules)
                .bind(records)
                .bind(ids)
                .execute(&mut *conn)
                .await
                .map_err(failed(deleted))?;
        }
        for chunk in deletes.rules.chunks(BATCH) {
            sqlx::query(DELETE_RULES)
                .bind(org_id)
                .bind(generation)
                .bind(rows::RULE)
                .bind(chunk)
                .execute(&mut *conn)
                .await
                .map_err(failed(deleted))?;
        }
        for chunk in deletes.record_shares.chunks(BATCH) {
            let (modules, records): (Vec<&str>, Vec<&str>) = chunk
                .iter()
                .map(|(module, record)| (module.as_str(), record.as_str()))
                .unzip();
            sqlx::query(DELETE_RECORD_SHARES)
                .bind(org_id)
                .bind(generation)
                .bind(rows::SHARE)
                .bind(modules)
                .bind(records)
                .execute(&mut *conn)
                .await
                .map_err(failed(deleted))?;
        }
        for chunk in deletes.module_contents.chunks(BATCH) {
            sqlx::query(DELETE_MODULE_CONTENTS)
                .bind(org_id)
                .bind(generation)
                .bind([rows::RECORD, rows::SHARE, rows::RULE].as_slice())
                .bind(chunk)
                .execute(&mut *conn)
                .await
                .map_err(failed(deleted))?;
        }
        Ok(())
    }

    async fn upsert_rows(
        &self,
        tx: &mut Self::Tx,
        org_id: &str,
        generation: i64,
        rows: Vec<(Key, String)>,
        fresh: bool,
    ) -> StoreResult<()> {
        let conn: &mut PgConnection = tx;
        if fresh {
            // A new generation has no rows, and the keys are unique: the
            // rows stream in by COPY, the server storing while this encodes.
            return copy_rows(conn, org_id, generation, rows).await;
        }
        let mut upserts = rows.into_iter().peekable();
        while upserts.peek().is_some() {
            let mut batch = Batch::default();
            for ((kind, module, record, id), body) in upserts.by_ref().take(BATCH) {
                batch.kinds.push(kind);
                batch.modules.push(module);
                batch.records.push(record);
                batch.ids.push(id);
                batch.bodies.push(body);
            }
            sqlx::query(UPSERT_ROWS)
                .bind(org_id)
                .bind(generation)
                .bind(batch.kinds)
                .bind(batch.modules)
                .bind(batch.records)
                .bind(batch.ids)
                .bind(batch.bodies)
                .execute(&mut *conn)
                .await
                .map_err(failed("commit: write rows"))?;
        }
        Ok(())
    }

    async fn log_write(&self, tx: &mut Self::Tx, entry: LogWrite<'_>) -> StoreResult<()> {
        // The log entry, the revision and the pruning in one statement. Its
        // parts see the table as it was before it: pruning keeps the new entry.
        sqlx::query(
            "WITH logged AS ( \
               INSERT INTO changelog (org_id, revision, changes, actor, written_at) \
               VALUES ($1, $2, $3, $7, $8) \
             ), pruned AS ( \
               DELETE FROM changelog WHERE org_id = $1 AND revision < $5 \
                 AND ($9::TEXT IS NULL OR written_at IS NULL OR written_at < $9) \
             ) \
             UPDATE orgs SET revision = $2, live = $4, generation = $6 WHERE org_id = $1",
        )
        .bind(entry.org_id)
        .bind(entry.revision)
        .bind(entry.changes)
        .bind(entry.live)
        .bind(entry.prune_below)
        .bind(entry.generation)
        .bind(entry.actor)
        .bind(entry.at)
        .bind(entry.prune_before)
        .execute(&mut **tx)
        .await
        .map_err(failed("commit: log the write and bump the revision"))?;
        Ok(())
    }

    async fn set_bootstrap(
        &self,
        tx: &mut Self::Tx,
        org_id: &str,
        recorded: Option<(&str, i64)>,
    ) -> StoreResult<()> {
        let Some((sha256, revision)) = recorded else {
            sqlx::query(statements::FORGET_BOOTSTRAP)
                .bind(org_id)
                .execute(&mut **tx)
                .await
                .map_err(failed("commit: forget the bootstrap document"))?;
            return Ok(());
        };
        sqlx::query(statements::RECORD_BOOTSTRAP)
            .bind(org_id)
            .bind(sha256)
            .bind(revision)
            .execute(&mut **tx)
            .await
            .map_err(failed("commit: record the bootstrap document"))?;
        Ok(())
    }

    async fn commit_tx(&self, tx: Self::Tx) -> StoreResult<()> {
        tx.commit().await.map_err(failed("commit"))
    }

    async fn rollback_tx(&self, tx: Self::Tx) {
        // Release the organization's row at once; a failed rollback leaves
        // the connection for the pool to discard.
        let _ = tx.rollback().await;
    }

    type Snapshot = Transaction<'static, Postgres>;

    async fn begin_snapshot(&self) -> StoreResult<Self::Snapshot> {
        self.pool
            .begin_with(BEGIN_SNAPSHOT)
            .await
            .map_err(failed(LOAD))
    }

    async fn live_orgs(
        &self,
        snapshot: &mut Self::Snapshot,
        only: Option<&str>,
    ) -> StoreResult<Vec<LiveOrg>> {
        let rows: Vec<(String, i64, i64)> = match only {
            None => sqlx::query_as(LIVE_ORGS).fetch_all(&mut **snapshot).await,
            Some(org_id) => {
                sqlx::query_as(LIVE_ORG)
                    .bind(org_id)
                    .fetch_all(&mut **snapshot)
                    .await
            }
        }
        .map_err(failed(LOAD))?;
        Ok(rows.into_iter().map(LiveOrg::from).collect())
    }

    async fn load_small(
        &self,
        snapshot: &mut Self::Snapshot,
        org: &LiveOrg,
        into: &mut DocumentBuilder,
    ) -> StoreResult<()> {
        let kinds: Vec<&str> = rows::SMALL_KINDS.to_vec();
        let mut rows = sqlx::query_as::<_, (String, String)>(LOAD_SMALL_SQL)
            .bind(&org.org_id)
            .bind(org.generation)
            .bind(kinds)
            .fetch(&mut **snapshot);
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
                .bind(org.generation)
                .bind(kind)
                .bind(module)
                .bind(&after.record)
        } else {
            sqlx::query_as(LOAD_SHARES_SQL)
                .bind(&org.org_id)
                .bind(org.generation)
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
/// Writes rows into a generation that has none yet, by binary COPY.
async fn copy_rows(
    conn: &mut PgConnection,
    org_id: &str,
    generation: i64,
    rows: Vec<(Key, String)>,
) -> StoreResult<()> {
    let op = "commit: write rows";
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(COPY_ROWS).await.map_err(failed(op))?;
    let mut buf = Vec::with_capacity(COPY_CHUNK + 64 * 1024);
    buf.extend_from_slice(COPY_HEADER);
    let mut sent: StoreResult<()> = Ok(());
    for ((kind, module, record, id), body) in rows {
        sent = encode_row(
            &mut buf,
            [org_id, kind, &module, &record, &id, &body],
            generation,
        );
        if sent.is_err() {
            break;
        }
        if buf.len() >= COPY_CHUNK {
            if let Err(e) = copy.send(std::mem::take(&mut buf)).await {
                sent = Err(failed(op)(e));
                break;
            }
            buf.reserve(COPY_CHUNK + 64 * 1024);
        }
    }
    if let Err(e) = sent {
        // Leave the connection ready for the rollback.
        let _ = copy.abort("warden: the commit failed").await;
        return Err(e);
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await.map_err(failed(op))?;
    copy.finish().await.map_err(failed(op))?;
    Ok(())
}

/// One row of `COPY_ROWS` in binary COPY format: text fields are their
/// UTF-8 bytes, the generation a big-endian `int8`.
fn encode_row(buf: &mut Vec<u8>, texts: [&str; 6], generation: i64) -> StoreResult<()> {
    let [org_id, kind, module, record, id, body] = texts;
    buf.extend_from_slice(&7i16.to_be_bytes());
    let text = |buf: &mut Vec<u8>, value: &str| -> StoreResult<()> {
        let len = i32::try_from(value.len()).map_err(|_| {
            StoreError::Backend(format!(
                "commit: write rows: a {kind} row of {} bytes is too large",
                value.len()
            ))
        })?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(value.as_bytes());
        Ok(())
    };
    text(buf, org_id)?;
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&generation.to_be_bytes());
    for value in [kind, module, record, id, body] {
        text(buf, value)?;
    }
    Ok(())
}

/// The columns of a batch of rows to write, one array each.
#[derive(Default)]
struct Batch {
    kinds: Vec<&'static str>,
    modules: Vec<String>,
    records: Vec<String>,
    ids: Vec<String>,
    bodies: Vec<String>,
}

/// What a load's failures say.
const LOAD: &str = "load organizations";

/// The live organizations, by id, with revision and generation.
const LIVE_ORGS: &str = "SELECT org_id, revision, generation FROM orgs WHERE live ORDER BY org_id";

/// One organization's revision and generation, if it is live.
const LIVE_ORG: &str = "SELECT org_id, revision, generation FROM orgs WHERE org_id = $1 AND live";

/// The small kinds of an organization's generation.
const LOAD_SMALL_SQL: &str = "SELECT kind, body FROM entities \
     WHERE org_id = $1 AND generation = $2 AND kind = ANY($3)";

/// A chunk of the load: at most `LOAD_CHUNK` record bodies of one module
/// after a record id, joined by newlines, with their count and last id.
const LOAD_RECORDS_SQL: &str = "SELECT string_agg(body, E'\\n'), count(*), max(record) \
     FROM (SELECT record, body FROM entities \
     WHERE org_id = $1 AND generation = $2 AND kind = $3 AND module = $4 AND record > $5 \
     ORDER BY record LIMIT $6) AS chunk";

/// The same for shares, after a `(record, grantee key)`; the last key comes
/// back joined by `KEY_SEPARATOR`, compared bytewise as the key columns are.
const LOAD_SHARES_SQL: &str = "SELECT string_agg(body, E'\\n'), count(*), \
     max(record || chr(1) || id COLLATE \"C\") FROM (SELECT record, id, body FROM entities \
     WHERE org_id = $1 AND generation = $2 AND kind = $3 AND module = $4 \
     AND (record, id) > ($5, $6) ORDER BY record, id LIMIT $7) AS chunk";

/// Where a store lives, for messages: user, host, port and database,
/// never the password.
fn describe(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!(
        "postgres://{}@{host}/{}",
        options.get_username(),
        options.get_database().unwrap_or_default()
    )
}

/// The password a URL carries (in its user info, or as a `password`
/// parameter), raw and percent-decoded: no message may contain them.
struct Secrets(Vec<String>);

impl Secrets {
    fn of(url: &str) -> Secrets {
        let mut raw = Vec::new();
        let (before_query, query) = url.split_once('?').unwrap_or((url, ""));
        if let Some((_, rest)) = before_query.split_once("://") {
            let authority = rest.split('/').next().unwrap_or_default();
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    raw.push(password.to_string());
                }
            }
        }
        for pair in query.split('&') {
            if let Some(("password", password)) = pair.split_once('=') {
                raw.push(password.to_string());
            }
        }
        let mut secrets = Vec::new();
        for secret in raw {
            let decoded = percent_decode(&secret);
            secrets.push(secret);
            secrets.push(decoded);
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a secret containing another is hidden whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Secrets(secrets)
    }

    /// `StoreError::Backend` for `op`, with any password hidden.
    fn backend(&self, op: &str, error: impl std::fmt::Display) -> StoreError {
        let mut message = format!("{op}: {error}");
        for secret in &self.0 {
            message = message.replace(secret.as_str(), "***");
        }
        StoreError::Backend(message)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    //! What needs no database; the rest is in `tests/store_conformance.rs`.

    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        for url in [
            "postgres://warden:s3cr%40t@db:5432/warden",
            "postgresql://warden@db/warden?password=s3cr%40t&sslmode=disable",
        ] {
            let secrets = Secrets::of(url);
            let message = match secrets.backend("open", format!("failed for {url} (s3cr@t)")) {
                StoreError::Backend(message) => message,
                other => panic!("{other:?}"),
            };
            assert!(!message.contains("s3cr"), "{message}");
        }
        let options = PgConnectOptions::from_str("postgres://warden:s3cret@db:6543/app").unwrap();
        assert_eq!(describe(&options), "postgres://warden@db:6543/app");
    }
}
