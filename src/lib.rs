//! Warden: access decisions for CRM data, as a gRPC service.
//!
//! `engine` decides (no I/O); `cache` wraps its expanded memberships;
//! `document` reads scenario documents and runs their checks.
// `deny`, not `forbid`: src/memory.rs allows its one FFI call to the
// allocator (docs/decisions.md, "Memory handed back after loading").
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod authzen;
pub mod bus;
pub mod cache;
pub mod cli;
pub mod config;
pub mod console;
pub mod document;
pub mod engine;
pub mod fuzzing;
pub mod generate;
pub mod http;
pub mod memory;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod transport;
