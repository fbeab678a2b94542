//! Fuzz targets: pure functions from arbitrary bytes that panic exactly
//! when Warden breaks a promise (a panic in the code under test, or an
//! invariant that does not hold). cargo-fuzz (`fuzz/`) drives them for
//! coverage; `tests/fuzz_corpus.rs` replays the committed corpus through
//! them on stable, so the ordinary test command runs every input found.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use prost::Message;

use crate::api::{convert, pb, status};
use crate::cache::Cached;
use crate::document::parse_document;
use crate::engine::model::{
    AccessLevel, AssignScope, FieldLevel, Grantee, GroupDef, GroupKind, HierarchyMode, MemberSet,
    ModuleDef, Owd, OwnerRef, ProfileDef, Reason, RecordDef, RoleDef, SettingsPatch, ShareDef,
    SharingRuleDef, ShiftDef, UserDef, UserKind, Weekday, WindowDef,
};
use crate::engine::plan::RecordWrite;
use crate::engine::{CheckRequest, Command, Decision, Direct, Engine, Expand, Limits, OrgDocument};

/// The organization every target works in when the input names none.
const ORG: &str = "fuzz";

/// A fixed "now" (a Monday, 10:00 UTC), so that a replayed input decides
/// shifts the same way on every run.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// (a) documents
// ---------------------------------------------------------------------------

/// Arbitrary bytes as an organization document: parsing never panics; a
/// document that parses imports (or is refused) without panicking; an
/// accepted one exports a document that re-imports, through its JSON text,
/// to the same export.
pub fn document(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(doc) = parse_document(&text) else {
        return;
    };
    let org = if doc.organization.is_empty() {
        ORG.to_string()
    } else {
        doc.organization.clone()
    };
    let engine = Engine::new(Direct, Limits::default());
    let import = Command::Import {
        document: doc,
        replace: true,
    };
    if engine.execute(&org, &import).is_err() {
        assert!(
            engine.revision(&org).is_none(),
            "a refused import left organization '{org}' behind"
        );
        return;
    }
    let first = export(&engine, &org);
    let json = match serde_json::to_string(&first) {
        Ok(j) => j,
        Err(e) => panic!("an export does not serialize: {e}"),
    };
    let reparsed = match parse_document(&json) {
        Ok(d) => d,
        Err(e) => panic!("an export does not parse back: {e}\n{json}"),
    };
    assert_eq!(reparsed, first, "an export changes when parsed back");
    let again = Engine::new(Direct, Limits::default());
    let reimport = Command::Import {
        document: reparsed,
        replace: true,
    };
    if let Err(e) = again.execute(&org, &reimport) {
        panic!("an accepted document's export is refused on import: {e}\n{json}");
    }
    assert_eq!(
        export(&again, &org),
        first,
        "export → import → export changes the organization"
    );
}

fn export<X: Expand>(engine: &Engine<X>, org: &str) -> OrgDocument {
    match engine.export(org) {
        Ok((doc, _)) => doc,
        Err(e) => panic!("export of existing organization '{org}' failed: {e}"),
    }
}

/// The export of an organization, or `None` when it does not exist.
fn snapshot<X: Expand>(engine: &Engine<X>, org: &str) -> Option<(OrgDocument, u64)> {
    engine.export(org).ok()
}

// ---------------------------------------------------------------------------
// (b) requests
// ---------------------------------------------------------------------------

/// The organization the request target's engine holds, as YAML.
const REQUEST_ORG: &str = r#"
organization: o
settings: {enforce_shifts: true, password_policy: {min_length: 8, require: [digit]}}
modules:
  - {id: Leads, owd: PUBLIC_READ, fields: [name, phone], actions: {export: READ}}
profiles:
  - {id: sales, modules: {Leads: [view, create, edit, delete, share, assign, export]}, fields: {Leads: {phone: READ_ONLY}}}
  - {id: audit, modules: {Leads: [view]}, view_all: [Leads]}
roles:
  - {id: boss, profiles: [sales]}
  - {id: rep, parent: boss, profiles: [sales], assign_scope: SAME_AND_SUBORDINATE}
shifts:
  - {id: day, time_zone: Europe/Paris, windows: [{days: [MON, TUE, WED, THU, FRI], start: "08:00", end: "18:00"}]}
users:
  - {id: admin, admin: true, role: boss}
  - {id: ann, role: boss}
  - {id: bob, role: rep, shift: day}
  - {id: eve, kind: GUEST, profiles: [sales]}
  - {id: old, role: rep, active: false}
groups:
  - {id: team, users: [bob], leads: [ann]}
  - {id: circle, kind: PERSONAL, owner: bob, users: [bob, eve]}
records:
  - {module: Leads, id: l1, owner: {user: bob}}
  - {module: Leads, id: l2, owner: {group: team}, private: true, attributes: {region: eu}}
shares:
  - {module: Leads, record: l1, grantee: {user: eve}, level: READ}
sharing_rules:
  - {id: eu, module: Leads, criteria: {region: eu}, to: {role: boss}, access: READ}
"#;

fn request_org() -> &'static Result<OrgDocument, String> {
    static DOC: OnceLock<Result<OrgDocument, String>> = OnceLock::new();
    DOC.get_or_init(|| parse_document(REQUEST_ORG).map_err(|e| e.to_string()))
}

/// A fresh engine holding the request target's organization `o`.
fn request_engine() -> Engine<Direct> {
    let engine = Engine::new(Direct, Limits::default());
    let doc = match request_org() {
        Ok(doc) => doc,
        Err(e) => panic!("the request target's own organization document does not parse: {e}"),
    };
    let import = Command::Import {
        document: doc.clone(),
        replace: true,
    };
    if let Err(e) = engine.execute("o", &import) {
        panic!("the request target's own organization is refused: {e}");
    }
    engine
}

