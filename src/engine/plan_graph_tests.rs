//! The document graph checks of `plan_import`: cycles named, depth limits
//! enforced before any entity is planned, in time linear in the document.

use std::time::{Duration, Instant};

use super::*;
use crate::engine::model::{GroupDef, RoleDef, UserDef};

fn import(doc: &OrgDocument) -> Result<Vec<Change>> {
    plan(
        None,
        "o",
        &Command::Import {
            document: doc.clone(),
            replace: false,
        },
        &Limits::default(),
    )
}

fn group(id: String, nested: Vec<String>) -> GroupDef {
    GroupDef {
        id,
        groups: nested,
        ..GroupDef::default()
    }
}

/// Groups g0 … g(n-1), each nesting the next: nesting depth n-1. Listed
/// outermost first, the order that made planning entity by entity slow.
fn chain(n: usize) -> OrgDocument {
    OrgDocument {
        organization: "o".into(),
        groups: (0..n)
            .map(|i| {
                let next = if i + 1 < n {
                    vec![format!("g{}", i + 1)]
                } else {
                    vec![]
                };
                group(format!("g{i}"), next)
            })
            .collect(),
        ..OrgDocument::default()
    }
}

fn refused_fast(doc: &OrgDocument, needle: &str, bound: Duration) {
    let started = Instant::now();
    let err = import(doc).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), "FAILED_PRECONDITION", "{err}");
    assert!(err.to_string().contains(needle), "{err}");
    assert!(took < bound, "refused in {took:?}, bound {bound:?}");
}

#[test]
fn group_chains_over_the_depth_limit_are_refused_at_once() {
    refused_fast(
        &chain(3_200),
        "group nesting depth 3199",
        Duration::from_secs(1),
    );
    refused_fast(
        &chain(10_000),
        "group nesting depth 9999",
        Duration::from_secs(1),
    );
    // One over the limit is refused; the limit itself is planned.
    refused_fast(
        &chain(34),
        "group nesting depth 33 (below 'g0') would exceed the limit of 32",
        Duration::from_secs(1),
    );
    assert!(import(&chain(33)).is_ok());
}

#[test]
fn a_wide_document_of_ten_thousand_groups_still_imports() {
    // 100 groups each nesting 99 leaf groups, listed parents first.
    let mut doc = OrgDocument {
        organization: "o".into(),
        ..OrgDocument::default()
    };
    for p in 0..100 {
        let leaves: Vec<String> = (0..99).map(|l| format!("leaf-{p}-{l}")).collect();
        doc.groups
            .push(group(format!("parent-{p}"), leaves.clone()));
        doc.groups
            .extend(leaves.into_iter().map(|l| group(l, Vec::new())));
    }
    assert_eq!(doc.groups.len(), 10_000);
    let started = Instant::now();
    let changes = import(&doc).unwrap();
    let took = started.elapsed();
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, Change::PutGroup(_)))
            .count(),
        10_000
    );
    // Loose: a debug build on a shared machine.
    assert!(took < Duration::from_secs(20), "planned in {took:?}");
}

#[test]
fn cycles_are_named_whatever_their_length() {
    let mut ring = chain(5_000);
    ring.groups[4_999].groups = vec!["g0".into()];
    let err = import(&ring).unwrap_err().to_string();
    assert!(
        err.starts_with("group membership cycle: g0 → g1 → "),
        "{err}"
    );
    assert!(err.ends_with("g4999 → g0"), "{}", &err[err.len() - 40..]);

    let roles = OrgDocument {
        organization: "o".into(),
        roles: vec![
            RoleDef {
                id: "a".into(),
                parent: Some("b".into()),
                ..RoleDef::default()
            },
            RoleDef {
                id: "b".into(),
                parent: Some("a".into()),
                ..RoleDef::default()
            },
        ],
        ..OrgDocument::default()
    };
    assert_eq!(
        import(&roles).unwrap_err().to_string(),
        "role cycle: a → b → a"
    );

    let users = OrgDocument {
        organization: "o".into(),
        users: (0..10_000)
            .map(|i| UserDef {
                id: format!("u{i}"),
                reports_to: Some(format!("u{}", (i + 1) % 10_000)),
                ..UserDef::default()
            })
            .collect(),
        ..OrgDocument::default()
    };
    refused_fast(
        &users,
        "reporting cycle: u0 → u1 → ",
        Duration::from_secs(1),
    );
}

#[test]
fn role_chains_over_the_depth_limit_are_refused_before_planning() {
    let roles = OrgDocument {
        organization: "o".into(),
        roles: (0..10_000)
            .map(|i| RoleDef {
                id: format!("r{i}"),
                parent: (i > 0).then(|| format!("r{}", i - 1)),
                ..RoleDef::default()
            })
            .collect(),
        ..OrgDocument::default()
    };
    refused_fast(
        &roles,
        "role depth 9999 (from 'r9999' up to its root) would exceed the limit of 64",
        Duration::from_secs(1),
    );
}

#[test]
fn topological_order_is_by_round_then_id_with_cycles_last() {
    let items = vec![
        ("c", vec!["b"]),
        ("b", vec!["a"]),
        ("a", vec![]),
        ("z", vec![]),
        ("x", vec!["y"]),
        ("y", vec!["x"]),
        ("w", vec!["x"]),
        ("d", vec!["outside"]),
    ];
    let sorted = super::super::document::topo_sorted(
        items,
        |(id, _)| id.to_string(),
        |(_, deps)| deps.iter().map(|d| d.to_string()).collect(),
    );
    let ids: Vec<&str> = sorted.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, ["a", "d", "z", "b", "c", "w", "x", "y"]);
}

#[test]
fn a_reporting_chain_of_ten_thousand_users_imports() {
    // Reporting lines have no depth limit: a long one must still plan in
    // time linear-ish in its length. Listed boss last, the worst order.
    let doc = OrgDocument {
        organization: "o".into(),
        users: (0..10_000)
            .rev()
            .map(|i| UserDef {
                id: format!("u{i}"),
                role: Some("staff".into()),
                reports_to: (i > 0).then(|| format!("u{}", i - 1)),
                ..UserDef::default()
            })
            .collect(),
        roles: vec![RoleDef {
            id: "staff".into(),
            ..RoleDef::default()
        }],
        ..OrgDocument::default()
    };
    let started = Instant::now();
    let changes = import(&doc).unwrap();
    let took = started.elapsed();
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, Change::PutUser(_)))
            .count(),
        10_000
    );
    assert!(took < Duration::from_secs(20), "planned in {took:?}");
}
