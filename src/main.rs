//! The `warden` command: `validate` scenario files (and, later, `serve`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use warden::cli;

/// Access decisions for CRM data.
#[derive(Parser)]
#[command(name = "warden", version, about)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load each scenario into a fresh in-memory engine and run its checks.
    Validate {
        /// Scenario files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Cmd::Validate { files } => cli::validate(&files),
    }
}
