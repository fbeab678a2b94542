//! The web console of a real server: its JSON API over plain HTTP, and the
//! page driven in headless Chromium through chromedriver (WebDriver), its
//! answers compared with gRPC Check's, with a screenshot of each page.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{check_req, Clients, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use warden::api::pb;

const ORG: &str = "sharing-rules";
/// A token with both read scopes, and one limited to another organization.
const TOKENS: &str = "console-token=check+admin,other-org=check+admin@elsewhere,grant-only=grant";

/// Longest wait for the page to show something; generous, as the machine
/// may be busy. Nothing is asserted about time.
const PAGE_WAIT: Duration = Duration::from_secs(60);

fn scenario() -> PathBuf {
    common::scenario_path("sharing-rules-member-sorts.yaml")
}

fn start() -> (Server, String) {
    Server::start_with_console(
        &["--bootstrap", scenario().to_str().unwrap()],
        &[("WARDEN_AUTH_TOKENS", TOKENS)],
    )
}

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let (status, text) = http(addr, method, path, token, body);
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
    )
}

#[test]
fn the_api_needs_the_token_and_scopes_of_grpc_and_answers_errors_as_json() {
    let (_server, console) = start();
    // The page itself is served without a token, locked to its own scripts.
    let (status, page) = http(&console, "GET", "/", None, None);
    assert_eq!(status, 200);
    assert!(page.contains("<title>Warden console</title>"));

    let (status, e) = http_json(&console, "GET", "/api/orgs", None, None);
    assert_eq!(status, 401);
    assert_eq!(e["code"], "UNAUTHENTICATED");
    assert_eq!(e["field"], "authorization");

    let (status, e) = http_json(&console, "GET", "/api/orgs", Some("wrong"), None);
    assert_eq!((status, e["code"].as_str()), (401, Some("UNAUTHENTICATED")));

    let (status, orgs) = http_json(&console, "GET", "/api/orgs", Some("console-token"), None);
    assert_eq!(status, 200);
    assert_eq!(orgs["organizations"], json!([{ "org_id": ORG }]));

    // An organization-limited token sees none of the others, lists included.
    let (_, orgs) = http_json(&console, "GET", "/api/orgs", Some("other-org"), None);
    assert_eq!(orgs["organizations"], json!([]));
    let (status, e) = http_json(
        &console,
        "GET",
        &format!("/api/orgs/{ORG}/groups"),
        Some("other-org"),
        None,
    );
    assert_eq!(
        (status, e["code"].as_str(), e["field"].as_str()),
        (403, Some("PERMISSION_DENIED"), Some("org_id"))
    );

    // A grant-only token may neither browse nor check.
    let (status, _) = http_json(
        &console,
        "GET",
        &format!("/api/orgs/{ORG}/users"),
        Some("grant-only"),
        None,
    );
    assert_eq!(status, 403);
    let check = r#"{"subject":"sp","module":"Leads","action":"view","record_id":"l-s"}"#;
    let (status, e) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/check"),
        Some("grant-only"),
        Some(check),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );

    // Bad input names its field; nothing is allowed on an error.
    let bad =
        r#"{"subject":"sp","module":"Leads","action":"view","record_id":"l-s","field":"nope"}"#;
    let (status, e) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/check"),
        Some("console-token"),
        Some(bad),
    );
    assert_eq!(
        (status, e["code"].as_str(), e["field"].as_str()),
        (400, Some("INVALID_ARGUMENT"), Some("field"))
    );
    assert!(e.get("allowed").is_none());
    for (body, field) in [
        (
            r#"{"subject":"sp","module":"Leads","action":"view","at":"yesterday"}"#,
            "at",
        ),
        (
            r#"{"subject":"sp","module":"Leads","action":"view","colour":"red"}"#,
            "body",
        ),
        (
            r#"{"subject":"sp","module":"Leads","action":"view","assign_to":{"user_id":7}}"#,
            "assign_to.user_id",
        ),
        (r#"["not", "an", "object"]"#, "body"),
    ] {
        let (status, e) = http_json(
            &console,
            "POST",
            &format!("/api/orgs/{ORG}/check"),
            Some("console-token"),
            Some(body),
        );
        assert_eq!(
            (status, e["field"].as_str()),
            (400, Some(field)),
            "{body}: {e}"
        );
    }
    let other = r#"{"org_id":"elsewhere","subject":"sp","module":"Leads","action":"view"}"#;
    let (status, e) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/check"),
        Some("console-token"),
        Some(other),
    );
    assert_eq!((status, e["field"].as_str()), (400, Some("org_id")));
    let (status, e) = http_json(
        &console,
        "GET",
        &format!("/api/orgs/{ORG}/modules/Nope/records"),
        Some("console-token"),
        None,
    );
    assert_eq!(
        (status, e["code"].as_str(), e["field"].as_str()),
        (404, Some("NOT_FOUND"), Some("module"))
    );

    // What if without the admin scope: a write without an actor needs it,
    // as its own RPC does; a token of another organization may not ask.
    let change = r#"{"change": "- delete_sharing_rule: {rule_id: leads-role}"}"#;
    let (status, e) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/simulate"),
        Some("grant-only"),
        Some(change),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    assert!(
        e["message"].as_str().unwrap().starts_with("change[0]: "),
        "{e}"
    );
    let (status, e) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/simulate"),
        Some("other-org"),
        Some(change),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    // A change that is not a list of writes names where it is wrong.
    let (status, e) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/simulate"),
        Some("console-token"),
        Some(r#"{"change": "- drop_everything: {}"}"#),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    assert!(e["message"].as_str().unwrap().contains("change"), "{e}");

    // Read-only: no write endpoint answers.
    // Read-only: no write endpoint answers.
    let (status, e) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/users"),
        Some("console-token"),
        Some("{}"),
    );
    assert_eq!((status, e["field"].as_str()), (405, Some("method")));
}

