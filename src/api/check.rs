//! CheckService: decisions and the answers derived from them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::Utc;
use futures::Stream;
use tonic::body::Body;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::auth::{caller, require_in, require_in_extensions, Scope};
use super::bulk_wire::{BulkAnswer, BulkChecks, CheckAnswer, Converted, Revisions};
use super::convert;
use super::lookup_wire::PageIds;
use super::pb;
use super::pb::check_service_server::CheckService;
use super::unary;
use compact_str::CompactString;

use crate::engine::{Decision, Error};
use crate::service::{Consistency, Warden};

/// Page size of LookupSubjects' stream.
const DEFAULT_PAGE: usize = crate::service::reads::DEFAULT_PAGE;

/// The CheckService handlers.
pub struct CheckApi {
    warden: Arc<Warden>,
}

impl CheckApi {
    /// Handlers over `warden`.
    pub fn new(warden: Arc<Warden>) -> Self {
        CheckApi { warden }
    }

    async fn fresh(&self, org_id: &str, consistency: Consistency) -> Result<(), Status> {
        Ok(self.warden.fresh_org(org_id, consistency).await?)
    }

    /// Check up to its decision, on the caller's stack: the answer when
    /// the check waits for nothing (MINIMIZE_LATENCY, no described record:
    /// most checks), else what [`CheckApi::check_waiting`] needs.
    fn check_now(
        &self,
        extensions: &http::Extensions,
        message: &mut pb::CheckRequest,
    ) -> Result<Checked, Status> {
        require_in_extensions(extensions, &[Scope::Check], &message.org_id)?;
        let (org, r, consistency) = convert::check_taken(message)?;
        if Warden::check_waits(&r, consistency) {
            return Ok(Checked::Waits(Box::new((org, r, consistency))));
        }
        let (d, rev) = self.warden.decide_now(&org, &r)?;
        Ok(Checked::Answered(answer(&org, &r, d, rev)))
    }

    /// A check that waits for freshness (or validates a described record
    /// first) before it is decided: [`Warden::decide`].
    async fn check_waiting(
        &self,
        waits: Box<(CompactString, crate::engine::CheckRequest, Consistency)>,
    ) -> Result<Response<CheckAnswer>, Status> {
        let (org, r, consistency) = &*waits;
        let (d, rev) = self.warden.decide(org, r, *consistency).await?;
        Ok(Response::new(answer(org, r, d, rev)))
    }

    /// Check as served (src/api/bulk_wire.rs routes it here): the request
    /// read and the answer written by [`unary`], without tonic's streaming
    /// machinery (docs/benchmarks.md, "Part AB (fourteenth round)");
    /// otherwise [`CheckService::check`]'s steps, span and answers.
    pub(crate) async fn check_http<B>(
        self: Arc<Self>,
        req: http::Request<B>,
    ) -> http::Response<Body>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let mut message = match unary::read_one(&parts.headers, body, decode_check).await {
            Ok(message) => message,
            Err(status) => return status.into_http(),
        };
        let span = check_span(&message);
        let answered = match span.in_scope(|| self.check_now(&parts.extensions, &mut message)) {
            Ok(Checked::Answered(answer)) => Ok(answer),
            Ok(Checked::Waits(waits)) => self
                .check_waiting(waits)
                .instrument(span)
                .await
                .map(Response::into_inner),
            Err(status) => Err(status),
        };
        match answered {
            Ok(answer) => {
                let mut buf = unary::message_buffer(ANSWER_CAPACITY);
                answer.encode(&mut buf);
                unary::answer(buf)
            }
            Err(status) => status.into_http(),
        }
    }
}

/// Room for an answer without a trace: the flag, reason, level and a
/// revision of up to 20 digits take at most 28 bytes.
const ANSWER_CAPACITY: usize = 32;

