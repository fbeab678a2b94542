//! Conversions between protobuf messages and engine types. Incoming
//! messages are checked here for shape (enums set, oneofs chosen, times
//! valid) and refused with the protobuf field that is wrong; the engine
//! checks everything that depends on the policy.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::pb;
use crate::engine::model::{
    AccessLevel, AssignScope, CharClass, FieldLevel, Grantee, GroupDef, GroupKind, HierarchyMode,
    MemberSet, ModuleDef, Owd, OwnerRef, PasswordPolicyPatch, ProfileDef, Reason, RoleDef,
    Settings, SettingsPatch, ShareDef, SharingRuleDef, ShiftDef, UserDef, UserKind, Weekday,
    WindowDef,
};
use crate::engine::plan::RecordWrite;
use crate::engine::Command;
use crate::engine::{EntityRef, Error, Result};
use crate::service::WriteOutcome;

fn none_if_empty<S: AsRef<str>>(s: S) -> Option<S> {
    if s.as_ref().is_empty() {
        None
    } else {
        Some(s)
    }
}

fn sorted_map<V>(m: std::collections::HashMap<String, V>) -> BTreeMap<String, V> {
    m.into_iter().collect()
}

/// A protobuf timestamp as a UTC time.
pub fn time(field: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|n| Utc.timestamp_opt(ts.seconds, n).single())
        .ok_or_else(|| Error::invalid(field, "not a valid timestamp"))
}

