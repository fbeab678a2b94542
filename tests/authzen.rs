//! The AuthZEN Authorization API 1.0 over real HTTP, against the real
//! `warden serve`: every scenario check answers as gRPC Check does, the
//! evaluations semantics, search paging against LookupRecords and
//! LookupSubjects, action search, metadata, error bodies, TLS, and the
//! body size limit.

mod common;

use std::collections::HashSet;

use common::{check_req, scenario_files, test_certificates, Clients, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use warden::api::pb;
use warden::document::{parse_scenario, Expect};

fn reason_name(r: i32) -> String {
    pb::Reason::try_from(r)
        .map(|r| r.as_str_name().trim_start_matches("REASON_").to_string())
        .unwrap_or_default()
}

fn level_name(l: i32) -> String {
    pb::AccessLevel::try_from(l)
        .map(|l| {
            l.as_str_name()
                .trim_start_matches("ACCESS_LEVEL_")
                .to_string()
        })
        .unwrap_or_default()
}

/// An AuthZEN client of one server.
struct Authzen {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Authzen {
    fn new(addr: &str) -> Self {
        Authzen {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            token: None,
        }
    }

    fn with_token(addr: &str, token: &str) -> Self {
        Authzen {
            token: Some(token.to_string()),
            ..Self::new(addr)
        }
    }

    async fn post(&self, org: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_url(&format!("{}/orgs/{org}/access/v1/{path}", self.base), body)
            .await
    }

    async fn post_url(&self, url: &str, body: &Value) -> (StatusCode, Value) {
        let mut req = self.http.post(url).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let value = resp.json().await.unwrap_or(Value::Null);
        (status, value)
    }

    async fn metadata(&self, org: &str) -> (StatusCode, Value) {
        let mut req = self.http.get(format!(
            "{}/.well-known/authzen-configuration/orgs/{org}",
            self.base
        ));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
}

async fn import(c: &mut Clients, document: &str) -> String {
    c.admin
        .import(pb::ImportRequest {
            document: document.to_string(),
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

fn fresh(revision: &str) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(
            revision.to_string(),
        )),
    })
}

/// The AuthZEN evaluation of a scenario check, fresh at `revision`.
fn evaluation_of(check: &warden::document::CheckSpec, revision: &str) -> Value {
    let mut context = json!({"consistency": format!("at_least_as_fresh:{revision}")});
    if let Some(at) = check.at {
        context["time"] = json!(at.to_rfc3339());
    }
    if let Some(field) = &check.field {
        context["field"] = json!(field);
    }
    if let Some(owner) = &check.assign_to {
        context["assign_to"] = serde_json::to_value(owner).unwrap();
    }
    let mut resource =
        json!({"type": check.module, "id": check.record.clone().unwrap_or_default()});
    if let Some(d) = &check.described {
        resource["properties"] = json!({
            "owner": serde_json::to_value(&d.owner).unwrap(),
            "private": d.private,
            "attributes": d.attributes,
        });
    }
    json!({
        "subject": {"type": "user", "id": check.subject},
        "action": {"name": check.action},
        "resource": resource,
        "context": context,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_check_answers_as_grpc_check_does() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    let az = Authzen::new(&addr);
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario = parse_scenario(&text).unwrap();
        if scenario.expect_error.is_some() {
            continue;
        }
        let revision = import(&mut c, &text).await;
        let org = &scenario.document.organization;
        let mut singles = Vec::new();
        for (i, check) in scenario.checks.iter().enumerate() {
            let grpc = c
                .check
                .check(pb::CheckRequest {
                    field: check.field.clone().unwrap_or_default().into(),
                    at: check.at.map(warden::api::convert::timestamp),
                    consistency: fresh(&revision),
                    assign_to: check.assign_to.as_ref().map(warden::api::convert::owner),
                    record: check
                        .described
                        .as_ref()
                        .map(warden::api::convert::described),
                    ..check_req(
                        org,
                        &check.subject,
                        &check.module,
                        &check.action,
                        check.record.as_deref().unwrap_or(""),
                    )
                })
                .await
                .unwrap()
                .into_inner();
            let (status, answer) = az
                .post(org, "evaluation", &evaluation_of(check, &revision))
                .await;
            let want = (
                grpc.allowed,
                reason_name(grpc.reason),
                level_name(grpc.level),
                grpc.revision.to_string(),
            );
            let got = (
                answer["decision"].as_bool().unwrap_or(!grpc.allowed),
                answer["context"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                answer["context"]["level"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                answer["context"]["revision"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
            if status != StatusCode::OK || got != want {
                failures.push(format!(
                    "{} checks[{i}]: gRPC {want:?}, AuthZEN {status} {answer}",
                    file.display()
                ));
            }
            // And both as the scenario expects.
            if got.0 != (check.expect == Expect::Allow)
                || check.reason.is_some_and(|r| r.as_str() != got.1)
            {
                failures.push(format!(
                    "{} checks[{i}]: expected {:?} {:?}, AuthZEN {answer}",
                    file.display(),
                    check.expect,
                    check.reason
                ));
            }
            singles.push(answer);
            ran += 1;
        }
        // The whole file's checks as one evaluations list answer as they
        // did one by one.
        if !scenario.checks.is_empty() {
            let list: Vec<Value> = scenario
                .checks
                .iter()
                .map(|check| evaluation_of(check, &revision))
                .collect();
            let (status, batch) = az
                .post(org, "evaluations", &json!({"evaluations": list}))
                .await;
            if status != StatusCode::OK || batch["evaluations"] != Value::Array(singles.clone()) {
                failures.push(format!("{}: evaluations {status} differ", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran > 700, "only {ran} checks ran");
}

/// An organization of `users` members (u00…) under `boss`, with `records`
/// leads owned round-robin, readable by every member (PUBLIC_READ), and a
/// custom action `export` (READ) only `boss`'s profile lists.
fn crowd(org: &str, users: usize, records: usize) -> String {
    let mut doc = format!(
        "organization: {org}\n\
         modules: [{{id: Leads, owd: PUBLIC_READ, fields: [name], actions: {{export: READ, merge: FULL}}}}]\n\
         profiles:\n  - {{id: sales, modules: {{Leads: [view, create, edit]}}}}\n\
         \x20 - {{id: chief, modules: {{Leads: [view, create, edit, delete, share, assign, export]}}}}\n\
         roles: [{{id: top, profiles: [chief]}}, {{id: r, parent: top, profiles: [sales]}}]\n\
         users:\n  - {{id: boss, role: top}}\n  - {{id: gone, role: r, active: false}}\n"
    );
    for u in 0..users {
        doc.push_str(&format!("  - {{id: u{u:02}, role: r}}\n"));
    }
    doc.push_str("records:\n");
    for i in 0..records {
        doc.push_str(&format!(
            "  - {{module: Leads, id: L{i:03}, owner: {{user: u{:02}}}}}\n",
            i % users
        ));
    }
    doc
}

fn item(subject: &str, action: &str, record: &str) -> Value {
    json!({
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "Leads", "id": record},
    })
}

fn decisions(answer: &Value) -> Vec<bool> {
    answer["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_bool().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn evaluations_run_each_semantic_with_defaults_and_item_errors() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    import(&mut c, &crowd("semantics", 3, 3)).await;
    let az = Authzen::new(&addr);
    // u01 may not edit u00's lead, may edit its own; the answers of the
    // single endpoint are the reference.
    let list = vec![
        item("u01", "edit", "L000"),
        item("u01", "edit", "L001"),
        item("u02", "edit", "L000"),
        item("u02", "edit", "L002"),
    ];
    let mut single = Vec::new();
    for e in &list {
        let (status, a) = az.post("semantics", "evaluation", e).await;
        assert_eq!(status, StatusCode::OK, "{a}");
        single.push(a);
    }
    let expected: Vec<bool> = single
        .iter()
        .map(|a| a["decision"].as_bool().unwrap())
        .collect();
    assert_eq!(expected, [false, true, false, true]);

    let run = |semantic: Option<&str>| {
        let mut body = json!({"evaluations": list});
        if let Some(s) = semantic {
            body["options"] = json!({"evaluations_semantic": s});
        }
        body
    };
    let (status, all) = az.post("semantics", "evaluations", &run(None)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(decisions(&all), expected);
    assert!(
        all.get("decision").is_none(),
        "no top-level decision with a list"
    );
    for (i, a) in single.iter().enumerate() {
        assert_eq!(
            &all["evaluations"][i], a,
            "item {i} answers as the single endpoint"
        );
    }
    let (_, explicit) = az
        .post("semantics", "evaluations", &run(Some("execute_all")))
        .await;
    assert_eq!(decisions(&explicit), expected);
    // && : stops at the first deny, which is the first item.
    let (_, deny_first) = az
        .post("semantics", "evaluations", &run(Some("deny_on_first_deny")))
        .await;
    assert_eq!(decisions(&deny_first), [false]);
    // || : stops at the first permit, the second item.
    let (_, permit_first) = az
        .post(
            "semantics",
            "evaluations",
            &run(Some("permit_on_first_permit")),
        )
        .await;
    assert_eq!(decisions(&permit_first), [false, true]);
    let (status, bad) = az
        .post("semantics", "evaluations", &run(Some("sometimes")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("options.evaluations_semantic"),
        "{bad}"
    );

    // Defaults: the top-level subject and action apply where an item has
    // none; an item's own key wins.
    let body = json!({
        "subject": {"type": "user", "id": "u01"},
        "action": {"name": "edit"},
        "evaluations": [
            {"resource": {"type": "Leads", "id": "L001"}},
            {"resource": {"type": "Leads", "id": "L000"}},
            {"subject": {"type": "user", "id": "u00"}, "resource": {"type": "Leads", "id": "L000"}},
        ],
    });
    let (_, defaults) = az.post("semantics", "evaluations", &body).await;
    assert_eq!(decisions(&defaults), [true, false, true]);
    assert_eq!(defaults["evaluations"][2]["context"]["reason"], "OWNER");

    // One bad item is that item's denial with its error; the rest answer.
    let mut with_error = list.clone();
    with_error.insert(1, item("u01", "fly", "L001"));
    let (status, answer) = az
        .post(
            "semantics",
            "evaluations",
            &json!({"evaluations": with_error}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(decisions(&answer), [false, false, true, false, true]);
    let error = &answer["evaluations"][1]["context"]["error"];
    assert_eq!(error["status"], 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("evaluations[1].action.name: "),
        "{error}"
    );
    // A missing required key refuses the whole request, naming where.
    let (status, missing) = az
        .post(
            "semantics",
            "evaluations",
            &json!({"evaluations": [item("u01", "edit", "L001"), {"action": {"name": "view"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing["error"]["message"], "evaluations[1].subject: required",
        "{missing}"
    );
    // No list: the defaults are one evaluation, answered as one.
    let (_, one) = az
        .post("semantics", "evaluations", &item("u01", "edit", "L001"))
        .await;
    assert_eq!(one, single[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_search_pages_walk_lookup_records_exactly() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    import(&mut c, &crowd("paging", 5, 57)).await;
    let az = Authzen::new(&addr);
    for (subject, action) in [
        ("boss", "view"),
        ("u01", "edit"),
        ("u01", "view"),
        ("gone", "view"),
    ] {
        let mut grpc = Vec::new();
        let mut stream = c
            .check
            .lookup_records(pb::LookupRecordsRequest {
                org_id: "paging".into(),
                subject: subject.into(),
                module: "Leads".into(),
                action: action.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(page) = stream.message().await.unwrap() {
            grpc.extend(page.record_ids);
        }
        let mut walked = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let mut body = json!({
                "subject": {"type": "user", "id": subject},
                "action": {"name": action},
                "resource": {"type": "Leads"},
                "page": {"limit": 10},
            });
            if !token.is_empty() {
                body["page"]["token"] = json!(token);
            }
            let (status, answer) = az.post("paging", "search/resource", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let results = answer["results"].as_array().unwrap();
            assert!(results.len() <= 10);
            assert_eq!(answer["page"]["count"], results.len());
            assert_eq!(answer["page"]["total"], grpc.len());
            for r in results {
                assert_eq!(r["type"], "Leads");
                walked.push(r["id"].as_str().unwrap().to_string());
            }
            pages += 1;
            token = answer["page"]["next_token"].as_str().unwrap().to_string();
            if token.is_empty() {
                break;
            }
        }
        let unique: HashSet<&String> = walked.iter().collect();
        assert_eq!(unique.len(), walked.len(), "{subject}: no id twice");
        assert_eq!(walked, grpc, "{subject} {action}");
        assert_eq!(pages, grpc.len().div_ceil(10).max(1), "{subject} {action}");
    }
    // A token given with another question is refused, naming page.token.
    let (_, first) = az
        .post(
            "paging",
            "search/resource",
            &json!({"subject": {"type": "user", "id": "boss"}, "action": {"name": "view"},
                    "resource": {"type": "Leads"}, "page": {"limit": 10}}),
        )
        .await;
    let token = first["page"]["next_token"].as_str().unwrap();
    assert!(!token.is_empty());
    let (status, refused) = az
        .post(
            "paging",
            "search/resource",
            &json!({"subject": {"type": "user", "id": "u01"}, "action": {"name": "view"},
                    "resource": {"type": "Leads"}, "page": {"limit": 10, "token": token}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("page.token: "),
        "{refused}"
    );
    // An unknown module is no results with its reason, not an error.
    let (status, none) = az
        .post(
            "paging",
            "search/resource",
            &json!({"subject": {"type": "user", "id": "boss"}, "action": {"name": "view"},
                    "resource": {"type": "Nope"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["results"], json!([]));
    assert_eq!(none["context"]["reason"], "UNKNOWN_MODULE");
}

#[tokio::test(flavor = "multi_thread")]
async fn subject_search_pages_walk_lookup_subjects_exactly() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    import(&mut c, &crowd("people", 23, 4)).await;
    let az = Authzen::new(&addr);
    for (record, action) in [("L000", "view"), ("L001", "edit"), ("L002", "export")] {
        let mut grpc = Vec::new();
        let mut stream = c
            .check
            .lookup_subjects(pb::LookupSubjectsRequest {
                org_id: "people".into(),
                module: "Leads".into(),
                record_id: record.into(),
                action: action.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(page) = stream.message().await.unwrap() {
            grpc.extend(page.user_ids);
        }
        let mut walked = Vec::new();
        let mut token = String::new();
        loop {
            let mut body = json!({
                "subject": {"type": "user"},
                "action": {"name": action},
                "resource": {"type": "Leads", "id": record},
                "page": {"limit": 4},
            });
            if !token.is_empty() {
                body["page"]["token"] = json!(token);
            }
            let (status, answer) = az.post("people", "search/subject", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let results = answer["results"].as_array().unwrap();
            assert!(results.len() <= 4);
            for r in results {
                assert_eq!(r["type"], "user");
                walked.push(r["id"].as_str().unwrap().to_string());
            }
            token = answer["page"]["next_token"].as_str().unwrap().to_string();
            if token.is_empty() {
                break;
            }
        }
        let unique: HashSet<&String> = walked.iter().collect();
        assert_eq!(unique.len(), walked.len(), "{record}: no user twice");
        assert_eq!(walked, grpc, "{record} {action}");
    }
    // Everyone active may view a PUBLIC_READ lead: more than one page.
    let (_, all) = az
        .post(
            "people",
            "search/subject",
            &json!({"subject": {"type": "user"}, "action": {"name": "view"},
                    "resource": {"type": "Leads", "id": "L000"}}),
        )
        .await;
    assert_eq!(all["results"].as_array().unwrap().len(), 24);
    // An unknown record: no subjects, with the reason.
    let (status, none) = az
        .post(
            "people",
            "search/subject",
            &json!({"subject": {"type": "user"}, "action": {"name": "view"},
                    "resource": {"type": "Leads", "id": "L999"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["results"], json!([]));
    assert_eq!(none["context"]["reason"], "UNKNOWN_RECORD");
}

#[tokio::test(flavor = "multi_thread")]
async fn action_search_lists_exactly_the_actions_check_allows() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios/custom-actions.yaml"),
    )
    .unwrap();
    let scenario = parse_scenario(&text).unwrap();
    let revision = import(&mut c, &text).await;
    let org = scenario.document.organization.clone();
    let az = Authzen::new(&addr);
    let mut nonempty = 0;
    for module in &scenario.document.modules {
        let actions: Vec<String> = ["view", "create", "edit", "delete", "share", "assign"]
            .iter()
            .map(|a| a.to_string())
            .chain(module.actions.keys().cloned())
            .collect();
        let mut records: Vec<String> = scenario
            .document
            .records
            .iter()
            .filter(|r| r.module == module.id)
            .map(|r| r.id.clone())
            .collect();
        records.push(String::new());
        for user in &scenario.document.users {
            for record in &records {
                let mut want = Vec::new();
                for action in &actions {
                    let r = c
                        .check
                        .check(pb::CheckRequest {
                            consistency: fresh(&revision),
                            ..check_req(&org, &user.id, &module.id, action, record)
                        })
                        .await;
                    // An action that cannot be asked this way (assign of a
                    // record without a new owner) is not allowed.
                    if r.is_ok_and(|r| r.into_inner().allowed) {
                        want.push(action.clone());
                    }
                }
                let (status, answer) = az
                    .post(
                        &org,
                        "search/action",
                        &json!({"subject": {"type": "user", "id": user.id},
                                "resource": {"type": module.id, "id": record}}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                let got: Vec<String> = answer["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["name"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(got, want, "{} {} {record:?}", user.id, module.id);
                nonempty += usize::from(!got.is_empty());
            }
        }
    }
    assert!(nonempty > 5, "only {nonempty} questions allowed anything");
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_names_the_organizations_endpoints_and_they_answer() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    import(&mut c, &crowd("meta", 2, 2)).await;
    let az = Authzen::new(&addr);
    let (status, m) = az.metadata("meta").await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let pdp = format!("http://{addr}/orgs/meta");
    assert_eq!(m["policy_decision_point"], pdp);
    for (key, path) in [
        ("access_evaluation_endpoint", "evaluation"),
        ("access_evaluations_endpoint", "evaluations"),
        ("search_subject_endpoint", "search/subject"),
        ("search_resource_endpoint", "search/resource"),
        ("search_action_endpoint", "search/action"),
    ] {
        assert_eq!(m[key], format!("{pdp}/access/v1/{path}"), "{key}");
    }
    let (status, d) = az
        .post_url(
            m["access_evaluation_endpoint"].as_str().unwrap(),
            &item("u00", "view", "L000"),
        )
        .await;
    assert_eq!(
        (status, d["decision"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, body) = az.metadata("nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["status"], 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_their_status_and_a_json_body_naming_the_field() {
    let tokens = "chk=check,grantonly=grant,acme-only=check@acme";
    let (_server, addr) = Server::start_authzen(&[], &[("WARDEN_AUTH_TOKENS", tokens)]);
    let az = Authzen::with_token(&addr, "chk");
    let good = item("u00", "view", "L000");

    // 401: no token, an unknown one; the header says Bearer.
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/orgs/x/access/v1/evaluation"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], 401);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("authorization: "));
    let (status, _) = Authzen::with_token(&addr, "guess")
        .post("x", "evaluation", &good)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // 403: a token without the check scope; one limited to other organizations.
    let (status, body) = Authzen::with_token(&addr, "grantonly")
        .post("x", "evaluation", &good)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("check"));
    let (status, body) = Authzen::with_token(&addr, "acme-only")
        .post("globex", "evaluation", &good)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("org_id: "));
    let (status, _) = Authzen::with_token(&addr, "acme-only")
        .metadata("globex")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // 404: an organization that does not exist.
    let (status, body) = az.post("nowhere", "evaluation", &good).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("org_id: "));

    // 400: each names the field.
    let cases = [
        (
            json!({"action": {"name": "view"}, "resource": {"type": "Leads", "id": "L000"}}),
            "subject: required",
        ),
        (
            json!({"subject": {"type": "group", "id": "g"}, "action": {"name": "view"}, "resource": {"type": "Leads", "id": "L000"}}),
            "subject.type: ",
        ),
        (
            json!({"subject": {"type": "user"}, "action": {"name": "view"}, "resource": {"type": "Leads", "id": "L000"}}),
            "subject.id: required",
        ),
        (
            json!({"subject": {"type": "user", "id": "u00"}, "action": {}, "resource": {"type": "Leads", "id": "L000"}}),
            "action: missing field `name`",
        ),
        (
            json!({"subject": {"type": "user", "id": "u00"}, "action": {"name": "view"}, "resource": {"type": "Leads", "id": "L000", "properties": {"owner": "u00", "private": "yes"}}}),
            "resource.properties.private: ",
        ),
        (
            json!({"subject": {"type": "user", "id": "u00"}, "action": {"name": "view"}, "resource": {"type": "Leads", "id": "L000"}, "context": {"time": "noon"}}),
            "context.time: ",
        ),
        (
            json!({"subject": {"type": "user", "id": "u00"}, "action": {"name": "view"}, "resource": {"type": "Leads", "id": "L000"}, "context": {"consistency": "eventually"}}),
            "context.consistency: ",
        ),
        (json!([1, 2]), "body: "),
    ];
    for (body, want) in cases {
        let (status, answer) = az.post("nowhere", "evaluation", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["status"], 400);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(want), "{body}: {message}");
    }
    // Not JSON at all.
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/orgs/x/access/v1/evaluation"))
        .bearer_auth("chk")
        .header("content-type", "application/json")
        .body("{\"subject\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], 400);
    // The request id comes back.
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/orgs/x/access/v1/evaluation"))
        .bearer_auth("chk")
        .header("x-request-id", "req-42")
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-42");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_subjects_and_records_are_denials_with_their_reason() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    import(&mut c, &crowd("deny", 2, 2)).await;
    let az = Authzen::new(&addr);
    for (e, reason) in [
        (item("nobody", "view", "L000"), "UNKNOWN_SUBJECT"),
        (item("u00", "view", "L999"), "UNKNOWN_RECORD"),
        (item("gone", "view", "L000"), "INACTIVE_SUBJECT"),
    ] {
        let (status, a) = az.post("deny", "evaluation", &e).await;
        assert_eq!(status, StatusCode::OK, "{a}");
        assert_eq!(a["decision"], false);
        assert_eq!(a["context"]["reason"], reason);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn described_records_map_as_grpc_describes_them() {
    // The AuthZEN properties carry the same description as gRPC's
    // `record`: whatever the engine does with it, both answer alike.
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    let text =
        std::fs::read_to_string(common::scenario_path("sharing-rules-member-sorts.yaml")).unwrap();
    let scenario = parse_scenario(&text).unwrap();
    import(&mut c, &text).await;
    let org = &scenario.document.organization;
    let az = Authzen::new(&addr);
    let mut asked = 0;
    for check in scenario.checks.iter().filter(|c| c.record.is_some()) {
        let record = check.record.clone().unwrap();
        let Some(stored) = scenario
            .document
            .records
            .iter()
            .find(|r| r.module == check.module && r.id == record)
        else {
            continue;
        };
        // Described under a new id, and under the stored one.
        for id in [format!("{record}-described"), record.clone()] {
            let grpc = c
                .check
                .check(pb::CheckRequest {
                    record: Some(pb::RecordDescription {
                        owner: Some(warden::api::convert::owner(&stored.owner)),
                        private: stored.private,
                        attributes: stored.attributes.clone().into_iter().collect(),
                    }),
                    field: check.field.clone().unwrap_or_default().into(),
                    at: check.at.map(warden::api::convert::timestamp),
                    assign_to: check.assign_to.as_ref().map(warden::api::convert::owner),
                    ..check_req(org, &check.subject, &check.module, &check.action, &id)
                })
                .await
                .unwrap()
                .into_inner();
            let mut e = evaluation_of(check, "0");
            e["resource"]["id"] = json!(id);
            e["resource"]["properties"] = json!({
                "owner": serde_json::to_value(&stored.owner).unwrap(),
                "private": stored.private,
                "attributes": stored.attributes,
            });
            let (status, a) = az.post(org, "evaluation", &e).await;
            assert_eq!(status, StatusCode::OK, "{a}");
            assert_eq!(
                (a["decision"].as_bool(), a["context"]["reason"].as_str()),
                (Some(grpc.allowed), Some(reason_name(grpc.reason).as_str())),
                "{} {} {id}",
                check.subject,
                check.action
            );
            asked += 1;
        }
    }
    assert!(asked > 10, "{asked}");
    // A bare user id as owner is the same as {user: id}.
    let owned_by = |owner: Value| {
        json!({"subject": {"type": "user", "id": "s"}, "action": {"name": "view"},
               "resource": {"type": "Leads", "id": "r", "properties": {"owner": owner}}})
    };
    let (_, bare) = az.post(org, "evaluation", &owned_by(json!("s"))).await;
    let (_, full) = az
        .post(org, "evaluation", &owned_by(json!({"user": "s"})))
        .await;
    assert_eq!(bare["decision"], true, "{bare}");
    assert_eq!(bare, full);
    // An owner the organization does not have is bad input (docs/decisions.md).
    let (status, unknown) = az
        .post(org, "evaluation", &owned_by(json!("someone")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("resource.properties.owner"));
    // Half a description (no owner) is refused, naming the owner.
    let (status, half) = az
        .post(
            org,
            "evaluation",
            &json!({"subject": {"type": "user", "id": "nobody"}, "action": {"name": "view"},
                    "resource": {"type": "x", "id": "r", "properties": {"private": true}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        half["error"]["message"].as_str().unwrap().split(':').next(),
        Some("resource.properties.owner")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn described_records_decide_as_if_stored() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    import(&mut c, &crowd("described", 3, 1)).await;
    let az = Authzen::new(&addr);
    let described = |subject: &str, action: &str, owner: Value| {
        json!({"subject": {"type": "user", "id": subject}, "action": {"name": action},
               "resource": {"type": "Leads", "id": "not-stored", "properties": {"owner": owner}}})
    };
    let (_, own) = az
        .post(
            "described",
            "evaluation",
            &described("u01", "edit", json!("u01")),
        )
        .await;
    assert_eq!(
        (own["decision"].as_bool(), own["context"]["reason"].as_str()),
        (Some(true), Some("OWNER"))
    );
    let (_, boss) = az
        .post(
            "described",
            "evaluation",
            &described("boss", "delete", json!({"user": "u01"})),
        )
        .await;
    assert_eq!(
        (
            boss["decision"].as_bool(),
            boss["context"]["reason"].as_str()
        ),
        (Some(true), Some("HIERARCHY"))
    );
    let (_, other) = az
        .post(
            "described",
            "evaluation",
            &described("u02", "edit", json!("u01")),
        )
        .await;
    assert_eq!(other["decision"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_http1_and_http2_with_the_grpc_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(dir.path());
    let (server, addr) = Server::start_authzen(&["--tls-cert", &cert, "--tls-key", &key], &[]);
    let pem = std::fs::read(&ca).unwrap();
    let port = addr.rsplit(':').next().unwrap();
    let root = reqwest::Certificate::from_pem(&pem).unwrap();
    let body = item("u00", "view", "L000");
    for http2 in [false, true] {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .resolve("localhost", addr.parse().unwrap())
            .add_root_certificate(root.clone());
        if !http2 {
            builder = builder.http1_only();
        }
        let client = builder.build().unwrap();
        let resp = client
            .post(format!(
                "https://localhost:{port}/orgs/nowhere/access/v1/evaluation"
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        let version = resp.version();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error"]["status"], 404);
        let want = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(version, want);
        // The metadata says https.
        let m: Value = client
            .get(format!(
                "https://localhost:{port}/.well-known/authzen-configuration/orgs/nowhere"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(m["error"]["status"], 404);
    }
    // Plain HTTP to the TLS port is not served.
    let plain = reqwest::Client::new()
        .post(format!("http://{addr}/orgs/nowhere/access/v1/evaluation"))
        .json(&body)
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http2_is_served_too() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    import(&mut c, &crowd("h2c", 2, 2)).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = client
        .post(format!("http://{addr}/orgs/h2c/access/v1/evaluation"))
        .json(&item("u00", "view", "L000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let a: Value = resp.json().await.unwrap();
    assert_eq!(a["decision"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_body_is_refused_413_and_changes_nothing() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    let revision = import(&mut c, &crowd("huge", 2, 2)).await;
    let az = Authzen::new(&addr);
    let mut big = item("u00", "view", "L000");
    big["context"] = json!({"padding": "x".repeat(5 << 20)});
    let url = format!("http://{addr}/orgs/huge/access/v1/evaluation");
    // HTTP/2 carries the early answer while the client still sends.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.post(&url).json(&big).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"]["status"], 413);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("body: "));
    // HTTP/1.1 closes the connection after the answer: a client still
    // writing may see the close before it reads the 413; it is never served.
    match reqwest::Client::new().post(&url).json(&big).send().await {
        Ok(resp) => assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    // The server still answers, at the same revision.
    let (status, a) = az
        .post("huge", "evaluation", &item("u00", "view", "L000"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a["decision"], true);
    assert_eq!(a["context"]["revision"], revision.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_streamed_past_the_limit_is_refused_413() {
    // No Content-Length: the limit applies while the body is read.
    let (_server, addr) = Server::start_authzen(&[], &[]);
    let chunk = bytes::Bytes::from(vec![b' '; 64 << 10]);
    let chunks = || {
        let mut chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
            vec![Ok(bytes::Bytes::from_static(b"{\"pad\": \""))];
        chunks.extend((0..100).map(|_| Ok(chunk.clone())));
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };
    let url = format!("http://{addr}/orgs/x/access/v1/evaluation");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(&url)
        .header("content-type", "application/json")
        .body(chunks())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], 413);
    // Over HTTP/1.1 the close may reach the client before the answer.
    let http1 = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(chunks())
        .send()
        .await;
    match http1 {
        Ok(resp) => assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn other_paths_and_methods_are_json_errors() {
    let (_server, addr) = Server::start_authzen(&[], &[]);
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("http://{addr}/orgs/x/access/v1/evaluation"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], 405);
    let resp = client
        .post(format!("http://{addr}/access/v1/evaluation"))
        .json(&item("u00", "view", "L000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("path: "));
    let resp = client
        .post(format!("http://{addr}/orgs/x/access/v1/evaluation"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_needs_a_client_certificate_the_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(dir.path());
    let (_server, addr) = Server::start_authzen(
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ],
        &[],
    );
    let port = addr.rsplit(':').next().unwrap();
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let url = format!("https://localhost:{port}/orgs/nowhere/access/v1/evaluation");
    let client = |identity: Option<reqwest::Identity>| {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .resolve("localhost", addr.parse().unwrap())
            .add_root_certificate(root.clone());
        if let Some(i) = identity {
            b = b.identity(i);
        }
        b.build().unwrap()
    };
    let body = item("u00", "view", "L000");
    assert!(client(None).post(&url).json(&body).send().await.is_err());
    // The server's own certificate, signed by the same CA, as the client's.
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    let identity = reqwest::Identity::from_pem(&pem).unwrap();
    let resp = client(Some(identity))
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_authzen_listener_with_the_server() {
    let (mut server, addr) = Server::start_authzen(&[], &[]);
    let az = Authzen::new(&addr);
    let (status, _) = az
        .post("nowhere", "evaluation", &item("u00", "view", "L000"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(server.terminate().success());
    let after = reqwest::Client::new()
        .post(format!("http://{addr}/orgs/nowhere/access/v1/evaluation"))
        .json(&item("u00", "view", "L000"))
        .send()
        .await;
    assert!(after.is_err(), "nothing listens after the stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn subject_search_with_a_time_keeps_those_on_shift_as_lookup_subjects_does() {
    let (server, addr) = Server::start_authzen(&[], &[]);
    let mut c = server.clients().await;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios/shifts-time-zones.yaml"),
    )
    .unwrap();
    let scenario = parse_scenario(&text).unwrap();
    import(&mut c, &text).await;
    let org = &scenario.document.organization;
    let az = Authzen::new(&addr);
    let times = [
        None,
        Some("2026-11-23T01:00:00Z"),
        Some("2026-11-23T10:00:00Z"),
        Some("2026-11-25T12:00:00Z"),
    ];
    let mut answers = HashSet::new();
    for record in &scenario.document.records {
        for at in times {
            let mut grpc = Vec::new();
            let mut stream = c
                .check
                .lookup_subjects(pb::LookupSubjectsRequest {
                    org_id: org.clone(),
                    module: record.module.clone(),
                    record_id: record.id.clone(),
                    action: "view".into(),
                    on_shift_at: at.map(|t| {
                        warden::api::convert::timestamp(
                            chrono::DateTime::parse_from_rfc3339(t).unwrap().into(),
                        )
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            while let Some(page) = stream.message().await.unwrap() {
                grpc.extend(page.user_ids);
            }
            let mut body = json!({"subject": {"type": "user"}, "action": {"name": "view"},
                                  "resource": {"type": record.module, "id": record.id}});
            if let Some(t) = at {
                body["context"] = json!({"time": t});
            }
            let (status, answer) = az.post(org, "search/subject", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let got: Vec<String> = answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(got, grpc, "{} at {at:?}", record.id);
            answers.insert(got);
        }
    }
    assert!(answers.len() > 2, "the time changes who may: {answers:?}");
}
