//! Command-line subcommands other than `serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;

use crate::document::{parse_scenario, runner};
use crate::engine::{Direct, Engine, Limits};

/// `warden validate FILE...`: runs every scenario's checks on a fresh
/// engine, prints each failure, ends with `N passed, M failed`, and fails
/// if anything did.
pub fn validate(files: &[PathBuf]) -> ExitCode {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let name = file.display();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                println!("{name}: cannot read: {e}");
                failed += 1;
                continue;
            }
        };
        let scenario = match parse_scenario(&text) {
            Ok(s) => s,
            Err(e) => {
                println!("{name}: {}: {e}", e.code());
                failed += 1;
                continue;
            }
        };
        let engine = Engine::new(Direct, Limits::default());
        let outcome = runner::run_on_engine(&engine, &scenario, Utc::now());
        for f in &outcome.failures {
            println!("{name}: {f}");
        }
        passed += outcome.passed;
        failed += outcome.failed;
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `warden explain`: one check with its trace, against a document or a
/// running server.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The user asking.
    pub subject: String,
    /// The module.
    pub module: String,
    /// The action (standard or one of the module's custom actions).
    pub action: String,
    /// The record (none: the profile decides, step 5).
    pub record: Option<String>,
    /// An organization or scenario document (YAML or JSON) to decide against.
    #[arg(long, conflicts_with = "server", required_unless_present = "server")]
    pub doc: Option<PathBuf>,
    /// A running Warden to ask over gRPC, e.g. http://127.0.0.1:50051.
    #[arg(long, requires = "org")]
    pub server: Option<String>,
    /// The organization (with --server; a document names its own).
    #[arg(long)]
    pub org: Option<String>,
    /// Bearer token for --server (prefer WARDEN_TOKEN: a command line is
    /// visible to every local user in `ps`).
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The field, for `view` or `edit` of one field.
    #[arg(long)]
    pub field: Option<String>,
    /// When the check happens, RFC 3339 (shifts; default: now).
    #[arg(long)]
    pub at: Option<String>,
    /// The new owner of an `assign`: user:ID or group:ID.
    #[arg(long = "assign-to")]
    pub assign_to: Option<String>,
}

/// Exit status of `warden explain` for an error (ALLOW is 0, DENY 1).
const EXPLAIN_ERROR: u8 = 2;

/// Runs `warden explain`: prints the decision and its trace as a tree;
/// exits 0 for ALLOW, 1 for DENY and 2 for an error, printed with its
/// field and rule.
pub fn explain(args: &ExplainArgs) -> ExitCode {
    let answer = explain_request(args).and_then(|request| match &args.doc {
        Some(doc) => explain_on_document(doc, args.org.as_deref(), request),
        None => explain_on_server(args, request),
    });
    match answer {
        Ok(response) => {
            print!("{}", explain_tree(&response));
            ExitCode::from(u8::from(!response.allowed))
        }
        Err(message) => {
            eprintln!("warden explain: {message}");
            ExitCode::from(EXPLAIN_ERROR)
        }
    }
}

fn explain_request(args: &ExplainArgs) -> Result<crate::api::pb::CheckRequest, String> {
    use crate::api::pb;
    let at = match &args.at {
        Some(text) => {
            let t = chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| format!("--at: an RFC 3339 time is expected ({e})"))?;
            Some(crate::api::convert::timestamp(t.with_timezone(&Utc)))
        }
        None => None,
    };
    let assign_to = match &args.assign_to {
        Some(text) => Some(pb::Owner {
            owner: Some(match text.split_once(':') {
                Some(("user", id)) => pb::owner::Owner::UserId(id.to_string()),
                Some(("group", id)) => pb::owner::Owner::GroupId(id.to_string()),
                _ => return Err("--assign-to: user:ID or group:ID is expected".to_string()),
            }),
        }),
        None => None,
    };
    Ok(pb::CheckRequest {
        org_id: args.org.clone().unwrap_or_default(),
        subject: args.subject.clone(),
        module: args.module.clone(),
        action: args.action.clone(),
        record_id: args.record.clone().unwrap_or_default(),
        field: args.field.clone().unwrap_or_default(),
        at,
        explain: true,
        assign_to,
        ..Default::default()
    })
}

