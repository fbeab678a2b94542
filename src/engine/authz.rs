//! Warden's own rules applied to the actor of a Grant or Admin request:
//! sharing needs `share` on the record, administration needs `is_admin`
//! (or ownership of the personal group being changed).

use chrono::{DateTime, Utc};

use super::decision::{decide, CheckRequest, ShiftTime};
use super::error::{Error, Result};
use super::expand::Expand;
use super::model::{GroupKind, OwnerRef};
use super::org::OrgState;
use super::plan::Command;

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
/// tells whether the credential may act as an administrator.
pub fn authorize<X: Expand + ?Sized>(
    org: &OrgState,
    x: &X,
    actor: &str,
    admin_scope: bool,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some((_, user)) = org.users.by_id(actor) else {
        return Err(Error::PermissionDenied(format!(
            "actor '{actor}' is not a user of organization '{}'",
            org.id
        )));
    };
    if !user.def.active {
        return Err(Error::PermissionDenied(format!(
            "actor '{actor}' is inactive"
        )));
    }
    if user.def.admin {
        if !admin_scope {
            return Err(Error::PermissionDenied(format!(
                "actor '{actor}' is an administrator: acting as one needs a credential with the admin scope"
            )));
        }
        return Ok(());
    }
    let may = |module: &str,
               action: &str,
               record: Option<&str>,
               assign_to: Option<&OwnerRef>|
     -> Result<()> {
        let req = CheckRequest {
            subject: actor.to_string(),
            module: module.to_string(),
            action: action.to_string(),
            record: record.map(str::to_string),
            assign_to: assign_to.cloned(),
            ..CheckRequest::default()
        };
        let decision = decide(org, x, &req, ShiftTime::At(now))?;
        if decision.allowed {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "actor '{actor}' may not {action} {module}{} ({})",
                record.map(|r| format!("/{r}")).unwrap_or_default(),
                decision.reason.as_str()
            )))
        }
    };
    let owns_personal = |group_id: &str| {
        org.groups.by_id(group_id).is_some_and(|(_, g)| {
            g.def.kind == GroupKind::Personal && g.def.owner.as_deref() == Some(actor)
        })
    };
    match command {
        Command::Share(shares) | Command::Unshare(shares) => {
            for s in shares {
                may(&s.module, "share", Some(&s.record), None)?;
            }
            Ok(())
        }
        Command::SetOwner(def) => {
            let existing = org
                .modules
                .by_id(&def.module)
                .and_then(|(_, m)| m.records.get(def.id.as_str()));
            match existing {
                Some(record) if org.owner_ref(record.owner) != def.owner => {
                    may(&def.module, "assign", Some(&def.id), Some(&def.owner))
                }
                Some(_) => may(&def.module, "edit", Some(&def.id), None),
                None => may(&def.module, "create", None, None),
            }
        }
        Command::DeleteRecord { module, id } => may(module, "delete", Some(id), None),
        Command::PutGroup(def)
            if def.kind == GroupKind::Personal
                && def.owner.as_deref() == Some(actor)
                && (!org.groups.contains(&def.id) || owns_personal(&def.id)) =>
        {
            Ok(())
        }
        Command::DeleteGroup { id, .. } if owns_personal(id) => Ok(()),
        _ => Err(Error::PermissionDenied(format!(
            "actor '{actor}' is not an administrator of organization '{}'",
            org.id
        ))),
    }
}
