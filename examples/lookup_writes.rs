//! What LookupRecords' shared id order (part L) costs around writes, as
//! instruction counts on crm-large (wall-clock timings are noise on a
//! shared machine):
//!
//! ```text
//! cargo build --release --example lookup_writes
//! valgrind --tool=callgrind --callgrind-out-file=lw.out \
//!     --toggle-collect='lookup_writes::run_*' target/release/examples/lookup_writes
//! callgrind_annotate --inclusive=yes lw.out | grep run_
//! ```
//!
//! On the division head's Leads (97,712 of 200,000 ids): `run_lookup_first`
//! is the first lookup of the module (it builds the order),
//! `run_lookup_warm` one with the order built; `run_writes_cold` creates
//! and deletes `WRITES` records with no order built, `run_writes_after`
//! the same right after a lookup built it (the first create drops it);
//! `run_lookup_after_write` is the lookup right after those writes. Each
//! lookup is collected and every page read, as a stream would.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use chrono::Utc;

use warden::engine::document::changes_of;
use warden::engine::model::{OwnerRef, RecordDef};
use warden::engine::{Command, Direct, Engine, Limits};
use warden::generate::{generate, Params};

/// Records created and then deleted by a batch.
const WRITES: usize = 1000;
const PAGE: usize = 10_000;

struct Work {
    engine: Engine,
    org: String,
    head: String,
    template: RecordDef,
}

impl Work {
    fn lookup(&self) -> usize {
        let Ok((set, _)) =
            self.engine
                .lookup_record_set(&self.org, &self.head, "Leads", "view", Utc::now())
        else {
            return 0;
        };
        let mut bytes = 0;
        let mut offset = 0;
        while offset < set.len() {
            set.each_in_page(offset, PAGE, |id| bytes += black_box(id).len());
            offset += PAGE;
        }
        bytes
    }

    fn writes(&self, batch: usize) -> usize {
        let mut done = 0;
        for i in 0..WRITES {
            let def = RecordDef {
                id: format!("W{batch}-{i:05}"),
                ..self.template.clone()
            };
            done += usize::from(
                self.engine
                    .execute(&self.org, &Command::SetOwner(def.into()))
                    .is_ok(),
            );
        }
        for i in 0..WRITES {
            let delete = Command::DeleteRecord {
                module: "Leads".into(),
                id: format!("W{batch}-{i:05}"),
            };
            done += usize::from(self.engine.execute(&self.org, &delete).is_ok());
        }
        done
    }
}

// One function per measured step, never inlined, so callgrind reports
// each apart (each returns its tag too, so none are folded into one).
macro_rules! lookups {
    ($($name:ident = $tag:literal),*) => {$(
        #[inline(never)]
        fn $name(w: &Work) -> usize {
            w.lookup() + black_box($tag) - $tag
        }
    )*};
}
lookups!(
    run_lookup_first = 1,
    run_lookup_warm = 2,
    run_lookup_after_write = 3
);

#[inline(never)]
fn run_writes_cold(w: &Work) -> usize {
    w.writes(1)
}

#[inline(never)]
fn run_writes_after(w: &Work) -> usize {
    w.writes(2)
}

fn main() {
    let generated = match generate(&Params::crm_large()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("generate: {e}");
            std::process::exit(1);
        }
    };
    let doc = generated.document;
    let org = doc.organization.clone();
    let engine = Engine::new(Direct, Limits::default());
    engine.apply(&org, 1, &changes_of(&doc));
    let Some(template) = doc.records.iter().find(|r| r.module == "Leads").cloned() else {
        eprintln!("no Leads");
        std::process::exit(1);
    };
    let w = Work {
        engine,
        org,
        head: generated.landmarks.division_head.clone(),
        template: RecordDef {
            owner: OwnerRef::User(generated.landmarks.division_head),
            ..template
        },
    };
    drop(doc);
    eprintln!("writes with no order: {}", run_writes_cold(&w));
    eprintln!("first lookup: {} id bytes", run_lookup_first(&w));
    eprintln!("warm lookup: {} id bytes", run_lookup_warm(&w));
    eprintln!("writes after a lookup: {}", run_writes_after(&w));
    eprintln!(
        "lookup after writes: {} id bytes",
        run_lookup_after_write(&w)
    );
}
