//! What a write removed or moved, read off its planned changes against the
//! state they start from: the answer to a delete, and the list of
//! references a delete without `cascade` is refused with.

use std::fmt;

use super::change::Change;
use super::model::{Grantee, OwnerRef};
use super::org::OrgState;

/// One entity, or one entry of an entity, that a write removed or moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    /// What it is (`record`, `share`, `group_member`, …).
    pub kind: &'static str,
    /// Its id; entries and records as paths (`Leads/L1`, `sales/roles/r1`).
    pub id: String,
    /// For a move: where it went (`user:bob`, `role:r2`, `reports_to:ann`).
    pub to: Option<String>,
}

impl EntityRef {
    fn removed(kind: &'static str, id: impl Into<String>) -> Self {
        EntityRef {
            kind,
            id: id.into(),
            to: None,
        }
    }

    fn moved(kind: &'static str, id: impl Into<String>, to: String) -> Self {
        EntityRef {
            kind,
            id: id.into(),
            to: Some(to),
        }
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.kind, self.id)?;
        if let Some(to) = &self.to {
            write!(f, " → {to}")?;
        }
        Ok(())
    }
}

/// Everything a write removed and moved, in the order of its changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteReport {
    /// Entities and entries removed.
    pub removed: Vec<EntityRef>,
    /// Entities moved to a new owner, parent, role or manager.
    pub moved: Vec<EntityRef>,
}

impl WriteReport {
    /// Whether the write removed and moved nothing.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.moved.is_empty()
    }
}

/// `user:<id>` or `group:<id>`.
fn owner_label(owner: &OwnerRef) -> String {
    match owner {
        OwnerRef::User(u) => format!("user:{u}"),
        OwnerRef::Group(g) => format!("group:{g}"),
    }
}

fn grantee_label(grantee: &Grantee) -> String {
    match grantee {
        Grantee::User(u) => format!("user:{u}"),
        Grantee::Group(g) => format!("group:{g}"),
        Grantee::Role(r) => format!("role:{r}"),
        Grantee::RoleAndSubordinates(r) => format!("role_and_subordinates:{r}"),
    }
}

/// Entries of `old` that `new` no longer lists.
fn dropped<'a>(old: &'a [String], new: &'a [String]) -> impl Iterator<Item = &'a String> + 'a {
    old.iter().filter(move |x| !new.contains(x))
}

