//! Many tenants: hundreds of small organizations bootstrapped from a
//! directory into one SQLite store, then every one of them loaded again by
//! a restarted server and answering as an in-process engine holding the
//! same documents does.

mod common;

use chrono::{TimeZone, Utc};
use common::Server;
use warden::api::{convert, pb};
use warden::engine::{Command, Direct, Engine, Limits, OrgDocument};
use warden::generate::{check_mix, generate, tenant_file, write_document, Format, Params};

/// Enough organizations that a per-organization slip shows, few enough
/// for a debug build's bootstrap.
const TENANTS: usize = 300;

/// Checks asked of each organization.
const CHECKS_PER_TENANT: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_loads_and_answers_after_a_restart() {
    let documents = tempfile::tempdir().unwrap();
    let expected = Engine::new(Direct, Limits::default());
    let mut generated: Vec<OrgDocument> = Vec::with_capacity(TENANTS);
    for index in 0..TENANTS {
        let doc = generate(&Params::tenant(index)).unwrap().document;
        let file =
            std::fs::File::create(documents.path().join(tenant_file(index, Format::Json))).unwrap();
        write_document(&doc, Format::Json, file).unwrap();
        let command = Command::Import {
            document: doc.clone(),
            replace: false,
        };
        expected.execute(&doc.organization, &command).unwrap();
        generated.push(doc);
    }
    // A file of another kind in the directory is not a document.
    std::fs::write(documents.path().join("README.txt"), "not a document").unwrap();

    let bootstrap = documents.path().to_str().unwrap().to_string();
    let mut first = Server::start_with(&["--bootstrap", &bootstrap]);
    let dir = first.take_dir();
    let store = first.store_url();
    assert!(first.terminate().success());

    // Restarted without the bootstrap: everything comes from the store.
    let server = Server::spawn(&store, &[]);
    let mut c = server.clients().await;
    let listed = c
        .admin
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<String> = listed
        .organizations
        .iter()
        .map(|o| o.org_id.clone())
        .collect();
    ids.sort();
    let mut wanted: Vec<String> = generated.iter().map(|d| d.organization.clone()).collect();
    wanted.sort();
    assert_eq!(ids, wanted);

    let at = Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap();
    let mut allowed = 0;
    for doc in &generated {
        let org = doc.organization.as_str();
        // The whole organization, as the server holds it after the restart.
        let (text, revision) = common::export(&mut c, org).await;
        let loaded: OrgDocument = serde_json::from_str(&text).unwrap();
        let (held, held_revision) = expected.export(org).unwrap();
        assert_eq!(loaded, held, "{org}: exported document");
        assert_eq!(revision, held_revision.to_string(), "{org}: revision");

        for check in check_mix(doc, CHECKS_PER_TENANT, 7) {
            let want = expected
                .check(
                    org,
                    &warden::engine::CheckRequest {
                        at: Some(at),
                        ..check.clone()
                    },
                    at,
                )
                .unwrap()
                .0;
            let got = c
                .check
                .check(pb::CheckRequest {
                    org_id: org.into(),
                    subject: check.subject.clone(),
                    module: check.module.clone(),
                    action: check.action.clone(),
                    record_id: check.record.clone().unwrap_or_default(),
                    at: Some(prost_types::Timestamp {
                        seconds: at.timestamp(),
                        nanos: 0,
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                (got.allowed, got.reason),
                (want.allowed, convert::reason(want.reason) as i32),
                "{org}: {check:?}"
            );
            allowed += usize::from(got.allowed);
        }
    }
    // The mix reaches both answers, so the comparison above means something.
    let asked = TENANTS * CHECKS_PER_TENANT;
    assert!(
        allowed > 0 && allowed < asked,
        "{allowed} of {asked} allowed"
    );
    drop(server);
    drop(dir);
}
