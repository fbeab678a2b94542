//! The JSON of the AuthZEN Authorization API 1.0 as Warden reads and
//! writes it. Unknown keys are ignored, as the standard requires of
//! receivers; keys that carry Warden's meaning are typed, so a wrong value
//! is refused with its path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::model::OwnerRef;

/// `subject`: `{type: "user", id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Subject {
    /// Always `user` in Warden.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user id (ignored by subject search).
    #[serde(default)]
    pub id: Option<String>,
}

/// `resource`: `{type: module, id: record_id, properties}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    /// The module.
    #[serde(rename = "type")]
    pub kind: String,
    /// The record id (empty: no record, the profile alone decides).
    #[serde(default)]
    pub id: Option<String>,
    /// A record described in the request instead of stored.
    #[serde(default)]
    pub properties: Option<ResourceProperties>,
}

/// `resource.properties`: the facts of a record that is not stored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceProperties {
    /// The owner: a user id, or `{user: id}` / `{group: id}`.
    #[serde(default)]
    pub owner: Option<OwnerJson>,
    /// Confidential: defaults and sharing rules do not apply.
    #[serde(default)]
    pub private: Option<bool>,
    /// Attributes matched by criteria rules.
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// An owner: a bare string is a user id.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OwnerJson {
    /// A user id.
    User(String),
    /// `{user: id}` or `{group: id}`.
    Tagged(OwnerRef),
}

impl OwnerJson {
    /// The owner as the engine names it.
    pub fn owner(&self) -> OwnerRef {
        match self {
            OwnerJson::User(u) => OwnerRef::User(u.clone()),
            OwnerJson::Tagged(o) => o.clone(),
        }
    }
}

/// `action`: `{name}`, a standard or custom action.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    /// The action.
    pub name: String,
}

/// `context`: when (for shifts), which field, to whom (for `assign`), and
/// how fresh.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Context {
    /// RFC 3339 time (seconds optional), for shifts.
    #[serde(default)]
    pub time: Option<String>,
    /// A field of the module, for `view` or `edit` of one field.
    #[serde(default)]
    pub field: Option<String>,
    /// The new owner, for `assign`.
    #[serde(default)]
    pub assign_to: Option<OwnerJson>,
    /// `minimize_latency` (default), `fully_consistent` or
    /// `at_least_as_fresh:REVISION`.
    #[serde(default)]
    pub consistency: Option<String>,
}

/// An Access Evaluation request, and each item of an evaluations list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluation {
    /// Who.
    #[serde(default)]
    pub subject: Option<Subject>,
    /// Does what.
    #[serde(default)]
    pub action: Option<Action>,
    /// To what.
    #[serde(default)]
    pub resource: Option<Resource>,
    /// When, which field, to whom, how fresh.
    #[serde(default)]
    pub context: Option<Context>,
}

/// How an evaluations list is run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantic {
    /// Every evaluation, every answer.
    #[default]
    ExecuteAll,
    /// Stop after the first deny (or error).
    DenyOnFirstDeny,
    /// Stop after the first permit.
    PermitOnFirstPermit,
}

/// `options` of an evaluations request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    /// The semantic (default `execute_all`).
    #[serde(default)]
    pub evaluations_semantic: Option<Semantic>,
}

/// An Access Evaluations request: defaults, a list, options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluations {
    /// Defaults for every item.
    #[serde(flatten)]
    pub defaults: Evaluation,
    /// The items (absent or empty: one evaluation of the defaults).
    #[serde(default)]
    pub evaluations: Option<Vec<Evaluation>>,
    /// How the list is run.
    #[serde(default)]
    pub options: Option<Options>,
}

/// `page` of a search request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageRequest {
    /// The `next_token` of the previous page.
    #[serde(default)]
    pub token: Option<String>,
    /// Most results in the answer (0 or absent: the default page).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A subject, resource or action search request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Search {
    /// Who (its id ignored by subject search).
    #[serde(default)]
    pub subject: Option<Subject>,
    /// Does what (absent in action search).
    #[serde(default)]
    pub action: Option<Action>,
    /// To what (its id ignored by resource search).
    #[serde(default)]
    pub resource: Option<Resource>,
    /// When, how fresh.
    #[serde(default)]
    pub context: Option<Context>,
    /// Which page.
    #[serde(default)]
    pub page: Option<PageRequest>,
}

/// The `context` of a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecisionContext {
    /// The step that decided (`OWNER`, `PROFILE`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The subject's record level (`NONE`, `READ`, `READ_WRITE`, `FULL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<&'static str>,
    /// The revision the decision was made at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Why this evaluation of a list could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorJson>,
}

/// An error inside a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorJson {
    /// The HTTP status the error would have had alone.
    pub status: u16,
    /// The field and the rule.
    pub message: String,
}

/// A decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionJson {
    /// Allowed or not.
    pub decision: bool,
    /// Reason, level, revision (or the error).
    pub context: DecisionContext,
}

/// The answer to an evaluations list.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationsAnswer {
    /// One decision per item run, in order.
    pub evaluations: Vec<DecisionJson>,
}

/// `page` of a search answer.
#[derive(Debug, Clone, Serialize)]
pub struct PageAnswer {
    /// Token of the next page; empty on the last.
    pub next_token: String,
    /// Results in this answer.
    pub count: usize,
    /// Results of the whole search (absent where not known: action search).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
}

/// The `context` of a search answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchContext {
    /// The revision the results were computed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Why there are no results when the question names an unknown module or record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// A subject or resource in search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    /// `user`, or the module.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user or record id.
    pub id: String,
}

/// An action in search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionName {
    /// The action.
    pub name: String,
}

/// A search answer (the page first, as the standard recommends).
#[derive(Debug, Clone, Serialize)]
pub struct SearchAnswer<T> {
    /// Where the results stand in the whole.
    pub page: PageAnswer,
    /// Revision, or why there is nothing.
    pub context: SearchContext,
    /// The results.
    pub results: Vec<T>,
}

/// The Policy Decision Point metadata of one organization.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    /// The PDP identifier: the base URL of the organization's endpoints.
    pub policy_decision_point: String,
    /// Access Evaluation.
    pub access_evaluation_endpoint: String,
    /// Access Evaluations.
    pub access_evaluations_endpoint: String,
    /// Subject Search.
    pub search_subject_endpoint: String,
    /// Resource Search.
    pub search_resource_endpoint: String,
    /// Action Search.
    pub search_action_endpoint: String,
}
