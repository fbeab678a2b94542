//! Part H's properties: the interner (ids stored inline in its hash table)
//! gives the same indexes as a plain map model under any sequence of
//! interns and look-ups, and `Engine::check_many` decides a batch exactly as
//! `Engine::check` decides its checks one by one (answers, order, and the
//! first failing check's position and error).

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use warden::cache::Cached;
use warden::engine::document::changes_of;
use warden::engine::ids::Interner;
use warden::engine::model::{OwnerRef, RecordDescription};
use warden::engine::{CheckRequest, Decision, Engine, Error, Limits};
use warden::generate::{check_mix, generate, Params, Preset};

/// An id from a small alphabet, so sequences repeat ids often; up to 40
/// bytes, so ids stored inline (≤ 24) and on the heap are both drawn.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ab]{1,3}",
        2 => "[a-c:@._-]{1,24}",
        1 => "[ab]{25,40}",
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Intern(String),
    Get(String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![name().prop_map(Op::Intern), name().prop_map(Op::Get)]
}

proptest! {
    #[test]
    fn interner_agrees_with_a_map(ops in prop::collection::vec(op(), 0..300)) {
        let mut interner = Interner::default();
        // The model: the first index given to a name is the number of
        // names interned before it, and stays.
        let mut model: HashMap<String, u32> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        for op in &ops {
            match op {
                Op::Intern(n) => {
                    let next = names.len() as u32;
                    let expected = *model.entry(n.clone()).or_insert_with(|| {
                        names.push(n.clone());
                        next
                    });
                    prop_assert_eq!(interner.intern(n), expected, "intern({})", n);
                }
                Op::Get(n) => {
                    prop_assert_eq!(interner.get(n), model.get(n).copied(), "get({})", n);
                }
            }
            prop_assert_eq!(interner.len(), names.len());
        }
        for (ix, n) in names.iter().enumerate() {
            prop_assert_eq!(interner.name(ix as u32), n.as_str());
            prop_assert_eq!(interner.get(n), Some(ix as u32));
        }
        prop_assert_eq!(interner.name(names.len() as u32), "");
    }
}

const NOW: &str = "2026-11-30T10:00:00Z";

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

struct World {
    org: String,
    engine: Engine<Cached>,
    mix: Vec<CheckRequest>,
}

/// crm-small (200 users, 2,000 records), loaded once for every case.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let generated = generate(&Params::of(Preset::Small)).unwrap();
        let doc = generated.document;
        let org = doc.organization.clone();
        let engine = Engine::new(Cached::default(), Limits::default());
        engine.apply(&org, 1, &changes_of(&doc));
        let mix = check_mix(&doc, 400, 11);
        World { org, engine, mix }
    })
}

/// How one request of a batch is made from a check of the mix.
#[derive(Debug, Clone)]
enum Pick {
    /// The mix's check as it is.
    Mix(usize),
    /// The mix's check asked by the subject of another (subjects repeat).
    SameSubject(usize, usize),
    /// An unknown subject: decided, not an error.
    UnknownSubject(usize),
    /// An unknown record: decided, not an error.
    UnknownRecord(usize),
    /// An unknown action: an error, which stops the batch.
    BadAction(usize),
    /// An id that breaks the id rule: an error.
    BadSubject(usize),
    /// The check with its trace asked for.
    Explained(usize),
    /// The check about a described record (stored or not) owned by the
    /// subject of another check: decided from the description.
    Described(usize, usize, bool),
    /// A check in a module that does not exist: an error.
    UnknownModule(usize),
}

fn pick() -> impl Strategy<Value = Pick> {
    let ix = || 0usize..400;
    prop_oneof![
        8 => ix().prop_map(Pick::Mix),
        4 => (ix(), 0usize..4).prop_map(|(a, b)| Pick::SameSubject(a, b)),
        1 => ix().prop_map(Pick::UnknownSubject),
        1 => ix().prop_map(Pick::UnknownRecord),
        1 => ix().prop_map(Pick::BadAction),
        1 => ix().prop_map(Pick::BadSubject),
        1 => ix().prop_map(Pick::Explained),
        2 => (ix(), 0usize..4, any::<bool>()).prop_map(|(i, o, p)| Pick::Described(i, o, p)),
        1 => ix().prop_map(Pick::UnknownModule),
    ]
}

fn request(w: &World, p: &Pick) -> CheckRequest {
    let at = |i: usize| w.mix[i % w.mix.len()].clone();
    match p {
        Pick::Mix(i) => at(*i),
        // A few subjects only, so a batch asks for the same one often.
        Pick::SameSubject(i, s) => CheckRequest {
            subject: at(*s).subject,
            ..at(*i)
        },
        Pick::UnknownSubject(i) => CheckRequest {
            subject: "nobody-here".into(),
            ..at(*i)
        },
        Pick::UnknownRecord(i) => CheckRequest {
            record: Some("no-such-record".into()),
            ..at(*i)
        },
        Pick::BadAction(i) => CheckRequest {
            action: "no_such_action".into(),
            ..at(*i)
        },
        Pick::BadSubject(i) => CheckRequest {
            subject: "bad id".into(),
            ..at(*i)
        },
        Pick::Explained(i) => CheckRequest {
            explain: true,
            ..at(*i)
        },
        Pick::Described(i, owner, private) => {
            let req = at(*i);
            // Not every check names a record; a description needs one.
            let record = req.record.clone().or_else(|| Some("described-only".into()));
            CheckRequest {
                record,
                described: Some(RecordDescription {
                    owner: OwnerRef::User(at(*owner).subject.to_string()),
                    private: *private,
                    attributes: Default::default(),
                }),
                ..req
            }
        }
        Pick::UnknownModule(i) => CheckRequest {
            module: "no_such_module".into(),
            ..at(*i)
        },
    }
}

/// What `check_many` must answer: each check decided alone, up to the
/// first that fails.
fn one_by_one(w: &World, reqs: &[CheckRequest]) -> Result<(Vec<Decision>, u64), (usize, Error)> {
    let mut out = Vec::new();
    let mut revision = 0;
    for (i, req) in reqs.iter().enumerate() {
        match w.engine.check(&w.org, req, now()) {
            Ok((d, rev)) => {
                out.push(d);
                revision = rev;
            }
            Err(e) => return Err((i, e)),
        }
    }
    Ok((out, revision))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn check_many_equals_checks_one_by_one(picks in prop::collection::vec(pick(), 1..120)) {
        let w = world();
        let reqs: Vec<CheckRequest> = picks.iter().map(|p| request(w, p)).collect();
        let refs: Vec<&CheckRequest> = reqs.iter().collect();
        let batch = w.engine.check_many(&w.org, &refs, now());
        prop_assert_eq!(batch, one_by_one(w, &reqs));
    }
}

/// The generated mix itself (no edits), in batches of 100 as the load
/// generator sends them: every decision the same as one by one.
#[test]
fn check_many_answers_the_mix_as_check_does() {
    let w = world();
    for chunk in w.mix.chunks(100) {
        let refs: Vec<&CheckRequest> = chunk.iter().collect();
        let batch = w.engine.check_many(&w.org, &refs, now());
        assert_eq!(batch, one_by_one(w, chunk));
    }
}
