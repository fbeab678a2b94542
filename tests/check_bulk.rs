//! CheckBulk over a real `warden serve`: checks of several organizations
//! in one call (each organization read once, `Engine::check_many`), with
//! repeated subjects, answered exactly as one Check per item would answer
//! them; and a failing check anywhere fails the whole call naming
//! `checks[i].<field>` of the first failing one in request order.

mod common;

use common::rng::Rng;
use common::{check_req, import_scenario, Server};
use warden::api::pb;
use warden::engine::OrgDocument;

/// Two scenario documents of different organizations, imported.
async fn two_orgs(c: &mut common::Clients) -> Vec<OrgDocument> {
    let mut docs = Vec::new();
    for name in ["admins-and-inactive.yaml", "manual-shares-grantees.yaml"] {
        docs.push(import_scenario(c, name).await.document);
    }
    assert_ne!(docs[0].organization, docs[1].organization);
    docs
}

/// CheckBulk's answer to `checks`, which must not fail.
async fn bulk_answer(
    c: &mut common::Clients,
    checks: &[pb::CheckRequest],
) -> pb::CheckBulkResponse {
    c.check
        .check_bulk(pb::CheckBulkRequest {
            checks: checks.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// A random check of `doc`'s organization: known and unknown subjects,
/// modules and records, standard actions (each valid in every module).
fn random_check(rng: &mut Rng, doc: &OrgDocument) -> pb::CheckRequest {
    let mut subjects: Vec<&str> = doc.users.iter().map(|u| u.id.as_str()).collect();
    subjects.push("nobody");
    let mut modules: Vec<&str> = doc.modules.iter().map(|m| m.id.as_str()).collect();
    modules.push("NoSuchModule");
    let subject = *rng.pick(&subjects);
    let module = *rng.pick(&modules);
    let action = *rng.pick(&["view", "edit", "delete", "share", "create"]);
    let record = if action == "create" {
        String::new()
    } else {
        let mut records: Vec<&str> = doc
            .records
            .iter()
            .filter(|r| r.module == module)
            .map(|r| r.id.as_str())
            .collect();
        records.push("no-such-record");
        records.push("");
        rng.pick(&records).to_string()
    };
    check_req(&doc.organization, subject, module, action, &record)
}

/// What a check answered, revision included.
fn answer(r: &pb::CheckResponse) -> (bool, i32, i32, String) {
    (r.allowed, r.reason, r.level, r.revision.to_string())
}

async fn one_by_one(
    c: &mut common::Clients,
    checks: &[pb::CheckRequest],
) -> Vec<(bool, i32, i32, String)> {
    let mut out = Vec::new();
    for check in checks {
        out.push(answer(
            &c.check.check(check.clone()).await.unwrap().into_inner(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn random_batches_over_two_organizations_answer_as_check_does() {
    let server = Server::start();
    let mut c = server.clients().await;
    let docs = two_orgs(&mut c).await;
    let mut rng = Rng(0x5eed_b01c);
    let mut reasons = std::collections::BTreeSet::new();
    let mut revisions = std::collections::BTreeSet::new();
    for round in 0..12 {
        let size = 1 + rng.below(60);
        let mut checks: Vec<pb::CheckRequest> = (0..size)
            .map(|_| {
                let doc = rng.pick(&docs);
                random_check(&mut rng, doc)
            })
            .collect();
        // The same subject over and over: repeated subjects must be
        // answered each for itself.
        if round % 3 == 0 {
            let repeated = checks[0].clone();
            for k in (0..checks.len()).step_by(2) {
                checks[k].org_id = repeated.org_id.clone();
                checks[k].subject = repeated.subject.clone();
                if checks[k].module != repeated.module {
                    checks[k].module = repeated.module.clone();
                    checks[k].record_id = repeated.record_id.clone();
                }
            }
        }
        let bulk = bulk_answer(&mut c, &checks).await;
        let got: Vec<_> = bulk.results.iter().map(answer).collect();
        let want = one_by_one(&mut c, &checks).await;
        assert_eq!(got, want, "round {round}: {checks:?}");
        for (check, (_, reason, _, revision)) in checks.iter().zip(&want) {
            reasons.insert(*reason);
            revisions.insert((check.org_id.clone(), revision.clone()));
        }
    }
    // The batches reached both organizations (each with its own revision)
    // and more than one step of the decision.
    let orgs: std::collections::BTreeSet<_> = revisions.iter().map(|(o, _)| o.clone()).collect();
    assert_eq!(orgs.len(), 2, "{revisions:?}");
    assert!(reasons.len() >= 4, "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_subjects_and_modules_mid_batch_are_denials_not_errors() {
    let server = Server::start();
    let mut c = server.clients().await;
    let docs = two_orgs(&mut c).await;
    let (a, b) = (&docs[0].organization, &docs[1].organization);
    let known = &docs[0].users[0].id;
    let checks = vec![
        check_req(a, known, "Leads", "create", ""),
        check_req(b, "nobody", "Leads", "view", ""),
        check_req(a, "nobody", "Leads", "view", ""),
        check_req(a, "alice", "NoSuchModule", "view", ""),
        check_req(b, &docs[1].users[0].id, "NoSuchModule", "view", ""),
        check_req(a, known, "Leads", "create", ""),
    ];
    let bulk = bulk_answer(&mut c, &checks).await;
    let got: Vec<_> = bulk.results.iter().map(answer).collect();
    assert_eq!(got, one_by_one(&mut c, &checks).await);
    let reasons: Vec<i32> = bulk.results.iter().map(|r| r.reason).collect();
    assert_eq!(reasons[1], pb::Reason::UnknownSubject as i32);
    assert_eq!(reasons[2], pb::Reason::UnknownSubject as i32);
    assert!(!bulk.results[1].allowed && !bulk.results[2].allowed);
}

/// The call fails, naming `checks[i].field` of the first failing check in
/// request order whatever organization it belongs to.
async fn fails_at(
    c: &mut common::Clients,
    checks: Vec<pb::CheckRequest>,
    code: tonic::Code,
    prefix: &str,
    names: &str,
) {
    let e = c
        .check
        .check_bulk(pb::CheckBulkRequest { checks })
        .await
        .unwrap_err();
    assert_eq!(e.code(), code, "{}", e.message());
    assert!(
        e.message().starts_with(prefix) && e.message().contains(names),
        "want {prefix}… naming {names}, got {}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_check_mid_batch_fails_the_call_naming_the_first() {
    let server = Server::start();
    let mut c = server.clients().await;
    let docs = two_orgs(&mut c).await;
    let (a, b) = (&docs[0].organization, &docs[1].organization);
    let ua = &docs[0].users[0].id;
    let ub = &docs[1].users[0].id;
    let ok_a = || check_req(a, ua, "Leads", "create", "");
    let ok_b = || check_req(b, ub, "Leads", "create", "");
    let before = common::export(&mut c, a).await;

    // An unknown action of organization A at 3, an empty subject of B at 5.
    fails_at(
        &mut c,
        vec![
            ok_a(),
            ok_b(),
            ok_a(),
            check_req(a, ua, "Leads", "no-such-action", ""),
            ok_b(),
            check_req(b, "", "Leads", "view", ""),
        ],
        tonic::Code::InvalidArgument,
        "checks[3].action:",
        "no-such-action",
    )
    .await;
    // The other way round: B's failure comes first in request order,
    // although A's checks are read first.
    fails_at(
        &mut c,
        vec![
            ok_a(),
            check_req(b, "", "Leads", "view", ""),
            check_req(a, ua, "Leads", "no-such-action", ""),
        ],
        tonic::Code::InvalidArgument,
        "checks[1].subject:",
        "empty",
    )
    .await;
    // An empty module, then an unknown organization after it.
    fails_at(
        &mut c,
        vec![
            ok_b(),
            ok_a(),
            check_req(b, ub, "", "view", ""),
            check_req("no-such-org", ua, "Leads", "view", ""),
        ],
        tonic::Code::InvalidArgument,
        "checks[2].module:",
        "empty",
    )
    .await;
    // An unknown organization in the middle, a bad action of A after it.
    fails_at(
        &mut c,
        vec![
            ok_a(),
            check_req("no-such-org", ua, "Leads", "view", ""),
            ok_b(),
            check_req(a, ua, "Leads", "no-such-action", ""),
        ],
        tonic::Code::NotFound,
        "checks[1].",
        "'no-such-org' not found (org_id)",
    )
    .await;
    // Nothing changed.
    assert_eq!(common::export(&mut c, a).await, before);
}
