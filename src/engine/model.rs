//! Definitions of SPEC section 1: what an operator puts into an organization.
//!
//! These are the entities as written (string ids), the form they take in a
//! scenario document, in the store and on the change log. The engine compiles
//! them into interned indexes (`org.rs`) for decisions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Record access levels, ordered `NONE < READ < READ_WRITE < FULL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLevel {
    /// No access.
    None,
    /// Read the record.
    Read,
    /// Read and modify the record.
    ReadWrite,
    /// Everything, including delete, share and assign.
    Full,
}

impl AccessLevel {
    /// The spec's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::None => "NONE",
            AccessLevel::Read => "READ",
            AccessLevel::ReadWrite => "READ_WRITE",
            AccessLevel::Full => "FULL",
        }
    }
}

/// Organization-wide default access of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Owd {
    /// Only the paths of step 7 other than the default.
    #[default]
    Private,
    /// Every member reads.
    PublicRead,
    /// Every member reads and writes.
    PublicReadWrite,
    /// Every member has full access.
    PublicFull,
}

impl Owd {
    /// The record level this default gives a member.
    pub fn level(self) -> AccessLevel {
        match self {
            Owd::Private => AccessLevel::None,
            Owd::PublicRead => AccessLevel::Read,
            Owd::PublicReadWrite => AccessLevel::ReadWrite,
            Owd::PublicFull => AccessLevel::Full,
        }
    }
}

/// How superiors are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HierarchyMode {
    /// Superiors hold a role above the user's role.
    #[default]
    Role,
    /// Superiors are those the user reports to, directly or through a chain.
    Reporting,
}

/// Company staff or an outside partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserKind {
    /// A member of the company: has a role.
    #[default]
    Member,
    /// A partner from outside: no role, no hierarchy, no org-wide defaults.
    Guest,
}

/// To whom the users of a role may assign records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssignScope {
    /// Anyone.
    #[default]
    All,
    /// Users of the same role or below it, and groups.
    SameAndSubordinate,
}

/// Who manages a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupKind {
    /// Managed by administrators.
    #[default]
    Organization,
    /// Managed by its owner, who may add guests.
    Personal,
}

/// Field security level, ordered `HIDDEN < READ_ONLY < EDITABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldLevel {
    /// Not shown.
    Hidden,
    /// Shown, not editable.
    ReadOnly,
    /// Shown and editable.
    Editable,
}

/// Character classes a password policy may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CharClass {
    /// `A`–`Z` and other upper-case letters.
    Upper,
    /// `a`–`z` and other lower-case letters.
    Lower,
    /// `0`–`9`.
    Digit,
    /// Anything that is not a letter, digit or white space.
    Symbol,
}

/// Day of the week of a shift window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Days since Monday (0–6).
    pub fn index(self) -> u8 {
        self as u8
    }
}

/// The reason of a decision: the step of SPEC section 2 that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// Step 1: no such user in the organization.
    UnknownSubject,
    /// Step 1: the user is inactive.
    InactiveSubject,
    /// Step 2: outside the user's shift.
    OutsideShift,
    /// Step 3: the organization's super administrator.
    Admin,
    /// Step 4: no such module.
    UnknownModule,
    /// Step 4 (deny) or 5 (allow): the effective profiles.
    Profile,
    /// Step 4: field security.
    Field,
    /// Step 6: no such record.
    UnknownRecord,
    /// Step 7: the subject owns the record.
    Owner,
    /// Step 7: the subject is a member of the owning group.
    GroupOwner,
    /// Step 7: `view_all` on the module.
    ViewAll,
    /// Step 7: `modify_all` on the module.
    ModifyAll,
    /// Step 7: the subject is a superior of the owner.
    Hierarchy,
    /// Step 7: the subject leads a group that holds the owner.
    TeamLead,
    /// Step 7: the module's organization-wide default.
    OrgDefault,
    /// Step 7: a sharing rule or criteria rule.
    SharingRule,
    /// Step 7: a manual share.
    ManualShare,
    /// Step 7: the record level is below what the action needs.
    InsufficientAccess,
    /// Step 8: the target owner is outside the role's assign scope.
    AssignScope,
}

