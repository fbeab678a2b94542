//! Warden's own rules applied to the actor of a Grant or Admin request
//! (SPEC section 3a): every write by an actor passes here, and each is
//! decided by the rules of section 2 as of the revision it starts from, so
//! nobody gains through a write what its actor could not give.

use chrono::{DateTime, Utc};

use super::decision::{decide, in_assign_scope, CheckRequest, Decision, ShiftTime, Subject, Trace};
use super::error::{Error, Result};
use super::expand::Expand;
use super::model::{AccessLevel, GroupKind, OwnerRef, Reason};
use super::org::{OrgState, Owner, User};
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
    let user = match super::decision::resolve_subject(
        org,
        actor,
        ShiftTime::At(now),
        &mut Trace::new(false),
    ) {
        Subject::Decided(Reason::Admin, _) if admin_scope => return Ok(()),
        Subject::Decided(Reason::Admin, _) => {
            return Err(denied(format!(
                "actor '{actor}' is an administrator: acting as one needs a credential with the admin scope (ADMIN_SCOPE)"
            )))
        }
        Subject::Decided(reason, _) => {
            let why = match reason {
                Reason::UnknownSubject => format!("is not a user of organization '{}'", org.id),
                Reason::InactiveSubject => "is inactive".to_string(),
                Reason::OutsideShift => "is outside its shift".to_string(),
                _ => "may not write".to_string(),
            };
            return Err(denied(format!("actor '{actor}' {why} ({})", reason.as_str())));
        }
        Subject::User(_, user) => user,
    };
    let a = Actor {
        org,
        x,
        id: actor,
        user,
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
                        "actor '{actor}' may not share {}/{} at {}, above its own level {} (SHARE_LEVEL)",
                        s.module,
                        s.record,
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
                return Err(a.not_admin(&format!("write group '{}'", def.id)));
            }
            if def.owner.as_deref() != Some(actor) {
                return Err(denied(format!(
                    "actor '{actor}' may not give personal group '{}' to '{}': its owner stays itself (PERSONAL_GROUP_OWNER)",
                    def.id,
                    def.owner.as_deref().unwrap_or("")
                )));
            }
            Ok(())
        }
        Command::DeleteGroup {
            id, transfer_to, ..
        } if a.owns_personal(id) => a.delete_personal_group(id, transfer_to.as_ref()),
        Command::DeleteGroup { id, .. } => Err(a.not_admin(&format!("delete group '{id}'"))),
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
        Command::PutModule(..) | Command::DeleteModule(..) => "write modules",
        Command::PutProfile(..) | Command::DeleteProfile(..) => "write profiles",
        Command::PutRole(..) | Command::DeleteRole { .. } => "write roles",
        Command::PutShift(..) | Command::DeleteShift(..) => "write shifts",
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
    user: &'a User,
    now: DateTime<Utc>,
}

impl<X: Expand + ?Sized> Actor<'_, X> {
    fn not_admin(&self, what: &str) -> Error {
        denied(format!(
            "actor '{}' may not {what}: that needs an administrator of organization '{}' (IS_ADMIN)",
            self.id, self.org.id
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
            subject: self.id.to_string(),
            module: module.to_string(),
            action: action.to_string(),
            record: Some(record.to_string()),
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
            "actor '{}' may not {action} {module}/{record}{to} ({})",
            self.id,
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
                subject: self.id.to_string(),
                module: module.to_string(),
                action: "create".to_string(),
                ..CheckRequest::default()
            };
            let decision = decide(self.org, self.x, &req, ShiftTime::At(self.now))?;
            if !decision.allowed {
                return Err(denied(format!(
                    "actor '{}' may not create {module}/{id} ({})",
                    self.id,
                    decision.reason.as_str()
                )));
            }
            let itself = matches!(owner, OwnerRef::User(u) if u == self.id);
            if !itself && !in_assign_scope(self.org, self.x, self.user, owner)? {
                return Err(denied(format!(
                    "actor '{}' may not create {module}/{id} owned by {} (ASSIGN_SCOPE)",
                    self.id,
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
                    "actor '{}' may not clear private on {module}/{id}: that needs FULL, it has {} (CLEAR_PRIVATE)",
                    self.id,
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
            let Some(ids) = module.by_owner.get(&owner) else {
                continue;
            };
            let mut ids: Vec<_> = ids.iter().collect();
            ids.sort();
            for record in ids {
                self.may(&module.def.id, "assign", record, Some(to))?;
            }
        }
        Ok(())
    }
}

fn owner_name(owner: &OwnerRef) -> String {
    match owner {
        OwnerRef::User(u) => format!("user '{u}'"),
        OwnerRef::Group(g) => format!("group '{g}'"),
    }
}
