//! The one-pass JSON read of `--bootstrap` (part S, seventh round): a JSON
//! document is read straight into its type, its maps refusing a repeated
//! key as they are read. A document that repeats a key inside a record's
//! attributes is refused with the general path's message (field and rule)
//! and stores nothing; the same document without the repeat is stored.

use std::process::Command;

use warden::store::Store;

/// A JSON organization with one record whose attributes are `attributes`.
fn document(attributes: &str) -> String {
    format!(
        r#"{{"organization":"acme",
  "modules":[{{"id":"Leads","owd":"PRIVATE"}}],
  "profiles":[{{"id":"std","modules":{{"Leads":["view"]}}}}],
  "roles":[{{"id":"ceo","profiles":["std"]}}],
  "users":[{{"id":"alice","role":"ceo"}}],
  "records":[{{"module":"Leads","id":"L1","owner":{{"user":"alice"}},"attributes":{attributes}}}]}}"#
    )
}

/// Runs `warden serve --bootstrap` on a fresh SQLite store until it either
/// prints its listening line (then stops it) or exits; returns whether it
/// listened and what it wrote to stderr.
fn bootstrap(dir: &std::path::Path, text: &str) -> (bool, String) {
    use std::io::{BufRead, BufReader};
    let path = dir.join("doc.json");
    std::fs::write(&path, text).unwrap();
    let store = format!("sqlite://{}", dir.join("warden.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--store", &store, "--listen", "127.0.0.1:0"])
        .args(["--log", "warn", "--bootstrap"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let listened = stdout
        .lines()
        .map_while(std::result::Result::ok)
        .any(|line| line.starts_with("warden listening on"));
    if listened {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (listened, String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn revisions(dir: &std::path::Path) -> Vec<(String, u64)> {
    let store = Store::open(&format!("sqlite://{}", dir.join("warden.db").display()))
        .await
        .unwrap();
    store.revisions().await.unwrap()
}

#[tokio::test]
async fn a_repeated_attribute_key_is_refused_by_name_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (listened, stderr) = bootstrap(dir.path(), &document(r#"{"tier":"1","tier":"2"}"#));
    assert!(!listened, "a document repeating a key was loaded");
    assert!(
        stderr.contains(
            "records[0].attributes.tier: duplicate key `tier`: a key appears once per mapping"
        ),
        "{stderr}"
    );
    assert!(revisions(dir.path()).await.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let (listened, stderr) = bootstrap(dir.path(), &document(r#"{"tier":"1","region":"eu"}"#));
    assert!(listened, "{stderr}");
    assert_eq!(revisions(dir.path()).await.len(), 1);
}
