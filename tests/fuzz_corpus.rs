//! Replays the fuzz corpus on stable: every file of fuzz/corpus/<target>/
//! goes through the same library function that cargo-fuzz drives, so the
//! ordinary test command re-checks every input the fuzzers ever kept. Also
//! runs every scenario file as a document input and one hand-written
//! message per RPC as a request input.

// Messages are built with `..Default::default()` even where every field is
// named today, so that fields added to the protocol need no edit here.
#![allow(clippy::needless_update)]

mod common;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::rng::Rng;
use prost::Message;
use warden::api::pb;
use warden::fuzzing::{self, request_selector, REQUEST_KINDS};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs `target` over `inputs`, naming every input that panicked.
fn replay(name: &str, target: fn(&[u8]), inputs: Vec<(String, Vec<u8>)>) -> usize {
    assert!(!inputs.is_empty(), "{name}: no inputs to replay");
    let mut failures = Vec::new();
    for (label, data) in &inputs {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(data))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{label}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} inputs broke an invariant:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    inputs.len()
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn the_document_corpus_replays_clean() {
    let n = replay("document", fuzzing::document, corpus("document"));
    eprintln!("document: {n} corpus inputs");
}

#[test]
fn the_request_corpus_replays_clean() {
    let n = replay("requests", fuzzing::request, corpus("requests"));
    eprintln!("requests: {n} corpus inputs");
}

#[test]
fn the_engine_corpus_replays_clean() {
    let n = replay("engine", fuzzing::engine, corpus("engine"));
    eprintln!("engine: {n} corpus inputs");
}

#[test]
fn every_scenario_is_a_clean_document_input() {
    let inputs = common::scenario_files()
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    replay("scenarios as documents", fuzzing::document, inputs);
}

/// Random bytes beyond the corpus: a fresh draw each time the seed changes.
#[test]
fn random_engine_inputs_keep_the_invariants() {
    let mut rng = Rng(0xF022_0007);
    let inputs = (0..300)
        .map(|i| {
            let len = 16 + rng.below(400);
            let data = (0..len).map(|_| rng.next() as u8).collect();
            (format!("random engine input {i}"), data)
        })
        .collect();
    replay("random engine inputs", fuzzing::engine, inputs);
}

fn owner(user: &str) -> Option<pb::Owner> {
    Some(pb::Owner {
        owner: Some(pb::owner::Owner::UserId(user.into())),
    })
}

fn grantee(user: &str) -> Option<pb::Grantee> {
    Some(pb::Grantee {
        grantee: Some(pb::grantee::Grantee::UserId(user.into())),
    })
}

fn role_set(role: &str) -> Option<pb::MemberSet> {
    Some(pb::MemberSet {
        set: Some(pb::member_set::Set::RoleId(role.into())),
    })
}

fn check(subject: &str, action: &str, record: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        org_id: "o".into(),
        subject: subject.into(),
        module: "Leads".into(),
        action: action.into(),
        record_id: record.into(),
        ..Default::default()
    }
}