impl Reason {
    /// The spec's name, without the `REASON_` prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownSubject => "UNKNOWN_SUBJECT",
            Reason::InactiveSubject => "INACTIVE_SUBJECT",
            Reason::OutsideShift => "OUTSIDE_SHIFT",
            Reason::Admin => "ADMIN",
            Reason::UnknownModule => "UNKNOWN_MODULE",
            Reason::Profile => "PROFILE",
            Reason::Field => "FIELD",
            Reason::UnknownRecord => "UNKNOWN_RECORD",
            Reason::Owner => "OWNER",
            Reason::GroupOwner => "GROUP_OWNER",
            Reason::ViewAll => "VIEW_ALL",
            Reason::ModifyAll => "MODIFY_ALL",
            Reason::Hierarchy => "HIERARCHY",
            Reason::TeamLead => "TEAM_LEAD",
            Reason::OrgDefault => "ORG_DEFAULT",
            Reason::SharingRule => "SHARING_RULE",
            Reason::ManualShare => "MANUAL_SHARE",
            Reason::InsufficientAccess => "INSUFFICIENT_ACCESS",
            Reason::AssignScope => "ASSIGN_SCOPE",
        }
    }
}

/// Organization settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// ROLE (default) or REPORTING.
    #[serde(default)]
    pub hierarchy_mode: HierarchyMode,
    /// Deny non-admin users with a shift outside its windows.
    #[serde(default)]
    pub enforce_shifts: bool,
    /// Rules for candidate passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_policy: Option<PasswordPolicy>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The organization's password policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length in characters.
    #[serde(default)]
    pub min_length: u32,
    /// Character classes that must each appear.
    #[serde(default)]
    pub require: Vec<CharClass>,
    /// Days after which a password expires (none when absent or 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
    /// Refuse passwords containing the principal id (default true).
    #[serde(default = "yes")]
    pub forbid_principal: bool,
}

impl PasswordPolicy {
    /// The policy of an organization that has none yet, as a patch starts
    /// from: every rule off except `forbid_principal`, which defaults on.
    fn fresh() -> Self {
        PasswordPolicy {
            forbid_principal: true,
            ..PasswordPolicy::default()
        }
    }
}

/// Settings to change: each field present replaces that setting, each
/// absent one keeps it (`UpdateSettings`, a merge `Import`). A whole
/// organization's settings written as a patch name every field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// New hierarchy mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy_mode: Option<HierarchyMode>,
    /// New `enforce_shifts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_shifts: Option<bool>,
    /// `Some(None)` (`password_policy: null`) removes the policy;
    /// `Some(Some(p))` merges `p` into it field by field.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub password_policy: Option<Option<PasswordPolicyPatch>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`,
/// through `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A map that refuses a key it has already read. serde's own maps keep
/// the last of a repeated key silently, and derived structs refuse only a
/// repeated field, so without this a JSON document read straight into its
/// type (`document::parse_document`'s one pass) could say two things at
/// once.
struct UniqueKeys<K, V>(BTreeMap<K, V>);

impl<'de, K, V> Deserialize<'de> for UniqueKeys<K, V>
where
    K: Deserialize<'de> + Ord + std::fmt::Display,
    V: Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K, V> serde::de::Visitor<'de> for Keys<K, V>
        where
            K: Deserialize<'de> + Ord + std::fmt::Display,
            V: Deserialize<'de>,
        {
            type Value = UniqueKeys<K, V>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<K>()? {
                    let value = map.next_value::<V>()?;
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate key `{}`: a key appears once per mapping",
                            super::error::bounded(&key.to_string())
                        )));
                    }
                    out.insert(key, value);
                }
                Ok(UniqueKeys(out))
            }
        }
        d.deserialize_map(Keys(std::marker::PhantomData))
    }
}

/// A map field read with [`UniqueKeys`].
fn unique_keys<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de> + Ord + std::fmt::Display,
    V: Deserialize<'de>,
{
    UniqueKeys::deserialize(d).map(|m| m.0)
}

/// An optional map field read with [`UniqueKeys`].
fn unique_keys_if_present<'de, D, K, V>(d: D) -> Result<Option<BTreeMap<K, V>>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de> + Ord + std::fmt::Display,
    V: Deserialize<'de>,
{
    Option::<UniqueKeys<K, V>>::deserialize(d).map(|m| m.map(|m| m.0))
}

