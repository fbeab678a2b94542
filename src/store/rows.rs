//! The entity-row layout every SQL backend shares: what each [`Change`]
//! does to the rows of `entities(org_id, kind, module, record, id, body)`,
//! and how an organization's rows read back as an [`OrgDocument`].
//!
//! A row's body is the JSON of its definition. Its key places it:
//!
//! | kind       | module    | record    | id                         |
//! |------------|-----------|-----------|----------------------------|
//! | `settings` |           |           |                            |
//! | `module`, `profile`, `role`, `shift`, `user`, `group` | | | entity id |
//! | `rule`     | its module|           | rule id                    |
//! | `record`   | module    | record id |                            |
//! | `share`    | module    | record id | grantee key (`user:alice`) |
//!
//! The operations mean what `engine/apply.rs` does in memory, so that a
//! store replayed through `changes_of` builds the organization the engine
//! held when it acknowledged the write.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{StoreError, StoreResult};
use crate::engine::document::{topo_sorted, StateBuilder};
use crate::engine::model::{
    Grantee, GroupDef, ModuleDef, ProfileDef, RecordDef, RoleDef, Settings, ShareDef,
    SharingRuleDef, ShiftDef, UserDef,
};
use crate::engine::{Change, OrgDocument};

/// The organization's settings (one row, every key column empty).
pub const SETTINGS: &str = "settings";
/// A module.
pub const MODULE: &str = "module";
/// A profile.
pub const PROFILE: &str = "profile";
/// A role.
pub const ROLE: &str = "role";
/// A shift.
pub const SHIFT: &str = "shift";
/// A user.
pub const USER: &str = "user";
/// A group.
pub const GROUP: &str = "group";
/// A sharing rule, filed under its module.
pub const RULE: &str = "rule";
/// A record.
pub const RECORD: &str = "record";
/// A manual share of a record with one grantee.
pub const SHARE: &str = "share";

/// The key of one entity row within its organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// One of the kind constants of this module.
    pub kind: &'static str,
    /// The module of a rule, record or share; empty otherwise.
    pub module: String,
    /// The record of a record or share; empty otherwise.
    pub record: String,
    /// The entity id, the grantee key of a share; empty for settings and records.
    pub id: String,
}

impl RowKey {
    fn entity(kind: &'static str, id: &str) -> RowKey {
        RowKey {
            kind,
            module: String::new(),
            record: String::new(),
            id: id.to_string(),
        }
    }

    fn settings() -> RowKey {
        RowKey::entity(SETTINGS, "")
    }

    fn rule(module: &str, id: &str) -> RowKey {
        RowKey {
            kind: RULE,
            module: module.to_string(),
            record: String::new(),
            id: id.to_string(),
        }
    }

    fn record(module: &str, record: &str) -> RowKey {
        RowKey {
            kind: RECORD,
            module: module.to_string(),
            record: record.to_string(),
            id: String::new(),
        }
    }

    fn share(module: &str, record: &str, grantee: &Grantee) -> RowKey {
        RowKey {
            kind: SHARE,
            module: module.to_string(),
            record: record.to_string(),
            id: grantee_key(grantee),
        }
    }
}

/// One entity row: its key and the JSON of its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Where the row sits.
    pub key: RowKey,
    /// The definition, as JSON.
    pub body: String,
}

/// One operation on an organization's entity rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOp {
    /// Inserts the row, or replaces the row with its key.
    Upsert(Row),
    /// Deletes the row with this key, if there is one.
    Delete(RowKey),
    /// Deletes the sharing rule with this id, whichever module files it.
    DeleteRule {
        /// Rule id.
        id: String,
    },
    /// Deletes every share of one record.
    DeleteRecordShares {
        /// Module id.
        module: String,
        /// Record id.
        record: String,
    },
    /// Deletes every record, share and rule of a module (not its own row).
    DeleteModuleContents {
        /// Module id.
        module: String,
    },
    /// Deletes every row of the organization.
    DeleteOrg,
}

