//! A change: one entity written or removed. Every write of Warden is planned
//! into a list of changes, which the store keeps, the change log carries to
//! other replicas, and `apply` replays onto the compiled policy.

use serde::{Deserialize, Serialize};

use super::model::{
    Grantee, GroupDef, ModuleDef, ProfileDef, RecordDef, RoleDef, Settings, ShareDef,
    SharingRuleDef, ShiftDef, UserDef,
};

/// One entity written or removed, in the form it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Creates the organization afresh (replacing any state it had).
    CreateOrg(Settings),
    /// Removes the organization and everything in it.
    DeleteOrg,
    /// Replaces the settings.
    Settings(Settings),
    /// Creates or replaces a module (its records and rules stay).
    PutModule(ModuleDef),
    /// Removes a module with its records, shares and rules.
    DeleteModule {
        /// Module id.
        id: String,
    },
    /// Creates or replaces a profile.
    PutProfile(ProfileDef),
    /// Removes a profile no one references any more.
    DeleteProfile {
        /// Profile id.
        id: String,
    },
    /// Creates or replaces a role.
    PutRole(RoleDef),
    /// Removes a role no one references any more.
    DeleteRole {
        /// Role id.
        id: String,
    },
    /// Creates or replaces a shift.
    PutShift(ShiftDef),
    /// Removes a shift no one references any more.
    DeleteShift {
        /// Shift id.
        id: String,
    },
    /// Creates or replaces a user.
    PutUser(UserDef),
    /// Removes a user no one references any more.
    DeleteUser {
        /// User id.
        id: String,
    },
    /// Creates or replaces a group.
    PutGroup(GroupDef),
    /// Removes a group no one references any more.
    DeleteGroup {
        /// Group id.
        id: String,
    },
    /// Registers or re-owns a record (its shares stay).
    PutRecord(RecordDef),
    /// Removes a record with its shares.
    DeleteRecord {
        /// Module id.
        module: String,
        /// Record id.
        id: String,
    },
    /// Creates or replaces the share of a record with a grantee.
    PutShare(ShareDef),
    /// Removes the share of a record with a grantee.
    DeleteShare {
        /// Module id.
        module: String,
        /// Record id.
        record: String,
        /// Grantee.
        grantee: Grantee,
    },
    /// Creates or replaces a sharing rule.
    PutRule(SharingRuleDef),
    /// Removes a sharing rule.
    DeleteRule {
        /// Rule id.
        id: String,
    },
}

impl Change {
    /// The kind of entity the change is about (`user`, `record`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Change::CreateOrg(_) | Change::DeleteOrg => "organization",
            Change::Settings(_) => "settings",
            Change::PutModule(_) | Change::DeleteModule { .. } => "module",
            Change::PutProfile(_) | Change::DeleteProfile { .. } => "profile",
            Change::PutRole(_) | Change::DeleteRole { .. } => "role",
            Change::PutShift(_) | Change::DeleteShift { .. } => "shift",
            Change::PutUser(_) | Change::DeleteUser { .. } => "user",
            Change::PutGroup(_) | Change::DeleteGroup { .. } => "group",
            Change::PutRecord(_) | Change::DeleteRecord { .. } => "record",
            Change::PutShare(_) | Change::DeleteShare { .. } => "share",
            Change::PutRule(_) | Change::DeleteRule { .. } => "sharing_rule",
        }
    }

    /// The id of the entity (`module/record` for records and shares).
    pub fn entity_id(&self) -> String {
        match self {
            Change::CreateOrg(_) | Change::DeleteOrg | Change::Settings(_) => String::new(),
            Change::PutModule(d) => d.id.clone(),
            Change::PutProfile(d) => d.id.clone(),
            Change::PutRole(d) => d.id.clone(),
            Change::PutShift(d) => d.id.clone(),
            Change::PutUser(d) => d.id.clone(),
            Change::PutGroup(d) => d.id.clone(),
            Change::PutRule(d) => d.id.clone(),
            Change::DeleteModule { id }
            | Change::DeleteProfile { id }
            | Change::DeleteRole { id }
            | Change::DeleteShift { id }
            | Change::DeleteUser { id }
            | Change::DeleteGroup { id }
            | Change::DeleteRule { id } => id.clone(),
            Change::PutRecord(d) => format!("{}/{}", d.module, d.id),
            Change::DeleteRecord { module, id } => format!("{module}/{id}"),
            Change::PutShare(d) => format!("{}/{}", d.module, d.record),
            Change::DeleteShare { module, record, .. } => format!("{module}/{record}"),
        }
    }

    /// Whether the change removes its entity.
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            Change::DeleteOrg
                | Change::DeleteModule { .. }
                | Change::DeleteProfile { .. }
                | Change::DeleteRole { .. }
                | Change::DeleteShift { .. }
                | Change::DeleteUser { .. }
                | Change::DeleteGroup { .. }
                | Change::DeleteRecord { .. }
                | Change::DeleteShare { .. }
                | Change::DeleteRule { .. }
        )
    }
}
