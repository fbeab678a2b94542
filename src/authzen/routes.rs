//! The AuthZEN endpoints: authorize the caller for the organization in the
//! path, read the JSON, map it to Warden's questions, ask the service the
//! way CheckService does, and answer in AuthZEN's words.

use std::sync::Arc;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, uri::Authority, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::mapping::{self, Parts, Question};
use super::types::{
    ActionName, DecisionJson, Entity, Evaluation, Evaluations, EvaluationsAnswer, Metadata,
    PageAnswer, Search, SearchAnswer, SearchContext, Semantic,
};
use crate::api::auth::{Caller, Scope};
use crate::engine::model::Reason;
use crate::engine::Error;
use crate::http::{caller, HttpError, JsonBody};
use crate::service::reads::page_size;
use crate::service::{Consistency, ServiceError, Warden};

/// What every handler shares.
#[derive(Clone)]
pub struct AuthzenState {
    /// The service.
    pub warden: Arc<Warden>,
    /// Whether the listener serves TLS (the scheme of metadata URLs).
    pub tls: bool,
}

/// The standard actions, in SPEC order; custom actions follow, sorted.
const STANDARD_ACTIONS: [&str; 6] = ["view", "create", "edit", "delete", "share", "assign"];

/// The caller needs the `check` scope and the organization inside its
/// credential's list, before its body is read.
fn authorize(ext: Option<Extension<Caller>>, org_id: &str) -> Result<(), HttpError> {
    let c = caller(ext)?;
    c.require(&[Scope::Check])?;
    c.require_org(org_id)?;
    Ok(())
}

async fn body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, HttpError> {
    let JsonBody(value) = JsonBody::<T>::from_request(req, &()).await?;
    Ok(value)
}

fn parts<'a>(e: &'a Evaluation, at: &str) -> Parts<'a> {
    Parts {
        subject: e.subject.as_ref().map(|s| (s, at.to_string())),
        action: e.action.as_ref().map(|s| (s, at.to_string())),
        resource: e.resource.as_ref().map(|s| (s, at.to_string())),
        context: e.context.as_ref().map(|s| (s, at.to_string())),
        at: at.to_string(),
    }
}

async fn decide(
    warden: &Warden,
    org_id: &str,
    q: &Question,
    prefix: &str,
) -> Result<DecisionJson, HttpError> {
    let (d, rev) = warden
        .decide(org_id, &q.req, q.consistency)
        .await
        .map_err(|e| mapping::service_error(e, prefix))?;
    tracing::debug!(org = %org_id, subject = %q.req.subject, module = %q.req.module, action = %q.req.action,
        allowed = d.allowed, reason = d.reason.as_str(), "authzen evaluation");
    // Fields the evaluation span declares (an evaluations span ignores them).
    tracing::Span::current()
        .record(
            "action",
            crate::engine::error::bounded(&q.req.action).as_ref(),
        )
        .record("decision", if d.allowed { "ALLOW" } else { "DENY" })
        .record("reason", d.reason.as_str())
        .record("revision", rev);
    Ok(mapping::decision(&d, rev))
}

/// `POST /orgs/{org_id}/access/v1/evaluation`.
#[tracing::instrument(name = "authzen.evaluation", skip_all, fields(org = %crate::engine::error::bounded(&org_id),
    action = tracing::field::Empty, decision = tracing::field::Empty, reason = tracing::field::Empty, revision = tracing::field::Empty))]
pub async fn evaluation(
    State(s): State<AuthzenState>,
    Path(org_id): Path<String>,
    ext: Option<Extension<Caller>>,
    req: Request,
) -> Result<Json<DecisionJson>, HttpError> {
    authorize(ext, &org_id)?;
    let e: Evaluation = body(req).await?;
    let q = mapping::question(parts(&e, ""))?;
    Ok(Json(decide(&s.warden, &org_id, &q, "").await?))
}