/// The id column of a share row: the grantee's sort and id, e.g.
/// `user:alice`, `role_and_subordinates:sales`.
pub fn grantee_key(grantee: &Grantee) -> String {
    match grantee {
        Grantee::User(id) => format!("user:{id}"),
        Grantee::Group(id) => format!("group:{id}"),
        Grantee::Role(id) => format!("role:{id}"),
        Grantee::RoleAndSubordinates(id) => format!("role_and_subordinates:{id}"),
    }
}

/// The row operations that store one change, in the order they must run.
///
/// `CreateOrg` and `DeleteOrg` clear the whole organization; the planner
/// puts them first in a write, which is the only place the engine gives
/// them that meaning.
pub fn row_ops(change: &Change) -> StoreResult<Vec<RowOp>> {
    let ops = match change {
        Change::CreateOrg(settings) => {
            vec![RowOp::DeleteOrg, upsert(RowKey::settings(), settings)?]
        }
        Change::DeleteOrg => vec![RowOp::DeleteOrg],
        Change::Settings(settings) => vec![upsert(RowKey::settings(), settings)?],
        Change::PutModule(def) => vec![upsert(RowKey::entity(MODULE, &def.id), def)?],
        Change::DeleteModule { id } => vec![
            RowOp::Delete(RowKey::entity(MODULE, id)),
            RowOp::DeleteModuleContents { module: id.clone() },
        ],
        Change::PutProfile(def) => vec![upsert(RowKey::entity(PROFILE, &def.id), def)?],
        Change::DeleteProfile { id } => vec![RowOp::Delete(RowKey::entity(PROFILE, id))],
        Change::PutRole(def) => vec![upsert(RowKey::entity(ROLE, &def.id), def)?],
        Change::DeleteRole { id } => vec![RowOp::Delete(RowKey::entity(ROLE, id))],
        Change::PutShift(def) => vec![upsert(RowKey::entity(SHIFT, &def.id), def)?],
        Change::DeleteShift { id } => vec![RowOp::Delete(RowKey::entity(SHIFT, id))],
        Change::PutUser(def) => {
            // The engine keeps a user without a principal under its id.
            let key = RowKey::entity(USER, &def.id);
            if def.principal.is_empty() {
                let mut def = def.clone();
                def.principal = def.id.clone();
                vec![upsert(key, &def)?]
            } else {
                vec![upsert(key, def)?]
            }
        }
        Change::DeleteUser { id } => vec![RowOp::Delete(RowKey::entity(USER, id))],
        Change::PutGroup(def) => vec![upsert(RowKey::entity(GROUP, &def.id), def)?],
        Change::DeleteGroup { id } => vec![RowOp::Delete(RowKey::entity(GROUP, id))],
        // The record row is replaced; its share rows are other rows and stay.
        Change::PutRecord(def) => vec![upsert(RowKey::record(&def.module, &def.id), def)?],
        Change::DeleteRecord { module, id } => vec![
            RowOp::Delete(RowKey::record(module, id)),
            RowOp::DeleteRecordShares {
                module: module.clone(),
                record: id.clone(),
            },
        ],
        Change::PutShare(def) => vec![upsert(
            RowKey::share(&def.module, &def.record, &def.grantee),
            def,
        )?],
        Change::DeleteShare {
            module,
            record,
            grantee,
        } => vec![RowOp::Delete(RowKey::share(module, record, grantee))],
        // A rule may move to another module: its old row has another key.
        Change::PutRule(def) => vec![
            RowOp::DeleteRule { id: def.id.clone() },
            upsert(RowKey::rule(&def.module, &def.id), def)?,
        ],
        Change::DeleteRule { id } => vec![RowOp::DeleteRule { id: id.clone() }],
    };
    Ok(ops)
}

fn upsert<T: Serialize>(key: RowKey, def: &T) -> StoreResult<RowOp> {
    let body = serde_json::to_string(def)
        .map_err(|e| StoreError::Backend(format!("encode {} row {:?}: {e}", key.kind, key.id)))?;
    Ok(RowOp::Upsert(Row { key, body }))
}

/// Reads an organization's rows, in any order, back into its document.
#[derive(Debug, Default)]
pub struct DocumentBuilder {
    document: OrgDocument,
}

