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
