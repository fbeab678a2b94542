//! `--huge-pages`: once the store's state is loaded, the server faults in
//! no more transparent huge pages (`load-only`, the default: the loaded
//! tables keep theirs; a `--bootstrap` merge's document and a request's
//! short-lived buffers get small pages), or leaves the kernel's setting
//! alone (`kernel`). Read from the served process's `/proc/PID/status`
//! (`THP_enabled`, Linux 5.0 and later) and from what it logs.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// The `THP_enabled` line of a process's status, if the kernel has it.
fn thp_enabled(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

#[test]
fn by_default_the_server_takes_no_new_huge_pages_once_it_listens() {
    if thp_enabled(std::process::id()).is_none() {
        eprintln!("skipped: this kernel has no THP_enabled in /proc/PID/status");
        return;
    }
    let server = Server::start();
    assert_eq!(thp_enabled(server.pid()).as_deref(), Some("0"));
}

#[test]
fn kernel_leaves_the_setting_the_server_inherited() {
    let Some(own) = thp_enabled(std::process::id()) else {
        eprintln!("skipped: this kernel has no THP_enabled in /proc/PID/status");
        return;
    };
    let server = Server::start_with(&["--huge-pages", "kernel"]);
    assert_eq!(thp_enabled(server.pid()), Some(own));
}

/// What a server on a fresh store logs at info level while it merges
/// a scenario document through `--bootstrap` with `args`, up to its
/// listening.
fn bootstrap_log(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());
    let log = dir.path().join("warden.log");
    let doc = common::scenario_path("sharing-rules-member-sorts.yaml");
    let mut all = vec!["--bootstrap", doc.to_str().unwrap()];
    all.extend_from_slice(args);
    let server = Server::spawn_logged(&store, &all, &log);
    drop(server);
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn by_default_huge_pages_are_off_before_a_bootstrap_merge() {
    let log = bootstrap_log(&[]);
    let off = log
        .find("transparent huge pages off from here on")
        .unwrap_or_else(|| panic!("no line turning huge pages off:\n{log}"));
    let merged = log
        .find("bootstrap document merged")
        .unwrap_or_else(|| panic!("no merged document:\n{log}"));
    assert!(
        off < merged,
        "huge pages were turned off only after the merge:\n{log}"
    );
}

#[test]
fn kernel_merges_a_bootstrap_under_the_kernel_setting() {
    let log = bootstrap_log(&["--huge-pages", "kernel"]);
    assert!(log.contains("bootstrap document merged"), "{log}");
    assert!(!log.contains("transparent huge pages off"), "{log}");
}

#[test]
fn an_unknown_setting_is_refused_naming_the_flag_and_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &store])
        .args(["--huge-pages", "always"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Were the value taken, the server would serve instead of exiting.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("--huge-pages always was not refused: the server kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("--huge-pages"), "{err}");
    assert!(err.contains("load-only") && err.contains("kernel"), "{err}");
}