/// Decides on a fresh in-memory engine holding the document, through the
/// same conversions as gRPC Check.
fn explain_on_document(
    path: &std::path::Path,
    org: Option<&str>,
    mut request: crate::api::pb::CheckRequest,
) -> Result<crate::api::pb::CheckResponse, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--doc {name}: {e}"))?;
    let document = crate::document::parse_document(&text)
        .map_err(|e| format!("--doc {name}: {}: {e}", e.code()))?;
    let org_id = document.organization.clone();
    if let Some(named) = org {
        if named != org_id {
            return Err(format!(
                "--org: the document is organization '{org_id}', not '{named}'"
            ));
        }
    }
    let engine = Engine::new(Direct, Limits::default());
    engine
        .execute(
            &org_id,
            &crate::engine::Command::Import {
                document,
                replace: true,
            },
        )
        .map_err(|e| format!("--doc {name}: {}: {e}", e.code()))?;
    request.org_id = org_id;
    let (org_id, check, _) =
        crate::api::convert::check_from(request).map_err(|e| format!("{}: {e}", e.code()))?;
    let (decision, revision) = engine
        .check(&org_id, &check, Utc::now())
        .map_err(|e| format!("{}: {e}", e.code()))?;
    Ok(crate::api::convert::decision(decision, revision))
}

/// Asks a running server's CheckService.
fn explain_on_server(
    args: &ExplainArgs,
    request: crate::api::pb::CheckRequest,
) -> Result<crate::api::pb::CheckResponse, String> {
    use crate::api::pb::check_service_client::CheckServiceClient;
    let url = args.server.clone().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| format!("--server: {url:?} is not a URL ({e})"))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("--server {url}: cannot connect ({e})"))?;
        let mut call = tonic::Request::new(request);
        if let Some(token) = &args.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| "--token: printable ASCII without spaces is expected".to_string())?;
            call.metadata_mut().insert("authorization", value);
        }
        CheckServiceClient::new(channel)
            .check(call)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| {
                format!(
                    "{}: {}",
                    crate::console::api::code_name(s.code()),
                    s.message()
                )
            })
    })
}

/// An enum value's name as the documents write it (`OWNER`, `READ_WRITE`):
/// protobuf JSON prefixes it with its type.
fn enum_word(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.as_str(),
        other => return other.to_string(),
    };
    ["REASON_", "ACCESS_LEVEL_", "FIELD_LEVEL_", "TRACE_OUTCOME_"]
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .unwrap_or(text)
        .to_string()
}

