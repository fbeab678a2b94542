//! Snapshots behind LookupRecords cursors: a lookup that spans several
//! pages keeps its complete, sorted result for a while, so a client that
//! resumes from a cursor continues at the revision it started from.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::ServiceError;
use crate::engine::lookup::RecordSet;
use crate::engine::Error;

/// What a lookup asked: org, subject, module, action.
pub type LookupKey = (String, String, String, String);

/// A stable fingerprint of what a lookup asked, written into its cursors
/// so that a cursor given with another question is refused even after its
/// snapshot expired (and on another replica, which keeps none of ours).
pub fn fingerprint(key: &LookupKey) -> u64 {
    let mut h = Sha256::new();
    for part in [&key.0, &key.1, &key.2, &key.3] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn bad_cursor(rule: impl Into<String>) -> ServiceError {
    ServiceError::Engine(Error::invalid("cursor", rule))
}

/// One lookup's complete result.
#[derive(Debug)]
pub struct Snapshot {
    /// What was asked.
    pub key: LookupKey,
    /// The revision it was computed at.
    pub revision: u64,
    /// Every record id, put in order as pages are read.
    pub ids: RecordSet,
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
    /// [`fingerprint`] of the lookup it continues.
    pub key: u64,
}

impl Position {
    /// The cursor text.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{:016x}",
            self.snapshot, self.revision, self.offset, self.key
        )
    }

    /// Reads cursor text; `None` when it is not a cursor Warden wrote.
    pub fn decode(text: &str) -> Option<Position> {
        let mut parts = text.split('.');
        let snapshot = parts.next()?.parse().ok()?;
        let revision = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        let key = u64::from_str_radix(parts.next()?, 16).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Position {
            snapshot,
            revision,
            offset,
            key,
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
    pub fn keep(&self, key: LookupKey, revision: u64, ids: RecordSet) -> (u64, Arc<Snapshot>) {
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
    pub fn single(key: LookupKey, revision: u64, ids: RecordSet) -> Snapshot {
        Snapshot {
            key,
            revision,
            ids,
            created: Instant::now(),
        }
    }

    /// Where the cursor `text`, given with the lookup `key`, resumes: its
    /// snapshot and the offset in it. A cursor of another lookup, or one
    /// pointing past the end of its own, is bad input (never an empty page
    /// that would silently drop records). When the snapshot has expired,
    /// `recompute` runs the lookup again; the cursor resumes only if the
    /// organization is still at the cursor's revision.
    pub fn resume(
        &self,
        text: &str,
        key: LookupKey,
        recompute: impl FnOnce() -> Result<(RecordSet, u64), ServiceError>,
    ) -> Result<(u64, Arc<Snapshot>, usize), ServiceError> {
        let pos =
            Position::decode(text).ok_or_else(|| bad_cursor("not a cursor this service wrote"))?;
        if pos.key != fingerprint(&key) {
            return Err(bad_cursor(
                "made for another org_id, subject, module or action; start again without a cursor",
            ));
        }
        // Snapshot ids restart with the process and differ between
        // replicas: a kept snapshot of another lookup or revision under the
        // cursor's id is treated as expired, not trusted.
        let (id, snap) = match self.get(pos.snapshot) {
            Some(snap) if snap.key == key && snap.revision == pos.revision => (pos.snapshot, snap),
            _ => {
                let (ids, revision) = recompute()?;
                if revision != pos.revision {
                    return Err(ServiceError::CursorExpired(format!(
                        "cursor: its snapshot expired and the organization moved from revision {} to {revision}; start again without a cursor",
                        pos.revision
                    )));
                }
                self.keep(key, revision, ids)
            }
        };
        if pos.offset == 0 || pos.offset >= snap.ids.len() {
            return Err(bad_cursor(format!(
                "points at record {} of a lookup of {} records; start again without a cursor",
                pos.offset,
                snap.ids.len()
            )));
        }
        Ok((id, snap, pos.offset))
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
            key: fingerprint(&key("s")),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("7.42.1000"), None);
        assert_eq!(Position::decode("a.b.c"), None);
    }

    fn key(subject: &str) -> LookupKey {
        (
            "o".to_string(),
            subject.to_string(),
            "m".to_string(),
            "view".to_string(),
        )
    }

    fn ids(n: usize) -> RecordSet {
        let names: Vec<String> = (0..n).map(|i| format!("r{i:03}")).collect();
        RecordSet::from_ids(names.iter().map(String::as_str)).unwrap()
    }

    fn code(r: Result<(u64, Arc<Snapshot>, usize), ServiceError>) -> String {
        match r {
            Ok(_) => "OK".into(),
            Err(ServiceError::Engine(e)) => format!("{}: {e}", e.code()),
            Err(e) => format!("OTHER: {e}"),
        }
    }

    #[test]
    fn oldest_snapshots_go_first() {
        let c = Cursors::new(2, Duration::from_secs(60));
        let (a, _) = c.keep(key("s"), 1, ids(0));
        let (b, _) = c.keep(key("s"), 1, ids(0));
        let (d, _) = c.keep(key("s"), 1, ids(0));
        assert!(c.get(a).is_none());
        assert!(c.get(b).is_some() && c.get(d).is_some());
    }

    #[test]
    fn a_cursor_resumes_only_its_own_lookup_and_only_inside_it() {
        let c = Cursors::default();
        let (id, _) = c.keep(key("ann"), 5, ids(10));
        let at = |offset: usize, subject: &str| {
            Position {
                snapshot: id,
                revision: 5,
                offset,
                key: fingerprint(&key(subject)),
            }
            .encode()
        };
        let never =
            || -> Result<(RecordSet, u64), ServiceError> { panic!("the kept snapshot answers") };
        let (got, snap, offset) = c.resume(&at(4, "ann"), key("ann"), never).unwrap();
        assert_eq!((got, offset, snap.ids.len()), (id, 4, 10));
        // Another subject's cursor, with or without its snapshot kept.
        let other = code(c.resume(&at(4, "ann"), key("bob"), never));
        assert!(
            other.starts_with("INVALID_ARGUMENT: cursor: made for another"),
            "{other}"
        );
        // A snapshot id reused by another lookup (after a restart, or on
        // another replica) is not trusted: bob's lookup is run again, and
        // its 3 records end before offset 4.
        let reused = code(c.resume(&at(4, "bob"), key("bob"), || Ok((ids(3), 5))));
        assert!(
            reused.starts_with("INVALID_ARGUMENT: cursor: points at record 4 of a lookup of 3"),
            "{reused}"
        );
        // Past the end.
        let past = code(c.resume(&at(10, "ann"), key("ann"), never));
        assert!(
            past.starts_with("INVALID_ARGUMENT: cursor: points at record 10 of a lookup of 10"),
            "{past}"
        );
        assert!(code(c.resume("junk", key("ann"), never)).starts_with("INVALID_ARGUMENT: cursor"));
    }

    #[test]
    fn an_expired_snapshot_resumes_at_the_same_revision_only() {
        let c = Cursors::default();
        let text = |revision: u64, offset: usize| {
            Position {
                snapshot: 999,
                revision,
                offset,
                key: fingerprint(&key("ann")),
            }
            .encode()
        };
        let (_, snap, offset) = c
            .resume(&text(5, 3), key("ann"), || Ok((ids(10), 5)))
            .unwrap();
        assert_eq!((snap.ids.len(), offset), (10, 3));
        let moved = c.resume(&text(5, 3), key("ann"), || Ok((ids(10), 6)));
        assert!(matches!(moved, Err(ServiceError::CursorExpired(_))));
        let shrunk = code(c.resume(&text(5, 8), key("ann"), || Ok((ids(4), 5))));
        assert!(
            shrunk.starts_with("INVALID_ARGUMENT: cursor: points at"),
            "{shrunk}"
        );
    }
}
