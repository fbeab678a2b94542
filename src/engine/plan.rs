//! Plans a write: validates a command against an organization's current
//! policy and turns it into the changes that carry it out. A command that
//! breaks any rule is refused whole, before anything is stored or applied.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::change::Change;
use super::document::{settings_of, topo_sorted, OrgDocument};
use super::error::{bounded, Error, Result};
use super::expand::Invalidation;
use super::ids::check_id;
use super::model::{
    AccessLevel, Grantee, GroupDef, GroupKind, MemberSet, ModuleDef, OwnerRef, ProfileDef,
    RecordDef, RoleDef, Settings, SettingsPatch, ShareDef, SharingRuleDef, ShiftDef, UserDef,
    UserKind,
};
use super::org::{GranteeIx, GroupIx, OrgState, Owner, RoleIx, UserIx};
use super::report::{report, EntityRef};
use super::shifts::compile_shift;

/// Limits of SPEC section 6, each configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest id.
    pub id_length: usize,
    /// Most checks in one `CheckBulk`.
    pub bulk_checks: usize,
    /// Most entries a group lists across its four member sorts.
    pub group_members: usize,
    /// Deepest group nesting (edges in the longest chain of nested groups).
    pub group_depth: usize,
    /// Deepest role chain (edges from a root to its deepest role).
    pub role_depth: usize,
    /// Most shifts per organization.
    pub shifts: usize,
    /// Most organizations one principal may be a user in (0: no limit).
    pub max_orgs_per_principal: usize,
    /// Most attributes on one record.
    pub record_attributes: usize,
    /// Longest attribute key, in characters.
    pub attribute_key_length: usize,
    /// Longest attribute value, in bytes.
    pub attribute_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            id_length: 128,
            bulk_checks: 1000,
            group_members: 10_000,
            group_depth: 32,
            role_depth: 64,
            shifts: 30,
            max_orgs_per_principal: 0,
            record_attributes: 64,
            attribute_key_length: 128,
            attribute_value_bytes: 1024,
        }
    }
}

/// How many references a refused delete names (the count covers them all).
const REFERENCES_LISTED: usize = 20;

/// A write, as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create an organization.
    CreateOrganization(Settings),
    /// Change the settings the patch names, keeping the others.
    UpdateSettings(SettingsPatch),
    /// Delete the organization with everything in it.
    DeleteOrganization,
    /// Create or replace a module.
    PutModule(ModuleDef),
    /// Delete a module; its records, shares, rules and profile entries
    /// need `cascade`.
    DeleteModule {
        /// Module id.
        id: String,
        /// Remove what refers to the module.
        cascade: bool,
    },
    /// Create or replace a profile.
    PutProfile(ProfileDef),
    /// Delete a profile; roles and users holding it need `cascade`.
    DeleteProfile {
        /// Profile id.
        id: String,
        /// Remove the profile from roles and users.
        cascade: bool,
    },
    /// Create or replace a role.
    PutRole(RoleDef),
    /// Delete a role; its users and sub-roles move to `transfer_to`.
    DeleteRole {
        /// Role id.
        id: String,
        /// Role taking its users and sub-roles.
        transfer_to: Option<String>,
        /// Remove group entries, shares and rules naming the role.
        cascade: bool,
    },
    /// Create or replace a shift.
    PutShift(ShiftDef),
    /// Delete a shift; users on it need `cascade`.
    DeleteShift {
        /// Shift id.
        id: String,
        /// Clear the shift from users.
        cascade: bool,
    },
    /// Create or replace a user.
    PutUser(UserDef),
    /// Delete a user; what it owns moves to `transfer_to`.
    DeleteUser {
        /// User id.
        id: String,
        /// New owner of its records (and, a user, of its personal groups).
        transfer_to: Option<OwnerRef>,
        /// Remove group entries, leads and shares naming the user.
        cascade: bool,
    },
    /// Create or replace a group.
    PutGroup(GroupDef),
    /// Delete a group; its records move to `transfer_to`.
    DeleteGroup {
        /// Group id.
        id: String,
        /// New owner of its records.
        transfer_to: Option<OwnerRef>,
        /// Remove group entries, shares and rules naming the group.
        cascade: bool,
    },
    /// Create or replace a sharing rule.
    PutSharingRule(SharingRuleDef),
    /// Delete a sharing rule.
    DeleteSharingRule(String),
    /// Register or re-own a record, changing only what it names.
    SetOwner(RecordWrite),
    /// Delete a record with its shares.
    DeleteRecord {
        /// Module id.
        module: String,
        /// Record id.
        id: String,
    },
    /// Share records (one or many).
    Share(Vec<ShareDef>),
    /// Remove shares (the level is ignored).
    Unshare(Vec<ShareDef>),
    /// Load a whole document, merged or replacing the organization.
    Import {
        /// The document.
        document: OrgDocument,
        /// Replace everything (else: create or replace what it names).
        replace: bool,
    },
}

/// A `SetOwner` as asked for: what is `None` is kept from the stored
/// record (a new record needs an owner; its flag and attributes default to
/// not private and none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// Module id.
    pub module: String,
    /// Record id.
    pub id: String,
    /// New owner; `None` keeps the owner.
    pub owner: Option<OwnerRef>,
    /// New private flag; `None` keeps it.
    pub private: Option<bool>,
    /// New attributes, replacing the old ones whole; `None` keeps them.
    pub attributes: Option<BTreeMap<String, String>>,
}

impl From<RecordDef> for RecordWrite {
    /// A whole record, as documents give it: every field is set.
    fn from(def: RecordDef) -> Self {
        RecordWrite {
            module: def.module,
            id: def.id,
            owner: Some(def.owner),
            private: Some(def.private),
            attributes: Some(def.attributes),
        }
    }
}

impl RecordWrite {
    /// The record this write leaves behind, given the stored one (if any);
    /// `None` when a new record names no owner.
    pub fn resolve(&self, stored: Option<RecordDef>) -> Option<RecordDef> {
        let owner = match (&self.owner, &stored) {
            (Some(o), _) => o.clone(),
            (None, Some(s)) => s.owner.clone(),
            (None, None) => return None,
        };
        let private = self
            .private
            .or(stored.as_ref().map(|s| s.private))
            .unwrap_or(false);
        let attributes = match (&self.attributes, stored) {
            (Some(a), _) => a.clone(),
            (None, Some(s)) => s.attributes,
            (None, None) => BTreeMap::new(),
        };
        Some(RecordDef {
            module: self.module.clone(),
            id: self.id.clone(),
            owner,
            private,
            attributes,
        })
    }
}

impl Command {
    /// Whether the command removes something, so that its answer lists what
    /// it removed and moved (other writes answer with the revision alone).
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            Command::DeleteOrganization
                | Command::DeleteModule { .. }
                | Command::DeleteProfile { .. }
                | Command::DeleteRole { .. }
                | Command::DeleteShift { .. }
                | Command::DeleteUser { .. }
                | Command::DeleteGroup { .. }
                | Command::DeleteSharingRule(_)
                | Command::DeleteRecord { .. }
                | Command::Unshare(_)
        )
    }
}

/// Plans `command` for an organization in state `org` (`None`: it does not
/// exist).
pub fn plan(
    org: Option<&OrgState>,
    org_id: &str,
    command: &Command,
    limits: &Limits,
) -> Result<Vec<Change>> {
    check_id("org_id", org_id, limits.id_length)?;
    let missing = || Error::not_found("organization", org_id, "org_id");
    match command {
        Command::CreateOrganization(settings) => {
            if org.is_some() {
                return Err(Error::AlreadyExists {
                    kind: "organization",
                    id: org_id.to_string(),
                });
            }
            Ok(vec![Change::CreateOrg(settings.clone())])
        }
        Command::Import { document, replace } => {
            let (mut changes, at) = plan_import_apart(org, org_id, document, *replace, limits)?;
            // Cloned: the caller keeps its document. A writer that owns it
            // moves them instead ([`ImportPlan::take_bulk`]).
            changes.splice(
                at..at,
                document
                    .records
                    .iter()
                    .cloned()
                    .map(Change::PutRecord)
                    .chain(document.shares.iter().cloned().map(Change::PutShare)),
            );
            Ok(changes)
        }
        other => {
            let org = org.ok_or_else(missing)?;
            Planner { org, limits }.plan(other)
        }
    }
}

