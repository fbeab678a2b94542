//! Statements both SQL stores run as written, and the reading of their
//! answers: SQLite takes PostgreSQL's numbered parameters (`$1`) and reads
//! its 0/1 `live` column as a truth value, so these exist once.

use super::commit::to_revision;
use super::{LogEntry, StoreResult};

/// The live organizations and their revisions, bytewise by id (SQLite's
/// BINARY collation, PostgreSQL's "C").
pub(super) const REVISIONS: &str = "SELECT org_id, revision FROM orgs WHERE live ORDER BY org_id";

/// One live organization's revision.
pub(super) const REVISION: &str = "SELECT revision FROM orgs WHERE org_id = $1 AND live";

/// A page of the change log after a revision, oldest first.
pub(super) const CHANGES_PAGE: &str = "SELECT revision, changes, actor, written_at \
     FROM changelog WHERE org_id = $1 AND revision > $2 ORDER BY revision LIMIT $3";

/// The bootstrap hash of a live organization.
pub(super) const BOOTSTRAP_SHA256: &str = "SELECT b.sha256 FROM bootstrap b \
     JOIN orgs o ON o.org_id = b.org_id WHERE b.org_id = $1 AND o.live";

/// Records the bootstrap hash ($2) an organization ($1) merged at a revision ($3).
pub(super) const RECORD_BOOTSTRAP: &str =
    "INSERT INTO bootstrap (org_id, sha256, revision) VALUES ($1, $2, $3) \
     ON CONFLICT (org_id) DO UPDATE SET sha256 = excluded.sha256, \
     revision = excluded.revision";

/// Forgets an organization's bootstrap hash.
pub(super) const FORGET_BOOTSTRAP: &str = "DELETE FROM bootstrap WHERE org_id = $1";

/// `REVISIONS`' rows as revisions.
pub(super) fn revisions(rows: Vec<(String, i64)>) -> StoreResult<Vec<(String, u64)>> {
    rows.into_iter()
        .map(|(org, revision)| Ok((org, to_revision(revision, "read revisions")?)))
        .collect()
}

/// `REVISION`'s row as a revision (0: no live organization).
pub(super) fn revision(row: Option<i64>) -> StoreResult<u64> {
    row.map_or(Ok(0), |revision| to_revision(revision, "read the revision"))
}

/// `CHANGES_PAGE`'s bounds: a revision or limit past `i64::MAX` is `i64::MAX`.
pub(super) fn page_bounds(after: u64, limit: u64) -> (i64, i64) {
    (
        i64::try_from(after).unwrap_or(i64::MAX),
        i64::try_from(limit).unwrap_or(i64::MAX),
    )
}

/// `CHANGES_PAGE`'s rows as log entries.
pub(super) fn log_entries(rows: Vec<super::LogRow>) -> StoreResult<Vec<LogEntry>> {
    rows.into_iter()
        .map(|(revision, changes, actor, at)| {
            super::log_entry(
                to_revision(revision, "read the change log")?,
                changes,
                actor,
                at,
            )
        })
        .collect()
}