/// `POST /orgs/{org_id}/access/v1/evaluations`.
#[tracing::instrument(name = "authzen.evaluations", skip_all, fields(org = %crate::engine::error::bounded(&org_id)))]
pub async fn evaluations(
    State(s): State<AuthzenState>,
    Path(org_id): Path<String>,
    ext: Option<Extension<Caller>>,
    req: Request,
) -> Result<Response, HttpError> {
    authorize(ext, &org_id)?;
    let e: Evaluations = body(req).await?;
    let items = e.evaluations.as_deref().unwrap_or_default();
    if items.is_empty() {
        // No list: the single evaluation, answered as one.
        let q = mapping::question(parts(&e.defaults, ""))?;
        return Ok(Json(decide(&s.warden, &org_id, &q, "").await?).into_response());
    }
    let limit = s.warden.engine().limits().bulk_checks;
    if items.len() > limit {
        return Err(HttpError::bad_request(
            "evaluations",
            format!(
                "at most {limit} evaluations per request, got {}",
                items.len()
            ),
        ));
    }
    let semantic = e
        .options
        .as_ref()
        .and_then(|o| o.evaluations_semantic)
        .unwrap_or_default();
    // Every item is mapped before any is run: a request missing a
    // required key is refused whole, as the standard says.
    let d = &e.defaults;
    let questions = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("evaluations[{i}].");
            let pick = |own: bool| if own { at.clone() } else { String::new() };
            mapping::question(Parts {
                subject: item
                    .subject
                    .as_ref()
                    .map(|v| (v, pick(true)))
                    .or_else(|| d.subject.as_ref().map(|v| (v, pick(false)))),
                action: item
                    .action
                    .as_ref()
                    .map(|v| (v, pick(true)))
                    .or_else(|| d.action.as_ref().map(|v| (v, pick(false)))),
                resource: item
                    .resource
                    .as_ref()
                    .map(|v| (v, pick(true)))
                    .or_else(|| d.resource.as_ref().map(|v| (v, pick(false)))),
                context: item
                    .context
                    .as_ref()
                    .map(|v| (v, pick(true)))
                    .or_else(|| d.context.as_ref().map(|v| (v, pick(false)))),
                at: at.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut answers = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        let prefix = format!("evaluations[{i}].");
        let answer = match decide(&s.warden, &org_id, q, &prefix).await {
            Ok(a) => a,
            // Bad input in one item is that item's denial; an unknown
            // organization, credentials or the store fail the request.
            Err(e) if e.status == StatusCode::BAD_REQUEST => mapping::failed(&e),
            Err(e) => return Err(e),
        };
        let allowed = answer.decision;
        answers.push(answer);
        match semantic {
            Semantic::DenyOnFirstDeny if !allowed => break,
            Semantic::PermitOnFirstPermit if allowed => break,
            _ => {}
        }
    }
    Ok(Json(EvaluationsAnswer {
        evaluations: answers,
    })
    .into_response())
}

/// Refuses context keys a search does not take, rather than ignoring them.
fn search_context(s: &Search, allow_time: bool) -> Result<Consistency, HttpError> {
    let Some(c) = &s.context else {
        return Ok(Consistency::MinimizeLatency);
    };
    if c.time.is_some() && !allow_time {
        return Err(HttpError::bad_request(
            "context.time",
            "resource search answers for the present time, as LookupRecords does",
        ));
    }
    if c.field.is_some() || c.assign_to.is_some() {
        let key = if c.field.is_some() {
            "context.field"
        } else {
            "context.assign_to"
        };
        return Err(HttpError::bad_request(key, "not taken by search"));
    }
    mapping::consistency(c.consistency.as_deref(), "context.consistency")
}

fn limit(s: &Search) -> usize {
    let asked = s.page.as_ref().and_then(|p| p.limit).unwrap_or(0);
    page_size(usize::try_from(asked).unwrap_or(usize::MAX))
}

fn token(s: &Search) -> &str {
    s.page
        .as_ref()
        .and_then(|p| p.token.as_deref())
        .unwrap_or("")
}

/// An unknown module or record in a search question: no results and the
/// reason, as an evaluation would deny with it.
fn unknown(e: &ServiceError) -> Option<&'static str> {
    match e {
        ServiceError::Engine(Error::NotFound { kind: "module", .. }) => {
            Some(Reason::UnknownModule.as_str())
        }
        ServiceError::Engine(Error::NotFound { kind: "record", .. }) => {
            Some(Reason::UnknownRecord.as_str())
        }
        _ => None,
    }
}

fn nothing<T>(reason: &'static str) -> SearchAnswer<T> {
    SearchAnswer {
        page: PageAnswer {
            next_token: String::new(),
            count: 0,
            total: Some(0),
        },
        context: SearchContext {
            revision: None,
            reason: Some(reason),
        },
        results: Vec::new(),
    }
}

