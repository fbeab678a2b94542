//! Warden's own rules applied to the actor of a Grant or Admin request
//! (SPEC section 3a): every write by an actor passes here, and each is
//! decided by the rules of section 2 as of the revision it starts from, so
//! nobody gains through a write what its actor could not give.

use chrono::{DateTime, Utc};

use super::decision::{
    decide, in_assign_scope, resolve_subject, CheckRequest, Decision, ShiftTime, Subject, Trace,
};
use super::error::{bounded, Error, Result};
use super::expand::Expand;
use super::model::{AccessLevel, GroupKind, OwnerRef, Reason};
use super::org::{OrgState, Owner, RoleIx};
use super::plan::{stored_record, Command, RecordWrite};

/// Who makes a write (SPEC section 3a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// An operator's credential with the admin scope, naming no actor.
    Operator,
    /// A user of the organization, authorized by Warden's own rules.
    Actor {
        /// The acting user's id.
        user_id: String,
        /// Whether the caller's credential carries the `admin` scope, which
        /// a write whose actor is an administrator needs.
        admin_scope: bool,
    },
}

/// Whether `actor` may make the change `command` asks for; `admin_scope`
/// tells whether the credential may act as an administrator. A refusal is
/// `PERMISSION_DENIED` naming the check that failed.
pub fn authorize<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    actor: &str,
    admin_scope: bool,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<()> {
    let name = bounded(actor).into_owned();
    let role = match resolve_subject(org, actor, ShiftTime::At(now), &mut Trace::new(false)) {
        Subject::Decided(Reason::Admin, _) if admin_scope => return Ok(()),
        Subject::Decided(Reason::Admin, _) => {
            return Err(denied(format!(
                "actor '{name}' is an administrator: acting as one needs a credential with the admin scope (ADMIN_SCOPE)"
            )))
        }
        Subject::Decided(reason, _) => {
            let why = match reason {
                Reason::UnknownSubject => format!("is not a user of organization '{}'", org.id),
                Reason::InactiveSubject => "is inactive".to_string(),
                Reason::OutsideShift => "is outside its shift".to_string(),
                _ => "may not write".to_string(),
            };
            return Err(denied(format!("actor '{name}' {why} ({})", reason.as_str())));
        }
        Subject::User(_, hot) => hot.role(),
    };
    let a = Actor {
        org,
        x,
        id: actor,
        name: name.clone(),
        role,
        now,
    };
    match command {
        Command::SetOwner(write) => a.set_owner(write),
        Command::DeleteRecord { module, id, .. } => a.may(module, "delete", id, None).map(|_| ()),
        Command::Share(shares) => {
            for s in shares {
                let own = a.may(&s.module, "share", &s.record, None)?;
                if s.level > own.level {
                    return Err(denied(format!(
                        "actor '{name}' may not share {} at {}, above its own level {} (SHARE_LEVEL)",
                        record_name(&s.module, &s.record),
                        s.level.as_str(),
                        own.level.as_str()
                    )));
                }
            }
            Ok(())
        }
        Command::Unshare(shares) => {
            for s in shares {
                a.may(&s.module, "share", &s.record, None)?;
            }
            Ok(())
        }
        Command::PutGroup(def) => {
            let existing = org.groups.by_id(&def.id).map(|(_, g)| &g.def);
            if existing.is_some_and(|g| !a.owns_personal(&g.id)) || def.kind != GroupKind::Personal
            {
                return Err(a.not_admin(&format!("write group '{}'", bounded(&def.id))));
            }
            if def.owner.as_deref() != Some(actor) {
                return Err(denied(format!(
                    "actor '{name}' may not give personal group '{}' to '{}': its owner stays itself (PERSONAL_GROUP_OWNER)",
                    bounded(&def.id),
                    bounded(def.owner.as_deref().unwrap_or(""))
                )));
            }
            Ok(())
        }
        Command::DeleteGroup {
            id, transfer_to, ..
        } if a.owns_personal(id) => a.delete_personal_group(id, transfer_to.as_ref()),
        Command::DeleteGroup { id, .. } => {
            Err(a.not_admin(&format!("delete group '{}'", bounded(id))))
        }
        other => Err(a.not_admin(what(other))),
    }
}

