//! The read path every transport shares (gRPC CheckService, AuthZEN over
//! HTTP): refuse a malformed organization id, be fresh enough, then ask
//! the engine. Transports only convert their messages around these calls.

use std::sync::Arc;

use chrono::Utc;

use super::cursor::{fingerprint, Cursors, LookupKey, Position, Snapshot};
use super::{Consistency, ServiceError, Warden};
use crate::engine::{CheckRequest, Decision, FieldsAnswer, FieldsQuery, Now};

/// Page size of LookupRecords when the request names none.
pub const DEFAULT_PAGE: usize = 1000;
/// Largest LookupRecords page.
pub const MAX_PAGE: usize = 10_000;

/// The page size a request asks for (`0`: the default), capped.
pub fn page_size(asked: usize) -> usize {
    match asked {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// A LookupRecords result being paged: the complete ids at one revision
/// and where the request resumes in them.
pub struct RecordsView {
    /// Kept snapshot id (0: not kept, the result fits in one page).
    pub snapshot: u64,
    /// The revision the ids were computed at.
    pub revision: u64,
    /// Every id, put in order as pages are read.
    pub ids: Arc<Snapshot>,
    /// Index of the first id to send.
    pub start: usize,
    /// Fingerprint of the question, written into cursors.
    pub key_print: u64,
}

impl RecordsView {
    /// The ids of `offset..offset + page` and the cursor after them (empty
    /// when they are the last). Only this page is copied out, and only as
    /// much of the set is sorted as it needs.
    pub fn page(&self, offset: usize, page: usize) -> (Vec<String>, String) {
        let mut ids = Vec::new();
        let cursor = self.page_with(offset, page, |id| ids.push(id.to_string()));
        (ids, cursor)
    }

    /// As [`RecordsView::page`], but each id of the page is handed to
    /// `each` borrowed from the snapshot (LookupRecords encodes them
    /// straight into its message); returns the cursor after them.
    pub fn page_with(&self, offset: usize, page: usize, each: impl FnMut(&str)) -> String {
        let total = self.ids.ids.len();
        let offset = offset.min(total);
        let end = offset.saturating_add(page).min(total);
        let cursor = if end < total {
            Position {
                snapshot: self.snapshot,
                revision: self.revision,
                offset: end,
                key: self.key_print,
            }
            .encode()
        } else {
            String::new()
        };
        self.ids.ids.each_in_page(offset, end - offset, each);
        cursor
    }
}

impl Warden {
    /// Waits until `org_id` is as fresh as `consistency` asks; a malformed
    /// id is refused before any wait.
    pub async fn fresh_org(
        &self,
        org_id: &str,
        consistency: Consistency,
    ) -> Result<(), ServiceError> {
        self.engine().check_org_id(org_id)?;
        self.fresh(org_id, consistency).await
    }

    /// Whether a Check waits before it is decided. Nothing is waited for
    /// at MINIMIZE_LATENCY, and the engine checks the id rule itself when
    /// the organization is unknown: a stored organization's id is not
    /// re-validated on every Check (unless a described record, which the
    /// engine validates before the id, must not come first).
    pub fn check_waits(req: &CheckRequest, consistency: Consistency) -> bool {
        consistency != Consistency::MinimizeLatency || req.described.is_some()
    }

    /// `Check`: freshness, the decision (now, unless the request names a
    /// time), and the decision log.
    pub async fn decide(
        &self,
        org_id: &str,
        req: &CheckRequest,
        consistency: Consistency,
    ) -> Result<(Decision, u64), ServiceError> {
        if Self::check_waits(req, consistency) {
            // Boxed: the wait's future (store reads) is large, and held
            // inline it would make every Check's future as large, copied
            // as the call's future is built and boxed.
            Box::pin(self.fresh_org(org_id, consistency)).await?;
        }
        self.decide_now(org_id, req)
    }

    /// `Check` on the state as it is (what [`Warden::decide`] does once
    /// fresh enough): the decision at now, and the decision log. Without
    /// a wait there is nothing to await, so a handler calls this without
    /// building a future for it.
    pub fn decide_now(
        &self,
        org_id: &str,
        req: &CheckRequest,
    ) -> Result<(Decision, u64), ServiceError> {
        // The clock is read only if the subject has a shift to evaluate.
        let (d, rev) = self.engine().check(org_id, req, Now::Clock)?;
        crate::telemetry::decision(org_id, req, &d, rev);
        Ok((d, rev))
    }

    /// `CheckFields`: freshness, then each field's level (now) at one
    /// revision.
    pub async fn check_fields(
        &self,
        org_id: &str,
        q: &FieldsQuery<'_>,
        consistency: Consistency,
    ) -> Result<(FieldsAnswer, u64), ServiceError> {
        self.fresh_org(org_id, consistency).await?;
        Ok(self.engine().check_fields(org_id, q, Utc::now())?)
    }

    /// `LookupRecords` from its start (empty `cursor`: fresh as asked,
    /// then kept as a snapshot when it spans more than one `page`) or
    /// resumed from a cursor at the revision it started from.
    pub async fn records_view(
        &self,
        key: LookupKey,
        consistency: Consistency,
        cursor: &str,
        page: usize,
    ) -> Result<RecordsView, ServiceError> {
        let key_print = fingerprint(&key);
        let (org, subject, module, action) = (&key.0, &key.1, &key.2, &key.3);
        let lookup = || {
            self.engine()
                .lookup_record_set(org, subject, module, action, Utc::now())
        };
        if cursor.is_empty() {
            self.fresh_org(org, consistency).await?;
            let (ids, revision) = lookup()?;
            let (snapshot, ids) = if ids.len() > page {
                self.cursors().keep(key.clone(), revision, ids)
            } else {
                (0, Arc::new(Cursors::single(key.clone(), revision, ids)))
            };
            return Ok(RecordsView {
                snapshot,
                revision,
                ids,
                start: 0,
                key_print,
            });
        }
        let (snapshot, ids, start) =
            self.cursors()
                .resume(cursor, key.clone(), || Ok(lookup()?))?;
        Ok(RecordsView {
            snapshot,
            revision: ids.revision,
            ids,
            start,
            key_print,
        })
    }
}
