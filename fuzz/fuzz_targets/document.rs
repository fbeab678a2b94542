//! cargo-fuzz target over `warden::fuzzing::document`; its corpus is replayed
//! on stable by tests/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| warden::fuzzing::document(data));