impl DocumentBuilder {
    /// A builder for the organization `org_id`, with no rows yet.
    pub fn new(org_id: &str) -> Self {
        DocumentBuilder {
            document: OrgDocument {
                organization: org_id.to_string(),
                ..OrgDocument::default()
            },
        }
    }

    /// Adds one row, given its kind and body.
    pub fn add(&mut self, kind: &str, body: &str) -> StoreResult<()> {
        let doc = &mut self.document;
        match kind {
            SETTINGS => doc.settings = Some(decode::<Settings>(kind, body)?.into()),
            MODULE => doc.modules.push(decode::<ModuleDef>(kind, body)?),
            PROFILE => doc.profiles.push(decode::<ProfileDef>(kind, body)?),
            ROLE => doc.roles.push(decode::<RoleDef>(kind, body)?),
            SHIFT => doc.shifts.push(decode::<ShiftDef>(kind, body)?),
            USER => doc.users.push(decode::<UserDef>(kind, body)?),
            GROUP => doc.groups.push(decode::<GroupDef>(kind, body)?),
            RULE => doc
                .sharing_rules
                .push(decode::<SharingRuleDef>(kind, body)?),
            RECORD => doc.records.push(decode::<RecordDef>(kind, body)?),
            SHARE => doc.shares.push(decode::<ShareDef>(kind, body)?),
            other => {
                return Err(StoreError::Backend(format!(
                    "load organization {:?}: unknown row kind {other:?}",
                    doc.organization
                )))
            }
        }
        Ok(())
    }

    /// The document, every list in the order `Export` gives: by id; roles
    /// parents first, users managers first, groups nested first; records
    /// and shares by module, record, then grantee.
    pub fn finish(self) -> OrgDocument {
        let mut doc = self.document;
        doc.modules.sort_by(|a, b| a.id.cmp(&b.id));
        doc.profiles.sort_by(|a, b| a.id.cmp(&b.id));
        doc.shifts.sort_by(|a, b| a.id.cmp(&b.id));
        doc.roles = topo_sorted(
            std::mem::take(&mut doc.roles),
            |r| r.id.clone(),
            |r| r.parent.iter().cloned().collect(),
        );
        doc.users = topo_sorted(
            std::mem::take(&mut doc.users),
            |u| u.id.clone(),
            |u| u.reports_to.iter().cloned().collect(),
        );
        doc.groups = topo_sorted(
            std::mem::take(&mut doc.groups),
            |g| g.id.clone(),
            |g| g.groups.clone(),
        );
        doc.records
            .sort_by(|a, b| (&a.module, &a.id).cmp(&(&b.module, &b.id)));
        doc.shares.sort_by(|a, b| {
            (&a.module, &a.record, &a.grantee).cmp(&(&b.module, &b.record, &b.grantee))
        });
        doc.sharing_rules.sort_by(|a, b| a.id.cmp(&b.id));
        doc
    }
}

/// An organization's document from its `(kind, body)` rows, in any order.
pub fn document_of<K, B>(
    org_id: &str,
    rows: impl IntoIterator<Item = (K, B)>,
) -> StoreResult<OrgDocument>
where
    K: AsRef<str>,
    B: AsRef<str>,
{
    let mut builder = DocumentBuilder::new(org_id);
    for (kind, body) in rows {
        builder.add(kind.as_ref(), body.as_ref())?;
    }
    Ok(builder.finish())
}

/// Rows a load reads per statement when it streams records and shares:
/// a few hundred statements for a million rows rather than a million rows
/// handed one by one from the database driver, and each chunk's text
/// (≈ 70 bytes a body) stays near a megabyte.
pub const LOAD_CHUNK: i64 = 16_384;

/// Joins a share chunk's last `(record, id)` into one text. It sorts below
/// every character an id may hold, so the joined text sorts as the pair
/// does and its maximum is the chunk's last share.
pub const KEY_SEPARATOR: char = '\u{1}';

/// Where a streamed load resumes within a module: after this record (and,
/// for shares, this grantee key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkKey {
    /// Record id.
    pub record: String,
    /// Grantee key of a share; empty for a record.
    pub id: String,
}

