//! Runs a scenario's checks through any decision source (the engine, a
//! cached engine, a gRPC client) and reports each failure.

use chrono::{DateTime, Utc};

use super::{CheckSpec, Expect, Scenario};
use crate::engine::plan::Command;
use crate::engine::{CheckRequest, Decision, Engine, Error, Expand, OrgDocument};

/// What a run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Checks that gave the expected answer.
    pub passed: usize,
    /// Checks that did not.
    pub failed: usize,
    /// One line per failure.
    pub failures: Vec<String>,
}

impl Outcome {
    fn pass(&mut self) {
        self.passed += 1;
    }

    fn fail(&mut self, line: String) {
        self.failed += 1;
        self.failures.push(line);
    }
}

fn describe(i: usize, c: &CheckSpec) -> String {
    let mut s = format!("checks[{i}] {} {} {}", c.subject, c.action, c.module);
    if let Some(r) = &c.record {
        s.push_str(&format!("/{r}"));
    }
    if let Some(f) = &c.field {
        s.push_str(&format!(" field {f}"));
    }
    if let Some(a) = &c.at {
        s.push_str(&format!(" at {}", a.to_rfc3339()));
    }
    if let Some(t) = &c.assign_to {
        s.push_str(&format!(" to {t:?}"));
    }
    s
}

fn expected(c: &CheckSpec) -> String {
    let verdict = match c.expect {
        Expect::Allow => "ALLOW",
        Expect::Deny => "DENY",
    };
    match c.reason {
        Some(r) => format!("{verdict} ({})", r.as_str()),
        None => verdict.to_string(),
    }
}

/// Runs a scenario: `load` imports the document (replacing), `check` answers
/// one request. A scenario with `expect_error` passes when loading fails
/// with that code and message.
pub fn run(
    scenario: &Scenario,
    mut load: impl FnMut(&OrgDocument) -> Result<(), Error>,
    mut check: impl FnMut(&CheckRequest) -> Result<Decision, Error>,
) -> Outcome {
    let mut out = Outcome::default();
    let loaded = match &scenario.parse_error {
        Some(e) => Err(e.clone()),
        None => load(&scenario.document),
    };
    if let Some(want) = &scenario.expect_error {
        match loaded {
            Err(e)
                if e.code() == want.code
                    && e.to_string()
                        .to_lowercase()
                        .contains(&want.message.to_lowercase()) =>
            {
                out.pass()
            }
            Err(e) => out.fail(format!(
                "load: expected {} containing {:?}, got {}: {e}",
                want.code,
                want.message,
                e.code()
            )),
            Ok(()) => out.fail(format!(
                "load: expected {} containing {:?}, but the document loaded",
                want.code, want.message
            )),
        }
        return out;
    }
    if let Err(e) = loaded {
        out.fail(format!("load: {}: {e}", e.code()));
        return out;
    }
    for (i, c) in scenario.checks.iter().enumerate() {
        let what = describe(i, c);
        match check(&c.request()) {
            Err(e) => out.fail(format!(
                "{what}: expected {}, got error {}: {e}",
                expected(c),
                e.code()
            )),
            Ok(d) => {
                let allowed = c.expect == Expect::Allow;
                let reason_ok = c.reason.is_none_or(|r| r == d.reason);
                if d.allowed == allowed && reason_ok {
                    out.pass();
                } else {
                    let got = if d.allowed { "ALLOW" } else { "DENY" };
                    out.fail(format!(
                        "{what}: expected {}, got {got} ({})",
                        expected(c),
                        d.reason.as_str()
                    ));
                }
            }
        }
    }
    out
}

/// Runs a scenario on an engine: imports it into the organization it names
/// (replacing it), then decides each check with `now` for a missing `at`.
pub fn run_on_engine<X: Expand>(
    engine: &Engine<X>,
    scenario: &Scenario,
    now: DateTime<Utc>,
) -> Outcome {
    let org = scenario.document.organization.clone();
    run(
        scenario,
        |doc| {
            engine
                .execute(
                    &org,
                    &Command::Import {
                        document: doc.clone(),
                        replace: true,
                    },
                )
                .map(|_| ())
        },
        |req| engine.check(&org, req, now).map(|(d, _)| d),
    )
}