/// Every request message of the three services, in the order the first
/// byte of a request-target input selects them.
pub const REQUEST_KINDS: [&str; 40] = [
    "Check",
    "CheckBulk",
    "CheckFields",
    "LookupRecords",
    "LookupSubjects",
    "Filter",
    "ValidatePassword",
    "SetOwner",
    "DeleteRecord",
    "Share",
    "Unshare",
    "ListShares",
    "CreateOrganization",
    "GetOrganization",
    "UpdateSettings",
    "DeleteOrganization",
    "ListOrganizations",
    "PutModule",
    "DeleteModule",
    "PutUser",
    "GetUser",
    "ListUsers",
    "DeleteUser",
    "PutRole",
    "ListRoles",
    "DeleteRole",
    "PutProfile",
    "DeleteProfile",
    "PutGroup",
    "GetGroup",
    "ListGroups",
    "DeleteGroup",
    "PutSharingRule",
    "DeleteSharingRule",
    "ListSharingRules",
    "PutShift",
    "DeleteShift",
    "Export",
    "Import",
    "Watch",
];

/// The first byte that selects request `kind` (for writing seeds).
pub fn request_selector(kind: &str) -> Option<u8> {
    REQUEST_KINDS
        .iter()
        .position(|k| *k == kind)
        .and_then(|i| u8::try_from(i).ok())
}

/// What a fuzzed request asks of the engine.
enum Asked {
    /// Nothing more than the conversion (or the message did not decode).
    Nothing,
    /// A write, by an actor when the request names one.
    Write {
        org: String,
        actor: String,
        command: Box<Command>,
    },
}

/// The first byte picks a request message of CheckService, GrantService or
/// AdminService; the rest is decoded as that message with prost and
/// converted as its handler converts it. Neither may panic; a converted
/// read is answered, and a converted write carried out (authorized first
/// when it names an actor), by an engine holding a small organization: a
/// refused write leaves the organization's export unchanged.
pub fn request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = REQUEST_KINDS[usize::from(selector) % REQUEST_KINDS.len()];
    let engine = request_engine();
    let asked = match convert_request(kind, body, &engine) {
        Ok(a) => a,
        Err(e) => {
            // Refused conversions become statuses; mapping must not panic.
            let _ = status::engine_status(e);
            return;
        }
    };
    let Asked::Write {
        org,
        actor,
        command,
    } = asked
    else {
        return;
    };
    let before = snapshot(&engine, &org);
    let outcome = if actor.is_empty() {
        engine.execute(&org, &command)
    } else {
        engine
            .authorize(&org, &actor, true, &command, now())
            .and_then(|()| engine.execute(&org, &command))
    };
    if let Err(e) = outcome {
        let _ = status::engine_status(e);
        assert!(
            snapshot(&engine, &org) == before,
            "a refused {kind} changed organization '{org}'"
        );
    }
}

fn decode<M: Message + Default>(body: &[u8]) -> Option<M> {
    M::decode(body).ok()
}

fn write(org: String, actor: String, command: Command) -> Asked {
    Asked::Write {
        org,
        actor,
        command: Box::new(command),
    }
}

