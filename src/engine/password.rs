//! Password policy: evaluates a candidate password against the
//! organization's rules. The password is never kept, logged or echoed.

use chrono::{DateTime, Duration, Utc};

use super::model::{CharClass, PasswordPolicy};

/// A rule a candidate password breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Violation {
    /// Shorter than `min_length`.
    TooShort,
    /// No upper-case letter.
    MissingUpper,
    /// No lower-case letter.
    MissingLower,
    /// No digit.
    MissingDigit,
    /// No symbol.
    MissingSymbol,
    /// Contains the principal id.
    ContainsPrincipal,
    /// Set longer ago than `max_age_days`.
    Expired,
}

/// The verdict on a candidate password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordVerdict {
    /// Whether no rule is broken.
    pub valid: bool,
    /// Every rule broken, in a fixed order.
    pub violations: Vec<Violation>,
    /// When a password set at `set_at` expires, under `max_age_days`.
    pub expires_at: Option<DateTime<Utc>>,
}

fn has(class: CharClass, password: &str) -> bool {
    password.chars().any(|c| match class {
        CharClass::Upper => c.is_uppercase(),
        CharClass::Lower => c.is_lowercase(),
        CharClass::Digit => c.is_ascii_digit(),
        CharClass::Symbol => !c.is_alphanumeric() && !c.is_whitespace(),
    })
}

/// Evaluates `password` for the user with `principal` under `policy` (no
/// policy: anything goes). `set_at` is when the password was set, for the
/// maximum age; `now` is the current time.
pub fn validate_password(
    policy: Option<&PasswordPolicy>,
    principal: &str,
    password: &str,
    set_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> PasswordVerdict {
    let Some(policy) = policy else {
        return PasswordVerdict {
            valid: true,
            violations: Vec::new(),
            expires_at: None,
        };
    };
    let mut violations = Vec::new();
    if (password.chars().count() as u64) < u64::from(policy.min_length) {
        violations.push(Violation::TooShort);
    }
    for class in &policy.require {
        if !has(*class, password) {
            violations.push(match class {
                CharClass::Upper => Violation::MissingUpper,
                CharClass::Lower => Violation::MissingLower,
                CharClass::Digit => Violation::MissingDigit,
                CharClass::Symbol => Violation::MissingSymbol,
            });
        }
    }
    if policy.forbid_principal && contains_principal(principal, password) {
        violations.push(Violation::ContainsPrincipal);
    }
    let expires_at = match (policy.max_age_days.filter(|d| *d > 0), set_at) {
        (Some(days), Some(set_at)) => Some(set_at + Duration::days(i64::from(days))),
        _ => None,
    };
    if expires_at.is_some_and(|e| e <= now) {
        violations.push(Violation::Expired);
    }
    violations.sort();
    violations.dedup();
    PasswordVerdict {
        valid: violations.is_empty(),
        violations,
        expires_at,
    }
}

/// Whether the password holds the principal, or its part before `@`
/// (three characters or more), ignoring case.
fn contains_principal(principal: &str, password: &str) -> bool {
    let password = password.to_lowercase();
    let principal = principal.to_lowercase();
    let local = principal.split('@').next().unwrap_or("");
    (!principal.is_empty() && password.contains(&principal))
        || (local.chars().count() >= 3 && password.contains(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 12,
            require: vec![
                CharClass::Upper,
                CharClass::Lower,
                CharClass::Digit,
                CharClass::Symbol,
            ],
            max_age_days: Some(90),
            forbid_principal: true,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn strong_password_passes() {
        let v = validate_password(
            Some(&policy()),
            "alice@acme.example",
            "Tr0ub4dor&3xyz",
            None,
            now(),
        );
        assert!(v.valid, "{v:?}");
    }

    #[test]
    fn every_broken_rule_is_named() {
        let v = validate_password(Some(&policy()), "alice@acme.example", "alice", None, now());
        assert_eq!(
            v.violations,
            vec![
                Violation::TooShort,
                Violation::MissingUpper,
                Violation::MissingDigit,
                Violation::MissingSymbol,
                Violation::ContainsPrincipal
            ]
        );
    }

    #[test]
    fn principal_is_found_ignoring_case() {
        let v = validate_password(
            Some(&policy()),
            "alice@acme.example",
            "xxALICE99!!yy",
            None,
            now(),
        );
        assert!(v.violations.contains(&Violation::ContainsPrincipal));
    }

    #[test]
    fn maximum_age_expires_old_passwords() {
        let old = "2026-08-01T00:00:00Z".parse().unwrap();
        let v = validate_password(Some(&policy()), "bob", "Tr0ub4dor&3xyz", Some(old), now());
        assert_eq!(v.violations, vec![Violation::Expired]);
        assert_eq!(v.expires_at, Some("2026-10-30T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn no_policy_allows_anything() {
        assert!(validate_password(None, "bob", "", None, now()).valid);
    }
}
