//! Scenario documents: an organization document plus checks with their
//! expected answers (or the error its loading must give), parsed from YAML
//! or JSON with unknown keys refused by name, and run by `warden validate`.

pub mod nesting;
pub mod runner;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::engine::model::{OwnerRef, Reason};
use crate::engine::{CheckRequest, Error, OrgDocument, Result};

/// A parsed scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The organization.
    pub document: OrgDocument,
    /// Checks and their expected answers.
    pub checks: Vec<CheckSpec>,
    /// When set, loading the document must fail so.
    pub expect_error: Option<ExpectError>,
    /// Why the document itself could not be read, kept (rather than
    /// returned) only when `expect_error` says loading must fail.
    pub parse_error: Option<Error>,
}

/// ALLOW or DENY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Expect {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// One check of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// User id.
    pub subject: String,
    /// Module id.
    pub module: String,
    /// Action.
    pub action: String,
    /// Record id.
    #[serde(default)]
    pub record: Option<String>,
    /// Field.
    #[serde(default)]
    pub field: Option<String>,
    /// RFC 3339 time, for shifts.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// New owner, for assign.
    #[serde(default)]
    pub assign_to: Option<OwnerRef>,
    /// Expected decision.
    pub expect: Expect,
    /// Expected reason, when given.
    #[serde(default)]
    pub reason: Option<Reason>,
}

impl CheckSpec {
    /// The check as a request to the engine.
    pub fn request(&self) -> CheckRequest {
        CheckRequest {
            subject: self.subject.clone(),
            module: self.module.clone(),
            action: self.action.clone(),
            record: self.record.clone(),
            field: self.field.clone(),
            at: self.at,
            explain: false,
            assign_to: self.assign_to.clone(),
        }
    }
}

/// The error a document's loading must give.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectError {
    /// Status name: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, …
    pub code: String,
    /// Text the message must contain, ignoring case.
    #[serde(default)]
    pub message: String,
}

/// Parses a document as JSON (when it starts with `{`) or YAML.
fn parse_value(text: &str) -> Result<serde_json::Value> {
    nesting::check_nesting(text, nesting::MAX_DOCUMENT_NESTING)?;
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| Error::invalid("document", format!("not valid JSON: {e}")))?
    } else {
        serde_yaml_ng::from_str(text)
            .map_err(|e| Error::invalid("document", format!("not valid YAML: {e}")))?
    };
    if !value.is_object() {
        return Err(Error::invalid(
            "document",
            "must be a mapping with an `organization` key",
        ));
    }
    Ok(value)
}

/// Deserializes `value`, naming the path of the first bad key or value.
fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix, path.as_str()) {
            (p, ".") | (p, "") => p.to_string(),
            ("", path) => path.to_string(),
            (p, path) if path.starts_with('[') => format!("{p}{path}"),
            (p, path) => format!("{p}.{path}"),
        };
        Error::invalid(
            if field.is_empty() {
                "document".into()
            } else {
                field
            },
            e.into_inner().to_string(),
        )
    })
}

/// Parses a scenario document.
pub fn parse_scenario(text: &str) -> Result<Scenario> {
    let mut value = parse_value(text)?;
    let map = value
        .as_object_mut()
        .ok_or_else(|| Error::invalid("document", "must be a mapping"))?;
    let checks = map.remove("checks");
    let expect_error: Option<ExpectError> = match map.remove("expect_error") {
        Some(e) => Some(typed(e, "expect_error")?),
        None => None,
    };
    let checks = match checks {
        Some(c) => typed(c, "checks")?,
        None => Vec::new(),
    };
    let (document, parse_error) = match typed::<OrgDocument>(value, "") {
        Ok(d) => (d, None),
        Err(e) if expect_error.is_some() => (OrgDocument::default(), Some(e)),
        Err(e) => return Err(e),
    };
    Ok(Scenario {
        document,
        checks,
        expect_error,
        parse_error,
    })
}

/// Parses an organization document for `Import` or `--bootstrap`: a
/// scenario's `checks` and `expect_error` are ignored, any other unknown
/// key is refused.
pub fn parse_document(text: &str) -> Result<OrgDocument> {
    let scenario = parse_scenario(text)?;
    match scenario.parse_error {
        Some(e) => Err(e),
        None => Ok(scenario.document),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let err = parse_scenario("organization: o\nusers:\n  - {id: a, rol: x}\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("users[0]"), "{text}");
        assert!(text.contains("unknown field `rol`"), "{text}");
    }

    #[test]
    fn json_and_yaml_give_the_same_document() {
        let yaml =
            parse_scenario("organization: o\nmodules: [{id: Leads, owd: PUBLIC_READ}]\n").unwrap();
        let json = parse_scenario(
            r#"{"organization":"o","modules":[{"id":"Leads","owd":"PUBLIC_READ"}]}"#,
        )
        .unwrap();
        assert_eq!(yaml, json);
    }

    #[test]
    fn checks_are_typed_and_named_on_error() {
        let err = parse_scenario(
            "organization: o\nchecks:\n  - {subject: a, module: M, action: view, expect: MAYBE}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("checks[0].expect"), "{err}");
    }
}