fn denied(message: String) -> Error {
    Error::PermissionDenied(message)
}

/// What an administrator-only command does, for the refusal.
fn what(command: &Command) -> &'static str {
    match command {
        Command::CreateOrganization(..) => "create an organization",
        Command::UpdateSettings(..) => "change settings",
        Command::DeleteOrganization => "delete the organization",
        Command::PutModule(..) | Command::DeleteModule { .. } => "write modules",
        Command::PutProfile(..) | Command::DeleteProfile { .. } => "write profiles",
        Command::PutRole(..) | Command::DeleteRole { .. } => "write roles",
        Command::PutShift(..) | Command::DeleteShift { .. } => "write shifts",
        Command::PutUser(..) | Command::DeleteUser { .. } => "write users",
        Command::PutSharingRule(..) | Command::DeleteSharingRule(..) => "write sharing rules",
        Command::Import { .. } => "import a document",
        _ => "make this write",
    }
}

/// A non-admin actor, active and on shift, deciding as section 2 does.
struct Actor<'a, X: ?Sized> {
    org: &'a OrgState,
    x: &'a X,
    id: &'a str,
    /// The id as messages show it.
    name: String,
    /// The actor's role (`None`: a guest), for the assign scope.
    role: Option<RoleIx>,
    now: DateTime<Utc>,
}

impl<X: Expand + ?Sized> Actor<'_, X> {
    fn not_admin(&self, what: &str) -> Error {
        denied(format!(
            "actor '{}' may not {what}: that needs an administrator of organization '{}' (IS_ADMIN)",
            self.name, self.org.id
        ))
    }

    /// The decision of section 2 for the actor, refused unless ALLOW.
    fn may(
        &self,
        module: &str,
        action: &str,
        record: &str,
        assign_to: Option<&OwnerRef>,
    ) -> Result<Decision> {
        let req = CheckRequest {
            subject: self.id.into(),
            module: module.into(),
            action: action.into(),
            record: Some(record.into()),
            assign_to: assign_to.cloned(),
            ..CheckRequest::default()
        };
        let decision = decide(self.org, self.x, &req, ShiftTime::At(self.now))?;
        if decision.allowed {
            return Ok(decision);
        }
        let to = assign_to
            .map(|o| format!(" to {}", owner_name(o)))
            .unwrap_or_default();
        Err(denied(format!(
            "actor '{}' may not {action} {}{to} ({})",
            self.name,
            record_name(module, record),
            decision.reason.as_str()
        )))
    }

    fn owns_personal(&self, group_id: &str) -> bool {
        self.org.groups.by_id(group_id).is_some_and(|(_, g)| {
            g.def.kind == GroupKind::Personal && g.def.owner.as_deref() == Some(self.id)
        })
    }

    fn set_owner(&self, write: &RecordWrite) -> Result<()> {
        let (module, id) = (write.module.as_str(), write.id.as_str());
        let Some(stored) = stored_record(self.org, module, id) else {
            let owner = write.owner.as_ref().ok_or_else(|| {
                Error::invalid("owner", "a new record needs an owner (user_id or group_id)")
            })?;
            let req = CheckRequest {
                subject: self.id.into(),
                module: module.into(),
                action: "create".into(),
                ..CheckRequest::default()
            };
            let decision = decide(self.org, self.x, &req, ShiftTime::At(self.now))?;
            if !decision.allowed {
                return Err(denied(format!(
                    "actor '{}' may not create {} ({})",
                    self.name,
                    record_name(module, id),
                    decision.reason.as_str()
                )));
            }
            let itself = matches!(owner, OwnerRef::User(u) if u == self.id);
            if !itself && !in_assign_scope(self.org, self.x, self.role, owner)? {
                return Err(denied(format!(
                    "actor '{}' may not create {} owned by {} (ASSIGN_SCOPE)",
                    self.name,
                    record_name(module, id),
                    owner_name(owner)
                )));
            }
            return Ok(());
        };
        let new_owner = write.owner.as_ref().filter(|o| **o != stored.owner);
        let changes_private = write.private.is_some_and(|p| p != stored.private);
        let changes_attributes = write
            .attributes
            .as_ref()
            .is_some_and(|a| *a != stored.attributes);
        if let Some(owner) = new_owner {
            self.may(module, "assign", id, Some(owner))?;
        }
        // Restating what is stored still needs `edit`: it is a write on the record.
        if changes_private || changes_attributes || new_owner.is_none() {
            let edit = self.may(module, "edit", id, None)?;
            let clears_private = stored.private && write.private == Some(false);
            if clears_private && edit.level < AccessLevel::Full {
                return Err(denied(format!(
                    "actor '{}' may not clear private on {}: that needs FULL, it has {} (CLEAR_PRIVATE)",
                    self.name,
                    record_name(module, id),
                    edit.level.as_str()
                )));
            }
        }
        Ok(())
    }

    /// Deleting its own personal group: every record the group owns moves
    /// to `transfer_to` only if the actor may assign it there.
    fn delete_personal_group(&self, id: &str, transfer_to: Option<&OwnerRef>) -> Result<()> {
        let Some(to) = transfer_to else {
            return Ok(());
        };
        let Some(group) = self.org.groups.ix(id) else {
            return Ok(());
        };
        let owner = Owner::Group(super::org::GroupIx(group));
        for (_, module) in self.org.modules.iter() {
            let mut ids: Vec<&str> = module
                .records
                .owned_by(owner)
                .map(|(_, r)| r.id())
                .collect();
            ids.sort_unstable();
            for record in ids {
                self.may(&module.def.id, "assign", record, Some(to))?;
            }
        }
        Ok(())
    }
}