/// A Check request's message as tonic's codec decoded it (prost's errors,
/// as INTERNAL), in a box: the 320-byte message is then moved as a
/// pointer on its way to the handler (docs/benchmarks.md, "Part Q
/// (seventh round)").
fn decode_check(bytes: &[u8]) -> Result<Box<pb::CheckRequest>, Status> {
    use prost::Message;
    let mut check = Box::<pb::CheckRequest>::default();
    // The message itself, not its box: prost's `Message for Box<M>`
    // merges field by field and never reaches `CheckRequest::merge`,
    // which slices a message that is UTF-8 as a whole once instead of
    // validating each id (docs/benchmarks.md, "Part X (tenth round)").
    let message: &mut pb::CheckRequest = &mut check;
    match message.merge(bytes) {
        Ok(()) => Ok(check),
        Err(e) => Err(Status::internal(e.to_string())),
    }
}

/// How far [`CheckApi::check_now`] got.
enum Checked {
    /// Decided.
    Answered(CheckAnswer),
    /// To be decided after a wait (boxed: rare, and large).
    Waits(Box<(CompactString, crate::engine::CheckRequest, Consistency)>),
}

/// The future of a Check, as tonic's `async_trait` signature has it.
type CheckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response<pb::CheckResponse>, Status>> + Send + 'a>>;

/// Check's answer to a decided check, logged at DEBUG and its fields
/// recorded on the Check span.
fn answer(org: &str, req: &crate::engine::CheckRequest, d: Decision, rev: u64) -> CheckAnswer {
    // The span is INFO: with INFO off for every layer no span exists,
    // and asking the dispatcher for the current one is a cost per Check
    // for nothing.
    if info_on() {
        trace_answer(org, req, &d, rev);
    }
    CheckAnswer {
        decision: d,
        revision: rev,
    }
}

/// The Check span (the generated route's and the hand-routed one's),
/// built only when INFO is on for some layer. Its building is out of line
/// and cold: with INFO off a Check pays one level comparison, and the
/// span's code does not sit among the Check's own instructions, where it
/// cost instruction-cache lines (docs/benchmarks.md, "Part X (tenth
/// round)").
#[inline(always)]
fn check_span(req: &pb::CheckRequest) -> tracing::Span {
    if info_on() {
        check_span_on(req)
    } else {
        tracing::Span::none()
    }
}

/// Whether INFO is on for some layer (what `info_span!` asks first).
#[inline(always)]
fn info_on() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    tracing::Level::INFO <= STATIC_MAX_LEVEL && tracing::Level::INFO <= LevelFilter::current()
}

#[cold]
#[inline(never)]
fn check_span_on(req: &pb::CheckRequest) -> tracing::Span {
    tracing::info_span!("Check", method = "Check", org = %crate::engine::error::bounded(&req.org_id), action = %crate::engine::error::bounded(&req.action),
        decision = tracing::field::Empty, reason = tracing::field::Empty, revision = tracing::field::Empty)
}

/// The decision on the Check span's fields (a CheckBulk span ignores
/// them) and in the DEBUG log: out of line and cold, as [`check_span`].
#[cold]
#[inline(never)]
fn trace_answer(org: &str, req: &crate::engine::CheckRequest, d: &Decision, rev: u64) {
    tracing::debug!(org = %org, subject = %req.subject, module = %req.module, action = %req.action,
        allowed = d.allowed, reason = d.reason.as_str(), "check");
    tracing::Span::current()
        .record("decision", if d.allowed { "ALLOW" } else { "DENY" })
        .record("reason", d.reason.as_str())
        .record("revision", rev);
}