impl ChunkKey {
    /// The key a chunk's maximum names: `record`, or `record‹U+1›id`.
    pub fn parse(joined: &str) -> StoreResult<ChunkKey> {
        let mut parts = joined.split(KEY_SEPARATOR);
        match (parts.next(), parts.next(), parts.next()) {
            (Some(record), id, None) => Ok(ChunkKey {
                record: record.to_string(),
                id: id.unwrap_or_default().to_string(),
            }),
            _ => Err(StoreError::Backend(format!(
                "load: malformed row key {joined:?}"
            ))),
        }
    }
}

/// The kinds an organization's load reads row by row into a document
/// before its records and shares are streamed.
pub const SMALL_KINDS: [&str; 8] = [SETTINGS, MODULE, PROFILE, ROLE, SHIFT, USER, GROUP, RULE];

/// The kinds a load streams in chunks, module by module, records first.
pub const STREAMED: [&str; 2] = [RECORD, SHARE];

/// Where a chunk of a streamed load sits, for the errors of its rows: a
/// corrupt row is named by its organization, module and the key of the
/// row before it (the chunk's own `after` for its first row).
#[derive(Debug, Clone)]
pub struct ChunkOrigin {
    /// Organization id.
    pub org: String,
    /// [`RECORD`] or [`SHARE`].
    pub kind: &'static str,
    /// Module id.
    pub module: String,
    /// The key the chunk starts after (empty: the module's first rows).
    pub after: ChunkKey,
}

/// One chunk of a streamed load, decoded and not yet applied: the decode
/// runs on a blocking thread while the runtime thread applies the chunk
/// before it, so both stages of a start-up use a core each.
#[derive(Debug)]
pub enum Decoded {
    /// Records, in key order.
    Records(Vec<RecordDef>),
    /// Shares, in key order.
    Shares(Vec<ShareDef>),
}

impl Decoded {
    /// Applies every row to the state under construction, in key order.
    /// Returns how many.
    pub fn apply(self, builder: &mut StateBuilder) -> usize {
        match self {
            Decoded::Records(defs) => {
                let n = defs.len();
                defs.into_iter().for_each(|def| builder.record(def));
                n
            }
            Decoded::Shares(defs) => {
                let n = defs.len();
                defs.into_iter().for_each(|def| builder.share(def));
                n
            }
        }
    }
}

/// Decodes one chunk of record or share bodies (JSON texts separated by
/// newlines, as the load statements join them; `count` rows, as the
/// database counted them). A body that does not decode, or a chunk with
/// another number of bodies, is an error naming the row; nothing is
/// applied here.
pub fn decode_chunk(origin: &ChunkOrigin, bodies: &str, count: i64) -> StoreResult<Decoded> {
    // Each body is one line (serde_json writes none with a raw newline):
    // decoding line by line tells which row failed, for no more work than
    // a stream over the whole text.
    let capacity = usize::try_from(count).unwrap_or(0);
    let decoded = match origin.kind {
        RECORD => Decoded::Records(decode_lines(origin, bodies, capacity, |r: &RecordDef| {
            record_key(&r.id)
        })?),
        SHARE => Decoded::Shares(decode_lines(origin, bodies, capacity, |s: &ShareDef| {
            share_key(&s.record, &grantee_key(&s.grantee))
        })?),
        other => {
            return Err(StoreError::Backend(format!(
                "load organization {:?}: {other:?} rows are not streamed",
                origin.org
            )))
        }
    };
    let n = match &decoded {
        Decoded::Records(defs) => defs.len(),
        Decoded::Shares(defs) => defs.len(),
    };
    if i64::try_from(n).ok() != Some(count) {
        return Err(StoreError::Backend(format!(
            "load organization {:?}: the {} rows of module {:?} after {} are {count} rows, \
             but their bodies are {n}",
            origin.org,
            origin.kind,
            origin.module,
            after_name(origin, None)
        )));
    }
    Ok(decoded)
}