/// Decodes and converts one request as its handler does, answering reads.
fn convert_request(kind: &str, body: &[u8], e: &Engine<Direct>) -> crate::engine::Result<Asked> {
    macro_rules! msg {
        ($t:ty) => {
            match decode::<$t>(body) {
                Some(m) => m,
                None => return Ok(Asked::Nothing),
            }
        };
    }
    let at = now();
    match kind {
        "Check" => check_message(e, msg!(pb::CheckRequest))?,
        "CheckBulk" => {
            let m = msg!(pb::CheckBulkRequest);
            for c in m.checks.into_iter().take(e.limits().bulk_checks) {
                // Each check of a bulk stands or fails alone.
                let _ = check_message(e, c);
            }
        }
        "CheckFields" => {
            let m = msg!(pb::CheckFieldsRequest);
            convert::consistency(m.consistency)?;
            let record = (!m.record_id.is_empty()).then_some(m.record_id.as_str());
            let q = crate::engine::FieldsQuery {
                subject: &m.subject,
                module: &m.module,
                record,
                ..Default::default()
            };
            let _ = e.check_fields(&m.org_id, &q, at);
        }
        "LookupRecords" => {
            let m = msg!(pb::LookupRecordsRequest);
            convert::consistency(m.consistency)?;
            if !m.cursor.is_empty() {
                let _ = crate::service::cursor::Position::decode(&m.cursor);
            }
            let _ = e.lookup_records(&m.org_id, &m.subject, &m.module, &m.action, at);
        }
        "LookupSubjects" => {
            let m = msg!(pb::LookupSubjectsRequest);
            convert::consistency(m.consistency)?;
            let on_shift = convert::time_opt("on_shift_at", m.on_shift_at.as_ref())?;
            let _ = e.lookup_subjects(&m.org_id, &m.module, &m.record_id, &m.action, on_shift);
        }
        "Filter" => {
            let m = msg!(pb::FilterRequest);
            convert::consistency(m.consistency)?;
            let _ = e.filter(&m.org_id, &m.subject, &m.module, &m.action, at);
        }
        "ValidatePassword" => {
            let m = msg!(pb::ValidatePasswordRequest);
            let set_at = convert::time_opt("password_set_at", m.password_set_at.as_ref())?;
            let _ = e.validate_password(&m.org_id, &m.user_id, &m.password, set_at, at);
        }
        "SetOwner" => {
            let m = msg!(pb::SetOwnerRequest);
            let (org, actor) = (m.org_id.clone(), m.actor.clone());
            return Ok(write(
                org,
                actor,
                Command::SetOwner(convert::record_from(m)?),
            ));
        }
        "DeleteRecord" => {
            let m = msg!(pb::DeleteRecordRequest);
            let command = delete_record_command(m.module, m.record_id);
            return Ok(write(m.org_id, m.actor, command));
        }
        "Share" | "Unshare" => {
            let (org, actor, shares, level_needed) = if kind == "Share" {
                let m = msg!(pb::ShareRequest);
                (m.org_id, m.actor, m.shares, true)
            } else {
                let m = msg!(pb::UnshareRequest);
                (m.org_id, m.actor, m.shares, false)
            };
            let defs = shares
                .into_iter()
                .enumerate()
                .map(|(i, s)| convert::share_from(&format!("shares[{i}]"), s, level_needed))
                .collect::<crate::engine::Result<Vec<_>>>()?;
            let command = if level_needed {
                Command::Share(defs)
            } else {
                Command::Unshare(defs)
            };
            return Ok(write(org, actor, command));
        }
        "ListShares" => {
            let m = msg!(pb::ListSharesRequest);
            convert::consistency(m.consistency)?;
            if let Ok((list, _)) = e.shares(&m.org_id, &m.module, &m.record_id) {
                let _: Vec<pb::Share> = list.iter().map(convert::share).collect();
            }
        }
        "CreateOrganization" => {
            let m = msg!(pb::CreateOrganizationRequest);
            let settings = convert::settings_from(m.settings)?;
            return Ok(write(
                m.org_id,
                String::new(),
                Command::CreateOrganization(settings),
            ));
        }
        "GetOrganization" => {
            let m = msg!(pb::GetOrganizationRequest);
            convert::consistency(m.consistency)?;
            if let Ok((s, _)) = e.summary(&m.org_id) {
                let round = convert::settings_from(Some(convert::settings(&s.settings)))?;
                assert_eq!(round, s.settings, "settings change through protobuf");
            }
        }
        "UpdateSettings" => {
            let m = msg!(pb::UpdateSettingsRequest);
            let patch = convert::settings_patch_from(m.settings, m.update_mask)?;
            return Ok(write(m.org_id, m.actor, Command::UpdateSettings(patch)));
        }
        "DeleteOrganization" => {
            let m = msg!(pb::DeleteOrganizationRequest);
            return Ok(write(m.org_id, m.actor, Command::DeleteOrganization));
        }
        "ListOrganizations" => {
            let m = msg!(pb::ListOrganizationsRequest);
            convert::consistency(m.consistency)?;
            let _ = e.list_organizations(&m.principal);
        }
        "PutModule" => {
            let m = msg!(pb::PutModuleRequest);
            let def = convert::module_from(m.module)?;
            return Ok(write(m.org_id, m.actor, Command::PutModule(def)));
        }
        "DeleteModule" => {
            let m = msg!(pb::DeleteModuleRequest);
            return Ok(write(
                m.org_id,
                m.actor,
                delete_command("module", m.module_id, None, m.cascade),
            ));
        }
        "PutUser" => {
            let m = msg!(pb::PutUserRequest);
            let def = convert::user_from(m.user)?;
            return Ok(write(m.org_id, m.actor, Command::PutUser(def)));
        }
        "GetUser" => {
            let m = msg!(pb::GetUserRequest);
            convert::consistency(m.consistency)?;
            if let Ok((view, _)) = e.user_view(&m.org_id, &m.user_id) {
                let round = convert::user_from(Some(convert::user(&view.user)))?;
                assert_eq!(round, view.user, "a user changes through protobuf");
            }
        }
        "ListUsers" | "ListRoles" | "ListGroups" | "ListSharingRules" | "Export" => {
            let (org, consistency) = match kind {
                "ListUsers" => {
                    let m = msg!(pb::ListUsersRequest);
                    (m.org_id, m.consistency)
                }
                "ListRoles" => {
                    let m = msg!(pb::ListRolesRequest);
                    (m.org_id, m.consistency)
                }
                "ListGroups" => {
                    let m = msg!(pb::ListGroupsRequest);
                    (m.org_id, m.consistency)
                }
                "ListSharingRules" => {
                    let m = msg!(pb::ListSharingRulesRequest);
                    (m.org_id, m.consistency)
                }
                _ => {
                    let m = msg!(pb::ExportRequest);
                    (m.org_id, m.consistency)
                }
            };
            convert::consistency(consistency)?;
            lists_round_trip(e, &org)?;
        }
        "DeleteUser" => {
            let m = msg!(pb::DeleteUserRequest);
            let to = convert::owner_opt(m.transfer_to);
            return Ok(write(
                m.org_id,
                m.actor,
                delete_command("user", m.user_id, to, m.cascade),
            ));
        }
        "PutRole" => {
            let m = msg!(pb::PutRoleRequest);
            let def = convert::role_from(m.role)?;
            return Ok(write(m.org_id, m.actor, Command::PutRole(def)));
        }
        "DeleteRole" => {
            let m = msg!(pb::DeleteRoleRequest);
            let to = (!m.transfer_to.is_empty()).then_some(OwnerRef::User(m.transfer_to));
            return Ok(write(
                m.org_id,
                m.actor,
                delete_command("role", m.role_id, to, m.cascade),
            ));
        }
        "PutProfile" => {
            let m = msg!(pb::PutProfileRequest);
            let def = convert::profile_from(m.profile)?;
            return Ok(write(m.org_id, m.actor, Command::PutProfile(def)));
        }
        "DeleteProfile" => {
            let m = msg!(pb::DeleteProfileRequest);
            return Ok(write(
                m.org_id,
                m.actor,
                delete_command("profile", m.profile_id, None, m.cascade),
            ));
        }
        "PutGroup" => {
            let m = msg!(pb::PutGroupRequest);
            let def = convert::group_from(m.group)?;
            return Ok(write(m.org_id, m.actor, Command::PutGroup(def)));
        }
        "GetGroup" => {
            let m = msg!(pb::GetGroupRequest);
            convert::consistency(m.consistency)?;
            if let Ok((view, _)) = e.group_view(&m.org_id, &m.group_id) {
                let round = convert::group_from(Some(convert::group(&view.group)))?;
                assert_eq!(round, view.group, "a group changes through protobuf");
            }
        }
        "DeleteGroup" => {
            let m = msg!(pb::DeleteGroupRequest);
            let to = convert::owner_opt(m.transfer_to);
            return Ok(write(
                m.org_id,
                m.actor,
                delete_command("group", m.group_id, to, m.cascade),
            ));
        }
        "PutSharingRule" => {
            let m = msg!(pb::PutSharingRuleRequest);
            let def = convert::rule_from(m.rule)?;
            return Ok(write(m.org_id, m.actor, Command::PutSharingRule(def)));
        }
        "DeleteSharingRule" => {
            let m = msg!(pb::DeleteSharingRuleRequest);
            return Ok(write(
                m.org_id,
                m.actor,
                delete_command("sharing_rule", m.rule_id, None, false),
            ));
        }
        "PutShift" => {
            let m = msg!(pb::PutShiftRequest);
            let def = convert::shift_from(m.shift)?;
            return Ok(write(m.org_id, m.actor, Command::PutShift(def)));
        }
        "DeleteShift" => {
            let m = msg!(pb::DeleteShiftRequest);
            return Ok(write(
                m.org_id,
                m.actor,
                delete_command("shift", m.shift_id, None, m.cascade),
            ));
        }
        "Import" => {
            let m = msg!(pb::ImportRequest);
            let document = parse_document(&m.document)?;
            let org = if m.org_id.is_empty() {
                document.organization.clone()
            } else {
                m.org_id
            };
            return Ok(write(
                org,
                m.actor,
                Command::Import {
                    document,
                    replace: m.replace,
                },
            ));
        }
        _ => {
            let m = msg!(pb::WatchRequest);
            if !m.after_revision.is_empty() {
                convert::parse_revision("after_revision", &m.after_revision)?;
            }
        }
    }
    Ok(Asked::Nothing)
}

