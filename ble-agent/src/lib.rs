//! # kith-agent
//!
//! Kith on a Linux device (laptop, Raspberry Pi, a gateway in a care home): it
//! advertises GAEN beacons and scans for others over BlueZ, or over a simulated
//! loopback radio; keeps keys and sightings in core's SQLite store through core's
//! [`ExposureEngine`](kith_core::ExposureEngine); syncs the export files of a
//! kith-server, matches and scores them, and tells its owner through a command.
//!
//! ```text
//!  clock ─▶ Schedule ─▶ rotate ─▶ Radio::advertise(beacon)      (BlueZ: bluer)
//!                     ─▶ scan   ─▶ Radio::scan(window) ─▶ sightings  (BlueZ: btleplug)
//!                     ─▶ sync   ─▶ /v1/config, index.txt, new *.zip ─▶ verify ─▶ match ─▶ hook
//!                                  (exports against sightings, trace warnings against check-ins)
//!                     ─▶ purge  ─▶ 14-day retention
//! ```
//!
//! It does not connect to devices, serve GATT or read raw HCI: the GAEN protocol
//! needs none of them. Time comes from a [`Clock`](clock::Clock), so tests drive the
//! schedule without sleeping:
//!
//! ```
//! use kith_agent::schedule::{DutyCycle, RotationPolicy, Schedule, Task};
//! use rand::SeedableRng;
//!
//! let start = 1_764_590_000_000; // Unix milliseconds
//! let mut schedule = Schedule::new(RotationPolicy::default(), DutyCycle::default(), None, start);
//! assert_eq!(schedule.next(), (Task::Rotate, start));
//! schedule.done(Task::Rotate, start, &mut rand::rngs::StdRng::seed_from_u64(1));
//! assert_eq!(schedule.next(), (Task::Scan, start));
//! ```
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
mod error;
pub mod radio;
pub mod schedule;
pub mod server;
pub mod status;
pub mod venue;

pub use agent::{Agent, ReportOutcome, SyncOutcome};
pub use error::{Error, Result};
