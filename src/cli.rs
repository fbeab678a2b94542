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