/// A map of maps, both levels read with [`UniqueKeys`].
fn unique_nested_keys<'de, D, K, J, V>(d: D) -> Result<BTreeMap<K, BTreeMap<J, V>>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de> + Ord + std::fmt::Display,
    J: Deserialize<'de> + Ord + std::fmt::Display,
    V: Deserialize<'de>,
{
    let outer = UniqueKeys::<K, UniqueKeys<J, V>>::deserialize(d)?;
    Ok(outer.0.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Password rules to change, each absent one kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicyPatch {
    /// New minimum length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// New required character classes (replacing the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Vec<CharClass>>,
    /// New maximum age in days (0: passwords never expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
    /// New `forbid_principal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbid_principal: Option<bool>,
}

impl SettingsPatch {
    /// Whether the patch names no setting at all.
    pub fn is_empty(&self) -> bool {
        self.hierarchy_mode.is_none()
            && self.enforce_shifts.is_none()
            && self.password_policy.is_none()
    }

    /// `base` with the settings this patch names replaced.
    pub fn apply(&self, base: &Settings) -> Settings {
        let password_policy = match &self.password_policy {
            None => base.password_policy.clone(),
            Some(None) => None,
            Some(Some(patch)) => Some(patch.apply(base.password_policy.as_ref())),
        };
        Settings {
            hierarchy_mode: self.hierarchy_mode.unwrap_or(base.hierarchy_mode),
            enforce_shifts: self.enforce_shifts.unwrap_or(base.enforce_shifts),
            password_policy,
        }
    }
}

impl PasswordPolicyPatch {
    /// `base` (or a fresh policy) with the rules this patch names replaced.
    pub fn apply(&self, base: Option<&PasswordPolicy>) -> PasswordPolicy {
        let base = base.cloned().unwrap_or_else(PasswordPolicy::fresh);
        PasswordPolicy {
            min_length: self.min_length.unwrap_or(base.min_length),
            require: self.require.clone().unwrap_or(base.require),
            max_age_days: match self.max_age_days {
                None => base.max_age_days,
                Some(days) => (days > 0).then_some(days),
            },
            forbid_principal: self.forbid_principal.unwrap_or(base.forbid_principal),
        }
    }
}

impl From<&PasswordPolicy> for PasswordPolicyPatch {
    fn from(p: &PasswordPolicy) -> Self {
        PasswordPolicyPatch {
            min_length: Some(p.min_length),
            require: Some(p.require.clone()),
            max_age_days: p.max_age_days,
            forbid_principal: Some(p.forbid_principal),
        }
    }
}

impl From<&Settings> for SettingsPatch {
    fn from(s: &Settings) -> Self {
        SettingsPatch {
            hierarchy_mode: Some(s.hierarchy_mode),
            enforce_shifts: Some(s.enforce_shifts),
            password_policy: s
                .password_policy
                .as_ref()
                .map(|p| Some(PasswordPolicyPatch::from(p))),
        }
    }
}

impl From<Settings> for SettingsPatch {
    fn from(s: Settings) -> Self {
        SettingsPatch::from(&s)
    }
}

/// A record type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleDef {
    /// Module id, e.g. `Leads`.
    pub id: String,
    /// Organization-wide default.
    #[serde(default)]
    pub owd: Owd,
    /// Superiors get access to subordinates' records (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub hierarchy_access: bool,
    /// Field names.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Custom actions and the record level each requires.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub actions: BTreeMap<String, AccessLevel>,
}

/// A permission set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDef {
    /// Profile id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Per module, the allowed actions.
    #[serde(default, deserialize_with = "unique_keys")]
    pub modules: BTreeMap<String, Vec<String>>,
    /// Modules whose every record this profile reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub view_all: Vec<String>,
    /// Modules whose every record this profile fully controls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modify_all: Vec<String>,
    /// Per module per field, the field level.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_nested_keys"
    )]
    pub fields: BTreeMap<String, BTreeMap<String, FieldLevel>>,
}

/// A role in the role forest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Role id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Parent role; none for a root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Profiles every user of the role inherits.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// To whom users of the role may assign records.
    #[serde(default)]
    pub assign_scope: AssignScope,
}