#[tokio::test]
async fn the_api_check_answers_as_grpc_check_and_the_lists_expand_members() {
    let (server, console) = start();
    let mut clients = server.clients().await;
    for (subject, module, action, record) in [
        ("sp", "Leads", "view", "l-s"),
        ("sp", "Leads", "edit", "l-s"),
        ("gst", "Deals", "view", "d-gA-sub"),
        ("s", "Leads", "delete", "l-s-priv"),
    ] {
        let body =
            json!({ "subject": subject, "module": module, "action": action, "record_id": record })
                .to_string();
        let (status, got) = http_json(
            &console,
            "POST",
            &format!("/api/orgs/{ORG}/check"),
            Some("console-token"),
            Some(&body),
        );
        assert_eq!(status, 200, "{got}");
        let want = grpc_check(&mut clients, subject, module, action, record).await;
        assert_eq!(got["allowed"], want.allowed);
        assert_eq!(
            got["reason"],
            pb::Reason::try_from(want.reason).unwrap().as_str_name()
        );
        assert_eq!(
            got["level"],
            pb::AccessLevel::try_from(want.level).unwrap().as_str_name()
        );
        let details: Vec<&str> = got["trace"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["detail"].as_str().unwrap())
            .collect();
        let want_details: Vec<&str> = want.trace.iter().map(|s| s.detail.as_str()).collect();
        assert_eq!(details, want_details);
    }
    let (_, groups) = http_json(
        &console,
        "GET",
        &format!("/api/orgs/{ORG}/groups"),
        Some("console-token"),
        None,
    );
    let ga = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "gA")
        .unwrap();
    assert_eq!(
        ga["expanded_members"],
        json!(group_members(&mut clients, "gA").await)
    );
    let (_, rules) = http_json(
        &console,
        "GET",
        &format!("/api/orgs/{ORG}/rules"),
        Some("console-token"),
        None,
    );
    let rule = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "deals-groups")
        .unwrap();
    assert_eq!(
        rule["to_users"],
        json!(group_members(&mut clients, "gB").await)
    );
    assert_eq!(
        rule["from_users"],
        json!(group_members(&mut clients, "gA").await)
    );
    assert_eq!(rule["from_groups"], json!(["gA", "gA-sub"]));
    let (_, records) = http_json(
        &console,
        "GET",
        &format!("/api/orgs/{ORG}/modules/Leads/records?prefix=l-s"),
        Some("console-token"),
        None,
    );
    assert_eq!(records["records"], json!(["l-s", "l-s-priv", "l-sj"]));
}