fn owner_name(owner: &OwnerRef) -> String {
    match owner {
        OwnerRef::User(u) => format!("user '{}'", bounded(u)),
        OwnerRef::Group(g) => format!("group '{}'", bounded(g)),
    }
}

fn record_name(module: &str, record: &str) -> String {
    format!("{}/{}", bounded(module), bounded(record))
}

#[cfg(test)]
mod tests {
    //! One test per row of the table of SPEC section 3a, each with the
    //! write allowed and the write refused, the refusal naming its check.

    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use crate::engine::model::{
        AccessLevel, Grantee, GroupDef, GroupKind, ModuleDef, OwnerRef, ShareDef,
    };
    use crate::engine::plan::RecordWrite;
    use crate::engine::{Command, Direct, Engine, Error};

    const ORG: &str = "t";

    const DOC: &str = r#"
organization: t
settings: {enforce_shifts: true}
modules:
  - {id: Leads, owd: PRIVATE, fields: [name]}
profiles:
  - id: rep
    modules: {Leads: [view, create, edit, delete, share, assign]}
  - id: reader
    modules: {Leads: [view]}
roles:
  - {id: boss, profiles: [rep], assign_scope: SAME_AND_SUBORDINATE}
  - {id: rep, parent: boss, profiles: [rep], assign_scope: SAME_AND_SUBORDINATE}
  - {id: other, profiles: [rep]}
  - {id: readers, profiles: [reader]}
shifts:
  - {id: early, time_zone: UTC, windows: [{days: [MON], start: "06:00", end: "07:00"}]}
users:
  - {id: root, role: boss, admin: true}
  - {id: bea, role: boss}
  - {id: erin, role: rep}
  - {id: ray, role: rep}
  - {id: olga, role: other}
  - {id: vic, role: readers}
  - {id: gus, kind: GUEST, profiles: [rep]}
  - {id: off, role: rep, active: false}
  - {id: nox, role: rep, shift: early}
groups:
  - {id: circle, kind: PERSONAL, owner: erin, users: [ray]}
  - {id: mine, kind: PERSONAL, owner: erin, users: [erin]}
  - {id: team, users: [ray]}
records:
  - {module: Leads, id: B1, owner: {user: bea}, private: true}
  - {module: Leads, id: E1, owner: {user: erin}, private: true, attributes: {region: EMEA}}
  - {module: Leads, id: C1, owner: {group: circle}}
  - {module: Leads, id: M1, owner: {group: mine}}
shares:
  - {module: Leads, record: B1, grantee: {user: erin}, level: READ_WRITE}
"#;

