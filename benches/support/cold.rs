//! Cold checks for the expansion caches: pairs of (what a typical write
//! drops, a check that then has to re-expand), shared by `benches/engine.rs`
//! (criterion group `cold`) and `examples/expand_mix.rs` (a fixed workload
//! for instruction counts), so both measure the same thing.

use rustc_hash::FxHashMap;

use warden::engine::model::Reason;
use warden::engine::{Change, CheckRequest, Engine, Expand, Invalidation, OrgDocument};

/// The kinds of write a cold check follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdWrite {
    /// The subject's group saved again (`PutGroup`, as a membership change
    /// does): the group and its containers lose their expansions, and every
    /// member loses its groups.
    Group,
    /// The subject's role moved under its grandparent and back: the moved
    /// subtree's users lose their groups, the old and new ancestors their
    /// subtrees.
    RoleReparent,
}

/// One cold check: what to drop, then what to ask.
pub struct ColdCheck {
    /// What the write dropped, as the engine's write path computed it.
    pub invalidation: Invalidation,
    /// A check by a subject the write touched.
    pub request: CheckRequest,
}

/// Up to `count` cold checks of `kind`, taken from `mix` in order: checks
/// that reach step 7's later paths (sharing rule, manual share, denied),
/// whose subject the write touches. Each write is applied to `engine` for
/// real (and undone, for a re-parent), so its invalidation is the write
/// path's own; the policy ends as it began.
pub fn cold_checks<X: Expand>(
    engine: &Engine<X>,
    doc: &OrgDocument,
    mix: &[CheckRequest],
    kind: ColdWrite,
    count: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<ColdCheck> {
    let org = doc.organization.as_str();
    // The subject's first directly listed group, and each role's definition.
    let mut first_group = FxHashMap::default();
    for g in &doc.groups {
        for u in &g.users {
            first_group.entry(u.as_str()).or_insert(g);
        }
    }
    let roles: FxHashMap<&str, _> = doc.roles.iter().map(|r| (r.id.as_str(), r)).collect();
    let users: FxHashMap<&str, _> = doc.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let mut out = Vec::new();
    for req in mix {
        if out.len() == count {
            break;
        }
        let Ok((d, _)) = engine.check(org, req, now) else {
            continue;
        };
        if !matches!(
            d.reason,
            Reason::SharingRule | Reason::ManualShare | Reason::InsufficientAccess
        ) {
            continue;
        }
        let changes: Vec<Vec<Change>> = match kind {
            ColdWrite::Group => match first_group.get(req.subject.as_str()) {
                Some(g) => vec![vec![Change::PutGroup((*g).clone())]],
                None => continue,
            },
            ColdWrite::RoleReparent => {
                let role = users
                    .get(req.subject.as_str())
                    .and_then(|u| u.role.as_deref())
                    .and_then(|r| roles.get(r));
                let Some(role) = role else { continue };
                let Some(parent) = role.parent.as_deref() else {
                    continue;
                };
                let Some(grandparent) = roles.get(parent).and_then(|p| p.parent.clone()) else {
                    continue;
                };
                let mut moved = (*role).clone();
                moved.parent = Some(grandparent);
                vec![
                    vec![Change::PutRole(moved)],
                    vec![Change::PutRole((*role).clone())],
                ]
            }
        };
        let mut invalidation = Invalidation::default();
        for batch in changes {
            let revision = engine.revision(org).unwrap_or(0) + 1;
            invalidation.merge(engine.apply(org, revision, &batch));
        }
        invalidation.normalize();
        out.push(ColdCheck {
            invalidation,
            request: req.clone(),
        });
    }
    out
}