/// A field's value on one line: text and enum words as the documents
/// write them, lists joined, an entity as `kind 'id' (relation)`, a
/// message with a sentence as that sentence, anything else as compact JSON.
fn plain(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(_) => enum_word(v),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Object(o) => match (o.get("detail"), o.get("kind"), o.get("id")) {
            (Some(Value::String(detail)), _, _) if !detail.is_empty() => detail.clone(),
            (_, Some(Value::String(kind)), Some(Value::String(id))) => {
                match o.get("relation").and_then(Value::as_str) {
                    Some(relation) if !relation.is_empty() => {
                        format!("{kind} '{id}' ({relation})")
                    }
                    _ => format!("{kind} '{id}'"),
                }
            }
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// The step that decided: the one whose `outcome` says so; in a trace
/// without outcomes, the first naming the answer's reason at the answer's
/// level (SPEC: the highest level, ties to the first path), else the last
/// naming its reason (a step that gives no level, such as ADMIN).
fn deciding_step(steps: &[serde_json::Value], reason: &str, level: &str) -> Option<usize> {
    let told = |s: &serde_json::Value| {
        s.get("outcome")
            .is_some_and(|o| !matches!(enum_word(o).as_str(), "" | "UNSPECIFIED"))
    };
    if steps.iter().any(told) {
        return steps
            .iter()
            .position(|s| enum_word(&s["outcome"]) == "DECIDED");
    }
    steps
        .iter()
        .position(|s| enum_word(&s["reason"]) == reason && enum_word(&s["level"]) == level)
        .or_else(|| {
            steps
                .iter()
                .rposition(|s| enum_word(&s["reason"]) == reason)
        })
}

/// The decision and its trace as a tree: one branch per step or path with
/// its level and detail, every other field the step carries beneath it,
/// and the step that decided marked.
pub fn explain_tree(response: &crate::api::pb::CheckResponse) -> String {
    use std::fmt::Write;
    let whole = crate::console::proto_json(response, "warden.v1.CheckResponse")
        .unwrap_or(serde_json::Value::Null);
    let reason = enum_word(&whole["reason"]);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({reason}), record level {}, revision {}",
        if response.allowed { "ALLOW" } else { "DENY" },
        enum_word(&whole["level"]),
        response.revision
    );
    let steps = whole["trace"].as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        let _ = writeln!(out, "(no trace)");
        return out;
    }
    let deciding = deciding_step(&steps, &reason, &enum_word(&whole["level"]));
    let _ = writeln!(out, "trace");
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let (branch, stem) = if last {
            ("└─", "   ")
        } else {
            ("├─", "│  ")
        };
        let mark = if Some(i) == deciding {
            "  ◀ decides"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{branch} {} [{}]{mark}",
            enum_word(&step["reason"]),
            enum_word(&step["level"])
        );
        let detail = step["detail"].as_str().unwrap_or("");
        if !detail.is_empty() {
            let _ = writeln!(out, "{stem}   {detail}");
        }
        if let Some(fields) = step.as_object() {
            for (key, value) in fields {
                if matches!(key.as_str(), "reason" | "level" | "detail") {
                    continue;
                }
                let empty = match value {
                    serde_json::Value::String(s) => s.is_empty() || s.ends_with("_UNSPECIFIED"),
                    serde_json::Value::Array(a) => a.is_empty(),
                    serde_json::Value::Number(n) => n.as_u64() == Some(0),
                    serde_json::Value::Null => true,
                    _ => false,
                };
                if !empty {
                    let _ = writeln!(out, "{stem}   {key}: {}", plain(value));
                }
            }
        }
    }
    out
}

#[cfg(test)]
// `..Default::default()` on messages whose fields are all given today keeps
// these tests compiling when the trace gains fields.
#[allow(clippy::needless_update)]
mod tests {
    use super::*;
    use crate::api::pb;

    fn step(reason: pb::Reason, level: pb::AccessLevel, detail: &str) -> pb::TraceStep {
        pb::TraceStep {
            reason: reason as i32,
            level: level as i32,
            detail: detail.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn the_tree_marks_the_path_at_the_answers_level_and_only_it() {
        use pb::{AccessLevel as L, Reason as R};
        let response = pb::CheckResponse {
            allowed: true,
            reason: R::SharingRule as i32,
            level: L::ReadWrite as i32,
            revision: "7".into(),
            trace: vec![
                step(R::Profile, L::None, "profile 'std' allows edit"),
                step(R::SharingRule, L::Read, "sharing rule 'a'"),
                step(R::SharingRule, L::ReadWrite, "sharing rule 'b'"),
                step(R::ManualShare, L::Read, "share to user 'x'"),
            ],
            ..Default::default()
        };
        let tree = explain_tree(&response);
        let lines: Vec<&str> = tree.lines().collect();
        assert_eq!(
            lines[0],
            "ALLOW (SHARING_RULE), record level READ_WRITE, revision 7"
        );
        let marked: Vec<&&str> = lines.iter().filter(|l| l.contains("◀ decides")).collect();
        assert_eq!(marked, [&"├─ SHARING_RULE [READ_WRITE]  ◀ decides"]);
        assert!(tree.contains("│     sharing rule 'a'"), "{tree}");
        assert!(tree.contains("└─ MANUAL_SHARE [READ]"), "{tree}");
    }

    #[test]
    fn a_denial_without_a_trace_says_so() {
        let response = pb::CheckResponse {
            allowed: false,
            reason: pb::Reason::UnknownSubject as i32,
            level: pb::AccessLevel::None as i32,
            revision: "1".into(),
            trace: Vec::new(),
            ..Default::default()
        };
        let tree = explain_tree(&response);
        assert_eq!(
            tree,
            "DENY (UNKNOWN_SUBJECT), record level NONE, revision 1\n(no trace)\n"
        );
    }
}
