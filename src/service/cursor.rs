//! Snapshots behind LookupRecords cursors: a lookup that spans several
//! pages keeps its complete, sorted result for a while, so a client that
//! resumes from a cursor continues at the revision it started from.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One lookup's complete result.
#[derive(Debug)]
pub struct Snapshot {
    /// What was asked: org, subject, module, action.
    pub key: (String, String, String, String),
    /// The revision it was computed at.
    pub revision: u64,
    /// Every record id, sorted.
    pub ids: Vec<Arc<str>>,
    created: Instant,
}

/// Where a cursor points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Snapshot id.
    pub snapshot: u64,
    /// Revision of the snapshot.
    pub revision: u64,
    /// Index of the next id to send.
    pub offset: usize,
}

impl Position {
    /// The cursor text.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.snapshot, self.revision, self.offset)
    }

    /// Reads cursor text; `None` when it is not a cursor Warden wrote.
    pub fn decode(text: &str) -> Option<Position> {
        let mut parts = text.split('.');
        let snapshot = parts.next()?.parse().ok()?;
        let revision = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Position {
            snapshot,
            revision,
            offset,
        })
    }
}

/// A bounded set of snapshots, oldest dropped first, each kept for a while.
pub struct Cursors {
    next: AtomicU64,
    kept: Mutex<VecDeque<(u64, Arc<Snapshot>)>>,
    capacity: usize,
    ttl: Duration,
}

impl Default for Cursors {
    fn default() -> Self {
        Cursors::new(256, Duration::from_secs(600))
    }
}

impl Cursors {
    /// Keeps at most `capacity` snapshots, each for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Cursors {
            next: AtomicU64::new(1),
            kept: Mutex::new(VecDeque::new()),
            capacity,
            ttl,
        }
    }

    /// Keeps a snapshot; returns its id.
    pub fn keep(
        &self,
        key: (String, String, String, String),
        revision: u64,
        ids: Vec<Arc<str>>,
    ) -> (u64, Arc<Snapshot>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let snap = Arc::new(Snapshot {
            key,
            revision,
            ids,
            created: Instant::now(),
        });
        let mut kept = self.kept.lock();
        kept.retain(|(_, s)| s.created.elapsed() < self.ttl);
        while kept.len() >= self.capacity {
            kept.pop_front();
        }
        kept.push_back((id, snap.clone()));
        (id, snap)
    }

    /// A snapshot that is not kept (a result that fits in one page).
    pub fn single(
        key: (String, String, String, String),
        revision: u64,
        ids: Vec<Arc<str>>,
    ) -> Snapshot {
        Snapshot {
            key,
            revision,
            ids,
            created: Instant::now(),
        }
    }

    /// The snapshot `id`, if still kept.
    pub fn get(&self, id: u64) -> Option<Arc<Snapshot>> {
        let kept = self.kept.lock();
        kept.iter()
            .find(|(i, s)| *i == id && s.created.elapsed() < self.ttl)
            .map(|(_, s)| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips_and_rejects_junk() {
        let p = Position {
            snapshot: 7,
            revision: 42,
            offset: 1000,
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("7.42"), None);
        assert_eq!(Position::decode("a.b.c"), None);
    }

    #[test]
    fn oldest_snapshots_go_first() {
        let c = Cursors::new(2, Duration::from_secs(60));
        let key = || {
            (
                "o".to_string(),
                "s".to_string(),
                "m".to_string(),
                "view".to_string(),
            )
        };
        let (a, _) = c.keep(key(), 1, vec![]);
        let (b, _) = c.keep(key(), 1, vec![]);
        let (d, _) = c.keep(key(), 1, vec![]);
        assert!(c.get(a).is_none());
        assert!(c.get(b).is_some() && c.get(d).is_some());
    }
}
