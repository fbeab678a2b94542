//! The `warden` command: `serve` the gRPC service, `validate` scenario
//! files, or `explain` one check.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use warden::{cli, config::ServeConfig, server};

/// mimalloc rather than glibc's malloc: per-thread free lists make the
/// many small, short-lived allocations of a gRPC call cheaper, and freed
/// pages go back to the OS after loading (docs/decisions.md, "Transport").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Access decisions for CRM data.
#[derive(Parser)]
#[command(name = "warden", version, about)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the Check, Grant and Admin gRPC services.
    Serve(Box<ServeConfig>),
    /// Load each scenario into a fresh in-memory engine and run its checks.
    Validate {
        /// Scenario files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Decide one check, against a document or a running server, and print
    /// its trace as a tree (exit 0: ALLOW, 1: DENY, 2: error).
    Explain(Box<cli::ExplainArgs>),
    /// Write a generated organization document (e.g. SPEC's crm-large) for benchmarks.
    Generate(warden::generate::GenerateArgs),
    /// Show who would gain and lose access if a changes file were applied to a document.
    Simulate {
        /// The organization document (YAML or JSON).
        document: std::path::PathBuf,
        /// The changes: a list of writes, e.g. `- put_sharing_rule: {rule: {...}}`.
        changes: std::path::PathBuf,
        /// Actions to compare (default: view, edit, delete).
        #[arg(long, value_delimiter = ',')]
        actions: Vec<String>,
        /// Record ids listed per gained or lost sample.
        #[arg(long, default_value_t = 10)]
        sample: usize,
    },
}

fn main() -> ExitCode {
    match Args::parse().command {
        Cmd::Validate { files } => cli::validate(&files),
        Cmd::Explain(args) => cli::explain(&args),
        Cmd::Generate(args) => warden::generate::run(&args),
        Cmd::Simulate {
            document,
            changes,
            actions,
            sample,
        } => cli::simulate(&document, &changes, &actions, sample),
        Cmd::Serve(config) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("warden: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(server::serve(*config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("warden: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