/// A planned Import whose records and shares are still in its document:
/// they are validated, and the change list goes without them until
/// [`ImportPlan::take_bulk`] moves them in, so that a large document is
/// never held twice (as records and as changes).
#[derive(Debug)]
pub struct ImportPlan {
    /// The changes other than the document's records and shares.
    pub changes: Vec<Change>,
    /// Where in `changes` the records, then the shares, go.
    at: usize,
}

/// What [`ImportPlan::take_bulk`] moved out of a document, to give it back
/// if the write must be planned again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedBulk {
    at: usize,
    records: usize,
    shares: usize,
}

impl ImportPlan {
    /// The whole change list, the document's records and shares moved (not
    /// copied) into it; `doc` is left without them. [`MovedBulk::give_back`]
    /// undoes it.
    pub fn take_bulk(self, doc: &mut OrgDocument) -> (Vec<Change>, MovedBulk) {
        let ImportPlan { mut changes, at } = self;
        let records = std::mem::take(&mut doc.records);
        let shares = std::mem::take(&mut doc.shares);
        let moved = MovedBulk {
            at,
            records: records.len(),
            shares: shares.len(),
        };
        changes.splice(
            at..at,
            records
                .into_iter()
                .map(Change::PutRecord)
                .chain(shares.into_iter().map(Change::PutShare)),
        );
        (changes, moved)
    }
}

impl MovedBulk {
    /// Puts the records and shares of `changes` back into `doc`, in their
    /// document order (so a new plan names the same `records[i]`), and
    /// drops the rest of the change list.
    pub fn give_back(self, mut changes: Vec<Change>, doc: &mut OrgDocument) {
        let end = (self.at + self.records + self.shares).min(changes.len());
        let start = self.at.min(end);
        doc.records.reserve(self.records);
        doc.shares.reserve(self.shares);
        for change in changes.drain(start..end) {
            match change {
                Change::PutRecord(r) => doc.records.push(r),
                Change::PutShare(s) => doc.shares.push(s),
                // Only records and shares were moved in at `at`.
                _ => {}
            }
        }
    }
}

/// Plans an Import without its records and shares (validated, not yet in
/// the change list): returns the other changes and where the records, then
/// the shares, go in them.
pub fn plan_import_apart(
    org: Option<&OrgState>,
    org_id: &str,
    document: &OrgDocument,
    replace: bool,
    limits: &Limits,
) -> Result<(Vec<Change>, usize)> {
    check_id("org_id", org_id, limits.id_length)?;
    if !document.organization.is_empty() && document.organization != org_id {
        return Err(Error::invalid(
            "organization",
            format!(
                "document is for '{}', not '{org_id}'",
                document.organization
            ),
        ));
    }
    plan_import(org, org_id, document, replace, limits)
}

/// [`plan_import_apart`] as an [`ImportPlan`].
pub fn plan_import_moving(
    org: Option<&OrgState>,
    org_id: &str,
    document: &OrgDocument,
    replace: bool,
    limits: &Limits,
) -> Result<ImportPlan> {
    let (changes, at) = plan_import_apart(org, org_id, document, replace, limits)?;
    Ok(ImportPlan { changes, at })
}

/// Plans a document import. The policy entities (modules, profiles,
/// roles, shifts, users, groups, rules) are planned one by one against a
/// scratch copy of the organization without its records, so each is
/// validated against everything before it. Records and shares, which only
/// refer to those entities and to records, are validated in bulk: their
/// references are looked up, never applied to the scratch copy, and a path
/// such as `records[12]` is only written out for an error.
fn plan_import<'d>(
    org: Option<&OrgState>,
    org_id: &str,
    doc: &'d OrgDocument,
    replace: bool,
    limits: &Limits,
) -> Result<(Vec<Change>, usize)> {
    check_document_graph(doc, limits)?;
    let mut changes = Vec::with_capacity(
        1 + doc.modules.len()
            + doc.profiles.len()
            + doc.roles.len()
            + doc.shifts.len()
            + doc.users.len()
            + doc.groups.len()
            + doc.sharing_rules.len(),
    );
    // A merge keeps the records already there: shares may name them.
    let kept = if replace { None } else { org };
    let mut scratch = match kept {
        Some(existing) => {
            let mut s = existing.clone_without_records();
            if let Some(patch) = &doc.settings {
                s.settings = patch.apply(&existing.settings);
                changes.push(Change::Settings(s.settings.clone()));
            }
            s
        }
        None => {
            let settings = settings_of(doc);
            changes.push(Change::CreateOrg(settings.clone()));
            OrgState::new(org_id, 0, 0, settings)
        }
    };
    let mut seen = Seen::default();
    let mut step = |path: &dyn Fn() -> String,
                    key: (&'static str, &'d str),
                    command: Command,
                    scratch: &mut OrgState,
                    changes: &mut Vec<Change>|
     -> Result<()> {
        seen.insert(key.0, key.1, path)?;
        let planned = Planner {
            org: scratch,
            limits,
        }
        .plan(&command)
        .map_err(|e| at_path(&path(), e))?;
        let mut inv = Invalidation::default();
        for change in &planned {
            scratch.apply(change, &mut inv);
        }
        changes.extend(planned);
        Ok(())
    };
    for (i, m) in doc.modules.iter().enumerate() {
        let path = || format!("modules[{i}]");
        let command = Command::PutModule(m.clone());
        step(
            &path,
            ("module", &m.id),
            command,
            &mut scratch,
            &mut changes,
        )?;
    }
    for (i, p) in doc.profiles.iter().enumerate() {
        let path = || format!("profiles[{i}]");
        let command = Command::PutProfile(p.clone());
        step(
            &path,
            ("profile", &p.id),
            command,
            &mut scratch,
            &mut changes,
        )?;
    }
    let roles = topo_sorted(
        doc.roles.iter().enumerate().collect(),
        |(_, r)| r.id.clone(),
        |(_, r)| r.parent.iter().cloned().collect(),
    );
    for (i, r) in roles {
        let path = || format!("roles[{i}]");
        let command = Command::PutRole(r.clone());
        step(&path, ("role", &r.id), command, &mut scratch, &mut changes)?;
    }
    for (i, s) in doc.shifts.iter().enumerate() {
        let path = || format!("shifts[{i}]");
        let command = Command::PutShift(s.clone());
        step(&path, ("shift", &s.id), command, &mut scratch, &mut changes)?;
    }
    let users = topo_sorted(
        doc.users.iter().enumerate().collect(),
        |(_, u)| u.id.clone(),
        |(_, u)| u.reports_to.iter().cloned().collect(),
    );
    for (i, u) in users {
        let path = || format!("users[{i}]");
        let command = Command::PutUser(u.clone());
        step(&path, ("user", &u.id), command, &mut scratch, &mut changes)?;
    }
    let groups = topo_sorted(
        doc.groups.iter().enumerate().collect(),
        |(_, g)| g.id.clone(),
        |(_, g)| g.groups.clone(),
    );
    for (i, g) in groups {
        let path = || format!("groups[{i}]");
        let command = Command::PutGroup(g.clone());
        step(&path, ("group", &g.id), command, &mut scratch, &mut changes)?;
    }

    let planner = Planner {
        org: &scratch,
        limits,
    };
    let mut records: FxHashMap<(&str, &str), usize> = FxHashMap::default();
    records.reserve(doc.records.len());
    for (i, r) in doc.records.iter().enumerate() {
        let path = || format!("records[{i}]");
        if let Some(first) = records.insert((r.module.as_str(), r.id.as_str()), i) {
            return Err(Error::invalid(
                format!("{}.id", path()),
                format!(
                    "record '{}/{}' is listed twice (first at records[{first}])",
                    r.module, r.id
                ),
            ));
        }
        planner
            .document_record(r)
            .map_err(|e| at_path(&path(), e))?;
    }
    let stored = |module: &str, id: &str| {
        kept.and_then(|o| o.modules.by_id(module))
            .is_some_and(|(_, m)| m.records.contains(id))
    };
    for (i, s) in doc.shares.iter().enumerate() {
        let listed = records.contains_key(&(s.module.as_str(), s.record.as_str()));
        planner
            .document_share(s, listed || stored(&s.module, &s.record))
            .map_err(|e| at_path(&format!("shares[{i}]"), e))?;
    }
    drop(records);
    // Records and shares go here, after the entities they name and before
    // the rules (which name none of them).
    let at = changes.len();

    for (i, r) in doc.sharing_rules.iter().enumerate() {
        let path = || format!("sharing_rules[{i}]");
        let command = Command::PutSharingRule(r.clone());
        step(
            &path,
            ("sharing rule", &r.id),
            command,
            &mut scratch,
            &mut changes,
        )?;
    }
    Ok((changes, at))
}

