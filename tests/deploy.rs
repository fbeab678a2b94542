//! The README's commands work as written: the service command resolves to
//! the `warden` binary, the two commands are exactly the ones the README
//! gives, and every flag of its Configuration table exists.

use std::path::Path;
use std::process::Command;

const SERVE: &str = "cargo run --release -- serve";
const TEST: &str = "bash scripts/test.sh";

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The lines of a README section (from its `## ` heading to the next).
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect()
}

#[test]
fn cargo_run_resolves_to_the_warden_binary() {
    // `cargo run` with several binaries needs `default-run`; the test asks
    // cargo itself, as the README's command would.
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "warden")
        .expect("package warden");
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(bins.contains(&"warden"), "no [[bin]] warden in {bins:?}");
    if bins.len() > 1 {
        assert_eq!(
            package["default_run"], "warden",
            "several binaries ({bins:?}) and default-run is not warden: `{SERVE}` cannot choose"
        );
    }
    // The binary that target builds has the `serve` subcommand.
    let help = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "warden serve --help: {help:?}");
}

#[test]
fn readme_gives_exactly_the_two_commands() {
    let text = readme();
    let commands: Vec<&str> = section(&text, "## The two commands")
        .into_iter()
        .filter(|l| l.starts_with("    "))
        .map(str::trim)
        .collect();
    assert_eq!(
        commands,
        [SERVE, TEST],
        "the commands of 'The two commands'"
    );
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts/test.sh")
            .is_file(),
        "scripts/test.sh is missing"
    );
}

#[test]
fn serve_help_lists_every_flag_of_the_configuration_table() {
    let text = readme();
    let table: Vec<&str> = section(&text, "## Configuration")
        .into_iter()
        .filter(|l| l.starts_with("| `--"))
        .collect();
    assert!(
        !table.is_empty(),
        "no flags in the README's Configuration table"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut flags = Vec::new();
    for row in table {
        // The first column names one or more flags, each in backquotes.
        let first = row.split('|').nth(1).unwrap();
        for flag in first.split('`').filter(|s| s.starts_with("--")) {
            flags.push(flag.to_string());
        }
    }
    let missing: Vec<&String> = flags
        .iter()
        .filter(|f| {
            !help
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == f.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README flags unknown to `warden serve --help`: {missing:?}"
    );
    eprintln!("{} README flags all in `warden serve --help`", flags.len());
}
