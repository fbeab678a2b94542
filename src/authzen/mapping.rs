//! AuthZEN JSON to Warden's questions and back: the subject is a user, the
//! resource a module's record (or a record described in its properties),
//! the action a standard or custom action, the context the time, field,
//! new owner and consistency. Errors name the AuthZEN path of the value.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::types::{Action, Context, DecisionContext, DecisionJson, ErrorJson, Resource, Subject};
use crate::engine::model::RecordDescription;
use crate::engine::{CheckRequest, Decision, Error};
use crate::http::HttpError;
use crate::service::{Consistency, ServiceError};

/// The one subject type: Warden's subjects are the organization's users.
pub const SUBJECT_TYPE: &str = "user";

/// A check as the service takes it.
#[derive(Debug, Clone)]
pub struct Question {
    /// The engine's request.
    pub req: CheckRequest,
    /// How fresh the answer must be.
    pub consistency: Consistency,
}

/// The parts of one evaluation, each with the path it came from (an
/// item's own key, or the list's default).
pub struct Parts<'a> {
    /// `subject` and its path prefix.
    pub subject: Option<(&'a Subject, String)>,
    /// `action` and its path prefix.
    pub action: Option<(&'a Action, String)>,
    /// `resource` and its path prefix.
    pub resource: Option<(&'a Resource, String)>,
    /// `context` and its path prefix.
    pub context: Option<(&'a Context, String)>,
    /// Where a missing key would have been.
    pub at: String,
}

fn required<'a, T>(
    part: Option<(&'a T, String)>,
    path: &str,
) -> Result<(&'a T, String), HttpError> {
    part.ok_or_else(|| HttpError::bad_request(path, "required"))
}

/// The user a `subject` names; its type must be `user`.
pub fn subject_type(subject: &Subject, prefix: &str) -> Result<(), HttpError> {
    if subject.kind != SUBJECT_TYPE {
        return Err(HttpError::bad_request(
            &format!("{prefix}subject.type"),
            format!("must be \"{SUBJECT_TYPE}\" (Warden's subjects are users)"),
        ));
    }
    Ok(())
}

/// The user id of a subject that must name one.
pub fn subject_id(subject: &Subject, prefix: &str) -> Result<String, HttpError> {
    subject_type(subject, prefix)?;
    subject
        .id
        .clone()
        .ok_or_else(|| HttpError::bad_request(&format!("{prefix}subject.id"), "required"))
}

/// A context time: RFC 3339, seconds optional (the standard's own
/// examples write `1985-10-26T01:22-07:00`).
pub fn time(text: &str, path: &str) -> Result<DateTime<Utc>, HttpError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%:z") {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(naive) = text.strip_suffix('Z') {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M") {
            return Ok(t.and_utc());
        }
    }
    Err(HttpError::bad_request(
        path,
        "an RFC 3339 time with its offset, such as 2026-11-23T10:00:00Z",
    ))
}

/// A context consistency.
pub fn consistency(text: Option<&str>, path: &str) -> Result<Consistency, HttpError> {
    match text {
        None | Some("") | Some("minimize_latency") => Ok(Consistency::MinimizeLatency),
        Some("fully_consistent") => Ok(Consistency::FullyConsistent),
        Some(other) => match other.strip_prefix("at_least_as_fresh:") {
            Some(rev) => rev.parse().map(Consistency::AtLeastAsFresh).map_err(|_| {
                HttpError::bad_request(
                    path,
                    "the revision after at_least_as_fresh: is a decimal number",
                )
            }),
            None => Err(HttpError::bad_request(
                path,
                "minimize_latency, fully_consistent or at_least_as_fresh:REVISION",
            )),
        },
    }
}

/// The record a resource describes in its properties, if any.
pub fn described(
    resource: &Resource,
    prefix: &str,
) -> Result<Option<RecordDescription>, HttpError> {
    let Some(p) = &resource.properties else {
        return Ok(None);
    };
    let path = format!("{prefix}resource.properties");
    match &p.owner {
        Some(owner) => {
            if resource.id.as_deref().unwrap_or("").is_empty() {
                return Err(HttpError::bad_request(
                    &format!("{prefix}resource.id"),
                    "a described record needs its id",
                ));
            }
            Ok(Some(RecordDescription {
                owner: owner.owner(),
                private: p.private.unwrap_or(false),
                attributes: p.attributes.clone().unwrap_or_default(),
            }))
        }
        // Properties that describe nothing are someone else's metadata;
        // half a description is a mistake.
        None if p.private.is_some() || p.attributes.is_some() => Err(HttpError::bad_request(
            &format!("{path}.owner"),
            "required to describe a record (private or attributes given)",
        )),
        None => Ok(None),
    }
}

/// One evaluation as a check.
pub fn question(parts: Parts<'_>) -> Result<Question, HttpError> {
    let (subject, sp) = required(parts.subject, &format!("{}subject", parts.at))?;
    let (action, _) = required(parts.action, &format!("{}action", parts.at))?;
    let (resource, rp) = required(parts.resource, &format!("{}resource", parts.at))?;
    let user = subject_id(subject, &sp)?;
    let record = resource.id.clone().ok_or_else(|| {
        HttpError::bad_request(&format!("{rp}resource.id"), "required (empty: no record)")
    })?;
    let described = described(resource, &rp)?;
    let mut req = CheckRequest {
        subject: user.into(),
        module: resource.kind.clone().into(),
        action: action.name.clone().into(),
        record: (!record.is_empty()).then_some(record.into()),
        described,
        ..CheckRequest::default()
    };
    let mut how = Consistency::MinimizeLatency;
    if let Some((context, cp)) = parts.context {
        if let Some(t) = &context.time {
            req.at = Some(time(t, &format!("{cp}context.time"))?);
        }
        req.field = context
            .field
            .clone()
            .filter(|f| !f.is_empty())
            .map(Into::into);
        req.assign_to = context.assign_to.as_ref().map(|o| o.owner());
        how = consistency(
            context.consistency.as_deref(),
            &format!("{cp}context.consistency"),
        )?;
    }
    Ok(Question {
        req,
        consistency: how,
    })
}

