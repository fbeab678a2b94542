//! Command-line subcommands other than `serve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;

use crate::cache::Cached;
use crate::document::{parse_document, parse_scenario, parse_typed, runner};
use crate::engine::simulate::WriteDoc;
use crate::engine::{Command, Direct, Engine, Limits, SimWrite, SimulateOptions, Simulation};

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
        org_id: args.org.clone().unwrap_or_default().into(),
        subject: args.subject.clone().into(),
        module: args.module.clone().into(),
        action: args.action.clone().into(),
        record_id: args.record.clone().unwrap_or_default().into(),
        field: args.field.clone().unwrap_or_default().into(),
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
    request.org_id = org_id.into();
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

/// `warden simulate DOC CHANGES`: loads the document into an in-memory
/// engine, simulates the changes file (a list of writes shaped like the
/// protobuf `Write` oneof) as one batch, and prints who gains and who loses
/// access, for policy review in CI. Exits non-zero, naming the write and
/// the field, when the document or a write is refused.
pub fn simulate(document: &Path, changes: &Path, actions: &[String], sample: usize) -> ExitCode {
    match run_simulation(document, changes, actions, sample) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("warden simulate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_simulation(
    document: &Path,
    changes: &Path,
    actions: &[String],
    sample: usize,
) -> Result<String, String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
    };
    let doc_text = read(document)?;
    let changes_text = read(changes)?;
    let doc = parse_document(&doc_text).map_err(|e| format!("{}: {e}", document.display()))?;
    let writes: Vec<WriteDoc> =
        parse_typed(&changes_text, "writes").map_err(|e| format!("{}: {e}", changes.display()))?;
    let org = if doc.organization.is_empty() {
        "org".to_string()
    } else {
        doc.organization.clone()
    };
    let started = Instant::now();
    let engine = Engine::new(Direct, Limits::default());
    engine
        .execute(
            &org,
            &Command::Import {
                document: doc,
                replace: true,
            },
        )
        .map_err(|e| format!("{}: {}: {e}", document.display(), e.code()))?;
    let loaded = started.elapsed();
    let writes: Vec<SimWrite> = writes.into_iter().map(WriteDoc::into_sim_write).collect();
    let options = SimulateOptions {
        actions: actions.to_vec(),
        sample_size: sample,
    };
    let started = Instant::now();
    let simulation = engine
        .simulate::<Cached>(&org, &writes, &options, Utc::now())
        .map_err(|e| format!("{}: {}: {e}", changes.display(), e.code()))?;
    // Timings go to stderr so that the table on stdout stays stable for review.
    eprintln!(
        "loaded in {:.2}s, simulated in {:.2}s",
        loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(simulation_table(&simulation))
}

/// The simulation as plain-text tables: access changes, then field
/// changes, then a summary line.
pub fn simulation_table(s: &Simulation) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let samples = |gained: &[String], lost: &[String]| {
        gained
            .iter()
            .map(|g| format!("+{g}"))
            .chain(lost.iter().map(|l| format!("-{l}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut rows: Vec<[String; 6]> = vec![[
        "SUBJECT".into(),
        "MODULE".into(),
        "ACTION".into(),
        "+GAINED".into(),
        "-LOST".into(),
        "SAMPLES".into(),
    ]];
    for c in &s.changes {
        rows.push([
            c.subject.clone(),
            c.module.clone(),
            c.action.clone(),
            format!("+{}", c.gained_count),
            format!("-{}", c.lost_count),
            samples(&c.gained_sample, &c.lost_sample),
        ]);
    }
    if s.changes.is_empty() {
        out.push_str("no access changes\n");
    } else {
        out.push_str(&aligned(&rows));
    }
    if !s.field_changes.is_empty() {
        let mut rows: Vec<[String; 6]> = vec![[
            "SUBJECT".into(),
            "MODULE".into(),
            "FIELD".into(),
            "BEFORE".into(),
            "AFTER".into(),
            String::new(),
        ]];
        for f in &s.field_changes {
            rows.push([
                f.subject.clone(),
                f.module.clone(),
                f.field.clone(),
                format!("{:?}", f.before).to_uppercase(),
                format!("{:?}", f.after).to_uppercase(),
                String::new(),
            ]);
        }
        out.push('\n');
        out.push_str(&aligned(&rows));
    }
    let subjects: std::collections::BTreeSet<&str> =
        s.changes.iter().map(|c| c.subject.as_str()).collect();
    let _ = writeln!(
        out,
        "\n{} access changes for {} subjects, {} field changes, at revision {}{}",
        s.changes.len(),
        subjects.len(),
        s.field_changes.len(),
        s.revision,
        if s.whole_org {
            " (the batch reaches the whole organization: compared in full)"
        } else {
            ""
        }
    );
    out
}

/// Rows with columns padded to their widest cell (the last one unpadded).
fn aligned(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
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