/// Decodes each line of `bodies` as a `T`, naming a failing row by the
/// key of the row before it (`key_of` gives a decoded row's key).
fn decode_lines<T: DeserializeOwned>(
    origin: &ChunkOrigin,
    bodies: &str,
    capacity: usize,
    key_of: impl Fn(&T) -> String,
) -> StoreResult<Vec<T>> {
    let mut out: Vec<T> = Vec::with_capacity(capacity);
    for line in bodies.split('\n') {
        match serde_json::from_str::<T>(line) {
            Ok(def) => out.push(def),
            Err(e) => {
                let before = out.last().map(&key_of);
                return Err(corrupt_row(origin, line, before, &e));
            }
        }
    }
    Ok(out)
}

/// The error for a row that does not decode: the organization, the
/// module, the row's own key if its body still names one, and the key of
/// the row before it, which always places it.
fn corrupt_row(
    origin: &ChunkOrigin,
    line: &str,
    before: Option<String>,
    e: &serde_json::Error,
) -> StoreError {
    /// The key fields of a record or share body, read leniently: a body
    /// that fails its definition may still name its row.
    #[derive(serde::Deserialize)]
    struct Named {
        id: Option<String>,
        record: Option<String>,
        grantee: Option<Grantee>,
    }
    let own = match serde_json::from_str::<Named>(line) {
        Ok(Named { id: Some(id), .. }) if origin.kind == RECORD => Some(record_key(&id)),
        Ok(Named {
            record: Some(record),
            grantee: Some(grantee),
            ..
        }) if origin.kind == SHARE => Some(share_key(&record, &grantee_key(&grantee))),
        _ => None,
    };
    let own = own.map(|k| format!(" {k}")).unwrap_or_default();
    StoreError::Backend(format!(
        "load organization {:?}: corrupt {} row{own} in module {:?}, the row after {}: {e}",
        origin.org,
        origin.kind,
        origin.module,
        after_name(origin, before.as_deref())
    ))
}

/// How an error names the row a failing one follows: `before` if the
/// chunk decoded one, else the chunk's start.
fn after_name(origin: &ChunkOrigin, before: Option<&str>) -> String {
    match before {
        Some(key) => key.to_string(),
        None if origin.after.record.is_empty() => "the module's start".to_string(),
        None if origin.kind == SHARE => share_key(&origin.after.record, &origin.after.id),
        None => record_key(&origin.after.record),
    }
}

fn record_key(id: &str) -> String {
    format!("record {id:?}")
}

fn share_key(record: &str, grantee: &str) -> String {
    format!("share of record {record:?} with {grantee:?}")
}