/// What `changes`, planned against `org`, remove and move. Contents that a
/// change removes implicitly (a record's shares, a module's records and
/// rules) are listed before it.
pub fn report(org: &OrgState, changes: &[Change]) -> WriteReport {
    let mut out = WriteReport::default();
    for change in changes {
        match change {
            Change::DeleteOrg => out
                .removed
                .push(EntityRef::removed("organization", org.id.to_string())),
            Change::DeleteModule { id } => {
                if let Some((_, module)) = org.modules.by_id(id) {
                    for rule in module.rules.keys() {
                        out.removed.push(EntityRef::removed("sharing_rule", rule));
                    }
                    let mut records: Vec<&str> =
                        module.records.iter().map(|(_, r)| r.id()).collect();
                    records.sort_unstable();
                    for record in records {
                        record_contents(org, id, record, &mut out);
                        out.removed
                            .push(EntityRef::removed("record", format!("{id}/{record}")));
                    }
                }
                out.removed.push(EntityRef::removed("module", id));
            }
            Change::DeleteProfile { id } => out.removed.push(EntityRef::removed("profile", id)),
            Change::DeleteRole { id } => out.removed.push(EntityRef::removed("role", id)),
            Change::DeleteShift { id } => out.removed.push(EntityRef::removed("shift", id)),
            Change::DeleteUser { id } => out.removed.push(EntityRef::removed("user", id)),
            Change::DeleteGroup { id } => out.removed.push(EntityRef::removed("group", id)),
            Change::DeleteRule { id } => out.removed.push(EntityRef::removed("sharing_rule", id)),
            Change::DeleteRecord { module, id } => {
                record_contents(org, module, id, &mut out);
                out.removed
                    .push(EntityRef::removed("record", format!("{module}/{id}")));
            }
            Change::DeleteShare {
                module,
                record,
                grantee,
            } => {
                // Unshare of a share that is not there removes nothing.
                let existed = org.resolve_grantee(grantee).is_some_and(|g| {
                    org.modules
                        .by_id(module)
                        .and_then(|(_, m)| m.records.get(record.as_str()))
                        .is_some_and(|r| r.shares.iter().any(|s| s.grantee == g))
                });
                if existed {
                    out.removed.push(EntityRef::removed(
                        "share",
                        format!("{module}/{record}/{}", grantee_label(grantee)),
                    ));
                }
            }
            Change::PutRecord(def) => {
                let old = org
                    .modules
                    .by_id(&def.module)
                    .and_then(|(_, m)| m.records.get(def.id.as_str()))
                    .map(|r| org.owner_ref(r.owner));
                if old.is_some_and(|o| o != def.owner) {
                    out.moved.push(EntityRef::moved(
                        "record",
                        format!("{}/{}", def.module, def.id),
                        owner_label(&def.owner),
                    ));
                }
            }
            Change::PutUser(def) => {
                let Some((_, old)) = org.users.by_id(&def.id) else {
                    continue;
                };
                let old = &old.def;
                if old.role != def.role {
                    let to = format!("role:{}", def.role.as_deref().unwrap_or_default());
                    out.moved.push(EntityRef::moved("user", &def.id, to));
                }
                if old.reports_to != def.reports_to {
                    let to = format!(
                        "reports_to:{}",
                        def.reports_to.as_deref().unwrap_or_default()
                    );
                    out.moved.push(EntityRef::moved("user", &def.id, to));
                }
                for p in dropped(&old.profiles, &def.profiles) {
                    out.removed.push(EntityRef::removed(
                        "user_profile",
                        format!("{}/{p}", def.id),
                    ));
                }
                if let (Some(shift), None) = (&old.shift, &def.shift) {
                    out.removed.push(EntityRef::removed(
                        "user_shift",
                        format!("{}/{shift}", def.id),
                    ));
                }
            }
            Change::PutRole(def) => {
                let Some((_, old)) = org.roles.by_id(&def.id) else {
                    continue;
                };
                let old = &old.def;
                if old.parent != def.parent {
                    let to = format!("role:{}", def.parent.as_deref().unwrap_or_default());
                    out.moved.push(EntityRef::moved("role", &def.id, to));
                }
                for p in dropped(&old.profiles, &def.profiles) {
                    out.removed.push(EntityRef::removed(
                        "role_profile",
                        format!("{}/{p}", def.id),
                    ));
                }
            }
            Change::PutGroup(def) => {
                let Some((_, old)) = org.groups.by_id(&def.id) else {
                    continue;
                };
                let old = &old.def;
                let g = &def.id;
                if old.owner != def.owner {
                    let to = format!("user:{}", def.owner.as_deref().unwrap_or_default());
                    out.moved.push(EntityRef::moved("group", g, to));
                }
                let sorts: [(&str, &[String], &[String]); 4] = [
                    ("users", &old.users, &def.users),
                    ("roles", &old.roles, &def.roles),
                    (
                        "roles_and_subordinates",
                        &old.roles_and_subordinates,
                        &def.roles_and_subordinates,
                    ),
                    ("groups", &old.groups, &def.groups),
                ];
                for (sort, old, new) in sorts {
                    for m in dropped(old, new) {
                        out.removed.push(EntityRef::removed(
                            "group_member",
                            format!("{g}/{sort}/{m}"),
                        ));
                    }
                }
                for u in dropped(&old.leads, &def.leads) {
                    out.removed
                        .push(EntityRef::removed("group_lead", format!("{g}/{u}")));
                }
            }
            Change::PutProfile(def) => {
                let Some((_, old)) = org.profiles.by_id(&def.id) else {
                    continue;
                };
                let old = &old.def;
                let p = &def.id;
                let mut entry = |sort: &str, module: &str| {
                    out.removed.push(EntityRef::removed(
                        "profile_entry",
                        format!("{p}/{sort}/{module}"),
                    ));
                };
                for m in old.modules.keys().filter(|m| !def.modules.contains_key(*m)) {
                    entry("modules", m);
                }
                for m in dropped(&old.view_all, &def.view_all) {
                    entry("view_all", m);
                }
                for m in dropped(&old.modify_all, &def.modify_all) {
                    entry("modify_all", m);
                }
                for m in old.fields.keys().filter(|m| !def.fields.contains_key(*m)) {
                    entry("fields", m);
                }
            }
            Change::CreateOrg(_)
            | Change::Settings(_)
            | Change::PutModule(_)
            | Change::PutShift(_)
            | Change::PutShare(_)
            | Change::PutRule(_) => {}
        }
    }
    out
}

/// The shares a record's removal takes with it.
fn record_contents(org: &OrgState, module: &str, record: &str, out: &mut WriteReport) {
    let Some(r) = org
        .modules
        .by_id(module)
        .and_then(|(_, m)| m.records.get(record))
    else {
        return;
    };
    for share in r.shares.iter() {
        out.removed.push(EntityRef::removed(
            "share",
            format!(
                "{module}/{record}/{}",
                grantee_label(&org.grantee_ref(share.grantee))
            ),
        ));
    }
}
