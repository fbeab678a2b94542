//! Scenario documents: an organization document plus checks with their
//! expected answers (or the error its loading must give), parsed from YAML
//! or JSON with unknown keys refused by name, and run by `warden validate`.

pub mod nesting;
pub mod runner;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::engine::error::bounded;
use crate::engine::model::{OwnerRef, Reason, RecordDescription};
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
    /// The record described in the check instead of stored (needs `record`).
    #[serde(default)]
    pub described: Option<RecordDescription>,
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
            subject: self.subject.clone().into(),
            module: self.module.clone().into(),
            action: self.action.clone().into(),
            record: self.record.clone().map(Into::into),
            field: self.field.clone().map(Into::into),
            at: self.at,
            explain: false,
            assign_to: self.assign_to.clone(),
            described: self.described.clone(),
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

/// Parses a document as JSON (when it starts with `{`) or YAML, refusing a
/// key that appears twice in one mapping (both parsers would otherwise keep
/// the last silently, so a document could say two things at once).
fn parse_value(text: &str) -> Result<serde_json::Value> {
    let value = parse_any(text)?;
    if !value.is_object() {
        return Err(Error::invalid(
            "document",
            "must be a mapping with an `organization` key",
        ));
    }
    Ok(value)
}

/// [`parse_value`] for any shape of text, a list as well as a mapping.
fn parse_any(text: &str) -> Result<serde_json::Value> {
    nesting::check_nesting(text, nesting::MAX_DOCUMENT_NESTING)?;
    let duplicate = std::cell::RefCell::new(None);
    let seed = StrictValue {
        at: &Path::Root,
        duplicate: &duplicate,
    };
    let parsed = if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        serde::de::DeserializeSeed::deserialize(seed, &mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| format!("not valid JSON: {e}"))
    } else {
        serde::de::DeserializeSeed::deserialize(seed, serde_yaml_ng::Deserializer::from_str(text))
            .map_err(|e| format!("not valid YAML: {e}"))
    };
    if let Some((path, key)) = duplicate.into_inner() {
        return Err(Error::invalid(
            path,
            format!(
                "duplicate key `{}`: a key appears once per mapping",
                bounded(&key)
            ),
        ));
    }
    parsed.map_err(|e| Error::invalid("document", e))
}

/// Where a value sits in a document, rendered only for an error, so that
/// parsing allocates nothing for paths.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// `users[2].id`, as `typed` names fields.
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(parent, key) => match parent.render() {
                p if p.is_empty() => key.to_string(),
                p => format!("{p}.{key}"),
            },
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

/// Deserializes any value as `serde_json::Value` does, recording the first
/// duplicate key (its path and the key) in `duplicate`.
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    at: &'a Path<'a>,
    duplicate: &'a std::cell::RefCell<Option<(String, String)>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for StrictValue<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictValue<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a document value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let at = Path::Index(self.at, out.len());
            let element = StrictValue {
                at: &at,
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(element)? {
                Some(v) => out.push(v),
                None => return Ok(serde_json::Value::Array(out)),
            }
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Path::Key(self.at, &key);
            let value = map.next_value_seed(StrictValue {
                at: &at,
                duplicate: self.duplicate,
            })?;
            if out.contains_key(&key) {
                let path = at.render();
                self.duplicate
                    .borrow_mut()
                    .get_or_insert((path, key.clone()));
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    bounded(&key)
                )));
            }
            out.insert(key, value);
        }
        Ok(serde_json::Value::Object(out))
    }
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
    if let Some(document) = parse_json_document(text) {
        return Ok(document);
    }
    let scenario = parse_scenario(text)?;
    match scenario.parse_error {
        Some(e) => Err(e),
        None => Ok(scenario.document),
    }
}

/// Parses any typed YAML or JSON text with the document's strict reader
/// (duplicate keys refused, the path of a bad key or value named after
/// `prefix`), e.g. the changes file of `warden simulate`.
pub fn parse_typed<T: serde::de::DeserializeOwned>(text: &str, prefix: &str) -> Result<T> {
    typed(parse_any(text)?, prefix)
}