/// `POST /orgs/{org_id}/access/v1/search/resource`: LookupRecords, paged
/// by its cursors (a token resumes at the revision the search began).
#[tracing::instrument(name = "authzen.search_resource", skip_all, fields(org = %crate::engine::error::bounded(&org_id)))]
pub async fn search_resource(
    State(s): State<AuthzenState>,
    Path(org_id): Path<String>,
    ext: Option<Extension<Caller>>,
    req: Request,
) -> Result<Json<SearchAnswer<Entity>>, HttpError> {
    authorize(ext, &org_id)?;
    let q: Search = body(req).await?;
    let subject = q
        .subject
        .as_ref()
        .ok_or_else(|| HttpError::bad_request("subject", "required"))?;
    let user = mapping::subject_id(subject, "")?;
    let action = q
        .action
        .as_ref()
        .ok_or_else(|| HttpError::bad_request("action", "required"))?;
    let resource = q
        .resource
        .as_ref()
        .ok_or_else(|| HttpError::bad_request("resource", "required"))?;
    let consistency = search_context(&q, false)?;
    let page = limit(&q);
    let key = (
        org_id.clone(),
        user,
        resource.kind.clone(),
        action.name.clone(),
    );
    let view = match s
        .warden
        .records_view(key, consistency, token(&q), page)
        .await
    {
        Ok(v) => v,
        Err(e) => match unknown(&e) {
            Some(reason) => return Ok(Json(nothing(reason))),
            None => return Err(mapping::service_error(e, "")),
        },
    };
    let (ids, next_token) = view.page(view.start, page);
    Ok(Json(SearchAnswer {
        page: PageAnswer {
            next_token,
            count: ids.len(),
            total: Some(view.ids.ids.len()),
        },
        context: SearchContext {
            revision: Some(view.revision.to_string()),
            reason: None,
        },
        results: ids
            .iter()
            .map(|id| Entity {
                kind: resource.kind.clone(),
                id: id.to_string(),
            })
            .collect(),
    }))
}

/// The fingerprint a subject search token carries, so that a token is
/// refused with another question.
fn subject_question(org: &str, module: &str, record: &str, action: &str, time: &str) -> String {
    let key = (
        org.to_string(),
        module.to_string(),
        record.to_string(),
        format!("{action}\u{0}{time}"),
    );
    format!("{:016x}", crate::service::cursor::fingerprint(&key))
}

/// `POST /orgs/{org_id}/access/v1/search/subject`: LookupSubjects, paged
/// after the last user id sent (the ids are sorted, so no page repeats
/// one even when the policy changes between pages).
#[tracing::instrument(name = "authzen.search_subject", skip_all, fields(org = %crate::engine::error::bounded(&org_id)))]
pub async fn search_subject(
    State(s): State<AuthzenState>,
    Path(org_id): Path<String>,
    ext: Option<Extension<Caller>>,
    req: Request,
) -> Result<Json<SearchAnswer<Entity>>, HttpError> {
    authorize(ext, &org_id)?;
    let q: Search = body(req).await?;
    let subject = q
        .subject
        .as_ref()
        .ok_or_else(|| HttpError::bad_request("subject", "required"))?;
    mapping::subject_type(subject, "")?;
    let action = q
        .action
        .as_ref()
        .ok_or_else(|| HttpError::bad_request("action", "required"))?;
    let resource = q
        .resource
        .as_ref()
        .ok_or_else(|| HttpError::bad_request("resource", "required"))?;
    let record = resource
        .id
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            HttpError::bad_request(
                "resource.id",
                "required: the record whose subjects are searched",
            )
        })?;
    let consistency = search_context(&q, true)?;
    let time_text = q.context.as_ref().and_then(|c| c.time.clone());
    let on_shift_at = time_text
        .as_deref()
        .map(|t| mapping::time(t, "context.time"))
        .transpose()?;
    let fingerprint = subject_question(
        &org_id,
        &resource.kind,
        record,
        &action.name,
        time_text.as_deref().unwrap_or(""),
    );
    let after = match token(&q) {
        "" => None,
        t => {
            let (print, last) = t.split_once('.').ok_or_else(|| {
                HttpError::bad_request("page.token", "not a token this service wrote")
            })?;
            if print != fingerprint {
                return Err(HttpError::bad_request(
                    "page.token",
                    "made for another subject search; start again without a token",
                ));
            }
            Some(last.to_string())
        }
    };
    s.warden
        .fresh_org(&org_id, consistency)
        .await
        .map_err(|e| mapping::service_error(e, ""))?;
    let looked = s.warden.engine().lookup_subjects(
        &org_id,
        &resource.kind,
        record,
        &action.name,
        on_shift_at,
    );
    let (users, revision) = match looked {
        Ok(found) => found,
        Err(e) => {
            let e = ServiceError::from(e);
            return match unknown(&e) {
                Some(reason) => Ok(Json(nothing(reason))),
                None => Err(mapping::service_error(e, "")),
            };
        }
    };
    let start = match &after {
        None => 0,
        Some(last) => users.partition_point(|u| u.as_str() <= last.as_str()),
    };
    let page = limit(&q);
    let end = start.saturating_add(page).min(users.len());
    let chosen = users.get(start..end).unwrap_or_default();
    let next_token = match chosen.last() {
        Some(last) if end < users.len() => format!("{fingerprint}.{last}"),
        _ => String::new(),
    };
    Ok(Json(SearchAnswer {
        page: PageAnswer {
            next_token,
            count: chosen.len(),
            total: Some(users.len()),
        },
        context: SearchContext {
            revision: Some(revision.to_string()),
            reason: None,
        },
        results: chosen
            .iter()
            .map(|u| Entity {
                kind: mapping::SUBJECT_TYPE.to_string(),
                id: u.clone(),
            })
            .collect(),
    }))
}

