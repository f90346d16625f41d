//! kith-server's integration tests, one module per subject, in one test binary: the
//! server, axum, tokio and reqwest are compiled into it and linked once, not once per
//! file. Filter by module: `cargo test -p kith-server --test server privacy::`.
//!
//! One process runs them all, on many threads: a test changes no environment variable,
//! signal disposition or other process-wide state, and every server it starts (in-process
//! or a child process) has a data directory, ports and, on PostgreSQL, a database of its own.

#[macro_use]
mod common;

mod adversary;
mod api;
mod checkins;
mod exports;
mod modules;
mod portal;
mod portal_forms;
mod postgres_restart;
mod privacy;
mod process;
mod scale_out;
