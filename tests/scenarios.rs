//! Every scenario document under tests/scenarios/ through the library (with
//! and without the membership cache) and through `warden validate`.

mod common;

use std::path::Path;

use common::scenario_files;
use std::process::Command;

use chrono::Utc;
use warden::cache::Cached;
use warden::document::{parse_scenario, runner};
use warden::engine::{Direct, Engine, Expand, Limits};

fn run_all<X: Expand>(make: impl Fn() -> Engine<X>) -> (usize, Vec<String>) {
    let mut passed = 0;
    let mut failures = Vec::new();
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario = parse_scenario(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let engine = make();
        let outcome = runner::run_on_engine(&engine, &scenario, Utc::now());
        passed += outcome.passed;
        failures.extend(
            outcome
                .failures
                .iter()
                .map(|f| format!("{}: {f}", file.display())),
        );
    }
    (passed, failures)
}

#[test]
fn every_scenario_passes_on_the_plain_engine() {
    let (passed, failures) = run_all(|| Engine::new(Direct, Limits::default()));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > 0);
}

#[test]
fn every_scenario_passes_on_the_cached_engine() {
    let (passed, failures) = run_all(|| Engine::new(Cached::default(), Limits::default()));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > 0);
}

#[test]
fn shared_scenarios_are_copied_unchanged() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/scenarios");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return; // shared/ is beside the checkout in CI and for developers; nothing to compare elsewhere
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let ours = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/scenarios")
                .join(p.file_name().unwrap());
            assert_eq!(
                std::fs::read_to_string(&p).unwrap(),
                std::fs::read_to_string(&ours).unwrap_or_default(),
                "{} differs from the shared copy",
                ours.display()
            );
        }
    }
}

#[test]
fn warden_validate_passes_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("validate")
        .args(scenario_files())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

#[test]
fn warden_validate_reports_a_wrong_expectation_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.yaml");
    std::fs::write(
        &file,
        "organization: o\nmodules: [{id: Leads, owd: PRIVATE}]\nprofiles: [{id: p, modules: {Leads: [view]}}]\n\
         roles: [{id: r, profiles: [p]}]\nusers: [{id: a, role: r}, {id: b, role: r}]\n\
         records: [{module: Leads, id: L1, owner: {user: a}}]\n\
         checks:\n  - {subject: a, module: Leads, action: view, record: L1, expect: ALLOW, reason: OWNER}\n\
         \x20 - {subject: b, module: Leads, action: view, record: L1, expect: ALLOW, reason: OWNER}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains(
            "checks[1] b view Leads/L1: expected ALLOW (OWNER), got DENY (INSUFFICIENT_ACCESS)"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn export_then_import_gives_the_same_organization_and_answers() {
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario = parse_scenario(&text).unwrap();
        if scenario.expect_error.is_some() {
            continue;
        }
        let org = scenario.document.organization.clone();
        let first = Engine::new(Direct, Limits::default());
        runner::run_on_engine(&first, &scenario, Utc::now());
        let (exported, _) = first.export(&org).unwrap();
        // Through JSON text, as Export and Import carry it.
        let json = serde_json::to_string(&exported).unwrap();
        let mut again = parse_scenario(&json).unwrap();
        assert_eq!(again.document, exported, "{}", file.display());
        again.checks = scenario.checks.clone();
        let second = Engine::new(Direct, Limits::default());
        let outcome = runner::run_on_engine(&second, &again, Utc::now());
        assert!(
            outcome.failures.is_empty(),
            "{}: {:?}",
            file.display(),
            outcome.failures
        );
        assert_eq!(
            second.export(&org).unwrap().0,
            exported,
            "{}",
            file.display()
        );
    }
}