#[tokio::test]
async fn what_if_answers_as_grpc_simulate_and_commits_nothing() {
    let (server, console) = start();
    let mut clients = server.clients().await;
    let before = clients
        .admin
        .export(authorized(pb::ExportRequest {
            org_id: ORG.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let (status, answer) = http_json(
        &console,
        "POST",
        &format!("/api/orgs/{ORG}/simulate"),
        Some("console-token"),
        Some(r#"{"change": "- delete_sharing_rule: {rule_id: leads-role}", "sample_size": 5}"#),
    );
    assert_eq!(status, 200, "{answer}");
    let want = clients
        .admin
        .simulate(authorized(pb::SimulateRequest {
            org_id: ORG.into(),
            writes: vec![pb::Write {
                write: Some(pb::write::Write::DeleteSharingRule(
                    pb::DeleteSharingRuleRequest {
                        org_id: ORG.into(),
                        rule_id: "leads-role".into(),
                        ..Default::default()
                    },
                )),
            }],
            sample_size: 5,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!want.changes.is_empty(), "the rule gives access: {want:?}");
    assert_eq!(
        answer,
        warden::console::proto_json(&want, "warden.v1.SimulateResponse").unwrap()
    );
    // Every row of this change is a loss of the rule's READ.
    for c in &want.changes {
        assert_eq!(c.gained_count, 0, "{c:?}");
        assert!(c.lost_count > 0, "{c:?}");
    }
    let after = clients
        .admin
        .export(authorized(pb::ExportRequest {
            org_id: ORG.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "What if committed nothing");
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", "Bearer console-token".parse().unwrap());
    r
}

async fn grpc_check(
    c: &mut Clients,
    subject: &str,
    module: &str,
    action: &str,
    record: &str,
) -> pb::CheckResponse {
    let mut req = check_req(ORG, subject, module, action, record);
    req.explain = true;
    c.check.check(authorized(req)).await.unwrap().into_inner()
}

async fn group_members(c: &mut Clients, group: &str) -> Vec<String> {
    let req = pb::GetGroupRequest {
        org_id: ORG.into(),
        group_id: group.into(),
        ..Default::default()
    };
    c.admin
        .get_group(authorized(req))
        .await
        .unwrap()
        .into_inner()
        .members
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(chromedriver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // It says when it listens; waiting for that line needs no sleep.
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("started successfully") => break,
                Some(Ok(_)) => {}
                _ => panic!("chromedriver exited before it listened"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium and chromedriver, or None (and a note) when absent outside CI;
/// under CI a missing browser fails the test (scripts/test.sh installs it).
fn browser() -> Option<(PathBuf, PathBuf)> {
    match (on_path("chromium"), on_path("chromedriver")) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium and chromedriver are required under CI (scripts/test.sh installs them)"
            );
            eprintln!("skipped: chromium or chromedriver is not installed");
            None
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn save(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(screenshots().join(name), png).unwrap();
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("the page never showed {css}: {e}"))
}

async fn text_of(c: &Client, css: &str) -> String {
    wait_for(c, css).await.text().await.unwrap()
}

/// Picks the check's inputs in the form, runs it, and returns what the
/// page shows: decision, reason, level and each step's (reason, level, detail).
async fn check_in_page(
    c: &Client,
    subject: &str,
    module: &str,
    action: &str,
    record: &str,
) -> (String, String, String, Vec<(String, String, String)>) {
    wait_for(c, &format!("#subject option[value='{subject}']")).await;
    c.find(Locator::Css("#subject"))
        .await
        .unwrap()
        .select_by_value(subject)
        .await
        .unwrap();
    wait_for(c, &format!("#module option[value='{module}']")).await;
    c.find(Locator::Css("#module"))
        .await
        .unwrap()
        .select_by_value(module)
        .await
        .unwrap();
    // The module's change reloads its actions (its custom ones too).
    wait_for(c, &format!("#action option[value='{action}']")).await;
    c.find(Locator::Css("#action"))
        .await
        .unwrap()
        .select_by_value(action)
        .await
        .unwrap();
    let field = c.find(Locator::Css("#record")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(record).await.unwrap();
    c.find(Locator::Css("#check-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#answer:not([hidden])").await;
    let decision = text_of(c, "#decision").await;
    let reason = text_of(c, "#reason").await;
    let level = text_of(c, "#level").await;
    let mut steps = Vec::new();
    for li in c.find_all(Locator::Css("#trace > li")).await.unwrap() {
        let reason = li
            .find(Locator::Css(".reason"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let level = li
            .find(Locator::Css(".level"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let detail = match li.find(Locator::Css(".detail")).await {
            Ok(d) => d.text().await.unwrap(),
            Err(_) => String::new(),
        };
        steps.push((reason, level, detail));
    }
    (decision, reason, level, steps)
}

fn word(prefix: &str, name: &str) -> String {
    name.trim_start_matches(prefix).to_string()
}

#[tokio::test]
async fn in_a_real_browser_the_console_shows_grpc_checks_answers_and_the_policy_structure() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let (server, console) = start();
    let mut clients = server.clients().await;
    let driver = Driver::start(&chromedriver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver");
    let base = format!("http://{console}/");

    // A wrong token: the page shows the server's refusal.
    c.goto(&base).await.unwrap();
    wait_for(&c, "#token")
        .await
        .send_keys("wrong")
        .await
        .unwrap();
    c.find(Locator::Css("#token-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#error:not([hidden])").await;
    assert!(text_of(&c, "#error").await.contains("UNAUTHENTICATED"));

    // The right token: the organizations load, then the check form's lists.
    let token = c.find(Locator::Css("#token")).await.unwrap();
    token.clear().await.unwrap();
    token.send_keys("console-token").await.unwrap();
    c.find(Locator::Css("#token-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, &format!("#org option[value='{ORG}']")).await;

    let checks = [
        ("sp", "Leads", "view", "l-s"),
        ("sp", "Leads", "edit", "l-s"),
        ("spj", "Deals", "view", "d-gA"),
        ("s", "Leads", "delete", "l-s-priv"),
        ("sp", "Cases", "edit", "k1"),
    ];
    for (i, (subject, module, action, record)) in checks.into_iter().enumerate() {
        let (decision, reason, level, steps) =
            check_in_page(&c, subject, module, action, record).await;
        let want = grpc_check(&mut clients, subject, module, action, record).await;
        let what = format!("{subject} {action} {module}/{record}");
        assert_eq!(
            decision,
            if want.allowed { "ALLOW" } else { "DENY" },
            "{what}"
        );
        assert_eq!(
            reason,
            word(
                "REASON_",
                pb::Reason::try_from(want.reason).unwrap().as_str_name()
            ),
            "{what}"
        );
        assert_eq!(
            level,
            word(
                "ACCESS_LEVEL_",
                pb::AccessLevel::try_from(want.level).unwrap().as_str_name()
            ),
            "{what}"
        );
        let want_steps: Vec<(String, String, String)> = want
            .trace
            .iter()
            .map(|s| {
                (
                    word(
                        "REASON_",
                        pb::Reason::try_from(s.reason).unwrap().as_str_name(),
                    ),
                    word(
                        "ACCESS_LEVEL_",
                        pb::AccessLevel::try_from(s.level).unwrap().as_str_name(),
                    ),
                    s.detail.clone(),
                )
            })
            .collect();
        assert_eq!(steps, want_steps, "{what}");
        // The step that decided is marked, and it is the answer's reason;
        // what a path lacked is shown as the engine words it.
        let marked = text_of(&c, "#trace > li.decides .reason").await;
        assert_eq!(marked, reason, "{what}");
        let missing: Vec<String> = want
            .trace
            .iter()
            .filter_map(|s| s.missing.as_ref().map(|m| m.detail.clone()))
            .collect();
        let mut shown = Vec::new();
        for dd in c
            .find_all(Locator::Css("#trace dd[data-field='missing']"))
            .await
            .unwrap()
        {
            shown.push(dd.text().await.unwrap());
        }
        assert_eq!(shown, missing, "{what}");
        if i == 0 {
            save(&c, "check.png").await;
        }
    }

    // A trace step's fields beyond reason, level and detail (richer
    // explanations to come) are shown as they come, empty ones left out.
    let shown = c
        .execute(
            "const li = stepItem({reason: 'REASON_OWNER', level: 'ACCESS_LEVEL_NONE', detail: 'd', \
               why_not: \"not the owner: owner is user 'ray'\", would_grant: ['READ', 'READ_WRITE'], empty: ''}, false); \
             return [li.querySelector(\"dd[data-field='why_not']\").textContent, \
                     li.querySelector(\"dd[data-field='would_grant']\").textContent, \
                     li.querySelectorAll('dd').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        shown,
        json!(["not the owner: owner is user 'ray'", "READ, READ_WRITE", 2])
    );

    // The role tree nests as the document does, with each role's users.
    c.find(Locator::Css("#nav-roles"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        "#roles-tree li[data-role='ceo'] li[data-role='sales'] li[data-role='sales-jr']",
    )
    .await;
    wait_for(
        &c,
        "#roles-tree li[data-role='ceo'] li[data-role='support'] li[data-role='support-jr']",
    )
    .await;
    assert_eq!(
        text_of(&c, "li[data-role='sales-jr'] .users").await,
        "users: sj"
    );
    assert!(
        c.find(Locator::Css("#roles-tree > li[data-role='other']"))
            .await
            .is_ok(),
        "a second root"
    );
    save(&c, "roles.png").await;

    // Groups with their expanded members, as GetGroup lists them.
    c.find(Locator::Css("#nav-groups"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for group in ["gA", "gB", "g-sales"] {
        let shown = text_of(&c, &format!(".group[data-group='{group}'] .members")).await;
        let want = group_members(&mut clients, group).await.join(", ");
        assert_eq!(shown, format!("expanded members: {want}"), "{group}");
    }
    save(&c, "groups.png").await;

    // Sharing rules with whom they reach.
    c.find(Locator::Css("#nav-rules"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let reach = text_of(&c, ".rule[data-rule='deals-groups'] .to-users").await;
    assert_eq!(
        reach,
        format!(
            "reaches: {}",
            group_members(&mut clients, "gB").await.join(", ")
        )
    );
    let from = text_of(&c, ".rule[data-rule='deals-groups'] .from-users").await;
    assert_eq!(from, "records of: o, ob, group gA, group gA-sub");
    assert_eq!(
        text_of(&c, ".rule[data-rule='leads-role'] .to-users").await,
        "reaches: sp"
    );
    save(&c, "rules.png").await;

    // What if: the pasted change's losses, as a table.
    c.find(Locator::Css("#nav-whatif"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#whatif-change")
        .await
        .send_keys("- delete_sharing_rule: {rule_id: leads-role}")
        .await
        .unwrap();
    c.find(Locator::Css("#whatif-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#whatif-changes").await;
    let rows = text_of(&c, "#whatif-changes tbody").await;
    assert!(rows.contains("Leads"), "{rows}");
    assert!(rows.contains("view"), "{rows}");
    assert!(
        !rows.contains("+1"),
        "deleting a rule gains nothing: {rows}"
    );
    save(&c, "whatif.png").await;

    // A phone-sized screen: the check form fits its width and still works.
    c.set_window_size(390, 844).await.unwrap();
    c.find(Locator::Css("#nav-check"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#check-run").await;
    let width = c
        .execute("return window.innerWidth", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(width <= 400.0, "the window is phone-sized: {width}");
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(overflow <= 0.0, "nothing scrolls sideways: {overflow}px");
    for id in ["#subject", "#module", "#action", "#record", "#check-run"] {
        let e = c.find(Locator::Css(id)).await.unwrap();
        let (x, _, w, _) = e.rectangle().await.unwrap();
        assert!(
            x >= 0.0 && x + w <= width,
            "{id} fits the screen: x {x} width {w}"
        );
    }
    let (decision, reason, _, _) = check_in_page(&c, "sp", "Accounts", "edit", "a-s").await;
    let want = grpc_check(&mut clients, "sp", "Accounts", "edit", "a-s").await;
    assert_eq!(decision, if want.allowed { "ALLOW" } else { "DENY" });
    assert_eq!(
        reason,
        word(
            "REASON_",
            pb::Reason::try_from(want.reason).unwrap().as_str_name()
        )
    );
    save(&c, "check-phone.png").await;

    c.close().await.unwrap();
    drop(driver);
}