    fn engine() -> Engine<Direct> {
        crate::engine::engine_of(Direct, DOC)
    }

    /// A Monday at 10:00 UTC: outside the `early` shift.
    fn now() -> DateTime<Utc> {
        "2026-11-30T10:00:00Z".parse().unwrap()
    }

    fn authorize(e: &Engine<Direct>, actor: &str, command: &Command) -> Result<(), Error> {
        e.authorize(ORG, actor, false, command, now())
    }

    /// The refusal must be PERMISSION_DENIED naming `check`.
    fn refused(result: Result<(), Error>, check: &str) {
        match result {
            Err(Error::PermissionDenied(m)) => {
                assert!(m.contains(check), "'{m}' does not name {check}")
            }
            other => panic!("expected PERMISSION_DENIED naming {check}, got {other:?}"),
        }
    }

    fn user(u: &str) -> OwnerRef {
        OwnerRef::User(u.into())
    }

    fn set_owner(id: &str, owner: Option<OwnerRef>) -> RecordWrite {
        RecordWrite {
            module: "Leads".into(),
            id: id.into(),
            owner,
            private: None,
            attributes: None,
        }
    }

    fn share(record: &str, to: &str, level: AccessLevel) -> Vec<ShareDef> {
        vec![ShareDef {
            module: "Leads".into(),
            record: record.into(),
            grantee: Grantee::User(to.into()),
            level,
        }]
    }

    fn personal(id: &str, owner: &str, users: &[&str]) -> GroupDef {
        GroupDef {
            id: id.into(),
            kind: GroupKind::Personal,
            owner: Some(owner.into()),
            users: users.iter().map(|u| u.to_string()).collect(),
            ..GroupDef::default()
        }
    }

    #[test]
    fn the_actor_must_exist_be_active_and_on_shift() {
        let e = engine();
        let write = Command::SetOwner(set_owner("N1", Some(user("nobody"))));
        refused(authorize(&e, "nobody", &write), "UNKNOWN_SUBJECT");
        let write = Command::SetOwner(set_owner("N1", Some(user("off"))));
        refused(authorize(&e, "off", &write), "INACTIVE_SUBJECT");
        let write = Command::SetOwner(set_owner("N1", Some(user("nox"))));
        refused(authorize(&e, "nox", &write), "OUTSIDE_SHIFT");
        let on_shift = "2026-11-30T06:30:00Z".parse().unwrap();
        assert_eq!(e.authorize(ORG, "nox", false, &write, on_shift), Ok(()));
    }

    #[test]
    fn an_admin_actor_may_write_anything_only_with_the_admin_scope() {
        let e = engine();
        let write = Command::PutModule(ModuleDef {
            id: "Deals".into(),
            owd: Default::default(),
            hierarchy_access: true,
            fields: vec![],
            actions: BTreeMap::new(),
        });
        refused(authorize(&e, "root", &write), "ADMIN_SCOPE");
        assert_eq!(e.authorize(ORG, "root", true, &write, now()), Ok(()));
        refused(e.authorize(ORG, "erin", true, &write, now()), "IS_ADMIN");
    }