/// `POST /orgs/{org_id}/access/v1/search/action`: one check per standard
/// and custom action of the module; the allowed ones, in one page.
#[tracing::instrument(name = "authzen.search_action", skip_all, fields(org = %crate::engine::error::bounded(&org_id)))]
pub async fn search_action(
    State(s): State<AuthzenState>,
    Path(org_id): Path<String>,
    ext: Option<Extension<Caller>>,
    req: Request,
) -> Result<Json<SearchAnswer<ActionName>>, HttpError> {
    authorize(ext, &org_id)?;
    let q: Search = body(req).await?;
    let template = Evaluation {
        subject: q.subject.clone(),
        action: Some(super::types::Action {
            name: String::new(),
        }),
        resource: q.resource.clone(),
        context: q.context.clone(),
    };
    let base = mapping::question(parts(&template, ""))?;
    s.warden
        .fresh_org(&org_id, base.consistency)
        .await
        .map_err(|e| mapping::service_error(e, ""))?;
    let custom = s
        .warden
        .engine()
        .read(&org_id, |org, _| {
            org.modules
                .by_id(&base.req.module)
                .map(|(_, m)| m.def.actions.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .map_err(|e| mapping::service_error(e.into(), ""))?;
    let mut allowed = Vec::new();
    let mut revision = None;
    for name in STANDARD_ACTIONS.iter().map(|a| a.to_string()).chain(custom) {
        let mut q = base.clone();
        q.req.action = name.clone().into();
        // Fresh already: each check answers from memory.
        q.consistency = Consistency::MinimizeLatency;
        match s.warden.decide(&org_id, &q.req, q.consistency).await {
            Ok((d, rev)) => {
                revision = Some(rev.to_string());
                if d.allowed {
                    allowed.push(ActionName { name });
                }
            }
            // An action the question cannot be asked of (a field with
            // `delete`, `assign` with no new owner) is not allowed.
            Err(ServiceError::Engine(Error::InvalidArgument { .. })) => {}
            Err(ServiceError::Engine(Error::NotFound { kind, .. })) if kind != "organization" => {}
            Err(e) => return Err(mapping::service_error(e, "")),
        }
    }
    Ok(Json(SearchAnswer {
        page: PageAnswer {
            next_token: String::new(),
            count: allowed.len(),
            total: None,
        },
        context: SearchContext {
            revision,
            reason: None,
        },
        results: allowed,
    }))
}

/// The scheme and authority the client used to reach us, for absolute
/// URLs: HTTP/2's `:authority`, else the Host header.
fn base_url(tls: bool, req: &Request) -> Result<String, HttpError> {
    let authority = match req.uri().authority() {
        Some(a) => a.clone(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<Authority>().ok())
            .ok_or_else(|| {
                HttpError::bad_request("host", "a Host header naming the server is required")
            })?,
    };
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{authority}"))
}

/// `GET /.well-known/authzen-configuration/orgs/{org_id}`: the PDP
/// metadata of one organization, whose identifier is `BASE/orgs/{org_id}`.
#[tracing::instrument(name = "authzen.metadata", skip_all, fields(org = %crate::engine::error::bounded(&org_id)))]
pub async fn metadata(
    State(s): State<AuthzenState>,
    Path(org_id): Path<String>,
    ext: Option<Extension<Caller>>,
    req: Request,
) -> Result<Response, HttpError> {
    authorize(ext, &org_id)?;
    s.warden
        .engine()
        .read(&org_id, |_, _| ())
        .map_err(|e| mapping::service_error(e.into(), ""))?;
    let pdp = format!("{}/orgs/{org_id}", base_url(s.tls, &req)?);
    let endpoint = |path: &str| format!("{pdp}/access/v1/{path}");
    let body = Metadata {
        access_evaluation_endpoint: endpoint("evaluation"),
        access_evaluations_endpoint: endpoint("evaluations"),
        search_subject_endpoint: endpoint("search/subject"),
        search_resource_endpoint: endpoint("search/resource"),
        search_action_endpoint: endpoint("search/action"),
        policy_decision_point: pdp,
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    Ok(response)
}

/// Any other path.
pub async fn not_found() -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "path: not an AuthZEN endpoint (POST /orgs/{org_id}/access/v1/evaluation, …)",
    )
}

/// A known path with another method.
pub async fn method_not_allowed() -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method: the AuthZEN endpoints take POST, the metadata GET",
    )
}
