//! Start-up and fill (part D of issue 9, third round): the streamed load
//! reads the next chunk of rows while it decodes the current one, and the
//! server hands the memory of a load or a bulk Import back to the OS.
//!
//! - An organization whose modules each hold more records and more shares
//!   than one load chunk (16,384) starts from the store exactly as it was
//!   filed: the same Export and the same answers as the server that filled
//!   it (SQLite and, with `WARDEN_TEST_POSTGRES_URL`, PostgreSQL).
//! - A fill by `--bootstrap` and a fill by the Import RPC (each followed by
//!   the hand-back) answer as the server started from the store does.

mod common;

use common::{check_req, export, Clients, Server};
use warden::api::pb;
use warden::engine::OrgDocument;
use warden::generate::{generate, Params};

/// Two modules, each with more records and more shares than one chunk
/// of the load, so every module is read in several chunks, the last one
/// short.
fn document() -> OrgDocument {
    let params = Params {
        organization: "startup".into(),
        modules: 2,
        records: 40_000,
        manual_shares: 36_000,
        ..Params::small()
    };
    generate(&params).unwrap().document
}

/// A sample of checks spread over both modules and the records' owners,
/// managers and strangers: who may view or edit which record.
fn checks(doc: &OrgDocument) -> Vec<pb::CheckRequest> {
    let users: Vec<&str> = doc.users.iter().map(|u| u.id.as_str()).collect();
    doc.records
        .iter()
        .step_by(97)
        .enumerate()
        .map(|(i, r)| {
            let subject = users[(i * 31) % users.len()];
            let action = if i % 3 == 0 { "edit" } else { "view" };
            check_req(&doc.organization, subject, &r.module, action, &r.id)
        })
        .collect()
}

/// Each check's answer: allowed, and the reason that decided it.
async fn answers(c: &mut Clients, checks: &[pb::CheckRequest]) -> Vec<(bool, i32)> {
    let mut out = Vec::with_capacity(checks.len());
    for req in checks {
        let r = c.check.check(req.clone()).await.unwrap().into_inner();
        out.push((r.allowed, r.reason));
    }
    out
}

fn write_document(doc: &OrgDocument, dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("startup.json");
    let file = std::fs::File::create(&path).unwrap();
    warden::generate::write_document(doc, warden::generate::Format::Json, file).unwrap();
    path.display().to_string()
}

/// The stores to run on: a fresh SQLite file, and a fresh PostgreSQL
/// database when the test cluster is configured.
async fn stores(dir: &tempfile::TempDir) -> Vec<String> {
    let mut out = vec![format!(
        "sqlite://{}",
        dir.path().join("warden.db").display()
    )];
    match std::env::var("WARDEN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            out.push(common::services::fresh_postgres_database("startup").await)
        }
        _ => eprintln!("PostgreSQL half skipped: WARDEN_TEST_POSTGRES_URL is unset"),
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_of_many_chunks_starts_as_it_was_filled() {
    let doc = document();
    let checks = checks(&doc);
    let org = doc.organization.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = write_document(&doc, &dir);
    for store in stores(&dir).await {
        let mut filled = Server::spawn(&store, &["--bootstrap", &file]);
        let mut c = filled.clients().await;
        let (filled_export, filled_revision) = export(&mut c, &org).await;
        let filled_answers = answers(&mut c, &checks).await;
        filled.terminate();

        let started = Server::spawn(&store, &[]);
        let mut c = started.clients().await;
        let (started_export, started_revision) = export(&mut c, &org).await;
        assert_eq!(started_revision, filled_revision, "{store}");
        // Export lists every record and share: each chunk, the last short
        // one included, was read once and whole.
        assert!(started_export == filled_export, "{store}: exports differ");
        let exported: OrgDocument = serde_json::from_str(&started_export).unwrap();
        assert_eq!(exported.records.len(), doc.records.len(), "{store}");
        assert_eq!(exported.shares.len(), doc.shares.len(), "{store}");
        assert_eq!(answers(&mut c, &checks).await, filled_answers, "{store}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_by_rpc_answers_as_the_store_it_filled() {
    let doc = document();
    let checks = checks(&doc);
    let org = doc.organization.clone();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());
    let mut imported = Server::spawn(&store, &[]);
    let mut c = imported.clients().await;
    c.admin
        .import(pb::ImportRequest {
            org_id: org.clone(),
            document: serde_json::to_string(&doc).unwrap(),
            replace: false,
            ..Default::default()
        })
        .await
        .unwrap();
    let (imported_export, _) = export(&mut c, &org).await;
    let imported_answers = answers(&mut c, &checks).await;
    // Not every check is allowed or every one denied: the sample tells
    // the paths apart.
    assert!(imported_answers.iter().any(|(allowed, _)| *allowed));
    assert!(imported_answers.iter().any(|(allowed, _)| !*allowed));
    imported.terminate();

    let started = Server::spawn(&store, &[]);
    let mut c = started.clients().await;
    let (started_export, _) = export(&mut c, &org).await;
    assert!(started_export == imported_export, "exports differ");
    assert_eq!(answers(&mut c, &checks).await, imported_answers);
}
