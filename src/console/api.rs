//! The console's JSON API, served through the HTTP guard of `http.rs` as
//! AuthZEN is (bearer token, body limit, requests in flight, time bound;
//! its refusals written by [`refusal`]): each handler checks the scope and
//! organization its gRPC equivalent checks on the caller the guard read,
//! calls the service layer and maps the answer. Read-only; errors are
//! `{code, field, message}` with the gRPC code's name.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tonic::{Code, Status};

use crate::api::auth::{Caller, Scope, Tokens};
use crate::api::pb;
use crate::document::parse_typed;
use crate::engine::error::bounded;
use crate::engine::simulate::WriteDoc;
use crate::engine::{SimWrite, SimulateOptions, Writer};
use crate::service::{Consistency, Warden};

/// Largest request body: a check is a few hundred bytes; a pasted change
/// for What if may be larger.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Default and largest page of record ids for the record picker.
const RECORD_PAGE: usize = 200;
const MAX_RECORD_PAGE: usize = 1000;

/// Actions every module has (SPEC section 2), before its custom ones.
const STANDARD_ACTIONS: [&str; 6] = ["view", "create", "edit", "delete", "share", "assign"];

/// What the handlers share.
#[derive(Clone)]
pub struct Console {
    /// The service layer.
    pub warden: Arc<Warden>,
}

/// The API's routes behind the guard: the bearer `tokens` gRPC uses, and
/// the listener's limits (its body limit is [`MAX_BODY_BYTES`]).
pub fn guarded(console: Console, tokens: Tokens, options: &crate::http::HttpOptions) -> Router {
    crate::http::guard_with(routes(console), tokens, options, refusal)
}

/// A refusal of the guard in the API's shape.
pub fn refusal(code: Code, status: StatusCode, message: String) -> Response {
    error_response(code, status, &message)
}

fn error_response(code: Code, status: StatusCode, message: &str) -> Response {
    let body = json!({
        "code": code_name(code),
        "field": field_of(message),
        "message": message,
    });
    let mut response = (status, Json(body)).into_response();
    if code == Code::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// The caller the guard's bearer layer read. A request it did not see is
/// refused, never let through.
struct Authed(Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(c) => Ok(Authed(c.clone())),
            None => Err(ApiError(Status::internal(
                "the request passed no credential check",
            ))),
        }
    }
}

/// A request body within the listener's limit; one that grows past it
/// while read (no Content-Length to refuse it by) is refused naming it.
struct Body(axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(error_response(
                Code::ResourceExhausted,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body: at most {MAX_BODY_BYTES} bytes"),
            )),
            Err(r) => Err(error_response(
                Code::InvalidArgument,
                r.status(),
                &format!("body: {}", bounded(&r.body_text())),
            )),
        }
    }
}

/// The API's routes, relative to `/api`.
pub fn routes(console: Console) -> Router {
    Router::new()
        .route("/orgs", get(organizations))
        .route("/orgs/{org}/users", get(users))
        .route("/orgs/{org}/modules", get(modules))
        .route("/orgs/{org}/modules/{module}/records", get(records))
        .route("/orgs/{org}/roles", get(roles))
        .route("/orgs/{org}/groups", get(groups))
        .route("/orgs/{org}/rules", get(rules))
        .route("/orgs/{org}/check", post(check))
        .route("/orgs/{org}/simulate", post(simulate))
        .fallback(|| async {
            ApiError::from(Status::not_found("path: no such console API endpoint"))
        })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            let body = json!({
                "code": "UNIMPLEMENTED",
                "field": "method",
                "message": format!("method: {method} is not served here (the console API is read-only)"),
            });
            (StatusCode::METHOD_NOT_ALLOWED, Json(body))
        })
        .with_state(console)
}

/// An error as the console shows it: the gRPC code's name, the field the
/// message names, and the message.
#[derive(Debug)]
pub struct ApiError(Status);

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError(s)
    }
}