/// Converts and answers one check message as the Check handler does.
fn check_message(e: &Engine<Direct>, m: pb::CheckRequest) -> crate::engine::Result<()> {
    let (org, req, _consistency) = convert::check_from(m)?;
    if let Ok((d, rev)) = e.check(&org, &req, now()) {
        let answer = convert::decision(d.clone(), rev);
        assert_eq!(answer.allowed, d.allowed, "a decision changes in protobuf");
        assert_eq!(
            convert::parse_revision("revision", &answer.revision).ok(),
            Some(rev)
        );
    }
    Ok(())
}

/// What every list and Export answer returns survives protobuf unchanged.
fn lists_round_trip(e: &Engine<Direct>, org: &str) -> crate::engine::Result<()> {
    if let Ok((users, _)) = e.users(org) {
        for u in users {
            assert_eq!(convert::user_from(Some(convert::user(&u)))?, u);
        }
    }
    if let Ok((roles, _)) = e.roles(org) {
        for r in roles {
            assert_eq!(convert::role_from(Some(convert::role(&r)))?, r);
        }
    }
    if let Ok((rules, _)) = e.sharing_rules(org) {
        for r in rules {
            assert_eq!(convert::rule_from(Some(convert::rule(&r)))?, r);
        }
    }
    Ok(())
}

/// `DeleteRecord` as the Grant handler builds it (kept in one place so a
/// change to the command's fields is made once here).
fn delete_record_command(module: String, id: String) -> Command {
    Command::DeleteRecord { module, id }
}

/// A delete command of the Admin service, as its handler builds it (kept in
/// one place so a change to the delete commands' fields is made once here).
fn delete_command(kind: &str, id: String, transfer_to: Option<OwnerRef>, cascade: bool) -> Command {
    match kind {
        "module" => Command::DeleteModule { id, cascade },
        "profile" => Command::DeleteProfile { id, cascade },
        "sharing_rule" => Command::DeleteSharingRule(id),
        "shift" => Command::DeleteShift { id, cascade },
        "role" => Command::DeleteRole {
            id,
            transfer_to: match transfer_to {
                Some(OwnerRef::User(r) | OwnerRef::Group(r)) => Some(r),
                None => None,
            },
            cascade,
        },
        "user" => Command::DeleteUser {
            id,
            transfer_to,
            cascade,
        },
        _ => Command::DeleteGroup {
            id,
            transfer_to,
            cascade,
        },
    }
}

/// `SetOwner` of a record (kept in one place for the same reason).
fn set_owner_command(
    module: &str,
    id: &str,
    owner: Option<OwnerRef>,
    private: Option<bool>,
) -> Command {
    Command::SetOwner(RecordWrite {
        module: module.to_string(),
        id: id.to_string(),
        owner,
        private,
        attributes: None,
    })
}

// ---------------------------------------------------------------------------
// (c) engine invariants
// ---------------------------------------------------------------------------