/// A weekly working window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDef {
    /// Days on which the window starts.
    pub days: Vec<Weekday>,
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM` (`24:00` allowed); at or before start it runs past midnight.
    pub end: String,
}

/// A working shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftDef {
    /// Shift id.
    pub id: String,
    /// IANA time zone the windows are in.
    pub time_zone: String,
    /// Weekly windows.
    #[serde(default)]
    pub windows: Vec<WindowDef>,
}

/// A user of the organization.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDef {
    /// User id.
    pub id: String,
    /// Login subject; defaults to the id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// MEMBER or GUEST.
    #[serde(default)]
    pub kind: UserKind,
    /// The member's role; guests have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Direct profiles.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Manager, for the REPORTING hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports_to: Option<String>,
    /// Working shift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<String>,
    /// Super administrator of the organization.
    #[serde(default, skip_serializing_if = "is_false")]
    pub admin: bool,
    /// Inactive users are denied everything.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
}

/// A group of users.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDef {
    /// Group id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// ORGANIZATION or PERSONAL.
    #[serde(default)]
    pub kind: GroupKind,
    /// Owner of a personal group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Users listed one by one.
    #[serde(default)]
    pub users: Vec<String>,
    /// Roles whose users are members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Roles whose users, and the users of every role below, are members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_and_subordinates: Vec<String>,
    /// Nested groups whose expanded members are members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Team managers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leads: Vec<String>,
}

/// The owner of a record: a user or a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerRef {
    /// A user id.
    User(String),
    /// A group id.
    Group(String),
}

/// Who a manual share is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// One user.
    User(String),
    /// The expanded members of a group.
    Group(String),
    /// The users of a role.
    Role(String),
    /// The users of a role and of every role below it.
    RoleAndSubordinates(String),
}

/// The `from` or `to` set of a sharing rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberSet {
    /// The users of a role.
    Role(String),
    /// The users of a role and of every role below it.
    RoleAndSubordinates(String),
    /// The expanded members of a group (and, as `from`, the group and its nested groups as owners).
    Group(String),
}

/// A record as registered through the Grant service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDef {
    /// Module id.
    pub module: String,
    /// Record id.
    pub id: String,
    /// Owner.
    pub owner: OwnerRef,
    /// Confidential: defaults and sharing rules do not apply.
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    /// Attributes matched by criteria rules.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub attributes: BTreeMap<String, String>,
}

/// A record described in a check instead of stored: the facts step 7
/// needs (the id and module come from the check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDescription {
    /// Owner.
    pub owner: OwnerRef,
    /// Confidential: defaults and sharing rules do not apply.
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    /// Attributes matched by criteria rules.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub attributes: BTreeMap<String, String>,
}

/// A manual share of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareDef {
    /// Module id.
    pub module: String,
    /// Record id.
    pub record: String,
    /// Who receives access.
    pub grantee: Grantee,
    /// READ, READ_WRITE or FULL.
    pub level: AccessLevel,
}

/// An owner-based or criteria sharing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingRuleDef {
    /// Rule id.
    pub id: String,
    /// Module id.
    pub module: String,
    /// Owners whose records are shared (owner-based rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<MemberSet>,
    /// Attributes a record must all have (criteria rule).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique_keys_if_present"
    )]
    pub criteria: Option<BTreeMap<String, String>>,
    /// Users who receive access.
    pub to: MemberSet,
    /// READ or READ_WRITE.
    pub access: AccessLevel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_patch_tells_absent_from_null_and_refuses_unknown_fields() {
        let absent: SettingsPatch = serde_json::from_str(r#"{"enforce_shifts": true}"#).unwrap();
        assert_eq!(absent.password_policy, None);
        let null: SettingsPatch = serde_json::from_str(r#"{"password_policy": null}"#).unwrap();
        assert_eq!(null.password_policy, Some(None));
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"enforce_shift": true}"#).is_err());
        assert!(
            serde_json::from_str::<SettingsPatch>(r#"{"password_policy": {"min_lenght": 3}}"#)
                .is_err()
        );
    }

    #[test]
    fn whole_settings_as_a_patch_write_out_as_before_and_apply_to_themselves() {
        let s = Settings {
            hierarchy_mode: HierarchyMode::Reporting,
            enforce_shifts: true,
            password_policy: Some(PasswordPolicy {
                min_length: 8,
                require: vec![CharClass::Upper],
                max_age_days: None,
                forbid_principal: true,
            }),
        };
        let patch = SettingsPatch::from(&s);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            serde_json::to_value(&s).unwrap()
        );
        assert_eq!(patch.apply(&Settings::default()), s);
        let none = SettingsPatch::from(&Settings::default());
        assert_eq!(
            serde_json::to_value(&none).unwrap(),
            serde_json::to_value(Settings::default()).unwrap()
        );
    }
}
