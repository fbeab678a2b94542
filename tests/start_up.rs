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
//! - Part D2 (the load decodes chunks on another thread while it applies
//!   earlier ones): a row in the middle of a load of many chunks whose body
//!   does not decode stops the start-up, before it serves anything, with an
//!   error naming the organization, module and row, on both backends.

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

/// The `(record, id, body)` of the row at `offset` (in key order) among a
/// module's rows of `kind`, read straight from the store.
async fn row_at(store: &str, kind: &str, module: &str, offset: i64) -> (String, String, String) {
    use sqlx::Connection;
    if store.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(store).await.unwrap();
        sqlx::query_as(
            "SELECT record, id, body FROM entities WHERE org_id = 'startup' AND kind = ? \
             AND module = ? ORDER BY record, id LIMIT 1 OFFSET ?",
        )
        .bind(kind)
        .bind(module)
        .bind(offset)
        .fetch_one(&mut conn)
        .await
        .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(store).await.unwrap();
        sqlx::query_as(
            "SELECT record, id, body FROM entities WHERE org_id = 'startup' AND kind = $1 \
             AND module = $2 ORDER BY record, id LIMIT 1 OFFSET $3",
        )
        .bind(kind)
        .bind(module)
        .bind(offset)
        .fetch_one(&mut conn)
        .await
        .unwrap()
    }
}

/// Overwrites one row's body behind the server's back, as a damaged store
/// would hold it.
async fn set_body(store: &str, kind: &str, module: &str, record: &str, id: &str, body: &str) {
    use sqlx::Connection;
    let updated = if store.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(store).await.unwrap();
        sqlx::query(
            "UPDATE entities SET body = ? WHERE org_id = 'startup' AND kind = ? \
             AND module = ? AND record = ? AND id = ?",
        )
        .bind(body)
        .bind(kind)
        .bind(module)
        .bind(record)
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected()
    } else {
        let mut conn = sqlx::PgConnection::connect(store).await.unwrap();
        sqlx::query(
            "UPDATE entities SET body = $1 WHERE org_id = 'startup' AND kind = $2 \
             AND module = $3 AND record = $4 AND id = $5",
        )
        .bind(body)
        .bind(kind)
        .bind(module)
        .bind(record)
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected()
    };
    assert!(
        updated >= 1,
        "{store}: no {kind} row {record:?}/{id:?} to damage"
    );
}

/// Starts `warden serve` on `store` expecting it to refuse: it must exit
/// with a failure and never say it listens. Returns what it wrote to stderr.
fn refused_start(store: &str) -> String {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", store])
        .args(["--log", "error"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warden serve");
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("warden listening on") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{store}: a store with a corrupt row was served ({line})");
        }
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{store}: exited {status:?}; {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_row_in_the_middle_of_the_load_stops_the_start_up_naming_it() {
    let doc = document();
    let dir = tempfile::tempdir().unwrap();
    let file = write_document(&doc, &dir);
    // The last module, so a module of several chunks is whole before it;
    // the damaged rows are inside its second chunk.
    let module = doc.modules.iter().map(|m| m.id.clone()).max().unwrap();
    let chunk = warden::store::rows::LOAD_CHUNK;
    let middle = |rows: usize| {
        let rows = i64::try_from(rows).unwrap();
        assert!(rows > chunk + 1, "{rows} rows fit in one chunk");
        chunk + (rows - chunk) / 2
    };
    let records = middle(doc.records.iter().filter(|r| r.module == module).count());
    let shares = middle(doc.shares.iter().filter(|s| s.module == module).count());
    for store in stores(&dir).await {
        let mut filled = Server::spawn(&store, &["--bootstrap", &file]);
        filled.clients().await;
        filled.terminate();

        // A record whose body is cut short: not JSON, so it names no row
        // itself; the row before it places it.
        let (before, _, _) = row_at(&store, "record", &module, records - 1).await;
        let (record, id, body) = row_at(&store, "record", &module, records).await;
        set_body(
            &store,
            "record",
            &module,
            &record,
            &id,
            &body[..body.len() / 2],
        )
        .await;
        let said = refused_start(&store);
        assert!(said.contains("corrupt record row"), "{store}: {said}");
        assert!(said.contains("\"startup\""), "{store}: {said}");
        assert!(
            said.contains(&format!("module {module:?}")),
            "{store}: {said}"
        );
        assert!(
            said.contains(&format!("the row after record {before:?}")),
            "{store}: {said}"
        );
        set_body(&store, "record", &module, &record, &id, &body).await;

        // A share that is JSON but lacks its level: it names itself.
        let (share_record, grantee, body) = row_at(&store, "share", &module, shares).await;
        let (prev_record, prev_grantee, _) = row_at(&store, "share", &module, shares - 1).await;
        let mut damaged: serde_json::Value = serde_json::from_str(&body).unwrap();
        damaged.as_object_mut().unwrap().remove("level").unwrap();
        set_body(
            &store,
            "share",
            &module,
            &share_record,
            &grantee,
            &damaged.to_string(),
        )
        .await;
        let said = refused_start(&store);
        assert!(said.contains("corrupt share row"), "{store}: {said}");
        assert!(said.contains("level"), "{store}: {said}");
        assert!(
            said.contains(&format!(
                "share of record {share_record:?} with {grantee:?}"
            )),
            "{store}: {said}"
        );
        assert!(
            said.contains(&format!(
                "the row after share of record {prev_record:?} with {prev_grantee:?}"
            )),
            "{store}: {said}"
        );

        // Repaired, the store starts again and holds every row.
        set_body(&store, "share", &module, &share_record, &grantee, &body).await;
        let started = Server::spawn(&store, &[]);
        let mut c = started.clients().await;
        let (exported, _) = export(&mut c, &doc.organization).await;
        let exported: OrgDocument = serde_json::from_str(&exported).unwrap();
        assert_eq!(exported.records.len(), doc.records.len(), "{store}");
        assert_eq!(exported.shares.len(), doc.shares.len(), "{store}");
    }
}
