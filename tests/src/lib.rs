//! # kith-tests
//!
//! Kith end to end, as its users run it: a `kith-server` process on ephemeral loopback
//! ports with a temporary data directory, `kith-agent run --radio sim` processes on the
//! simulated loopback radio, the case worker's portal spoken to as a browser does, and
//! agents' CLIs for reports and status. The scenarios, faults and hostile input live in
//! one test binary, `tests/system/`, which runs them side by side; this library is their
//! harness.
//!
//! [`System`] owns every process it starts and stops them by PID (each agent in a process
//! group of its own, so its exposure commands go too) when it is dropped, also when a test
//! fails. A failing test prints the step it was at, and each process's state and log tail.
//!
//! The binaries are the ones the workspace's build put beside the test executable
//! (`target/debug/kith-server`, `target/debug/kith-agent`), or `$KITH_SERVER_BIN` and
//! `$KITH_AGENT_BIN`: cargo cannot yet make another package's binary a dependency.
//! `scripts/test` builds them first when it runs this crate alone.

pub mod agent;
pub mod bins;
pub mod fuzz;
pub mod keys;
pub mod output;
pub mod portal;
pub mod proxy;
pub mod scenario;
pub mod system;

pub use agent::AgentProcess;
pub use system::System;
