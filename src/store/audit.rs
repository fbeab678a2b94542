//! The change audit kept beside each change-log entry (who wrote, when),
//! how long the log is kept, and the hash of the last bootstrap document
//! merged into an organization.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{StoreError, StoreResult, LOG_KEPT};

/// Who made a write and when, recorded with its change-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The acting user's id, the credential's name for an operator write,
    /// or "anonymous" with authentication off.
    pub actor: String,
    /// When the write was committed.
    pub at: DateTime<Utc>,
}

impl Audit {
    /// `actor` writing now.
    pub fn now(actor: impl Into<String>) -> Audit {
        Audit {
            actor: actor.into(),
            at: Utc::now(),
        }
    }
}

/// What a commit records besides its changes.
#[derive(Debug, Clone, Default)]
pub struct CommitMeta {
    /// Who and when; `None` leaves the entry's actor and time empty (and
    /// the entry old to retention by age).
    pub audit: Option<Audit>,
    /// The SHA-256 (hex) of the bootstrap document this write merges,
    /// recorded in the same transaction so that a crash cannot leave the
    /// hash without the write.
    pub bootstrap_sha256: Option<String>,
}

/// How much of each organization's change log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The newest entries, this many revisions behind the newest.
    Revisions(u64),
    /// Entries younger than this; the newest is always kept.
    Age(Duration),
}

impl Default for Retention {
    fn default() -> Self {
        Retention::Revisions(LOG_KEPT)
    }
}

impl Retention {
    /// Parses `--change-retention`: a number of revisions (`10000`) or an
    /// age with a unit (`90d`, `12h`, `30m`, `45s`).
    pub fn parse(text: &str) -> Result<Retention, String> {
        let text = text.trim();
        let rule = "a number of revisions (10000) or an age such as 90d, 12h, 30m, 45s";
        if let Ok(revisions) = text.parse::<u64>() {
            if revisions == 0 {
                return Err(format!("--change-retention: must be positive; {rule}"));
            }
            return Ok(Retention::Revisions(revisions));
        }
        let split = text.len().saturating_sub(1);
        let (number, unit) = (text.get(..split), text.get(split..));
        let seconds = match unit {
            Some("d") => 86_400,
            Some("h") => 3_600,
            Some("m") => 60,
            Some("s") => 1,
            _ => return Err(format!("--change-retention: {rule}")),
        };
        match number.and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if n > 0 => n
                .checked_mul(seconds)
                .map(|s| Retention::Age(Duration::from_secs(s)))
                .ok_or_else(|| format!("--change-retention: too long; {rule}")),
            _ => Err(format!("--change-retention: {rule}")),
        }
    }

    /// The oldest revision to keep behind `newest` (by count), or `None`
    /// when retention is by age.
    pub(crate) fn oldest_revision(self, newest: u64) -> Option<u64> {
        match self {
            Retention::Revisions(n) => Some(newest.saturating_sub(n)),
            Retention::Age(_) => None,
        }
    }

    /// The oldest time to keep (as stored), or `None` when retention is by
    /// count.
    pub(crate) fn oldest_time(self, now: DateTime<Utc>) -> Option<String> {
        match self {
            Retention::Revisions(_) => None,
            Retention::Age(age) => {
                let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                Some(time_text(
                    now.checked_sub_signed(age)
                        .unwrap_or(DateTime::<Utc>::MIN_UTC),
                ))
            }
        }
    }
}

/// A time as the log stores it: RFC 3339 in UTC with a fixed number of
/// digits, so that text order is time order and age pruning can compare
/// the text.
pub(crate) fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads a stored time back.
pub(crate) fn parse_time(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("read the change log: corrupt time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_counts_and_ages() {
        assert_eq!(Retention::parse("500"), Ok(Retention::Revisions(500)));
        assert_eq!(
            Retention::parse("90d"),
            Ok(Retention::Age(Duration::from_secs(90 * 86_400)))
        );
        assert_eq!(
            Retention::parse("2h"),
            Ok(Retention::Age(Duration::from_secs(7_200)))
        );
        for bad in ["0", "", "d", "5w", "-3", "0s", "1.5h"] {
            assert!(Retention::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Retention::default(), Retention::Revisions(LOG_KEPT));
    }

    #[test]
    fn stored_times_sort_as_text_in_time_order() {
        let early = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap();
        let later = early + chrono::Duration::microseconds(1);
        let (a, b) = (
            time_text(early.with_timezone(&Utc)),
            time_text(later.with_timezone(&Utc)),
        );
        assert!(a < b, "{a} {b}");
        assert_eq!(parse_time(&a).unwrap(), early);
    }
}
