//! Venue check-in: scanning a venue's QR code, checking out, sharing visits after a
//! positive test, and the warnings of other visitors' positive tests.

use kith_core::checkin::{
    self, ProtectedReport, TraceWarningBatch, TraceWarningFile, TransmissionRiskLevel,
    VenueMatchConfig, VenuePayload,
};
use kith_core::{ExportLimits, OsRng};

use crate::engine::{ExposureEngine, file_name, time_at};
use crate::error::{KithError, Result};
use crate::export::{ExportSigner, TrustedPublicKey, trusted_keys};

/// A visit to a venue, as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CheckIn {
    /// The engine's id for the visit, for [`ExposureEngine::check_out`].
    pub id: u64,
    /// The venue's name, from its QR code.
    pub description: String,
    /// The venue's address, from its QR code.
    pub address: String,
    /// Arrival, Unix seconds.
    pub arrival_unix_seconds: u64,
    /// Departure, Unix seconds: planned (the venue's default length) until checked out.
    pub departure_unix_seconds: u64,
}

impl From<checkin::CheckIn> for CheckIn {
    fn from(check_in: checkin::CheckIn) -> Self {
        Self {
            id: check_in.id,
            description: check_in.visit.description,
            address: check_in.visit.address,
            arrival_unix_seconds: check_in.visit.stay.arrival().get(),
            departure_unix_seconds: check_in.visit.stay.departure().get(),
        }
    }
}

/// One visit sealed for upload: CWA's `CheckInProtectedReport`. Only phones that
/// scanned the same venue's code can read its times; the server sees the hash.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProtectedCheckIn {
    /// The report as protobuf `CheckInProtectedReport` bytes (location id hash, IV,
    /// encrypted record, MAC): what the app uploads.
    pub report: Vec<u8>,
}

/// A visit that overlapped a positive person's reported visit.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VenueExposure {
    /// The check-in it concerns.
    pub check_in_id: u64,
    /// The venue's name.
    pub description: String,
    /// The venue's address.
    pub address: String,
    /// When both were there, from (Unix seconds) …
    pub start_unix_seconds: u64,
    /// … to (Unix seconds).
    pub end_unix_seconds: u64,
    /// That time in minutes.
    pub overlap_minutes: u32,
    /// How contagious the positive person was that day, 1..=8.
    pub transmission_risk_level: u8,
}

impl From<checkin::VenueExposure> for VenueExposure {
    fn from(exposure: checkin::VenueExposure) -> Self {
        Self {
            check_in_id: exposure.check_in_id,
            description: exposure.description,
            address: exposure.address,
            start_unix_seconds: exposure.overlap.arrival().get(),
            end_unix_seconds: exposure.overlap.departure().get(),
            overlap_minutes: exposure.overlap_minutes,
            transmission_risk_level: exposure.transmission_risk_level.get(),
        }
    }
}

#[uniffi::export]
impl ExposureEngine {
    /// Checks in at the venue whose QR code reads `qr_text` (a CWA poster's
    /// `https://e.coronawarn.app?v=1#…`, or another app's `…/CWA1/…`), arriving at
    /// `arrival_unix_seconds`.
    ///
    /// The visit ends by itself after the venue's default length (two hours when its
    /// code names none); scanning the same code again during the visit returns the same
    /// check-in. Text that is not a venue code fails with `InvalidVenueCode`.
    pub fn check_in(&self, qr_text: String, arrival_unix_seconds: u64) -> Result<CheckIn> {
        let arrival_unix_seconds = time_at(arrival_unix_seconds)?;
        let venue = VenuePayload::from_qr_text(&qr_text)
            .map_err(|error| KithError::InvalidVenueCode(error.into()))?;
        let check_in = self
            .lock()
            .check_in(&venue, arrival_unix_seconds)
            .map_err(KithError::store_or(KithError::InvalidCheckIn))?;
        Ok(check_in.into())
    }