/// CheckBulk: each check answered as Check answers it, with
/// what is the same for every check paid once per call rather than once
/// per check (docs/benchmarks.md, 2026-11-30): freshness awaited once per
/// (organization, consistency), and every check decided at one `now`.
/// Any failing check fails the
/// call with the error of the first failing check in request order, as
/// when the checks were answered one after another.
impl CheckApi {
    /// CheckBulk on checks already converted as they were decoded
    /// (src/api/bulk_wire.rs routes the method here), answered with the
    /// decisions themselves for the hand-written encoder.
    #[tracing::instrument(name = "CheckBulk", skip_all, fields(method = "CheckBulk", checks = req.get_ref().len()))]
    pub(crate) async fn check_bulk_direct(
        &self,
        req: Request<BulkChecks>,
    ) -> Result<Response<BulkAnswer>, Status> {
        let c = caller(&req);
        c.require(&[Scope::Check])?;
        // Every check's organization before any is answered: a bulk call
        // never answers part of itself for another organization.
        for (i, org) in req.get_ref().orgs().enumerate() {
            c.require_org(org)
                .map_err(|s| Status::new(s.code(), format!("checks[{i}].{}", s.message())))?;
        }
        let checks = req.into_inner();
        let limit = self.warden.engine().limits().bulk_checks;
        if checks.len() > limit {
            return Err(Status::invalid_argument(format!(
                "checks: at most {limit} checks per bulk, got {}",
                checks.len()
            )));
        }
        let answer = self
            .bulk(checks)
            .await
            .map_err(|(i, s)| Status::new(s.code(), format!("checks[{i}].{}", s.message())))?;
        Ok(Response::new(answer))
    }

    async fn bulk(&self, checks: BulkChecks) -> Result<BulkAnswer, (usize, Status)> {
        let BulkChecks {
            checks: mut converted,
            invalid,
        } = checks;
        // A check that failed conversion is at `converted.len()`: checks
        // at or after it are never answered, only those before it can
        // hold an earlier error.
        let mut first_error: Option<(usize, Status)> =
            invalid.map(|invalid| (converted.len(), invalid.error.into()));
        let mut stale = None;
        let mut waited: Vec<(&str, Consistency)> = Vec::new();
        for (i, (org, _, consistency)) in converted.iter().enumerate() {
            if waited.contains(&(org.as_str(), *consistency)) {
                continue;
            }
            waited.push((org.as_str(), *consistency));
            // Boxed, as in `Warden::decide`: the wait is rare and its
            // future large.
            if let Err(s) = Box::pin(self.fresh(org, *consistency)).await {
                stale = Some((i, s));
                break;
            }
        }
        if let Some((i, s)) = stale {
            converted.truncate(i);
            first_error = Some((i, s));
        }
        // The checks of each organization on one read of it
        // (`Engine::check_many`): one look-up and one read lock per
        // organization rather than per check, all at one revision.
        let now = Utc::now();
        let one_org = converted
            .split_first()
            .filter(|(first, rest)| rest.iter().all(|c| c.0 == first.0))
            .map(|(first, _)| first.0.as_str());
        let decided = match one_org {
            // The usual call names one organization: its decisions are the
            // answer as they come, no positions or slots per check.
            Some(org) => {
                let reqs: Vec<&crate::engine::CheckRequest> =
                    converted.iter().map(|c| &c.1).collect();
                match self.warden.engine().check_many(org, &reqs, now) {
                    Ok((decisions, rev)) => Some(BulkAnswer {
                        decisions,
                        revisions: Revisions::One(rev),
                    }),
                    Err((j, e)) => {
                        if first_error.as_ref().is_none_or(|(at, _)| j < *at) {
                            first_error = Some((j, e.into()));
                        }
                        None
                    }
                }
            }
            None => self.bulk_orgs(&converted, now, &mut first_error),
        };
        if let Some(e) = first_error {
            return Err(e);
        }
        // Without an error every check was decided; were one not, the
        // call fails rather than answer fewer checks than it was asked.
        let answer = match decided {
            Some(answer) if answer.decisions.len() == converted.len() => answer,
            _ => return Err((0, Status::internal("checks: a check was left undecided"))),
        };
        // Counted once per call; the level asked once per call, not per check.
        crate::telemetry::decisions(
            converted
                .iter()
                .zip(&answer.decisions)
                .enumerate()
                .map(|(i, ((org, req, _), d))| (org.as_str(), req, d, answer.revisions.at(i))),
        );
        if tracing::enabled!(tracing::Level::DEBUG) {
            for ((org, req, _), d) in converted.iter().zip(&answer.decisions) {
                tracing::debug!(org = %org, subject = %req.subject, module = %req.module, action = %req.action,
                    allowed = d.allowed, reason = d.reason.as_str(), "check");
            }
        }
        Ok(answer)
    }