/// Reads choices from the fuzzer's bytes; past the end every choice is 0.
struct Choices<'a> {
    data: &'a [u8],
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::from(self.byte()) % n
        }
    }

    /// True about once in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn pick<'t>(&mut self, items: &'t [String]) -> Option<&'t String> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len()))
        }
    }

    /// Each item, kept when its bit of the next byte is set (at most 8).
    fn subset(&mut self, items: &[String]) -> Vec<String> {
        let bits = self.byte();
        items
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

const ACTIONS: [&str; 8] = [
    "view", "edit", "delete", "share", "assign", "create", "export", "fly",
];
const OWDS: [Owd; 4] = [
    Owd::Private,
    Owd::PublicRead,
    Owd::PublicReadWrite,
    Owd::PublicFull,
];
const LEVELS: [AccessLevel; 3] = [AccessLevel::Read, AccessLevel::ReadWrite, AccessLevel::Full];

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A small organization drawn from the input: the names it uses, and the
/// document that creates it.
struct World {
    modules: Vec<String>,
    users: Vec<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    profiles: Vec<String>,
    records: Vec<String>,
}

impl World {
    fn generate(c: &mut Choices) -> (World, OrgDocument) {
        let modules = ids("M", 1 + c.below(2));
        let profiles = ids("p", 1 + c.below(3));
        let roles = ids("r", 1 + c.below(4));
        let users = ids("u", 2 + c.below(5));
        let groups = ids("g", c.below(4));
        let records = ids("rec", 1 + c.below(5));
        let world = World {
            modules,
            users,
            roles,
            groups,
            profiles,
            records,
        };
        let doc = world.document(c);
        (world, doc)
    }

    fn document(&self, c: &mut Choices) -> OrgDocument {
        let settings = SettingsPatch {
            hierarchy_mode: Some(if c.one_in(3) {
                HierarchyMode::Reporting
            } else {
                HierarchyMode::Role
            }),
            enforce_shifts: Some(c.one_in(3)),
            password_policy: None,
        };
        let modules = self
            .modules
            .iter()
            .map(|m| ModuleDef {
                id: m.clone(),
                owd: OWDS[c.below(OWDS.len())],
                hierarchy_access: !c.one_in(4),
                fields: vec!["f0".into(), "f1".into()],
                actions: BTreeMap::from([("export".to_string(), LEVELS[c.below(LEVELS.len())])]),
            })
            .collect();
        let profiles = self
            .profiles
            .iter()
            .map(|p| {
                let mut modules = BTreeMap::new();
                let mut fields = BTreeMap::new();
                for m in &self.modules {
                    let bits = c.byte();
                    let actions: Vec<String> = ACTIONS[..7]
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| bits & (1 << i) != 0)
                        .map(|(_, a)| a.to_string())
                        .collect();
                    modules.insert(m.clone(), actions);
                    if c.one_in(3) {
                        let level = [FieldLevel::Hidden, FieldLevel::ReadOnly][c.below(2)];
                        fields.insert(m.clone(), BTreeMap::from([("f0".to_string(), level)]));
                    }
                }
                ProfileDef {
                    id: p.clone(),
                    modules,
                    view_all: if c.one_in(6) {
                        vec![self.modules[0].clone()]
                    } else {
                        Vec::new()
                    },
                    modify_all: if c.one_in(8) {
                        vec![self.modules[0].clone()]
                    } else {
                        Vec::new()
                    },
                    fields,
                    ..ProfileDef::default()
                }
            })
            .collect();
        let roles = self
            .roles
            .iter()
            .enumerate()
            .map(|(i, r)| RoleDef {
                id: r.clone(),
                parent: if i == 0 || c.one_in(4) {
                    None
                } else {
                    self.roles.get(c.below(i)).cloned()
                },
                profiles: c.subset(&self.profiles),
                assign_scope: if c.flag() {
                    AssignScope::All
                } else {
                    AssignScope::SameAndSubordinate
                },
                ..RoleDef::default()
            })
            .collect();
        let shifts = vec![ShiftDef {
            id: "s0".into(),
            time_zone: if c.flag() { "UTC" } else { "Asia/Tokyo" }.into(),
            windows: vec![WindowDef {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                start: "09:00".into(),
                end: "17:00".into(),
            }],
        }];
        let mut users: Vec<UserDef> = Vec::new();
        for (i, u) in self.users.iter().enumerate() {
            let guest = c.one_in(5);
            let members: Vec<String> = users
                .iter()
                .filter(|u| u.kind == UserKind::Member)
                .map(|u| u.id.clone())
                .collect();
            users.push(UserDef {
                id: u.clone(),
                kind: if guest {
                    UserKind::Guest
                } else {
                    UserKind::Member
                },
                role: if guest {
                    None
                } else {
                    c.pick(&self.roles).cloned()
                },
                profiles: if c.one_in(3) {
                    c.subset(&self.profiles)
                } else {
                    Vec::new()
                },
                reports_to: if guest || i == 0 || c.flag() {
                    None
                } else {
                    c.pick(&members).cloned()
                },
                shift: c.one_in(3).then(|| "s0".to_string()),
                admin: c.one_in(8),
                active: !c.one_in(8),
                ..UserDef::default()
            });
        }
        let members: Vec<String> = users
            .iter()
            .filter(|u| u.kind == UserKind::Member)
            .map(|u| u.id.clone())
            .collect();
        let mut groups: Vec<GroupDef> = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            let personal = c.one_in(4);
            groups.push(if personal {
                GroupDef {
                    id: g.clone(),
                    kind: GroupKind::Personal,
                    owner: c.pick(&members).cloned(),
                    users: c.subset(&self.users),
                    ..GroupDef::default()
                }
            } else {
                GroupDef {
                    id: g.clone(),
                    users: c.subset(&self.users),
                    roles: if c.one_in(3) {
                        c.subset(&self.roles)
                    } else {
                        Vec::new()
                    },
                    roles_and_subordinates: if c.one_in(3) {
                        c.subset(&self.roles)
                    } else {
                        Vec::new()
                    },
                    groups: c.subset(&self.groups[..i]),
                    leads: if c.one_in(2) {
                        c.subset(&members)
                    } else {
                        Vec::new()
                    },
                    ..GroupDef::default()
                }
            });
        }
        let mut records = Vec::new();
        for m in &self.modules {
            for r in &self.records {
                if c.one_in(4) {
                    continue;
                }
                records.push(RecordDef {
                    module: m.clone(),
                    id: r.clone(),
                    owner: self.owner(c),
                    private: c.one_in(4),
                    attributes: if c.one_in(3) {
                        BTreeMap::from([("k".to_string(), ["a", "b"][c.below(2)].to_string())])
                    } else {
                        BTreeMap::new()
                    },
                });
            }
        }
        let shares = (0..c.below(4))
            .filter_map(|_| {
                let r = records.get(c.below(records.len()))?;
                Some(ShareDef {
                    module: r.module.clone(),
                    record: r.id.clone(),
                    grantee: self.grantee(c),
                    level: LEVELS[c.below(LEVELS.len())],
                })
            })
            .collect::<Vec<_>>();
        let mut seen = BTreeSet::new();
        let shares = shares
            .into_iter()
            .filter(|s| seen.insert((s.module.clone(), s.record.clone(), s.grantee.clone())))
            .collect();
        let sharing_rules = (0..c.below(3))
            .map(|i| self.rule(c, format!("rule{i}")))
            .collect();
        OrgDocument {
            organization: ORG.into(),
            settings: Some(settings),
            modules,
            profiles,
            roles,
            shifts,
            users,
            groups,
            records,
            shares,
            sharing_rules,
        }
    }

    /// A known owner, or now and then an unknown one.
    fn owner(&self, c: &mut Choices) -> OwnerRef {
        if !self.groups.is_empty() && c.one_in(3) {
            return OwnerRef::Group(c.pick(&self.groups).cloned().unwrap_or_default());
        }
        OwnerRef::User(c.pick(&self.users).cloned().unwrap_or_default())
    }

    fn member_set(&self, c: &mut Choices) -> MemberSet {
        match c.below(3) {
            0 if !self.groups.is_empty() => {
                MemberSet::Group(c.pick(&self.groups).cloned().unwrap_or_default())
            }
            1 => MemberSet::Role(c.pick(&self.roles).cloned().unwrap_or_default()),
            _ => MemberSet::RoleAndSubordinates(c.pick(&self.roles).cloned().unwrap_or_default()),
        }
    }

    fn grantee(&self, c: &mut Choices) -> Grantee {
        match self.member_set(c) {
            _ if c.one_in(2) => Grantee::User(c.pick(&self.users).cloned().unwrap_or_default()),
            MemberSet::Group(g) => Grantee::Group(g),
            MemberSet::Role(r) => Grantee::Role(r),
            MemberSet::RoleAndSubordinates(r) => Grantee::RoleAndSubordinates(r),
        }
    }

    fn rule(&self, c: &mut Choices, id: String) -> SharingRuleDef {
        let criteria = c.one_in(3);
        SharingRuleDef {
            id,
            module: c.pick(&self.modules).cloned().unwrap_or_default(),
            from: (!criteria).then(|| self.member_set(c)),
            criteria: criteria.then(|| BTreeMap::from([("k".to_string(), "a".to_string())])),
            to: self.member_set(c),
            access: LEVELS[c.below(2)],
        }
    }

    /// A name from `known`, or now and then one that names nothing.
    fn name(&self, c: &mut Choices, known: &[String], unknown: &str) -> String {
        if c.one_in(8) {
            unknown.to_string()
        } else {
            c.pick(known)
                .cloned()
                .unwrap_or_else(|| unknown.to_string())
        }
    }

    fn check(&self, c: &mut Choices) -> CheckRequest {
        let action = ACTIONS[c.below(ACTIONS.len())].to_string();
        let record =
            (action != "create" && !c.one_in(4)).then(|| self.name(c, &self.records, "nowhere"));
        let field = (matches!(action.as_str(), "view" | "edit") && c.one_in(4))
            .then(|| ["f0", "f1", "nofield"][c.below(3)].to_string());
        let assign_to = (action == "assign" && record.is_some()).then(|| self.owner(c));
        CheckRequest {
            subject: self.name(c, &self.users, "nobody").into(),
            module: self.name(c, &self.modules, "Nothing").into(),
            action: action.into(),
            record: record.map(Into::into),
            field: field.map(Into::into),
            at: match c.below(3) {
                0 => None,
                1 => Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).single(),
                _ => Utc.with_ymd_and_hms(2026, 3, 4, 12, 30, 0).single(),
            },
            explain: c.flag(),
            assign_to,
            described: None,
        }
    }

    fn command(&self, c: &mut Choices) -> Command {
        let module = self.name(c, &self.modules, "Nothing");
        let record = self.name(c, &self.records, "fresh");
        match c.below(10) {
            0 | 1 => {
                let owner = (!c.one_in(4)).then(|| self.owner(c));
                let private = match c.below(3) {
                    0 => None,
                    n => Some(n == 1),
                };
                set_owner_command(&module, &record, owner, private)
            }
            2 => delete_record_command(module, record),
            3 => Command::Share(vec![ShareDef {
                module,
                record,
                grantee: self.grantee(c),
                level: LEVELS[c.below(LEVELS.len())],
            }]),
            4 => Command::Unshare(vec![ShareDef {
                module,
                record,
                grantee: self.grantee(c),
                level: AccessLevel::Read,
            }]),
            5 => Command::PutGroup(GroupDef {
                id: self.name(c, &self.groups, "gnew"),
                users: c.subset(&self.users),
                groups: if c.one_in(3) {
                    c.subset(&self.groups)
                } else {
                    Vec::new()
                },
                leads: if c.one_in(3) {
                    c.subset(&self.users)
                } else {
                    Vec::new()
                },
                kind: if c.one_in(3) {
                    GroupKind::Personal
                } else {
                    GroupKind::Organization
                },
                owner: c.one_in(3).then(|| self.name(c, &self.users, "nobody")),
                ..GroupDef::default()
            }),
            6 => Command::PutUser(UserDef {
                id: self.name(c, &self.users, "unew"),
                role: c.pick(&self.roles).cloned().filter(|_| !c.one_in(4)),
                profiles: c.subset(&self.profiles),
                reports_to: c.one_in(3).then(|| self.name(c, &self.users, "nobody")),
                admin: c.one_in(6),
                active: !c.one_in(4),
                kind: if c.one_in(5) {
                    UserKind::Guest
                } else {
                    UserKind::Member
                },
                ..UserDef::default()
            }),
            7 => Command::PutRole(RoleDef {
                id: self.name(c, &self.roles, "rnew"),
                parent: c.one_in(2).then(|| self.name(c, &self.roles, "rnone")),
                profiles: c.subset(&self.profiles),
                ..RoleDef::default()
            }),
            8 => {
                let id = format!("rule{}", c.below(3));
                Command::PutSharingRule(self.rule(c, id))
            }
            _ => match c.below(3) {
                0 => delete_command(
                    "user",
                    self.name(c, &self.users, "nobody"),
                    c.flag().then(|| self.owner(c)),
                    c.flag(),
                ),
                1 => delete_command(
                    "group",
                    self.name(c, &self.groups, "gnone"),
                    c.flag().then(|| self.owner(c)),
                    c.flag(),
                ),
                _ => delete_command(
                    "role",
                    self.name(c, &self.roles, "rnone"),
                    c.flag()
                        .then(|| OwnerRef::User(self.name(c, &self.roles, "rnone"))),
                    c.flag(),
                ),
            },
        }
    }
}