impl From<crate::engine::Error> for ApiError {
    fn from(e: crate::engine::Error) -> Self {
        ApiError(e.into())
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(e: crate::service::ServiceError) -> Self {
        ApiError(e.into())
    }
}

fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        // This server gave up, not a gateway: what the guard's time bound
        // answers too.
        Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The field a status message names: messages are written `field: rule`,
/// and an unknown id `kind 'id' not found (field)`.
fn field_of(message: &str) -> &str {
    if let Some(field) = message
        .rsplit_once(" not found (")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
    {
        return field;
    }
    match message.split_once(": ") {
        Some((field, _))
            if !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
        {
            field
        }
        _ => "",
    }
}

/// A gRPC code's name as the API and the command line print it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        error_response(code, http_status(code), self.0.message())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

impl Console {
    /// The caller, holding one of `scopes` and allowed `org_id`, and the
    /// organization caught up as a MINIMIZE_LATENCY read would be.
    async fn reader(
        &self,
        caller: &Caller,
        scopes: &[Scope],
        org_id: &str,
    ) -> Result<(), ApiError> {
        caller.require(scopes)?;
        caller.require_org(org_id)?;
        self.warden
            .fresh_org(org_id, Consistency::MinimizeLatency)
            .await?;
        Ok(())
    }
}

/// Browsing needs what the AdminService's read RPCs need.
const READ_SCOPES: [Scope; 2] = [Scope::Admin, Scope::Check];

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| {
        tracing::error!(error = %e, "console: an answer could not be written as JSON");
        ApiError(Status::internal("the answer could not be written as JSON"))
    })
}

/// ListOrganizations: the organizations the token may use.
async fn organizations(State(c): State<Console>, Authed(caller): Authed) -> ApiResult {
    caller.require(&READ_SCOPES)?;
    let organizations: Vec<Value> = c
        .warden
        .engine()
        .list_organizations("")
        .into_iter()
        .filter(|(org_id, _)| caller.may_use_org(org_id))
        .map(|(org_id, _)| json!({ "org_id": org_id }))
        .collect();
    Ok(Json(json!({ "organizations": organizations })))
}

/// ListUsers.
async fn users(
    State(c): State<Console>,
    Path(org): Path<String>,
    Authed(caller): Authed,
) -> ApiResult {
    c.reader(&caller, &READ_SCOPES, &org).await?;
    let (users, rev) = c.warden.engine().users(&org)?;
    Ok(Json(
        json!({ "users": to_json(&users)?, "revision": rev.to_string() }),
    ))
}

/// The modules, each with the actions a check may name.
async fn modules(
    State(c): State<Console>,
    Path(org): Path<String>,
    Authed(caller): Authed,
) -> ApiResult {
    c.reader(&caller, &READ_SCOPES, &org).await?;
    let (modules, rev) = c.warden.engine().modules(&org)?;
    let modules = modules
        .iter()
        .map(|m| {
            let mut v = to_json(m)?;
            let actions: Vec<&str> = STANDARD_ACTIONS
                .iter()
                .copied()
                .chain(m.actions.keys().map(String::as_str))
                .collect();
            if let Some(o) = v.as_object_mut() {
                o.insert("check_actions".into(), json!(actions));
            }
            Ok(v)
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(Json(
        json!({ "modules": modules, "revision": rev.to_string() }),
    ))
}

/// The record picker's query.
#[derive(Debug, Deserialize)]
struct RecordQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
}

/// A page of a module's record ids, by prefix.
async fn records(
    State(c): State<Console>,
    Path((org, module)): Path<(String, String)>,
    Query(q): Query<RecordQuery>,
    Authed(caller): Authed,
) -> ApiResult {
    c.reader(&caller, &READ_SCOPES, &org).await?;
    let limit = q.limit.unwrap_or(RECORD_PAGE);
    if limit == 0 || limit > MAX_RECORD_PAGE {
        return Err(ApiError(Status::invalid_argument(format!(
            "limit: between 1 and {MAX_RECORD_PAGE}, got {limit}"
        ))));
    }
    let (ids, more, rev) = c
        .warden
        .engine()
        .record_ids(&org, &module, &q.prefix, limit)?;
    Ok(Json(
        json!({ "records": ids, "more": more, "revision": rev.to_string() }),
    ))
}

/// ListRoles, parents before children (the page draws the tree).
async fn roles(
    State(c): State<Console>,
    Path(org): Path<String>,
    Authed(caller): Authed,
) -> ApiResult {
    c.reader(&caller, &READ_SCOPES, &org).await?;
    let (roles, rev) = c.warden.engine().roles(&org)?;
    Ok(Json(
        json!({ "roles": to_json(&roles)?, "revision": rev.to_string() }),
    ))
}

/// ListGroups, each with its expanded members (as GetGroup).
async fn groups(
    State(c): State<Console>,
    Path(org): Path<String>,
    Authed(caller): Authed,
) -> ApiResult {
    c.reader(&caller, &READ_SCOPES, &org).await?;
    let engine = c.warden.engine();
    let (groups, rev) = engine.groups(&org)?;
    let mut out = Vec::with_capacity(groups.len());
    for g in &groups {
        let (view, _) = engine.group_view(&org, &g.id)?;
        let mut v = to_json(&view.group)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("expanded_members".into(), json!(view.members));
        }
        out.push(v);
    }
    Ok(Json(json!({ "groups": out, "revision": rev.to_string() })))
}