/// A JSON document read straight into its type, for the large documents
/// of Import and `--bootstrap`: the general path reads a whole value tree
/// first (about ten times the text for crm-large). One pass over the text:
/// derived structs refuse a repeated field and an unknown one, and the
/// document's maps refuse a repeated key as they are read (`UniqueKeys` in
/// `engine::model`), so no separate walk looks for repeated keys first.
/// No nesting pre-scan either: the typed reader accepts only the
/// document's own few levels (far under `MAX_DOCUMENT_NESTING`) and stops
/// at the first bracket a type does not expect, and serde_json's recursion
/// limit bounds its stack. `None` when the text is not JSON or breaks any
/// rule (nesting, a repeated key, an unknown key, a scenario's `checks`):
/// the general path then reads it again and names what is wrong, so the
/// answer is the same either way.
fn parse_json_document(text: &str) -> Option<OrgDocument> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_documents_read_straight_or_by_the_general_path_alike() {
        let good = r#"{"organization":"o","modules":[{"id":"Leads","owd":"PUBLIC_READ"}],
            "records":[{"module":"Leads","id":"L1","owner":{"user":"u"},"attributes":{"a":"1"}}]}"#;
        let straight = parse_json_document(good).unwrap();
        assert_eq!(straight, parse_scenario(good).unwrap().document);
        assert_eq!(parse_document(good).unwrap(), straight);
        // A repeated key inside a map field, a scenario's checks, an
        // unknown key: the general path decides and names the problem.
        let repeated = r#"{"organization":"o","records":[{"module":"M","id":"L1",
            "owner":{"user":"u"},"attributes":{"a":"1","a":"2"}}]}"#;
        assert!(parse_json_document(repeated).is_none());
        let err = parse_document(repeated).unwrap_err().to_string();
        assert_eq!(
            err,
            "records[0].attributes.a: duplicate key `a`: a key appears once per mapping"
        );
        // Every map of the document refuses a repeated key in the one pass,
        // and the general path names it as before.
        for (text, named) in [
            (
                r#"{"organization":"o","modules":[{"id":"M","actions":{"x":"READ","x":"FULL"}}]}"#,
                "modules[0].actions.x: duplicate key `x`",
            ),
            (
                r#"{"organization":"o","profiles":[{"id":"p","modules":{"M":[],"M":["view"]}}]}"#,
                "profiles[0].modules.M: duplicate key `M`",
            ),
            (
                r#"{"organization":"o","profiles":[{"id":"p","fields":{"M":{"f":"READ","f":"HIDDEN"}}}]}"#,
                "profiles[0].fields.M.f: duplicate key `f`",
            ),
            (
                r#"{"organization":"o","profiles":[{"id":"p","fields":{"M":{},"M":{}}}]}"#,
                "profiles[0].fields.M: duplicate key `M`",
            ),
            (
                r#"{"organization":"o","sharing_rules":[{"id":"r","module":"M",
                    "criteria":{"k":"1","k":"2"},"to":{"role":"r"},"access":"READ"}]}"#,
                "sharing_rules[0].criteria.k: duplicate key `k`",
            ),
            (
                r#"{"organization":"o","records":[{"module":"M","id":"L1",
                    "owner":{"user":"u"},"private":false,"private":true}]}"#,
                "records[0].private: duplicate key `private`",
            ),
        ] {
            assert!(parse_json_document(text).is_none(), "{text}");
            let err = parse_document(text).unwrap_err().to_string();
            assert!(err.starts_with(named), "{err}");
        }
        // Too deep for the general path's pre-scan: refused by name, not
        // read by the one pass.
        let deep = format!(
            r#"{{"organization":"o","x":{}{}}}"#,
            "[".repeat(70),
            "]".repeat(70)
        );
        assert!(parse_json_document(&deep).is_none());
        let err = parse_document(&deep).unwrap_err().to_string();
        assert!(err.contains("nested deeper than"), "{err}");
        let with_checks = r#"{"organization":"o","checks":[]}"#;
        assert!(parse_json_document(with_checks).is_none());
        assert_eq!(parse_document(with_checks).unwrap().organization, "o");
        let unknown = r#"{"organization":"o","modulez":[]}"#;
        assert!(parse_json_document(unknown).is_none());
        assert!(parse_document(unknown).is_err());
        assert!(parse_json_document("organization: o\n").is_none());
    }

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

    #[test]
    fn duplicate_keys_are_refused_with_their_path_in_yaml_and_json() {
        let yaml =
            "organization: o\nusers:\n  - {id: a, role: r}\n  - id: b\n    role: r\n    role: s\n";
        let err = parse_scenario(yaml).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert_eq!(
            err.to_string(),
            "users[1].role: duplicate key `role`: a key appears once per mapping"
        );
        let json = r#"{"organization":"o","modules":[{"id":"Leads","owd":"PRIVATE","owd":"PUBLIC_FULL"}]}"#;
        let err = parse_scenario(json).unwrap_err().to_string();
        assert!(
            err.starts_with("modules[0].owd: duplicate key `owd`"),
            "{err}"
        );
        let top = parse_scenario("organization: o\norganization: p\n")
            .unwrap_err()
            .to_string();
        assert!(top.starts_with("organization: duplicate key"), "{top}");
        // The same key in different mappings is no duplicate.
        assert!(parse_scenario("organization: o\nusers: [{id: a}, {id: b}]\n").is_ok());
    }
}
