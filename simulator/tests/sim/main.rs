//! kith-sim's integration tests, in one binary: each file of its own would be linked
//! against the whole simulator separately, which costs CI minutes.

mod cli;
mod common;
mod determinism;
mod per_device;
mod scenario;
mod validation;