/// A decision as AuthZEN answers it.
pub fn decision(d: &Decision, revision: u64) -> DecisionJson {
    DecisionJson {
        decision: d.allowed,
        context: DecisionContext {
            reason: Some(d.reason.as_str()),
            level: Some(d.level.as_str()),
            revision: Some(revision.to_string()),
            error: None,
        },
    }
}

/// An evaluation of a list that could not be made: denied, with why.
pub fn failed(e: &HttpError) -> DecisionJson {
    DecisionJson {
        decision: false,
        context: DecisionContext {
            error: Some(ErrorJson {
                status: e.status.as_u16(),
                message: e.message.clone(),
            }),
            ..DecisionContext::default()
        },
    }
}

/// The AuthZEN path of a field the engine or the service names.
fn path(field: &str) -> String {
    let renamed = [
        ("subject", "subject.id"),
        ("module", "resource.type"),
        ("action", "action.name"),
        ("record_id", "resource.id"),
        ("record", "resource.properties"),
        ("field", "context.field"),
        ("assign_to", "context.assign_to"),
        ("at", "context.time"),
        ("consistency", "context.consistency"),
        ("cursor", "page.token"),
    ];
    for (ours, theirs) in renamed {
        if field == ours {
            return theirs.to_string();
        }
        if let Some(rest) = field.strip_prefix(ours).filter(|r| r.starts_with('.')) {
            // `assign_to.user_id` is `context.assign_to`; deeper record
            // paths keep their tail.
            return if ours == "assign_to" || ours == "consistency" {
                theirs.to_string()
            } else {
                format!("{theirs}{rest}")
            };
        }
    }
    field.to_string()
}

/// A service error in AuthZEN's words: an unknown organization is 404;
/// bad input, including an id the request names that does not exist
/// (a field, a new owner), is 400 naming the AuthZEN path under `prefix`;
/// credentials, freshness and the store keep their own statuses.
pub fn service_error(e: ServiceError, prefix: &str) -> HttpError {
    use crate::engine::error::bounded;
    use axum::http::StatusCode;
    match e {
        ServiceError::Engine(Error::InvalidArgument { field, rule }) => {
            HttpError::bad_request(&format!("{prefix}{}", path(&field)), rule)
        }
        ServiceError::Engine(
            e @ Error::NotFound {
                kind: "organization",
                ..
            },
        ) => HttpError::new(StatusCode::NOT_FOUND, format!("org_id: {e}")),
        ServiceError::Engine(Error::NotFound { kind, id, field }) => HttpError::bad_request(
            &format!("{prefix}{}", path(&field)),
            format!("{kind} '{}' not found", bounded(&id)),
        ),
        ServiceError::CursorExpired(m) => HttpError::new(
            StatusCode::BAD_REQUEST,
            m.replacen("cursor:", "page.token:", 1),
        ),
        other => {
            let mut e = HttpError::from(other);
            e.message = e
                .message
                .replace("consistency.at_least_as_fresh", "context.consistency")
                .replace("consistency.fully_consistent", "context.consistency");
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_rfc3339_with_or_without_seconds() {
        let t = time("1985-10-26T01:22-07:00", "context.time").unwrap();
        assert_eq!(t.to_rfc3339(), "1985-10-26T08:22:00+00:00");
        let t = time("2026-11-23T10:00:00Z", "context.time").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:00:00+00:00");
        let e = time("yesterday", "evaluations[1].context.time").unwrap_err();
        assert!(
            e.message.starts_with("evaluations[1].context.time: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn engine_fields_become_authzen_paths() {
        assert_eq!(path("module"), "resource.type");
        assert_eq!(path("assign_to.user_id"), "context.assign_to");
        assert_eq!(path("record.owner"), "resource.properties.owner");
        assert_eq!(path("org_id"), "org_id");
        let e = service_error(
            Error::invalid("action", "unknown").into(),
            "evaluations[0].",
        );
        assert_eq!(e.message, "evaluations[0].action.name: unknown");
        let e = service_error(Error::not_found("organization", "x", "org_id").into(), "");
        assert_eq!(e.status.as_u16(), 404);
        let e = service_error(
            Error::not_found("user", "u", "assign_to.user_id").into(),
            "",
        );
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "context.assign_to: user 'u' not found")
        );
    }

    #[test]
    fn consistency_words() {
        assert_eq!(
            consistency(None, "c").unwrap(),
            Consistency::MinimizeLatency
        );
        assert_eq!(
            consistency(Some("fully_consistent"), "c").unwrap(),
            Consistency::FullyConsistent
        );
        assert_eq!(
            consistency(Some("at_least_as_fresh:12"), "c").unwrap(),
            Consistency::AtLeastAsFresh(12)
        );
        assert!(consistency(Some("at_least_as_fresh:x"), "c").is_err());
        assert!(consistency(Some("eventually"), "c").is_err());
    }
}