    /// The checks of a bulk naming several organizations (or none), each
    /// organization's on one read of it; the first failure in request
    /// order kept in `first_error`.
    fn bulk_orgs(
        &self,
        converted: &[Converted],
        now: chrono::DateTime<Utc>,
        first_error: &mut Option<(usize, Status)>,
    ) -> Option<BulkAnswer> {
        let engine = self.warden.engine();
        let mut decided: Vec<Option<(crate::engine::Decision, u64)>> = Vec::new();
        decided.resize_with(converted.len(), || None);
        for (org, positions) in by_org(converted) {
            let reqs: Vec<&crate::engine::CheckRequest> =
                positions.iter().map(|&i| &converted[i].1).collect();
            let failed = match engine.check_many(org, &reqs, now) {
                Ok((decisions, rev)) => {
                    for (&i, d) in positions.iter().zip(decisions) {
                        decided[i] = Some((d, rev));
                    }
                    None
                }
                Err((j, e)) => {
                    // The decisions before `j` are kept: they may come
                    // before another organization's first failure.
                    Some((positions.get(j).copied().unwrap_or(0), e))
                }
            };
            if let Some((i, e)) = failed {
                if first_error.as_ref().is_none_or(|(at, _)| i < *at) {
                    *first_error = Some((i, e.into()));
                }
            }
        }
        let decided = decided.into_iter().collect::<Option<Vec<_>>>()?;
        let (decisions, revisions) = decided.into_iter().unzip();
        Some(BulkAnswer {
            decisions,
            revisions: Revisions::Each(revisions),
        })
    }
}

/// The positions of the checks of each organization, organizations in
/// the order they first appear: CheckBulk reads each organization once.
fn by_org(checks: &[Converted]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: rustc_hash::FxHashMap<&str, usize> = rustc_hash::FxHashMap::default();
    for (i, (org, _, _)) in checks.iter().enumerate() {
        // Most calls name one organization: the last group is tried
        // before the map.
        match groups.last_mut() {
            Some((last, positions)) if *last == org.as_str() => positions.push(i),
            _ => match index.get(org.as_str()) {
                Some(&g) => groups[g].1.push(i),
                None => {
                    index.insert(org, groups.len());
                    groups.push((org, vec![i]));
                }
            },
        }
    }
    groups
}

type PageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        super::status::engine_status(e)
    }
}