    #[test]
    fn set_owner_of_a_new_record_needs_create_and_an_owner_in_assign_scope() {
        let e = engine();
        let new = |owner: OwnerRef| Command::SetOwner(set_owner("N1", Some(owner)));
        assert_eq!(authorize(&e, "erin", &new(user("erin"))), Ok(()));
        assert_eq!(authorize(&e, "erin", &new(user("ray"))), Ok(()));
        assert_eq!(
            authorize(&e, "erin", &new(OwnerRef::Group("team".into()))),
            Ok(())
        );
        refused(authorize(&e, "erin", &new(user("bea"))), "ASSIGN_SCOPE");
        refused(authorize(&e, "vic", &new(user("vic"))), "PROFILE");
        // A guest: itself or a group, never a user.
        assert_eq!(authorize(&e, "gus", &new(user("gus"))), Ok(()));
        assert_eq!(
            authorize(&e, "gus", &new(OwnerRef::Group("team".into()))),
            Ok(())
        );
        refused(authorize(&e, "gus", &new(user("erin"))), "ASSIGN_SCOPE");
        assert!(matches!(
            authorize(&e, "erin", &Command::SetOwner(set_owner("N1", None))),
            Err(Error::InvalidArgument { ref field, .. }) if field == "owner"
        ));
    }

    #[test]
    fn set_owner_changing_the_owner_needs_assign_to_the_new_owner() {
        let e = engine();
        let reown = |id: &str, to: &str| Command::SetOwner(set_owner(id, Some(user(to))));
        assert_eq!(authorize(&e, "erin", &reown("E1", "ray")), Ok(()));
        refused(authorize(&e, "erin", &reown("E1", "bea")), "ASSIGN_SCOPE");
        // READ_WRITE through a share is not FULL.
        refused(
            authorize(&e, "erin", &reown("B1", "erin")),
            "INSUFFICIENT_ACCESS",
        );
        refused(
            authorize(&e, "olga", &reown("E1", "olga")),
            "INSUFFICIENT_ACCESS",
        );
    }

    #[test]
    fn set_owner_setting_private_or_attributes_needs_edit_and_clearing_private_full() {
        let e = engine();
        let attributes = |id: &str| {
            Command::SetOwner(RecordWrite {
                attributes: Some(BTreeMap::from([("region".into(), "APAC".into())])),
                ..set_owner(id, None)
            })
        };
        let private = |id: &str, p: bool| {
            Command::SetOwner(RecordWrite {
                private: Some(p),
                ..set_owner(id, None)
            })
        };
        assert_eq!(authorize(&e, "erin", &attributes("B1")), Ok(()));
        refused(
            authorize(&e, "olga", &attributes("B1")),
            "INSUFFICIENT_ACCESS",
        );
        refused(
            authorize(&e, "erin", &private("B1", false)),
            "CLEAR_PRIVATE",
        );
        assert_eq!(authorize(&e, "erin", &private("B1", true)), Ok(()));
        assert_eq!(authorize(&e, "erin", &private("E1", false)), Ok(()));
        // Restating the owner and nothing else is still a write: edit.
        let restate = Command::SetOwner(set_owner("B1", Some(user("bea"))));
        assert_eq!(authorize(&e, "erin", &restate), Ok(()));
        refused(authorize(&e, "olga", &restate), "INSUFFICIENT_ACCESS");
        // A change of owner and of the flag needs both.
        let both = Command::SetOwner(RecordWrite {
            private: Some(false),
            ..set_owner("E1", Some(user("ray")))
        });
        assert_eq!(authorize(&e, "erin", &both), Ok(()));
        let both = Command::SetOwner(RecordWrite {
            private: Some(false),
            ..set_owner("B1", Some(user("erin")))
        });
        refused(authorize(&e, "erin", &both), "INSUFFICIENT_ACCESS");
    }

    #[test]
    fn delete_record_needs_delete() {
        let e = engine();
        let delete = |id: &str| Command::DeleteRecord {
            module: "Leads".into(),
            id: id.into(),
        };
        assert_eq!(authorize(&e, "erin", &delete("E1")), Ok(()));
        refused(authorize(&e, "erin", &delete("B1")), "INSUFFICIENT_ACCESS");
        refused(authorize(&e, "vic", &delete("E1")), "PROFILE");
    }