fn decode<T: DeserializeOwned>(kind: &str, body: &str) -> StoreResult<T> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("load: corrupt {kind} row: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::{AccessLevel, MemberSet, OwnerRef};

    fn rule(id: &str, module: &str) -> SharingRuleDef {
        SharingRuleDef {
            id: id.into(),
            module: module.into(),
            from: Some(MemberSet::Role("sales".into())),
            criteria: None,
            to: MemberSet::Group("all".into()),
            access: AccessLevel::Read,
        }
    }

    #[test]
    fn grantee_keys_name_the_sort() {
        assert_eq!(grantee_key(&Grantee::User("alice".into())), "user:alice");
        assert_eq!(grantee_key(&Grantee::Group("g".into())), "group:g");
        assert_eq!(grantee_key(&Grantee::Role("r".into())), "role:r");
        assert_eq!(
            grantee_key(&Grantee::RoleAndSubordinates("r".into())),
            "role_and_subordinates:r"
        );
    }

    #[test]
    fn put_rule_deletes_by_id_before_writing_under_its_module() {
        let ops = row_ops(&Change::PutRule(rule("r1", "Leads"))).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0], RowOp::DeleteRule { id: "r1".into() });
        let RowOp::Upsert(row) = &ops[1] else {
            panic!("expected an upsert, got {:?}", ops[1]);
        };
        assert_eq!(row.key, RowKey::rule("Leads", "r1"));
    }

    #[test]
    fn cascades_and_org_changes() {
        assert_eq!(
            row_ops(&Change::DeleteModule { id: "Leads".into() }).unwrap(),
            vec![
                RowOp::Delete(RowKey::entity(MODULE, "Leads")),
                RowOp::DeleteModuleContents {
                    module: "Leads".into()
                },
            ]
        );
        assert_eq!(
            row_ops(&Change::DeleteRecord {
                module: "Leads".into(),
                id: "L1".into()
            })
            .unwrap(),
            vec![
                RowOp::Delete(RowKey::record("Leads", "L1")),
                RowOp::DeleteRecordShares {
                    module: "Leads".into(),
                    record: "L1".into()
                },
            ]
        );
        let create = row_ops(&Change::CreateOrg(Settings::default())).unwrap();
        assert_eq!(create[0], RowOp::DeleteOrg);
        assert!(matches!(&create[1], RowOp::Upsert(r) if r.key == RowKey::settings()));
        assert_eq!(row_ops(&Change::DeleteOrg).unwrap(), vec![RowOp::DeleteOrg]);
        let record = RecordDef {
            module: "Leads".into(),
            id: "L1".into(),
            owner: OwnerRef::User("alice".into()),
            private: false,
            attributes: Default::default(),
        };
        // Re-owning a record touches only its own row.
        let ops = row_ops(&Change::PutRecord(record)).unwrap();
        assert!(matches!(&ops[..], [RowOp::Upsert(r)] if r.key == RowKey::record("Leads", "L1")));
    }

    #[test]
    fn a_user_without_principal_is_stored_under_its_id() {
        let ops = row_ops(&Change::PutUser(UserDef {
            id: "alice".into(),
            ..UserDef::default()
        }))
        .unwrap();
        let [RowOp::Upsert(row)] = &ops[..] else {
            panic!("expected one upsert, got {ops:?}");
        };
        let user: UserDef = serde_json::from_str(&row.body).unwrap();
        assert_eq!(user.principal, "alice");
    }

    #[test]
    fn rows_read_back_sorted_whatever_their_order() {
        let share = |record: &str, grantee: Grantee| ShareDef {
            module: "Leads".into(),
            record: record.into(),
            grantee,
            level: AccessLevel::Read,
        };
        let role = |id: &str, parent: Option<&str>| RoleDef {
            id: id.into(),
            parent: parent.map(Into::into),
            ..RoleDef::default()
        };
        let rows = vec![
            (
                SHARE,
                serde_json::to_string(&share("L2", Grantee::User("a".into()))).unwrap(),
            ),
            (
                SHARE,
                serde_json::to_string(&share("L1", Grantee::Role("z".into()))).unwrap(),
            ),
            (
                SHARE,
                serde_json::to_string(&share("L1", Grantee::User("b".into()))).unwrap(),
            ),
            (
                ROLE,
                serde_json::to_string(&role("a_child", Some("z_root"))).unwrap(),
            ),
            (ROLE, serde_json::to_string(&role("z_root", None)).unwrap()),
            (RULE, serde_json::to_string(&rule("r2", "A")).unwrap()),
            (RULE, serde_json::to_string(&rule("r1", "B")).unwrap()),
            (
                SETTINGS,
                serde_json::to_string(&Settings::default()).unwrap(),
            ),
        ];
        let doc = document_of("acme", rows).unwrap();
        assert_eq!(doc.organization, "acme");
        assert_eq!(doc.settings, Some(Settings::default().into()));
        let shares: Vec<_> = doc
            .shares
            .iter()
            .map(|s| (s.record.as_str(), grantee_key(&s.grantee)))
            .collect();
        assert_eq!(
            shares,
            vec![
                ("L1", "user:b".to_string()),
                ("L1", "role:z".to_string()),
                ("L2", "user:a".to_string())
            ]
        );
        let roles: Vec<_> = doc.roles.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(roles, vec!["z_root", "a_child"]);
        let rules: Vec<_> = doc.sharing_rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(rules, vec!["r1", "r2"]);
    }

    #[test]
    fn unknown_kinds_and_corrupt_bodies_are_backend_errors() {
        assert!(matches!(
            document_of("acme", [("widget", "{}")]),
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            document_of("acme", [(USER, "not json")]),
            Err(StoreError::Backend(_))
        ));
    }
}