#[tonic::async_trait]
impl CheckService for CheckApi {
    // Not an `async fn`: a check that waits for nothing is decided here,
    // as the call is made, and answered with a ready future. An `async
    // fn` would move the request (424 bytes) into its future, that future
    // into its box, and the request again out of the future when first
    // polled (docs/benchmarks.md, "Part I (fifth round)"). The span is
    // the one `#[tracing::instrument]` made: same name, level and fields.
    fn check<'life0, 'async_trait>(
        &'life0 self,
        req: Request<pb::CheckRequest>,
    ) -> CheckFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let (_, extensions, mut message) = req.into_parts();
        let span = check_span(&message);
        match span.in_scope(|| self.check_now(&extensions, &mut message)) {
            Ok(Checked::Answered(answer)) => Box::pin(std::future::ready(Ok(Response::new(
                answer.into_response(),
            )))),
            Ok(Checked::Waits(waits)) => Box::pin(
                async move {
                    let answer = self.check_waiting(waits).await?;
                    Ok(answer.map(CheckAnswer::into_response))
                }
                .instrument(span),
            ),
            Err(status) => Box::pin(std::future::ready(Err(status))),
        }
    }

    // Served by hand (src/api/bulk_wire.rs, `CheckRoutes`); this is the
    // generated service's route, kept on the same handler so that both
    // answer alike.
    async fn check_bulk(
        &self,
        req: Request<pb::CheckBulkRequest>,
    ) -> Result<Response<pb::CheckBulkResponse>, Status> {
        let (meta, extensions, message) = req.into_parts();
        let checks = BulkChecks::from_checks(message.checks);
        let answer = self
            .check_bulk_direct(Request::from_parts(meta, extensions, checks))
            .await?;
        Ok(Response::new(answer.into_inner().into_response()))
    }

    #[tracing::instrument(name = "CheckFields", skip_all, fields(method = "CheckFields", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn check_fields(
        &self,
        req: Request<pb::CheckFieldsRequest>,
    ) -> Result<Response<pb::CheckFieldsResponse>, Status> {
        require_in(&req, &[Scope::Check], &req.get_ref().org_id)?;
        let r = req.into_inner();
        let consistency = convert::consistency(r.consistency)?;
        let record = (!r.record_id.is_empty()).then_some(r.record_id.as_str());
        let described = match r.record {
            Some(d) => Some(convert::record_description("record", d)?),
            None => None,
        };
        let q = crate::engine::FieldsQuery {
            subject: &r.subject,
            module: &r.module,
            record,
            described: described.as_ref(),
            explain: r.explain,
        };
        let (answer, rev) = self.warden.check_fields(&r.org_id, &q, consistency).await?;
        let mut details = answer.details.into_iter();
        Ok(Response::new(pb::CheckFieldsResponse {
            fields: answer
                .fields
                .into_iter()
                .map(|(field, level)| pb::FieldAccess {
                    field,
                    level: convert::field_level(level) as i32,
                    detail: details.next().unwrap_or_default(),
                })
                .collect(),
            record_level: convert::access_level(answer.record_level) as i32,
            revision: convert::revision(rev),
            trace: answer.trace.into_iter().map(convert::trace_step).collect(),
        }))
    }

    type LookupRecordsStream = PageStream<pb::LookupRecordsResponse>;

    #[tracing::instrument(name = "LookupRecords", skip_all, fields(method = "LookupRecords", org = %crate::engine::error::bounded(&req.get_ref().org_id), action = %crate::engine::error::bounded(&req.get_ref().action)))]
    async fn lookup_records(
        &self,
        req: Request<pb::LookupRecordsRequest>,
    ) -> Result<Response<Self::LookupRecordsStream>, Status> {
        require_in(&req, &[Scope::Check], &req.get_ref().org_id)?;
        let r = req.into_inner();
        let page = crate::service::reads::page_size(r.page_size as usize);
        let key = (
            r.org_id.clone(),
            r.subject.clone(),
            r.module.clone(),
            r.action.clone(),
        );
        // A consistency is only waited for at the start; a cursor resumes
        // at the revision it started from.
        let consistency = if r.cursor.is_empty() {
            convert::consistency(r.consistency)?
        } else {
            Consistency::MinimizeLatency
        };
        let view = self
            .warden
            .records_view(key, consistency, &r.cursor, page)
            .await?;
        // Pages are built as the response body asks for them, so the
        // first is on the wire while later ones are still ids; an empty
        // result is still one (empty) page.
        // Each page's ids are encoded into one buffer straight from the
        // snapshot (no `String` per id), sized for an average id plus its
        // key and length (grown if the page's ids are longer).
        let total = view.ids.ids.len();
        let from = view.start.min(total);
        let per_id = view.ids.ids.id_bytes() / total.max(1) + 3;
        let pages = (from..total.max(from + 1))
            .step_by(page)
            .map(move |offset| {
                let mut ids = PageIds::with_capacity(per_id.saturating_mul(page.min(total)));
                let cursor = view.page_with(offset, page, |id| ids.push(id));
                Ok(pb::LookupRecordsResponse::page(
                    ids,
                    cursor,
                    convert::revision(view.revision),
                ))
            });
        Ok(Response::new(Box::pin(futures::stream::iter(pages))))
    }

    type LookupSubjectsStream = PageStream<pb::LookupSubjectsResponse>;

    #[tracing::instrument(name = "LookupSubjects", skip_all, fields(method = "LookupSubjects", org = %crate::engine::error::bounded(&req.get_ref().org_id), action = %crate::engine::error::bounded(&req.get_ref().action)))]
    async fn lookup_subjects(
        &self,
        req: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<Self::LookupSubjectsStream>, Status> {
        require_in(&req, &[Scope::Check], &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, convert::consistency(r.consistency)?)
            .await?;
        let on_shift_at = convert::time_opt("on_shift_at", r.on_shift_at.as_ref())?;
        let (users, rev) = self.warden.engine().lookup_subjects(
            &r.org_id,
            &r.module,
            &r.record_id,
            &r.action,
            on_shift_at,
        )?;
        let mut pages: Vec<Result<pb::LookupSubjectsResponse, Status>> = users
            .chunks(DEFAULT_PAGE)
            .map(|c| {
                Ok(pb::LookupSubjectsResponse {
                    user_ids: c.to_vec(),
                    revision: convert::revision(rev),
                })
            })
            .collect();
        if pages.is_empty() {
            pages.push(Ok(pb::LookupSubjectsResponse {
                user_ids: Vec::new(),
                revision: convert::revision(rev),
            }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(pages))))
    }

    #[tracing::instrument(name = "Filter", skip_all, fields(method = "Filter", org = %crate::engine::error::bounded(&req.get_ref().org_id), action = %crate::engine::error::bounded(&req.get_ref().action)))]
    async fn filter(
        &self,
        req: Request<pb::FilterRequest>,
    ) -> Result<Response<pb::FilterResponse>, Status> {
        require_in(&req, &[Scope::Check], &req.get_ref().org_id)?;
        let r = req.into_inner();
        self.fresh(&r.org_id, convert::consistency(r.consistency)?)
            .await?;
        let (plan, rev) =
            self.warden
                .engine()
                .filter(&r.org_id, &r.subject, &r.module, &r.action, Utc::now())?;
        Ok(Response::new(pb::FilterResponse {
            all: plan.all,
            owners: plan.owners.iter().map(convert::owner).collect(),
            owners_non_private: plan.owners_non_private.iter().map(convert::owner).collect(),
            public_non_private: plan.public_non_private,
            record_ids: plan.record_ids,
            revision: convert::revision(rev),
        }))
    }

    #[tracing::instrument(name = "ValidatePassword", skip_all, fields(method = "ValidatePassword", org = %crate::engine::error::bounded(&req.get_ref().org_id)))]
    async fn validate_password(
        &self,
        req: Request<pb::ValidatePasswordRequest>,
    ) -> Result<Response<pb::ValidatePasswordResponse>, Status> {
        require_in(&req, &[Scope::Check], &req.get_ref().org_id)?;
        let r = req.into_inner();
        // The password is never logged: the span names the org only.
        let set_at = convert::time_opt("password_set_at", r.password_set_at.as_ref())?;
        let verdict = self.warden.engine().validate_password(
            &r.org_id,
            &r.user_id,
            &r.password,
            set_at,
            Utc::now(),
        )?;
        Ok(Response::new(pb::ValidatePasswordResponse {
            valid: verdict.valid,
            violations: verdict
                .violations
                .into_iter()
                .map(|v| convert::violation(v) as i32)
                .collect(),
            expires_at: verdict.expires_at.map(convert::timestamp),
        }))
    }
}
