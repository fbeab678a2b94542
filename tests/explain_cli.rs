//! `warden explain` run as a user would: the built binary on scenario
//! documents and against a real server, its exit status and its tree.

mod common;

use std::process::{Command, Output};

use common::{check_req, scenario_path, Server};
use warden::document::{parse_scenario, Expect};
use warden::engine::model::OwnerRef;

fn explain(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("explain")
        .args(args)
        .env_remove("WARDEN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("run warden explain")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The command-line arguments of a scenario check.
fn check_args(c: &warden::document::CheckSpec) -> Vec<String> {
    let mut args = vec![c.subject.clone(), c.module.clone(), c.action.clone()];
    args.extend(c.record.clone());
    if let Some(f) = &c.field {
        args.extend(["--field".to_string(), f.clone()]);
    }
    if let Some(at) = &c.at {
        args.extend(["--at".to_string(), at.to_rfc3339()]);
    }
    match &c.assign_to {
        Some(OwnerRef::User(u)) => args.extend(["--assign-to".to_string(), format!("user:{u}")]),
        Some(OwnerRef::Group(g)) => args.extend(["--assign-to".to_string(), format!("group:{g}")]),
        None => {}
    }
    args
}

#[test]
fn every_check_of_scenario_documents_exits_with_its_decision_and_names_its_reason() {
    for name in [
        "groups-as-owners.yaml",
        "sharing-rules-member-sorts.yaml",
        "shifts-time-zones.yaml",
        "assign-scope.yaml",
        "field-levels.yaml",
    ] {
        let path = scenario_path(name);
        let scenario = parse_scenario(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(!scenario.checks.is_empty(), "{name} has checks");
        for c in &scenario.checks {
            let mut args = vec!["--doc".to_string(), path.display().to_string()];
            args.extend(check_args(c));
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = explain(&argv, &[]);
            let stdout = text(&out.stdout);
            let want_code = match c.expect {
                Expect::Allow => 0,
                Expect::Deny => 1,
            };
            assert_eq!(
                out.status.code(),
                Some(want_code),
                "{name} {args:?}: stdout {stdout} stderr {}",
                text(&out.stderr)
            );
            let verdict = if want_code == 0 { "ALLOW" } else { "DENY" };
            let first = stdout.lines().next().unwrap_or_default();
            assert!(first.starts_with(verdict), "{name} {args:?}: {stdout}");
            if let Some(reason) = c.reason {
                assert!(
                    first.contains(&format!("({})", reason.as_str())),
                    "{name} {args:?}: the first line names {}: {stdout}",
                    reason.as_str()
                );
            }
        }
    }
}

#[test]
fn an_allowed_check_marks_the_deciding_path_in_the_tree() {
    let doc = scenario_path("groups-as-owners.yaml");
    let doc = doc.to_str().unwrap();
    let out = explain(
        &["--doc", doc, "person1", "Events", "edit", "meeting-1"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let deciding: Vec<&str> = stdout.lines().filter(|l| l.contains("◀ decides")).collect();
    assert_eq!(deciding.len(), 1, "{stdout}");
    assert!(deciding[0].contains("GROUP_OWNER [FULL]"), "{stdout}");
    // The path's detail names the group behind it, under its branch.
    assert!(stdout.contains("team-a"), "{stdout}");
    assert!(stdout.contains("└─"), "a tree: {stdout}");
}

#[test]
fn errors_exit_2_naming_the_field_and_change_nothing_printed_on_stdout() {
    let doc = scenario_path("groups-as-owners.yaml");
    let doc = doc.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--doc",
                doc,
                "person1",
                "Events",
                "view",
                "meeting-1",
                "--field",
                "nope",
            ],
            "field",
        ),
        (
            &[
                "--doc",
                doc,
                "person1",
                "Events",
                "view",
                "--at",
                "yesterday",
            ],
            "--at",
        ),
        (
            &[
                "--doc",
                doc,
                "person1",
                "Events",
                "assign",
                "meeting-1",
                "--assign-to",
                "team:x",
            ],
            "--assign-to",
        ),
        (
            &[
                "--doc",
                "/nonexistent/doc.yaml",
                "person1",
                "Events",
                "view",
            ],
            "--doc",
        ),
    ];
    for (args, field) in cases {
        let out = explain(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn against_a_running_server_it_answers_as_grpc_check_with_the_token_it_is_given() {
    let doc = scenario_path("sharing-rules-member-sorts.yaml");
    let server = Server::start_with_env(
        &["--bootstrap", doc.to_str().unwrap()],
        &[("WARDEN_AUTH_TOKENS", "check-token=check")],
    );
    let mut clients = server.clients().await;
    let url = server.url();
    let cases = [
        ("sp", "Leads", "view", "l-s"),
        ("sp", "Leads", "edit", "l-s"),
        ("spj", "Deals", "view", "d-gA"),
        ("s", "Leads", "delete", "l-s-priv"),
    ];
    for (subject, module, action, record) in cases {
        let out = explain(
            &[
                "--server",
                &url,
                "--org",
                "sharing-rules",
                subject,
                module,
                action,
                record,
            ],
            &[("WARDEN_TOKEN", "check-token")],
        );
        let mut req = check_req("sharing-rules", subject, module, action, record);
        req.explain = true;
        let mut call = tonic::Request::new(req);
        call.metadata_mut()
            .insert("authorization", "Bearer check-token".parse().unwrap());
        let want = clients.check.check(call).await.unwrap().into_inner();
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(if want.allowed { 0 } else { 1 }),
            "{subject} {action} {record}: {stdout} {}",
            text(&out.stderr)
        );
        let reason = warden::api::pb::Reason::try_from(want.reason)
            .unwrap()
            .as_str_name()
            .trim_start_matches("REASON_")
            .to_string();
        assert!(
            stdout
                .lines()
                .next()
                .unwrap()
                .contains(&format!("({reason})")),
            "{stdout}"
        );
        for step in &want.trace {
            assert!(
                stdout.contains(&step.detail),
                "{stdout} lacks {}",
                step.detail
            );
        }
    }
    // Without the token the server refuses, and explain says so with exit 2.
    let out = explain(
        &[
            "--server",
            &url,
            "--org",
            "sharing-rules",
            "sp",
            "Leads",
            "view",
            "l-s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("UNAUTHENTICATED"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_denials_tree_shows_every_field_of_every_step_as_the_engine_gives_it() {
    use warden::api::pb;
    use warden::engine::{Command, Direct, Engine, Limits};
    let path = scenario_path("groups-as-owners.yaml");
    let source = std::fs::read_to_string(&path).unwrap();
    let document = warden::document::parse_document(&source).unwrap();
    let org = document.organization.clone();
    let engine = Engine::new(Direct, Limits::default());
    engine
        .execute(
            &org,
            &Command::Import {
                document,
                replace: true,
            },
        )
        .unwrap();
    let mut req = check_req(&org, "person3", "Events", "view", "meeting-1");
    req.explain = true;
    let (_, check, _) = warden::api::convert::check_from(req).unwrap();
    let (decision, revision) = engine.check(&org, &check, chrono::Utc::now()).unwrap();
    let want = warden::api::convert::decision(decision, revision);
    assert!(!want.allowed);

    let out = explain(
        &[
            "--doc",
            path.to_str().unwrap(),
            "person3",
            "Events",
            "view",
            "meeting-1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let tree = text(&out.stdout);
    for step in &want.trace {
        assert!(tree.contains(&step.detail), "{tree} lacks {}", step.detail);
        if let Some(missing) = &step.missing {
            assert!(
                tree.contains(&format!("missing: {}", missing.detail)),
                "{tree} lacks {}",
                missing.detail
            );
        }
        for r in &step.refs {
            let shown = format!("{} '{}' ({})", r.kind, r.id, r.relation);
            assert!(tree.contains(&shown), "{tree} lacks {shown}");
        }
    }
    // One entry is marked, the one the engine says decided.
    let decided: Vec<&pb::TraceStep> = want
        .trace
        .iter()
        .filter(|s| s.outcome == pb::TraceOutcome::Decided as i32)
        .collect();
    assert_eq!(decided.len(), 1);
    let reason = pb::Reason::try_from(decided[0].reason)
        .unwrap()
        .as_str_name()
        .trim_start_matches("REASON_");
    let marked: Vec<&str> = tree.lines().filter(|l| l.contains("◀ decides")).collect();
    assert_eq!(marked.len(), 1, "{tree}");
    assert!(marked[0].contains(&format!(" {reason} [")), "{tree}");
}