    #[test]
    fn share_and_unshare_need_share_on_the_record() {
        let e = engine();
        let full = AccessLevel::Full;
        assert_eq!(
            authorize(&e, "erin", &Command::Share(share("E1", "ray", full))),
            Ok(())
        );
        refused(
            authorize(
                &e,
                "erin",
                &Command::Share(share("B1", "olga", AccessLevel::Read)),
            ),
            "INSUFFICIENT_ACCESS",
        );
        assert_eq!(
            authorize(&e, "erin", &Command::Unshare(share("E1", "ray", full))),
            Ok(())
        );
        refused(
            authorize(&e, "erin", &Command::Unshare(share("B1", "erin", full))),
            "INSUFFICIENT_ACCESS",
        );
    }

    #[test]
    fn a_personal_group_is_put_by_its_owner_only_and_never_given_away() {
        let e = engine();
        let put = |g: GroupDef| Command::PutGroup(g);
        assert_eq!(
            authorize(
                &e,
                "erin",
                &put(personal("circle", "erin", &["ray", "gus"]))
            ),
            Ok(())
        );
        assert_eq!(
            authorize(&e, "gus", &put(personal("gus-circle", "gus", &["erin"]))),
            Ok(())
        );
        refused(
            authorize(&e, "erin", &put(personal("circle", "ray", &["ray"]))),
            "PERSONAL_GROUP_OWNER",
        );
        refused(
            authorize(&e, "ray", &put(personal("circle", "ray", &["ray"]))),
            "IS_ADMIN",
        );
        let org_group = GroupDef {
            id: "team".into(),
            users: vec!["erin".into()],
            ..GroupDef::default()
        };
        refused(authorize(&e, "erin", &put(org_group)), "IS_ADMIN");
        refused(
            authorize(&e, "erin", &put(personal("team", "erin", &["erin"]))),
            "IS_ADMIN",
        );
        // Authorized, then refused by the model rule for everyone.
        let mut lead = personal("circle", "erin", &["ray"]);
        lead.leads = vec!["erin".into()];
        assert_eq!(authorize(&e, "erin", &put(lead.clone())), Ok(()));
        assert!(matches!(
            e.plan(ORG, &put(lead)),
            Err(Error::InvalidArgument { ref field, .. }) if field == "leads"
        ));
    }

    #[test]
    fn deleting_a_personal_group_moves_records_only_where_the_actor_may_assign_them() {
        let e = engine();
        let delete = |id: &str, to: Option<OwnerRef>| Command::DeleteGroup {
            id: id.into(),
            transfer_to: to,
            cascade: true,
        };
        // erin leads nothing in `circle` and is not a member: C1 is not hers to take.
        refused(
            authorize(&e, "erin", &delete("circle", Some(user("erin")))),
            "INSUFFICIENT_ACCESS",
        );
        assert_eq!(
            authorize(&e, "erin", &delete("mine", Some(user("erin")))),
            Ok(())
        );
        refused(
            authorize(&e, "erin", &delete("mine", Some(user("bea")))),
            "ASSIGN_SCOPE",
        );
        refused(
            authorize(&e, "ray", &delete("mine", Some(user("ray")))),
            "IS_ADMIN",
        );
        refused(authorize(&e, "erin", &delete("team", None)), "IS_ADMIN");
    }

    #[test]
    fn a_refusal_echoes_ids_at_most_64_characters_long() {
        let e = engine();
        let long = "x".repeat(1 << 20);
        let write = Command::SetOwner(set_owner(&long, Some(user("erin"))));
        for (actor, check) in [(long.as_str(), "UNKNOWN_SUBJECT"), ("vic", "PROFILE")] {
            match authorize(&e, actor, &write) {
                Err(Error::PermissionDenied(m)) => {
                    assert!(m.len() < 300 && m.contains(check), "{} bytes", m.len())
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn everything_else_needs_is_admin() {
        let e = engine();
        for write in [
            Command::DeleteUser {
                id: "ray".into(),
                transfer_to: Some(user("erin")),
                cascade: true,
            },
            Command::DeleteModule {
                id: "Leads".into(),
                cascade: true,
            },
            Command::UpdateSettings(Default::default()),
            Command::DeleteOrganization,
        ] {
            refused(authorize(&e, "erin", &write), "IS_ADMIN");
        }
    }
}