/// The level an action needs on a record, as step 2 of the spec orders them.
fn required(org: &OrgDocument, module: &str, action: &str) -> Option<AccessLevel> {
    match action {
        "view" => Some(AccessLevel::Read),
        "edit" => Some(AccessLevel::ReadWrite),
        "delete" | "share" | "assign" => Some(AccessLevel::Full),
        other => org
            .modules
            .iter()
            .find(|m| m.id == module)
            .and_then(|m| m.actions.get(other).copied()),
    }
}

/// The reasons that end a check with ALLOW.
fn allows(reason: Reason, record: bool) -> bool {
    match reason {
        Reason::Admin
        | Reason::Owner
        | Reason::GroupOwner
        | Reason::ViewAll
        | Reason::ModifyAll
        | Reason::Hierarchy
        | Reason::TeamLead
        | Reason::OrgDefault
        | Reason::SharingRule
        | Reason::ManualShare => true,
        Reason::Profile => !record,
        Reason::UnknownSubject
        | Reason::InactiveSubject
        | Reason::OutsideShift
        | Reason::UnknownModule
        | Reason::Field
        | Reason::UnknownRecord
        | Reason::InsufficientAccess
        | Reason::AssignScope => false,
    }
}

/// Deny by default, checked against the organization as exported.
fn check_invariants(org: &OrgDocument, req: &CheckRequest, d: &Decision) {
    let what = || format!("{req:?} → {:?} {:?}", d.allowed, d.reason);
    // A profile that lacks the action also denies with PROFILE.
    if d.reason != Reason::Profile || d.allowed {
        assert_eq!(
            d.allowed,
            allows(d.reason, req.record.is_some()),
            "the decision contradicts its reason: {}",
            what()
        );
    }
    if !d.allowed {
        return;
    }
    let Some(user) = org.users.iter().find(|u| u.id == req.subject) else {
        panic!("an unknown subject was allowed: {}", what());
    };
    assert!(user.active, "an inactive subject was allowed: {}", what());
    if user.admin {
        return;
    }
    assert!(
        org.modules.iter().any(|m| m.id == req.module),
        "an unknown module was allowed: {}",
        what()
    );
    let role_profiles = user
        .role
        .as_ref()
        .and_then(|r| org.roles.iter().find(|x| &x.id == r))
        .map(|r| r.profiles.len())
        .unwrap_or(0);
    assert!(
        !user.profiles.is_empty() || role_profiles > 0,
        "a subject with no profile was allowed: {}",
        what()
    );
    let Some(record_id) = &req.record else {
        return;
    };
    let Some(record) = org
        .records
        .iter()
        .find(|r| r.module == req.module && r.id == *record_id)
    else {
        panic!("an unknown record was allowed: {}", what());
    };
    if let Some(needed) = required(org, &req.module, &req.action) {
        assert!(
            d.level >= needed,
            "allowed below the level the action needs: {}",
            what()
        );
    }
    if user.kind == UserKind::Guest {
        assert!(
            d.reason != Reason::OrgDefault,
            "a guest was given the organization-wide default: {}",
            what()
        );
    }
    if record.private {
        assert!(
            !matches!(d.reason, Reason::OrgDefault | Reason::SharingRule),
            "a private record was opened by a default or a rule: {}",
            what()
        );
    }
}

