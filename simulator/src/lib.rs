//! # kith-sim
//!
//! An agent-based epidemic simulator in which every app user's phone runs the real
//! exposure-notification protocol of [`kith_core`]: daily keys from a seeded CSPRNG,
//! RPIs and AEMs heard only during the phone's scans through a Bluetooth channel
//! model, uploads after a positive test, a signed export file every day, and matching
//! and GAEN v2 risk scoring on every phone.
//!
//! ```text
//!  population ─▶ daily contacts (household, work, school, community, transport)
//!       │              │                     │
//!       │        transmission (Ferretti profile, β from R0)      diary (14 days)
//!       │              │                     │
//!       └─▶ testing ─▶ uploads ─▶ export (core's writer, signed) ─▶ phones match
//!                                                (SightingIndex, ExposureWindow, RiskConfig)
//!                                                     │
//!                              notifications ─▶ quarantine, tests ─┘
//! ```
//!
//! It does not model hospitals, deaths, vaccination or waning immunity, and a
//! phone's sightings are regenerated from the contact diary rather than stored (see
//! [`app`]). Random numbers come from independent streams per purpose ([`rng`]), so
//! a run is deterministic per seed on any number of threads, and the runs with and
//! without the app agree until the app first acts.
//!
//! ```
//! use kith_sim::{Arm, Scenario, Simulation};
//!
//! let mut scenario = Scenario::default();
//! scenario.population = 2_000;
//! scenario.days = 20;
//! let mut sim = Simulation::new(&scenario, 1, Arm::WithApp)?;
//! sim.run(|_| {})?;
//! let last = sim.daily.last().unwrap();
//! assert!(last.cum_infections >= u64::from(scenario.initial_infections));
//! # Ok::<(), kith_sim::Error>(())
//! ```

pub mod app;
pub mod ble;
pub mod contacts;
pub mod diary;
pub mod disease;
mod error;
pub mod experiment;
pub mod output;
mod parallel;
pub mod peers;
pub mod plot;
pub mod population;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod stats;

pub use error::{Error, Result};
pub use experiment::{Experiment, Options, RunSummary};
pub use scenario::Scenario;
pub use sim::{Arm, Simulation};
