//! The engine's errors: bad input, unknown ids, refused preconditions.

use std::borrow::Cow;

use thiserror::Error;

/// Longest id or value echoed whole in an error message.
pub const ECHO_LIMIT: usize = 64;

/// Longest field path echoed whole: a path joins a few ids
/// (`profile.fields.MODULE.FIELD`), each of which may be near the id limit.
pub const FIELD_LIMIT: usize = 256;

/// Longest whole error message; past it the message is cut, so that no
/// input comes back large enough to break a client's header limits.
pub const MESSAGE_LIMIT: usize = 4096;

/// `s` as an error message may echo it: whole up to [`ECHO_LIMIT`] bytes,
/// else its start, "…" and its length. Every id or value a client sent is
/// echoed through this, so a 1 MB id never comes back in a status header.
pub fn bounded(s: &str) -> Cow<'_, str> {
    cut(s, ECHO_LIMIT)
}

/// A whole message, cut at [`MESSAGE_LIMIT`] bytes the same way.
pub fn bounded_message(s: &str) -> Cow<'_, str> {
    cut(s, MESSAGE_LIMIT)
}

fn cut(s: &str, limit: usize) -> Cow<'_, str> {
    if s.len() <= limit {
        return Cow::Borrowed(s);
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…({} bytes)", &s[..end], s.len()))
}

/// Why the engine refused a request. Nothing is ever allowed on an error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A field broke a rule; nothing was changed.
    #[error("{}: {rule}", cut(.field, FIELD_LIMIT))]
    InvalidArgument {
        /// The field, as a path such as `users[2].role`.
        field: String,
        /// The rule it broke.
        rule: String,
    },
    /// A referenced id does not exist.
    #[error("{kind} '{}' not found{}", bounded(.id), at_field(.field))]
    NotFound {
        /// What kind of thing (`user`, `role`, …).
        kind: &'static str,
        /// The id that is missing.
        id: String,
        /// Where the reference was made, if from a field.
        field: String,
    },
    /// Something of that id exists already where a new one was asked for.
    #[error("{kind} '{}' already exists", bounded(.id))]
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
        format!(" ({})", cut(field, FIELD_LIMIT))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_are_cut_with_their_length() {
        let huge = "x".repeat(1 << 20);
        let text = Error::not_found("user", huge.as_str(), "user_id").to_string();
        assert!(text.len() < 200, "{}", text.len());
        assert!(text.contains("…(1048576 bytes)"), "{text}");
        assert_eq!(bounded("short"), "short");
        assert_eq!(bounded(&"y".repeat(ECHO_LIMIT)), "y".repeat(ECHO_LIMIT));
        // Never cut inside a character.
        let wide = "é".repeat(ECHO_LIMIT);
        assert!(bounded(&wide).ends_with(&format!("…({} bytes)", wide.len())));
        let long_message = Error::precondition("z".repeat(MESSAGE_LIMIT * 4)).to_string();
        assert!(bounded_message(&long_message).len() < MESSAGE_LIMIT + 32);
    }
}