/// An optional protobuf timestamp as an optional UTC time.
pub fn time_opt(field: &str, ts: Option<&prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>> {
    ts.map(|t| time(field, t)).transpose()
}

/// A UTC time as a protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A revision as the API writes it.
pub fn revision(r: u64) -> String {
    r.to_string()
}

/// A revision as the API reads it (`field` names it on error).
pub fn parse_revision(field: &str, text: &str) -> Result<u64> {
    text.parse().map_err(|_| {
        Error::invalid(
            field,
            format!(
                "a revision is a decimal number, got {:?}",
                crate::engine::error::bounded(text)
            ),
        )
    })
}

/// The protobuf value of a reason.
pub fn reason(r: Reason) -> pb::Reason {
    match r {
        Reason::UnknownSubject => pb::Reason::UnknownSubject,
        Reason::InactiveSubject => pb::Reason::InactiveSubject,
        Reason::OutsideShift => pb::Reason::OutsideShift,
        Reason::Admin => pb::Reason::Admin,
        Reason::UnknownModule => pb::Reason::UnknownModule,
        Reason::Profile => pb::Reason::Profile,
        Reason::Field => pb::Reason::Field,
        Reason::UnknownRecord => pb::Reason::UnknownRecord,
        Reason::Owner => pb::Reason::Owner,
        Reason::GroupOwner => pb::Reason::GroupOwner,
        Reason::ViewAll => pb::Reason::ViewAll,
        Reason::ModifyAll => pb::Reason::ModifyAll,
        Reason::Hierarchy => pb::Reason::Hierarchy,
        Reason::TeamLead => pb::Reason::TeamLead,
        Reason::OrgDefault => pb::Reason::OrgDefault,
        Reason::SharingRule => pb::Reason::SharingRule,
        Reason::ManualShare => pb::Reason::ManualShare,
        Reason::InsufficientAccess => pb::Reason::InsufficientAccess,
        Reason::AssignScope => pb::Reason::AssignScope,
    }
}

/// The protobuf value of an access level.
pub fn access_level(l: AccessLevel) -> pb::AccessLevel {
    match l {
        AccessLevel::None => pb::AccessLevel::None,
        AccessLevel::Read => pb::AccessLevel::Read,
        AccessLevel::ReadWrite => pb::AccessLevel::ReadWrite,
        AccessLevel::Full => pb::AccessLevel::Full,
    }
}

/// An access level from its protobuf value; UNSPECIFIED is refused.
pub fn access_level_from(field: &str, v: i32) -> Result<AccessLevel> {
    match pb::AccessLevel::try_from(v) {
        Ok(pb::AccessLevel::None) => Ok(AccessLevel::None),
        Ok(pb::AccessLevel::Read) => Ok(AccessLevel::Read),
        Ok(pb::AccessLevel::ReadWrite) => Ok(AccessLevel::ReadWrite),
        Ok(pb::AccessLevel::Full) => Ok(AccessLevel::Full),
        Ok(pb::AccessLevel::Unspecified) => {
            Err(Error::invalid(field, "an access level must be set"))
        }
        Err(_) => Err(Error::invalid(field, format!("unknown access level {v}"))),
    }
}

/// The protobuf value of a field level.
pub fn field_level(l: FieldLevel) -> pb::FieldLevel {
    match l {
        FieldLevel::Hidden => pb::FieldLevel::Hidden,
        FieldLevel::ReadOnly => pb::FieldLevel::ReadOnly,
        FieldLevel::Editable => pb::FieldLevel::Editable,
    }
}

fn field_level_from(field: &str, v: i32) -> Result<FieldLevel> {
    match pb::FieldLevel::try_from(v) {
        Ok(pb::FieldLevel::Hidden) => Ok(FieldLevel::Hidden),
        Ok(pb::FieldLevel::ReadOnly) => Ok(FieldLevel::ReadOnly),
        Ok(pb::FieldLevel::Editable) => Ok(FieldLevel::Editable),
        _ => Err(Error::invalid(
            field,
            "a field level must be HIDDEN, READ_ONLY or EDITABLE",
        )),
    }
}

/// An owner from its protobuf message (`field` names it on error).
pub fn owner_from(field: &str, o: Option<pb::Owner>) -> Result<OwnerRef> {
    match o.and_then(|o| o.owner) {
        Some(pb::owner::Owner::UserId(u)) => Ok(OwnerRef::User(u)),
        Some(pb::owner::Owner::GroupId(g)) => Ok(OwnerRef::Group(g)),
        None => Err(Error::invalid(field, "an owner needs user_id or group_id")),
    }
}

/// A record described in a request (`field` names the message).
pub fn record_description(
    field: &str,
    d: pb::RecordDescription,
) -> Result<crate::engine::model::RecordDescription> {
    Ok(crate::engine::model::RecordDescription {
        owner: owner_from(&format!("{field}.owner"), d.owner)?,
        private: d.private,
        attributes: d.attributes.into_iter().collect(),
    })
}

/// The protobuf message of a described record.
pub fn described(d: &crate::engine::model::RecordDescription) -> pb::RecordDescription {
    pb::RecordDescription {
        owner: Some(owner(&d.owner)),
        private: d.private,
        attributes: d
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// An optional owner: absent when the message or its oneof is unset.
pub fn owner_opt(o: Option<pb::Owner>) -> Option<OwnerRef> {
    owner_from("", o).ok()
}

/// The protobuf message of an owner.
pub fn owner(o: &OwnerRef) -> pb::Owner {
    pb::Owner {
        owner: Some(match o {
            OwnerRef::User(u) => pb::owner::Owner::UserId(u.clone()),
            OwnerRef::Group(g) => pb::owner::Owner::GroupId(g.clone()),
        }),
    }
}

fn grantee_from(field: &str, g: Option<pb::Grantee>) -> Result<Grantee> {
    use pb::grantee::Grantee as G;
    match g.and_then(|g| g.grantee) {
        Some(G::UserId(u)) => Ok(Grantee::User(u)),
        Some(G::GroupId(g)) => Ok(Grantee::Group(g)),
        Some(G::RoleId(r)) => Ok(Grantee::Role(r)),
        Some(G::RoleAndSubordinatesId(r)) => Ok(Grantee::RoleAndSubordinates(r)),
        None => Err(Error::invalid(
            field,
            "a grantee needs user_id, group_id, role_id or role_and_subordinates_id",
        )),
    }
}

fn grantee(g: &Grantee) -> pb::Grantee {
    use pb::grantee::Grantee as G;
    pb::Grantee {
        grantee: Some(match g {
            Grantee::User(u) => G::UserId(u.clone()),
            Grantee::Group(g) => G::GroupId(g.clone()),
            Grantee::Role(r) => G::RoleId(r.clone()),
            Grantee::RoleAndSubordinates(r) => G::RoleAndSubordinatesId(r.clone()),
        }),
    }
}

fn member_set_from(field: &str, s: Option<pb::MemberSet>) -> Result<Option<MemberSet>> {
    use pb::member_set::Set;
    Ok(match s {
        None => None,
        Some(pb::MemberSet { set: None }) => {
            return Err(Error::invalid(
                field,
                "a member set needs role_id, role_and_subordinates_id or group_id",
            ))
        }
        Some(pb::MemberSet {
            set: Some(Set::RoleId(r)),
        }) => Some(MemberSet::Role(r)),
        Some(pb::MemberSet {
            set: Some(Set::RoleAndSubordinatesId(r)),
        }) => Some(MemberSet::RoleAndSubordinates(r)),
        Some(pb::MemberSet {
            set: Some(Set::GroupId(g)),
        }) => Some(MemberSet::Group(g)),
    })
}

fn member_set(s: &MemberSet) -> pb::MemberSet {
    use pb::member_set::Set;
    pb::MemberSet {
        set: Some(match s {
            MemberSet::Role(r) => Set::RoleId(r.clone()),
            MemberSet::RoleAndSubordinates(r) => Set::RoleAndSubordinatesId(r.clone()),
            MemberSet::Group(g) => Set::GroupId(g.clone()),
        }),
    }
}

fn hierarchy_mode_from(mode: i32) -> Result<HierarchyMode> {
    match pb::HierarchyMode::try_from(mode) {
        Ok(pb::HierarchyMode::Unspecified | pb::HierarchyMode::Role) => Ok(HierarchyMode::Role),
        Ok(pb::HierarchyMode::Reporting) => Ok(HierarchyMode::Reporting),
        Err(_) => Err(Error::invalid(
            "settings.hierarchy_mode",
            "unknown hierarchy mode",
        )),
    }
}

fn char_classes_from(classes: &[i32]) -> Result<Vec<CharClass>> {
    let mut require = Vec::with_capacity(classes.len());
    for (i, c) in classes.iter().enumerate() {
        require.push(match pb::CharClass::try_from(*c) {
            Ok(pb::CharClass::Upper) => CharClass::Upper,
            Ok(pb::CharClass::Lower) => CharClass::Lower,
            Ok(pb::CharClass::Digit) => CharClass::Digit,
            Ok(pb::CharClass::Symbol) => CharClass::Symbol,
            _ => {
                return Err(Error::invalid(
                    format!("settings.password_policy.require[{i}]"),
                    "a character class must be UPPER, LOWER, DIGIT or SYMBOL",
                ))
            }
        });
    }
    Ok(require)
}

/// A whole password policy: every rule left unset takes its default.
fn password_policy_from(p: &pb::PasswordPolicy) -> Result<PasswordPolicyPatch> {
    Ok(PasswordPolicyPatch {
        min_length: Some(p.min_length.unwrap_or(0)),
        require: Some(char_classes_from(&p.require)?),
        max_age_days: Some(p.max_age_days.unwrap_or(0)),
        forbid_principal: Some(p.forbid_principal.unwrap_or(true)),
    })
}

/// The password rules a message sets (an empty `require` sets nothing, as
/// a repeated field has no presence).
fn password_policy_present(p: &pb::PasswordPolicy) -> Result<PasswordPolicyPatch> {
    Ok(PasswordPolicyPatch {
        min_length: p.min_length,
        require: if p.require.is_empty() {
            None
        } else {
            Some(char_classes_from(&p.require)?)
        },
        max_age_days: p.max_age_days,
        forbid_principal: p.forbid_principal,
    })
}

/// Settings from protobuf (absent, or unset fields: defaults).
pub fn settings_from(s: Option<pb::Settings>) -> Result<Settings> {
    let Some(s) = s else {
        return Ok(Settings::default());
    };
    let whole = SettingsPatch {
        hierarchy_mode: Some(hierarchy_mode_from(s.hierarchy_mode.unwrap_or(0))?),
        enforce_shifts: Some(s.enforce_shifts.unwrap_or(false)),
        password_policy: Some(
            s.password_policy
                .as_ref()
                .map(password_policy_from)
                .transpose()?,
        ),
    };
    Ok(whole.apply(&Settings::default()))
}

/// The settings paths an `update_mask` may name.
const SETTINGS_PATHS: &str = "hierarchy_mode, enforce_shifts, password_policy, password_policy.min_length, password_policy.require, password_policy.max_age_days, password_policy.forbid_principal";

/// Longest part of a caller's text an error repeats.
const ECHO_LIMIT: usize = 64;

fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The settings an `UpdateSettings` changes: with a non-empty
/// `update_mask`, exactly the masked fields (an unset masked field takes its
/// default, so a mask can clear a setting); without one, the fields present,
/// the password policy merged rule by rule. Naming nothing is refused rather
/// than read as a reset.
pub fn settings_patch_from(
    settings: Option<pb::Settings>,
    update_mask: Option<prost_types::FieldMask>,
) -> Result<SettingsPatch> {
    let nothing = || Error::invalid("settings", "name at least one setting to change");
    let Some(mask) = update_mask.filter(|m| !m.paths.is_empty()) else {
        let s = settings.ok_or_else(nothing)?;
        let patch = SettingsPatch {
            hierarchy_mode: s.hierarchy_mode.map(hierarchy_mode_from).transpose()?,
            enforce_shifts: s.enforce_shifts,
            password_policy: s
                .password_policy
                .as_ref()
                .map(password_policy_present)
                .transpose()?
                .map(Some),
        };
        return if patch.is_empty() {
            Err(nothing())
        } else {
            Ok(patch)
        };
    };
    let s = settings.unwrap_or_default();
    let given = s.password_policy.clone().unwrap_or_default();
    let mut patch = SettingsPatch::default();
    let mut rules = PasswordPolicyPatch::default();
    let mut whole_policy = false;
    for (i, path) in mask.paths.iter().enumerate() {
        match path.as_str() {
            "hierarchy_mode" => {
                patch.hierarchy_mode = Some(hierarchy_mode_from(s.hierarchy_mode.unwrap_or(0))?)
            }
            "enforce_shifts" => patch.enforce_shifts = Some(s.enforce_shifts.unwrap_or(false)),
            "password_policy" => whole_policy = true,
            "password_policy.min_length" => rules.min_length = Some(given.min_length.unwrap_or(0)),
            "password_policy.require" => rules.require = Some(char_classes_from(&given.require)?),
            "password_policy.max_age_days" => {
                rules.max_age_days = Some(given.max_age_days.unwrap_or(0))
            }
            "password_policy.forbid_principal" => {
                rules.forbid_principal = Some(given.forbid_principal.unwrap_or(true))
            }
            other => {
                return Err(Error::invalid(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "'{}' is not a setting; the paths are {SETTINGS_PATHS}",
                        echo(other)
                    ),
                ))
            }
        }
    }
    if whole_policy {
        patch.password_policy = Some(
            s.password_policy
                .as_ref()
                .map(password_policy_from)
                .transpose()?,
        );
    } else if rules != PasswordPolicyPatch::default() {
        patch.password_policy = Some(Some(rules));
    }
    Ok(patch)
}

/// The answer to a write: its revision and what it removed and moved.
pub fn write_response(outcome: &WriteOutcome) -> pb::WriteResponse {
    let entity = |e: &EntityRef| pb::EntityRef {
        kind: e.kind.to_string(),
        id: e.id.clone(),
        to: e.to.clone().unwrap_or_default(),
    };
    pb::WriteResponse {
        revision: revision(outcome.revision),
        removed: outcome.report.removed.iter().map(entity).collect(),
        moved: outcome.report.moved.iter().map(entity).collect(),
    }
}

/// Settings as protobuf.
pub fn settings(s: &Settings) -> pb::Settings {
    pb::Settings {
        hierarchy_mode: Some(match s.hierarchy_mode {
            HierarchyMode::Role => pb::HierarchyMode::Role,
            HierarchyMode::Reporting => pb::HierarchyMode::Reporting,
        } as i32),
        enforce_shifts: Some(s.enforce_shifts),
        password_policy: s.password_policy.as_ref().map(|p| pb::PasswordPolicy {
            min_length: Some(p.min_length),
            require: p
                .require
                .iter()
                .map(|c| {
                    (match c {
                        CharClass::Upper => pb::CharClass::Upper,
                        CharClass::Lower => pb::CharClass::Lower,
                        CharClass::Digit => pb::CharClass::Digit,
                        CharClass::Symbol => pb::CharClass::Symbol,
                    }) as i32
                })
                .collect(),
            max_age_days: Some(p.max_age_days.unwrap_or(0)),
            forbid_principal: Some(p.forbid_principal),
        }),
    }
}

/// A module from protobuf.
pub fn module_from(m: Option<pb::Module>) -> Result<ModuleDef> {
    let m = m.ok_or_else(|| Error::invalid("module", "required"))?;
    let owd = match pb::Owd::try_from(m.owd) {
        Ok(pb::Owd::Unspecified | pb::Owd::Private) => Owd::Private,
        Ok(pb::Owd::PublicRead) => Owd::PublicRead,
        Ok(pb::Owd::PublicReadWrite) => Owd::PublicReadWrite,
        Ok(pb::Owd::PublicFull) => Owd::PublicFull,
        Err(_) => {
            return Err(Error::invalid(
                "module.owd",
                "unknown organization-wide default",
            ))
        }
    };
    let mut actions = BTreeMap::new();
    for (name, level) in m.actions {
        let level = if level == pb::AccessLevel::Unspecified as i32 {
            AccessLevel::ReadWrite
        } else {
            access_level_from(&format!("module.actions.{name}"), level)?
        };
        actions.insert(name, level);
    }
    Ok(ModuleDef {
        id: m.id,
        owd,
        hierarchy_access: m.hierarchy_access.unwrap_or(true),
        fields: m.fields,
        actions,
    })
}

/// A module as protobuf.
pub fn module(m: &ModuleDef) -> pb::Module {
    pb::Module {
        id: m.id.clone(),
        owd: match m.owd {
            Owd::Private => pb::Owd::Private,
            Owd::PublicRead => pb::Owd::PublicRead,
            Owd::PublicReadWrite => pb::Owd::PublicReadWrite,
            Owd::PublicFull => pb::Owd::PublicFull,
        } as i32,
        hierarchy_access: Some(m.hierarchy_access),
        fields: m.fields.clone(),
        actions: m
            .actions
            .iter()
            .map(|(k, v)| (k.clone(), access_level(*v) as i32))
            .collect(),
    }
}

/// A profile from protobuf.
pub fn profile_from(p: Option<pb::Profile>) -> Result<ProfileDef> {
    let p = p.ok_or_else(|| Error::invalid("profile", "required"))?;
    let mut fields = BTreeMap::new();
    for (module, levels) in p.fields {
        let mut m = BTreeMap::new();
        for (f, l) in levels.levels {
            let level = field_level_from(&format!("profile.fields.{module}.{f}"), l)?;
            m.insert(f, level);
        }
        fields.insert(module, m);
    }
    Ok(ProfileDef {
        id: p.id,
        name: p.name,
        modules: sorted_map(p.modules.into_iter().map(|(k, v)| (k, v.actions)).collect()),
        view_all: p.view_all,
        modify_all: p.modify_all,
        fields,
    })
}

/// A profile as protobuf.
pub fn profile(p: &ProfileDef) -> pb::Profile {
    pb::Profile {
        id: p.id.clone(),
        name: p.name.clone(),
        modules: p
            .modules
            .iter()
            .map(|(k, v)| (k.clone(), pb::ActionList { actions: v.clone() }))
            .collect(),
        view_all: p.view_all.clone(),
        modify_all: p.modify_all.clone(),
        fields: p
            .fields
            .iter()
            .map(|(m, fs)| {
                (
                    m.clone(),
                    pb::FieldLevels {
                        levels: fs
                            .iter()
                            .map(|(f, l)| (f.clone(), field_level(*l) as i32))
                            .collect(),
                    },
                )
            })
            .collect(),
    }
}

/// A role from protobuf.
pub fn role_from(r: Option<pb::Role>) -> Result<RoleDef> {
    let r = r.ok_or_else(|| Error::invalid("role", "required"))?;
    let assign_scope = match pb::AssignScope::try_from(r.assign_scope) {
        Ok(pb::AssignScope::Unspecified | pb::AssignScope::All) => AssignScope::All,
        Ok(pb::AssignScope::SameAndSubordinate) => AssignScope::SameAndSubordinate,
        Err(_) => return Err(Error::invalid("role.assign_scope", "unknown assign scope")),
    };
    Ok(RoleDef {
        id: r.id,
        name: r.name,
        parent: none_if_empty(r.parent_id),
        profiles: r.profile_ids,
        assign_scope,
    })
}

/// A role as protobuf.
pub fn role(r: &RoleDef) -> pb::Role {
    pb::Role {
        id: r.id.clone(),
        name: r.name.clone(),
        parent_id: r.parent.clone().unwrap_or_default(),
        profile_ids: r.profiles.clone(),
        assign_scope: match r.assign_scope {
            AssignScope::All => pb::AssignScope::All,
            AssignScope::SameAndSubordinate => pb::AssignScope::SameAndSubordinate,
        } as i32,
    }
}

/// A user from protobuf.
pub fn user_from(u: Option<pb::User>) -> Result<UserDef> {
    let u = u.ok_or_else(|| Error::invalid("user", "required"))?;
    let kind = match pb::UserKind::try_from(u.kind) {
        Ok(pb::UserKind::Unspecified | pb::UserKind::Member) => UserKind::Member,
        Ok(pb::UserKind::Guest) => UserKind::Guest,
        Err(_) => return Err(Error::invalid("user.kind", "unknown user kind")),
    };
    Ok(UserDef {
        id: u.user_id,
        principal: u.principal,
        kind,
        role: none_if_empty(u.role_id),
        profiles: u.profile_ids,
        reports_to: none_if_empty(u.reports_to),
        shift: none_if_empty(u.shift_id),
        admin: u.is_admin,
        active: u.active.unwrap_or(true),
    })
}

/// A user as protobuf.
pub fn user(u: &UserDef) -> pb::User {
    pb::User {
        user_id: u.id.clone(),
        principal: u.principal.clone(),
        kind: match u.kind {
            UserKind::Member => pb::UserKind::Member,
            UserKind::Guest => pb::UserKind::Guest,
        } as i32,
        role_id: u.role.clone().unwrap_or_default(),
        profile_ids: u.profiles.clone(),
        reports_to: u.reports_to.clone().unwrap_or_default(),
        shift_id: u.shift.clone().unwrap_or_default(),
        is_admin: u.admin,
        active: Some(u.active),
    }
}

/// A group from protobuf.
pub fn group_from(g: Option<pb::Group>) -> Result<GroupDef> {
    let g = g.ok_or_else(|| Error::invalid("group", "required"))?;
    let kind = match pb::GroupKind::try_from(g.kind) {
        Ok(pb::GroupKind::Unspecified | pb::GroupKind::Organization) => GroupKind::Organization,
        Ok(pb::GroupKind::Personal) => GroupKind::Personal,
        Err(_) => return Err(Error::invalid("group.kind", "unknown group kind")),
    };
    Ok(GroupDef {
        id: g.group_id,
        name: g.name,
        description: g.description,
        kind,
        owner: none_if_empty(g.owner_id),
        users: g.users,
        roles: g.roles,
        roles_and_subordinates: g.roles_and_subordinates,
        groups: g.groups,
        leads: g.leads,
    })
}

/// A group as protobuf.
pub fn group(g: &GroupDef) -> pb::Group {
    pb::Group {
        group_id: g.id.clone(),
        name: g.name.clone(),
        description: g.description.clone(),
        kind: match g.kind {
            GroupKind::Organization => pb::GroupKind::Organization,
            GroupKind::Personal => pb::GroupKind::Personal,
        } as i32,
        owner_id: g.owner.clone().unwrap_or_default(),
        users: g.users.clone(),
        roles: g.roles.clone(),
        roles_and_subordinates: g.roles_and_subordinates.clone(),
        groups: g.groups.clone(),
        leads: g.leads.clone(),
    }
}

fn weekday_from(field: &str, d: i32) -> Result<Weekday> {
    Ok(match pb::Weekday::try_from(d) {
        Ok(pb::Weekday::Mon) => Weekday::Mon,
        Ok(pb::Weekday::Tue) => Weekday::Tue,
        Ok(pb::Weekday::Wed) => Weekday::Wed,
        Ok(pb::Weekday::Thu) => Weekday::Thu,
        Ok(pb::Weekday::Fri) => Weekday::Fri,
        Ok(pb::Weekday::Sat) => Weekday::Sat,
        Ok(pb::Weekday::Sun) => Weekday::Sun,
        _ => return Err(Error::invalid(field, "a day must be MON to SUN")),
    })
}

fn weekday(d: Weekday) -> i32 {
    (match d {
        Weekday::Mon => pb::Weekday::Mon,
        Weekday::Tue => pb::Weekday::Tue,
        Weekday::Wed => pb::Weekday::Wed,
        Weekday::Thu => pb::Weekday::Thu,
        Weekday::Fri => pb::Weekday::Fri,
        Weekday::Sat => pb::Weekday::Sat,
        Weekday::Sun => pb::Weekday::Sun,
    }) as i32
}

/// A shift from protobuf.
pub fn shift_from(s: Option<pb::Shift>) -> Result<ShiftDef> {
    let s = s.ok_or_else(|| Error::invalid("shift", "required"))?;
    let mut windows = Vec::new();
    for (i, w) in s.windows.into_iter().enumerate() {
        let days = w
            .days
            .iter()
            .enumerate()
            .map(|(j, d)| weekday_from(&format!("shift.windows[{i}].days[{j}]"), *d))
            .collect::<Result<Vec<_>>>()?;
        windows.push(WindowDef {
            days,
            start: w.start,
            end: w.end,
        });
    }
    Ok(ShiftDef {
        id: s.shift_id,
        time_zone: s.time_zone,
        windows,
    })
}

/// A shift as protobuf.
pub fn shift(s: &ShiftDef) -> pb::Shift {
    pb::Shift {
        shift_id: s.id.clone(),
        time_zone: s.time_zone.clone(),
        windows: s
            .windows
            .iter()
            .map(|w| pb::ShiftWindow {
                days: w.days.iter().map(|d| weekday(*d)).collect(),
                start: w.start.clone(),
                end: w.end.clone(),
            })
            .collect(),
    }
}

/// A share from protobuf (`field` names it); with `level_needed` false an
/// unset level is accepted (Unshare ignores it).
pub fn share_from(field: &str, s: pb::Share, level_needed: bool) -> Result<ShareDef> {
    let level = if level_needed || s.level != pb::AccessLevel::Unspecified as i32 {
        access_level_from(&format!("{field}.level"), s.level)?
    } else {
        AccessLevel::Read
    };
    Ok(ShareDef {
        module: s.module,
        record: s.record_id,
        grantee: grantee_from(&format!("{field}.grantee"), s.grantee)?,
        level,
    })
}

/// A share as protobuf.
pub fn share(s: &ShareDef) -> pb::Share {
    pb::Share {
        module: s.module.clone(),
        record_id: s.record.clone(),
        grantee: Some(grantee(&s.grantee)),
        level: access_level(s.level) as i32,
    }
}

/// A sharing rule from protobuf.
pub fn rule_from(r: Option<pb::SharingRule>) -> Result<SharingRuleDef> {
    let r = r.ok_or_else(|| Error::invalid("rule", "required"))?;
    let to =
        member_set_from("rule.to", r.to)?.ok_or_else(|| Error::invalid("rule.to", "required"))?;
    Ok(SharingRuleDef {
        id: r.rule_id,
        module: r.module,
        from: member_set_from("rule.from", r.from)?,
        criteria: if r.criteria.is_empty() {
            None
        } else {
            Some(sorted_map(r.criteria))
        },
        to,
        access: access_level_from("rule.access", r.access)?,
    })
}

/// A sharing rule as protobuf.
pub fn rule(r: &SharingRuleDef) -> pb::SharingRule {
    pb::SharingRule {
        rule_id: r.id.clone(),
        module: r.module.clone(),
        from: r.from.as_ref().map(member_set),
        criteria: r
            .criteria
            .as_ref()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        to: Some(member_set(&r.to)),
        access: access_level(r.access) as i32,
    }
}

/// A record write from a SetOwner request: with an `update_mask`, exactly
/// the fields it names (an unknown path is refused); without one, the
/// owner and flag when present and the attributes when not empty.
pub fn record_from(req: pb::SetOwnerRequest) -> Result<RecordWrite> {
    let owner = req
        .owner
        .map(|o| owner_from("owner", Some(o)))
        .transpose()?;
    let attributes = sorted_map(req.attributes);
    let mask = req.update_mask.map(|m| m.paths).unwrap_or_default();
    if mask.is_empty() {
        return Ok(RecordWrite {
            module: req.module,
            id: req.record_id,
            owner,
            private: req.private,
            attributes: (!attributes.is_empty()).then_some(attributes),
        });
    }
    let mut write = RecordWrite {
        module: req.module,
        id: req.record_id,
        owner: None,
        private: None,
        attributes: None,
    };
    for (i, path) in mask.iter().enumerate() {
        match path.as_str() {
            "owner" => {
                write.owner = Some(owner.clone().ok_or_else(|| {
                    Error::invalid("owner", "update_mask names owner: give the new owner")
                })?)
            }
            "private" => write.private = Some(req.private.unwrap_or(false)),
            "attributes" => write.attributes = Some(attributes.clone()),
            other => {
                return Err(Error::invalid(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "'{}' is not one of owner, private, attributes",
                        other.chars().take(64).collect::<String>()
                    ),
                ))
            }
        }
    }
    Ok(write)
}

/// The consistency a read asks for (absent: minimize latency).
pub fn consistency(c: Option<pb::Consistency>) -> Result<crate::service::Consistency> {
    use crate::service::Consistency;
    use pb::consistency::Requirement;
    Ok(match c.and_then(|c| c.requirement) {
        None | Some(Requirement::MinimizeLatency(_)) => Consistency::MinimizeLatency,
        Some(Requirement::FullyConsistent(_)) => Consistency::FullyConsistent,
        Some(Requirement::AtLeastAsFresh(r)) => {
            Consistency::AtLeastAsFresh(parse_revision("consistency.at_least_as_fresh", &r)?)
        }
    })
}

/// A check request as the engine takes it, with its org and consistency.
pub fn check_from(
    mut r: pb::CheckRequest,
) -> Result<(
    compact_str::CompactString,
    crate::engine::CheckRequest,
    crate::service::Consistency,
)> {
    check_taken(&mut r)
}

/// [`check_from`] on a request left where it is, its ids and nested
/// messages taken out of it (left empty): Check and CheckBulk do not move
/// a 320-byte request by value to convert it.
pub fn check_taken(
    r: &mut pb::CheckRequest,
) -> Result<(
    compact_str::CompactString,
    crate::engine::CheckRequest,
    crate::service::Consistency,
)> {
    let at = time_opt("at", r.at.as_ref())?;
    let consistency = consistency(r.consistency.take())?;
    let take = std::mem::take::<compact_str::CompactString>;
    Ok((
        take(&mut r.org_id),
        crate::engine::CheckRequest {
            subject: take(&mut r.subject),
            module: take(&mut r.module),
            action: take(&mut r.action),
            record: none_if_empty(take(&mut r.record_id)),
            field: none_if_empty(take(&mut r.field)),
            at,
            explain: r.explain,
            assign_to: match r.assign_to.take() {
                Some(o) => Some(owner_from("assign_to", Some(o))?),
                None => None,
            },
            described: match r.record.take() {
                Some(d) => Some(record_description("record", d)?),
                None => None,
            },
        },
        consistency,
    ))
}

/// A decision as a check response.
pub fn decision(d: crate::engine::Decision, revision_at: u64) -> pb::CheckResponse {
    decision_at(d, check_revision(revision_at))
}

/// A revision as a check response holds it: inline, no allocation (a u64
/// is at most 20 digits).
pub fn check_revision(r: u64) -> compact_str::CompactString {
    compact_str::ToCompactString::to_compact_string(&r)
}

/// A decision as a check response, with its revision already written
/// (CheckBulk writes each revision once, not once per check).
pub fn decision_at(
    d: crate::engine::Decision,
    revision: compact_str::CompactString,
) -> pb::CheckResponse {
    pb::CheckResponse {
        allowed: d.allowed,
        reason: reason(d.reason) as i32,
        level: access_level(d.level) as i32,
        revision,
        trace: d.trace.into_iter().map(trace_step).collect(),
    }
}

/// One explain entry as protobuf.
pub fn trace_step(t: crate::engine::TraceStep) -> pb::TraceStep {
    use crate::engine::Outcome;
    let refs = |refs: Vec<crate::engine::TraceRef>| {
        refs.into_iter()
            .map(|r| pb::TraceRef {
                kind: r.kind.to_string(),
                id: r.id,
                relation: r.relation.to_string(),
            })
            .collect()
    };
    pb::TraceStep {
        reason: reason(t.reason) as i32,
        level: access_level(t.level) as i32,
        detail: t.detail,
        step: u32::from(t.step),
        outcome: match t.outcome {
            Outcome::Passed => pb::TraceOutcome::Passed,
            Outcome::Decided => pb::TraceOutcome::Decided,
            Outcome::Gave => pb::TraceOutcome::Gave,
            Outcome::GaveNothing => pb::TraceOutcome::GaveNothing,
        } as i32,
        refs: refs(t.refs),
        missing: t.missing.map(|m| pb::TraceMissing {
            detail: m.detail,
            level: access_level(m.level) as i32,
            refs: refs(m.refs),
        }),
    }
}

/// A password violation as protobuf.
pub fn violation(v: crate::engine::password::Violation) -> pb::PasswordViolation {
    use crate::engine::password::Violation;
    match v {
        Violation::TooShort => pb::PasswordViolation::TooShort,
        Violation::MissingUpper => pb::PasswordViolation::MissingUpper,
        Violation::MissingLower => pb::PasswordViolation::MissingLower,
        Violation::MissingDigit => pb::PasswordViolation::MissingDigit,
        Violation::MissingSymbol => pb::PasswordViolation::MissingSymbol,
        Violation::ContainsPrincipal => pb::PasswordViolation::ContainsPrincipal,
        Violation::Expired => pb::PasswordViolation::Expired,
    }
}

/// The command of an `UpdateSettings` request.
pub fn update_settings_command(r: pb::UpdateSettingsRequest) -> Result<Command> {
    Ok(Command::UpdateSettings(settings_patch_from(
        r.settings,
        r.update_mask,
    )?))
}

/// The command of a `DeleteModule` request.
pub fn delete_module_command(r: pb::DeleteModuleRequest) -> Command {
    Command::DeleteModule {
        id: r.module_id,
        cascade: r.cascade,
    }
}

/// The command of a `DeleteUser` request.
pub fn delete_user_command(r: pb::DeleteUserRequest) -> Command {
    Command::DeleteUser {
        id: r.user_id,
        transfer_to: owner_opt(r.transfer_to),
        cascade: r.cascade,
    }
}

/// The command of a `DeleteRole` request.
pub fn delete_role_command(r: pb::DeleteRoleRequest) -> Command {
    Command::DeleteRole {
        id: r.role_id,
        transfer_to: none_if_empty(r.transfer_to),
        cascade: r.cascade,
    }
}

/// The command of a `DeleteProfile` request.
pub fn delete_profile_command(r: pb::DeleteProfileRequest) -> Command {
    Command::DeleteProfile {
        id: r.profile_id,
        cascade: r.cascade,
    }
}

/// The command of a `DeleteGroup` request.
pub fn delete_group_command(r: pb::DeleteGroupRequest) -> Command {
    Command::DeleteGroup {
        id: r.group_id,
        transfer_to: owner_opt(r.transfer_to),
        cascade: r.cascade,
    }
}

/// The command of a `DeleteShift` request.
pub fn delete_shift_command(r: pb::DeleteShiftRequest) -> Command {
    Command::DeleteShift {
        id: r.shift_id,
        cascade: r.cascade,
    }
}

/// The command of a `DeleteRecord` request.
pub fn delete_record_command(r: pb::DeleteRecordRequest) -> Command {
    Command::DeleteRecord {
        module: r.module,
        id: r.record_id,
    }
}

/// The shares of a `Share` (each with its level) or `Unshare` request.
pub fn shares_from(list: Vec<pb::Share>, level_needed: bool) -> Result<Vec<ShareDef>> {
    list.into_iter()
        .enumerate()
        .map(|(i, s)| share_from(&format!("shares[{i}]"), s, level_needed))
        .collect()
}

/// One write of a `Simulate` batch, converted as its own RPC converts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    /// The write's own `org_id` (empty: the batch's).
    pub org_id: String,
    /// Its actor (empty: the caller's credential).
    pub actor: String,
    /// The command.
    pub command: Command,
}

