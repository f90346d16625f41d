//! # kith-mobile
//!
//! Kith's exposure-notification engine for Android and iOS apps (and Python), as one
//! object, [`ExposureEngine`], exported with [uniffi](https://mozilla.github.io/uniffi-rs/).
//!
//! This crate only wraps: the protocol, matching and risk scoring live in `kith-core`.
//! It converts between the plain records apps see and core's validated types, reads
//! the system clock in the `current_*` convenience methods, and maps core errors onto
//! the flat [`KithError`] apps catch. `README.md` beside this crate shows how an app
//! builds it and generates its Kotlin, Swift or Python bindings.
//!
//! ```
//! use kith_mobile::ExposureEngine;
//!
//! let engine = ExposureEngine::open_in_memory(-8)?;
//! let now = 1_700_000_123; // unix seconds
//! let beacon = engine.beacon(now)?;
//! assert_eq!(beacon.service_data.len(), 20); // advertise under UUID 0xFD6F
//! assert_eq!(beacon.next_change_unix_seconds, 1_700_000_400); // the next 10-minute boundary
//! # Ok::<(), kith_mobile::KithError>(())
//! ```

#![warn(missing_docs)]

mod beacon;
mod checkin;
mod engine;
mod error;
mod explain;
mod export;
mod keys;
mod summary;
mod units;

pub use beacon::{Beacon, BeaconSighting};
pub use checkin::{CheckIn, CheckInUpload, ProtectedCheckIn, TraceWarningIngest, VenueExposure};
pub use engine::ExposureEngine;
pub use error::{InputError, KithError, PublicKeyError, Result};
pub use explain::{
    BucketTime, DayExplanation, Factor, RiskExplanation, ThresholdCheck, WindowExplanation,
};
pub use export::{
    ExportSigner, PublishedKey, TrustedPublicKey, trusted_public_keys_from_device_config,
};
pub use keys::ExposureKey;
/// How a diagnosis was established, as GAEN numbers it (exported to apps as an enum).
pub use kith_core::ReportType;
/// The family of a risk configuration (exported to apps as an enum).
pub use kith_core::risk::ModelKind;
pub use summary::{
    DailySummary, ExportIngest, ExposureSummary, ExposureWindow, KeyExposure, ScanInstance,
};

uniffi::setup_scaffolding!();