    /// Ends visit `check_in_id` at `departure_unix_seconds` (after its arrival, at most
    /// a day later), or corrects the end of a visit that ended by itself.
    pub fn check_out(&self, check_in_id: u64, departure_unix_seconds: u64) -> Result<CheckIn> {
        let departure_unix_seconds = time_at(departure_unix_seconds)?;
        let check_in = self
            .lock()
            .check_out(check_in_id, departure_unix_seconds)
            .map_err(KithError::store_or(KithError::InvalidCheckIn))?;
        Ok(check_in.into())
    }

    /// The stored visits (the last 14 days), by arrival.
    pub fn check_ins(&self) -> Result<Vec<CheckIn>> {
        let check_ins = self.lock().check_ins().map_err(KithError::Storage)?;
        Ok(check_ins.into_iter().map(Into::into).collect())
    }

    /// The visits of the last 14 days to upload with the keys after a positive test,
    /// each sealed with a fresh random IV; a visit still going on ends at
    /// `now_unix_seconds`. The phone does not know how contagious its user was on each
    /// day, so every visit carries the highest transmission risk level.
    pub fn check_ins_to_upload(&self, now_unix_seconds: u64) -> Result<Vec<ProtectedCheckIn>> {
        let now_unix_seconds = time_at(now_unix_seconds)?;
        let reports = self
            .lock()
            .check_ins_to_upload(&mut OsRng, now_unix_seconds, TransmissionRiskLevel::HIGHEST)
            .map_err(KithError::Storage)?;
        Ok(reports
            .iter()
            .map(|report| ProtectedCheckIn {
                report: report.to_bytes(),
            })
            .collect())
    }

    /// Reads a downloaded trace-warning package (zip bytes), checks its signature
    /// against the health authority's `trusted_public_keys`, matches its reports
    /// against the stored visits and stores the venue exposures found (shown in the
    /// exposure summary). Returns how many were new; the same file again returns 0.
    pub fn ingest_trace_warnings(
        &self,
        trace_warning_file: Vec<u8>,
        trusted_public_keys: Vec<TrustedPublicKey>,
        now_unix_seconds: u64,
    ) -> Result<u32> {
        let now_unix_seconds = time_at(now_unix_seconds)?;
        let trusted = trusted_keys(&trusted_public_keys)?;
        let warnings = TraceWarningFile::parse(&trace_warning_file, &ExportLimits::default())?
            .verify(&trusted)?;
        let found = self
            .lock()
            .ingest_trace_warnings(&file_name(&trace_warning_file), &warnings, now_unix_seconds)
            .map_err(KithError::Storage)?;
        Ok(u32::try_from(found).unwrap_or(u32::MAX))
    }

    /// Sets the least time, in minutes, spent at a venue together with a positive
    /// person that makes a venue exposure (15 until set), for packages ingested from now on.
    pub fn set_venue_min_overlap_minutes(&self, minutes: u32) -> Result<()> {
        self.lock()
            .set_venue_match_config(VenueMatchConfig {
                min_overlap_minutes: minutes,
            })
            .map_err(KithError::Storage)
    }
}

impl ExposureEngine {
    /// The venue exposures stored, for the exposure summary.
    pub(crate) fn venue_exposures(&self) -> Result<Vec<VenueExposure>> {
        let exposures = self.lock().venue_exposures().map_err(KithError::Storage)?;
        Ok(exposures.into_iter().map(Into::into).collect())
    }
}

#[uniffi::export]
impl ExportSigner {
    /// A signed trace-warning package of the uploaded `reports` for `region`, for the
    /// hour `hour` (hours since the Unix epoch): what the health authority's server
    /// publishes every hour.
    pub fn write_trace_warnings(
        &self,
        reports: Vec<ProtectedCheckIn>,
        region: String,
        hour: u32,
    ) -> Result<Vec<u8>> {
        let reports = reports
            .iter()
            .map(|upload| ProtectedReport::from_bytes(&upload.report))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|error| KithError::InvalidCheckIn(error.into()))?;
        let batch = TraceWarningBatch {
            region: &region,
            hour,
            reports: &reports,
        };
        checkin::write_trace_warnings(&batch, &[self.signer()])
            .map_err(KithError::InvalidExportFile)
    }
}
