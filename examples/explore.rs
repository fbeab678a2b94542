use std::time::Instant;
use warden::cache::Cached;
use warden::engine::document::changes_of;
use warden::engine::{Command, Engine, Limits};
use warden::generate::*;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;
fn rss() -> String {
    let live = LIVE.load(Ordering::Relaxed) >> 20;
    print!("[live heap {live} MiB] ");
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let validate = std::env::args().any(|a| a == "--validate");
    let t = Instant::now();
    let g = generate(&Params::crm_large()).unwrap();
    println!("generate {:.2?} {}", t.elapsed(), rss());
    let doc = g.document;
    let org = doc.organization.clone();
    let engine = Engine::new(Cached::default(), Limits::default());
    let t = Instant::now();
    if validate {
        engine
            .execute(
                &org,
                &Command::Import {
                    document: doc.clone(),
                    replace: true,
                },
            )
            .unwrap();
        println!("import {:.2?} {}", t.elapsed(), rss());
    } else {
        let changes = changes_of(&doc);
        println!("changes_of {:.2?} {}", t.elapsed(), rss());
        engine.apply(&org, 1, &changes);
        println!("apply {:.2?} {}", t.elapsed(), rss());
        drop(changes);
    }
    let t = Instant::now();
    let mix = check_mix(&doc, 100_000, 1);
    println!("mix {:.2?}", t.elapsed());
    drop(doc);
    println!("after drop {}", rss());
    let now = chrono::Utc::now();
    let mut counts = std::collections::BTreeMap::new();
    let t = Instant::now();
    for r in &mix {
        let (d, _) = engine.check(&org, r, now).unwrap();
        *counts
            .entry(format!("{:?}/{}", d.reason, d.allowed))
            .or_insert(0) += 1;
    }
    println!("cold checks {:.2?}", t.elapsed());
    let t = Instant::now();
    for r in &mix {
        let _ = engine.check(&org, r, now).unwrap();
    }
    println!(
        "warm checks {:.2?} per {:?}",
        t.elapsed(),
        t.elapsed() / mix.len() as u32
    );
    println!("{counts:?}");
    let t = Instant::now();
    let (ids, _) = engine
        .lookup_records(
            &org,
            &g.landmarks.division_head,
            &g.landmarks.private_module,
            "view",
            now,
        )
        .unwrap();
    println!("lookup {} ids {:.2?}", ids.len(), t.elapsed());
    println!("end {}", rss());
}