/// Arbitrary bytes draw a small organization, then a sequence of checks and
/// writes run on a direct engine and on a cached one (with a tiny bound, so
/// it also evicts). Both must answer alike; every answer must deny by
/// default (unknown or inactive subject, unknown module or record, no
/// profile: never ALLOW) and agree with its own reason; an error stays an
/// error; a refused write changes nothing; LookupRecords agrees with Check.
pub fn engine(data: &[u8]) {
    let mut c = Choices { data };
    let (world, doc) = World::generate(&mut c);
    let direct = Engine::new(Direct, Limits::default());
    let cached = Engine::new(Cached::new(4), Limits::default());
    let import = Command::Import {
        document: doc,
        replace: true,
    };
    let (a, b) = (direct.execute(ORG, &import), cached.execute(ORG, &import));
    assert_eq!(a, b, "direct and cached engines disagree on the import");
    if a.is_err() {
        return;
    }
    let mut org = export(&direct, ORG);
    for _ in 0..64 {
        if c.is_empty() {
            break;
        }
        match c.below(8) {
            0..=3 => {
                let req = world.check(&mut c);
                let (a, b) = (
                    direct.check(ORG, &req, now()),
                    cached.check(ORG, &req, now()),
                );
                assert_eq!(a, b, "direct and cached engines disagree on {req:?}");
                let Ok((d, _)) = a else { continue };
                check_invariants(&org, &req, &d);
                let flipped = CheckRequest {
                    explain: !req.explain,
                    ..req.clone()
                };
                let again = direct.check(ORG, &flipped, now());
                let same = again.as_ref().is_ok_and(|(e, _)| {
                    (e.allowed, e.reason, e.level) == (d.allowed, d.reason, d.level)
                });
                assert!(same, "explain changes the decision of {req:?}");
            }
            4..=6 => {
                let command = world.command(&mut c);
                let actor = c
                    .one_in(2)
                    .then(|| world.name(&mut c, &world.users, "nobody"));
                let before = (snapshot(&direct, ORG), snapshot(&cached, ORG));
                let a = write_as(&direct, actor.as_deref(), &command);
                let b = write_as(&cached, actor.as_deref(), &command);
                assert_eq!(a, b, "direct and cached engines disagree on {command:?}");
                let after = (snapshot(&direct, ORG), snapshot(&cached, ORG));
                if a.is_err() {
                    assert!(
                        after == before,
                        "a refused write changed something: {command:?}"
                    );
                } else {
                    assert!(
                        after.0 == after.1,
                        "direct and cached engines diverge after {command:?}"
                    );
                }
                match after.0 {
                    Some((doc, _)) => org = doc,
                    None => return,
                }
            }
            _ => {
                let subject = world.name(&mut c, &world.users, "nobody");
                let module = world.name(&mut c, &world.modules, "Nothing");
                let action = ACTIONS[c.below(4)];
                lookup_agrees_with_check(&direct, &cached, &org, &subject, &module, action);
            }
        }
    }
}

