//! The engine's errors: bad input, unknown ids, refused preconditions.

use thiserror::Error;

/// Why the engine refused a request. Nothing is ever allowed on an error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A field broke a rule; nothing was changed.
    #[error("{field}: {rule}")]
    InvalidArgument {
        /// The field, as a path such as `users[2].role`.
        field: String,
        /// The rule it broke.
        rule: String,
    },
    /// A referenced id does not exist.
    #[error("{kind} '{id}' not found{}", at_field(.field))]
    NotFound {
        /// What kind of thing (`user`, `role`, …).
        kind: &'static str,
        /// The id that is missing.
        id: String,
        /// Where the reference was made, if from a field.
        field: String,
    },
    /// Something of that id exists already where a new one was asked for.
    #[error("{kind} '{id}' already exists")]
    AlreadyExists {
        /// What kind of thing.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The write would break an invariant (cycle, limit, orphaned records).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The actor is not allowed to make this change.
    #[error("{0}")]
    PermissionDenied(String),
}

fn at_field(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(" ({field})")
    }
}

impl Error {
    /// Bad input in `field`, breaking `rule`.
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// `kind` `id`, referenced from `field`, does not exist.
    pub fn not_found(kind: &'static str, id: impl Into<String>, field: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
            field: field.into(),
        }
    }

    /// The write breaks an invariant.
    pub fn precondition(message: impl Into<String>) -> Self {
        Error::FailedPrecondition(message.into())
    }

    /// The spec's status name for this error (`INVALID_ARGUMENT`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::FailedPrecondition(_) => "FAILED_PRECONDITION",
            Error::PermissionDenied(_) => "PERMISSION_DENIED",
        }
    }
}

/// Engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