/// ListSharingRules, each with whom its `from` and `to` sets reach.
async fn rules(
    State(c): State<Console>,
    Path(org): Path<String>,
    Authed(caller): Authed,
) -> ApiResult {
    c.reader(&caller, &READ_SCOPES, &org).await?;
    let engine = c.warden.engine();
    let (rules, rev) = engine.sharing_rules(&org)?;
    let mut out = Vec::with_capacity(rules.len());
    for r in &rules {
        let mut v = to_json(r)?;
        let from = match &r.from {
            Some(set) => Some(engine.member_set_reach(&org, set)?),
            None => None,
        };
        let (to_users, _) = engine.member_set_reach(&org, &r.to)?;
        if let Some(o) = v.as_object_mut() {
            if let Some((users, groups)) = from {
                o.insert("from_users".into(), json!(users));
                o.insert("from_groups".into(), json!(groups));
            }
            o.insert("to_users".into(), json!(to_users));
        }
        out.push(v);
    }
    Ok(Json(json!({ "rules": out, "revision": rev.to_string() })))
}

/// Check with `explain` on: the body is a CheckRequest in protobuf JSON
/// (the organization comes from the path), the answer the CheckResponse
/// gRPC Check gives, in protobuf JSON.
async fn check(
    State(c): State<Console>,
    Path(org): Path<String>,
    Authed(caller): Authed,
    Body(body): Body,
) -> ApiResult {
    caller.require(&[Scope::Check])?;
    caller.require_org(&org)?;
    let mut json: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError(Status::invalid_argument(format!(
            "body: a JSON CheckRequest is expected ({e})"
        )))
    })?;
    match json.as_object_mut() {
        Some(o) => {
            if let Some(named) = o.get("org_id").and_then(Value::as_str) {
                if named != org {
                    return Err(ApiError(Status::invalid_argument(format!(
                        "org_id: the body names '{}' but the path '{}'",
                        bounded(named),
                        bounded(&org)
                    ))));
                }
            }
            o.insert("org_id".into(), json!(org));
            o.insert("explain".into(), json!(true));
        }
        None => {
            return Err(ApiError(Status::invalid_argument(
                "body: a JSON object (a CheckRequest) is expected",
            )))
        }
    }
    let request: pb::CheckRequest = crate::console::proto_from_json(json, "warden.v1.CheckRequest")
        .map_err(|e| ApiError(Status::invalid_argument(e)))?;
    let (org, req, consistency) = crate::api::convert::check_from(request)?;
    let (decision, revision) = c.warden.decide(&org, &req, consistency).await?;
    let answer = crate::api::convert::decision(decision, revision);
    let json = crate::console::proto_json(&answer, "warden.v1.CheckResponse").map_err(|e| {
        tracing::error!(error = %e, "console: a check answer could not be written as JSON");
        ApiError(Status::internal("the answer could not be written as JSON"))
    })?;
    Ok(Json(json))
}