/// A write by `actor` (authorized by Warden's rules, without the admin
/// scope) or by an operator.
fn write_as<X: Expand>(
    engine: &Engine<X>,
    actor: Option<&str>,
    command: &Command,
) -> crate::engine::Result<u64> {
    if let Some(actor) = actor {
        engine.authorize(ORG, actor, false, command, now())?;
    }
    engine.execute(ORG, command)
}

/// LookupRecords lists exactly the records Check allows, on both engines.
fn lookup_agrees_with_check<X: Expand, Y: Expand>(
    direct: &Engine<X>,
    cached: &Engine<Y>,
    org: &OrgDocument,
    subject: &str,
    module: &str,
    action: &str,
) {
    let a = direct.lookup_records(ORG, subject, module, action, now());
    let b = cached.lookup_records(ORG, subject, module, action, now());
    assert_eq!(
        a, b,
        "engines disagree on LookupRecords {subject} {module} {action}"
    );
    let Ok((listed, _)) = a else { return };
    let listed: BTreeSet<String> = listed.iter().map(|r| r.to_string()).collect();
    let mut allowed = BTreeSet::new();
    for r in org.records.iter().filter(|r| r.module == module) {
        let req = CheckRequest {
            subject: subject.into(),
            module: module.into(),
            action: action.into(),
            record: Some(r.id.clone().into()),
            ..CheckRequest::default()
        };
        if let Ok((d, _)) = direct.check(ORG, &req, now()) {
            if d.allowed {
                allowed.insert(r.id.clone());
            }
        }
    }
    assert_eq!(
        listed, allowed,
        "LookupRecords {subject} {module} {action} differs from Check"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_organization_loads() {
        let e = request_engine();
        assert_eq!(e.revision("o"), Some(1));
    }

    #[test]
    fn a_generated_organization_loads_from_plain_bytes() {
        let data: Vec<u8> = (0u8..=255).collect();
        let mut c = Choices { data: &data };
        let (_, doc) = World::generate(&mut c);
        let e = Engine::new(Direct, Limits::default());
        e.execute(
            ORG,
            &Command::Import {
                document: doc,
                replace: true,
            },
        )
        .unwrap();
    }

    #[test]
    #[should_panic(expected = "an unknown subject was allowed")]
    fn an_allowed_unknown_subject_is_caught() {
        let org = OrgDocument::default();
        let req = CheckRequest {
            subject: "nobody".into(),
            module: "M".into(),
            action: "view".into(),
            ..CheckRequest::default()
        };
        let d = Decision {
            allowed: true,
            reason: Reason::Owner,
            level: AccessLevel::Full,
            trace: Vec::new(),
        };
        check_invariants(&org, &req, &d);
    }

    #[test]
    fn every_request_kind_has_a_selector() {
        for k in REQUEST_KINDS {
            let s = request_selector(k).unwrap();
            assert_eq!(REQUEST_KINDS[usize::from(s)], k);
        }
    }
}