/// The ids a document has listed so far, by kind, with where each was
/// first listed, so that one listed twice is refused naming both places.
#[derive(Default)]
struct Seen<'d> {
    first: FxHashMap<(&'static str, &'d str), String>,
}

impl<'d> Seen<'d> {
    fn insert(&mut self, kind: &'static str, id: &'d str, path: &dyn Fn() -> String) -> Result<()> {
        match self.first.entry((kind, id)) {
            std::collections::hash_map::Entry::Occupied(first) => Err(Error::invalid(
                format!("{}.id", path()),
                format!("{kind} '{id}' is listed twice (first at {})", first.get()),
            )),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(path());
                Ok(())
            }
        }
    }
}

/// Prefixes the field of an error with the document path of its entity.
fn at_path(path: &str, e: Error) -> Error {
    match e {
        Error::InvalidArgument { field, rule } => Error::InvalidArgument {
            field: format!("{path}.{field}"),
            rule,
        },
        Error::NotFound { kind, id, field } => Error::NotFound {
            kind,
            id,
            field: format!("{path}.{field}"),
        },
        Error::FailedPrecondition(m) => Error::FailedPrecondition(format!("{path}: {m}")),
        other => other,
    }
}

/// Whether a profile reads whole modules regardless of sharing.
fn reads_everything(profile: &ProfileDef) -> bool {
    !profile.view_all.is_empty() || !profile.modify_all.is_empty()
}

/// A stored record as written, if it exists.
pub fn stored_record(org: &OrgState, module: &str, id: &str) -> Option<RecordDef> {
    let (_, m) = org.modules.by_id(module)?;
    let r = m.records.get(id)?;
    Some(RecordDef {
        module: module.to_string(),
        id: id.to_string(),
        owner: org.owner_ref(r.owner),
        private: r.private,
        attributes: r.attributes.to_map(m.records.terms()),
    })
}