/// What if: a pasted change (YAML or JSON, the list of writes
/// `warden simulate` reads, shaped like AdminService/Simulate's `Write`
/// oneof with the documents' entity shapes) simulated as Simulate does.
/// Each write needs what its own RPC needs of the token (admin without an
/// actor, grant or admin with one); nothing is committed.
async fn simulate(
    State(c): State<Console>,
    Path(org): Path<String>,
    Authed(caller): Authed,
    Body(body): Body,
) -> ApiResult {
    // The bound runs from the request's arrival; a request dropped (its
    // client gone, --request-timeout-secs hit) stops the work too.
    let bound = c.warden.simulate_bound();
    let _cancel = bound.cancel_on_drop();
    caller.require_org(&org)?;
    c.warden.engine().check_org_id(&org)?;
    let request: SimulateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError(Status::invalid_argument(format!(
            "body: a JSON object {{change, actions?, sample_size?}} is expected: {}",
            bounded(&e.to_string())
        )))
    })?;
    // A pasted change may be up to the body limit of YAML: parsed off the
    // runtime's workers, as gRPC parses a Simulate's writes.
    let change = request.change;
    let writer_org = org.clone();
    let writes = tokio::task::spawn_blocking(move || sim_writes(&change, &caller, &writer_org))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "console: a change could not be read");
            ApiError(Status::internal(
                "the change could not be read; nothing was run",
            ))
        })??;
    let options = SimulateOptions {
        actions: request.actions,
        sample_size: request.sample_size,
    };
    // Simulated on the latest state, as the real writes would be.
    c.warden.fresh(&org, Consistency::FullyConsistent).await?;
    let warden = c.warden.clone();
    let simulation =
        tokio::task::spawn_blocking(move || warden.simulate(&org, &writes, &options, &bound))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "console: the simulation failed");
                ApiError(Status::internal(
                    "the simulation failed; nothing was changed",
                ))
            })??;
    let answer = crate::api::convert::simulation(&simulation);
    let json = crate::console::proto_json(&answer, "warden.v1.SimulateResponse").map_err(|e| {
        tracing::error!(error = %e, "console: a simulation could not be written as JSON");
        ApiError(Status::internal("the answer could not be written as JSON"))
    })?;
    Ok(Json(json))
}

/// The writes of a pasted change, each authorized as its own RPC would be
/// for `caller` (refusals name `change[i]`).
fn sim_writes(change: &str, caller: &Caller, org: &str) -> Result<Vec<SimWrite>, ApiError> {
    let docs: Vec<WriteDoc> = parse_typed(change, "change")?;
    let mut writes = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        let mut write = doc.into_sim_write();
        let actor = match &write.writer {
            Writer::Operator => String::new(),
            Writer::Actor { user_id, .. } => user_id.clone(),
        };
        write.writer = caller
            .write_as(org, &actor)
            .map_err(|s| Status::new(s.code(), format!("change[{i}]: {}", s.message())))?
            .writer;
        writes.push(write);
    }
    Ok(writes)
}

/// The What if request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateBody {
    /// The writes, as YAML or JSON text.
    change: String,
    /// Actions to compare (empty: view, edit, delete).
    #[serde(default)]
    actions: Vec<String>,
    /// Record ids per sample (0: the default).
    #[serde(default)]
    sample_size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_the_part_before_the_rule() {
        assert_eq!(field_of("record_id: unknown record"), "record_id");
        assert_eq!(field_of("checks[2].subject: too long"), "checks[2].subject");
        assert_eq!(field_of("the credential needs the check scope"), "");
        assert_eq!(field_of("a sentence: with a colon"), "");
        assert_eq!(field_of("module 'Nope' not found (module)"), "module");
    }

    #[test]
    fn codes_map_to_http_statuses_a_browser_understands() {
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
    }
}