/// The `org_id` and `actor` a write names, and whether its RPC takes the
/// admin scope only (`CreateOrganization`), read before anything is
/// converted so that credentials are checked before work.
pub fn write_header(w: &pb::Write) -> Option<(&str, &str, bool)> {
    use pb::write::Write as W;
    Some(match w.write.as_ref()? {
        W::CreateOrganization(r) => (r.org_id.as_str(), "", true),
        W::UpdateSettings(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteOrganization(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::PutModule(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteModule(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::PutUser(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteUser(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::PutRole(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteRole(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::PutProfile(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteProfile(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::PutGroup(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteGroup(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::PutSharingRule(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteSharingRule(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::PutShift(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteShift(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::Import(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::SetOwner(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::DeleteRecord(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::Share(r) => (r.org_id.as_str(), r.actor.as_str(), false),
        W::Unshare(r) => (r.org_id.as_str(), r.actor.as_str(), false),
    })
}

/// A `Write` of a `Simulate` batch as the command its RPC would carry out.
pub fn write_from(w: pb::Write) -> Result<WriteRequest> {
    use pb::write::Write as W;
    let w = w.write.ok_or_else(|| {
        Error::invalid(
            "write",
            "name one write, after its RPC: put_sharing_rule, delete_group, set_owner, share, …",
        )
    })?;
    let (org_id, actor, command) = match w {
        W::CreateOrganization(r) => (
            r.org_id,
            String::new(),
            Command::CreateOrganization(settings_from(r.settings)?),
        ),
        W::UpdateSettings(r) => (
            r.org_id.clone(),
            r.actor.clone(),
            update_settings_command(r)?,
        ),
        W::DeleteOrganization(r) => (r.org_id, r.actor, Command::DeleteOrganization),
        W::PutModule(r) => (
            r.org_id,
            r.actor,
            Command::PutModule(module_from(r.module)?),
        ),
        W::DeleteModule(r) => (r.org_id.clone(), r.actor.clone(), delete_module_command(r)),
        W::PutUser(r) => (r.org_id, r.actor, Command::PutUser(user_from(r.user)?)),
        W::DeleteUser(r) => (r.org_id.clone(), r.actor.clone(), delete_user_command(r)),
        W::PutRole(r) => (r.org_id, r.actor, Command::PutRole(role_from(r.role)?)),
        W::DeleteRole(r) => (r.org_id.clone(), r.actor.clone(), delete_role_command(r)),
        W::PutProfile(r) => (
            r.org_id,
            r.actor,
            Command::PutProfile(profile_from(r.profile)?),
        ),
        W::DeleteProfile(r) => (r.org_id.clone(), r.actor.clone(), delete_profile_command(r)),
        W::PutGroup(r) => (r.org_id, r.actor, Command::PutGroup(group_from(r.group)?)),
        W::DeleteGroup(r) => (r.org_id.clone(), r.actor.clone(), delete_group_command(r)),
        W::PutSharingRule(r) => (
            r.org_id,
            r.actor,
            Command::PutSharingRule(rule_from(r.rule)?),
        ),
        W::DeleteSharingRule(r) => (r.org_id, r.actor, Command::DeleteSharingRule(r.rule_id)),
        W::PutShift(r) => (r.org_id, r.actor, Command::PutShift(shift_from(r.shift)?)),
        W::DeleteShift(r) => (r.org_id.clone(), r.actor.clone(), delete_shift_command(r)),
        W::Import(r) => {
            let document = crate::document::parse_document(&r.document)?;
            let command = Command::Import {
                document,
                replace: r.replace,
            };
            (r.org_id, r.actor, command)
        }
        W::SetOwner(r) => (
            r.org_id.clone(),
            r.actor.clone(),
            Command::SetOwner(record_from(r)?),
        ),
        W::DeleteRecord(r) => (r.org_id.clone(), r.actor.clone(), delete_record_command(r)),
        W::Share(r) => (
            r.org_id,
            r.actor,
            Command::Share(shares_from(r.shares, true)?),
        ),
        W::Unshare(r) => (
            r.org_id,
            r.actor,
            Command::Unshare(shares_from(r.shares, false)?),
        ),
    };
    Ok(WriteRequest {
        org_id,
        actor,
        command,
    })
}

/// The answer of `Simulate`.
pub fn simulation(s: &crate::engine::Simulation) -> pb::SimulateResponse {
    pb::SimulateResponse {
        changes: s
            .changes
            .iter()
            .map(|c| pb::AccessChange {
                subject: c.subject.clone(),
                module: c.module.clone(),
                action: c.action.clone(),
                gained_count: c.gained_count,
                lost_count: c.lost_count,
                gained_sample: c.gained_sample.clone(),
                lost_sample: c.lost_sample.clone(),
            })
            .collect(),
        field_changes: s
            .field_changes
            .iter()
            .map(|f| pb::FieldChange {
                subject: f.subject.clone(),
                module: f.module.clone(),
                field: f.field.clone(),
                before: field_level(f.before) as i32,
                after: field_level(f.after) as i32,
            })
            .collect(),
        revision: revision(s.revision),
        whole_org: s.whole_org,
        compared: s.compared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_round_trip_through_protobuf() {
        let u = UserDef {
            id: "u".into(),
            principal: "u@x".into(),
            kind: UserKind::Member,
            role: Some("r".into()),
            profiles: vec!["p".into()],
            reports_to: Some("m".into()),
            shift: None,
            admin: true,
            active: false,
        };
        assert_eq!(user_from(Some(user(&u))).unwrap(), u);
        let r = SharingRuleDef {
            id: "x".into(),
            module: "M".into(),
            from: None,
            criteria: Some(BTreeMap::from([("k".into(), "v".into())])),
            to: MemberSet::RoleAndSubordinates("r".into()),
            access: AccessLevel::ReadWrite,
        };
        assert_eq!(rule_from(Some(rule(&r))).unwrap(), r);
        let s = Settings {
            hierarchy_mode: HierarchyMode::Reporting,
            enforce_shifts: true,
            password_policy: Some(crate::engine::model::PasswordPolicy {
                min_length: 8,
                require: vec![CharClass::Digit],
                max_age_days: Some(30),
                forbid_principal: false,
            }),
        };
        assert_eq!(settings_from(Some(settings(&s))).unwrap(), s);
    }

    #[test]
    fn unset_oneofs_and_levels_name_the_field() {
        let e = owner_from("assign_to", Some(pb::Owner { owner: None })).unwrap_err();
        assert_eq!(
            e.to_string(),
            "assign_to: an owner needs user_id or group_id"
        );
        let e = share_from("shares[0]", pb::Share::default(), true).unwrap_err();
        assert!(e.to_string().starts_with("shares[0].level"), "{e}");
        let e = time(
            "at",
            &prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            },
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("at:"));
    }

    fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    }

    #[test]
    fn a_settings_update_takes_the_masked_fields_or_those_present() {
        let given = pb::Settings {
            hierarchy_mode: Some(pb::HierarchyMode::Reporting as i32),
            enforce_shifts: Some(true),
            password_policy: Some(pb::PasswordPolicy {
                require: vec![pb::CharClass::Symbol as i32],
                ..Default::default()
            }),
        };
        let masked = settings_patch_from(
            Some(given.clone()),
            mask(&["enforce_shifts", "password_policy.require"]),
        )
        .unwrap();
        assert_eq!(
            masked,
            SettingsPatch {
                enforce_shifts: Some(true),
                password_policy: Some(Some(PasswordPolicyPatch {
                    require: Some(vec![CharClass::Symbol]),
                    ..PasswordPolicyPatch::default()
                })),
                ..SettingsPatch::default()
            }
        );
        // An empty mask is no mask: the fields present count.
        let present = settings_patch_from(Some(given), mask(&[])).unwrap();
        assert_eq!(present.hierarchy_mode, Some(HierarchyMode::Reporting));
        assert_eq!(
            present.password_policy,
            Some(Some(PasswordPolicyPatch {
                require: Some(vec![CharClass::Symbol]),
                ..PasswordPolicyPatch::default()
            }))
        );
    }

    #[test]
    fn a_settings_update_naming_nothing_or_an_unknown_path_is_refused() {
        for settings in [None, Some(pb::Settings::default())] {
            let e = settings_patch_from(settings, None).unwrap_err();
            assert_eq!(
                e.to_string(),
                "settings: name at least one setting to change"
            );
        }
        let long = "x".repeat(1000);
        let e = settings_patch_from(None, mask(&["hierarchy_mode", &long])).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("update_mask.paths[1]:"), "{text}");
        assert!(text.len() < 400, "the path is echoed cut short: {text}");
    }
}
