//! # kith-core
//!
//! The Google/Apple Exposure Notification (GAEN v1.2) protocol, byte for byte:
//! daily Temporary Exposure Keys, the identifiers and metadata they broadcast, and
//! the BLE payload that carries them.
//!
//! ```text
//!   TEK ──HKDF "EN-RPIK"──▶ RPIK ──AES(interval)──────────▶ RPI ─┐
//!    └───HKDF "EN-AEMK"──▶ AEMK ──AES-CTR(IV = RPI, meta)─▶ AEM ─┴▶ BLE service data 0xFD6F
//! ```
//!
//! This crate does no I/O: no sockets, no files, no clock and no randomness of its
//! own. Callers pass the time ([`IntervalNumber`]) and a random generator, and get
//! bytes back, so the same code runs in phones, on Linux devices, on the server and
//! inside the simulator.
//!
//! With the default `export` feature it also reads, verifies, writes and signs the
//! GAEN key-export files in which health authorities publish diagnosis keys: bytes go
//! into [`ExportFile::parse`], and only the [`VerifiedExport`] that
//! [`ExportFile::verify`] returns yields keys; [`write_export`] builds a signed file.
//!
//! ```
//! use kith_core::{BeaconPayload, BluetoothMetadata, IntervalNumber, OsRng, TemporaryExposureKey};
//!
//! let now = IntervalNumber::from_unix_seconds(1_585_785_600 + 3_600)?;
//! let tek = TemporaryExposureKey::generate(&mut OsRng, now);
//! assert_eq!(tek.validity().start(), IntervalNumber::new(2_642_976)); // aligned to the day
//!
//! // What this phone advertises now …
//! let beacon = tek.beacon(now, BluetoothMetadata::v1_0(8));
//! let on_air = beacon.to_service_data();
//!
//! // … and what a receiver who later learns the key recovers from it.
//! let heard = BeaconPayload::from_service_data(0xFD6F, &on_air)?;
//! let (rpik, aemk) = tek.derive_keys();
//! assert_eq!(rpik.rpi(now), heard.rpi());
//! let metadata = BluetoothMetadata::parse(aemk.decrypt(heard.rpi(), heard.aem()))?;
//! assert_eq!(metadata.tx_power(), 8);
//! # Ok::<(), kith_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkin;
mod diagnosis;
mod engine;
mod error;
#[cfg(feature = "export")]
mod export;
mod hkdf;
mod identifiers;
mod interval;
mod keys;
mod matching;
mod metadata;
mod payload;
pub mod risk;
#[cfg(feature = "sealed")]
pub mod sealed;
mod sighting;
pub mod store;
mod time;

pub use diagnosis::{DaysSinceOnset, DiagnosisKey, ReportType};
#[cfg(feature = "export")]
pub use engine::DownloadedExport;
pub use engine::{ExposureEngine, FoundExposures, SightingSnapshot};
pub use error::{
    Error, ExportFormatError, ExportTrustError, ExportWriteError, IntervalError, KeyError,
    OtherError, PayloadError, Result, RiskConfigError, SignatureError, StoreError,
};
#[cfg(feature = "export")]
pub use export::{
    BatchPart, ECDSA_P256_SHA256_OID, EXPORT_HEADER, ExportBatch, ExportFile, ExportHeader,
    ExportKeys, ExportLimits, ExportSignature, ExportSigner, MAX_EXPORT_SIGNATURES, SignatureInfo,
    SigningKey, TrustedKeys, UnverifiedExport, VerifiedExport, VerifyingKey, write_export,
    write_export_part,
};
pub use identifiers::{AEM_LEN, Aem, RPI_LEN, Rpi};
pub use interval::{
    INTERVAL_SECONDS, INTERVALS_PER_DAY, IntervalNumber, KeyValidity, RollingPeriod,
};
pub use keys::{AemKey, KEY_LEN, RpiKey, TemporaryExposureKey};
pub use matching::{
    DRIFT_TOLERANCE_INTERVALS, Match, MatchedSighting, Matches, SightingIndex, TX_POWER_RANGE,
};
pub use metadata::{BluetoothMetadata, CalibrationConfidence, MetadataVersion, RawMetadata};
pub use payload::{BeaconPayload, SERVICE_DATA_LEN, SERVICE_UUID_16, SERVICE_UUID_128};
/// The operating system's random generator, for generating keys outside tests.
pub use rand_core::OsRng;
pub use sighting::Sighting;
pub use store::IngestReport;
pub use time::{Day, SECONDS_PER_DAY, UnixSeconds};