/// An attribute key as an error may echo it: control characters escaped,
/// bounded like every echoed id.
/// Attribute limits: how many, and each key's and value's size and
/// characters (keys end up in rules, logs and error messages). One rule for
/// stored records and records described in a check; `prefix` is the field
/// the attributes sit in.
pub(crate) fn check_attributes(
    prefix: &str,
    attributes: &BTreeMap<String, String>,
    limits: &Limits,
) -> Result<()> {
    if attributes.len() > limits.record_attributes {
        return Err(Error::invalid(
            prefix,
            format!(
                "a record has at most {} attributes, got {}",
                limits.record_attributes,
                attributes.len()
            ),
        ));
    }
    for (key, value) in attributes {
        let field = || format!("{prefix}.{}", shown_key(key));
        let length = key.chars().count();
        if length == 0 || length > limits.attribute_key_length {
            return Err(Error::invalid(
                field(),
                format!(
                    "an attribute key is 1 to {} characters, got {length}",
                    limits.attribute_key_length
                ),
            ));
        }
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            return Err(Error::invalid(
                field(),
                "an attribute key is made of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
            ));
        }
        if value.len() > limits.attribute_value_bytes {
            return Err(Error::invalid(
                field(),
                format!(
                    "an attribute value is at most {} bytes, got {}",
                    limits.attribute_value_bytes,
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

fn shown_key(key: &str) -> String {
    let escaped: String = key.chars().flat_map(char::escape_debug).collect();
    bounded(&escaped).into_owned()
}

/// A document's references of one kind (role → parent, group → nested
/// groups, user → manager) as a graph over the positions of its entities.
/// References to ids the document does not list are left out: those
/// entities exist already (or not at all), and planning them one by one
/// checks them.
struct DocGraph<'d> {
    ids: Vec<&'d str>,
    edges: Vec<Vec<usize>>,
}

impl<'d> DocGraph<'d> {
    fn new<T>(
        items: &'d [T],
        id: impl Fn(&'d T) -> &'d str,
        refs: impl Fn(&'d T) -> Vec<&'d str>,
    ) -> Self {
        let ids: Vec<&str> = items.iter().map(&id).collect();
        let mut position: rustc_hash::FxHashMap<&str, usize> = Default::default();
        for (i, id) in ids.iter().enumerate() {
            position.entry(id).or_insert(i);
        }
        let edges = items
            .iter()
            .map(|item| {
                refs(item)
                    .into_iter()
                    .filter_map(|r| position.get(r).copied())
                    .collect()
            })
            .collect();
        DocGraph { ids, edges }
    }

    /// One depth-first pass (iterative, so a long chain cannot overflow the
    /// stack): either a cycle, as the ids along it with the first repeated
    /// at the end, or the height of every entity (edges on its longest
    /// outgoing path). Linear in entities plus references.
    fn heights(&self) -> std::result::Result<Vec<usize>, Vec<&'d str>> {
        const NEW: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let n = self.ids.len();
        let mut colour = vec![NEW; n];
        let mut height = vec![0usize; n];
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if colour[root] != NEW {
                continue;
            }
            colour[root] = OPEN;
            stack.push((root, 0));
            while let Some(top) = stack.last_mut() {
                let node = top.0;
                match self.edges[node].get(top.1).copied() {
                    Some(to) => {
                        top.1 += 1;
                        match colour[to] {
                            NEW => {
                                colour[to] = OPEN;
                                stack.push((to, 0));
                            }
                            OPEN => {
                                let from = stack.iter().position(|(v, _)| *v == to).unwrap_or(0);
                                let mut cycle: Vec<&str> =
                                    stack[from..].iter().map(|(v, _)| self.ids[*v]).collect();
                                cycle.push(self.ids[to]);
                                return Err(cycle);
                            }
                            _ => {}
                        }
                    }
                    None => {
                        height[node] = self.edges[node]
                            .iter()
                            .map(|c| height[*c] + 1)
                            .max()
                            .unwrap_or(0);
                        colour[node] = DONE;
                        stack.pop();
                    }
                }
            }
        }
        Ok(height)
    }
}

/// Refuses a document whose roles, groups or reporting lines form a cycle
/// among themselves, or whose role chains or group nesting are deeper than
/// the limits, naming the cycle or the deepest entity. It runs before any
/// entity is planned, and in time linear in the document, so that a long
/// chain is refused at once rather than planned entity by entity.
fn check_document_graph(doc: &OrgDocument, limits: &Limits) -> Result<()> {
    let cycle =
        |kind: &str, c: Vec<&str>| Error::precondition(format!("{kind} cycle: {}", c.join(" → ")));
    let deepest = |heights: &[usize]| {
        heights
            .iter()
            .enumerate()
            .max_by_key(|(i, h)| (**h, std::cmp::Reverse(*i)))
            .map(|(i, h)| (i, *h))
    };
    let roles = DocGraph::new(
        &doc.roles,
        |r| r.id.as_str(),
        |r| r.parent.iter().map(String::as_str).collect(),
    );
    let heights = roles.heights().map_err(|c| cycle("role", c))?;
    if let Some((i, depth)) = deepest(&heights) {
        if depth > limits.role_depth {
            return Err(Error::precondition(format!(
                "roles[{i}]: role depth {depth} (from '{}' up to its root) would exceed the limit of {}",
                roles.ids[i], limits.role_depth
            )));
        }
    }
    let groups = DocGraph::new(
        &doc.groups,
        |g| g.id.as_str(),
        |g| g.groups.iter().map(String::as_str).collect(),
    );
    let heights = groups.heights().map_err(|c| cycle("group membership", c))?;
    if let Some((i, depth)) = deepest(&heights) {
        if depth > limits.group_depth {
            return Err(Error::precondition(format!(
                "groups[{i}]: group nesting depth {depth} (below '{}') would exceed the limit of {}",
                groups.ids[i], limits.group_depth
            )));
        }
    }
    let reports = DocGraph::new(
        &doc.users,
        |u| u.id.as_str(),
        |u| u.reports_to.iter().map(String::as_str).collect(),
    );
    reports.heights().map_err(|c| cycle("reporting", c))?;
    Ok(())
}

#[cfg(test)]
#[path = "plan_graph_tests.rs"]
mod graph_tests;

/// Validates and plans one command against one organization.
struct Planner<'a> {
    org: &'a OrgState,
    limits: &'a Limits,
}

impl Planner<'_> {
    fn plan(&self, command: &Command) -> Result<Vec<Change>> {
        match command {
            Command::CreateOrganization(_) | Command::Import { .. } => Err(Error::invalid(
                "command",
                "organizations are created and imported by the engine",
            )),
            Command::UpdateSettings(patch) => self.update_settings(patch),
            Command::DeleteOrganization => Ok(vec![Change::DeleteOrg]),
            Command::PutModule(def) => self.put_module(def),
            Command::DeleteModule { id, cascade } => {
                let changes = self.delete_module(id)?;
                self.refuse_references("module", id, *cascade, changes)
            }
            Command::PutProfile(def) => self.put_profile(def),
            Command::DeleteProfile { id, cascade } => {
                let changes = self.delete_profile(id)?;
                self.refuse_references("profile", id, *cascade, changes)
            }
            Command::PutRole(def) => self.put_role(def),
            Command::DeleteRole {
                id,
                transfer_to,
                cascade,
            } => {
                let changes = self.delete_role(id, transfer_to.as_deref())?;
                self.refuse_references("role", id, *cascade, changes)
            }
            Command::PutShift(def) => self.put_shift(def),
            Command::DeleteShift { id, cascade } => {
                let changes = self.delete_shift(id)?;
                self.refuse_references("shift", id, *cascade, changes)
            }
            Command::PutUser(def) => self.put_user(def),
            Command::DeleteUser {
                id,
                transfer_to,
                cascade,
            } => {
                let changes = self.delete_user(id, transfer_to.as_ref())?;
                self.refuse_references("user", id, *cascade, changes)
            }
            Command::PutGroup(def) => self.put_group(def),
            Command::DeleteGroup {
                id,
                transfer_to,
                cascade,
            } => {
                let changes = self.delete_group(id, transfer_to.as_ref())?;
                self.refuse_references("group", id, *cascade, changes)
            }
            Command::PutSharingRule(def) => self.put_rule(def),
            Command::DeleteSharingRule(id) => {
                self.id("id", id)?;
                if !self.org.rule_modules.contains_key(id) {
                    return Err(Error::not_found("sharing rule", id.clone(), "id"));
                }
                Ok(vec![Change::DeleteRule { id: id.clone() }])
            }
            Command::SetOwner(def) => self.set_owner(def),
            Command::DeleteRecord { module, id } => {
                self.record_exists(module, id)?;
                Ok(vec![Change::DeleteRecord {
                    module: module.clone(),
                    id: id.clone(),
                }])
            }
            Command::Share(shares) => self.share(shares),
            Command::Unshare(shares) => self.unshare(shares),
        }
    }

    fn id(&self, field: &str, id: &str) -> Result<()> {
        check_id(field, id, self.limits.id_length)
    }

    fn update_settings(&self, patch: &SettingsPatch) -> Result<Vec<Change>> {
        if patch.is_empty() {
            return Err(Error::invalid(
                "settings",
                "name at least one setting to change",
            ));
        }
        Ok(vec![Change::Settings(patch.apply(&self.org.settings))])
    }

    /// Passes a delete's planned `changes` when nothing but the entity itself
    /// is removed, or the request said `cascade`; else refuses it, listing
    /// what refers to the entity. Moves (users and sub-roles to
    /// `transfer_to`, records to their new owner, reports to the next
    /// manager) are governed by `transfer_to`, not by `cascade`.
    fn refuse_references(
        &self,
        kind: &'static str,
        id: &str,
        cascade: bool,
        changes: Vec<Change>,
    ) -> Result<Vec<Change>> {
        if cascade {
            return Ok(changes);
        }
        let references: Vec<EntityRef> = report(self.org, &changes)
            .removed
            .into_iter()
            .filter(|r| !(r.kind == kind && r.id == id))
            .collect();
        if references.is_empty() {
            return Ok(changes);
        }
        let listed: Vec<String> = references
            .iter()
            .take(REFERENCES_LISTED)
            .map(ToString::to_string)
            .collect();
        let more = references.len().saturating_sub(REFERENCES_LISTED);
        Err(Error::precondition(format!(
            "{kind} '{id}' is referred to by {} entries: {}{}; name cascade: true to remove them with it",
            references.len(),
            listed.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )))
    }

    fn ids(&self, field: &str, ids: &[String]) -> Result<()> {
        for (i, id) in ids.iter().enumerate() {
            self.id(&format!("{field}[{i}]"), id)?;
        }
        Ok(())
    }

    fn module_exists(&self, field: &str, id: &str) -> Result<()> {
        self.id(field, id)?;
        if self.org.modules.contains(id) {
            Ok(())
        } else {
            Err(Error::not_found("module", id, field))
        }
    }

    fn user_exists(&self, field: &str, id: &str) -> Result<UserIx> {
        self.id(field, id)?;
        self.org
            .users
            .ix(id)
            .map(UserIx)
            .ok_or_else(|| Error::not_found("user", id, field))
    }

    fn role_exists(&self, field: &str, id: &str) -> Result<RoleIx> {
        self.id(field, id)?;
        self.org
            .roles
            .ix(id)
            .map(RoleIx)
            .ok_or_else(|| Error::not_found("role", id, field))
    }

    fn group_exists(&self, field: &str, id: &str) -> Result<GroupIx> {
        self.id(field, id)?;
        self.org
            .groups
            .ix(id)
            .map(GroupIx)
            .ok_or_else(|| Error::not_found("group", id, field))
    }

    fn profiles_exist(&self, field: &str, ids: &[String]) -> Result<()> {
        for (i, p) in ids.iter().enumerate() {
            let f = format!("{field}[{i}]");
            self.id(&f, p)?;
            if !self.org.profiles.contains(p) {
                return Err(Error::not_found("profile", p.clone(), f));
            }
        }
        Ok(())
    }

    fn owner_exists(&self, field: &str, owner: &OwnerRef) -> Result<Owner> {
        match owner {
            OwnerRef::User(u) => self
                .user_exists(&format!("{field}.user"), u)
                .map(Owner::User),
            OwnerRef::Group(g) => self
                .group_exists(&format!("{field}.group"), g)
                .map(Owner::Group),
        }
    }

    fn grantee_exists(&self, field: &str, grantee: &Grantee) -> Result<GranteeIx> {
        match grantee {
            Grantee::User(u) => self
                .user_exists(&format!("{field}.user"), u)
                .map(GranteeIx::User),
            Grantee::Group(g) => self
                .group_exists(&format!("{field}.group"), g)
                .map(GranteeIx::Group),
            Grantee::Role(r) => self
                .role_exists(&format!("{field}.role"), r)
                .map(GranteeIx::Role),
            Grantee::RoleAndSubordinates(r) => self
                .role_exists(&format!("{field}.role_and_subordinates"), r)
                .map(GranteeIx::RoleAndSubordinates),
        }
    }

    fn member_set_exists(&self, field: &str, set: &MemberSet) -> Result<()> {
        match set {
            MemberSet::Role(r) => self.role_exists(&format!("{field}.role"), r).map(|_| ()),
            MemberSet::RoleAndSubordinates(r) => self
                .role_exists(&format!("{field}.role_and_subordinates"), r)
                .map(|_| ()),
            MemberSet::Group(g) => self.group_exists(&format!("{field}.group"), g).map(|_| ()),
        }
    }

    fn record_exists(&self, module: &str, id: &str) -> Result<()> {
        self.module_exists("module", module)?;
        self.id("record_id", id)?;
        let found = self
            .org
            .modules
            .by_id(module)
            .is_some_and(|(_, m)| m.records.contains(id));
        if found {
            Ok(())
        } else {
            Err(Error::not_found(
                "record",
                format!("{module}/{id}"),
                "record_id",
            ))
        }
    }

    fn put_module(&self, def: &ModuleDef) -> Result<Vec<Change>> {
        self.id("id", &def.id)?;
        self.ids("fields", &def.fields)?;
        let mut fields: Vec<&String> = def.fields.iter().collect();
        fields.sort();
        if let Some(w) = fields.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid(
                "fields",
                format!("field '{}' is listed twice", w[0]),
            ));
        }
        for (action, level) in &def.actions {
            let field = format!("actions.{action}");
            self.id(&field, action)?;
            if matches!(
                action.as_str(),
                "view" | "create" | "edit" | "delete" | "share" | "assign"
            ) {
                return Err(Error::invalid(
                    field,
                    "a custom action cannot take the name of a standard action",
                ));
            }
            if *level == AccessLevel::None {
                return Err(Error::invalid(
                    field,
                    "a custom action requires READ, READ_WRITE or FULL",
                ));
            }
        }
        Ok(vec![Change::PutModule(def.clone())])
    }

    fn delete_module(&self, id: &str) -> Result<Vec<Change>> {
        self.module_exists("id", id)?;
        let mut changes = Vec::new();
        for (_, p) in self.org.profiles.iter() {
            let mentions = p.def.modules.contains_key(id)
                || p.def.view_all.iter().any(|m| m == id)
                || p.def.modify_all.iter().any(|m| m == id)
                || p.def.fields.contains_key(id);
            if mentions {
                let mut def = p.def.clone();
                def.modules.remove(id);
                def.view_all.retain(|m| m != id);
                def.modify_all.retain(|m| m != id);
                def.fields.remove(id);
                changes.push(Change::PutProfile(def));
            }
        }
        changes.push(Change::DeleteModule { id: id.to_string() });
        Ok(changes)
    }

    fn put_profile(&self, def: &ProfileDef) -> Result<Vec<Change>> {
        self.id("id", &def.id)?;
        for (module_id, actions) in &def.modules {
            let field = format!("modules.{module_id}");
            self.module_exists(&field, module_id)?;
            let Some((_, module)) = self.org.modules.by_id(module_id) else {
                continue;
            };
            for (i, action) in actions.iter().enumerate() {
                if module.required_level(action).is_none() {
                    return Err(Error::invalid(
                        format!("{field}[{i}]"),
                        format!("'{action}' is neither a standard action nor a custom action of '{module_id}'"),
                    ));
                }
            }
        }
        for (i, m) in def.view_all.iter().enumerate() {
            self.module_exists(&format!("view_all[{i}]"), m)?;
        }
        if reads_everything(def) {
            let guest = self.org.users.iter().find(|(_, u)| {
                u.def.kind == UserKind::Guest && u.def.profiles.iter().any(|p| p == &def.id)
            });
            if let Some((_, g)) = guest {
                let field = if def.view_all.is_empty() {
                    "modify_all"
                } else {
                    "view_all"
                };
                return Err(Error::invalid(
                    field,
                    format!(
                        "guest '{}' holds this profile, and view_all or modify_all is never given to a guest",
                        g.def.id
                    ),
                ));
            }
        }
        for (i, m) in def.modify_all.iter().enumerate() {
            self.module_exists(&format!("modify_all[{i}]"), m)?;
        }
        for (module_id, fields) in &def.fields {
            let field = format!("fields.{module_id}");
            self.module_exists(&field, module_id)?;
            if let Some((_, module)) = self.org.modules.by_id(module_id) {
                if let Some(f) = fields.keys().find(|f| !module.fields.contains(*f)) {
                    return Err(Error::invalid(
                        format!("{field}.{f}"),
                        format!("module '{module_id}' has no field '{f}'"),
                    ));
                }
            }
        }
        Ok(vec![Change::PutProfile(def.clone())])
    }

    fn delete_profile(&self, id: &str) -> Result<Vec<Change>> {
        self.id("id", id)?;
        if !self.org.profiles.contains(id) {
            return Err(Error::not_found("profile", id, "id"));
        }
        let mut changes = Vec::new();
        for (_, r) in self.org.roles.iter() {
            if r.def.profiles.iter().any(|p| p == id) {
                let mut def = r.def.clone();
                def.profiles.retain(|p| p != id);
                changes.push(Change::PutRole(def));
            }
        }
        for (_, u) in self.org.users.iter() {
            if u.def.profiles.iter().any(|p| p == id) {
                let mut def = u.def.clone();
                def.profiles.retain(|p| p != id);
                changes.push(Change::PutUser(def));
            }
        }
        changes.push(Change::DeleteProfile { id: id.to_string() });
        Ok(changes)
    }

    /// Edges from a root down to `role` (0 for a root).
    fn role_depth(&self, role: RoleIx) -> usize {
        self.org.role_ancestors(role).len()
    }

    /// Edges from `role` down to its deepest descendant.
    fn role_height(&self, role: RoleIx) -> usize {
        let mut height = 0;
        let mut level = vec![role];
        let mut guard = 0;
        loop {
            let next: Vec<RoleIx> = level
                .iter()
                .filter_map(|r| self.org.role(*r))
                .flat_map(|r| r.children.iter().copied())
                .collect();
            if next.is_empty() || guard > self.limits.role_depth + 1 {
                return height;
            }
            height += 1;
            guard += 1;
            level = next;
        }
    }

    fn put_role(&self, def: &RoleDef) -> Result<Vec<Change>> {
        self.id("id", &def.id)?;
        self.profiles_exist("profiles", &def.profiles)?;
        let this = self.org.roles.ix(&def.id).map(RoleIx);
        if let Some(parent_id) = &def.parent {
            let parent = self.role_exists("parent", parent_id)?;
            if let Some(this) = this {
                if parent == this || self.org.role_ancestors(parent).contains(&this) {
                    return Err(Error::precondition(format!(
                        "role cycle: '{}' cannot be placed under '{parent_id}', which is itself or below it",
                        def.id
                    )));
                }
            }
            let height = this.map_or(0, |r| self.role_height(r));
            let depth = self.role_depth(parent) + 1 + height;
            if depth > self.limits.role_depth {
                return Err(Error::precondition(format!(
                    "role depth {depth} would exceed the limit of {}",
                    self.limits.role_depth
                )));
            }
        }
        Ok(vec![Change::PutRole(def.clone())])
    }

    fn delete_role(&self, id: &str, transfer_to: Option<&str>) -> Result<Vec<Change>> {
        let ix = self.role_exists("id", id)?;
        let Some(role) = self.org.role(ix) else {
            return Err(Error::not_found("role", id, "id"));
        };
        let target = match transfer_to {
            Some(t) => {
                let t_ix = self.role_exists("transfer_to", t)?;
                if self.org.role_subtree(ix).contains(&t_ix) {
                    return Err(Error::invalid(
                        "transfer_to",
                        "the role taking over must be outside the deleted role and its sub-roles",
                    ));
                }
                Some(t.to_string())
            }
            None => None,
        };
        if target.is_none() && (!role.users.is_empty() || !role.children.is_empty()) {
            return Err(Error::precondition(format!(
                "role '{id}' has {} users and {} sub-roles: name transfer_to",
                role.users.len(),
                role.children.len()
            )));
        }
        let mut changes = Vec::new();
        for u in &role.users {
            if let Some(user) = self.org.user(*u) {
                let mut def = user.def.clone();
                def.role = target.clone();
                changes.push(Change::PutUser(def));
            }
        }
        for c in &role.children {
            if let Some(child) = self.org.role(*c) {
                let mut def = child.def.clone();
                def.parent = target.clone();
                changes.push(Change::PutRole(def));
            }
        }
        let mut groups: Vec<GroupIx> = role.in_groups.clone();
        groups.extend(role.in_groups_with_subordinates.iter().copied());
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            if let Some(group) = self.org.group(g) {
                let mut def = group.def.clone();
                def.roles.retain(|r| r != id);
                def.roles_and_subordinates.retain(|r| r != id);
                changes.push(Change::PutGroup(def));
            }
        }
        self.unshare_all(
            &[GranteeIx::Role(ix), GranteeIx::RoleAndSubordinates(ix)],
            &mut changes,
        );
        let names_role = |s: &MemberSet| match s {
            MemberSet::Role(r) | MemberSet::RoleAndSubordinates(r) => r == id,
            MemberSet::Group(_) => false,
        };
        self.drop_rules(
            |r| r.from.as_ref().is_some_and(names_role) || names_role(&r.to),
            &mut changes,
        );
        changes.push(Change::DeleteRole { id: id.to_string() });
        Ok(changes)
    }

    fn unshare_all(&self, grantees: &[GranteeIx], changes: &mut Vec<Change>) {
        for grantee in grantees {
            for (m, record) in self.org.shares_of(*grantee) {
                changes.push(Change::DeleteShare {
                    module: self.org.module_id(m).to_string(),
                    record: record.to_string(),
                    grantee: self.org.grantee_ref(*grantee),
                });
            }
        }
    }

    fn drop_rules(&self, names: impl Fn(&SharingRuleDef) -> bool, changes: &mut Vec<Change>) {
        for (_, module) in self.org.modules.iter() {
            for rule in module.rules.values() {
                if names(&rule.def) {
                    changes.push(Change::DeleteRule {
                        id: rule.def.id.clone(),
                    });
                }
            }
        }
    }

    fn put_shift(&self, def: &ShiftDef) -> Result<Vec<Change>> {
        self.id("id", &def.id)?;
        compile_shift("", def).map_err(|e| match e {
            Error::InvalidArgument { field, rule } => Error::InvalidArgument {
                field: field.trim_start_matches('.').to_string(),
                rule,
            },
            other => other,
        })?;
        if !self.org.shifts.contains(&def.id) && self.org.shifts.len() >= self.limits.shifts {
            return Err(Error::precondition(format!(
                "an organization has at most {} shifts",
                self.limits.shifts
            )));
        }
        Ok(vec![Change::PutShift(def.clone())])
    }

    fn delete_shift(&self, id: &str) -> Result<Vec<Change>> {
        self.id("id", id)?;
        let Some(ix) = self.org.shifts.ix(id) else {
            return Err(Error::not_found("shift", id, "id"));
        };
        let mut changes = Vec::new();
        for (_, u) in self.org.users.iter() {
            if u.shift.map(|s| s.0) == Some(ix) {
                let mut def = u.def.clone();
                def.shift = None;
                changes.push(Change::PutUser(def));
            }
        }
        changes.push(Change::DeleteShift { id: id.to_string() });
        Ok(changes)
    }

    fn put_user(&self, def: &UserDef) -> Result<Vec<Change>> {
        self.id("id", &def.id)?;
        let mut def = def.clone();
        if def.principal.is_empty() {
            def.principal = def.id.clone();
        }
        if def.principal.len() > 256
            || def
                .principal
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid(
                "principal",
                "a principal is at most 256 characters, without spaces or control characters",
            ));
        }
        let this = self.org.users.ix(&def.id).map(UserIx);
        if let Some(other) = self.org.principals.get(&def.principal) {
            if Some(*other) != this {
                return Err(Error::AlreadyExists {
                    kind: "principal",
                    id: format!("{} (user '{}')", def.principal, self.org.user_id(*other)),
                });
            }
        }
        match def.kind {
            UserKind::Member => {
                let Some(role) = &def.role else {
                    return Err(Error::invalid("role", "a member needs exactly one role"));
                };
                self.role_exists("role", role)?;
            }
            UserKind::Guest => {
                if def.role.is_some() {
                    return Err(Error::invalid("role", "a guest has no role"));
                }
                if def.reports_to.is_some() {
                    return Err(Error::invalid("reports_to", "a guest reports to no one"));
                }
                if let Some(u) = this.and_then(|u| self.org.user(u)) {
                    if !u.reports.is_empty() {
                        return Err(Error::invalid(
                            "kind",
                            "users report to this user, and no one reports to a guest",
                        ));
                    }
                    if let Some(g) = u.leads.first() {
                        return Err(Error::invalid(
                            "kind",
                            format!(
                                "this user leads group '{}', and a guest is never a lead",
                                self.org.group_id(*g)
                            ),
                        ));
                    }
                }
            }
        }
        self.profiles_exist("profiles", &def.profiles)?;
        if def.kind == UserKind::Guest {
            for (i, p) in def.profiles.iter().enumerate() {
                if self
                    .org
                    .profiles
                    .by_id(p)
                    .is_some_and(|(_, profile)| reads_everything(&profile.def))
                {
                    return Err(Error::invalid(
                        format!("profiles[{i}]"),
                        format!("profile '{p}' has view_all or modify_all, which is never given to a guest"),
                    ));
                }
            }
        }
        if let Some(shift) = &def.shift {
            self.id("shift", shift)?;
            if !self.org.shifts.contains(shift) {
                return Err(Error::not_found("shift", shift.clone(), "shift"));
            }
        }
        if let Some(manager) = &def.reports_to {
            let m = self.user_exists("reports_to", manager)?;
            if self
                .org
                .user(m)
                .is_some_and(|u| u.def.kind == UserKind::Guest)
            {
                return Err(Error::invalid("reports_to", "no one reports to a guest"));
            }
            if let Some(this) = this {
                if m == this || self.org.managers(m).contains(&this) {
                    return Err(Error::precondition(format!(
                        "reporting cycle: '{}' cannot report to '{manager}', who reports to it",
                        def.id
                    )));
                }
            }
        }
        Ok(vec![Change::PutUser(def)])
    }

    fn transfer_target(
        &self,
        transfer_to: Option<&OwnerRef>,
        deleted: Owner,
    ) -> Result<Option<Owner>> {
        let Some(t) = transfer_to else {
            return Ok(None);
        };
        let target = self.owner_exists("transfer_to", t)?;
        if target == deleted {
            return Err(Error::invalid(
                "transfer_to",
                "cannot transfer to what is being deleted",
            ));
        }
        Ok(Some(target))
    }

    /// Records owned by `owner`, across modules, as re-owned by `to`.
    fn transfer_records(&self, owner: Owner, to: &OwnerRef, changes: &mut Vec<Change>) {
        for (_, module) in self.org.modules.iter() {
            let mut owned: Vec<_> = module.records.owned_by(owner).map(|(_, r)| r).collect();
            owned.sort_unstable_by(|a, b| a.id().cmp(b.id()));
            for record in owned {
                changes.push(Change::PutRecord(RecordDef {
                    module: module.def.id.clone(),
                    id: record.id().to_string(),
                    owner: to.clone(),
                    private: record.private,
                    attributes: record.attributes.to_map(module.records.terms()),
                }));
            }
        }
    }

    fn owned_count(&self, owner: Owner) -> usize {
        self.org
            .modules
            .iter()
            .map(|(_, m)| m.records.owned_count(owner))
            .sum()
    }

    fn delete_user(&self, id: &str, transfer_to: Option<&OwnerRef>) -> Result<Vec<Change>> {
        let ix = self.user_exists("id", id)?;
        let Some(user) = self.org.user(ix) else {
            return Err(Error::not_found("user", id, "id"));
        };
        let target = self.transfer_target(transfer_to, Owner::User(ix))?;
        let owned = self.owned_count(Owner::User(ix));
        if owned > 0 && target.is_none() {
            return Err(Error::precondition(format!(
                "user '{id}' owns {owned} records: name transfer_to"
            )));
        }
        let new_group_owner = match (target, transfer_to) {
            (Some(Owner::User(_)), Some(OwnerRef::User(u))) => Some(u.clone()),
            _ => None,
        };
        if !user.owns_groups.is_empty() && new_group_owner.is_none() {
            return Err(Error::precondition(format!(
                "user '{id}' owns {} personal groups: name a user as transfer_to",
                user.owns_groups.len()
            )));
        }
        let mut changes = Vec::new();
        if let Some(to) = transfer_to {
            self.transfer_records(Owner::User(ix), to, &mut changes);
        }
        let mut edited: BTreeMap<GroupIx, GroupDef> = BTreeMap::new();
        for g in user
            .in_groups
            .iter()
            .chain(&user.leads)
            .chain(&user.owns_groups)
        {
            if let Some(group) = self.org.group(*g) {
                let def = edited.entry(*g).or_insert_with(|| group.def.clone());
                def.users.retain(|u| u != id);
                def.leads.retain(|u| u != id);
                if def.owner.as_deref() == Some(id) {
                    def.owner = new_group_owner.clone();
                }
            }
        }
        changes.extend(edited.into_values().map(Change::PutGroup));
        for r in &user.reports {
            if let Some(report) = self.org.user(*r) {
                let mut def = report.def.clone();
                def.reports_to = user.def.reports_to.clone();
                changes.push(Change::PutUser(def));
            }
        }
        self.unshare_all(&[GranteeIx::User(ix)], &mut changes);
        changes.push(Change::DeleteUser { id: id.to_string() });
        Ok(changes)
    }

    /// Edges from `group` down its longest chain of nested groups.
    fn group_height(&self, group: GroupIx, nested: &[GroupIx]) -> usize {
        let mut memo: BTreeMap<GroupIx, usize> = BTreeMap::new();
        fn height(
            planner: &Planner<'_>,
            g: GroupIx,
            memo: &mut BTreeMap<GroupIx, usize>,
            guard: usize,
        ) -> usize {
            if let Some(h) = memo.get(&g) {
                return *h;
            }
            let h = if guard > planner.limits.group_depth + 1 {
                guard
            } else {
                planner
                    .org
                    .group(g)
                    .map(|node| {
                        node.groups
                            .iter()
                            .map(|c| 1 + height(planner, *c, memo, guard + 1))
                            .max()
                            .unwrap_or(0)
                    })
                    .unwrap_or(0)
            };
            memo.insert(g, h);
            h
        }
        let _ = group;
        nested
            .iter()
            .map(|c| 1 + height(self, *c, &mut memo, 1))
            .max()
            .unwrap_or(0)
    }

    /// Edges from `group` up its longest chain of containers.
    fn group_reach_up(&self, group: GroupIx) -> usize {
        let mut depth = 0;
        let mut level = vec![group];
        loop {
            let next: Vec<GroupIx> = level
                .iter()
                .filter_map(|g| self.org.group(*g))
                .flat_map(|g| g.containers.iter().copied())
                .collect();
            if next.is_empty() || depth > self.limits.group_depth + 1 {
                return depth;
            }
            depth += 1;
            level = next;
        }
    }

    fn put_group(&self, def: &GroupDef) -> Result<Vec<Change>> {
        self.id("id", &def.id)?;
        match def.kind {
            GroupKind::Personal => {
                let Some(owner) = &def.owner else {
                    return Err(Error::invalid("owner", "a personal group needs an owner"));
                };
                self.user_exists("owner", owner)?;
                if let Some((_, existing)) = self.org.groups.by_id(&def.id) {
                    if let Some(c) = existing.containers.first() {
                        return Err(Error::invalid(
                            "kind",
                            format!(
                                "group '{}' nests this group, and a personal group is never nested",
                                self.org.group_id(*c)
                            ),
                        ));
                    }
                    let from_rule = self.org.modules.iter().find_map(|(_, m)| {
                        m.rules.values().find(
                            |r| matches!(&r.def.from, Some(MemberSet::Group(g)) if *g == def.id),
                        )
                    });
                    if let Some(rule) = from_rule {
                        return Err(Error::invalid(
                            "kind",
                            format!(
                                "sharing rule '{}' shares the records of this group's members, and a personal group is never a rule's from set",
                                rule.def.id
                            ),
                        ));
                    }
                }
                // A circle to share with, never a source of power over
                // others' records: nothing that reaches beyond listed users.
                for (field, listed) in [
                    ("roles", def.roles.len()),
                    ("roles_and_subordinates", def.roles_and_subordinates.len()),
                    ("groups", def.groups.len()),
                    ("leads", def.leads.len()),
                ] {
                    if listed > 0 {
                        return Err(Error::invalid(
                            field,
                            "a personal group lists users only and has no leads",
                        ));
                    }
                }
            }
            GroupKind::Organization => {
                if def.owner.is_some() {
                    return Err(Error::invalid(
                        "owner",
                        "an organization group has no owner (administrators manage it)",
                    ));
                }
            }
        }
        let listed =
            def.users.len() + def.roles.len() + def.roles_and_subordinates.len() + def.groups.len();
        if listed > self.limits.group_members {
            return Err(Error::invalid(
                "users",
                format!(
                    "a group lists at most {} members across users, roles, roles_and_subordinates and groups, got {listed}",
                    self.limits.group_members
                ),
            ));
        }
        for (i, u) in def.users.iter().enumerate() {
            self.user_exists(&format!("users[{i}]"), u)?;
        }
        for (i, u) in def.leads.iter().enumerate() {
            let field = format!("leads[{i}]");
            let lead = self.user_exists(&field, u)?;
            if self
                .org
                .user(lead)
                .is_some_and(|l| l.def.kind == UserKind::Guest)
            {
                return Err(Error::invalid(
                    field,
                    format!("'{u}' is a guest, and a guest is never a lead"),
                ));
            }
        }
        for (i, r) in def.roles.iter().enumerate() {
            self.role_exists(&format!("roles[{i}]"), r)?;
        }
        for (i, r) in def.roles_and_subordinates.iter().enumerate() {
            self.role_exists(&format!("roles_and_subordinates[{i}]"), r)?;
        }
        let this = self.org.groups.ix(&def.id).map(GroupIx);
        let mut nested = Vec::new();
        for (i, g) in def.groups.iter().enumerate() {
            if g == &def.id {
                return Err(Error::precondition(format!(
                    "group membership cycle: '{g}' cannot contain itself"
                )));
            }
            let n = self.group_exists(&format!("groups[{i}]"), g)?;
            if self
                .org
                .group(n)
                .is_some_and(|nested| nested.def.kind == GroupKind::Personal)
            {
                // Its owner would decide who is in this group too.
                return Err(Error::invalid(
                    format!("groups[{i}]"),
                    format!("'{g}' is a personal group, which is never nested in another group"),
                ));
            }
            if let Some(this) = this {
                if self.org.group_nested(n).contains(&this) {
                    return Err(Error::precondition(format!(
                        "group membership cycle: '{g}' already contains '{}'",
                        def.id
                    )));
                }
            }
            nested.push(n);
        }
        let up = this.map_or(0, |g| self.group_reach_up(g));
        let depth = up + self.group_height(this.unwrap_or(GroupIx(u32::MAX)), &nested);
        if depth > self.limits.group_depth {
            return Err(Error::precondition(format!(
                "group nesting depth {depth} would exceed the limit of {}",
                self.limits.group_depth
            )));
        }
        Ok(vec![Change::PutGroup(def.clone())])
    }

    fn delete_group(&self, id: &str, transfer_to: Option<&OwnerRef>) -> Result<Vec<Change>> {
        let ix = self.group_exists("id", id)?;
        let Some(group) = self.org.group(ix) else {
            return Err(Error::not_found("group", id, "id"));
        };
        let target = self.transfer_target(transfer_to, Owner::Group(ix))?;
        let owned = self.owned_count(Owner::Group(ix));
        if owned > 0 && target.is_none() {
            return Err(Error::precondition(format!(
                "group '{id}' owns {owned} records: name transfer_to"
            )));
        }
        let mut changes = Vec::new();
        if let Some(to) = transfer_to {
            self.transfer_records(Owner::Group(ix), to, &mut changes);
        }
        for c in &group.containers {
            if let Some(container) = self.org.group(*c) {
                let mut def = container.def.clone();
                def.groups.retain(|g| g != id);
                changes.push(Change::PutGroup(def));
            }
        }
        self.unshare_all(&[GranteeIx::Group(ix)], &mut changes);
        let names_group = |s: &MemberSet| matches!(s, MemberSet::Group(g) if g == id);
        self.drop_rules(
            |r| r.from.as_ref().is_some_and(names_group) || names_group(&r.to),
            &mut changes,
        );
        changes.push(Change::DeleteGroup { id: id.to_string() });
        Ok(changes)
    }

    fn put_rule(&self, def: &SharingRuleDef) -> Result<Vec<Change>> {
        self.id("id", &def.id)?;
        self.module_exists("module", &def.module)?;
        match (&def.from, &def.criteria) {
            (Some(from), None) => {
                self.member_set_exists("from", from)?;
                if let MemberSet::Group(g) = from {
                    if self
                        .org
                        .groups
                        .by_id(g)
                        .is_some_and(|(_, group)| group.def.kind == GroupKind::Personal)
                    {
                        // Its owner would decide whose records the rule shares.
                        return Err(Error::invalid(
                            "from.group",
                            format!("'{g}' is a personal group, which is never a rule's from set"),
                        ));
                    }
                }
            }
            (None, Some(criteria)) => {
                if criteria.is_empty() {
                    return Err(Error::invalid(
                        "criteria",
                        "a criteria rule needs at least one attribute",
                    ));
                }
            }
            _ => {
                return Err(Error::invalid(
                    "from",
                    "a sharing rule has exactly one of from (owner-based) or criteria",
                ))
            }
        }
        self.member_set_exists("to", &def.to)?;
        if !matches!(def.access, AccessLevel::Read | AccessLevel::ReadWrite) {
            return Err(Error::invalid(
                "access",
                "a sharing rule gives READ or READ_WRITE",
            ));
        }
        Ok(vec![Change::PutRule(def.clone())])
    }

    fn set_owner(&self, write: &RecordWrite) -> Result<Vec<Change>> {
        self.module_exists("module", &write.module)?;
        self.id("record_id", &write.id)?;
        let stored = stored_record(self.org, &write.module, &write.id);
        let def = write.resolve(stored).ok_or_else(|| {
            Error::invalid("owner", "a new record needs an owner (user_id or group_id)")
        })?;
        self.owner_exists("owner", &def.owner)?;
        self.attributes(&def.attributes)?;
        Ok(vec![Change::PutRecord(def)])
    }

    /// Validates a record of an imported document: its module and owner
    /// exist, its id and attributes are well-formed. Every field is given,
    /// so the stored record (if any) plays no part.
    fn document_record(&self, def: &RecordDef) -> Result<()> {
        self.module_exists("module", &def.module)?;
        self.id("record_id", &def.id)?;
        self.owner_exists("owner", &def.owner)?;
        self.attributes(&def.attributes)
    }

    /// Validates a share of an imported document whose record is `listed`
    /// in the document or already stored.
    fn document_share(&self, def: &ShareDef, listed: bool) -> Result<()> {
        self.module_exists("module", &def.module)?;
        self.id("record_id", &def.record)?;
        if !listed {
            return Err(Error::not_found(
                "record",
                format!("{}/{}", def.module, def.record),
                "record_id",
            ));
        }
        self.grantee_exists("grantee", &def.grantee)?;
        if def.level == AccessLevel::None {
            return Err(Error::invalid(
                "level",
                "a share gives READ, READ_WRITE or FULL",
            ));
        }
        Ok(())
    }

    /// Attribute limits of a stored record.
    fn attributes(&self, attributes: &BTreeMap<String, String>) -> Result<()> {
        check_attributes("attributes", attributes, self.limits)
    }

    fn share(&self, shares: &[ShareDef]) -> Result<Vec<Change>> {
        if shares.is_empty() {
            return Err(Error::invalid("shares", "name at least one share"));
        }
        let mut changes = Vec::with_capacity(shares.len());
        for (i, s) in shares.iter().enumerate() {
            let field = format!("shares[{i}]");
            self.record_exists(&s.module, &s.record)
                .map_err(|e| at_path(&field, e))?;
            self.grantee_exists("grantee", &s.grantee)
                .map_err(|e| at_path(&field, e))?;
            if s.level == AccessLevel::None {
                return Err(Error::invalid(
                    format!("{field}.level"),
                    "a share gives READ, READ_WRITE or FULL",
                ));
            }
            changes.push(Change::PutShare(s.clone()));
        }
        Ok(changes)
    }

    fn unshare(&self, shares: &[ShareDef]) -> Result<Vec<Change>> {
        if shares.is_empty() {
            return Err(Error::invalid("shares", "name at least one share"));
        }
        let mut changes = Vec::with_capacity(shares.len());
        for (i, s) in shares.iter().enumerate() {
            let field = format!("shares[{i}]");
            self.record_exists(&s.module, &s.record)
                .map_err(|e| at_path(&field, e))?;
            self.grantee_exists("grantee", &s.grantee)
                .map_err(|e| at_path(&field, e))?;
            changes.push(Change::DeleteShare {
                module: s.module.clone(),
                record: s.record.clone(),
                grantee: s.grantee.clone(),
            });
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::{
        CharClass, HierarchyMode, PasswordPolicy, PasswordPolicyPatch, RoleDef,
    };

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 10,
            require: vec![CharClass::Digit],
            max_age_days: Some(90),
            forbid_principal: false,
        }
    }

    /// An organization with a password policy, REPORTING mode, a role
    /// `sales` listed by `groups` groups, and a role `spare` nobody names.
    fn org(groups: usize) -> OrgState {
        let document = OrgDocument {
            organization: "o".into(),
            settings: Some(
                Settings {
                    hierarchy_mode: HierarchyMode::Reporting,
                    enforce_shifts: false,
                    password_policy: Some(policy()),
                }
                .into(),
            ),
            roles: vec![
                RoleDef {
                    id: "sales".into(),
                    ..RoleDef::default()
                },
                RoleDef {
                    id: "spare".into(),
                    ..RoleDef::default()
                },
            ],
            groups: (0..groups)
                .map(|i| GroupDef {
                    id: format!("g{i:02}"),
                    roles: vec!["sales".into()],
                    ..GroupDef::default()
                })
                .collect(),
            ..OrgDocument::default()
        };
        let command = Command::Import {
            document,
            replace: true,
        };
        let changes = plan(None, "o", &command, &Limits::default()).unwrap();
        let mut state = OrgState::new("o", 0, 0, Settings::default());
        let mut inv = Invalidation::default();
        for change in &changes {
            state.apply(change, &mut inv);
        }
        state
    }

    fn run(org: &OrgState, command: &Command) -> Result<Vec<Change>> {
        plan(Some(org), "o", command, &Limits::default())
    }

    #[test]
    fn update_settings_changes_only_what_the_patch_names() {
        let org = org(0);
        let patch = SettingsPatch {
            enforce_shifts: Some(true),
            password_policy: Some(Some(PasswordPolicyPatch {
                min_length: Some(12),
                ..PasswordPolicyPatch::default()
            })),
            ..SettingsPatch::default()
        };
        let changes = run(&org, &Command::UpdateSettings(patch)).unwrap();
        assert_eq!(
            changes,
            [Change::Settings(Settings {
                hierarchy_mode: HierarchyMode::Reporting,
                enforce_shifts: true,
                password_policy: Some(PasswordPolicy {
                    min_length: 12,
                    ..policy()
                }),
            })]
        );
        let clear = SettingsPatch {
            password_policy: Some(None),
            ..SettingsPatch::default()
        };
        let changes = run(&org, &Command::UpdateSettings(clear)).unwrap();
        assert!(
            matches!(&changes[..], [Change::Settings(s)] if s.password_policy.is_none() && s.hierarchy_mode == HierarchyMode::Reporting)
        );
    }

    #[test]
    fn update_settings_naming_nothing_is_refused() {
        let e = run(&org(0), &Command::UpdateSettings(SettingsPatch::default())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "settings: name at least one setting to change"
        );
    }

    #[test]
    fn merge_import_changes_only_the_settings_the_document_names() {
        let org = org(0);
        let document = OrgDocument {
            organization: "o".into(),
            settings: Some(SettingsPatch {
                enforce_shifts: Some(true),
                ..SettingsPatch::default()
            }),
            ..OrgDocument::default()
        };
        let merged = Command::Import {
            document: document.clone(),
            replace: false,
        };
        let changes = run(&org, &merged).unwrap();
        assert_eq!(
            changes,
            [Change::Settings(Settings {
                hierarchy_mode: HierarchyMode::Reporting,
                enforce_shifts: true,
                password_policy: Some(policy()),
            })]
        );
        let replaced = Command::Import {
            document,
            replace: true,
        };
        let changes = run(&org, &replaced).unwrap();
        assert_eq!(
            changes.first(),
            Some(&Change::CreateOrg(Settings {
                enforce_shifts: true,
                ..Settings::default()
            })),
            "replace: what the document leaves out takes its default"
        );
    }

    #[test]
    fn a_referenced_delete_is_refused_with_a_bounded_list_unless_cascade() {
        let org = org(25);
        let delete = |cascade| Command::DeleteRole {
            id: "sales".into(),
            transfer_to: None,
            cascade,
        };
        let e = run(&org, &delete(false)).unwrap_err();
        assert_eq!(e.code(), "FAILED_PRECONDITION");
        let text = e.to_string();
        assert!(text.contains("referred to by 25 entries"), "{text}");
        assert!(text.contains("group_member 'g19/roles/sales'"), "{text}");
        assert!(
            !text.contains("g20/roles/sales"),
            "only 20 are listed: {text}"
        );
        assert!(text.contains("and 5 more"), "{text}");

        let changes = run(&org, &delete(true)).unwrap();
        let removed = report(&org, &changes).removed;
        assert_eq!(removed.len(), 26, "25 group entries and the role");
        assert_eq!(
            removed.last(),
            Some(&EntityRef {
                kind: "role",
                id: "sales".into(),
                to: None
            })
        );
    }

    #[test]
    fn an_unreferenced_delete_needs_no_cascade() {
        let changes = run(
            &org(3),
            &Command::DeleteRole {
                id: "spare".into(),
                transfer_to: None,
                cascade: false,
            },
        )
        .unwrap();
        assert_eq!(changes, [Change::DeleteRole { id: "spare".into() }]);
    }
}
