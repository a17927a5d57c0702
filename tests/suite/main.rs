//! The integration suite, as one test binary: each module was once its own `tests/*.rs` file.
//! One binary instead of fifteen keeps a clean build to a fraction of the disk and link time
//! (every test binary links the whole dependency graph). `tests/hostile.rs` (a counting global
//! allocator) and `tests/crash.rs` (re-executes its own binary as the crashing child) stay
//! separate because they need a process of their own.
//!
//! Run one area with a filter: `cargo test --test suite dns::`.

// Test and tool code: fakes' items are `pub` for the tests that share them, and a failed
// unwrap is a failed test or a tool's setup error, never a crashed exporter.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod assets;
mod blind;
mod check;
mod cli;
mod config;
mod dns;
mod docs;
mod domain_files;
mod drift;
mod dualstack;
mod exporter;
mod exposition;
mod fleet;
mod https;
mod inventory;
mod logs;
mod metrics_doc;
mod scheduler;
mod serve;
mod simulator;
mod smtp;
mod tls;
mod tlsrpt;
mod webconfig;
mod whatif;