/// One meaningful message per RPC, for the organization `o` that the
/// request target holds: the fuzzer's starting points.
fn request_seeds() -> HashMap<&'static str, Vec<u8>> {
    let o = || "o".to_string();
    let ts = Some(prost_types::Timestamp {
        seconds: 1_772_445_600,
        nanos: 0,
    });
    let share = pb::Share {
        module: "Leads".into(),
        record_id: "l1".into(),
        grantee: grantee("eve"),
        level: pb::AccessLevel::Read as i32,
    };
    let mut seeds: HashMap<&'static str, Vec<u8>> = HashMap::new();
    let mut put = |kind: &'static str, body: Vec<u8>| {
        seeds.insert(kind, body);
    };
    put("Check", check("bob", "edit", "l1").encode_to_vec());
    put(
        "CheckBulk",
        pb::CheckBulkRequest {
            checks: vec![
                pb::CheckRequest {
                    assign_to: owner("ann"),
                    ..check("bob", "assign", "l1")
                },
                pb::CheckRequest {
                    field: "phone".into(),
                    at: ts,
                    explain: true,
                    ..check("eve", "view", "l1")
                },
            ],
        }
        .encode_to_vec(),
    );
    put(
        "CheckFields",
        pb::CheckFieldsRequest {
            org_id: o(),
            subject: "ann".into(),
            module: "Leads".into(),
            record_id: "l2".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "LookupRecords",
        pb::LookupRecordsRequest {
            org_id: o(),
            subject: "ann".into(),
            module: "Leads".into(),
            action: "view".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "LookupSubjects",
        pb::LookupSubjectsRequest {
            org_id: o(),
            module: "Leads".into(),
            record_id: "l1".into(),
            action: "view".into(),
            on_shift_at: ts,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "Filter",
        pb::FilterRequest {
            org_id: o(),
            subject: "bob".into(),
            module: "Leads".into(),
            action: "edit".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "ValidatePassword",
        pb::ValidatePasswordRequest {
            org_id: o(),
            user_id: "bob".into(),
            password: "secret12".into(),
            password_set_at: ts,
        }
        .encode_to_vec(),
    );
    put(
        "SetOwner",
        pb::SetOwnerRequest {
            org_id: o(),
            actor: "bob".into(),
            module: "Leads".into(),
            record_id: "l3".into(),
            owner: owner("bob"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteRecord",
        pb::DeleteRecordRequest {
            org_id: o(),
            actor: "bob".into(),
            module: "Leads".into(),
            record_id: "l1".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "Share",
        pb::ShareRequest {
            org_id: o(),
            actor: "bob".into(),
            shares: vec![share.clone()],
        }
        .encode_to_vec(),
    );
    put(
        "Unshare",
        pb::UnshareRequest {
            org_id: o(),
            actor: String::new(),
            shares: vec![share],
        }
        .encode_to_vec(),
    );
    put(
        "ListShares",
        pb::ListSharesRequest {
            org_id: o(),
            module: "Leads".into(),
            record_id: "l1".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let settings = pb::Settings {
        enforce_shifts: Some(true),
        password_policy: Some(pb::PasswordPolicy {
            min_length: Some(10),
            require: vec![pb::CharClass::Upper as i32],
            ..Default::default()
        }),
        ..Default::default()
    };
    put(
        "CreateOrganization",
        pb::CreateOrganizationRequest {
            org_id: "o2".into(),
            settings: Some(settings.clone()),
        }
        .encode_to_vec(),
    );
    put(
        "GetOrganization",
        pb::GetOrganizationRequest {
            org_id: o(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "UpdateSettings",
        pb::UpdateSettingsRequest {
            org_id: o(),
            actor: "admin".into(),
            settings: Some(settings),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteOrganization",
        pb::DeleteOrganizationRequest {
            org_id: o(),
            actor: "ann".into(),
        }
        .encode_to_vec(),
    );
    put(
        "ListOrganizations",
        pb::ListOrganizationsRequest {
            principal: "bob".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "PutModule",
        pb::PutModuleRequest {
            org_id: o(),
            module: Some(pb::Module {
                id: "Contacts".into(),
                owd: pb::Owd::PublicRead as i32,
                fields: vec!["email".into()],
                actions: [("send_mail".to_string(), pb::AccessLevel::Read as i32)].into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteModule",
        pb::DeleteModuleRequest {
            org_id: o(),
            module_id: "Leads".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "PutUser",
        pb::PutUserRequest {
            org_id: o(),
            user: Some(pb::User {
                user_id: "zed".into(),
                role_id: "rep".into(),
                reports_to: "ann".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "GetUser",
        pb::GetUserRequest {
            org_id: o(),
            user_id: "bob".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "Export",
        pb::ExportRequest {
            org_id: o(),
            format: "yaml".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    for kind in ["ListUsers", "ListRoles", "ListGroups", "ListSharingRules"] {
        // These four messages are all { org_id = 1, consistency = 2 }.
        put(
            kind,
            pb::ListUsersRequest {
                org_id: o(),
                consistency: Some(pb::Consistency {
                    requirement: Some(pb::consistency::Requirement::AtLeastAsFresh("1".into())),
                }),
            }
            .encode_to_vec(),
        );
    }
    put(
        "DeleteUser",
        pb::DeleteUserRequest {
            org_id: o(),
            user_id: "bob".into(),
            transfer_to: owner("ann"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "PutRole",
        pb::PutRoleRequest {
            org_id: o(),
            role: Some(pb::Role {
                id: "intern".into(),
                parent_id: "rep".into(),
                profile_ids: vec!["sales".into()],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteRole",
        pb::DeleteRoleRequest {
            org_id: o(),
            role_id: "rep".into(),
            transfer_to: "boss".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "PutProfile",
        pb::PutProfileRequest {
            org_id: o(),
            profile: Some(pb::Profile {
                id: "reader".into(),
                modules: [(
                    "Leads".to_string(),
                    pb::ActionList {
                        actions: vec!["view".into()],
                    },
                )]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteProfile",
        pb::DeleteProfileRequest {
            org_id: o(),
            profile_id: "audit".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "PutGroup",
        pb::PutGroupRequest {
            org_id: o(),
            actor: "bob".into(),
            group: Some(pb::Group {
                group_id: "mine".into(),
                kind: pb::GroupKind::Personal as i32,
                owner_id: "bob".into(),
                users: vec!["eve".into()],
                ..Default::default()
            }),
        }
        .encode_to_vec(),
    );
    put(
        "GetGroup",
        pb::GetGroupRequest {
            org_id: o(),
            group_id: "team".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteGroup",
        pb::DeleteGroupRequest {
            org_id: o(),
            actor: "bob".into(),
            group_id: "circle".into(),
            transfer_to: owner("bob"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "PutSharingRule",
        pb::PutSharingRuleRequest {
            org_id: o(),
            rule: Some(pb::SharingRule {
                rule_id: "up".into(),
                module: "Leads".into(),
                from: role_set("rep"),
                to: role_set("boss"),
                access: pb::AccessLevel::ReadWrite as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteSharingRule",
        pb::DeleteSharingRuleRequest {
            org_id: o(),
            rule_id: "eu".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "PutShift",
        pb::PutShiftRequest {
            org_id: o(),
            shift: Some(pb::Shift {
                shift_id: "night".into(),
                time_zone: "America/New_York".into(),
                windows: vec![pb::ShiftWindow {
                    days: vec![pb::Weekday::Sat as i32],
                    start: "22:00".into(),
                    end: "06:00".into(),
                }],
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "DeleteShift",
        pb::DeleteShiftRequest {
            org_id: o(),
            shift_id: "day".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "Import",
        pb::ImportRequest {
            org_id: o(),
            document: "organization: o\nusers: [{id: new, role: rep}]\n".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put(
        "Watch",
        pb::WatchRequest {
            org_id: o(),
            after_revision: "1".into(),
            checkpoint_seconds: 1,
        }
        .encode_to_vec(),
    );
    seeds
}

fn request_inputs() -> Vec<(String, Vec<u8>)> {
    let seeds = request_seeds();
    let mut inputs = Vec::new();
    for kind in REQUEST_KINDS {
        let body = seeds
            .get(kind)
            .unwrap_or_else(|| panic!("no hand-written seed for {kind}"));
        let mut data = vec![request_selector(kind).unwrap()];
        data.extend_from_slice(body);
        inputs.push((kind.to_string(), data));
    }
    inputs
}

#[test]
fn a_hand_written_message_of_every_rpc_is_a_clean_request_input() {
    let n = replay("request seeds", fuzzing::request, request_inputs());
    assert_eq!(n, REQUEST_KINDS.len());
}

/// Writes the hand-written seeds into fuzz/corpus (run by scripts/fuzz.sh
/// before fuzzing, so a fresh checkout starts from them).
#[test]
#[ignore = "writes seed files; run by scripts/fuzz.sh"]
fn write_seeds() {
    let dir = corpus_dir("requests");
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, data) in request_inputs() {
        std::fs::write(dir.join(format!("seed-{kind}")), data).unwrap();
    }
    let dir = corpus_dir("document");
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    for p in common::scenario_files() {
        let name = p
            .strip_prefix(&root)
            .unwrap()
            .display()
            .to_string()
            .replace('/', "-");
        std::fs::copy(&p, dir.join(format!("scenario-{name}"))).unwrap();
    }
    let dir = corpus_dir("engine");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(0x00E0_610E);
    for i in 0..8 {
        let len = 64 + rng.below(256);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(dir.join(format!("seed-random-{i}")), data).unwrap();
    }
}
