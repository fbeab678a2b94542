//! Explanations in the model's own words: the trace a check returns with
//! `explain`, each entry naming its step, what it gave, the ids it talks
//! about and what would grant access, with ids and enum words written as
//! the documents write them (never Rust's Debug text).

use super::model::{AccessLevel, FieldLevel, Owd, Reason};
use super::org::{GranteeIx, MemberSetIx, OrgState, Owner};

/// What one trace entry did to the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A step of 1–6 or 8 that let the decision go on.
    Passed,
    /// The step or step-7 path the answer's reason names.
    Decided,
    /// A step-7 path that gave access but did not decide.
    Gave,
    /// A step-7 path that gave no access.
    GaveNothing,
}

impl Outcome {
    /// The word the API and the documentation use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "PASSED",
            Outcome::Decided => "DECIDED",
            Outcome::Gave => "GAVE",
            Outcome::GaveNothing => "GAVE_NOTHING",
        }
    }
}

/// An entity an explanation talks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRef {
    /// `user`, `group`, `role`, `role_and_subordinates`, `module`,
    /// `profile`, `sharing_rule`, `shift`, `field` or `record`.
    pub kind: &'static str,
    /// Its id as the documents write it.
    pub id: String,
    /// What it is to this entry: `subject`, `owner`, `superior`, `lead`,
    /// `led_group`, `from`, `to`, `grantee`, `profile`, `module`, `rule`,
    /// `shift`, `field`, `record`, `target`, `role`.
    pub relation: &'static str,
}

/// What would grant access through one path: the smallest level or the
/// membership missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The sentence: "membership of group 'east'", "a share of READ_WRITE".
    pub detail: String,
    /// The level it would give.
    pub level: AccessLevel,
    /// The entities it names.
    pub refs: Vec<TraceRef>,
}

/// One evaluated step or path, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// The step of SPEC section 2 (1–8).
    pub step: u8,
    /// The step or path.
    pub reason: Reason,
    /// The level it gave (NONE for steps that only pass or fail).
    pub level: AccessLevel,
    /// The sentence, in the model's terms.
    pub detail: String,
    /// What it did to the answer.
    pub outcome: Outcome,
    /// The entities the sentence names.
    pub refs: Vec<TraceRef>,
    /// What would grant access through it, where something would.
    pub missing: Option<Missing>,
}

impl TraceStep {
    /// An entry of step `step` that passed.
    pub(crate) fn new(step: u8, reason: Reason, level: AccessLevel, detail: String) -> Self {
        TraceStep {
            step,
            reason,
            level,
            detail,
            outcome: Outcome::Passed,
            refs: Vec::new(),
            missing: None,
        }
    }

    /// A step-7 path's entry: GAVE or GAVE_NOTHING by its level.
    pub(crate) fn path(reason: Reason, level: AccessLevel, detail: String) -> Self {
        TraceStep {
            outcome: if level > AccessLevel::None {
                Outcome::Gave
            } else {
                Outcome::GaveNothing
            },
            ..TraceStep::new(7, reason, level, detail)
        }
    }

    /// With one more entity named.
    pub(crate) fn refer(mut self, r: TraceRef) -> Self {
        self.refs.push(r);
        self
    }

    /// With what would grant access.
    pub(crate) fn missing(
        mut self,
        detail: String,
        level: AccessLevel,
        refs: Vec<TraceRef>,
    ) -> Self {
        self.missing = Some(Missing {
            detail,
            level,
            refs,
        });
        self
    }

    /// With this outcome.
    pub(crate) fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// A reference of `kind` to `id`.
pub(crate) fn refer(kind: &'static str, id: &str, relation: &'static str) -> TraceRef {
    TraceRef {
        kind,
        id: id.to_string(),
        relation,
    }
}

/// An owner as a reference.
pub(crate) fn owner_ref(org: &OrgState, owner: Owner, relation: &'static str) -> TraceRef {
    match owner {
        Owner::User(u) => refer("user", org.user_id(u), relation),
        Owner::Group(g) => refer("group", org.group_id(g), relation),
    }
}

/// An owner in a sentence: `user 'ray'`, `group 'east'`.
pub(crate) fn owner_words(org: &OrgState, owner: Owner) -> String {
    match owner {
        Owner::User(u) => format!("user '{}'", org.user_id(u)),
        Owner::Group(g) => format!("group '{}'", org.group_id(g)),
    }
}

/// A rule's `from` or `to` set: its kind (as the documents key it) and id.
pub(crate) fn set_ref(org: &OrgState, set: MemberSetIx, relation: &'static str) -> TraceRef {
    match set {
        MemberSetIx::Role(r) => refer("role", org.role_id(r), relation),
        MemberSetIx::RoleAndSubordinates(r) => {
            refer("role_and_subordinates", org.role_id(r), relation)
        }
        MemberSetIx::Group(g) => refer("group", org.group_id(g), relation),
    }
}

/// A grantee of a manual share as a reference.
pub(crate) fn grantee_ref(org: &OrgState, g: GranteeIx, relation: &'static str) -> TraceRef {
    match g {
        GranteeIx::User(u) => refer("user", org.user_id(u), relation),
        GranteeIx::Group(g) => refer("group", org.group_id(g), relation),
        GranteeIx::Role(r) => refer("role", org.role_id(r), relation),
        GranteeIx::RoleAndSubordinates(r) => {
            refer("role_and_subordinates", org.role_id(r), relation)
        }
    }
}

/// A reference in a sentence: `group 'east'`, `role_and_subordinates 'sales'`.
pub(crate) fn words(r: &TraceRef) -> String {
    format!("{} '{}'", r.kind, r.id)
}

/// The document's word for an organization-wide default.
pub(crate) fn owd_word(owd: Owd) -> &'static str {
    match owd {
        Owd::Private => "PRIVATE",
        Owd::PublicRead => "PUBLIC_READ",
        Owd::PublicReadWrite => "PUBLIC_READ_WRITE",
        Owd::PublicFull => "PUBLIC_FULL",
    }
}

/// The document's word for a field level.
pub(crate) fn field_word(level: FieldLevel) -> &'static str {
    match level {
        FieldLevel::Hidden => "HIDDEN",
        FieldLevel::ReadOnly => "READ_ONLY",
        FieldLevel::Editable => "EDITABLE",
    }
}

/// `", 'edit' needs READ_WRITE"` when `level` falls short of `need`, else nothing.
pub(crate) fn short_of(level: AccessLevel, need: &Need<'_>) -> String {
    if level < need.required {
        format!(", '{}' needs {}", need.action, need.required.as_str())
    } else {
        String::new()
    }
}

/// `'a', 'b'`: ids quoted and joined.
pub(crate) fn quoted<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    ids.into_iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the action needs, for explanations of step 7.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Need<'a> {
    /// The action asked.
    pub(crate) action: &'a str,
    /// The record level it requires.
    pub(crate) required: AccessLevel,
}
